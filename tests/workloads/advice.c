// SPDX-License-Identifier: GPL-2.0
/*
 * advice: VMAs carrying madvise() advice and the other flags a process can
 * set, which must come back after a restore.
 *
 * Usage: advice --dir DIR [--fork] [--mlockall]
 *
 * Maps small regions (anonymous private, file-backed private over DIR/file,
 * shared anonymous), each with its own advice or a combination of them
 * (MADV_SEQUENTIAL, RANDOM, WIPEONFORK, MERGEABLE, DONTFORK, DONTDUMP,
 * HUGEPAGE, NOHUGEPAGE, mlock2(MLOCK_ONFAULT), MAP_NORESERVE), fills them,
 * then records the VmFlags of every VMA of /proc/self/smaps in memory (so
 * that a restored process compares with what it was at its checkpoint) and
 * prints "ready". With --fork, a child forked first does the same on its own.
 * With --mlockall, it calls mlockall(MCL_CURRENT | MCL_FUTURE) first.
 *
 * SIGUSR1: verify. Every VMA recorded must be there with the same VmFlags
 * letters (but "sd", soft-dirty, which amber's own tracking clears and
 * which every new mapping has; "ac", VM_ACCOUNT, is compared: regions
 * "anon-relro" and "file-relro" are private writable mappings partly made
 * read-only by mprotect(), as the dynamic loader does to RELRO, which keep
 * "ac"; in "file-relro" a read-only mapping of the file's first page comes
 * right before, without "ac", as ld.so maps a library's segments) and no
 * other VMA may have appeared; the
 * regions must hold their data; a child forked now must see zeros in the
 * WIPEONFORK regions and no DONTFORK region; growing the MLOCK_ONFAULT
 * region must not fault the new page in. Prints "PID verify PASS" or
 * "PID FAIL ..." lines.
 * SIGUSR2: change the advice of some regions (SEQUENTIAL to RANDOM, drop
 * RANDOM, DONTFORK to DOFORK, WIPEONFORK to KEEPONFORK, add MERGEABLE and
 * SEQUENTIAL), record again and print "PID changed".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE		4096UL
#define NPAGES		4
#define MAX_VMAS	512
#define LETTERS		160

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT	1
#endif

enum kind { ANON, FILE_PRIV, SHARED_ANON };

struct region {
	const char *name;
	enum kind kind;
	int advice[4];		/* madvise() advice, -1 ends */
	int onfault;		/* mlock2(MLOCK_ONFAULT) */
	int noreserve;		/* MAP_NORESERVE */
	int relro;		/* first page read-only after filling (mprotect) */
	int file_head;		/* FILE_PRIV: a read-only page of the file before */
	char *mem;
	int wipe, nofork;	/* expected in a child */
};

#define R(n, k, ...)	{ .name = n, .kind = k, .advice = { __VA_ARGS__ } }

static struct region reg[] = {
	R("anon-seq", ANON, MADV_SEQUENTIAL, -1),
	R("anon-rand", ANON, MADV_RANDOM, -1),
	R("anon-wipe", ANON, MADV_WIPEONFORK, -1),
	R("anon-merge", ANON, MADV_MERGEABLE, -1),
	R("anon-dontfork", ANON, MADV_DONTFORK, -1),
	R("anon-dontdump", ANON, MADV_DONTDUMP, -1),
	R("anon-huge", ANON, MADV_HUGEPAGE, -1),
	R("anon-nohuge", ANON, MADV_NOHUGEPAGE, -1),
	R("anon-combo1", ANON, MADV_WIPEONFORK, MADV_DONTDUMP, MADV_SEQUENTIAL, MADV_MERGEABLE),
	R("anon-combo2", ANON, MADV_RANDOM, MADV_DONTFORK, MADV_NOHUGEPAGE, MADV_MERGEABLE),
	{ .name = "anon-onfault", .kind = ANON, .advice = { -1 }, .onfault = 1 },
	{ .name = "anon-noreserve", .kind = ANON, .advice = { MADV_SEQUENTIAL, -1 },
	  .noreserve = 1 },
	{ .name = "anon-relro", .kind = ANON, .advice = { -1 }, .relro = 1 },
	{ .name = "file-relro", .kind = FILE_PRIV, .advice = { -1 }, .relro = 1,
	  .file_head = 1 },
	R("file-seq", FILE_PRIV, MADV_SEQUENTIAL, -1),
	R("file-rand-dd", FILE_PRIV, MADV_RANDOM, MADV_DONTDUMP, -1),
	R("file-merge", FILE_PRIV, MADV_MERGEABLE, MADV_DONTFORK, -1),
	R("shared-seq-dd", SHARED_ANON, MADV_SEQUENTIAL, MADV_DONTDUMP, -1),
};
#define NREG	(sizeof(reg) / sizeof(reg[0]))

struct vmainfo {
	unsigned long start, end;
	char letters[LETTERS];
};

