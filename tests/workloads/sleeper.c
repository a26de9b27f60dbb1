// SPDX-License-Identifier: GPL-2.0
/*
 * sleeper: a process blocked in a system call most of the time.
 *
 *   sleeper [sleep] [--ticks N] [--ms M]  sleep M ms (one nanosleep call) N
 *                                         times (0 = forever), print "tick I"
 *   sleeper read                          read lines from stdin, print
 *                                         "got LINE"; "quit" or EOF ends
 * Options: --open PATH keeps PATH open read-only (fd 3 and up),
 *          --socket keeps a unix socket open (fd 3 and up),
 *          --seccomp installs an allow-all seccomp filter,
 *          --thread starts a second thread that sleeps forever,
 *          --exit N exits with status N at the end instead of 0.
 *
 * SIGUSR1 has a handler without SA_RESTART, so a system call that was
 * interrupted and not transparently restarted shows up as EINTR, which the
 * workload reports as FAIL (exit 1). A sleep shorter than asked is a FAIL too.
 * The end prints "done" and exits 0 (or N).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_usr1(int sig)
{
	(void)sig;
}

static void *idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int do_sleep(long ticks, long ms)
{
	long i;

	for (i = 0; !ticks || i < ticks; i++) {
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
		long long t0 = mono_ns();

		if (nanosleep(&ts, NULL)) {
			printf("FAIL tick %ld: nanosleep: %s\n", i, strerror(errno));
			return 1;
		}
		if (mono_ns() - t0 < ms * 1000000LL) {
			printf("FAIL tick %ld: slept %lld ns of %ld ms\n", i, mono_ns() - t0, ms);
			return 1;
		}
		printf("tick %ld\n", i);
	}
	printf("done\n");
	return 0;
}

static int do_read(void)
{
	char buf[4096], line[4096];
	size_t used = 0;
	long n = 0;

	for (;;) {
		ssize_t r = read(0, buf, sizeof(buf));
		ssize_t i;

		if (r < 0) {
			printf("FAIL read: %s\n", strerror(errno));
			return 1;
		}
		if (r == 0) {
			printf("eof %ld\ndone\n", n);
			return 0;
		}
		for (i = 0; i < r; i++) {
			if (buf[i] != '\n') {
				if (used < sizeof(line) - 1)
					line[used++] = buf[i];
				continue;
			}
			line[used] = 0;
			used = 0;
			n++;
			if (!strcmp(line, "quit")) {
				printf("done\n");
				return 0;
			}
			printf("got %s\n", line);
		}
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	long ticks = 0, ms = 200;
	int reading = 0, status = 0, i;
	pthread_t th;

	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGUSR1, &sa, NULL);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "sleep")) {
			reading = 0;
		} else if (!strcmp(argv[i], "read")) {
			reading = 1;
		} else if (!strcmp(argv[i], "--ticks") && i + 1 < argc) {
			ticks = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--ms") && i + 1 < argc) {
			ms = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--open") && i + 1 < argc) {
			if (open(argv[++i], O_RDONLY) < 0) {
				printf("FAIL open %s: %s\n", argv[i], strerror(errno));
				return 1;
			}
		} else if (!strcmp(argv[i], "--socket")) {
			if (socket(AF_UNIX, SOCK_STREAM, 0) < 0)
				return 1;
		} else if (!strcmp(argv[i], "--exit") && i + 1 < argc) {
			status = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--seccomp")) {
			/* An allow-everything filter: the process is under seccomp all the same. */
			static struct sock_filter allow[] = {
				BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
			};
			struct sock_fprog prog = { .len = 1, .filter = allow };

			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
			    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
				return 1;
		} else if (!strcmp(argv[i], "--thread")) {
			if (pthread_create(&th, NULL, idle_thread, NULL))
				return 1;
		} else {
			fprintf(stderr, "usage: sleeper [sleep|read] [--ticks N] [--ms M] [--open PATH] [--socket] [--seccomp] [--thread] [--exit N]\n");
			return 2;
		}
	}
	printf("ready\n");
	i = reading ? do_read() : do_sleep(ticks, ms);
	return i ? i : status;
}
