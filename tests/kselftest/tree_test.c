// SPDX-License-Identifier: GPL-2.0
/*
 * Threads and process trees (issue 5), end to end:
 *   - threads: 8 pthreads with SSE accumulators, futex/condvar sleepers:
 *     checkpoint --kill, restore: the same TIDs, output as an uninterrupted run;
 *   - pipeline: sh -c 'produce | transform | consume > out' checkpointed as a
 *     tree while both pipes hold data; the restored consumer's output is byte
 *     for byte an uninterrupted run's;
 *   - family: a parent, workers over socketpairs, one in its own process
 *     group, one in its own session, a zombie, a fork-shared fd, shared
 *     memory: the same PIDs/PGIDs/SIDs after the restore, the zombie is
 *     still a zombie and the parent reaps it with its status;
 *   - make: `make -j2` of tests/data/minimake under `amber run`, the whole
 *     tree SIGKILLed twice at random moments: the build finishes and its
 *     binary runs;
 *   - incremental: the second tree checkpoint is incremental for every
 *     process, and restores;
 *   - refused: a tree whose child holds a TCP listener with a reset
 *     connection waiting in its accept queue is refused naming the fd, and
 *     keeps running;
 *   - cow_shared: a parent and two children sharing 32 MiB of private
 *     anonymous memory copy-on-write (each with a few pages of its own):
 *     restored, the tree's Pss grows by less than half the region (the
 *     shared pages are not doubled) and every process still sees its own
 *     view;
 *   - fifo_pipeline: the same with a named FIFO between transform and
 *     consume;
 *   - many_threads: two processes of 40 threads each come back with every
 *     TID, and run;
 *   - failed_restore_leaves_nothing: amber.ko refuses one worker of the
 *     family tree (AMBER_FAULT): the error names it, no process is left,
 *     and the image then restores;
 *   - damaged_run_in_child: a byte flipped in the pages file of cowshare's
 *     first child, in a run its stub checks and then in one the tool
 *     checks: refused naming the child and its pages file, no process is
 *     left, and the image undamaged again restores.
 *
 * Reference outputs (the workloads run directly) are cached per boot under
 * TEST_TMP/tree/. Each test works in TEST_TMP/tree/<test>/, removed when it
 * passes. AMBER_WORKLOADS_DIR overrides build/workloads; AMBER_TREE_SEED=N
 * replays the random kill delays of the make test (it prints its seed).
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
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "amber_test.h"
#include "fidelity.h"

#define TREE_TMP	TEST_TMP "/tree"
#define MAXP		64

/* About 5-10 s each in the guest. */
static const char *const threads_args[] = { "--steps", "60", "--iters", "600000",
					    "--sleep-ms", "2", NULL };
#define PIPE_LINES	"30000"
static const char *const consume_args = "--delay-ms 10 --chunk 4096";
static const char *const family_args[] = { "--rounds", "400", "--delay-ms", "10", NULL };
/*
 * 10 s of sleep, enough for a checkpoint that does not stop the tree (it runs
 * on for seconds) and a restore; the region is COW_MIB MiB, shared by
 * COW_PROCS processes.
 */
#define COW_MIB		32
#define COW_PROCS	3
#define COW_ROUNDS	100
#define STR_(x)		#x
#define STR(x)		STR_(x)
static const char *const cowshare_args[] = { "--mib", STR(COW_MIB), "--procs", STR(COW_PROCS),
					     "--rounds", STR(COW_ROUNDS), "--delay-ms", "100",
					     NULL };

static const char minimake_line[] =
	"minimake 1.0: primes 1229 fib 210345902 crc ce0c5114 words 9 sorted 1 gcd 21 "
	"isqrt 31622 popcount 24 rebma\n";

/* The pipeline's shell command; with fifo, transform -> consume goes through that FIFO. */
static char *pipeline_cmd(const char *out, const char *fifo)
{
	char *pl = workload_path("pipeline"), *cmd;
	int n;

	if (fifo)
		n = asprintf(&cmd, "mkfifo '%s' && { '%s' produce %s | '%s' transform > '%s' & "
			     "'%s' consume %s < '%s' > '%s'; wait; }", fifo, pl, PIPE_LINES, pl,
			     fifo, pl, consume_args, fifo, out);
	else
		n = asprintf(&cmd, "'%s' produce %s | '%s' transform | '%s' consume %s > '%s'", pl,
			     PIPE_LINES, pl, pl, consume_args, out);
	if (n < 0)
		abort();
	free(pl);
	return cmd;
}

/* argv of a workload (threads, pipeline via sh, cowshare, family) writing its files into work. */
static void workload_argv(const char *name, const char *work, const char *extra_out,
			  struct args *a)
{
	static char path[320];

	if (!strcmp(name, "threads")) {
		args_add(a, workload_path("threads"), NULL);
		args_addv(a, threads_args);
	} else if (!strcmp(name, "pipeline")) {
		args_add(a, "/bin/sh", "-c", pipeline_cmd(extra_out, NULL), NULL);
	} else if (!strcmp(name, "fifo_pipeline")) {
		snprintf(path, sizeof(path), "%s/fifo", work);
		args_add(a, "/bin/sh", "-c", pipeline_cmd(extra_out, path), NULL);
	} else if (!strcmp(name, "cowshare")) {
		args_add(a, workload_path("cowshare"), NULL);
		args_addv(a, cowshare_args);
	} else {
		snprintf(path, sizeof(path), "%s/records", work);
		args_add(a, workload_path("family"), "--file", path, NULL);
		args_addv(a, family_args);
	}
}

/* The result of an uninterrupted run, cached in TREE_TMP/ref-NAME. */
static int reference(const char *name, char *ref, size_t len)
{
	char work[256], tmp[300], out[300];
	struct args a = { 0 };
	int status;
	pid_t pid;

	snprintf(ref, len, "%s/ref-%s", TREE_TMP, name);
	if (count_text(ref, "PASS") == 1)
		return 0;
	snprintf(work, sizeof(work), "%s/refwork-%s", TREE_TMP, name);
	if (fresh_dir(work))
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp", ref);
	snprintf(out, sizeof(out), "%s/out", work);
	workload_argv(name, work, tmp, &a);
	/* The pipeline writes its result itself; sh's own output goes elsewhere. */
	pid = spawn_workload(ARGV(&a), strcmp(name, "pipeline") ? tmp : out);
	if (pid < 0 || wait_child(pid, 200000, &status) || exit_code(status) != 0) {
		kill_and_reap(pid);
		return -1;
	}
	if (count_text(tmp, "PASS") != 1)
		return -1;
	rm_rf(work);
	return rename(tmp, ref);
}

