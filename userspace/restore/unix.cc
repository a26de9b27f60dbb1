// SPDX-License-Identifier: GPL-2.0
// UNIX sockets on restore: a socketpair per pair of inodes (or a lone side
// whose peer is gone), each side's queue sent from the other side, then
// the shutdowns. The checkpoint side is the kernel's (FD_SOCK_*,
// FD_PEER_INO, FD_SHUTDOWN, QUEUE chunks); check_supported() refuses other
// families at checkpoint time.
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

void note_socket_use(SharedBuild &b, const FdInfo &f, const std::set<uint64_t> &inos)
{
	InoUse &u = b.sock_use[f.ino];
	u.above_stdio |= f.num > 2;
	// "read": the peer is in the checkpoint.
	u.read |= f.peer_ino && inos.count(f.peer_ino);
}

bool socket_is_outside(const SharedBuild &b, const FdInfo &f)
{
	auto it = b.sock_use.find(f.ino);
	const InoUse u = it == b.sock_use.end() ? InoUse{} : it->second;
	return !u.above_stdio && !u.read;
}

Result<void> plan_socket(SharedBuild &b, const FdInfo &f, int idx, const std::string &name)
{
	if (f.sock_family != AF_UNIX)
		return fail(EOPNOTSUPP, name + ": " + family_name(f.sock_family) +
						" sockets are not supported");
	if (f.sock_type != SOCK_STREAM && f.sock_type != SOCK_DGRAM &&
	    f.sock_type != SOCK_SEQPACKET)
		return fail(EOPNOTSUPP, name + ": socket type " + std::to_string(f.sock_type) +
						" is not supported");
	if (!b.sock_file.emplace(f.ino, idx).second)
		return fail(EOPNOTSUPP, name + ": the socket is open in two descriptions (" +
						b.sp.files[b.sock_file[f.ino]].owner + ")");
	return {};
}

Result<void> pair_sockets(SharedBuild &b, const std::vector<ProcImage> &procs)
{
	SharedPlan &sp = b.sp;
	std::map<uint64_t, const FdInfo *> sock_info;
	for (const ProcImage &pi : procs)
		for (const FdInfo &f : pi.ckpt->fds)
			if (f.file_id && f.type == AMBER_FD_SOCK && b.sock_file.count(f.ino))
				sock_info.emplace(f.ino, &f);
	for (auto &[ino, fidx] : b.sock_file) {
		if (b.sock_side.count(ino))
			continue;
		const FdInfo &f = *sock_info.at(ino);
		SharedSocket s;
		s.family = f.sock_family;
		s.type = f.sock_type;
		s.ino[0] = ino;
		s.file[0] = fidx;
		s.shutdown[0] = f.shutdown;
		int k = int(sp.sockets.size());
		b.sock_side[ino] = {k, 0};
		sp.files[fidx].sock = k;
		sp.files[fidx].side = 0;
		auto peer = sock_info.find(f.peer_ino);
		if (f.peer_ino && peer != sock_info.end() && peer->second->peer_ino == ino &&
		    !b.sock_side.count(f.peer_ino)) {
			const FdInfo &g = *peer->second;
			if (g.sock_type != f.sock_type)
				return fail(EINVAL, sp.files[fidx].owner + ": " + f.path +
							    ": its peer " + g.path +
							    " has another socket type");
			int gidx = b.sock_file.at(f.peer_ino);
			s.ino[1] = f.peer_ino;
			s.file[1] = gidx;
			s.shutdown[1] = g.shutdown;
			b.sock_side[f.peer_ino] = {k, 1};
			sp.files[gidx].sock = k;
			sp.files[gidx].side = 1;
		}
		sp.sockets.push_back(std::move(s));
	}
	return {};
}

bool queue_socket(SharedBuild &b, const QueueChunk &q)
{
	auto s = b.sock_side.find(q.ino);
	if (s == b.sock_side.end())
		return false;
	SharedSocket &sock = b.sp.sockets[s->second.first];
	auto &queue = sock.queue[s->second.second];
	if (sock.type == SOCK_STREAM) {
		if (queue.empty())
			queue.emplace_back();
		queue.back().insert(queue.back().end(), q.data.begin(), q.data.end());
		return true;
	}
	Bytes &m = b.partial[q.ino];
	m.insert(m.end(), q.data.begin(), q.data.end());
	if (q.eor)
		queue.push_back(std::move(m)), m.clear();
	return true;
}

Result<void> check_socket_queues(const SharedBuild &b)
{
	for (auto &[ino, m] : b.partial)
		if (!m.empty())
			return fail(EINVAL, "image: QUEUES: socket:[" + std::to_string(ino) +
						    "]: the last message has no end");
	return {};
}

Result<void> create_sockets(const SharedPlan &sp, SharedFds &out)
{
	for (const SharedSocket &s : sp.sockets) {
		const SharedFile &f0 = sp.files[s.file[0]];
		std::string name = f0.owner + ": " + f0.path;
		int sv[2];
		if (socketpair(int(s.family), int(s.type) | SOCK_CLOEXEC, 0, sv))
			return fail_errno(name + ": socketpair");
		UniqueFd side[2] = {UniqueFd(sv[0]), UniqueFd(sv[1])};
		// Side i's queue is sent from the other side.
		for (int i = 0; i < 2; i++) {
			const auto &q = s.queue[i];
			if (q.empty())
				continue;
			int from = side[1 - i].get();
			size_t total = 0;
			for (const Bytes &m : q)
				total += m.size() + 1024;
			int cur = 0;
			socklen_t sl = sizeof(cur);
			if (getsockopt(from, SOL_SOCKET, SO_SNDBUF, &cur, &sl) == 0 &&
			    size_t(cur) < 2 * total + 65536 && total < size_t(INT_MAX / 4)) {
				int want = int(2 * total + 65536);
				if (setsockopt(from, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)))
					setsockopt(from, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
			}
			std::string qname = s.file[i] >= 0
						    ? sp.files[s.file[i]].owner + ": " +
							      sp.files[s.file[i]].path
						    : name;
			for (const Bytes &m : q) {
				if (s.type == SOCK_STREAM) {
					AMBER_TRY(write_queue(from, m, true, qname));
					continue;
				}
				ssize_t n;
				while ((n = send(from, m.data(), m.size(),
						 MSG_DONTWAIT | MSG_NOSIGNAL)) < 0 &&
				       errno == EINTR)
					;
				if (n < 0)
					return fail_errno(qname + ": queueing a " +
							  std::to_string(m.size()) + "-byte message");
				if (size_t(n) != m.size())
					return fail(EMSGSIZE, qname + ": a " + std::to_string(m.size()) +
								      "-byte message was cut");
			}
		}
		for (int i = 0; i < 2; i++) {
			uint32_t sh = s.shutdown[i] & 3;
			if (!sh || s.file[i] < 0)
				continue;
			int how = sh == 1 ? SHUT_RD : sh == 2 ? SHUT_WR : SHUT_RDWR;
			if (shutdown(side[i].get(), how))
				return fail_errno(sp.files[s.file[i]].owner + ": shutdown");
		}
		for (int i = 0; i < 2; i++) {
			if (s.file[i] < 0)
				continue;	// the peer is gone: side[i] closes now
			const SharedFile &f = sp.files[s.file[i]];
			AMBER_TRY(set_fl(side[i].get(), f.flags, f.owner + ": " + f.path));
			out.files[s.file[i]] = std::move(side[i]);
		}
	}
	return {};
}

} // namespace amber
