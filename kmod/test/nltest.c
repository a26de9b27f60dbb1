/* Raw generic netlink client for amber.ko: the kernel side's protocol test tool (see smoke.sh). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/amber.h>

static int sock;
static int family;
static char rbuf[8 << 20];
/* Every reply message of the last xfer() (CHECKPOINT of a tree: one per process). */
static struct nlmsghdr *replies[1024];
static int nreplies;

#define NLA_DATA(na) ((void *)((char *)(na) + NLA_HDRLEN))
#define NLA_NEXT(na) ((struct nlattr *)((char *)(na) + NLA_ALIGN((na)->nla_len)))

struct req {
	struct nlmsghdr n;
	struct genlmsghdr g;
	char buf[8192];
};

static void put_attr(struct req *r, int type, const void *data, int len)
{
	struct nlattr *na = (struct nlattr *)((char *)r + NLMSG_ALIGN(r->n.nlmsg_len));
	na->nla_type = type;
	na->nla_len = NLA_HDRLEN + len;
	memcpy(NLA_DATA(na), data, len);
	r->n.nlmsg_len = NLMSG_ALIGN(r->n.nlmsg_len) + NLA_ALIGN(na->nla_len);
}

static void put_u32(struct req *r, int type, uint32_t v) { put_attr(r, type, &v, 4); }
static void put_u64(struct req *r, int type, uint64_t v) { put_attr(r, type, &v, 8); }

static void init_req(struct req *r, int fam, int cmd)
{
	memset(r, 0, sizeof(*r));
	r->n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	r->n.nlmsg_type = fam;
	r->n.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	r->g.cmd = cmd;
	r->g.version = AMBER_FAMILY_VERSION;
}

/* Sends and receives; returns the reply message (or NULL) and error in *err. */
static struct nlmsghdr *xfer(struct req *r, int *err, int expect_reply)
{
	struct nlmsghdr *reply = NULL;

	nreplies = 0;
	if (send(sock, r, r->n.nlmsg_len, 0) < 0) { perror("send"); exit(2); }
	for (;;) {
		int len = recv(sock, rbuf, sizeof(rbuf), 0);
		if (len < 0) { perror("recv"); exit(2); }
		for (struct nlmsghdr *h = (void *)rbuf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				*err = e->error;
				if (e->error && (h->nlmsg_flags & NLM_F_ACK_TLVS)) {
					int off = sizeof(*e);
					if (!(h->nlmsg_flags & NLM_F_CAPPED))
						off += e->msg.nlmsg_len - NLMSG_HDRLEN;
					struct nlattr *na = (void *)((char *)e + off);
					int rem = h->nlmsg_len - NLMSG_HDRLEN - off;
					for (; rem >= NLA_HDRLEN && na->nla_len >= NLA_HDRLEN && na->nla_len <= rem;
					     rem -= NLA_ALIGN(na->nla_len), na = NLA_NEXT(na)) {
						if (na->nla_type == NLMSGERR_ATTR_MSG)
							fprintf(stderr, "extack: %s\n", (char *)NLA_DATA(na));
						if (na->nla_type == NLMSGERR_ATTR_OFFS)
							fprintf(stderr, "extack offset: %u\n", *(uint32_t *)NLA_DATA(na));
					}
				}
				return reply;
			}
			if (expect_reply) {
				reply = malloc(h->nlmsg_len);
				memcpy(reply, h, h->nlmsg_len);
				if (nreplies < 1024)
					replies[nreplies++] = reply;
			}
		}
	}
}

static int resolve(const char *name)
{
	struct req r;
	int err;
	init_req(&r, GENL_ID_CTRL, CTRL_CMD_GETFAMILY);
	put_attr(&r, CTRL_ATTR_FAMILY_NAME, name, strlen(name) + 1);
	struct nlmsghdr *h = xfer(&r, &err, 1);
	if (!h) { fprintf(stderr, "resolve: %s\n", strerror(-err)); exit(2); }
	struct nlattr *na = (void *)((char *)NLMSG_DATA(h) + GENL_HDRLEN);
	int rem = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	for (; rem >= NLA_HDRLEN; rem -= NLA_ALIGN(na->nla_len), na = NLA_NEXT(na))
		if (na->nla_type == CTRL_ATTR_FAMILY_ID)
			return *(uint16_t *)NLA_DATA(na);
	exit(2);
}

