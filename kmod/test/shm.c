/* Shared anonymous memory written only by the parent; the child is the target. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void)
{
	char *s = mmap(NULL, 64 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t c = fork();
	if (c == 0) {
		for (;;)
			pause();
	}
	for (int i = 10; i < 20; i++)
		memset(s + i * 4096, 'a' + i, 4096);
	printf("ready %d\n", c);
	fflush(stdout);
	for (;;)
		pause();
}
