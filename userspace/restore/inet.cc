// SPDX-License-Identifier: GPL-2.0
// TCP and UDP sockets over IPv4 and IPv6 on restore (kmod/inet.c captures
// them). A TCP connection is rebuilt with the kernel's TCP_REPAIR
// interface (CAP_NET_ADMIN): sequence numbers before connect() (which then
// sends nothing), the negotiated options, the receive queue and the sent
// part of the send queue as they were, the window, then repair off (a
// window probe) and the unsent part written normally. A listening socket
// is bound in repair mode, which ignores the TIME_WAIT and FIN_WAIT
// leftovers of the killed process on its port. Connections the checkpoint
// held (--kill) are released once their socket exists
// (AMBER_CMD_NET_RELEASE). A listener's waiting connections are rebuilt
// like established ones, left in repair mode and handed to the module
// (AMBER_CMD_TCP_GRAFT), which queues them on the listener in their order:
// no system call puts a connection into an accept queue. UDP sockets are
// bound and connected again;
// their queued datagrams are not kept (UDP may lose datagrams).
//
// After a crash (a checkpoint that did not hold its connections), the
// peer has seen the end of the connection: if its 4-tuple is still taken,
// or it cannot be rebuilt, the fd gets a TCP socket that reports the reset
// (ECONNRESET, then end of file) as the program would have seen after the
// crash, and a warning names it; otherwise the rebuilt connection's window
// probe draws the peer's RST, with the same effect.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/amber.h>

#include "common/io.h"
#include "restore/core.h"

namespace amber {

namespace {

// Not in every libc's netinet/tcp.h.
constexpr int kRepairOn = 1, kRepairOff = 0, kRepairOffNoProbe = -1;

bool tcp_conn_state(uint32_t st)
{
	return st == TCP_ESTABLISHED || st == TCP_FIN_WAIT1 || st == TCP_FIN_WAIT2 ||
	       st == TCP_CLOSE_WAIT || st == TCP_LAST_ACK || st == TCP_CLOSING;
}

// Our FIN is in the sequence space (write_seq counts it).
bool fin_sent(uint32_t st)
{
	return st == TCP_FIN_WAIT1 || st == TCP_FIN_WAIT2 || st == TCP_LAST_ACK ||
	       st == TCP_CLOSING;
}

// The peer's FIN was received (rcv_nxt counts it).
bool fin_rcvd(uint32_t st)
{
	return st == TCP_CLOSE_WAIT || st == TCP_LAST_ACK || st == TCP_CLOSING;
}

// Where each queue starts: the sequence numbers without the FINs.
uint32_t send_seq(const SharedInet &s)
{
	return s.info.write_seq - fin_sent(s.info.state) - uint32_t(s.sendq.size());
}

uint32_t recv_seq(const SharedInet &s)
{
	return s.info.rcv_nxt - fin_rcvd(s.info.state) - uint32_t(s.recvq.size());
}

struct SockAddr {
	sockaddr_storage ss{};
	socklen_t len = 0;
};

SockAddr make_addr(uint32_t family, const Bytes &addr, uint32_t port)
{
	SockAddr a;
	if (family == AF_INET) {
		auto *in = reinterpret_cast<sockaddr_in *>(&a.ss);
		in->sin_family = AF_INET;
		in->sin_port = htons(uint16_t(port));
		std::memcpy(&in->sin_addr, addr.data(), 4);
		a.len = sizeof(*in);
	} else {
		auto *in6 = reinterpret_cast<sockaddr_in6 *>(&a.ss);
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(uint16_t(port));
		std::memcpy(&in6->sin6_addr, addr.data(), 16);
		a.len = sizeof(*in6);
	}
	return a;
}

std::string addr_text(uint32_t family, const Bytes &addr, uint32_t port)
{
	char buf[INET6_ADDRSTRLEN] = "?";
	inet_ntop(int(family), addr.data(), buf, sizeof(buf));
	return family == AF_INET6 ? "[" + std::string(buf) + "]:" + std::to_string(port)
				  : std::string(buf) + ":" + std::to_string(port);
}

Result<void> setopt(int fd, int level, int opt, int val, const std::string &name,
		    const char *what)
{
	if (setsockopt(fd, level, opt, &val, sizeof(val)))
		return fail_errno(name + ": " + what);
	return {};
}

// The buffer sizes the program set (a queue above them just waits). The
// kernel doubles what is asked: ask half of what it had.
Result<void> set_buffers(int fd, const InetInfo &in, const std::string &name)
{
	if (in.sndbuf)
		AMBER_TRY(setopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, int(in.sndbuf / 2), name,
				 "SO_SNDBUFFORCE"));
	if (in.rcvbuf)
		AMBER_TRY(setopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, int(in.rcvbuf / 2), name,
				 "SO_RCVBUFFORCE"));
	return {};
}

