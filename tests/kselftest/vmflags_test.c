// SPDX-License-Identifier: GPL-2.0
/*
 * VMA flags after restore: build/workloads/advice maps regions with each
 * madvise() advice (and combinations, anonymous, file-backed private and
 * shared), records the VmFlags of all its VMAs, and on SIGUSR1 compares them
 * with /proc/self/smaps now (but "sd" and "ac", see advice.c) and checks what the
 * advice does in a child it forks (WIPEONFORK zeros, DONTFORK absent).
 * Checkpointed with --kill, with --tree, and incrementally after changing
 * the advice; each time restored and verified.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "amber_test.h"

#define VMF_TMP		TEST_TMP "/vmflags"
#define CMD_MS		120000

FIXTURE(vmflags) {
	char base[256];
	char dir[300];		/* the store */
	char work[300];		/* the workload's --dir */
	char out[300];		/* its stdout, appended across restores */
	pid_t pid;
	pid_t pids[2];
	int npids;
};

FIXTURE_SETUP(vmflags)
{
	snprintf(self->base, sizeof(self->base), "%s/%d", VMF_TMP, getpid());
	snprintf(self->dir, sizeof(self->dir), "%s/img", self->base);
	snprintf(self->work, sizeof(self->work), "%s/work", self->base);
	snprintf(self->out, sizeof(self->out), "%s/advice.out", self->base);
	self->pid = -1;
	self->npids = 0;
	ASSERT_EQ(0, fresh_dir(self->dir));
	ASSERT_EQ(0, fresh_dir(self->work));
	ASSERT_EQ(0, become_subreaper());
}

FIXTURE_TEARDOWN(vmflags)
{
	if (self->pid > 0)
		kill_tree(self->pid);
	kill_and_reap(self->pid);
	if (_metadata->passed)
		rm_rf(self->base);
}

static void start_opt(struct __test_metadata *_metadata, FIXTURE_DATA(vmflags) *self, bool fork,
		      const char *opt)
{
	char *argv[6] = { WORKLOAD_DIR "/advice", "--dir", self->work };
	int n = 3;
	struct spawn_opts o = {
		.out_path = self->out, .append = true, .new_session = true, .pdeathsig = true,
	};
	int want = fork ? 2 : 1;
	long long until = now_ms() + CMD_MS;

	if (fork)
		argv[n++] = "--fork";
	if (opt)
		argv[n++] = (char *)opt;
	self->pid = spawn(argv, &o);
	ASSERT_LT(0, self->pid);
	while (count_text(self->out, " ready") < want && now_ms() < until && pid_alive(self->pid))
		sleep_ms(20);
	ASSERT_EQ(want, count_text(self->out, " ready"))
		TH_LOG("advice never got ready: %s", slurp(self->out, NULL));
	self->npids = tree_pids(self->pid, self->pids, 2);
	ASSERT_EQ(want, self->npids);
}

static void start(struct __test_metadata *_metadata, FIXTURE_DATA(vmflags) *self, bool fork)
{
	start_opt(_metadata, self, fork, NULL);
}

/* Signal every process of the workload; wait for n more lines with `what`. */
static void ask(struct __test_metadata *_metadata, FIXTURE_DATA(vmflags) *self, int sig,
		const char *what)
{
	int before = count_text(self->out, what), i;
	long long until = now_ms() + CMD_MS;

	for (i = 0; i < self->npids; i++)
		ASSERT_EQ(0, kill(self->pids[i], sig));
	while (count_text(self->out, what) < before + self->npids &&
	       !count_text(self->out, "FAIL") && now_ms() < until)
		sleep_ms(20);
	ASSERT_EQ(0, count_text(self->out, "FAIL")) TH_LOG("%s", slurp(self->out, NULL));
	ASSERT_EQ(before + self->npids, count_text(self->out, what))
		TH_LOG("%s", slurp(self->out, NULL));
}

static void checkpoint(struct __test_metadata *_metadata, FIXTURE_DATA(vmflags) *self,
		       const char *const extra[])
{
	struct cmd_result r;
	struct ckpt_line c;

	ASSERT_EQ(0, amber_checkpoint_args(self->pid, self->dir, extra, &r, &c))
		TH_LOG("checkpoint: status %d\n%s%s", exit_code(r.status), r.out, r.err);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
}

static void restore(struct __test_metadata *_metadata, FIXTURE_DATA(vmflags) *self)
{
	struct cmd_result r;
	pid_t restored;
	int i;

	for (i = 0; i < self->npids; i++)
		ASSERT_EQ(0, reap_gone(self->pids[i], 60000));
	ASSERT_EQ(0, run_cmdl(CMD_MS, &r, AMBER_BIN, "restore", "-D", self->dir, "--detach",
			      NULL));
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("restore: %s%s", r.out, r.err);
	ASSERT_EQ(0, parse_restored_line(r.out, &restored)) TH_LOG("%s", r.out);
	cmd_result_free(&r);
	ASSERT_EQ(self->pid, restored);
}

/* Every advice on its own VMA and in combinations, --kill, restore. */
TEST_F_TIMEOUT(vmflags, kill_restore, 300)
{
	const char *const extra[] = { "--kill", NULL };

	start(_metadata, self, false);
	ask(_metadata, self, SIGUSR1, "verify PASS");
	checkpoint(_metadata, self, extra);
	restore(_metadata, self);
	ask(_metadata, self, SIGUSR1, "verify PASS");
	/* A second round trip of the restored process. */
	checkpoint(_metadata, self, extra);
	restore(_metadata, self);
	ask(_metadata, self, SIGUSR1, "verify PASS");
}

/* The same in a parent and its child, checkpointed as a tree. */
TEST_F_TIMEOUT(vmflags, tree_restore, 300)
{
	const char *const extra[] = { "--tree", "--kill", NULL };

	start(_metadata, self, true);
	ask(_metadata, self, SIGUSR1, "verify PASS");
	checkpoint(_metadata, self, extra);
	restore(_metadata, self);
	ask(_metadata, self, SIGUSR1, "verify PASS");
}

/*
 * Advice changed between a checkpoint and an incremental one on it: the
 * incremental one carries the new flags, not those of its parent.
 */
TEST_F_TIMEOUT(vmflags, incremental_changed, 300)
{
	const char *const keep[] = { NULL };
	const char *const kill_it[] = { "--kill", NULL };

	start(_metadata, self, false);
	checkpoint(_metadata, self, keep);
	ask(_metadata, self, SIGUSR2, " changed");
	checkpoint(_metadata, self, kill_it);
	restore(_metadata, self);
	ask(_metadata, self, SIGUSR1, "verify PASS");
}

/*
 * mlockall(MCL_FUTURE) makes VMAs mapped later locked, which the image
 * cannot say: the checkpoint is refused, and --kill does not kill.
 */
TEST_F_TIMEOUT(vmflags, mlockall_future_refused, 300)
{
	const char *const extra[] = { "--kill", NULL };
	struct cmd_result r;
	struct ckpt_line c;

	start_opt(_metadata, self, false, "--mlockall");
	ASSERT_NE(0, amber_checkpoint_args(self->pid, self->dir, extra, &r, &c));
	ASSERT_NE(0, exit_code(r.status));
	ASSERT_TRUE(contains_ci(r.err, "mlockall(MCL_FUTURE)")) TH_LOG("%s", r.err);
	cmd_result_free(&r);
	ASSERT_TRUE(pid_alive(self->pid));
	ask(_metadata, self, SIGUSR1, "verify PASS");
}

TEST_HARNESS_MAIN
