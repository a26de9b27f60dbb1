// SPDX-License-Identifier: GPL-2.0
/*
 * TCP and UDP sockets across a checkpoint (tests/kselftest/inet_test.c;
 * protocol of selfcheck.h). `inet --dir BASE --go FILE [--fork] MODE`:
 *
 *   --conn4, --conn6  connect to the test's peer (outside the checkpoint) at
 *                     the port in BASE/port, on 127.0.0.1 or ::1; wait until
 *                     the peer's PEER_BYTES are queued unread, then write
 *                     without blocking until the socket is full (bytes in
 *                     the send queue, count in BASE/wrote). After the
 *                     restore: the options, addresses and flags are the
 *                     same, the peer's bytes read back in order, and our
 *                     side is shut down (the peer checks it gets every byte
 *                     once, then the end of the stream, and closes).
 *   --listen          listen on 127.0.0.1 (port in BASE/port), accept the
 *                     peer's first connection, leave its PEER_BYTES unread.
 *                     After the restore: read them, then accept a new
 *                     connection and answer it.
 *   --crash           as --listen, but the process was killed without
 *                     --kill: the first connection reports the reset.
 *   --pair (--fork)   both ends inside a tree: the parent listens, the child
 *                     connects, each writes to the other without reading
 *                     (IPv6); after the restore each reads its bytes back.
 *   --half            two connections to the test's peer, half-closed: one
 *                     by us (shutdown(SHUT_WR), FIN_WAIT2), one by the peer
 *                     (CLOSE_WAIT), each with the peer's bytes unread.
 *                     After the restore: the states (then BASE/checked), the
 *                     bytes, then the end of the stream; the peer closes the
 *                     first and reads "bye" and the end on the second.
 *   --queue           listen on 127.0.0.1 (port in BASE/port) without
 *                     accepting; the test's QUEUE_CLIENTS clients connect
 *                     one after the other and each sends its bytes (then
 *                     BASE/sent). After the restore: accept() returns them
 *                     in the order they connected, each with its bytes
 *                     unread (then BASE/accepted); each then reads the
 *                     client's "more" and answers it.
 *   --many            a listener with 65 connections of its own waiting in
 *                     its accept queue, one more than a checkpoint takes:
 *                     refused; after go it still accepts them.
 *   --refused         a listener with TCP_DEFER_ACCEPT, which a checkpoint
 *                     refuses: after go it still listens, with the option.
 *   --udp             bound and connected UDP sockets over IPv4 and IPv6,
 *                     one datagram queued (dropped by design); after the
 *                     restore datagrams flow between them again.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "selfcheck.h"

#define PEER_BYTES	3000

static char base[200];

/* The peer's byte i, and ours. */
static unsigned char peer_byte(size_t i) { return (i * 11 + 5) & 0xff; }
static unsigned char our_byte(size_t i) { return (i * 7 + 13) & 0xff; }

struct snap {
	int reuseaddr, reuseport, nodelay, keepalive, keepidle, keepintvl, keepcnt;
	int sndbuf, rcvbuf, mark, v6only, fl, cork;
	char cc[16];
	struct sockaddr_storage name, peer;
	socklen_t namelen, peerlen;
};

static int getopt_int(int fd, int level, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);

	if (getsockopt(fd, level, opt, &v, &l))
		return -errno - 1000;
	return v;
}

static void take_snap(int fd, struct snap *s, bool tcp)
{
	memset(s, 0, sizeof(*s));
	s->reuseaddr = getopt_int(fd, SOL_SOCKET, SO_REUSEADDR);
	s->reuseport = getopt_int(fd, SOL_SOCKET, SO_REUSEPORT);
	s->keepalive = getopt_int(fd, SOL_SOCKET, SO_KEEPALIVE);
	s->sndbuf = getopt_int(fd, SOL_SOCKET, SO_SNDBUF);
	s->rcvbuf = getopt_int(fd, SOL_SOCKET, SO_RCVBUF);
	s->mark = getopt_int(fd, SOL_SOCKET, SO_MARK);
	s->v6only = getopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY);
	if (tcp) {
		s->nodelay = getopt_int(fd, IPPROTO_TCP, TCP_NODELAY);
		s->cork = getopt_int(fd, IPPROTO_TCP, TCP_CORK);
		s->keepidle = getopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE);
		s->keepintvl = getopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL);
		s->keepcnt = getopt_int(fd, IPPROTO_TCP, TCP_KEEPCNT);
		socklen_t l = sizeof(s->cc);

		getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, s->cc, &l);
	}
	s->fl = fcntl(fd, F_GETFL);
	s->namelen = sizeof(s->name);
	s->peerlen = sizeof(s->peer);
	getsockname(fd, (struct sockaddr *)&s->name, &s->namelen);
	if (getpeername(fd, (struct sockaddr *)&s->peer, &s->peerlen))
		s->peerlen = 0;
}

