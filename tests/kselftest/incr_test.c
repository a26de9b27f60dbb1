// SPDX-License-Identifier: GPL-2.0
/*
 * Incremental checkpoints: chains of checkpoints of a process whose pages
 * carry versions (build/workloads/pagever), with VMA changes between links,
 * restored from the newest and from a middle link; damage in a middle link;
 * kill -9 of the CLI or of the target during an incremental checkpoint;
 * compaction and retention; when a checkpoint must be full. The fixture and
 * its helpers: tests/lib/incr_fixture.h (compress_test.c shares them).
 *
 * The workload is driven through its command file (see pagever.c). Before
 * every restore the test writes a "verify" command, so the restored process
 * checks every page against its version table and that table against the
 * state file of the step it was checkpointed at, which the test knows.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
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

#include "incr_fixture.h"

/* (a) five incremental links with VMA changes; restore the last and a middle one. */
TEST_F_TIMEOUT(incr, chain_vma_changes, 600)
{
	struct ckpt_line c[7];
	unsigned int step[7];
	unsigned long long t;
	struct cmd_result r;

	REQUIRE_AMBER();
	start_pagever(_metadata, self, "64");
	checkpoint(_metadata, self, self->pid, NULL, &c[0]);
	assert_full(_metadata, &c[0]);
	step[0] = self->step;

	pv(_metadata, self, "dirty 50 1");
	checkpoint(_metadata, self, self->pid, NULL, &c[1]);
	assert_incremental(_metadata, &c[1], c[0].number, self->touched, self->data);
	ASSERT_GT(self->data / 4, c[1].saved);
	step[1] = self->step;

	pv(_metadata, self, "unmap 1");
	pv(_metadata, self, "dirty 30 2");
	checkpoint(_metadata, self, self->pid, NULL, &c[2]);
	assert_incremental(_metadata, &c[2], c[1].number, self->touched, self->data);
	step[2] = self->step;

	/* mremap moves the page table entries: the moved pages count as written. */
	pv(_metadata, self, "remap 2");
	t = self->touched;
	pv(_metadata, self, "dirty 20 3");
	checkpoint(_metadata, self, self->pid, NULL, &c[3]);
	ASSERT_TRUE(c[3].incremental) TH_LOG("%s", c[3].reason);
	ASSERT_EQ(c[2].number, c[3].parent);
	ASSERT_LE(self->touched, c[3].saved);
	ASSERT_GE(self->touched + t + SLACK, c[3].saved);
	step[3] = self->step;

	pv(_metadata, self, "protect 3");
	pv(_metadata, self, "map 1000");
	t = self->touched;
	pv(_metadata, self, "dirty 20 4");
	checkpoint(_metadata, self, self->pid, NULL, &c[4]);
	assert_incremental(_metadata, &c[4], c[3].number, self->touched + t, self->data);
	step[4] = self->step;

	pv(_metadata, self, "dontneed 0");
	pv(_metadata, self, "protect 3");
	pv(_metadata, self, "dirty 10 5");
	checkpoint(_metadata, self, self->pid, NULL, &c[5]);
	assert_incremental(_metadata, &c[5], c[4].number, self->touched, self->data);
	step[5] = self->step;

	pv(_metadata, self, "unmap 4");
	pv(_metadata, self, "dirty 10 6");
	checkpoint(_metadata, self, self->pid, NULL, &c[6]);
	assert_incremental(_metadata, &c[6], c[5].number, self->touched, self->data);
	step[6] = self->step;

	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "inspect", "-D", self->dir, NULL));
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("inspect: %s", r.err);
	ASSERT_TRUE(contains_ci(r.out, "incremental")) TH_LOG("inspect:\n%s", r.out);
	cmd_result_free(&r);

	kill_target(_metadata, self);
	restore_verify(_metadata, self, 0, step[6]);
	kill_target(_metadata, self);
	restore_verify(_metadata, self, c[2].number, step[2]);
	kill_target(_metadata, self);
	restore_verify(_metadata, self, c[4].number, step[4]);
}