// What the program set on the socket itself, before bind().
Result<void> set_bind_options(int fd, const SharedInet &s, const std::string &name)
{
	const InetInfo &in = s.info;
	AMBER_TRY(setopt(fd, SOL_SOCKET, SO_REUSEADDR, in.reuseaddr, name, "SO_REUSEADDR"));
	AMBER_TRY(setopt(fd, SOL_SOCKET, SO_REUSEPORT, in.reuseport, name, "SO_REUSEPORT"));
	if (s.family == AF_INET6)
		AMBER_TRY(setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, in.v6only, name, "IPV6_V6ONLY"));
	if (in.mark)
		AMBER_TRY(setopt(fd, SOL_SOCKET, SO_MARK, int(in.mark), name, "SO_MARK"));
	if (in.priority)
		AMBER_TRY(setopt(fd, SOL_SOCKET, SO_PRIORITY, int(in.priority), name,
				 "SO_PRIORITY"));
	AMBER_TRY(set_buffers(fd, in, name));
	if (in.linger_on) {
		linger l{1, int(in.linger)};
		if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)))
			return fail_errno(name + ": SO_LINGER");
	}
	if (in.keepalive)
		AMBER_TRY(setopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1, name, "SO_KEEPALIVE"));
	return {};
}

// TCP options that may be set at any time.
Result<void> set_tcp_options(int fd, const InetInfo &in, const std::string &name)
{
	if (in.keepidle)
		AMBER_TRY(setopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, int(in.keepidle), name,
				 "TCP_KEEPIDLE"));
	if (in.keepintvl)
		AMBER_TRY(setopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, int(in.keepintvl), name,
				 "TCP_KEEPINTVL"));
	if (in.keepcnt)
		AMBER_TRY(setopt(fd, IPPROTO_TCP, TCP_KEEPCNT, int(in.keepcnt), name,
				 "TCP_KEEPCNT"));
	if (in.user_timeout)
		AMBER_TRY(setopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, int(in.user_timeout), name,
				 "TCP_USER_TIMEOUT"));
	if (in.nodelay)
		AMBER_TRY(setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1, name, "TCP_NODELAY"));
	if (in.cork)
		AMBER_TRY(setopt(fd, IPPROTO_TCP, TCP_CORK, 1, name, "TCP_CORK"));
	if (!in.congestion.empty() &&
	    setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, in.congestion.data(),
		       socklen_t(in.congestion.size())))
		return fail_errno(name + ": TCP_CONGESTION " + in.congestion);
	return {};
}

// Binds in repair mode: the port's leftovers of the killed process (TIME_WAIT,
// FIN_WAIT) do not stand in the way. Repair mode stays on.
Result<void> repair_bind(int fd, const SharedInet &s, const Bytes &addr, const std::string &name)
{
	AMBER_TRY(setopt(fd, IPPROTO_TCP, TCP_REPAIR, kRepairOn, name, "TCP_REPAIR"));
	SockAddr a = make_addr(s.family, addr, s.info.sport);
	if (bind(fd, reinterpret_cast<sockaddr *>(&a.ss), a.len))
		return fail_errno(name + ": bind to " + addr_text(s.family, addr, s.info.sport));
	return {};
}

// Repair off without a probe, then SO_REUSEADDR as it was (repair mode
// forced it, leaving it resets it).
Result<void> repair_off(int fd, const InetInfo &in, int how, const std::string &name)
{
	AMBER_TRY(setopt(fd, IPPROTO_TCP, TCP_REPAIR, how, name, "TCP_REPAIR off"));
	return setopt(fd, SOL_SOCKET, SO_REUSEADDR, in.reuseaddr, name, "SO_REUSEADDR");
}

Bytes any_addr(const SharedInet &s)
{
	return Bytes(s.family == AF_INET ? 4 : 16, 0);
}

