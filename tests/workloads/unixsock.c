// SPDX-License-Identifier: GPL-2.0
/*
 * UNIX sockets with names, listeners, accepted connections, datagram
 * servers and options, checked after restore (tests/kselftest/unixsock_test.c).
 * One kind per run:
 *
 * --stream: fd 10 a SOCK_STREAM listener bound by the relative name
 *   "srv.sock" from DIR (mode 0640, backlog 7); fd 11 a client connected to
 *   it, fd 12 its connection accepted on fd 10, bytes queued both ways;
 *   fd 13 a listener on an abstract name (backlog 3), fd 14 a client bound
 *   to another abstract name, fd 15 its accepted connection (queued bytes
 *   and a SHUT_WR); fd 16 an autobound socket; fd 17 a socket never
 *   connected; fd 18 a client waiting in fd 10's backlog, and one whose
 *   client was closed waiting in fd 13's.
 * --dgram: fd 10 a SOCK_DGRAM server bound to DIR/dgram.sock, unconnected,
 *   two messages queued from an unnamed socket since closed; fd 11 bound
 *   to an abstract name and connected to fd 10, one message queued from
 *   fd 10; fds 12 and 13 a datagram socketpair, fd 12 bound to an abstract
 *   name, a message queued each way; fd 14 connected to DIR/log.sock, bound
 *   by a child outside the checkpoint (a /dev/log of its own) that keeps
 *   what it receives in DIR/log.out.
 * --seqpacket: fd 10 a SOCK_SEQPACKET listener on an abstract name, fd 11
 *   a client, fd 12 accepted; records queued both ways.
 * --options: a stream socketpair (fds 10, 11) with SO_RCVBUF, SO_SNDBUF,
 *   SO_RCVLOWAT, SO_RCVTIMEO, SO_SNDTIMEO, SO_PASSCRED and O_NONBLOCK.
 * --creds-tree (with --fork, checkpointed --tree): a stream socketpair (fds
 *   10, 11), fd 11 with SO_PASSCRED, holding "par" from the parent, "uid"
 *   sent with SCM_CREDENTIALS of uid 1234 gid 5678, "kid" from the child;
 *   a listener (fd 12) on an abstract name whose waiting connection holds
 *   "early" from the parent's client (fd 13). After restore each message
 *   comes back alone with its sender's pid, uid and gid.
 * --rights: files in flight (SCM_RIGHTS). A stream socketpair (fds 10, 11)
 *   holds "plain" (no files), "file" passing DIR/rights.dat open O_RDWR at
 *   offset 4 (closed since: only in flight), "pipes" passing the read end
 *   of a pipe whose writer is fd 15 (with "pa" queued) and both ends of a
 *   pipe no fd holds (with "pb" queued), "shared" passing the eventfd on
 *   fd 14; a datagram socketpair (fds 12, 13) holds "d1" passing
 *   DIR/rights.dat O_RDONLY at offset 2 and /dev/null O_WRONLY (only in
 *   flight), "d2" passing fd 15 and fd 10 themselves. After restore every
 *   message comes back with its files: the same descriptions as the fds
 *   they were (kcmp), offsets, modes, queued bytes and pipe pairings kept,
 *   and no fd more or less than before the checkpoint.
 * Refused kinds (the checkpoint must fail; the workload runs on and checks
 * its queue is still there): --creds (a message queued with SO_PASSCRED
 * set, single process), --creds-outside (with --fork: a message with the
 * credentials of pid 1, outside the checkpoint), --rights-eventfd (an
 * eventfd in flight that no fd holds), --rights-socket (a socket in flight
 * that no fd holds),
 * --backlog (a connection waiting to be
 * accepted whose client is in a child outside the checkpoint), --early (bytes
 * sent to a connection not yet accepted: they carry credentials),
 * --unlinked (bound to a name since unlinked).
 *
 * With --fork a child inherits the fds and checks their names.
 * Prints "parent ready pid N" (and "child ready pid N"), waits for --go
 * FILE, checks, prints PASS or FAIL lines.
 *
 * Usage: unixsock --dir DIR --go FILE [--fork] --KIND
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <linux/kcmp.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "selfcheck.h"

struct name {
	struct sockaddr_un a;
	socklen_t len;
};

/* Names recorded before the checkpoint, compared after. */
static struct name names[20], peers[20];
static char dir[200];

static int place(int fd, int num)
{
	if (fd < 0 || dup2(fd, num) != num)
		return -1;
	if (fd != num)
		close(fd);
	return 0;
}

static struct name abstract(const char *what)
{
	struct name n = { .a.sun_family = AF_UNIX };
	int len = snprintf(n.a.sun_path + 1, sizeof(n.a.sun_path) - 1, "amber-%s-%d", what,
			   getpid());

	n.len = offsetof(struct sockaddr_un, sun_path) + 1 + len;
	return n;
}

static struct name path(const char *p)
{
	struct name n = { .a.sun_family = AF_UNIX };

	snprintf(n.a.sun_path, sizeof(n.a.sun_path), "%s", p);
	n.len = offsetof(struct sockaddr_un, sun_path) + strlen(p) + 1;
	return n;
}

