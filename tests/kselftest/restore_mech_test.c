// SPDX-License-Identifier: GPL-2.0
/*
 * Mechanism test for AMBER_CMD_RESTORE with hand-built images: a forked
 * child (the stub) asks the module to become a tiny program whose code
 * checks the restored registers, FS/GS base, xstate, memory (private RX,
 * RW, stack, read-only shmem) and exits 42. Bad requests must be refused
 * with an extack message, leaving the stub alive.
 * Chains of pages files (incremental checkpoints): the last file is the one
 * restored, AMBER_RUN_F_PARENT runs are resolved through the older files;
 * the restored program then pauses and its memory is read from outside.
 * Run as root in the guest with amber.ko loaded; skips without it.
 * Build: gcc -isystem include/uapi -Ibuild/kselftest restore_mech_test.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/amber.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"

#define CODE	0x10000000UL
#define DATA	0x20000000UL
#define STACK	0x30000000UL
#define STACK_END 0x30004000UL
#define SHM	0x40000000UL
#define CHAIN	0x60000000UL	/* CHAIN_PAGES anonymous pages filled by chains */
#define CHAIN_PAGES 256
#define DEEP_PAGES 16
#define BIG_PAGES 200		/* runs of several bounce buffers (256 KiB) */
#define OUTSIDE	0x70000000UL	/* in no VMA of the image */
#define AMB_MAX_LINKS 64
#define RSP	0x30003ff0UL
#define PG	4096UL

extern const char payload_start[], payload_end[], payload_handler[], payload_pause[];
asm(".pushsection .text\n"
    ".globl payload_start, payload_end, payload_handler, payload_pause\n"
    "payload_start:\n"
    "cmp $0x1515, %r15; jne 1f\n"
    "cmp $0x1414, %r14; jne 1f\n"
    "cmp $0x1313, %r13; jne 1f\n"
    "cmp $0x1212, %r12; jne 1f\n"
    "cmp $0x0b0b, %rbp; jne 1f\n"
    "cmp $0x0a0a, %rbx; jne 1f\n"
    "cmp $0x1111, %r11; jne 1f\n"
    "cmp $0x1010, %r10; jne 1f\n"
    "cmp $0x0909, %r9; jne 1f\n"
    "cmp $0x0808, %r8; jne 1f\n"
    "cmp $0x0c0c, %rcx; jne 1f\n"
    "cmp $0x0d0d, %rdx; jne 1f\n"
    "cmp $0x0e0e, %rsi; jne 1f\n"
    "cmp $60, %rax; jne 2f\n"
    "cmp $42, %rdi; jne 2f\n"
    "cmp $0x30003ff0, %rsp; jne 3f\n"
    "cmpq $0x3333, (%rsp); jne 3f\n"
    "pushfq; pop %r8; and $0x400, %r8; jz 4f; cld\n"
    "mov %fs:0, %r8; cmp $0x5a5a, %r8; jne 5f\n"
    "mov %gs:0, %r8; cmp $0xa5a5, %r8; jne 6f\n"
    "movq %xmm0, %r8; movabs $0x1122334455667788, %r9; cmp %r9, %r8; jne 7f\n"
    "stmxcsr -8(%rsp); mov -8(%rsp), %r8d; cmp $0x9f80, %r8d; jne 8f\n"
    "mov $0x40000000, %r9; mov (%r9), %r8; cmp $0x7777, %r8; jne 9f\n"
    "mov $60, %eax; mov $42, %edi; syscall\n"
    "1: mov $60, %eax; mov $11, %edi; syscall\n"
    "2: mov $60, %eax; mov $12, %edi; syscall\n"
    "3: mov $60, %eax; mov $13, %edi; syscall\n"
    "4: mov $60, %eax; mov $14, %edi; syscall\n"
    "5: mov $60, %eax; mov $15, %edi; syscall\n"
    "6: mov $60, %eax; mov $16, %edi; syscall\n"
    "7: mov $60, %eax; mov $17, %edi; syscall\n"
    "8: mov $60, %eax; mov $18, %edi; syscall\n"
    "9: mov $60, %eax; mov $19, %edi; syscall\n"
    "payload_pause:\n"
    "mov $34, %eax; syscall; jmp payload_pause\n"
    "payload_handler:\n"
    "mov %rsp, %r8; cmp $0x30000000, %r8; jb 1b; cmp $0x30004000, %r8; jae 1b\n"
    "mov $60, %eax; mov $77, %edi; syscall\n"
    "payload_end:\n"
    ".popsection\n");

/* ---- tiny generic netlink builder ---- */
struct msg {
	char buf[65536];
	size_t len;
};

static struct nlattr *put(struct msg *m, int type, const void *data, size_t len)
{
	struct nlattr *a = (struct nlattr *)(m->buf + m->len);

	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	memcpy((char *)a + NLA_HDRLEN, data, len);
	m->len += NLA_ALIGN(a->nla_len);
	return a;
}
static void put_u32(struct msg *m, int t, uint32_t v) { put(m, t, &v, 4); }
static void put_u64(struct msg *m, int t, uint64_t v) { put(m, t, &v, 8); }
static struct nlattr *nest(struct msg *m, int t)
{
	struct nlattr *a = put(m, t | NLA_F_NESTED, NULL, 0);
	return a;
}
static void nest_end(struct msg *m, struct nlattr *a)
{
	a->nla_len = m->buf + m->len - (char *)a;
}

