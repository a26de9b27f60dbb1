// SPDX-License-Identifier: GPL-2.0
/* Helpers shared by the amber kselftest tests; see amber_test.h. */
#define _GNU_SOURCE
#include "amber_test.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/amber.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

char *amber_bin(void)
{
	char *env = getenv("AMBER_BIN");

	return env && *env ? env : "build/amber";
}

void args_add(struct args *a, ...)
{
	const char *s;
	va_list ap;

	va_start(ap, a);
	while ((s = va_arg(ap, const char *)) && a->n < 63)
		a->v[a->n++] = s;
	va_end(ap);
	a->v[a->n] = NULL;
}

void args_addv(struct args *a, const char *const *v)
{
	while (v && *v && a->n < 63)
		a->v[a->n++] = *v++;
	a->v[a->n] = NULL;
}

int exit_code(int status)
{
	if (status == -1)
		return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

char *slurp(const char *path, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	for (;;) {
		if (n == cap) {
			char *nb = realloc(buf, 2 * cap + 1);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
	}
	close(fd);
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

int write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ssize_t w;

	if (fd < 0)
		return -1;
	w = write(fd, buf, len);
	close(fd);
	return w == (ssize_t)len ? 0 : -1;
}

off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : st.st_size;
}

long long files_differ(const char *a, const char *b)
{
	size_t la, lb, i;
	char *x = slurp(a, &la), *y = slurp(b, &lb);
	long long ret = 0;

	if (!x || !y) {
		ret = -1;
		goto out;
	}
	for (i = 0; i < la && i < lb; i++)
		if (x[i] != y[i])
			break;
	if (i < la || i < lb)
		ret = i + 1;
out:
	free(x);
	free(y);
	return ret;
}

void rm_rf(const char *path)
{
	pid_t pid = fork();

	if (pid == 0) {
		execl("/bin/rm", "rm", "-rf", "--", path, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

int fresh_dir(const char *path)
{
	char cmd[4096];

	rm_rf(path);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
	return system(cmd) == 0 ? 0 : -1;
}

bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (!hay)
		return false;
	for (; *hay; hay++)
		if (!strncasecmp(hay, needle, n))
			return true;
	return n == 0;
}

static int open_out(const char *path, bool append)
{
	return open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
}

pid_t spawn(char *const argv[], const struct spawn_opts *o)
{
	int in[2] = { -1, -1 }, outp[2] = { -1, -1 };
	pid_t parent = getpid(), pid;

	if (o->stdin_pipe && pipe2(in, O_CLOEXEC))
		return -1;
	if (o->stdout_pipe && pipe2(outp, O_CLOEXEC))
		return -1;
	/* Truncate here, so that nobody polls stale output of a previous run. */
	if (o->out_path && !o->append)
		close(open(o->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd;

		if (o->new_session)
			setsid();
		if (o->pdeathsig) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(127);
		}
		if (o->stdin_pipe)
			fd = dup2(in[0], 0);
		else
			fd = open("/dev/null", O_RDONLY);
		if (fd >= 0 && fd != 0) {
			dup2(fd, 0);
			close(fd);
		}
		if (o->stdout_pipe) {
			dup2(outp[1], 1);
		} else if (o->out_path) {
			fd = open_out(o->out_path, o->append);
			if (fd < 0)
				_exit(127);
			dup2(fd, 1);
			close(fd);
		}
		if (o->err_path) {
			fd = open_out(o->err_path, false);
			if (fd < 0)
				_exit(127);
			dup2(fd, 2);
			close(fd);
		} else if (o->out_path || o->stdout_pipe) {
			dup2(1, 2);
		}
		execv(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (o->stdin_pipe) {
		close(in[0]);
		*o->stdin_fd = in[1];
	}
	if (o->stdout_pipe) {
		close(outp[1]);
		*o->stdout_fd = outp[0];
	}
	return pid;
}

pid_t spawn_workload(char *const argv[], const char *out_path)
{
	struct spawn_opts o = {
		.out_path = out_path,
		.new_session = true,
		.pdeathsig = true,
	};

	return spawn(argv, &o);
}

int wait_child(pid_t pid, int timeout_ms, int *status)
{
	long long end = now_ms() + timeout_ms;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid) {
			if (status)
				*status = st;
			return 0;
		}
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_ms() > end)
			return -1;
		sleep_ms(10);
	}
}

char pid_state(pid_t pid)
{
	char path[64], buf[512], *p;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] && p[2] ? p[2] : 0;
}

bool pid_alive(pid_t pid)
{
	char s = pid_state(pid);

	return s && s != 'Z' && s != 'X';
}

int wait_gone(pid_t pid, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	for (;;) {
		waitpid(pid, NULL, WNOHANG);
		if (!pid_alive(pid))
			return 0;
		if (now_ms() > end)
			return -1;
		sleep_ms(10);
	}
}

void kill_and_reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	wait_gone(pid, 5000);
	waitpid(pid, NULL, WNOHANG);
}