static int sock(int type, int num, const struct name *bind_to)
{
	int fd = socket(AF_UNIX, type, 0);

	if (fd < 0 || (bind_to && bind(fd, (void *)&bind_to->a, bind_to->len)))
		return -1;
	return place(fd, num) ? -1 : num;
}

static int conn(int fd, const struct name *n)
{
	return connect(fd, (void *)&n->a, n->len);
}

/* Records the names of fds lo..hi. */
static void record(int lo, int hi)
{
	for (int fd = lo; fd <= hi; fd++) {
		names[fd].len = sizeof(names[fd].a);
		getsockname(fd, (void *)&names[fd].a, &names[fd].len);
		peers[fd].len = sizeof(peers[fd].a);
		if (getpeername(fd, (void *)&peers[fd].a, &peers[fd].len))
			peers[fd].len = 0;
	}
}

static bool same(const struct name *a, const struct name *b)
{
	return a->len == b->len && !memcmp(&a->a, &b->a, a->len);
}

static void check_names(int lo, int hi)
{
	struct name n, p;

	for (int fd = lo; fd <= hi; fd++) {
		n.len = sizeof(n.a);
		CHECK(!getsockname(fd, (void *)&n.a, &n.len) && same(&n, &names[fd]),
		      "fd %d: getsockname: len %u, was %u (%s)", fd, n.len, names[fd].len,
		      names[fd].a.sun_path[0] ? names[fd].a.sun_path : names[fd].a.sun_path + 1);
		p.len = sizeof(p.a);
		if (getpeername(fd, (void *)&p.a, &p.len))
			p.len = 0;
		CHECK(same(&p, &peers[fd]), "fd %d: getpeername: len %u, was %u", fd, p.len,
		      peers[fd].len);
	}
}

/* recv() of one message / the bytes available: its length, -errno. */
static ssize_t rcv(int fd, char *buf, size_t size, struct name *from)
{
	socklen_t len = from ? sizeof(from->a) : 0;
	ssize_t n = recvfrom(fd, buf, size, MSG_DONTWAIT, from ? (void *)&from->a : NULL,
			     from ? &len : NULL);

	if (from)
		from->len = len;
	if (n >= 0 && (size_t)n < size)
		buf[n] = 0;
	return n < 0 ? -errno : n;
}

static void check_recv(int fd, const char *want)
{
	char buf[256];
	ssize_t n = rcv(fd, buf, sizeof(buf), NULL);

	CHECK(n == (ssize_t)strlen(want) && !memcmp(buf, want, n),
	      "fd %d: read %zd '%.*s', want '%s'", fd, n, (int)(n > 0 ? n : 0), buf, want);
}

static void check_empty(int fd)
{
	char buf[16];
	ssize_t n = rcv(fd, buf, sizeof(buf), NULL);

	CHECK(n == -EAGAIN, "fd %d: %zd more bytes queued", fd, n);
}

/* A new connection to listener @l at @n works (then it is dropped). */
static void check_listens(int l, const struct name *n, int type)
{
	int c = socket(AF_UNIX, type, 0), a;

	CHECK(c >= 0 && !conn(c, n), "fd %d: connecting to it: %s", l, strerror(errno));
	a = accept(l, NULL, NULL);
	CHECK(a >= 0, "fd %d: accept: %s", l, strerror(errno));
	CHECK(send(c, "ping", 4, 0) == 4, "fd %d: send on a new connection", l);
	check_recv(a, "ping");
	close(a);
	close(c);
}

