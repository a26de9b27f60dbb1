// SPDX-License-Identifier: GPL-2.0
/*
 * Bad input gets a clear error and harms nobody: targets the module must
 * refuse, callers without privilege, damaged images, taken PIDs, files that
 * changed since the checkpoint, and hand-made netlink requests.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/amber.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "amber_test.h"

#define BAD_TMP		TEST_TMP "/bad"

FIXTURE(bad) {
	char base[256];
	char dir[300];		/* image store */
	char out[300];		/* sleeper output */
	pid_t pid;		/* sleeper */
	int nl;
	int family;
};

FIXTURE_SETUP(bad)
{
	snprintf(self->base, sizeof(self->base), "%s/%d", BAD_TMP, getpid());
	snprintf(self->dir, sizeof(self->dir), "%s/img", self->base);
	snprintf(self->out, sizeof(self->out), "%s/sleeper.out", self->base);
	self->pid = -1;
	self->nl = -1;
	ASSERT_EQ(0, fresh_dir(self->dir));
	ASSERT_EQ(0, become_subreaper());
}

FIXTURE_TEARDOWN(bad)
{
	kill_and_reap(self->pid);
	if (self->nl >= 0)
		close(self->nl);
	if (_metadata->passed)
		rm_rf(self->base);
}

/* A sleeper ticking every 100 ms in its own session; waits for its first tick. */
static pid_t start_sleeper(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self,
			   const char *opt, const char *arg)
{
	char *argv[] = { WORKLOAD_DIR "/sleeper", "--ms", "100", (char *)opt, (char *)arg, NULL };

	self->pid = spawn_workload(argv, self->out);
	EXPECT_LT(0, self->pid);
	EXPECT_EQ(0, wait_for_text(self->out, "tick 0", 60000));
	return self->pid;
}

/* The sleeper still makes progress. */
static void assert_ticking(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self)
{
	int before = count_text(self->out, "tick ");
	long long end = now_ms() + 30000;

	ASSERT_TRUE(pid_alive(self->pid));
	while (count_text(self->out, "tick ") < before + 2 && now_ms() < end)
		sleep_ms(50);
	ASSERT_LE(before + 2, count_text(self->out, "tick "))
		TH_LOG("pid %d stopped ticking (state %c)", self->pid, pid_state(self->pid));
	ASSERT_EQ(0, count_text(self->out, "FAIL"));
}

/* amber checkpoint PID fails with exit 1 and "amber checkpoint: <something>". */
static void assert_ckpt_fails(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self,
			      pid_t pid, const char *must_contain)
{
	struct cmd_result r;
	char latest[400];
	const char *prefix = "amber checkpoint: ";

	ASSERT_NE(0, amber_checkpoint(pid, self->dir, false, &r, NULL));
	TH_LOG("pid %d: %s", pid, r.err);
	EXPECT_EQ(1, exit_code(r.status));
	EXPECT_EQ(0, strncmp(r.err, prefix, strlen(prefix)));
	EXPECT_LT(strlen(prefix) + 8, strlen(r.err)) TH_LOG("no useful message");
	EXPECT_EQ(0, strlen(r.out));
	if (must_contain)
		EXPECT_TRUE(contains_ci(r.err, must_contain))
			TH_LOG("'%s' does not mention '%s'", r.err, must_contain);
	snprintf(latest, sizeof(latest), "%s/latest", self->dir);
	EXPECT_NE(0, access(latest, F_OK)) TH_LOG("a failed checkpoint created latest");
	cmd_result_free(&r);
}

TEST_F_TIMEOUT(bad, nonexistent_pid, 60)
{
	pid_t pid = 4194000;

	REQUIRE_AMBER();
	while (pid > 300 && (!kill(pid, 0) || errno != ESRCH))
		pid -= 7;
	if (pid > 32768)
		pid = 32767;
	while (pid > 300 && (!kill(pid, 0) || errno != ESRCH))
		pid -= 7;
	assert_ckpt_fails(_metadata, self, pid, "No such process");
}

TEST_F_TIMEOUT(bad, pid1, 60)
{
	REQUIRE_AMBER();
	assert_ckpt_fails(_metadata, self, 1, NULL);
	ASSERT_TRUE(pid_alive(1));
	ASSERT_NE('T', pid_state(1));
}

TEST_F_TIMEOUT(bad, kernel_thread, 60)
{
	REQUIRE_AMBER();
	/* kthreadd */
	assert_ckpt_fails(_metadata, self, 2, "kernel");
	ASSERT_TRUE(pid_alive(2));
}

TEST_F_TIMEOUT(bad, zombie, 60)
{
	pid_t pid;

	REQUIRE_AMBER();
	pid = fork();
	if (pid == 0)
		_exit(0);
	ASSERT_LT(0, pid);
	while (pid_state(pid) != 'Z')
		sleep_ms(10);
	assert_ckpt_fails(_metadata, self, pid, NULL);
	ASSERT_EQ('Z', pid_state(pid));
	ASSERT_EQ(pid, waitpid(pid, NULL, 0));
}

/*
 * Multi-threaded processes used to be refused; since issue 5 they are
 * checkpointed whole: the checkpoint succeeds, the image holds the other
 * thread (AMBER_SEC_THREADS) and the process runs on.
 */
TEST_F_TIMEOUT(bad, multithreaded, 90)
{
	struct cmd_result r;
	struct ckpt_line c;
	char meta[400];
	size_t len = 0;
	void *threads;

	REQUIRE_AMBER();
	start_sleeper(_metadata, self, "--thread", NULL);
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, false, &r, &c))
		TH_LOG("checkpoint of a 2-thread process: %s", r.err);
	EXPECT_EQ(0, exit_code(r.status));
	EXPECT_EQ(self->pid, c.pid);
	cmd_result_free(&r);
	snprintf(meta, sizeof(meta), "%s/%u/meta.img", self->dir, c.number);
	threads = read_section(meta, AMBER_SEC_THREADS, &len);
	EXPECT_NE(NULL, threads) TH_LOG("%s has no THREADS section", meta);
	EXPECT_LT(0, len);
	free(threads);
	assert_ticking(_metadata, self);
}

/* A restore would run it without its filter: refused by name, and it runs on. */
TEST_F_TIMEOUT(bad, seccomp, 60)
{
	REQUIRE_AMBER();
	start_sleeper(_metadata, self, "--seccomp", NULL);
	assert_ckpt_fails(_metadata, self, self->pid, "seccomp");
	assert_ticking(_metadata, self);
}

/* The caller itself, through a raw request (the CLI never targets itself). */
TEST_F_TIMEOUT(bad, caller_itself, 60)
{
	static struct nlbuf b;
	struct nl_reply r;
	char path[400];
	int fd;

	REQUIRE_AMBER();
	snprintf(path, sizeof(path), "%s/pages", self->base);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, fd);
	self->nl = nl_open();
	ASSERT_LE(0, self->nl);
	self->family = nl_family(self->nl);
	ASSERT_LT(0, self->family);
	nl_start(&b, self->family, AMBER_CMD_CHECKPOINT, 0);
	nl_put_u32(&b, AMBER_A_PID, getpid());
	nl_put_u32(&b, AMBER_A_PAGES_FD, fd);
	ASSERT_EQ(0, nl_transact(self->nl, &b, &r, 20000)) TH_LOG("no answer: hung?");
	TH_LOG("error %d: %s", r.error, r.msg);
	ASSERT_GT(0, r.error);
	ASSERT_LT(0, strlen(r.msg));
	close(fd);
}

