// SPDX-License-Identifier: GPL-2.0
/*
 * Processes sharing an fd table (clone CLONE_FILES) or cwd, root and umask
 * (clone CLONE_FS) without being threads (issue 13), with the sharer
 * workload:
 *   - files_and_fs: a parent, a CLONE_FILES child and a CLONE_FS child,
 *     checkpointed with --tree --kill and restored: the restored /proc
 *     state is the one before (fidelity), and from inside the workload an
 *     fd opened by one after the restore is open in the other, a chdir and
 *     umask of one are seen by the other (before the fix each restored
 *     process had its own copy: the fds were EBADF);
 *   - unshared_parent_refused: a process sharing a table with its
 *     grandparent while its parent unshared it cannot be rebuilt by
 *     clone(): --tree --kill is refused with restore's message, every
 *     process alive, nothing published;
 *   - outside_refused: a --tree checkpoint of the CLONE_FILES child alone
 *     (its table is shared with its parent, outside the checkpoint) is
 *     refused by amber.ko at the cut, nothing killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "amber_test.h"
#include "fidelity.h"

#define SHARING_TMP	TEST_TMP "/sharing"

FIXTURE(sharing) {
	char base[256];
	char dir[300];		/* the image store */
	char work[300];		/* the workload's --dir */
	char out[300];
	char rout[300], rerr[300];
	pid_t p[3];		/* as the workload's --pids file lists them */
	pid_t restorer;
	struct fid_snap *fid;
};

FIXTURE_SETUP(sharing)
{
	snprintf(self->base, sizeof(self->base), "%s/%s", SHARING_TMP, _metadata->name);
	snprintf(self->dir, sizeof(self->dir), "%s/img", self->base);
	snprintf(self->work, sizeof(self->work), "%s/work", self->base);
	snprintf(self->out, sizeof(self->out), "%s/out", self->base);
	snprintf(self->rout, sizeof(self->rout), "%s/restore.out", self->base);
	snprintf(self->rerr, sizeof(self->rerr), "%s/restore.err", self->base);
	memset(self->p, 0, sizeof(self->p));
	self->restorer = -1;
	self->fid = NULL;
	ASSERT_EQ(0, fresh_dir(self->dir));
	ASSERT_EQ(0, fresh_dir(self->work));
	ASSERT_EQ(0, become_subreaper());
}

FIXTURE_TEARDOWN(sharing)
{
	int i;

	for (i = 0; i < 3; i++)
		if (self->p[i] > 0)
			kill(self->p[i], SIGKILL);
	if (self->restorer > 0) {
		kill_tree(self->restorer);
		reap_gone(self->restorer, 5000);
	}
	for (i = 0; i < 3; i++)
		if (self->p[i] > 0)
			reap_gone(self->p[i], 5000);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	fid_free(self->fid);
	if (_metadata->passed) {
		rm_rf(self->base);
	} else {
		char *err = slurp(self->rerr, NULL);

		if (err && *err)
			TH_LOG("amber restore's stderr:\n%.3000s", err);
		free(err);
	}
}

/* The sharer workload (extra: NULL or its mode option), up to `sharer ready`. */
static int start_sharer(FIXTURE_DATA(sharing) *self, const char *extra)
{
	struct args a = { 0 };
	char pidf[320], *s;
	int n;

	snprintf(pidf, sizeof(pidf), "%s/pids", self->base);
	args_add(&a, workload_path("sharer"), "--dir", self->work, "--pids", pidf, NULL);
	if (extra)
		args_add(&a, extra, NULL);
	if (spawn_workload(ARGV(&a), self->out) < 0 ||
	    wait_for_text(self->out, "sharer ready\n", 60000))
		return -1;
	s = slurp(pidf, NULL);
	n = s ? sscanf(s, "%d %d %d", &self->p[0], &self->p[1], &self->p[2]) : 0;
	free(s);
	return n == 3 ? 0 : -1;
}

static const struct fid_expect sharing_expect[] = {
	{ "fdinfo 1: pos", "the workload writes its output while it runs" },
	{ "fdinfo 2: pos", "stderr is the same open file as stdout" },
	{ NULL, NULL },
};

