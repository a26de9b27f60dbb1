/*
 * Process tree workload for smoke.sh (threads.sh):
 *   root
 *   +- a: setpgid(0, 0), has a child aa (sleeping)
 *   +- z: exits with status 7 at once (a zombie: root never reaps it)
 *   +- s: setsid(), has 2 threads
 * Prints "ready ROOT A AA Z S" once all are set up.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void *sleeper(void *a)
{
	for (;;)
		pause();
	return a;
}

int main(void)
{
	int p[2];
	pid_t a, aa = 0, z, s;
	pthread_t t;

	if (pipe(p))
		return 1;
	a = fork();
	if (!a) {
		setpgid(0, 0);
		aa = fork();
		if (!aa)
			for (;;)
				pause();
		if (write(p[1], &aa, sizeof(aa)) != sizeof(aa))
			return 1;
		for (;;)
			pause();
	}
	z = fork();
	if (!z)
		_exit(7);
	s = fork();
	if (!s) {
		setsid();
		pthread_create(&t, NULL, sleeper, NULL);
		for (;;)
			pause();
	}
	if (read(p[0], &aa, sizeof(aa)) != sizeof(aa))
		return 1;
	/* Let z become a zombie and s call setsid(). */
	usleep(200000);
	printf("ready %d %d %d %d %d\n", getpid(), a, aa, z, s);
	fflush(stdout);
	for (;;)
		pause();
}