TEST_F_TIMEOUT(bad, unprivileged, 90)
{
	struct cmd_result r;
	char pid[32];
	const char *eperm = "Operation not permitted";

	REQUIRE_AMBER();
	ASSERT_EQ(0, chmod(self->dir, 0777));
	ASSERT_EQ(0, chmod(self->base, 0777));
	start_sleeper(_metadata, self, NULL, NULL);
	snprintf(pid, sizeof(pid), "%d", self->pid);

	/* nobody vs a root process */
	ASSERT_EQ(0, run_cmdl(60000, &r, "/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
			      "--clear-groups", AMBER_BIN, "checkpoint", pid, "-D", self->dir,
			      NULL));
	TH_LOG("%s", r.err);
	EXPECT_EQ(1, exit_code(r.status));
	EXPECT_TRUE(contains_ci(r.err, "amber checkpoint: ") && contains_ci(r.err, eperm));
	cmd_result_free(&r);
	assert_ticking(_metadata, self);
	kill_and_reap(self->pid);

	/* nobody vs its own process: still needs CAP_CHECKPOINT_RESTORE */
	{
		char *argv[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
				 "--clear-groups", WORKLOAD_DIR "/sleeper", "--ms", "100", NULL };

		self->pid = spawn_workload(argv, self->out);
		ASSERT_LT(0, self->pid);
		ASSERT_EQ(0, wait_for_text(self->out, "tick 0", 60000));
	}
	snprintf(pid, sizeof(pid), "%d", self->pid);
	ASSERT_EQ(0, run_cmdl(60000, &r, "/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
			      "--clear-groups", AMBER_BIN, "checkpoint", pid, "-D", self->dir,
			      NULL));
	TH_LOG("%s", r.err);
	EXPECT_EQ(1, exit_code(r.status));
	EXPECT_TRUE(contains_ci(r.err, eperm));
	cmd_result_free(&r);
	assert_ticking(_metadata, self);
}

/* The checkpoint names the fd that blocks it; the target carries on. */
TEST_F_TIMEOUT(bad, unsupported_fd, 90)
{
	char held[400];

	REQUIRE_AMBER();
	/*
	 * UNIX sockets are checkpointed since issue 5, TCP ones since issue 14,
	 * listeners with connections waiting in their accept queue too, but not
	 * one whose waiting connection its client reset (state CLOSE).
	 * tcpchild's child has one: the tree checkpoint names that fd and its
	 * kind, and both processes run on.
	 */
	{
		char *argv[] = { workload_path("tcpchild"), "--ms", "100", NULL };
		const char *tree[] = { "--tree", NULL };
		struct cmd_result r;
		char fdname[32], *out;
		int fd = -1, child_ticks;

		self->pid = spawn_workload(argv, self->out);
		ASSERT_LT(0, self->pid);
		ASSERT_EQ(0, wait_for_text(self->out, "child socket fd ", 60000));
		out = slurp(self->out, NULL);
		ASSERT_NE(NULL, out);
		ASSERT_EQ(1, sscanf(strstr(out, "child socket fd "), "child socket fd %d", &fd));
		free(out);
		snprintf(fdname, sizeof(fdname), "fd %d", fd);
		ASSERT_NE(0, amber_checkpoint_args(self->pid, self->dir, tree, &r, NULL));
		TH_LOG("tree with a TCP socket: %s", r.err);
		EXPECT_EQ(1, exit_code(r.status));
		EXPECT_TRUE(contains_ci(r.err, fdname)) TH_LOG("does not name '%s'", fdname);
		EXPECT_TRUE(contains_ci(r.err, "AF_INET")) TH_LOG("does not name AF_INET");
		cmd_result_free(&r);
		child_ticks = count_text(self->out, "child tick");
		assert_ticking(_metadata, self);
		for (int i = 0; i < 200 && count_text(self->out, "child tick") <= child_ticks; i++)
			sleep_ms(50);
		EXPECT_LT(child_ticks, count_text(self->out, "child tick"))
			TH_LOG("the child stopped ticking");
		kill(-self->pid, SIGKILL);	/* its own session and group: the child too */
		kill_and_reap(self->pid);
		free(argv[0]);
	}

	/* A deleted directory (a deleted regular file is a ghost: ghost_test). */
	snprintf(held, sizeof(held), "%s/deleted.d", self->base);
	ASSERT_EQ(0, mkdir(held, 0700));
	start_sleeper(_metadata, self, "--open", held);
	ASSERT_EQ(0, rmdir(held));
	assert_ckpt_fails(_metadata, self, self->pid, "fd 3");
	assert_ckpt_fails(_metadata, self, self->pid, "deleted");
	assert_ticking(_metadata, self);
}

/* A good image of a sleeper (taken with --kill); returns the dead sleeper's pid. */
static pid_t make_image(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self,
			const char *open_path)
{
	struct cmd_result r;
	struct ckpt_line c;
	pid_t pid;

	start_sleeper(_metadata, self, open_path ? "--open" : NULL, open_path);
	EXPECT_EQ(0, wait_for_text(self->out, "tick 1", 60000));
	EXPECT_EQ(0, amber_checkpoint(self->pid, self->dir, true, &r, &c))
		TH_LOG("checkpoint: %s", r.err);
	cmd_result_free(&r);
	pid = self->pid;
	EXPECT_EQ(0, wait_child(pid, 10000, NULL));
	self->pid = -1;
	return pid;
}

/* Restore (and inspect, if asked) of dir fail, naming what is wrong; pid stays dead. */
static void assert_restore_fails(struct __test_metadata *_metadata, const char *dir,
				 pid_t pid, const char *name1, const char *name2, bool inspect)
{
	const char *prefix = "amber restore: ";
	struct cmd_result r;

	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "restore", "-D", dir, NULL));
	TH_LOG("restore: %s", r.err);
	EXPECT_EQ(1, exit_code(r.status));
	EXPECT_EQ(0, strncmp(r.err, prefix, strlen(prefix)));
	if (name1)
		EXPECT_TRUE(contains_ci(r.err, name1)) TH_LOG("does not name '%s'", name1);
	if (name2)
		EXPECT_TRUE(contains_ci(r.err, name2)) TH_LOG("does not name '%s'", name2);
	cmd_result_free(&r);
	sleep_ms(200);
	EXPECT_FALSE(pid_alive(pid)) TH_LOG("pid %d exists after a failed restore", pid);
	if (!inspect)
		return;
	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "inspect", "-D", dir, NULL));
	TH_LOG("inspect: %s", r.err);
	EXPECT_EQ(1, exit_code(r.status));
	if (name1)
		EXPECT_TRUE(contains_ci(r.err, name1)) TH_LOG("inspect does not name '%s'", name1);
	if (name2)
		EXPECT_TRUE(contains_ci(r.err, name2)) TH_LOG("inspect does not name '%s'", name2);
	cmd_result_free(&r);
}