static bool cmdline_has(pid_t pid, const char *word)
{
	char path[64], *s;
	size_t len, i;
	bool yes = false;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	s = slurp(path, &len);
	for (i = 0; s && i < len; i += strlen(s + i) + 1)
		if (!strcmp(s + i, word))
			yes = true;
	free(s);
	return yes;
}

/* Bytes queued in the pipe that pid has as fd (opened through /proc, nothing read). */
static int pipe_queued(pid_t pid, int fd)
{
	char path[64];
	int f, n = -1;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (f < 0)
		return -1;
	if (ioctl(f, FIONREAD, &n))
		n = -1;
	close(f);
	return n;
}

static unsigned int random_seed(void)
{
	const char *env = getenv("AMBER_TREE_SEED");

	return env && *env ? strtoul(env, NULL, 10) : (unsigned int)(now_ms() ^ getpid() << 16);
}

struct ids {
	pid_t pid, ppid, pgid, sid;
	char state;
};

/* The tree of root now: pid, parent, group, session, state of each. */
static int snapshot(pid_t root, struct ids *t, int max)
{
	pid_t pids[MAXP];
	int n = tree_pids(root, pids, max < MAXP ? max : MAXP), i;

	for (i = 0; i < n; i++) {
		t[i].pid = pids[i];
		t[i].state = pid_state(pids[i]);
		if (proc_ids(pids[i], &t[i].ppid, &t[i].pgid, &t[i].sid))
			return -1;
	}
	return n;
}

static const struct ids *find_ids(const struct ids *t, int n, pid_t pid)
{
	int i;

	for (i = 0; i < n; i++)
		if (t[i].pid == pid)
			return &t[i];
	return NULL;
}

/* Sum of `Pss:` of /proc/PID/smaps_rollup over the processes of t, in kB; -1 if unreadable. */
static long tree_pss_kb(const struct ids *t, int n)
{
	long sum = 0, kb;
	int i;

	for (i = 0; i < n; i++) {
		kb = proc_kb(t[i].pid, "smaps_rollup", "Pss:");
		if (kb < 0)
			return -1;
		sum += kb;
	}
	return sum;
}

FIXTURE(tree) {
	char base[256];		/* everything of this test */
	char dir[300];		/* the image store (-D) */
	char work[300];		/* the workload's own files */
	char out[300];		/* the workload's stdout */
	char res[300];		/* the pipeline's result file */
	char rout[300], rerr[300];	/* amber restore's stdout, stderr */
	pid_t root;		/* the workload (root of the tree) */
	pid_t restorer;		/* amber restore / amber run in the background */
	struct ids before[MAXP];
	int nbefore;
	struct fid_snap *fid;	/* /proc state of before[] right before the checkpoint */
};

FIXTURE_SETUP(tree)
{
	snprintf(self->base, sizeof(self->base), "%s/%s", TREE_TMP, _metadata->name);
	snprintf(self->dir, sizeof(self->dir), "%s/img", self->base);
	snprintf(self->work, sizeof(self->work), "%s/work", self->base);
	snprintf(self->out, sizeof(self->out), "%s/out", self->base);
	snprintf(self->res, sizeof(self->res), "%s/result", self->base);
	snprintf(self->rout, sizeof(self->rout), "%s/restore.out", self->base);
	snprintf(self->rerr, sizeof(self->rerr), "%s/restore.err", self->base);
	self->root = -1;
	self->restorer = -1;
	self->nbefore = 0;
	ASSERT_EQ(0, fresh_dir(self->dir));
	ASSERT_EQ(0, fresh_dir(self->work));
	ASSERT_EQ(0, become_subreaper());
}

FIXTURE_TEARDOWN(tree)
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

/*
 * Workload name (workload_argv()) with `opt path` added, started as the
 * tree's root, until its output holds text. 0 or -1.
 */
static int start_workload(FIXTURE_DATA(tree) *self, const char *name, const char *opt,
			  const char *path, const char *text)
{
	struct args a = { 0 };

	workload_argv(name, self->work, NULL, &a);
	args_add(&a, opt, path, NULL);
	self->root = spawn_workload(ARGV(&a), self->out);
	return self->root < 0 || wait_for_text(self->out, text, 120000) ? -1 : 0;
}

/* Kill every process of the tree as snapshotted and wait until all PIDs are free. */
static int kill_all(FIXTURE_DATA(tree) *self)
{
	int i, ret = 0;

	for (i = 0; i < self->nbefore; i++)
		kill(self->before[i].pid, SIGKILL);
	for (i = 0; i < self->nbefore; i++)
		ret |= reap_gone(self->before[i].pid, 10000);
	self->root = -1;
	return ret;
}

/*
 * The tree is back as snapshotted: PIDs, parents (but the root's), groups,
 * sessions (the root's only if root_ids), zombies.
 */
static bool tree_back(const struct ids *b, int nb, const struct ids *a, int na, bool root_ids)
{
	int i;

	for (i = 0; i < nb; i++) {
		const struct ids *x = find_ids(a, na, b[i].pid);

		if (!x || (i && x->ppid != b[i].ppid) ||
		    ((i || root_ids) && (x->pgid != b[i].pgid || x->sid != b[i].sid)) ||
		    (b[i].state == 'Z') != (x->state == 'Z'))
			return false;
	}
	return true;
}

/*
 * amber restore -D dir in the background, until the tree as snapshotted
 * (live members and zombies, ids; nthreads threads in the root if > 0) is
 * back; *after gets its last state. A tree checkpoint restores the root's
 * group and session too; a one-process restore runs in amber restore's.
 * Returns the number of processes seen last, -1 if none.
 */
static int restore_tree(FIXTURE_DATA(tree) *self, struct ids *after, int nthreads,
			int timeout_ms)
{
	struct spawn_opts o = { .out_path = self->rout, .err_path = self->rerr };
	struct args a = { 0 };
	long long end = now_ms() + timeout_ms;
	pid_t t[64];
	int n = -1, m;

	args_add(&a, AMBER_BIN, "restore", "-D", self->dir, NULL);
	self->restorer = spawn(ARGV(&a), &o);
	if (self->restorer < 0)
		return -1;
	while (now_ms() < end) {
		m = snapshot(self->before[0].pid, after, MAXP);
		if (m > 0) {
			n = m;
			if (tree_back(self->before, self->nbefore, after, n, nthreads <= 0) &&
			    (nthreads <= 0 || thread_ids(self->before[0].pid, t, 64) == nthreads))
				return n;
		}
		if (waitpid(self->restorer, NULL, WNOHANG) == self->restorer) {
			self->restorer = -1;
			return n;
		}
		sleep_ms(2);
	}
	return n;
}

