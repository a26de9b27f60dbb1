// SPDX-License-Identifier: GPL-2.0
/*
 * counter: a slow, deterministic demo workload for amber.
 *
 * Usage: counter [STEPS [INTERVAL_MS]]   (defaults: 60 steps, 200 ms)
 *
 * Every INTERVAL_MS it advances a running checksum over a heap buffer, a stack variable and a
 * static one, and prints `step N sum S`; at the end `done: N steps, sum S`. The output only
 * depends on STEPS, so a run that was checkpointed, killed and restored must print exactly
 * what an uninterrupted run prints.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BUF_WORDS 4096

static uint64_t static_state = 0x9e3779b97f4a7c15ULL;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

int main(int argc, char **argv)
{
	long steps = argc > 1 ? strtol(argv[1], NULL, 10) : 60;
	long interval_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 200;
	struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
	uint64_t *buf = calloc(BUF_WORDS, sizeof(*buf));
	uint64_t sum = 0;

	if (!buf || steps < 0 || interval_ms < 0) {
		fprintf(stderr, "usage: counter [STEPS [INTERVAL_MS]]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long i = 1; i <= steps; i++) {
		buf[i % BUF_WORDS] += mix((uint64_t)i ^ static_state);
		static_state = mix(static_state + (uint64_t)i);
		sum = sum * 31 + buf[i % BUF_WORDS] + (static_state >> 7);
		printf("step %ld sum %016llx\n", i, (unsigned long long)sum);
		while (nanosleep(&ts, &ts))
			; /* EINTR: sleep out the rest */
		ts.tv_sec = interval_ms / 1000;
		ts.tv_nsec = (interval_ms % 1000) * 1000000L;
	}
	printf("done: %ld steps, sum %016llx\n", steps, (unsigned long long)sum);
	free(buf);
	return 0;
}