/* Copy of the good image at self->dir into a fresh store; returns its path. */
static const char *copy_image(FIXTURE_DATA(bad) *self, const char *tag)
{
	static char dst[400];
	char cmd[1024];

	snprintf(dst, sizeof(dst), "%s/%s", self->base, tag);
	rm_rf(dst);
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", self->dir, dst);
	return system(cmd) == 0 ? dst : NULL;
}

TEST_F_TIMEOUT(bad, truncated_image, 120)
{
	struct cmd_result r;
	const char *d;
	char path[500];
	pid_t pid;

	REQUIRE_AMBER();
	pid = make_image(_metadata, self, NULL);
	ASSERT_FALSE(pid_alive(pid));

	/* the untouched image is fine */
	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "inspect", "-D", self->dir, NULL));
	EXPECT_EQ(0, exit_code(r.status)) TH_LOG("inspect of a good image: %s", r.err);
	EXPECT_LT(0, strlen(r.out));
	cmd_result_free(&r);

	d = copy_image(self, "trunc-pages");
	ASSERT_NE(NULL, d);
	snprintf(path, sizeof(path), "%s/1/pages.img", d);
	ASSERT_EQ(0, truncate(path, file_size(path) / 2));
	assert_restore_fails(_metadata, d, pid, "pages.img", NULL, true);

	d = copy_image(self, "trunc-meta");
	ASSERT_NE(NULL, d);
	snprintf(path, sizeof(path), "%s/1/meta.img", d);
	ASSERT_EQ(0, truncate(path, file_size(path) / 2));
	assert_restore_fails(_metadata, d, pid, "meta.img", NULL, true);

	d = copy_image(self, "empty-meta");
	ASSERT_NE(NULL, d);
	snprintf(path, sizeof(path), "%s/1/meta.img", d);
	ASSERT_EQ(0, truncate(path, 0));
	assert_restore_fails(_metadata, d, pid, "meta.img", NULL, true);
}

TEST_F_TIMEOUT(bad, flipped_bytes, 180)
{
	struct image_meta m;
	const char *d;
	char path[500], tag[32];
	uint64_t bytes;
	off_t off;
	pid_t pid;
	uint32_t i;

	REQUIRE_AMBER();
	pid = make_image(_metadata, self, NULL);
	snprintf(path, sizeof(path), "%s/1/meta.img", self->dir);
	ASSERT_EQ(0, read_meta(path, &m));
	ASSERT_LE(5, m.nr_sections);

	/* one byte inside each section */
	for (i = 0; i < m.nr_sections; i++) {
		if (!m.sec[i].size)
			continue;
		snprintf(tag, sizeof(tag), "flip-%u", i);
		d = copy_image(self, tag);
		ASSERT_NE(NULL, d);
		snprintf(path, sizeof(path), "%s/1/meta.img", d);
		ASSERT_EQ(0, flip_byte(path, m.sec[i].offset + m.sec[i].size / 2));
		TH_LOG("section %u (%s)", i, section_name(m.sec[i].type));
		assert_restore_fails(_metadata, d, pid, "meta.img", section_name(m.sec[i].type),
				     true);
	}

	/* the header's checksum and the section table */
	d = copy_image(self, "flip-hdr");
	ASSERT_NE(NULL, d);
	snprintf(path, sizeof(path), "%s/1/meta.img", d);
	ASSERT_EQ(0, flip_byte(path, offsetof(struct amber_image_hdr, hdr_xxh64)));
	assert_restore_fails(_metadata, d, pid, "meta.img", "header", true);
	d = copy_image(self, "flip-table");
	ASSERT_NE(NULL, d);
	snprintf(path, sizeof(path), "%s/1/meta.img", d);
	ASSERT_EQ(0, flip_byte(path, sizeof(struct amber_image_hdr) +
				     offsetof(struct amber_section, offset)));
	assert_restore_fails(_metadata, d, pid, "meta.img", NULL, true);

	/* one byte of page data */
	d = copy_image(self, "flip-page");
	ASSERT_NE(NULL, d);
	snprintf(path, sizeof(path), "%s/1/pages.img", d);
	ASSERT_EQ(0, first_page_run(path, &off, &bytes));
	ASSERT_EQ(0, flip_byte(path, off + bytes / 2));
	assert_restore_fails(_metadata, d, pid, "pages.img", "run", true);
}

/*
 * One byte damaged in the middle of the largest run, 8 MiB of a memhog's
 * anonymous memory: the restore stub fills that memory itself and checks
 * the run's checksum on it (the tool does not read it first). The restore
 * fails naming the run, the process never exists, and inspect finds the
 * same damage. The undamaged image restores and the memhog checks its pages.
 */
TEST_F_TIMEOUT(bad, damaged_big_run, 240)
{
	char *argv[] = { WORKLOAD_DIR "/memhog", "--mib", "8", "--ms", "100", NULL };
	struct cmd_result r;
	struct ckpt_line c;
	const char *d;
	char path[500];
	uint64_t bytes;
	off_t off;
	pid_t pid;

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

	d = copy_image(self, "flip-big-run");
	ASSERT_NE(NULL, d);
	snprintf(path, sizeof(path), "%s/1/pages.img", d);
	ASSERT_EQ(0, largest_page_run(path, &off, &bytes));
	ASSERT_LE(8 << 20, bytes) TH_LOG("largest run: %llu bytes", (unsigned long long)bytes);
	ASSERT_EQ(0, flip_byte(path, off + bytes / 2));
	assert_restore_fails(_metadata, d, pid, "pages.img", "checksum mismatch", true);

	/* the same image undamaged: restored, and its memory checks out */
	ASSERT_EQ(0, run_cmdl(120000, &r, AMBER_BIN, "restore", "-D", self->dir, "--detach", NULL));
	EXPECT_EQ(0, exit_code(r.status)) TH_LOG("restore: %s", r.err);
	cmd_result_free(&r);
	self->pid = pid;
	assert_ticking(_metadata, self);
}

TEST_F_TIMEOUT(bad, pid_taken, 90)
{
	struct cmd_result r;
	struct ckpt_line c;
	char pid[32];

	REQUIRE_AMBER();
	start_sleeper(_metadata, self, NULL, NULL);
	ASSERT_EQ(0, amber_checkpoint(self->pid, self->dir, false, &r, &c))
		TH_LOG("checkpoint: %s", r.err);
	cmd_result_free(&r);
	snprintf(pid, sizeof(pid), "%d", self->pid);
	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "restore", "-D", self->dir, NULL));
	TH_LOG("restore: %s", r.err);
	EXPECT_EQ(1, exit_code(r.status));
	EXPECT_TRUE(contains_ci(r.err, "amber restore: "));
	EXPECT_TRUE(contains_ci(r.err, pid)) TH_LOG("does not name pid %s", pid);
	cmd_result_free(&r);
	assert_ticking(_metadata, self);
}