int become_subreaper(void)
{
	return prctl(PR_SET_CHILD_SUBREAPER, 1);
}

int count_text(const char *path, const char *needle)
{
	char *s = slurp(path, NULL), *p;
	int n = 0;

	if (!s)
		return 0;
	for (p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(s);
	return n;
}

int wait_for_text(const char *path, const char *needle, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	for (;;) {
		if (count_text(path, needle) > 0)
			return 0;
		if (now_ms() > end)
			return -1;
		sleep_ms(20);
	}
}

int wait_for_size(const char *path, off_t size, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	for (;;) {
		if (file_size(path) >= size)
			return 0;
		if (now_ms() > end)
			return -1;
		sleep_ms(20);
	}
}

static int mktmp(char *path, size_t len, const char *tag)
{
	int fd;

	mkdir(TEST_TMP, 0755);
	snprintf(path, len, TEST_TMP "/%s.XXXXXX", tag);
	fd = mkstemp(path);
	if (fd >= 0)
		close(fd);
	return fd < 0 ? -1 : 0;
}

int run_cmd(char *const argv[], int timeout_ms, struct cmd_result *r)
{
	char out[256], err[256];
	struct spawn_opts o = { .out_path = out, .err_path = err };
	pid_t pid;
	int st;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	if (mktmp(out, sizeof(out), "out") || mktmp(err, sizeof(err), "err"))
		return -1;
	pid = spawn(argv, &o);
	if (pid < 0)
		return -1;
	if (wait_child(pid, timeout_ms, &st)) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		st = -1;
	}
	r->status = st;
	r->out = slurp(out, NULL);
	r->err = slurp(err, NULL);
	unlink(out);
	unlink(err);
	if (!r->out)
		r->out = strdup("");
	if (!r->err)
		r->err = strdup("");
	return 0;
}