/* The socket's options, addresses and flags are as before. */
/*
 * The socket's options, addresses and flags are as before. Buffer sizes
 * only where the program set them (@set_bufs): the kernel tunes the others,
 * and starts over after a restore. IPV6_V6ONLY not on a connected IPv6
 * socket (@conn6): restore binds it to its address, which sets it (without
 * effect on a connected socket; see design.md).
 */
static void check_snap(int fd, const char *what, const struct snap *before, bool tcp,
		       bool set_bufs, bool conn6)
{
	struct snap now;

	take_snap(fd, &now, tcp);
#define SAME(f) CHECK(now.f == before->f, "%s: " #f " %d, was %d", what, now.f, before->f)
	if (set_bufs) {
		SAME(sndbuf);
		SAME(rcvbuf);
	}
	if (!conn6) {
		SAME(v6only);
	}
	SAME(reuseaddr); SAME(reuseport); SAME(keepalive);
	SAME(mark); SAME(nodelay); SAME(cork); SAME(keepidle);
	SAME(keepintvl); SAME(keepcnt); SAME(fl); SAME(namelen); SAME(peerlen);
#undef SAME
	CHECK(!strncmp(now.cc, before->cc, sizeof(now.cc)), "%s: TCP_CONGESTION %.16s, was %.16s",
	      what, now.cc, before->cc);
	CHECK(!memcmp(&now.name, &before->name, now.namelen), "%s: another local address",
	      what);
	CHECK(!memcmp(&now.peer, &before->peer, now.peerlen), "%s: another peer address",
	      what);
}

static int read_port(void)
{
	char path[300], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/port", base);
	while (access(path, F_OK))
		usleep(10000);
	usleep(20000);
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f))
		exit(90);
	fclose(f);
	return atoi(buf);
}

static void write_num(const char *name, long v)
{
	char path[300], tmp[310];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", base, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%ld\n", v) < 0 || fclose(f) || rename(tmp, path))
		exit(91);
}

static socklen_t make_addr(struct sockaddr_storage *ss, int family, int port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*a);
	}
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	a6->sin6_family = AF_INET6;
	a6->sin6_port = htons(port);
	a6->sin6_addr = in6addr_loopback;
	return sizeof(*a6);
}

static int port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &l))
		exit(92);
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int inq(int fd)
{
	int n = -1;

	ioctl(fd, FIONREAD, &n);
	return n;
}

static void wait_inq(int fd, int n)
{
	for (int i = 0; i < 3000 && inq(fd) < n; i++)
		usleep(10000);
	if (inq(fd) != n)
		exit(93);
}

/* Options a server sets on its connections. */
static void set_options(int fd)
{
	int one = 1, idle = 77, intvl = 13, cnt = 5, buf = 60000, rbuf = 70000, mark = 42;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf)) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rbuf, sizeof(rbuf)) ||
	    setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 4))
		exit(94);
}

/* Reads exactly @n bytes of @byte()'s pattern (waiting at most 20 s). */
static void read_pattern(int fd, size_t n, unsigned char (*byte)(size_t), const char *what)
{
	static unsigned char buf[65536];
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t r;

		if (poll(&p, 1, 60000) != 1) {
			CHECK(0, "%s: %zu of %zu bytes, then nothing", what, got, n);
			return;
		}
		r = recv(fd, buf, n - got < sizeof(buf) ? n - got : sizeof(buf), MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0) {
			CHECK(0, "%s: %zu of %zu bytes, then %s", what, got, n,
			      r ? strerror(errno) : "end of stream");
			return;
		}
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] != byte(got + i)) {
				CHECK(0, "%s: byte %zu is %u, not %u", what, got + i, buf[i],
				      byte(got + i));
				return;
			}
		}
		got += r;
	}
}

