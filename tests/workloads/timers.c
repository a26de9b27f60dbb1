// SPDX-License-Identifier: GPL-2.0
/*
 * Interval and POSIX timers across a checkpoint. Sets up, prints `ready`
 * and the timer ids, waits for --go FILE to exist (the test creates it
 * after the restore), then checks that every timer is still there:
 *   ITIMER_REAL 200 ms periodic (or alarm(100) with --alarm),
 *   ITIMER_VIRTUAL 100 s / 50 s, ITIMER_PROF 100 s;
 *   POSIX timers: 0 CLOCK_REALTIME SIGEV_SIGNAL 300 s one-shot,
 *   1 CLOCK_MONOTONIC 100 ms periodic, 2 CLOCK_PROCESS_CPUTIME_ID 500 s,
 *   3 CLOCK_MONOTONIC SIGEV_THREAD_ID to a worker thread, 150 ms periodic,
 *   4 CLOCK_MONOTONIC SIGEV_NONE 600 s, (5 created and deleted: a gap),
 *   6 CLOCK_BOOTTIME disarmed;
 * and that the periodic ones keep firing at about their period, to the
 * right thread with the right si_value. --fork: a child does the same with
 * --alarm, the parent reports both. Prints PASS or FAIL lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NT 7
static timer_t tid_of[NT];
static int ids[NT];
static volatile int n_alrm, n_t1, n_t3, bad_t3, bad_val;
static volatile pid_t worker_tid;
static int fails;
static const char *who = "parent";

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			printf("FAIL %s: ", who);                          \
			printf(__VA_ARGS__);                               \
			printf("\n");                                      \
			fails++;                                           \
		}                                                          \
	} while (0)

static void on_sig(int sig, siginfo_t *si, void *uc)
{
	if (sig == SIGALRM) {
		n_alrm++;
	} else if (sig == SIGRTMIN + 1) {
		n_t1++;
		if (si->si_value.sival_int != 0x1001)
			bad_val++;
	} else if (sig == SIGRTMIN + 3) {
		n_t3++;
		if (syscall(SYS_gettid) != worker_tid)
			bad_t3++;
		if (si->si_value.sival_int != 0x1003)
			bad_val++;
	}
}

static void *worker(void *arg)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN + 3);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	worker_tid = syscall(SYS_gettid);
	for (;;)
		pause();
	return NULL;
}

static void mk(int i, clockid_t clk, int notify, int sig, int val, long long ns, long long iv)
{
	struct sigevent ev = { 0 };
	struct itimerspec its = { 0 };

	ev.sigev_notify = notify;
	ev.sigev_signo = sig;
	ev.sigev_value.sival_int = val;
	if (notify == SIGEV_THREAD_ID)
		ev._sigev_un._tid = worker_tid;
	if (timer_create(clk, &ev, &tid_of[i])) {
		printf("FAIL %s: timer_create %d: %s\n", who, i, strerror(errno));
		exit(1);
	}
	ids[i] = (int)(long)tid_of[i];
	its.it_value.tv_sec = ns / 1000000000;
	its.it_value.tv_nsec = ns % 1000000000;
	its.it_interval.tv_sec = iv / 1000000000;
	its.it_interval.tv_nsec = iv % 1000000000;
	if (ns && timer_settime(tid_of[i], 0, &its, NULL)) {
		printf("FAIL %s: timer_settime %d: %s\n", who, i, strerror(errno));
		exit(1);
	}
}

static long long ts_ns(struct timespec t)
{
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long tv_ns(struct timeval t)
{
	return t.tv_sec * 1000000000LL + t.tv_usec * 1000LL;
}

static void sleep_ms(int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&t, &t) && errno == EINTR)
		;
}

static void setup(int alarm_mode)
{
	struct sigaction sa = { 0 };
	struct itimerval v = { 0 };
	pthread_t th;
	sigset_t s;

	sa.sa_sigaction = on_sig;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGRTMIN + 1, &sa, NULL);
	sigaction(SIGRTMIN + 3, &sa, NULL);
	/* The worker alone takes SIGRTMIN+3 (thread-directed anyway). */
	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN + 3);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	pthread_create(&th, NULL, worker, NULL);
	while (!worker_tid)
		sleep_ms(1);

	if (alarm_mode) {
		alarm(100);
	} else {
		v.it_value.tv_usec = 200000;
		v.it_interval.tv_usec = 200000;
		setitimer(ITIMER_REAL, &v, NULL);
	}
	v.it_value.tv_sec = 100;
	v.it_value.tv_usec = 0;
	v.it_interval.tv_sec = 50;
	v.it_interval.tv_usec = 0;
	setitimer(ITIMER_VIRTUAL, &v, NULL);
	v.it_interval.tv_sec = 0;
	setitimer(ITIMER_PROF, &v, NULL);

	mk(0, CLOCK_REALTIME, SIGEV_SIGNAL, SIGRTMIN, 0x1000, 300000000000LL, 0);
	mk(1, CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 1, 0x1001, 100000000LL, 100000000LL);
	mk(2, CLOCK_PROCESS_CPUTIME_ID, SIGEV_SIGNAL, SIGRTMIN + 2, 0x1002, 500000000000LL, 0);
	mk(3, CLOCK_MONOTONIC, SIGEV_THREAD_ID, SIGRTMIN + 3, 0x1003, 150000000LL, 150000000LL);
	mk(4, CLOCK_MONOTONIC, SIGEV_NONE, 0, 0x1004, 600000000000LL, 0);
	mk(5, CLOCK_MONOTONIC, SIGEV_NONE, 0, 0x1005, 0, 0);
	timer_delete(tid_of[5]);
	mk(6, CLOCK_BOOTTIME, SIGEV_SIGNAL, SIGRTMIN + 4, 0x1006, 0, 0);
}