/* (b) 5 % of the pages rewritten between links, over several links. */
TEST_F_TIMEOUT(incr, versions_5_percent, 400)
{
	struct ckpt_line c, prev;
	uint64_t data_pages, parent_pages;
	char path[400];
	int i;

	REQUIRE_AMBER();
	start_pagever(_metadata, self, "32");
	checkpoint(_metadata, self, self->pid, NULL, &prev);
	assert_full(_metadata, &prev);
	for (i = 0; i < 4; i++) {
		pv(_metadata, self, "dirty 50 %d", 100 + i);
		checkpoint(_metadata, self, self->pid, NULL, &c);
		assert_incremental(_metadata, &c, prev.number, self->touched, self->data);
		ASSERT_GT(self->data / 4, c.saved);
		/* The pages file says the same as the CLI. */
		snprintf(path, sizeof(path), "%s/%u/pages.img", self->dir, c.number);
		ASSERT_EQ(0, count_page_runs(path, &data_pages, &parent_pages));
		ASSERT_EQ(c.saved, data_pages);
		ASSERT_EQ(c.unchanged, parent_pages);
		prev = c;
	}
	kill_target(_metadata, self);
	restore_verify(_metadata, self, 0, self->step);
}

/*
 * Transparent huge pages (the guest has THP=always): the chain restores, and
 * not every page is saved again (thp_chain_exact below bounds the pages saved
 * at 4 KiB).
 */
TEST_F_TIMEOUT(incr, versions_thp, 400)
{
	struct ckpt_line c, prev;
	int i;

	REQUIRE_AMBER();
	start_pagever_thp(_metadata, self, "32", "--thp");
	checkpoint(_metadata, self, self->pid, NULL, &prev);
	for (i = 0; i < 2; i++) {
		pv(_metadata, self, "dirty 2 %d", 150 + i);
		checkpoint(_metadata, self, self->pid, NULL, &c);
		ASSERT_TRUE(c.incremental) TH_LOG("%s", c.reason);
		ASSERT_EQ(prev.number, c.parent);
		ASSERT_LE(self->touched, c.saved);
		ASSERT_GT(self->data, c.saved) TH_LOG("every page saved");
		prev = c;
	}
	kill_target(_metadata, self);
	restore_verify(_metadata, self, 0, self->step);
}

/* THP as the kernel runs it: "never" if transparent huge pages are off. */
static bool thp_enabled(void)
{
	char *s = slurp("/sys/kernel/mm/transparent_hugepage/enabled", NULL);
	bool on = s && !strstr(s, "[never]");

	free(s);
	return on;
}

/* Huge pages khugepaged has collapsed since boot (all processes). */
static long long khugepaged_collapsed(void)
{
	char *s = slurp("/sys/kernel/mm/transparent_hugepage/khugepaged/pages_collapsed", NULL);
	long long n = s ? atoll(s) : -1;

	free(s);
	return n;
}

/*
 * A THP-heavy chain is exact at 4 KiB: 16 MiB of MADV_HUGEPAGE memory on
 * 2 MiB boundaries, really backed by huge pages (AnonHugePages), checkpointed
 * with tracking; random 4 KiB pages rewritten, an incremental checkpoint, more
 * rewritten, another incremental with --kill; each incremental saves the
 * pages written, not their 2 MiB (the first checkpoint maps the huge pages
 * with PTEs), give or take SLACK, even when khugepaged collapsed huge pages
 * meanwhile (their unchanged 4 KiB pages are dropped: thp_collapse_exact);
 * then the chain
 * is restored and the process checks every 4 KiB page against its version
 * table, and that table against the state file of its step.
 */
