// SPDX-License-Identifier: GPL-2.0
// The open file descriptions a restore shares (plan.h): plan_shared()
// groups the fds of every process by FILE_ID and hands each kind to its own
// file (files.cc, pipes.cc, unix.cc, mm.cc); create_shared() creates them
// all before the stubs exist; plan_fds() (stub.h) places every image fd: a
// shared description, stdio inherited, or a file reopened by path.
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

bool is_file_type(uint32_t type)
{
	return type == AMBER_FD_REG || type == AMBER_FD_DIR || type == AMBER_FD_CHR ||
	       type == AMBER_FD_BLK;
}

// Which pipes and sockets are only stdio to the outside.
void note_uses(SharedBuild &b, const std::vector<ProcImage> &procs)
{
	std::set<uint64_t> sock_inos;
	for (const ProcImage &pi : procs)
		for (const FdInfo &f : pi.ckpt->fds)
			if (f.file_id && f.type == AMBER_FD_SOCK)
				sock_inos.insert(f.ino);
	for (const ProcImage &pi : procs)
		for (const FdInfo &f : pi.ckpt->fds) {
			if (!f.file_id)
				continue;
			if (f.type == AMBER_FD_FIFO)
				note_pipe_use(b, f);
			else if (f.type == AMBER_FD_SOCK)
				note_socket_use(b, f, sock_inos);
		}
	// A pipe end in flight is held too: its pipe is no stdio to the outside.
	for (const ProcImage &pi : procs)
		for (const QueueChunk &q : pi.ckpt->queues)
			for (const FdInfo &f : q.files)
				if (f.type == AMBER_FD_FIFO)
					note_pipe_use(b, f);
}

bool outside(const SharedBuild &b, const FdInfo &f)
{
	if (f.num > 2)
		return false;
	if (f.tty)
		return true;
	if (f.type == AMBER_FD_FIFO)
		return pipe_is_outside(b, f);
	if (f.type == AMBER_FD_SOCK && !f.is_inet)
		return socket_is_outside(b, f);
	return false;
}

// The kind of shared description f is; false: none (plan_fds() refuses it by name).
bool shared_kind(const FdInfo &f, SharedKind &kind)
{
	if (is_file_type(f.type))
		kind = SharedKind::File;
	else if (f.type == AMBER_FD_FIFO)
		kind = SharedKind::Pipe;
	else if (f.type == AMBER_FD_SOCK && f.is_inet)
		kind = SharedKind::Inet;
	else if (f.type == AMBER_FD_SOCK)
		kind = SharedKind::Socket;
	else if (f.type == AMBER_FD_OTHER && f.eventfd)
		kind = SharedKind::Eventfd;
	else if (f.type == AMBER_FD_OTHER && f.epoll)
		kind = SharedKind::Epoll;
	else if (f.type == AMBER_FD_OTHER && f.timerfd)
		kind = SharedKind::Timerfd;
	else if (f.type == AMBER_FD_OTHER && f.signalfd)
		kind = SharedKind::Signalfd;
	else if (f.type == AMBER_FD_OTHER && f.inotify)
		kind = SharedKind::Inotify;
	else
		return false;
	return true;
}

// A new description of kind for f (first seen as owner), at b.sp.files' end.
Result<void> add_description(SharedBuild &b, const std::vector<ProcImage> &procs,
			     const FdInfo &f, SharedKind kind, const std::string &owner)
{
	SharedPlan &sp = b.sp;
	std::string name = owner + ": " + f.path;
	SharedFile s;
	s.kind = kind;
	s.file_id = f.file_id;
	s.type = f.type;
	s.path = f.path;
	s.flags = int(f.flags & ~uint32_t(O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC));
	s.owner = owner;
	int idx = int(sp.files.size());

	if (kind == SharedKind::File) {
		AMBER_TRY(plan_file(f, name, s));
		if (is_ghost(f))
			s.ghost = AMBER_TRY(plan_ghost(b, procs, f, name));
	} else if (kind == SharedKind::Pipe)
		plan_pipe(b, f, idx, s);
	else if (kind == SharedKind::Eventfd)
		plan_eventfd(f, s);
	else if (kind == SharedKind::Epoll)
		plan_epoll(f, s);
	else if (kind == SharedKind::Timerfd)
		AMBER_TRY(plan_timerfd(f, name, s));
	else if (kind == SharedKind::Signalfd)
		plan_signalfd(f, s);
	else if (kind == SharedKind::Inotify)
		AMBER_TRY(plan_inotify(f, name, s));
	else if (kind == SharedKind::Inet)
		AMBER_TRY(plan_inet(b, f, idx, name, s));
	else
		AMBER_TRY(plan_socket(b, f, idx, name));
	sp.files.push_back(s);
	b.file_by_id[f.file_id] = idx;
	return {};
}

