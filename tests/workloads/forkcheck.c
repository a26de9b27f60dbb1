// SPDX-License-Identifier: GPL-2.0
/*
 * forkcheck: forks a child that checks memory it inherited.
 *
 * Usage: forkcheck --mib N
 * Fills N MiB of private anonymous memory with a pattern derived from each
 * word's index, prints "ready", then every 100 ms prints "tick I". On
 * SIGUSR1 it forks a child that checks every word of the region, prints
 * "child PID ok" or "child PID BAD at WORD", then sleeps until killed (its
 * pid stays visible as the parent's child). A lazily restored forkcheck
 * forks while its memory is still missing: the child's pages come from the
 * filler through the child's own userfaultfd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t want_fork;

static void on_usr1(int sig)
{
	(void)sig;
	want_fork = 1;
}

static uint64_t val(size_t i)
{
	uint64_t z = (uint64_t)i + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	size_t words, i;
	uint64_t *mem;
	long mib = 16, t;

	if (argc == 3 && !strcmp(argv[1], "--mib"))
		mib = atol(argv[2]);
	else if (argc != 1) {
		fprintf(stderr, "usage: forkcheck --mib N\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	words = (size_t)mib << 17;
	mem = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		printf("FAIL allocate\n");
		return 1;
	}
	for (i = 0; i < words; i++)
		mem[i] = val(i);
	sigaction(SIGUSR1, &sa, NULL);
	printf("ready\n");
	for (t = 0;; t++) {
		struct timespec ts = { 0, 100000000L };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		if (want_fork) {
			pid_t c;

			want_fork = 0;
			fflush(stdout);
			c = fork();
			if (c == 0) {
				for (i = 0; i < words; i++)
					if (mem[i] != val(i)) {
						printf("child %d BAD at %zu\n", getpid(), i);
						break;
					}
				if (i == words)
					printf("child %d ok\n", getpid());
				for (;;)
					pause();
			}
			if (c < 0)
				printf("FAIL fork\n");
		}
		printf("tick %ld\n", t);
	}
}
