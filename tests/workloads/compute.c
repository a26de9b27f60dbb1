// SPDX-License-Identifier: GPL-2.0
/*
 * compute: a long deterministic computation for `amber run` and `amber bench`.
 *
 * Usage: compute [--mib M=64] [--steps S=100] [--touch-kib K=256] [--work W=1]
 *                [--crash-at STEP] [--marker FILE] [--exit STATUS]
 *
 * Allocates M MiB of anonymous memory and fills it deterministically. Steps
 * are numbered 1..S; step N touches K KiB of the array at an offset drawn from
 * a xorshift generator seeded by N, running W rounds of integer arithmetic on
 * each touched 8-byte word, then prints "step N sum X" (X: checksum of the
 * touched words, hex) and flushes stdout, so the output grows as it runs.
 * After S steps it prints "done steps=S checksum=X" (X: checksum of the whole
 * array) and exits STATUS (default 0).
 *
 * --crash-at STEP dereferences NULL at the start of step STEP (SIGSEGV); with
 * --marker FILE only if FILE does not exist yet, creating it first (O_EXCL,
 * fsync'ed), so a restarted run gets past it; without --marker every time.
 *
 * The output is byte for byte the same for the same arguments; nothing goes
 * to stderr unless the arguments are wrong (exit 2) or allocation fails (1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Read through a volatile, so the compiler cannot turn the crash into a trap. */
static int *volatile null_ptr;

struct opts {
	long mib, steps, touch_kib, work, crash_at, exit_status;
	const char *marker;
};

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void usage(void)
{
	fprintf(stderr, "usage: compute [--mib M] [--steps S] [--touch-kib K] [--work W] "
		"[--crash-at STEP] [--marker FILE] [--exit STATUS]\n");
	exit(2);
}

static long num(const char *s, long min)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min)
		usage();
	return v;
}

static void parse(int argc, char **argv, struct opts *o)
{
	int i;

	*o = (struct opts){ .mib = 64, .steps = 100, .touch_kib = 256, .work = 1 };
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--mib"))
			o->mib = num(v, 1);
		else if (!strcmp(a, "--steps"))
			o->steps = num(v, 0);
		else if (!strcmp(a, "--touch-kib"))
			o->touch_kib = num(v, 1);
		else if (!strcmp(a, "--work"))
			o->work = num(v, 1);
		else if (!strcmp(a, "--crash-at"))
			o->crash_at = num(v, 1);
		else if (!strcmp(a, "--exit"))
			o->exit_status = num(v, 0);
		else if (!strcmp(a, "--marker"))
			o->marker = v;
		else
			usage();
	}
}

/* True the first time only (with a marker), or every time (without). */
static int should_crash(const char *marker)
{
	char *dir;
	int fd;

	if (!marker)
		return 1;
	fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return 0;
	fsync(fd);
	close(fd);
	/* The name must be durable too, or a crash of the machine forgets it. */
	dir = strdup(marker);
	fd = dir ? open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
	return 1;
}

static uint64_t step(uint64_t *mem, size_t nwords, size_t kwords, long n, long work)
{
	uint64_t x = mix((uint64_t)n) | 1, sum = 0;
	size_t off, j;
	long r;

	xorshift(&x);
	off = xorshift(&x) % (nwords - kwords + 1);
	for (j = off; j < off + kwords; j++) {
		uint64_t v = mem[j];

		for (r = 0; r < work; r++) {
			v = v * 6364136223846793005ULL + 1442695040888963407ULL + (uint64_t)n;
			v ^= v >> 29;
		}
		mem[j] = v;
		sum = (sum ^ v) * 0x100000001b3ULL;
	}
	return sum;
}

int main(int argc, char **argv)
{
	size_t nwords, kwords, i;
	uint64_t *mem, sum = 0;
	struct opts o;
	long n;

	parse(argc, argv, &o);
	nwords = (size_t)o.mib << 17;
	kwords = (size_t)o.touch_kib << 7;
	if (kwords > nwords)
		kwords = nwords;
	mem = mmap(NULL, nwords * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "compute: cannot allocate %ld MiB: %s\n", o.mib, strerror(errno));
		return 1;
	}
	for (i = 0; i < nwords; i++)
		mem[i] = mix(i + 0x9e3779b97f4a7c15ULL);

	for (n = 1; n <= o.steps; n++) {
		if (n == o.crash_at && should_crash(o.marker))
			*null_ptr = 1;	/* SIGSEGV */
		printf("step %ld sum %016llx\n", n,
		       (unsigned long long)step(mem, nwords, kwords, n, o.work));
		fflush(stdout);
	}
	for (i = 0; i < nwords; i++)
		sum = (sum ^ mem[i]) * 0x100000001b3ULL;
	printf("done steps=%ld checksum=%016llx\n", o.steps, (unsigned long long)sum);
	fflush(stdout);
	return o.exit_status;
}
