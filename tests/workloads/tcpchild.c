// SPDX-License-Identifier: GPL-2.0
/*
 * A parent whose child holds a TCP socket listening on 127.0.0.1 (any port)
 * with a connection waiting in its accept queue that its client reset
 * (SO_LINGER 0, then close) before it was accepted: the waiting connection
 * is in state CLOSE, which restore cannot bring back, so amber must refuse
 * the tree by name (dropping the connection would hide the reset from the
 * program). Both tick forever:
 *   child socket fd N     once the socket is there
 *   parent tick K / child tick K   every --ms milliseconds (default 50)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void tick(const char *who, int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	long k;

	for (k = 0;; k++) {
		printf("%s tick %ld\n", who, k);
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (ms % 1000) * 1000000L;
	}
}

int main(int argc, char **argv)
{
	int ms = argc == 3 && !strcmp(argv[1], "--ms") ? atoi(argv[2]) : 50;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		int s = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
		socklen_t len = sizeof(a);

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (s < 0 || c < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 1) ||
		    getsockname(s, (struct sockaddr *)&a, &len) ||
		    connect(c, (struct sockaddr *)&a, sizeof(a))) {
			printf("child socket: %s\n", strerror(errno));
			return 1;
		}
		struct linger lg = { 1, 0 };

		/* The reset reaches the waiting connection before the first look. */
		if (setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) || close(c)) {
			printf("child socket: %s\n", strerror(errno));
			return 1;
		}
		usleep(200000);
		printf("child socket fd %d\n", s);
		tick("child", ms);
	}
	tick("parent", ms);
	return 0;
}
