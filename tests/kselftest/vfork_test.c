// SPDX-License-Identifier: GPL-2.0
/*
 * Shells and vfork() (issue 13):
 *   - dash_md5_loop: dash's `for ...; do echo "$i" | md5sum; done |
 *     sha256sum`, checkpointed --tree --kill while an md5sum holds the only
 *     end of its pipe (its echo exited), restored by an amber restore whose
 *     stdin is a pipe that stays open: the loop finishes with the
 *     uninterrupted run's sha256, and the long-lived processes (sh, the loop
 *     shell, sha256sum) have their /proc state back (fidelity.h);
 *   - vfork_child_refused: a process in vfork() whose child sleeps before
 *     exec is refused within seconds naming both PIDs, and both run on.
 * Each test works in TEST_TMP/vfork/<test>/, removed when it passes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "amber_test.h"
#include "fidelity.h"

#define VFORK_TMP	TEST_TMP "/vfork"
#define MAXP		64

struct ids {
	pid_t pid, ppid, pgid, sid;
};

FIXTURE(vfork) {
	char base[256];		/* everything of this test */
	char dir[300];		/* the image store (-D) */
	char out[300];		/* the workload's stdout */
	char rout[300], rerr[300];	/* amber restore's stdout, stderr */
	pid_t root;		/* the workload */
	pid_t restorer;		/* amber restore in the background */
	int rin;		/* amber restore's stdin: a pipe, write end */
	struct ids before[MAXP];
	int nbefore;
	struct fid_snap *fid;	/* /proc state of before[] right before the checkpoint */
};

FIXTURE_SETUP(vfork)
{
	snprintf(self->base, sizeof(self->base), "%s/%s", VFORK_TMP, _metadata->name);
	snprintf(self->dir, sizeof(self->dir), "%s/img", self->base);
	snprintf(self->out, sizeof(self->out), "%s/out", self->base);
	snprintf(self->rout, sizeof(self->rout), "%s/restore.out", self->base);
	snprintf(self->rerr, sizeof(self->rerr), "%s/restore.err", self->base);
	self->root = -1;
	self->restorer = -1;
	self->rin = -1;
	self->nbefore = 0;
	self->fid = NULL;
	ASSERT_EQ(0, fresh_dir(self->dir));
	ASSERT_EQ(0, become_subreaper());
}

FIXTURE_TEARDOWN(vfork)
{
	int i;

	if (self->root > 0) {
		kill_tree(self->root);
		reap_gone(self->root, 5000);
	}
	for (i = 0; i < self->nbefore; i++)
		kill(self->before[i].pid, SIGKILL);
	if (self->restorer > 0) {
		kill_tree(self->restorer);
		reap_gone(self->restorer, 5000);
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	if (self->rin >= 0)
		close(self->rin);
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

/* The tree of root now: pid, parent, group, session of each. */
static int snapshot(pid_t root, struct ids *t, int max)
{
	pid_t pids[MAXP];
	int n = tree_pids(root, pids, max < MAXP ? max : MAXP), i;

	for (i = 0; i < n; i++) {
		t[i].pid = pids[i];
		if (proc_ids(pids[i], &t[i].ppid, &t[i].pgid, &t[i].sid))
			return -1;
	}
	return n;
}

/* before[] is back: PIDs, parents (but the root's), groups, sessions. */
static bool tree_back(FIXTURE_DATA(vfork) *self)
{
	pid_t ppid, pgid, sid;
	int i;

	for (i = 0; i < self->nbefore; i++) {
		const struct ids *b = &self->before[i];

		if (proc_ids(b->pid, &ppid, &pgid, &sid) || !pid_alive(b->pid) ||
		    (i && ppid != b->ppid) || pgid != b->pgid || sid != b->sid)
			return false;
	}
	return true;
}

/*
 * amber restore -D dir in the background, its stdin a pipe that stays open
 * (a terminal's stand-in); waits until before[] is back. 0 or -1.
 */
static int restore_back(FIXTURE_DATA(vfork) *self, int timeout_ms)
{
	struct spawn_opts o = { .out_path = self->rout, .err_path = self->rerr,
				.stdin_pipe = true, .stdin_fd = &self->rin };
	struct args a = { 0 };
	long long end = now_ms() + timeout_ms;

	args_add(&a, AMBER_BIN, "restore", "-D", self->dir, NULL);
	self->restorer = spawn(ARGV(&a), &o);
	if (self->restorer < 0)
		return -1;
	while (now_ms() < end) {
		if (tree_back(self))
			return 0;
		if (waitpid(self->restorer, NULL, WNOHANG) == self->restorer) {
			self->restorer = -1;
			return -1;
		}
		sleep_ms(1);
	}
	return -1;
}

/* Nothing the running loop changes by itself between the two snapshots. */
static const struct fid_expect loop_expect[] = {
	{ NULL, NULL },
};

static void log_cmd(struct __test_metadata *_metadata, const char *what, struct cmd_result *r)
{
	TH_LOG("%s: status %d\nstdout: %.2000s\nstderr: %.2000s", what, exit_code(r->status),
	       r->out ? r->out : "", r->err ? r->err : "");
}

/*
 * Issue 13: dash runs `echo "$i" | md5sum` in a loop; its echo (a forked
 * builtin) exits first, and the loop shell has closed both ends of the pipe,
 * so md5sum holds the only end, on fd 0. amber took that for stdin from
 * outside the tree and gave the restored md5sum amber restore's stdin: the
 * loop hung (or, with /dev/null there, hashed an empty line). amber restore
 * gets a stdin pipe that stays open, so that the old behaviour hangs.
 */
static const char dash_loop[] =
	"for i in $(seq 1 200); do echo \"$i\" | md5sum; done | sha256sum";
/* sha256 of the 200 md5sum lines: the loop run without a checkpoint. */
static const char dash_loop_out[] =
	"987d455c2e638252fb0b0e4274d552d75224adc252b1f74b1bfb94decd40a51d  -\n";

static bool comm_is(pid_t pid, const char *comm)
{
	char path[64], *s;
	bool yes;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	s = slurp(path, NULL);
	yes = s && !strncmp(s, comm, strlen(comm)) && s[strlen(comm)] == '\n';
	free(s);
	return yes;
}

/* Fds of pid whose link is target (skip: that fd of pid itself). */
static int fds_on(pid_t pid, const char *target, int skip)
{
	char path[64], link[320], got[128];
	struct dirent *e;
	int n = 0;
	ssize_t len;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == skip)
			continue;
		snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
		len = readlink(link, got, sizeof(got) - 1);
		if (len > 0) {
			got[len] = 0;
			n += !strcmp(got, target);
		}
	}
	closedir(d);
	return n;
}