Result<UniqueFd> new_socket(const SharedInet &s, int type, const std::string &name)
{
	int fd = socket(int(s.family), type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail_errno(name + ": socket");
	return UniqueFd(fd);
}

// Room in the socket's buffer (SO_SNDBUF or SO_RCVBUF) for bytes queued
// at once: raised with the FORCE option (which locks it). Only when the
// queue did not fit: a buffer the kernel tunes stays tuned otherwise. The
// caller sets a size the program chose back afterwards.
Result<void> make_room(int fd, int opt, int force, size_t bytes, const std::string &name)
{
	int cur = 0;
	socklen_t l = sizeof(cur);
	if (getsockopt(fd, SOL_SOCKET, opt, &cur, &l))
		return fail_errno(name + ": getsockopt");
	const size_t want = std::min<size_t>(2 * bytes + 65536, INT_MAX / 2);
	if (size_t(cur) >= want)
		return fail(ENOSPC, name + ": " + std::to_string(bytes) +
					    " queued bytes do not fit in a buffer of " +
					    std::to_string(cur));
	return setopt(fd, SOL_SOCKET, force, int(want / 2), name, "making room for its queue");
}

// Sends data into the socket: with queue >= 0 into that repair queue
// (TCP_REPAIR_QUEUE), else as the program writes. A buffer too small for
// it is raised once (make_room()).
Result<void> put_queue(int fd, int queue, ByteView data, const std::string &name,
		       const char *what)
{
	const bool recv = queue == TCP_RECV_QUEUE;
	bool raised = false;
	if (queue >= 0)
		AMBER_TRY(setopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue, name,
				 "TCP_REPAIR_QUEUE"));
	for (size_t off = 0; off < data.size();) {
		size_t n = std::min<size_t>(data.size() - off, 65536);
		ssize_t r = send(fd, data.data() + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == ENOMEM || errno == EAGAIN) && !raised) {
			raised = true;
			AMBER_TRY(make_room(fd, recv ? SO_RCVBUF : SO_SNDBUF,
					    recv ? SO_RCVBUFFORCE : SO_SNDBUFFORCE, data.size(),
					    name));
			continue;
		}
		if (r <= 0)
			return fail_errno(name + ": putting back " + std::to_string(data.size()) +
					  " bytes of its " + what + " queue");
		off += size_t(r);
	}
	return {};
}

struct TcpRepairOpt {
	uint32_t code, val;
};

// The peer's FIN as received (AMBER_CMD_TCP_PEER_FIN): no repair option does it.
Result<void> peer_fin(int fd, const std::string &name)
{
	NetlinkClient nl = AMBER_TRY(connect_module());
	AttrWriter w;
	w.put_u32(AMBER_A_SOCK_FD, uint32_t(fd));
	auto r = nl.transact(AMBER_CMD_TCP_PEER_FIN, w.view(), 10000);
	if (!r)
		return wrap(r.error(), name + ": its peer's FIN: ");
	return {};
}

