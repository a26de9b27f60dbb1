/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Self-checking workloads (tests/workloads/ghost.c, eventfd.c, eventfds.c,
 * epoll.c): started as `W --dir BASE --go FILE [--fork] [EXTRA]`, each
 * process sets its state up, prints "parent ready pid N" (with --fork, its
 * child "child ready pid N"), waits for FILE to exist, then checks its own
 * state and prints PASS or FAIL lines.
 *
 * The helpers run one through `amber checkpoint --kill` (or `--tree
 * --kill`), `amber restore`, the fidelity comparison and its own check, or
 * through a checkpoint that must be refused with nothing killed and nothing
 * published. Include after kselftest_harness.h; an ASSERT in a helper ends
 * the test (the harness longjmp()s).
 */
#ifndef AMBER_SELFCHECK_H
#define AMBER_SELFCHECK_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amber_test.h"
#include "fidelity.h"

struct selfcheck {
	char base[256], dir[300], out[300], err[300], go[300], rout[300], rerr[300];
	const char *w;		/* the workload */
	bool tree;		/* --fork, checkpoint --tree */
	pid_t pid, restorer;
	pid_t pids[2];		/* the workload, its child (tree) */
};

/* Paths under TMP/{single,tree}-NAME; the store made empty. */
static inline void sc_setup(struct __test_metadata *_metadata, struct selfcheck *sc,
			    const char *tmp, const char *w, bool tree)
{
	snprintf(sc->base, sizeof(sc->base), "%s/%s-%s", tmp, tree ? "tree" : "single",
		 _metadata->name);
	snprintf(sc->dir, sizeof(sc->dir), "%s/img", sc->base);
	snprintf(sc->out, sizeof(sc->out), "%s/out", sc->base);
	snprintf(sc->err, sizeof(sc->err), "%s/err", sc->base);
	snprintf(sc->go, sizeof(sc->go), "%s/go", sc->base);
	snprintf(sc->rout, sizeof(sc->rout), "%s/restore.out", sc->base);
	snprintf(sc->rerr, sizeof(sc->rerr), "%s/restore.err", sc->base);
	sc->w = w;
	sc->tree = tree;
	sc->pid = sc->restorer = -1;
	sc->pids[0] = sc->pids[1] = 0;
	ASSERT_EQ(0, fresh_dir(sc->dir));
	ASSERT_EQ(0, become_subreaper());
}

static inline void sc_teardown(struct __test_metadata *_metadata, struct selfcheck *sc)
{
	if (sc->pid > 0)
		kill(-sc->pid, SIGKILL);
	kill_and_reap(sc->pid);
	kill_and_reap(sc->restorer);
	if (_metadata->passed)
		rm_rf(sc->base);
}

/* The pid printed by `WHO ready pid N`, 0 if none. */
static inline pid_t sc_ready_pid(const char *out, const char *who)
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

/* Process @pid runs workload @w again (no longer amber's stub). */
static inline bool sc_is_workload(pid_t pid, const char *w)
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

/* Starts the workload (with @extra, an option, unless NULL) until ready. */
static inline void sc_start(struct __test_metadata *_metadata, struct selfcheck *sc,
			    const char *extra)
{
	struct spawn_opts o = { .out_path = sc->out, .err_path = sc->err,
				.new_session = true, .pdeathsig = true };
	struct args a = { 0 };
	char prog[128];

	snprintf(prog, sizeof(prog), WORKLOAD_DIR "/%s", sc->w);
	args_add(&a, prog, "--dir", sc->base, "--go", sc->go, NULL);
	if (sc->tree)
		args_add(&a, "--fork", NULL);
	if (extra)
		args_add(&a, extra, NULL);
	sc->pid = spawn(ARGV(&a), &o);
	ASSERT_LT(0, sc->pid);
	ASSERT_EQ(0, wait_for_text(sc->out, "parent ready", 30000));
	if (sc->tree)
		ASSERT_EQ(0, wait_for_text(sc->out, "child ready", 30000));
	sc->pids[0] = sc->pid;
	ASSERT_EQ(sc->pid, sc_ready_pid(sc->out, "parent"));
	sc->pids[1] = sc->tree ? sc_ready_pid(sc->out, "child") : 0;
	if (sc->tree)
		ASSERT_LT(0, sc->pids[1]);
}

/*
 * Snapshot, then `checkpoint --kill` (`--tree --kill`): it succeeds and
 * every process is gone. Returns the snapshot for sc_restore_check().
 */
static inline struct fid_snap *sc_checkpoint_kill(struct __test_metadata *_metadata,
						  struct selfcheck *sc)
{
	const char *const single_opts[] = { "--kill", NULL };
	const char *const tree_opts[] = { "--tree", "--kill", NULL };
	struct cmd_result r = { 0 };
	struct fid_snap *before;
	struct ckpt_line c;
	int status;