/* Wait for amber restore to end; its exit code, -1 on timeout. */
static int wait_restorer(FIXTURE_DATA(tree) *self, int timeout_ms)
{
	int status;

	if (self->restorer < 0)
		return -1;
	if (wait_child(self->restorer, timeout_ms, &status))
		return -1;
	self->restorer = -1;
	return exit_code(status);
}

/* Same PIDs, parents, groups, sessions; zombies still zombies. */
static void same_tree(struct __test_metadata *_metadata, const struct ids *b, int nb,
		      const struct ids *a, int na)
{
	int i;

	for (i = 0; i < nb; i++) {
		const struct ids *x = find_ids(a, na, b[i].pid);

		EXPECT_NE(NULL, x) TH_LOG("pid %d is not back", b[i].pid);
		if (!x)
			continue;
		if (i)	/* the root has amber restore as its parent now */
			EXPECT_EQ(b[i].ppid, x->ppid) TH_LOG("pid %d: parent %d, was %d",
							     b[i].pid, x->ppid, b[i].ppid);
		EXPECT_EQ(b[i].pgid, x->pgid) TH_LOG("pid %d: pgid %d, was %d", b[i].pid,
						     x->pgid, b[i].pgid);
		EXPECT_EQ(b[i].sid, x->sid) TH_LOG("pid %d: sid %d, was %d", b[i].pid, x->sid,
						   b[i].sid);
		if (b[i].state == 'Z')
			EXPECT_EQ('Z', x->state) TH_LOG("pid %d was a zombie, is '%c'", b[i].pid,
							x->state);
	}
}

/* Fields the running workloads change by themselves between the two snapshots. */
static const struct fid_expect tree_expect[] = {
	{ "fdinfo 1: pos", "the workload writes its output while it runs" },
	{ "fdinfo 2: pos", "stderr is the same open file as stdout" },
	{ "fdinfo 3: pos", "family's processes write records to a shared file while they run" },
	{ NULL, NULL },
};

/* And for a one-process checkpoint (no --tree). */
static const struct fid_expect one_expect[] = {
	{ "fdinfo 1: pos", "the workload writes its output while it runs" },
	{ "fdinfo 2: pos", "stderr is the same open file as stdout" },
	FID_EXPECT_ONE_PROCESS,
	{ NULL, NULL },
};

/* The /proc state of every process of before[], right before a checkpoint. */
static int fid_before(FIXTURE_DATA(tree) *self)
{
	pid_t pids[MAXP];
	int i;

	for (i = 0; i < self->nbefore; i++)
		pids[i] = self->before[i].pid;
	fid_free(self->fid);
	self->fid = fid_snap_pids(pids, self->nbefore);
	return self->fid ? 0 : -1;
}

/* The restored tree has the /proc state of fid_before() (but exp). */
static void same_state(struct __test_metadata *_metadata, FIXTURE_DATA(tree) *self,
		       const struct fid_expect *exp)
{
	ASSERT_NE(NULL, self->fid);
	EXPECT_FIDELITY(self->fid, exp ? exp : tree_expect, 10000);
}

/*
 * amber restore brings the tree back as snapshotted (n processes), and it
 * runs to the end with the output of the uninterrupted run ref.
 */
static void restores_as_reference(struct __test_metadata *_metadata, FIXTURE_DATA(tree) *self,
				  const char *ref, int n)
{
	struct ids after[MAXP];

	ASSERT_EQ(n, restore_tree(self, after, 0, 60000)) TH_LOG("the tree never came back");
	same_tree(_metadata, self->before, n, after, n);
	same_state(_metadata, self, NULL);
	ASSERT_EQ(0, wait_restorer(self, 150000)) TH_LOG("amber restore failed");
	EXPECT_EQ(0, files_differ(ref, self->out))
		TH_LOG("%s differs from %s (first difference at byte %lld)", self->out, ref,
		       files_differ(ref, self->out) - 1);
}

static void log_cmd(struct __test_metadata *_metadata, const char *what, struct cmd_result *r)
{
	TH_LOG("%s: status %d\nstdout: %.2000s\nstderr: %.2000s", what, exit_code(r->status),
	       r->out ? r->out : "", r->err ? r->err : "");
}

/* Checkpoint of the tree of root; extra: NULL-terminated options after --tree. */
static int checkpoint_tree(pid_t root, const char *dir, const char *const extra[],
			   struct cmd_result *r, struct ckpt_line *c)
{
	const char *opts[8] = { "--tree" };
	int n = 1;

	while (extra && *extra && n < 7)
		opts[n++] = *extra++;
	opts[n] = NULL;
	return amber_checkpoint_args(root, dir, opts, r, c);
}

/* 8 threads in one process: checkpoint --kill, restore, same TIDs, same result. */
TEST_F_TIMEOUT(tree, threads, 150)
{
	const char *const kill_opt[] = { "--kill", NULL };
	char ref[256], tidf[320], meta[320], *s;
	pid_t tids[16], now[16], got[16];
	struct cmd_result r = { 0 };
	struct ids after[MAXP];
	struct ckpt_line c;
	int i, n, status;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference("threads", ref, sizeof(ref)))
		TH_LOG("uninterrupted run of threads failed");

	snprintf(tidf, sizeof(tidf), "%s/tids", self->base);
	ASSERT_EQ(0, start_workload(self, "threads", "--tids", tidf, "t0 step 15\n"))
		TH_LOG("threads never got to step 15");
	s = slurp(tidf, NULL);
	ASSERT_NE(NULL, s);
	n = sscanf(s, "%d %d %d %d %d %d %d %d %d", &tids[0], &tids[1], &tids[2], &tids[3],
		   &tids[4], &tids[5], &tids[6], &tids[7], &tids[8]);
	free(s);
	ASSERT_EQ(9, n);
	ASSERT_EQ(self->root, tids[0]);
	ASSERT_EQ(9, thread_ids(self->root, now, 16));
	ASSERT_EQ(0, snapshot(self->root, self->before, MAXP) - 1);
	self->nbefore = 1;

	ASSERT_EQ(0, fid_before(self));
	ASSERT_EQ(0, amber_checkpoint_args(self->root, self->dir, kill_opt, &r, &c))
		log_cmd(_metadata, "checkpoint --kill", &r);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
	ASSERT_EQ(self->root, c.pid);
	/* The 8 other threads are in the image. */
	snprintf(meta, sizeof(meta), "%s/%u/meta.img", self->dir, c.number);
	EXPECT_LT(0, section_bytes(meta, AMBER_SEC_THREADS)) TH_LOG("no THREADS section");
	ASSERT_EQ(0, wait_child(self->root, 10000, &status));
	ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		TH_LOG("status %#x after --kill", status);
	ASSERT_EQ(0, reap_gone(self->root, 10000));
	self->root = -1;

	ASSERT_EQ(1, restore_tree(self, after, 9, 60000)) TH_LOG("pid %d never came back",
							       self->before[0].pid);
	/* Every thread with its TID (the last steps take seconds: all still there). */
	n = thread_ids(self->before[0].pid, got, 16);
	ASSERT_EQ(9, n);
	for (i = 0; i < 9; i++)
		EXPECT_EQ(now[i], got[i]) TH_LOG("thread %d: tid %d, was %d", i, got[i], now[i]);
	same_state(_metadata, self, one_expect);
	ASSERT_EQ(0, wait_restorer(self, 150000)) TH_LOG("amber restore failed");
	EXPECT_EQ(0, files_differ(ref, self->out))
		TH_LOG("%s differs from %s (first difference at byte %lld)", self->out, ref,
		       files_differ(ref, self->out) - 1);
}

