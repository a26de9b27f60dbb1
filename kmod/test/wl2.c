/* Many VMAs, many fds, pending signals, a handler, sigaltstack; sleeps in read(). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void h(int s) { (void)s; }

int main(int argc, char **argv)
{
	int nv = argc > 1 ? atoi(argv[1]) : 2000, nf = argc > 2 ? atoi(argv[2]) : 1000;
	char *p = mmap(NULL, (size_t)nv * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < nv; i++) {
		p[(size_t)i * 4096] = (char)i;
		if (i & 1) mprotect(p + (size_t)i * 4096, 4096, PROT_READ);
	}
	for (int i = 0; i < nf; i++)
		if (open("/dev/null", O_RDONLY | (i & 1 ? O_CLOEXEC : 0)) < 0) { perror("open"); break; }
	struct sigaction sa = { .sa_handler = h, .sa_flags = SA_RESTART };
	sigaction(SIGUSR2, &sa, NULL);
	sigset_t set; sigemptyset(&set); sigaddset(&set, SIGUSR1); sigaddset(&set, SIGRTMIN + 1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	raise(SIGUSR1);
	for (int i = 0; i < 3; i++) { union sigval v = { .sival_int = 42 + i }; sigqueue(getpid(), SIGRTMIN + 1, v); }
	stack_t ss = { .ss_sp = malloc(65536), .ss_size = 65536 };
	sigaltstack(&ss, NULL);
	int pf[2]; pipe(pf);
	printf("ready %d\n", getpid()); fflush(stdout);
	char c; read(pf[0], &c, 1);
	return 0;
}
