// SPDX-License-Identifier: GPL-2.0
/*
 * counter: a slow, deterministic demo workload for amber.
 *
 * Usage: counter [STEPS [INTERVAL_MS [MARKER_FILE]]]   (defaults: 60 steps, 200 ms)
 *
 * Every INTERVAL_MS it advances a running checksum over a heap buffer, a stack variable and a
 * static one, and prints `step N sum S`; at the end `done: N steps, sum S`. The output only
 * depends on STEPS, so a run that was checkpointed, killed and restored must print exactly
 * what an uninterrupted run prints.
 *
 * With MARKER_FILE, each step also appends `BOOT_ID N` to that file, opened and closed around
 * the write (no descriptor of it stays open to be checkpointed), BOOT_ID being the running
 * kernel's: on a file two machines share, the lines show which machine ran each step, in the
 * order they ran (a fenced marker for split-brain tests).
 */
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUF_WORDS 4096

static uint64_t static_state = 0x9e3779b97f4a7c15ULL;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static void mark(const char *path, long step)
{
	char id[64] = "?", line[128];
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, id, sizeof(id) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n > 0)
		id[strcspn(id, "\n")] = 0;
	n = snprintf(line, sizeof(line), "%s %ld\n", id, step);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, line, (size_t)n) != n)
			perror(path);
		close(fd);
	}
}

int main(int argc, char **argv)
{
	long steps = argc > 1 ? strtol(argv[1], NULL, 10) : 60;
	long interval_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 200;
	const char *marker = argc > 3 ? argv[3] : NULL;
	struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
	uint64_t *buf = calloc(BUF_WORDS, sizeof(*buf));
	uint64_t sum = 0;

	if (!buf || steps < 0 || interval_ms < 0) {
		fprintf(stderr, "usage: counter [STEPS [INTERVAL_MS [MARKER_FILE]]]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long i = 1; i <= steps; i++) {
		buf[i % BUF_WORDS] += mix((uint64_t)i ^ static_state);
		static_state = mix(static_state + (uint64_t)i);
		sum = sum * 31 + buf[i % BUF_WORDS] + (static_state >> 7);
		printf("step %ld sum %016llx\n", i, (unsigned long long)sum);
		if (marker)
			mark(marker, i);
		while (nanosleep(&ts, &ts))
			; /* EINTR: sleep out the rest */
		ts.tv_sec = interval_ms / 1000;
		ts.tv_nsec = (interval_ms % 1000) * 1000000L;
	}
	printf("done: %ld steps, sum %016llx\n", steps, (unsigned long long)sum);
	free(buf);
	return 0;
}
