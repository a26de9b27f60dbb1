// SPDX-License-Identifier: GPL-2.0
/*
 * AMBER_CMD_RESTORE of a hand-built multi-threaded image (AMBER_A_THREADS),
 * with AMBER_RESTORE_F_HOLD and a shared anonymous VMA mapped from a memfd
 * (AMBER_VMA_FILE_FD). A forked child (the stub) creates two more threads
 * with clone3(CLONE_THREAD, set_tid) that block in pause() with every
 * signal blocked, then asks the module to become a tiny program of three
 * threads. Each restored thread checks its own registers, FS/GS base,
 * xmm0, TID, blocked mask and sigaltstack, and writes 42 (or the number of
 * the check that failed) into its slot of the memfd, which the test maps
 * too. From outside the test checks comm, robust list, rseq, clear_child_tid,
 * that the memfd's contents were not overwritten from the pages file, and
 * that the pages file's cursor went on correctly past the skipped pages.
 * Held restores run only after RELEASE RESUME; RELEASE KILL, closing the
 * socket and a refusal are checked too.
 * Run as root in the guest with amber.ko loaded; skips without it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/amber.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"

#define PG	4096UL
#define CODE	0x10000000UL
#define DATA	0x20000000UL
#define STACK	0x30000000UL
#define STACK_END 0x30004000UL
#define SHM	0x40000000UL	/* the memfd: result slots, ctid, rseq, robust list */
#define AFTER	0x48000000UL	/* anonymous, filled from the run after SHM's */
#define NTHREADS 2		/* besides the leader */

#define SLOT(k)		(8 * (k))
#define CTID_OFF	0x100
#define RSEQ_OFF	0x200
#define ROBUST_OFF	0x300
#define MARK_OFF	0x800
#define MARK		0x6d656d66642121ULL	/* set by the test in the memfd */
#define AFTER_WORD	0xfeedface12345678ULL

/*
 * Inputs (registers): rdi = result slot, rsi = expected %fs:0, rbp =
 * expected %gs:0, rdx = expected TID, r12 = expected blocked mask, r13 =
 * expected sigaltstack sp, r14 = expected low half of xmm0, r15 = 1 to exit
 * the thread after writing the result (0: pause for ever).
 */
extern const char payload_start[], payload_end[];
asm(".pushsection .text\n"
    ".globl payload_start, payload_end\n"
    "payload_start:\n"
    "mov %rdi, %rbx\n"
    "mov %fs:0, %rax; cmp %rsi, %rax; jne 1f\n"
    "mov %gs:0, %rax; cmp %rbp, %rax; jne 2f\n"
    "movq %xmm0, %rax; cmp %r14, %rax; jne 3f\n"
    "mov $186, %eax; syscall; cmp %rdx, %rax; jne 4f\n"
    "mov $14, %eax; xor %edi, %edi; xor %esi, %esi; lea -64(%rsp), %rdx; mov $8, %r10d; syscall\n"
    "test %rax, %rax; jnz 5f; mov -64(%rsp), %rax; cmp %r12, %rax; jne 5f\n"
    "mov $131, %eax; xor %edi, %edi; lea -64(%rsp), %rsi; syscall\n"
    "test %rax, %rax; jnz 6f; mov -64(%rsp), %rax; cmp %r13, %rax; jne 6f\n"
    "mov $42, %eax\n"
    "9: mov %rax, (%rbx)\n"
    "test %r15, %r15; jnz 8f\n"
    "7: mov $34, %eax; syscall; jmp 7b\n"
    "8: mov $60, %eax; xor %edi, %edi; syscall\n"
    "1: mov $1, %eax; jmp 9b\n"
    "2: mov $2, %eax; jmp 9b\n"
    "3: mov $3, %eax; jmp 9b\n"
    "4: mov $4, %eax; jmp 9b\n"
    "5: mov $5, %eax; jmp 9b\n"
    "6: mov $6, %eax; jmp 9b\n"
    "payload_end:\n"
    /* long thread_clone3(struct clone_args *, size_t): the child pauses for ever. */
    ".globl thread_clone3\n"
    "thread_clone3:\n"
    "mov $435, %eax; syscall; test %rax, %rax; jnz 1f\n"
    "2: mov $34, %eax; syscall; jmp 2b\n"
    "1: ret\n"
    ".popsection\n");