	before = fid_snap_pids(sc->pids, sc->tree ? 2 : 1);
	ASSERT_NE(NULL, before);
	ASSERT_EQ(0, amber_checkpoint_args(sc->pid, sc->dir, sc->tree ? tree_opts : single_opts,
					   &r, &c))
		TH_LOG("checkpoint: status %d, stdout '%s', stderr '%s'", r.status, r.out, r.err);
	cmd_result_free(&r);
	ASSERT_EQ(0, wait_child(sc->pid, 10000, &status));
	ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	sc->pid = -1;
	if (sc->tree)
		ASSERT_EQ(0, wait_child(sc->pids[1], 10000, &status));
	return before;
}

/*
 * `amber restore`: every process runs the workload again within 60 s, its
 * /proc state is @before's (a one-process restore joins amber restore's
 * group and session, by design), and once told to go it checks its own
 * state: PASS, no FAIL, and amber restore exits 0. Frees @before.
 */
static inline void sc_restore_check(struct __test_metadata *_metadata, struct selfcheck *sc,
				    struct fid_snap *before)
{
	static const struct fid_expect one[] = { FID_EXPECT_ONE_PROCESS, { NULL, NULL } };
	static const struct fid_expect tree[] = { { NULL, NULL } };
	struct spawn_opts ro = { .out_path = sc->rout, .err_path = sc->rerr };
	int n = sc->tree ? 2 : 1, i, status;
	char *diff, *expected = NULL, *s;
	struct args a = { 0 };
	long long end;

	args_add(&a, AMBER_BIN, "restore", "-D", sc->dir, NULL);
	sc->restorer = spawn(ARGV(&a), &ro);
	ASSERT_LT(0, sc->restorer);
	end = now_ms() + 60000;
	for (i = 0; i < n && now_ms() < end;) {
		if (sc_is_workload(sc->pids[i], sc->w)) {
			i++;
			continue;
		}
		if (waitpid(sc->restorer, &status, WNOHANG) == sc->restorer) {
			sc->restorer = -1;
			s = slurp(sc->rerr, NULL);
			ASSERT_TRUE(false) TH_LOG("restore ended with %d: %s", status, s);
		}
		sleep_ms(5);
	}
	ASSERT_EQ(n, i) TH_LOG("the processes did not come back");

	diff = fid_wait_same(before, sc->tree ? tree : one, 5000, &expected);
	EXPECT_EQ(NULL, diff) TH_LOG("fidelity:\n%s", diff);
	if (expected)
		TH_LOG("expected differences:\n%s", expected);
	free(diff);
	free(expected);
	fid_free(before);

	ASSERT_EQ(0, write_file(sc->go, "", 0));
	ASSERT_EQ(0, wait_child(sc->restorer, 60000, &status));
	sc->restorer = -1;
	s = slurp(sc->out, NULL);
	ASSERT_NE(NULL, s);
	EXPECT_TRUE(strstr(s, "PASS") && !strstr(s, "FAIL")) TH_LOG("workload:\n%s", s);
	free(s);
	EXPECT_EQ(0, exit_code(status));
}

/*
 * `checkpoint --kill` (`--tree --kill`) with @opts added (NULL-terminated,
 * or NULL) is refused with a message holding each of @want (NULL-
 * terminated); every process lives on, nothing is published, and the
 * workload, told to go, still passes its own check.
 */
static inline void sc_refused(struct __test_metadata *_metadata, struct selfcheck *sc,
			      const char *const *opts, const char *const *want)
{
	const char *argv[16];
	struct cmd_result r = { 0 };
	char latest[400];
	int k = 0, status;
	char *s;

	if (sc->tree)
		argv[k++] = "--tree";
	argv[k++] = "--kill";
	for (int i = 0; opts && opts[i] && k < 15; i++)
		argv[k++] = opts[i];
	argv[k] = NULL;
	amber_checkpoint_args(sc->pid, sc->dir, argv, &r, NULL);
	TH_LOG("checkpoint: status %d, stderr '%s'", exit_code(r.status), r.err);
	EXPECT_NE(0, exit_code(r.status));
	for (int i = 0; want[i]; i++) {
		const char *w = want[i];

		EXPECT_TRUE(r.err && strstr(r.err, w)) TH_LOG("expected \"%s\"", w);
	}
	cmd_result_free(&r);
	EXPECT_TRUE(pid_alive(sc->pids[0]));
	if (sc->tree)
		EXPECT_TRUE(pid_alive(sc->pids[1]));
	snprintf(latest, sizeof(latest), "%s/1", sc->dir);
	EXPECT_NE(0, access(latest, F_OK)) TH_LOG("a checkpoint was published");

	/* It runs on, untouched. */
	ASSERT_EQ(0, write_file(sc->go, "", 0));
	ASSERT_EQ(0, wait_child(sc->pid, 30000, &status));
	sc->pid = -1;
	s = slurp(sc->out, NULL);
	ASSERT_NE(NULL, s);
	EXPECT_TRUE(strstr(s, "PASS") && !strstr(s, "FAIL")) TH_LOG("workload:\n%s", s);
	free(s);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

#endif /* AMBER_SELFCHECK_H */
