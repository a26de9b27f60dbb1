// SPDX-License-Identifier: GPL-2.0
/*
 * Bad input gets a clear error and harms nobody: targets the module must
 * refuse, callers without privilege, damaged images, taken PIDs, files that
 * changed since the checkpoint, and hand-made netlink requests.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/amber.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

TEST_F_TIMEOUT(bad, multithreaded, 60)
{
	REQUIRE_AMBER();
	start_sleeper(_metadata, self, "--thread", NULL);
	assert_ckpt_fails(_metadata, self, self->pid, "thread");
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
	start_sleeper(_metadata, self, "--socket", NULL);
	assert_ckpt_fails(_metadata, self, self->pid, "fd 3");
	assert_ckpt_fails(_metadata, self, self->pid, "socket");
	assert_ticking(_metadata, self);
	kill_and_reap(self->pid);

	snprintf(held, sizeof(held), "%s/deleted.txt", self->base);
	ASSERT_EQ(0, write_file(held, "x\n", 2));
	start_sleeper(_metadata, self, "--open", held);
	ASSERT_EQ(0, unlink(held));
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

enum garbage { G_EMPTY, G_UNSORTED, G_OVERLAP, G_HUGE, G_BACKWARDS };

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
}

TEST_HARNESS_MAIN
