// SPDX-License-Identifier: GPL-2.0
/*
 * A tree of processes or a process of threads holding memory, for
 * scripts/bench-tree:
 *   treehog --procs N --threads T --mib M [--ms MS]
 * The root forks N-1 children (a flat tree of N processes); every process
 * fills M MiB of its own private memory with varied bytes and runs T
 * threads (the main one included). Then every thread sleeps MS ms (default
 * 200) in a loop, and the first thread of each process rewrites one word of
 * each of 16 pages per wake-up. The root prints `ready N processes T
 * threads M MiB` once every process is filled, then `tick K` at each of
 * its wake-ups.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int ms = 200;
static uint64_t *mem;
static size_t words;

static void nap(void)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void *sleeper(void *arg)
{
	for (;;)
		nap();
	return NULL;
}

static void fill(size_t mib, uint64_t seed)
{
	uint64_t x = seed | 1;
	size_t i;

	words = mib << 17;
	mem = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		exit(1);
	for (i = 0; i < words; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		mem[i] = x;
	}
}

static void run(int threads, int root)
{
	pthread_t t;
	long k;
	int i;

	for (i = 1; i < threads; i++)
		if (pthread_create(&t, NULL, sleeper, NULL))
			exit(1);
	for (k = 0;; k++) {
		nap();
		for (i = 0; i < 16 && words; i++)
			mem[((k * 16 + i) * 512) % words]++;
		if (root)
			printf("tick %ld\n", k);
	}
}

int main(int argc, char **argv)
{
	int procs = 1, threads = 1, i, p[2];
	size_t mib = 64;
	char c;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--procs"))
			procs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--mib"))
			mib = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--ms"))
			ms = atoi(argv[i + 1]);
		else
			break;
	}
	if (i != argc || procs < 1 || threads < 1 || ms < 1) {
		fprintf(stderr, "usage: treehog --procs N --threads T --mib M [--ms MS]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pipe(p))
		return 1;
	for (i = 1; i < procs; i++) {
		pid_t pid = fork();

		if (pid < 0)
			return 1;
		if (pid == 0) {
			close(p[0]);
			fill(mib, 0x9e3779b97f4a7c15ULL * (i + 1));
			if (write(p[1], "r", 1) != 1)
				_exit(1);
			close(p[1]);
			run(threads, 0);
		}
	}
	close(p[1]);
	fill(mib, 0x9e3779b97f4a7c15ULL);
	for (i = 1; i < procs; i++)
		if (read(p[0], &c, 1) != 1)
			return 1;
	close(p[0]);
	printf("ready %d processes %d threads %zu MiB\n", procs, threads, mib);
	run(threads, 1);
	return 0;
}
