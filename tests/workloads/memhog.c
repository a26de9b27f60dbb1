// SPDX-License-Identifier: GPL-2.0
/*
 * memhog: a process with a lot of resident memory of varied content.
 *
 * Usage: memhog --mib N [--ticks T] [--ms M] [--sparse S] [--compressible]
 * Touches N MiB of anonymous memory, every 8 bytes a different value derived
 * from its index (incompressible enough, no zero pages; with --compressible
 * only the first quarter of each page is, the rest holds counters, which
 * zstd compresses several times), prints "ready", then
 * every M ms (default 100) verifies a few pages, rewrites one (counting
 * generations, so later checkpoints see changes) and prints "tick I".
 * T = 0 (default) runs forever; otherwise prints a checksum of the whole
 * region and "done". A mismatch prints "FAIL ..." and exits 1.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096

static uint64_t *mem;
static size_t npages;
static uint32_t *gen;	/* rewrite generation of each page */
static uint64_t *sparse;
static long sparse_mib;
static int compressible;

static uint64_t val(size_t page, size_t i, uint32_t g)
{
	if (compressible && i >= PAGE / 32)
		return (uint64_t)g << 48 | (uint64_t)page << 12 | i;
	uint64_t z = ((uint64_t)page << 9 | i) + ((uint64_t)g << 40) + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill_page(size_t p)
{
	uint64_t *w = mem + p * (PAGE / 8);
	size_t i;

	for (i = 0; i < PAGE / 8; i++)
		w[i] = val(p, i, gen[p]);
}

static int check_page(size_t p)
{
	const uint64_t *w = mem + p * (PAGE / 8);
	size_t i;

	for (i = 0; i < PAGE / 8; i++)
		if (w[i] != val(p, i, gen[p]))
			return 0;
	return 1;
}

static int check_sparse(void)
{
	long i;

	for (i = 0; i < sparse_mib; i++)
		if (sparse[i * (1 << 17)] != val(i, 0, 7) || sparse[i * (1 << 17) + 1])
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	long mib = 64, ticks = 0, ms = 100, t;
	uint64_t sum = 0;
	size_t p, cursor = 0;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = atol(argv[++i]);
		else if (!strcmp(argv[i], "--ticks") && i + 1 < argc)
			ticks = atol(argv[++i]);
		else if (!strcmp(argv[i], "--ms") && i + 1 < argc)
			ms = atol(argv[++i]);
		else if (!strcmp(argv[i], "--sparse") && i + 1 < argc)
			sparse_mib = atol(argv[++i]);
		else if (!strcmp(argv[i], "--compressible"))
			compressible = 1;
		else {
			fprintf(stderr, "usage: memhog --mib N [--ticks T] [--ms M] [--sparse S] "
				"[--compressible]\n");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	npages = (size_t)mib * (1 << 20) / PAGE;
	mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gen = calloc(npages, sizeof(*gen));
	if (mem == MAP_FAILED || !gen) {
		printf("FAIL allocate %ld MiB\n", mib);
		return 1;
	}
	for (p = 0; p < npages; p++)
		fill_page(p);
	if (sparse_mib) {
		sparse = mmap(NULL, (size_t)sparse_mib << 20, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (sparse == MAP_FAILED) {
			printf("FAIL allocate sparse %ld MiB\n", sparse_mib);
			return 1;
		}
		/* no THP, or one word would fill a 2 MiB page */
		madvise(sparse, (size_t)sparse_mib << 20, MADV_NOHUGEPAGE);
		for (i = 0; i < sparse_mib; i++)
			sparse[(size_t)i * (1 << 17)] = val(i, 0, 7);
	}
	printf("ready\n");
	for (t = 0; !ticks || t < ticks; t++) {
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		for (i = 0; i < 16; i++) {
			cursor = (cursor * 6364136223846793005ULL + 1442695040888963407ULL);
			p = (cursor >> 17) % npages;
			if (!check_page(p)) {
				printf("FAIL tick %ld page %zu\n", t, p);
				return 1;
			}
		}
		if (!check_sparse()) {
			printf("FAIL tick %ld sparse\n", t);
			return 1;
		}
		p = (size_t)t % npages;
		gen[p]++;
		fill_page(p);
		printf("tick %ld\n", t);
	}
	for (p = 0; p < npages; p++) {
		if (!check_page(p)) {
			printf("FAIL final page %zu\n", p);
			return 1;
		}
		sum = sum * 31 + mem[p * (PAGE / 8)];
	}
	printf("final %016llx\ndone\n", (unsigned long long)sum);
	return 0;
}
