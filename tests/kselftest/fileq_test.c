// SPDX-License-Identifier: GPL-2.0
/*
 * The fd side of CHECKPOINT, against amber.ko directly (raw netlink, no CLI):
 *   - file ids: a dup()ed fd and a fork()-shared fd have their original's
 *     AMBER_FD_FILE_ID (the latter across the processes of a tree reply);
 *     distinct open file descriptions have distinct ids;
 *   - queues: the bytes in a pipe (over 64 KiB, in a pipe grown with
 *     F_SETPIPE_SZ), a stream socketpair (partly read already), a
 *     SOCK_SEQPACKET pair (a message over AMBER_QUEUE_CHUNK, an empty one)
 *     and a SOCK_DGRAM pair come back as AMBER_A_QUEUE chunks, once per
 *     inode, in read order, with EOR exactly at message ends; the socket
 *     attributes (family, type, peer inode, shutdown) and pipe capacity are
 *     right; afterwards the program reads every byte it had queued, as if
 *     nothing happened;
 *   - a FIFO on tmpfs, a partly read pipe buffer, and a pipe filled by
 *     splice() from a file and from a TCP socket and by vmsplice();
 *   - 2000 fds (the FDS nest splits); a pipe and a socket that a process
 *     outside the group keeps writing to and reading from;
 *   - refusals, by fd number and name, with the target left running: a TCP
 *     socket, a UNIX socket bound to a name since unlinked, queued
 *     credentials, a datagram from a named sender to an unconnected socket,
 *     bytes sent to a connection waiting to be accepted, more files in
 *     flight (SCM_RIGHTS) than a process or one message may carry,
 *     MSG_OOB data, SO_PEEK_OFF, packets in an O_DIRECT pipe, and more
 *     queued bytes than one process's reply can carry.
 * Each target is a child that sets its fds up at fixed numbers and, when
 * asked after the checkpoint, reads everything back and reports.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/amber.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "amber_test.h"

#define FQ_TMP		TEST_TMP "/fileq"
#define MAX_FDS		4096
#define MAX_QUEUES	32
#define MAX_PROCS	4
#define BIG		40000	/* more than one AMBER_QUEUE_CHUNK */
#define PIPE_BYTES	70000
#define PIPE_SIZE	(256 << 10)

/* Fixed fd numbers in the target. */
enum { PIPE_R = 10, PIPE_W, PIPE_DUP, S0, S1, P0, P1, D0, D1, FIFO, BAD = 30 };

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 7 + 3);
}

static void fill_pattern(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pattern(i);
}

/* ---- the reply, as parsed ---- */

struct fdinfo {
	uint32_t num, type, family, sock_type, shutdown, pipe_size;
	uint64_t file_id, ino, peer_ino;
	bool has_family, has_shutdown, has_peer;
};

struct queue {
	uint64_t ino;
	unsigned char *data;
	size_t len;
	size_t msg_end[16];	/* byte offsets where an EOR chunk ended */
	int nr_eor;
	int nr_chunks;
	size_t max_chunk;
	int proc;		/* index of the message that carried it */
};

struct proc {
	uint32_t pid;
	struct fdinfo fd[MAX_FDS];
	int nr_fds;
};

struct reply {
	int error;
	char msg[512];
	struct proc proc[MAX_PROCS];
	int nr_procs;
	struct queue q[MAX_QUEUES];
	int nr_queues;
	bool queue_split;	/* chunks of one inode in two messages, or interleaved */
};

static const struct fdinfo *find_fd(const struct proc *p, uint32_t num)
{
	for (int i = 0; i < p->nr_fds; i++)
		if (p->fd[i].num == num)
			return &p->fd[i];
	return NULL;
}

static const struct queue *find_queue(const struct reply *r, uint64_t ino)
{
	for (int i = 0; i < r->nr_queues; i++)
		if (r->q[i].ino == ino)
			return &r->q[i];
	return NULL;
}

#define for_each_attr(a, start, len)					\
	for (struct nlattr *a = (struct nlattr *)(start), *a##_end =	\
	     (struct nlattr *)((char *)(start) + (len));		\
	     (char *)a + NLA_HDRLEN <= (char *)a##_end &&		\
	     a->nla_len >= NLA_HDRLEN &&				\
	     (char *)a + a->nla_len <= (char *)a##_end;			\
	     a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))

#define ATTR_DATA(a)	((void *)((char *)(a) + NLA_HDRLEN))
#define ATTR_LEN(a)	((a)->nla_len - NLA_HDRLEN)
#define ATTR_U32(a)	(*(uint32_t *)ATTR_DATA(a))
#define ATTR_U64(a)	(*(uint64_t *)ATTR_DATA(a))

static void parse_fd(struct proc *p, struct nlattr *nest)
{
	struct fdinfo *f;

	if (p->nr_fds == MAX_FDS)
		return;
	f = &p->fd[p->nr_fds++];
	memset(f, 0, sizeof(*f));
	for_each_attr(a, ATTR_DATA(nest), ATTR_LEN(nest)) {
		switch (a->nla_type & NLA_TYPE_MASK) {
		case AMBER_FD_NUM: f->num = ATTR_U32(a); break;
		case AMBER_FD_TYPE: f->type = ATTR_U32(a); break;
		case AMBER_FD_INO: f->ino = ATTR_U64(a); break;
		case AMBER_FD_FILE_ID: f->file_id = ATTR_U64(a); break;
		case AMBER_FD_SOCK_FAMILY: f->family = ATTR_U32(a); f->has_family = true; break;
		case AMBER_FD_SOCK_TYPE: f->sock_type = ATTR_U32(a); break;
		case AMBER_FD_PEER_INO: f->peer_ino = ATTR_U64(a); f->has_peer = true; break;
		case AMBER_FD_SHUTDOWN: f->shutdown = ATTR_U32(a); f->has_shutdown = true; break;
		case AMBER_FD_PIPE_SIZE: f->pipe_size = ATTR_U32(a); break;
		}
	}
}