TEST_F_TIMEOUT(bad, missing_or_resized_file, 120)
{
	char held[400];
	pid_t pid;

	REQUIRE_AMBER();
	snprintf(held, sizeof(held), "%s/held.txt", self->base);
	ASSERT_EQ(0, write_file(held, "0123456789\n", 11));
	pid = make_image(_metadata, self, held);

	ASSERT_EQ(0, unlink(held));
	assert_restore_fails(_metadata, self->dir, pid, held, NULL, false);

	ASSERT_EQ(0, write_file(held, "01234\n", 6));
	assert_restore_fails(_metadata, self->dir, pid, held, NULL, false);

	/* and with the file as it was, the image is fine */
	ASSERT_EQ(0, write_file(held, "0123456789\n", 11));
	{
		struct cmd_result r;
		pid_t restored;

		ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "restore", "-D", self->dir,
				      "--detach", NULL));
		EXPECT_EQ(0, exit_code(r.status)) TH_LOG("restore: %s", r.err);
		EXPECT_EQ(0, parse_restored_line(r.out, &restored));
		cmd_result_free(&r);
		ASSERT_EQ(pid, restored);
		self->pid = restored;
		assert_ticking(_metadata, self);
	}
}

/* --- hand-made netlink requests --- */

static void nl_setup(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self)
{
	self->nl = nl_open();
	ASSERT_LE(0, self->nl);
	self->family = nl_family(self->nl);
	ASSERT_LT(0, self->family) TH_LOG("family %s: %d", AMBER_FAMILY_NAME, self->family);
}

static void assert_nl_error(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self,
			    struct nlbuf *b, const char *what)
{
	struct nl_reply r;

	ASSERT_EQ(0, nl_transact(self->nl, b, &r, 30000)) TH_LOG("%s: no answer", what);
	TH_LOG("%s: error %d (%s), extack '%s'", what, r.error, strerror(-r.error), r.msg);
	EXPECT_GT(0, r.error);
	EXPECT_LT(0, strlen(r.msg)) TH_LOG("%s: rejected without an extack message", what);
}

TEST_F_TIMEOUT(bad, netlink_checkpoint, 90)
{
	static struct nlbuf b;
	char path[400];
	int ro, rw;

	REQUIRE_AMBER();
	nl_setup(_metadata, self);
	start_sleeper(_metadata, self, NULL, NULL);
	snprintf(path, sizeof(path), "%s/pages", self->base);
	rw = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ro = open(path, O_RDONLY);
	ASSERT_LE(0, rw);
	ASSERT_LE(0, ro);

	nl_start(&b, self->family, AMBER_CMD_CHECKPOINT, 0);
	nl_put_u32(&b, AMBER_A_PAGES_FD, rw);
	assert_nl_error(_metadata, self, &b, "no PID");

	nl_start(&b, self->family, AMBER_CMD_CHECKPOINT, 0);
	nl_put_u32(&b, AMBER_A_PID, self->pid);
	assert_nl_error(_metadata, self, &b, "no PAGES_FD");

	nl_start(&b, self->family, AMBER_CMD_CHECKPOINT, 0);
	nl_put_u32(&b, AMBER_A_PID, self->pid);
	nl_put_u32(&b, AMBER_A_PAGES_FD, ro);
	assert_nl_error(_metadata, self, &b, "read-only PAGES_FD");

	nl_start(&b, self->family, AMBER_CMD_CHECKPOINT, 0);
	nl_put_u32(&b, AMBER_A_PID, self->pid);
	nl_put_u32(&b, AMBER_A_PAGES_FD, 1000);
	assert_nl_error(_metadata, self, &b, "closed PAGES_FD");

	nl_start(&b, self->family, AMBER_CMD_CHECKPOINT, 0);
	nl_put_u32(&b, AMBER_A_PID, self->pid);
	nl_put_u32(&b, AMBER_A_PAGES_FD, rw);
	nl_put_u32(&b, AMBER_A_FLAGS, 0x80000000u);
	assert_nl_error(_metadata, self, &b, "unknown flag");

	nl_start(&b, self->family, AMBER_CMD_CHECKPOINT, 0);
	nl_put(&b, AMBER_A_PID, "\x01", 1);
	nl_put_u32(&b, AMBER_A_PAGES_FD, rw);
	assert_nl_error(_metadata, self, &b, "1-byte PID");

	nl_start(&b, self->family, AMBER_CMD_RELEASE, 0);
	nl_put_u32(&b, AMBER_A_PID, self->pid);
	nl_put_u32(&b, AMBER_A_ACTION, AMBER_RELEASE_KILL);
	assert_nl_error(_metadata, self, &b, "release of a target not held");

	nl_start(&b, self->family, AMBER_CMD_RELEASE, 0);
	nl_put_u32(&b, AMBER_A_PID, self->pid);
	nl_put_u32(&b, AMBER_A_ACTION, 77);
	assert_nl_error(_metadata, self, &b, "unknown release action");

	/* nothing of this touched the target */
	assert_ticking(_metadata, self);
	close(ro);
	close(rw);
}

static struct nlattr *nla_find_in(struct nlattr *nest, int type)
{
	char *p = (char *)nest + NLA_HDRLEN, *end = (char *)nest + nest->nla_len;

	while (p + NLA_HDRLEN <= end) {
		struct nlattr *a = (struct nlattr *)p;

		if (a->nla_len < NLA_HDRLEN)
			break;
		if ((a->nla_type & NLA_TYPE_MASK) == type)
			return a;
		p += NLA_ALIGN(a->nla_len);
	}
	return NULL;
}

/* The image's VMA reduced to START, END, PGOFF, PROT and FLAGS. */
static void put_bare_vma(struct nlbuf *b, struct nlattr *vma)
{
	static const int keep[] = {
		AMBER_VMA_START, AMBER_VMA_END, AMBER_VMA_PGOFF, AMBER_VMA_PROT, AMBER_VMA_FLAGS,
	};
	struct nlattr *x;
	unsigned int i;

	nl_nest_start(b, AMBER_A_VMA);
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		x = nla_find_in(vma, keep[i]);
		if (x)
			nl_put(b, keep[i], (char *)x + NLA_HDRLEN, x->nla_len - NLA_HDRLEN);
	}
	nl_nest_end(b);
}

enum garbage {
	G_EMPTY, G_UNSORTED, G_OVERLAP, G_HUGE, G_BACKWARDS,
	G_PREFILLED_SHMEM,	/* PREFILLED on shared memory */
	G_PREFILLED_UNMAPPED,	/* PREFILLED where the caller has nothing mapped */
};

/* Where this process has [vdso] and [vvar], from /proc/self/maps. */
static void own_special(uint64_t vdso[2], uint64_t vvar[2])
{
	char *maps = slurp("/proc/self/maps", NULL), *line;

	for (line = maps; line && *line; line = strchr(line, '\n') + 1) {
		unsigned long long s, e;

		if (sscanf(line, "%llx-%llx", &s, &e) == 2) {
			char *nl = strchr(line, '\n');

			if (nl)
				*nl = 0;
			if (strstr(line, "[vdso]"))
				vdso[0] = s, vdso[1] = e;
			if (strstr(line, "[vvar]"))
				vvar[0] = s, vvar[1] = e;
			if (nl)
				*nl = '\n';
		}
		if (!strchr(line, '\n'))
			break;
	}
	free(maps);
}

