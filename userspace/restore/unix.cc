// SPDX-License-Identifier: GPL-2.0
// UNIX sockets on restore. A pair of connected inodes both in the
// checkpoint (or one whose peer is gone) is a socketpair; a listener, an
// unconnected socket or a datagram socket connected one way is socket()ed
// alone; a socket that came from accept() is accepted again on its
// restored listener from its restored client. Names are bound again (a
// stale socket file that nobody is bound to is removed first, nothing
// else), each side's queue is sent from its peer (an unconnected
// datagram socket's from an unnamed socket), then the shutdowns and the
// options. The checkpoint side is the kernel's (FD_SOCK_*, FD_UNIX_*,
// FD_PEER_INO, FD_SHUTDOWN, QUEUE chunks); check_supported() refuses
// other families at checkpoint time.
#include <algorithm>
#include <array>
#include <cstddef>
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
#include <sys/un.h>
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

namespace {

// The name's path: the bytes before its first NUL.
std::string name_path(const Bytes &n)
{
	std::string p(n.begin(), n.end());
	return p.substr(0, p.find('\0'));
}

bool is_path_name(const Bytes &n)
{
	return !n.empty() && n[0];
}

// "NAME" for messages: a path, or @ and the abstract name.
std::string name_str(const Bytes &n)
{
	if (is_path_name(n))
		return name_path(n);
	std::string s;
	for (uint8_t c : n)
		s += c ? char(c) : '@';
	return s;
}

// Where f's bound name is bound from: "" for absolute paths and abstract
// names, else the directory its relative name resolves from.
Result<std::string> bind_dir(const FdInfo &f, const std::string &name)
{
	if (!is_path_name(f.unix_name) || f.unix_accepted)
		return std::string();
	std::string rel = name_path(f.unix_name);
	if (f.unix_path.empty())
		return fail(EINVAL, name + ": bound to " + rel + " without its file's path");
	if (rel[0] == '/')
		return std::string();
	if (f.unix_path.size() <= rel.size() + 1 ||
	    f.unix_path.compare(f.unix_path.size() - rel.size() - 1, std::string::npos,
				"/" + rel))
		return fail(EOPNOTSUPP, name + ": bound by the relative name " + rel +
						", which does not end its file's path " +
						f.unix_path);
	return f.unix_path.substr(0, f.unix_path.size() - rel.size());
}

struct SocketBuild {
	SharedBuild &b;
	std::map<uint64_t, const FdInfo *> info;
	std::map<int, uint64_t> sender_ino;	// Single socket -> its peer's inode