static void parse_queue(struct reply *r, int proc, struct nlattr *nest, int *last)
{
	struct nlattr *data = NULL;
	uint64_t ino = 0;
	bool eor = false;
	struct queue *q = NULL;

	for_each_attr(a, ATTR_DATA(nest), ATTR_LEN(nest)) {
		switch (a->nla_type & NLA_TYPE_MASK) {
		case AMBER_QUEUE_INO: ino = ATTR_U64(a); break;
		case AMBER_QUEUE_DATA: data = a; break;
		case AMBER_QUEUE_EOR: eor = true; break;
		}
	}
	for (int i = 0; i < r->nr_queues; i++)
		if (r->q[i].ino == ino)
			q = &r->q[i];
	if (!q) {
		if (r->nr_queues == MAX_QUEUES)
			return;
		q = &r->q[r->nr_queues++];
		memset(q, 0, sizeof(*q));
		q->ino = ino;
		q->proc = proc;
	} else if (q->proc != proc || *last != q - r->q) {
		fprintf(stderr, "# chunks of inode %llu in messages %d and %d, or after another's\n",
			(unsigned long long)ino, q->proc, proc);
		r->queue_split = true;
	}
	*last = q - r->q;
	if (data) {
		size_t n = ATTR_LEN(data);

		q->data = realloc(q->data, q->len + n + 1);
		memcpy(q->data + q->len, ATTR_DATA(data), n);
		q->len += n;
		if (n > q->max_chunk)
			q->max_chunk = n;
	}
	q->nr_chunks++;
	if (eor && q->nr_eor < 16)
		q->msg_end[q->nr_eor++] = q->len;
}

static void parse_msg(struct reply *r, struct nlmsghdr *h)
{
	struct proc *p;
	int last = -1;

	if (r->nr_procs == MAX_PROCS)
		return;
	p = &r->proc[r->nr_procs++];
	memset(p, 0, sizeof(*p));
	for_each_attr(a, (char *)NLMSG_DATA(h) + GENL_HDRLEN,
		      h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN) {
		switch (a->nla_type & NLA_TYPE_MASK) {
		case AMBER_A_TASK:
			for_each_attr(t, ATTR_DATA(a), ATTR_LEN(a))
				if ((t->nla_type & NLA_TYPE_MASK) == AMBER_TASK_PID)
					p->pid = ATTR_U32(t);
			break;
		case AMBER_A_FDS:
			for_each_attr(f, ATTR_DATA(a), ATTR_LEN(a))
				if ((f->nla_type & NLA_TYPE_MASK) == AMBER_A_FD)
					parse_fd(p, f);
			break;
		case AMBER_A_QUEUE:
			parse_queue(r, r->nr_procs - 1, a, &last);
			break;
		}
	}
}

static void parse_err(struct reply *r, struct nlmsghdr *h)
{
	struct nlmsgerr *e = NLMSG_DATA(h);
	size_t off = sizeof(*e);

	r->error = e->error;
	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(h->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	for_each_attr(a, (char *)e + off, h->nlmsg_len - NLMSG_HDRLEN - off)
		if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG)
			snprintf(r->msg, sizeof(r->msg), "%s", (char *)ATTR_DATA(a));
}

/* CHECKPOINT of pid (tree or not); the reply in *r. 0, or -1 on a socket error. */
static int checkpoint(pid_t pid, bool tree, struct reply *r)
{
	static char rx[8 << 20];
	static struct nlbuf b;
	int sk = nl_open(), fam, pages, rcvbuf = 32 << 20, ret = -1;
	struct nlmsghdr *h = (struct nlmsghdr *)b.buf;
	char path[] = FQ_TMP "/pages-XXXXXX";
	int pool[MAX_PROCS];

	memset(r, 0, sizeof(*r));
	for (int i = 0; i < MAX_PROCS; i++)
		pool[i] = -1;
	if (sk < 0)
		return -1;
	setsockopt(sk, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	fam = nl_family(sk);
	pages = mkstemp(path);
	if (fam < 0 || pages < 0)
		goto out;
	unlink(path);
	nl_start(&b, fam, AMBER_CMD_CHECKPOINT, NLM_F_ACK);
	nl_put_u32(&b, AMBER_A_PID, pid);
	nl_put_u32(&b, AMBER_A_PAGES_FD, pages);
	if (tree) {
		/* A pages file for each other process. */
		nl_put_u32(&b, AMBER_A_FLAGS, AMBER_CKPT_F_TREE);
		nl_nest_start(&b, AMBER_A_PAGES_FDS);
		for (int i = 0; i < MAX_PROCS; i++) {
			char more[] = FQ_TMP "/pages-XXXXXX";

			pool[i] = mkstemp(more);
			if (pool[i] < 0)
				goto out;
			unlink(more);
			nl_put_u32(&b, AMBER_A_PAGE_FD, pool[i]);
		}
		nl_nest_end(&b);
	}
	h->nlmsg_len = b.len;
	if (send(sk, b.buf, b.len, 0) != (ssize_t)b.len)
		goto out;
	for (;;) {
		ssize_t n = recv(sk, rx, sizeof(rx), MSG_TRUNC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || n > (ssize_t)sizeof(rx))
			goto out;
		for (h = (struct nlmsghdr *)rx; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_ERROR) {
				parse_err(r, h);
				ret = 0;
				goto out;
			}
			if (h->nlmsg_type == fam)
				parse_msg(r, h);
		}
	}
out:
	for (int i = 0; i < MAX_PROCS; i++)
		if (pool[i] >= 0)
			close(pool[i]);
	if (pages >= 0)
		close(pages);
	close(sk);
	return ret;
}

