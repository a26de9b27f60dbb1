// SPDX-License-Identifier: GPL-2.0
/*
 * The restorability contract (issue 13): a state restore would refuse is
 * refused by `amber checkpoint --kill` (and `--tree --kill`) first, with
 * restore's message, and the process is still alive afterwards (nothing was
 * killed, nothing published). One test per state-dependent refusal of
 * restore (or, for a state restore now recreates, the image restores):
 *   - cwd_deleted: the cwd was removed (rmdir) while the process is in it:
 *     checkpoint --kill and --tree --kill succeed and the image restores with
 *     the same deleted cwd ("PATH (deleted)"), nothing left on disk;
 *   - exe_deleted: the executable was unlinked after exec (amber.ko refuses
 *     its mapping: the message names the path);
 *   - fd_dir_deleted: an O_DIRECTORY fd on a removed directory;
 *   - zombie_pgid_outside: a zombie left in a process group whose leader is
 *     not in the tree (the root moved to a group of its own after the fork);
 *   - child_pgid_outside: the same with a live child;
 *   - child_sid_outside: a child left in a session whose leader is not in
 *     the tree (the root called setsid() after the fork);
 *   - ldt_selector: %es holds an LDT selector (modify_ldt()): amber.ko's
 *     register check, the same function at capture and at restore;
 *   - rlimit_data_below_use: RLIMIT_DATA lowered below brk + data (restore
 *     sets them under the image's own limit);
 *   - pipe_rdwr: a pipe end reopened O_RDWR through /proc/self/fd: restored
 *     (restore refused it, "no end to reopen", after checkpoint --kill).
 * Each test builds the state in processes forked here, runs the checkpoint
 * and asserts: exit status non-zero, the message on stderr, every process
 * still there (a zombie still a zombie), no checkpoint published.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <asm/ldt.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "amber_test.h"

#define CONTRACT_TMP	TEST_TMP "/contract"

static const char deleted_msg[] = "was deleted before the checkpoint, cannot reopen it";

/* What a forked state builder does before reporting ready and sleeping. */
enum builder {
	B_CWD_DELETED,
	B_EXE_DELETED,
	B_FD_DIR_DELETED,
	B_ZOMBIE_PGID,
	B_CHILD_PGID,
	B_CHILD_SID,
	B_LDT_SELECTOR,
	B_RLIMIT_DATA,
	B_PIPE_RDWR,
};

static void sleep_forever(void)
{
	for (;;)
		pause();
}

/*
 * Child of the test: builds the state, writes its second process's pid (0 if
 * none) to ready, sleeps. Exits 1 on a setup failure (before writing).
 */