// A connection that ended: the reset the program would have seen after a
// crash, on a socket of the same family and type.
Result<UniqueFd> reset_socket(const SharedInet &s, const std::string &name)
{
	UniqueFd lst = AMBER_TRY(new_socket(s, SOCK_STREAM, name));
	Bytes lo = any_addr(s);
	if (s.family == AF_INET)
		lo = {127, 0, 0, 1};
	else
		lo[15] = 1;
	SockAddr a = make_addr(s.family, lo, 0);
	if (bind(lst.get(), reinterpret_cast<sockaddr *>(&a.ss), a.len) || listen(lst.get(), 1) ||
	    getsockname(lst.get(), reinterpret_cast<sockaddr *>(&a.ss), &a.len))
		return fail_errno(name + ": a loopback listener for the reset");
	UniqueFd c = AMBER_TRY(new_socket(s, SOCK_STREAM, name));
	if (connect(c.get(), reinterpret_cast<sockaddr *>(&a.ss), a.len))
		return fail_errno(name + ": connecting for the reset");
	int acc = accept4(lst.get(), nullptr, nullptr, SOCK_CLOEXEC);
	if (acc < 0)
		return fail_errno(name + ": accepting for the reset");
	UniqueFd peer(acc);
	linger l{1, 0};
	setsockopt(peer.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	peer.reset();	// RST
	pollfd p{c.get(), POLLERR | POLLHUP, 0};
	if (poll(&p, 1, 2000) != 1)
		return fail(ETIMEDOUT, name + ": the reset did not arrive");
	return c;
}

// An established connection, back through TCP_REPAIR; with @graft left in
// repair mode for AMBER_CMD_TCP_GRAFT, which leaves it.
Result<UniqueFd> create_tcp_conn(const SharedInet &s, const std::string &name, bool graft = false)
{
	const InetInfo &in = s.info;
	UniqueFd fd = AMBER_TRY(new_socket(s, SOCK_STREAM, name));
	int f = fd.get();
	AMBER_TRY(set_bind_options(f, s, name));
	AMBER_TRY(repair_bind(f, s, in.src, name));
	AMBER_TRY(setopt(f, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, name,
			 "TCP_REPAIR_QUEUE"));
	AMBER_TRY(setopt(f, IPPROTO_TCP, TCP_QUEUE_SEQ, int(send_seq(s)), name, "TCP_QUEUE_SEQ"));
	AMBER_TRY(setopt(f, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, name,
			 "TCP_REPAIR_QUEUE"));
	AMBER_TRY(setopt(f, IPPROTO_TCP, TCP_QUEUE_SEQ, int(recv_seq(s)), name, "TCP_QUEUE_SEQ"));
	if (in.tstamp)
		AMBER_TRY(setopt(f, IPPROTO_TCP, TCP_TIMESTAMP, int(in.timestamp), name,
				 "TCP_TIMESTAMP"));
	SockAddr peer = make_addr(s.family, in.dst, in.dport);
	if (connect(f, reinterpret_cast<sockaddr *>(&peer.ss), peer.len))
		return fail_errno(name + ": connect (repair) to " +
				  addr_text(s.family, in.dst, in.dport));

	std::vector<TcpRepairOpt> opts = {{TCPOPT_MAXSEG, in.mss}};
	if (in.wscale_ok)
		opts.push_back({TCPOPT_WINDOW, in.snd_wscale | (in.rcv_wscale << 16)});
	if (in.sack)
		opts.push_back({TCPOPT_SACK_PERMITTED, 0});
	if (in.tstamp)
		opts.push_back({TCPOPT_TIMESTAMP, 0});
	if (setsockopt(f, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts.data(),
		       socklen_t(opts.size() * sizeof(opts[0]))))
		return fail_errno(name + ": TCP_REPAIR_OPTIONS");

	AMBER_TRY(put_queue(f, TCP_RECV_QUEUE, s.recvq, name, "receive"));
	const size_t sent = std::min<size_t>(s.sendq.size(), in.snd_nxt - send_seq(s));
	AMBER_TRY(put_queue(f, TCP_SEND_QUEUE, ByteView(s.sendq).subspan(0, sent), name, "send"));
	// Never sent: written as the program wrote it (before our FIN, if any).
	if (sent < s.sendq.size()) {
		AMBER_TRY(setopt(f, IPPROTO_TCP, TCP_REPAIR, kRepairOffNoProbe, name,
				 "TCP_REPAIR off"));
		AMBER_TRY(put_queue(f, -1, ByteView(s.sendq).subspan(sent), name, "unsent"));
		AMBER_TRY(setopt(f, IPPROTO_TCP, TCP_REPAIR, kRepairOn, name, "TCP_REPAIR"));
	}
	// The FINs, in the order they came: CLOSING is ours first.
	if (fin_rcvd(in.state) && in.state != TCP_CLOSING)
		AMBER_TRY(peer_fin(f, name));
	if (fin_sent(in.state)) {
		// Queued as sent; the peer acknowledges it (again) when it comes again.
		AMBER_TRY(setopt(f, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, name,
				 "TCP_REPAIR_QUEUE"));
		if (shutdown(f, SHUT_WR))
			return fail_errno(name + ": shutdown (its FIN)");
	}
	if (in.state == TCP_CLOSING)
		AMBER_TRY(peer_fin(f, name));
	tcp_repair_window w{in.snd_wl1, in.snd_wnd, in.max_window, in.rcv_wnd, in.rcv_wup};
	if (setsockopt(f, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w)))
		return fail_errno(name + ": TCP_REPAIR_WINDOW");
	AMBER_TRY(set_tcp_options(f, in, name));
	if (graft) {
		AMBER_TRY(set_buffers(f, in, name));
		return fd;
	}
	AMBER_TRY(repair_off(f, in, kRepairOff, name));
	// shutdown(SHUT_RD) without a FIN from the peer.
	if ((s.shutdown & 1) && !fin_rcvd(in.state) && shutdown(f, SHUT_RD))
		return fail_errno(name + ": shutdown(SHUT_RD)");
	AMBER_TRY(set_buffers(f, in, name));
	return fd;
}

