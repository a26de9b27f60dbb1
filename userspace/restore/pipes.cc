// SPDX-License-Identifier: GPL-2.0
// Pipes and FIFOs on restore: one pipe (or the FIFO reopened) per inode,
// each end's description shared by every fd of its FILE_ID, the queued
// bytes written in before any stub exists. The checkpoint side is the
// kernel's (FD_PIPE_SIZE, QUEUE chunks); plan_fds() places the fds.
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
#include "restore/core.h"

namespace amber {

void note_pipe_use(SharedBuild &b, const FdInfo &f)
{
	InoUse &u = b.pipe_use[f.ino];
	int acc = int(f.flags & O_ACCMODE);
	u.read |= acc != O_WRONLY;
	u.write |= acc != O_RDONLY;
	u.above_stdio |= f.num > 2;
	u.no_readers |= f.pipe_no_readers;
	u.no_writers |= f.pipe_no_writers;
}

bool pipe_is_outside(const SharedBuild &b, const FdInfo &f)
{
	auto it = b.pipe_use.find(f.ino);
	const InoUse u = it == b.pipe_use.end() ? InoUse{} : it->second;
	if (u.above_stdio || (u.read && u.write))
		return false;
	// One direction only: the other is outside unless nobody held it
	// (a `cmd | md5sum` whose writer exited leaves md5sum the only end).
	return u.read ? !u.no_writers : !u.no_readers;
}

void plan_pipe(SharedBuild &b, const FdInfo &f, int idx, SharedFile &s)
{
	SharedPlan &sp = b.sp;
	auto [pit, added] = b.pipe_by_ino.emplace(f.ino, int(sp.pipes.size()));
	if (added) {
		SharedPipe p;
		p.ino = f.ino;
		p.path = f.path;
		p.named = !f.path.empty() && f.path[0] == '/';
		sp.pipes.push_back(p);
	}
	SharedPipe &p = sp.pipes[pit->second];
	p.size = std::max(p.size, f.pipe_size);
	p.files.push_back(idx);
	s.pipe = pit->second;
}

bool queue_pipe(SharedBuild &b, const QueueChunk &q)
{
	auto p = b.pipe_by_ino.find(q.ino);
	if (p == b.pipe_by_ino.end())
		return false;
	Bytes &bytes = b.sp.pipes[p->second].queue;
	bytes.insert(bytes.end(), q.data.begin(), q.data.end());
	return true;
}

Result<void> create_pipes(const SharedPlan &sp, SharedFds &out)
{
	for (const SharedPipe &p : sp.pipes) {
		std::string name = sp.files[p.files.at(0)].owner + ": " + p.path;
		UniqueFd rd, wr, keeper;
		int setsz;
		if (p.named) {
			// O_RDWR on a FIFO never blocks and keeps it open while
			// the ends are opened.
			keeper.reset(open(p.path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
			if (!keeper)
				return fail_errno(name + ": open");
			struct stat st;
			if (fstat(keeper.get(), &st) || !S_ISFIFO(st.st_mode))
				return fail(0, name + ": is no longer a FIFO");
			setsz = keeper.get();
		} else {
			PipeFds pf = AMBER_TRY(make_pipe("pipe"));
			rd = std::move(pf.r);
			wr = std::move(pf.w);
			setsz = wr.get();
		}
		if (p.size && fcntl(setsz, F_GETPIPE_SZ) < int(p.size) &&
		    fcntl(setsz, F_SETPIPE_SZ, int(p.size)) < 0)
			return fail_errno(name + ": F_SETPIPE_SZ " + std::to_string(p.size));
		if (!p.queue.empty()) {
			int w = p.named ? keeper.get() : wr.get();
			AMBER_TRY(set_fl(w, O_NONBLOCK, name));
			AMBER_TRY(write_queue(w, p.queue, false, name));
			AMBER_TRY(set_fl(w, 0, name));
		}
		for (int idx : p.files) {
			const SharedFile &f = sp.files[idx];
			std::string fname = f.owner + ": " + f.path;
			int acc = f.flags & O_ACCMODE;
			UniqueFd fd;
			if (p.named) {
				fd.reset(open(p.path.c_str(), acc | O_NONBLOCK | O_CLOEXEC));
			} else if (acc == O_RDONLY && rd) {
				fd = std::move(rd);
			} else if (acc == O_WRONLY && wr) {
				fd = std::move(wr);
			} else {
				// Another description of the same pipe.
				int end = -1;
				for (int j : p.files)
					if (out.files[j] && (sp.files[j].flags & O_ACCMODE) == acc)
						end = out.files[j].get();
				// An O_RDWR description (opened through /proc/PID/fd)
				// reopens any end: a pipe opens read-write.
				if (end < 0 && acc == O_RDWR)
					end = rd ? rd.get() : wr ? wr.get() : -1;
				for (int j : p.files)
					if (end < 0 && acc == O_RDWR && out.files[j])
						end = out.files[j].get();
				if (end < 0)
					return fail(EINVAL, fname + ": no end to reopen");
				std::string proc = "/proc/self/fd/" + std::to_string(end);
				fd.reset(open(proc.c_str(), acc | O_NONBLOCK | O_CLOEXEC));
			}
			if (!fd)
				return fail_errno(fname + ": open");
			AMBER_TRY(set_fl(fd.get(), f.flags, fname));
			out.files[idx] = std::move(fd);
		}
	}
	return {};
}

} // namespace amber