static void build(enum builder b, const char *dir, int ready)
{
	char path[512];
	pid_t other = 0;
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* stdio on /dev/null: a restore does not hold the test's pipes. */
	fd = open("/dev/null", O_RDWR);
	if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		_exit(1);
	if (fd > 2)
		close(fd);
	switch (b) {
	case B_CWD_DELETED:
		snprintf(path, sizeof(path), "%s/gone", dir);
		if (mkdir(path, 0700) || chdir(path) || rmdir(path))
			_exit(1);
		break;
	case B_FD_DIR_DELETED:
		snprintf(path, sizeof(path), "%s/gone", dir);
		if (mkdir(path, 0700))
			_exit(1);
		fd = open(path, O_RDONLY | O_DIRECTORY);
		if (fd < 0 || rmdir(path))
			_exit(1);
		break;
	case B_EXE_DELETED: {
		/* A copy of sleep, unlinked by the test once it runs. */
		snprintf(path, sizeof(path), "%s/sleep-copy", dir);
		execl("/bin/sh", "sh", "-c",
		      "cp /bin/sleep \"$1\" && exec \"$1\" 1000", "sh", path, (char *)NULL);
		_exit(1);
	}
	case B_LDT_SELECTOR: {
		/* LDT entry 0, flat data, loaded into %es (unused in 64-bit code). */
		struct user_desc d = {
			.entry_number = 0, .limit = 0xfffff, .seg_32bit = 1,
			.limit_in_pages = 1, .useable = 1,
		};
		unsigned short sel = 0x7;	/* LDT, RPL 3 */

		if (syscall(SYS_modify_ldt, 1, &d, sizeof(d)))
			_exit(1);
		asm volatile("mov %0, %%es" : : "r"(sel));
		break;
	}
	case B_RLIMIT_DATA: {
		/* 1 MiB of brk, then RLIMIT_DATA lowered below it. */
		struct rlimit rl;
		char *p = sbrk(1 << 20);

		if (p == (void *)-1 || getrlimit(RLIMIT_DATA, &rl))
			_exit(1);
		memset(p, 1, 1 << 20);
		rl.rlim_cur = 64 << 10;
		if (setrlimit(RLIMIT_DATA, &rl))
			_exit(1);
		break;
	}
	case B_PIPE_RDWR: {
		/* fds 10 and 11: a pipe; 12: its read end reopened O_RDWR. */
		int pp[2];

		if (pipe(pp) || dup2(pp[0], 10) < 0 || dup2(pp[1], 11) < 0)
			_exit(1);
		fd = open("/proc/self/fd/10", O_RDWR);
		if (fd < 0 || dup2(fd, 12) < 0 || write(11, "x", 1) != 1)
			_exit(1);
		break;
	}
	case B_ZOMBIE_PGID:
	case B_CHILD_PGID:
	case B_CHILD_SID:
		other = fork();
		if (other < 0)
			_exit(1);
		if (other == 0) {
			if (b == B_ZOMBIE_PGID)
				_exit(7);
			sleep_forever();
		}
		if (b == B_CHILD_SID ? setsid() < 0 : setpgid(0, 0) < 0)
			_exit(1);
		if (b == B_ZOMBIE_PGID)
			while (pid_state(other) != 'Z')
				sleep_ms(5);
		break;
	}
	if (write(ready, &other, sizeof(other)) != sizeof(other))
		_exit(1);
	close(ready);
	sleep_forever();
}

FIXTURE(contract) {
	char dir[200];		/* state builders' files */
	char img[256];		/* checkpoint directory */
	pid_t pid;		/* the checkpointed process */
	pid_t other;		/* its child, if any */
};

FIXTURE_SETUP(contract)
{
	snprintf(self->dir, sizeof(self->dir), CONTRACT_TMP "/%s", _metadata->name);
	snprintf(self->img, sizeof(self->img), "%s/img", self->dir);
	ASSERT_EQ(0, fresh_dir(self->dir));
	self->pid = 0;
	self->other = 0;
}

FIXTURE_TEARDOWN(contract)
{
	if (self->other > 0)
		kill(self->other, SIGKILL);
	kill_and_reap(self->pid);
	if (_metadata->passed)
		rm_rf(self->dir);
}

static int start(struct __test_metadata *_metadata, FIXTURE_DATA(contract) *self,
		 enum builder b)
{
	int p[2];
	ssize_t n;

	if (pipe2(p, O_CLOEXEC))
		return -1;
	self->pid = fork();
	if (self->pid < 0)
		return -1;
	if (self->pid == 0) {
		close(p[0]);
		build(b, self->dir, p[1]);
	}
	close(p[1]);
	if (b == B_EXE_DELETED) {
		char path[512];

		close(p[0]);
		snprintf(path, sizeof(path), "%s/sleep-copy", self->dir);
		/* Ready once the shell has exec'd the copy. */
		for (int i = 0; i < 400; i++) {
			char exe[512] = "", link[64];
			ssize_t k;

			snprintf(link, sizeof(link), "/proc/%d/exe", self->pid);
			k = readlink(link, exe, sizeof(exe) - 1);
			if (k > 0 && strcmp(exe, path) == 0)
				return unlink(path);
			sleep_ms(10);
		}
		TH_LOG("pid %d never ran %s", self->pid, path);
		return -1;
	}
	n = read(p[0], &self->other, sizeof(self->other));
	close(p[0]);
	return n == sizeof(self->other) ? 0 : -1;
}

/*
 * checkpoint --kill (tree: --tree --kill) is refused with msg on stderr and
 * every process is still there.
 */