	std::string name(uint64_t ino) const
	{
		const SharedFile &f = b.sp.files[b.sock_file.at(ino)];
		return f.owner + ": " + f.path;
	}
	// Side i of socket k is ino's fd.
	Result<void> side(SharedSocket &s, int k, int i, uint64_t ino)
	{
		const FdInfo &f = *info.at(ino);
		int fidx = b.sock_file.at(ino);
		s.ino[i] = ino;
		s.file[i] = fidx;
		s.shutdown[i] = f.shutdown;
		s.info[i] = f;
		s.bind_dir[i] = AMBER_TRY(bind_dir(f, name(ino)));
		b.sock_side[ino] = {k, i};
		b.sp.files[fidx].sock = k;
		b.sp.files[fidx].side = i;
		return {};
	}
	Result<void> add(SharedSocket s, uint64_t ino0, uint64_t ino1)
	{
		int k = int(b.sp.sockets.size());
		const FdInfo &f = *info.at(ino0);
		s.family = f.sock_family;
		s.type = f.sock_type;
		AMBER_TRY(side(s, k, 0, ino0));
		if (ino1) {
			if (info.at(ino1)->sock_type != f.sock_type)
				return fail(EINVAL, name(ino0) + ": its peer " + name(ino1) +
							    " has another socket type");
			AMBER_TRY(side(s, k, 1, ino1));
		}
		b.sp.sockets.push_back(std::move(s));
		return {};
	}
	Result<void> accepted(uint64_t ino, const std::map<std::pair<uint32_t, Bytes>, uint64_t> &ls);
	Result<void> other(uint64_t ino);
	Result<void> embryos(uint64_t listener);
};

// The connections waiting in listener's backlog, in order: each client
// must be here (or closed: a stand-in connects for it).
Result<void> SocketBuild::embryos(uint64_t listener)
{
	const FdInfo &l = *info.at(listener);
	for (size_t i = 0; i < l.unix_embryos.size(); i++) {
		uint64_t c = l.unix_embryos[i];
		SharedSocket s;
		s.how = SocketHow::Embryo;
		s.listener = b.sock_side.at(listener).first;
		b.embryo_sock[{listener, uint32_t(i + 1)}] = int(b.sp.sockets.size());
		if (!c) {
			s.family = l.sock_family;
			s.type = l.sock_type;
			b.sp.sockets.push_back(std::move(s));
			continue;
		}
		if (!info.count(c))
			return fail(EOPNOTSUPP, name(listener) + ": a connection from socket:[" +
							std::to_string(c) +
							"], which is not in the checkpoint, waits in "
							"its accept backlog");
		if (b.sock_side.count(c))
			return fail(EINVAL, name(listener) + ": " + name(c) +
						    " waits in its accept backlog twice");
		AMBER_TRY(add(std::move(s), c, 0));
	}
	return {};
}

// Side 0 from accept() on its listener, side 1 its client (if here).
Result<void> SocketBuild::accepted(uint64_t ino,
				   const std::map<std::pair<uint32_t, Bytes>, uint64_t> &ls)
{
	const FdInfo &f = *info.at(ino);
	auto l = ls.find({f.sock_type, f.unix_name});
	if (l == ls.end())
		return fail(EOPNOTSUPP, name(ino) + ": accepted on " + name_str(f.unix_name) +
						", whose listener is not in the checkpoint");
	SharedSocket s;
	s.how = SocketHow::Accept;
	s.listener = b.sock_side.at(l->second).first;
	auto peer = info.find(f.peer_ino);
	// A client alive outside the checkpoint would see its connection
	// closed: only a closed one (no inode) gets a stand-in.
	if (f.peer_ino && peer == info.end())
		return fail(EOPNOTSUPP, name(ino) + ": its client socket:[" +
						std::to_string(f.peer_ino) +
						"] is not in the checkpoint");
	bool pair = f.peer_ino && peer->second->peer_ino == ino;
	return add(std::move(s), ino, pair ? f.peer_ino : 0);
}

// Everything but listeners and accepted sockets.
Result<void> SocketBuild::other(uint64_t ino)
{
	const FdInfo &f = *info.at(ino);
	SharedSocket s;
	if (f.unix_no_peer) {
		s.how = SocketHow::Single;
		return add(std::move(s), ino, 0);
	}
	auto peer = info.find(f.peer_ino);
	bool here = f.peer_ino && peer != info.end();
	if (here && peer->second->peer_ino == ino)
		return add(std::move(s), ino, f.peer_ino);	// a pair
	if (here || !f.unix_peer_name.empty()) {
		// Connected one way: only a datagram socket can be.
		if (f.sock_type != SOCK_DGRAM)
			return fail(EOPNOTSUPP, name(ino) + ": connected to " +
							(f.unix_peer_name.empty()
								 ? "socket:[" + std::to_string(f.peer_ino) + "]"
								 : name_str(f.unix_peer_name)) +
							", which is not in the checkpoint");
		if (f.unix_peer_name.empty())
			return fail(EOPNOTSUPP, name(ino) + ": connected to the unnamed " +
							name(f.peer_ino) + ", which is not connected back");
		const FdInfo *p = here ? peer->second : nullptr;
		if (!p && is_path_name(f.unix_peer_name) && f.unix_peer_name[0] != '/')
			return fail(EOPNOTSUPP, name(ino) + ": connected to the relative name " +
							name_str(f.unix_peer_name) +
							" outside the checkpoint");
		s.how = SocketHow::Single;
		s.connect_name = p && is_path_name(p->unix_name) ? Bytes(p->unix_path.begin(),
									 p->unix_path.end())
								 : f.unix_peer_name;
		if (is_path_name(s.connect_name) && s.connect_name.back())
			s.connect_name.push_back(0);
		if (p)
			sender_ino[int(b.sp.sockets.size())] = f.peer_ino;
		return add(std::move(s), ino, 0);
	}
	return add(std::move(s), ino, 0);	// its peer is gone: a lone pair
}

} // namespace

