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

#define NLA_DATA(na) ((void *)((char *)(na) + NLA_HDRLEN))
#define NLA_NEXT(na) ((struct nlattr *)((char *)(na) + NLA_ALIGN((na)->nla_len)))

struct req {
	struct nlmsghdr n;
	struct genlmsghdr g;
	char buf[1024];
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

static void init_req(struct req *r, int fam, int cmd)
{
	memset(r, 0, sizeof(*r));
	r->n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	r->n.nlmsg_type = fam;
	r->n.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	r->g.cmd = cmd;
	r->g.version = 1;
}

/* Sends and receives; returns the reply message (or NULL) and error in *err. */
static struct nlmsghdr *xfer(struct req *r, int *err, int expect_reply)
{
	struct nlmsghdr *reply = NULL;
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

/* Compares every run of the pages file with /proc/PID/mem (target held). */
static int verify(int pid, const char *file)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	int mem = open(path, O_RDONLY), pf = open(file, O_RDONLY), bad = 0;
	struct amber_pages_hdr hdr;
	struct amber_page_run run;
	unsigned long long pages = 0, runs = 0;
	static char a[1 << 20], b[1 << 20];
	if (read(pf, &hdr, sizeof(hdr)) != sizeof(hdr) || hdr.magic != AMBER_PAGES_MAGIC) {
		printf("bad header\n"); return 1;
	}
	while (read(pf, &run, sizeof(run)) == sizeof(run)) {
		runs++;
		for (uint64_t i = 0; i < run.nr_pages; i++) {
			if (read(pf, a, 4096) != 4096) { printf("short file\n"); return 1; }
			if (pread(mem, b, 4096, run.addr + i * 4096) != 4096) {
				printf("cannot read %llx via /proc (PROT_NONE?)\n", (unsigned long long)(run.addr + i * 4096));
				continue;
			}
			if (memcmp(a, b, 4096)) { bad++; printf("MISMATCH at %llx\n", (unsigned long long)(run.addr + i * 4096)); }
			pages++;
		}
	}
	printf("verify: %llu runs, %llu pages compared, %d mismatches\n", runs, pages, bad);
	unsigned char ins[2] = {0};
	pread(mem, ins, 2, reg[AMBER_REG_RIP]);
	printf("regs: rip %llx rax %lld orig_rax %lld rsp %llx fs_base %llx; bytes at rip %02x %02x\n",
	       (unsigned long long)reg[AMBER_REG_RIP], (long long)reg[AMBER_REG_RAX],
	       (long long)reg[AMBER_REG_ORIG_RAX], (unsigned long long)reg[AMBER_REG_RSP],
	       (unsigned long long)reg[AMBER_REG_FS_BASE], ins[0], ins[1]);
	return bad;
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
	if (!strcmp(argv[1], "ckpt")) {	/* ckpt PID FILE [hold|kill|resume|holdclose] [timeout] */
		int fd = getenv("RDONLY") ? open(argv[3], O_RDONLY) : open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600);
		const char *mode = argc > 4 ? argv[4] : "";
		init_req(&r, family, AMBER_CMD_CHECKPOINT);
		put_u32(&r, AMBER_A_PID, atoi(argv[2]));
		put_u32(&r, AMBER_A_PAGES_FD, fd);
		if (*mode && strcmp(mode, "nohold")) put_u32(&r, AMBER_A_FLAGS, AMBER_CKPT_F_HOLD);
		if (argc > 5) put_u32(&r, AMBER_A_TIMEOUT_MS, atoi(argv[5]));
		struct nlmsghdr *h = xfer(&r, &err, 1);
		printf("checkpoint err %d (%s)\n", err, strerror(-err));
		if (!h) return 1;
		printf("reply %u bytes, file size %lld\n", h->nlmsg_len, (long long)lseek(fd, 0, SEEK_END));
		dump((void *)((char *)NLMSG_DATA(h) + GENL_HDRLEN), h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), 0, 1);
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