static int nr_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/*
 * The moment of the bug: sh, its loop subshell, sha256sum and one md5sum,
 * nothing else; the md5sum's fd 0 is a pipe no other process holds, and the
 * loop shell has only its stdio open. before[] gets the three that live as
 * long as the loop (sh, the loop shell, sha256sum); *md5 the md5sum.
 */
static bool dash_loop_moment(FIXTURE_DATA(vfork) *self, pid_t *md5)
{
	struct ids t[MAXP];
	char path[64], in[128];
	int n = snapshot(self->root, t, MAXP), i, k = 1, fds = 0;
	ssize_t len;

	if (n != 4)
		return false;
	*md5 = -1;
	self->before[0] = t[0];
	for (i = 1; i < n; i++) {
		if (comm_is(t[i].pid, "md5sum"))
			*md5 = t[i].pid;
		else
			self->before[k++] = t[i];
	}
	if (*md5 < 0 || k != 3 || !comm_is(self->before[1].pid, "sh") ||
	    !comm_is(self->before[2].pid, "sha256sum"))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/fd/0", *md5);
	len = readlink(path, in, sizeof(in) - 1);
	if (len <= 0)
		return false;
	in[len] = 0;
	if (strncmp(in, "pipe:", 5))
		return false;
	for (i = 0; i < n; i++)
		fds += fds_on(t[i].pid, in, t[i].pid == *md5 ? 0 : -1);
	self->nbefore = 3;
	return fds == 0 && nr_fds(self->before[1].pid) == 3;
}

