// SPDX-License-Identifier: GPL-2.0
/*
 * amber run and amber bench overhead, end to end: the compute workload is
 * killed from outside (kill -9, at random moments), crashes by itself
 * (SIGSEGV once, or every time), exits with a status, loses its supervisor;
 * each time the output must end up byte for byte that of an uninterrupted
 * run, and run.log must tell what happened. Then the bench's CSV.
 *
 * The reference outputs (compute run directly, no amber) are computed once
 * per boot and cached under TEST_TMP/run/. Every test works in its own
 * TEST_TMP/run/<test>/, removed when it passes.
 *
 * AMBER_RUN_SEED=N replays the random kill delays of a previous run (each
 * test that draws them prints its seed).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
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

#define RUN_TMP		TEST_TMP "/run"
#define COMPUTE		WORKLOAD_DIR "/compute"

struct workload {
	const char *name;
	const char *const argv[16];
};

/*
 * 300 steps of about 50 ms in the TCG guest (each step rewrites 1 MiB of
 * the 16 MiB array, 200 rounds per word): about 15 s (as on an idle host).
 */
static const struct workload wl_long = { "long", {
	COMPUTE, "--mib", "16", "--touch-kib", "1024", "--work", "200", "--steps", "300", NULL,
} };
/* The same, 100 steps: about 5 s. */
static const struct workload wl_short = { "short", {
	COMPUTE, "--mib", "16", "--touch-kib", "1024", "--work", "200", "--steps", "100", NULL,
} };
/* A step of wl_short about 4 s in: well after a first checkpoint at 1 s. */
#define SHORT_CRASH_STEP "75"

/* The output of an uninterrupted run without amber, cached in RUN_TMP/ref-NAME. */
static int reference(const struct workload *w, char *ref, size_t len)
{
	char tmp[300];
	int status;
	pid_t pid;

	snprintf(ref, len, "%s/ref-%s", RUN_TMP, w->name);
	if (count_text(ref, "done steps=") == 1)
		return 0;
	mkdir(TEST_TMP, 0755);
	mkdir(RUN_TMP, 0755);
	snprintf(tmp, sizeof(tmp), "%s.tmp", ref);
	pid = spawn_workload((char *const *)w->argv, tmp);
	if (pid < 0 || wait_child(pid, 120000, &status) || exit_code(status) != 0) {
		kill_and_reap(pid);
		return -1;
	}
	if (count_text(tmp, "done steps=") != 1)
		return -1;
	return rename(tmp, ref);
}

/* Offset of the first occurrence of needle in a file, -1 if none. */
static long long text_offset(const char *path, const char *needle)
{
	char *s = slurp(path, NULL), *p;
	long long off;

	if (!s)
		return -1;
	p = strstr(s, needle);
	off = p ? p - s : -1;
	free(s);
	return off;
}

/* 0 if the file holds exactly the first len bytes of ref. */
static int is_prefix_of(const char *path, const char *ref, size_t len)
{
	size_t la, lb;
	char *a = slurp(path, &la), *b = slurp(ref, &lb);
	int ret = a && b && la == len && lb >= len && !memcmp(a, b, len) ? 0 : -1;

	free(a);
	free(b);
	return ret;
}

/*
 * run.log lines whose event (the word after the timestamp) is event and,
 * if with is not NULL, that contain with too.
 */
static int log_count(const char *log, const char *event, const char *with)
{
	char *s = slurp(log, NULL), *line, *save = NULL;
	size_t len = strlen(event);
	int n = 0;

	if (!s)
		return 0;
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *ev = strchr(line, ' ');

		if (!ev || strncmp(ev + 1, event, len) || (ev[1 + len] && ev[1 + len] != ' '))
			continue;
		if (with && !strstr(ev, with))
			continue;
		n++;
	}
	free(s);
	return n;
}

/*
 * The nth (from 1) line of event: its time of day in ms, and the number after
 * " key=" in *value if key is not NULL. -1 if there is no such line.
 */
static long long log_event(const char *log, const char *event, int nth, const char *key,
			   double *value)
{
	char *s = slurp(log, NULL), *line, *save = NULL, needle[64];
	size_t len = strlen(event);
	long long ms = -1;
	int h, m, sec, milli;

	if (!s)
		return -1;
	snprintf(needle, sizeof(needle), " %s=", key ? key : "");
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *ev = strchr(line, ' '), *k;

		if (!ev || strncmp(ev + 1, event, len) || (ev[1 + len] && ev[1 + len] != ' ') ||
		    --nth)
			continue;
		if (sscanf(line, "%*d-%*d-%*dT%d:%d:%d.%d", &h, &m, &sec, &milli) == 4)
			ms = ((h * 60LL + m) * 60 + sec) * 1000 + milli;
		if (key && (!(k = strstr(ev, needle)) || sscanf(k + strlen(needle), "%lf", value) != 1))
			ms = -1;
		break;
	}
	free(s);
	return ms;
}

/*
 * Every line `<YYYY-MM-DDTHH:MM:SS.mmm...> <event> ...` with a known event.
 * Returns NULL, or the first bad line (malloc'ed).
 */
static char *log_bad_line(const char *log)
{
	static const char *const events[] = {
		"start", "resume", "checkpoint", "checkpoint-failed", "interval", "exit",
		"died", "restore", "restore-failed", "fresh-start", "give-up", "stop",
		"retain-failed",
	};
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddd";
	char *s = slurp(log, NULL), *line, *save = NULL, *bad = NULL;
	size_t i;

	if (!s)
		return strdup("(no run.log)");
	for (line = strtok_r(s, "\n", &save); line && !bad; line = strtok_r(NULL, "\n", &save)) {
		char *ev = strchr(line, ' ');
		bool ok = ev && ev - line >= (long)strlen(shape);

		for (i = 0; ok && i < strlen(shape); i++)
			ok = shape[i] == 'd' ? isdigit((unsigned char)line[i]) : line[i] == shape[i];
		if (ok) {
			size_t len = strcspn(ev + 1, " ");

			ok = false;
			for (i = 0; i < sizeof(events) / sizeof(events[0]); i++)
				ok = ok || (strlen(events[i]) == len && !strncmp(ev + 1, events[i], len));
		}
		if (!ok)
			bad = strdup(line);
	}
	free(s);
	return bad;
}