static int family_id(int sk)
{
	struct msg m = { .len = NLMSG_HDRLEN + GENL_HDRLEN };
	struct nlmsghdr *h = (struct nlmsghdr *)m.buf;
	struct genlmsghdr *g = NLMSG_DATA(h);
	char rbuf[8192];
	int n;

	put(&m, CTRL_ATTR_FAMILY_NAME, AMBER_FAMILY_NAME, sizeof(AMBER_FAMILY_NAME));
	h->nlmsg_len = m.len;
	h->nlmsg_type = GENL_ID_CTRL;
	h->nlmsg_flags = NLM_F_REQUEST;
	g->cmd = CTRL_CMD_GETFAMILY;
	g->version = 1;
	if (send(sk, m.buf, m.len, 0) < 0)
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

/* Read the ACK for the request: returns -errno or 0, message into msg. */
static int read_ack(int sk, char *msg, size_t msglen)
{
	char rbuf[65536];
	struct nlmsghdr *h = (struct nlmsghdr *)rbuf;
	struct nlmsgerr *e;
	int n = recv(sk, rbuf, sizeof(rbuf), 0);

	msg[0] = 0;
	if (n < 0 || h->nlmsg_type != NLMSG_ERROR)
		return -1000;
	e = NLMSG_DATA(h);
	if (h->nlmsg_flags & NLM_F_ACK_TLVS) {
		size_t off = sizeof(*e);
		if (!(h->nlmsg_flags & NLM_F_CAPPED))
			off += e->msg.nlmsg_len - NLMSG_HDRLEN;
		for (struct nlattr *a = (struct nlattr *)((char *)e + NLMSG_ALIGN(off));
		     (char *)a < rbuf + h->nlmsg_len; a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))
			if (a->nla_type == NLMSGERR_ATTR_MSG)
				snprintf(msg, msglen, "%s", (char *)a + NLA_HDRLEN);
	}
	return e->error;
}

/* ---- the image ---- */
enum variant {
	V_GOOD, V_SIGNAL, V_UNSORTED, V_BAD_RIP, V_BAD_MXCSR, V_BAD_XFEAT, V_SHORT_FPU,
	V_NONROOT, V_BAD_VDSO, V_RUN_OUTSIDE, V_BAD_CS, V_NO_FD, V_BAD_AUXV, V_BAD_MM,
	V_CAPS, V_OVERLAP_VDSO, V_ADVISE, V_CREDS,
	/* chains of pages files */
	V_CHAIN, V_DEEP, V_BIG, V_PARENT_OLDEST, V_MISSING, V_MISSING_DEEP, V_UNSORTED_RUNS,
	V_OVERLAP_RUNS, V_BAD_FLAGS, V_TOO_MANY, V_BAD_VERSION, V_TRUNCATED,
	/* AMBER_RESTORE_F_HOLD, one thread: not released, it must die by SIGKILL */
	V_HOLD_CLOSE, V_HOLD_KILL,
};

static bool held(enum variant v)
{
	return v == V_HOLD_CLOSE || v == V_HOLD_KILL;
}

/* The restored program pauses and is inspected from outside. */
static bool pauses(enum variant v)
{
	return v == V_ADVISE || v == V_CREDS || v == V_CHAIN || v == V_DEEP || v == V_BIG;
}

/* A part of the extack message each refused variant must give. */
static const char *want_msg(enum variant v)
{
	switch (v) {
	case V_RUN_OUTSIDE:	return "pages file 2: run at 0x50000000 (1 pages) is outside";
	case V_PARENT_OLDEST:	return "pages file 0: run at 0x60000000 refers to a parent";
	case V_MISSING:		return "pages file 1: pages at 0x60002000-0x60004000 are missing from its parent, pages file 0";
	case V_MISSING_DEEP:	return "pages file 1: pages at 0x60003000-0x60004000 are missing from its parent, pages file 0";
	case V_UNSORTED_RUNS:	return "pages file 1: run at 0x10000000 is not sorted";
	case V_OVERLAP_RUNS:	return "pages file 1: run at 0x60001000 is not sorted or overlaps";
	case V_BAD_FLAGS:	return "pages file 1: run at 0x60000000 has unknown flags 0x2";
	case V_TOO_MANY:	return "65 pages files, at most 64";
	case V_BAD_VERSION:	return "pages file 0: version 1";
	case V_TRUNCATED:	return "pages file 0: run at 0x60000000 is truncated";
	default:		return "";
	}
}

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
	put_u32(m, AMBER_VMA_PROT, prot);
	put_u32(m, AMBER_VMA_FLAGS, flags);
	if (fd >= 0)
		put_u32(m, AMBER_VMA_FILE_FD, fd);
	nest_end(m, n);
}

static void run_hdr(int fd, unsigned long addr, uint32_t nr, uint32_t flags)
{
	struct amber_page_run r = { addr, nr, flags };

	write(fd, &r, sizeof(r));
}

