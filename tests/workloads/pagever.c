// SPDX-License-Identifier: GPL-2.0
/*
 * pagever: memory whose every page carries a version, for incremental
 * checkpoint chains.
 *
 * Usage: pagever --dir DIR [--mib N] [--regions R] [--thp] [--madv-hugepage]
 *                [--no-state] [--ms M] [--compressible]
 *
 * Maps R anonymous private regions of N/R MiB (MADV_NOHUGEPAGE unless --thp;
 * with --thp each region starts on a 2 MiB boundary, so that every 2 MiB of
 * it can be a transparent huge page in the kernel's default THP mode;
 * --madv-hugepage adds MADV_HUGEPAGE) and fills every page with version 1. A page of version v > 0 holds
 * (region, index, v) in its first words and 8-byte words from a PRNG seeded
 * by them after (with --compressible only the first quarter of the page,
 * then counters that zstd compresses several times); version 0 means "no
 * data": the page must read as zeros. The
 * versions also live in a table on the heap, which a restore brings back
 * along with the pages.
 *
 * Commands come through DIR/cmd, one line "SEQ OP [ARGS]" replaced
 * atomically (rename) by the driver; a command runs once, when SEQ is above
 * the last one run (kept in memory, so a restored process ignores the
 * command it already ran before its checkpoint). Ops that change memory
 * advance the step S and write DIR/state-S, the expected versions of every
 * page at that step:
 *   dirty PERMILLE SEED  rewrite exactly PERMILLE/1000 of the writable pages
 *                        (chosen from SEED), version + 1 each
 *   unmap R              munmap the upper half of region R
 *   remap R              mremap region R to a new place, 1.5 times as big
 *                        (the new pages are version 0)
 *   protect R            mprotect region R read-only (dirty skips it), or
 *                        back to read-write if it already is
 *   map PAGES            a new region of PAGES pages, version 1
 *   dontneed R           MADV_DONTNEED on the second quarter of region R
 *   collapse R           MADV_COLLAPSE on region R: its pages become huge
 *                        pages now, as khugepaged would make them (no
 *                        page changes)
 *   verify               check every page against the table, and the table
 *                        against DIR/state-S of the current step
 *   exit                 exit 0
 * Each prints one line, "cmd SEQ step S touched T data D" (T pages written or
 * moved, D pages holding data now) or "cmd SEQ verify step S PASS", or
 * "FAIL ..." (and exits 1). Between commands it prints "tick N" every M ms
 * (default 100) without writing any tracked page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25	/* Linux 6.1 */
#endif

#define PAGE		4096
#define WORDS		(PAGE / 8)
#define MAX_REGIONS	16
#define MAGIC		0x5245564547415000ULL	/* "\0PAGEVER" */

struct region {
	uint64_t *mem;
	size_t npages;
	uint32_t *ver;		/* per page, 0 = zero page */
	int readonly;
	int mapped;
};

static struct region reg[MAX_REGIONS];
static int nreg;
static unsigned int step;
static unsigned long last_seq;
static const char *dir;
static int write_state = 1, thp, madv_hugepage, compressible;

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t seed_of(int r, size_t p, uint32_t v)
{
	return mix(((uint64_t)r << 56) ^ ((uint64_t)p << 24) ^ v ^ 0x9e3779b97f4a7c15ULL);
}

/* Word i >= 2 of page p of region r at version v; s: the PRNG, advanced. */
static uint64_t word(int r, size_t p, uint32_t v, size_t i, uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ULL;
	if (compressible && i >= WORDS / 4)
		return (uint64_t)v << 48 | (uint64_t)r << 40 | (uint64_t)p << 12 | i;
	return mix(*s);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL step %u: ", step);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(1);
}

static void fill_page(int r, size_t p)
{
	uint64_t *w = reg[r].mem + p * WORDS, s;
	uint32_t v = reg[r].ver[p];
	size_t i;

	if (!v) {
		memset(w, 0, PAGE);
		return;
	}
	s = seed_of(r, p, v);
	w[0] = MAGIC | v;
	w[1] = (uint64_t)r << 32 | p;
	for (i = 2; i < WORDS; i++)
		w[i] = word(r, p, v, i, &s);
}