static void free_reply(struct reply *r)
{
	for (int i = 0; i < r->nr_queues; i++)
		free(r->q[i].data);
}

/* ---- the target ---- */

struct target {
	pid_t pid;
	int ctl;	/* write: a command byte; close: exit */
	int ack;	/* read: 'R' when set up, then the verdict */
};

static void xdup2(int from, int to)
{
	if (from != to) {
		if (dup2(from, to) != to)
			_exit(90);
		close(from);
	}
}

static void xsend(int fd, const void *p, size_t n)
{
	if (send(fd, p, n, 0) != (ssize_t)n)
		_exit(91);
}

/* The queues of the "queues" tests: see the header comment. */
static void setup_queues(void)
{
	static unsigned char big[PIPE_BYTES];
	int p[2], s[2], q[2], d[2];
	char buf[8], fifo[64];

	fill_pattern(big, sizeof(big));
	/* Each pair moved at once: new fds are below 10, never a target's. */
	if (pipe(p))
		_exit(92);
	xdup2(p[0], PIPE_R);
	xdup2(p[1], PIPE_W);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s))
		_exit(92);
	xdup2(s[0], S0);
	xdup2(s[1], S1);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, q))
		_exit(92);
	xdup2(q[0], P0);
	xdup2(q[1], P1);
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, d))
		_exit(92);
	xdup2(d[0], D0);
	xdup2(d[1], D1);
	snprintf(fifo, sizeof(fifo), FQ_TMP "/fifo-%d", getpid());
	if (mkfifo(fifo, 0600))
		_exit(92);
	xdup2(open(fifo, O_RDWR), FIFO);
	unlink(fifo);
	if (write(FIFO, "fifo!", 5) != 5)
		_exit(92);
	if (dup2(PIPE_R, PIPE_DUP) != PIPE_DUP)
		_exit(93);
	/* The first pipe buffer is partly read: it starts at offset 2. */
	if (fcntl(PIPE_W, F_SETPIPE_SZ, PIPE_SIZE) != PIPE_SIZE ||
	    write(PIPE_W, "XYhello", 7) != 7 || read(PIPE_R, buf, 2) != 2 ||
	    write(PIPE_W, big, PIPE_BYTES) != PIPE_BYTES)
		_exit(94);
	/* S0's first skb is partly read: only "defgh" of it is left. */
	xsend(S1, "abcdefgh", 8);
	if (recv(S0, buf, 3, 0) != 3)
		_exit(95);
	xsend(S1, big, BIG);
	xsend(S0, "xyz", 3);
	xsend(P1, "one", 3);
	xsend(P1, big, BIG);
	xsend(P1, "", 0);
	xsend(P1, "four", 4);
	if (shutdown(P1, SHUT_WR))
		_exit(96);
	xsend(D1, "dg1", 3);
	xsend(D1, "dg22", 4);
}

static int read_full(int fd, unsigned char *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);

		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

static int expect_msg(int fd, const void *want, size_t n)
{
	static unsigned char buf[BIG + 16];
	ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	return r == (ssize_t)n && !memcmp(buf, want, n) ? 0 : -1;
}

/* Reads back everything setup_queues() queued: 0 when all is there, intact. */
static int verify_queues(void)
{
	static unsigned char big[PIPE_BYTES], got[PIPE_BYTES + 5];
	char c;

	fill_pattern(big, sizeof(big));
	if (read_full(PIPE_DUP, got, PIPE_BYTES + 5) || memcmp(got, "hello", 5) ||
	    memcmp(got + 5, big, PIPE_BYTES))
		return 1;
	if (fcntl(PIPE_R, F_SETFL, O_NONBLOCK) || read(PIPE_R, &c, 1) != -1)
		return 2;	/* nothing more, nothing duplicated */
	if (read_full(S0, got, 5 + BIG) || memcmp(got, "defgh", 5) || memcmp(got + 5, big, BIG))
		return 3;
	if (recv(S0, &c, 1, MSG_DONTWAIT) != -1 || read_full(S1, got, 3) || memcmp(got, "xyz", 3))
		return 4;
	if (expect_msg(P0, "one", 3) || expect_msg(P0, big, BIG) || expect_msg(P0, "", 0) ||
	    expect_msg(P0, "four", 4) || recv(P0, &c, 1, MSG_DONTWAIT) != 0)
		return 5;	/* the last: end of file, P1 shut down its writing */
	if (expect_msg(D0, "dg1", 3) || expect_msg(D0, "dg22", 4) ||
	    recv(D0, &c, 1, MSG_DONTWAIT) != -1)
		return 6;
	if (read_full(FIFO, got, 5) || memcmp(got, "fifo!", 5))
		return 7;
	return 0;
}

/*
 * Forks a target that runs setup() (and, with @child, forks a child sharing
 * all its fds), reports 'R', then on 'V' sends verify()'s verdict and on
 * 'Q' or EOF exits. Returns 0 when it is ready.
 */