static void run(int fd, unsigned long addr, const void *data)
{
	run_hdr(fd, addr, 1, 0);
	write(fd, data, PG);
}

static int new_pages_file(uint32_t version)
{
	int fd = memfd_create("pages", 0);
	struct amber_pages_hdr h = { AMBER_PAGES_MAGIC, version, PG };

	write(fd, &h, sizeof(h));
	return fd;
}

/* The pages the payload needs: data, or parent runs standing for them. */
static void std_runs(int fd, bool parent, bool unsorted)
{
	static char page[PG];

	if (parent) {
		run_hdr(fd, CODE, 1, AMBER_RUN_F_PARENT);
		run_hdr(fd, DATA, 1, AMBER_RUN_F_PARENT);
		run_hdr(fd, STACK_END - PG, 1, AMBER_RUN_F_PARENT);
		run_hdr(fd, SHM, 1, AMBER_RUN_F_PARENT);
		return;
	}
	memset(page, 0, PG);
	*(uint64_t *)page = 0x5a5a;
	*(uint64_t *)(page + 8) = 0xa5a5;
	*(uint32_t *)(page + 64 + 4) = 0xffffffff;	/* rseq cpu_id: uninitialised */
	if (unsorted)
		run(fd, DATA, page);
	memset(page, 0, PG);
	memcpy(page, payload_start, payload_end - payload_start);
	run(fd, CODE, page);
	if (!unsorted) {
		memset(page, 0, PG);
		*(uint64_t *)page = 0x5a5a;
		*(uint64_t *)(page + 8) = 0xa5a5;
		*(uint32_t *)(page + 64 + 4) = 0xffffffff;
		run(fd, DATA, page);
	}
	memset(page, 0, PG);
	*(uint64_t *)(page + (RSP - (STACK_END - PG))) = 0x3333;
	run(fd, STACK_END - PG, page);
	memset(page, 0, PG);
	*(uint64_t *)page = 0x7777;
	run(fd, SHM, page);
}

static int pages_file(int which)
{
	int fd = new_pages_file(AMBER_PAGES_VERSION);
	static char page[PG];

	if (which == 0) {	/* an older link that the last one does not need */
		memset(page, 0, PG);
		*(uint64_t *)page = 0x1111;
		run(fd, DATA, page);
		return fd;
	}
	std_runs(fd, false, false);
	return fd;
}

/* Content of a data page of link @link at @addr: every word names both. */
static void chain_page(void *page, int link, unsigned long addr)
{
	for (size_t i = 0; i < PG / 8; i++)
		((uint64_t *)page)[i] = (uint64_t)(link + 1) << 40 | addr | i;
}

enum quirk { Q_NONE, Q_OUTSIDE, Q_UNSORTED, Q_OVERLAP, Q_FLAGS, Q_VERSION, Q_TRUNC };

/*
 * Pages file of link @link of a chain: the payload's pages (data in link 0,
 * parent runs above), then the CHAIN pages as described by @spec, one char
 * per page: 'D' data, 'P' parent, '.' no data; equal neighbours form one run.
 */
static int link_file(int link, const char *spec, enum quirk q)
{
	int fd = new_pages_file(q == Q_VERSION ? 1 : AMBER_PAGES_VERSION);
	static char page[PG];

	if (q == Q_OUTSIDE && !link) {
		chain_page(page, link, 0x08000000);
		run(fd, 0x08000000, page);
	}
	std_runs(fd, link > 0 && q != Q_UNSORTED, q == Q_UNSORTED);
	for (int p = 0, n; spec[p]; p += n) {
		unsigned long addr = CHAIN + p * PG;

		for (n = 1; spec[p + n] == spec[p]; n++)
			;
		if (spec[p] == '.')
			continue;
		if (spec[p] == 'P') {
			run_hdr(fd, addr, n, q == Q_FLAGS ? 2 : AMBER_RUN_F_PARENT);
			continue;
		}
		run_hdr(fd, addr, n, 0);
		for (int i = 0; i < n; i++) {
			if (q == Q_TRUNC && i == n / 2)
				return fd;	/* the run's data stops early */
			chain_page(page, link, addr + i * PG);
			write(fd, page, PG);
		}
	}
	if (q == Q_OVERLAP) {
		chain_page(page, link, CHAIN + PG);
		run(fd, CHAIN + PG, page);
	}
	if (q == Q_OUTSIDE) {		/* after the CHAIN pages: data, unneeded */
		chain_page(page, link, OUTSIDE + link * PG);
		run(fd, OUTSIDE + link * PG, page);
	}
	return fd;
}

static const char *const chain3[] = {
	"DDDDDDDDDDDD..D.",
	"PPPPDDDDPPDD..PD",
	"PPPPPPDPPPPP...P",
};

/*
 * The CHAIN pages of link @link of a chain variant. V_DEEP: 64 links, page 0
 * comes from link 0 through 63 parent runs. V_BIG: parent runs that start
 * inside and span the chunks of a long data run two links down.
 */
