// SPDX-License-Identifier: GPL-2.0
/*
 * Servers (issue 14, acceptance): unmodified Debian servers, each started
 * in its own session with its data, configuration and pid files under
 * TEST_TMP/servers/<test>/, checkpointed with --tree --kill, restored, and
 * driven by clients that live in this test process (outside the
 * checkpointed tree) on loopback:
 *   - redis: redis-server holding 50,000 keys (loaded with redis-cli
 *     --pipe); after the restore it answers a new client, DBSIZE and
 *     DEBUG DIGEST (a hash of every key and value) are those of before,
 *     and a client that kept its connection open across checkpoint, kill
 *     and restore goes on using it: same CLIENT ID, no reconnect;
 *   - nginx: a master and 2 workers serve the same page after the
 *     restore, the same three processes;
 *   - asyncio: tests/workloads/echoserver.py (python3 asyncio) with 10
 *     clients each in the middle of a request when checkpointed (half the
 *     payload sent, its echo unread); after the restore each sends the
 *     rest on the same connection and gets back exactly its payload and
 *     the server's FNV-1a of what it received: no byte lost or duplicated;
 *   - run_redis: `amber run` of redis-server, SIGKILLed twice from
 *     outside and restored each time; clients reconnect, and every key
 *     written before the checkpoint that was restored is there.
 *
 * Until TCP sockets can be checkpointed, each checkpoint is refused, and
 * the refusal must name a TCP socket and nothing else: the message is
 * printed, so that any other blocker shows up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "amber_test.h"

#define SERVERS_TMP	TEST_TMP "/servers"
#define REDIS_SERVER	"/usr/bin/redis-server"
#define REDIS_CLI	"/usr/bin/redis-cli"
#define NGINX		"/usr/sbin/nginx"
#define PYTHON		"/usr/bin/python3"
#define ECHOSERVER	"tests/workloads/echoserver.py"

#define REDIS_KEYS	50000
#define NR_CLIENTS	10
#define PAYLOAD		(24 * 1024)	/* per asyncio client, half before the checkpoint */

/* --- loopback TCP clients --- */

/* A blocking connection to 127.0.0.1:port with 20 s timeouts, -1 if refused. */
static int tcp_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 20 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Retries tcp_connect() until it connects or timeout_ms passes. */
static int tcp_wait_connect(int port, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	int fd;

	while ((fd = tcp_connect(port)) < 0 && now_ms() < end)
		sleep_ms(50);
	return fd;
}

static int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * A redis connection: one reply at a time (RESP2: simple string, error,
 * integer or bulk string; arrays are not needed here).
 */
struct resp {
	int fd;
	char buf[65536];
	size_t len, pos;
};

static int resp_fill(struct resp *c)
{
	ssize_t n;

	if (c->pos == c->len) {
		c->pos = 0;
		c->len = 0;
	}
	if (c->len == sizeof(c->buf))
		return -1;
	n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n <= 0)
		return -1;
	c->len += n;
	return 0;
}

/* The next CRLF-terminated line into out (without CRLF); -1 on EOF/error. */
static int resp_line(struct resp *c, char *out, size_t cap)
{
	for (;;) {
		char *e = memmem(c->buf + c->pos, c->len - c->pos, "\r\n", 2);

		if (e) {
			size_t n = e - (c->buf + c->pos);

			if (n >= cap)
				return -1;
			memcpy(out, c->buf + c->pos, n);
			out[n] = 0;
			c->pos += n + 2;
			return 0;
		}
		if (c->pos) {
			memmove(c->buf, c->buf + c->pos, c->len - c->pos);
			c->len -= c->pos;
			c->pos = 0;
		}
		if (resp_fill(c))
			return -1;
	}
}

/*
 * Sends one command (arguments separated by spaces, none empty) and reads
 * its reply into out: "+OK" style lines keep their type byte ('+', '-',
 * ':'); a bulk string is its bytes ("(nil)" for a null one). -1 on a
 * broken connection or malformed reply.
 */
