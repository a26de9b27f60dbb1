// SPDX-License-Identifier: GPL-2.0
/*
 * Lazy restore (`amber restore --lazy`): the process runs before its
 * private anonymous memory is filled, and a filler copies each run in on
 * first touch and in the background, checked first.
 *
 *   - memhog_verified: a memhog of 64 MiB checkpointed mid-run, restored
 *     lazily, runs to its end and checks every page of its memory (it prints
 *     FAIL on any wrong word); the fill completes; once it has, the process
 *     is checkpointed again;
 *   - damaged_run_kills: one byte of the memhog's largest run flipped: the
 *     process is killed, never prints a tick or a FAIL after the restore, and
 *     the filler's error names the pages file, the run and the pid;
 *   - filler_killed_kills: the filler (held in faults-only mode by
 *     AMBER_FAULT=lazy-stall:PID, so it never completes) is SIGKILLed:
 *     amber.ko kills the process instead of letting it read zeros; while the
 *     fill was incomplete, a checkpoint was refused naming userfaultfd;
 *   - fork_during_fill: a child forked before the fill completes gets its
 *     pages through its own userfaultfd and checks them; the filler's death
 *     kills it too;
 *   - netlink_refuses: AMBER_CMD_LAZY_FILL without PID, with an fd that is
 *     not a userfaultfd or not open, or saying done for nothing held;
 *   - tree_refused: --lazy of a process tree is refused by name.
 *
 * Runs as root (userfaultfd for kernel-mode faults and clone3 set_tid).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/amber.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "amber_test.h"

#define LAZY_TMP	TEST_TMP "/lazy"

FIXTURE(lazy) {
	char base[256];
	char dir[300];		/* image store */
	char out[300];		/* workload output */
	char log[300];		/* the filler's log */
	pid_t pid;
};

FIXTURE_SETUP(lazy)
{
	snprintf(self->base, sizeof(self->base), "%s/%d", LAZY_TMP, getpid());
	snprintf(self->dir, sizeof(self->dir), "%s/img", self->base);
	snprintf(self->out, sizeof(self->out), "%s/memhog.out", self->base);
	snprintf(self->log, sizeof(self->log), "%s/filler.log", self->base);
	self->pid = -1;
	ASSERT_EQ(0, fresh_dir(self->dir));
	ASSERT_EQ(0, become_subreaper());
}

FIXTURE_TEARDOWN(lazy)
{
	kill_and_reap(self->pid);
	if (_metadata->passed)
		rm_rf(self->base);
}

/* A memhog of mib MiB checkpointed (and killed) once it ticked; its pid. */
static pid_t memhog_image(struct __test_metadata *_metadata, FIXTURE_DATA(lazy) *self,
			  const char *mib, const char *ticks)
{
	char *argv[] = { WORKLOAD_DIR "/memhog", "--mib", (char *)mib, "--ms", "100",
			 "--ticks", (char *)ticks, NULL };
	struct cmd_result r;
	struct ckpt_line c;
	pid_t pid;

	self->pid = spawn_workload(argv, self->out);
	EXPECT_LT(0, self->pid);
	EXPECT_EQ(0, wait_for_text(self->out, "tick 1", 60000));
	EXPECT_EQ(0, amber_checkpoint(self->pid, self->dir, true, &r, &c))
		TH_LOG("checkpoint: %s", r.err);
	cmd_result_free(&r);
	pid = self->pid;
	EXPECT_EQ(0, wait_child(pid, 10000, NULL));
	self->pid = -1;
	return pid;
}

/* amber restore -D dir --lazy --detach --lazy-log log; the restored pid or -1. */
static pid_t restore_lazy(struct __test_metadata *_metadata, FIXTURE_DATA(lazy) *self,
			  const char *dir, struct cmd_result *r)
{
	pid_t pid = -1;

	EXPECT_EQ(0, run_cmdl(120000, r, AMBER_BIN, "restore", "-D", dir, "--lazy", "--detach",
			      "--lazy-log", self->log, NULL));
	if (exit_code(r->status) == 0)
		EXPECT_EQ(0, parse_restored_line(r->out, &pid));
	return pid;
}

/* The filler's pid from its first log line ("(filler pid F)"), or -1. */
static pid_t filler_pid(const char *log)
{
	char *text = slurp(log, NULL);
	char *at = text ? strstr(text, "filler pid ") : NULL;
	pid_t pid = at ? (pid_t)atoi(at + strlen("filler pid ")) : -1;

	free(text);
	return pid;
}