/* Until pid has n threads (their TIDs, sorted, in tids[64]): 0, or -1 after ms. */
static int wait_threads(pid_t pid, int n, pid_t *tids, int ms)
{
	long long end = now_ms() + ms;

	while (thread_ids(pid, tids, 64) != n) {
		if (now_ms() > end)
			return -1;
		sleep_ms(10);
	}
	return 0;
}

/*
 * Two processes of 40 threads each (more TIDs than one THREADS nest of the
 * test above holds): every thread of both comes back with its TID, and the
 * tree runs on.
 */
TEST_F_TIMEOUT(tree, many_threads, 150)
{
	static pid_t now[2][64], got[64];
	struct cmd_result r = { 0 };
	struct args a = { 0 };
	struct ids after[MAXP];
	struct ckpt_line c;
	int i, k, n;
	off_t size;

	REQUIRE_AMBER();
	args_add(&a, workload_path("treehog"), "--procs", "2", "--threads", "40", "--mib", "1",
		 "--ms", "50", NULL);
	self->root = spawn_workload(ARGV(&a), self->out);
	ASSERT_LT(0, self->root);
	ASSERT_EQ(0, wait_for_text(self->out, "ready", 120000)) TH_LOG("treehog never got ready");
	n = snapshot(self->root, self->before, MAXP);
	ASSERT_EQ(2, n);
	self->nbefore = n;
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, wait_threads(self->before[i].pid, 40, now[i], 30000))
			TH_LOG("pid %d never had 40 threads", self->before[i].pid);

	ASSERT_EQ(0, fid_before(self));
	ASSERT_EQ(0, checkpoint_tree(self->root, self->dir, NULL, &r, &c))
		log_cmd(_metadata, "checkpoint --tree", &r);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
	ASSERT_EQ(0, kill_all(self));

	ASSERT_EQ(2, restore_tree(self, after, 40, 60000)) TH_LOG("the tree never came back");
	for (i = 0; i < 2; i++) {
		/* restore_tree() waits for the root's threads; the child's stub may be later */
		ASSERT_EQ(0, wait_threads(self->before[i].pid, 40, got, 30000))
			TH_LOG("pid %d: not 40 threads", self->before[i].pid);
		for (k = 0; k < 40; k++)
			EXPECT_EQ(now[i][k], got[k]) TH_LOG("pid %d: thread %d is tid %d, was %d",
							    self->before[i].pid, k, got[k],
							    now[i][k]);
	}
	same_state(_metadata, self, NULL);
	size = file_size(self->out);
	EXPECT_EQ(0, wait_for_size(self->out, size + 1, 30000))
		TH_LOG("no tick after the restore: the tree does not run");
}

/* sh -c 'produce | transform | consume > out', restored with data in both pipes. */
static void run_pipeline(struct __test_metadata *_metadata, FIXTURE_DATA(tree) *self, bool fifo)
{
	const char *const kill_opt[] = { "--kill", NULL };
	struct cmd_result r = { 0 };
	struct args a = { 0 };
	struct ids after[MAXP];
	struct ckpt_line c;
	pid_t cons = -1, trans = -1;
	long long queued = 0;
	char ref[256], meta[400];
	DIR *d;
	struct dirent *e;
	int i, n, q1, q2;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference("pipeline", ref, sizeof(ref)))
		TH_LOG("uninterrupted run of the pipeline failed");

	workload_argv(fifo ? "fifo_pipeline" : "pipeline", self->work, self->res, &a);
	self->root = spawn_workload(ARGV(&a), self->out);
	ASSERT_LT(0, self->root);
	ASSERT_EQ(0, wait_for_size(self->res, file_size(ref) / 3, 120000))
		TH_LOG("the pipeline never got a third of the way");
	n = snapshot(self->root, self->before, MAXP);
	ASSERT_EQ(4, n) TH_LOG("sh and three stages expected, %d processes", n);
	self->nbefore = n;
	for (i = 1; i < n; i++) {
		if (cmdline_has(self->before[i].pid, "consume"))
			cons = self->before[i].pid;
		if (cmdline_has(self->before[i].pid, "transform"))
			trans = self->before[i].pid;
	}
	ASSERT_LT(0, cons);
	ASSERT_LT(0, trans);
	/* Data in flight in both pipes. */
	q1 = pipe_queued(trans, 0);
	q2 = pipe_queued(cons, 0);
	EXPECT_LT(0, q1) TH_LOG("producer -> transform pipe: %d bytes", q1);
	EXPECT_LT(0, q2) TH_LOG("transform -> consumer %s: %d bytes", fifo ? "FIFO" : "pipe", q2);

	ASSERT_EQ(0, fid_before(self));
	ASSERT_EQ(0, checkpoint_tree(self->root, self->dir, kill_opt, &r, &c))
		log_cmd(_metadata, "checkpoint --tree --kill", &r);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
	ASSERT_EQ(self->root, c.pid);
	/* The bytes in the pipes are in the image. */
	snprintf(meta, sizeof(meta), "%s/%u/meta.img", self->dir, c.number);
	queued += section_bytes(meta, AMBER_SEC_QUEUES);
	EXPECT_LT(0, section_bytes(meta, AMBER_SEC_TREE)) TH_LOG("no TREE section");
	snprintf(meta, sizeof(meta), "%s/%u/proc", self->dir, c.number);
	d = opendir(meta);
	ASSERT_NE(NULL, d) TH_LOG("no %s", meta);
	while ((e = readdir(d))) {
		char m[700];

		if (atoi(e->d_name) <= 0)
			continue;
		snprintf(m, sizeof(m), "%s/%s/meta.img", meta, e->d_name);
		EXPECT_NE(NULL, find_ids(self->before, n, atoi(e->d_name)))
			TH_LOG("image of pid %s, not in the tree", e->d_name);
		queued += section_bytes(m, AMBER_SEC_QUEUES);
	}
	closedir(d);
	EXPECT_LT(0, queued) TH_LOG("QUEUES sections hold %lld bytes", queued);
	TH_LOG("in the pipes before the checkpoint: %d + %d bytes; QUEUES: %lld bytes", q1, q2,
	       queued);
	/* --kill: the whole tree is dead. */
	for (i = 0; i < n; i++)
		EXPECT_EQ(0, reap_gone(self->before[i].pid, 10000))
			TH_LOG("pid %d still there after --kill", self->before[i].pid);
	ASSERT_EQ(0, kill_all(self));

	ASSERT_EQ(n, restore_tree(self, after, 0, 60000)) TH_LOG("the tree never came back");
	same_tree(_metadata, self->before, n, after, n);
	same_state(_metadata, self, NULL);
	ASSERT_EQ(0, wait_restorer(self, 150000)) TH_LOG("amber restore failed");
	EXPECT_EQ(0, files_differ(ref, self->res))
		TH_LOG("%s differs from %s (first difference at byte %lld)", self->res, ref,
		       files_differ(ref, self->res) - 1);
}

