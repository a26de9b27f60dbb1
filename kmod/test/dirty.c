/*
 * Dirty-tracking workload for smoke.sh. Maps a 16 MiB region (2 MiB aligned,
 * the first 4 MiB with MADV_HUGEPAGE) and an 8 MiB one for VMA changes,
 * writes every page, prints "ready PID BASE NPAGES", then on each SIGUSR1
 * runs one round: writes a known set of pages, each page always from the
 * same CPU (sched_setaffinity moves the process between the CPUs, so
 * writable TLB entries from before a checkpoint exist on both), lists the
 * written pages' addresses in DIR/written.N and prints "round N".
 * Rounds also change mappings: mprotect, munmap + mmap, mremap of a 2 MiB
 * aligned block (page tables moved whole), MADV_DONTNEED.
 *
 * "dirty spin" instead writes 64 pages in a tight loop forever, hopping
 * between the CPUs every few thousand passes: a checkpoint stops it in the
 * middle of writing, and a write right after it resumes (through a TLB
 * entry that may predate the write-protection) must still be caught.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG	4096UL
#define MB	(1UL << 20)
#define NPAGES	4096UL		/* 16 MiB main region */

static char *map_aligned(size_t len)
{
	char *p = mmap(NULL, len + 2 * MB, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	a = (char *)(((uintptr_t)p + 2 * MB - 1) & ~(2 * MB - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + len, p + len + 2 * MB - (a + len));
	return a;
}

static int ncpus;

static void on_cpu(int cpu)
{
	cpu_set_t set;

	if (ncpus < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu % ncpus, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void stamp(char *page, unsigned int round, unsigned long i)
{
	uint64_t v = (uint64_t)round << 32 | i;

	memcpy(page + (i * 8) % PG, &v, sizeof(v));
	page[PG - 1] = (char)(round + 1);
}

static void spin(void)
{
	char *p = map_aligned(64 * PG);
	unsigned long pass, i;

	for (i = 0; i < 64; i++)
		stamp(p + i * PG, 0, i);
	printf("ready %d %lx 64\n", getpid(), (unsigned long)p);
	fflush(stdout);
	for (pass = 1;; pass++) {
		if (pass % 4096 == 0)
			on_cpu(pass / 4096);
		for (i = 0; i < 64; i++)
			*(volatile unsigned long *)(p + i * PG + 64) = pass;
	}
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	char *m, *r2, *r3;
	sigset_t set;
	unsigned int round;
	unsigned long i;

	ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (!strcmp(dir, "spin"))
		spin();
	m = map_aligned(NPAGES * PG);
	r2 = map_aligned(8 * MB);
	r3 = map_aligned(4 * MB);	/* mremap destination */
	madvise(m, 4 * MB, MADV_HUGEPAGE);
	madvise(m + 4 * MB, NPAGES * PG - 4 * MB, MADV_NOHUGEPAGE);
	madvise(r2, 8 * MB, MADV_NOHUGEPAGE);	/* page tables, not huge PMDs */
	munmap(r3, 4 * MB);
	for (i = 0; i < NPAGES; i++) {
		if (i % 16 == 0)
			on_cpu(i / 16);
		stamp(m + i * PG, 0, i);
	}
	for (i = 0; i < 8 * MB / PG; i++)
		stamp(r2 + i * PG, 0, i);

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d %lx %lu\n", getpid(), (unsigned long)m, NPAGES);

	for (round = 1;; round++) {
		char path[256];
		FILE *f;
		int sig;

		sigwait(&set, &sig);
		snprintf(path, sizeof(path), "%s/written.%u", dir, round);
		f = fopen(path, "w");
		if (round == 5) {
			/* Dropped: zeros, listed nowhere, unless written below. */
			madvise(m + 100 * PG, 10 * PG, MADV_DONTNEED);
			madvise(m + 5 * MB, 2 * MB, MADV_DONTNEED);
		}
		/* Pages i % 7 == 0 every round, plus a fifth that moves. */
		for (i = 0; i < NPAGES; i++) {
			if (i % 16 == 0)
				on_cpu(i / 16);
			if (i % 7 && i % 5 != round % 5)
				continue;
			stamp(m + i * PG, round, i);
			fprintf(f, "%lx\n", (unsigned long)(m + i * PG));
		}
		switch (round) {
		case 1:
			mprotect(r2, MB, PROT_READ);
			break;
		case 2:
			mprotect(r2, MB, PROT_READ | PROT_WRITE);
			stamp(r2 + 3 * PG, round, 3);
			fprintf(f, "%lx\n", (unsigned long)(r2 + 3 * PG));
			break;
		case 3:
			mmap(r2 + MB, MB, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			stamp(r2 + MB + 5 * PG, round, 5);
			fprintf(f, "%lx\n", (unsigned long)(r2 + MB + 5 * PG));
			break;
		case 4:
			/* 2 MiB aligned at both ends: page tables move whole. */
			if (mremap(r2 + 4 * MB, 4 * MB, 4 * MB, MREMAP_MAYMOVE | MREMAP_FIXED,
				   r3) == MAP_FAILED)
				perror("mremap");
			break;
		case 6:
			/* And back to where it was: content moved again. */
			if (mremap(r3, 4 * MB, 4 * MB, MREMAP_MAYMOVE | MREMAP_FIXED,
				   r2 + 4 * MB) == MAP_FAILED)
				perror("mremap");
			break;
		}
		fclose(f);
		printf("round %u\n", round);
	}
}