TEST_F_TIMEOUT(lazy, memhog_verified, 240)
{
	struct cmd_result r;
	struct ckpt_line c;
	char *log;
	pid_t pid, restored;

	REQUIRE_AMBER();
	pid = memhog_image(_metadata, self, "64", "40");
	ASSERT_FALSE(pid_alive(pid));

	restored = restore_lazy(_metadata, self, self->dir, &r);
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("restore --lazy: %s", r.err);
	cmd_result_free(&r);
	ASSERT_EQ(pid, restored);
	self->pid = restored;

	/* the fill completes, the process goes on with the image's memory */
	ASSERT_EQ(0, wait_for_text(self->log, ": complete, ", 120000));
	log = slurp(self->log, NULL);
	ASSERT_NE(NULL, log);
	TH_LOG("filler: %s", log);
	EXPECT_NE(NULL, strstr(log, "complete, 64 MiB filled")) TH_LOG("%s", log);
	EXPECT_EQ(NULL, strstr(log, "killed"));
	free(log);
	ASSERT_EQ(0, wait_for_text(self->out, "tick 5", 60000));

	/* complete: nothing is registered any more, a checkpoint works */
	ASSERT_EQ(0, amber_checkpoint(pid, self->dir, false, &r, &c))
		TH_LOG("checkpoint after the lazy fill: %s", r.err);
	cmd_result_free(&r);

	/* every page of its memory checked at its end */
	ASSERT_EQ(0, wait_for_text(self->out, "done", 120000));
	EXPECT_EQ(0, count_text(self->out, "FAIL"));
	ASSERT_EQ(0, wait_child(pid, 10000, NULL));
	self->pid = -1;
}

TEST_F_TIMEOUT(lazy, damaged_run_kills, 240)
{
	struct cmd_result r;
	char path[500], want[64];
	uint64_t bytes;
	off_t off;
	char *log;
	int ticks;
	pid_t pid, restored;

	REQUIRE_AMBER();
	pid = memhog_image(_metadata, self, "16", "0");
	ASSERT_FALSE(pid_alive(pid));
	ticks = count_text(self->out, "tick ");

	snprintf(path, sizeof(path), "%s/1/pages.img", self->dir);
	ASSERT_EQ(0, largest_page_run(path, &off, &bytes));
	ASSERT_LE(16 << 20, bytes) TH_LOG("largest run: %llu bytes", (unsigned long long)bytes);
	ASSERT_EQ(0, flip_byte(path, off + bytes / 2));

	/*
	 * The damage is found on the first touch or by the background fill,
	 * which may come before the process runs: then the restore itself
	 * fails (its stub was killed). Either way the process is gone.
	 */
	restored = restore_lazy(_metadata, self, self->dir, &r);
	TH_LOG("restore --lazy: status %d: %s", exit_code(r.status), r.err);
	if (restored > 0)
		self->pid = restored;
	cmd_result_free(&r);
	ASSERT_EQ(0, wait_for_text(self->log, "checksum mismatch", 60000));
	EXPECT_EQ(0, wait_gone(pid, 10000));
	reap_gone(pid, 10000);
	self->pid = -1;

	log = slurp(self->log, NULL);
	ASSERT_NE(NULL, log);
	TH_LOG("filler: %s", log);
	EXPECT_NE(NULL, strstr(log, path)) TH_LOG("does not name %s", path);
	EXPECT_NE(NULL, strstr(log, ": run ")) TH_LOG("does not name the run");
	snprintf(want, sizeof(want), "lazy restore of pid %d", pid);
	EXPECT_NE(NULL, strstr(log, want)) TH_LOG("does not name pid %d", pid);
	snprintf(want, sizeof(want), "pid %d killed", pid);
	EXPECT_NE(NULL, strstr(log, want));
	EXPECT_EQ(NULL, strstr(log, ": complete, "));
	free(log);

	/* it never ran on with its memory: no tick, no FAIL after the restore */
	EXPECT_EQ(ticks, count_text(self->out, "tick "));
	EXPECT_EQ(0, count_text(self->out, "FAIL"));
}