long thread_clone3(void *args, size_t size);

struct clone_args_v2 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

/*
 * A thread of the calling process that blocks in pause() (the caller has
 * blocked every signal), with TID @want if that is free, else the kernel's.
 */
static pid_t start_thread(pid_t want)
{
	static char stacks[4][16384] __attribute__((aligned(16)));
	static int used;
	struct clone_args_v2 a = {
		.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
			 CLONE_SYSVSEM,
		.stack = (uint64_t)(uintptr_t)stacks[used],
		.stack_size = sizeof(stacks[0]),
		.set_tid = (uint64_t)(uintptr_t)&want,
		.set_tid_size = 1,
	};
	long tid;

	used++;
	for (int i = 0; i < 50; i++, want++) {
		tid = thread_clone3(&a, sizeof(a));
		if (tid > 0 || (tid != -EEXIST && tid != -EBUSY))
			break;
	}
	if (tid < 0) {
		a.set_tid = 0;
		a.set_tid_size = 0;
		tid = thread_clone3(&a, sizeof(a));
	}
	return tid;
}

/* ---- netlink ---- */
struct msg {
	char buf[65536];
	size_t len;
};

static struct nlattr *put(struct msg *m, int type, const void *data, size_t len)
{
	struct nlattr *a = (struct nlattr *)(m->buf + m->len);

	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	if (len)
		memcpy((char *)a + NLA_HDRLEN, data, len);
	m->len += NLA_ALIGN(a->nla_len);
	return a;
}
static void put_u32(struct msg *m, int t, uint32_t v) { put(m, t, &v, 4); }
static void put_u64(struct msg *m, int t, uint64_t v) { put(m, t, &v, 8); }
static struct nlattr *nest(struct msg *m, int t) { return put(m, t | NLA_F_NESTED, NULL, 0); }
static void nest_end(struct msg *m, struct nlattr *a) { a->nla_len = m->buf + m->len - (char *)a; }

static void msg_start(struct msg *m, int family, int cmd, uint32_t seq)
{
	struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
	struct genlmsghdr *g = NLMSG_DATA(h);

	memset(m->buf, 0, NLMSG_HDRLEN + GENL_HDRLEN);
	m->len = NLMSG_HDRLEN + GENL_HDRLEN;
	h->nlmsg_type = family;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	h->nlmsg_seq = seq;
	g->cmd = cmd;
	g->version = AMBER_FAMILY_VERSION;
}

static int msg_send(int sk, struct msg *m)
{
	((struct nlmsghdr *)m->buf)->nlmsg_len = m->len;
	return send(sk, m->buf, m->len, 0) == (ssize_t)m->len ? 0 : -1;
}

static int family_id(int sk)
{
	struct msg m;
	char rbuf[8192];
	struct nlmsghdr *h;
	int n;

	msg_start(&m, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1);
	((struct genlmsghdr *)NLMSG_DATA((struct nlmsghdr *)m.buf))->version = 1;
	((struct nlmsghdr *)m.buf)->nlmsg_flags = NLM_F_REQUEST;
	put(&m, CTRL_ATTR_FAMILY_NAME, AMBER_FAMILY_NAME, sizeof(AMBER_FAMILY_NAME));
	if (msg_send(sk, &m))
		return -1;
	n = recv(sk, rbuf, sizeof(rbuf), 0);
	h = (struct nlmsghdr *)rbuf;
	if (n < 0 || h->nlmsg_type == NLMSG_ERROR)
		return -1;
	for (struct nlattr *a = (struct nlattr *)((char *)NLMSG_DATA(h) + GENL_HDRLEN);
	     (char *)a < rbuf + h->nlmsg_len; a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))
		if (a->nla_type == CTRL_ATTR_FAMILY_ID)
			return *(uint16_t *)((char *)a + NLA_HDRLEN);
	return -1;
}