Result<void> pair_sockets(SharedBuild &b, const std::vector<ProcImage> &procs)
{
	SocketBuild sb{b, {}, {}};
	for (const ProcImage &pi : procs)
		for (const FdInfo &f : pi.ckpt->fds)
			if (f.file_id && f.type == AMBER_FD_SOCK && b.sock_file.count(f.ino))
				sb.info.emplace(f.ino, &f);
	// Listeners first (accepted sockets refer to them), then what was
	// accepted on them (and their clients), then the rest.
	std::map<std::pair<uint32_t, Bytes>, uint64_t> listeners;
	for (auto &[ino, fidx] : b.sock_file) {
		const FdInfo &f = *sb.info.at(ino);
		if (!f.unix_listening)
			continue;
		SharedSocket s;
		s.how = SocketHow::Single;
		AMBER_TRY(sb.add(std::move(s), ino, 0));
		listeners[{f.sock_type, f.unix_name}] = ino;
	}
	for (auto &[ino, fidx] : b.sock_file)
		if (!b.sock_side.count(ino) && sb.info.at(ino)->unix_accepted)
			AMBER_TRY(sb.accepted(ino, listeners));
	for (auto &[key, ino] : listeners)
		AMBER_TRY(sb.embryos(ino));
	for (auto &[ino, fidx] : b.sock_file)
		if (!b.sock_side.count(ino))
			AMBER_TRY(sb.other(ino));
	for (auto &[k, peer] : sb.sender_ino)
		b.sp.sockets[k].sender = b.sock_file.at(peer);
	return {};
}

bool queue_socket(SharedBuild &b, const QueueChunk &q)
{
	auto s = b.sock_side.find(q.ino);
	if (s == b.sock_side.end())
		return false;
	int k = s->second.first, side = s->second.second;
	if (q.embryo) {
		// A connection waiting on listener q.ino: what its client sent.
		auto e = b.embryo_sock.find({q.ino, q.embryo});
		if (e == b.embryo_sock.end())
			return false;
		k = e->second;
		side = 1;
	}
	SharedSocket &sock = b.sp.sockets[size_t(k)];
	auto &queue = sock.queue[side];
	// A stream's bytes concatenate, unless its buffers carried
	// credentials: then each ends with EOR.
	Bytes &m = sock.type == SOCK_STREAM ? b.stream_part[{k, side}] : b.partial[q.ino];
	m.insert(m.end(), q.data.begin(), q.data.end());
	if (q.eor) {
		queue.push_back(std::move(m)), m.clear();
		sock.creds[side].resize(queue.size() - 1);
		sock.creds[side].push_back({q.cred_pid, q.cred_uid, q.cred_gid});
		auto &rights = sock.rights[side];
		rights.resize(queue.size());
		for (const FdInfo &f : q.files)	// plan_flight() gave each one
			rights.back().push_back(b.file_by_id.at(f.file_id));
	}
	return true;
}

Result<void> check_socket_queues(SharedBuild &b)
{
	for (auto &[ino, m] : b.partial)
		if (!m.empty())
			return fail(EINVAL, "image: QUEUES: socket:[" + std::to_string(ino) +
						    "]: the last message has no end");
	for (auto &[ks, m] : b.stream_part) {
		if (m.empty())
			continue;
		SharedSocket &s = b.sp.sockets[size_t(ks.first)];
		s.queue[ks.second].push_back(std::move(m));
		m.clear();
	}
	// A lone socket's messages are sent to its name: from its peer when
	// it is connected (the peer must be here), else from an unnamed one.
	for (const SharedSocket &s : b.sp.sockets) {
		if (s.how != SocketHow::Single || s.queue[0].empty())
			continue;
		const SharedFile &f = b.sp.files[s.file[0]];
		if (!s.connect_name.empty() && s.sender < 0)
			return fail(EOPNOTSUPP, f.owner + ": " + f.path +
							": messages queued from its peer " +
							name_str(s.connect_name) +
							", which is not in the checkpoint");
		if (s.info[0].unix_name.empty())
			return fail(EOPNOTSUPP, f.owner + ": " + f.path +
							": messages queued in a socket without a name");
	}
	return {};
}