// One description per FILE_ID; fd_file maps every fd to it.
Result<void> plan_descriptions(SharedBuild &b, const std::vector<ProcImage> &procs,
			       std::set<uint64_t> &inherited)
{
	SharedPlan &sp = b.sp;

	for (size_t pi = 0; pi < procs.size(); pi++) {
		const Checkpoint &c = *procs[pi].ckpt;
		for (const FdInfo &f : c.fds) {
			std::string owner = pid_name(procs[pi].pid) + ": fd " + std::to_string(f.num);
			std::string name = owner + ": " + f.path;
			if (!f.file_id)
				continue;
			if (outside(b, f)) {
				if (f.type == AMBER_FD_FIFO || f.type == AMBER_FD_SOCK)
					inherited.insert(f.ino);
				b.outside_fd.emplace(f.file_id, int(f.num));
				continue;
			}
			SharedKind kind;
			if (!shared_kind(f, kind))
				continue;	// plan_fds() refuses it by name

			auto it = b.file_by_id.find(f.file_id);
			if (it != b.file_by_id.end()) {
				const SharedFile &s = sp.files[it->second];
				if (s.type != f.type || s.path != f.path)
					return fail(EINVAL, name + ": file id " +
								    std::to_string(f.file_id) +
								    " is also " + s.owner + ": " + s.path);
				sp.fd_file[pi][f.num] = it->second;
				// The kernel marks a held connection or port in the fd
				// of whichever process captured it first (processes
				// are captured concurrently), not always this plan's
				// first: any of them makes the restore release it.
				if (kind == SharedKind::Inet && f.inet.held && s.inet >= 0)
					sp.inets[size_t(s.inet)].info.held = true;
				continue;
			}
			AMBER_TRY(add_description(b, procs, f, kind, owner));
			sp.fd_file[pi][f.num] = b.file_by_id.at(f.file_id);
		}
	}
	return {};
}

// Files in flight in queued UNIX messages (SCM_RIGHTS), after every fd:
// one an fd of the checkpoint refers to is that fd's description (whatever
// its kind); on its own, a regular file, directory or pipe end is created
// like an fd's, anything else is refused by name.
Result<void> plan_flight(SharedBuild &b, const std::vector<ProcImage> &procs)
{
	for (size_t pi = 0; pi < procs.size(); pi++)
		for (const QueueChunk &q : procs[pi].ckpt->queues)
			for (const FdInfo &f : q.files) {
				// The socket's (a listener's, for a waiting connection) fd.
				std::string sock = "socket:[" + std::to_string(q.ino) + "]";
				for (const FdInfo &s : procs[pi].ckpt->fds)
					if (s.type == AMBER_FD_SOCK && s.ino == q.ino) {
						sock = "fd " + std::to_string(s.num) + ": " + s.path;
						break;
					}
				std::string owner = pid_name(procs[pi].pid) + ": " + sock +
						    ": a file in flight";
				std::string name = owner + ": " + f.path;
				auto it = b.file_by_id.find(f.file_id);
				if (it != b.file_by_id.end()) {
					const SharedFile &s = b.sp.files[it->second];
					if (s.type != f.type || s.path != f.path)
						return fail(EINVAL, name + ": file id " +
									    std::to_string(f.file_id) +
									    " is also " + s.owner + ": " +
									    s.path);
					continue;
				}
				if (b.outside_fd.count(f.file_id))
					return fail(EOPNOTSUPP,
						    name + ": a queued message passes (SCM_RIGHTS) stdio "
							   "inherited from outside the checkpoint: not supported");
				bool alone = is_file_type(f.type) || f.type == AMBER_FD_FIFO;
				if (!alone || is_ghost(f)) {
					std::string kind = is_ghost(f) ? "deleted file"
								       : fd_type_name(f.type);
					std::string a = kind[0] == 'a' ? "an " : "a ";
					return fail(EOPNOTSUPP,
						    name + ": " + a + kind +
							    " passed in a queued message (SCM_RIGHTS) and held "
							    "by no fd of the checkpoint: not supported (only "
							    "regular files, directories, devices and pipes are "
							    "restored on their own)");
				}
				SharedKind kind;
				shared_kind(f, kind);
				AMBER_TRY(add_description(b, procs, f, kind, owner));
			}
	return {};
}