TEST_F_TIMEOUT(lazy, filler_killed_kills, 240)
{
	struct cmd_result r;
	struct ckpt_line c;
	char fault[64];
	pid_t pid, restored, filler;
	int ticks;

	REQUIRE_AMBER();
	pid = memhog_image(_metadata, self, "64", "0");
	ASSERT_FALSE(pid_alive(pid));

	snprintf(fault, sizeof(fault), "lazy-stall:%d", pid);
	ASSERT_EQ(0, setenv("AMBER_FAULT", fault, 1));
	restored = restore_lazy(_metadata, self, self->dir, &r);
	unsetenv("AMBER_FAULT");
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("restore --lazy: %s", r.err);
	cmd_result_free(&r);
	ASSERT_EQ(pid, restored);
	self->pid = restored;

	/* it runs on the pages it touches */
	ticks = count_text(self->out, "tick ");
	ASSERT_EQ(0, wait_for_size(self->out, file_size(self->out) + 30, 60000));
	EXPECT_LT(ticks, count_text(self->out, "tick "));

	/* incomplete: a checkpoint is refused, by name */
	ASSERT_EQ(-1, amber_checkpoint(pid, self->dir, false, &r, &c));
	EXPECT_EQ(1, exit_code(r.status));
	EXPECT_TRUE(contains_ci(r.err, "userfaultfd")) TH_LOG("checkpoint: %s", r.err);
	cmd_result_free(&r);
	ASSERT_TRUE(pid_alive(pid));

	/* the filler dies: so does the process, it never reads a zero page */
	filler = filler_pid(self->log);
	ASSERT_LT(0, filler);
	ASSERT_EQ(0, kill(filler, SIGKILL));
	ASSERT_EQ(0, wait_gone(pid, 10000)) TH_LOG("pid %d survived its filler", pid);
	reap_gone(pid, 10000);
	reap_gone(filler, 10000);
	self->pid = -1;
	EXPECT_EQ(0, count_text(self->out, "FAIL"));
}

/*
 * A process restored lazily forks while most of its memory is missing (the
 * filler in faults-only mode): the child's pages come through its own
 * userfaultfd (the fork event), it checks every word of them. Then the
 * filler dies: amber.ko kills the process and the forked child with it.
 */
TEST_F_TIMEOUT(lazy, fork_during_fill, 240)
{
	char *argv[] = { WORKLOAD_DIR "/forkcheck", "--mib", "32", NULL };
	struct cmd_result r;
	struct ckpt_line c;
	char fault[64], *text, *at;
	pid_t pid, restored, filler, child;

	REQUIRE_AMBER();
	self->pid = spawn_workload(argv, self->out);
	ASSERT_LT(0, self->pid);
	ASSERT_EQ(0, wait_for_text(self->out, "tick 1", 60000));
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, true, &r, &c))
		TH_LOG("checkpoint: %s", r.err);
	cmd_result_free(&r);
	pid = self->pid;
	ASSERT_EQ(0, wait_child(pid, 10000, NULL));
	self->pid = -1;

	snprintf(fault, sizeof(fault), "lazy-stall:%d", pid);
	ASSERT_EQ(0, setenv("AMBER_FAULT", fault, 1));
	restored = restore_lazy(_metadata, self, self->dir, &r);
	unsetenv("AMBER_FAULT");
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("restore --lazy: %s", r.err);
	cmd_result_free(&r);
	ASSERT_EQ(pid, restored);
	self->pid = restored;

	ASSERT_EQ(0, kill(pid, SIGUSR1));
	ASSERT_EQ(0, wait_for_text(self->out, "child ", 120000));
	text = slurp(self->out, NULL);
	ASSERT_NE(NULL, text);
	at = strstr(text, "child ");
	child = (pid_t)atoi(at + strlen("child "));
	EXPECT_NE(NULL, strstr(at, " ok")) TH_LOG("%s", at);
	EXPECT_EQ(NULL, strstr(text, "BAD"));
	free(text);
	ASSERT_LT(0, child);
	ASSERT_TRUE(pid_alive(child));

	filler = filler_pid(self->log);
	ASSERT_LT(0, filler);
	ASSERT_EQ(0, kill(filler, SIGKILL));
	EXPECT_EQ(0, wait_gone(pid, 10000)) TH_LOG("pid %d survived its filler", pid);
	EXPECT_EQ(0, wait_gone(child, 10000)) TH_LOG("child %d survived the filler", child);
	kill(child, SIGKILL);
	reap_gone(child, 10000);
	reap_gone(pid, 10000);
	reap_gone(filler, 10000);
	self->pid = -1;
}