// Listener @lfd's waiting connections, rebuilt and queued in their order.
// After a crash (not held) the peer saw a reset: one that cannot be rebuilt
// is left out, as the crash left it out.
Result<void> create_children(int lfd, const SharedInet &s, const std::string &name)
{
	if (s.info.children.empty())
		return {};
	NetlinkClient nl = AMBER_TRY(connect_module());
	for (size_t i = 0; i < s.info.children.size(); i++) {
		const std::string cname = name + ": waiting connection " + std::to_string(i + 1);
		SharedInet c;
		c.family = s.family;
		c.info = s.info.children[i];
		c.recvq = s.child_recvq[i];
		auto fd = create_tcp_conn(c, cname, true);
		if (!fd && !c.info.held) {
			std::cerr << "amber: warning: " << fd.error().str()
				  << ": the connection ended with the crash; left out\n";
			continue;
		}
		if (!fd)
			return tl::unexpected(fd.error());
		AttrWriter w;
		w.put_u32(AMBER_A_SOCK_FD, uint32_t(lfd));
		w.put_u32(AMBER_A_TCP_CHILD_FD, uint32_t(fd->get()));
		auto r = nl.transact(AMBER_CMD_TCP_GRAFT, w.view(), 10000);
		if (!r)
			return wrap(r.error(), cname + ": putting it back in the accept queue: ");
	}
	return {};
}

Result<UniqueFd> create_tcp(const SharedInet &s, const std::string &name)
{
	const InetInfo &in = s.info;
	if (tcp_conn_state(in.state)) {
		auto c = create_tcp_conn(s, name);
		if (c || s.info.held)
			return c;
		std::cerr << "amber: warning: " << c.error().str()
			  << ": the connection ended with the crash; the program sees it reset\n";
		return reset_socket(s, name);
	}
	UniqueFd fd = AMBER_TRY(new_socket(s, SOCK_STREAM, name));
	AMBER_TRY(set_bind_options(fd.get(), s, name));
	if (in.sport) {
		AMBER_TRY(repair_bind(fd.get(), s, in.bound_addr ? in.src : any_addr(s), name));
		AMBER_TRY(repair_off(fd.get(), in, kRepairOffNoProbe, name));
	}
	AMBER_TRY(set_tcp_options(fd.get(), in, name));
	if (in.state == TCP_LISTEN && listen(fd.get(), int(in.backlog)))
		return fail_errno(name + ": listen");
	if (in.state == TCP_LISTEN)
		AMBER_TRY(create_children(fd.get(), s, name));
	return fd;
}

Result<UniqueFd> create_udp(const SharedInet &s, const std::string &name)
{
	const InetInfo &in = s.info;
	UniqueFd fd = AMBER_TRY(new_socket(s, SOCK_DGRAM, name));
	AMBER_TRY(set_bind_options(fd.get(), s, name));
	if (in.sport) {
		const Bytes addr = in.bound_addr ? in.src : any_addr(s);
		SockAddr a = make_addr(s.family, addr, in.sport);
		if (bind(fd.get(), reinterpret_cast<sockaddr *>(&a.ss), a.len))
			return fail_errno(name + ": bind to " + addr_text(s.family, addr, in.sport));
	}
	if (in.state == TCP_ESTABLISHED) {
		SockAddr a = make_addr(s.family, in.dst, in.dport);
		if (connect(fd.get(), reinterpret_cast<sockaddr *>(&a.ss), a.len))
			return fail_errno(name + ": connect to " +
					  addr_text(s.family, in.dst, in.dport));
	}
	return fd;
}

// Ends the holds the checkpoint put on these sockets' connections and ports.
Result<void> net_release(const std::vector<int> &fds)
{
	if (fds.empty())
		return {};
	NetlinkClient nl = AMBER_TRY(connect_module());
	AttrWriter w;
	size_t n = w.begin_nest(AMBER_A_SOCK_FDS);
	for (int fd : fds)
		w.put_u32(AMBER_A_SOCK_FD, uint32_t(fd));
	w.end_nest(n);
	auto r = nl.transact(AMBER_CMD_NET_RELEASE, w.view(), 10000);
	if (!r)
		return wrap(r.error(), "releasing the held connections: ");
	return {};
}

} // namespace

