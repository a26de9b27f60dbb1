// SPDX-License-Identifier: GPL-2.0
/*
 * Robustness: the target is never left frozen or damaged by a checkpoint
 * that goes wrong, --kill leaves nothing running after the image, and a
 * target blocked in a system call carries on as if nothing happened.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/amber.h>

#include "kselftest_harness.h"
#include "amber_test.h"
#include "fidelity.h"

#define ROBUST_TMP	TEST_TMP "/robust"

FIXTURE(robust) {
	char base[256];
	char dir[300];
	char out[300];
	pid_t pid;		/* the target */
	pid_t cli;		/* a background amber */
	int in_fd;		/* the target's stdin pipe, if any */
};

FIXTURE_SETUP(robust)
{
	snprintf(self->base, sizeof(self->base), "%s/%d", ROBUST_TMP, getpid());
	snprintf(self->dir, sizeof(self->dir), "%s/img", self->base);
	snprintf(self->out, sizeof(self->out), "%s/target.out", self->base);
	self->pid = -1;
	self->cli = -1;
	self->in_fd = -1;
	ASSERT_EQ(0, fresh_dir(self->dir));
	ASSERT_EQ(0, become_subreaper());
}

FIXTURE_TEARDOWN(robust)
{
	kill_and_reap(self->pid);
	kill_and_reap(self->cli);
	if (self->in_fd >= 0)
		close(self->in_fd);
	if (_metadata->passed)
		rm_rf(self->base);
}

/* A workload in its own session appending to self->out. */
static void start_target(struct __test_metadata *_metadata, FIXTURE_DATA(robust) *self,
			 char *const argv[], const char *ready)
{
	struct spawn_opts o = {
		.out_path = self->out, .append = true, .new_session = true, .pdeathsig = true,
	};

	self->pid = spawn(argv, &o);
	ASSERT_LT(0, self->pid);
	ASSERT_EQ(0, wait_for_text(self->out, ready, 180000)) TH_LOG("no '%s'", ready);
}

/* amber restore --detach of the store: the same PID is back; it becomes self->pid. */
static pid_t restore_detached(struct __test_metadata *_metadata, FIXTURE_DATA(robust) *self,
			      pid_t pid, int timeout_ms)
{
	struct cmd_result r;
	pid_t restored;

	ASSERT_EQ(0, run_cmdl(timeout_ms, &r, AMBER_BIN, "restore", "-D", self->dir, "--detach",
			      NULL));
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("restore: %s", r.err);
	ASSERT_EQ(0, parse_restored_line(r.out, &restored));
	cmd_result_free(&r);
	ASSERT_EQ(pid, restored);
	self->pid = restored;
	return restored;
}

/* The target prints n more ticks within 60 s, and never FAIL. */
static void assert_progress(struct __test_metadata *_metadata, FIXTURE_DATA(robust) *self,
			    int n)
{
	int before = count_text(self->out, "tick ");
	long long end = now_ms() + 60000;

	while (count_text(self->out, "tick ") < before + n && now_ms() < end) {
		if (!pid_alive(self->pid))
			break;
		sleep_ms(50);
	}
	ASSERT_LE(before + n, count_text(self->out, "tick "))
		TH_LOG("pid %d made no progress (state '%c')", self->pid, pid_state(self->pid));
	ASSERT_EQ(0, count_text(self->out, "FAIL"));
}

/*
 * Start `amber checkpoint` and SIGKILL it after delay_ms; retries with
 * shorter delays until the kill lands before it finishes. Returns 0 when a
 * run was killed mid-way.
 */
static int kill_cli_midway(FIXTURE_DATA(robust) *self)
{
	static const int delays[] = { 300, 100, 30, 10, 3, 1, 0 };
	char pid[32], err[400];
	unsigned int i;

	snprintf(pid, sizeof(pid), "%d", self->pid);
	snprintf(err, sizeof(err), "%s/cli.err", self->base);
	for (i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
		char *argv[] = { AMBER_BIN, "checkpoint", pid, "-D", self->dir, NULL };
		struct spawn_opts o = { .out_path = err };
		int status;

		self->cli = spawn(argv, &o);
		if (self->cli < 0)
			return -1;
		sleep_ms(delays[i]);
		kill(self->cli, SIGKILL);
		waitpid(self->cli, &status, 0);
		self->cli = -1;
		if (WIFSIGNALED(status))
			return 0;
	}
	return -1;
}