TEST_F_TIMEOUT(vfork, dash_md5_loop, 200)
{
	const char *const tree_kill[] = { "--tree", "--kill", NULL };
	struct cmd_result r = { 0 };
	struct ckpt_line c;
	pid_t pids[3];
	char sh[PATH_MAX], ref[320], meta[400], *out;
	struct dirent *e;
	long long end;
	int i, status, procs = 1, tries = 0;
	pid_t md5 = -1;
	DIR *d;

	REQUIRE_AMBER();
	if (!realpath("/bin/sh", sh) || !strstr(sh, "dash"))
		SKIP(return, "/bin/sh is not dash");

	/* The uninterrupted run. */
	snprintf(ref, sizeof(ref), "%s/ref", self->base);
	self->root = spawn_workload((char *const[]){ "/bin/sh", "-c", (char *)dash_loop, NULL },
				    ref);
	ASSERT_LT(0, self->root);
	ASSERT_EQ(0, wait_child(self->root, 120000, &status));
	out = slurp(ref, NULL);
	ASSERT_STREQ(dash_loop_out, out ? out : "");
	free(out);

	/* Again, caught while an md5sum holds the only end of its pipe. */
	self->root = spawn_workload((char *const[]){ "/bin/sh", "-c", (char *)dash_loop, NULL },
				    self->out);
	ASSERT_LT(0, self->root);
	end = now_ms() + 60000;
	for (;;) {
		ASSERT_LT(now_ms(), end) TH_LOG("never saw md5sum alone on its pipe (%d tries)",
						tries);
		ASSERT_EQ(0, waitpid(self->root, NULL, WNOHANG)) TH_LOG("the loop ended first");
		if (!dash_loop_moment(self, &md5)) {
			sleep_ms(1);
			continue;
		}
		tries++;
		for (i = 0; i < 3; i++)
			pids[i] = self->before[i].pid;
		/* The loop's fds are stable then: the snapshot, and still so? */
		fid_free(self->fid);
		self->fid = fid_snap_pids(pids, 3);
		ASSERT_NE(NULL, self->fid);
		if (dash_loop_moment(self, &md5))
			break;
	}
	ASSERT_EQ(0, amber_checkpoint_args(self->root, self->dir, tree_kill, &r, &c))
		log_cmd(_metadata, "checkpoint --tree --kill", &r);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
	snprintf(meta, sizeof(meta), "%s/%u/proc", self->dir, c.number);
	d = opendir(meta);
	ASSERT_NE(NULL, d);
	while ((e = readdir(d)))
		procs += atoi(e->d_name) > 0;
	closedir(d);
	/* 4: md5sum was caught (the case of the bug); else the test is weaker. */
	TH_LOG("md5sum %d alone on its pipe; the checkpoint holds %d processes", md5, procs);
	for (i = 0; i < self->nbefore; i++)
		EXPECT_EQ(0, reap_gone(self->before[i].pid, 10000));
	reap_gone(md5, 10000);
	self->root = -1;

	ASSERT_EQ(0, restore_back(self, 60000)) TH_LOG("the tree never came back");
	EXPECT_FIDELITY(self->fid, loop_expect, 10000);
	ASSERT_EQ(0, wait_child(self->restorer, 60000, &status))
		TH_LOG("the restored loop did not finish within 60 s");
	self->restorer = -1;
	EXPECT_EQ(0, exit_code(status));
	out = slurp(self->out, NULL);
	EXPECT_STREQ(dash_loop_out, out ? out : "");
	free(out);
}

/*
 * Issue 13: a process blocked in vfork() whose child has not executed a
 * program (it sleeps first). The parent cannot stop until the child execs,
 * and the child runs on the parent's memory, which restore cannot
 * recreate: the checkpoint (one process, and --tree) is refused within
 * seconds, not at the 60 s stop timeout, naming both PIDs, and neither
 * process is killed or left stopped: once the child exits, the parent
 * goes on (and exits 7).
 */
static pid_t start_vforker(void)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	setsid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (vfork() == 0) {
		struct timespec ts = { .tv_sec = 100 };

		/* Not allowed by POSIX in a vfork child, fine on Linux. */
		syscall(SYS_nanosleep, &ts, NULL);
		_exit(0);
	}
	_exit(7);
}

TEST_F_TIMEOUT(vfork, vfork_child_refused, 120)
{
	const char *const tree_kill[] = { "--tree", "--kill", NULL };
	const char *const one_kill[] = { "--kill", NULL };
	const char *const *opts[] = { tree_kill, one_kill };
	struct cmd_result r = { 0 };
	pid_t t[MAXP], child = -1;
	char want[96];
	long long t0, ms;
	int i, status, n = 0;

	REQUIRE_AMBER();
	self->root = start_vforker();
	ASSERT_LT(0, self->root);
	for (i = 0; i < 5000 && n != 2; i++, sleep_ms(1))
		n = tree_pids(self->root, t, MAXP);
	ASSERT_EQ(2, n) TH_LOG("no vfork child");
	child = t[1];
	snprintf(want, sizeof(want), "pid %d is blocked in vfork(): its child pid %d",
		 self->root, child);

	for (i = 0; i < 2; i++) {
		t0 = now_ms();
		EXPECT_NE(0, amber_checkpoint_args(self->root, self->dir, opts[i], &r, NULL));
		ms = now_ms() - t0;
		TH_LOG("checkpoint %s: %lld ms, status %d: %s", opts[i][0], ms,
		       exit_code(r.status), r.err);
		EXPECT_GT(10000, ms) TH_LOG("the refusal took %lld ms", ms);
		EXPECT_NE(NULL, strstr(r.err ? r.err : "", want)) TH_LOG("expected \"%s\"", want);
		cmd_result_free(&r);
		/* Both alive, neither stopped nor killed (the parent waits in D). */
		EXPECT_TRUE(pid_alive(self->root) && !strchr("Tt", pid_state(self->root)))
			TH_LOG("parent state '%c'", pid_state(self->root));
		EXPECT_EQ('S', pid_state(child));
	}
	/* The parent runs on once its child exits. */
	ASSERT_EQ(0, kill(child, SIGKILL));
	ASSERT_EQ(0, wait_child(self->root, 10000, &status));
	EXPECT_EQ(7, exit_code(status));
	self->root = -1;
}

TEST_HARNESS_MAIN