static void dump(struct nlattr *na, int rem, int depth, int top)
{
	for (; rem >= NLA_HDRLEN && na->nla_len >= NLA_HDRLEN; rem -= NLA_ALIGN(na->nla_len), na = NLA_NEXT(na)) {
		int type = na->nla_type & NLA_TYPE_MASK;
		int plen = na->nla_len - NLA_HDRLEN;
		void *d = NLA_DATA(na);
		printf("%*s[%d] len %d", depth * 2, "", type, plen);
		if (plen == 8) printf(" = 0x%llx", *(unsigned long long *)d);
		else if (plen == 4) printf(" = %u", *(uint32_t *)d);
		if (plen > 1 && ((char *)d)[plen - 1] == 0 && ((char *)d)[0] >= 0x20 && ((char *)d)[0] < 0x7f)
			printf(" \"%s\"", (char *)d);
		printf("\n");
		int nested = top ? (type == AMBER_A_TASK || type == AMBER_A_MM || type == AMBER_A_VMAS ||
				    type == AMBER_A_VMA || type == AMBER_A_REGS || type == AMBER_A_SIGNALS ||
				    type == AMBER_A_FDS || type == AMBER_A_FD) : (na->nla_type & NLA_F_NESTED) || depth < 2;
		if (getenv("VERBOSE") && (nested) && plen >= NLA_HDRLEN && plen != 8 && plen != 4 && depth < 3)
			dump(d, plen, depth + 1, type == AMBER_A_VMAS || type == AMBER_A_FDS);
	}
}


static uint64_t reg[32];
static void parse_regs(struct nlmsghdr *h)
{
	struct nlattr *na = (void *)((char *)NLMSG_DATA(h) + GENL_HDRLEN);
	int rem = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	for (; rem >= NLA_HDRLEN; rem -= NLA_ALIGN(na->nla_len), na = NLA_NEXT(na)) {
		if ((na->nla_type & NLA_TYPE_MASK) != AMBER_A_REGS)
			continue;
		struct nlattr *r = NLA_DATA(na);
		int rr = na->nla_len - NLA_HDRLEN;
		for (; rr >= NLA_HDRLEN; rr -= NLA_ALIGN(r->nla_len), r = NLA_NEXT(r))
			if (r->nla_type < 32) reg[r->nla_type] = *(uint64_t *)NLA_DATA(r);
	}
}

/* Incremental checkpoint attributes of a CHECKPOINT reply, printed by name. */
static void print_track(struct nlmsghdr *h)
{
	struct nlattr *na = (void *)((char *)NLMSG_DATA(h) + GENL_HDRLEN);
	int rem = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	for (; rem >= NLA_HDRLEN; rem -= NLA_ALIGN(na->nla_len), na = NLA_NEXT(na)) {
		void *d = NLA_DATA(na);
		switch (na->nla_type & NLA_TYPE_MASK) {
		case AMBER_A_TRACK_ID: printf("track_id 0x%llx\n", *(unsigned long long *)d); break;
		case AMBER_A_PARENT_ID: printf("parent_id 0x%llx\n", *(unsigned long long *)d); break;
		case AMBER_A_PAGES_NR: printf("pages_nr %llu\n", *(unsigned long long *)d); break;
		case AMBER_A_PAGES_PARENT_NR: printf("parent_nr %llu\n", *(unsigned long long *)d); break;
		case AMBER_A_FULL_REASON: printf("full_reason: %s\n", (char *)d); break;
		}
	}
}

static struct nlattr *first_attr(struct nlmsghdr *h, int *rem)
{
	*rem = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	return (void *)((char *)NLMSG_DATA(h) + GENL_HDRLEN);
}