/* DIR/pid: digits and a newline, nothing else. -1 if missing or malformed. */
static pid_t read_pid(const char *path)
{
	size_t len, i;
	char *s = slurp(path, &len);
	pid_t pid = -1;

	if (s && len >= 2 && s[len - 1] == '\n') {
		for (i = 0; i < len - 1 && isdigit((unsigned char)s[i]); i++)
			;
		if (i == len - 1)
			pid = atoi(s);
	}
	free(s);
	return pid;
}

/* DIR/pid once it is there (it may follow the log line that announces it). */
static pid_t wait_pid_file(const char *path, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	pid_t pid;

	while ((pid = read_pid(path)) < 0 && now_ms() < end)
		sleep_ms(20);
	return pid;
}

/* Parent PID from /proc/PID/stat, -1 if gone. */
static pid_t ppid_of(pid_t pid)
{
	char path[64], *s, *p;
	int ppid = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	s = slurp(path, NULL);
	p = s ? strrchr(s, ')') : NULL;
	if (!p || sscanf(p, ") %*c %d", &ppid) != 1)
		ppid = -1;
	free(s);
	return ppid;
}

/* The process runs build/workloads/compute (so that teardown kills nothing else). */
static bool is_compute(pid_t pid)
{
	char path[64], *s;
	bool yes;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	s = slurp(path, NULL);
	n = s ? strlen(s) : 0;
	yes = n >= 7 && !strcmp(s + n - 7, "compute");
	free(s);
	return yes;
}

/* Checkpoints in an image store: directories named by their number. */
static int count_checkpoints(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] && strspn(e->d_name, "0123456789") == strlen(e->d_name))
			n++;
	closedir(d);
	return n;
}

static unsigned int random_seed(void)
{
	const char *env = getenv("AMBER_RUN_SEED");

	return env && *env ? strtoul(env, NULL, 10) : (unsigned int)(now_ms() ^ getpid() << 16);
}

FIXTURE(run) {
	char base[256];		/* RUN_TMP/<test> */
	char dir[300];		/* -D DIR */
	char log[320];		/* DIR/run.log */
	char pidf[320];		/* DIR/pid */
	char out[320];		/* DIR/stdout */
	char sup_out[320];	/* the background supervisor's own stdout, stderr */
	char sup_err[320];
	pid_t sup;		/* a supervisor in the background */
	int sup_status;
	bool sup_done;		/* sup reaped, status in sup_status */
	pid_t other;		/* another background amber */
};

FIXTURE_SETUP(run)
{
	snprintf(self->base, sizeof(self->base), "%s/%s", RUN_TMP, _metadata->name);
	snprintf(self->dir, sizeof(self->dir), "%s/dir", self->base);
	snprintf(self->log, sizeof(self->log), "%s/run.log", self->dir);
	snprintf(self->pidf, sizeof(self->pidf), "%s/pid", self->dir);
	snprintf(self->out, sizeof(self->out), "%s/stdout", self->dir);
	snprintf(self->sup_out, sizeof(self->sup_out), "%s/amber.out", self->base);
	snprintf(self->sup_err, sizeof(self->sup_err), "%s/amber.err", self->base);
	self->sup = -1;
	self->other = -1;
	ASSERT_EQ(0, fresh_dir(self->dir));
}

FIXTURE_TEARDOWN(run)
{
	pid_t pid = read_pid(self->pidf);

	if (self->sup > 0 && !self->sup_done)
		kill_and_reap(self->sup);
	kill_and_reap(self->other);
	if (pid > 0 && is_compute(pid))
		kill_and_reap(pid);
	if (_metadata->passed) {
		rm_rf(self->base);
	} else {
		char *log = slurp(self->log, NULL), *err = slurp(self->sup_err, NULL);

		TH_LOG("%s:\n%.6000s", self->log, log ? log : "(none)");
		if (err && *err)
			TH_LOG("background amber's stderr:\n%.3000s", err);
		free(log);
		free(err);
	}
}

/* Start amber in the background (its output in sup_out/sup_err). */
static pid_t start_sup(FIXTURE_DATA(run) *self, char *const argv[])
{
	struct spawn_opts o = {
		.out_path = self->sup_out, .err_path = self->sup_err,
		.new_session = true, .pdeathsig = true,
	};

	self->sup_done = false;
	self->sup = spawn(argv, &o);
	return self->sup;
}

/* The background supervisor has ended (reaps it). */
static bool sup_ended(FIXTURE_DATA(run) *self)
{
	if (!self->sup_done && self->sup > 0 &&
	    waitpid(self->sup, &self->sup_status, WNOHANG) == self->sup)
		self->sup_done = true;
	return self->sup_done;
}

/* Its exit code as a shell shows it, -1 if it is still running after timeout_ms. */
static int wait_sup(FIXTURE_DATA(run) *self, int timeout_ms)
{
	if (!self->sup_done) {
		if (wait_child(self->sup, timeout_ms, &self->sup_status))
			return -1;
		self->sup_done = true;
	}
	return exit_code(self->sup_status);
}

/* Wait until run.log holds count lines of event; -1 on timeout or if amber ended first. */
static int wait_event(FIXTURE_DATA(run) *self, const char *event, int count, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	for (;;) {
		bool ended = sup_ended(self);

		if (log_count(self->log, event, NULL) >= count)
			return 0;
		if (ended || now_ms() > end)
			return -1;
		sleep_ms(20);
	}
}