/* Exactly @backlog + 1 connections fit in @l's accept queue. */
static void check_backlog(int l, const struct name *n, int backlog)
{
	int c[32], i, ok = 0, a;

	for (i = 0; i < backlog + 2 && i < 32; i++) {
		c[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (!conn(c[i], n))
			ok++;
	}
	CHECK(ok == backlog + 1, "fd %d: %d connections fit, want %d (backlog %d)", l, ok,
	      backlog + 1, backlog);
	while (ok-- > 0 && (a = accept(l, NULL, NULL)) >= 0)
		close(a);
	while (i-- > 0)
		close(c[i]);
}

static int setup_stream(void)
{
	struct name srv = path("srv.sock"), abs_srv, lname = abstract("lst"),
		    cname = abstract("cli"), autob = { .a.sun_family = AF_UNIX };

	snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/srv.sock");
	abs_srv = path(dir);
	unlink(dir);
	if (sock(SOCK_STREAM, 10, &srv) < 0 || chmod("srv.sock", 0640) || listen(10, 7) ||
	    sock(SOCK_STREAM, 11, NULL) < 0 || conn(11, &abs_srv) ||
	    place(accept(10, NULL, NULL), 12) ||
	    send(11, "hello-from-client", 17, 0) != 17 ||
	    send(12, "hi-from-server", 14, 0) != 14)
		return -1;
	if (sock(SOCK_STREAM, 13, &lname) < 0 || listen(13, 3) ||
	    sock(SOCK_STREAM, 14, &cname) < 0 || conn(14, &lname) ||
	    place(accept(13, NULL, NULL), 15) || send(14, "abc", 3, 0) != 3 ||
	    send(14, "def", 3, 0) != 3 || send(15, "xyz", 3, 0) != 3 || shutdown(15, SHUT_WR))
		return -1;
	autob.len = sizeof(sa_family_t);
	if (sock(SOCK_STREAM, 16, &autob) < 0 || sock(SOCK_STREAM, 17, NULL) < 0)
		return -1;
	/* Waiting to be accepted: fd 18 on fd 10, a closed client on fd 13. */
	int gone = socket(AF_UNIX, SOCK_STREAM, 0);

	if (sock(SOCK_STREAM, 18, NULL) < 0 || conn(18, &abs_srv) || gone < 0 ||
	    conn(gone, &lname) || close(gone))
		return -1;
	record(10, 18);
	return 0;
}

static void check_stream(void)
{
	struct name lname = abstract("lst");
	struct stat st;
	char buf[16];

	check_names(10, 18);
	CHECK(!stat("srv.sock", &st) && S_ISSOCK(st.st_mode) && (st.st_mode & 07777) == 0640,
	      "srv.sock: mode %o", st.st_mode);
	check_recv(12, "hello-from-client");
	check_recv(11, "hi-from-server");
	check_recv(15, "abcdef");
	check_recv(14, "xyz");
	CHECK(rcv(14, buf, sizeof(buf), NULL) == 0, "fd 14: no EOF after the peer's SHUT_WR");
	CHECK(send(11, "again", 5, 0) == 5, "fd 11: send");
	check_recv(12, "again");
	check_empty(12);
	/* The connections that waited, in order, with what they sent. */
	int a = accept(10, NULL, NULL);

	CHECK(a >= 0, "fd 10: nothing waited in its backlog");
	check_empty(a);
	CHECK(send(18, "later", 5, 0) == 5, "fd 18: send");
	check_recv(a, "later");
	close(a);
	a = accept(13, NULL, NULL);
	CHECK(a >= 0, "fd 13: nothing waited in its backlog");
	CHECK(rcv(a, buf, sizeof(buf), NULL) == 0, "fd 13: its closed client's EOF is missing");
	close(a);
	check_listens(10, &names[10], SOCK_STREAM);
	check_backlog(10, &names[10], 7);
	check_backlog(13, &lname, 3);
	CHECK(!conn(17, &lname), "fd 17: connect: %s", strerror(errno));
	close(accept(13, NULL, NULL));
}

static char log_out[300];

/*
 * A /dev/log of its own, outside the checkpoint: a child bound to
 * DIR/log.sock that appends what it receives to DIR/log.out until "quit".
 */
static int start_logger(struct name *n)
{
	char p[256];
	pid_t pid;

	snprintf(p, sizeof(p), "%s/log.sock", dir);
	snprintf(log_out, sizeof(log_out), "%s/log.out", dir);
	*n = path(p);
	unlink(p);
	unlink(log_out);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int s = socket(AF_UNIX, SOCK_DGRAM, 0), out;
		char buf[64];
		ssize_t len;

		/* Its own session: as a group member it would keep the pid in use. */
		out = open(log_out, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (setsid() < 0 || s < 0 || out < 0 || bind(s, (void *)&n->a, n->len))
			_exit(1);
		while ((len = recv(s, buf, sizeof(buf), 0)) > 0) {
			if (len == 4 && !memcmp(buf, "quit", 4))
				_exit(0);
			if (write(out, buf, len) != len || write(out, "\n", 1) != 1)
				_exit(1);
		}
		_exit(1);
	}
	for (int i = 0; i < 500 && access(p, F_OK); i++)
		usleep(10000);
	return access(p, F_OK);
}

/* The logger's file holds @want within 5 s. */
static void check_log(const char *want)
{
	char buf[256] = "";
	ssize_t n = 0;
	int fd;

	for (int i = 0; i < 500; i++) {
		fd = open(log_out, O_RDONLY);
		n = fd < 0 ? 0 : read(fd, buf, sizeof(buf) - 1);
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = 0;
		if (!strcmp(buf, want))
			break;
		usleep(10000);
	}
	CHECK(!strcmp(buf, want), "log.out holds '%s', want '%s'", buf, want);
}

static int setup_dgram(void)
{
	struct name srv, cli = abstract("dgc"), pn = abstract("dgp"), log;
	int tmp = socket(AF_UNIX, SOCK_DGRAM, 0), sv[2];

	if (start_logger(&log) || sock(SOCK_DGRAM, 14, NULL) < 0 || conn(14, &log) ||
	    send(14, "before", 6, 0) != 6)
		return -1;
	snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/dgram.sock");
	srv = path(dir);
	unlink(dir);
	if (tmp < 0 || sock(SOCK_DGRAM, 10, &srv) < 0 ||
	    sendto(tmp, "m1", 2, 0, (void *)&srv.a, srv.len) != 2 ||
	    sendto(tmp, "m2-longer", 9, 0, (void *)&srv.a, srv.len) != 9)
		return -1;
	close(tmp);
	if (sock(SOCK_DGRAM, 11, &cli) < 0 || conn(11, &srv) ||
	    sendto(10, "reply-1", 7, 0, (void *)&cli.a, cli.len) != 7)
		return -1;
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) || place(sv[0], 12) || place(sv[1], 13) ||
	    bind(12, (void *)&pn.a, pn.len) || send(12, "to-13", 5, 0) != 5 ||
	    send(13, "to-12", 5, 0) != 5 || send(13, "to-12-b", 7, 0) != 7)
		return -1;
	record(10, 14);
	return 0;
}