namespace {

struct SockAddr {
	sockaddr_un sun{};
	socklen_t len = 0;
};

// The address to bind n, or to send to / connect to it.
SockAddr sock_addr(const Bytes &n)
{
	SockAddr a;
	a.sun.sun_family = AF_UNIX;
	size_t len = std::min(n.size(), sizeof(a.sun.sun_path));
	memcpy(a.sun.sun_path, n.data(), len);
	a.len = socklen_t(offsetof(sockaddr_un, sun_path) + len);
	return a;
}

// The name to reach the socket of f by: its name, or for a relative one
// its file's absolute path.
Bytes reach_name(const FdInfo &f)
{
	if (!is_path_name(f.unix_name) || f.unix_name[0] == '/')
		return f.unix_name;
	Bytes n(f.unix_path.begin(), f.unix_path.end());
	n.push_back(0);
	return n;
}

// Removes the socket file at path if it is stale: a socket inode that no
// socket is bound to (a datagram probe then gets ECONNREFUSED; any other
// answer means someone is bound to it). Anything else stays.
Result<void> remove_stale(const std::string &path, const std::string &name)
{
	struct stat st;
	if (lstat(path.c_str(), &st)) {
		if (errno == ENOENT)
			return {};
		return fail_errno(name + ": " + path);
	}
	if (!S_ISSOCK(st.st_mode))
		return fail(EEXIST, name + ": " + path + " exists and is not a socket");
	UniqueFd probe(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
	if (!probe)
		return fail_errno(name + ": socket");
	SockAddr a = sock_addr(Bytes(path.begin(), path.end()));
	if (connect(probe.get(), reinterpret_cast<sockaddr *>(&a.sun), a.len) == 0 ||
	    errno != ECONNREFUSED)
		return fail(EADDRINUSE, name + ": " + path + " is in use by another socket");
	if (unlink(path.c_str()) && errno != ENOENT)
		return fail_errno(name + ": removing the stale socket file " + path);
	return {};
}

// Binds fd to f's name (dir: where a relative name resolves from), and
// gives its socket file the recorded owner and mode. The file is the one
// the name itself reaches (an absolute name's path may differ from its
// file's d_path through a symlink such as /var/run; a relative name's
// directory was taken from that d_path).
Result<void> bind_name(int fd, const FdInfo &f, const std::string &dir, const std::string &name)
{
	if (f.unix_name.empty() || f.unix_accepted)
		return {};
	SockAddr a = sock_addr(f.unix_name);
	bool path = is_path_name(f.unix_name);
	const std::string file = path ? dir + name_path(f.unix_name) : std::string();
	if (path)
		AMBER_TRY(remove_stale(file, name));
	UniqueFd cwd;
	if (!dir.empty()) {
		cwd = UniqueFd(open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
		if (!cwd || chdir(dir.c_str()))
			return fail_errno(name + ": " + dir);
	}
	int err = bind(fd, reinterpret_cast<sockaddr *>(&a.sun), a.len) ? errno : 0;
	if (cwd && fchdir(cwd.get()))
		return fail_errno(name + ": going back to the working directory");
	if (err)
		return fail(err, name + ": binding " + name_str(f.unix_name) + ": " +
					 strerror(err));
	if (!path)
		return {};
	struct stat st;
	if (lstat(file.c_str(), &st) || !S_ISSOCK(st.st_mode))
		return fail(EEXIST, name + ": " + file + " is not the socket just bound");
	if (fchownat(AT_FDCWD, file.c_str(), f.unix_file_uid, f.unix_file_gid,
		     AT_SYMLINK_NOFOLLOW) ||
	    fchmodat(AT_FDCWD, file.c_str(), f.unix_file_mode & 07777, 0))
		return fail_errno(name + ": " + file);
	return {};
}

Result<void> set_int(int fd, int opt, int v, const std::string &name, const char *what)
{
	if (setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v)))
		return fail_errno(name + ": setsockopt(" + what + ")");
	return {};
}

Result<void> set_timeo(int fd, int opt, uint64_t us, const std::string &name, const char *what)
{
	if (!us)
		return {};
	timeval tv{time_t(us / 1000000), suseconds_t(us % 1000000)};
	if (setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)))
		return fail_errno(name + ": setsockopt(" + what + ")");
	return {};
}