static int redis_cmd(struct resp *c, char *out, size_t cap, const char *fmt, ...)
{
	char cmd[1024], line[256];
	va_list ap;
	long n;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd) - 2, fmt, ap);
	va_end(ap);
	strcat(cmd, "\r\n");
	if (send_all(c->fd, cmd, strlen(cmd)) || resp_line(c, line, sizeof(line)))
		return -1;
	if (line[0] != '$') {
		snprintf(out, cap, "%s", line);
		return 0;
	}
	n = strtol(line + 1, NULL, 10);
	if (n < 0) {
		snprintf(out, cap, "(nil)");
		return 0;
	}
	if ((size_t)n + 1 > cap)
		return -1;
	while (c->len - c->pos < (size_t)n + 2) {
		if (c->pos) {
			memmove(c->buf, c->buf + c->pos, c->len - c->pos);
			c->len -= c->pos;
			c->pos = 0;
		}
		if (resp_fill(c))
			return -1;
	}
	memcpy(out, c->buf + c->pos, n);
	out[n] = 0;
	c->pos += n + 2;
	return 0;
}

/* The value every loaded key KEY:i holds. */
static void redis_value(char *out, size_t cap, const char *prefix, int i)
{
	snprintf(out, cap, "%s-%d-%08x-%.*s", prefix, i, (unsigned int)(i * 2654435761u),
		 i % 61, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
}

/*
 * Loads keys PREFIX:0 .. PREFIX:n-1 through `redis-cli --pipe` (one
 * pipelined stream, not n round trips). 0 when redis-cli reports n
 * replies and no error.
 */
static int redis_load(const char *base, int port, const char *prefix, int n, char *err,
		      size_t errcap)
{
	char path[300], key[64], val[160], cmd[600], want[64];
	struct cmd_result r = { 0 };
	FILE *f;
	int i, ret;

	snprintf(path, sizeof(path), "%s/load-%s.resp", base, prefix);
	f = fopen(path, "w");
	if (!f)
		return -1;
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%s:%d", prefix, i);
		redis_value(val, sizeof(val), prefix, i);
		fprintf(f, "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", strlen(key), key,
			strlen(val), val);
	}
	if (fclose(f))
		return -1;
	snprintf(cmd, sizeof(cmd), "exec %s -p %d --pipe < %s", REDIS_CLI, port, path);
	if (run_cmdl(120000, &r, "/bin/sh", "-c", cmd, NULL))
		return -1;
	snprintf(want, sizeof(want), "errors: 0, replies: %d", n);
	ret = exit_code(r.status) == 0 && r.out && strstr(r.out, want) ? 0 : -1;
	snprintf(err, errcap, "status %d, stdout '%s', stderr '%s'", r.status, r.out, r.err);
	cmd_result_free(&r);
	unlink(path);
	return ret;
}

/* Every 997th key of PREFIX:0..n-1 (and the last) holds its value: -1 or the bad index. */
static int redis_spot_check(struct resp *c, const char *prefix, int n)
{
	char want[160], got[256];

	for (int i = 0; i < n; i = i + 997 < n || i == n - 1 ? i + 997 : n - 1) {
		redis_value(want, sizeof(want), prefix, i);
		if (redis_cmd(c, got, sizeof(got), "GET %s:%d", prefix, i) || strcmp(want, got))
			return i;
	}
	return -1;
}

/* --- one server under test --- */

struct server {
	char base[256], img[300], out[300];
	pid_t pid;		/* the server's root process (its session) */
	char refusal[4096];	/* the checkpoint's stderr, when refused */
};

static void server_setup(struct __test_metadata *_metadata, struct server *s)
{
	mkdir(TEST_TMP, 0755);
	mkdir(SERVERS_TMP, 0755);
	snprintf(s->base, sizeof(s->base), "%s/%s", SERVERS_TMP, _metadata->name);
	snprintf(s->img, sizeof(s->img), "%s/img", s->base);
	snprintf(s->out, sizeof(s->out), "%s/out", s->base);
	s->pid = -1;
	s->refusal[0] = 0;
	ASSERT_EQ(0, fresh_dir(s->base));
	ASSERT_EQ(0, fresh_dir(s->img));
	/* nginx's workers drop to an unprivileged user: let them read the page. */
	ASSERT_EQ(0, chmod(s->base, 0755));
	ASSERT_EQ(0, become_subreaper());
}

