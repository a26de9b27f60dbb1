// SPDX-License-Identifier: GPL-2.0
/*
 * timerfd and signalfd (issue 14), checked after restore.
 *
 *   fd 10  timerfd CLOCK_MONOTONIC, O_NONBLOCK, periodic every 300 ms,
 *          expired and not read at the checkpoint
 *   fd 11  timerfd CLOCK_MONOTONIC, one-shot, relative, 15 s
 *   fd 12  timerfd CLOCK_REALTIME, O_NONBLOCK, fired once, disarmed, 7 ticks
 *          not read (TFD_IOC_SET_TICKS)
 *   fd 13  timerfd CLOCK_BOOTTIME, O_CLOEXEC, never armed
 *   fd 14  timerfd CLOCK_REALTIME, TFD_TIMER_ABSTIME | CANCEL_ON_SET, at
 *          start + 600 s
 *   fd 15  signalfd for SIGUSR1 and SIGRTMIN+2, SFD_NONBLOCK, both blocked
 * With --fork a child inherits them all and reads the 7 ticks of fd 12.
 *
 * Prints "parent ready pid N" (and "child ready pid N"), waits for --go FILE
 * to exist, then checks: fd 10 has ticks to read, then fires every 300 ms;
 * fd 11 is armed and fires once at about the time it says is left, then is
 * disarmed; fd 12 reads 7 (or EAGAIN in the parent once the child read
 * them); fd 13 stays disarmed; fd 14 keeps its absolute expiry and flags;
 * fd 15 reads a SIGUSR1 raised after the restore, which stays blocked.
 * Prints PASS, or FAIL lines and exits 1.
 *
 * Usage: eventfds --go FILE [--fork] [--dir DIR (ignored)]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "selfcheck.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

#define PERIOD_MS	300
#define ONESHOT_S	15
#define ABS_S		600


static long long now_ns(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long ts_ns(struct timespec t)
{
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* read() of a timerfd: the ticks, or -errno. */
static long long rd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return -errno;
	return (long long)v;
}

/* Waits up to ms for fd to be readable: 1, 0 on timeout. */
static int readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static int place(int fd, int num)
{
	if (fd < 0 || dup3(fd, num, fcntl(fd, F_GETFD) & FD_CLOEXEC ? O_CLOEXEC : 0) != num)
		return -1;
	close(fd);
	return 0;
}

static int arm(int fd, int flags, long long value_ns, long long interval_ns)
{
	struct itimerspec its = {
		.it_value = { value_ns / 1000000000LL, value_ns % 1000000000LL },
		.it_interval = { interval_ns / 1000000000LL, interval_ns % 1000000000LL },
	};

	return timerfd_settime(fd, flags, &its, NULL);
}

static long long abs_expiry;	/* fd 14, CLOCK_REALTIME ns */

static int setup(void)
{
	uint64_t ticks = 7;
	sigset_t set;

	if (place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 10) ||
	    arm(10, 0, 1000000, PERIOD_MS * 1000000LL) || !readable(10, 5000))
		return -1;
	if (place(timerfd_create(CLOCK_MONOTONIC, 0), 11) ||
	    arm(11, 0, ONESHOT_S * 1000000000LL, 0))
		return -1;
	if (place(timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK), 12) ||
	    arm(12, 0, 1000000, 0) || !readable(12, 5000) ||
	    ioctl(12, TFD_IOC_SET_TICKS, &ticks))
		return -1;
	if (place(timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC), 13))
		return -1;
	abs_expiry = now_ns(CLOCK_REALTIME) + ABS_S * 1000000000LL;
	if (place(timerfd_create(CLOCK_REALTIME, 0), 14) ||
	    arm(14, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, abs_expiry, 0))
		return -1;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGRTMIN + 2);
	if (sigprocmask(SIG_BLOCK, &set, NULL) ||
	    place(signalfd(-1, &set, SFD_NONBLOCK), 15))
		return -1;
	return 0;
}

static void check_periodic(void)
{
	long long got, t0, t1;

	CHECK(fcntl(10, F_GETFL) & O_NONBLOCK, "fd 10: O_NONBLOCK lost");
	got = rd(10);
	CHECK(got >= 1, "fd 10: read %lld, want unread ticks", got);
	/* two more expirations, PERIOD_MS apart */
	CHECK(readable(10, 5000), "fd 10: did not fire again");
	got = rd(10);
	t0 = now_ns(CLOCK_MONOTONIC);
	CHECK(got >= 1, "fd 10: read %lld", got);
	CHECK(readable(10, 5000), "fd 10: did not fire a third time");
	got = rd(10);
	t1 = now_ns(CLOCK_MONOTONIC);
	CHECK(got == 1, "fd 10: read %lld, want 1", got);
	CHECK(t1 - t0 > (PERIOD_MS - 100) * 1000000LL && t1 - t0 < (PERIOD_MS + 250) * 1000000LL,
	      "fd 10: fired %lld ms apart, want %d", (t1 - t0) / 1000000, PERIOD_MS);
}

