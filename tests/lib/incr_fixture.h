// SPDX-License-Identifier: GPL-2.0
/*
 * The fixture of the incremental-chain tests (incr_test.c, compress_test.c):
 * a pagever workload (build/workloads/pagever) driven through its command
 * file, checkpoints of it with their /proc state, and restores that check
 * every page against the version table of the step they were taken at.
 * Include after kselftest_harness.h, amber_test.h and fidelity.h.
 */
#pragma once

#define INCR_TMP	TEST_TMP "/incr"
/* Pages a checkpoint may save beyond those the workload wrote: its version
 * table, stack, stdio and malloc state, the libraries' data. */
#define SLACK		256
#define CMD_MS		180000

FIXTURE(incr) {
	char base[256];
	char dir[300];		/* the store */
	char work[300];		/* pagever's --dir */
	char out[300];		/* pagever's stdout (appended, survives restores) */
	pid_t pid;		/* the target */
	pid_t other;		/* a second workload */
	pid_t cli;
	unsigned long seq;	/* last command sent */
	unsigned int step;	/* the workload's step after the last command */
	unsigned long long touched;	/* pages written or moved by it */
	unsigned long long data;	/* pages holding data after it */
	struct fid_snap *fid[64];	/* /proc state at checkpoint N (checkpoint()) */
};

FIXTURE_SETUP(incr)
{
	snprintf(self->base, sizeof(self->base), "%s/%d", INCR_TMP, getpid());
	snprintf(self->dir, sizeof(self->dir), "%s/img", self->base);
	snprintf(self->work, sizeof(self->work), "%s/work", self->base);
	snprintf(self->out, sizeof(self->out), "%s/pagever.out", self->base);
	self->pid = self->other = self->cli = -1;
	self->seq = 0;
	ASSERT_EQ(0, fresh_dir(self->dir));
	ASSERT_EQ(0, fresh_dir(self->work));
	ASSERT_EQ(0, become_subreaper());
}

FIXTURE_TEARDOWN(incr)
{
	kill_and_reap(self->pid);
	kill_and_reap(self->other);
	kill_and_reap(self->cli);
	for (int i = 0; i < 64; i++)
		fid_free(self->fid[i]);
	if (_metadata->passed)
		rm_rf(self->base);
}

/* thp: NULL (MADV_NOHUGEPAGE), "--thp" or "--madv-hugepage" (see pagever.c). */
static inline void start_pagever_thp(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self,
			      const char *mib, const char *thp)
{
	char *argv[] = { WORKLOAD_DIR "/pagever", "--dir", self->work, "--mib", (char *)mib,
			 (char *)thp, NULL };
	struct spawn_opts o = {
		.out_path = self->out, .append = true, .new_session = true, .pdeathsig = true,
	};

	self->pid = spawn(argv, &o);
	ASSERT_LT(0, self->pid);
	ASSERT_EQ(0, wait_for_text(self->out, "ready step 0", CMD_MS))
		TH_LOG("pagever never got ready: %s", slurp(self->out, NULL));
	self->step = 0;
}

static inline void start_pagever(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self,
			  const char *mib)
{
	start_pagever_thp(_metadata, self, mib, NULL);
}

/* Replace the command file with "SEQ CMD" (a new seq); returns the seq. */
static inline unsigned long send_cmd(FIXTURE_DATA(incr) *self, const char *fmt, ...)
{
	char path[400], tmp[400], line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = snprintf(line, sizeof(line), "%lu ", ++self->seq);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	snprintf(path, sizeof(path), "%s/cmd", self->work);
	snprintf(tmp, sizeof(tmp), "%s/cmd.tmp", self->work);
	if (write_file(tmp, line, strlen(line)) || rename(tmp, path))
		return 0;
	return self->seq;
}

/* The workload's answer to command seq (the text after "cmd SEQ "), malloc'ed. */
static inline char *wait_answer(FIXTURE_DATA(incr) *self, unsigned long seq)
{
	char needle[64], *s, *p, *end;
	long long until = now_ms() + CMD_MS;

	snprintf(needle, sizeof(needle), "cmd %lu ", seq);
	for (;;) {
		s = slurp(self->out, NULL);
		p = s ? strstr(s, needle) : NULL;
		if (p && (end = strchr(p, '\n'))) {
			*end = 0;
			p = strdup(p + strlen(needle));
			free(s);
			return p;
		}
		if (s && strstr(s, "FAIL")) {
			free(s);
			return NULL;
		}
		free(s);
		if (now_ms() > until)
			return NULL;
		sleep_ms(20);
	}
}

/* Run a workload command that changes memory; sets step, touched, data. */
static inline void pv(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self, const char *fmt, ...)
{
	char cmd[128], *a;
	unsigned int step;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	a = wait_answer(self, send_cmd(self, "%s", cmd));
	ASSERT_NE(NULL, a) TH_LOG("'%s': no answer:\n%s", cmd, slurp(self->out, NULL));
	ASSERT_EQ(3, sscanf(a, "step %u touched %llu data %llu", &step, &self->touched,
			    &self->data)) TH_LOG("'%s': %s", cmd, a);
	free(a);
	ASSERT_EQ(self->step + 1, step);
	self->step = step;
}