static void expect_refused(struct __test_metadata *_metadata, FIXTURE_DATA(contract) *self,
			   bool tree, const char *msg)
{
	const char *const kill_only[] = { "--kill", NULL };
	const char *const tree_kill[] = { "--tree", "--kill", NULL };
	struct cmd_result r;
	char state = pid_state(self->other);
	char latest[512];

	amber_checkpoint_args(self->pid, self->img, tree ? tree_kill : kill_only, &r, NULL);
	TH_LOG("checkpoint%s --kill: status %d\nstdout: %.2000s\nstderr: %.2000s",
	       tree ? " --tree" : "", exit_code(r.status), r.out ? r.out : "",
	       r.err ? r.err : "");
	EXPECT_NE(0, exit_code(r.status));
	EXPECT_TRUE(r.err && strstr(r.err, msg)) {
		TH_LOG("expected \"%s\"", msg);
	}
	cmd_result_free(&r);
	EXPECT_TRUE(pid_alive(self->pid)) {
		TH_LOG("pid %d was killed", self->pid);
	}
	/* A zombie is still a zombie, a live child still alive. */
	if (self->other > 0 && state == 'Z') {
		EXPECT_EQ('Z', pid_state(self->other));
	} else if (self->other > 0) {
		EXPECT_TRUE(pid_alive(self->other));
	}
	snprintf(latest, sizeof(latest), "%s/1", self->img);
	EXPECT_NE(0, access(latest, F_OK)) {
		TH_LOG("a checkpoint was published in %s", self->img);
	}
}

/* /proc/PID/cwd into buf ("" if unreadable). */
static void read_cwd(pid_t pid, char *buf, size_t size)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/cwd", pid);
	n = readlink(link, buf, size - 1);
	buf[n > 0 ? n : 0] = 0;
}

/*
 * checkpoint --kill (tree: --tree --kill) into img/<n> succeeds, the process
 * is gone, `restore --detach` brings it back with the same pid and
 * /proc/PID/cwd reads want.
 */
static void expect_restored(struct __test_metadata *_metadata, FIXTURE_DATA(contract) *self,
			    bool tree, int n, const char *want)
{
	const char *const kill_only[] = { "--kill", NULL };
	const char *const tree_kill[] = { "--tree", "--kill", NULL };
	struct cmd_result r;
	char img[512], cwd[512];
	pid_t pid = -1;

	snprintf(img, sizeof(img), "%s/%d", self->img, n);
	amber_checkpoint_args(self->pid, img, tree ? tree_kill : kill_only, &r, NULL);
	TH_LOG("checkpoint%s --kill: status %d\nstderr: %.2000s", tree ? " --tree" : "",
	       exit_code(r.status), r.err ? r.err : "");
	ASSERT_EQ(0, exit_code(r.status));
	cmd_result_free(&r);
	/* Ours the first time, the subreaper's (ours) after a restore. */
	waitpid(self->pid, NULL, 0);
	ASSERT_EQ(0, wait_gone(self->pid, 5000));
	ASSERT_EQ(0, run_cmdl(60000, &r, AMBER_BIN, "restore", "-D", img, "--detach", NULL));
	TH_LOG("restore: status %d\nstdout: %.2000s\nstderr: %.2000s", exit_code(r.status),
	       r.out ? r.out : "", r.err ? r.err : "");
	ASSERT_EQ(0, exit_code(r.status));
	ASSERT_EQ(0, parse_restored_line(r.out, &pid));
	cmd_result_free(&r);
	ASSERT_EQ(self->pid, pid);
	ASSERT_TRUE(pid_alive(pid));
	if (want) {
		read_cwd(pid, cwd, sizeof(cwd));
		EXPECT_STREQ(want, cwd);
	}
}

/* The flags line of /proc/PID/fdinfo/FD, -1 if unreadable. */
static long fd_flags(pid_t pid, int fd)
{
	char path[64], *s, *f;
	long v = -1;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	s = slurp(path, NULL);
	f = s ? strstr(s, "flags:") : NULL;
	if (f)
		v = strtol(f + 6, NULL, 8);
	free(s);
	return v;
}

static void fd_link(pid_t pid, int fd, char *buf, size_t size)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	n = readlink(path, buf, size - 1);
	buf[n > 0 ? n : 0] = 0;
}

