// SPDX-License-Identifier: GPL-2.0
/*
 * Interval timers (setitimer, alarm) and POSIX timers (timer_create)
 * across checkpoint --kill and restore, of one process and of a tree: the
 * timers workload checks after the restore that every timer exists under
 * its id with its clock, notification, interval and time left, and that
 * the periodic ones keep firing at their period, to the right thread.
 * /proc/PID/timers (ids, signals, sigev_value, notification and target
 * TID, clock) must be the same before and after.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "amber_test.h"

#define TIMERS_TMP	TEST_TMP "/timers"

FIXTURE(timers) {
	char base[256], dir[300], out[300], err[300], go[300], rout[300], rerr[300];
	pid_t pid, restorer;
};

FIXTURE_VARIANT(timers) {
	bool tree;		/* --fork workload, checkpoint --tree */
};

FIXTURE_VARIANT_ADD(timers, single_kill) { .tree = false };
FIXTURE_VARIANT_ADD(timers, tree_kill) { .tree = true };

FIXTURE_SETUP(timers)
{
	snprintf(self->base, sizeof(self->base), "%s/%s", TIMERS_TMP,
		 variant->tree ? "tree" : "single");
	snprintf(self->dir, sizeof(self->dir), "%s/img", self->base);
	snprintf(self->out, sizeof(self->out), "%s/out", self->base);
	snprintf(self->err, sizeof(self->err), "%s/err", self->base);
	snprintf(self->go, sizeof(self->go), "%s/go", self->base);
	snprintf(self->rout, sizeof(self->rout), "%s/restore.out", self->base);
	snprintf(self->rerr, sizeof(self->rerr), "%s/restore.err", self->base);
	self->pid = -1;
	self->restorer = -1;
	ASSERT_EQ(0, fresh_dir(self->dir));
	ASSERT_EQ(0, become_subreaper());
}

FIXTURE_TEARDOWN(timers)
{
	kill_and_reap(self->pid);
	kill_and_reap(self->restorer);
	if (_metadata->passed)
		rm_rf(self->base);
}

static char *proc_timers(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/timers", pid);
	return slurp(path, NULL);
}

/* The pid printed by `WHO ready pid N`, 0 if none. */
static pid_t ready_pid(const char *out, const char *who)
{
	char *s = slurp(out, NULL), *p;
	char key[32];
	pid_t pid = 0;

	snprintf(key, sizeof(key), "%s ready pid ", who);
	if (s && (p = strstr(s, key)))
		pid = atoi(p + strlen(key));
	free(s);
	return pid;
}

/* The restored process runs the workload again (no longer the stub). */
static bool is_workload(pid_t pid)
{
	char path[64], exe[512];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = 0;
	return n >= 7 && !strcmp(exe + n - 7, "/timers");
}

TEST_F_TIMEOUT(timers, checkpoint_restore, 120)
{
	struct spawn_opts o = { .out_path = self->out, .err_path = self->err,
				.new_session = true, .pdeathsig = true };
	struct spawn_opts ro = { .out_path = self->rout, .err_path = self->rerr };
	const char *const single_opts[] = { "--kill", NULL };
	const char *const tree_opts[] = { "--tree", "--kill", NULL };
	char *before[2] = { NULL, NULL }, *after, *s;
	struct cmd_result r = { 0 };
	pid_t pids[2] = { 0, 0 };
	int n = variant->tree ? 2 : 1, i, status;
	struct args a = { 0 };
	struct ckpt_line c;
	long long end;

	if (access("/sys/module/amber", F_OK) || access(AMBER_BIN, X_OK))
		SKIP(return, "amber.ko is not loaded or build/amber is missing");

	args_add(&a, WORKLOAD_DIR "/timers", "--go", self->go, NULL);
	if (variant->tree)
		args_add(&a, "--fork", NULL);
	self->pid = spawn(ARGV(&a), &o);
	ASSERT_LT(0, self->pid);
	ASSERT_EQ(0, wait_for_text(self->out, "parent ready", 30000));
	if (variant->tree)
		ASSERT_EQ(0, wait_for_text(self->out, "child ready", 30000));
	pids[0] = self->pid;
	ASSERT_EQ(self->pid, ready_pid(self->out, "parent"));
	if (variant->tree) {
		pids[1] = ready_pid(self->out, "child");
		ASSERT_LT(0, pids[1]);
	}
	for (i = 0; i < n; i++) {
		before[i] = proc_timers(pids[i]);
		ASSERT_NE(NULL, before[i]);
		ASSERT_NE(NULL, strstr(before[i], "/tid.")) TH_LOG("%s", before[i]);
	}

	ASSERT_EQ(0, amber_checkpoint_args(self->pid, self->dir,
					   variant->tree ? tree_opts : single_opts, &r, &c))
		TH_LOG("checkpoint: status %d, stdout '%s', stderr '%s'", r.status, r.out, r.err);
	cmd_result_free(&r);
	ASSERT_EQ(0, wait_child(self->pid, 10000, &status));
	ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	self->pid = -1;
	/* The child, reparented to us (a subreaper), must be reaped to free its pid. */
	if (variant->tree)
		ASSERT_EQ(0, wait_child(pids[1], 10000, &status));

	/* inspect shows the timers readably. */
	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "inspect", "-D", self->dir, NULL));
	EXPECT_EQ(0, exit_code(r.status)) TH_LOG("inspect: %s", r.err);
	EXPECT_TRUE(r.out && strstr(r.out, "ITIMER_REAL") && strstr(r.out, "SIGEV_THREAD_ID") &&
		    strstr(r.out, "CLOCK_PROCESS_CPUTIME_ID") && strstr(r.out, "disarmed"))
		TH_LOG("inspect does not show the timers:\n%s", r.out);
	cmd_result_free(&r);

	a.n = 0;
	args_add(&a, AMBER_BIN, "restore", "-D", self->dir, NULL);
	self->restorer = spawn(ARGV(&a), &ro);
	ASSERT_LT(0, self->restorer);
	end = now_ms() + 60000;
	for (i = 0; i < n && now_ms() < end;) {
		if (is_workload(pids[i])) {
			i++;
			continue;
		}
		if (waitpid(self->restorer, &status, WNOHANG) == self->restorer) {
			self->restorer = -1;
			s = slurp(self->rerr, NULL);
			ASSERT_TRUE(false) TH_LOG("restore ended with %d: %s", status, s);
		}
		sleep_ms(5);
	}
	ASSERT_EQ(n, i) TH_LOG("the processes did not come back");

	for (i = 0; i < n; i++) {
		after = proc_timers(pids[i]);
		ASSERT_NE(NULL, after);
		EXPECT_STREQ(before[i], after);
		free(after);
		free(before[i]);
	}

	ASSERT_EQ(0, write_file(self->go, "", 0));
	ASSERT_EQ(0, wait_child(self->restorer, 60000, &status));
	self->restorer = -1;
	s = slurp(self->out, NULL);
	ASSERT_NE(NULL, s);
	EXPECT_TRUE(strstr(s, "PASS") && !strstr(s, "FAIL")) TH_LOG("workload:\n%s", s);
	free(s);
	EXPECT_EQ(0, exit_code(status));
}

TEST_HARNESS_MAIN