// A buffer size the program set (the lock bit): set again, exactly.
Result<void> set_buf(int fd, int opt, uint32_t want, const std::string &name, const char *what)
{
	AMBER_TRY(set_int(fd, opt, int(want / 2), name, what));
	int got = 0;
	socklen_t len = sizeof(got);
	int get = opt == SO_RCVBUFFORCE ? SO_RCVBUF : SO_SNDBUF;
	if (getsockopt(fd, SOL_SOCKET, get, &got, &len))
		return fail_errno(name + ": getsockopt");
	if (uint32_t(got) != want)
		return fail(EINVAL, name + ": " + what + " came back as " + std::to_string(got) +
					    ", not " + std::to_string(want));
	return {};
}

// The options of f, set after its queue (SO_PASSCRED would have attached
// the tool's credentials to the messages sent in).
Result<void> set_options(int fd, const FdInfo &f, const std::string &name, bool passcred = true)
{
	if (!f.sock_opts)
		return {};
	if (f.sock_userlocks & 2)	// SOCK_RCVBUF_LOCK
		AMBER_TRY(set_buf(fd, SO_RCVBUFFORCE, f.sock_rcvbuf, name, "SO_RCVBUF"));
	if (f.sock_userlocks & 1)	// SOCK_SNDBUF_LOCK
		AMBER_TRY(set_buf(fd, SO_SNDBUFFORCE, f.sock_sndbuf, name, "SO_SNDBUF"));
	if (f.sock_rcvlowat != 1)
		AMBER_TRY(set_int(fd, SO_RCVLOWAT, int(f.sock_rcvlowat), name, "SO_RCVLOWAT"));
	AMBER_TRY(set_timeo(fd, SO_RCVTIMEO, f.sock_rcvtimeo, name, "SO_RCVTIMEO"));
	AMBER_TRY(set_timeo(fd, SO_SNDTIMEO, f.sock_sndtimeo, name, "SO_SNDTIMEO"));
	if (f.sock_passcred && passcred)
		AMBER_TRY(set_int(fd, SO_PASSCRED, 1, name, "SO_PASSCRED"));
	if (f.sock_passsec)
		AMBER_TRY(set_int(fd, SO_PASSSEC, 1, name, "SO_PASSSEC"));
	return {};
}

// Raises from's send buffer to hold q (the program's own size comes back
// with set_options()).
void make_room(int from, const std::vector<Bytes> &q)
{
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
}

// Sends m from from (to a, when given) with c's credentials
// (SCM_CREDENTIALS; the tool may name another process's pid, which must
// exist) and the files fds (SCM_RIGHTS). A stream's message may go in
// several parts, each with the credentials, the first with the files.
Result<void> send_msg(int from, uint32_t type, const Bytes &m, const MsgCred &c,
		      const std::vector<int> &fds, SockAddr *a, const std::string &qname)
{
	std::vector<char> cbuf(CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * fds.size()));
	size_t off = 0;
	bool first = true;
	do {
		iovec iov = {const_cast<uint8_t *>(m.data()) + off, m.size() - off};
		msghdr h{};
		h.msg_iov = &iov;
		h.msg_iovlen = 1;
		if (a) {
			h.msg_name = &a->sun;
			h.msg_namelen = a->len;
		}
		std::fill(cbuf.begin(), cbuf.end(), 0);
		h.msg_control = cbuf.data();
		h.msg_controllen = cbuf.size();
		size_t used = 0;
		cmsghdr *cm = CMSG_FIRSTHDR(&h);
		if (c.pid) {
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_CREDENTIALS;
			cm->cmsg_len = CMSG_LEN(sizeof(ucred));
			ucred u = {pid_t(c.pid), uid_t(c.uid), gid_t(c.gid)};
			memcpy(CMSG_DATA(cm), &u, sizeof(u));
			used += CMSG_SPACE(sizeof(ucred));
			cm = CMSG_NXTHDR(&h, cm);
		}
		if (first && !fds.empty()) {
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
			memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
			used += CMSG_SPACE(sizeof(int) * fds.size());
		}
		h.msg_controllen = used;
		if (!used)
			h.msg_control = nullptr;
		ssize_t n = sendmsg(from, &h, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		std::string what = std::to_string(m.size()) + "-byte message" +
				   (c.pid ? " with the credentials of pid " + std::to_string(c.pid) +
						    " uid " + std::to_string(c.uid) + " gid " +
						    std::to_string(c.gid)
					  : "") +
				   (fds.empty() ? "" : " passing " + std::to_string(fds.size()) +
							       " files (SCM_RIGHTS)");
		if (n < 0)
			return fail_errno(qname + ": queueing a " + what);
		if (type != SOCK_STREAM && size_t(n) != m.size())
			return fail(EMSGSIZE, qname + ": a " + what + " was cut");
		off += size_t(n);
		first = false;
	} while (off < m.size());
	return {};
}