static void chain_spec(enum variant v, int link, char *spec)
{
	int n = v == V_DEEP ? DEEP_PAGES : BIG_PAGES;

	if (v == V_CHAIN) {
		strcpy(spec, chain3[link]);
		return;
	}
	for (int p = 0; p < n; p++) {
		if (!link)
			spec[p] = 'D';
		else if (v == V_DEEP)
			spec[p] = p && p == 1 + link % (DEEP_PAGES - 1) ? 'D' : 'P';
		else if (link == 1)
			spec[p] = p >= 70 && p < 73 ? 'D' : p == 150 ? '.' : 'P';
		else
			spec[p] = !p ? 'D' : p == 150 || p == BIG_PAGES - 1 ? '.' : 'P';
	}
	spec[n] = 0;
}

static int chain_links(enum variant v)
{
	return v == V_DEEP ? AMB_MAX_LINKS : 3;
}

/* The pages files of a chain variant, oldest first; returns their number. */
static int chain_files(enum variant v, int *pf)
{
	char spec[CHAIN_PAGES + 1];
	int n = 0;

	switch (v) {
	case V_CHAIN:
	case V_DEEP:
	case V_BIG:
		for (; n < chain_links(v); n++) {
			chain_spec(v, n, spec);
			pf[n] = link_file(n, spec, v == V_CHAIN && n < 2 ? Q_OUTSIDE : Q_NONE);
		}
		break;
	case V_PARENT_OLDEST:
		pf[n++] = link_file(0, "P", Q_NONE);
		pf[n++] = link_file(1, "P", Q_NONE);
		break;
	case V_MISSING:
		pf[n++] = link_file(0, "DD", Q_NONE);
		pf[n++] = link_file(1, "PPPP", Q_NONE);
		break;
	case V_MISSING_DEEP:	/* link 2 needs page 3 through link 1's parent run */
		pf[n++] = link_file(0, "DDD.", Q_NONE);
		pf[n++] = link_file(1, "PPDP", Q_NONE);
		pf[n++] = link_file(2, "DDPP", Q_NONE);
		break;
	case V_UNSORTED_RUNS:
		pf[n++] = link_file(0, "D", Q_NONE);
		pf[n++] = link_file(1, "P", Q_UNSORTED);
		break;
	case V_OVERLAP_RUNS:
		pf[n++] = link_file(0, "DD", Q_NONE);
		pf[n++] = link_file(1, "PP", Q_OVERLAP);
		break;
	case V_BAD_FLAGS:
		pf[n++] = link_file(0, "D", Q_NONE);
		pf[n++] = link_file(1, "P", Q_FLAGS);
		break;
	case V_TOO_MANY:
		pf[0] = link_file(0, "D", Q_NONE);
		for (n = 1; n < AMB_MAX_LINKS + 1; n++)
			pf[n] = pf[0];
		break;
	case V_BAD_VERSION:
		pf[n++] = link_file(0, "D", Q_VERSION);
		pf[n++] = link_file(1, "P", Q_NONE);
		break;
	case V_TRUNCATED:
		pf[n++] = link_file(0, "DDDD", Q_TRUNC);
		pf[n++] = link_file(1, "PPPP", Q_NONE);
		break;
	default:
		break;
	}
	return n;
}

/* What the restored CHAIN page @p holds: resolve it as the module must. */
static int expected_link(enum variant v, int p)
{
	char spec[CHAIN_PAGES + 1];

	for (int link = chain_links(v) - 1; link >= 0; link--) {
		char c;

		chain_spec(v, link, spec);
		c = p < (int)strlen(spec) ? spec[p] : '.';
		if (c == '.')
			return -1;	/* zero */
		if (c == 'D')
			return link;
	}
	return -2;	/* bad chain */
}

/* The socket RESTORE is sent on: a held stub closes its copy (AMBER_A_CLOSE_FDS). */
static int restore_sk = -1;

