// SPDX-License-Identifier: GPL-2.0
/*
 * TCP and UDP sockets over IPv4 and IPv6 (issue 14; refused before as
 * "AF_INET SOCK_STREAM sockets are not supported"). The inet workload
 * (tests/workloads/inet.c) holds them; a peer forked by the test, outside
 * the checkpointed process, stands at the other end of its connections:
 *
 *   conn4, conn6  an established connection with bytes in both queues, the
 *                 workload checkpointed with --kill and restored: the peer
 *                 keeps its socket and reads every byte the workload wrote,
 *                 once and in order, then the end of the stream (no RST,
 *                 no reconnect); the workload reads the peer's bytes and
 *                 finds its options (TCP_NODELAY, SO_KEEPALIVE,
 *                 TCP_KEEP*, SO_SNDBUF/SO_RCVBUF, SO_MARK, O_NONBLOCK)
 *                 and addresses as they were.
 *   listen        a listener and an accepted connection: after the
 *                 restore the connection's bytes read back and the
 *                 listener accepts a new client.
 *   pair          both ends inside a --tree --kill checkpoint (IPv6, with
 *                 IPV6_V6ONLY), bytes queued in both directions.
 *   half          half-closed connections to the peer, by us (FIN_WAIT2)
 *                 and by the peer (CLOSE_WAIT), with unread bytes: after
 *                 the restore, bytes, end of stream and the last words
 *                 arrive as they would have.
 *   udp           bound and connected UDP sockets, IPv4 and IPv6.
 *   refused       a listener with an option restore would not set again
 *                 (TCP_DEFER_ACCEPT): refused by name, nothing killed.
 *   queue         a listener with three connections completed by the
 *                 peer's clients but not accepted, each with the client's
 *                 bytes unread: after the --kill checkpoint and restore the
 *                 workload accepts them in order, reads the bytes and the
 *                 clients' "more", and answers; the clients, which kept
 *                 their sockets, get the answers (no reset, no reconnect).
 *   many          65 waiting connections, one more than a checkpoint
 *                 takes: refused by name, nothing killed.
 *   crash         the workload is checkpointed without --kill, then
 *                 SIGKILLed (its peer sees the connection reset) and
 *                 restored: the restore succeeds, the old connection
 *                 reports the reset, the listener accepts new clients.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "selfcheck.h"

#define INET_TMP	TEST_TMP "/inet"
#define PEER_BYTES	3000

enum peer_kind { PEER_NONE, PEER_CONN, PEER_LISTEN, PEER_HALF, PEER_QUEUE };

FIXTURE(inet) {
	struct selfcheck sc;
	pid_t peer;
};

FIXTURE_VARIANT(inet) {
	const char *mode;
	bool tree;
	enum peer_kind peer;
	int family;		/* PEER_CONN */
	bool crash;		/* checkpoint without --kill, then SIGKILL */
	const char *refused;	/* the checkpoint is refused, naming this */
};

FIXTURE_VARIANT_ADD(inet, conn4) { .mode = "--conn4", .peer = PEER_CONN, .family = AF_INET };
FIXTURE_VARIANT_ADD(inet, conn6) { .mode = "--conn6", .peer = PEER_CONN, .family = AF_INET6 };
FIXTURE_VARIANT_ADD(inet, listen) { .mode = "--listen", .peer = PEER_LISTEN };
FIXTURE_VARIANT_ADD(inet, pair) { .mode = "--pair", .tree = true };
FIXTURE_VARIANT_ADD(inet, udp) { .mode = "--udp" };
FIXTURE_VARIANT_ADD(inet, half) { .mode = "--half", .peer = PEER_HALF };
FIXTURE_VARIANT_ADD(inet, refused) { .mode = "--refused", .refused = "TCP_DEFER_ACCEPT" };
FIXTURE_VARIANT_ADD(inet, queue) { .mode = "--queue", .peer = PEER_QUEUE };
FIXTURE_VARIANT_ADD(inet, many) {
	.mode = "--many", .refused = "65 connections waiting in its accept queue"
};
FIXTURE_VARIANT_ADD(inet, crash) { .mode = "--crash", .peer = PEER_LISTEN, .crash = true };

static unsigned char peer_byte(size_t i) { return (i * 11 + 5) & 0xff; }
static unsigned char our_byte(size_t i) { return (i * 7 + 13) & 0xff; }

static void peer_die(const char *what)
{
	fprintf(stderr, "peer: %s: %s\n", what, strerror(errno));
	_exit(1);
}

static long read_num(const char *base, const char *name)
{
	char path[400], *s;
	long v;

	snprintf(path, sizeof(path), "%s/%s", base, name);
	while (access(path, F_OK))
		sleep_ms(10);
	s = slurp(path, NULL);
	v = s ? atol(s) : -1;
	free(s);
	return v;
}

static void wait_go(const char *go)
{
	while (access(go, F_OK))
		sleep_ms(10);
}