/* The target's memory at @addr (2 bytes), via /proc/PID/mem. */
static void code_at(int pid, unsigned long long addr, unsigned char *ins)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY);
	ins[0] = ins[1] = 0;
	if (fd >= 0 && pread(fd, ins, 2, addr) != 2)
		ins[0] = ins[1] = 0;
	if (fd >= 0)
		close(fd);
}

/*
 * One line per process and per thread of a CHECKPOINT reply message:
 *   proc pid P ppid Q pgid G sid S threads N [zombie exit E] [index I]
 *   thread tid T rip R rax A orig_rax O r12 X blocked B pending K [sig S..] comm C code XX XX
 */
static void print_summary(struct nlmsghdr *h, int pid)
{
	int rem, nthreads = 0;
	struct nlattr *na = first_attr(h, &rem);
	unsigned int v[AMBER_PROC_MAX + 1] = {0};
	int zombie = 0, index = -1;

	for (; rem >= NLA_HDRLEN; rem -= NLA_ALIGN(na->nla_len), na = NLA_NEXT(na)) {
		int type = na->nla_type & NLA_TYPE_MASK;
		struct nlattr *a = NLA_DATA(na);
		int r = na->nla_len - NLA_HDRLEN;

		if (type == AMBER_A_PAGES_INDEX)
			index = *(uint32_t *)a;
		if (type == AMBER_A_PROC) {
			for (; r >= NLA_HDRLEN; r -= NLA_ALIGN(a->nla_len), a = NLA_NEXT(a)) {
				if (a->nla_type == AMBER_PROC_ZOMBIE)
					zombie = 1;
				else if (a->nla_type <= AMBER_PROC_MAX)
					v[a->nla_type] = *(uint32_t *)NLA_DATA(a);
			}
		}
	}
	na = first_attr(h, &rem);
	for (; rem >= NLA_HDRLEN; rem -= NLA_ALIGN(na->nla_len), na = NLA_NEXT(na)) {
		if ((na->nla_type & NLA_TYPE_MASK) != AMBER_A_PROC)
			continue;
		printf("proc pid %u ppid %u pgid %u sid %u threads %u", v[AMBER_PROC_PID],
		       v[AMBER_PROC_PPID], v[AMBER_PROC_PGID], v[AMBER_PROC_SID],
		       v[AMBER_PROC_NR_THREADS]);
		if (zombie)
			printf(" zombie exit %u", v[AMBER_PROC_EXIT_CODE]);
		if (index >= 0)
			printf(" index %d", index);
		printf("\n");
	}
	na = first_attr(h, &rem);
	for (; rem >= NLA_HDRLEN; rem -= NLA_ALIGN(na->nla_len), na = NLA_NEXT(na)) {
		if ((na->nla_type & NLA_TYPE_MASK) != AMBER_A_THREADS)
			continue;
		struct nlattr *t = NLA_DATA(na);
		int tr = na->nla_len - NLA_HDRLEN;

		for (; tr >= NLA_HDRLEN; tr -= NLA_ALIGN(t->nla_len), t = NLA_NEXT(t)) {
			uint64_t regs[AMBER_REG_MAX + 1] = {0}, blocked = 0;
			unsigned int tid = 0, npend = 0;
			char comm[32] = "", sigs[256] = "";
			struct nlattr *a = NLA_DATA(t);
			int ar = t->nla_len - NLA_HDRLEN;
			unsigned char ins[2];

			nthreads++;
			for (; ar >= NLA_HDRLEN; ar -= NLA_ALIGN(a->nla_len), a = NLA_NEXT(a)) {
				void *d = NLA_DATA(a);

				switch (a->nla_type & NLA_TYPE_MASK) {
				case AMBER_THREAD_TID: tid = *(uint32_t *)d; break;
				case AMBER_THREAD_BLOCKED: blocked = *(uint64_t *)d; break;
				case AMBER_THREAD_COMM: snprintf(comm, sizeof(comm), "%s", (char *)d); break;
				case AMBER_THREAD_REGS: {
					struct nlattr *g = d;
					int gr = a->nla_len - NLA_HDRLEN;

					for (; gr >= NLA_HDRLEN; gr -= NLA_ALIGN(g->nla_len), g = NLA_NEXT(g))
						if (g->nla_type <= AMBER_REG_MAX)
							regs[g->nla_type] = *(uint64_t *)NLA_DATA(g);
					break;
				}
				case AMBER_THREAD_PENDING: {
					struct nlattr *g = d;
					int gr = a->nla_len - NLA_HDRLEN, shared = 0, signo = 0;

					for (; gr >= NLA_HDRLEN; gr -= NLA_ALIGN(g->nla_len), g = NLA_NEXT(g)) {
						if (g->nla_type == AMBER_SIGPENDING_SIGINFO)
							signo = *(int *)NLA_DATA(g);
						if (g->nla_type == AMBER_SIGPENDING_SHARED)
							shared = 1;
					}
					npend++;
					snprintf(sigs + strlen(sigs), sizeof(sigs) - strlen(sigs), " sig %d%s",
						 signo, shared ? " SHARED" : "");
					break;
				}
				}
			}
			code_at(v[AMBER_PROC_PID] ? (int)v[AMBER_PROC_PID] : pid, regs[AMBER_REG_RIP], ins);
			printf("thread tid %u rip %llx rax %lld orig_rax %lld r12 %llx blocked %llx pending %u%s comm %s code %02x %02x\n",
			       tid, (unsigned long long)regs[AMBER_REG_RIP], (long long)regs[AMBER_REG_RAX],
			       (long long)regs[AMBER_REG_ORIG_RAX], (unsigned long long)regs[AMBER_REG_R12],
			       (unsigned long long)blocked, npend, sigs, comm, ins[0], ins[1]);
		}
	}
	(void)nthreads;
}

