// SPDX-License-Identifier: GPL-2.0
/*
 * The three stages of a shell pipeline, one binary:
 *   pipeline produce N       N numbered lines of pseudo-random text, as fast as the pipe takes
 *   pipeline transform       each line: its number, a 64-bit hash of it, the text reversed
 *   pipeline consume [--delay-ms D] [--chunk B]
 *                            copies stdin to stdout B bytes (default 4096) at a time with a
 *                            D ms pause (default 10) after each, then prints
 *                            `consumed L lines, B bytes, hash H` and PASS if the line
 *                            numbers were 0..N-1 in order, else FAIL.
 * As `sh -c 'pipeline produce N | pipeline transform | pipeline consume > out'`
 * the slow consumer keeps both pipes full: bytes are in flight in both at
 * any moment. The output depends only on N.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t fnv(const char *s, size_t n, uint64_t h)
{
	while (n--) {
		h ^= (unsigned char)*s++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static int write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= w;
	}
	return 0;
}

static int produce(long n)
{
	static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	uint64_t x = 88172645463325252ULL;
	char line[160];
	long i;

	for (i = 0; i < n; i++) {
		int len = snprintf(line, sizeof(line), "%ld ", i), k, words;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		words = 20 + x % 60;
		for (k = 0; k < words; k++)
			line[len++] = alpha[(x >> (k % 58)) % 36];
		line[len++] = '\n';
		if (write_all(1, line, len))
			return 1;
	}
	return 0;
}

static int transform(void)
{
	char *line = NULL, out[512];
	size_t cap = 0;
	ssize_t len;

	/* stdio on both sides: the pipe sees 4 KiB writes */
	while ((len = getline(&line, &cap, stdin)) > 0) {
		char *sp = strchr(line, ' ');
		long num = atol(line);
		int o, k;

		if (!sp || line[len - 1] != '\n')
			return 1;
		o = snprintf(out, sizeof(out), "%ld %016llx ", num,
			     (unsigned long long)fnv(line, len, 0xcbf29ce484222325ULL));
		for (k = len - 2; k > sp - line && o < (int)sizeof(out) - 2; k--)
			out[o++] = line[k];
		out[o++] = '\n';
		fwrite(out, 1, o, stdout);
	}
	free(line);
	return fflush(stdout) ? 1 : 0;
}

static int consume(int delay_ms, size_t chunk)
{
	char *buf = malloc(chunk), *lbuf = malloc(1024);
	uint64_t hash = 0xcbf29ce484222325ULL;
	long lines = 0, expect = 0, bytes = 0;
	size_t lpos = 0;
	int bad = 0;
	ssize_t n;

	if (!buf || !lbuf)
		return 1;
	for (;;) {
		struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };

		n = read(0, buf, chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (write_all(1, buf, n))
			return 1;
		hash = fnv(buf, n, hash);
		bytes += n;
		for (ssize_t i = 0; i < n; i++) {
			if (lpos < 1023)
				lbuf[lpos++] = buf[i];
			if (buf[i] != '\n')
				continue;
			lbuf[lpos] = 0;
			if (atol(lbuf) != expect)
				bad = 1;
			expect++;
			lines++;
			lpos = 0;
		}
		while (delay_ms && nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	if (n < 0 || lpos)
		bad = 1;
	printf("consumed %ld lines, %ld bytes, hash %016llx\n%s\n", lines, bytes,
	       (unsigned long long)hash, bad ? "FAIL" : "PASS");
	return bad;
}

int main(int argc, char **argv)
{
	int delay_ms = 10, i;
	size_t chunk = 4096;

	if (argc >= 3 && !strcmp(argv[1], "produce"))
		return produce(atol(argv[2]));
	if (argc == 2 && !strcmp(argv[1], "transform"))
		return transform();
	if (argc >= 2 && !strcmp(argv[1], "consume")) {
		for (i = 2; i + 1 < argc; i += 2) {
			if (!strcmp(argv[i], "--delay-ms"))
				delay_ms = atoi(argv[i + 1]);
			else if (!strcmp(argv[i], "--chunk"))
				chunk = strtoul(argv[i + 1], NULL, 10);
			else
				return 2;
		}
		if (!chunk)
			return 2;
		return consume(delay_ms, chunk);
	}
	fprintf(stderr, "usage: pipeline produce N | pipeline transform | "
		"pipeline consume [--delay-ms D] [--chunk B]\n");
	return 2;
}