TEST_F_TIMEOUT(incr, thp_chain_exact, 400)
{
	const char *const kill_opt[] = { "--kill", NULL };
	struct ckpt_line c[3];
	long long collapsed;
	long huge_kb;
	int i;

	REQUIRE_AMBER();
	if (!thp_enabled())
		SKIP(return, "transparent huge pages are off in this kernel");
	start_pagever_thp(_metadata, self, "16", "--madv-hugepage");
	huge_kb = proc_kb(self->pid, "smaps_rollup", "AnonHugePages:");
	ASSERT_LE(8192, huge_kb) TH_LOG("only %ld kB of the 16 MiB are huge pages", huge_kb);

	checkpoint(_metadata, self, self->pid, NULL, &c[0]);
	assert_full(_metadata, &c[0]);
	/*
	 * The tracking checkpoint mapped every huge page with PTEs; khugepaged
	 * cannot have collapsed any back yet: it leaves ranges alone until one
	 * of their pages is written (all are write-protected now), and the
	 * workload only waits for its next command.
	 */
	huge_kb = proc_kb(self->pid, "smaps_rollup", "AnonHugePages:");
	ASSERT_EQ(0, huge_kb) TH_LOG("%ld kB still mapped by huge PMDs after checkpoint %u",
				     huge_kb, c[0].number);
	for (i = 1; i <= 2; i++) {
		collapsed = khugepaged_collapsed();
		ASSERT_LE(0, collapsed);
		pv(_metadata, self, "dirty %d %d", i == 1 ? 20 : 50, 170 + i);
		checkpoint(_metadata, self, self->pid, i == 2 ? kill_opt : NULL, &c[i]);
		collapsed = khugepaged_collapsed() - collapsed;
		ASSERT_TRUE(c[i].incremental) TH_LOG("%s", c[i].reason);
		ASSERT_EQ(c[i - 1].number, c[i].parent);
		ASSERT_LE(self->touched, c[i].saved);
		ASSERT_GE(self->touched + SLACK, c[i].saved)
			TH_LOG("checkpoint %u saved %llu pages, the workload wrote %llu "
			       "(khugepaged collapsed %lld huge pages meanwhile)",
			       c[i].number, c[i].saved, self->touched, collapsed);
		ASSERT_LE(self->data, c[i].saved + c[i].unchanged);
	}
	ASSERT_EQ(0, wait_gone(self->pid, 60000)) TH_LOG("--kill left pid %d alive", self->pid);
	waitpid(self->pid, NULL, WNOHANG);
	restore_verify(_metadata, self, 0, self->step);
}

/*
 * A huge page collapsed between two checkpoints is saved at 4 KiB: after a
 * tracking checkpoint of 16 MiB of MADV_HUGEPAGE memory, random 4 KiB pages
 * are rewritten, then MADV_COLLAPSE makes the whole region huge pages again,
 * as khugepaged would (a new huge PMD is dirty as a whole). The module saves
 * their 2 MiB; the tool keeps only the 4 KiB pages whose bytes differ from
 * the parent's, so the incremental holds the pages written, give or take
 * SLACK. The chain then restores exactly, page by page.
 */
TEST_F_TIMEOUT(incr, thp_collapse_exact, 400)
{
	struct ckpt_line c[2];
	unsigned long long written;
	long huge_kb;

	REQUIRE_AMBER();
	if (!thp_enabled())
		SKIP(return, "transparent huge pages are off in this kernel");
	start_pagever_thp(_metadata, self, "16", "--madv-hugepage");
	checkpoint(_metadata, self, self->pid, NULL, &c[0]);
	assert_full(_metadata, &c[0]);
	pv(_metadata, self, "dirty 20 181");
	written = self->touched;
	ASSERT_LT(0, written);
	pv(_metadata, self, "collapse 0");
	huge_kb = proc_kb(self->pid, "smaps_rollup", "AnonHugePages:");
	/*
	 * Not every range collapses (a range with no writable PTE is refused),
	 * but one huge page saved whole would exceed the bound below.
	 */
	ASSERT_LE(2048, huge_kb) TH_LOG("MADV_COLLAPSE made no huge page");

	checkpoint(_metadata, self, self->pid, NULL, &c[1]);
	ASSERT_TRUE(c[1].incremental) TH_LOG("%s", c[1].reason);
	ASSERT_EQ(c[0].number, c[1].parent);
	ASSERT_LE(written, c[1].saved);
	ASSERT_GE(written + SLACK, c[1].saved)
		TH_LOG("checkpoint %u saved %llu pages of %ld kB of collapsed huge pages, "
		       "the workload wrote %llu", c[1].number, c[1].saved, huge_kb, written);
	ASSERT_LE(self->data, c[1].saved + c[1].unchanged);
	kill_target(_metadata, self);
	restore_verify(_metadata, self, 0, self->step);
}