// Sends q from from: one write for a stream, one message each else (to
// `to` when given, for a socket from is not connected to); a message with
// credentials (creds, per q) or files (rights, per q: indexes into files)
// goes with them.
Result<void> send_queue(int from, uint32_t type, const std::vector<Bytes> &q,
			const std::vector<MsgCred> &creds,
			const std::vector<std::vector<int>> &rights,
			const std::vector<UniqueFd> &files, const Bytes *to,
			const std::string &qname)
{
	if (q.empty())
		return {};
	make_room(from, q);
	SockAddr a = to ? sock_addr(*to) : SockAddr();
	for (size_t i = 0; i < q.size(); i++) {
		MsgCred c = i < creds.size() ? creds[i] : MsgCred{};
		std::vector<int> fds;
		for (int idx : i < rights.size() ? rights[i] : std::vector<int>()) {
			if (size_t(idx) >= files.size() || !files[size_t(idx)])
				return fail(EINVAL, qname + ": message " + std::to_string(i) +
							    " passes a file that was not created");
			fds.push_back(files[size_t(idx)].get());
		}
		if (type == SOCK_STREAM && !c.pid && fds.empty())
			AMBER_TRY(write_queue(from, q[i], true, qname));
		else
			AMBER_TRY(send_msg(from, type, q[i], c, fds, to ? &a : nullptr, qname));
	}
	return {};
}

bool has_rights(const std::vector<std::vector<int>> &rights)
{
	return std::any_of(rights.begin(), rights.end(),
			   [](const std::vector<int> &r) { return !r.empty(); });
}

// Sends side's queue of s from from now, or, when a message carries
// credentials or files, once the processes (or the descriptions) exist
// (out.deferred): true then.
Result<bool> send_or_defer(int from, const SharedSocket &s, int side, const Bytes *to,
			   const std::string &qname, SharedFds &out)
{
	if (!has_creds(s.creds[side]) && !has_rights(s.rights[side])) {
		AMBER_TRY(send_queue(from, s.type, s.queue[side], s.creds[side], {}, {}, to,
				     qname));
		return false;
	}
	DeferredQueue d;
	d.from = UniqueFd(fcntl(from, F_DUPFD_CLOEXEC, 0));
	if (!d.from)
		return fail_errno(qname + ": dup");
	d.type = s.type;
	d.msgs = s.queue[side];
	d.creds = s.creds[side];
	d.rights = s.rights[side];
	d.to_name = to;
	if (to)
		d.to = *to;
	d.name = qname;
	out.deferred.push_back(std::move(d));
	return true;
}

using Made = std::vector<std::array<UniqueFd, 2>>;

Result<void> defer_setup(SharedFds &out, int fd, int how, bool passcred, const std::string &name)
{
	DeferredSetup d;
	d.fd = UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 0));
	if (!d.fd)
		return fail_errno(name + ": dup");
	d.shutdown = how;
	d.passcred = passcred;
	d.name = name;
	out.deferred_setup.push_back(std::move(d));
	return {};
}

std::string side_name(const SharedPlan &sp, const SharedSocket &s, int i)
{
	int idx = s.file[i] >= 0 ? s.file[i] : s.file[1 - i];
	if (idx < 0)	// a closed client waiting on a listener: the listener's
		idx = sp.sockets[size_t(s.listener)].file[0];
	const SharedFile &f = sp.files[size_t(idx)];
	return f.owner + ": " + f.path;
}