Result<void> plan_inet(SharedBuild &b, const FdInfo &f, int idx, const std::string &name,
		       SharedFile &s)
{
	const InetInfo &in = f.inet;
	const bool tcp = in.proto == IPPROTO_TCP;
	if ((f.sock_family != AF_INET && f.sock_family != AF_INET6) ||
	    in.src.size() != (f.sock_family == AF_INET ? 4u : 16u))
		return fail(EINVAL, name + ": an inet socket of family " +
					    std::to_string(f.sock_family) + " with a " +
					    std::to_string(in.src.size()) + "-byte address");
	if (f.sock_type != (tcp ? SOCK_STREAM : SOCK_DGRAM))
		return fail(EINVAL, name + ": protocol and socket type do not match");
	if (tcp && in.state != TCP_LISTEN && in.state != TCP_CLOSE &&
	    !(tcp_conn_state(in.state) && in.conn))
		return fail(EOPNOTSUPP, name + ": TCP state " + std::to_string(in.state) +
						" cannot be restored");
	if (!tcp && in.state != TCP_ESTABLISHED && in.state != TCP_CLOSE)
		return fail(EOPNOTSUPP, name + ": UDP state " + std::to_string(in.state) +
						" cannot be restored");
	if ((in.state == TCP_ESTABLISHED || in.conn) && (!in.sport || !in.dport))
		return fail(EINVAL, name + ": connected without both ports");
	if (!b.inet_by_ino.emplace(f.ino, int(b.sp.inets.size())).second)
		return fail(EOPNOTSUPP, name + ": the socket is open in two descriptions");
	SharedInet si;
	si.ino = f.ino;
	si.family = f.sock_family;
	si.info = in;
	si.shutdown = f.shutdown;
	si.file = idx;
	si.child_recvq.resize(in.children.size());
	s.inet = int(b.sp.inets.size());
	b.sp.inets.push_back(std::move(si));
	return {};
}

bool queue_inet(SharedBuild &b, const QueueChunk &q)
{
	auto it = b.inet_by_ino.find(q.ino);
	if (it == b.inet_by_ino.end())
		return false;
	SharedInet &s = b.sp.inets[it->second];
	if (q.embryo) {
		// A waiting connection's unread bytes (it has sent nothing).
		if (q.send || q.embryo > s.child_recvq.size())
			return false;
		Bytes &to = s.child_recvq[q.embryo - 1];
		to.insert(to.end(), q.data.begin(), q.data.end());
		return true;
	}
	Bytes &to = q.send ? s.sendq : s.recvq;
	to.insert(to.end(), q.data.begin(), q.data.end());
	return true;
}

Result<void> check_inet_queues(const SharedBuild &b)
{
	for (const SharedInet &s : b.sp.inets) {
		const std::string name = b.sp.files[s.file].owner + ": " + b.sp.files[s.file].path;
		const InetInfo &in = s.info;
		for (size_t i = 0; i < in.children.size(); i++) {
			const InetInfo &c = in.children[i];
			if (s.child_recvq[i].size() != uint32_t(c.rcv_nxt - c.copied_seq) ||
			    c.write_seq != c.snd_una || c.snd_nxt != c.snd_una)
				return fail(EINVAL, name + ": waiting connection " +
							    std::to_string(i + 1) +
							    ": its queues do not match its sequence numbers");
		}
		if (!in.conn) {
			if (!s.recvq.empty() || !s.sendq.empty())
				return fail(EINVAL, name + ": queued bytes without a connection");
			continue;
		}
		// Without the FINs (one not yet read, or not yet acknowledged).
		uint32_t unread = in.rcv_nxt - in.copied_seq, unacked = in.write_seq - in.snd_una;
		if (unread && fin_rcvd(in.state))
			unread--;
		if (unacked && fin_sent(in.state))
			unacked--;
		if (s.recvq.size() != unread || s.sendq.size() != unacked ||
		    uint32_t(in.snd_nxt - in.snd_una) > unacked + fin_sent(in.state))
			return fail(EINVAL, name + ": its queues (" + std::to_string(s.recvq.size()) +
						    " and " + std::to_string(s.sendq.size()) +
						    " bytes) do not match its sequence numbers");
	}
	return {};
}

Result<void> create_inets(const SharedPlan &sp, SharedFds &out)
{
	std::vector<int> held;
	for (const SharedInet &s : sp.inets) {
		const SharedFile &f = sp.files[s.file];
		const std::string name = f.owner + ": " + f.path;
		UniqueFd fd = AMBER_TRY(s.info.proto == IPPROTO_TCP ? create_tcp(s, name)
								     : create_udp(s, name));
		AMBER_TRY(set_fl(fd.get(), f.flags, name));
		if (s.info.held)
			held.push_back(fd.get());
		out.files[s.file] = std::move(fd);
	}
	return net_release(held);
}

} // namespace amber