int run_cmdl(int timeout_ms, struct cmd_result *r, const char *arg0, ...)
{
	const char *argv[32];
	va_list ap;
	int n = 0;

	argv[n++] = arg0;
	va_start(ap, arg0);
	while (n < 31 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return run_cmd((char *const *)argv, timeout_ms, r);
}

void cmd_result_free(struct cmd_result *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* The optional second line of `amber checkpoint` (more may follow, e.g. from --keep). */
static int parse_ckpt_kind(const char *l, struct ckpt_line *c)
{
	const char *close, *eol, *p;
	int len = 0;

	if (sscanf(l, "  incremental on checkpoint %u: %llu pages saved, %llu pages unchanged\n%n",
		   &c->parent, &c->saved, &c->unchanged, &len) == 3 && len) {
		c->incremental = true;
		return 0;
	}
	if (sscanf(l, "  full: %llu pages saved\n%n", &c->saved, &len) == 1 && len)
		return 0;
	if (strncmp(l, "  full (", 8))
		return -1;
	/* The last "): " of the line: the reason may hold parentheses too. */
	for (close = NULL, eol = strchrnul(l, '\n'), p = strstr(l, "): "); p && p < eol;
	     p = strstr(p + 1, "): "))
		close = p;
	if (!close || close - (l + 8) >= (long)sizeof(c->reason))
		return -1;
	snprintf(c->reason, sizeof(c->reason), "%.*s", (int)(close - (l + 8)), l + 8);
	if (sscanf(close, "): %llu pages saved\n%n", &c->saved, &len) != 1 || !len)
		return -1;
	return 0;
}

int parse_ckpt_line(const char *out, struct ckpt_line *c)
{
	int n = 0, len = 0;

	memset(c, 0, sizeof(*c));
	if (!out)
		return -1;
	/* (no \n in the format: it would eat the next line's indentation) */
	n = sscanf(out, "checkpoint %u: pid %d, stopped %lf ms, total %lf ms, %llu bytes written%n",
		   &c->number, &c->pid, &c->stopped_ms, &c->total_ms, &c->bytes, &len);
	if (n != 5 || len == 0 || out[len] != '\n')
		return -1;
	len++;
	if (!out[len])
		return 0;
	c->has_kind = true;
	return parse_ckpt_kind(out + len, c);
}

int parse_restored_line(const char *out, pid_t *pid)
{
	int len = 0;

	if (!out || sscanf(out, "restored pid %d\n%n", pid, &len) != 1 || !len)
		return -1;
	return 0;
}

int amber_checkpoint(pid_t pid, const char *dir, bool kill, struct cmd_result *r,
		     struct ckpt_line *c)
{
	const char *const extra[] = { kill ? "--kill" : NULL, NULL };

	return amber_checkpoint_args(pid, dir, extra, r, c);
}

int amber_checkpoint_args(pid_t pid, const char *dir, const char *const extra[],
			  struct cmd_result *r, struct ckpt_line *c)
{
	const char *argv[32] = { AMBER_BIN, "checkpoint", NULL, "-D", dir };
	char p[32];
	int n = 5;

	snprintf(p, sizeof(p), "%d", pid);
	argv[2] = p;
	while (extra && *extra && n < 31)
		argv[n++] = *extra++;
	argv[n] = NULL;
	if (run_cmd((char *const *)argv, 300000, r))
		return -1;
	if (exit_code(r->status) != 0)
		return -1;
	return c ? parse_ckpt_line(r->out, c) : 0;
}

int read_meta(const char *path, struct image_meta *m)
{
	struct amber_image_hdr h;
	struct amber_section s;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint32_t i;
	int ret = -1;

	memset(m, 0, sizeof(*m));
	if (fd < 0)
		return -1;
	if (pread(fd, &h, sizeof(h), 0) != sizeof(h) ||
	    memcmp(h.magic, AMBER_IMAGE_MAGIC, 8) || h.nr_sections > MAX_SECTIONS)
		goto out;
	for (i = 0; i < h.nr_sections; i++) {
		if (pread(fd, &s, sizeof(s), sizeof(h) + i * sizeof(s)) != sizeof(s))
			goto out;
		m->sec[i].type = s.type;
		m->sec[i].offset = s.offset;
		m->sec[i].size = s.size;
	}
	m->nr_sections = h.nr_sections;
	ret = 0;
out:
	close(fd);
	return ret;
}

void *read_section(const char *path, uint32_t type, size_t *len)
{
	struct image_meta m;
	uint32_t i;
	char *buf;
	int fd;

	if (read_meta(path, &m))
		return NULL;
	for (i = 0; i < m.nr_sections; i++) {
		if (m.sec[i].type != type || m.sec[i].size > (64 << 20))
			continue;
		buf = malloc(m.sec[i].size + 1);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (!buf || fd < 0 ||
		    pread(fd, buf, m.sec[i].size, m.sec[i].offset) != (ssize_t)m.sec[i].size) {
			free(buf);
			if (fd >= 0)
				close(fd);
			return NULL;
		}
		close(fd);
		*len = m.sec[i].size;
		return buf;
	}
	return NULL;
}

/* As the CLI names them in its messages. */
const char *section_name(uint32_t type)
{
	switch (type) {
	case AMBER_SEC_INFO: return "INFO";
	case AMBER_SEC_CORE: return "CORE";
	case AMBER_SEC_VMAS: return "VMAS";
	case AMBER_SEC_FDS: return "FDS";
	case AMBER_SEC_PAGEMAP: return "PAGEMAP";
	case AMBER_SEC_THREADS: return "THREADS";
	case AMBER_SEC_TREE: return "TREE";
	case AMBER_SEC_QUEUES: return "QUEUES";
	}
	return "?";
}

int flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	unsigned char b;
	int ret = -1;

	if (fd < 0)
		return -1;
	if (pread(fd, &b, 1, off) == 1) {
		b ^= 0xff;
		if (pwrite(fd, &b, 1, off) == 1)
			ret = 0;
	}
	close(fd);
	return ret;
}

/* Calls fn for every run of a pages file; stops at the first non-zero return. */
static int for_each_run(const char *path,
			int (*fn)(const struct amber_page_run *, off_t, uint64_t, void *),
			void *arg)
{
	struct amber_pages_hdr h;
	struct amber_page_run run;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t pos, size;
	int ret = -1;

	if (fd < 0)
		return -1;
	size = lseek(fd, 0, SEEK_END);
	if (pread(fd, &h, sizeof(h), 0) != sizeof(h) || h.magic != AMBER_PAGES_MAGIC ||
	    !h.page_size)
		goto out;
	for (pos = sizeof(h); pos < size;) {
		uint64_t bytes;

		if (pread(fd, &run, sizeof(run), pos) != sizeof(run) || !run.nr_pages)
			goto out;
		pos += sizeof(run);
		bytes = run.flags & AMBER_RUN_F_PARENT ? 0 : (uint64_t)run.nr_pages * h.page_size;
		ret = fn(&run, pos, (uint64_t)run.nr_pages * h.page_size, arg);
		if (ret)
			goto out;
		ret = -1;
		pos += bytes;
	}
	ret = 0;
out:
	close(fd);
	return ret;
}

struct first_run {
	off_t data_off;
	uint64_t bytes;
};

static int first_data(const struct amber_page_run *run, off_t data, uint64_t bytes, void *arg)
{
	struct first_run *f = arg;

	if (run->flags & AMBER_RUN_F_PARENT)
		return 0;
	f->data_off = data;
	f->bytes = bytes;
	return 1;
}

int first_page_run(const char *path, off_t *data_off, uint64_t *bytes)
{
	struct first_run f = { 0 };

	if (for_each_run(path, first_data, &f) != 1)
		return -1;
	*data_off = f.data_off;
	*bytes = f.bytes;
	return 0;
}

static int largest_data(const struct amber_page_run *run, off_t data, uint64_t bytes, void *arg)
{
	struct first_run *f = arg;

	if (!(run->flags & AMBER_RUN_F_PARENT) && bytes > f->bytes) {
		f->data_off = data;
		f->bytes = bytes;
	}
	return 0;
}

int largest_page_run(const char *path, off_t *data_off, uint64_t *bytes)
{
	struct first_run f = { 0 };

	if (for_each_run(path, largest_data, &f) || !f.bytes)
		return -1;
	*data_off = f.data_off;
	*bytes = f.bytes;
	return 0;
}

struct run_counts {
	uint64_t data, parent, page_size;
};

static int count_run(const struct amber_page_run *run, off_t data, uint64_t bytes, void *arg)
{
	struct run_counts *n = arg;

	if (run->flags & AMBER_RUN_F_PARENT)
		n->parent += run->nr_pages;
	else
		n->data += run->nr_pages;
	return 0;
}

int count_page_runs(const char *path, uint64_t *data_pages, uint64_t *parent_pages)
{
	struct run_counts n = { 0 };

	if (for_each_run(path, count_run, &n))
		return -1;
	*data_pages = n.data;
	*parent_pages = n.parent;
	return 0;
}

/* --- raw generic netlink --- */

static uint32_t nl_seq = 1000;

int nl_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct timeval tv = { .tv_sec = 120 };
	int one = 1, sk;

	sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (sk < 0)
		return -1;
	if (bind(sk, (struct sockaddr *)&sa, sizeof(sa)) ||
	    setsockopt(sk, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one)) ||
	    setsockopt(sk, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)) ||
	    setsockopt(sk, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
		close(sk);
		return -1;
	}
	return sk;
}

