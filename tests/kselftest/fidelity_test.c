// SPDX-License-Identifier: GPL-2.0
/*
 * The fidelity helper itself (tests/lib/fidelity.h): two snapshots of an
 * idle process do not differ; after the process changes its blocked mask,
 * an rlimit, its cwd or a VMA's advice, they differ on exactly those
 * fields; a new pipe with the same sharing pattern is no difference, a
 * different pattern is; expected fields are reported apart with their
 * reason. No amber needed: it runs without the module.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "amber_test.h"
#include "fidelity.h"

/* A child that runs one-letter commands from a pipe and acknowledges each. */
static void child_loop(int cmd, int ack, char *region)
{
	sigset_t set;
	struct rlimit rl;
	int p[2];
	char c;

	while (read(cmd, &c, 1) == 1) {
		switch (c) {
		case 'm':
			sigemptyset(&set);
			sigaddset(&set, SIGUSR1);
			sigprocmask(SIG_BLOCK, &set, NULL);
			break;
		case 'r':
			getrlimit(RLIMIT_NOFILE, &rl);
			rl.rlim_cur = 77;
			setrlimit(RLIMIT_NOFILE, &rl);
			break;
		case 'c':
			if (chdir("/tmp"))
				_exit(3);
			break;
		case 'a':
			madvise(region, 4 * 4096, MADV_RANDOM);
			break;
		case 'p':	/* the same pattern: a new pipe on fds 10 (read) and 11 (write) */
		case 'q':	/* another pattern: fd 11 the write end of yet another pipe */
			if (pipe(p))
				_exit(3);
			if (c == 'p')
				dup2(p[0], 10);
			dup2(p[1], 11);
			close(p[0]);
			close(p[1]);
			break;
		}
		if (write(ack, &c, 1) != 1)
			_exit(3);
	}
	_exit(0);
}

static int run_cmds(int cmd, int ack, const char *cmds);
#define run(self, cmds) run_cmds((self)->cmd, (self)->ack, (cmds))

FIXTURE(fidelity) {
	pid_t pid;
	int cmd, ack;
	char cwd[200];
};

FIXTURE_SETUP(fidelity)
{
	int c[2], a[2], p[2];
	char *region;

	ASSERT_EQ(0, pipe(c));
	ASSERT_EQ(0, pipe(a));
	ASSERT_EQ(0, pipe(p));
	ASSERT_NE(NULL, getcwd(self->cwd, sizeof(self->cwd)));
	/* Between two PROT_NONE guards: a VMA of its own that madvise does not split. */
	region = mmap(NULL, 6 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, region);
	region += 4096;
	ASSERT_EQ(0, mprotect(region, 4 * 4096, PROT_READ | PROT_WRITE));
	self->pid = fork();
	ASSERT_LE(0, self->pid);
	if (!self->pid) {
		close(c[1]);
		close(a[0]);
		dup2(p[0], 10);
		dup2(p[1], 11);
		close(p[0]);
		close(p[1]);
		child_loop(c[0], a[1], region);
	}
	close(c[0]);
	close(a[1]);
	close(p[0]);
	close(p[1]);
	self->cmd = c[1];
	self->ack = a[0];
	ASSERT_EQ(0, run(self, "n"));	/* its set-up is done */
}

FIXTURE_TEARDOWN(fidelity)
{
	close(self->cmd);
	close(self->ack);
	kill_and_reap(self->pid);
}

static int run_cmds(int cmd, int ack, const char *cmds)
{
	char c;

	for (; *cmds; cmds++)
		if (write(cmd, cmds, 1) != 1 || read(ack, &c, 1) != 1)
			return -1;
	return 0;
}