#define for_each_nla(a, buf, len)					\
	for (a = (struct nlattr *)(buf);					\
	     (char *)a + NLA_HDRLEN <= (char *)(buf) + (len) && a->nla_len >= NLA_HDRLEN; \
	     a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))

static struct nlattr *nla_find(void *buf, size_t len, int type)
{
	struct nlattr *a;

	for_each_nla(a, buf, len)
		if ((a->nla_type & NLA_TYPE_MASK) == type)
			return a;
	return NULL;
}

#define NLA_DATA(a)	((char *)(a) + NLA_HDRLEN)
#define NLA_LEN(a)	((a)->nla_len - NLA_HDRLEN)

/*
 * Make a real image's CORE and VMAS sections fit the calling process's own
 * vDSO, and every other VMA anonymous, so that the kernel's checks get past
 * them to the order of the VMA list itself.
 */
static void fit_vdso(char *core, size_t core_len, char *vmas, size_t vmas_len)
{
	uint64_t vdso[2] = { 0 }, vvar[2] = { 0 };
	struct nlattr *a, *mm, *f, *x;

	own_special(vdso, vvar);
	mm = nla_find(core, core_len, AMBER_A_MM);
	if (mm && (x = nla_find(NLA_DATA(mm), NLA_LEN(mm), AMBER_MM_VDSO)))
		memcpy(NLA_DATA(x), &vdso[0], 8);
	for_each_nla(a, vmas, vmas_len) {
		uint32_t flags;
		uint64_t *range;

		f = nla_find(NLA_DATA(a), NLA_LEN(a), AMBER_VMA_FLAGS);
		if (!f)
			continue;
		memcpy(&flags, NLA_DATA(f), 4);
		range = flags & AMBER_VMA_F_VDSO ? vdso : flags & AMBER_VMA_F_VVAR ? vvar : NULL;
		if (!range) {
			/* anonymous, so that no VMA_FILE_FD is needed */
			flags = (flags & ~AMBER_VMA_F_SHARED) | AMBER_VMA_F_ANON;
			memcpy(NLA_DATA(f), &flags, 4);
			continue;
		}
		if ((x = nla_find(NLA_DATA(a), NLA_LEN(a), AMBER_VMA_START)))
			memcpy(NLA_DATA(x), &range[0], 8);
		if ((x = nla_find(NLA_DATA(a), NLA_LEN(a), AMBER_VMA_END)))
			memcpy(NLA_DATA(x), &range[1], 8);
	}
}

/*
 * In a forked child, send AMBER_CMD_RESTORE about itself built from a real
 * image's CORE section with broken VMAs. The child reports the answer through
 * a pipe and exits 0: a child killed instead went past the point of no return.
 */
static void restore_garbage(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self,
			    enum garbage g, const char *what)
{
	static struct nlbuf b;
	struct nl_reply r = { 0 };
	char meta[400], pages[400];
	size_t core_len = 0, vmas_len = 0;
	char *core, *vmas;
	int p[2], status, pfd;
	pid_t child;

	snprintf(meta, sizeof(meta), "%s/1/meta.img", self->dir);
	snprintf(pages, sizeof(pages), "%s/1/pages.img", self->dir);
	core = read_section(meta, AMBER_SEC_CORE, &core_len);
	vmas = read_section(meta, AMBER_SEC_VMAS, &vmas_len);
	ASSERT_NE(NULL, core);
	ASSERT_NE(NULL, vmas);
	ASSERT_EQ(0, pipe(p));