TEST_F_TIMEOUT(tree, pipeline, 150)
{
	run_pipeline(_metadata, self, false);
}

/* The same with a named FIFO between transform and consume, reopened by its path. */
TEST_F_TIMEOUT(tree, fifo_pipeline, 150)
{
	run_pipeline(_metadata, self, true);
}

/*
 * The family workload, past `progress 2`: p gets its PIDS line (parent,
 * workers 0-2, zombie), self->before the tree (5 processes). 0 or -1.
 */
static int start_family(FIXTURE_DATA(tree) *self, pid_t p[5])
{
	char pidf[320], *s;
	int n;

	snprintf(pidf, sizeof(pidf), "%s/pids", self->base);
	if (start_workload(self, "family", "--pids", pidf, "progress 2\n"))
		return -1;
	s = slurp(pidf, NULL);
	n = s ? sscanf(s, "%d %d %d %d %d", &p[0], &p[1], &p[2], &p[3], &p[4]) : 0;
	free(s);
	if (n != 5)
		return -1;
	self->nbefore = snapshot(self->root, self->before, MAXP);
	return self->nbefore == 5 ? 0 : -1;
}

/* Workers over socketpairs, a group, a session, a zombie: all back as they were. */
TEST_F_TIMEOUT(tree, family, 150)
{
	struct cmd_result r = { 0 };
	struct ckpt_line c;
	char ref[256], meta[400];
	pid_t p[5];
	int i, n;
	off_t size;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference("family", ref, sizeof(ref)))
		TH_LOG("uninterrupted run of family failed");

	ASSERT_EQ(0, start_family(self, p)) TH_LOG("family did not start as a tree of 5");
	n = self->nbefore;
	for (i = 0; i < 5; i++)
		ASSERT_NE(NULL, find_ids(self->before, n, p[i]));
	ASSERT_EQ('Z', find_ids(self->before, n, p[4])->state);
	ASSERT_EQ(p[2], find_ids(self->before, n, p[2])->pgid);
	ASSERT_EQ(p[3], find_ids(self->before, n, p[3])->sid);

	/* Without --kill: the tree goes on, then dies. */
	ASSERT_EQ(0, fid_before(self));
	ASSERT_EQ(0, checkpoint_tree(self->root, self->dir, NULL, &r, &c))
		log_cmd(_metadata, "checkpoint --tree", &r);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
	ASSERT_EQ(self->root, c.pid);
	snprintf(meta, sizeof(meta), "%s/%u/meta.img", self->dir, c.number);
	EXPECT_LT(0, section_bytes(meta, AMBER_SEC_TREE)) TH_LOG("no TREE section");
	for (i = 1; i < 4; i++) {
		snprintf(meta, sizeof(meta), "%s/%u/proc/%d/meta.img", self->dir, c.number, p[i]);
		EXPECT_EQ(0, access(meta, R_OK)) TH_LOG("no %s", meta);
	}
	size = file_size(self->out);
	ASSERT_EQ(0, wait_for_size(self->out, size + 1, 60000))
		TH_LOG("no output after the checkpoint: the tree did not resume");
	ASSERT_EQ(0, kill_all(self));

	restores_as_reference(_metadata, self, ref, n);
	EXPECT_EQ(1, count_text(self->out, "zombie reaped status 42\n"));
}

/*
 * A parent and children sharing private anonymous memory copy-on-write: the
 * restore does not double the shared pages (the tree's Pss grows by less
 * than half the region), and every process keeps its own view.
 */
TEST_F_TIMEOUT(tree, cow_shared, 120)
{
	struct cmd_result r = { 0 };
	struct ids after[MAXP];
	struct ckpt_line c;
	char ref[256], pidf[320], *s, *p, *end;
	long pss_before, pss_after;
	off_t size;
	int i, n;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference("cowshare", ref, sizeof(ref)))
		TH_LOG("uninterrupted run of cowshare failed");

	snprintf(pidf, sizeof(pidf), "%s/pids", self->base);
	ASSERT_EQ(0, start_workload(self, "cowshare", "--pids", pidf, "ready\n"))
		TH_LOG("cowshare never got ready");
	n = snapshot(self->root, self->before, MAXP);
	ASSERT_EQ(COW_PROCS, n);
	self->nbefore = n;
	s = slurp(pidf, NULL);
	ASSERT_NE(NULL, s);
	for (i = 0, p = s; i < COW_PROCS; i++, p = end) {
		pid_t pid = strtol(p, &end, 10);

		EXPECT_NE(NULL, find_ids(self->before, n, pid))
			TH_LOG("pid %d of %s is not in the tree", pid, pidf);
	}
	free(s);
	pss_before = tree_pss_kb(self->before, n);
	ASSERT_LT(0, pss_before);

	ASSERT_EQ(0, fid_before(self));
	ASSERT_EQ(0, checkpoint_tree(self->root, self->dir, NULL, &r, &c))
		log_cmd(_metadata, "checkpoint --tree", &r);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
	ASSERT_EQ(self->root, c.pid);
	ASSERT_EQ(0, kill_all(self));

	ASSERT_EQ(n, restore_tree(self, after, 0, 60000)) TH_LOG("the tree never came back");
	same_tree(_metadata, self->before, n, after, n);
	same_state(_metadata, self, NULL);
	/* Released and running: the root prints past what the killed tree printed. */
	size = file_size(self->out);
	ASSERT_EQ(0, wait_for_size(self->out, size + 1, 30000))
		TH_LOG("no output after the restore: the tree does not run");
	pss_after = tree_pss_kb(self->before, n);
	EXPECT_EQ(0, count_text(self->out, "child 1 "))
		TH_LOG("the workload ended before the Pss was measured");
	TH_LOG("Pss of the tree: %ld kB before, %ld kB after the restore", pss_before, pss_after);
	TH_LOG("measured with %d of %d rounds printed", count_text(self->out, "round "), COW_ROUNDS);
	ASSERT_LT(0, pss_after);
	EXPECT_LE(pss_after, pss_before + COW_MIB * 1024 / 2)
		TH_LOG("the restore doubled the shared memory: +%ld kB for a %d MiB region shared "
		       "by %d processes", pss_after - pss_before, COW_MIB, COW_PROCS);
	ASSERT_EQ(0, wait_restorer(self, 60000)) TH_LOG("amber restore failed");
	EXPECT_EQ(0, files_differ(ref, self->out))
		TH_LOG("%s differs from %s (first difference at byte %lld)", self->out, ref,
		       files_differ(ref, self->out) - 1);
}