/* (c) a flipped byte of page data in a middle link: restore names that link. */
TEST_F_TIMEOUT(incr, damaged_middle_link, 400)
{
	struct ckpt_line c[3];
	struct cmd_result r;
	char path[400], name[64];
	uint64_t bytes;
	off_t off;
	int i;

	REQUIRE_AMBER();
	start_pagever(_metadata, self, "32");
	checkpoint(_metadata, self, self->pid, NULL, &c[0]);
	for (i = 1; i < 3; i++) {
		pv(_metadata, self, "dirty 100 %d", 200 + i);
		checkpoint(_metadata, self, self->pid, NULL, &c[i]);
		assert_incremental(_metadata, &c[i], c[i - 1].number, self->touched, self->data);
	}
	kill_target(_metadata, self);

	snprintf(path, sizeof(path), "%s/%u/pages.img", self->dir, c[1].number);
	ASSERT_EQ(0, first_page_run(path, &off, &bytes));
	ASSERT_EQ(0, flip_byte(path, off + bytes / 2));
	ASSERT_EQ(0, run_cmdl(CMD_MS, &r, AMBER_BIN, "restore", "-D", self->dir, "--detach",
			      NULL));
	TH_LOG("restore: %s", r.err);
	EXPECT_NE(0, exit_code(r.status));
	snprintf(name, sizeof(name), "checkpoint %u", c[1].number);
	EXPECT_TRUE(contains_ci(r.err, name)) TH_LOG("the message does not name '%s'", name);
	cmd_result_free(&r);
	sleep_ms(500);
	ASSERT_FALSE(pid_alive(self->pid)) TH_LOG("pid %d is alive", self->pid);

	/* The first link is intact and restores. */
	restore_verify(_metadata, self, c[0].number, 0);
}

/* amber checkpoint in the background, output to base/cli.out. */
static void start_cli(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self)
{
	char pid[32], out[400];
	char *argv[] = { AMBER_BIN, "checkpoint", pid, "-D", self->dir, NULL };
	struct spawn_opts o = { .out_path = out };

	snprintf(pid, sizeof(pid), "%d", self->pid);
	snprintf(out, sizeof(out), "%s/cli.out", self->base);
	self->cli = spawn(argv, &o);
	ASSERT_LT(0, self->cli);
}

/* Size of the pages file of a checkpoint being written (DIR/.tmp-N), -1 if none. */
static off_t tmp_pages_size(FIXTURE_DATA(incr) *self)
{
	char path[700];
	struct dirent *e;
	off_t size = -1;
	DIR *d = opendir(self->dir);

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, ".tmp-", 5))
			continue;
		snprintf(path, sizeof(path), "%s/%s/pages.img", self->dir, e->d_name);
		if (file_size(path) > size)
			size = file_size(path);
	}
	closedir(d);
	return size;
}

/*
 * Start amber checkpoint and, once its pages file has at least min_size
 * bytes (0: once it exists), SIGKILL the CLI (victim == cli) or the target.
 * Returns the CLI's wait status.
 */
