// SPDX-License-Identifier: GPL-2.0
/*
 * Compressed checkpoints (amber checkpoint --compress): a chain of
 * compressed and uncompressed links of a process with compressible memory
 * (pagever --compressible) restores exactly, eagerly and with --lazy; a
 * damaged compressed link is refused before anything runs, naming the
 * checkpoint and the file.
 * The fixture is incr_test.c's (tests/lib/incr_fixture.h).
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

/* DIR/N/FILE of the store. */
static void ckpt_file(FIXTURE_DATA(incr) *self, unsigned int n, const char *file, char *path,
		      size_t len)
{
	snprintf(path, len, "%s/%u/%s", self->dir, n, file);
}

/*
 * A checkpoint taken with --compress: pages.img.zst instead of pages.img,
 * well under the bytes of the pages it saved (pagever --compressible).
 */
static void assert_compressed(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self,
			      const struct ckpt_line *c)
{
	char zst[400], plain[400];
	off_t size;

	ckpt_file(self, c->number, "pages.img.zst", zst, sizeof(zst));
	ckpt_file(self, c->number, "pages.img", plain, sizeof(plain));
	size = file_size(zst);
	ASSERT_LT(0, size) TH_LOG("checkpoint %u has no %s", c->number, zst);
	ASSERT_NE(0, access(plain, F_OK)) TH_LOG("%s is still there", plain);
	TH_LOG("checkpoint %u: %llu pages saved, pages.img.zst %lld bytes", c->number, c->saved,
	       (long long)size);
	ASSERT_GT(c->saved * 4096 / 2, (unsigned long long)size)
		TH_LOG("compressible pages did not compress");
}

static const char *const compress_args[] = { "--compress", NULL };

/*
 * --compress: a full checkpoint and an incremental one on it, both
 * compressed, then an uncompressed one on top; every link restores exactly,
 * decompressed, and inspect verifies them.
 */
TEST_F_TIMEOUT(incr, compressed_chain, 600)
{
	struct ckpt_line c[3];
	unsigned int step[3];
	struct cmd_result r;
	char plain[400];

	REQUIRE_AMBER();
	start_pagever_thp(_metadata, self, "32", "--compressible");
	checkpoint(_metadata, self, self->pid, compress_args, &c[0]);
	assert_full(_metadata, &c[0]);
	assert_compressed(_metadata, self, &c[0]);
	step[0] = self->step;

	pv(_metadata, self, "dirty 100 1");
	checkpoint(_metadata, self, self->pid, compress_args, &c[1]);
	assert_incremental(_metadata, &c[1], c[0].number, self->touched, self->data);
	assert_compressed(_metadata, self, &c[1]);
	step[1] = self->step;

	/* An uncompressed link on compressed ones. */
	pv(_metadata, self, "dirty 50 2");
	checkpoint(_metadata, self, self->pid, NULL, &c[2]);
	assert_incremental(_metadata, &c[2], c[1].number, self->touched, self->data);
	ckpt_file(self, c[2].number, "pages.img", plain, sizeof(plain));
	ASSERT_EQ(0, access(plain, F_OK));
	step[2] = self->step;

	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "inspect", "-D", self->dir, NULL));
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("inspect: %s", r.err);
	ASSERT_FALSE(contains_ci(r.out, "damaged")) TH_LOG("inspect:\n%s", r.out);
	cmd_result_free(&r);

	kill_target(_metadata, self);
	restore_verify(_metadata, self, 0, step[2]);
	kill_target(_metadata, self);
	restore_verify(_metadata, self, c[1].number, step[1]);
	kill_target(_metadata, self);
	restore_verify(_metadata, self, c[0].number, step[0]);
}

/* Restoring the store's latest checkpoint fails naming `name` and `file`. */
static void assert_restore_refused(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self,
				   const char *name, const char *file)
{
	struct cmd_result r;

	ASSERT_EQ(0, run_cmdl(CMD_MS, &r, AMBER_BIN, "restore", "-D", self->dir, "--detach",
			      NULL));
	TH_LOG("restore: %s", r.err);
	EXPECT_NE(0, exit_code(r.status));
	EXPECT_TRUE(contains_ci(r.err, name)) TH_LOG("the message does not name '%s'", name);
	EXPECT_TRUE(contains_ci(r.err, file)) TH_LOG("the message does not name '%s'", file);
	cmd_result_free(&r);
	sleep_ms(500);
	ASSERT_FALSE(pid_alive(self->pid)) TH_LOG("pid %d is alive", self->pid);
}