TEST_F_TIMEOUT(sharing, files_and_fs, 150)
{
	const char *const tree_kill[] = { "--tree", "--kill", NULL };
	struct spawn_opts o = { .out_path = self->rout, .err_path = self->rerr };
	struct cmd_result r = { 0 };
	struct args a = { 0 };
	char go[320];
	long long end;
	int i, alive, status;

	REQUIRE_AMBER();
	ASSERT_EQ(0, start_sharer(self, NULL)) TH_LOG("sharer did not start");

	self->fid = fid_snap_pids(self->p, 3);
	ASSERT_NE(NULL, self->fid);
	amber_checkpoint_args(self->p[0], self->dir, tree_kill, &r, NULL);
	TH_LOG("checkpoint --tree --kill: status %d\n%s%s", exit_code(r.status),
	       r.out ? r.out : "", r.err ? r.err : "");
	ASSERT_EQ(0, exit_code(r.status));
	cmd_result_free(&r);
	for (i = 0; i < 3; i++) {
		pid_t q = self->p[i];

		ASSERT_EQ(0, reap_gone(q, 10000)) TH_LOG("pid %d still there", q);
	}

	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "inspect", "-D", self->dir, NULL));
	TH_LOG("inspect:\n%.3000s", r.out ? r.out : "");
	cmd_result_free(&r);

	args_add(&a, AMBER_BIN, "restore", "-D", self->dir, NULL);
	self->restorer = spawn(ARGV(&a), &o);
	ASSERT_LT(0, self->restorer);
	end = now_ms() + 60000;
	do {
		for (alive = 0, i = 0; i < 3; i++)
			alive += pid_alive(self->p[i]);
		if (alive == 3)
			break;
		sleep_ms(5);
	} while (now_ms() < end);
	ASSERT_EQ(3, alive) TH_LOG("the tree never came back");
	EXPECT_FIDELITY(self->fid, sharing_expect, 10000);

	snprintf(go, sizeof(go), "%s/go", self->work);
	ASSERT_EQ(0, write_file(go, "", 0));
	ASSERT_EQ(0, wait_child(self->restorer, 60000, &status)) TH_LOG("amber restore hangs");
	self->restorer = -1;
	{
		char *out = slurp(self->out, NULL);

		TH_LOG("workload output:\n%.3000s", out ? out : "");
		EXPECT_TRUE(out && strstr(out, "\nPASS\n"));
		free(out);
	}
	EXPECT_EQ(0, exit_code(status)) TH_LOG("amber restore (the workload's exit) failed");
}

/* checkpoint --tree --kill of root is refused with msg; nothing killed or published. */
static void expect_refused(struct __test_metadata *_metadata, FIXTURE_DATA(sharing) *self,
			   pid_t root, const char *msg)
{
	const char *const tree_kill[] = { "--tree", "--kill", NULL };
	struct cmd_result r = { 0 };
	char latest[400];
	int i;

	amber_checkpoint_args(root, self->dir, tree_kill, &r, NULL);
	TH_LOG("checkpoint --tree --kill: status %d\nstdout: %.2000s\nstderr: %.2000s",
	       exit_code(r.status), r.out ? r.out : "", r.err ? r.err : "");
	EXPECT_NE(0, exit_code(r.status));
	EXPECT_TRUE(r.err && strstr(r.err, msg)) TH_LOG("expected \"%s\"", msg);
	cmd_result_free(&r);
	for (i = 0; i < 3; i++) {
		pid_t q = self->p[i];

		EXPECT_TRUE(pid_alive(q)) TH_LOG("pid %d was killed", q);
	}
	snprintf(latest, sizeof(latest), "%s/1", self->dir);
	EXPECT_NE(0, access(latest, F_OK)) TH_LOG("a checkpoint was published");
}

TEST_F_TIMEOUT(sharing, unshared_parent_refused, 60)
{
	char msg[256];

	REQUIRE_AMBER();
	ASSERT_EQ(0, start_sharer(self, "--unshared-parent")) TH_LOG("sharer did not start");
	snprintf(msg, sizeof(msg),
		 "pid %d: shares its fd table (CLONE_FILES) with pid %d but its parent (pid %d) "
		 "does not: clone() cannot recreate that", self->p[2], self->p[0], self->p[1]);
	expect_refused(_metadata, self, self->p[0], msg);
}

TEST_F_TIMEOUT(sharing, outside_refused, 60)
{
	char msg[256];

	REQUIRE_AMBER();
	ASSERT_EQ(0, start_sharer(self, NULL)) TH_LOG("sharer did not start");
	snprintf(msg, sizeof(msg),
		 "pid %d: its fd table is shared (clone CLONE_FILES) with a process outside "
		 "the checkpoint", self->p[1]);
	expect_refused(_metadata, self, self->p[1], msg);
	snprintf(msg, sizeof(msg),
		 "pid %d: its cwd, root and umask are shared (clone CLONE_FS) with a process "
		 "outside the checkpoint", self->p[2]);
	expect_refused(_metadata, self, self->p[2], msg);
}

TEST_HARNESS_MAIN