static void assert_latest(struct __test_metadata *_metadata, FIXTURE_DATA(robust) *self,
			  unsigned int n)
{
	char path[400], target[64] = "", want[32];
	ssize_t len;

	snprintf(path, sizeof(path), "%s/latest", self->dir);
	len = readlink(path, target, sizeof(target) - 1);
	ASSERT_LT(0, len) TH_LOG("no %s", path);
	target[len] = 0;
	snprintf(want, sizeof(want), "%u", n);
	ASSERT_STREQ(want, target);
}

TEST_F_TIMEOUT(robust, cli_killed_midway, 400)
{
	char *argv[] = { WORKLOAD_DIR "/memhog", "--mib", "256", "--ms", "100", NULL };
	struct cmd_result r;
	struct ckpt_line c;
	char state;

	REQUIRE_AMBER();
	start_target(_metadata, self, argv, "tick 1");

	ASSERT_EQ(0, kill_cli_midway(self)) TH_LOG("amber checkpoint always finished first");
	/* The target is not left stopped and carries on with intact memory. */
	state = pid_state(self->pid);
	ASSERT_TRUE(state == 'S' || state == 'R' || state == 'D') TH_LOG("state '%c'", state);
	assert_progress(_metadata, self, 3);

	/* ... and can be checkpointed again. */
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, false, &r, &c))
		TH_LOG("checkpoint after a killed one: %s", r.err);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
	ASSERT_EQ(self->pid, c.pid);
	assert_latest(_metadata, self, c.number);
	assert_progress(_metadata, self, 3);
}

TEST_F_TIMEOUT(robust, killed_checkpoint_keeps_latest, 400)
{
	char *argv[] = { WORKLOAD_DIR "/memhog", "--mib", "128", "--ms", "100", NULL };
	struct cmd_result r;
	struct ckpt_line c, c2;
	pid_t pid;
	char tmp[400];
	int status;

	REQUIRE_AMBER();
	start_target(_metadata, self, argv, "tick 1");
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, false, &r, &c))
		TH_LOG("checkpoint: %s", r.err);
	cmd_result_free(&r);
	assert_latest(_metadata, self, c.number);

	ASSERT_EQ(0, kill_cli_midway(self)) TH_LOG("amber checkpoint always finished first");
	assert_latest(_metadata, self, c.number);
	assert_progress(_metadata, self, 2);

	/* Crash, then restore what latest points at. */
	pid = self->pid;
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(0, wait_child(pid, 10000, &status));
	self->pid = -1;
	restore_detached(_metadata, self, pid, 180000);
	assert_progress(_metadata, self, 3);

	/* A later checkpoint removes the leftovers of the killed one. */
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, false, &r, &c2))
		TH_LOG("checkpoint of the restored process: %s", r.err);
	cmd_result_free(&r);
	ASSERT_LT(c.number, c2.number);
	assert_latest(_metadata, self, c2.number);
	snprintf(tmp, sizeof(tmp), "%s/.tmp-%u", self->dir, c.number + 1);
	if (c2.number != c.number + 1)
		ASSERT_NE(0, access(tmp, F_OK)) TH_LOG("%s left behind", tmp);
	assert_progress(_metadata, self, 2);
}

/* Parse "tick N" lines: they must be 0, 1, 2, ... with no gap or repeat. */
static int ticks_in_order(const char *path, int *last)
{
	char *s = slurp(path, NULL), *p;
	int want = 0, n;

	if (!s)
		return -1;
	for (p = s; (p = strstr(p, "tick ")); p++) {
		if (sscanf(p, "tick %d", &n) != 1 || n != want) {
			free(s);
			return -1;
		}
		want++;
	}
	free(s);
	*last = want - 1;
	return 0;
}

