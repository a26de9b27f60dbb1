// SPDX-License-Identifier: GPL-2.0
/*
 * The CLI's contract: `amber version`, numbered checkpoints and `latest`,
 * `--checkpoint N`, and `amber restore` exiting with the restored process's
 * status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/amber.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "amber_test.h"

FIXTURE(cli) {
	char base[256];
	char dir[300];
	char out[300];
	pid_t pid;
	pid_t restorer;
};

FIXTURE_SETUP(cli)
{
	snprintf(self->base, sizeof(self->base), "%s/cli-%d", TEST_TMP, getpid());
	snprintf(self->dir, sizeof(self->dir), "%s/img", self->base);
	snprintf(self->out, sizeof(self->out), "%s/target.out", self->base);
	self->pid = -1;
	self->restorer = -1;
	ASSERT_EQ(0, fresh_dir(self->dir));
	ASSERT_EQ(0, become_subreaper());
}

FIXTURE_TEARDOWN(cli)
{
	kill_and_reap(self->pid);
	kill_and_reap(self->restorer);
	if (_metadata->passed)
		rm_rf(self->base);
}

static void start_sleeper(struct __test_metadata *_metadata, FIXTURE_DATA(cli) *self,
			  char *const argv[])
{
	struct spawn_opts o = {
		.out_path = self->out, .append = true, .new_session = true, .pdeathsig = true,
	};

	self->pid = spawn(argv, &o);
	ASSERT_LT(0, self->pid);
	ASSERT_EQ(0, wait_for_text(self->out, "tick 0", 60000));
}

TEST_F_TIMEOUT(cli, version, 30)
{
	struct cmd_result r;

	REQUIRE_AMBER();
	ASSERT_EQ(0, run_cmdl(20000, &r, AMBER_BIN, "version", NULL));
	TH_LOG("%s", r.out);
	EXPECT_EQ(0, exit_code(r.status));
	EXPECT_NE(NULL, strstr(r.out, "amber tools " AMBER_VERSION_STRING));
	EXPECT_NE(NULL, strstr(r.out, "amber.ko " AMBER_VERSION_STRING));
	cmd_result_free(&r);
}

TEST_F_TIMEOUT(cli, numbered_checkpoints, 180)
{
	char *argv[] = { WORKLOAD_DIR "/sleeper", "--ms", "50", NULL };
	char path[400], link[32] = "";
	struct cmd_result r;
	struct ckpt_line c;
	pid_t restored;
	unsigned int i;
	int before;

	REQUIRE_AMBER();
	start_sleeper(_metadata, self, argv);
	for (i = 1; i <= 3; i++) {
		ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, false, &r, &c))
			TH_LOG("checkpoint %u: %s", i, r.err);
		cmd_result_free(&r);
		ASSERT_EQ(i, c.number);
		snprintf(path, sizeof(path), "%s/%u/meta.img", self->dir, i);
		ASSERT_EQ(0, access(path, R_OK));
		snprintf(path, sizeof(path), "%s/%u/pages.img", self->dir, i);
		ASSERT_LT(0, file_size(path));
		snprintf(path, sizeof(path), "%s/latest", self->dir);
		ASSERT_LT(0, readlink(path, link, sizeof(link) - 1));
		ASSERT_EQ(i, (unsigned int)atoi(link));
		memset(link, 0, sizeof(link));
	}
	snprintf(path, sizeof(path), "%s/.tmp-4", self->dir);
	ASSERT_NE(0, access(path, F_OK));

	ASSERT_EQ(0, run_cmdl(30000, &r, AMBER_BIN, "inspect", "-D", self->dir, "--checkpoint",
			      "2", NULL));
	EXPECT_EQ(0, exit_code(r.status)) TH_LOG("inspect --checkpoint 2: %s", r.err);
	EXPECT_TRUE(contains_ci(r.out, "checkpoint 2")) TH_LOG("%s", r.out);
	cmd_result_free(&r);

	/* An older checkpoint than latest restores too. */
	kill_and_reap(self->pid);
	self->pid = -1;
	before = count_text(self->out, "tick ");
	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "restore", "-D", self->dir, "--checkpoint",
			      "1", "--detach", NULL));
	ASSERT_EQ(0, exit_code(r.status)) TH_LOG("restore --checkpoint 1: %s", r.err);
	ASSERT_EQ(0, parse_restored_line(r.out, &restored));
	cmd_result_free(&r);
	ASSERT_EQ(c.pid, restored);
	self->pid = restored;
	while (count_text(self->out, "tick ") < before + 3 && pid_alive(restored))
		sleep_ms(50);
	ASSERT_LE(before + 3, count_text(self->out, "tick "));
	ASSERT_EQ(0, count_text(self->out, "FAIL"));
}

TEST_F_TIMEOUT(cli, restore_exit_status, 180)
{
	char *argv[] = { WORKLOAD_DIR "/sleeper", "--ms", "700", "--ticks", "3", "--exit", "7",
			 NULL };
	char *forever[] = { WORKLOAD_DIR "/sleeper", "--ms", "100", NULL };
	struct cmd_result r;
	struct ckpt_line c;
	char restore_out[400];
	int status;

	REQUIRE_AMBER();
	/* exit(7) after restore: amber restore exits 7 */
	start_sleeper(_metadata, self, argv);
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, true, &r, &c))
		TH_LOG("checkpoint: %s", r.err);
	cmd_result_free(&r);
	ASSERT_EQ(0, wait_child(self->pid, 10000, NULL));
	self->pid = -1;
	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "restore", "-D", self->dir, NULL));
	EXPECT_EQ(7, exit_code(r.status)) TH_LOG("restore: %s", r.err);
	cmd_result_free(&r);
	ASSERT_EQ(1, count_text(self->out, "done"));

	/* killed by SIGTERM after restore: amber restore exits 128 + 15 */
	rm_rf(self->dir);
	start_sleeper(_metadata, self, forever);
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, true, &r, &c))
		TH_LOG("checkpoint: %s", r.err);
	cmd_result_free(&r);
	ASSERT_EQ(0, wait_child(self->pid, 10000, NULL));
	self->pid = -1;
	{
		char *rargv[] = { AMBER_BIN, "restore", "-D", self->dir, NULL };
		struct spawn_opts o = { .out_path = restore_out };

		snprintf(restore_out, sizeof(restore_out), "%s/restore.out", self->base);
		self->restorer = spawn(rargv, &o);
		ASSERT_LT(0, self->restorer);
	}
	{
		long long end = now_ms() + 60000;

		while (!pid_alive(c.pid) && now_ms() < end)
			sleep_ms(20);
	}
	ASSERT_TRUE(pid_alive(c.pid));
	sleep_ms(300);
	ASSERT_EQ(0, kill(c.pid, SIGTERM));
	ASSERT_EQ(0, wait_child(self->restorer, 30000, &status));
	self->restorer = -1;
	EXPECT_EQ(128 + SIGTERM, exit_code(status)) TH_LOG("%s", slurp(restore_out, NULL));
}

TEST_HARNESS_MAIN