/* AMBER_CMD_LAZY_FILL checks what it is given, and says why it refuses. */
TEST_F_TIMEOUT(lazy, netlink_refuses, 60)
{
	struct nl_reply rep;
	struct nlbuf b;
	int sk, family, fd;

	REQUIRE_AMBER();
	sk = nl_open();
	ASSERT_LE(0, sk);
	family = nl_family(sk);
	ASSERT_LT(0, family);
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);

	/* no PID */
	nl_start(&b, family, AMBER_CMD_LAZY_FILL, 0);
	nl_put_u32(&b, AMBER_A_UFFD_FD, fd);
	ASSERT_EQ(0, nl_transact(sk, &b, &rep, 5000));
	EXPECT_EQ(-EINVAL, rep.error);
	EXPECT_TRUE(contains_ci(rep.msg, "PID")) TH_LOG("%s", rep.msg);

	/* not a userfaultfd */
	nl_start(&b, family, AMBER_CMD_LAZY_FILL, 0);
	nl_put_u32(&b, AMBER_A_PID, getpid());
	nl_put_u32(&b, AMBER_A_UFFD_FD, fd);
	ASSERT_EQ(0, nl_transact(sk, &b, &rep, 5000));
	EXPECT_EQ(-EINVAL, rep.error);
	EXPECT_TRUE(contains_ci(rep.msg, "not a userfaultfd")) TH_LOG("%s", rep.msg);

	/* not an open fd */
	nl_start(&b, family, AMBER_CMD_LAZY_FILL, 0);
	nl_put_u32(&b, AMBER_A_PID, getpid());
	nl_put_u32(&b, AMBER_A_UFFD_FD, 100000);
	ASSERT_EQ(0, nl_transact(sk, &b, &rep, 5000));
	EXPECT_EQ(-EBADF, rep.error);
	EXPECT_TRUE(contains_ci(rep.msg, "UFFD_FD")) TH_LOG("%s", rep.msg);

	/* no such process */
	nl_start(&b, family, AMBER_CMD_LAZY_FILL, 0);
	nl_put_u32(&b, AMBER_A_PID, 4000000);
	nl_put_u32(&b, AMBER_A_UFFD_FD, fd);
	ASSERT_EQ(0, nl_transact(sk, &b, &rep, 5000));
	EXPECT_NE(0, rep.error);

	/* done for a fill this socket does not hold */
	nl_start(&b, family, AMBER_CMD_LAZY_FILL, 0);
	nl_put_u32(&b, AMBER_A_PID, getpid());
	ASSERT_EQ(0, nl_transact(sk, &b, &rep, 5000));
	EXPECT_EQ(-ENOENT, rep.error);
	EXPECT_TRUE(contains_ci(rep.msg, "fills no process")) TH_LOG("%s", rep.msg);

	close(fd);
	close(sk);
}

TEST_F_TIMEOUT(lazy, tree_refused, 120)
{
	char data[400];
	char *argv[] = { WORKLOAD_DIR "/family", "--file", data, NULL };
	const char *extra[] = { "--tree", "--kill", NULL };
	struct cmd_result r;
	struct ckpt_line c;

	REQUIRE_AMBER();
	snprintf(data, sizeof(data), "%s/family.data", self->base);
	self->pid = spawn_workload(argv, self->out);
	ASSERT_LT(0, self->pid);
	ASSERT_EQ(0, wait_for_text(self->out, "progress 1", 60000));
	ASSERT_EQ(0, amber_checkpoint_args(self->pid, self->dir, extra, &r, &c));
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("checkpoint --tree: %s", r.err);
	cmd_result_free(&r);
	reap_gone(self->pid, 10000);

	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "restore", "-D", self->dir, "--lazy",
			      "--detach", NULL));
	EXPECT_EQ(1, exit_code(r.status));
	EXPECT_TRUE(contains_ci(r.err, "--lazy")) TH_LOG("restore: %s", r.err);
	EXPECT_TRUE(contains_ci(r.err, "tree")) TH_LOG("restore: %s", r.err);
	cmd_result_free(&r);
	EXPECT_FALSE(pid_alive(self->pid));
	self->pid = -1;
}

TEST_HARNESS_MAIN