/* 0 if page p of region r holds what its version says. */
static int check_page(int r, size_t p)
{
	const uint64_t *w = reg[r].mem + p * WORDS;
	uint32_t v = reg[r].ver[p];
	uint64_t s;
	size_t i;

	if (!v) {
		for (i = 0; i < WORDS; i++)
			if (w[i])
				return 1;
		return 0;
	}
	if (w[0] != (MAGIC | v) || w[1] != ((uint64_t)r << 32 | p))
		return 1;
	s = seed_of(r, p, v);
	for (i = 2; i < WORDS; i++)
		if (w[i] != word(r, p, v, i, &s))
			return 1;
	return 0;
}

/*
 * PROT_NONE guard pages on both sides keep every region its own VMA: a VMA
 * merged with a new mapping is soft-dirty as a whole, which would make the
 * tests' bounds on saved pages meaningless.
 */
static char *guarded(size_t pages, int prot)
{
	char *m = mmap(NULL, (pages + 2) * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		fail("mmap %zu pages: %s", pages + 2, strerror(errno));
	if (prot != PROT_NONE && mprotect(m + PAGE, pages * PAGE, prot))
		fail("mprotect: %s", strerror(errno));
	return m + PAGE;
}

#define HUGE		(2UL << 20)

/* guarded(), with the usable part starting on a 2 MiB boundary. */
static char *guarded_huge(size_t pages)
{
	char *m = guarded(pages + HUGE / PAGE, PROT_NONE);
	char *a = (char *)(((uintptr_t)m + HUGE - 1) & ~(HUGE - 1));

	if (mprotect(a, pages * PAGE, PROT_READ | PROT_WRITE))
		fail("mprotect: %s", strerror(errno));
	return a;
}

static void *map_anon(size_t pages)
{
	void *m;

	if (!thp) {
		m = guarded(pages, PROT_READ | PROT_WRITE);
		madvise(m, pages * PAGE, MADV_NOHUGEPAGE);
		return m;
	}
	m = guarded_huge(pages);
	if (madv_hugepage && madvise(m, pages * PAGE, MADV_HUGEPAGE))
		fail("madvise(MADV_HUGEPAGE): %s", strerror(errno));
	return m;
}

static int new_region(size_t pages)
{
	int r = nreg;
	size_t p;

	if (nreg == MAX_REGIONS)
		fail("too many regions");
	reg[r].mem = map_anon(pages);
	reg[r].npages = pages;
	reg[r].ver = calloc(pages, sizeof(uint32_t));
	reg[r].mapped = 1;
	if (!reg[r].ver)
		fail("calloc");
	for (p = 0; p < pages; p++) {
		reg[r].ver[p] = 1;
		fill_page(r, p);
	}
	nreg++;
	return r;
}

/* The expected state: region layout and the versions of every page. */
static char *serialize(size_t *len)
{
	char *buf;
	FILE *f = open_memstream(&buf, len);
	size_t p;
	int r;

	if (!f)
		fail("open_memstream");
	fprintf(f, "step %u regions %d\n", step, nreg);
	for (r = 0; r < nreg; r++) {
		fprintf(f, "region %d mapped %d pages %zu ro %d\n", r, reg[r].mapped,
			reg[r].npages, reg[r].readonly);
		for (p = 0; reg[r].mapped && p < reg[r].npages; p++)
			fprintf(f, "%u%c", reg[r].ver[p], p % 32 == 31 ? '\n' : ' ');
		fprintf(f, "\n");
	}
	fclose(f);
	return buf;
}

static void save_state(void)
{
	char path[4096], tmp[4200], *buf;
	size_t len;
	int fd;

	if (!write_state)
		return;
	buf = serialize(&len);
	snprintf(path, sizeof(path), "%s/state-%u", dir, step);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len || fsync(fd) || close(fd) ||
	    rename(tmp, path))
		fail("write %s: %s", path, strerror(errno));
	free(buf);
}

