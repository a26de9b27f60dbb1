/*
 * Multi-threaded workload for smoke.sh (threads.sh). Threads:
 *   spin:  a tight loop in user space with r12 = 0x5a5a5a5a5a5a (comm "spin")
 *   futex: blocked in FUTEX_WAIT forever (comm "futex")
 *   sig:   SIGUSR2 blocked, one SIGUSR2 sent to it alone, sleeping (comm "sig")
 * Prints "ready PID SPIN FUTEX SIG SPINADDR" (tids, address of the loop).
 * "mt spawn" also runs a thread that creates a new sleeping thread every
 * 50 us, up to 1000 (threads created while the process is being stopped).
 * "mt dirty DIR" instead runs two writer threads, one pinned to each CPU,
 * each writing its 512 pages in a loop forever (a pass counter in every
 * page), to check that dirty tracking catches writes from both CPUs.
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile int tids[3];
static int futex_word;
extern char spin_loop[];

static void *spin(void *a)
{
	prctl(PR_SET_NAME, "spin");
	tids[0] = gettid();
	asm volatile("mov $0x5a5a5a5a5a5a, %%r12\n"
		     ".globl spin_loop\n"
		     "spin_loop:\n"
		     "inc %%r13\n"
		     "jmp spin_loop\n" ::: "r12", "r13");
	return a;
}

static void *fut(void *a)
{
	prctl(PR_SET_NAME, "futex");
	tids[1] = gettid();
	for (;;)
		syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	return a;
}

static void *sig(void *a)
{
	sigset_t set;

	prctl(PR_SET_NAME, "sig");
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	tids[2] = gettid();
	for (;;)
		pause();
	return a;
}

static void *sleeper(void *a)
{
	for (;;)
		pause();
	return a;
}

static void *spawner(void *a)
{
	pthread_attr_t attr;
	pthread_t t;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 << 10);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (int i = 0; i < 1000; i++) {
		pthread_create(&t, &attr, sleeper, NULL);
		usleep(50);
	}
	return a;
}

#define DPAGES	512
static char *dregion[2];

static void *writer(void *a)
{
	long w = (long)a;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(w, &set);
	sched_setaffinity(0, sizeof(set), &set);
	for (uint64_t pass = 1;; pass++)
		for (int i = 0; i < DPAGES; i++)
			*(volatile uint64_t *)(dregion[w] + i * 4096UL + (pass % 512) * 8) = pass;
	return a;
}

int main(int argc, char **argv)
{
	pthread_t t;

	if (argc > 1 && !strcmp(argv[1], "dirty")) {
		for (int w = 0; w < 2; w++) {
			dregion[w] = mmap(NULL, DPAGES * 4096UL, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			memset(dregion[w], 1, DPAGES * 4096UL);
			pthread_create(&t, NULL, writer, (void *)(long)w);
		}
		printf("ready %d\n", getpid());
		fflush(stdout);
		for (;;)
			pause();
	}
	pthread_create(&t, NULL, spin, NULL);
	pthread_create(&t, NULL, fut, NULL);
	pthread_create(&t, NULL, sig, NULL);
	while (!tids[0] || !tids[1] || !tids[2])
		usleep(1000);
	usleep(100000);
	syscall(SYS_tgkill, getpid(), tids[2], SIGUSR2);
	if (argc > 1 && !strcmp(argv[1], "spawn"))
		pthread_create(&t, NULL, spawner, NULL);
	printf("ready %d %d %d %d %lx\n", getpid(), tids[0], tids[1], tids[2],
	       (unsigned long)spin_loop);
	fflush(stdout);
	for (;;)
		pause();
}