static void check_dgram(void)
{
	struct name from, unnamed = { .len = 0 };	/* no name at all */
	char buf[64];
	ssize_t n;

	check_names(10, 14);
	n = rcv(10, buf, sizeof(buf), &from);
	CHECK(n == 2 && !memcmp(buf, "m1", 2) && from.len == unnamed.len,
	      "fd 10: first message %zd bytes, from a name of %u", n, from.len);
	n = rcv(10, buf, sizeof(buf), &from);
	CHECK(n == 9 && !memcmp(buf, "m2-longer", 9) && from.len == unnamed.len,
	      "fd 10: second message %zd bytes, from a name of %u", n, from.len);
	check_empty(10);
	n = rcv(11, buf, sizeof(buf), &from);
	CHECK(n == 7 && !memcmp(buf, "reply-1", 7) && same(&from, &names[10]),
	      "fd 11: message %zd bytes, from a name of %u (%s)", n, from.len,
	      from.a.sun_path);
	check_empty(11);
	CHECK(send(11, "up", 2, 0) == 2, "fd 11: send: %s", strerror(errno));
	n = rcv(10, buf, sizeof(buf), &from);
	CHECK(n == 2 && same(&from, &names[11]), "fd 10: from fd 11: %zd bytes, name of %u",
	      n, from.len);
	check_recv(12, "to-12");
	check_recv(12, "to-12-b");
	check_empty(12);
	n = rcv(13, buf, sizeof(buf), &from);
	CHECK(n == 5 && !memcmp(buf, "to-13", 5) && same(&from, &names[12]),
	      "fd 13: message %zd bytes, from a name of %u", n, from.len);
	CHECK(send(14, "after", 5, 0) == 5, "fd 14: send to the logger: %s", strerror(errno));
	check_log("before\nafter\n");
	CHECK(send(14, "quit", 4, 0) == 4, "fd 14: send quit");
}

static int setup_seqpacket(void)
{
	struct name lname = abstract("sqp");

	if (sock(SOCK_SEQPACKET, 10, &lname) < 0 || listen(10, 5) ||
	    sock(SOCK_SEQPACKET, 11, NULL) < 0 || conn(11, &lname) ||
	    place(accept(10, NULL, NULL), 12) || send(11, "rec-one", 7, 0) != 7 ||
	    send(11, "rec-two!", 8, 0) != 8 || send(12, "back", 4, 0) != 4)
		return -1;
	record(10, 12);
	return 0;
}

static void check_seqpacket(void)
{
	check_names(10, 12);
	check_recv(12, "rec-one");
	check_recv(12, "rec-two!");
	check_empty(12);
	check_recv(11, "back");
	check_empty(11);
	check_listens(10, &names[10], SOCK_SEQPACKET);
}

static int opt(int fd, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	getsockopt(fd, SOL_SOCKET, name, &v, &len);
	return v;
}

static long long timeo(int fd, int name)
{
	struct timeval tv = { 0 };
	socklen_t len = sizeof(tv);

	getsockopt(fd, SOL_SOCKET, name, &tv, &len);
	return tv.tv_sec * 1000000LL + tv.tv_usec;
}

static int rcvbuf0, sndbuf1;
static pid_t outsider;	/* --backlog: holds the waiting client */
static long long rcvtimeo0, sndtimeo1;	/* rounded to jiffies */

static int setup_options(void)
{
	int sv[2], rb = 100000, sb = 50001, low = 5, one = 1;
	struct timeval rt = { 1, 500000 }, st = { 0, 250000 };

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || place(sv[0], 10) || place(sv[1], 11) ||
	    setsockopt(10, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb)) ||
	    setsockopt(11, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb)) ||
	    setsockopt(10, SOL_SOCKET, SO_RCVLOWAT, &low, sizeof(low)) ||
	    setsockopt(10, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt)) ||
	    setsockopt(11, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof(st)) ||
	    send(11, "1234", 4, 0) != 4 ||
	    setsockopt(11, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) ||
	    fcntl(11, F_SETFL, O_NONBLOCK))
		return -1;
	rcvbuf0 = opt(10, SO_RCVBUF);
	sndbuf1 = opt(11, SO_SNDBUF);
	rcvtimeo0 = timeo(10, SO_RCVTIMEO);
	sndtimeo1 = timeo(11, SO_SNDTIMEO);
	return 0;
}