/* Writes our pattern without blocking until the socket is full. */
static size_t fill(int fd)
{
	unsigned char buf[4096];
	size_t total = 0;
	ssize_t r;

	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK))
		exit(95);
	for (;;) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = our_byte(total + i);
		r = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (r < 0 && errno == EAGAIN) {
			/* Let the peer's window close, then once more. */
			usleep(200000);
			r = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
			if (r < 0 && errno == EAGAIN)
				return total;
		}
		if (r <= 0)
			exit(96);
		total += r;
	}
}

static void read_eof(int fd, const char *what);

/*
 * Ends our side once the peer has read everything: a socket closed with
 * bytes still queued would be an orphan, which the kernel may abort while
 * the receiver keeps its window shut.
 */
static void finish(int fd, const char *what)
{
	CHECK(!shutdown(fd, SHUT_WR), "%s: shutdown: %s", what, strerror(errno));
	read_eof(fd, what);
	close(fd);
}

static int run_conn(int family)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(&ss, family, read_port());
	int fd = socket(family, SOCK_STREAM, 0);
	struct snap before;
	size_t wrote;

	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len))
		return 97;
	set_options(fd);
	wait_inq(fd, PEER_BYTES);
	wrote = fill(fd);
	write_num("wrote", wrote);
	take_snap(fd, &before, true);
	sc_parent_ready(getenv("GO"), 0);
	check_snap(fd, "connection", &before, true, true, family == AF_INET6);
	CHECK(inq(fd) == PEER_BYTES, "%d bytes queued, not %d", inq(fd), PEER_BYTES);
	read_pattern(fd, PEER_BYTES, peer_byte, "connection");
	finish(fd, "connection");
	return sc_done();
}

static int listener(int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(&ss, AF_INET, 0);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(l, (struct sockaddr *)&ss, len) || listen(l, 7))
		exit(98);
	*port = port_of(l);
	return l;
}

static int run_listen(bool crash)
{
	struct snap lsnap, csnap;
	int port, l = listener(&port), c, n;
	char buf[16];

	write_num("port", port);
	c = accept(l, NULL, NULL);
	if (c < 0)
		return 99;
	wait_inq(c, PEER_BYTES);
	take_snap(l, &lsnap, true);
	take_snap(c, &csnap, true);
	sc_parent_ready(getenv("GO"), 0);
	check_snap(l, "listener", &lsnap, true, false, false);
	if (!crash) {
		check_snap(c, "accepted", &csnap, true, false, false);
		read_pattern(c, PEER_BYTES, peer_byte, "accepted");
	} else {
		/*
		 * Its peer saw it end with the crash: so does the program, after
		 * the bytes that had arrived before the checkpoint, if any.
		 */
		char x[4096];

		do {
			struct pollfd p = { c, POLLIN, 0 };

			poll(&p, 1, 10000);
			n = recv(c, x, sizeof(x), MSG_DONTWAIT);
		} while (n > 0);
		CHECK(n < 0 && (errno == ECONNRESET || errno == EPIPE),
		      "the crashed connection: recv %d (%s), not a reset", n,
		      n < 0 ? strerror(errno) : "end of stream");
	}
	close(c);
	/* A new client. */
	struct pollfd p = { l, POLLIN, 0 };

	CHECK(poll(&p, 1, 30000) == 1, "no new connection");
	c = accept(l, NULL, NULL);
	CHECK(c >= 0, "accept: %s", strerror(errno));
	if (c >= 0) {
		struct pollfd q = { c, POLLIN, 0 };

		poll(&q, 1, 20000);
		n = recv(c, buf, 5, MSG_WAITALL);
		CHECK(n == 5 && !memcmp(buf, "hello", 5), "new connection: read %d", n);
		CHECK(send(c, "world", 5, MSG_NOSIGNAL) == 5, "send: %s", strerror(errno));
		close(c);
	}
	return sc_done();
}