static void build(struct msg *m, int family, enum variant v, const int *pf, int npf, int exe)
{
	struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
	struct genlmsghdr *g = NLMSG_DATA(h);
	unsigned long vs, ve, ds, de;
	unsigned char fpu[576] = {0};
	struct nlattr *n;

	maps_find("[vvar]", &vs, &ve);
	maps_find("[vdso]", &ds, &de);
	m->len = NLMSG_HDRLEN + GENL_HDRLEN;

	n = nest(m, AMBER_A_VMAS);
	if (v == V_UNSORTED) {
		vma(m, DATA, DATA + PG, PROT_READ | PROT_WRITE, AMBER_VMA_F_ANON, -1);
		vma(m, CODE, CODE + PG, PROT_READ | PROT_EXEC, AMBER_VMA_F_ANON, -1);
	} else {
		vma(m, CODE, CODE + PG, PROT_READ | PROT_EXEC, AMBER_VMA_F_ANON, -1);
		vma(m, DATA, DATA + PG, PROT_READ | PROT_WRITE, AMBER_VMA_F_ANON, -1);
	}
	if (v == V_ADVISE) {
		vma(m, DATA + PG, DATA + 2 * PG, PROT_READ | PROT_WRITE,
		    AMBER_VMA_F_ANON | AMBER_VMA_F_DONTFORK | AMBER_VMA_F_DONTDUMP, -1);
		vma(m, DATA + 2 * PG, DATA + 3 * PG, PROT_READ | PROT_WRITE,
		    AMBER_VMA_F_ANON | AMBER_VMA_F_LOCKED, -1);
		vma(m, DATA + 3 * PG, DATA + 4 * PG, PROT_READ | PROT_WRITE, AMBER_VMA_F_ANON, -1);
	}
	vma(m, STACK, STACK_END, PROT_READ | PROT_WRITE,
	    AMBER_VMA_F_ANON | AMBER_VMA_F_GROWSDOWN | AMBER_VMA_F_STACK, -1);
	nest_end(m, n);
	/* A second VMAS nest: the list continues. */
	n = nest(m, AMBER_A_VMAS);
	vma(m, SHM, SHM + PG, PROT_READ,
	    AMBER_VMA_F_SHARED | AMBER_VMA_F_ANON | AMBER_VMA_F_SHMEM, -1);
	if (v == V_NO_FD)
		vma(m, 0x50000000, 0x50001000, PROT_READ, 0, -1);
	vma(m, CHAIN, CHAIN + CHAIN_PAGES * PG, PROT_READ | PROT_WRITE, AMBER_VMA_F_ANON, -1);
	if (v == V_OVERLAP_VDSO)
		vma(m, vs - PG, vs + PG, PROT_READ, AMBER_VMA_F_ANON, -1);
	vma(m, vs, ve, PROT_READ, AMBER_VMA_F_VVAR, -1);
	vma(m, ds, v == V_BAD_VDSO ? de + PG : de, PROT_READ | PROT_EXEC, AMBER_VMA_F_VDSO, -1);
	nest_end(m, n);

	n = nest(m, AMBER_A_MM);
	put_u64(m, AMBER_MM_START_CODE, CODE);
	put_u64(m, AMBER_MM_END_CODE, v == V_BAD_MM ? CODE : CODE + PG);
	put_u64(m, AMBER_MM_START_DATA, DATA);
	put_u64(m, AMBER_MM_END_DATA, DATA + PG);
	put_u64(m, AMBER_MM_START_BRK, DATA + PG);
	put_u64(m, AMBER_MM_BRK, DATA + PG);
	put_u64(m, AMBER_MM_START_STACK, RSP);
	put_u64(m, AMBER_MM_ARG_START, RSP);
	put_u64(m, AMBER_MM_ARG_END, RSP);
	put_u64(m, AMBER_MM_ENV_START, RSP);
	put_u64(m, AMBER_MM_ENV_END, RSP);
	{
		uint64_t auxv[4] = { 6 /* AT_PAGESZ */, PG, v == V_BAD_AUXV ? 5 : 0, 0 };
		put(m, AMBER_MM_AUXV, auxv, sizeof(auxv));
	}
	put_u64(m, AMBER_MM_VDSO, ds);
	nest_end(m, n);

	n = nest(m, AMBER_A_REGS);
	{
		uint64_t r[AMBER_REG_MAX + 1] = {
			[AMBER_REG_R15] = 0x1515, [AMBER_REG_R14] = 0x1414,
			[AMBER_REG_R13] = 0x1313, [AMBER_REG_R12] = 0x1212,
			[AMBER_REG_RBP] = 0x0b0b, [AMBER_REG_RBX] = 0x0a0a,
			[AMBER_REG_R11] = 0x1111, [AMBER_REG_R10] = 0x1010,
			[AMBER_REG_R9] = 0x0909, [AMBER_REG_R8] = 0x0808,
			[AMBER_REG_RAX] = 60, [AMBER_REG_RCX] = 0x0c0c,
			[AMBER_REG_RDX] = 0x0d0d, [AMBER_REG_RSI] = 0x0e0e,
			[AMBER_REG_RDI] = 42, [AMBER_REG_ORIG_RAX] = -1,
			[AMBER_REG_RIP] = v == V_BAD_RIP ? 0x8000000000000000UL :
					  pauses(v) ? CODE + (payload_pause - payload_start) : CODE,
			[AMBER_REG_CS] = v == V_BAD_CS ? 0x23 : 0x33,
			[AMBER_REG_EFLAGS] = 0x246 | 0x400,
			[AMBER_REG_RSP] = RSP, [AMBER_REG_SS] = 0x2b,
			[AMBER_REG_FS_BASE] = DATA, [AMBER_REG_GS_BASE] = DATA + 8,
		};
		for (int i = AMBER_REG_R15; i <= AMBER_REG_GS; i++)
			put_u64(m, i, r[i]);
	}
	nest_end(m, n);

	*(uint16_t *)fpu = 0x37f;			/* fcw */
	*(uint32_t *)(fpu + 24) = v == V_BAD_MXCSR ? 0xffffffff : 0x9f80;
	*(uint64_t *)(fpu + 160) = 0x1122334455667788ULL;	/* xmm0 */
	*(uint64_t *)(fpu + 512) = v == V_BAD_XFEAT ? (1ULL << 62) | 3 : 3;
	put(m, AMBER_A_FPU, fpu, v == V_SHORT_FPU ? 100 : sizeof(fpu));

	n = nest(m, AMBER_A_SIGNALS);
	put_u64(m, AMBER_SIG_BLOCKED, 0);
	nest_end(m, n);

	if (v == V_CREDS) {
		struct nlattr *g;

		n = nest(m, AMBER_A_TASK);
		for (int i = AMBER_TASK_UID; i <= AMBER_TASK_FSGID; i++)
			put_u32(m, i, 65534);
		g = nest(m, AMBER_TASK_GROUPS);
		put_u32(m, AMBER_TASK_GROUP, 65534);
		nest_end(m, g);
		put_u64(m, AMBER_TASK_CAP_INH, 0);
		put_u64(m, AMBER_TASK_CAP_PRM, 0);
		put_u64(m, AMBER_TASK_CAP_EFF, 0);
		put_u64(m, AMBER_TASK_CAP_BND, 0x3f);
		put_u64(m, AMBER_TASK_CAP_AMB, 0);
		put_u32(m, AMBER_TASK_PERSONALITY, 0x0040000);
		put_u32(m, AMBER_TASK_DUMPABLE, 1);	/* SUID_DUMP_USER */
		put_u64(m, AMBER_TASK_RSEQ, DATA + 64);
		put_u32(m, AMBER_TASK_RSEQ_LEN, 32);
		put_u32(m, AMBER_TASK_RSEQ_SIG, 0x53053053);
		put_u64(m, AMBER_TASK_CLEAR_CHILD_TID, DATA + 128);
		put_u64(m, AMBER_TASK_ROBUST_LIST, DATA + 256);
		put_u64(m, AMBER_TASK_ROBUST_LIST_LEN, 24);
		put_u64(m, AMBER_TASK_SAS_SP, STACK);
		put_u64(m, AMBER_TASK_SAS_SIZE, 8192);
		put_u32(m, AMBER_TASK_SAS_FLAGS, 0);
		nest_end(m, n);
	}
	if (v == V_CAPS) {
		n = nest(m, AMBER_A_TASK);
		for (int i = AMBER_TASK_CAP_INH; i <= AMBER_TASK_CAP_AMB; i++)
			put_u64(m, i, ~0ULL);
		nest_end(m, n);
	}

	n = nest(m, AMBER_A_PAGE_FDS);
	for (int i = 0; i < npf; i++)
		put_u32(m, AMBER_A_PAGE_FD, pf[i]);
	if (v == V_RUN_OUTSIDE) {
		int fd = new_pages_file(AMBER_PAGES_VERSION);
		static char page[PG];

		run(fd, 0x50000000, page);
		put_u32(m, AMBER_A_PAGE_FD, fd);
	}
	nest_end(m, n);
	put_u32(m, AMBER_A_EXE_FD, exe);
	n = nest(m, AMBER_A_CLOSE_FDS);
	for (int i = 0; i < npf && i < 2; i++)
		put_u32(m, AMBER_A_CLOSE_FD, pf[i]);
	if (held(v))
		put_u32(m, AMBER_A_CLOSE_FD, restore_sk);
	nest_end(m, n);
	if (held(v))
		put_u32(m, AMBER_A_FLAGS, AMBER_RESTORE_F_HOLD);

	h->nlmsg_len = m->len;
	h->nlmsg_type = family;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	g->cmd = AMBER_CMD_RESTORE;
	g->version = AMBER_FAMILY_VERSION;
}