static void check_options(void)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	char buf[64];
	struct msghdr mh = { 0 };
	struct iovec iov = { buf, sizeof(buf) };
	char cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct cmsghdr *c;
	ssize_t n;

	(void)len;
	CHECK(opt(10, SO_RCVBUF) == rcvbuf0 && rcvbuf0 == 200000, "fd 10: SO_RCVBUF %d, was %d",
	      opt(10, SO_RCVBUF), rcvbuf0);
	CHECK(opt(11, SO_SNDBUF) == sndbuf1, "fd 11: SO_SNDBUF %d, was %d", opt(11, SO_SNDBUF),
	      sndbuf1);
	CHECK(opt(10, SO_RCVLOWAT) == 5, "fd 10: SO_RCVLOWAT %d", opt(10, SO_RCVLOWAT));
	CHECK(timeo(10, SO_RCVTIMEO) == rcvtimeo0 && rcvtimeo0 >= 1500000,
	      "fd 10: SO_RCVTIMEO %lld, was %lld", timeo(10, SO_RCVTIMEO), rcvtimeo0);
	CHECK(timeo(11, SO_SNDTIMEO) == sndtimeo1 && sndtimeo1 >= 250000,
	      "fd 11: SO_SNDTIMEO %lld, was %lld", timeo(11, SO_SNDTIMEO), sndtimeo1);
	CHECK(timeo(11, SO_RCVTIMEO) == 0, "fd 11: SO_RCVTIMEO %lld", timeo(11, SO_RCVTIMEO));
	CHECK(opt(11, SO_PASSCRED) == 1 && opt(10, SO_PASSCRED) == 0,
	      "SO_PASSCRED: fd 10 %d, fd 11 %d", opt(10, SO_PASSCRED), opt(11, SO_PASSCRED));
	CHECK(fcntl(11, F_GETFL) & O_NONBLOCK, "fd 11: O_NONBLOCK lost");
	CHECK(!(fcntl(10, F_GETFL) & O_NONBLOCK), "fd 10: O_NONBLOCK set");
	check_recv(10, "1234");
	/* Messages sent now carry credentials to fd 11. */
	CHECK(send(10, "cred", 4, 0) == 4, "fd 10: send");
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	n = recvmsg(11, &mh, 0);
	c = CMSG_FIRSTHDR(&mh);
	CHECK(n == 4 && c && c->cmsg_type == SCM_CREDENTIALS, "fd 11: no credentials (%zd)", n);
	if (c) {
		memcpy(&cr, CMSG_DATA(c), sizeof(cr));
		CHECK(cr.pid == getpid(), "fd 11: credentials of pid %d", cr.pid);
	}
}

/* --- credentials in flight --- */

/* Sends @msg from @fd with SCM_CREDENTIALS of @pid, @uid, @gid. */
static int send_cred(int fd, const char *msg, pid_t pid, uid_t uid, gid_t gid)
{
	char cbuf[CMSG_SPACE(sizeof(struct ucred))] = { 0 };
	struct ucred cr = { .pid = pid, .uid = uid, .gid = gid };
	struct iovec iov = { (void *)msg, strlen(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_CREDENTIALS;
	c->cmsg_len = CMSG_LEN(sizeof(cr));
	memcpy(CMSG_DATA(c), &cr, sizeof(cr));
	return sendmsg(fd, &mh, 0) == (ssize_t)strlen(msg) ? 0 : -1;
}

static int setup_creds_tree(void)
{
	struct name lname = abstract("crl");
	int sv[2], one = 1;

	return socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || place(sv[0], 10) ||
	       place(sv[1], 11) ||
	       setsockopt(11, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) ||
	       send(10, "par", 3, 0) != 3 || send_cred(10, "uid", getpid(), 1234, 5678) ||
	       sock(SOCK_STREAM, 12, &lname) < 0 || listen(12, 4) ||
	       sock(SOCK_STREAM, 13, NULL) < 0 || conn(13, &lname) ||
	       send(13, "early", 5, 0) != 5 ? -1 : 0;
}

/* The next message on @fd: @want, with the credentials of @pid, @uid, @gid. */
static void check_cred_msg(int fd, const char *want, pid_t pid, uid_t uid, gid_t gid)
{
	char buf[64], cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct ucred cr = { 0 };
	struct cmsghdr *c;
	ssize_t n;

	n = recvmsg(fd, &mh, MSG_DONTWAIT);
	c = CMSG_FIRSTHDR(&mh);
	CHECK(n == (ssize_t)strlen(want) && !memcmp(buf, want, n),
	      "fd %d: read %zd '%.*s', want '%s'", fd, n, (int)(n > 0 ? n : 0), buf, want);
	CHECK(c && c->cmsg_type == SCM_CREDENTIALS, "fd %d: '%s' without credentials", fd, want);
	if (c)
		memcpy(&cr, CMSG_DATA(c), sizeof(cr));
	CHECK(cr.pid == pid && cr.uid == uid && cr.gid == gid,
	      "fd %d: '%s' from pid %d uid %u gid %u, want pid %d uid %u gid %u", fd, want,
	      cr.pid, cr.uid, cr.gid, pid, uid, gid);
}

static void check_creds_tree(pid_t child)
{
	int one = 1, a;

	check_cred_msg(11, "par", getpid(), getuid(), getgid());
	check_cred_msg(11, "uid", getpid(), 1234, 5678);
	check_cred_msg(11, "kid", child, getuid(), getgid());
	check_empty(11);
	CHECK(opt(11, SO_PASSCRED) == 1 && opt(10, SO_PASSCRED) == 0,
	      "SO_PASSCRED: fd 10 %d, fd 11 %d", opt(10, SO_PASSCRED), opt(11, SO_PASSCRED));
	a = accept(12, NULL, NULL);
	CHECK(a >= 0, "fd 12: the waiting connection is gone");
	if (a < 0)
		return;
	CHECK(!setsockopt(a, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), "SO_PASSCRED");
	check_cred_msg(a, "early", getpid(), getuid(), getgid());
	close(a);
	/* New messages carry their own sender's credentials again. */
	CHECK(send(10, "new", 3, 0) == 3, "fd 10: send");
	check_cred_msg(11, "new", getpid(), getuid(), getgid());
}

/* --- --rights: files in flight --- */

static ino_t rights_ino;		/* DIR/rights.dat */
static char fds_before[512];	/* the open fds, "0 1 2 10 ..." */

/* The numbers of the open fds, in order, into @out. */
static void open_fds(char *out, size_t size)
{
	DIR *d = opendir("/proc/self/fd");
	bool open[1024] = { false };
	struct dirent *e;
	size_t len = 0;

	out[0] = 0;
	if (!d)
		return;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] != '.' && fd != dirfd(d) && fd >= 0 && fd < 1024)
			open[fd] = true;
	}
	closedir(d);
	for (int fd = 0; fd < 1024; fd++)
		if (open[fd] && len < size)
			len += snprintf(out + len, size - len, "%d ", fd);
}