/* One pages file (v2), its run headers and the file offsets of their data. */
struct link {
	const char *path;
	int fd;
	struct amber_page_run *runs;
	unsigned long long *off;
	size_t n;
	unsigned long long data_pages, parent_pages, parent_runs;
};

/* Loads and validates a pages file; returns 0 or prints why not. */
static int load_link(struct link *l, const char *path, int oldest)
{
	struct amber_pages_hdr hdr;
	struct amber_page_run run;
	size_t cap = 0;
	unsigned long long pos = sizeof(hdr), prev_end = 0;

	memset(l, 0, sizeof(*l));
	l->path = path;
	l->fd = open(path, O_RDONLY);
	if (l->fd < 0 || pread(l->fd, &hdr, sizeof(hdr), 0) != sizeof(hdr) ||
	    hdr.magic != AMBER_PAGES_MAGIC || hdr.version != AMBER_PAGES_VERSION || hdr.page_size != 4096) {
		printf("%s: bad header\n", path);
		return 1;
	}
	while (pread(l->fd, &run, sizeof(run), pos) == sizeof(run)) {
		pos += sizeof(run);
		if (run.nr_pages < 1 || (run.addr & 4095) || (run.flags & ~__AMBER_RUN_F_ALL) ||
		    run.addr < prev_end) {
			printf("%s: bad run at 0x%llx nr %u flags %u\n", path, (unsigned long long)run.addr,
			       run.nr_pages, run.flags);
			return 1;
		}
		if ((run.flags & AMBER_RUN_F_PARENT) && oldest) {
			printf("%s: parent run at 0x%llx in the oldest file\n", path, (unsigned long long)run.addr);
			return 1;
		}
		prev_end = run.addr + (unsigned long long)run.nr_pages * 4096;
		if (l->n == cap) {
			cap = cap ? cap * 2 : 256;
			l->runs = realloc(l->runs, cap * sizeof(*l->runs));
			l->off = realloc(l->off, cap * sizeof(*l->off));
		}
		l->runs[l->n] = run;
		l->off[l->n++] = pos;
		if (run.flags & AMBER_RUN_F_PARENT) {
			l->parent_pages += run.nr_pages;
			l->parent_runs++;
		} else {
			l->data_pages += run.nr_pages;
			pos += (unsigned long long)run.nr_pages * 4096;
		}
	}
	if (pos != (unsigned long long)lseek(l->fd, 0, SEEK_END)) {
		printf("%s: truncated or trailing bytes\n", path);
		return 1;
	}
	return 0;
}