static struct msg req;

/* Child: send the bad variant (unless GOOD), wait for go, then send GOOD. */
static void stub(int sk, int family, enum variant v, int go)
{
	int pf[2] = { pages_file(0), pages_file(1) };
	int exe = open("/proc/self/exe", O_RDONLY);
	int chain[AMB_MAX_LINKS + 1], nchain = chain_files(v, chain);
	sigset_t all;
	char c;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	if (v == V_SIGNAL) {
		struct sigaction sa = { .sa_handler = (void (*)(int))(CODE + (payload_handler - payload_start)) };
		sigaction(SIGUSR1, &sa, NULL);
		raise(SIGUSR1);		/* pending; the image unblocks it */
	}
	if (v == V_NONROOT && setresuid(65534, 65534, 65534))
		_exit(98);
	restore_sk = sk;
	if (pauses(v) || held(v)) {
		if (nchain)
			build(&req, family, v, chain, nchain, exe);
		else
			build(&req, family, v, pf, 2, exe);
		send(sk, req.buf, req.len, 0);
		_exit(99);
	}
	if (v != V_GOOD && v != V_SIGNAL) {
		if (nchain)
			build(&req, family, v, chain, nchain, exe);
		else
			build(&req, family, v, pf, 2, exe);
		send(sk, req.buf, req.len, 0);
		if (read(go, &c, 1) != 1)
			_exit(96);
		if (v == V_NONROOT)
			_exit(50);	/* alive; cannot do the good one any more */
	}
	build(&req, family, V_GOOD, pf, 2, exe);
	send(sk, req.buf, req.len, 0);
	_exit(99);		/* the restore failed */
}


