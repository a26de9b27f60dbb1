// SPDX-License-Identifier: GPL-2.0
/*
 * epoll (issue 14): the epoll workload holds two epolls, one watching the
 * other, with edge-triggered, ONESHOT (fired: disarmed), EPOLLEXCLUSIVE and
 * EPOLLWAKEUP registrations on a pipe with bytes queued and an eventfd, and
 * one under an fd dup'ed and closed since (with --fork a child inherits
 * them). It is checkpointed with --kill (and --tree
 * --kill), restored, compared with the fidelity helper (the "tfd" lines of
 * each epoll's fdinfo), and checks what epoll_wait() reports after the
 * restore.
 *   - restore: the image restores (refused before: "anon_inode:[eventpoll]
 *     is not supported yet");
 *   - closed: a registration whose fd was closed since EPOLL_CTL_ADD, its
 *     file held by a child only (outside a single checkpoint; in a tree,
 *     not in the process reporting the epoll), is refused at checkpoint by
 *     name, nothing killed, nothing published.
 */
#define _GNU_SOURCE
#include <fcntl.h>
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

#define EPOLL_TMP	TEST_TMP "/epoll"

FIXTURE(epoll) {
	char base[256], dir[300], out[300], err[300], go[300], rout[300], rerr[300];
	pid_t pid, restorer;
};

FIXTURE_VARIANT(epoll) {
	const char *w;		/* workload */
	bool tree;		/* --fork workload, checkpoint --tree */
};

FIXTURE_VARIANT_ADD(epoll, single_kill) { .w = "epoll", .tree = false };
FIXTURE_VARIANT_ADD(epoll, tree_kill) { .w = "epoll", .tree = true };