/* Index of the run of @l holding @addr, or -1. */
static long find_run(const struct link *l, unsigned long long addr)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct amber_page_run *r = &l->runs[mid];
		if (addr < r->addr)
			hi = mid;
		else if (addr >= r->addr + (unsigned long long)r->nr_pages * 4096)
			lo = mid + 1;
		else
			return mid;
	}
	return -1;
}

/* Contents of the page at @addr as of link @k; -1 if no link holds it. */
static int resolve_page(struct link *links, int k, unsigned long long addr, char *buf, int *from)
{
	for (; k >= 0; k--) {
		long i = find_run(&links[k], addr);
		if (i < 0)
			return -1;
		if (links[k].runs[i].flags & AMBER_RUN_F_PARENT)
			continue;
		*from = k;
		return pread(links[k].fd, buf, 4096, links[k].off[i] + (addr - links[k].runs[i].addr)) == 4096 ? 0 : -1;
	}
	return -1;
}

/*
 * Resolves every page the newest file lists through the chain (CHAIN: older
 * files, oldest first, colon-separated) and compares it with /proc/PID/mem
 * (target held). Also checks that pages of REGION=addr:npages that no run
 * lists read as zeros.
 */
static int verify(int pid, const char *file)
{
	char path[64], *chain = getenv("CHAIN") ? strdup(getenv("CHAIN")) : NULL;
	struct link links[64];
	int nl = 0, bad = 0, missing = 0;
	unsigned long long pages = 0;
	static char a[4096], b[4096], zero[4096];

	for (char *tok = chain ? strtok(chain, ":") : NULL; tok; tok = strtok(NULL, ":"))
		if (load_link(&links[nl], tok, nl == 0) || ++nl >= 63)
			return 1;
	if (load_link(&links[nl], file, nl == 0))
		return 1;
	struct link *last = &links[nl];
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	int mem = open(path, O_RDONLY);
	for (size_t i = 0; i < last->n; i++) {
		const struct amber_page_run *r = &last->runs[i];
		for (unsigned long long p = 0; p < r->nr_pages; p++) {
			unsigned long long addr = r->addr + p * 4096;
			int from;
			if (resolve_page(links, nl, addr, a, &from)) {
				missing++;
				printf("MISSING %llx in every older file\n", addr);
				continue;
			}
			if (pread(mem, b, 4096, addr) != 4096) {
				printf("cannot read %llx via /proc (PROT_NONE?)\n", addr);
				continue;
			}
			if (memcmp(a, b, 4096)) {
				bad++;
				if (bad < 20)
					printf("MISMATCH at %llx (from file %d)\n", addr, from);
			}
			pages++;
		}
	}
	if (getenv("REGION")) {
		unsigned long long base, n, z = 0;
		sscanf(getenv("REGION"), "%llx:%llu", &base, &n);
		for (unsigned long long p = 0; p < n; p++) {
			if (find_run(last, base + p * 4096) >= 0 || pread(mem, b, 4096, base + p * 4096) != 4096)
				continue;
			z++;
			if (memcmp(b, zero, 4096)) {
				bad++;
				printf("UNLISTED page %llx holds data\n", base + p * 4096);
			}
		}
		printf("region: %llu unlisted pages checked\n", z);
	}
	printf("verify: %zu runs (%llu data pages, %llu parent pages), %llu pages compared, %d mismatches, %d missing\n",
	       last->n, last->data_pages, last->parent_pages, pages, bad, missing);
	unsigned char ins[2] = {0};
	pread(mem, ins, 2, reg[AMBER_REG_RIP]);
	printf("regs: rip %llx rax %lld orig_rax %lld rsp %llx fs_base %llx; bytes at rip %02x %02x\n",
	       (unsigned long long)reg[AMBER_REG_RIP], (long long)reg[AMBER_REG_RAX],
	       (long long)reg[AMBER_REG_ORIG_RAX], (unsigned long long)reg[AMBER_REG_RSP],
	       (unsigned long long)reg[AMBER_REG_FS_BASE], ins[0], ins[1]);
	return bad + missing;
}