static int start_target(struct target *t, void (*setup)(void), int (*verify)(void),
			bool child)
{
	int ctl[2], ack[2];
	char c;

	if (pipe2(ctl, O_CLOEXEC) || pipe2(ack, O_CLOEXEC))
		return -1;
	t->pid = fork();
	if (t->pid < 0)
		return -1;
	if (!t->pid) {
		int null = open("/dev/null", O_RDWR);

		close(ctl[1]);
		close(ack[0]);
		/* No stdio of ours (a socket there would be refused). */
		if (null < 0 || dup2(null, 0) || dup2(null, 1) != 1 || dup2(null, 2) != 2)
			_exit(89);
		close(null);
		/* Out of the way of the fixed fd numbers. */
		xdup2(ctl[0], 50);
		xdup2(ack[1], 51);
		setup();
		if (child && fork() == 0) {
			close(50);
			close(51);
			/*
			 * A file of its own below the shared ones: ids numbered
			 * per process would now differ from the parent's.
			 */
			if (open("/dev/null", O_RDONLY) != 3)
				_exit(88);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;)
				pause();
		}
		if (write(51, "R", 1) != 1)
			_exit(97);
		while (read(50, &c, 1) == 1) {
			if (c == 'V') {
				c = (char)(verify ? verify() : 0);
				if (write(51, &c, 1) != 1)
					_exit(98);
			} else if (c == 'Q') {
				break;
			}
		}
		_exit(0);
	}
	close(ctl[0]);
	close(ack[1]);
	t->ctl = ctl[1];
	t->ack = ack[0];
	if (read(t->ack, &c, 1) != 1 || c != 'R')
		return -1;
	return 0;
}

/* The verdict of the target's verify(): 0 = all intact; -1: no answer. */
static int target_verify(struct target *t)
{
	char c;

	if (write(t->ctl, "V", 1) != 1 || read(t->ack, &c, 1) != 1)
		return -1;
	return c;
}

static int stop_target(struct target *t)
{
	int status = -1;

	close(t->ctl);
	close(t->ack);
	if (waitpid(t->pid, &status, 0) != t->pid)
		return -1;
	return status;
}

static int still_runs(void)
{
	return 0;
}

#define REQUIRE_MODULE() do {						\
	if (access("/sys/module/amber", F_OK))				\
		SKIP(return, "amber.ko is not loaded");			\
	mkdir(TEST_TMP, 0700);						\
	mkdir(FQ_TMP, 0700);						\
} while (0)

/* ---- tests ---- */