/*
 * amber restore with a damaged image fails naming want_pid, the pages file
 * and the checksum, and leaves nothing behind: every PID free, nothing ran
 * (the output has not grown).
 */
static void damaged_restore_fails(struct __test_metadata *_metadata, FIXTURE_DATA(tree) *self,
				  pid_t want_pid, const char *pages)
{
	struct cmd_result r = { 0 };
	char who[32];
	off_t size = file_size(self->out);
	int i;

	ASSERT_EQ(0, run_cmdl(120000, &r, AMBER_BIN, "restore", "-D", self->dir, NULL));
	TH_LOG("amber restore: status %d, stderr: %s", exit_code(r.status), r.err ? r.err : "");
	EXPECT_NE(0, exit_code(r.status));
	snprintf(who, sizeof(who), "pid %d", want_pid);
	EXPECT_NE(NULL, r.err ? strstr(r.err, who) : NULL) TH_LOG("the error does not name %s", who);
	EXPECT_NE(NULL, r.err ? strstr(r.err, pages) : NULL)
		TH_LOG("the error does not name %s", pages);
	EXPECT_NE(NULL, r.err ? strstr(r.err, "checksum mismatch") : NULL)
		TH_LOG("the error does not say what is wrong");
	cmd_result_free(&r);
	for (i = 0; i < self->nbefore; i++)
		EXPECT_EQ(0, reap_gone(self->before[i].pid, 10000))
			TH_LOG("pid %d is left behind", self->before[i].pid);
	EXPECT_EQ(size, file_size(self->out)) TH_LOG("a process ran after the failed restore");
}

/*
 * A damaged run in the pages file of the second process of a tree (cowshare:
 * its largest run lies in the memory it inherits from the root, which its
 * stub fixes up and checks itself while the other stubs fill theirs; its
 * first run, in the program's data, is checked by the tool before any stub
 * exists): the restore is refused naming that process and its pages file,
 * and no process of the tree is left. Undamaged again, the image restores.
 */
TEST_F_TIMEOUT(tree, damaged_run_in_child, 180)
{
	struct cmd_result r = { 0 };
	struct ckpt_line c;
	char ref[256], pidf[320], pages[400], name[64], *s;
	pid_t p[2];
	uint64_t bytes, big_bytes;
	off_t off, big_off;
	int n;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference("cowshare", ref, sizeof(ref)))
		TH_LOG("uninterrupted run of cowshare failed");
	snprintf(pidf, sizeof(pidf), "%s/pids", self->base);
	ASSERT_EQ(0, start_workload(self, "cowshare", "--pids", pidf, "ready\n"))
		TH_LOG("cowshare never got ready");
	n = snapshot(self->root, self->before, MAXP);
	ASSERT_EQ(COW_PROCS, n);
	self->nbefore = n;
	s = slurp(pidf, NULL);
	ASSERT_NE(NULL, s);
	ASSERT_EQ(2, sscanf(s, "%d %d", &p[0], &p[1]));
	free(s);
	ASSERT_EQ(self->root, p[0]);
	ASSERT_NE(NULL, find_ids(self->before, n, p[1]));

	ASSERT_EQ(0, fid_before(self));
	ASSERT_EQ(0, checkpoint_tree(self->root, self->dir, NULL, &r, &c))
		log_cmd(_metadata, "checkpoint --tree", &r);
	cmd_result_free(&r);
	ASSERT_EQ(0, kill_all(self));

	snprintf(pages, sizeof(pages), "%s/%u/proc/%d/pages.img", self->dir, c.number, p[1]);
	snprintf(name, sizeof(name), "proc/%d/pages.img", p[1]);
	ASSERT_EQ(0, largest_page_run(pages, &big_off, &big_bytes));
	ASSERT_LE(COW_MIB << 19, big_bytes) TH_LOG("largest run: %llu bytes",
						    (unsigned long long)big_bytes);
	ASSERT_EQ(0, first_page_run(pages, &off, &bytes));
	ASSERT_NE(big_off, off);

	/* in the memory the child's stub checks */
	ASSERT_EQ(0, flip_byte(pages, big_off + big_bytes / 2));
	damaged_restore_fails(_metadata, self, p[1], name);
	ASSERT_EQ(0, flip_byte(pages, big_off + big_bytes / 2));
	/* in a page the tool checks */
	ASSERT_EQ(0, flip_byte(pages, off + bytes / 2));
	damaged_restore_fails(_metadata, self, p[1], name);
	ASSERT_EQ(0, flip_byte(pages, off + bytes / 2));

	restores_as_reference(_metadata, self, ref, n);
}

/*
 * A restore that fails in the middle of the tree (AMBER_FAULT makes amber.ko
 * refuse one worker's request once every process exists) says which process
 * and why, and leaves nothing behind: every PID is free again, nothing ran
 * (the output has not grown), and the same image then restores.
 */
