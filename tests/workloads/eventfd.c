// SPDX-License-Identifier: GPL-2.0
/*
 * eventfd: counters and semaphores, checked after restore.
 *
 *   fd 10  eventfd, counter mode, blocking, count 5
 *   fd 11  dup(10)
 *   fd 12  eventfd, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC, count 3
 *   fd 13  eventfd, EFD_NONBLOCK, count 0
 *   fd 14  eventfd, EFD_NONBLOCK, count 0x123456789 (above 32 bits)
 * With --fork a child inherits them all.
 *
 * Prints "parent ready pid N" (and "child ready pid N"), waits for --go FILE
 * to exist, then checks: with --fork the child reads 1 from fd 12 and exits;
 * the parent reads 1 from fd 12 until EAGAIN (3 reads in all), 5 from fd 11
 * (shared with 10), EAGAIN from fd 13, 0x123456789 from fd 14, the flags
 * and FD_CLOEXEC, and a write to fd 10 read back through fd 11. Prints PASS,
 * or FAIL lines and exits 1.
 *
 * Usage: eventfd --go FILE [--fork] [--dir DIR (ignored)]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "selfcheck.h"


/* read() of an eventfd: the value, or -errno. */
static long long rd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return -errno;
	return (long long)v;
}

static int place(int fd, int num)
{
	if (fd < 0 || dup3(fd, num, fcntl(fd, F_GETFD) & FD_CLOEXEC ? O_CLOEXEC : 0) != num)
		return -1;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *go = NULL;
	bool do_fork = false;
	uint64_t v;
	pid_t child = 0;
	int i, sem_reads = 3;
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
		fprintf(stderr, "usage: eventfd --go FILE [--fork]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	v = 5;
	if (place(eventfd(0, 0), 10) || write(10, &v, 8) != 8 || dup2(10, 11) != 11 ||
	    place(eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC), 12) ||
	    place(eventfd(0, EFD_NONBLOCK), 13) || place(eventfd(0, EFD_NONBLOCK), 14))
		return 2;
	v = 0x123456789ULL;
	if (write(14, &v, 8) != 8)
		return 2;

	if (do_fork) {
		child = fork();
		if (child < 0)
			return 2;
		if (child == 0) {
			sc_child_ready(go);
			got = rd(12);
			CHECK(got == 1, "fd 12: read %lld, want 1", got);
			_exit(failed);
		}
		sem_reads = 2;
	}
	sc_parent_ready(go, child);
	CHECK((fcntl(10, F_GETFL) & O_NONBLOCK) == 0, "fd 10: O_NONBLOCK set");
	CHECK(fcntl(12, F_GETFL) & O_NONBLOCK, "fd 12: O_NONBLOCK lost");
	CHECK(fcntl(12, F_GETFD) & FD_CLOEXEC, "fd 12: FD_CLOEXEC lost");
	CHECK(!(fcntl(10, F_GETFD) & FD_CLOEXEC), "fd 10: FD_CLOEXEC set");
	for (i = 0; i < sem_reads; i++) {
		got = rd(12);
		CHECK(got == 1, "fd 12: read %d gave %lld, want 1 (semaphore)", i, got);
	}
	got = rd(12);
	CHECK(got == -EAGAIN, "fd 12: read gave %lld once empty, want EAGAIN", got);
	got = rd(11);
	CHECK(got == 5, "fd 11: read %lld, want 5", got);
	got = rd(13);
	CHECK(got == -EAGAIN, "fd 13: read %lld, want EAGAIN", got);
	got = rd(14);
	CHECK(got == 0x123456789LL, "fd 14: read %llx, want 123456789", got);
	v = 2;
	CHECK(write(10, &v, 8) == 8, "fd 10: write");
	got = rd(11);
	CHECK(got == 2, "fd 11: read %lld after writing 2 to fd 10", got);
	return sc_done();
}
