// SPDX-License-Identifier: GPL-2.0
/*
 * End to end: checkpoint a workload mid-way, kill it, restore it and check
 * that it finishes with exactly the output of an uninterrupted run, with
 * the same PID.
 *
 * Each variant names a workload (fpu, memfile, python3, gzip) and how the
 * checkpoint is taken (--kill or kill -9 afterwards) and restored (waiting
 * `amber restore`, or --detach). The reference output of each workload is
 * computed once per boot and cached under /tmp/amber-tests/.
 *
 * The workload's /proc state right before the checkpoint is compared with
 * that of the restored process (fidelity.h); the fields it changes by
 * itself while it runs are named in e2e_expect.
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

#include "kselftest_harness.h"
#include "amber_test.h"
#include "fidelity.h"

#define E2E_TMP		TEST_TMP "/e2e"
#define GZIP_INPUT	TEST_TMP "/gzip-input.txt"
#define GZIP_MIB	6

/* Prints deterministic progress; a few seconds under TCG. */
static const char py_script[] =
	"import sys, hashlib\n"
	"n = int(sys.argv[1]); h = b'amber'; acc = 1\n"
	"for i in range(n):\n"
	"    for j in range(30000):\n"
	"        acc = (acc * 6364136223846793005 + j) & 0xffffffffffffffff\n"
	"    h = hashlib.sha256(h + acc.to_bytes(8, 'little')).digest()\n"
	"    print('step', i, h.hex()[:16], flush=True)\n"
	"print('final', h.hex())\n"
	"print('PASS')\n";

enum workload { W_FPU, W_MEMFILE, W_PYTHON, W_GZIP };

static const char *const wname[] = { "fpu", "memfile", "python3", "gzip" };

/* Text that shows the workload is about a third of the way through. */
static const char *const wmarker[] = {
	"step 12 ", "step 12 ok", "step 12 ", NULL,
};

/* argv for a workload writing its files (if any) under work. */
static void workload_argv(enum workload w, const char *work, char **argv)
{
	static char dirarg[256];
	int n = 0;

	switch (w) {
	case W_FPU:
		argv[n++] = WORKLOAD_DIR "/fpu";
		argv[n++] = "--steps";
		argv[n++] = "40";
		argv[n++] = "--iters";
		argv[n++] = "150000";
		break;
	case W_MEMFILE:
		snprintf(dirarg, sizeof(dirarg), "%s", work);
		argv[n++] = WORKLOAD_DIR "/memfile";
		argv[n++] = "--dir";
		argv[n++] = dirarg;
		argv[n++] = "--steps";
		argv[n++] = "60";
		argv[n++] = "--sleep-ms";
		argv[n++] = "80";
		break;
	case W_PYTHON:
		argv[n++] = "/usr/bin/python3";
		argv[n++] = "-S";
		argv[n++] = "-c";
		argv[n++] = (char *)py_script;
		argv[n++] = "40";
		break;
	case W_GZIP:
		argv[n++] = "/bin/gzip";
		argv[n++] = "-c";
		argv[n++] = "-9";
		argv[n++] = "-n";
		argv[n++] = GZIP_INPUT;
		break;
	}
	argv[n] = NULL;
}