/* A pipe end reopened O_RDWR through /proc is restored (it was refused). */
TEST_F(contract, pipe_rdwr)
{
	char rd[64], rdwr[64];

	ASSERT_EQ(0, become_subreaper());
	ASSERT_EQ(0, start(_metadata, self, B_PIPE_RDWR));
	for (int n = 1; n <= 2; n++) {
		expect_restored(_metadata, self, n == 2, n, NULL);
		EXPECT_EQ(O_RDWR, fd_flags(self->pid, 12) & O_ACCMODE);
		EXPECT_EQ(O_RDONLY, fd_flags(self->pid, 10) & O_ACCMODE);
		fd_link(self->pid, 10, rd, sizeof(rd));
		fd_link(self->pid, 12, rdwr, sizeof(rdwr));
		EXPECT_STREQ(rd, rdwr);
		EXPECT_EQ(0, strncmp(rd, "pipe:[", 6));
	}
}

/* A deleted cwd is restored as an empty deleted directory of the same name. */
TEST_F(contract, cwd_deleted)
{
	char want[600], path[512];
	struct stat st;

	ASSERT_EQ(0, become_subreaper());
	ASSERT_EQ(0, start(_metadata, self, B_CWD_DELETED));
	snprintf(path, sizeof(path), "%s/gone", self->dir);
	snprintf(want, sizeof(want), "%s (deleted)", path);
	expect_restored(_metadata, self, false, 1, want);
	expect_restored(_metadata, self, true, 2, want);
	/* Nothing left behind. */
	EXPECT_NE(0, stat(path, &st));
}

/*
 * amber.ko refuses the deleted executable's mapping first ("vma ...: PATH
 * (deleted) is not supported yet"), before the tools' check of the exe.
 */
TEST_F(contract, exe_deleted)
{
	char msg[300];

	snprintf(msg, sizeof(msg), "%s/sleep-copy (deleted)", self->dir);
	ASSERT_EQ(0, start(_metadata, self, B_EXE_DELETED));
	expect_refused(_metadata, self, false, msg);
	expect_refused(_metadata, self, true, msg);
}

TEST_F(contract, fd_dir_deleted)
{
	ASSERT_EQ(0, start(_metadata, self, B_FD_DIR_DELETED));
	expect_refused(_metadata, self, false, deleted_msg);
	expect_refused(_metadata, self, true, deleted_msg);
}

TEST_F(contract, zombie_pgid_outside)
{
	char msg[128];

	ASSERT_EQ(0, start(_metadata, self, B_ZOMBIE_PGID));
	ASSERT_EQ('Z', pid_state(self->other));
	snprintf(msg, sizeof(msg), "pid %d: process group %d: its leader is not in the tree",
		 self->other, getpgid(0));
	expect_refused(_metadata, self, true, msg);
}

TEST_F(contract, child_pgid_outside)
{
	char msg[128];

	ASSERT_EQ(0, start(_metadata, self, B_CHILD_PGID));
	snprintf(msg, sizeof(msg), "pid %d: process group %d: its leader is not in the tree",
		 self->other, getpgid(0));
	expect_refused(_metadata, self, true, msg);
}

TEST_F(contract, child_sid_outside)
{
	char msg[128];

	ASSERT_EQ(0, start(_metadata, self, B_CHILD_SID));
	snprintf(msg, sizeof(msg), "pid %d: session %d: its leader is not in the tree",
		 self->other, getsid(0));
	expect_refused(_metadata, self, true, msg);
}

/* The kernel's check, shared by capture and restore (kmod/regs.c). */
TEST_F(contract, ldt_selector)
{
	ASSERT_EQ(0, start(_metadata, self, B_LDT_SELECTOR));
	expect_refused(_metadata, self, false, "es selector 0x7 is not supported");
	expect_refused(_metadata, self, true, "es selector 0x7 is not supported");
}

/* The kernel's check, shared by capture and restore (kmod/mm.c). */
TEST_F(contract, rlimit_data_below_use)
{
	ASSERT_EQ(0, start(_metadata, self, B_RLIMIT_DATA));
	expect_refused(_metadata, self, false, "brk and data exceed RLIMIT_DATA");
	expect_refused(_metadata, self, true, "brk and data exceed RLIMIT_DATA");
}

TEST_HARNESS_MAIN