static void server_teardown(struct __test_metadata *_metadata, struct server *s)
{
	if (s->pid > 0) {
		kill_tree(s->pid);
		kill(-s->pid, SIGKILL);
		reap_gone(s->pid, 10000);
	}
	if (_metadata->passed)
		rm_rf(s->base);
}

/* Starts argv in its own session, output to s->out. */
static pid_t server_start(struct server *s, char *const argv[])
{
	struct spawn_opts o = { .out_path = s->out, .new_session = true, .pdeathsig = true };

	s->pid = spawn(argv, &o);
	return s->pid;
}

/*
 * `amber checkpoint --tree --kill`: 0 when it succeeded and the whole
 * tree is gone. When refused, s->refusal holds the message, every process
 * must still run, and -1 is returned: the caller fails the test with it.
 */
static int server_checkpoint_kill(struct __test_metadata *_metadata, struct server *s,
				  pid_t *pids, int n)
{
	static const char *const opts[] = { "--tree", "--kill", NULL };
	struct cmd_result r = { 0 };
	struct ckpt_line c;
	int ret, i;

	ret = amber_checkpoint_args(s->pid, s->img, opts, &r, &c);
	if (ret || exit_code(r.status)) {
		snprintf(s->refusal, sizeof(s->refusal), "status %d: %s", exit_code(r.status),
			 r.err ? r.err : "");
		cmd_result_free(&r);
		for (i = 0; i < n; i++) {
			EXPECT_TRUE(pid_alive(pids[i]))
				TH_LOG("pid %d died although the checkpoint was refused", pids[i]);
		}
		return -1;
	}
	TH_LOG("checkpoint: stopped %.1f ms, total %.1f ms, %llu bytes", c.stopped_ms,
	       c.total_ms, c.bytes);
	cmd_result_free(&r);
	for (i = 0; i < n; i++) {
		EXPECT_EQ(0, reap_gone(pids[i], 10000)) TH_LOG("pid %d outlived --kill", pids[i]);
	}
	return 0;
}

/*
 * `amber restore -D img --detach`: it returns once every process is
 * restored and released (they are then reparented to this test, a
 * subreaper). 0 when it said so for @pids[0] and every pid of @pids runs.
 */
static int server_restore(struct __test_metadata *_metadata, struct server *s,
			  const pid_t *pids, int n)
{
	struct cmd_result r = { 0 };
	pid_t pid = 0;
	int ret = 0;

	if (run_cmdl(120000, &r, AMBER_BIN, "restore", "-D", s->img, "--detach", NULL))
		return -1;
	if (exit_code(r.status) || parse_restored_line(r.out, &pid) || pid != pids[0]) {
		TH_LOG("amber restore: status %d, stdout '%s', stderr '%s'", exit_code(r.status),
		       r.out, r.err);
		ret = -1;
	}
	cmd_result_free(&r);
	for (int i = 0; i < n && !ret; i++) {
		if (!pid_alive(pids[i])) {
			TH_LOG("pid %d is not running after the restore", pids[i]);
			ret = -1;
		}
	}
	return ret;
}

#define CHECKPOINT_KILL(s, pids, n)						\
	ASSERT_EQ(0, server_checkpoint_kill(_metadata, s, pids, n))		\
		TH_LOG("checkpoint --tree --kill refused: %s", (s)->refusal)

#define RESTORE(s, pids, n)							\
	ASSERT_EQ(0, server_restore(_metadata, s, pids, n))			\
		TH_LOG("the server's processes did not come back")

FIXTURE(servers) {
	struct server s;
};

FIXTURE_SETUP(servers)
{
	server_setup(_metadata, &self->s);
}

FIXTURE_TEARDOWN(servers)
{
	server_teardown(_metadata, &self->s);
}

/* --- redis --- */

#define REDIS_PORT	16379

static pid_t redis_start(struct server *s, int port)
{
	char portstr[16];
	struct args a = { 0 };

	snprintf(portstr, sizeof(portstr), "%d", port);
	args_add(&a, REDIS_SERVER, "--port", portstr, "--bind", "127.0.0.1", "--dir", s->base,
		 "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
		 "--enable-debug-command", "local", NULL);
	return server_start(s, ARGV(&a));
}