/* A few MiB of text that compresses slowly: pseudo-random words. */
static int make_gzip_input(void)
{
	static const char *const words[] = {
		"amber", "checkpoint", "restore", "kernel", "module", "page", "register",
		"signal", "netlink", "image", "process", "memory", "vector", "stack",
		"heap", "file", "offset", "mapping", "thread", "session",
	};
	size_t cap = GZIP_MIB << 20, n = 0;
	char *buf, tmp[256];
	uint64_t x = 88172645463325252ULL;
	int ret;

	if (file_size(GZIP_INPUT) == (off_t)cap)
		return 0;
	buf = malloc(cap);
	if (!buf)
		return -1;
	while (n < cap) {
		int len;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		len = snprintf(tmp, sizeof(tmp), "%s%c%llu%s", words[x % 20],
			       "  ,.;:\n-"[(x >> 8) % 8], (unsigned long long)(x >> 40) % 1000,
			       (x >> 20) % 5 ? " " : "\n");
		if (n + len > cap)
			len = cap - n;
		memcpy(buf + n, tmp, len);
		n += len;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", GZIP_INPUT);
	ret = write_file(tmp, buf, cap);
	free(buf);
	return ret ? ret : rename(tmp, GZIP_INPUT);
}

/* The output of an uninterrupted run, cached in TEST_TMP/ref-NAME. */
static int reference(enum workload w, char *ref, size_t len)
{
	char work[256], tmp[300], *argv[16];
	int status;
	pid_t pid;

	snprintf(ref, len, "%s/ref-%s", TEST_TMP, wname[w]);
	if (file_size(ref) > 0)
		return 0;
	snprintf(work, sizeof(work), "%s/refwork-%s", TEST_TMP, wname[w]);
	if (fresh_dir(work))
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp", ref);
	workload_argv(w, work, argv);
	pid = spawn_workload(argv, tmp);
	if (pid < 0 || wait_child(pid, 170000, &status) || exit_code(status) != 0) {
		kill_and_reap(pid);
		return -1;
	}
	rm_rf(work);
	return rename(tmp, ref);
}

/* Fields the running workloads change by themselves between the two snapshots. */
static const struct fid_expect e2e_expect[] = {
	{ "fdinfo 1: pos", "the workload writes its output while it runs" },
	{ "fdinfo 3: pos", "memfile reads a file sequentially" },
	{ "fdinfo 4: pos", "gzip reads its input file" },
	{ "fdinfo 5: pos", "memfile appends to its log at each step" },
	{ "fd 6: target", "memfile opens its private-mapping file at each step" },
	{ "fdinfo 6: *", "the same" },
	FID_EXPECT_ONE_PROCESS,
	{ NULL, NULL },
};

/* And stdout, a pipe to the test that died with the crash. */
static const struct fid_expect e2e_pipe_expect[] = {
	{ "fd 1: target", "stdout was a pipe to the outside: the restored process inherits "
	  "amber restore's (design.md, shared objects)" },
	{ "fdinfo 1: *", "the same" },
	FID_EXPECT_ONE_PROCESS,
	{ NULL, NULL },
};

FIXTURE(e2e) {
	char base[256];		/* everything of this test lives here */
	char dir[300];		/* the image store (-D) */
	char work[300];		/* the workload's own files */
	char out[300];		/* the workload's stdout */
	char err[300];
	pid_t pid;		/* the workload */
	pid_t restorer;		/* amber restore, when run in the background */
	int pipe_fd;
};

FIXTURE_VARIANT(e2e) {
	enum workload w;
	bool kill;		/* amber checkpoint --kill, else kill -9 afterwards */
	bool detach;		/* amber restore --detach */
	bool pipe_stdio;	/* stdout is a pipe that is gone after the crash */
};

FIXTURE_VARIANT_ADD(e2e, fpu_kill) { .w = W_FPU, .kill = true };
FIXTURE_VARIANT_ADD(e2e, fpu_nokill) { .w = W_FPU, .kill = false };
FIXTURE_VARIANT_ADD(e2e, fpu_detach) { .w = W_FPU, .kill = true, .detach = true };
FIXTURE_VARIANT_ADD(e2e, fpu_pipe) { .w = W_FPU, .kill = true, .pipe_stdio = true };
FIXTURE_VARIANT_ADD(e2e, memfile_kill) { .w = W_MEMFILE, .kill = true };
FIXTURE_VARIANT_ADD(e2e, memfile_nokill) { .w = W_MEMFILE, .kill = false };
FIXTURE_VARIANT_ADD(e2e, python3_kill) { .w = W_PYTHON, .kill = true };
FIXTURE_VARIANT_ADD(e2e, python3_nokill) { .w = W_PYTHON, .kill = false, .detach = true };
FIXTURE_VARIANT_ADD(e2e, gzip_kill) { .w = W_GZIP, .kill = true };
FIXTURE_VARIANT_ADD(e2e, gzip_nokill) { .w = W_GZIP, .kill = false };

FIXTURE_SETUP(e2e)
{
	snprintf(self->base, sizeof(self->base), "%s/%s-%s%s%s%s", E2E_TMP, wname[variant->w],
		 variant->kill ? "kill" : "nokill", variant->detach ? "-detach" : "",
		 variant->pipe_stdio ? "-pipe" : "", "");
	snprintf(self->dir, sizeof(self->dir), "%s/img", self->base);
	snprintf(self->work, sizeof(self->work), "%s/work", self->base);
	snprintf(self->out, sizeof(self->out), "%s/out", self->base);
	snprintf(self->err, sizeof(self->err), "%s/err", self->base);
	self->pid = -1;
	self->restorer = -1;
	self->pipe_fd = -1;
	ASSERT_EQ(0, fresh_dir(self->dir));
	ASSERT_EQ(0, fresh_dir(self->work));
	ASSERT_EQ(0, become_subreaper());
}

FIXTURE_TEARDOWN(e2e)
{
	kill_and_reap(self->pid);
	kill_and_reap(self->restorer);
	if (self->pipe_fd >= 0)
		close(self->pipe_fd);
	if (_metadata->passed)
		rm_rf(self->base);
}

/* Append whatever the pipe holds to path; returns bytes read, -1 at EOF. */
static ssize_t drain(int fd, const char *path, bool block)
{
	char buf[65536];
	ssize_t n, total = 0;
	int out = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);

	fcntl(fd, F_SETFL, block ? 0 : O_NONBLOCK);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (write(out, buf, n) != n)
			break;
		total += n;
	}
	close(out);
	return n == 0 ? -1 : total;
}