/* amber run -D DIR [opts...] -- workload [extra...]: opts and extra NULL-terminated. */
static void run_argv(struct args *a, FIXTURE_DATA(run) *self, const char *const *opts,
		     const struct workload *w, const char *const *extra)
{
	a->n = 0;
	args_add(a, AMBER_BIN, "run", "-D", self->dir, NULL);
	if (opts)
		args_addv(a, opts);
	args_add(a, "--", NULL);
	args_addv(a, w->argv);
	if (extra)
		args_addv(a, extra);
}

#define SAME_OUTPUT(out, ref) \
	ASSERT_EQ(0, files_differ(ref, out)) \
		TH_LOG("%s differs from the uninterrupted run %s (first difference at byte %lld)", \
		       out, ref, files_differ(ref, out) - 1)

/*
 * kill -9 of the program twice at random moments: both times amber restores
 * it (same PID, amber's child) and the output is exactly the reference's.
 * Output written after the checkpoint that is restored must be cut back or
 * it appears twice.
 */
TEST_F_TIMEOUT(run, kill9_twice, 180)
{
	const char *const opts[] = { "--interval", "2s", NULL };
	unsigned int seed = random_seed();
	char ref[256], with[64], *bad;
	struct args a;
	pid_t pid;
	int k;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference(&wl_long, ref, sizeof(ref)));
	TH_LOG("random seed %u (AMBER_RUN_SEED=%u replays these delays)", seed, seed);
	srand(seed);

	run_argv(&a, self, opts, &wl_long, NULL);
	ASSERT_LT(0, start_sup(self, ARGV(&a)));
	ASSERT_EQ(0, wait_event(self, "checkpoint", 1, 60000))
		TH_LOG("no checkpoint within 60 s (amber %s)", sup_ended(self) ? "ended" : "runs");
	pid = wait_pid_file(self->pidf, 5000);
	ASSERT_LT(0, pid) TH_LOG("%s is missing or malformed", self->pidf);
	snprintf(with, sizeof(with), " pid=%d ", pid);
	ASSERT_EQ(1, log_count(self->log, "start", with));
	ASSERT_EQ(self->sup, ppid_of(pid));
	ASSERT_EQ(1, log_count(self->log, "checkpoint", "n=1 kind=full "));

	for (k = 1; k <= 2; k++) {
		int delay = rand() % 2500;

		sleep_ms(delay);
		ASSERT_TRUE(pid_alive(pid) && !sup_ended(self) && !count_text(self->out, "done"))
			TH_LOG("before kill %d the program had finished: too short for this machine",
			       k);
		TH_LOG("kill %d: SIGKILL pid %d %d ms after the %s", k, pid, delay,
		       k == 1 ? "first checkpoint" : "first restore");
		ASSERT_EQ(0, kill(pid, SIGKILL));
		ASSERT_EQ(0, wait_event(self, "restore", k, 90000))
			TH_LOG("no restore %d (amber %s)", k, sup_ended(self) ? "ended" : "runs");
		ASSERT_EQ(pid, read_pid(self->pidf));
		ASSERT_TRUE(ppid_of(pid) == self->sup || !pid_alive(pid))
			TH_LOG("restored pid %d is not amber's child (parent %d)", pid, ppid_of(pid));
	}

	ASSERT_EQ(0, wait_sup(self, 120000));
	SAME_OUTPUT(self->out, ref);
	EXPECT_EQ(2, log_count(self->log, "restore", NULL));
	EXPECT_EQ(2, log_count(self->log, "died", "signal=SIGKILL"));
	EXPECT_EQ(0, log_count(self->log, "fresh-start", NULL));
	EXPECT_EQ(1, log_count(self->log, "exit", " status=0"));
	EXPECT_EQ(pid, read_pid(self->pidf));
	/* --keep 2 by default */
	EXPECT_GE(2, count_checkpoints(self->dir));
	EXPECT_LE(1, count_checkpoints(self->dir));
	bad = log_bad_line(self->log);
	EXPECT_EQ(NULL, bad) TH_LOG("malformed run.log line: '%s'", bad);
	free(bad);
}

/*
 * A program that segfaults once (decided by a marker file) after the first
 * checkpoint is restored and completes with the reference's output. With
 * --keep 1, one checkpoint is left.
 */
/*
 * amber run OPTS of the short workload that segfaults once (its marker
 * file stops the second crash): restored once from the checkpoint before
 * the crash, it ends with the reference's output and one checkpoint left.
 */
static void crash_once(struct __test_metadata *_metadata, FIXTURE_DATA(run) *self,
		       const char *const *opts)
{
	char ref[256], marker[300];
	const char *extra[] = { "--crash-at", SHORT_CRASH_STEP, "--marker", marker, NULL };
	struct cmd_result r;
	struct args a;

	ASSERT_EQ(0, reference(&wl_short, ref, sizeof(ref)));
	snprintf(marker, sizeof(marker), "%s/crashed-once", self->base);

	run_argv(&a, self, opts, &wl_short, extra);
	ASSERT_EQ(0, run_cmd(ARGV(&a), 80000, &r));
	EXPECT_EQ(0, exit_code(r.status)) TH_LOG("amber run: status %d, stderr '%s'", r.status,
						 r.err);
	cmd_result_free(&r);
	ASSERT_EQ(0, access(marker, F_OK)) TH_LOG("the workload never reached its crash");
	ASSERT_EQ(0, log_count(self->log, "fresh-start", NULL))
		TH_LOG("the crash came before the first checkpoint: the machine is too fast");
	SAME_OUTPUT(self->out, ref);
	EXPECT_EQ(1, log_count(self->log, "died", "signal=SIGSEGV"));
	EXPECT_EQ(1, log_count(self->log, "restore", NULL));
	EXPECT_EQ(1, log_count(self->log, "exit", " status=0"));
	EXPECT_EQ(1, count_checkpoints(self->dir)) TH_LOG("--keep 1");
}