TEST(queues)
{
	const struct fdinfo *pr, *pw, *pd, *s0, *s1, *p0, *p1, *d0, *d1, *fi;
	static unsigned char want[PIPE_BYTES + 5];
	const struct queue *q;
	struct target t;
	static struct reply r;
	struct proc *p;

	REQUIRE_MODULE();
	ASSERT_EQ(0, start_target(&t, setup_queues, verify_queues, false));
	ASSERT_EQ(0, checkpoint(t.pid, false, &r));
	ASSERT_EQ(0, r.error) TH_LOG("extack: %s", r.msg);
	ASSERT_EQ(1, r.nr_procs);
	p = &r.proc[0];
	pr = find_fd(p, PIPE_R), pw = find_fd(p, PIPE_W), pd = find_fd(p, PIPE_DUP);
	s0 = find_fd(p, S0), s1 = find_fd(p, S1), p0 = find_fd(p, P0), p1 = find_fd(p, P1);
	d0 = find_fd(p, D0), d1 = find_fd(p, D1), fi = find_fd(p, FIFO);
	ASSERT_TRUE(pr && pw && pd && s0 && s1 && p0 && p1 && d0 && d1 && fi);

	/* One open file description, one id; different ones, different ids. */
	ASSERT_NE(0, pr->file_id);
	EXPECT_EQ(pr->file_id, pd->file_id);
	EXPECT_NE(pr->file_id, pw->file_id);
	/* 0, 1 and 2 are dups of one /dev/null. */
	for (int i = 0; i < p->nr_fds; i++) {
		EXPECT_NE(0, p->fd[i].file_id);
		for (int j = 0; j < i; j++) {
			uint32_t a = p->fd[i].num, b = p->fd[j].num;
			bool same = (a <= 2 && b <= 2) ||
				    ((a == PIPE_R || a == PIPE_DUP) && (b == PIPE_R || b == PIPE_DUP));

			if (same) {
				EXPECT_EQ(p->fd[i].file_id, p->fd[j].file_id) TH_LOG("fds %u %u", a, b);
			} else {
				EXPECT_NE(p->fd[i].file_id, p->fd[j].file_id) TH_LOG("fds %u %u", a, b);
			}
		}
	}

	/* The pipe: its capacity on every end, its bytes once, in order. */
	EXPECT_EQ(PIPE_SIZE, pr->pipe_size);
	EXPECT_EQ(PIPE_SIZE, pw->pipe_size);
	EXPECT_EQ(PIPE_SIZE, pd->pipe_size);
	EXPECT_EQ(0, s0->pipe_size);
	EXPECT_FALSE(pr->has_family);
	q = find_queue(&r, pr->ino);
	ASSERT_NE(NULL, q);
	memcpy(want, "hello", 5);
	fill_pattern(want + 5, PIPE_BYTES);
	ASSERT_EQ(PIPE_BYTES + 5, q->len);
	EXPECT_EQ(0, memcmp(q->data, want, q->len));
	EXPECT_EQ(0, q->nr_eor);
	EXPECT_EQ(AMBER_QUEUE_CHUNK, q->max_chunk);
	EXPECT_EQ(3, q->nr_chunks);

	/* Stream pair: peers, no shutdown, the unread bytes only. */
	EXPECT_EQ(AF_UNIX, s0->family);
	EXPECT_EQ(SOCK_STREAM, s0->sock_type);
	EXPECT_TRUE(s0->has_shutdown);
	EXPECT_EQ(0, s0->shutdown);
	EXPECT_EQ(s1->ino, s0->peer_ino);
	EXPECT_EQ(s0->ino, s1->peer_ino);
	q = find_queue(&r, s0->ino);
	ASSERT_NE(NULL, q);
	ASSERT_EQ(5 + BIG, q->len);
	EXPECT_EQ(0, memcmp(q->data, "defgh", 5));
	EXPECT_EQ(0, memcmp(q->data + 5, want + 5, BIG));
	EXPECT_EQ(0, q->nr_eor);
	q = find_queue(&r, s1->ino);
	ASSERT_NE(NULL, q);
	ASSERT_EQ(3, q->len);
	EXPECT_EQ(0, memcmp(q->data, "xyz", 3));

	/* SEQPACKET: messages end with EOR, the long one in two chunks. */
	EXPECT_EQ(SOCK_SEQPACKET, p0->sock_type);
	EXPECT_EQ(p1->ino, p0->peer_ino);
	EXPECT_EQ(1, p0->shutdown);	/* RCV_SHUTDOWN: the peer shut down writing */
	EXPECT_EQ(2, p1->shutdown);	/* SEND_SHUTDOWN */
	q = find_queue(&r, p0->ino);
	ASSERT_NE(NULL, q);
	ASSERT_EQ(3 + BIG + 0 + 4, q->len);
	ASSERT_EQ(4, q->nr_eor);
	EXPECT_EQ(3, q->msg_end[0]);
	EXPECT_EQ(3 + BIG, q->msg_end[1]);
	EXPECT_EQ(3 + BIG, q->msg_end[2]);
	EXPECT_EQ(3 + BIG + 4, q->msg_end[3]);
	EXPECT_EQ(5, q->nr_chunks);
	EXPECT_EQ(0, memcmp(q->data, "one", 3));
	EXPECT_EQ(0, memcmp(q->data + 3, want + 5, BIG));
	EXPECT_EQ(0, memcmp(q->data + 3 + BIG, "four", 4));
	EXPECT_EQ(NULL, find_queue(&r, p1->ino));

	/* DGRAM pair. */
	EXPECT_EQ(SOCK_DGRAM, d0->sock_type);
	EXPECT_EQ(d1->ino, d0->peer_ino);
	q = find_queue(&r, d0->ino);
	ASSERT_NE(NULL, q);
	ASSERT_EQ(7, q->len);
	ASSERT_EQ(2, q->nr_eor);
	EXPECT_EQ(3, q->msg_end[0]);
	EXPECT_EQ(0, memcmp(q->data, "dg1dg22", 7));

	/* A FIFO (on tmpfs): a pipe by another name. */
	EXPECT_EQ(AMBER_FD_FIFO, fi->type);
	EXPECT_EQ(65536, fi->pipe_size);
	q = find_queue(&r, fi->ino);
	ASSERT_NE(NULL, q);
	ASSERT_EQ(5, q->len);
	EXPECT_EQ(0, memcmp(q->data, "fifo!", 5));

	/* Each inode's chunks together, in one message; empty ones none. */
	EXPECT_FALSE(r.queue_split);
	EXPECT_EQ(6, r.nr_queues);
	free_reply(&r);

	/* Nothing was consumed: the target reads it all back. */
	EXPECT_EQ(0, target_verify(&t));
	EXPECT_EQ(0, stop_target(&t));
}

/* The queued state survives a second checkpoint the same way. */
TEST(queues_twice)
{
	struct target t;
	static struct reply r;

	REQUIRE_MODULE();
	ASSERT_EQ(0, start_target(&t, setup_queues, verify_queues, false));
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, checkpoint(t.pid, false, &r));
		ASSERT_EQ(0, r.error) TH_LOG("extack: %s", r.msg);
		EXPECT_EQ(6, r.nr_queues);	/* pipe, S0, S1, P0, D0, FIFO */
		free_reply(&r);
	}
	EXPECT_EQ(0, target_verify(&t));
	EXPECT_EQ(0, stop_target(&t));
}

/* A tree: the child shares every fd by fork(); ids and queues span the reply. */
TEST(tree_shared)
{
	const struct fdinfo *a, *b;
	struct target t;
	static struct reply r;

	REQUIRE_MODULE();
	ASSERT_EQ(0, start_target(&t, setup_queues, verify_queues, true));
	ASSERT_EQ(0, checkpoint(t.pid, true, &r));
	ASSERT_EQ(0, r.error) TH_LOG("extack: %s", r.msg);
	ASSERT_EQ(2, r.nr_procs);
	for (int num = PIPE_R; num <= FIFO; num++) {
		a = find_fd(&r.proc[0], num);
		b = find_fd(&r.proc[1], num);
		ASSERT_TRUE(a && b);
		EXPECT_EQ(a->file_id, b->file_id) TH_LOG("fd %d", num);
	}
	EXPECT_EQ(6, r.nr_queues);	/* once per inode across both messages */
	EXPECT_FALSE(r.queue_split);
	free_reply(&r);
	EXPECT_EQ(0, target_verify(&t));
	EXPECT_EQ(0, stop_target(&t));
}