TEST_F_TIMEOUT(servers, redis, 600)
{
	char digest[128], got[256], id[64], err[1024];
	struct resp *kept = calloc(1, sizeof(*kept)), *fresh = calloc(1, sizeof(*fresh));
	pid_t pids[8];
	int n, bad;

	REQUIRE_AMBER();
	ASSERT_TRUE(kept && fresh);
	ASSERT_EQ(0, access(REDIS_SERVER, X_OK)) TH_LOG("redis-server: run scripts/setup.sh");
	ASSERT_LT(0, redis_start(&self->s, REDIS_PORT));
	kept->fd = tcp_wait_connect(REDIS_PORT, 30000);
	ASSERT_LE(0, kept->fd) TH_LOG("redis-server does not answer on %d", REDIS_PORT);
	ASSERT_EQ(0, redis_load(self->s.base, REDIS_PORT, "key", REDIS_KEYS, err, sizeof(err)))
		TH_LOG("redis-cli --pipe: %s", err);

	/* The kept client: its id, a key of its own, the dataset's digest. */
	ASSERT_EQ(0, redis_cmd(kept, id, sizeof(id), "CLIENT ID"));
	ASSERT_EQ(0, redis_cmd(kept, got, sizeof(got), "SET kept before"));
	ASSERT_STREQ("+OK", got);
	ASSERT_EQ(0, redis_cmd(kept, got, sizeof(got), "DBSIZE"));
	ASSERT_EQ(REDIS_KEYS + 1, atoi(got + 1));
	ASSERT_EQ(0, redis_cmd(kept, digest, sizeof(digest), "DEBUG DIGEST"));
	ASSERT_EQ('+', digest[0]) TH_LOG("DEBUG DIGEST: %s", digest);

	n = tree_pids(self->s.pid, pids, 8);
	ASSERT_EQ(1, n);
	CHECKPOINT_KILL(&self->s, pids, n);
	RESTORE(&self->s, pids, n);

	/* A new client is answered, and sees every key. */
	fresh->fd = tcp_connect(REDIS_PORT);
	ASSERT_LE(0, fresh->fd) TH_LOG("the restored redis-server does not accept");
	ASSERT_EQ(0, redis_cmd(fresh, got, sizeof(got), "PING"));
	ASSERT_STREQ("+PONG", got);
	ASSERT_EQ(0, redis_cmd(fresh, got, sizeof(got), "DBSIZE"));
	EXPECT_EQ(REDIS_KEYS + 1, atoi(got + 1)) TH_LOG("DBSIZE %s", got);
	ASSERT_EQ(0, redis_cmd(fresh, got, sizeof(got), "DEBUG DIGEST"));
	EXPECT_STREQ(digest, got);
	bad = redis_spot_check(fresh, "key", REDIS_KEYS);
	EXPECT_EQ(-1, bad) TH_LOG("key:%d lost its value", bad);

	/* The kept connection goes on: same client, its key, a write. */
	ASSERT_EQ(0, redis_cmd(kept, got, sizeof(got), "CLIENT ID"))
		TH_LOG("the connection kept across the restore is broken");
	EXPECT_STREQ(id, got) TH_LOG("not the same client");
	ASSERT_EQ(0, redis_cmd(kept, got, sizeof(got), "GET kept"));
	EXPECT_STREQ("before", got);
	ASSERT_EQ(0, redis_cmd(kept, got, sizeof(got), "SET kept after"));
	EXPECT_STREQ("+OK", got);
	ASSERT_EQ(0, redis_cmd(fresh, got, sizeof(got), "GET kept"));
	EXPECT_STREQ("after", got);
	ASSERT_EQ(0, redis_cmd(kept, got, sizeof(got), "GET key:%d", REDIS_KEYS - 1));
	redis_value(err, sizeof(err), "key", REDIS_KEYS - 1);
	EXPECT_STREQ(err, got);
	close(kept->fd);
	close(fresh->fd);
	free(kept);
	free(fresh);
}

/* --- nginx --- */

#define NGINX_PORT	18080

/*
 * An HTTP/1.0 GET of / : the response body (malloc'ed), NULL on error
 * (with what failed in @status).
 */