TEST_F_TIMEOUT(tree, failed_restore_leaves_nothing, 150)
{
	struct cmd_result r = { 0 };
	struct ckpt_line c;
	char ref[256], fault[64], who[32];
	pid_t p[5];
	int i, n;
	off_t size;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference("family", ref, sizeof(ref)))
		TH_LOG("uninterrupted run of family failed");
	ASSERT_EQ(0, start_family(self, p)) TH_LOG("family did not start as a tree of 5");
	n = self->nbefore;
	ASSERT_EQ(0, fid_before(self));
	ASSERT_EQ(0, checkpoint_tree(self->root, self->dir, NULL, &r, &c))
		log_cmd(_metadata, "checkpoint --tree", &r);
	cmd_result_free(&r);
	ASSERT_EQ(0, kill_all(self));
	size = file_size(self->out);

	/* worker 1: in its own process group, in the middle of the tree */
	snprintf(fault, sizeof(fault), "restore-refused:%d", p[2]);
	ASSERT_EQ(0, setenv("AMBER_FAULT", fault, 1));
	ASSERT_EQ(0, run_cmdl(120000, &r, AMBER_BIN, "restore", "-D", self->dir, NULL));
	unsetenv("AMBER_FAULT");
	TH_LOG("amber restore with AMBER_FAULT=%s: status %d, stderr: %s", fault,
	       exit_code(r.status), r.err ? r.err : "");
	EXPECT_NE(0, exit_code(r.status));
	snprintf(who, sizeof(who), "pid %d", p[2]);
	EXPECT_NE(NULL, r.err ? strstr(r.err, who) : NULL) TH_LOG("the error does not name %s", who);
	EXPECT_NE(NULL, r.err ? strstr(r.err, "PREFILLED") : NULL)
		TH_LOG("the error does not carry amber.ko's reason");
	cmd_result_free(&r);
	for (i = 0; i < n; i++)
		EXPECT_EQ(0, reap_gone(self->before[i].pid, 10000))
			TH_LOG("pid %d is left behind", self->before[i].pid);
	EXPECT_EQ(size, file_size(self->out)) TH_LOG("a process ran after the failed restore");

	restores_as_reference(_metadata, self, ref, n);
}

/* The second checkpoint of a tree is incremental for every process, and restores. */
TEST_F_TIMEOUT(tree, incremental, 150)
{
	struct cmd_result r = { 0 };
	struct ckpt_line c1, c2;
	char ref[256], meta[400];
	uint32_t v;
	pid_t p[5];
	int i, n;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference("family", ref, sizeof(ref)))
		TH_LOG("uninterrupted run of family failed");

	ASSERT_EQ(0, start_family(self, p)) TH_LOG("family did not start as a tree of 5");
	n = self->nbefore;

	ASSERT_EQ(0, checkpoint_tree(self->root, self->dir, NULL, &r, &c1))
		log_cmd(_metadata, "first checkpoint --tree", &r);
	cmd_result_free(&r);
	ASSERT_EQ(0, wait_for_text(self->out, "progress 3\n", 60000));
	ASSERT_EQ(0, fid_before(self));
	ASSERT_EQ(0, checkpoint_tree(self->root, self->dir, NULL, &r, &c2))
		log_cmd(_metadata, "second checkpoint --tree", &r);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
	ASSERT_EQ(c1.number + 1, c2.number);
	EXPECT_TRUE(c2.incremental) TH_LOG("second checkpoint: full (%s)", c2.reason);
	for (i = 0; i < n; i++) {
		if (self->before[i].state == 'Z')
			continue;
		if (i == 0)
			snprintf(meta, sizeof(meta), "%s/%u/meta.img", self->dir, c2.number);
		else
			snprintf(meta, sizeof(meta), "%s/%u/proc/%d/meta.img", self->dir,
				 c2.number, self->before[i].pid);
		v = 99;
		EXPECT_EQ(0, read_info_u32(meta, AMBER_INFO_PARENT, &v)) TH_LOG("%s", meta);
		EXPECT_EQ(c1.number, v) TH_LOG("pid %d: parent checkpoint %u in %s",
					       self->before[i].pid, v, meta);
	}
	ASSERT_EQ(0, kill_all(self));

	restores_as_reference(_metadata, self, ref, n);
}

/*
 * The same two checkpoints with --compress: every process image of both
 * has pages.img.zst and no pages.img, and the tree restores as the
 * reference from the compressed chains.
 */
TEST_F_TIMEOUT(tree, compressed_incremental, 150)
{
	const char *const compress[] = { "--compress", NULL };
	struct cmd_result r = { 0 };
	struct ckpt_line c[2];
	char ref[256], path[400];
	pid_t p[5];
	int i, k, n;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference("family", ref, sizeof(ref)))
		TH_LOG("uninterrupted run of family failed");

	ASSERT_EQ(0, start_family(self, p)) TH_LOG("family did not start as a tree of 5");
	n = self->nbefore;

	ASSERT_EQ(0, checkpoint_tree(self->root, self->dir, compress, &r, &c[0]))
		log_cmd(_metadata, "first checkpoint --tree --compress", &r);
	cmd_result_free(&r);
	ASSERT_EQ(0, wait_for_text(self->out, "progress 3\n", 60000));
	ASSERT_EQ(0, fid_before(self));
	ASSERT_EQ(0, checkpoint_tree(self->root, self->dir, compress, &r, &c[1]))
		log_cmd(_metadata, "second checkpoint --tree --compress", &r);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
	EXPECT_TRUE(c[1].incremental) TH_LOG("second checkpoint: full (%s)", c[1].reason);
	for (k = 0; k < 2; k++)
		for (i = 0; i < n; i++) {
			if (self->before[i].state == 'Z')
				continue;
			if (i == 0)
				snprintf(path, sizeof(path), "%s/%u/pages.img", self->dir,
					 c[k].number);
			else
				snprintf(path, sizeof(path), "%s/%u/proc/%d/pages.img", self->dir,
					 c[k].number, self->before[i].pid);
			EXPECT_NE(0, access(path, F_OK)) TH_LOG("%s is there", path);
			strcat(path, ".zst");
			EXPECT_EQ(0, access(path, F_OK)) TH_LOG("%s is missing", path);
		}
	ASSERT_EQ(0, kill_all(self));

	restores_as_reference(_metadata, self, ref, n);
}

/*
 * A child with a TCP listener whose waiting connection its client reset:
 * refused naming the fd; nothing stays stopped.
 */