TEST_F_TIMEOUT(run, self_crash_once, 90)
{
	const char *const opts[] = { "--interval", "1s", "--keep", "1", NULL };

	REQUIRE_AMBER();
	crash_once(_metadata, self, opts);
}

/* The checkpoint DIR/N with the highest N, 0 if none. */
static unsigned int newest_checkpoint(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] && strspn(e->d_name, "0123456789") == strlen(e->d_name) &&
		    (unsigned int)atoi(e->d_name) > n)
			n = atoi(e->d_name);
	closedir(d);
	return n;
}

/*
 * The same with --compress: every checkpoint's pages file is pages.img.zst
 * (--keep 1 compacts each one into a compressed full image), and the
 * restore from it completes with the reference's output.
 */
TEST_F_TIMEOUT(run, compressed_crash_once, 90)
{
	const char *const opts[] = { "--interval", "1s", "--keep", "1", "--compress", NULL };
	char path[400];
	unsigned int n;

	REQUIRE_AMBER();
	crash_once(_metadata, self, opts);
	n = newest_checkpoint(self->dir);
	ASSERT_LT(0, n);
	snprintf(path, sizeof(path), "%s/%u/pages.img.zst", self->dir, n);
	EXPECT_EQ(0, access(path, F_OK)) TH_LOG("%s is missing", path);
	snprintf(path, sizeof(path), "%s/%u/pages.img", self->dir, n);
	EXPECT_NE(0, access(path, F_OK)) TH_LOG("%s is there", path);
}

/*
 * A program that segfaults at the same step every time: restored exactly
 * twice with --max-restarts 2, then amber gives up with 128+SIGSEGV and a
 * message that says so. Every restore cut the output back, so it holds
 * exactly the reference's lines before the crash.
 */
TEST_F_TIMEOUT(run, max_restarts, 120)
{
	const char *const opts[] = { "--interval", "1s", "--max-restarts", "2", NULL };
	const char *const extra[] = { "--crash-at", SHORT_CRASH_STEP, NULL };
	char ref[256], msg[256], with[64];
	struct cmd_result r;
	long long crash_off;
	struct args a;
	pid_t pid;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference(&wl_short, ref, sizeof(ref)));
	crash_off = text_offset(ref, "step " SHORT_CRASH_STEP " ");
	ASSERT_LT(0, crash_off);

	run_argv(&a, self, opts, &wl_short, extra);
	ASSERT_EQ(0, run_cmd(ARGV(&a), 100000, &r));
	pid = read_pid(self->pidf);
	snprintf(msg, sizeof(msg), "amber run: pid %d was killed by SIGSEGV; "
		 "giving up after 2 restarts (--max-restarts 2)\n", pid);
	EXPECT_EQ(128 + SIGSEGV, exit_code(r.status)) TH_LOG("status %d", r.status);
	EXPECT_NE(NULL, strstr(r.err, msg)) TH_LOG("stderr '%s', expected '%s'", r.err, msg);
	cmd_result_free(&r);
	ASSERT_LT(0, pid);
	snprintf(with, sizeof(with), "pid=%d signal=SIGSEGV", pid);
	EXPECT_EQ(3, log_count(self->log, "died", with));
	EXPECT_EQ(2, log_count(self->log, "restore", NULL) + log_count(self->log, "fresh-start", NULL));
	EXPECT_EQ(2, log_count(self->log, "restore", NULL))
		TH_LOG("the crash came before the first checkpoint: the machine is too fast");
	EXPECT_EQ(1, log_count(self->log, "give-up", "restarts=2 max=2"));
	EXPECT_EQ(0, log_count(self->log, "exit", NULL));
	EXPECT_EQ(0, is_prefix_of(self->out, ref, crash_off))
		TH_LOG("%s is not the reference's first %lld bytes (%lld bytes)", self->out,
		       crash_off, (long long)file_size(self->out));
	EXPECT_FALSE(pid_alive(pid));
}

/* --max-restarts 0: the first crash ends the run. */
TEST_F_TIMEOUT(run, max_restarts_zero, 60)
{
	const char *const opts[] = { "--interval", "1s", "--max-restarts", "0", NULL };
	const char *const extra[] = { "--crash-at", "3", NULL };
	char ref[256], msg[256];
	struct cmd_result r;
	struct args a;
	pid_t pid;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference(&wl_short, ref, sizeof(ref)));
	run_argv(&a, self, opts, &wl_short, extra);
	ASSERT_EQ(0, run_cmd(ARGV(&a), 50000, &r));
	pid = read_pid(self->pidf);
	snprintf(msg, sizeof(msg), "amber run: pid %d was killed by SIGSEGV; "
		 "giving up after 0 restarts (--max-restarts 0)\n", pid);
	EXPECT_EQ(128 + SIGSEGV, exit_code(r.status)) TH_LOG("status %d", r.status);
	EXPECT_NE(NULL, strstr(r.err, msg)) TH_LOG("stderr '%s', expected '%s'", r.err, msg);
	cmd_result_free(&r);
	EXPECT_EQ(1, log_count(self->log, "died", "signal=SIGSEGV"));
	EXPECT_EQ(0, log_count(self->log, "restore", NULL));
	EXPECT_EQ(0, log_count(self->log, "fresh-start", NULL));
	EXPECT_EQ(1, log_count(self->log, "give-up", "restarts=0 max=0"));
	EXPECT_EQ(0, is_prefix_of(self->out, ref, text_offset(ref, "step 3 ")));
}

/*
 * The program's own exit status is amber's (3 here). Also: -D DIR that does
 * not exist yet (its parent does), --stdout elsewhere, --verbose.
 */