/* Sends @msg from @s passing the @n files @fds (SCM_RIGHTS). */
static int send_fds(int s, const char *msg, const int *fds, int n)
{
	char cbuf[CMSG_SPACE(4 * sizeof(int))] = { 0 };
	struct iovec iov = { (void *)msg, strlen(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (n) {
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	}
	return sendmsg(s, &mh, 0) == (ssize_t)strlen(msg) ? 0 : -1;
}

/*
 * Receives strlen(@want) bytes from @s, which must be @want, with exactly
 * @n files (SCM_RIGHTS) into @fds.
 */
static void recv_fds(int s, const char *want, int *fds, int n)
{
	char buf[64] = { 0 }, cbuf[CMSG_SPACE(8 * sizeof(int))] = { 0 };
	struct iovec iov = { buf, strlen(want) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t got = recvmsg(s, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	int nr = 0;

	CHECK(got == (ssize_t)strlen(want) && !memcmp(buf, want, got),
	      "fd %d: read %zd '%s', want '%s'", s, got, buf, want);
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			nr = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(c), (nr < n ? nr : n) * sizeof(int));
		}
	CHECK(nr == n, "fd %d: '%s' came with %d files in flight, want %d", s, want, nr, n);
	CHECK(!(mh.msg_flags & MSG_CTRUNC), "fd %d: '%s': its files were cut", s, want);
	for (int i = nr; i < n; i++)
		fds[i] = -1;
}

/* @a and @b are one open file description. */
static bool same_file(int a, int b)
{
	return syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b) == 0;
}

/* Regular file @fd: DIR/rights.dat, at offset @pos, open @acc. */
static void check_rights_file(int fd, off_t pos, int acc, const char *what)
{
	struct stat st;

	CHECK(!fstat(fd, &st) && st.st_ino == rights_ino, "%s: not rights.dat", what);
	CHECK(lseek(fd, 0, SEEK_CUR) == pos, "%s: offset %lld, want %lld", what,
	      (long long)lseek(fd, 0, SEEK_CUR), (long long)pos);
	CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == acc, "%s: access mode %#x, want %#x", what,
	      fcntl(fd, F_GETFL) & O_ACCMODE, acc);
}

/* Reads @want (all of it, nothing more) from pipe end @fd. */
static void check_pipe_read(int fd, const char *want, const char *what)
{
	char buf[16] = { 0 };
	ssize_t n;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	n = read(fd, buf, sizeof(buf) - 1);
	CHECK(n == (ssize_t)strlen(want) && !memcmp(buf, want, n), "%s: read %zd '%s', want '%s'",
	      what, n, buf, want);
}