// Pairs and lone sockets, bound (and listening).
Result<void> make_sockets(const SharedPlan &sp, Made &made)
{
	for (size_t k = 0; k < sp.sockets.size(); k++) {
		const SharedSocket &s = sp.sockets[k];
		std::string name = side_name(sp, s, 0);
		if (s.how == SocketHow::Accept || s.how == SocketHow::Embryo)
			continue;
		if (s.how == SocketHow::Single) {
			made[k][0] = UniqueFd(socket(int(s.family), int(s.type) | SOCK_CLOEXEC, 0));
			if (!made[k][0])
				return fail_errno(name + ": socket");
		} else {
			int sv[2];
			if (socketpair(int(s.family), int(s.type) | SOCK_CLOEXEC, 0, sv))
				return fail_errno(name + ": socketpair");
			made[k][0] = UniqueFd(sv[0]);
			made[k][1] = UniqueFd(sv[1]);
		}
		for (int i = 0; i < 2; i++)
			if (made[k][i] && s.file[i] >= 0)
				AMBER_TRY(bind_name(made[k][i].get(), s.info[i], s.bind_dir[i],
						    side_name(sp, s, i)));
		if (s.info[0].unix_listening &&
		    listen(made[k][0].get(), int(std::min<uint32_t>(s.info[0].unix_backlog, INT_MAX))))
			return fail_errno(name + ": listen");
	}
	return {};
}

// Connections accepted on a listener: the client connects, the listener
// accepts (its backlog is empty: nothing else is waiting).
Result<void> accept_sockets(const SharedPlan &sp, Made &made)
{
	for (size_t k = 0; k < sp.sockets.size(); k++) {
		const SharedSocket &s = sp.sockets[k];
		if (s.how != SocketHow::Accept)
			continue;
		std::string name = side_name(sp, s, 0);
		const SharedSocket &l = sp.sockets[size_t(s.listener)];
		int lfd = made[size_t(s.listener)][0].get();
		UniqueFd c(socket(int(s.family), int(s.type) | SOCK_CLOEXEC, 0));
		if (!c)
			return fail_errno(name + ": socket");
		if (s.file[1] >= 0)
			AMBER_TRY(bind_name(c.get(), s.info[1], s.bind_dir[1], side_name(sp, s, 1)));
		SockAddr a = sock_addr(reach_name(l.info[0]));
		if (connect(c.get(), reinterpret_cast<sockaddr *>(&a.sun), a.len))
			return fail_errno(name + ": connecting to its listener " +
					  name_str(l.info[0].unix_name));
		UniqueFd acc(accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
		if (!acc)
			return fail_errno(name + ": accept");
		made[k][0] = std::move(acc);
		made[k][1] = std::move(c);
	}
	return {};
}

// Connections waiting in a backlog, after the accepted ones: the client
// (or a stand-in) connects and sends what the connection held.
Result<void> embryo_sockets(const SharedPlan &sp, Made &made, SharedFds &out,
			    std::set<size_t> &late)
{
	for (size_t k = 0; k < sp.sockets.size(); k++) {
		const SharedSocket &s = sp.sockets[k];
		if (s.how != SocketHow::Embryo)
			continue;
		std::string name = side_name(sp, s, 0);
		const SharedSocket &l = sp.sockets[size_t(s.listener)];
		UniqueFd c(socket(int(s.family), int(s.type) | SOCK_CLOEXEC, 0));
		if (!c)
			return fail_errno(name + ": socket");
		if (s.file[0] >= 0)
			AMBER_TRY(bind_name(c.get(), s.info[0], s.bind_dir[0], name));
		SockAddr a = sock_addr(reach_name(l.info[0]));
		if (connect(c.get(), reinterpret_cast<sockaddr *>(&a.sun), a.len))
			return fail_errno(name + ": connecting to " +
					  name_str(l.info[0].unix_name));
		if (AMBER_TRY(send_or_defer(c.get(), s, 1, nullptr, name, out)))
			late.insert(k);
		made[k][0] = std::move(c);
	}
	return {};
}

} // namespace

bool has_creds(const std::vector<MsgCred> &creds)
{
	return std::any_of(creds.begin(), creds.end(), [](const MsgCred &c) { return c.pid; });
}

Result<void> send_deferred(SharedFds &fds)
{
	for (DeferredQueue &d : fds.deferred)
		AMBER_TRY(send_queue(d.from.get(), d.type, d.msgs, d.creds, d.rights, fds.files,
				     d.to_name ? &d.to : nullptr, d.name));
	for (DeferredSetup &d : fds.deferred_setup) {
		if (d.shutdown >= 0 && shutdown(d.fd.get(), d.shutdown))
			return fail_errno(d.name + ": shutdown");
		if (d.passcred)
			AMBER_TRY(set_int(d.fd.get(), SO_PASSCRED, 1, d.name, "SO_PASSCRED"));
	}
	fds.deferred.clear();
	fds.deferred_setup.clear();
	return {};
}

