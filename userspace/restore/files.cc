// SPDX-License-Identifier: GPL-2.0
// Regular files, directories and devices on restore: how one is opened
// again by path (plan_reopen(), for plan_fds() and for the shared
// descriptions), check_files() finds what changed on disk before anything
// is created, create_files() opens the shared descriptions once. The
// checkpoint side: check_supported().
#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/amber.h>

#include "common/io.h"
#include "common/names.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/ghosts.h"
#include "restore/core.h"

namespace amber {

namespace {

// What stat() said of each path, once: a mapped file has several VMAs, and
// every stat() of the 9p root costs a round trip to the host in the guest.
using StatCache = std::map<std::string, struct stat>;

// Checks that path still exists with the expected type (and size, if any).
Result<void> check_file(StatCache &seen, const std::string &path, mode_t type,
			std::optional<uint64_t> size)
{
	auto it = seen.find(path);
	if (it == seen.end()) {
		AMBER_TRY(check_not_deleted(path));	// the same refusal as at checkpoint time
		struct stat st;
		if (stat(path.c_str(), &st)) {
			if (errno == ENOENT)
				return fail(0, path + ": missing");
			return fail_errno(path);
		}
		it = seen.emplace(path, st).first;
	}
	const struct stat &st = it->second;
	if ((st.st_mode & S_IFMT) != type) {
		const char *what = type == S_IFREG ? "a regular file"
				   : type == S_IFDIR ? "a directory"
				   : type == S_IFCHR ? "a character device"
						     : "the same kind of file";
		return fail(0, path + ": is no longer " + std::string(what));
	}
	if (size && uint64_t(st.st_size) != *size)
		return fail(0, path + ": size changed from " + std::to_string(*size) + " to " +
			    std::to_string(st.st_size));
	return {};
}

// For each `outer` attribute of an image section, in order: whether it holds
// an `inner` attribute. Sizes that were not recorded are not checked.
std::vector<bool> has_inner_attr(ByteView section, uint16_t outer, uint16_t inner)
{
	std::vector<bool> out;
	auto attrs = parse_attrs(section);
	if (!attrs)
		return out;
	for (const Attr &a : *attrs) {
		if (a.type != outer)
			continue;
		auto in = parse_attrs(a.data);
		out.push_back(in && find_attr(*in, inner));
	}
	return out;
}

} // namespace

Result<Reopen> plan_reopen(const FdInfo &f, const std::string &name, int err)
{
	if (f.path.empty() || f.path[0] != '/')
		return fail(err, name + ": not a path that can be reopened");
	Reopen r;
	r.flags = int(f.flags & ~uint32_t(O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC));
	if (f.type == AMBER_FD_CHR)
		r.flags |= O_NOCTTY;
	if (f.type == AMBER_FD_REG) {
		if (f.pos > uint64_t(INT64_MAX))
			return fail(err, name + ": offset out of range");
		r.seek = true;
		r.pos = off_t(f.pos);
	}
	return r;
}

Result<void> plan_file(const FdInfo &f, const std::string &name, SharedFile &s)
{
	Reopen r = AMBER_TRY(plan_reopen(f, name, EINVAL));
	s.flags = r.flags;
	s.seek = r.seek;
	s.pos = r.pos;
	return {};
}

Result<void> check_files(const Checkpoint &c, const std::vector<StubFd> &fds)
{
	auto vma_sized = has_inner_attr(c.vmas_raw, AMBER_A_VMA, AMBER_VMA_FILE_SIZE);
	auto fd_sized = has_inner_attr(c.fds_raw, AMBER_A_FD, AMBER_FD_SIZE);
	if (vma_sized.size() != c.vmas.size())
		vma_sized.assign(c.vmas.size(), true);
	if (fd_sized.size() != c.fds.size())
		fd_sized.assign(c.fds.size(), true);

	StatCache seen;
	if (!c.task.exe.empty())
		AMBER_TRY(check_file(seen, c.task.exe, S_IFREG, std::nullopt));
	for (size_t i = 0; i < c.vmas.size(); i++) {
		const Vma &v = c.vmas[i];
		if (vma_has_file(v))
			AMBER_TRY(check_file(seen, v.path, S_IFREG,
					     vma_sized[i] ? std::optional(v.file_size) : std::nullopt));
	}
	for (size_t i = 0; i < c.fds.size(); i++) {
		const FdInfo &f = c.fds[i];
		// fds is sorted by number (plan_fds).
		auto s = std::lower_bound(fds.begin(), fds.end(), int(f.num),
					  [](const StubFd &s, int num) { return s.num < num; });
		if (s == fds.end() || s->num != int(f.num) || s->inherit)
			continue;
		if (s->shared >= 0 && is_ghost(f))
			continue;	// recreated from the image
		if (s->shared >= 0 && f.type != AMBER_FD_REG && f.type != AMBER_FD_DIR &&
		    f.type != AMBER_FD_CHR && f.type != AMBER_FD_BLK)
			continue;	// a pipe or socket the tool creates
		mode_t type = f.type == AMBER_FD_REG   ? S_IFREG
			      : f.type == AMBER_FD_DIR ? S_IFDIR
			      : f.type == AMBER_FD_CHR ? S_IFCHR
						       : S_IFBLK;
		std::optional<uint64_t> size;
		if (f.type == AMBER_FD_REG && (f.flags & O_ACCMODE) == O_RDONLY && fd_sized[i])
			size = f.size;
		if (auto r = check_file(seen, f.path, type, size); !r)
			return wrap(r.error(), "fd " + std::to_string(f.num) + ": ");
	}
	if (!c.task.cwd.empty() && !is_deleted(c.task.cwd))	// else a ghost
		AMBER_TRY(check_file(seen, c.task.cwd, S_IFDIR, std::nullopt));
	return {};
}

Result<std::string> GhostDirs::add(const std::string &deleted)
{
	if (auto it = by_path_.find(deleted); it != by_path_.end())
		return it->second;
	const std::string path = deleted.substr(0, deleted.size() - strlen(" (deleted)"));
	struct stat st;
	bool exact = !path.empty() && path[0] == '/' && lstat(path.c_str(), &st) < 0 &&
		     errno == ENOENT;
	const size_t first = made_.size();
	// mkdir -p, remembering what it made.
	for (size_t slash = 1; exact;) {
		slash = path.find('/', slash);
		const std::string part = path.substr(0, slash);
		if (mkdir(part.c_str(), 0700) == 0)
			made_.push_back(part);
		else if (errno != EEXIST || slash == std::string::npos)
			exact = false;
		if (slash == std::string::npos)
			break;
		slash++;
	}
	std::string dir = path;
	if (!exact) {
		while (made_.size() > first) {
			rmdir(made_.back().c_str());
			made_.pop_back();
		}
		char tmpl[] = "/tmp/amber-ghost-XXXXXX";
		if (!mkdtemp(tmpl))
			return fail_errno("cwd: " + deleted + ": mkdtemp " + tmpl);
		dir = tmpl;
		made_.push_back(dir);
	}
	by_path_.emplace(deleted, dir);
	return dir;
}

void GhostDirs::remove()
{
	while (!made_.empty()) {
		rmdir(made_.back().c_str());
		made_.pop_back();
	}
}

Result<int> plan_ghost(SharedBuild &b, const std::vector<ProcImage> &procs, const FdInfo &f,
		       const std::string &name)
{
	const std::pair<uint64_t, uint64_t> key{f.dev, f.ino};
	if (auto it = b.ghost_by_ino.find(key); it != b.ghost_by_ino.end())
		return it->second;
	for (const ProcImage &pi : procs)
		for (const Ghost &g : pi.ckpt->ghosts)
			if (g.dev == f.dev && g.ino == f.ino) {
				if (g.path != ghost_path(f.path))
					return fail(EINVAL, name + ": its saved copy is of " + g.path);
				const int idx = int(b.sp.ghosts.size());
				b.sp.ghosts.push_back(&g);
				b.ghost_by_ino[key] = idx;
				return idx;
			}
	return fail(EOPNOTSUPP, name + ": was deleted before the checkpoint and the image "
				       "holds no copy of it");
}

namespace {

// The recreated ghosts, linked until unlink_all() (or destruction: a
// failed restore leaves nothing behind).
struct GhostFiles {
	std::vector<std::string> paths;		// per SharedPlan::ghosts
	std::vector<UniqueFd> fds;
	GhostFiles() = default;
	GhostFiles(const GhostFiles &) = delete;
	GhostFiles &operator=(const GhostFiles &) = delete;
	~GhostFiles() { unlink_all(); }
	void unlink_all()
	{
		for (std::string &p : paths)
			if (!p.empty())
				unlink(p.c_str());
		paths.clear();
	}
};

// Creates ghost g in its directory: at its old name when that is free,
// else under a private name beside it (same file system either way).
Result<void> make_ghost(const Ghost &g, GhostFiles &gf)
{
	const std::string name = g.path + " (deleted)";
	std::string path = g.path;
	UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	for (int n = 0; !fd && errno == EEXIST && n < 100; n++) {
		path = g.path.substr(0, g.path.rfind('/')) + "/.amber-ghost-" +
		       std::to_string(g.ino) + "-" + std::to_string(getpid()) + "-" +
		       std::to_string(n);
		fd = UniqueFd(open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	}
	if (!fd)
		return fail_errno(name + ": cannot recreate it as " + path);
	gf.paths.push_back(path);
	if (auto w = write_all(fd.get(), ByteView(g.data)); !w)
		return wrap(w.error(), name + ": writing its content: ");
	gf.fds.push_back(std::move(fd));
	return {};
}

} // namespace

Result<void> create_files(const SharedPlan &sp, SharedFds &out)
{
	GhostFiles gf;
	for (const Ghost *g : sp.ghosts)
		AMBER_TRY(make_ghost(*g, gf));
	for (size_t i = 0; i < sp.files.size(); i++) {
		const SharedFile &f = sp.files[i];
		if (f.kind != SharedKind::File)
			continue;
		std::string name = f.owner + ": " + f.path;
		const std::string &path = f.ghost >= 0 ? gf.paths[f.ghost] : f.path;
		UniqueFd fd(open(path.c_str(), f.flags | O_CLOEXEC));
		if (!fd)
			return fail_errno(name + ": open");
		if (f.seek && lseek(fd.get(), f.pos, SEEK_SET) < 0)
			return fail_errno(name + ": lseek");
		out.files[i] = std::move(fd);
	}
	// Its mode once every description is open (one may be write-only on a
	// read-only file), then unlinked: st_nlink 0 as at the checkpoint.
	for (size_t k = 0; k < sp.ghosts.size(); k++)
		if (fchmod(gf.fds[k].get(), sp.ghosts[k]->mode & 07777) < 0)
			return fail_errno(sp.ghosts[k]->path + " (deleted): fchmod");
	gf.unlink_all();
	return {};
}

} // namespace amber