static int setup_rights(void)
{
	int sv[2], dv[2], pa[2], pb[2], f, g, null, ev;
	char file[300];

	/* Hold fds 10-15 so that nothing below lands on them before place(). */
	null = open("/dev/null", O_RDONLY);
	for (int fd = 10; fd <= 15; fd++)
		if (null < 0 || dup2(null, fd) != fd)
			return -1;
	close(null);
	snprintf(file, sizeof(file), "%s/rights.dat", dir);
	f = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f < 0 || write(f, "0123456789", 10) != 10 || lseek(f, 4, SEEK_SET) != 4)
		return -1;
	g = open(file, O_RDONLY);
	null = open("/dev/null", O_WRONLY);
	ev = eventfd(5, 0);
	if (g < 0 || lseek(g, 2, SEEK_SET) != 2 || null < 0 || ev < 0 || place(ev, 14) ||
	    pipe(pa) || pipe(pb) || place(pa[1], 15) || write(15, "pa", 2) != 2 ||
	    write(pb[1], "pb", 2) != 2 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) ||
	    place(sv[0], 10) || place(sv[1], 11) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dv) ||
	    place(dv[0], 12) || place(dv[1], 13))
		return -1;
	{
		struct stat st;
		int pipes[3] = { pa[0], pb[0], pb[1] }, d1[2] = { g, null }, d2[2] = { 15, 10 };
		int shared = 14;

		if (fstat(f, &st) || send_fds(10, "plain", NULL, 0) || send_fds(10, "file", &f, 1) ||
		    send_fds(10, "pipes", pipes, 3) || send_fds(10, "shared", &shared, 1) ||
		    send_fds(12, "d1", d1, 2) || send_fds(12, "d2", d2, 2))
			return -1;
		rights_ino = st.st_ino;
	}
	/* From here they are only in flight. */
	close(f);
	close(g);
	close(null);
	close(pa[0]);
	close(pb[0]);
	close(pb[1]);
	record(10, 13);
	open_fds(fds_before, sizeof(fds_before));
	return 0;
}

static void check_rights(void)
{
	char now[512];
	int fd[3];
	struct stat st;

	open_fds(now, sizeof(now));
	CHECK(!strcmp(now, fds_before), "open fds '%s', were '%s'", now, fds_before);

	recv_fds(11, "plain", fd, 0);
	recv_fds(11, "file", fd, 1);
	if (fd[0] >= 0) {
		char buf[16] = { 0 };

		check_rights_file(fd[0], 4, O_RDWR, "'file'");
		CHECK(read(fd[0], buf, sizeof(buf)) == 6 && !strcmp(buf, "456789"),
		      "'file': read '%s', want '456789'", buf);
		close(fd[0]);
	}
	recv_fds(11, "pipes", fd, 3);
	if (fd[0] >= 0 && fd[1] >= 0 && fd[2] >= 0) {
		check_pipe_read(fd[0], "pa", "'pipes' 1 (fd 15's pipe)");
		CHECK(write(15, "x", 1) == 1, "fd 15: write");
		check_pipe_read(fd[0], "x", "'pipes' 1 after a write to fd 15");
		check_pipe_read(fd[1], "pb", "'pipes' 2 (a pipe only in flight)");
		CHECK(write(fd[2], "y", 1) == 1, "'pipes' 3: write");
		check_pipe_read(fd[1], "y", "'pipes' 2 after a write to 'pipes' 3");
		for (int i = 0; i < 3; i++)
			close(fd[i]);
	}
	recv_fds(11, "shared", fd, 1);
	if (fd[0] >= 0) {
		uint64_t v = 0;

		CHECK(same_file(fd[0], 14), "'shared': not fd 14's eventfd");
		CHECK(read(fd[0], &v, sizeof(v)) == sizeof(v) && v == 5,
		      "'shared': eventfd count %llu, want 5", (unsigned long long)v);
		close(fd[0]);
	}
	check_empty(11);

	recv_fds(13, "d1", fd, 2);
	if (fd[0] >= 0 && fd[1] >= 0) {
		check_rights_file(fd[0], 2, O_RDONLY, "'d1' 1");
		CHECK(!fstat(fd[1], &st) && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3),
		      "'d1' 2: not /dev/null");
		CHECK((fcntl(fd[1], F_GETFL) & O_ACCMODE) == O_WRONLY, "'d1' 2: not O_WRONLY");
		close(fd[0]);
		close(fd[1]);
	}
	recv_fds(13, "d2", fd, 2);
	if (fd[0] >= 0 && fd[1] >= 0) {
		CHECK(same_file(fd[0], 15), "'d2' 1: not fd 15's pipe end");
		CHECK(same_file(fd[1], 10), "'d2' 2: not fd 10's socket");
		close(fd[0]);
		close(fd[1]);
	}
	check_empty(13);
}

/* --- refused kinds: the queued state must survive the refusal --- */

