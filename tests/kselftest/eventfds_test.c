// SPDX-License-Identifier: GPL-2.0
/*
 * timerfd and signalfd (issue 14; refused before: "anon_inode:[timerfd] is
 * not supported yet"). The eventfds workload holds timerfds on three clocks
 * (periodic and expired unread, one-shot relative, fired with 7 unread
 * ticks, never armed, absolute with TFD_TIMER_CANCEL_ON_SET) and a
 * signalfd; it is checkpointed with --kill (and, with a child sharing them
 * all, --tree --kill), restored, compared with the fidelity helper
 * (timerfd clockid, settime flags, interval, armed or not; signalfd
 * sigmask), and checks its own state after the restore: the periodic timer
 * fires at its interval, the one-shot once at about the time left, the
 * ticks read back, the disarmed one stays so, the absolute one keeps its
 * expiry, the signalfd reads a signal raised after the restore.
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

#define EVFDS_TMP	TEST_TMP "/eventfds"

FIXTURE(eventfds) {
	char base[256], dir[300], out[300], err[300], go[300], rout[300], rerr[300];
	pid_t pid, restorer;
};

FIXTURE_VARIANT(eventfds) {
	const char *w;		/* workload */
	bool tree;		/* --fork workload, checkpoint --tree */
};

FIXTURE_VARIANT_ADD(eventfds, single_kill) { .w = "eventfds", .tree = false };
FIXTURE_VARIANT_ADD(eventfds, tree_kill) { .w = "eventfds", .tree = true };

FIXTURE_SETUP(eventfds)
{
	snprintf(self->base, sizeof(self->base), "%s/%s-%s", EVFDS_TMP,
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

FIXTURE_TEARDOWN(eventfds)
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
static void start(struct __test_metadata *_metadata, FIXTURE_DATA(eventfds) *self,
		  const char *w, bool tree, pid_t pids[2])
{
	char prog[128];

	struct spawn_opts o = { .out_path = self->out, .err_path = self->err,
				.new_session = true, .pdeathsig = true };
	struct args a = { 0 };

	snprintf(prog, sizeof(prog), WORKLOAD_DIR "/%s", w);
	args_add(&a, prog, "--dir", self->base, "--go", self->go, NULL);
	if (tree)
		args_add(&a, "--fork", NULL);
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

TEST_F_TIMEOUT(eventfds, restore, 180)
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
	start(_metadata, self, variant->w, variant->tree, pids);
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

TEST_HARNESS_MAIN