TEST_F_TIMEOUT(robust, checkpoint_kill, 240)
{
	char *argv[] = { WORKLOAD_DIR "/sleeper", "--ms", "20", NULL };
	struct cmd_result r;
	struct ckpt_line c;
	int status, last = -1, after;

	static const struct fid_expect exp[] = {
		{ "fdinfo 1: pos", "the workload prints a tick every 20 ms" },
		{ "fdinfo 2: pos", "stderr is the same open file as stdout" },
		FID_EXPECT_ONE_PROCESS,
		{ NULL, NULL },
	};
	struct fid_snap *before;

	REQUIRE_AMBER();
	start_target(_metadata, self, argv, "tick 5");
	before = fid_snap_pids(&self->pid, 1);
	ASSERT_NE(NULL, before);
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, true, &r, &c))
		TH_LOG("checkpoint --kill: %s", r.err);
	cmd_result_free(&r);
	ASSERT_EQ(0, wait_child(self->pid, 10000, &status));
	ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) TH_LOG("status %#x", status);
	ASSERT_EQ(0, ticks_in_order(self->out, &last));
	self->pid = -1;

	restore_detached(_metadata, self, c.pid, 120000);
	EXPECT_FIDELITY(before, exp, 10000);
	fid_free(before);
	assert_progress(_metadata, self, 5);
	/* Not one tick repeated (it ran on after the image) or lost. */
	ASSERT_EQ(0, ticks_in_order(self->out, &after))
		TH_LOG("ticks out of order around %d:\n%s", last, slurp(self->out, NULL));
	ASSERT_LT(last, after);
}

TEST_F_TIMEOUT(robust, blocked_in_sleep, 240)
{
	char *argv[] = { WORKLOAD_DIR "/sleeper", "--ms", "3000", "--ticks", "4", NULL };
	char restore_err[400];
	struct cmd_result r;
	struct ckpt_line c;
	int status;

	REQUIRE_AMBER();
	start_target(_metadata, self, argv, "ready");
	sleep_ms(300);
	/* Interrupted in nanosleep(): no EINTR, no short sleep (the workload checks). */
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, false, &r, &c))
		TH_LOG("checkpoint: %s", r.err);
	cmd_result_free(&r);
	ASSERT_EQ(0, wait_for_text(self->out, "tick 0", 30000));
	ASSERT_EQ(0, count_text(self->out, "FAIL")) TH_LOG("%s", slurp(self->out, NULL));

	ASSERT_EQ(0, wait_for_text(self->out, "tick 1", 30000));
	sleep_ms(300);
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, false, &r, &c))
		TH_LOG("checkpoint: %s", r.err);
	cmd_result_free(&r);
	ASSERT_EQ(0, kill(self->pid, SIGKILL));
	ASSERT_EQ(0, wait_child(self->pid, 10000, &status));
	self->pid = -1;
	ASSERT_EQ(0, count_text(self->out, "tick 2"))
		TH_LOG("tick 2 came before the kill: checkpoint slower than the sleep?");

	/* The restored process sleeps again and finishes normally. */
	snprintf(restore_err, sizeof(restore_err), "%s/restore.err", self->base);
	ASSERT_EQ(0, run_cmdl(120000, &r, AMBER_BIN, "restore", "-D", self->dir, NULL));
	EXPECT_EQ(0, exit_code(r.status)) TH_LOG("restore: status %d: %s", r.status, r.err);
	cmd_result_free(&r);
	ASSERT_EQ(1, count_text(self->out, "tick 3"));
	ASSERT_EQ(1, count_text(self->out, "done"));
	ASSERT_EQ(0, count_text(self->out, "FAIL")) TH_LOG("%s", slurp(self->out, NULL));
}