TEST_F_TIMEOUT(run, exit_status, 60)
{
	static const struct workload w = { "exit3", {
		COMPUTE, "--mib", "4", "--steps", "5", "--exit", "3", NULL,
	} };
	char dir[320], out[320], direct[320], path[400];
	struct cmd_result r;
	struct args a = { 0 };
	int status;
	pid_t pid;

	REQUIRE_AMBER();
	snprintf(direct, sizeof(direct), "%s/direct.out", self->base);
	pid = spawn_workload((char *const *)w.argv, direct);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_child(pid, 30000, &status));
	ASSERT_EQ(3, exit_code(status));

	snprintf(dir, sizeof(dir), "%s/newdir", self->base);
	snprintf(out, sizeof(out), "%s/out.txt", self->base);
	args_add(&a, AMBER_BIN, "run", "-D", dir, "--interval", "1s", "--stdout", out, "--verbose",
		 "--", NULL);
	args_addv(&a, w.argv);
	ASSERT_EQ(0, run_cmd(ARGV(&a), 50000, &r));
	EXPECT_EQ(3, exit_code(r.status)) TH_LOG("status %d, stderr '%s'", r.status, r.err);
	EXPECT_EQ(0, strlen(r.out)) TH_LOG("amber run printed '%s'", r.out);
	/* --verbose: the log lines on stderr too */
	EXPECT_NE(NULL, strstr(r.err, "amber run: start pid=")) TH_LOG("stderr '%s'", r.err);
	EXPECT_NE(NULL, strstr(r.err, " status=3\n")) TH_LOG("stderr '%s'", r.err);
	cmd_result_free(&r);
	SAME_OUTPUT(out, direct);
	snprintf(path, sizeof(path), "%s/stdout", dir);
	EXPECT_EQ(-1, file_size(path)) TH_LOG("%s exists despite --stdout", path);
	snprintf(path, sizeof(path), "%s/stderr", dir);
	EXPECT_EQ(0, file_size(path));
	snprintf(path, sizeof(path), "%s/run.log", dir);
	EXPECT_EQ(1, log_count(path, "exit", " status=3"));
	EXPECT_EQ(1, log_count(path, "start", NULL));
	EXPECT_EQ(0, log_count(path, "died", NULL));
	EXPECT_EQ(0, log_count(path, "restore", NULL));
}

/*
 * kill -9 of the supervisor itself; `amber run --resume -D DIR` takes the
 * program over (checkpoint --kill if it still runs, else the latest
 * checkpoint) and brings it to the end with the reference's output.
 *
 * The orphaned program is reparented to us (a subreaper): we reap it when
 * --resume kills it, as init would, so that its PID becomes free.
 */
TEST_F_TIMEOUT(run, resume_after_supervisor_kill, 180)
{
	const char *const opts[] = { "--interval", "2s", NULL };
	struct spawn_opts o = { .new_session = true, .pdeathsig = true };
	unsigned int seed = random_seed();
	char ref[256], rout[320], rerr[320], with[64], *err;
	int delay, status, orphan_status = 0;
	bool orphan_reaped = false, alive;
	long long end;
	struct args a;
	pid_t pid;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference(&wl_long, ref, sizeof(ref)));
	ASSERT_EQ(0, become_subreaper());
	TH_LOG("random seed %u (AMBER_RUN_SEED=%u replays this delay)", seed, seed);
	srand(seed);

	run_argv(&a, self, opts, &wl_long, NULL);
	ASSERT_LT(0, start_sup(self, ARGV(&a)));
	ASSERT_EQ(0, wait_event(self, "checkpoint", 1, 60000));
	pid = wait_pid_file(self->pidf, 5000);
	ASSERT_LT(0, pid);
	delay = rand() % 1500;
	sleep_ms(delay);
	ASSERT_EQ(0, kill(self->sup, SIGKILL));
	ASSERT_EQ(128 + SIGKILL, wait_sup(self, 10000));
	alive = pid_alive(pid);
	TH_LOG("supervisor killed %d ms after the first checkpoint; pid %d %s", delay, pid,
	       alive ? "still runs" : "died with it");
	ASSERT_FALSE(count_text(self->out, "done")) TH_LOG("too short for this machine");

	snprintf(rout, sizeof(rout), "%s/resume.out", self->base);
	snprintf(rerr, sizeof(rerr), "%s/resume.err", self->base);
	o.out_path = rout;
	o.err_path = rerr;
	a.n = 0;
	args_add(&a, AMBER_BIN, "run", "--resume", "-D", self->dir, NULL);
	self->other = spawn(ARGV(&a), &o);
	ASSERT_LT(0, self->other);
	for (end = now_ms() + 150000; now_ms() < end; sleep_ms(10)) {
		if (!orphan_reaped && waitpid(pid, &orphan_status, WNOHANG) == pid)
			orphan_reaped = true;
		if (waitpid(self->other, &status, WNOHANG) == self->other)
			break;
	}
	ASSERT_LT(now_ms(), end) TH_LOG("amber run --resume did not finish");
	self->other = -1;
	err = slurp(rerr, NULL);
	EXPECT_EQ(0, exit_code(status)) TH_LOG("--resume: status %d, stderr '%s'", status, err);
	free(err);
	ASSERT_TRUE(orphan_reaped) TH_LOG("the orphaned pid %d never died", pid);
	if (alive)
		EXPECT_TRUE(WIFSIGNALED(orphan_status) && WTERMSIG(orphan_status) == SIGKILL)
			TH_LOG("orphan status %#x", orphan_status);
	SAME_OUTPUT(self->out, ref);
	snprintf(with, sizeof(with), "pid=%d", pid);
	EXPECT_EQ(1, log_count(self->log, "resume", with));
	EXPECT_EQ(1, log_count(self->log, "restore", with));
	EXPECT_EQ(0, log_count(self->log, "fresh-start", NULL));
	EXPECT_EQ(1, log_count(self->log, "exit", " status=0"));
	EXPECT_EQ(pid, read_pid(self->pidf));
}