static int run_pair(void)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(&ss, AF_INET6, 0);
	int l = socket(AF_INET6, SOCK_STREAM, 0), one = 1, c, a;
	struct snap lsnap, asnap, csnap;
	pid_t child;
	size_t wrote;

	if (l < 0 || setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) ||
	    bind(l, (struct sockaddr *)&ss, len) || listen(l, 4))
		return 100;
	len = make_addr(&ss, AF_INET6, port_of(l));
	child = fork();
	if (child < 0)
		return 101;
	if (child == 0) {
		c = socket(AF_INET6, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&ss, len))
			_exit(102);
		set_options(c);
		wait_inq(c, PEER_BYTES);
		wrote = fill(c);
		write_num("wrote", wrote);
		take_snap(c, &csnap, true);
		sc_child_ready(getenv("GO"));
		check_snap(c, "child", &csnap, true, true, true);
		read_pattern(c, PEER_BYTES, peer_byte, "child");
		finish(c, "child");
		_exit(failed);
	}
	a = accept(l, NULL, NULL);
	if (a < 0)
		return 103;
	for (size_t i = 0; i < PEER_BYTES; i++) {
		unsigned char b = peer_byte(i);

		if (send(a, &b, 1, 0) != 1)
			return 104;
	}
	take_snap(l, &lsnap, true);
	take_snap(a, &asnap, true);
	sc_parent_ready(getenv("GO"), 0);
	check_snap(l, "listener", &lsnap, true, false, false);
	check_snap(a, "accepted", &asnap, true, false, true);
	{
		char path[300];
		FILE *f;
		long w = 0;

		snprintf(path, sizeof(path), "%s/wrote", base);
		f = fopen(path, "r");
		CHECK(f && fscanf(f, "%ld", &w) == 1 && w > 0, "no count of the child's bytes");
		if (f)
			fclose(f);
		read_pattern(a, w, our_byte, "accepted");
		read_eof(a, "accepted");
		close(a);
	}
	{
		int status = 0;

		CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) &&
		      !WEXITSTATUS(status), "child: status 0x%x", status);
	}
	return sc_done();
}

static int udp_socket(int family, int port_to)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(&ss, family, 0);
	int s = socket(family, SOCK_DGRAM, 0), one = 1;

	if (s < 0)
		exit(110);
	if (family == AF_INET6 && setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)))
		exit(111);
	if (!port_to) {
		if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
		    bind(s, (struct sockaddr *)&ss, len))
			exit(112);
		return s;
	}
	len = make_addr(&ss, family, port_to);
	if (connect(s, (struct sockaddr *)&ss, len))
		exit(113);
	return s;
}

static void udp_check(int a, int b, const char *what, const char *msg)
{
	struct sockaddr_storage from, bname;
	socklen_t fl = sizeof(from), bl = sizeof(bname);
	char buf[64];
	struct pollfd p = { a, POLLIN, 0 };
	ssize_t n;

	CHECK(send(b, msg, strlen(msg), 0) == (ssize_t)strlen(msg), "%s: send: %s", what,
	      strerror(errno));
	poll(&p, 1, 10000);
	n = recvfrom(a, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
	getsockname(b, (struct sockaddr *)&bname, &bl);
	CHECK(n == (ssize_t)strlen(msg) && !memcmp(buf, msg, n), "%s: received %zd bytes%s",
	      what, n, n > 0 ? " (the datagram queued at the checkpoint?)" : "");
	CHECK(fl == bl && !memcmp(&from, &bname, fl), "%s: from another address", what);
}

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l))
		return -1;
	return ti.tcpi_state;
}

static void wait_state(int fd, int state)
{
	for (int i = 0; i < 3000 && tcp_state(fd) != state; i++)
		usleep(10000);
	if (tcp_state(fd) != state)
		exit(120);
}