static char *proc_out(const char *cmd)
{
	static char out[8192];
	FILE *f = popen(cmd, "r");
	size_t n = 0;

	out[0] = 0;
	if (f) {
		n = fread(out, 1, sizeof(out) - 1, f);
		pclose(f);
	}
	out[n] = 0;
	return out;
}

/* Wait up to 20 s for @pid; kill it if it is still there. */
static int wait_stub(pid_t pid)
{
	int status = 0;

	for (int t = 0; t < 200 && waitpid(pid, &status, WNOHANG) == 0; t++)
		usleep(100000);
	if (waitpid(pid, &status, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	return status;
}

/* Compare the restored program's memory with what the chain says. */
static void check_chain(struct __test_metadata *_metadata, enum variant v, pid_t pid)
{
	static char got[PG], want[PG];
	char path[64];
	uint64_t shm = 0;
	int mem, bad = 0;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	mem = open(path, O_RDONLY);
	ASSERT_LE(0, mem);
	for (int p = 0; p < CHAIN_PAGES; p++) {
		int link = expected_link(v, p);

		ASSERT_NE(-2, link);
		memset(want, 0, PG);
		if (link >= 0)
			chain_page(want, link, CHAIN + p * PG);
		ASSERT_EQ(PG, pread(mem, got, PG, CHAIN + p * PG));
		if (memcmp(got, want, PG)) {
			bad++;
			TH_LOG("page %d: word 0 %#llx, expected %#llx (link %d)", p,
			       (unsigned long long)*(uint64_t *)got,
			       (unsigned long long)*(uint64_t *)want, link);
		}
	}
	EXPECT_EQ(0, bad);
	/* The payload's pages came through parent runs from link 0. */
	ASSERT_EQ(PG, pread(mem, got, PG, CODE));
	EXPECT_EQ(0, memcmp(got, payload_start, payload_end - payload_start));
	EXPECT_EQ(8, pread(mem, &shm, 8, SHM));
	EXPECT_EQ(0x7777, shm);
	close(mem);
}

FIXTURE(restore) {
	int sk;
	int family;
};

FIXTURE_VARIANT(restore) {
	enum variant v;
};

#define V(name, val) FIXTURE_VARIANT_ADD(restore, name) { .v = val }
V(good, V_GOOD);
V(signal, V_SIGNAL);
V(unsorted, V_UNSORTED);
V(bad_rip, V_BAD_RIP);
V(bad_mxcsr, V_BAD_MXCSR);
V(bad_xfeat, V_BAD_XFEAT);
V(short_fpu, V_SHORT_FPU);
V(nonroot, V_NONROOT);
V(bad_vdso, V_BAD_VDSO);
V(run_outside, V_RUN_OUTSIDE);
V(bad_cs, V_BAD_CS);
V(no_fd, V_NO_FD);
V(bad_auxv, V_BAD_AUXV);
V(bad_mm, V_BAD_MM);
V(caps, V_CAPS);
V(overlap_vdso, V_OVERLAP_VDSO);
V(advise, V_ADVISE);
V(creds, V_CREDS);
V(chain, V_CHAIN);
V(deep_chain, V_DEEP);
V(big_runs, V_BIG);
V(parent_in_oldest, V_PARENT_OLDEST);
V(parent_missing, V_MISSING);
V(parent_missing_deep, V_MISSING_DEEP);
V(unsorted_runs, V_UNSORTED_RUNS);
V(overlapping_runs, V_OVERLAP_RUNS);
V(bad_run_flags, V_BAD_FLAGS);
V(too_many_files, V_TOO_MANY);
V(bad_pages_version, V_BAD_VERSION);
V(truncated_run, V_TRUNCATED);
V(hold_socket_closed, V_HOLD_CLOSE);
V(hold_kill, V_HOLD_KILL);

FIXTURE_SETUP(restore)
{
	struct timeval tv = { .tv_sec = 20 };
	int one = 1;

	self->sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	ASSERT_LE(0, self->sk);
	setsockopt(self->sk, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(self->sk, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	self->family = family_id(self->sk);
}

FIXTURE_TEARDOWN(restore)
{
	if (self->sk >= 0)
		close(self->sk);
}

TEST_F_TIMEOUT(restore, stub, 90)
{
	enum variant v = variant->v;
	char msg1[512] = "", msg2[512] = "", cmd[256];
	int gp[2], status, err1 = 0, err2;
	pid_t pid;

	if (self->family < 0 || geteuid() != 0)
		SKIP(return, "amber.ko is not loaded or not root");
	ASSERT_EQ(0, pipe(gp));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		close(gp[1]);
		stub(self->sk, self->family, v, gp[0]);
	}
	close(gp[0]);

	if (held(v)) {
		/*
		 * Held, then not released: no thread of its own sends it
		 * SIGKILL, so the leader must not go back to the stub's
		 * registers over the image's memory (SIGSEGV) or run the
		 * payload (exit 42).
		 */
		struct msg *rel = &req;
		struct nlmsghdr *h = (struct nlmsghdr *)rel->buf;
		struct genlmsghdr *g = NLMSG_DATA(h);

		close(gp[1]);
		err1 = read_ack(self->sk, msg1, sizeof(msg1));
		ASSERT_EQ(0, err1) TH_LOG("restore failed: %s", msg1);
		usleep(300000);
		ASSERT_EQ(0, waitpid(pid, &status, WNOHANG)) TH_LOG("held, yet status %#x", status);
		if (v == V_HOLD_CLOSE) {
			close(self->sk);
			self->sk = -1;
		} else {
			rel->len = NLMSG_HDRLEN + GENL_HDRLEN;
			put_u32(rel, AMBER_A_PID, pid);
			put_u32(rel, AMBER_A_ACTION, AMBER_RELEASE_KILL);
			h->nlmsg_len = rel->len;
			h->nlmsg_type = self->family;
			h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
			g->cmd = AMBER_CMD_RELEASE;
			g->version = AMBER_FAMILY_VERSION;
			ASSERT_EQ(rel->len, send(self->sk, rel->buf, rel->len, 0));
			err2 = read_ack(self->sk, msg2, sizeof(msg2));
			ASSERT_EQ(0, err2) TH_LOG("release: %s", msg2);
		}
		status = wait_stub(pid);
		EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
			TH_LOG("status %#x", status);
		return;
	}

	if (pauses(v)) {
		/* The restored program pauses: look at it from outside. */
		char *out;
		uint32_t cpu_id = 0xffffffff;
		int mem;

		close(gp[1]);
		err1 = read_ack(self->sk, msg1, sizeof(msg1));
		ASSERT_EQ(0, err1) TH_LOG("restore failed: %s", msg1);
		usleep(300000);
		if (v == V_CHAIN || v == V_DEEP || v == V_BIG) {
			check_chain(_metadata, v, pid);
		} else if (v == V_ADVISE) {
			snprintf(cmd, sizeof(cmd), "grep -A30 '^2000' /proc/%d/smaps | "
				 "grep -E '^2000|VmFlags|Locked'", pid);
			out = proc_out(cmd);
			EXPECT_TRUE(strstr(out, "20000000-20001000") &&
				    strstr(out, "20001000-20002000") &&
				    strstr(out, "20003000-20004000")) TH_LOG("VMAs merged:\n%s", out);
			EXPECT_TRUE(strstr(out, " dc") && strstr(out, " dd") && strstr(out, " lo"))
				TH_LOG("advice flags lost:\n%s", out);
		} else {
			snprintf(cmd, sizeof(cmd),
				 "grep -E '^(Uid|Gid|Groups|CapEff|CapBnd)' /proc/%d/status; "
				 "stat -c 'owner %%u' /proc/%d; echo pers $(cat /proc/%d/personality)",
				 pid, pid, pid);
			out = proc_out(cmd);
			EXPECT_TRUE(strstr(out, "Uid:\t65534\t65534\t65534\t65534") &&
				    strstr(out, "Gid:\t65534\t65534\t65534\t65534") &&
				    strstr(out, "Groups:\t65534") &&
				    strstr(out, "CapEff:\t0000000000000000") &&
				    strstr(out, "CapBnd:\t000000000000003f"))
				TH_LOG("credentials:\n%s", out);
			EXPECT_TRUE(strstr(out, "owner 65534") != NULL) TH_LOG("not dumpable:\n%s", out);
			EXPECT_TRUE(strstr(out, "pers 00040000") != NULL) TH_LOG("personality:\n%s", out);
			snprintf(cmd, sizeof(cmd), "/proc/%d/mem", pid);
			mem = open(cmd, O_RDONLY);
			EXPECT_EQ(4, pread(mem, &cpu_id, 4, DATA + 64 + 4));
			close(mem);
			EXPECT_GT(1024, cpu_id) TH_LOG("rseq cpu_id not updated");
		}
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return;
	}

	if (v != V_GOOD && v != V_SIGNAL) {
		err1 = read_ack(self->sk, msg1, sizeof(msg1));
		TH_LOG("refused: %d \"%s\"", err1, msg1);
		EXPECT_GT(0, err1);
		EXPECT_NE(0, msg1[0]) TH_LOG("refused without an extack message");
		EXPECT_TRUE(strstr(msg1, want_msg(v)) != NULL)
			TH_LOG("message \"%s\", expected \"%s\"", msg1, want_msg(v));
		/* A stub that is already gone must not kill the test with SIGPIPE. */
		signal(SIGPIPE, SIG_IGN);
		if (write(gp[1], "g", 1) != 1)
			TH_LOG("stub gone");
	}
	close(gp[1]);
	status = wait_stub(pid);
	if (v == V_NONROOT) {
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 50)
			TH_LOG("stub status %#x", status);
		return;
	}
	/* The stub survived the refusal and its good request worked. */
	err2 = read_ack(self->sk, msg2, sizeof(msg2));
	EXPECT_EQ(0, err2) TH_LOG("restore failed: %s", msg2);
	EXPECT_TRUE(WIFEXITED(status)) TH_LOG("restored program status %#x", status);
	EXPECT_EQ(v == V_SIGNAL ? 77 : 42, WEXITSTATUS(status))
		TH_LOG("11..19 name the check in the payload that failed");
}

TEST_HARNESS_MAIN