/*
 * SIGTERM to the supervisor stops the program (no restore, 128+SIGTERM);
 * starting a new command in that DIR is refused without touching its output
 * and points to --resume, which then finishes the job with the reference's
 * output (a batch job stopped by SIGTERM at its time limit, resumed later).
 */
TEST_F_TIMEOUT(run, sigterm_then_resume, 120)
{
	const char *const opts[] = { "--interval", "1s", NULL };
	char ref[256], *refusal;
	struct cmd_result r;
	struct args a;
	off_t size;
	pid_t pid;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference(&wl_short, ref, sizeof(ref)));
	run_argv(&a, self, opts, &wl_short, NULL);
	ASSERT_LT(0, start_sup(self, ARGV(&a)));
	ASSERT_EQ(0, wait_event(self, "checkpoint", 1, 60000));
	pid = wait_pid_file(self->pidf, 5000);
	ASSERT_LT(0, pid);
	ASSERT_FALSE(count_text(self->out, "done")) TH_LOG("too short for this machine");
	ASSERT_EQ(0, kill(self->sup, SIGTERM));
	ASSERT_EQ(128 + SIGTERM, wait_sup(self, 30000));
	ASSERT_EQ(0, wait_gone(pid, 5000)) TH_LOG("pid %d survived SIGTERM to amber", pid);
	EXPECT_EQ(1, log_count(self->log, "stop", "signal=SIGTERM"));
	EXPECT_EQ(0, log_count(self->log, "restore", NULL));
	EXPECT_EQ(0, log_count(self->log, "fresh-start", NULL));

	/* A new command in a DIR that holds checkpoints: refused, output untouched. */
	size = file_size(self->out);
	ASSERT_LT(0, size);
	run_argv(&a, self, NULL, &wl_short, NULL);
	ASSERT_EQ(0, run_cmd(ARGV(&a), 30000, &r));
	EXPECT_EQ(1, exit_code(r.status));
	EXPECT_NE(0, strlen(r.err));
	refusal = strdup(r.err);
	cmd_result_free(&r);
	EXPECT_EQ(size, file_size(self->out));
	EXPECT_EQ(1, log_count(self->log, "start", NULL));

	a.n = 0;
	args_add(&a, AMBER_BIN, "run", "--resume", "-D", self->dir, NULL);
	ASSERT_EQ(0, run_cmd(ARGV(&a), 80000, &r));
	/* Documentation/run.md: a run ended by a stop signal may be resumed. */
	EXPECT_EQ(0, exit_code(r.status)) TH_LOG("--resume after SIGTERM: status %d, stderr '%s'",
						r.status, r.err);
	SAME_OUTPUT(self->out, ref);
	EXPECT_EQ(1, log_count(self->log, "resume", NULL));
	EXPECT_EQ(1, log_count(self->log, "restore", NULL));
	EXPECT_EQ(pid, read_pid(self->pidf));
	EXPECT_NE(NULL, strstr(refusal, "--resume"))
		TH_LOG("a new command in a resumable DIR is refused with '%s'", refusal);
	cmd_result_free(&r);
	free(refusal);
}

/*
 * A second supervisor on a supervised DIR is refused, new command or
 * --resume, and disturbs nothing: the first run completes normally, with
 * incremental checkpoints after the first full one. Once it is over,
 * nothing restarts it.
 */
TEST_F_TIMEOUT(run, second_supervisor_refused, 90)
{
	const char *const opts[] = { "--interval", "1s", NULL };
	char ref[256], busy[64], *refusal;
	struct cmd_result r;
	struct args a;
	off_t size;
	pid_t pid;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference(&wl_short, ref, sizeof(ref)));
	run_argv(&a, self, opts, &wl_short, NULL);
	ASSERT_LT(0, start_sup(self, ARGV(&a)));
	ASSERT_EQ(0, wait_event(self, "start", 1, 30000));
	pid = wait_pid_file(self->pidf, 5000);
	ASSERT_LT(0, pid);
	snprintf(busy, sizeof(busy), "is supervised by pid %d", self->sup);

	ASSERT_EQ(0, run_cmd(ARGV(&a), 30000, &r));
	EXPECT_EQ(1, exit_code(r.status));
	EXPECT_NE(NULL, strstr(r.err, busy)) TH_LOG("stderr '%s', expected '%s'", r.err, busy);
	cmd_result_free(&r);
	a.n = 0;
	args_add(&a, AMBER_BIN, "run", "--resume", "-D", self->dir, NULL);
	ASSERT_EQ(0, run_cmd(ARGV(&a), 30000, &r));
	EXPECT_EQ(1, exit_code(r.status));
	EXPECT_NE(NULL, strstr(r.err, busy)) TH_LOG("stderr '%s', expected '%s'", r.err, busy);
	cmd_result_free(&r);
	ASSERT_TRUE(pid_alive(pid) || count_text(self->out, "done"));
	ASSERT_EQ(pid, read_pid(self->pidf));

	ASSERT_EQ(0, wait_sup(self, 60000));
	SAME_OUTPUT(self->out, ref);
	EXPECT_EQ(1, log_count(self->log, "start", NULL));
	EXPECT_EQ(0, log_count(self->log, "resume", NULL));
	EXPECT_EQ(0, log_count(self->log, "restore", NULL));
	EXPECT_EQ(0, log_count(self->log, "checkpoint-failed", NULL));
	EXPECT_LE(2, log_count(self->log, "checkpoint", NULL))
		TH_LOG("a 5 s run with --interval 1s checkpointed less than twice");
	EXPECT_EQ(1, log_count(self->log, "checkpoint", "kind=full"));
	EXPECT_LE(1, log_count(self->log, "checkpoint", "kind=incremental"));

	/*
	 * The run is over: a new command is refused, --resume brings nothing
	 * back (the output stays as it is), and if --resume is refused, the
	 * first refusal does not send the user to --resume.
	 */
	size = file_size(self->out);
	run_argv(&a, self, opts, &wl_short, NULL);
	ASSERT_EQ(0, run_cmd(ARGV(&a), 30000, &r));
	EXPECT_EQ(1, exit_code(r.status));
	refusal = strdup(r.err);
	cmd_result_free(&r);
	a.n = 0;
	args_add(&a, AMBER_BIN, "run", "--resume", "-D", self->dir, NULL);
	ASSERT_EQ(0, run_cmd(ARGV(&a), 30000, &r));
	if (exit_code(r.status) != 0)
		EXPECT_EQ(NULL, strstr(refusal, "--resume"))
			TH_LOG("dead end: a new command is refused with '%s', --resume with '%s'",
			       refusal, r.err);
	cmd_result_free(&r);
	free(refusal);
	EXPECT_EQ(size, file_size(self->out));
	EXPECT_EQ(0, log_count(self->log, "restore", NULL));
	EXPECT_EQ(0, log_count(self->log, "fresh-start", NULL));
}