/* Every page address in @list (one hex address a line) is in a data run of @file. */
static int covers(const char *file, const char *list)
{
	struct link l;
	FILE *f = fopen(list, "r");
	unsigned long long addr, n = 0;
	int bad = 0;

	if (load_link(&l, file, 0) || !f)
		return 1;
	while (fscanf(f, "%llx", &addr) == 1) {
		long i = find_run(&l, addr);
		n++;
		if (i < 0 || (l.runs[i].flags & AMBER_RUN_F_PARENT)) {
			bad++;
			if (bad < 20)
				printf("NOT SAVED %llx (%s)\n", addr, i < 0 ? "unlisted" : "parent run");
		}
	}
	printf("covers: %llu written pages, %d not in a data run\n", n, bad);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int one = 1, err;
	struct req r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	sock = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
	bind(sock, (void *)&sa, sizeof(sa));
	setsockopt(sock, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	int rcv = 8 << 20;
	setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
	family = resolve("amber");
	if (argc < 2) return 2;

	if (!strcmp(argv[1], "version")) {
		init_req(&r, family, AMBER_CMD_GET_VERSION);
		if (argc > 2) put_u32(&r, AMBER_A_PID, 1);
		struct nlmsghdr *h = xfer(&r, &err, 1);
		printf("err %d\n", err);
		if (h) dump((void *)((char *)NLMSG_DATA(h) + GENL_HDRLEN), h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), 0, 1);
		return err ? 1 : 0;
	}
	if (!strcmp(argv[1], "raw")) {	/* raw CMD [type=u32 ...] */
		init_req(&r, family, atoi(argv[2]));
		for (int i = 3; i < argc; i++) {
			int t; unsigned v;
			sscanf(argv[i], "%d=%u", &t, &v);
			put_u32(&r, t, v);
		}
		xfer(&r, &err, 0);
		printf("err %d (%s)\n", err, strerror(-err));
		return err ? 1 : 0;
	}
	if (!strcmp(argv[1], "self")) {	/* checkpoint ourselves: must be refused */
		int fd = open("/tmp/self.img", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		init_req(&r, family, AMBER_CMD_CHECKPOINT);
		put_u32(&r, AMBER_A_PID, getpid());
		put_u32(&r, AMBER_A_PAGES_FD, fd);
		xfer(&r, &err, 0);
		printf("self err %d\n", err);
		return 0;
	}
	if (!strcmp(argv[1], "pages") && argc > 2) {	/* pages FILE: validate, count */
		struct link l;
		if (load_link(&l, argv[2], !getenv("INCR")))
			return 1;
		printf("pages: %zu runs, %llu data pages, %llu parent pages in %llu parent runs\n",
		       l.n, l.data_pages, l.parent_pages, l.parent_runs);
		return 0;
	}
	if (!strcmp(argv[1], "covers") && argc > 3)	/* covers FILE LIST */
		return covers(argv[2], argv[3]);
	if (!strcmp(argv[1], "untrack") && argc > 2) {
		init_req(&r, family, AMBER_CMD_UNTRACK);
		put_u32(&r, AMBER_A_PID, atoi(argv[2]));
		xfer(&r, &err, 0);
		printf("untrack err %d (%s)\n", err, strerror(-err));
		return err ? 1 : 0;
	}
	/*
	 * ckpt PID FILE [hold|kill|resume|holdclose|verify|nohold] [timeout]
	 * Environment: TRACK=1 (AMBER_CKPT_F_TRACK), PARENT=hex (PARENT_ID),
	 * CHAIN/REGION for verify, RDONLY=1 (open FILE read-only).
	 */
	if (!strcmp(argv[1], "ckpt")) {
		int fd = getenv("RDONLY") ? open(argv[3], O_RDONLY) : open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600);
		const char *mode = argc > 4 ? argv[4] : "";
		uint32_t flags = 0;
		init_req(&r, family, AMBER_CMD_CHECKPOINT);
		put_u32(&r, AMBER_A_PID, atoi(argv[2]));
		put_u32(&r, AMBER_A_PAGES_FD, fd);
		if (*mode && strcmp(mode, "nohold")) flags |= AMBER_CKPT_F_HOLD;
		if (getenv("TRACK")) flags |= AMBER_CKPT_F_TRACK;
		if (getenv("TREE")) flags |= AMBER_CKPT_F_TREE;
		if (getenv("POOL")) {	/* POOL=n: n pages files FILE.0 .. FILE.n-1 */
			struct nlattr *nest = (void *)((char *)&r + NLMSG_ALIGN(r.n.nlmsg_len));
			int n = atoi(getenv("POOL"));

			put_attr(&r, AMBER_A_PAGES_FDS, NULL, 0);
			for (int i = 0; i < n; i++) {
				char path[256];

				snprintf(path, sizeof(path), "%s.%d", argv[3], i);
				put_u32(&r, AMBER_A_PAGE_FD, open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600));
			}
			nest->nla_len = (char *)&r + r.n.nlmsg_len - (char *)nest;
			nest->nla_type |= NLA_F_NESTED;
		}
		if (flags) put_u32(&r, AMBER_A_FLAGS, flags);
		if (getenv("PARENT")) put_u64(&r, AMBER_A_PARENT_ID, strtoull(getenv("PARENT"), NULL, 16));
		if (argc > 5) put_u32(&r, AMBER_A_TIMEOUT_MS, atoi(argv[5]));
		struct nlmsghdr *h = xfer(&r, &err, 1);
		printf("checkpoint err %d (%s)\n", err, strerror(-err));
		if (!h) return 1;
		h = replies[0];
		printf("reply %u bytes, file size %lld, %d messages\n", h->nlmsg_len,
		       (long long)lseek(fd, 0, SEEK_END), nreplies);
		dump((void *)((char *)NLMSG_DATA(h) + GENL_HDRLEN), h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), 0, 1);
		print_track(h);
		for (int i = 0; i < nreplies; i++)
			print_summary(replies[i], atoi(argv[2]));
		if (!strcmp(mode, "verify")) {
			parse_regs(h);
			verify(atoi(argv[2]), argv[3]);
			mode = "resume";
		}
		if (!strcmp(mode, "kill") || !strcmp(mode, "resume")) {
			init_req(&r, family, AMBER_CMD_RELEASE);
			put_u32(&r, AMBER_A_PID, atoi(argv[2]));
			put_u32(&r, AMBER_A_ACTION, !strcmp(mode, "kill") ? AMBER_RELEASE_KILL : AMBER_RELEASE_RESUME);
			xfer(&r, &err, 0);
			printf("release err %d\n", err);
		}
		if (!strcmp(mode, "holdrelease")) {	/* RELEASE RESUME once /tmp/closenow exists */
			for (int i = 0; i < 600 && access("/tmp/closenow", F_OK); i++)
				usleep(100000);
			init_req(&r, family, AMBER_CMD_RELEASE);
			put_u32(&r, AMBER_A_PID, atoi(argv[2]));
			put_u32(&r, AMBER_A_ACTION, AMBER_RELEASE_RESUME);
			xfer(&r, &err, 0);
			printf("release err %d\n", err);
		}
		if (!strcmp(mode, "holdclose")) {
			for (int i = 0; i < 600 && access("/tmp/closenow", F_OK); i++)
				usleep(100000);
			close(sock);
			printf("closed socket\n");
		}
		return 0;
	}
	return 2;
}
