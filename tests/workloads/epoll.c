// SPDX-License-Identifier: GPL-2.0
/*
 * epoll: interest lists, checked after restore (issue 14).
 *
 *   fd 10, 11  a pipe (read, write end), "hello" queued once fd 13 watches
 *   fd 12      eventfd, count 1
 *   fd 13      epoll A (EPOLL_CLOEXEC):
 *                tfd 12  EPOLLIN | EPOLLONESHOT  data 0x1212  fired: disarmed
 *                tfd 10  EPOLLIN | EPOLLET       data 0x1010  ready, not reported yet
 *                tfd 14  EPOLLIN                 data 0x1414  (epoll B)
 *                tfd 20  EPOLLIN                 data 0x2020  fd 20 was a dup of
 *                        fd 10, closed since: the registration lingers
 *   fd 14      epoll B (O_NONBLOCK):
 *                tfd 11  EPOLLOUT | EPOLLWAKEUP  data 0x1111
 *                tfd 12  EPOLLIN | EPOLLEXCLUSIVE data 0x2212
 * With --closed, A also watches fd 21, an eventfd (count 0, data 0x2121) that
 * the process closed and a child ("holder") still holds: the registration
 * lingers with its file open in no fd of the process, which restore cannot
 * recreate. With --fork a child inherits them all.
 *
 * Prints "parent ready pid N" (and "child ready pid N"), waits for --go FILE
 * to exist, then checks what epoll_wait() reports: A gives 0x1010, 0x1414 and
 * 0x2020 (IN) once, then 0x1414 and 0x2020 only (edge-triggered 0x1010); B gives 0x1111
 * (OUT) and 0x2212 (IN), every time; the ONESHOT registration stays silent
 * until EPOLL_CTL_MOD rearms it, then reports once. The child checks B only.
 * Prints PASS, or FAIL lines and exits 1.
 *
 * Usage: epoll --go FILE [--fork] [--closed] [--dir DIR (ignored)]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "selfcheck.h"


struct want {
	uint64_t data;
	uint32_t events;
};

static int place(int fd, int num)
{
	if (fd < 0 || dup3(fd, num, fcntl(fd, F_GETFD) & FD_CLOEXEC ? O_CLOEXEC : 0) != num)
		return -1;
	close(fd);
	return 0;
}

static int add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int by_data(const void *a, const void *b)
{
	const struct epoll_event *x = a, *y = b;

	return x->data.u64 < y->data.u64 ? -1 : x->data.u64 > y->data.u64;
}

/* epoll_wait(ep, ..., 0) reports exactly want[0..n) (sorted by data). */
static void expect(const char *what, int ep, const struct want *want, int n)
{
	struct epoll_event ev[16];
	int got, i;

	got = epoll_wait(ep, ev, 16, 0);
	if (got < 0) {
		CHECK(0, "%s: epoll_wait: %s", what, strerror(errno));
		return;
	}
	qsort(ev, got, sizeof(ev[0]), by_data);
	CHECK(got == n, "%s: %d events, want %d", what, got, n);
	for (i = 0; i < got && i < n; i++)
		CHECK(ev[i].data.u64 == want[i].data && ev[i].events == want[i].events,
		      "%s: event %d: data %llx events %x, want data %llx events %x", what, i,
		      (unsigned long long)ev[i].data.u64, ev[i].events,
		      (unsigned long long)want[i].data, want[i].events);
}

int main(int argc, char **argv)
{
	static const struct want b_all[] = { { 0x1111, EPOLLOUT }, { 0x2212, EPOLLIN } };
	static const struct want a_first[] = {
		{ 0x1010, EPOLLIN }, { 0x1414, EPOLLIN }, { 0x2020, EPOLLIN } };
	static const struct want a_lt[] = { { 0x1414, EPOLLIN }, { 0x2020, EPOLLIN } };
	static const struct want a_rearmed[] = {
		{ 0x1212, EPOLLIN }, { 0x1414, EPOLLIN }, { 0x2020, EPOLLIN } };
	bool do_fork = false, closed = false;
	struct epoll_event ev;
	const char *go = NULL;
	int i, p[2], status;
	pid_t child = 0, holder = 0;
	uint64_t v = 1;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--go") && i + 1 < argc)
			go = argv[++i];
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			i++;
		else if (!strcmp(argv[i], "--fork"))
			do_fork = true;
		else if (!strcmp(argv[i], "--closed"))
			closed = true;
	}
	if (!go) {
		fprintf(stderr, "usage: epoll --go FILE [--fork] [--closed]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (pipe(p) || place(p[0], 10) || place(p[1], 11) ||
	    place(eventfd(1, 0), 12) || place(epoll_create1(EPOLL_CLOEXEC), 13) ||
	    place(epoll_create1(0), 14) || fcntl(14, F_SETFL, O_NONBLOCK))
		return 2;
	/* The ONESHOT registration fires once: disarmed. */
	if (add(13, 12, EPOLLIN | EPOLLONESHOT, 0x1212) || epoll_wait(13, &ev, 1, 0) != 1 ||
	    ev.data.u64 != 0x1212)
		return 2;
	if (add(13, 10, EPOLLIN | EPOLLET, 0x1010) || add(13, 14, EPOLLIN, 0x1414) ||
	    add(14, 11, EPOLLOUT | EPOLLWAKEUP, 0x1111) ||
	    add(14, 12, EPOLLIN | EPOLLEXCLUSIVE, 0x2212))
		return 2;
	if (dup2(10, 20) != 20 || add(13, 20, EPOLLIN, 0x2020) || close(20))
		return 2;
	if (closed) {
		if (place(eventfd(0, 0), 21) || add(13, 21, EPOLLIN, 0x2121))
			return 2;
		holder = fork();
		if (holder < 0)
			return 2;
		if (holder == 0) {
			wait_go(go);
			_exit(0);
		}
		close(21);
	}
	if (write(11, "hello", 5) != 5)
		return 2;

	if (do_fork) {
		child = fork();
		if (child < 0)
			return 2;
		if (child == 0) {
			sc_child_ready(go);
			expect("child: epoll B", 14, b_all, 2);
			_exit(failed);
		}
	}
	sc_parent_ready(go, child);
	if (holder)
		waitpid(holder, &status, 0);
	CHECK(fcntl(13, F_GETFD) & FD_CLOEXEC, "fd 13: FD_CLOEXEC lost");
	CHECK(fcntl(14, F_GETFL) & O_NONBLOCK, "fd 14: O_NONBLOCK lost");
	expect("epoll A (first)", 13, a_first, 3);
	expect("epoll A (again)", 13, a_lt, 2);
	expect("epoll B", 14, b_all, 2);
	expect("epoll B (again)", 14, b_all, 2);
	/* Rearmed, the ONESHOT registration reports once. */
	ev.events = EPOLLIN | EPOLLONESHOT;
	ev.data.u64 = 0x1212;
	CHECK(!epoll_ctl(13, EPOLL_CTL_MOD, 12, &ev), "EPOLL_CTL_MOD fd 12: %s", strerror(errno));
	expect("epoll A (rearmed)", 13, a_rearmed, 3);
	expect("epoll A (fired)", 13, a_lt, 2);
	CHECK(read(10, &v, 5) == 5, "fd 10: the queued bytes");
	return sc_done();
}