/* The ACK of request @seq: 0 or -errno, the extack message into @msg. */
static int read_ack(int sk, uint32_t seq, char *msg, size_t msglen)
{
	static char rbuf[65536];
	struct nlmsghdr *h = (struct nlmsghdr *)rbuf;
	struct nlmsgerr *e;
	int n;

	msg[0] = 0;
	for (;;) {
		n = recv(sk, rbuf, sizeof(rbuf), 0);
		if (n < 0)
			return -1000;
		if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == seq)
			break;
	}
	e = NLMSG_DATA(h);
	if (h->nlmsg_flags & NLM_F_ACK_TLVS) {
		size_t off = sizeof(*e);

		if (!(h->nlmsg_flags & NLM_F_CAPPED))
			off += e->msg.nlmsg_len - NLMSG_HDRLEN;
		for (struct nlattr *a = (struct nlattr *)((char *)e + NLMSG_ALIGN(off));
		     (char *)a < rbuf + h->nlmsg_len;
		     a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))
			if (a->nla_type == NLMSGERR_ATTR_MSG)
				snprintf(msg, msglen, "%s", (char *)a + NLA_HDRLEN);
	}
	return e->error;
}

/* ---- the image ---- */
enum variant { V_RUN, V_HOLD_RESUME, V_HOLD_KILL, V_HOLD_CLOSE, V_BAD_THREAD, V_TRACED };

static void maps_find(const char *name, unsigned long *s, unsigned long *e)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];

	*s = *e = 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, name))
			sscanf(line, "%lx-%lx", s, e);
	fclose(f);
}

static void vma(struct msg *m, unsigned long s, unsigned long e, int prot, int flags, int fd)
{
	struct nlattr *n = nest(m, AMBER_A_VMA);

	put_u64(m, AMBER_VMA_START, s);
	put_u64(m, AMBER_VMA_END, e);
	put_u64(m, AMBER_VMA_PGOFF, 0);
	put_u32(m, AMBER_VMA_PROT, prot);
	put_u32(m, AMBER_VMA_FLAGS, flags);
	if (fd >= 0)
		put_u32(m, AMBER_VMA_FILE_FD, fd);
	nest_end(m, n);
}

static void run(int fd, unsigned long addr, const void *data)
{
	struct amber_page_run r = { addr, 1, 0 };

	if (write(fd, &r, sizeof(r)) != sizeof(r) || write(fd, data, PG) != PG)
		_exit(97);
}

/* Pages: payload, TLS words, a garbage SHM page (must be skipped), AFTER. */
static int pages_file(void)
{
	struct amber_pages_hdr h = { AMBER_PAGES_MAGIC, AMBER_PAGES_VERSION, PG };
	static char page[PG];
	int fd = memfd_create("pages", 0);

	if (write(fd, &h, sizeof(h)) != sizeof(h))
		_exit(97);
	memset(page, 0, PG);
	memcpy(page, payload_start, payload_end - payload_start);
	run(fd, CODE, page);
	memset(page, 0, PG);
	for (int k = 0; k <= NTHREADS; k++) {
		*(uint64_t *)(page + 0x100 * k) = 0x1000 + k;		/* %fs:0 */
		*(uint64_t *)(page + 0x800 + 0x100 * k) = 0x2000 + k;	/* %gs:0 */
	}
	run(fd, DATA, page);
	memset(page, 0x11, PG);
	run(fd, SHM, page);
	memset(page, 0, PG);
	*(uint64_t *)page = AFTER_WORD;
	run(fd, AFTER, page);
	return fd;
}

static uint64_t blocked_of(int k)
{
	return k == 0 ? 0 : k == 1 ? (1ULL << (SIGUSR1 - 1)) | (1ULL << (SIGUSR2 - 1)) :
	       1ULL << (SIGPIPE - 1);
}

static uint64_t sas_of(int k)
{
	return k ? STACK + 0x2000 * (k - 1) : 0;
}

static void put_regs(struct msg *m, int type, int k, pid_t tid, bool bad)
{
	struct nlattr *n = nest(m, type);
	uint64_t r[AMBER_REG_MAX + 1] = {
		[AMBER_REG_RDI] = SHM + SLOT(k),
		[AMBER_REG_RSI] = 0x1000 + k,
		[AMBER_REG_RBP] = 0x2000 + k,
		[AMBER_REG_RDX] = tid,
		[AMBER_REG_R12] = blocked_of(k),
		[AMBER_REG_R13] = sas_of(k),
		[AMBER_REG_R14] = 0x1111222233330000ULL + k,
		[AMBER_REG_R15] = k == 2,	/* thread 2 exits: clear_child_tid */
		[AMBER_REG_ORIG_RAX] = -1,
		[AMBER_REG_RIP] = bad ? 0x8000000000000000ULL : CODE,	/* non-canonical */
		[AMBER_REG_CS] = 0x33,
		[AMBER_REG_EFLAGS] = 0x246,
		[AMBER_REG_RSP] = STACK + 0x1000 * (k + 1) - 0x10,
		[AMBER_REG_SS] = 0x2b,
		[AMBER_REG_FS_BASE] = DATA + 0x100 * k,
		[AMBER_REG_GS_BASE] = DATA + 0x800 + 0x100 * k,
	};

	for (int i = AMBER_REG_R15; i <= AMBER_REG_GS; i++)
		put_u64(m, i, r[i]);
	nest_end(m, n);
}

