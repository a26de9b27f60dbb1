// SPDX-License-Identifier: GPL-2.0
// Ghost files at checkpoint time (ghosts.h); restore's side is in
// restore/files.cc (create_files()).
#include <cerrno>
#include <set>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/amber.h>

#include "checkpoint/ghosts.h"
#include "common/io.h"
#include "common/names.h"

namespace amber {

bool is_ghost(const FdInfo &f)
{
	return f.type == AMBER_FD_REG && is_deleted(f.path) && !f.path.empty() &&
	       f.path[0] == '/';
}

std::string ghost_path(const std::string &deleted)
{
	if (!is_deleted(deleted))
		return deleted;
	return deleted.substr(0, deleted.size() - std::string_view(" (deleted)").size());
}

Result<void> check_ghost(uint32_t pid, const FdInfo &f, uint64_t limit)
{
	const std::string name = pid_name(pid) + ": fd " + std::to_string(f.num) + ": " + f.path;
	if (f.size > limit)
		return fail(EFBIG, name + ": a deleted file of " + std::to_string(f.size) +
					   " bytes is larger than the ghost limit of " +
					   std::to_string(limit) +
					   " bytes (raise it with --ghost-limit BYTES)");
	const std::string path = ghost_path(f.path);
	const std::string dir = path.substr(0, std::max<size_t>(1, path.rfind('/')));
	struct stat st;
	if (stat(dir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
		return fail(EOPNOTSUPP, name + ": was deleted and its directory " + dir +
						" is gone, cannot recreate it");
	if (uint64_t(st.st_dev) != f.dev)
		return fail(EOPNOTSUPP, name + ": was deleted and its directory " + dir +
						" is now on another file system, cannot recreate it");
	return {};
}

namespace {

Result<Bytes> read_ghost(uint32_t pid, const FdInfo &f)
{
	const std::string name = pid_name(pid) + ": fd " + std::to_string(f.num) + ": " + f.path;
	const std::string link = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(f.num);
	UniqueFd fd(open(link.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
	if (!fd)
		return fail_errno(name + ": cannot read it through " + link);
	struct stat st;
	if (fstat(fd.get(), &st) < 0)
		return fail_errno(name + ": fstat");
	if (uint64_t(st.st_dev) != f.dev || uint64_t(st.st_ino) != f.ino || st.st_nlink)
		return fail(EAGAIN, name + ": the fd changed since the checkpoint");
	Bytes data(f.size);
	if (auto r = pread_full(fd.get(), data.data(), data.size(), 0); !r)
		return wrap(r.error(), name + ": ");
	return data;
}

} // namespace

Result<std::vector<Bytes>> collect_ghosts(const GroupReply &g, uint64_t limit)
{
	// Every refusal first, so that nothing is read in vain.
	for (const CheckpointReply &r : g.procs)
		for (const FdInfo &f : r.fd_list)
			if (!r.zombie() && is_ghost(f))
				AMBER_TRY(check_ghost(r.pid(), f, limit));

	std::vector<Bytes> out(g.procs.size());
	std::set<std::pair<uint64_t, uint64_t>> done;
	for (size_t i = 0; i < g.procs.size(); i++) {
		const CheckpointReply &r = g.procs[i];
		if (r.zombie())
			continue;
		std::vector<Ghost> mine;
		for (const FdInfo &f : r.fd_list) {
			if (!is_ghost(f) || !done.insert({f.dev, f.ino}).second)
				continue;
			Ghost gh;
			gh.dev = f.dev;
			gh.ino = f.ino;
			gh.mode = f.mode;
			gh.path = ghost_path(f.path);
			gh.data = AMBER_TRY(read_ghost(r.pid(), f));
			mine.push_back(std::move(gh));
		}
		out[i] = encode_ghosts(mine);
	}
	return out;
}

} // namespace amber