	child = fork();
	if (child == 0) {
		size_t off, n = 0, idx[4096];
		int i;

		close(p[0]);
		pfd = open(pages, O_RDONLY);
		nl_start(&b, self->family, AMBER_CMD_RESTORE, 0);
		fit_vdso(core, core_len, vmas, vmas_len);
		if (g != G_EMPTY)
			nl_put_raw(&b, core, core_len);
		if (g == G_UNSORTED || g == G_OVERLAP) {
			/* the image's VMAs, last first */
			for (off = 0; off + NLA_HDRLEN <= vmas_len && n < 4096;) {
				struct nlattr *a = (struct nlattr *)(vmas + off);

				if (a->nla_len < NLA_HDRLEN)
					break;
				idx[n++] = off;
				off += NLA_ALIGN(a->nla_len);
			}
			nl_nest_start(&b, AMBER_A_VMAS);
			for (i = 0; i < (int)n; i++) {
				/* unsorted: the first two swapped; overlap: the first twice */
				int j = g == G_OVERLAP ? (i == 1 ? 0 : i) : (i < 2 ? 1 - i : i);
				put_bare_vma(&b, (struct nlattr *)(vmas + idx[j]));
			}
			nl_nest_end(&b);
		} else if (g == G_HUGE || g == G_BACKWARDS) {
			nl_nest_start(&b, AMBER_A_VMAS);
			nl_nest_start(&b, AMBER_A_VMA);
			nl_put_u64(&b, AMBER_VMA_START, g == G_HUGE ? 0xffff800000000000ULL : 0x10000);
			nl_put_u64(&b, AMBER_VMA_END, g == G_HUGE ? 0xfffffffffffff000ULL : 0x9000);
			nl_put_u64(&b, AMBER_VMA_PGOFF, 0);
			nl_put_u32(&b, AMBER_VMA_PROT, 3);
			nl_put_u32(&b, AMBER_VMA_FLAGS, AMBER_VMA_F_ANON);
			nl_nest_end(&b);
			nl_nest_end(&b);
		} else if (g == G_PREFILLED_SHMEM || g == G_PREFILLED_UNMAPPED) {
			/* 0x10000-0x20000: nothing of ours is mapped that low */
			uint32_t f = AMBER_VMA_F_ANON | AMBER_VMA_F_PREFILLED;

			if (g == G_PREFILLED_SHMEM)
				f |= AMBER_VMA_F_SHARED | AMBER_VMA_F_SHMEM;
			nl_nest_start(&b, AMBER_A_VMAS);
			nl_nest_start(&b, AMBER_A_VMA);
			nl_put_u64(&b, AMBER_VMA_START, 0x10000);
			nl_put_u64(&b, AMBER_VMA_END, 0x20000);
			nl_put_u64(&b, AMBER_VMA_PGOFF, 0);
			nl_put_u32(&b, AMBER_VMA_PROT, 3);
			nl_put_u32(&b, AMBER_VMA_FLAGS, f);
			nl_nest_end(&b);
			nl_nest_end(&b);
		}
		if (g != G_EMPTY && g != G_BACKWARDS) {
			nl_nest_start(&b, AMBER_A_PAGE_FDS);
			nl_put_u32(&b, AMBER_A_PAGE_FD, pfd);
			nl_nest_end(&b);
		}
		if (nl_transact(self->nl, &b, &r, 30000))
			r.error = 1;
		if (write(p[1], &r, sizeof(r)) != sizeof(r))
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	ASSERT_LT(0, child);
	ASSERT_EQ(0, wait_child(child, 60000, &status));
	ASSERT_EQ(0, exit_code(status))
		TH_LOG("%s: the child died (status %#x): went past the point of no return",
		       what, status);
	ASSERT_EQ(sizeof(r), read(p[0], &r, sizeof(r)));
	close(p[0]);
	TH_LOG("%s: error %d (%s), extack '%s' (offset %u)", what, r.error, strerror(-r.error),
	       r.msg, r.bad_attr_off);
	EXPECT_NE(1, r.error) TH_LOG("%s: no answer", what);
	EXPECT_GT(0, r.error);
	EXPECT_LT(0, strlen(r.msg)) TH_LOG("%s: rejected without an extack message", what);
	if (g != G_EMPTY)
		EXPECT_TRUE(contains_ci(r.msg, "VMA")) TH_LOG("%s: not rejected for its VMAs", what);
	if (g == G_UNSORTED || g == G_OVERLAP)
		EXPECT_TRUE(contains_ci(r.msg, "sorted") || contains_ci(r.msg, "overlap"))
			TH_LOG("%s: rejected for something else", what);
	if (g == G_PREFILLED_SHMEM || g == G_PREFILLED_UNMAPPED)
		EXPECT_TRUE(contains_ci(r.msg, "prefilled")) TH_LOG("%s: rejected for something else",
								   what);
	free(core);
	free(vmas);
}

TEST_F_TIMEOUT(bad, netlink_restore_garbage, 120)
{
	REQUIRE_AMBER();
	make_image(_metadata, self, NULL);
	nl_setup(_metadata, self);
	restore_garbage(_metadata, self, G_EMPTY, "no attributes");
	restore_garbage(_metadata, self, G_UNSORTED, "unsorted VMAs");
	restore_garbage(_metadata, self, G_OVERLAP, "overlapping VMAs");
	restore_garbage(_metadata, self, G_HUGE, "VMA above TASK_SIZE");
	restore_garbage(_metadata, self, G_BACKWARDS, "VMA ending before its start, no PAGE_FDS");
	restore_garbage(_metadata, self, G_PREFILLED_SHMEM, "PREFILLED shared memory");
	restore_garbage(_metadata, self, G_PREFILLED_UNMAPPED, "PREFILLED over nothing mapped");
}

/* --- RESTORE of a multi-threaded stub: bad THREADS, FLAGS and shmem fds --- */

/* long bad_clone3(struct clone_args *, size_t): the child thread pauses for ever. */
asm(".pushsection .text\n"
    ".globl bad_clone3\n"
    "bad_clone3:\n"
    "mov $435, %eax; syscall; test %rax, %rax; jnz 1f\n"
    "2: mov $34, %eax; syscall; jmp 2b\n"
    "1: ret\n"
    ".popsection\n");
long bad_clone3(void *args, size_t size);

struct bad_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

/* A thread of the caller (all signals blocked) in pause(), TID @want if free. */
static pid_t bad_thread(pid_t want)
{
	static char stacks[4][16384] __attribute__((aligned(16)));
	static int used;
	struct bad_clone_args a = {
		.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
			 CLONE_SYSVSEM,
		.stack = (uint64_t)(uintptr_t)stacks[used++ & 3],
		.stack_size = sizeof(stacks[0]),
		.set_tid = (uint64_t)(uintptr_t)&want,
		.set_tid_size = 1,
	};
	long tid = -1;

	for (int i = 0; i < 50; i++, want++) {
		tid = bad_clone3(&a, sizeof(a));
		if (tid > 0 || (tid != -EEXIST && tid != -EBUSY))
			break;
	}
	if (tid < 0) {
		a.set_tid = a.set_tid_size = 0;
		tid = bad_clone3(&a, sizeof(a));
	}
	return tid;
}

/* The system call a thread of this process waits in, or -1. */
static long own_task_syscall(pid_t tid)
{
	char path[64], buf[128] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return buf[0] ? strtol(buf, NULL, 10) : -1;
}

enum tbad {
	T_VALID,	/* THREADS right, nothing else: refused for the missing VMAs */
	T_NONE,		/* no THREADS although the stub has threads */
	T_FOREIGN,	/* a TID of another process */
	T_LEADER,	/* the leader's own TID */
	T_DUP,		/* a TID twice */
	T_MISSING,	/* one thread left out */
	T_BAD_RIP,	/* non-canonical rip */
	T_BAD_CS,	/* 32-bit code segment */
	T_BAD_FS,	/* a TLS selector in fs */
	T_BIG_XSTATE,	/* larger than this CPU's XSAVE area */
	T_BAD_XFEAT,	/* xstate with features the CPU does not have */
	T_BAD_MXCSR,	/* reserved MXCSR bits */
	T_BAD_SAS,	/* sigaltstack above TASK_SIZE */
	T_BAD_FLAGS,	/* unknown AMBER_A_FLAGS bit */
	T_SHMEM_FD,	/* a regular file given for a SHMEM VMA */
};

struct tbad_result {
	struct nl_reply r;
	pid_t tids[2];
	pid_t foreign;
	int fd;		/* T_SHMEM_FD: the fd given */
	bool threads_ok;	/* both threads back in pause() after the refusal */
};

static void put_thread(struct nlbuf *b, pid_t tid, enum tbad t, bool bad)
{
	unsigned char fpu[576] = { 0 };
	static unsigned char big[8192];

	nl_nest_start(b, AMBER_A_THREAD);
	nl_put_u32(b, AMBER_THREAD_TID, tid);
	nl_nest_start(b, AMBER_THREAD_REGS);
	for (int i = AMBER_REG_R15; i <= AMBER_REG_GS; i++) {
		uint64_t v = 0;

		if (i == AMBER_REG_RIP)
			v = bad && t == T_BAD_RIP ? 0x8000000000000000ULL : 0x10000000;
		else if (i == AMBER_REG_CS)
			v = bad && t == T_BAD_CS ? 0x23 : 0x33;
		else if (i == AMBER_REG_SS)
			v = 0x2b;
		else if (i == AMBER_REG_FS)
			v = bad && t == T_BAD_FS ? 0x63 : 0;
		else if (i == AMBER_REG_RSP)
			v = 0x30000ff0;
		else if (i == AMBER_REG_EFLAGS)
			v = 0x246;
		else if (i == AMBER_REG_ORIG_RAX)
			v = -1;
		nl_put_u64(b, i, v);
	}
	nl_nest_end(b);
	*(uint16_t *)fpu = 0x37f;
	*(uint32_t *)(fpu + 24) = bad && t == T_BAD_MXCSR ? 0xffffffff : 0x1f80;
	*(uint64_t *)(fpu + 512) = bad && t == T_BAD_XFEAT ? (1ULL << 62) | 3 : 3;
	if (bad && t == T_BIG_XSTATE)
		nl_put(b, AMBER_THREAD_FPU, big, sizeof(big));
	else
		nl_put(b, AMBER_THREAD_FPU, fpu, sizeof(fpu));
	nl_put_u64(b, AMBER_THREAD_BLOCKED, 0);
	if (bad && t == T_BAD_SAS) {
		nl_put_u64(b, AMBER_THREAD_SAS_SP, 0xffff800000000000ULL);
		nl_put_u64(b, AMBER_THREAD_SAS_SIZE, 8192);
		nl_put_u32(b, AMBER_THREAD_SAS_FLAGS, 0);
	}
	nl_put(b, AMBER_THREAD_COMM, "worker", 7);
	nl_nest_end(b);
}

static void put_threads(struct nlbuf *b, enum tbad t, const pid_t *tids, pid_t foreign)
{
	pid_t list[3];
	int n = 0;

	switch (t) {
	case T_NONE:
	case T_SHMEM_FD:
		return;
	case T_FOREIGN:
		list[n++] = tids[0];
		list[n++] = foreign;
		if (foreign < tids[0]) {
			list[0] = foreign;
			list[1] = tids[0];
		}
		break;
	case T_LEADER:
		list[n++] = getpid();	/* below its threads' TIDs */
		list[n++] = tids[0];
		list[n++] = tids[1];
		break;
	case T_DUP:
		list[n++] = tids[0];
		list[n++] = tids[0];
		list[n++] = tids[1];
		break;
	case T_MISSING:
		list[n++] = tids[0];
		break;
	default:
		list[n++] = tids[0];
		list[n++] = tids[1];
		break;
	}
	nl_nest_start(b, AMBER_A_THREADS);
	for (int i = 0; i < n; i++)
		put_thread(b, list[i], t, list[i] == tids[1] || t == T_BAD_CS || t == T_BAD_FS);
	nl_nest_end(b);
}

/*
 * A forked stub with two threads blocked in pause() sends a RESTORE that is
 * wrong in way @t. It must be refused before the point of no return: the
 * stub and both threads survive (the threads back in pause()).
 */
static void restore_threads_bad(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self,
				enum tbad t, struct tbad_result *out)
{
	static struct nlbuf b;
	int p[2], status;
	pid_t child;