Result<void> create_sockets(const SharedPlan &sp, SharedFds &out)
{
	Made made(sp.sockets.size());
	// Sockets with a queue sent late (send_or_defer()): their shutdowns
	// and SO_PASSCRED come after it.
	std::set<size_t> late;
	AMBER_TRY(make_sockets(sp, made));
	AMBER_TRY(accept_sockets(sp, made));
	AMBER_TRY(embryo_sockets(sp, made, out, late));
	// Datagram sockets connected one way, once every name is bound.
	for (size_t k = 0; k < sp.sockets.size(); k++) {
		const SharedSocket &s = sp.sockets[k];
		if (s.connect_name.empty())
			continue;
		SockAddr a = sock_addr(s.connect_name);
		if (connect(made[k][0].get(), reinterpret_cast<sockaddr *>(&a.sun), a.len))
			return fail_errno(side_name(sp, s, 0) + ": connecting to " +
					  name_str(s.connect_name));
	}
	// Queues: side i's from side 1 - i; a lone socket's to its name.
	for (size_t k = 0; k < sp.sockets.size(); k++) {
		const SharedSocket &s = sp.sockets[k];
		if (s.how == SocketHow::Embryo)
			continue;	// sent when it connected
		if (s.how != SocketHow::Single) {
			for (int i = 0; i < 2; i++)
				if (AMBER_TRY(send_or_defer(made[k][1 - i].get(), s, i, nullptr,
							    side_name(sp, s, i), out)))
					late.insert(k);
			continue;
		}
		if (s.queue[0].empty())
			continue;
		Bytes to = reach_name(s.info[0]);
		UniqueFd anon;
		int from;
		int from_sock = -1;
		if (s.sender >= 0) {
			const SharedFile &pf = sp.files[size_t(s.sender)];
			from = made[size_t(pf.sock)][pf.side].get();
			from_sock = pf.sock;
		} else {
			anon = UniqueFd(socket(int(s.family), int(s.type) | SOCK_CLOEXEC, 0));
			if (!anon)
				return fail_errno(side_name(sp, s, 0) + ": socket");
			from = anon.get();
		}
		if (AMBER_TRY(send_or_defer(from, s, 0, &to, side_name(sp, s, 0), out))) {
			late.insert(k);
			if (from_sock >= 0)
				late.insert(size_t(from_sock));
		}
	}
	for (size_t k = 0; k < sp.sockets.size(); k++) {
		const SharedSocket &s = sp.sockets[k];
		for (int i = 0; i < 2; i++) {
			uint32_t sh = s.shutdown[i] & 3;
			if (!sh || s.file[i] < 0)
				continue;
			int how = sh == 1 ? SHUT_RD : sh == 2 ? SHUT_WR : SHUT_RDWR;
			if (late.count(k)) {
				AMBER_TRY(defer_setup(out, made[k][i].get(), how, false,
						      side_name(sp, s, i)));
				continue;
			}
			if (shutdown(made[k][i].get(), how))
				return fail_errno(side_name(sp, s, i) + ": shutdown");
		}
	}
	for (size_t k = 0; k < sp.sockets.size(); k++) {
		const SharedSocket &s = sp.sockets[k];
		for (int i = 0; i < 2; i++) {
			if (s.file[i] < 0)
				continue;	// a stand-in: closes now
			const SharedFile &f = sp.files[size_t(s.file[i])];
			std::string name = f.owner + ": " + f.path;
			bool passcred_late = late.count(k) && s.info[i].sock_opts &&
					     s.info[i].sock_passcred;
			AMBER_TRY(set_options(made[k][i].get(), s.info[i], name, !passcred_late));
			if (passcred_late)
				AMBER_TRY(defer_setup(out, made[k][i].get(), -1, true, name));
			AMBER_TRY(set_fl(made[k][i].get(), f.flags, name));
		}
	}
	for (size_t k = 0; k < sp.sockets.size(); k++)
		for (int i = 0; i < 2; i++)
			if (sp.sockets[k].file[i] >= 0)
				out.files[size_t(sp.sockets[k].file[i])] = std::move(made[k][i]);
	return {};
}

} // namespace amber