static void check_oneshot(void)
{
	struct itimerspec its;
	long long left, t0, late, got;

	CHECK(!timerfd_gettime(11, &its), "fd 11: timerfd_gettime");
	left = ts_ns(its.it_value);
	t0 = now_ns(CLOCK_MONOTONIC);
	CHECK(left > 0 && left <= ONESHOT_S * 1000000000LL, "fd 11: %lld ns left", left);
	CHECK(ts_ns(its.it_interval) == 0, "fd 11: an interval");
	if (left <= 0)
		return;
	CHECK(readable(11, (int)(left / 1000000) + 2000), "fd 11: did not fire");
	late = now_ns(CLOCK_MONOTONIC) - t0 - left;
	CHECK(late > -20000000LL && late < 1000000000LL, "fd 11: fired %lld ms off", late / 1000000);
	got = rd(11);
	CHECK(got == 1, "fd 11: read %lld, want 1", got);
	CHECK(!timerfd_gettime(11, &its) && !ts_ns(its.it_value), "fd 11: still armed");
	CHECK(!readable(11, 300), "fd 11: fired again");
}

static void check_others(bool child_read)
{
	struct signalfd_siginfo si;
	struct itimerspec its;
	long long got, expiry;
	sigset_t cur;

	got = rd(12);
	if (child_read)
		CHECK(got == -EAGAIN, "fd 12: read %lld after the child read it, want EAGAIN", got);
	else
		CHECK(got == 7, "fd 12: read %lld, want 7", got);
	CHECK(!timerfd_gettime(12, &its) && !ts_ns(its.it_value), "fd 12: armed");

	CHECK(fcntl(13, F_GETFD) & FD_CLOEXEC, "fd 13: FD_CLOEXEC lost");
	CHECK(!timerfd_gettime(13, &its) && !ts_ns(its.it_value) && !ts_ns(its.it_interval),
	      "fd 13: armed");
	CHECK(!readable(13, 300), "fd 13: fired");

	CHECK(!timerfd_gettime(14, &its), "fd 14: timerfd_gettime");
	expiry = now_ns(CLOCK_REALTIME) + ts_ns(its.it_value);
	CHECK(llabs(expiry - abs_expiry) < 200000000LL,
	      "fd 14: expires %lld ms from where it did", (expiry - abs_expiry) / 1000000);

	CHECK(!sigprocmask(SIG_BLOCK, NULL, &cur) && sigismember(&cur, SIGUSR1) &&
	      sigismember(&cur, SIGRTMIN + 2), "SIGUSR1 or SIGRTMIN+2 no longer blocked");
	got = read(15, &si, sizeof(si));
	CHECK(got < 0 && errno == EAGAIN, "fd 15: read %lld before any signal", got);
	kill(getpid(), SIGUSR1);
	got = read(15, &si, sizeof(si));
	CHECK(got == sizeof(si) && si.ssi_signo == SIGUSR1, "fd 15: read %lld, signal %u", got,
	      si.ssi_signo);
	kill(getpid(), SIGRTMIN + 2);
	got = read(15, &si, sizeof(si));
	CHECK(got == sizeof(si) && (int)si.ssi_signo == SIGRTMIN + 2,
	      "fd 15: read %lld, signal %u, want SIGRTMIN+2", got, si.ssi_signo);
}

int main(int argc, char **argv)
{
	const char *go = NULL;
	bool do_fork = false;
	pid_t child = 0;
	int i;
	long long got;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--go") && i + 1 < argc)
			go = argv[++i];
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			i++;
		else if (!strcmp(argv[i], "--fork"))
			do_fork = true;
	}
	if (!go) {
		fprintf(stderr, "usage: eventfds --go FILE [--fork]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (setup()) {
		perror("setup");
		return 2;
	}
	if (do_fork) {
		child = fork();
		if (child < 0)
			return 2;
		if (child == 0) {
			sc_child_ready(go);
			got = rd(12);
			CHECK(got == 7, "fd 12: read %lld, want 7", got);
			_exit(failed);
		}
	}
	sc_parent_ready(go, child);
	check_periodic();
	check_others(child != 0);
	check_oneshot();
	return sc_done();
}