static int lines(const char *s)
{
	int n = 0;

	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

TEST_F(fidelity, unchanged_does_not_diff)
{
	struct fid_snap *a, *b;
	char *d;

	ASSERT_EQ(0, run(self, "p"));	/* any pipe replaced by one alike is no diff */
	a = fid_snap_pids(&self->pid, 1);
	ASSERT_NE(NULL, a);
	ASSERT_LT(20, a->n);
	ASSERT_EQ(0, run(self, "p"));
	b = fid_snap_pids(&self->pid, 1);
	d = fid_diff(a, b, NULL, NULL);
	EXPECT_EQ(NULL, d) TH_LOG("unexpected diff:\n%s", d);
	free(d);
	d = fid_wait_same(a, NULL, 1000, NULL);
	EXPECT_EQ(NULL, d) TH_LOG("unexpected diff:\n%s", d);
	free(d);
	/* Both ends of one pipe on fds 10 and 11, as a structure. */
	EXPECT_STREQ(fid_value(a, self->pid, "fd 10", "target"),
		     fid_value(a, self->pid, "fd 11", "target"));
	EXPECT_EQ(0, strncmp(fid_value(a, self->pid, "fd 10", "target"), "pipe:#", 6));
	fid_free(a);
	fid_free(b);
}

TEST_F(fidelity, changes_diff_on_exactly_those_fields)
{
	struct fid_snap *a, *b;
	char *d, want[300];

	a = fid_snap_pids(&self->pid, 1);
	ASSERT_NE(NULL, a);
	ASSERT_EQ(0, run(self, "mrca"));
	b = fid_snap_pids(&self->pid, 1);
	d = fid_diff(a, b, NULL, NULL);
	ASSERT_NE(NULL, d);
	TH_LOG("diff:\n%s", d);
	snprintf(want, sizeof(want), "pid %d: status: SigBlk: before \"0000000000000000\", "
		 "after \"0000000000000200\"", self->pid);
	EXPECT_NE(NULL, strstr(d, want));
	snprintf(want, sizeof(want), "pid %d tid %d: task/%d/status: SigBlk:", self->pid,
		 self->pid, self->pid);
	EXPECT_NE(NULL, strstr(d, want));
	EXPECT_NE(NULL, strstr(d, ": limits: Max open files: before \""));
	EXPECT_NE(NULL, strstr(d, "after \"77 "));
	snprintf(want, sizeof(want), ": cwd: target: before \"%s\", after \"/tmp\"", self->cwd);
	EXPECT_NE(NULL, strstr(d, want));
	EXPECT_NE(NULL, strstr(d, ": VmFlags: before \"rd wr mr mw me ac\", "
			       "after \"rd wr mr mw me rr ac\""));
	EXPECT_EQ(5, lines(d));
	free(d);

	/* Expected fields are reported apart, with their reason. */
	{
		static const struct fid_expect exp[] = {
			{ "cwd: target", "the test moved it" },
			{ "smaps *: VmFlags", "advice" },
			{ NULL, NULL },
		};
		char *e = NULL;

		d = fid_diff(a, b, exp, &e);
		EXPECT_EQ(3, lines(d));
		EXPECT_EQ(2, lines(e));
		EXPECT_NE(NULL, strstr(e, "(expected: the test moved it)"));
		EXPECT_EQ(NULL, strstr(d, "cwd"));
		free(d);
		free(e);
	}
	fid_free(b);

	/* Another sharing pattern of the pipe inodes is a difference, on fd 11 only. */
	ASSERT_EQ(0, run(self, "q"));
	b = fid_snap_pids(&self->pid, 1);
	d = fid_diff(a, b, NULL, NULL);
	ASSERT_NE(NULL, d);
	EXPECT_NE(NULL, strstr(d, ": fd 11: target: before \"pipe:#"));
	EXPECT_EQ(NULL, strstr(d, ": fd 10:"));
	free(d);
	fid_free(a);
	fid_free(b);
}

/* A process that is gone after the "restore" is one line, not silence. */
TEST_F(fidelity, gone_is_a_diff)
{
	struct fid_snap *a;
	char *d;

	a = fid_snap_pids(&self->pid, 1);
	ASSERT_NE(NULL, a);
	kill_and_reap(self->pid);
	self->pid = -1;
	d = fid_wait_same(a, NULL, 100, NULL);
	ASSERT_NE(NULL, d);
	EXPECT_NE(NULL, strstr(d, ": proc: exists: before \"yes\", after \"no\""));
	EXPECT_EQ(1, lines(d)) TH_LOG("%s", d);
	free(d);
	fid_free(a);
}

TEST_HARNESS_MAIN
