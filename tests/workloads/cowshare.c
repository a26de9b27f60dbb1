// SPDX-License-Identifier: GPL-2.0
/*
 * Private anonymous memory that a parent and its children share copy-on-write:
 *   cowshare --mib M --procs N [--rounds R] [--delay-ms D] [--pids FILE]
 * The root maps M MiB MAP_PRIVATE|MAP_ANONYMOUS, fills it with an xorshift
 * pattern and forks N-1 children. Then process s (0 = the root, 1..N-1 the
 * children) rewrites 8 whole pages of its own, pages s + j * M * 32 for j in
 * 0..7, with values of its own: the views of any two processes differ in
 * those pages and are equal (still shared) in all the others.
 *
 * Once every process is set up, the root writes `ROOT CHILD1 ... CHILDN-1`
 * to --pids FILE (if given) and prints `ready`. Every process then sleeps R
 * rounds (default 60) of D ms (default 100), reading the region only; the
 * root prints `round K` after each. At the end every process checks its whole
 * region word by word (the pattern plus its own pages, none of another's);
 * a child exits 0 if it holds, 1 if not. The root prints `child K ok|BAD`
 * for K = 1..N-1 in fork order, `root ok|BAD`, then PASS or FAIL.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXPROCS	64
#define PAGE_WORDS	512	/* 4 KiB pages of 64-bit words */
#define OWN_PAGES	8

static uint64_t *mem;
static size_t words, stride;	/* stride: pages between two of a process's own pages */

static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* The value process s writes into word w of its own pages. */
static uint64_t mark(int s, size_t w)
{
	return (s + 1) * 0xd6e8feb86659fd93ULL ^ w;
}

static int own_page(int s, size_t page)
{
	return page % stride == (size_t)s;
}

static void fill(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t i;

	for (i = 0; i < words; i++)
		mem[i] = next(&x);
}

static void change_own(int s)
{
	size_t j, w;

	for (j = 0; j < OWN_PAGES; j++)
		for (w = (s + j * stride) * PAGE_WORDS; w < (s + j * stride + 1) * PAGE_WORDS; w++)
			mem[w] = mark(s, w);
}

/* Process s's view: the pattern, its own pages changed. 1 if it holds. */
static int verify(int s)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL, want;
	size_t i;
	int ok = 1;

	for (i = 0; i < words; i++) {
		want = next(&x);
		if (own_page(s, i / PAGE_WORDS))
			want = mark(s, i);
		if (mem[i] != want)
			ok = 0;
	}
	return ok;
}

static void write_pids(const char *path, const pid_t *pid, int n)
{
	FILE *f = fopen(path, "w");
	int i;

	if (!f)
		return;
	for (i = 0; i < n; i++)
		fprintf(f, "%d%c", pid[i], i + 1 < n ? ' ' : '\n');
	fclose(f);
}

int main(int argc, char **argv)
{
	int procs = 0, rounds = 60, delay_ms = 100, bad = 0, i, k, st, p[2];
	const char *pids_file = NULL;
	pid_t pid[MAXPROCS];
	size_t mib = 0;
	char c;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mib"))
			mib = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--procs"))
			procs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--delay-ms"))
			delay_ms = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--pids"))
			pids_file = argv[i + 1];
		else
			break;
	}
	/* Each process needs a page of its own in every eighth of the region. */
	if (i != argc || mib < 1 || mib > 4096 || procs < 1 || procs > MAXPROCS ||
	    (size_t)procs > mib * 32 || rounds < 0 || delay_ms < 0) {
		fprintf(stderr, "usage: cowshare --mib M --procs N [--rounds R] [--delay-ms D] "
			"[--pids FILE]  (1 <= N <= %d, N <= 32 * M)\n", MAXPROCS);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	words = mib << 17;
	stride = mib * 32;
	mem = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || pipe(p))
		return 1;
	fill();

	pid[0] = getpid();
	for (k = 1; k < procs; k++) {
		pid[k] = fork();
		if (pid[k] < 0)
			return 1;
		if (pid[k] == 0) {
			close(p[0]);
			change_own(k);
			if (write(p[1], "r", 1) != 1)
				_exit(1);
			close(p[1]);
			for (i = 0; i < rounds; i++)
				pause_ms(delay_ms);
			_exit(verify(k) ? 0 : 1);
		}
	}
	close(p[1]);
	change_own(0);
	for (k = 1; k < procs; k++)
		if (read(p[0], &c, 1) != 1)
			return 1;
	close(p[0]);
	if (pids_file)
		write_pids(pids_file, pid, procs);
	printf("ready\n");

	for (i = 1; i <= rounds; i++) {
		pause_ms(delay_ms);
		printf("round %d\n", i);
	}
	k = verify(0);
	for (i = 1; i < procs; i++) {
		int ok = waitpid(pid[i], &st, 0) == pid[i] && WIFEXITED(st) && !WEXITSTATUS(st);

		printf("child %d %s\n", i, ok ? "ok" : "BAD");
		bad |= !ok;
	}
	printf("root %s\n", k ? "ok" : "BAD");
	bad |= !k;
	printf("%s\n", bad ? "FAIL" : "PASS");
	return bad;
}