void nl_start(struct nlbuf *b, uint16_t family, uint8_t cmd, uint16_t flags)
{
	struct nlmsghdr *h = (struct nlmsghdr *)b->buf;
	struct genlmsghdr *g = NLMSG_DATA(h);

	memset(b->buf, 0, NLMSG_HDRLEN + GENL_HDRLEN);
	h->nlmsg_type = family;
	h->nlmsg_flags = NLM_F_REQUEST | flags;
	h->nlmsg_seq = ++nl_seq;
	g->cmd = cmd;
	g->version = AMBER_FAMILY_VERSION;
	b->len = NLMSG_HDRLEN + GENL_HDRLEN;
	b->depth = 0;
}

void nl_put(struct nlbuf *b, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = (struct nlattr *)(b->buf + b->len);
	size_t total = NLA_ALIGN(NLA_HDRLEN + len);

	if (b->len + total > sizeof(b->buf))
		abort();
	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	memset((char *)a + NLA_HDRLEN, 0, total - NLA_HDRLEN);
	if (len)
		memcpy((char *)a + NLA_HDRLEN, data, len);
	b->len += total;
}

void nl_put_raw(struct nlbuf *b, const void *data, size_t len)
{
	if (b->len + NLA_ALIGN(len) > sizeof(b->buf))
		abort();
	memset(b->buf + b->len, 0, NLA_ALIGN(len));
	memcpy(b->buf + b->len, data, len);
	b->len += NLA_ALIGN(len);
}