/* Reads the end of the stream (within 20 s). */
static void read_eof(int fd, const char *what)
{
	struct pollfd p = { fd, POLLIN, 0 };
	char x;
	int n;

	poll(&p, 1, 60000);
	n = recv(fd, &x, 1, MSG_DONTWAIT);
	CHECK(n == 0, "%s: recv %d (%s), not the end of the stream", what, n,
	      n < 0 ? strerror(errno) : "data");
}

static int run_half(void)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(&ss, AF_INET, read_port());
	int a = socket(AF_INET, SOCK_STREAM, 0), b = socket(AF_INET, SOCK_STREAM, 0), st;
	unsigned char buf[1000];

	if (a < 0 || b < 0 || connect(a, (struct sockaddr *)&ss, len) ||
	    connect(b, (struct sockaddr *)&ss, len))
		return 121;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = our_byte(i);
	if (send(a, buf, sizeof(buf), 0) != sizeof(buf) || shutdown(a, SHUT_WR))
		return 122;
	wait_state(a, TCP_FIN_WAIT2);
	wait_state(b, TCP_CLOSE_WAIT);
	wait_inq(a, PEER_BYTES);
	wait_inq(b, PEER_BYTES);
	sc_parent_ready(getenv("GO"), 0);
	st = tcp_state(a);
	CHECK(st == TCP_FIN_WAIT1 || st == TCP_FIN_WAIT2, "ours: state %d", st);
	CHECK(tcp_state(b) == TCP_CLOSE_WAIT, "theirs: state %d", tcp_state(b));
	CHECK(inq(b) == PEER_BYTES, "theirs: %d bytes queued", inq(b));
	write_num("checked", 1);	/* the peer goes on now */
	read_pattern(b, PEER_BYTES, peer_byte, "theirs");
	read_eof(b, "theirs");
	CHECK(send(b, "bye", 3, MSG_NOSIGNAL) == 3, "theirs: send: %s", strerror(errno));
	close(b);
	read_pattern(a, PEER_BYTES, peer_byte, "ours");
	read_eof(a, "ours");
	close(a);
	return sc_done();
}

#define QUEUE_CLIENTS	3

/* Client @k's bytes before the checkpoint: its number, then a pattern. */
static unsigned char client_byte(int k, size_t i) { return i ? (i * 13 + k) & 0xff : k; }
static size_t client_len(int k) { return 1000 + 700 * k; }

static int run_queue(void)
{
	int port, l = listener(&port), k, n, c[QUEUE_CLIENTS];
	unsigned char buf[4096];
	char path[300];

	write_num("port", port);
	snprintf(path, sizeof(path), "%s/sent", base);
	while (access(path, F_OK))
		usleep(10000);
	usleep(200000);	/* the last bytes are in on loopback */
	sc_parent_ready(getenv("GO"), 0);
	for (k = 0; k < QUEUE_CLIENTS; k++) {
		size_t len = client_len(k), got = 0;
		struct pollfd p = { l, POLLIN, 0 };

		CHECK(poll(&p, 1, 0) == 1, "connection %d is not waiting", k);
		c[k] = accept(l, NULL, NULL);
		CHECK(c[k] >= 0, "accept %d: %s", k, strerror(errno));
		if (c[k] < 0)
			return sc_done();
		CHECK(inq(c[k]) == (int)len, "connection %d: %d bytes waiting, not %zu", k,
		      inq(c[k]), len);
		while (got < len) {
			n = recv(c[k], buf, sizeof(buf) < len - got ? sizeof(buf) : len - got, 0);
			if (n <= 0)
				break;
			for (int i = 0; i < n; i++)
				if (buf[i] != client_byte(k, got + i)) {
					CHECK(0, "connection %d: byte %zu is wrong (accepted out of order?)",
					      k, got + i);
					got = len;
					break;
				}
			got += n;
		}
	}
	/* The clients talk again only now: their bytes came before, alone. */
	write_num("accepted", 1);
	for (k = 0; k < QUEUE_CLIENTS; k++) {
		char more[8], want[8];

		snprintf(want, sizeof(want), "more%d", k);
		n = recv(c[k], more, 5, MSG_WAITALL);
		CHECK(n == 5 && !memcmp(more, want, 5), "connection %d: read %d, not \"%s\"",
		      k, n, want);
		snprintf(want, sizeof(want), "ok%d", k);
		CHECK(send(c[k], want, 3, MSG_NOSIGNAL) == 3, "send %d: %s", k, strerror(errno));
		close(c[k]);
	}
	return sc_done();
}