	memset(out, 0, sizeof(*out));
	ASSERT_EQ(0, pipe(p));
	child = fork();
	if (child == 0) {
		struct tbad_result res = { .foreign = getppid(), .fd = -1 };
		sigset_t all;

		close(p[0]);
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, NULL);
		res.tids[0] = bad_thread(getpid() + 100);
		res.tids[1] = bad_thread(getpid() + 110);
		if (res.tids[0] <= 0 || res.tids[1] <= 0)
			_exit(3);
		nl_start(&b, self->family, AMBER_CMD_RESTORE, 0);
		if (t == T_BAD_FLAGS)
			nl_put_u32(&b, AMBER_A_FLAGS, 0x80);
		if (t == T_SHMEM_FD) {
			/* not on tmpfs: a tmpfs file is a shmem file */
			res.fd = open("/proc/self/exe", O_RDONLY);
			if (res.fd < 0)
				_exit(4);
			nl_nest_start(&b, AMBER_A_VMAS);
			nl_nest_start(&b, AMBER_A_VMA);
			nl_put_u64(&b, AMBER_VMA_START, 0x40000000);
			nl_put_u64(&b, AMBER_VMA_END, 0x40001000);
			nl_put_u64(&b, AMBER_VMA_PGOFF, 0);
			nl_put_u32(&b, AMBER_VMA_PROT, PROT_READ | PROT_WRITE);
			nl_put_u32(&b, AMBER_VMA_FLAGS, AMBER_VMA_F_SHARED | AMBER_VMA_F_ANON |
							AMBER_VMA_F_SHMEM);
			nl_put_u32(&b, AMBER_VMA_FILE_FD, res.fd);
			nl_nest_end(&b);
			nl_nest_end(&b);
		}
		put_threads(&b, t == T_SHMEM_FD ? T_VALID : t, res.tids, res.foreign);
		if (nl_transact(self->nl, &b, &res.r, 30000))
			res.r.error = 1;
		for (int i = 0; i < 200 && !res.threads_ok; i++) {
			res.threads_ok = own_task_syscall(res.tids[0]) == SYS_pause &&
					 own_task_syscall(res.tids[1]) == SYS_pause;
			if (!res.threads_ok)
				sleep_ms(10);
		}
		if (write(p[1], &res, sizeof(res)) != sizeof(res))
			_exit(5);
		_exit(0);
	}
	close(p[1]);
	ASSERT_LT(0, child);
	ASSERT_EQ(0, wait_child(child, 60000, &status));
	ASSERT_EQ(0, exit_code(status))
		TH_LOG("variant %d: the stub died (status %#x): went past the point of no return",
		       t, status);
	ASSERT_EQ(sizeof(*out), read(p[0], out, sizeof(*out)));
	close(p[0]);
	TH_LOG("variant %d (threads %d %d): error %d (%s), extack '%s'", t, out->tids[0],
	       out->tids[1], out->r.error, strerror(-out->r.error), out->r.msg);
	EXPECT_NE(1, out->r.error) TH_LOG("no answer");
	EXPECT_GT(0, out->r.error);
	EXPECT_LT(0, strlen(out->r.msg)) TH_LOG("rejected without an extack message");
	EXPECT_TRUE(out->threads_ok) TH_LOG("the stub's threads are not back in pause()");
}

/* Refused with @err and an extack that says @fmt (one %d: the thread named). */
static void expect_tbad(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self,
			enum tbad t, int err, const char *fmt, int which)
{
	struct tbad_result res;
	char want[200];

	restore_threads_bad(_metadata, self, t, &res);
	snprintf(want, sizeof(want), fmt,
		 which == 2 ? res.foreign : which == 3 ? res.fd : res.tids[which]);
	EXPECT_EQ(err, res.r.error) TH_LOG("variant %d", t);
	EXPECT_TRUE(contains_ci(res.r.msg, want))
		TH_LOG("variant %d: '%s' does not say '%s'", t, res.r.msg, want);
}

TEST_F_TIMEOUT(bad, netlink_restore_threads, 180)
{
	REQUIRE_AMBER();
	if (geteuid())
		SKIP(return, "needs root (clone3 set_tid, restore)");
	nl_setup(_metadata, self);
	/* the right list gets past the threads, to the next missing part */
	expect_tbad(_metadata, self, T_VALID, -EINVAL, "VMA list", 0);
	expect_tbad(_metadata, self, T_NONE, -EBUSY, "lists none", 0);
	expect_tbad(_metadata, self, T_FOREIGN, -EINVAL,
		    "thread %d: is not a thread of the calling stub", 2);
	expect_tbad(_metadata, self, T_LEADER, -EINVAL, "is the calling leader", 0);
	expect_tbad(_metadata, self, T_DUP, -EINVAL, "thread %d: is listed twice", 0);
	expect_tbad(_metadata, self, T_MISSING, -EINVAL,
		    "thread %d of the stub is not in AMBER_A_THREADS", 1);
	expect_tbad(_metadata, self, T_BAD_RIP, -EINVAL,
		    "thread %d: rip 0x8000000000000000 is not a user address", 1);
	expect_tbad(_metadata, self, T_BAD_CS, -EINVAL, "thread %d: cs:ss 23:2b", 0);
	expect_tbad(_metadata, self, T_BAD_FS, -EINVAL, "thread %d: fs selector 0x63", 0);
	expect_tbad(_metadata, self, T_BIG_XSTATE, -EINVAL, "thread %d: xstate is 8192 bytes", 1);
	expect_tbad(_metadata, self, T_BAD_XFEAT, -EINVAL, "thread %d: xstate features", 1);
	expect_tbad(_metadata, self, T_BAD_MXCSR, -EINVAL, "thread %d: xstate rejected", 1);
	expect_tbad(_metadata, self, T_BAD_SAS, -EINVAL, "thread %d: sigaltstack", 1);
	expect_tbad(_metadata, self, T_BAD_FLAGS, -EINVAL, "", 0);
	expect_tbad(_metadata, self, T_SHMEM_FD, -EINVAL,
		    "VMA 0x40000000-0x40001000: fd %d is not a shmem file", 3);
}

