/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The protocol of the self-checking workloads (ghost.c, eventfd.c,
 * eventfds.c, epoll.c; run by tests/lib/selfcheck.h): each process sets its
 * state up, prints "parent ready pid N" (a --fork child "child ready pid
 * N"), waits until the --go file exists (after the restore), checks its
 * state with CHECK() and prints PASS, or FAIL lines and exits 1.
 */
#ifndef AMBER_WORKLOAD_SELFCHECK_H
#define AMBER_WORKLOAD_SELFCHECK_H

#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int failed;
static const char *who = "parent";

#define CHECK(cond, ...) do {					\
	if (!(cond)) {						\
		printf("FAIL %s: ", who);			\
		printf(__VA_ARGS__);				\
		printf("\n");					\
		failed = 1;					\
	}							\
} while (0)

static inline void wait_go(const char *go)
{
	while (access(go, F_OK))
		usleep(10000);
}

/* In the --fork child: announce it, wait for go; it checks, then _exit(failed). */
static inline void sc_child_ready(const char *go)
{
	who = "child";
	printf("child ready pid %d\n", getpid());
	fflush(stdout);
	wait_go(go);
}

/* In the parent: announce it, wait for go, then the child's verdict. */
static inline void sc_parent_ready(const char *go, pid_t child)
{
	int status = 0;

	printf("parent ready pid %d\n", getpid());
	fflush(stdout);
	wait_go(go);
	if (child)
		CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0, "child: status 0x%x", status);
}

/* The verdict line; main() returns it. */
static inline int sc_done(void)
{
	printf(failed ? "FAIL\n" : "PASS\n");
	fflush(stdout);
	return failed;
}

#endif /* AMBER_WORKLOAD_SELFCHECK_H */
