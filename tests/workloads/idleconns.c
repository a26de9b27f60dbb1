// SPDX-License-Identifier: GPL-2.0
/*
 * idleconns: N idle client connections to a redis server on loopback, for
 * scripts/bench-servers (it runs outside the checkpointed tree).
 *
 *   idleconns --port P --conns N
 *
 * Opens N connections to 127.0.0.1:P, sends PING on each and reads its
 * +PONG (so each is established and has been served once), prints
 * "ready N", then waits for a line on stdin (or SIGTERM). On "check" it
 * PINGs every connection again and prints "ok N" when all N answered, or
 * "FAIL conn I: WHY" for the first that did not. EOF ends it.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* PING on fd, expecting +PONG: NULL when answered, else what went wrong. */
static const char *ping(int fd)
{
	char buf[16];
	ssize_t n;
	size_t got = 0;

	if (send(fd, "PING\r\n", 6, MSG_NOSIGNAL) != 6)
		return "send failed";
	while (got < 7) {
		n = recv(fd, buf + got, 7 - got, 0);
		if (n <= 0)
			return n ? "recv failed or timed out" : "closed by the server";
		got += n;
	}
	return memcmp(buf, "+PONG\r\n", 7) ? "not +PONG" : NULL;
}

int main(int argc, char **argv)
{
	struct timeval tv = { .tv_sec = 60 };
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int port = 0, n = 0, *fds;
	char line[64];
	const char *why;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--conns"))
			n = atoi(argv[i + 1]);
	}
	if (port <= 0 || port > 65535 || n <= 0) {
		fprintf(stderr, "usage: idleconns --port P --conns N\n");
		return 2;
	}
	a.sin_port = htons(port);
	fds = calloc(n, sizeof(*fds));
	if (!fds)
		return 1;
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof(a))) {
			printf("FAIL conn %d: connect failed\n", i);
			return 1;
		}
		setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		why = ping(fds[i]);
		if (why) {
			printf("FAIL conn %d: %s\n", i, why);
			return 1;
		}
	}
	printf("ready %d\n", n);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		int bad = -1;

		why = NULL;
		for (int i = 0; i < n && !why; i++) {
			why = ping(fds[i]);
			bad = i;
		}
		if (why)
			printf("FAIL conn %d: %s\n", bad, why);
		else
			printf("ok %d\n", n);
		fflush(stdout);
	}
	return 0;
}