void nl_put_u32(struct nlbuf *b, uint16_t type, uint32_t v)
{
	nl_put(b, type, &v, sizeof(v));
}

void nl_put_u64(struct nlbuf *b, uint16_t type, uint64_t v)
{
	nl_put(b, type, &v, sizeof(v));
}

void nl_nest_start(struct nlbuf *b, uint16_t type)
{
	b->nest[b->depth++] = b->len;
	nl_put(b, type | NLA_F_NESTED, NULL, 0);
}

void nl_nest_end(struct nlbuf *b)
{
	size_t start = b->nest[--b->depth];
	struct nlattr *a = (struct nlattr *)(b->buf + start);

	a->nla_len = b->len - start;
}

static void nl_parse_err(struct nlmsghdr *h, struct nl_reply *r)
{
	struct nlmsgerr *e = NLMSG_DATA(h);
	size_t off = sizeof(*e), len;
	char *p;

	r->error = e->error;
	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(h->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	p = (char *)e + off;
	len = h->nlmsg_len - NLMSG_HDRLEN - off;
	while (len >= NLA_HDRLEN) {
		struct nlattr *a = (struct nlattr *)p;

		if (a->nla_len < NLA_HDRLEN || a->nla_len > len)
			break;
		if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG)
			snprintf(r->msg, sizeof(r->msg), "%.*s",
				 (int)(a->nla_len - NLA_HDRLEN), p + NLA_HDRLEN);
		if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_OFFS &&
		    a->nla_len >= NLA_HDRLEN + 4)
			memcpy(&r->bad_attr_off, p + NLA_HDRLEN, 4);
		if (NLA_ALIGN(a->nla_len) >= len)
			break;
		len -= NLA_ALIGN(a->nla_len);
		p += NLA_ALIGN(a->nla_len);
	}
}

/* Receive until the ACK/error of seq; data messages go to on_data. */
static int nl_recv(int sk, uint32_t seq, struct nl_reply *r,
		   void (*on_data)(struct nlmsghdr *, void *), void *arg)
{
	static char rx[1 << 20];

	for (;;) {
		ssize_t n = recv(sk, rx, sizeof(rx), 0);
		struct nlmsghdr *h;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		for (h = (struct nlmsghdr *)rx; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != seq)
				continue;
			if (h->nlmsg_type == NLMSG_ERROR) {
				nl_parse_err(h, r);
				return 0;
			}
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (on_data)
				on_data(h, arg);
		}
	}
}

int nl_transact(int sk, struct nlbuf *b, struct nl_reply *r, int timeout_ms)
{
	struct nlmsghdr *h = (struct nlmsghdr *)b->buf;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	memset(r, 0, sizeof(*r));
	h->nlmsg_len = b->len;
	h->nlmsg_flags |= NLM_F_ACK;
	setsockopt(sk, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(sk, b->buf, b->len, 0) != (ssize_t)b->len)
		return -1;
	return nl_recv(sk, h->nlmsg_seq, r, NULL, NULL);
}

static void family_cb(struct nlmsghdr *h, void *arg)
{
	char *p = (char *)NLMSG_DATA(h) + GENL_HDRLEN;
	int len = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;

	while (len >= NLA_HDRLEN) {
		struct nlattr *a = (struct nlattr *)p;

		if (a->nla_len < NLA_HDRLEN || a->nla_len > len)
			break;
		if (a->nla_type == CTRL_ATTR_FAMILY_ID)
			memcpy(arg, p + NLA_HDRLEN, 2);
		len -= NLA_ALIGN(a->nla_len);
		p += NLA_ALIGN(a->nla_len);
	}
}