static int run_many(void)
{
	int port, l = socket(AF_INET, SOCK_STREAM, 0), c[65], i;
	struct sockaddr_storage ss;
	socklen_t len = make_addr(&ss, AF_INET, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&ss, len) || listen(l, 100))
		return 140;
	port = port_of(l);
	len = make_addr(&ss, AF_INET, port);
	for (i = 0; i < 65; i++) {
		c[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (c[i] < 0 || connect(c[i], (struct sockaddr *)&ss, len))
			return 141;
	}
	sc_parent_ready(getenv("GO"), 0);
	for (i = 0; i < 65; i++) {
		int a = accept4(l, NULL, NULL, SOCK_NONBLOCK);

		CHECK(a >= 0, "accept %d: %s", i, strerror(errno));
		close(a);
		close(c[i]);
	}
	return sc_done();
}

static int run_refused(void)
{
	int port, l = listener(&port), secs = 5;

	if (setsockopt(l, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)))
		return 130;
	sc_parent_ready(getenv("GO"), 0);
	CHECK(getopt_int(l, IPPROTO_TCP, TCP_DEFER_ACCEPT) > 0, "TCP_DEFER_ACCEPT is gone");
	CHECK(tcp_state(l) == TCP_LISTEN, "state %d", tcp_state(l));
	return sc_done();
}

static int run_udp(void)
{
	int a4 = udp_socket(AF_INET, 0), b4, a6 = udp_socket(AF_INET6, 0), b6;
	struct snap sa4, sb4, sa6, sb6;

	b4 = udp_socket(AF_INET, port_of(a4));
	b6 = udp_socket(AF_INET6, port_of(a6));
	/* Queued at the checkpoint: not kept (documented). */
	if (send(b4, "old", 3, 0) != 3)
		return 114;
	wait_inq(a4, 3);
	take_snap(a4, &sa4, false);
	take_snap(b4, &sb4, false);
	take_snap(a6, &sa6, false);
	take_snap(b6, &sb6, false);
	sc_parent_ready(getenv("GO"), 0);
	check_snap(a4, "udp4 bound", &sa4, false, false, false);
	check_snap(b4, "udp4 connected", &sb4, false, false, false);
	check_snap(a6, "udp6 bound", &sa6, false, false, false);
	check_snap(b6, "udp6 connected", &sb6, false, false, false);
	CHECK(inq(a4) == 0, "udp4: %d bytes queued after the restore", inq(a4));
	udp_check(a4, b4, "udp4", "new4");
	udp_check(a6, b6, "udp6", "new6");
	return sc_done();
}

int main(int argc, char **argv)
{
	const char *mode = NULL, *go = NULL;
	bool fork_ = false;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			snprintf(base, sizeof(base), "%s", argv[++i]);
		else if (!strcmp(argv[i], "--go") && i + 1 < argc)
			go = argv[++i];
		else if (!strcmp(argv[i], "--fork"))
			fork_ = true;
		else
			mode = argv[i];
	}
	if (!go || !mode || !base[0])
		return 2;
	setenv("GO", go, 1);
	if (!strcmp(mode, "--conn4"))
		return run_conn(AF_INET);
	if (!strcmp(mode, "--conn6"))
		return run_conn(AF_INET6);
	if (!strcmp(mode, "--listen"))
		return run_listen(false);
	if (!strcmp(mode, "--crash"))
		return run_listen(true);
	if (!strcmp(mode, "--pair") && fork_)
		return run_pair();
	if (!strcmp(mode, "--udp"))
		return run_udp();
	if (!strcmp(mode, "--half"))
		return run_half();
	if (!strcmp(mode, "--refused"))
		return run_refused();
	if (!strcmp(mode, "--queue"))
		return run_queue();
	if (!strcmp(mode, "--many"))
		return run_many();
	return 2;
}