static char *http_get(int port, char *status, size_t cap)
{
	static const char req[] = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
	size_t len = 0, size = 4096;
	char *buf = malloc(size), *body, *eol;
	int fd = tcp_connect(port);
	ssize_t n;

	snprintf(status, cap, "connect: %s", strerror(errno));
	if (fd < 0 || !buf)
		goto fail;
	if (send_all(fd, req, sizeof(req) - 1)) {
		snprintf(status, cap, "send: %s", strerror(errno));
		goto fail;
	}
	while ((n = recv(fd, buf + len, size - len - 1, 0)) > 0) {
		len += n;
		if (len + 1 == size) {
			char *more = realloc(buf, size * 2);

			if (!more)
				goto fail;
			buf = more;
			size *= 2;
		}
	}
	if (n < 0) {
		snprintf(status, cap, "recv after %zu bytes: %s", len, strerror(errno));
		goto fail;
	}
	buf[len] = 0;
	snprintf(status, cap, "malformed response of %zu bytes", len);
	close(fd);
	body = strstr(buf, "\r\n\r\n");
	eol = strstr(buf, "\r\n");
	if (!body || !eol)
		goto fail_closed;
	snprintf(status, cap, "%.*s", (int)(eol - buf), buf);
	body = strdup(body + 4);
	free(buf);
	return body;
fail:
	if (fd >= 0)
		close(fd);
fail_closed:
	free(buf);
	return NULL;
}

static int nginx_conf(const char *base, int port)
{
	char path[300], conf[2048];
	int n;

	snprintf(path, sizeof(path), "%s/html", base);
	if (mkdir(path, 0755) || chmod(path, 0755))
		return -1;
	snprintf(path, sizeof(path), "%s/html/index.html", base);
	n = snprintf(conf, sizeof(conf), "<html><body>amber nginx page %d</body></html>\n",
		     getpid());
	if (write_file(path, conf, n) || chmod(path, 0644))
		return -1;
	snprintf(path, sizeof(path), "%s/nginx.conf", base);
	n = snprintf(conf, sizeof(conf),
		     "daemon off;\n"
		     "master_process on;\n"
		     "worker_processes 2;\n"
		     "pid %1$s/nginx.pid;\n"
		     "error_log %1$s/error.log notice;\n"
		     "events { worker_connections 64; }\n"
		     "http {\n"
		     "  access_log %1$s/access.log;\n"
		     "  client_body_temp_path %1$s/body;\n"
		     "  proxy_temp_path %1$s/proxy;\n"
		     "  fastcgi_temp_path %1$s/fastcgi;\n"
		     "  uwsgi_temp_path %1$s/uwsgi;\n"
		     "  scgi_temp_path %1$s/scgi;\n"
		     "  server {\n"
		     "    listen 127.0.0.1:%2$d;\n"
		     "    root %1$s/html;\n"
		     "  }\n"
		     "}\n", base, port);
	return write_file(path, conf, n);
}

TEST_F_TIMEOUT(servers, nginx, 300)
{
	char conf[320], errlog[320], status[256], status2[256], *page, *page2;
	struct args a = { 0 };
	pid_t pids[8];
	long long end;
	int n;

	REQUIRE_AMBER();
	ASSERT_EQ(0, access(NGINX, X_OK)) TH_LOG("nginx: run scripts/setup.sh");
	ASSERT_EQ(0, nginx_conf(self->s.base, NGINX_PORT));
	snprintf(conf, sizeof(conf), "%s/nginx.conf", self->s.base);
	snprintf(errlog, sizeof(errlog), "%s/error.log", self->s.base);
	args_add(&a, NGINX, "-p", self->s.base, "-c", conf, "-e", errlog, NULL);
	ASSERT_LT(0, server_start(&self->s, ARGV(&a)));

	/* The master and its two workers, serving. */
	end = now_ms() + 30000;
	while ((n = tree_pids(self->s.pid, pids, 8)) != 3 && n > 0 && now_ms() < end)
		sleep_ms(50);
	ASSERT_EQ(3, n) TH_LOG("nginx: not a master and 2 workers");
	ASSERT_LE(0, tcp_wait_connect(NGINX_PORT, 30000));
	page = http_get(NGINX_PORT, status, sizeof(status));
	ASSERT_NE(NULL, page);
	ASSERT_NE(NULL, strstr(status, " 200 ")) TH_LOG("%s", status);
	ASSERT_NE(NULL, strstr(page, "amber nginx page"));

	CHECKPOINT_KILL(&self->s, pids, n);
	RESTORE(&self->s, pids, n);

	for (int i = 0; i < 4; i++) {
		page2 = http_get(NGINX_PORT, status2, sizeof(status2));
		if (!page2) {
			char *log = slurp(errlog, NULL);

			TH_LOG("request %d after the restore failed: %s; error.log:\n%s", i, status2,
			       log);
			free(log);
		}
		ASSERT_NE(NULL, page2);
		EXPECT_STREQ(status, status2);
		EXPECT_STREQ(page, page2);
		free(page2);
	}
	EXPECT_EQ(3, tree_pids(self->s.pid, pids + 3, 5));
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(pids[i], pids[3 + i])
			TH_LOG("nginx process %d is not pid %d", i, pids[i]);
	}
	free(page);
}