/* RELEASE of a pid that no checkpoint or restore holds for this socket. */
TEST_F_TIMEOUT(bad, netlink_release_unheld, 60)
{
	static struct nlbuf b;
	struct nl_reply r;

	REQUIRE_AMBER();
	nl_setup(_metadata, self);
	nl_start(&b, self->family, AMBER_CMD_RELEASE, 0);
	nl_put_u32(&b, AMBER_A_PID, getpid());
	nl_put_u32(&b, AMBER_A_ACTION, AMBER_RELEASE_RESUME);
	ASSERT_EQ(0, nl_transact(self->nl, &b, &r, 30000));
	TH_LOG("error %d, extack '%s'", r.error, r.msg);
	EXPECT_EQ(-ESRCH, r.error);
	EXPECT_LT(0, strlen(r.msg));
	nl_start(&b, self->family, AMBER_CMD_RELEASE, 0);
	nl_put_u32(&b, AMBER_A_PID, getpid());
	nl_put_u32(&b, AMBER_A_ACTION, AMBER_RELEASE_KILL);
	ASSERT_EQ(0, nl_transact(self->nl, &b, &r, 30000));
	EXPECT_EQ(-ESRCH, r.error);
	EXPECT_TRUE(pid_alive(getpid()));
}

/* --- AMBER_CMD_TCP_GRAFT --- */

static int graft_sock(int port, int listening)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(s, (struct sockaddr *)&a, sizeof(a)) || (listening && listen(s, 4)))
		return -1;
	return s;
}

static int graft_port(int s)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	return getsockname(s, (struct sockaddr *)&a, &len) ? -1 : ntohs(a.sin_port);
}

/* A connection to 127.0.0.1:@to from local port @port, made in repair mode (nothing sent). */
static int graft_repaired(int port, int to)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int s = socket(AF_INET, SOCK_STREAM, 0), on = 1;

	if (s < 0 || setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)) ||
	    bind(s, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	a.sin_port = htons(to);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	return s;
}

static void expect_graft(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self,
			 int lfd, int cfd, int err, const char *msg)
{
	static struct nlbuf b;
	struct nl_reply r;

	nl_start(&b, self->family, AMBER_CMD_TCP_GRAFT, 0);
	if (lfd >= 0)
		nl_put_u32(&b, AMBER_A_SOCK_FD, lfd);
	if (cfd >= 0)
		nl_put_u32(&b, AMBER_A_TCP_CHILD_FD, cfd);
	ASSERT_EQ(0, nl_transact(self->nl, &b, &r, 30000)) TH_LOG("%s: no answer", msg);
	TH_LOG("graft: error %d (%s), extack '%s'", r.error, strerror(-r.error), r.msg);
	EXPECT_EQ(err, r.error) TH_LOG("expected %d for '%s'", err, msg);
	EXPECT_TRUE(strstr(r.msg, msg) != NULL) TH_LOG("expected '%s'", msg);
}

/*
 * Each check of TCP_GRAFT: wrong kinds of fd, a listener that is not one, a
 * connection not in repair mode or on another port, the same socket twice,
 * a caller without CAP_NET_ADMIN; nothing is grafted, and the connection
 * refused for not being in repair mode still works.
 */
TEST_F_TIMEOUT(bad, netlink_tcp_graft, 60)
{
	int l, other, plain, acc, rep, rep_other, pipefd[2], un[2], port, status;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	pid_t pid;
	char c;

	REQUIRE_AMBER();
	system("ip link set lo up 2>/dev/null");
	nl_setup(_metadata, self);
	l = graft_sock(0, 1);
	ASSERT_LE(0, l);
	port = graft_port(l);
	other = graft_sock(0, 0);	/* bound, not listening */
	ASSERT_LE(0, other);
	ASSERT_EQ(0, pipe(pipefd));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, un));
	a.sin_port = htons(port);
	plain = socket(AF_INET, SOCK_STREAM, 0);
	ASSERT_EQ(0, connect(plain, (struct sockaddr *)&a, sizeof(a)));
	acc = accept(l, NULL, NULL);
	ASSERT_LE(0, acc);
	rep = graft_repaired(port, 9);
	ASSERT_LE(0, rep);
	rep_other = graft_repaired(graft_port(other) + 1, 9);
	ASSERT_LE(0, rep_other);

	expect_graft(_metadata, self, l, -1, -EINVAL, "missing TCP_CHILD_FD");
	expect_graft(_metadata, self, -1, rep, -EINVAL, "missing SOCK_FD");
	expect_graft(_metadata, self, pipefd[0], rep, -ENOTSOCK, "not a socket");
	expect_graft(_metadata, self, l, un[0], -EINVAL, "not a TCP socket");
	expect_graft(_metadata, self, l, 999, -EBADF, "not a socket");
	expect_graft(_metadata, self, l, l, -EINVAL, "is SOCK_FD's socket");
	expect_graft(_metadata, self, l, acc, -EINVAL, "not in repair mode");
	expect_graft(_metadata, self, other, rep, -EINVAL, "not a listening socket");
	expect_graft(_metadata, self, l, rep_other, -EINVAL, "local port is not SOCK_FD's");

	/* Not taken: the refused connection still carries bytes both ways. */
	ASSERT_EQ(1, send(plain, "x", 1, 0));
	ASSERT_EQ(1, recv(acc, &c, 1, 0));
	ASSERT_EQ(1, send(acc, "y", 1, 0));
	ASSERT_EQ(1, recv(plain, &c, 1, 0));
	EXPECT_EQ('y', c);

	/* Without CAP_NET_ADMIN: refused before the module looks at the fds. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(2);
		self->nl = nl_open();	/* its own: the opener's rights count too */
		expect_graft(_metadata, self, l, rep, -EPERM, "");
		_exit(_metadata->passed ? 0 : 1);
	}
	ASSERT_EQ(0, wait_child(pid, 30000, &status));
	EXPECT_EQ(0, exit_code(status)) TH_LOG("the unprivileged graft was not refused with EPERM");
	/* Nothing was queued on the listener. */
	{
		struct pollfd p = { l, POLLIN, 0 };

		EXPECT_EQ(0, poll(&p, 1, 200)) TH_LOG("a refused graft reached the accept queue");
	}
	close(rep);
	close(rep_other);
	close(plain);
	close(acc);
	close(other);
	close(l);
}

TEST_HARNESS_MAIN