/*
 * A pipe filled by splice() from a file (page cache pages), by vmsplice()
 * (the program's own pages) and by splice() from a TCP socket over the
 * loopback (skb pages, possibly compound, a buffer maybe spanning pages).
 */
#define SPLICE_FILE	10000
#define SPLICE_USER	5000
#define SPLICE_TCP	50000
#define SPLICE_ALL	(SPLICE_FILE + SPLICE_USER + SPLICE_TCP)

static unsigned char splice_user[SPLICE_USER] __attribute__((aligned(4096)));

static void splice_want(unsigned char *p)
{
	fill_pattern(p, SPLICE_FILE);
	for (size_t i = 0; i < SPLICE_USER; i++)
		p[SPLICE_FILE + i] = (unsigned char)(i * 13 + 1);
	for (size_t i = 0; i < SPLICE_TCP; i++)
		p[SPLICE_FILE + SPLICE_USER + i] = (unsigned char)(i * 31 + 5);
}

static void splice_from(int from, int pipe_w, size_t n)
{
	while (n) {
		ssize_t r = splice(from, NULL, pipe_w, NULL, n, 0);

		if (r <= 0)
			_exit(72);
		n -= r;
	}
}

static void setup_spliced(void)
{
	static unsigned char want[SPLICE_ALL];
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct iovec iov = { .iov_base = splice_user, .iov_len = SPLICE_USER };
	socklen_t len = sizeof(sa);
	int p[2], f, l, c, a;
	char path[64];

	splice_want(want);
	memcpy(splice_user, want + SPLICE_FILE, SPLICE_USER);
	if (pipe(p) || fcntl(p[1], F_SETPIPE_SZ, 1 << 20) != 1 << 20)
		_exit(70);
	xdup2(p[0], PIPE_R);
	xdup2(p[1], PIPE_W);
	snprintf(path, sizeof(path), FQ_TMP "/file-%d", getpid());
	f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f < 0 || write(f, want, SPLICE_FILE) != SPLICE_FILE || lseek(f, 0, SEEK_SET))
		_exit(71);
	unlink(path);
	splice_from(f, PIPE_W, SPLICE_FILE);
	close(f);
	if (vmsplice(PIPE_W, &iov, 1, 0) != SPLICE_USER)
		_exit(73);
	l = socket(AF_INET, SOCK_STREAM, 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&sa, &len) ||
	    connect(c, (struct sockaddr *)&sa, sizeof(sa)))
		_exit(74);
	a = accept(l, NULL, NULL);
	if (a < 0 || send(c, want + SPLICE_FILE + SPLICE_USER, SPLICE_TCP, 0) != SPLICE_TCP)
		_exit(75);
	splice_from(a, PIPE_W, SPLICE_TCP);
	close(a);
	close(c);
	close(l);
}

static int verify_spliced(void)
{
	static unsigned char want[SPLICE_ALL], got[SPLICE_ALL];
	char c;

	splice_want(want);
	if (read_full(PIPE_R, got, SPLICE_ALL) || memcmp(got, want, SPLICE_ALL))
		return 1;
	if (fcntl(PIPE_R, F_SETFL, O_NONBLOCK) || read(PIPE_R, &c, 1) != -1)
		return 2;
	return 0;
}

TEST(spliced)
{
	static unsigned char want[SPLICE_ALL];
	const struct fdinfo *pr;
	const struct queue *q;
	struct target t;
	static struct reply r;

	REQUIRE_MODULE();
	ASSERT_EQ(0, start_target(&t, setup_spliced, verify_spliced, false));
	ASSERT_EQ(0, checkpoint(t.pid, false, &r));
	ASSERT_EQ(0, r.error) TH_LOG("extack: %s", r.msg);
	pr = find_fd(&r.proc[0], PIPE_R);
	ASSERT_NE(NULL, pr);
	EXPECT_EQ(1 << 20, pr->pipe_size);
	q = find_queue(&r, pr->ino);
	ASSERT_NE(NULL, q);
	splice_want(want);
	ASSERT_EQ(SPLICE_ALL, q->len);
	EXPECT_EQ(0, memcmp(q->data, want, SPLICE_ALL));
	free_reply(&r);
	EXPECT_EQ(0, target_verify(&t));
	EXPECT_EQ(0, stop_target(&t));
}

/*
 * Queues that a process outside the group (the target's child, when the
 * checkpoint is not a tree) writes to and reads from all the time: every
 * checkpoint succeeds or says the queue kept changing; nothing breaks.
 */
static void setup_busy(void)
{
	static char buf[3000];
	int p[2], s[2];

	if (pipe2(p, O_NONBLOCK) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s))
		_exit(60);
	xdup2(p[0], PIPE_R);
	xdup2(p[1], PIPE_W);
	xdup2(s[0], S0);
	xdup2(s[1], S1);
	if (fork() == 0) {
		long long end = now_ms() + 4000;

		close(50);
		close(51);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (unsigned int i = 0; now_ms() < end; i++) {
			if (write(PIPE_W, buf, 1 + i % sizeof(buf)) < 0 && errno != EAGAIN)
				_exit(61);
			if (send(S1, buf, 1 + (i * 7) % sizeof(buf), 0) < 0 && errno != EAGAIN)
				_exit(62);
			if (i % 3 == 0 && read(PIPE_R, buf, sizeof(buf)) < 0 && errno != EAGAIN)
				_exit(63);
			if (i % 3 == 1 && recv(S0, buf, sizeof(buf), 0) < 0 && errno != EAGAIN)
				_exit(64);
		}
		_exit(0);
	}
}