/* --- python asyncio --- */

#define ASYNCIO_PORT	18765

struct echo_client {
	int fd;
	char tag[16];
	char payload[PAYLOAD];
	size_t sent;		/* payload bytes sent */
	char *got;		/* everything received */
	size_t got_len;
};

static uint64_t fnv1a(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3ull;
	return h;
}

/*
 * Moves bytes until every client has sent up to @upto payload bytes and
 * received @want bytes (at most: a client whose echo is short only stops
 * the loop by the timeout). 0 when done.
 */
static int echo_pump(struct echo_client *c, int nr, size_t upto, size_t want, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	struct pollfd p[NR_CLIENTS];
	bool done;

	for (;;) {
		done = true;
		for (int i = 0; i < nr; i++) {
			p[i].fd = c[i].fd;
			p[i].events = (c[i].sent < upto ? POLLOUT : 0) |
				      (c[i].got_len < want ? POLLIN : 0);
			done &= !p[i].events;
		}
		if (done)
			return 0;
		if (now_ms() > end || poll(p, nr, 200) < 0)
			return -1;
		for (int i = 0; i < nr; i++) {
			ssize_t k;

			if (p[i].revents & POLLOUT) {
				k = send(c[i].fd, c[i].payload + c[i].sent, upto - c[i].sent,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
				if (k < 0 && errno != EAGAIN)
					return -1;
				c[i].sent += k > 0 ? k : 0;
			}
			if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				k = recv(c[i].fd, c[i].got + c[i].got_len,
					 PAYLOAD + 128 - c[i].got_len, MSG_DONTWAIT);
				if (k == 0 || (k < 0 && errno != EAGAIN))
					return -1;
				c[i].got_len += k > 0 ? k : 0;
			}
		}
	}
}