static void put_fpu(struct msg *m, int type, int k)
{
	unsigned char fpu[576] = { 0 };

	*(uint16_t *)fpu = 0x37f;			/* fcw */
	*(uint32_t *)(fpu + 24) = 0x1f80;		/* mxcsr */
	*(uint64_t *)(fpu + 160) = 0x1111222233330000ULL + k;	/* xmm0 */
	*(uint64_t *)(fpu + 512) = 3;			/* xfeatures: x87, SSE */
	put(m, type, fpu, sizeof(fpu));
}

static void build(struct msg *m, int family, enum variant v, const pid_t *tids, int pf,
		  int memfd, int sk)
{
	unsigned long vs, ve, ds, de;
	struct nlattr *n, *t;

	maps_find("[vvar]", &vs, &ve);
	maps_find("[vdso]", &ds, &de);
	msg_start(m, family, AMBER_CMD_RESTORE, 77);

	n = nest(m, AMBER_A_VMAS);
	vma(m, CODE, CODE + PG, PROT_READ | PROT_EXEC, AMBER_VMA_F_ANON, -1);
	vma(m, DATA, DATA + PG, PROT_READ | PROT_WRITE, AMBER_VMA_F_ANON, -1);
	vma(m, STACK, STACK_END, PROT_READ | PROT_WRITE, AMBER_VMA_F_ANON, -1);
	vma(m, SHM, SHM + PG, PROT_READ | PROT_WRITE,
	    AMBER_VMA_F_SHARED | AMBER_VMA_F_ANON | AMBER_VMA_F_SHMEM, memfd);
	vma(m, AFTER, AFTER + PG, PROT_READ | PROT_WRITE, AMBER_VMA_F_ANON, -1);
	vma(m, vs, ve, PROT_READ, AMBER_VMA_F_VVAR, -1);
	vma(m, ds, de, PROT_READ | PROT_EXEC, AMBER_VMA_F_VDSO, -1);
	nest_end(m, n);

	put_regs(m, AMBER_A_REGS, 0, getpid(), false);
	put_fpu(m, AMBER_A_FPU, 0);
	n = nest(m, AMBER_A_SIGNALS);
	put_u64(m, AMBER_SIG_BLOCKED, blocked_of(0));
	nest_end(m, n);

	/* Two THREADS nests: the list may be split like VMAS. */
	for (int k = 1; k <= NTHREADS; k++) {
		char comm[16];

		n = nest(m, AMBER_A_THREADS);
		t = nest(m, AMBER_A_THREAD);
		put_u32(m, AMBER_THREAD_TID, tids[k - 1]);
		put_regs(m, AMBER_THREAD_REGS, k, tids[k - 1], v == V_BAD_THREAD && k == 2);
		put_fpu(m, AMBER_THREAD_FPU, k);
		put_u64(m, AMBER_THREAD_BLOCKED, blocked_of(k));
		put_u64(m, AMBER_THREAD_SAS_SP, sas_of(k));
		put_u64(m, AMBER_THREAD_SAS_SIZE, 0x2000);
		put_u32(m, AMBER_THREAD_SAS_FLAGS, 0);
		if (k == 1) {
			put_u64(m, AMBER_THREAD_RSEQ, SHM + RSEQ_OFF);
			put_u32(m, AMBER_THREAD_RSEQ_LEN, 32);
			put_u32(m, AMBER_THREAD_RSEQ_SIG, 0x53053053);
			put_u64(m, AMBER_THREAD_ROBUST_LIST, SHM + ROBUST_OFF);
			put_u64(m, AMBER_THREAD_ROBUST_LIST_LEN, 24);
		} else {
			put_u64(m, AMBER_THREAD_CLEAR_CHILD_TID, SHM + CTID_OFF);
		}
		snprintf(comm, sizeof(comm), "amb-thread-%d", k);
		put(m, AMBER_THREAD_COMM, comm, strlen(comm) + 1);
		nest_end(m, t);
		nest_end(m, n);
	}

	n = nest(m, AMBER_A_PAGE_FDS);
	put_u32(m, AMBER_A_PAGE_FD, pf);
	nest_end(m, n);
	n = nest(m, AMBER_A_CLOSE_FDS);
	put_u32(m, AMBER_A_CLOSE_FD, pf);
	put_u32(m, AMBER_A_CLOSE_FD, memfd);
	put_u32(m, AMBER_A_CLOSE_FD, sk);
	nest_end(m, n);
	if (v != V_RUN)
		put_u32(m, AMBER_A_FLAGS, AMBER_RESTORE_F_HOLD);
}