static void check(int alarm_mode)
{
	static const long long want[NT][2] = {
		{ 300000000000LL, 0 }, { 100000000LL, 100000000LL }, { 500000000000LL, 0 },
		{ 150000000LL, 150000000LL }, { 600000000000LL, 0 }, { 0, 0 }, { 0, 0 },
	};
	struct itimerspec its;
	struct itimerval v;
	int a1, a3, i;

	for (i = 0; i < NT; i++) {
		int r = timer_gettime(tid_of[i], &its);

		if (i == 5) {
			CHECK(r && errno == EINVAL, "deleted timer id %d exists after restore", ids[i]);
			continue;
		}
		CHECK(!r, "timer %d (id %d): timer_gettime: %s", i, ids[i], strerror(errno));
		if (r)
			continue;
		CHECK(ts_ns(its.it_interval) == want[i][1], "timer %d interval %lld, want %lld", i,
		      ts_ns(its.it_interval), want[i][1]);
		if (want[i][0])
			CHECK(ts_ns(its.it_value) > 0 && ts_ns(its.it_value) <= want[i][0],
			      "timer %d left %lld, want (0, %lld]", i, ts_ns(its.it_value), want[i][0]);
		else
			CHECK(ts_ns(its.it_value) == 0, "timer %d left %lld, want disarmed", i,
			      ts_ns(its.it_value));
	}
	/* A new timer gets the next id after the last one created. */
	{
		timer_t t;
		struct sigevent ev = { .sigev_notify = SIGEV_NONE };

		CHECK(!timer_create(CLOCK_MONOTONIC, &ev, &t) && (int)(long)t == ids[6] + 1,
		      "new timer id %d, want %d", (int)(long)t, ids[6] + 1);
		timer_delete(t);
	}

	getitimer(ITIMER_VIRTUAL, &v);
	CHECK(tv_ns(v.it_value) > 0 && tv_ns(v.it_value) <= 100010000000LL &&
	      tv_ns(v.it_interval) == 50000000000LL, "ITIMER_VIRTUAL %lld/%lld",
	      tv_ns(v.it_value), tv_ns(v.it_interval));
	getitimer(ITIMER_PROF, &v);
	CHECK(tv_ns(v.it_value) > 0 && tv_ns(v.it_value) <= 100010000000LL &&
	      !tv_ns(v.it_interval), "ITIMER_PROF %lld/%lld", tv_ns(v.it_value),
	      tv_ns(v.it_interval));
	getitimer(ITIMER_REAL, &v);
	if (alarm_mode) {
		unsigned int left = alarm(0);

		CHECK(left >= 1 && left <= 100, "alarm() left %u, want 1..100", left);
		alarm(left);
	} else {
		CHECK(tv_ns(v.it_value) > 0 && tv_ns(v.it_value) <= 200000000LL &&
		      tv_ns(v.it_interval) == 200000000LL, "ITIMER_REAL %lld/%lld",
		      tv_ns(v.it_value), tv_ns(v.it_interval));
	}

	/* The periodic ones keep firing: 1 s is 5 SIGALRM, 10 t1, 6 t3. */
	n_alrm = n_t1 = n_t3 = 0;
	sleep_ms(1000);
	a1 = n_t1;
	a3 = n_t3;
	if (!alarm_mode)
		CHECK(n_alrm >= 3 && n_alrm <= 7, "%d SIGALRM in 1 s, want about 5", n_alrm);
	else
		CHECK(n_alrm == 0, "%d SIGALRM in 1 s from alarm(100)", n_alrm);
	CHECK(a1 >= 6 && a1 <= 13, "timer 1 fired %d times in 1 s, want about 10", a1);
	CHECK(a3 >= 3 && a3 <= 9, "timer 3 fired %d times in 1 s, want about 6", a3);
	CHECK(!bad_t3, "timer 3 signal delivered %d times to another thread", bad_t3);
	CHECK(!bad_val, "%d timer signals with a wrong si_value", bad_val);
}

int main(int argc, char **argv)
{
	const char *go = NULL;
	int alarm_mode = 0, fork_mode = 0, i, status;
	pid_t child = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--go") && i + 1 < argc)
			go = argv[++i];
		else if (!strcmp(argv[i], "--alarm"))
			alarm_mode = 1;
		else if (!strcmp(argv[i], "--fork"))
			fork_mode = 1;
	}
	if (!go) {
		fprintf(stderr, "usage: timers --go FILE [--alarm] [--fork]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (fork_mode) {
		child = fork();
		if (child == 0) {
			who = "child";
			alarm_mode = 1;
		}
	}
	setup(alarm_mode);
	printf("%s ready pid %d ids", who, getpid());
	for (i = 0; i < NT; i++)
		printf(" %d", ids[i]);
	printf("\n");
	while (access(go, F_OK))
		sleep_ms(20);
	check(alarm_mode);
	if (child > 0) {
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
		CHECK(WIFEXITED(status) && !WEXITSTATUS(status), "child status %#x", status);
	}
	if (child == 0 && fork_mode)
		return fails ? 1 : 0;
	printf(fails ? "FAIL\n" : "PASS\n");
	return fails ? 1 : 0;
}