TEST_F_TIMEOUT(servers, asyncio, 300)
{
	struct echo_client *c = calloc(NR_CLIENTS, sizeof(*c));
	char port[16], hdr[64], want[128], text[32];
	struct args a = { 0 };
	size_t tail;
	pid_t pids[8];
	int n, i;

	REQUIRE_AMBER();
	ASSERT_NE(NULL, c);
	snprintf(port, sizeof(port), "%d", ASYNCIO_PORT);
	args_add(&a, PYTHON, ECHOSERVER, "--port", port, NULL);
	ASSERT_LT(0, server_start(&self->s, ARGV(&a)));
	ASSERT_EQ(0, wait_for_text(self->s.out, "listening pid", 60000));

	/* 10 clients, each half-way through its request, the echo unread. */
	for (i = 0; i < NR_CLIENTS; i++) {
		c[i].got = calloc(1, PAYLOAD + 128);
		ASSERT_NE(NULL, c[i].got);
		snprintf(c[i].tag, sizeof(c[i].tag), "client%d", i);
		for (size_t k = 0; k < PAYLOAD; k++)
			c[i].payload[k] = (char)(k * 31 + i * 7 + (k >> 8));
		c[i].fd = tcp_connect(ASYNCIO_PORT);
		ASSERT_LE(0, c[i].fd) TH_LOG("client %d cannot connect", i);
		snprintf(hdr, sizeof(hdr), "%s %d\n", c[i].tag, PAYLOAD);
		ASSERT_EQ(0, send_all(c[i].fd, hdr, strlen(hdr)));
	}
	ASSERT_EQ(0, echo_pump(c, NR_CLIENTS, PAYLOAD / 2, 0, 60000));
	/* Wait for the server to have echoed a part of it (it sits in our queues). */
	for (i = 0; i < NR_CLIENTS; i++) {
		struct pollfd p = { .fd = c[i].fd, .events = POLLIN };

		ASSERT_EQ(1, poll(&p, 1, 30000)) TH_LOG("client %d: no echo", i);
	}

	n = tree_pids(self->s.pid, pids, 8);
	ASSERT_EQ(1, n);
	CHECKPOINT_KILL(&self->s, pids, n);
	RESTORE(&self->s, pids, n);

	/* Each finishes its request on the same connection (the tags have one length). */
	tail = snprintf(want, sizeof(want), "\nDONE %s %d %016x\n", c[0].tag, PAYLOAD, 0);
	ASSERT_EQ(0, echo_pump(c, NR_CLIENTS, PAYLOAD, PAYLOAD + tail, 120000))
		TH_LOG("a connection broke or stalled after the restore");
	for (i = 0; i < NR_CLIENTS; i++) {
		snprintf(text, sizeof(text), "%016llx",
			 (unsigned long long)fnv1a(c[i].payload, PAYLOAD));
		snprintf(want, sizeof(want), "\nDONE %s %d %s\n", c[i].tag, PAYLOAD, text);
		EXPECT_EQ(PAYLOAD + strlen(want), c[i].got_len) TH_LOG("client %d", i);
		EXPECT_EQ(0, memcmp(c[i].payload, c[i].got, PAYLOAD))
			TH_LOG("client %d: the echo differs from the payload", i);
		EXPECT_EQ(0, memcmp(want, c[i].got + PAYLOAD, strlen(want)))
			TH_LOG("client %d: got '%.*s', want '%s'", i, (int)strlen(want),
			       c[i].got + PAYLOAD, want);
		close(c[i].fd);
		free(c[i].got);
	}
	free(c);
}

/* --- amber run of redis --- */

#define RUN_PORT	16380

/* Lines of run.log whose event is @event. */
static int run_events(const char *log, const char *event)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "Z %s ", event);
	return count_text(log, needle);
}

/*
 * Waits for run.log to hold @n "checkpoint" events; -1 (the log in
 * *why) if a checkpoint failed or timeout_ms passed.
 */
static int run_wait(const char *log, const char *event, int n, int timeout_ms, char **why)
{
	long long end = now_ms() + timeout_ms;

	while (now_ms() < end) {
		if (run_events(log, event) >= n)
			return 0;
		if (run_events(log, "checkpoint-failed") || run_events(log, "restore-failed") ||
		    run_events(log, "fresh-start") || run_events(log, "give-up"))
			break;
		sleep_ms(100);
	}
	*why = slurp(log, NULL);
	return -1;
}

/* The pid in DIR/pid, 0 if none. */
static pid_t run_pid(const char *dir)
{
	char path[320], *s;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/pid", dir);
	s = slurp(path, NULL);
	pid = s ? atoi(s) : 0;
	free(s);
	return pid;
}

/* A checkpoint taken wholly after now: two more than now logged. */
#define RUN_CHECKPOINT_AFTER(log)						\
	do {									\
		char *why_ = NULL;						\
		int n_ = run_events(log, "checkpoint");				\
		ASSERT_EQ(0, run_wait(log, "checkpoint", n_ + 2, 120000, &why_))	\
			TH_LOG("no checkpoint after the writes; run.log:\n%s", why_);	\
		free(why_);							\
	} while (0)

/*
 * After the restore: a reconnecting client sees exactly the keys written
 * before the checkpoint (DBSIZE, the digest, spot checks). The connection
 * the client kept may work or have been reset by the kill (nobody holds
 * its peer's packets when the program dies by itself): either is fine, a
 * wrong reply is not.
 */