/*
 * A compressed full checkpoint of 32 MiB of compressible pagever memory, 1 %
 * of it dirtied, a compressed incremental on top; the target killed.
 */
static void compressed_pair(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self,
			    struct ckpt_line c[2])
{
	start_pagever_thp(_metadata, self, "32", "--compressible");
	checkpoint(_metadata, self, self->pid, compress_args, &c[0]);
	assert_compressed(_metadata, self, &c[0]);
	pv(_metadata, self, "dirty 100 1");
	checkpoint(_metadata, self, self->pid, compress_args, &c[1]);
	assert_incremental(_metadata, &c[1], c[0].number, self->touched, self->data);
	assert_compressed(_metadata, self, &c[1]);
	kill_target(_metadata, self);
}

/*
 * A damaged compressed link (truncated, or a byte changed) is refused
 * before anything runs, naming the checkpoint and the file; intact again,
 * the chain restores.
 */
TEST_F_TIMEOUT(incr, compressed_damaged, 400)
{
	struct ckpt_line c[2];
	char zst[400], copy[400], name[64], cmd[900];
	off_t size;

	REQUIRE_AMBER();
	compressed_pair(_metadata, self, c);

	/* The parent link cut short. */
	ckpt_file(self, c[0].number, "pages.img.zst", zst, sizeof(zst));
	snprintf(copy, sizeof(copy), "%s/intact.zst", self->base);
	snprintf(cmd, sizeof(cmd), "cp %s %s", zst, copy);
	ASSERT_EQ(0, system(cmd));
	size = file_size(zst);
	ASSERT_EQ(0, truncate(zst, size - 100));
	snprintf(name, sizeof(name), "checkpoint %u", c[0].number);
	assert_restore_refused(_metadata, self, name, "pages.img.zst");
	snprintf(cmd, sizeof(cmd), "cp %s %s", copy, zst);
	ASSERT_EQ(0, system(cmd));

	/* A byte of the newest link changed. */
	ckpt_file(self, c[1].number, "pages.img.zst", zst, sizeof(zst));
	snprintf(cmd, sizeof(cmd), "cp %s %s", zst, copy);
	ASSERT_EQ(0, system(cmd));
	ASSERT_EQ(0, flip_byte(zst, file_size(zst) / 2));
	snprintf(name, sizeof(name), "checkpoint %u", c[1].number);
	assert_restore_refused(_metadata, self, name, "pages.img.zst");
	snprintf(cmd, sizeof(cmd), "cp %s %s", copy, zst);
	ASSERT_EQ(0, system(cmd));

	restore_verify(_metadata, self, 0, self->step);
}

/* amber restore --lazy of the latest checkpoint; it must verify as `step`. */
static void restore_lazy_verify(struct __test_metadata *_metadata, FIXTURE_DATA(incr) *self,
				unsigned int step)
{
	char want[64], log[400], *a;
	struct cmd_result r;
	unsigned long seq;
	pid_t restored;

	ASSERT_FALSE(pid_alive(self->pid));
	seq = send_cmd(self, "verify");
	snprintf(log, sizeof(log), "%s/filler.log", self->base);
	ASSERT_EQ(0, run_cmdl(CMD_MS, &r, AMBER_BIN, "restore", "-D", self->dir, "--lazy",
			      "--detach", "--lazy-log", log, NULL));
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("restore --lazy: %s", r.err);
	ASSERT_EQ(0, parse_restored_line(r.out, &restored)) TH_LOG("%s", r.out);
	cmd_result_free(&r);
	ASSERT_EQ(self->pid, restored);
	a = wait_answer(self, seq);
	ASSERT_NE(NULL, a) TH_LOG("the lazily restored process does not verify:\n%s",
				  slurp(self->out, NULL));
	snprintf(want, sizeof(want), "verify step %u PASS", step);
	ASSERT_STREQ(want, a);
	free(a);
	ASSERT_EQ(0, wait_for_text(log, ": complete, ", CMD_MS)) TH_LOG("%s", slurp(log, NULL));
	TH_LOG("filler: %s", slurp(log, NULL));
}

/* --lazy fills the process's memory from the decompressed pages files. */
TEST_F_TIMEOUT(incr, compressed_lazy, 400)
{
	struct ckpt_line c[2];

	REQUIRE_AMBER();
	compressed_pair(_metadata, self, c);
	restore_lazy_verify(_metadata, self, self->step);
}

TEST_HARNESS_MAIN
