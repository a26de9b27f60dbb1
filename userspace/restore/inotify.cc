// SPDX-License-Identifier: GPL-2.0
// inotify on restore. The kernel reports each inotify's watches: watch
// descriptor, mask, and the watched inode with its file handle
// (kmod/inotify.c: AMBER_FD_INOTIFY_WATCH). The tool creates one instance
// per open file description before the stubs exist, like an eventfd, and
// adds every watch again on the same inode, opened with open_by_handle_at()
// on a mount of its file system and watched through /proc/self/fd/N, so a
// watch follows the inode, not a name that may have moved (as CRIU does).
//
// Watch descriptors come back as they were: the kernel hands them out
// cyclically from 1, so the tool adds watches in ascending order and, to
// skip a number that was free at the checkpoint, adds and removes a watch
// on a scratch memfd. Removing a watch queues an IN_IGNORED event; those are
// read away before any stub runs. Events that were queued and not read at
// the checkpoint are not restored (the kernel does not report them), so the
// restored instance starts empty; Documentation/design.md says so.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/io.h"
#include "restore/core.h"

namespace amber {

namespace {

std::string watch_name(const std::string &name, const InotifyWatch &w)
{
	return name + ": watch " + std::to_string(w.wd) + " (inode " + std::to_string(w.ino) + ")";
}

// A directory on a mount of file system dev, from /proc/self/mountinfo
// ("id parent major:minor root mount-point ..."): open_by_handle_at() takes
// no O_PATH fd.
Result<UniqueFd> open_mount_of(uint64_t dev, const std::string &name)
{
	std::ifstream in("/proc/self/mountinfo");
	if (!in)
		return fail_errno("cannot read /proc/self/mountinfo");
	std::string line;
	while (std::getline(in, line)) {
		std::istringstream ls(line);
		std::string id, parent, devs, root, point;
		unsigned int ma = 0, mi = 0;
		if (!(ls >> id >> parent >> devs >> root >> point) ||
		    std::sscanf(devs.c_str(), "%u:%u", &ma, &mi) != 2 ||
		    makedev(ma, mi) != dev || point.find('\\') != std::string::npos)
			continue;
		UniqueFd fd(open(point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
		if (fd)
			return fd;
	}
	return fail(ENOENT, name + ": no mount of its file system (device " +
				    std::to_string(major(dev)) + ":" + std::to_string(minor(dev)) +
				    ") is visible here");
}

// The watched inode, opened O_PATH by its file handle, checked to be that
// inode and still linked.
Result<UniqueFd> open_watched(const InotifyWatch &w, const std::string &name)
{
	const std::string wn = watch_name(name, w);
	UniqueFd mnt = AMBER_TRY(open_mount_of(w.dev, wn));
	std::vector<unsigned char> buf(sizeof(file_handle) + w.handle.size());
	auto *fh = reinterpret_cast<file_handle *>(buf.data());
	fh->handle_bytes = unsigned(w.handle.size());
	fh->handle_type = int(w.handle_type);
	std::copy(w.handle.begin(), w.handle.end(), fh->f_handle);
	UniqueFd fd(open_by_handle_at(mnt.get(), fh, O_PATH | O_CLOEXEC));
	if (!fd)
		return fail_errno(wn + ": cannot reopen it by its file handle (a file system "
					"without file handles, or the file is gone)");
	struct stat st;
	if (fstat(fd.get(), &st) < 0)
		return fail_errno(wn + ": fstat");
	if (st.st_dev != w.dev || st.st_ino != w.ino)
		return fail(ESTALE, wn + ": its file handle opens inode " +
					    std::to_string(st.st_ino) + " instead");
	if (st.st_nlink == 0)
		return fail(EOPNOTSUPP, wn + ": the watched file is deleted");
	return fd;
}

std::string proc_fd(int fd)
{
	return "/proc/self/fd/" + std::to_string(fd);
}

// Adds and removes a watch on scratch until the next descriptor handed out
// is want; next is the one expected next.
Result<void> skip_to(int ifd, uint32_t want, uint32_t &next, UniqueFd &scratch,
		     const std::string &name)
{
	while (next < want) {
		if (!scratch) {
			scratch.reset(memfd_create("amber-inotify", MFD_CLOEXEC));
			if (!scratch)
				return fail_errno(name + ": memfd_create");
		}
		int wd = inotify_add_watch(ifd, proc_fd(scratch.get()).c_str(),
					   IN_MODIFY | IN_MASK_CREATE);
		if (wd < 0)
			return fail_errno(name + ": a scratch watch");
		if (inotify_rm_watch(ifd, wd) < 0)
			return fail_errno(name + ": removing a scratch watch");
		if (uint32_t(wd) < next)
			return fail(EPROTO, name + ": the kernel handed out watch " +
						    std::to_string(wd) + " after " +
						    std::to_string(next - 1));
		next = uint32_t(wd) + 1;
	}
	return {};
}

// Reads away the IN_IGNORED events of the scratch watches.
Result<void> drain(int ifd, const std::string &name)
{
	AMBER_TRY(set_fl(ifd, O_NONBLOCK, name));
	alignas(inotify_event) char buf[4096];
	for (;;) {
		ssize_t n = read(ifd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return {};
		if (n <= 0)
			return fail_errno(name + ": reading the scratch watches' events");
	}
}

Result<UniqueFd> create_inotify(const SharedFile &f, const std::string &name)
{
	UniqueFd fd(inotify_init1(IN_CLOEXEC));
	if (!fd)
		return fail_errno(name + ": inotify_init1");
	std::vector<InotifyWatch> ws = f.inotify;
	std::sort(ws.begin(), ws.end(),
		  [](const InotifyWatch &a, const InotifyWatch &b) { return a.wd < b.wd; });
	UniqueFd scratch;
	uint32_t next = 1;
	for (const InotifyWatch &w : ws) {
		const std::string wn = watch_name(name, w);
		if (w.wd < next)
			return fail(EINVAL, wn + ": watch descriptor " + std::to_string(w.wd) +
						    " appears twice");
		AMBER_TRY(skip_to(fd.get(), w.wd, next, scratch, name));
		UniqueFd target = AMBER_TRY(open_watched(w, name));
		int wd = inotify_add_watch(fd.get(), proc_fd(target.get()).c_str(), w.mask);
		if (wd < 0)
			return fail_errno(wn + ": inotify_add_watch");
		if (uint32_t(wd) != w.wd)
			return fail(EPROTO, wn + ": came back as watch " + std::to_string(wd));
		next = w.wd + 1;
	}
	if (scratch)
		AMBER_TRY(drain(fd.get(), name));
	AMBER_TRY(set_fl(fd.get(), f.flags, name));
	return fd;
}

} // namespace

Result<void> plan_inotify(const FdInfo &f, const std::string &name, SharedFile &s)
{
	for (const InotifyWatch &w : f.inotify_watches)
		(void)AMBER_TRY(open_watched(w, name));
	s.inotify = f.inotify_watches;
	return {};
}

Result<void> create_inotifies(const SharedPlan &sp, SharedFds &out)
{
	for (size_t i = 0; i < sp.files.size(); i++) {
		const SharedFile &f = sp.files[i];
		if (f.kind != SharedKind::Inotify)
			continue;
		out.files[i] = AMBER_TRY(create_inotify(f, f.owner + ": " + f.path));
	}
	return {};
}

} // namespace amber