/* The system call thread @tid of @pid is in (/proc/PID/task/TID/syscall), or -1. */
static long task_syscall(pid_t pid, pid_t tid)
{
	char path[96], buf[256] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", pid, tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return buf[0] ? strtol(buf, NULL, 10) : -1;
}

static struct msg req;

/*
 * The stub: threads, then RESTORE; reports its TIDs first through @tp and
 * waits for a byte on @go.
 */
static void stub(int sk, int family, enum variant v, int memfd, int tp, int go)
{
	char c;
	pid_t tids[NTHREADS];
	sigset_t all;
	int pf = pages_file();

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	for (int k = 0; k < NTHREADS; k++) {
		tids[k] = start_thread(getpid() + 100 + 10 * k);
		if (tids[k] <= 0)
			_exit(95);
	}
	if (write(tp, tids, sizeof(tids)) != sizeof(tids) || read(go, &c, 1) != 1)
		_exit(96);
	build(&req, family, v, tids, pf, memfd, sk);
	msg_send(sk, &req);
	if (v != V_BAD_THREAD && v != V_TRACED)
		_exit(99);	/* the restore failed */
	/* V_TRACED: the test lets the traced thread go first. */
	if (v == V_TRACED && read(go, &c, 1) != 1)
		_exit(96);
	/* Refused: the threads must still be there, back in pause(). */
	for (int t = 0; t < 200; t++) {
		if (task_syscall(getpid(), tids[0]) == SYS_pause &&
		    task_syscall(getpid(), tids[1]) == SYS_pause)
			_exit(50);
		usleep(10000);
	}
	_exit(51);
}

/* The state letter of thread @tid of @pid (/proc/PID/task/TID/stat), or 0. */
static char task_state(pid_t pid, pid_t tid)
{
	char path[96], buf[512] = "", *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	p = strrchr(buf, ')');
	return p && p[1] && p[2] ? p[2] : 0;
}

static char *task_comm(pid_t pid, pid_t tid)
{
	static char buf[64];
	char path[96];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
	buf[0] = 0;
	f = fopen(path, "r");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
	return buf;
}

static int wait_exit(pid_t pid, int ms, int *status)
{
	for (int t = 0; t < ms / 10; t++) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return 0;
		usleep(10000);
	}
	return -1;
}

FIXTURE(thr) {
	int sk;
	int family;
	int memfd;
	volatile uint64_t *shm;
};

FIXTURE_VARIANT(thr) {
	enum variant v;
};

FIXTURE_VARIANT_ADD(thr, run) { .v = V_RUN };
FIXTURE_VARIANT_ADD(thr, hold_resume) { .v = V_HOLD_RESUME };
FIXTURE_VARIANT_ADD(thr, hold_kill) { .v = V_HOLD_KILL };
FIXTURE_VARIANT_ADD(thr, hold_socket_closed) { .v = V_HOLD_CLOSE };
FIXTURE_VARIANT_ADD(thr, bad_thread_regs) { .v = V_BAD_THREAD };
FIXTURE_VARIANT_ADD(thr, thread_does_not_stop) { .v = V_TRACED };