TEST_F_TIMEOUT(tree, refused_tcp, 60)
{
	struct cmd_result r = { 0 };
	struct args a = { 0 };
	char fdname[32], meta[400];
	int i, n, fd = -1, pt, ct;
	long long t0, t;
	char *s, *p;

	REQUIRE_AMBER();
	args_add(&a, workload_path("tcpchild"), NULL);
	self->root = spawn_workload(ARGV(&a), self->out);
	ASSERT_LT(0, self->root);
	ASSERT_EQ(0, wait_for_text(self->out, "child socket fd ", 30000));
	ASSERT_EQ(0, wait_for_text(self->out, "child tick 2\n", 30000));
	s = slurp(self->out, NULL);
	p = s ? strstr(s, "child socket fd ") : NULL;
	ASSERT_NE(NULL, p);
	fd = atoi(p + strlen("child socket fd "));
	free(s);
	n = snapshot(self->root, self->before, MAXP);
	ASSERT_EQ(2, n);
	self->nbefore = n;

	t0 = now_ms();
	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "checkpoint",
			      (snprintf(fdname, sizeof(fdname), "%d", self->root), fdname),
			      "-D", self->dir, "--tree", NULL));
	t = now_ms() - t0;
	EXPECT_NE(0, exit_code(r.status)) log_cmd(_metadata, "checkpoint --tree", &r);
	snprintf(fdname, sizeof(fdname), "fd %d", fd);
	EXPECT_TRUE(strstr(r.err, fdname) != NULL && contains_ci(r.err, "socket"))
		TH_LOG("the refusal does not name '%s' as a socket: '%s'", fdname, r.err);
	EXPECT_LT(t, 20000) TH_LOG("the refusal took %lld ms", t);
	cmd_result_free(&r);
	snprintf(meta, sizeof(meta), "%s/1/meta.img", self->dir);
	EXPECT_NE(0, access(meta, F_OK)) TH_LOG("a refused checkpoint left %s", meta);

	/* Both keep running. */
	for (i = 0; i < n; i++) {
		char st = pid_state(self->before[i].pid);

		EXPECT_TRUE(st && st != 'T' && st != 't' && st != 'Z')
			TH_LOG("pid %d is in state '%c' after the refusal", self->before[i].pid,
			       st);
	}
	pt = count_text(self->out, "parent tick");
	ct = count_text(self->out, "child tick");
	sleep_ms(1000);
	EXPECT_LT(pt, count_text(self->out, "parent tick")) TH_LOG("the parent stopped ticking");
	EXPECT_LT(ct, count_text(self->out, "child tick")) TH_LOG("the child stopped ticking");
}

/*
 * amber run -D DIR -- make -j2 (minimake): the whole tree SIGKILLed twice at
 * random moments after a checkpoint. The build finishes; its binary runs.
 */
TEST_F_TIMEOUT(tree, make_killed_twice, 240)
{
	struct spawn_opts o = { .new_session = true, .pdeathsig = true };
	char src[400], bin[420], log[320], pidf[320], cmd[1400], *s;
	struct cmd_result r = { 0 };
	struct args a = { 0 };
	unsigned int seed = random_seed();
	int k, ckpts, status, rc;
	long long end;

	REQUIRE_AMBER();
	TH_LOG("seed %u (AMBER_TREE_SEED=%u replays the kill delays)", seed, seed);
	srand(seed);
	snprintf(src, sizeof(src), "%s/minimake", self->work);
	snprintf(bin, sizeof(bin), "%s/minimake", src);
	snprintf(log, sizeof(log), "%s/run.log", self->dir);
	snprintf(pidf, sizeof(pidf), "%s/pid", self->dir);
	snprintf(cmd, sizeof(cmd), "cp -r tests/data/minimake '%s' && rm -f '%s'/*.o '%s'",
		 self->work, src, bin);
	ASSERT_EQ(0, system(cmd));
	snprintf(self->rout, sizeof(self->rout), "%s/amber.out", self->base);
	snprintf(self->rerr, sizeof(self->rerr), "%s/amber.err", self->base);
	o.out_path = self->rout;
	o.err_path = self->rerr;
	/* PAUSE: about 2 s more of build, so that two kill rounds always fit in it */
	args_add(&a, AMBER_BIN, "run", "-D", self->dir, "--interval", "1s", "--", "/usr/bin/make",
		 "-C", src, "-j2", "PAUSE=0.4", NULL);
	self->restorer = spawn(ARGV(&a), &o);
	ASSERT_LT(0, self->restorer);

	for (k = 1; k <= 2; k++) {
		pid_t pid;
		int delay, n;

		/* A checkpoint of the (restored) tree, then a random moment. */
		ckpts = count_text(log, " checkpoint ");
		end = now_ms() + 60000;
		while (count_text(log, " checkpoint ") <= ckpts && now_ms() < end &&
		       waitpid(self->restorer, &status, WNOHANG) == 0)
			sleep_ms(20);
		s = slurp(log, NULL);
		ASSERT_LT(ckpts, count_text(log, " checkpoint "))
			TH_LOG("kill %d: no checkpoint (build too short, or amber run ended); "
			       "run.log:\n%.4000s", k, s);
		free(s);
		delay = rand() % 1000;	/* up to one checkpoint interval */
		sleep_ms(delay);
		pid = atoi((s = slurp(pidf, NULL)) ? s : "0");
		free(s);
		ASSERT_LT(0, pid);
		n = kill_tree(pid);
		TH_LOG("kill %d: %d ms after checkpoint %d, %d processes of the tree of %d", k,
		       delay, ckpts + 1, n, pid);
		ASSERT_LT(0, n);
		end = now_ms() + 60000;
		while (count_text(log, " restore ") < k && now_ms() < end &&
		       waitpid(self->restorer, &status, WNOHANG) == 0)
			sleep_ms(20);
		s = slurp(log, NULL);
		ASSERT_LE(k, count_text(log, " restore ")) TH_LOG("no restore %d; run.log:\n%.4000s",
								  k, s);
		free(s);
	}
	ASSERT_EQ(0, wait_child(self->restorer, 200000, &status)) TH_LOG("amber run never ended");
	self->restorer = -1;
	rc = exit_code(status);
	s = slurp(log, NULL);
	EXPECT_EQ(0, rc) TH_LOG("amber run: exit %d; run.log:\n%.4000s", rc, s);
	free(s);
	if (rc) {
		/* What make said: DIR/stderr, as cut back at each restore. */
		snprintf(cmd, sizeof(cmd), "%s/stderr", self->dir);
		s = slurp(cmd, NULL);
		TH_LOG("make's stderr:\n%.4000s", s ? s : "(unreadable)");
		free(s);
	}
	ASSERT_EQ(0, run_cmdl(30000, &r, bin, NULL));
	EXPECT_EQ(0, exit_code(r.status));
	EXPECT_STREQ(minimake_line, r.out);
	cmd_result_free(&r);
}

TEST_HARNESS_MAIN