TEST_F_TIMEOUT(robust, blocked_in_pipe_read, 240)
{
	char *argv[] = { WORKLOAD_DIR "/sleeper", "read", NULL };
	struct spawn_opts o = {
		.out_path = self->out, .append = true, .new_session = true, .pdeathsig = true,
		.stdin_pipe = true, .stdin_fd = &self->in_fd,
	};
	char restore_err[400];
	struct cmd_result r;
	struct ckpt_line c;
	int status;

	REQUIRE_AMBER();
	self->pid = spawn(argv, &o);
	ASSERT_LT(0, self->pid);
	ASSERT_EQ(0, wait_for_text(self->out, "ready", 60000));
	sleep_ms(300);

	/* Blocked in read(): the checkpoint must not make read() fail. */
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, false, &r, &c))
		TH_LOG("checkpoint: %s", r.err);
	cmd_result_free(&r);
	ASSERT_EQ(6, write(self->in_fd, "hello\n", 6));
	ASSERT_EQ(0, wait_for_text(self->out, "got hello", 30000))
		TH_LOG("%s", slurp(self->out, NULL));
	ASSERT_EQ(0, count_text(self->out, "FAIL"));
	sleep_ms(300);

	/* Again with --kill; the restored process reads amber restore's stdin. */
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, true, &r, &c))
		TH_LOG("checkpoint --kill: %s", r.err);
	cmd_result_free(&r);
	ASSERT_EQ(0, wait_child(self->pid, 10000, &status));
	self->pid = -1;
	close(self->in_fd);
	self->in_fd = -1;
	{
		char *rargv[] = { AMBER_BIN, "restore", "-D", self->dir, NULL };
		struct spawn_opts ro = {
			.out_path = restore_err, .stdin_pipe = true, .stdin_fd = &self->in_fd,
		};

		snprintf(restore_err, sizeof(restore_err), "%s/restore.out", self->base);
		self->cli = spawn(rargv, &ro);
		ASSERT_LT(0, self->cli);
	}
	ASSERT_EQ(11, write(self->in_fd, "world\nquit\n", 11));
	ASSERT_EQ(0, wait_child(self->cli, 120000, &status));
	self->cli = -1;
	EXPECT_EQ(0, exit_code(status)) TH_LOG("restore: %s", slurp(restore_err, NULL));
	ASSERT_EQ(1, count_text(self->out, "got hello"));
	ASSERT_EQ(1, count_text(self->out, "got world")) TH_LOG("%s", slurp(self->out, NULL));
	ASSERT_EQ(1, count_text(self->out, "done"));
	ASSERT_EQ(0, count_text(self->out, "FAIL"));
}

static volatile sig_atomic_t sigchld_count;

static void on_sigchld(int sig)
{
	sigchld_count++;
}

/* No SIGSTOP/SIGCONT, no SIGCHLD: the parent never notices a checkpoint. */
TEST_F_TIMEOUT(robust, invisible_to_parent, 120)
{
	char *argv[] = { WORKLOAD_DIR "/sleeper", "--ms", "50", NULL };
	struct sigaction sa = { .sa_handler = on_sigchld };
	struct cmd_result r;
	struct ckpt_line c;
	int i, st;

	REQUIRE_AMBER();
	start_target(_metadata, self, argv, "tick 1");
	ASSERT_EQ(0, sigaction(SIGCHLD, &sa, NULL));
	sigchld_count = 0;
	for (i = 0; i < 2; i++) {
		/* amber_checkpoint's own child also raises SIGCHLD: count only the target's */
		ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, false, &r, &c))
			TH_LOG("checkpoint: %s", r.err);
		cmd_result_free(&r);
		ASSERT_EQ(0, waitpid(self->pid, &st, WNOHANG | WUNTRACED | WCONTINUED))
			TH_LOG("the parent saw a state change: %#x", st);
	}
	ASSERT_EQ(2, sigchld_count) TH_LOG("SIGCHLDs beyond the two CLI runs");
	assert_progress(_metadata, self, 3);
}

