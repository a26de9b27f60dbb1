// SPDX-License-Identifier: GPL-2.0
/*
 * Eight threads, each keeping its own accumulators in SSE registers for the
 * whole of a long inner loop (xmm8..xmm11 never leave the registers inside
 * an inline asm loop), adding to a shared counter under a mutex after every
 * step. The odd threads sleep in futex waits between steps: threads 1, 3, 5
 * in pthread_cond_wait until thread i-1 has finished the same step, thread 7
 * in a raw FUTEX_WAIT woken by thread 6; thread 5 also sleeps in nanosleep.
 * The main thread sleeps in pthread_join (a futex on clear_child_tid).
 * Every thread checks at the end that its signal mask, its TLS variable (FS
 * base) and its TID are what they were.
 *
 * Usage: threads [--steps N] [--iters N] [--sleep-ms N] [--tids FILE]
 * Prints `t0 step K` as thread 0 goes (K = 0..steps-1), then one line per
 * thread and `total ...`, `PASS` (or `FAIL ...`). All deterministic: the
 * output equals that of any other run with the same arguments. --tids FILE
 * gets `PID TID0 .. TID7` once every thread runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 8

static int steps = 60;
static long iters = 200000;
static int sleep_ms = 2;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static uint64_t shared_counter;
static int done_step[NTHREADS];		/* under lock: steps finished by each thread */
static uint32_t futex_word;		/* steps finished by thread 6, for thread 7 */
static pid_t tids[NTHREADS];

static __thread uint64_t tls_tag;

struct result {
	uint64_t lo, hi;	/* the xmm accumulators, folded */
	uint64_t contributed;
	int ok;
	char why[128];
} results[NTHREADS];