static int kill_during_checkpoint(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self,
				  off_t min_size, bool kill_cli)
{
	char cmd[400];
	long long end = now_ms() + CMD_MS;
	int status = -1;
	off_t size;

	snprintf(cmd, sizeof(cmd), "rm -rf %s/.tmp-*", self->dir);
	if (system(cmd))
		return -1;
	start_cli(_metadata, self);
	while (now_ms() < end) {
		size = tmp_pages_size(self);
		if (size >= min_size) {
			TH_LOG("pages file at %lld bytes: SIGKILL to the %s", (long long)size,
			       kill_cli ? "CLI" : "target");
			if (kill_cli)
				kill(self->cli, SIGKILL);
			else
				kill_target(_metadata, self);
			break;
		}
		if (waitpid(self->cli, &status, WNOHANG) == self->cli) {
			self->cli = -1;
			return status;
		}
		sleep_ms(2);
	}
	if (wait_child(self->cli, CMD_MS, &status))
		status = -1;
	self->cli = -1;
	return status;
}

/* (d) kill -9 of the CLI during an incremental checkpoint. */
TEST_F_TIMEOUT(incr, cli_killed_midway, 600)
{
	/* Killed while the kernel writes the pages, and just as it starts. */
	static const off_t when[] = { 1 << 20, 0 };
	unsigned int prev_step, prev_nr, last_step, i;
	struct ckpt_line c;
	char out[400], state, *s;
	int status;

	REQUIRE_AMBER();
	start_pagever(_metadata, self, "64");
	checkpoint(_metadata, self, self->pid, NULL, &c);
	prev_nr = c.number;
	prev_step = self->step;
	snprintf(out, sizeof(out), "%s/cli.out", self->base);
	for (i = 0; i < sizeof(when) / sizeof(when[0]); i++) {
		pv(_metadata, self, "dirty 500 %u", 300 + i);
		status = kill_during_checkpoint(_metadata, self, when[i], true);
		if (!WIFSIGNALED(status)) {
			/* It finished first: that is the previous checkpoint now. */
			s = slurp(out, NULL);
			TH_LOG("the CLI finished first: %s", s);
			ASSERT_EQ(0, parse_ckpt_line(s, &c)) TH_LOG("%s", s);
			free(s);
			prev_nr = c.number;
			prev_step = self->step;
			continue;
		}
		/* The target is not left stopped and carries on with intact memory. */
		state = pid_state(self->pid);
		ASSERT_TRUE(state == 'S' || state == 'R' || state == 'D') TH_LOG("state '%c'", state);
		assert_progress(_metadata, self, 3);
	}

	/* The next checkpoint, whatever its kind, holds the current memory. */
	pv(_metadata, self, "dirty 50 399");
	checkpoint(_metadata, self, self->pid, NULL, &c);
	ASSERT_LT(prev_nr, c.number);
	last_step = self->step;
	kill_target(_metadata, self);
	restore_verify(_metadata, self, prev_nr, prev_step);
	kill_target(_metadata, self);
	restore_verify(_metadata, self, 0, last_step);
}

/* (e) kill -9 of the target during an incremental checkpoint. */
TEST_F_TIMEOUT(incr, target_killed_midway, 600)
{
	static const off_t when[] = { 0, 1 << 20 };
	struct ckpt_line c;
	unsigned int i, prev_step;
	char out[400], *s;
	int status;

	REQUIRE_AMBER();
	start_pagever(_metadata, self, "64");
	snprintf(out, sizeof(out), "%s/cli.out", self->base);
	for (i = 0; i < sizeof(when) / sizeof(when[0]); i++) {
		/* The previous checkpoint (full: first, or of a restored process). */
		checkpoint(_metadata, self, self->pid, NULL, &c);
		prev_step = self->step;
		pv(_metadata, self, "dirty 500 %u", 400 + i);
		status = kill_during_checkpoint(_metadata, self, when[i], false);
		if (pid_alive(self->pid))
			kill_target(_metadata, self);
		s = slurp(out, NULL);
		TH_LOG("amber checkpoint status %d: %s", exit_code(status), s);
		free(s);
		/* Either the checkpoint was complete, or latest is the previous one. */
		restore_verify(_metadata, self, 0, exit_code(status) == 0 ? self->step : prev_step);
	}
}

