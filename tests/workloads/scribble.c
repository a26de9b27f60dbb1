// SPDX-License-Identifier: GPL-2.0
/*
 * scribble MIB STOPFILE: rewrites MIB MiB of anonymous memory as fast as it
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
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE	4096UL

int main(int argc, char **argv)
{
	unsigned long nr, i, g;
	uint64_t *mem;

	if (argc != 3) {
		fprintf(stderr, "usage: scribble MIB STOPFILE\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	nr = strtoul(argv[1], NULL, 0) * (1 << 20) / PAGE;
	mem = mmap(NULL, nr * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	/* Small pages: a huge page would be saved and tracked as one unit. */
	madvise(mem, nr * PAGE, MADV_NOHUGEPAGE);

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
			printf("ready\n");
		if (access(argv[2], F_OK) == 0)
			break;
	}
	printf("PASS after %lu passes\n", g);
	return 0;
}