static size_t data_pages(void)
{
	size_t n = 0, p;
	int r;

	for (r = 0; r < nreg; r++)
		for (p = 0; reg[r].mapped && p < reg[r].npages; p++)
			n += reg[r].ver[p] != 0;
	return n;
}

/* Exactly permille/1000 of the writable pages (selection sampling). */
static size_t op_dirty(unsigned int permille, uint64_t seed)
{
	size_t total = 0, want, left, done = 0, p;
	uint64_t s = mix(seed + 1);
	int r;

	for (r = 0; r < nreg; r++)
		if (reg[r].mapped && !reg[r].readonly)
			total += reg[r].npages;
	want = total * permille / 1000;
	left = total;
	for (r = 0; r < nreg; r++) {
		if (!reg[r].mapped || reg[r].readonly)
			continue;
		for (p = 0; p < reg[r].npages; p++, left--) {
			s = mix(s + 0x9e3779b97f4a7c15ULL);
			if (s % left >= want - done)
				continue;
			reg[r].ver[p]++;
			fill_page(r, p);
			done++;
		}
	}
	return done;
}

static struct region *region_arg(const char *arg)
{
	int r = atoi(arg);

	if (r < 0 || r >= nreg || !reg[r].mapped)
		fail("no region '%s'", arg);
	return &reg[r];
}

static size_t op_remap(struct region *g)
{
	size_t old = g->npages * PAGE, new = old + old / 2 / PAGE * PAGE, p;
	void *hole, *m;
	uint32_t *ver;

	/* A reserved place elsewhere, so that the region really moves. */
	hole = guarded(new / PAGE, PROT_NONE);
	m = mremap(g->mem, old, new, MREMAP_MAYMOVE | MREMAP_FIXED, hole);
	if (m == MAP_FAILED)
		fail("mremap: %s", strerror(errno));
	ver = realloc(g->ver, new / PAGE * sizeof(uint32_t));
	if (!ver)
		fail("realloc");
	for (p = g->npages; p < new / PAGE; p++)
		ver[p] = 0;
	g->mem = m;
	g->ver = ver;
	p = g->npages;
	g->npages = new / PAGE;
	return p;
}

static void verify(void)
{
	char path[4096], *want, *have;
	size_t len, wlen, p;
	int r;

	for (r = 0; r < nreg; r++)
		for (p = 0; reg[r].mapped && p < reg[r].npages; p++)
			if (check_page(r, p))
				fail("region %d page %zu (at %p) does not hold version %u "
				     "(first word %#llx)", r, p, (void *)(reg[r].mem + p * WORDS),
				     reg[r].ver[p], (unsigned long long)reg[r].mem[p * WORDS]);
	if (!write_state)
		return;
	snprintf(path, sizeof(path), "%s/state-%u", dir, step);
	want = NULL;
	{
		FILE *f = fopen(path, "r");

		if (!f)
			fail("no %s", path);
		wlen = 0;
		if (getdelim(&want, &wlen, 0, f) < 0)
			fail("read %s", path);
		fclose(f);
	}
	have = serialize(&len);
	if (strlen(want) != len || memcmp(want, have, len))
		fail("the version table differs from %s", path);
	free(want);
	free(have);
}