/* (f) compact, and retention of the last K checkpoints. */
TEST_F_TIMEOUT(incr, compact_keep, 600)
{
	const char *const keep2[] = { "--keep", "2", NULL };
	struct ckpt_line c[4], k[3];
	uint64_t data_pages, parent_pages;
	unsigned int i, steps[3];
	struct cmd_result r;
	char path[400], keep_nr[32];

	REQUIRE_AMBER();
	start_pagever(_metadata, self, "32");
	checkpoint(_metadata, self, self->pid, NULL, &c[0]);
	for (i = 1; i < 4; i++) {
		if (i == 3)
			pv(_metadata, self, "unmap 1");
		pv(_metadata, self, "dirty 50 %u", 500 + i);
		checkpoint(_metadata, self, self->pid, NULL, &c[i]);
		ASSERT_TRUE(c[i].incremental);
	}
	ASSERT_EQ(0, run_cmdl(CMD_MS, &r, AMBER_BIN, "compact", "-D", self->dir, NULL));
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("compact: %s", r.err);
	cmd_result_free(&r);
	snprintf(path, sizeof(path), "%s/%u/pages.img", self->dir, c[3].number);
	ASSERT_EQ(0, count_page_runs(path, &data_pages, &parent_pages));
	ASSERT_EQ(0, parent_pages);
	ASSERT_LE(self->data, data_pages);
	kill_target(_metadata, self);
	restore_verify(_metadata, self, 0, self->step);

	/* The restored process: a new full checkpoint, then two incremental ones. */
	for (i = 0; i < 3; i++) {
		pv(_metadata, self, "dirty 50 %u", 510 + i);
		checkpoint(_metadata, self, self->pid, NULL, &k[i]);
		steps[i] = self->step;
	}
	ASSERT_TRUE(k[2].incremental);
	ASSERT_EQ(k[1].number, k[2].parent);
	snprintf(keep_nr, sizeof(keep_nr), "%d", 2);
	ASSERT_EQ(0, run_cmdl(CMD_MS, &r, AMBER_BIN, "compact", "-D", self->dir, "--keep",
			      keep_nr, NULL));
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("compact --keep 2: %s", r.err);
	TH_LOG("%s", r.out);
	cmd_result_free(&r);
	for (i = 1; i < k[1].number; i++)
		ASSERT_FALSE(ckpt_exists(self, i)) TH_LOG("checkpoint %u is still there", i);
	ASSERT_TRUE(ckpt_exists(self, k[1].number));
	ASSERT_TRUE(ckpt_exists(self, k[2].number));
	kill_target(_metadata, self);
	restore_verify(_metadata, self, k[1].number, steps[1]);
	kill_target(_metadata, self);
	restore_verify(_metadata, self, k[2].number, steps[2]);

	/* checkpoint --keep 2: the new one and k[2], which no longer needs k[1]. */
	pv(_metadata, self, "dirty 50 520");
	checkpoint(_metadata, self, self->pid, keep2, &c[0]);
	ASSERT_FALSE(ckpt_exists(self, k[1].number)) TH_LOG("checkpoint %u is still there",
							     k[1].number);
	ASSERT_TRUE(ckpt_exists(self, k[2].number));
	ASSERT_TRUE(ckpt_exists(self, c[0].number));
	kill_target(_metadata, self);
	restore_verify(_metadata, self, k[2].number, steps[2]);
}