static void send_all(int fd, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char b = peer_byte(i);

		if (send(fd, &b, 1, MSG_NOSIGNAL) != 1)
			peer_die("send");
	}
}

/* Reads @n bytes of the workload's pattern, then the end of the stream. */
static void expect_stream(int fd, long n)
{
	static unsigned char buf[65536];
	long got = 0;
	ssize_t r;

	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };

		if (poll(&p, 1, 60000) != 1) {
			fprintf(stderr, "peer: %ld of %ld bytes, then nothing\n", got, n);
			_exit(1);
		}
		r = recv(fd, buf, sizeof(buf), 0);
		if (r < 0)
			peer_die("recv (the connection was reset?)");
		if (r == 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			if (got + i >= n || buf[i] != our_byte(got + i)) {
				fprintf(stderr, "peer: byte %ld is wrong (or beyond %ld)\n",
					got + i, n);
				_exit(1);
			}
		got += r;
	}
	if (got != n) {
		fprintf(stderr, "peer: %ld of %ld bytes, then the end\n", got, n);
		_exit(1);
	}
}

/* The far end of --conn4/--conn6: listens, and keeps the connection. */
static void peer_conn(const char *base, const char *go, int family)
{
	struct sockaddr_storage ss = { .ss_family = family };
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in)
					  : sizeof(struct sockaddr_in6);
	char port[16], path[400];
	int l = socket(family, SOCK_STREAM, 0), c;

	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	if (l < 0 || bind(l, (struct sockaddr *)&ss, len) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&ss, &len))
		peer_die("listen");
	snprintf(port, sizeof(port), "%d",
		 ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					 : ((struct sockaddr_in6 *)&ss)->sin6_port));
	snprintf(path, sizeof(path), "%s/port", base);
	if (write_file(path, port, strlen(port)))
		peer_die("port file");
	c = accept(l, NULL, NULL);
	if (c < 0)
		peer_die("accept");
	close(l);
	send_all(c, PEER_BYTES);
	wait_go(go);
	expect_stream(c, read_num(base, "wrote"));
	close(c);
	_exit(0);
}

static int connect_port(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int c = socket(AF_INET, SOCK_STREAM, 0);

	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)))
		peer_die("connect");
	return c;
}

/* The clients of --listen/--crash. */
static void peer_listen(const char *base, const char *go)
{
	int port = read_num(base, "port"), c, d;
	char buf[8];

	c = connect_port(port);
	send_all(c, PEER_BYTES);
	wait_go(go);
	d = connect_port(port);
	if (send(d, "hello", 5, MSG_NOSIGNAL) != 5)
		peer_die("send hello");
	if (recv(d, buf, 5, MSG_WAITALL) != 5 || memcmp(buf, "world", 5))
		peer_die("no answer from the restored listener");
	close(c);
	_exit(0);
}

/* The far end of --half: the second connection it half-closes itself. */
static void peer_half(const char *base, const char *go)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0), a, b;
	char port[16], path[400], buf[8];

	if (l < 0 || bind(l, (struct sockaddr *)&sa, len) || listen(l, 2) ||
	    getsockname(l, (struct sockaddr *)&sa, &len))
		peer_die("listen");
	snprintf(port, sizeof(port), "%d", ntohs(sa.sin_port));
	snprintf(path, sizeof(path), "%s/port", base);
	if (write_file(path, port, strlen(port)))
		peer_die("port file");
	a = accept(l, NULL, NULL);
	b = accept(l, NULL, NULL);
	if (a < 0 || b < 0)
		peer_die("accept");
	send_all(a, PEER_BYTES);
	send_all(b, PEER_BYTES);
	if (shutdown(b, SHUT_WR))
		peer_die("shutdown");
	wait_go(go);
	read_num(base, "checked");	/* the states are seen before it closes */
	expect_stream(a, 1000);
	close(a);
	if (recv(b, buf, sizeof(buf), MSG_WAITALL) != 3 || memcmp(buf, "bye", 3))
		peer_die("no \"bye\" then the end on the connection it half-closed");
	_exit(0);
}

#define QUEUE_CLIENTS	3

/* As the workload's client_byte() and client_len(). */
static unsigned char client_byte(int k, size_t i) { return i ? (i * 13 + k) & 0xff : k; }
static size_t client_len(int k) { return 1000 + 700 * k; }

