// SPDX-License-Identifier: GPL-2.0
/*
 * scribble MIB STOPFILE [thp]: rewrites MIB MiB of anonymous memory as fast as it
 * can, to catch a checkpoint that saves a page as it was after the target
 * resumed rather than at the stop (the pages are copied while the process
 * runs again).
 *
 * Pass g writes g into one word of every page, in page order; before writing
 * it checks that the word still holds g - 1. Wherever a checkpoint stops it
 * (page i of pass g), pages before i hold g and the others g - 1, and the
 * restored process goes on from there: a page saved with a later or an
 * older value fails the check. Prints "ready" after the first pass and, once
 * STOPFILE exists (looked at after every pass), "PASS after N passes".
 * With "thp" the memory is in transparent huge pages (MADV_HUGEPAGE), which
 * a checkpoint saves a whole huge page at a time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE	4096UL
#define HUGE	(2UL << 20)

/* AnonHugePages of /proc/self/smaps_rollup. */
static unsigned long anon_huge_kb(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	unsigned long kb = 0;
	char line[256];

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %lu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	unsigned long nr, i, g;
	uint64_t *mem;

	int thp = argc == 4 && !strcmp(argv[3], "thp");
	char *raw;

	if (argc != 3 && !thp) {
		fprintf(stderr, "usage: scribble MIB STOPFILE [thp]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	nr = strtoul(argv[1], NULL, 0) * (1 << 20) / PAGE;
	/* 2 MiB aligned, so that huge pages can back all of it. */
	raw = mmap(NULL, nr * PAGE + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (raw == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	mem = (uint64_t *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	/* Without thp, small pages: a huge page is saved and tracked as one unit. */
	if (madvise(mem, nr * PAGE, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)) {
		perror("madvise");
		return 1;
	}

	/* Written before it is read: a read would map the (huge) zero page. */
	memset(mem, 0, nr * PAGE);

	for (g = 1;; g++) {
		for (i = 0; i < nr; i++) {
			uint64_t *w = &mem[i * (PAGE / 8) + i % (PAGE / 8)];

			if (*w != g - 1) {
				printf("FAIL page %lu of pass %lu holds %llu\n", i, g,
				       (unsigned long long)*w);
				return 1;
			}
			*w = g;
		}
		if (g == 1)
			printf("ready, %lu kB in huge pages\n", anon_huge_kb());
		if (access(argv[2], F_OK) == 0)
			break;
	}
	printf("PASS after %lu passes\n", g);
	return 0;
}