static void run_check(struct __test_metadata *_metadata, struct resp *kept, int keys,
		      const char *digest, int na, int nb)
{
	struct resp *c = calloc(1, sizeof(*c));
	char got[256];
	int bad;

	ASSERT_NE(NULL, c);
	if (!redis_cmd(kept, got, sizeof(got), "DBSIZE")) {
		TH_LOG("the kept connection survived");
		EXPECT_EQ(keys, atoi(got + 1));
	} else {
		TH_LOG("the kept connection was reset: the client reconnects");
	}
	close(kept->fd);
	kept->fd = tcp_wait_connect(RUN_PORT, 30000);
	kept->len = 0;
	kept->pos = 0;
	c->fd = tcp_wait_connect(RUN_PORT, 30000);
	ASSERT_LE(0, c->fd) TH_LOG("the restored redis-server does not accept");
	ASSERT_LE(0, kept->fd);
	ASSERT_EQ(0, redis_cmd(c, got, sizeof(got), "DBSIZE"));
	EXPECT_EQ(keys, atoi(got + 1)) TH_LOG("DBSIZE %s", got);
	ASSERT_EQ(0, redis_cmd(c, got, sizeof(got), "DEBUG DIGEST"));
	EXPECT_STREQ(digest, got);
	bad = redis_spot_check(c, "a", na);
	EXPECT_EQ(-1, bad) TH_LOG("a:%d lost its value", bad);
	bad = nb ? redis_spot_check(c, "b", nb) : -1;
	EXPECT_EQ(-1, bad) TH_LOG("b:%d lost its value", bad);
	close(c->fd);
	free(c);
}

TEST_F_TIMEOUT(servers, run_redis, 600)
{
	char dir[320], log[340], port[16], digest[128], err[1024], *why = NULL;
	struct resp *kept = calloc(1, sizeof(*kept));
	struct args a = { 0 };
	pid_t pid;

	REQUIRE_AMBER();
	ASSERT_NE(NULL, kept);
	snprintf(dir, sizeof(dir), "%s/run", self->s.base);
	snprintf(log, sizeof(log), "%s/run.log", dir);
	snprintf(port, sizeof(port), "%d", RUN_PORT);
	ASSERT_EQ(0, fresh_dir(dir));
	args_add(&a, AMBER_BIN, "run", "-D", dir, "--interval", "2s", "--", REDIS_SERVER,
		 "--port", port, "--bind", "127.0.0.1", "--dir", self->s.base, "--save", "",
		 "--appendonly", "no", "--daemonize", "no", "--enable-debug-command", "local",
		 NULL);
	ASSERT_LT(0, server_start(&self->s, ARGV(&a)));
	kept->fd = tcp_wait_connect(RUN_PORT, 60000);
	ASSERT_LE(0, kept->fd) TH_LOG("redis-server under amber run does not answer");
	pid = run_pid(dir);
	ASSERT_LT(0, pid);

	/* Kill 1: 10,000 keys written before the checkpoint restored. */
	ASSERT_EQ(0, redis_load(self->s.base, RUN_PORT, "a", 10000, err, sizeof(err)))
		TH_LOG("redis-cli --pipe: %s", err);
	ASSERT_EQ(0, redis_cmd(kept, digest, sizeof(digest), "DEBUG DIGEST"));
	RUN_CHECKPOINT_AFTER(log);
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(0, run_wait(log, "restore", 1, 120000, &why)) TH_LOG("run.log:\n%s", why);
	ASSERT_EQ(pid, run_pid(dir));
	run_check(_metadata, kept, 10000, digest, 10000, 0);

	/* Kill 2: 5,000 more. */
	ASSERT_EQ(0, redis_load(self->s.base, RUN_PORT, "b", 5000, err, sizeof(err)))
		TH_LOG("redis-cli --pipe: %s", err);
	ASSERT_EQ(0, redis_cmd(kept, digest, sizeof(digest), "DEBUG DIGEST"));
	RUN_CHECKPOINT_AFTER(log);
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(0, run_wait(log, "restore", 2, 120000, &why)) TH_LOG("run.log:\n%s", why);
	ASSERT_EQ(pid, run_pid(dir));
	run_check(_metadata, kept, 15000, digest, 10000, 5000);

	EXPECT_EQ(2, run_events(log, "died"));
	EXPECT_EQ(0, run_events(log, "fresh-start"));
	close(kept->fd);
	free(kept);
	free(why);
}

TEST_HARNESS_MAIN
