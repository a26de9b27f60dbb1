// SPDX-License-Identifier: GPL-2.0
// Planning a tree restore (tree_plan.h). Pure: no system calls.
#include "restore/tree_plan.h"
#include "common/names.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <linux/amber.h>

#include "checkpoint/checkpoint.h"

namespace amber {

namespace {

std::string pid_str(uint32_t pid)
{
	return "pid " + std::to_string(pid);
}

// Process group / session values of the root that are outside the tree
// stand for "whatever the restoring tool has"; kToolGroup marks the root's
// group at creation when it joins a group of the tree later.
constexpr uint64_t kToolGroup = uint64_t(1) << 40;

} // namespace

int ProcessTree::index_of(uint32_t pid) const
{
	for (size_t i = 0; i < procs.size(); i++)
		if (procs[i].info.pid == pid)
			return int(i);
	return -1;
}

Result<ProcessTree> plan_process_tree(const std::vector<ProcInfo> &tree)
{
	ProcessTree t;
	if (tree.empty())
		return fail(EINVAL, "image: TREE: no process");
	std::map<uint32_t, int> index;
	for (size_t i = 0; i < tree.size(); i++) {
		const ProcInfo &p = tree[i];
		if (p.pid == 0 || p.pid > uint32_t(INT32_MAX))
			return fail(EINVAL, "image: TREE: process " + std::to_string(i) +
						    ": bad pid " + std::to_string(p.pid));
		if (!index.emplace(p.pid, int(i)).second)
			return fail(EINVAL, "image: TREE: " + pid_str(p.pid) + " listed twice");
		PlannedProc pp;
		pp.info = p;
		t.procs.push_back(pp);
	}

	const ProcInfo &root = tree[0];
	if (root.zombie)
		return fail(EINVAL, pid_str(root.pid) + ": the root of the tree is a zombie");
	for (size_t i = 1; i < tree.size(); i++) {
		const ProcInfo &p = tree[i];
		auto it = index.find(p.ppid);
		if (it == index.end())
			return fail(EINVAL, pid_str(p.pid) + ": its parent (pid " +
						    std::to_string(p.ppid) + ") is not in the tree");
		if (size_t(it->second) >= i)
			return fail(EINVAL, "image: TREE: " + pid_str(p.pid) +
						    " is listed before its parent");
		if (tree[it->second].zombie)
			return fail(EINVAL, pid_str(p.pid) + ": its parent (pid " +
						    std::to_string(p.ppid) + ") is a zombie");
		t.procs[i].parent = it->second;
		t.procs[it->second].children.push_back(int(i));
	}
	for (const PlannedProc &p : t.procs)
		if (p.info.zombie)
			AMBER_TRY(zombie_exit(p.info));

	// Sessions: setsid() by the leader before it creates children; everyone
	// else inherits its parent's.
	std::vector<uint32_t> eff_sid(tree.size());
	for (size_t i = 0; i < tree.size(); i++) {
		PlannedProc &p = t.procs[i];
		const ProcInfo &in = p.info;
		if (in.sid == in.pid) {
			p.setsid = true;
			if (in.pgid != in.pid)
				return fail(EINVAL, pid_str(in.pid) + ": session leader in process group " +
							    std::to_string(in.pgid));
			eff_sid[i] = in.pid;
			continue;
		}
		if (i == 0) {
			eff_sid[i] = in.sid;	// the tool's session
			continue;
		}
		eff_sid[i] = eff_sid[p.parent];
		if (in.sid == eff_sid[i])
			continue;
		int leader = t.index_of(in.sid);
		if (leader < 0 && in.sid != root.sid)
			return fail(EINVAL, pid_str(in.pid) + ": session " + std::to_string(in.sid) +
						    ": its leader is not in the tree and it is not "
						    "the session of the root (pid " +
						    std::to_string(root.pid) + ")");
		return fail(EINVAL, pid_str(in.pid) + ": session " + std::to_string(in.sid) +
					    " differs from its parent's (pid " +
					    std::to_string(tree[p.parent].pid) + ", session " +
					    std::to_string(tree[p.parent].sid) +
					    ") and it is not the session's leader: cannot recreate");
	}

	// Process groups: the leader's setpgid(0, 0) before it creates
	// children; a process born in another group joins after the barrier.
	std::vector<uint64_t> eff_pgid(tree.size());
	const bool root_group_outside =
		root.pgid != root.pid && index.find(root.pgid) == index.end();
	for (size_t i = 0; i < tree.size(); i++) {
		PlannedProc &p = t.procs[i];
		const ProcInfo &in = p.info;
		if (root_group_outside && in.pgid == root.pgid && in.sid == root.sid &&
		    !t.procs[0].setsid)
			p.outside_pgid = in.pgid;
		if (in.pgid == in.pid) {
			p.setpgid_self = !p.setsid;
			eff_pgid[i] = in.pid;
			continue;
		}
		if (i == 0)
			eff_pgid[i] = root_group_outside ? uint64_t(in.pgid) : kToolGroup;
		else
			eff_pgid[i] = eff_pgid[p.parent];
		if (uint64_t(in.pgid) == eff_pgid[i])
			continue;
		std::string name = pid_str(in.pid) + ": process group " + std::to_string(in.pgid);
		auto it = index.find(in.pgid);
		if (it == index.end()) {
			if (!root_group_outside || in.pgid != root.pgid)
				return fail(EINVAL, name + ": its leader is not in the tree");
			if (in.sid != root.sid || t.procs[0].setsid)
				return fail(EINVAL, name + " (the root's) is in another session");
			p.join = true;
			p.join_tool_group = true;
			continue;
		}
		const ProcInfo &leader = tree[it->second];
		if (leader.pgid != leader.pid)
			return fail(EINVAL, name + ": pid " + std::to_string(leader.pid) +
						    " is in the tree but in group " +
						    std::to_string(leader.pgid));
		if (leader.sid != in.sid)
			return fail(EINVAL, name + " is in session " + std::to_string(leader.sid) +
						    ", the process in session " +
						    std::to_string(in.sid));
		p.join = true;
		p.join_pgid = in.pgid;
	}
	return t;
}

Result<ZombieExit> zombie_exit(const ProcInfo &p)
{
	int st = int(p.exit_code);
	ZombieExit z;
	if (WIFEXITED(st)) {
		z.code = WEXITSTATUS(st);
		return z;
	}
	if (WIFSIGNALED(st) && WTERMSIG(st) > 0 && WTERMSIG(st) < 65 && WTERMSIG(st) != SIGSTOP) {
		z.signaled = true;
		z.code = WTERMSIG(st);
		return z;
	}
	char buf[16];
	snprintf(buf, sizeof(buf), "0x%x", p.exit_code);
	return fail(EINVAL, pid_str(p.pid) + ": zombie with wait status " + buf +
				    " that no exit reproduces");
}

namespace {

bool is_file_type(uint32_t type)
{
	return type == AMBER_FD_REG || type == AMBER_FD_DIR || type == AMBER_FD_CHR ||
	       type == AMBER_FD_BLK;
}

struct InoUse {
	bool read = false, write = false;
	bool above_stdio = false;	// some fd > 2 uses it
};

} // namespace

Result<SharedPlan> plan_shared(const std::vector<ProcImage> &procs, bool with_shmem)
{
	SharedPlan sp;
	sp.fd_file.resize(procs.size());
	sp.vma_shmem.resize(procs.size());

	// Which pipes and sockets are only stdio to the outside.
	std::map<uint64_t, InoUse> pipe_use, sock_use;
	std::set<uint64_t> sock_inos;
	for (const ProcImage &pi : procs)
		for (const FdInfo &f : pi.ckpt->fds)
			if (f.file_id && f.type == AMBER_FD_SOCK)
				sock_inos.insert(f.ino);
	for (const ProcImage &pi : procs)
		for (const FdInfo &f : pi.ckpt->fds) {
			if (!f.file_id)
				continue;
			if (f.type == AMBER_FD_FIFO) {
				InoUse &u = pipe_use[f.ino];
				int acc = int(f.flags & O_ACCMODE);
				u.read |= acc != O_WRONLY;
				u.write |= acc != O_RDONLY;
				u.above_stdio |= f.num > 2;
			} else if (f.type == AMBER_FD_SOCK) {
				InoUse &u = sock_use[f.ino];
				u.above_stdio |= f.num > 2;
				// "read": the peer is in the checkpoint.
				u.read |= f.peer_ino && sock_inos.count(f.peer_ino);
			}
		}
	auto outside = [&](const FdInfo &f) {
		if (f.num > 2)
			return false;
		if (f.tty)
			return true;
		if (f.type == AMBER_FD_FIFO) {
			const InoUse &u = pipe_use[f.ino];
			return !u.above_stdio && !(u.read && u.write);
		}
		if (f.type == AMBER_FD_SOCK) {
			const InoUse &u = sock_use[f.ino];
			return !u.above_stdio && !u.read;
		}
		return false;
	};

	std::map<uint64_t, int> by_id;		// file_id -> files
	std::map<uint64_t, int> pipe_by_ino;	// -> pipes
	std::map<uint64_t, int> sock_file;	// socket ino -> files
	std::set<uint64_t> inherited;		// inodes of outside stdio

	for (size_t pi = 0; pi < procs.size(); pi++) {
		const Checkpoint &c = *procs[pi].ckpt;
		for (const FdInfo &f : c.fds) {
			std::string owner = pid_str(procs[pi].pid) + ": fd " + std::to_string(f.num);
			std::string name = owner + ": " + f.path;
			if (!f.file_id)
				continue;
			if (outside(f)) {
				if (f.type == AMBER_FD_FIFO || f.type == AMBER_FD_SOCK)
					inherited.insert(f.ino);
				continue;
			}
			SharedKind kind;
			if (is_file_type(f.type))
				kind = SharedKind::File;
			else if (f.type == AMBER_FD_FIFO)
				kind = SharedKind::Pipe;
			else if (f.type == AMBER_FD_SOCK)
				kind = SharedKind::Socket;
			else
				continue;	// plan_fds() refuses it by name

			auto it = by_id.find(f.file_id);
			if (it != by_id.end()) {
				const SharedFile &s = sp.files[it->second];
				if (s.type != f.type || s.path != f.path)
					return fail(EINVAL, name + ": file id " +
								    std::to_string(f.file_id) +
								    " is also " + s.owner + ": " + s.path);
				sp.fd_file[pi][f.num] = it->second;
				continue;
			}
			SharedFile s;
			s.kind = kind;
			s.file_id = f.file_id;
			s.type = f.type;
			s.path = f.path;
			s.flags = int(f.flags & ~uint32_t(O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC));
			s.owner = owner;
			int idx = int(sp.files.size());

			if (kind == SharedKind::File) {
				if (f.path.empty() || f.path[0] != '/')
					return fail(EINVAL, name + ": not a path that can be reopened");
				if (f.type == AMBER_FD_CHR)
					s.flags |= O_NOCTTY;
				if (f.type == AMBER_FD_REG) {
					if (f.pos > uint64_t(INT64_MAX))
						return fail(EINVAL, name + ": offset out of range");
					s.seek = true;
					s.pos = off_t(f.pos);
				}
			} else if (kind == SharedKind::Pipe) {
				auto [pit, added] = pipe_by_ino.emplace(f.ino, int(sp.pipes.size()));
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
			} else {
				if (f.sock_family != AF_UNIX)
					return fail(EOPNOTSUPP, name + ": " + family_name(f.sock_family) +
									" sockets are not supported");
				if (f.sock_type != SOCK_STREAM && f.sock_type != SOCK_DGRAM &&
				    f.sock_type != SOCK_SEQPACKET)
					return fail(EOPNOTSUPP, name + ": socket type " +
									std::to_string(f.sock_type) +
									" is not supported");
				if (!sock_file.emplace(f.ino, idx).second)
					return fail(EOPNOTSUPP, name + ": the socket is open in two "
									"descriptions (" +
									sp.files[sock_file[f.ino]].owner +
									")");
			}
			sp.files.push_back(s);
			by_id[f.file_id] = idx;
			sp.fd_file[pi][f.num] = idx;
		}
	}

	// Socketpairs: both sides when both are in the checkpoint.
	std::map<uint64_t, std::pair<int, int>> sock_side;	// ino -> (sockets, side)
	std::map<uint64_t, const FdInfo *> sock_info;
	for (const ProcImage &pi : procs)
		for (const FdInfo &f : pi.ckpt->fds)
			if (f.file_id && f.type == AMBER_FD_SOCK && sock_file.count(f.ino))
				sock_info.emplace(f.ino, &f);
	for (auto &[ino, fidx] : sock_file) {
		if (sock_side.count(ino))
			continue;
		const FdInfo &f = *sock_info.at(ino);
		SharedSocket s;
		s.family = f.sock_family;
		s.type = f.sock_type;
		s.ino[0] = ino;
		s.file[0] = fidx;
		s.shutdown[0] = f.shutdown;
		int k = int(sp.sockets.size());
		sock_side[ino] = {k, 0};
		sp.files[fidx].sock = k;
		sp.files[fidx].side = 0;
		auto peer = sock_info.find(f.peer_ino);
		if (f.peer_ino && peer != sock_info.end() && peer->second->peer_ino == ino &&
		    !sock_side.count(f.peer_ino)) {
			const FdInfo &g = *peer->second;
			if (g.sock_type != f.sock_type)
				return fail(EINVAL, sp.files[fidx].owner + ": " + f.path +
							    ": its peer " + g.path +
							    " has another socket type");
			int gidx = sock_file.at(f.peer_ino);
			s.ino[1] = f.peer_ino;
			s.file[1] = gidx;
			s.shutdown[1] = g.shutdown;
			sock_side[f.peer_ino] = {k, 1};
			sp.files[gidx].sock = k;
			sp.files[gidx].side = 1;
		}
		sp.sockets.push_back(std::move(s));
	}

	// Queued bytes, by inode.
	std::map<uint64_t, Bytes> partial;	// unterminated socket message
	for (const ProcImage &pi : procs)
		for (const QueueChunk &q : pi.ckpt->queues) {
			if (auto p = pipe_by_ino.find(q.ino); p != pipe_by_ino.end()) {
				Bytes &b = sp.pipes[p->second].queue;
				b.insert(b.end(), q.data.begin(), q.data.end());
				continue;
			}
			auto s = sock_side.find(q.ino);
			if (s == sock_side.end()) {
				if (inherited.count(q.ino))
					continue;	// stdio to the outside: not ours
				return fail(EINVAL, pid_str(pi.pid) + ": image: QUEUES: bytes for "
								      "inode " +
							    std::to_string(q.ino) +
							    " that no fd refers to");
			}
			SharedSocket &sock = sp.sockets[s->second.first];
			auto &queue = sock.queue[s->second.second];
			if (sock.type == SOCK_STREAM) {
				if (queue.empty())
					queue.emplace_back();
				queue.back().insert(queue.back().end(), q.data.begin(), q.data.end());
				continue;
			}
			Bytes &m = partial[q.ino];
			m.insert(m.end(), q.data.begin(), q.data.end());
			if (q.eor)
				queue.push_back(std::move(m)), m.clear();
		}
	for (auto &[ino, m] : partial)
		if (!m.empty())
			return fail(EINVAL, "image: QUEUES: socket:[" + std::to_string(ino) +
						    "]: the last message has no end");

	if (!with_shmem)
		return sp;
	std::map<std::pair<uint64_t, uint64_t>, int> shm;
	for (size_t pi = 0; pi < procs.size(); pi++) {
		const auto &vmas = procs[pi].ckpt->vmas;
		for (size_t vi = 0; vi < vmas.size(); vi++) {
			const Vma &v = vmas[vi];
			if (!(v.flags & AMBER_VMA_F_SHMEM) || !v.ino)
				continue;
			auto [it, added] = shm.emplace(std::make_pair(v.dev, v.ino),
						       int(sp.shmem.size()));
			if (added) {
				SharedMem m;
				m.dev = v.dev;
				m.ino = v.ino;
				sp.shmem.push_back(m);
			}
			SharedMem &m = sp.shmem[it->second];
			m.size = std::max(m.size, v.file_size);
			m.vmas.emplace_back(int(pi), int(vi));
			sp.vma_shmem[pi][int(vi)] = it->second;
		}
	}
	return sp;
}

} // namespace amber