/* Wait until the workload is a third through its run. */
static int wait_midway(FIXTURE_DATA(e2e) *self, const FIXTURE_VARIANT(e2e) *variant,
		       const char *ref)
{
	const char *marker = wmarker[variant->w];
	long long end = now_ms() + 120000;

	if (!variant->pipe_stdio)
		return marker ? wait_for_text(self->out, marker, 120000) :
				wait_for_size(self->out, file_size(ref) / 3, 120000);
	while (now_ms() < end) {
		drain(self->pipe_fd, self->out, false);
		if (count_text(self->out, marker))
			return 0;
		sleep_ms(20);
	}
	return -1;
}

TEST_F_TIMEOUT(e2e, checkpoint_restore, 180)
{
	struct spawn_opts o = { .err_path = self->err, .new_session = true, .pdeathsig = true };
	char ref[256], restore_out[320], restore_err[320], *argv[16], pidbuf[32];
	struct cmd_result r = { 0 };
	struct ckpt_line c;
	const struct fid_expect *fexp = variant->pipe_stdio ? e2e_pipe_expect : e2e_expect;
	struct fid_snap *before;
	bool seen = false, checked = false;
	pid_t restored;
	int status;
	off_t size;

	REQUIRE_AMBER();
	if (variant->w == W_GZIP)
		ASSERT_EQ(0, make_gzip_input());
	ASSERT_EQ(0, reference(variant->w, ref, sizeof(ref)))
		TH_LOG("uninterrupted run of %s failed", wname[variant->w]);

	/* Run it again and checkpoint it a third of the way through. */
	workload_argv(variant->w, self->work, argv);
	if (variant->pipe_stdio) {
		o.stdout_pipe = true;
		o.stdout_fd = &self->pipe_fd;
	} else {
		o.out_path = self->out;
	}
	self->pid = spawn(argv, &o);
	ASSERT_LT(0, self->pid);
	ASSERT_EQ(0, wait_midway(self, variant, ref))
		TH_LOG("%s never got a third of the way", wname[variant->w]);

	before = fid_snap_pids(&self->pid, 1);
	ASSERT_NE(NULL, before);
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, variant->kill, &r, &c))
		TH_LOG("checkpoint: status %d, stdout '%s', stderr '%s'", r.status, r.out, r.err);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
	ASSERT_EQ(1, c.number);
	ASSERT_EQ(self->pid, c.pid);
	ASSERT_LT(0, c.bytes);
	ASSERT_LE(c.stopped_ms, c.total_ms);

	if (variant->kill) {
		/* --kill: dead without running another instruction. */
		ASSERT_EQ(0, wait_child(self->pid, 10000, &status));
		ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
			TH_LOG("status %#x after --kill", status);
	} else {
		/* It keeps running: its output grows. Then it crashes. */
		ASSERT_TRUE(pid_alive(self->pid))
			TH_LOG("pid %d gone right after the checkpoint (state '%c'%s)", self->pid,
			       pid_state(self->pid), count_text(self->out, "PASS") ?
			       ", it had finished: the workload is too short for this machine" : "");
		size = file_size(self->out);
		ASSERT_EQ(0, wait_for_size(self->out, size + 1, 60000))
			TH_LOG("no output after the checkpoint: the target did not resume");
		ASSERT_EQ(0, kill(self->pid, SIGKILL));
		ASSERT_EQ(0, wait_child(self->pid, 10000, &status));
	}
	self->pid = -1;

	/* The image reads back with every checksum intact. */
	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "inspect", "-D", self->dir, NULL));
	EXPECT_EQ(0, exit_code(r.status)) TH_LOG("inspect: %s", r.err);
	snprintf(pidbuf, sizeof(pidbuf), "pid %d", c.pid);
	EXPECT_NE(NULL, strstr(r.out, pidbuf)) TH_LOG("inspect does not show %s", pidbuf);
	cmd_result_free(&r);
	if (variant->pipe_stdio) {
		/* Everything it wrote before it died; the rest comes through restore. */
		while (drain(self->pipe_fd, self->out, true) >= 0)
			;
		close(self->pipe_fd);
		self->pipe_fd = -1;
	}
	ASSERT_FALSE(pid_alive(c.pid));

	/* Restore. */
	snprintf(restore_out, sizeof(restore_out), "%s/restore.out", self->base);
	snprintf(restore_err, sizeof(restore_err), "%s/restore.err", self->base);
	if (variant->detach) {
		ASSERT_EQ(0, run_cmdl(120000, &r, AMBER_BIN, "restore", "-D", self->dir,
				      "--detach", NULL));
		ASSERT_EQ(0, exit_code(r.status))
			TH_LOG("restore: status %d, stdout '%s', stderr '%s'", r.status, r.out, r.err);
		ASSERT_EQ(0, parse_restored_line(r.out, &restored))
			TH_LOG("restore printed '%s'", r.out);
		cmd_result_free(&r);
		ASSERT_EQ(c.pid, restored);
		EXPECT_FIDELITY(before, fexp, 10000);
		/* We are a subreaper: the detached process ends up as our child. */
		ASSERT_EQ(0, wait_child(restored, 170000, &status))
			TH_LOG("restored process did not end or was not reparented to the subreaper");
		ASSERT_EQ(0, exit_code(status));
	} else {
		struct spawn_opts ro = { .out_path = restore_out, .err_path = restore_err };
		long long end = now_ms() + 170000;
		char stat[64], *s;

		argv[0] = AMBER_BIN;
		argv[1] = "restore";
		argv[2] = "-D";
		argv[3] = self->dir;
		argv[4] = NULL;
		self->restorer = spawn(argv, &ro);
		ASSERT_LT(0, self->restorer);
		/* The original PID shows up as a child of amber restore. */
		snprintf(stat, sizeof(stat), "/proc/%d/stat", c.pid);
		snprintf(pidbuf, sizeof(pidbuf), " %d ", self->restorer);
		while (now_ms() < end) {
			if (!seen && (s = slurp(stat, NULL))) {
				char *p = strrchr(s, ')');

				seen = p && !strncmp(p + 3, pidbuf, strlen(pidbuf));
				free(s);
			}
			if (seen && !checked) {
				EXPECT_FIDELITY(before, fexp, 10000);
				checked = true;
			}
			if (waitpid(self->restorer, &status, WNOHANG) == self->restorer)
				break;
			sleep_ms(seen ? 20 : 2);
		}
		ASSERT_TRUE(now_ms() < end) TH_LOG("amber restore did not finish");
		self->restorer = -1;
		s = slurp(restore_err, NULL);
		ASSERT_EQ(0, exit_code(status)) TH_LOG("restore: status %d, stderr '%s'", status, s);
		free(s);
		ASSERT_TRUE(seen) TH_LOG("pid %d never appeared as amber restore's child", c.pid);
	}
	fid_free(before);

	/* The result is exactly that of an uninterrupted run. */
	if (variant->pipe_stdio) {
		char *rest = slurp(restore_out, &(size_t){ 0 });
		int fd = open(self->out, O_WRONLY | O_APPEND);

		ASSERT_NE(NULL, rest);
		ASSERT_EQ((ssize_t)strlen(rest), write(fd, rest, strlen(rest)));
		close(fd);
		free(rest);
	}
	ASSERT_EQ(0, files_differ(ref, self->out))
		TH_LOG("%s differs from %s (first difference at byte %lld)", self->out, ref,
		       files_differ(ref, self->out) - 1);
}

TEST_HARNESS_MAIN