static inline void checkpoint(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self,
		       pid_t pid, const char *const extra[], struct ckpt_line *c)
{
	struct fid_snap *fid = fid_snap_pids(&pid, 1);	/* the target waits for a command */
	struct cmd_result r;

	ASSERT_NE(NULL, fid);
	ASSERT_EQ(0, amber_checkpoint_args(pid, self->dir, extra, &r, c))
		TH_LOG("checkpoint: status %d\n%s%s", exit_code(r.status), r.out, r.err);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
	ASSERT_EQ(pid, c->pid);
	if (c->number < 64) {
		fid_free(self->fid[c->number]);
		self->fid[c->number] = fid;
	} else {
		fid_free(fid);
	}
	ASSERT_TRUE(c->has_kind) TH_LOG("no second line saying full or incremental");
}

/* An incremental checkpoint on parent that saved about `touched` pages. */
static inline void assert_incremental(struct __test_metadata *_metadata, const struct ckpt_line *c,
			       unsigned int parent, unsigned long long touched,
			       unsigned long long data)
{
	ASSERT_TRUE(c->incremental) TH_LOG("checkpoint %u is full (%s)", c->number, c->reason);
	ASSERT_EQ(parent, c->parent);
	ASSERT_LE(touched, c->saved);
	ASSERT_GE(touched + SLACK, c->saved)
		TH_LOG("checkpoint %u saved %llu pages, the workload wrote %llu", c->number,
		       c->saved, touched);
	/* Every page with data is in the image, saved or unchanged. */
	ASSERT_LE(data, c->saved + c->unchanged);
}

static inline void assert_full(struct __test_metadata *_metadata, const struct ckpt_line *c)
{
	ASSERT_FALSE(c->incremental) TH_LOG("checkpoint %u is incremental on %u", c->number,
					    c->parent);
}

static inline void kill_target(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self)
{
	ASSERT_EQ(0, kill(self->pid, SIGKILL));
	ASSERT_EQ(0, wait_gone(self->pid, 60000));
	waitpid(self->pid, NULL, WNOHANG);
}

/* The number of the latest checkpoint in the store, 0 if none. */
static inline unsigned int latest_number(FIXTURE_DATA(incr) *self)
{
	struct dirent *e;
	unsigned int n = 0;
	DIR *d = opendir(self->dir);

	while (d && (e = readdir(d)))
		if ((unsigned int)atoi(e->d_name) > n)
			n = atoi(e->d_name);
	if (d)
		closedir(d);
	return n;
}

/* It answers on stdout (fd 1) and reads its commands from a pipe. */
static const struct fid_expect incr_expect[] = {
	{ "fdinfo 1: pos", "the workload answered the verify command after the restore" },
	{ "fdinfo 2: pos", "stderr is the same open file as stdout (spawn() dup2()s it)" },
	{ "maps \\[heap\\]: end", "pagever fopen()s its state file to answer the verify command "
	  "after the restore: malloc() grows the heap" },
	FID_EXPECT_ONE_PROCESS,
	{ NULL, NULL },
};

/*
 * Restore checkpoint number (0: latest) of the store; the restored process
 * must verify its memory as the one of `step`, and have the /proc state
 * checkpoint() saw when it took that checkpoint.
 */
static inline void restore_verify(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self,
			   unsigned int number, unsigned int step)
{
	char nbuf[32], want[64], *a;
	struct cmd_result r;
	unsigned long seq;
	pid_t pid = self->pid, restored;
	unsigned int nr = number ? number : latest_number(self);

	ASSERT_FALSE(pid_alive(pid));
	seq = send_cmd(self, "verify");
	snprintf(nbuf, sizeof(nbuf), "%u", number);
	ASSERT_EQ(0, run_cmdl(CMD_MS, &r, AMBER_BIN, "restore", "-D", self->dir, "--detach",
			      number ? "--checkpoint" : NULL, nbuf, NULL));
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("restore %u: %s", number, r.err);
	ASSERT_EQ(0, parse_restored_line(r.out, &restored)) TH_LOG("%s", r.out);
	cmd_result_free(&r);
	ASSERT_EQ(pid, restored);
	a = wait_answer(self, seq);
	ASSERT_NE(NULL, a) TH_LOG("restored checkpoint %u does not verify:\n%s", number,
				  slurp(self->out, NULL));
	snprintf(want, sizeof(want), "verify step %u PASS", step);
	ASSERT_STREQ(want, a);
	free(a);
	self->step = step;
	if (nr < 64 && self->fid[nr])
		EXPECT_FIDELITY(self->fid[nr], incr_expect, 10000);
	else
		TH_LOG("checkpoint %u was not taken by checkpoint(): no fidelity check", nr);
}

/* The target prints n more ticks within 60 s, and never FAIL. */
static inline void assert_progress(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self, int n)
{
	int before = count_text(self->out, "tick ");
	long long end = now_ms() + 60000;

	while (count_text(self->out, "tick ") < before + n && now_ms() < end && pid_alive(self->pid))
		sleep_ms(50);
	ASSERT_LE(before + n, count_text(self->out, "tick "))
		TH_LOG("pid %d made no progress (state '%c')", self->pid, pid_state(self->pid));
	ASSERT_EQ(0, count_text(self->out, "FAIL")) TH_LOG("%s", slurp(self->out, NULL));
}

static inline bool ckpt_exists(FIXTURE_DATA(incr) *self, unsigned int n)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/%u", self->dir, n);
	return access(path, F_OK) == 0;
}