int nl_family(int sk)
{
	static struct nlbuf b;
	struct nlmsghdr *h = (struct nlmsghdr *)b.buf;
	struct nl_reply r = { 0 };
	uint16_t id = 0;

	nl_start(&b, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, NLM_F_ACK);
	((struct genlmsghdr *)NLMSG_DATA(h))->version = 1;
	nl_put(&b, CTRL_ATTR_FAMILY_NAME, AMBER_FAMILY_NAME, sizeof(AMBER_FAMILY_NAME));
	h->nlmsg_len = b.len;
	if (send(sk, b.buf, b.len, 0) != (ssize_t)b.len)
		return -errno;
	if (nl_recv(sk, h->nlmsg_seq, &r, family_cb, &id))
		return -EIO;
	if (r.error)
		return r.error;
	return id ? id : -ENOENT;
}

/* --- process trees --- */

char *workload_path(const char *name)
{
	const char *dir = getenv("AMBER_WORKLOADS_DIR");
	char *p = NULL;

	if (asprintf(&p, "%s/%s", dir && *dir ? dir : WORKLOAD_DIR, name) < 0)
		abort();
	return p;
}

int proc_ids(pid_t pid, pid_t *ppid, pid_t *pgid, pid_t *sid)
{
	char path[64], *s, *p;
	int a, b, c, ret = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	s = slurp(path, NULL);
	p = s ? strrchr(s, ')') : NULL;
	if (p && sscanf(p, ") %*c %d %d %d", &a, &b, &c) == 3) {
		if (ppid)
			*ppid = a;
		if (pgid)
			*pgid = b;
		if (sid)
			*sid = c;
		ret = 0;
	}
	free(s);
	return ret;
}

int tree_pids(pid_t root, pid_t *out, int max)
{
	int n = 0, i;

	if (max < 1 || proc_ids(root, NULL, NULL, NULL))
		return -1;
	out[n++] = root;
	/* Breadth first: every pass adds the children of out[i]. */
	for (i = 0; i < n; i++) {
		DIR *d = opendir("/proc");
		struct dirent *e;

		if (!d)
			return -1;
		while ((e = readdir(d)) && n < max) {
			pid_t pid = atoi(e->d_name), pp;
			int j;

			if (pid <= 0 || proc_ids(pid, &pp, NULL, NULL) || pp != out[i])
				continue;
			for (j = 0; j < n && out[j] != pid; j++)
				;
			if (j == n)
				out[n++] = pid;
		}
		closedir(d);
	}
	return n;
}

int kill_tree(pid_t root)
{
	pid_t pids[512];
	int n = tree_pids(root, pids, 512), i;

	for (i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	return n < 0 ? 0 : n;
}

int reap_gone(pid_t pid, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d", pid);
	for (;;) {
		waitpid(pid, NULL, WNOHANG);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (access(path, F_OK))
			return 0;
		if (now_ms() > end)
			return -1;
		sleep_ms(10);
	}
}

static int cmp_pid(const void *a, const void *b)
{
	return *(const pid_t *)a - *(const pid_t *)b;
}

long proc_kb(pid_t pid, const char *file, const char *field)
{
	char path[96], *s, *p;
	size_t n = strlen(field);
	long kb = -1;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	s = slurp(path, NULL);
	for (p = s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (!strncmp(p, field, n)) {
			kb = atol(p + n);
			break;
		}
	}
	free(s);
	return kb;
}

int thread_ids(pid_t pid, pid_t *out, int max)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)) && n < max)
		if (atoi(e->d_name) > 0)
			out[n++] = atoi(e->d_name);
	closedir(d);
	qsort(out, n, sizeof(*out), cmp_pid);
	return n;
}

int read_info_u32(const char *meta, uint16_t attr, uint32_t *v)
{
	size_t len, off = 0;
	char *s = read_section(meta, AMBER_SEC_INFO, &len);
	int ret = -1;

	while (s && off + NLA_HDRLEN <= len) {
		struct nlattr *a = (struct nlattr *)(s + off);

		if (a->nla_len < NLA_HDRLEN || off + a->nla_len > len)
			break;
		if ((a->nla_type & NLA_TYPE_MASK) == attr && a->nla_len >= NLA_HDRLEN + 4) {
			memcpy(v, s + off + NLA_HDRLEN, 4);
			ret = 0;
			break;
		}
		off += NLA_ALIGN(a->nla_len);
	}
	free(s);
	return ret;
}

long long section_bytes(const char *meta, uint32_t type)
{
	struct image_meta m;
	long long total = 0;
	uint32_t i;

	if (read_meta(meta, &m))
		return -1;
	for (i = 0; i < m.nr_sections; i++)
		if (m.sec[i].type == type)
			total += m.sec[i].size;
	return total;
}