FIXTURE_SETUP(epoll)
{
	snprintf(self->base, sizeof(self->base), "%s/%s-%s", EPOLL_TMP,
		 variant->tree ? "tree" : "single", _metadata->name);
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

FIXTURE_TEARDOWN(epoll)
{
	if (self->pid > 0)
		kill(-self->pid, SIGKILL);
	kill_and_reap(self->pid);
	kill_and_reap(self->restorer);
	if (_metadata->passed)
		rm_rf(self->base);
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

/* The restored process runs workload w again (no longer the stub). */
static bool is_workload(pid_t pid, const char *w)
{
	char path[64], exe[512], want[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	snprintf(want, sizeof(want), "/%s", w);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = 0;
	return n >= (ssize_t)strlen(want) && !strcmp(exe + n - strlen(want), want);
}

/* Starts the workload; pids[0] its pid, pids[1] its child's (tree). */
static void start(struct __test_metadata *_metadata, FIXTURE_DATA(epoll) *self,
		  const char *w, bool tree, bool closed, pid_t pids[2])
{
	char prog[128];

	struct spawn_opts o = { .out_path = self->out, .err_path = self->err,
				.new_session = true, .pdeathsig = true };
	struct args a = { 0 };

	snprintf(prog, sizeof(prog), WORKLOAD_DIR "/%s", w);
	args_add(&a, prog, "--dir", self->base, "--go", self->go, NULL);
	if (tree)
		args_add(&a, "--fork", NULL);
	if (closed)
		args_add(&a, "--closed", NULL);
	self->pid = spawn(ARGV(&a), &o);
	ASSERT_LT(0, self->pid);
	ASSERT_EQ(0, wait_for_text(self->out, "parent ready", 30000));
	if (tree)
		ASSERT_EQ(0, wait_for_text(self->out, "child ready", 30000));
	pids[0] = self->pid;
	ASSERT_EQ(self->pid, ready_pid(self->out, "parent"));
	pids[1] = tree ? ready_pid(self->out, "child") : 0;
	if (tree)
		ASSERT_LT(0, pids[1]);
}

TEST_F_TIMEOUT(epoll, restore, 120)
{
	static const struct fid_expect one[] = { FID_EXPECT_ONE_PROCESS, { NULL, NULL } };
	static const struct fid_expect tree[] = { { NULL, NULL } };
	struct spawn_opts ro = { .out_path = self->rout, .err_path = self->rerr };
	const char *const single_opts[] = { "--kill", NULL };
	const char *const tree_opts[] = { "--tree", "--kill", NULL };
	char *diff, *expected = NULL, *s;
	struct cmd_result r = { 0 };
	int n = variant->tree ? 2 : 1, i, status;
	struct fid_snap *before;
	struct args a = { 0 };
	struct ckpt_line c;
	pid_t pids[2];
	long long end;

	REQUIRE_AMBER();
	start(_metadata, self, variant->w, variant->tree, false, pids);
	before = fid_snap_pids(pids, n);
	ASSERT_NE(NULL, before);

	ASSERT_EQ(0, amber_checkpoint_args(self->pid, self->dir,
					   variant->tree ? tree_opts : single_opts, &r, &c))
		TH_LOG("checkpoint: status %d, stdout '%s', stderr '%s'", r.status, r.out, r.err);
	cmd_result_free(&r);
	ASSERT_EQ(0, wait_child(self->pid, 10000, &status));
	ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	self->pid = -1;
	if (variant->tree)
		ASSERT_EQ(0, wait_child(pids[1], 10000, &status));

	args_add(&a, AMBER_BIN, "restore", "-D", self->dir, NULL);
	self->restorer = spawn(ARGV(&a), &ro);
	ASSERT_LT(0, self->restorer);
	end = now_ms() + 60000;
	for (i = 0; i < n && now_ms() < end;) {
		if (is_workload(pids[i], variant->w)) {
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

	diff = fid_wait_same(before, variant->tree ? tree : one, 5000, &expected);
	EXPECT_EQ(NULL, diff) TH_LOG("fidelity:\n%s", diff);
	if (expected)
		TH_LOG("expected differences:\n%s", expected);
	free(diff);
	free(expected);
	fid_free(before);

	ASSERT_EQ(0, write_file(self->go, "", 0));
	ASSERT_EQ(0, wait_child(self->restorer, 60000, &status));
	self->restorer = -1;
	s = slurp(self->out, NULL);
	ASSERT_NE(NULL, s);
	EXPECT_TRUE(strstr(s, "PASS") && !strstr(s, "FAIL")) TH_LOG("workload:\n%s", s);
	free(s);
	EXPECT_EQ(0, exit_code(status));
}

/* A registration whose file no fd holds: refused by name, nothing killed. */
TEST_F_TIMEOUT(epoll, closed, 120)
{
	const char *const single_opts[] = { "--kill", NULL };
	const char *const tree_opts[] = { "--tree", "--kill", NULL };
	struct cmd_result r = { 0 };
	char want[400], latest[400];
	pid_t pids[2];
	int status;
	char *s;

	REQUIRE_AMBER();
	start(_metadata, self, variant->w, variant->tree, true, pids);
	amber_checkpoint_args(self->pid, self->dir, variant->tree ? tree_opts : single_opts, &r,
			      NULL);
	TH_LOG("checkpoint: status %d, stderr '%s'", exit_code(r.status), r.err);
	EXPECT_NE(0, exit_code(r.status));
	snprintf(want, sizeof(want), "fd 13: anon_inode:[eventpoll]: watches fd 21 (inode ");
	EXPECT_TRUE(r.err && strstr(r.err, want)) TH_LOG("expected \"%s\"", want);
	EXPECT_TRUE(r.err && strstr(r.err, "), whose file is open in no fd"));
	cmd_result_free(&r);
	EXPECT_TRUE(pid_alive(pids[0]));
	if (variant->tree)
		EXPECT_TRUE(pid_alive(pids[1]));
	snprintf(latest, sizeof(latest), "%s/1", self->dir);
	EXPECT_NE(0, access(latest, F_OK)) TH_LOG("a checkpoint was published");
	/* It runs on, untouched. */
	ASSERT_EQ(0, write_file(self->go, "", 0));
	ASSERT_EQ(0, wait_child(self->pid, 30000, &status));
	self->pid = -1;
	s = slurp(self->out, NULL);
	ASSERT_NE(NULL, s);
	EXPECT_TRUE(strstr(s, "PASS") && !strstr(s, "FAIL")) TH_LOG("workload:\n%s", s);
	free(s);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_HARNESS_MAIN