static long futex(uint32_t *uaddr, int op, uint32_t val)
{
	return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

/*
 * One step: iters rounds of a two-lane xorshift in xmm8, summed into xmm9,
 * with xmm10 as a lane-wise counter added in and xmm11 the step constant.
 * The state lives in the registers for the whole loop; state[] only carries
 * it from one step to the next.
 */
static void sse_step(uint64_t state[4], long n)
{
	__asm__ volatile(
		"movdqu 0(%[s]), %%xmm8\n\t"
		"movdqu 16(%[s]), %%xmm9\n\t"
		"pcmpeqd %%xmm11, %%xmm11\n\t"
		"psrlq $63, %%xmm11\n\t"		/* {1, 1} */
		"pxor %%xmm10, %%xmm10\n\t"
		"1:\n\t"
		"movdqa %%xmm8, %%xmm12\n\t"
		"psllq $13, %%xmm12\n\t"
		"pxor %%xmm12, %%xmm8\n\t"
		"movdqa %%xmm8, %%xmm12\n\t"
		"psrlq $7, %%xmm12\n\t"
		"pxor %%xmm12, %%xmm8\n\t"
		"movdqa %%xmm8, %%xmm12\n\t"
		"psllq $17, %%xmm12\n\t"
		"pxor %%xmm12, %%xmm8\n\t"
		"paddq %%xmm11, %%xmm10\n\t"
		"paddq %%xmm8, %%xmm9\n\t"
		"paddq %%xmm10, %%xmm9\n\t"
		"dec %[n]\n\t"
		"jnz 1b\n\t"
		"movdqu %%xmm8, 0(%[s])\n\t"
		"movdqu %%xmm9, 16(%[s])\n\t"
		: [n] "+r"(n)
		: [s] "r"(state)
		: "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "memory", "cc");
}

static void sleep_a_bit(void)
{
	struct timespec ts = { 0, sleep_ms * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t state[4] = { 0x9e3779b97f4a7c15ULL * (id + 1), 0xbf58476d1ce4e5b9ULL ^ id,
			      0, 0 };
	struct result *res = &results[id];
	sigset_t mine, now;
	pid_t tid = syscall(SYS_gettid);
	int s;

	/* Each thread its own mask: SIGUSR1 + (SIGRTMIN + id). */
	sigemptyset(&mine);
	sigaddset(&mine, SIGUSR1);
	sigaddset(&mine, SIGRTMIN + id);
	pthread_sigmask(SIG_SETMASK, &mine, NULL);
	tls_tag = 0x1000 + id;

	pthread_mutex_lock(&lock);
	tids[id] = tid;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);

	for (s = 0; s < steps; s++) {
		/* Odd threads wait for their even neighbour to finish this step. */
		if (id == 7) {
			uint32_t seen;

			while ((seen = __atomic_load_n(&futex_word, __ATOMIC_ACQUIRE)) <=
			       (uint32_t)s)
				futex(&futex_word, FUTEX_WAIT_PRIVATE, seen);
		} else if (id & 1) {
			pthread_mutex_lock(&lock);
			while (done_step[id - 1] <= s)
				pthread_cond_wait(&cond, &lock);
			pthread_mutex_unlock(&lock);
		}
		if (id == 5)
			sleep_a_bit();

		sse_step(state, iters);

		pthread_mutex_lock(&lock);
		shared_counter += (state[2] ^ state[3]) & 0xffff;
		res->contributed += (state[2] ^ state[3]) & 0xffff;
		done_step[id] = s + 1;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
		if (id == 6) {
			__atomic_store_n(&futex_word, s + 1, __ATOMIC_RELEASE);
			futex(&futex_word, FUTEX_WAKE_PRIVATE, 1);
		}
		if (id == 0) {
			printf("t0 step %d\n", s);
			fflush(stdout);
		}
	}
	res->lo = state[0] ^ state[2];
	res->hi = state[1] ^ state[3];
	res->ok = 1;
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	if (!sigismember(&now, SIGUSR1) || !sigismember(&now, SIGRTMIN + id) ||
	    sigismember(&now, SIGUSR2) || sigismember(&now, SIGRTMIN + ((id + 1) % NTHREADS))) {
		res->ok = 0;
		snprintf(res->why, sizeof(res->why), "signal mask changed");
	}
	if (tls_tag != 0x1000u + id) {
		res->ok = 0;
		snprintf(res->why, sizeof(res->why), "TLS variable %#llx, not %#x",
			 (unsigned long long)tls_tag, 0x1000 + id);
	}
	if (syscall(SYS_gettid) != tid) {
		res->ok = 0;
		snprintf(res->why, sizeof(res->why), "TID %ld, was %d", syscall(SYS_gettid), tid);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *tid_file = NULL;
	pthread_t th[NTHREADS];
	uint64_t sum = 0, all_lo = 0;
	int i, bad = 0;
	pid_t pid = getpid();

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			iters = atol(argv[++i]);
		else if (!strcmp(argv[i], "--sleep-ms") && i + 1 < argc)
			sleep_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--tids") && i + 1 < argc)
			tid_file = argv[++i];
		else {
			fprintf(stderr, "usage: threads [--steps N] [--iters N] [--sleep-ms N] "
				"[--tids FILE]\n");
			return 2;
		}
	}
	if (steps < 1 || iters < 1)
		return 2;
	for (i = 0; i < NTHREADS; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i))
			return 1;
	pthread_mutex_lock(&lock);
	for (i = 0; i < NTHREADS; i++)
		while (!tids[i])
			pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	if (tid_file) {
		FILE *f = fopen(tid_file, "w");

		if (f) {
			fprintf(f, "%d", pid);
			for (i = 0; i < NTHREADS; i++)
				fprintf(f, " %d", tids[i]);
			fprintf(f, "\n");
			fclose(f);
		}
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < NTHREADS; i++) {
		printf("thread %d: %016llx %016llx contributed %llu%s%s\n", i,
		       (unsigned long long)results[i].lo, (unsigned long long)results[i].hi,
		       (unsigned long long)results[i].contributed, results[i].ok ? "" : " FAIL ",
		       results[i].why);
		sum += results[i].contributed;
		all_lo ^= results[i].lo;
		bad |= !results[i].ok;
	}
	printf("total %llu shared %llu xor %016llx\n", (unsigned long long)sum,
	       (unsigned long long)shared_counter, (unsigned long long)all_lo);
	if (sum != shared_counter)
		bad = 1;
	if (getpid() != pid)
		bad = 1;
	printf("%s\n", bad ? "FAIL" : "PASS");
	return bad;
}