/*
 * --interval auto --mtbf 20s: the first checkpoint after min(MTBF/10, 30 s)
 * = 2 s; after it an interval computed from the measured cost is logged,
 * at least 1 s and at least twice that checkpoint's total time.
 */
TEST_F_TIMEOUT(run, interval_auto, 90)
{
	const char *const opts[] = { "--interval", "auto", "--mtbf", "20s", NULL };
	double s, mtbf, total_ms;
	long long start, first;
	struct cmd_result r;
	char ref[256];
	struct args a;
	int i;

	REQUIRE_AMBER();
	ASSERT_EQ(0, reference(&wl_short, ref, sizeof(ref)));
	run_argv(&a, self, opts, &wl_short, NULL);
	ASSERT_EQ(0, run_cmd(ARGV(&a), 80000, &r));
	EXPECT_EQ(0, exit_code(r.status)) TH_LOG("status %d, stderr '%s'", r.status, r.err);
	cmd_result_free(&r);
	SAME_OUTPUT(self->out, ref);
	start = log_event(self->log, "start", 1, NULL, NULL);
	first = log_event(self->log, "checkpoint", 1, "total_ms", &total_ms);
	ASSERT_LE(0, start);
	ASSERT_LE(0, first) TH_LOG("no checkpoint in a 5 s run with a first interval of 2 s");
	/* (logged when it ends) */
	EXPECT_LE(1900, (first - start + 86400000) % 86400000)
		TH_LOG("first checkpoint %lld ms after the start", first - start);
	ASSERT_LE(1, log_count(self->log, "interval", NULL));
	ASSERT_LE(0, log_event(self->log, "interval", 1, "s", &s));
	EXPECT_LE(2 * total_ms / 1000 - 0.001, s) TH_LOG("s=%.3f after total_ms=%.3f", s, total_ms);
	for (i = 1; i <= log_count(self->log, "interval", NULL); i++) {
		ASSERT_LE(0, log_event(self->log, "interval", i, "s", &s));
		ASSERT_LE(0, log_event(self->log, "interval", i, "mtbf_s", &mtbf));
		EXPECT_LE(1.0, s);
		EXPECT_GE(20.0, s);
		EXPECT_EQ(20.0, mtbf);
	}
}

/* Usage errors exit 1 and start nothing. */
TEST_F_TIMEOUT(run, usage_errors, 30)
{
	static const char *const bad[][4] = {
		{ "--interval", "auto", NULL },		/* auto needs --mtbf */
		{ "--interval", "5x", NULL },
		{ "--interval", "-1s", NULL },
	};
	const char *const *opts;
	struct cmd_result r;
	struct args a;
	size_t i;

	REQUIRE_AMBER();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		opts = bad[i];
		run_argv(&a, self, opts, &wl_short, NULL);
		ASSERT_EQ(0, run_cmd(ARGV(&a), 20000, &r));
		EXPECT_EQ(1, exit_code(r.status)) TH_LOG("%s %s: status %d", opts[0], opts[1],
							 r.status);
		if (i == 0)
			EXPECT_NE(NULL, strstr(r.err, "--mtbf")) TH_LOG("stderr '%s'", r.err);
		cmd_result_free(&r);
		EXPECT_EQ(-1, file_size(self->out));
		EXPECT_EQ(-1, file_size(self->pidf));
	}
	/* --resume of a DIR that never saw amber run */
	a.n = 0;
	args_add(&a, AMBER_BIN, "run", "--resume", "-D", self->dir, NULL);
	ASSERT_EQ(0, run_cmd(ARGV(&a), 20000, &r));
	EXPECT_EQ(1, exit_code(r.status));
	EXPECT_NE(0, strlen(r.err));
	cmd_result_free(&r);
}

/* One CSV row of amber bench overhead. */
struct bench_row {
	char tool[64];
	double f[8];		/* by column; NaN-free: see has */
	bool has[8];
};

enum { B_TOOL, B_INTERVAL, B_WALL, B_OVERHEAD, B_CKPTS, B_MEAN, B_MAX, B_BYTES };

static const char bench_header[] =
	"tool,interval_s,wall_s,overhead_pct,checkpoints,stopped_mean_ms,stopped_max_ms,"
	"bytes_written";