/* Memory never touched is neither saved nor faulted in, at checkpoint or restore. */
TEST_F_TIMEOUT(robust, untouched_memory_not_saved, 240)
{
	char *argv[] = { WORKLOAD_DIR "/memhog", "--mib", "8", "--sparse", "1024", "--ms", "100",
			 NULL };
	struct cmd_result r;
	struct ckpt_line c;
	pid_t restored;
	long before, after;

	REQUIRE_AMBER();
	start_target(_metadata, self, argv, "tick 1");
	before = proc_kb(self->pid, "status", "VmRSS:");
	ASSERT_LT(0, before);
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, true, &r, &c))
		TH_LOG("checkpoint: %s", r.err);
	cmd_result_free(&r);
	TH_LOG("RSS %ld KiB, %llu bytes written", before, c.bytes);
	/* 8 MiB + 1024 sparse pages (4 MiB) + libc and stack; not 1 GiB */
	ASSERT_GT(32ULL << 20, c.bytes);
	ASSERT_LE((8ULL + 4) << 20, c.bytes);
	ASSERT_EQ(0, wait_child(self->pid, 10000, NULL));
	self->pid = -1;

	restored = restore_detached(_metadata, self, c.pid, 120000);
	assert_progress(_metadata, self, 3);
	after = proc_kb(restored, "status", "VmRSS:");
	TH_LOG("restored RSS %ld KiB", after);
	ASSERT_GT(before + 16384, after) TH_LOG("restore faulted in untouched memory");
}

/*
 * Hold the sleeper with a raw AMBER_CKPT_F_HOLD request on a socket of our
 * own; returns the socket (the target stays stopped until it closes).
 */
static int hold_target(struct __test_metadata *_metadata, FIXTURE_DATA(robust) *self)
{
	static struct nlbuf b;
	struct nl_reply r;
	char path[400];
	int sk, family, fd, before;

	snprintf(path, sizeof(path), "%s/pages", self->base);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	EXPECT_LE(0, fd);
	sk = nl_open();
	EXPECT_LE(0, sk);
	family = nl_family(sk);
	EXPECT_LT(0, family);
	nl_start(&b, family, AMBER_CMD_CHECKPOINT, 0);
	nl_put_u32(&b, AMBER_A_PID, self->pid);
	nl_put_u32(&b, AMBER_A_PAGES_FD, fd);
	nl_put_u32(&b, AMBER_A_FLAGS, AMBER_CKPT_F_HOLD);
	EXPECT_EQ(0, nl_transact(sk, &b, &r, 60000));
	EXPECT_EQ(0, r.error) TH_LOG("hold: %s", r.msg);
	close(fd);
	/* Held: no tick for a while. */
	sleep_ms(300);
	before = count_text(self->out, "tick ");
	sleep_ms(1500);
	EXPECT_EQ(before, count_text(self->out, "tick ")) TH_LOG("a held target kept running");
	EXPECT_TRUE(pid_alive(self->pid));
	return sk;
}

TEST_F_TIMEOUT(robust, held_target_resumes_when_socket_closes, 120)
{
	char *argv[] = { WORKLOAD_DIR "/sleeper", "--ms", "100", NULL };
	int sk;

	REQUIRE_AMBER();
	start_target(_metadata, self, argv, "tick 1");
	sk = hold_target(_metadata, self);
	ASSERT_LE(0, sk);
	close(sk);
	assert_progress(_metadata, self, 5);
}

/* Runs last: it may unload the module, and loads it again. */
TEST_F_TIMEOUT(robust, rmmod_while_held, 120)
{
	char *argv[] = { WORKLOAD_DIR "/sleeper", "--ms", "100", NULL };
	int sk, rc;

	REQUIRE_AMBER();
	start_target(_metadata, self, argv, "tick 1");
	sk = hold_target(_metadata, self);
	ASSERT_LE(0, sk);
	/* Either refused (the held target pins the module) or it releases the target. */
	rc = system("rmmod amber 2>/dev/null");
	TH_LOG("rmmod while a target is held: %s", rc ? "refused" : "unloaded");
	if (rc)
		close(sk);
	assert_progress(_metadata, self, 5);
	if (!rc)
		close(sk);
	if (access("/sys/module/amber", F_OK)) {
		const char *ko = getenv("AMBER_KO");
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "insmod '%s'", ko && *ko ? ko : "kmod/amber.ko");
		ASSERT_EQ(0, system(cmd));
	}
	ASSERT_EQ(0, access("/sys/module/amber", F_OK));
}

TEST_HARNESS_MAIN