/* The clients of --queue: connected and sent before the checkpoint, never accepted. */
static void peer_queue(const char *base, const char *go)
{
	int port = read_num(base, "port"), c[QUEUE_CLIENTS], k;
	char path[400], buf[8], want[8];

	for (k = 0; k < QUEUE_CLIENTS; k++) {
		c[k] = connect_port(port);
		for (size_t i = 0; i < client_len(k); i++) {
			unsigned char b = client_byte(k, i);

			if (send(c[k], &b, 1, MSG_NOSIGNAL) != 1)
				peer_die("send");
		}
	}
	snprintf(path, sizeof(path), "%s/sent", base);
	if (write_file(path, "1", 1))
		peer_die("sent file");
	wait_go(go);
	read_num(base, "accepted");	/* the bytes before were seen alone */
	for (k = 0; k < QUEUE_CLIENTS; k++) {
		snprintf(want, sizeof(want), "more%d", k);
		if (send(c[k], want, 5, MSG_NOSIGNAL) != 5)
			peer_die("send more (the connection was reset?)");
	}
	for (k = 0; k < QUEUE_CLIENTS; k++) {
		snprintf(want, sizeof(want), "ok%d", k);
		if (recv(c[k], buf, 3, MSG_WAITALL) != 3 || memcmp(buf, want, 3)) {
			fprintf(stderr, "peer: client %d: no answer \"%s\"\n", k, want);
			_exit(1);
		}
		if (recv(c[k], buf, 1, 0) != 0)
			peer_die("client: no clean end of the stream");
		close(c[k]);
	}
	_exit(0);
}

FIXTURE_SETUP(inet)
{
	char tmp[200];

	self->peer = -1;
	/* One directory per variant: the peer and the workload meet in it. */
	snprintf(tmp, sizeof(tmp), "%s/%s", INET_TMP, variant->mode + 2);
	rm_rf(tmp);	/* a failed run's port, wrote and go files */
	sc_setup(_metadata, &self->sc, tmp, "inet", variant->tree);
	/* The guest has a loopback only, down until someone brings it up. */
	system("ip link set lo up 2>/dev/null");
}

FIXTURE_TEARDOWN(inet)
{
	kill_and_reap(self->peer);
	sc_teardown(_metadata, &self->sc);
}

/* The crash case: a plain checkpoint, then the process dies by SIGKILL. */
static struct fid_snap *checkpoint_crash(struct __test_metadata *_metadata, struct selfcheck *sc)
{
	struct cmd_result r = { 0 };
	struct fid_snap *before;
	struct ckpt_line c;
	int status;

	before = fid_snap_pids(sc->pids, 1);
	ASSERT_NE(NULL, before);
	ASSERT_EQ(0, amber_checkpoint_args(sc->pid, sc->dir, NULL, &r, &c))
		TH_LOG("checkpoint: status %d, stderr '%s'", r.status, r.err);
	cmd_result_free(&r);
	ASSERT_EQ(0, kill(sc->pid, SIGKILL));
	ASSERT_EQ(0, wait_child(sc->pid, 10000, &status));
	sc->pid = -1;
	return before;
}

/* `amber inspect` lists the listener's waiting connections, held, with their bytes. */
static void inspect_waiting(struct __test_metadata *_metadata, struct selfcheck *sc)
{
	const char *const want[] = { "3 waiting to be accepted", "waiting 1: 127.0.0.1:",
				     "recv-q 1000, held", "waiting 2: ", "recv-q 1700, held",
				     "waiting 3: ", "recv-q 2400, held", NULL };
	struct cmd_result r = { 0 };

	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "inspect", "-D", sc->dir, NULL));
	EXPECT_EQ(0, exit_code(r.status)) TH_LOG("inspect: %s", r.err);
	for (int i = 0; want[i]; i++) {
		const char *w = want[i];

		EXPECT_TRUE(r.out && strstr(r.out, w))
			TH_LOG("inspect does not show \"%s\":\n%s", w, r.out);
	}
	cmd_result_free(&r);
}

TEST_F_TIMEOUT(inet, restore, 240)
{
	struct fid_snap *before;
	int status;

	REQUIRE_AMBER();
	if (variant->peer != PEER_NONE) {
		self->peer = fork();
		ASSERT_LE(0, self->peer);
		if (self->peer == 0) {
			if (variant->peer == PEER_CONN)
				peer_conn(self->sc.base, self->sc.go, variant->family);
			if (variant->peer == PEER_HALF)
				peer_half(self->sc.base, self->sc.go);
			if (variant->peer == PEER_QUEUE)
				peer_queue(self->sc.base, self->sc.go);
			peer_listen(self->sc.base, self->sc.go);
		}
	}
	sc_start(_metadata, &self->sc, variant->mode);
	if (variant->refused) {
		const char *const want[] = { ": socket:[", variant->refused, NULL };

		sc_refused(_metadata, &self->sc, NULL, want);
		return;
	}
	before = variant->crash ? checkpoint_crash(_metadata, &self->sc)
				: sc_checkpoint_kill(_metadata, &self->sc);
	if (variant->peer == PEER_QUEUE)
		inspect_waiting(_metadata, &self->sc);
	sc_restore_check(_metadata, &self->sc, before);
	if (self->peer > 0) {
		ASSERT_EQ(0, wait_child(self->peer, 60000, &status));
		self->peer = -1;
		EXPECT_EQ(0, exit_code(status)) TH_LOG("the peer failed (its stderr is the test's)");
	}
}

TEST_HARNESS_MAIN