static struct vmainfo saved[MAX_VMAS];
static int nsaved;
static volatile sig_atomic_t want_verify, want_change;
static int failed;

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("%d FAIL ", getpid());
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	failed = 1;
}

/* VmFlags without "sd", the letters in the kernel's order. */
static void clean_letters(const char *in, char *out)
{
	char buf[512], *tok, *save;

	snprintf(buf, sizeof(buf), "%s", in);
	out[0] = 0;
	for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		if (!strcmp(tok, "sd"))
			continue;
		if (out[0])
			strcat(out, " ");
		strcat(out, tok);
	}
}

static int read_smaps(struct vmainfo *v, int max)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int n = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx ", &s, &e) == 2) {
			if (++n >= max)
				break;
			v[n].start = s;
			v[n].end = e;
			v[n].letters[0] = 0;
		} else if (n >= 0 && !strncmp(line, "VmFlags:", 8)) {
			clean_letters(line + 8, v[n].letters);
		}
	}
	fclose(f);
	return n + 1;
}

static void record(void)
{
	nsaved = read_smaps(saved, MAX_VMAS);
}

static unsigned char pattern(size_t r, size_t i)
{
	return (unsigned char)(0x5a ^ (r * 31) ^ (i * 7)) | 1;
}

/* What byte @i of region @r holds: page 0 of a file_head region is the file's. */
static unsigned char want_byte(size_t r, size_t i)
{
	return reg[r].file_head && i < PAGE ? pattern(99, i) : pattern(r, i);
}

static void setup(const char *dir)
{
	char path[4096];
	unsigned char buf[PAGE * NPAGES];
	int fd;
	size_t r, i;

	snprintf(path, sizeof(path), "%s/file.%d", dir, getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = pattern(99, i);
	if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
		perror("file");
		exit(2);
	}
	for (r = 0; r < NREG; r++) {
		struct region *g = &reg[r];
		size_t len = NPAGES * PAGE;
		int flags = g->kind == SHARED_ANON ? MAP_SHARED | MAP_ANONYMOUS : MAP_PRIVATE;
		int k;

		if (g->kind == ANON)
			flags |= MAP_ANONYMOUS;
		if (g->noreserve)
			flags |= MAP_NORESERVE;
		/* One page more, unmapped again: a hole between regions. */
		g->mem = mmap(NULL, len + PAGE, PROT_READ | PROT_WRITE, flags,
			      g->kind == FILE_PRIV ? fd : -1, 0);
		if (g->mem == MAP_FAILED) {
			perror(g->name);
			exit(2);
		}
		munmap(g->mem + len, PAGE);
		/* The file's page 0 read-only, then pages 1.. private writable. */
		if (g->file_head &&
		    (mmap(g->mem, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) != g->mem ||
		     mmap(g->mem + PAGE, len - PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_FIXED, fd, PAGE) != g->mem + PAGE)) {
			perror(g->name);
			exit(2);
		}
		for (i = g->file_head ? PAGE : 0; i < len; i++)
			g->mem[i] = pattern(r, i);
		if (g->relro && mprotect(g->mem + g->file_head * PAGE, PAGE, PROT_READ)) {
			perror("mprotect");
			exit(2);
		}
		for (k = 0; k < 4 && g->advice[k] >= 0; k++) {
			if (g->advice[k] == 0 && k)
				break;
			if (madvise(g->mem, len, g->advice[k])) {
				fprintf(stderr, "%s: madvise %d: %s\n", g->name, g->advice[k],
					strerror(errno));
				exit(2);
			}
			if (g->advice[k] == MADV_WIPEONFORK)
				g->wipe = 1;
			if (g->advice[k] == MADV_DONTFORK)
				g->nofork = 1;
		}
		if (g->onfault && syscall(SYS_mlock2, g->mem, len, MLOCK_ONFAULT)) {
			perror("mlock2");
			exit(2);
		}
	}
	close(fd);
}

static void change(void)
{
	size_t r;

	for (r = 0; r < NREG; r++) {
		struct region *g = &reg[r];
		size_t len = NPAGES * PAGE;
		int rc = 0;

		if (!strcmp(g->name, "anon-seq")) {
			rc = madvise(g->mem, len, MADV_RANDOM);
		} else if (!strcmp(g->name, "anon-rand")) {
			rc = madvise(g->mem, len, MADV_NORMAL);
		} else if (!strcmp(g->name, "anon-dontfork")) {
			rc = madvise(g->mem, len, MADV_DOFORK);
			g->nofork = 0;
		} else if (!strcmp(g->name, "anon-wipe")) {
			rc = madvise(g->mem, len, MADV_KEEPONFORK);
			g->wipe = 0;
		} else if (!strcmp(g->name, "anon-huge")) {
			rc = madvise(g->mem, len, MADV_MERGEABLE);
		} else if (!strcmp(g->name, "anon-dontdump")) {
			rc = madvise(g->mem, len, MADV_SEQUENTIAL) ?:
			     madvise(g->mem, len, MADV_WIPEONFORK);
			g->wipe = 1;
		}
		if (rc) {
			fprintf(stderr, "%s: change: %s\n", g->name, strerror(errno));
			exit(2);
		}
	}
	record();
	printf("%d changed\n", getpid());
	fflush(stdout);
}