/* (g) --full; a restored process and another process are never incremental. */
TEST_F_TIMEOUT(incr, when_full, 400)
{
	const char *const full[] = { "--full", NULL };
	char *argv[] = { WORKLOAD_DIR "/pagever", "--dir", NULL, "--mib", "4", NULL };
	char work2[400], out2[400];
	struct ckpt_line c[3];

	REQUIRE_AMBER();
	start_pagever(_metadata, self, "16");
	checkpoint(_metadata, self, self->pid, NULL, &c[0]);
	assert_full(_metadata, &c[0]);
	pv(_metadata, self, "dirty 50 600");
	checkpoint(_metadata, self, self->pid, full, &c[1]);
	assert_full(_metadata, &c[1]);
	ASSERT_LE(self->data, c[1].saved);
	/* --full still tracks: the next one is incremental on it. */
	pv(_metadata, self, "dirty 50 601");
	checkpoint(_metadata, self, self->pid, NULL, &c[2]);
	assert_incremental(_metadata, &c[2], c[1].number, self->touched, self->data);

	kill_target(_metadata, self);
	restore_verify(_metadata, self, 0, self->step);
	pv(_metadata, self, "dirty 50 602");
	checkpoint(_metadata, self, self->pid, NULL, &c[0]);
	assert_full(_metadata, &c[0]);

	/* Another process checkpointed into the same store. */
	snprintf(work2, sizeof(work2), "%s/work2", self->base);
	snprintf(out2, sizeof(out2), "%s/other.out", self->base);
	ASSERT_EQ(0, fresh_dir(work2));
	argv[2] = work2;
	self->other = spawn_workload(argv, out2);
	ASSERT_LT(0, self->other);
	ASSERT_EQ(0, wait_for_text(out2, "ready", CMD_MS));
	checkpoint(_metadata, self, self->other, NULL, &c[1]);
	assert_full(_metadata, &c[1]);
	/* ... and back to the first: latest is not its own. */
	pv(_metadata, self, "dirty 50 603");
	checkpoint(_metadata, self, self->pid, NULL, &c[2]);
	assert_full(_metadata, &c[2]);
	kill_target(_metadata, self);
	restore_verify(_metadata, self, 0, self->step);
}

/* (h) amber untrack, and --no-track. */
TEST_F_TIMEOUT(incr, untrack, 400)
{
	const char *const notrack[] = { "--no-track", NULL };
	struct ckpt_line c;
	struct cmd_result r;
	char pid[32];

	REQUIRE_AMBER();
	start_pagever(_metadata, self, "16");
	snprintf(pid, sizeof(pid), "%d", self->pid);
	checkpoint(_metadata, self, self->pid, NULL, &c);
	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "untrack", pid, NULL));
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("untrack: %s", r.err);
	cmd_result_free(&r);
	/* Not tracked any more: a second untrack fails and says so. */
	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "untrack", pid, NULL));
	TH_LOG("second untrack: %s", r.err);
	ASSERT_NE(0, exit_code(r.status));
	ASSERT_TRUE(contains_ci(r.err, "track")) TH_LOG("%s", r.err);
	cmd_result_free(&r);

	pv(_metadata, self, "dirty 50 700");
	checkpoint(_metadata, self, self->pid, NULL, &c);
	assert_full(_metadata, &c);
	ASSERT_LE(self->data, c.saved);
	pv(_metadata, self, "dirty 50 701");
	checkpoint(_metadata, self, self->pid, notrack, &c);
	assert_full(_metadata, &c);
	/* --no-track ended the tracking. */
	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "untrack", pid, NULL));
	ASSERT_NE(0, exit_code(r.status)) TH_LOG("still tracked after --no-track");
	cmd_result_free(&r);
	pv(_metadata, self, "dirty 50 702");
	checkpoint(_metadata, self, self->pid, NULL, &c);
	assert_full(_metadata, &c);
	kill_target(_metadata, self);
	restore_verify(_metadata, self, 0, self->step);
}

/*
 * The target keeps writing every page while its checkpoints are written out
 * (the pages are saved copy-on-write, not copied while it is stopped): each
 * restored checkpoint must hold the memory of its stop, which the workload
 * checks page by page as it goes on.
 */