FIXTURE_SETUP(thr)
{
	struct timeval tv = { .tv_sec = 30 };
	int one = 1;

	self->sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	ASSERT_LE(0, self->sk);
	setsockopt(self->sk, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(self->sk, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	self->family = family_id(self->sk);
	self->memfd = memfd_create("amber-shm", 0);
	ASSERT_LE(0, self->memfd);
	ASSERT_EQ(0, ftruncate(self->memfd, PG));
	self->shm = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, self->memfd, 0);
	ASSERT_NE(MAP_FAILED, (void *)self->shm);
	self->shm[CTID_OFF / 8] = 0x7777;
	self->shm[RSEQ_OFF / 8] = 0xffffffff00000000ULL;	/* cpu_id: uninitialised */
	self->shm[ROBUST_OFF / 8] = SHM + ROBUST_OFF;		/* empty list: points at itself */
	self->shm[MARK_OFF / 8] = MARK;
}

FIXTURE_TEARDOWN(thr)
{
	if (self->sk >= 0)
		close(self->sk);
	close(self->memfd);
}

/* Both threads and the leader ran their checks (or none did, if @ran is false). */
static void check_slots(struct __test_metadata *_metadata, FIXTURE_DATA(thr) *self, bool ran)
{
	for (int k = 0; k <= NTHREADS; k++) {
		uint64_t got = self->shm[SLOT(k) / 8];

		EXPECT_EQ(ran ? 42 : 0, got)
			TH_LOG("thread %d: result %llu (1 fs, 2 gs, 3 xmm0, 4 tid, 5 blocked, 6 sigaltstack)",
			       k, (unsigned long long)got);
	}
}

static void check_restored(struct __test_metadata *_metadata, FIXTURE_DATA(thr) *self,
			   pid_t pid, const pid_t *tids)
{
	uint64_t after = 0, head = 0, len = 0;
	uint32_t cpu_id;
	char path[64];
	int mem;

	for (int t = 0; t < 300 && (self->shm[SLOT(0) / 8] == 0 || self->shm[SLOT(1) / 8] == 0 ||
				    self->shm[SLOT(2) / 8] == 0 || self->shm[CTID_OFF / 8]); t++)
		usleep(10000);
	check_slots(_metadata, self, true);
	/* the pages file's SHM page (0x11...) was skipped: the memfd keeps the test's data */
	EXPECT_EQ(MARK, self->shm[MARK_OFF / 8]);
	/* and the cursor went on to the next run */
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	mem = open(path, O_RDONLY);
	ASSERT_LE(0, mem);
	EXPECT_EQ(8, pread(mem, &after, 8, AFTER));
	close(mem);
	EXPECT_EQ(AFTER_WORD, after);
	/* thread 2 exited: clear_child_tid */
	EXPECT_EQ(0, self->shm[CTID_OFF / 8]);
	/* thread 1: comm, robust list, rseq */
	EXPECT_STREQ("amb-thread-1", task_comm(pid, tids[0]));
	EXPECT_EQ(0, syscall(SYS_get_robust_list, tids[0], &head, &len));
	EXPECT_EQ(SHM + ROBUST_OFF, head);
	EXPECT_EQ(24, len);
	cpu_id = self->shm[RSEQ_OFF / 8] >> 32;
	EXPECT_GT(1024, cpu_id) TH_LOG("rseq cpu_id not updated: %#x", cpu_id);
	/* the leader and thread 1 pause in the payload */
	EXPECT_EQ(34, task_syscall(pid, pid));
	EXPECT_EQ(34, task_syscall(pid, tids[0]));
}

TEST_F_TIMEOUT(thr, restore, 120)
{
	enum variant v = variant->v;
	pid_t tids[NTHREADS], pid;
	char msg[512] = "";
	int tp[2], gp[2], status = 0, err;
	struct msg rel;

	if (self->family < 0 || geteuid() != 0)
		SKIP(return, "amber.ko is not loaded or not root");
	ASSERT_EQ(0, pipe(tp));
	ASSERT_EQ(0, pipe(gp));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		close(tp[0]);
		close(gp[1]);
		stub(self->sk, self->family, v, self->memfd, tp[1], gp[0]);
	}
	close(tp[1]);
	close(gp[0]);
	ASSERT_EQ(sizeof(tids), read(tp[0], tids, sizeof(tids)));
	close(tp[0]);
	TH_LOG("stub %d, threads %d %d", pid, tids[0], tids[1]);
	if (v == V_TRACED) {
		/* thread 2 sits in a ptrace stop: TWA_SIGNAL cannot park it */
		ASSERT_EQ(0, ptrace(PTRACE_SEIZE, tids[1], 0, 0));
		ASSERT_EQ(0, ptrace(PTRACE_INTERRUPT, tids[1], 0, 0));
		ASSERT_EQ(tids[1], waitpid(tids[1], &status, __WALL));
	}
	ASSERT_EQ(1, write(gp[1], "g", 1));

	err = read_ack(self->sk, 77, msg, sizeof(msg));
	if (v == V_BAD_THREAD || v == V_TRACED) {
		char want[96];

		TH_LOG("refused: %d \"%s\"", err, msg);
		EXPECT_EQ(v == V_TRACED ? -ETIMEDOUT : -EINVAL, err);
		snprintf(want, sizeof(want), v == V_TRACED ? "thread %d: did not stop within" :
			 "thread %d: rip", tids[1]);
		EXPECT_TRUE(strstr(msg, want) != NULL) TH_LOG("expected \"%s\"", want);
		if (v == V_TRACED) {
			/* resumed, thread 2 runs its stale park task_work and goes back to pause() */
			char st = 0;

			ASSERT_EQ(0, ptrace(PTRACE_DETACH, tids[1], 0, 0));
			for (int t = 0; t < 200 && st != 'S'; t++) {
				usleep(10000);
				st = task_state(pid, tids[1]);
			}
			EXPECT_EQ('S', st);
			ASSERT_EQ(1, write(gp[1], "g", 1));
		}
		close(gp[1]);
		ASSERT_EQ(0, wait_exit(pid, 20000, &status));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 50)
			TH_LOG("stub status %#x", status);
		check_slots(_metadata, self, false);
		return;
	}
	close(gp[1]);
	ASSERT_EQ(0, err) TH_LOG("restore failed: %s", msg);

	if (v == V_RUN) {
		check_restored(_metadata, self, pid, tids);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return;
	}

	/* Held: nothing runs, the threads are all there. */
	usleep(300000);
	/* A held restore pins the module: unloading it is refused. */
	if (v == V_HOLD_KILL) {
		EXPECT_NE(0, syscall(SYS_delete_module, "amber", O_NONBLOCK));
		EXPECT_TRUE(errno == EWOULDBLOCK || errno == EBUSY) TH_LOG("errno %d", errno);
	}
	check_slots(_metadata, self, false);
	EXPECT_EQ(0x7777, self->shm[CTID_OFF / 8]);
	EXPECT_EQ(0, waitpid(pid, &status, WNOHANG));
	/* threads take their state only when released */
	EXPECT_STRNE("amb-thread-2", task_comm(pid, tids[1]));

	if (v == V_HOLD_CLOSE) {
		close(self->sk);
		self->sk = -1;
	} else {
		msg_start(&rel, self->family, AMBER_CMD_RELEASE, 78);
		put_u32(&rel, AMBER_A_PID, pid);
		put_u32(&rel, AMBER_A_ACTION, v == V_HOLD_KILL ? AMBER_RELEASE_KILL :
							       AMBER_RELEASE_RESUME);
		ASSERT_EQ(0, msg_send(self->sk, &rel));
		err = read_ack(self->sk, 78, msg, sizeof(msg));
		ASSERT_EQ(0, err) TH_LOG("release: %s", msg);
		/* a second RELEASE finds nothing held */
		msg_start(&rel, self->family, AMBER_CMD_RELEASE, 79);
		put_u32(&rel, AMBER_A_PID, pid);
		put_u32(&rel, AMBER_A_ACTION, AMBER_RELEASE_RESUME);
		ASSERT_EQ(0, msg_send(self->sk, &rel));
		EXPECT_EQ(-ESRCH, read_ack(self->sk, 79, msg, sizeof(msg)));
	}
	if (v == V_HOLD_RESUME) {
		check_restored(_metadata, self, pid, tids);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return;
	}
	/* KILL or socket closed: dies by SIGKILL before any user instruction. */
	ASSERT_EQ(0, wait_exit(pid, 20000, &status));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		TH_LOG("status %#x", status);
	check_slots(_metadata, self, false);
	EXPECT_EQ(0x7777, self->shm[CTID_OFF / 8]);
}

TEST_HARNESS_MAIN