// Queued bytes, by inode.
Result<void> plan_queues(SharedBuild &b, const std::vector<ProcImage> &procs,
			 const std::set<uint64_t> &inherited)
{
	for (const ProcImage &pi : procs)
		for (const QueueChunk &q : pi.ckpt->queues) {
			if (queue_pipe(b, q) || queue_socket(b, q) || queue_inet(b, q))
				continue;
			if (inherited.count(q.ino))
				continue;	// stdio to the outside: not ours
			return fail(EINVAL, pid_name(pi.pid) + ": image: QUEUES: bytes for "
							       "inode " +
						    std::to_string(q.ino) + " that no fd refers to");
		}
	AMBER_TRY(check_inet_queues(b));
	return check_socket_queues(b);
}

// Credentials in a queued message name a process the restore creates
// before any runs: a live process of a tree (restore_tree() sends them
// once every stub exists).
Result<void> check_queue_creds(const std::vector<ProcImage> &procs, bool tree)
{
	std::set<uint32_t> live;
	for (const ProcInfo &p : procs[0].ckpt->tree)
		if (!p.zombie)
			live.insert(p.pid);
	for (const ProcImage &pi : procs)
		for (const QueueChunk &q : pi.ckpt->queues) {
			if (!q.cred_pid)
				continue;
			std::string what = pid_name(pi.pid) + ": image: QUEUES: socket:[" +
					   std::to_string(q.ino) + "]: a message with the credentials of pid " +
					   std::to_string(q.cred_pid);
			if (!tree)
				return fail(EOPNOTSUPP, what + ", which only a tree restore sends");
			if (!live.count(q.cred_pid))
				return fail(EINVAL, what + ", not a live process of the tree");
		}
	return {};
}

} // namespace

Result<SharedPlan> plan_shared(const std::vector<ProcImage> &procs, bool with_shmem)
{
	SharedBuild b;
	b.sp.fd_file.resize(procs.size());
	b.sp.vma_shmem.resize(procs.size());
	std::set<uint64_t> inherited;		// inodes of outside stdio

	note_uses(b, procs);
	AMBER_TRY(plan_descriptions(b, procs, inherited));
	AMBER_TRY(plan_flight(b, procs));
	AMBER_TRY(plan_epoll_targets(b));
	AMBER_TRY(pair_sockets(b, procs));
	AMBER_TRY(plan_queues(b, procs, inherited));
	AMBER_TRY(check_queue_creds(procs, with_shmem));
	if (with_shmem)
		plan_shmem(b.sp, procs);
	return std::move(b.sp);
}

