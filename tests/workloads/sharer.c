// SPDX-License-Identifier: GPL-2.0
/*
 * Processes that share an fd table or cwd/umask through clone() without
 * CLONE_THREAD (issue 13):
 *   default: a parent P, a child F made with clone(CLONE_FILES) and a child
 *     S made with clone(CLONE_FS). They wait until DIR/go exists (created
 *     by the test after the restore), then check the sharing from inside:
 *     an fd P opens is open in F and one F opens is open in P; a chdir and
 *     umask of S are seen by P and those of P by S. Prints one line per
 *     check, then PASS or FAIL, and exits.
 *   --unshared-parent: P makes C with clone(CLONE_FILES), C makes G with
 *     clone(CLONE_FILES), then C calls unshare(CLONE_FILES): G shares P's
 *     table but its parent C does not (no restore can build that with
 *     clone()). Sleeps.
 * Usage: sharer --dir DIR [--pids FILE] [--unshared-parent]
 * Prints `sharer ready` once set up; FILE gets `P F S` (or `P C G`).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct shared {
	volatile int step;
	volatile int fd_p, fd_f;
	volatile int f_sees_p, s_sees_p;
};

static struct shared *shm;
static const char *dir;

static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Waits until shm->step is at least s: 0, or -1 after 20 s. */
static int wait_step(int s)
{
	int i;

	for (i = 0; i < 20000; i++) {
		if (shm->step >= s)
			return 0;
		pause_ms(1);
	}
	return -1;
}

/* fd is open here and names a file whose path ends with name. */
static int fd_is(int fd, const char *name)
{
	char link[64], path[PATH_MAX];
	ssize_t n;
	size_t l = strlen(name);

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return 0;
	path[n] = 0;
	return (size_t)n >= l && !strcmp(path + n - l, name);
}

static int cwd_is(const char *path)
{
	char buf[PATH_MAX];

	return getcwd(buf, sizeof(buf)) && !strcmp(buf, path);
}

static mode_t get_umask(void)
{
	mode_t m = umask(0);

	umask(m);
	return m;
}

static pid_t clone_with(unsigned long flags)
{
	return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

static void child_files(void)
{
	char path[PATH_MAX];

	if (wait_step(1))
		_exit(1);
	shm->f_sees_p = fd_is(shm->fd_p, "/p.txt");
	snprintf(path, sizeof(path), "%s/f.txt", dir);
	shm->fd_f = open(path, O_CREAT | O_RDWR, 0600);
	shm->step = 2;
	_exit(0);
}

static void child_fs(const char *sub, const char *top)
{
	if (wait_step(2))
		_exit(1);
	if (chdir(sub))
		_exit(1);
	umask(027);
	shm->step = 3;
	if (wait_step(4))
		_exit(1);
	shm->s_sees_p = cwd_is(top) && get_umask() == 022;
	shm->step = 5;
	_exit(0);
}

static void wait_go(void)
{
	char go[PATH_MAX];

	snprintf(go, sizeof(go), "%s/go", dir);
	while (access(go, F_OK))
		pause_ms(10);
}

static int unshared_parent(FILE *pids)
{
	int p[2];
	pid_t c, g = 0;

	if (pipe(p))
		return 1;
	c = clone_with(CLONE_FILES);
	if (c < 0)
		return 1;
	if (c == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		g = clone_with(CLONE_FILES);
		if (g == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;)
				pause();
		}
		if (g < 0 || unshare(CLONE_FILES))
			_exit(1);
		if (write(p[1], &g, sizeof(g)) != sizeof(g))
			_exit(1);
		for (;;)
			pause();
	}
	if (read(p[0], &g, sizeof(g)) != sizeof(g))
		return 1;
	if (pids) {
		fprintf(pids, "%d %d %d\n", getpid(), c, g);
		fclose(pids);
	}
	printf("sharer ready\n");
	fflush(stdout);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	char sub[PATH_MAX + 8], top[PATH_MAX], path[PATH_MAX + 8];
	FILE *pids = NULL;
	int unshared = 0, i, ok, st;
	pid_t f, s;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--pids") && i + 1 < argc)
			pids = fopen(argv[++i], "w");
		else if (!strcmp(argv[i], "--unshared-parent"))
			unshared = 1;
		else
			return fprintf(stderr, "usage: sharer --dir DIR [--pids FILE] [--unshared-parent]\n"), 2;
	}
	if (!dir || !realpath(dir, top))
		return 2;
	dir = top;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (unshared)
		return unshared_parent(pids);

	shm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED)
		return 1;
	snprintf(sub, sizeof(sub), "%s/sub", top);
	if (mkdir(sub, 0755) && errno != EEXIST)
		return 1;
	if (chdir(top))
		return 1;
	umask(022);
	f = clone_with(CLONE_FILES);
	if (f == 0)
		child_files();
	s = clone_with(CLONE_FS);
	if (s == 0)
		child_fs(sub, top);
	if (f < 0 || s < 0)
		return 1;
	if (pids) {
		fprintf(pids, "%d %d %d\n", getpid(), f, s);
		fclose(pids);
		pids = NULL;
	}
	printf("sharer ready\n");
	wait_go();

	snprintf(path, sizeof(path), "%s/p.txt", dir);
	shm->fd_p = open(path, O_CREAT | O_RDWR, 0600);
	shm->step = 1;
	ok = !wait_step(2) && shm->f_sees_p && fd_is(shm->fd_f, "/f.txt");
	printf("files: fd %d opened by the parent %s in the CLONE_FILES child\n", shm->fd_p,
	       shm->f_sees_p ? "is open" : "is NOT open");
	printf("files: fd %d opened by the CLONE_FILES child %s in the parent\n", shm->fd_f,
	       fd_is(shm->fd_f, "/f.txt") ? "is open" : "is NOT open");
	if (wait_step(3)) {
		ok = 0;
	} else {
		int seen = cwd_is(sub) && get_umask() == 027;

		printf("fs: the CLONE_FS child's chdir and umask %s by the parent\n",
		       seen ? "are seen" : "are NOT seen");
		ok &= seen;
	}
	if (chdir(top))
		ok = 0;
	umask(022);
	shm->step = 4;
	if (wait_step(5))
		ok = 0;
	printf("fs: the parent's chdir and umask %s by the CLONE_FS child\n",
	       shm->s_sees_p ? "are seen" : "are NOT seen");
	ok &= shm->s_sees_p;
	waitpid(f, &st, 0);
	waitpid(s, &st, 0);
	printf("%s\n", ok ? "PASS" : "FAIL");
	return ok ? 0 : 1;
}
