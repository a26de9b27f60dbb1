/* Test workload: known memory layout, then sleeps in nanosleep. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
	size_t big = 64 << 20;
	char *p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < 256; i++)
		memset(p + i * 4096 * 7, (int)(i + 1), 4096);	/* 256 scattered pages */
	char *s = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < 4; i++)
		s[i * 8192] = 'S' + i;
	int fd = open("/tmp/wl.data", O_RDWR | O_CREAT | O_TRUNC, 0600);
	ftruncate(fd, 8 * 4096);
	char *f = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	volatile char c = f[0]; (void)c;		/* file page, not saved */
	f[3 * 4096] = 'F';				/* COW page, saved */
	char *n = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	n[4096] = 'N';
	mprotect(n, 4 * 4096, PROT_NONE);		/* data behind PROT_NONE */
	printf("ready %d\n", getpid());
	fflush(stdout);
	for (;;) {
		struct timespec ts = { 1000, 0 };
		nanosleep(&ts, NULL);
	}
}