Result<std::vector<StubFd>> plan_fds(const std::vector<FdInfo> &fds,
				     const std::map<uint32_t, int> &shared,
				     const std::vector<std::string> &shared_names)
{
	std::vector<StubFd> out;

	for (const FdInfo &f : fds) {
		std::string name = "fd " + std::to_string(f.num) + ": " + f.path;
		if (f.num > INT_MAX / 2)
			return fail(0, name + ": fd number out of range");
		StubFd s;
		s.num = int(f.num);

		if (auto sh = shared.find(f.num); sh != shared.end()) {
			s.shared = sh->second;
			s.path = size_t(sh->second) < shared_names.size()
					 ? shared_names[sh->second]
					 : f.path;
			s.flags = f.cloexec ? O_CLOEXEC : 0;
			out.push_back(std::move(s));
			continue;
		}

		if (f.num <= 2 && (f.tty || f.type == AMBER_FD_FIFO)) {
			s.inherit = true;
			s.flags = f.cloexec ? O_CLOEXEC : 0;
			out.push_back(std::move(s));
			continue;
		}
		switch (f.type) {
		case AMBER_FD_REG:
		case AMBER_FD_DIR:
		case AMBER_FD_CHR:
		case AMBER_FD_BLK:
			break;
		default:
			return fail(0, name + ": cannot restore a " + fd_type_name(f.type) +
				    " on fd " + std::to_string(f.num) +
				    (f.type == AMBER_FD_FIFO ? " (pipes only on fds 0-2)" : ""));
		}
		Reopen r = AMBER_TRY(plan_reopen(f, name, 0));
		s.path = f.path;
		s.flags = r.flags | (f.cloexec ? O_CLOEXEC : 0);
		s.seek = r.seek;
		s.pos = r.pos;
		out.push_back(std::move(s));
	}
	std::sort(out.begin(), out.end(),
		  [](const StubFd &a, const StubFd &b) { return a.num < b.num; });
	for (size_t i = 1; i < out.size(); i++)
		if (out[i].num == out[i - 1].num)
			return fail(0, "fd " + std::to_string(out[i].num) +
				    ": appears twice in the image");
	return out;
}

Result<void> set_fl(int fd, int flags, const std::string &name)
{
	if (fcntl(fd, F_SETFL, flags & ~O_ACCMODE) < 0)
		return fail_errno(name + ": fcntl(F_SETFL)");
	return {};
}

// Writes all of data without blocking (a full pipe or socket is an error).
Result<void> write_queue(int fd, ByteView data, bool sock, const std::string &name)
{
	for (size_t off = 0; off < data.size();) {
		ssize_t n = sock ? send(fd, data.data() + off, data.size() - off,
					MSG_DONTWAIT | MSG_NOSIGNAL)
				 : write(fd, data.data() + off, data.size() - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return fail(ENOSPC, name + ": its " + std::to_string(data.size()) +
						    " queued bytes do not fit in it");
		if (n < 0)
			return fail_errno(name + ": writing its queued bytes");
		off += size_t(n);
	}
	return {};
}

std::vector<std::string> shared_names(const SharedPlan &sp)
{
	std::vector<std::string> out;
	for (const SharedFile &f : sp.files)
		out.push_back(f.path);
	return out;
}

Result<SharedFds> create_shared(const SharedPlan &sp, const std::vector<PageInput> &procs)
{
	SharedFds out;
	out.files.resize(sp.files.size());
	out.names = shared_names(sp);
	AMBER_TRY(create_files(sp, out));
	AMBER_TRY(create_pipes(sp, out));
	AMBER_TRY(create_sockets(sp, out));
	AMBER_TRY(create_inets(sp, out));
	AMBER_TRY(create_eventfds(sp, out));
	AMBER_TRY(create_timerfds(sp, out));
	AMBER_TRY(create_signalfds(sp, out));
	AMBER_TRY(create_inotifies(sp, out));
	AMBER_TRY(create_epolls(sp, out));
	AMBER_TRY(create_shmem(sp, procs, out));
	// Files in flight exist now; credentials wait for the processes.
	bool creds = std::any_of(out.deferred.begin(), out.deferred.end(),
				 [](const DeferredQueue &d) { return has_creds(d.creds); });
	if (!creds)
		AMBER_TRY(send_deferred(out));
	return out;
}

} // namespace amber