/* The same VMA, maybe grown: the stack grows down, the heap up. */
static int same_vma(const struct vmainfo *a, const struct vmainfo *b)
{
	return a->start == b->start || a->end == b->end;
}

static void check_layout(void)
{
	static struct vmainfo now[MAX_VMAS];
	int n = read_smaps(now, MAX_VMAS), i, j;

	for (i = 0; i < nsaved; i++) {
		for (j = 0; j < n; j++)
			if (same_vma(&now[j], &saved[i]))
				break;
		if (j == n) {
			fail("vma %lx-%lx [%s] is gone", saved[i].start, saved[i].end, saved[i].letters);
			continue;
		}
		if (strcmp(now[j].letters, saved[i].letters)) {
			printf("%d FAIL vma %lx-%lx VmFlags [%s], was [%s]\n", getpid(),
			       saved[i].start, saved[i].end, now[j].letters, saved[i].letters);
			failed = 1;
		}
	}
	for (j = 0; j < n; j++) {
		for (i = 0; i < nsaved; i++)
			if (same_vma(&now[j], &saved[i]))
				break;
		if (i == nsaved)
			fail("new vma %lx-%lx [%s]", now[j].start, now[j].end, now[j].letters);
	}
}

/* In a child: wiped and missing regions; 0 if all as expected. */
static int child_check(void)
{
	size_t r, i;
	int bad = 0;

	for (r = 0; r < NREG; r++) {
		struct region *g = &reg[r];
		size_t len = NPAGES * PAGE;
		int mapped = msync(g->mem, PAGE, MS_ASYNC) == 0;

		if (g->nofork) {
			if (mapped) {
				printf("%d FAIL child: DONTFORK %s is mapped\n", getpid(), g->name);
				bad = 1;
			}
			continue;
		}
		if (!mapped) {
			printf("%d FAIL child: %s is not mapped\n", getpid(), g->name);
			bad = 1;
			continue;
		}
		for (i = 0; i < len; i++) {
			unsigned char want = g->wipe ? 0 : want_byte(r, i);

			if ((unsigned char)g->mem[i] != want) {
				printf("%d FAIL child: %s byte %zu is %u, want %u\n", getpid(),
				       g->name, i, (unsigned char)g->mem[i], want);
				bad = 1;
				break;
			}
		}
	}
	fflush(stdout);
	return bad;
}

static void verify(void)
{
	size_t r, i;
	int status;
	pid_t c;

	failed = 0;
	check_layout();
	for (r = 0; r < NREG; r++) {
		struct region *g = &reg[r];

		for (i = 0; i < NPAGES * PAGE; i++) {
			if ((unsigned char)g->mem[i] != want_byte(r, i)) {
				fail("%s: data differs at %zu", g->name, i);
				break;
			}
		}
		if (g->onfault) {
			/* Growing an MLOCK_ONFAULT VMA does not fault the new page in. */
			size_t len = NPAGES * PAGE;
			unsigned char vec = 1;
			char *p = mremap(g->mem, len, len + PAGE, 0);

			if (p != g->mem)
				fail("%s: cannot grow in place (%s)", g->name, strerror(errno));
			else if (mincore(p + len, PAGE, &vec) || (vec & 1))
				fail("%s: the page grown is resident: not MLOCK_ONFAULT", g->name);
			if (p == g->mem && mremap(p, len + PAGE, len, 0) != g->mem)
				fail("%s: cannot shrink back (%s)", g->name, strerror(errno));
		}
	}
	fflush(stdout);
	c = fork();
	if (c == 0)
		_exit(child_check());
	if (c < 0 || waitpid(c, &status, 0) != c || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("the forked child found a difference");
	if (!failed)
		printf("%d verify PASS\n", getpid());
	fflush(stdout);
}

static void on_sig(int sig)
{
	if (sig == SIGUSR1)
		want_verify = 1;
	else
		want_change = 1;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	struct sigaction sa = { .sa_handler = on_sig };
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	int i, forked = 0, lockall = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--fork"))
			forked = 1;
		else if (!strcmp(argv[i], "--mlockall"))
			lockall = 1;
	}
	if (!dir) {
		fprintf(stderr, "usage: advice --dir DIR [--fork] [--mlockall]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	if (forked && fork() < 0) {
		perror("fork");
		return 2;
	}
	if (lockall && mlockall(MCL_CURRENT | MCL_FUTURE)) {
		perror("mlockall");
		return 2;
	}
	setup(dir);
	record();
	printf("%d ready\n", getpid());
	for (;;) {
		nanosleep(&ts, NULL);
		if (want_change) {
			want_change = 0;
			change();
		}
		if (want_verify) {
			want_verify = 0;
			verify();
		}
	}
}