TEST(busy_outside)
{
	int ok = 0, changing = 0;
	struct target t;
	static struct reply r;

	REQUIRE_MODULE();
	ASSERT_EQ(0, start_target(&t, setup_busy, still_runs, false));
	for (int i = 0; i < 30; i++) {
		ASSERT_EQ(0, checkpoint(t.pid, false, &r));
		free_reply(&r);
		if (!r.error)
			ok++;
		else if (r.error == -EAGAIN && strstr(r.msg, "kept changing"))
			changing++;
		else
			ASSERT_EQ(0, r.error) TH_LOG("extack: %s", r.msg);
	}
	TH_LOG("%d checkpoints, %d with a queue changing under them", ok, changing);
	EXPECT_GT(ok, 0);
	EXPECT_EQ(0, target_verify(&t));
	EXPECT_EQ(0, stop_target(&t));
}

/* 2000 fds: the FD nests pass 64 KiB and split; every fd is there. */
#define MANY_FIRST	100
#define MANY		2000

static void setup_many(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		_exit(50);
	rl.rlim_cur = rl.rlim_max;
	if (rl.rlim_cur < MANY_FIRST + MANY || setrlimit(RLIMIT_NOFILE, &rl))
		_exit(51);
	for (int i = 0; i < MANY; i++)
		if (dup2(0, MANY_FIRST + i) != MANY_FIRST + i)
			_exit(52);
}

TEST(many_fds)
{
	const struct fdinfo *zero, *f;
	static struct reply r;
	struct target t;

	REQUIRE_MODULE();
	ASSERT_EQ(0, start_target(&t, setup_many, still_runs, false));
	ASSERT_EQ(0, checkpoint(t.pid, false, &r));
	ASSERT_EQ(0, r.error) TH_LOG("extack: %s", r.msg);
	zero = find_fd(&r.proc[0], 0);
	ASSERT_NE(NULL, zero);
	EXPECT_EQ(3 + 2 + MANY, r.proc[0].nr_fds);	/* stdio, ctl/ack, the dups */
	for (int i = 0; i < MANY; i++) {
		f = find_fd(&r.proc[0], MANY_FIRST + i);
		ASSERT_NE(NULL, f) TH_LOG("fd %d", MANY_FIRST + i);
		ASSERT_EQ(zero->file_id, f->file_id);
	}
	EXPECT_EQ(0, target_verify(&t));
	EXPECT_EQ(0, stop_target(&t));
}

/* ---- refusals: each setup leaves its bad fd at BAD ---- */

/* TCP and UDP are checkpointed (inet_test); a raw IP socket is not. */
static void setup_raw(void)
{
	xdup2(socket(AF_INET, SOCK_RAW, IPPROTO_RAW), BAD);
}

/* Bound to a file system name that is then unlinked: nothing can bind it again. */
static void setup_unlinked(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/amber-fileq-%d.sock", getpid());
	unlink(sa.sun_path);
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) || unlink(sa.sun_path))
		_exit(80);
	xdup2(s, BAD);
}

/* A message queued with credentials (the receiver has SO_PASSCRED). */
static void setup_creds(void)
{
	int s[2], one = 1;

	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, s) ||
	    setsockopt(s[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) ||
	    send(s[1], "c", 1, 0) != 1)
		_exit(81);
	xdup2(s[0], BAD);
}

/* A datagram from a named sender (its address would be lost) to an unconnected socket. */
static void setup_named_sender(void)
{
	struct sockaddr_un to = { .sun_family = AF_UNIX }, from = { .sun_family = AF_UNIX };
	int r = socket(AF_UNIX, SOCK_DGRAM, 0), s = socket(AF_UNIX, SOCK_DGRAM, 0);

	snprintf(to.sun_path + 1, sizeof(to.sun_path) - 1, "amber-fileq-r%d", getpid());
	snprintf(from.sun_path + 1, sizeof(from.sun_path) - 1, "amber-fileq-s%d", getpid());
	if (bind(r, (struct sockaddr *)&to, sizeof(to)) ||
	    bind(s, (struct sockaddr *)&from, sizeof(from)) ||
	    sendto(s, "n", 1, 0, (struct sockaddr *)&to, sizeof(to)) != 1)
		_exit(88);
	xdup2(r, BAD);
}

/* Bytes sent to a connection not yet accepted (they carry credentials). */
static void setup_early(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int l = socket(AF_UNIX, SOCK_STREAM, 0), c = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "amber-fileq-l%d", getpid());
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 4) ||
	    connect(c, (struct sockaddr *)&sa, sizeof(sa)) || send(c, "e", 1, 0) != 1)
		_exit(89);
	xdup2(l, BAD);
	xdup2(c, BAD + 1);
}