static void writes_while_saving(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self,
				bool thp)
{
	const char *const full[] = { "--full", NULL };
	char stop[400], *argv[5];
	struct spawn_opts o = {
		.out_path = self->out, .append = true, .new_session = true, .pdeathsig = true,
	};
	struct ckpt_line c[3];
	struct cmd_result r;
	unsigned int n;
	pid_t restored;

	snprintf(stop, sizeof(stop), "%s/stop", self->work);
	argv[0] = WORKLOAD_DIR "/scribble";
	argv[1] = "64";
	argv[2] = stop;
	argv[3] = thp ? "thp" : NULL;
	argv[4] = NULL;
	self->pid = spawn(argv, &o);
	ASSERT_LT(0, self->pid);
	ASSERT_EQ(0, wait_for_text(self->out, "ready", CMD_MS)) TH_LOG("%s", slurp(self->out, NULL));
	if (thp) {
		char *out = slurp(self->out, NULL);
		unsigned long kb = 0;

		ASSERT_EQ(1, sscanf(strstr(out, "ready") ?: "", "ready, %lu kB", &kb));
		free(out);
		if (!kb)
			SKIP(return, "no transparent huge pages in this kernel");
	}

	checkpoint(_metadata, self, self->pid, full, &c[0]);
	/* Incremental, though the workload rewrites every page all the time. */
	checkpoint(_metadata, self, self->pid, NULL, &c[1]);
	ASSERT_TRUE(c[1].incremental) TH_LOG("%s", c[1].reason);
	ASSERT_EQ(c[0].number, c[1].parent);
	checkpoint(_metadata, self, self->pid, NULL, &c[2]);
	ASSERT_TRUE(c[2].incremental) TH_LOG("%s", c[2].reason);
	ASSERT_EQ(c[1].number, c[2].parent);
	kill_target(_metadata, self);
	ASSERT_EQ(0, count_text(self->out, "FAIL")) TH_LOG("%s", slurp(self->out, NULL));

	/* The last checkpoint, then the middle one. */
	for (n = 3; n >= 2; n--) {
		char nbuf[16];
		int passes = count_text(self->out, "PASS");

		unlink(stop);
		snprintf(nbuf, sizeof(nbuf), "%u", c[n - 1].number);
		ASSERT_EQ(0, run_cmdl(CMD_MS, &r, AMBER_BIN, "restore", "-D", self->dir, "--detach",
				      "--checkpoint", nbuf, NULL));
		ASSERT_EQ(0, exit_code(r.status)) TH_LOG("restore %s: %s", nbuf, r.err);
		ASSERT_EQ(0, parse_restored_line(r.out, &restored)) TH_LOG("%s", r.out);
		cmd_result_free(&r);
		ASSERT_EQ(self->pid, restored);
		sleep_ms(300);
		ASSERT_EQ(0, write_file(stop, "", 0));
		ASSERT_EQ(0, wait_gone(self->pid, CMD_MS));
		waitpid(self->pid, NULL, WNOHANG);
		ASSERT_EQ(0, count_text(self->out, "FAIL"))
			TH_LOG("checkpoint %s: %s", nbuf, slurp(self->out, NULL));
		ASSERT_EQ(passes + 1, count_text(self->out, "PASS"))
			TH_LOG("checkpoint %s: %s", nbuf, slurp(self->out, NULL));
	}
}

TEST_F_TIMEOUT(incr, writes_while_saving, 400)
{
	REQUIRE_AMBER();
	writes_while_saving(_metadata, self, false);
}

/* The same in transparent huge pages (mapped with PTEs by the first checkpoint). */
TEST_F_TIMEOUT(incr, writes_while_saving_thp, 400)
{
	REQUIRE_AMBER();
	writes_while_saving(_metadata, self, true);
}

TEST_HARNESS_MAIN