/* Run the command in DIR/cmd if it is new. Returns 1 on exit. */
static int poll_cmd(void)
{
	char path[4096], line[256], op[32] = "", a1[64] = "", a2[64] = "";
	unsigned long seq;
	static struct timespec last_mtime;
	static ino_t last_ino;
	size_t touched = 0;
	struct stat st;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cmd", dir);
	/*
	 * Only open the file when it was replaced: a checkpoint taken between
	 * two commands must not find it open (a restore checks the size of
	 * every open file, and the test replaces this one).
	 */
	if (stat(path, &st) || (st.st_ino == last_ino && st.st_mtim.tv_sec == last_mtime.tv_sec &&
				st.st_mtim.tv_nsec == last_mtime.tv_nsec))
		return 0;
	last_ino = st.st_ino;
	last_mtime = st.st_mtim;
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	if (sscanf(line, "%lu %31s %63s %63s", &seq, op, a1, a2) < 2 || seq <= last_seq)
		return 0;
	last_seq = seq;
	if (!strcmp(op, "verify")) {
		verify();
		printf("cmd %lu verify step %u PASS\n", seq, step);
		return 0;
	}
	if (!strcmp(op, "exit")) {
		printf("cmd %lu exit\n", seq);
		return 1;
	}
	if (!strcmp(op, "dirty")) {
		touched = op_dirty(atoi(a1), strtoull(a2, NULL, 0));
	} else if (!strcmp(op, "unmap")) {
		struct region *g = region_arg(a1);
		size_t keep = g->npages / 2;

		if (munmap(g->mem + keep * WORDS, (g->npages - keep) * PAGE))
			fail("munmap: %s", strerror(errno));
		g->npages = keep;
	} else if (!strcmp(op, "remap")) {
		touched = op_remap(region_arg(a1));
	} else if (!strcmp(op, "protect")) {
		struct region *g = region_arg(a1);

		g->readonly = !g->readonly;
		if (mprotect(g->mem, g->npages * PAGE,
			     g->readonly ? PROT_READ : PROT_READ | PROT_WRITE))
			fail("mprotect: %s", strerror(errno));
	} else if (!strcmp(op, "map")) {
		touched = atol(a1);
		new_region(touched);
	} else if (!strcmp(op, "dontneed")) {
		struct region *g = region_arg(a1);
		size_t q = g->npages / 4, p;

		if (madvise(g->mem + q * WORDS, q * PAGE, MADV_DONTNEED))
			fail("madvise: %s", strerror(errno));
		for (p = q; p < 2 * q; p++)
			g->ver[p] = 0;
	} else if (!strcmp(op, "collapse")) {
		struct region *g = region_arg(a1);

		if (madvise(g->mem, g->npages * PAGE, MADV_COLLAPSE))
			fail("madvise(MADV_COLLAPSE): %s", strerror(errno));
	} else {
		fail("unknown command '%s'", op);
	}
	step++;
	save_state();
	printf("cmd %lu step %u touched %zu data %zu\n", seq, step, touched, data_pages());
	return 0;
}

int main(int argc, char **argv)
{
	long mib = 64, ms = 100, tick = 0, since = 0;
	int i, nregions = 4;
	size_t pages;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = atol(argv[++i]);
		else if (!strcmp(argv[i], "--regions") && i + 1 < argc)
			nregions = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--ms") && i + 1 < argc)
			ms = atol(argv[++i]);
		else if (!strcmp(argv[i], "--thp"))
			thp = 1;
		else if (!strcmp(argv[i], "--madv-hugepage"))
			thp = madv_hugepage = 1;
		else if (!strcmp(argv[i], "--no-state"))
			write_state = 0;
		else if (!strcmp(argv[i], "--compressible"))
			compressible = 1;
		else
			dir = NULL, i = argc;
	}
	if (!dir || mib < 1 || nregions < 1 || nregions > MAX_REGIONS / 2) {
		fprintf(stderr, "usage: pagever --dir DIR [--mib N] [--regions R] [--thp] "
			"[--madv-hugepage] [--no-state] [--ms M] [--compressible]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	pages = (size_t)mib * (1 << 20) / PAGE / nregions;
	for (i = 0; i < nregions; i++)
		new_region(pages);
	save_state();
	printf("ready step 0 data %zu\n", data_pages());
	for (;;) {
		struct timespec ts = { 0, 20 * 1000000L };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		if (poll_cmd())
			return 0;
		since += 20;
		if (since >= ms) {
			since = 0;
			printf("tick %ld\n", tick++);
		}
	}
}