/* Sends @msgs datagrams from a socketpair's end, each passing @n copies of /dev/null. */
static void send_rights(int msgs, int n)
{
	char cbuf[CMSG_SPACE(253 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	int s[2], fd = open("/dev/null", O_RDONLY), fds[253];

	if (fd < 0 || n > 253 || socketpair(AF_UNIX, SOCK_DGRAM, 0, s))
		_exit(82);
	for (int i = 0; i < n; i++)
		fds[i] = fd;
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	for (int i = 0; i < msgs; i++)
		if (sendmsg(s[1], &m, 0) != 1)
			_exit(83);
	xdup2(s[0], BAD);
}

/* More files in flight than one process may carry (1024). */
static void setup_rights_many(void)
{
	send_rights(9, 120);
}

/* One message passing more descriptions than fit beside its data. */
static void setup_rights_msg(void)
{
	send_rights(1, 200);
}

static void setup_oob(void)
{
	int s[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) || send(s[1], "ab", 2, MSG_OOB) != 2)
		_exit(84);
	xdup2(s[0], BAD);
	xdup2(s[1], BAD + 1);
}

static void setup_peek_off(void)
{
	int s[2], off = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) ||
	    setsockopt(s[0], SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)))
		_exit(85);
	xdup2(s[0], BAD);
}

static void setup_packet_pipe(void)
{
	int p[2];

	if (pipe2(p, O_DIRECT) || write(p[1], "pkt", 3) != 3)
		_exit(86);
	xdup2(p[0], BAD);
	xdup2(p[1], BAD + 1);
}

/* Four full pipes of 1 MiB: more than one process's reply can carry. */
static void setup_too_much(void)
{
	static unsigned char mib[1 << 20];
	int p[2];

	for (int i = 0; i < 4; i++) {
		if (pipe(p) || fcntl(p[1], F_SETPIPE_SZ, 1 << 20) != 1 << 20 ||
		    write(p[1], mib, sizeof(mib)) != sizeof(mib))
			_exit(87);
		xdup2(p[0], BAD + 2 * i);
		xdup2(p[1], BAD + 2 * i + 1);
	}
}

FIXTURE(refused) {
	struct target t;
};

FIXTURE_VARIANT(refused) {
	void (*setup)(void);
	const char *what;	/* expected in the extack after "fd N: " */
	int fd;			/* N, if not BAD */
	int error;
};

FIXTURE_VARIANT_ADD(refused, raw) {
	.setup = setup_raw, .error = -EOPNOTSUPP,
	.what = "AF_INET sockets of type 3 protocol 255 are not supported (only TCP and UDP)",
};
FIXTURE_VARIANT_ADD(refused, unlinked) {
	.setup = setup_unlinked, .error = -EOPNOTSUPP,
	.what = ".sock was unlinked from the file system",
};
FIXTURE_VARIANT_ADD(refused, creds) {
	.setup = setup_creds, .error = -EOPNOTSUPP,
	.what = "a queued message carries credentials (SCM_CREDENTIALS) of pid ",
};
FIXTURE_VARIANT_ADD(refused, named_sender) {
	.setup = setup_named_sender, .error = -EOPNOTSUPP,
	.what = "a message queued from a named socket is not supported",
};
FIXTURE_VARIANT_ADD(refused, early) {
	.setup = setup_early, .error = -EOPNOTSUPP,
	.what = "connection 1 waiting in its accept backlog holds bytes",
};
FIXTURE_VARIANT_ADD(refused, rights_many) {
	.setup = setup_rights_many, .error = -E2BIG,
	.what = "more than 1024 files in flight (SCM_RIGHTS) in the queues of one process",
};
FIXTURE_VARIANT_ADD(refused, rights_msg) {
	.setup = setup_rights_msg, .error = -E2BIG,
	.what = "queued message 1 carries files in flight (SCM_RIGHTS) whose descriptions take more than 24576 bytes",
};
FIXTURE_VARIANT_ADD(refused, oob) {
	.setup = setup_oob, .error = -EOPNOTSUPP,
	.what = "(MSG_OOB) is not supported",
};
FIXTURE_VARIANT_ADD(refused, peek_off) {
	.setup = setup_peek_off, .error = -EOPNOTSUPP,
	.what = "SO_PEEK_OFF is not supported",
};
FIXTURE_VARIANT_ADD(refused, packet_pipe) {
	.setup = setup_packet_pipe, .error = -EOPNOTSUPP,
	.what = "packet-mode (O_DIRECT) pipe are not supported",
};
FIXTURE_VARIANT_ADD(refused, too_much) {
	.setup = setup_too_much, .error = -E2BIG, .fd = BAD + 6,
	.what = "KiB queued in the pipes and sockets of one process",
};

FIXTURE_SETUP(refused)
{
	self->t.pid = 0;
}

FIXTURE_TEARDOWN(refused)
{
	if (self->t.pid > 0) {
		kill(self->t.pid, SIGKILL);
		waitpid(self->t.pid, NULL, 0);
	}
}

TEST_F(refused, by_name)
{
	char prefix[64];
	static struct reply r;

	REQUIRE_MODULE();
	ASSERT_EQ(0, start_target(&self->t, variant->setup, still_runs, false));
	ASSERT_EQ(0, checkpoint(self->t.pid, false, &r));
	free_reply(&r);
	EXPECT_EQ(variant->error, r.error);
	snprintf(prefix, sizeof(prefix), "fd %d: ", variant->fd ?: BAD);
	EXPECT_EQ(0, strncmp(r.msg, prefix, strlen(prefix))) TH_LOG("extack: %s", r.msg);
	EXPECT_NE(NULL, strstr(r.msg, variant->what)) TH_LOG("extack: %s", r.msg);
	/* Refused, not stopped: it still answers. */
	EXPECT_EQ(0, target_verify(&self->t));
	EXPECT_EQ(0, stop_target(&self->t));
	self->t.pid = 0;
}

TEST_HARNESS_MAIN