static int setup_refused(const char *kind)
{
	int sv[2], one = 1, fd;
	struct name lname = abstract("bkl"), p;

	if (!strcmp(kind, "--creds"))
		return socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) || place(sv[0], 10) ||
		       place(sv[1], 11) ||
		       setsockopt(11, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) ||
		       send(10, "cred", 4, 0) != 4 ? -1 : 0;
	if (!strcmp(kind, "--creds-outside"))
		return socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) || place(sv[0], 10) ||
		       place(sv[1], 11) ||
		       setsockopt(11, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) ||
		       send_cred(10, "out", 1, getuid(), getgid()) ? -1 : 0;
	if (!strcmp(kind, "--rights-socket") || !strcmp(kind, "--rights-eventfd")) {
		if (!strcmp(kind, "--rights-eventfd"))
			fd = eventfd(3, 0);
		else if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			return -1;
		else
			fd = sv[0], close(sv[1]);
		char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
		struct iovec iov = { "r", 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) || place(sv[0], 10) ||
		    place(sv[1], 11) || sendmsg(10, &mh, 0) != 1)
			return -1;
		close(fd);	/* only in flight */
		return 0;
	}
	if (!strcmp(kind, "--backlog")) {
		struct pollfd pfd = { .fd = 10, .events = POLLIN };

		if (sock(SOCK_STREAM, 10, &lname) < 0 || listen(10, 4))
			return -1;
		outsider = fork();
		if (outsider == 0) {
			/* Not in the checkpoint: it holds the client. */
			fd = socket(AF_UNIX, SOCK_STREAM, 0);
			if (fd < 0 || conn(fd, &lname))
				_exit(1);
			pause();
			_exit(0);
		}
		return outsider < 0 || poll(&pfd, 1, 10000) != 1 ? -1 : 0;
	}
	if (!strcmp(kind, "--early"))
		return sock(SOCK_STREAM, 10, &lname) < 0 || listen(10, 4) ||
		       sock(SOCK_STREAM, 11, NULL) < 0 || conn(11, &lname) ||
		       send(11, "early", 5, 0) != 5 ? -1 : 0;
	if (!strcmp(kind, "--unlinked")) {
		snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/gone.sock");
		p = path(dir);
		unlink(dir);
		return sock(SOCK_DGRAM, 10, &p) < 0 || unlink(dir) ? -1 : 0;
	}
	return -1;
}

static void check_refused(const char *kind)
{
	if (!strcmp(kind, "--creds"))
		check_recv(11, "cred");
	if (!strcmp(kind, "--creds-outside"))
		check_cred_msg(11, "out", 1, getuid(), getgid());
	if (!strcmp(kind, "--rights-socket") || !strcmp(kind, "--rights-eventfd"))
		check_recv(11, "r");
	if (!strcmp(kind, "--backlog")) {
		int a = accept(10, NULL, NULL);

		CHECK(a >= 0, "fd 10: the waiting connection is gone");
		close(a);
		kill(outsider, SIGKILL);
		waitpid(outsider, NULL, 0);
	}
	if (!strcmp(kind, "--early")) {
		int a = accept(10, NULL, NULL);

		CHECK(a >= 0, "fd 10: the waiting connection is gone");
		check_recv(a, "early");
		close(a);
	}
	if (!strcmp(kind, "--unlinked")) {
		struct sockaddr_un a;
		socklen_t len = sizeof(a);

		CHECK(!getsockname(10, (void *)&a, &len) && len > sizeof(sa_family_t),
		      "fd 10: its name is gone");
	}
}

int main(int argc, char **argv)
{
	const char *go = NULL, *kind = NULL;
	bool do_fork = false;
	pid_t child = 0;
	int err;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--go") && i + 1 < argc)
			go = argv[++i];
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			snprintf(dir, sizeof(dir), "%s", argv[++i]);
		else if (!strcmp(argv[i], "--fork"))
			do_fork = true;
		else
			kind = argv[i];
	}
	if (!go || !dir[0] || !kind || chdir(dir)) {
		fprintf(stderr, "usage: unixsock --dir DIR --go FILE [--fork] --KIND\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(kind, "--stream"))
		err = setup_stream();
	else if (!strcmp(kind, "--dgram"))
		err = setup_dgram();
	else if (!strcmp(kind, "--seqpacket"))
		err = setup_seqpacket();
	else if (!strcmp(kind, "--options"))
		err = setup_options();
	else if (!strcmp(kind, "--creds-tree"))
		err = setup_creds_tree();
	else if (!strcmp(kind, "--rights"))
		err = setup_rights();
	else
		err = setup_refused(kind);
	if (err) {
		printf("setup %s failed: %s\n", kind, strerror(errno));
		return 2;
	}
	if (do_fork) {
		child = fork();
		if (child < 0)
			return 2;
		if (child == 0) {
			/* A message of its own, with its credentials. */
			if (!strcmp(kind, "--creds-tree")) {
				if (send(10, "kid", 3, 0) != 3)
					_exit(2);
				/* The parent's image alone holds (and shows) the queues. */
				for (int fd = 10; fd <= 13; fd++)
					close(fd);
			}
			sc_child_ready(go);
			/* The credentials kinds' fds 10, 11 are an unnamed socketpair. */
			if (strncmp(kind, "--creds", 7))
				check_names(10, 11);
			_exit(failed);
		}
	}
	sc_parent_ready(go, child);
	if (!strcmp(kind, "--stream"))
		check_stream();
	else if (!strcmp(kind, "--dgram"))
		check_dgram();
	else if (!strcmp(kind, "--seqpacket"))
		check_seqpacket();
	else if (!strcmp(kind, "--options"))
		check_options();
	else if (!strcmp(kind, "--creds-tree"))
		check_creds_tree(child);
	else if (!strcmp(kind, "--rights"))
		check_rights();
	else
		check_refused(kind);
	return sc_done();
}