/* Exactly 8 fields, numbers or empty. 0 on success. */
static int parse_bench_row(const char *line, struct bench_row *row)
{
	const char *p = line;
	int i;

	memset(row, 0, sizeof(*row));
	for (i = 0; i < 8; i++) {
		size_t len = strcspn(p, ",");
		char field[64], *end;

		if (len >= sizeof(field))
			return -1;
		memcpy(field, p, len);
		field[len] = 0;
		if (i == B_TOOL) {
			snprintf(row->tool, sizeof(row->tool), "%s", field);
		} else if (len) {
			row->f[i] = strtod(field, &end);
			if (*end || !isdigit((unsigned char)field[len - 1]))
				return -1;
			row->has[i] = true;
		}
		p += len;
		if (i < 7 && *p++ != ',')
			return -1;
	}
	return *p ? -1 : 0;
}

/* Checks of one row of tool at interval (0: the baseline). */
static void check_bench_row(struct __test_metadata *_metadata, const char *line,
			    const char *tool, double interval)
{
	struct bench_row b;
	int i;

	ASSERT_EQ(0, parse_bench_row(line, &b)) TH_LOG("malformed row '%s'", line);
	ASSERT_STREQ(tool, b.tool) TH_LOG("row '%s'", line);
	for (i = B_WALL; i <= B_CKPTS; i++)
		EXPECT_TRUE(b.has[i]) TH_LOG("row '%s': column %d empty", line, i);
	EXPECT_TRUE(b.has[B_BYTES]) TH_LOG("row '%s': bytes_written empty", line);
	EXPECT_LT(0, b.f[B_WALL]);
	EXPECT_EQ(b.f[B_CKPTS], (long long)b.f[B_CKPTS]);
	if (!interval) {
		EXPECT_FALSE(b.has[B_INTERVAL]) TH_LOG("baseline row '%s'", line);
		EXPECT_EQ(0, b.f[B_OVERHEAD]);
		EXPECT_EQ(0, b.f[B_CKPTS]);
		EXPECT_EQ(0, b.f[B_BYTES]);
		return;
	}
	EXPECT_TRUE(b.has[B_INTERVAL] && b.f[B_INTERVAL] == interval) TH_LOG("row '%s'", line);
	/* The first checkpoint comes one interval after the start. */
	if (b.f[B_WALL] > 2 * interval)
		EXPECT_LE(1, b.f[B_CKPTS]) TH_LOG("row '%s': no checkpoint", line);
	/* ... and the next ones at least an interval apart. */
	EXPECT_GE(b.f[B_WALL] / interval + 1, b.f[B_CKPTS]) TH_LOG("row '%s'", line);
	if (b.f[B_CKPTS] > 0) {
		EXPECT_LT(0, b.f[B_BYTES]) TH_LOG("row '%s'", line);
		EXPECT_TRUE(b.has[B_MEAN] && b.has[B_MAX]) TH_LOG("row '%s'", line);
		EXPECT_LE(0, b.f[B_MEAN]);
		EXPECT_LE(b.f[B_MEAN], b.f[B_MAX]) TH_LOG("row '%s'", line);
		EXPECT_GT(b.f[B_WALL] * 1000, b.f[B_MAX]) TH_LOG("row '%s'", line);
	}
}

/* amber bench overhead --csv EXTRA... -- wl_short; rows: NULL-terminated tool names. */
static void bench(struct __test_metadata *_metadata, FIXTURE_DATA(run) *self,
		  const char *const *extra, const char *const *tools, const double *intervals)
{
	char work[320], *lines[16], *save = NULL, *l;
	struct cmd_result r;
	struct args a = { 0 };
	int n = 0, i;

	snprintf(work, sizeof(work), "%s/work", self->base);
	ASSERT_EQ(0, fresh_dir(work));
	args_add(&a, AMBER_BIN, "bench", "overhead", "--csv", "--work-dir", work, NULL);
	args_addv(&a, extra);
	args_add(&a, "--", NULL);
	args_addv(&a, wl_short.argv);
	ASSERT_EQ(0, run_cmd(ARGV(&a), 140000, &r));
	TH_LOG("stdout:\n%s", r.out);
	EXPECT_EQ(0, exit_code(r.status)) TH_LOG("status %d, stderr '%s'", r.status, r.err);
	ASSERT_NE(0, strlen(r.out));
	EXPECT_EQ('\n', r.out[strlen(r.out) - 1]);
	for (l = strtok_r(r.out, "\n", &save); l && n < 16; l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;
	for (i = 0; tools[i]; i++)
		;
	ASSERT_EQ(i + 2, n) TH_LOG("%d lines", n);
	ASSERT_STREQ(bench_header, lines[0]);
	check_bench_row(_metadata, lines[1], "none", 0);
	for (i = 0; tools[i]; i++)
		check_bench_row(_metadata, lines[i + 2], tools[i], intervals[i]);
	cmd_result_free(&r);
}

/* amber bench overhead --csv: the baseline and one amber row per interval, in order. */
TEST_F_TIMEOUT(run, bench_csv, 150)
{
	const char *const extra[] = { "--intervals", "1s,2s", NULL };
	const char *const tools[] = { "amber", "amber", NULL };
	const double intervals[] = { 1, 2 };

	REQUIRE_AMBER();
	bench(_metadata, self, extra, tools, intervals);
}

/* --compare-criu: a criu row after the amber row, with checkpoints of its own. */
TEST_F_TIMEOUT(run, bench_compare_criu, 150)
{
	const char *const extra[] = { "--intervals", "1s", "--compare-criu", NULL };
	const char *const tools[] = { "amber", "criu", NULL };
	const double intervals[] = { 1, 1 };
	struct cmd_result r;

	REQUIRE_AMBER();
	if (run_cmdl(10000, &r, "/bin/sh", "-c", "command -v criu", NULL) ||
	    exit_code(r.status) != 0) {
		cmd_result_free(&r);
		SKIP(return, "criu is not installed");
	}
	cmd_result_free(&r);
	bench(_metadata, self, extra, tools, intervals);
}

TEST_HARNESS_MAIN
