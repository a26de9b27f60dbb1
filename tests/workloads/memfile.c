// SPDX-License-Identifier: GPL-2.0
/*
 * memfile: memory of every kind, open files and signal state, checked at
 * every step.
 *
 * Regions (one 4 KiB slot per step, slot S written at step S with a pattern
 * of (region, S)): heap (brk), anonymous private mmap, anonymous shared mmap,
 * a private file mapping (copy on write over a file with a base pattern) and
 * a shared file mapping. Each step also recurses 2000 frames deep, each frame
 * holding data checked on the way back (the step's sleep happens at the
 * bottom, so a checkpoint usually captures the deep stack), reads the next
 * chunk of a file sequentially (the fd offset must survive), appends a
 * record to an O_APPEND log, raises SIGUSR1 (handler counts) and checks
 * that SIGUSR2 and SIGRTMIN+1, blocked and raised at start, stay pending.
 *
 * Usage: memfile --dir DIR [--steps N] [--sleep-ms M]
 * DIR must be on a filesystem that allows shared writable mappings (tmpfs).
 * Output: "step S ok" per step, then "final ..." checksums and "PASS";
 * any mismatch prints "FAIL ..." and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SLOT		4096
#define DEPTH		2000
#define CHUNK		1000
#define LOGREC		15	/* "log step 00000\n" */
#define RT_VALUE	12345

enum { R_HEAP, R_ANON, R_SHANON, R_FPRIV, R_FSHARED, NR_REGIONS };
static const char *const rname[NR_REGIONS] = {
	"heap", "anon", "shanon", "fpriv", "fshared",
};

static unsigned char *region[NR_REGIONS];
static int steps = 40, sleep_ms = 50;
static const char *dir;
static int infd, logfd, shfd, privfd;
static volatile sig_atomic_t usr1_count;
static uint64_t stack_sum;

static void fail(int step, const char *what)
{
	printf("FAIL step %d: %s\n", step, what);
	exit(1);
}

static unsigned char pat(int r, int slot, int i)
{
	return (unsigned char)(r * 31 + slot * 7 + (i * 13) + (i >> 8));
}

static unsigned char base_pat(size_t off)
{
	return (unsigned char)(0xa5 ^ (off * 3) ^ (off >> 9));
}

static unsigned char in_pat(size_t off)
{
	return (unsigned char)(off * 7 + off / 251);
}

static void fill(int r, int slot)
{
	unsigned char *p = region[r] + (size_t)slot * SLOT;
	int i;

	for (i = 0; i < SLOT; i++)
		p[i] = pat(r, slot, i);
}

static int slot_is(int r, int slot)
{
	const unsigned char *p = region[r] + (size_t)slot * SLOT;
	int i;

	for (i = 0; i < SLOT; i++)
		if (p[i] != pat(r, slot, i))
			return 0;
	return 1;
}

static int slot_untouched(int r, int slot)
{
	const unsigned char *p = region[r] + (size_t)slot * SLOT;
	size_t i, off = (size_t)slot * SLOT;

	for (i = 0; i < SLOT; i++) {
		unsigned char want = r == R_FPRIV ? base_pat(off + i) : 0;

		if (p[i] != want)
			return 0;
	}
	return 1;
}

static void check_regions(int step)
{
	char msg[128];
	int r, s;

	for (r = 0; r < NR_REGIONS; r++)
		for (s = 0; s < steps; s++) {
			int ok;

			if (s <= step)
				ok = slot_is(r, s);
			else if (r == R_FSHARED)
				/* the file may hold writes of a run killed after a checkpoint */
				ok = slot_untouched(r, s) || slot_is(r, s);
			else
				ok = slot_untouched(r, s);
			if (!ok) {
				snprintf(msg, sizeof(msg), "%s slot %d", rname[r], s);
				fail(step, msg);
			}
		}
}

static void sleep_a_bit(void)
{
	struct timespec ts = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts))
		if (errno != EINTR)
			fail(-1, "nanosleep");
}

/* Each frame holds 64 bytes derived from (depth, step), checked on return. */
static __attribute__((noinline)) uint64_t recurse(int depth, int step)
{
	volatile unsigned char frame[64];
	uint64_t sum = 0;
	int i;

	for (i = 0; i < 64; i++)
		frame[i] = (unsigned char)(depth * 5 + step * 11 + i);
	if (depth < DEPTH)
		sum = recurse(depth + 1, step);
	else
		sleep_a_bit();
	for (i = 0; i < 64; i++) {
		if (frame[i] != (unsigned char)(depth * 5 + step * 11 + i))
			fail(step, "stack frame");
		sum = sum * 31 + frame[i];
	}
	return sum;
}

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

static void make_file(const char *name, size_t size, unsigned char (*f)(size_t), int *fd,
		      int flags)
{
	char path[4096];
	unsigned char *buf = malloc(size);
	size_t i;
	int w;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	for (i = 0; i < size; i++)
		buf[i] = f ? f(i) : 0;
	w = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (w < 0 || write(w, buf, size) != (ssize_t)size || close(w))
		fail(-1, path);
	free(buf);
	*fd = open(path, flags);
	if (*fd < 0)
		fail(-1, path);
}

static void setup(void)
{
	size_t len = (size_t)steps * SLOT;
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	union sigval v = { .sival_int = RT_VALUE };
	char path[4096];
	sigset_t set;

	if (chdir(dir))
		fail(-1, "chdir");
	umask(027);
	/* Keep the heap buffer in brk memory. */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	region[R_HEAP] = calloc(1, len);
	region[R_ANON] = mmap(NULL, len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	region[R_SHANON] = mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	make_file("priv.dat", len, base_pat, &privfd, O_RDONLY);
	region[R_FPRIV] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, privfd, 0);
	make_file("shared.dat", len, NULL, &shfd, O_RDWR);
	region[R_FSHARED] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, shfd, 0);
	if (!region[R_HEAP] || region[R_ANON] == MAP_FAILED ||
	    region[R_SHANON] == MAP_FAILED || region[R_FPRIV] == MAP_FAILED ||
	    region[R_FSHARED] == MAP_FAILED)
		fail(-1, "allocate");
	close(privfd);	/* the mapping keeps priv.dat */
	make_file("input.dat", (size_t)steps * CHUNK, in_pat, &infd, O_RDONLY);
	snprintf(path, sizeof(path), "%s/log.txt", dir);
	logfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (logfd < 0)
		fail(-1, "log");

	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGTERM);
	if (sigaction(SIGUSR1, &sa, NULL))
		fail(-1, "sigaction");
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGRTMIN + 1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	syscall(SYS_tgkill, getpid(), gettid(), SIGUSR2);
	if (sigqueue(getpid(), SIGRTMIN + 1, v))
		fail(-1, "sigqueue");
}

static void check_signals(int step)
{
	struct sigaction sa;
	sigset_t set;

	if (usr1_count != step + 1)
		fail(step, "SIGUSR1 count");
	sigprocmask(SIG_BLOCK, NULL, &set);
	if (!sigismember(&set, SIGUSR2) || !sigismember(&set, SIGRTMIN + 1) ||
	    sigismember(&set, SIGUSR1))
		fail(step, "blocked mask");
	sigpending(&set);
	if (!sigismember(&set, SIGUSR2) || !sigismember(&set, SIGRTMIN + 1))
		fail(step, "pending signals");
	if (sigaction(SIGUSR1, NULL, &sa) || sa.sa_handler != on_usr1 ||
	    !(sa.sa_flags & SA_RESTART) || !sigismember(&sa.sa_mask, SIGTERM))
		fail(step, "SIGUSR1 action");
}

static void check_files(int step)
{
	unsigned char buf[CHUNK];
	char rec[32];
	char cwd[4096];
	struct stat st;
	mode_t m;
	int i;

	if (read(infd, buf, CHUNK) != CHUNK)
		fail(step, "input read");
	for (i = 0; i < CHUNK; i++)
		if (buf[i] != in_pat((size_t)step * CHUNK + i))
			fail(step, "input content");
	if (lseek(infd, 0, SEEK_CUR) != (off_t)(step + 1) * CHUNK)
		fail(step, "input offset");

	if (!(fcntl(logfd, F_GETFL) & O_APPEND))
		fail(step, "log lost O_APPEND");
	snprintf(rec, sizeof(rec), "log step %05d\n", step % 100000);
	if (write(logfd, rec, LOGREC) != LOGREC || fstat(logfd, &st))
		fail(step, "log write");
	if (st.st_size % LOGREC || lseek(logfd, 0, SEEK_CUR) != st.st_size)
		fail(step, "log size");

	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, dir))
		fail(step, "cwd");
	m = umask(027);
	if (m != 027)
		fail(step, "umask");
}

static void check_log_tail(int step)
{
	char path[4096], rec[32], last[LOGREC];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/log.txt", dir);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) || st.st_size < LOGREC ||
	    pread(fd, last, LOGREC, st.st_size - LOGREC) != LOGREC)
		fail(step, "log read");
	close(fd);
	snprintf(rec, sizeof(rec), "log step %05d\n", step % 100000);
	if (memcmp(rec, last, LOGREC))
		fail(step, "log tail");
}

static uint64_t sum_region(int r)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i, len = (size_t)steps * SLOT;

	for (i = 0; i < len; i++)
		h = (h ^ region[r][i]) * 1099511628211ULL;
	return h;
}

static void check_final(void)
{
	size_t len = (size_t)steps * SLOT, i;
	unsigned char *buf = malloc(len);
	siginfo_t si;
	sigset_t set;
	struct timespec zero = { 0, 0 };

	/* The private mapping's writes never reach the file, the shared ones do. */
	if (pread(shfd, buf, len, 0) != (ssize_t)len || memcmp(buf, region[R_FSHARED], len))
		fail(steps, "shared file content");
	snprintf((char *)buf, len, "%s/priv.dat", dir);
	privfd = open((char *)buf, O_RDONLY);
	if (privfd < 0 || pread(privfd, buf, len, 0) != (ssize_t)len)
		fail(steps, "private file read");
	for (i = 0; i < len; i++)
		if (buf[i] != base_pat(i))
			fail(steps, "private file changed");
	free(buf);

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	if (sigtimedwait(&set, &si, &zero) != SIGUSR2 || (si.si_code != SI_TKILL && si.si_code != SI_USER) ||
	    si.si_pid != getpid())
		fail(steps, "pending SIGUSR2 siginfo");
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 1);
	if (sigtimedwait(&set, &si, &zero) != SIGRTMIN + 1 || si.si_code != SI_QUEUE ||
	    si.si_value.sival_int != RT_VALUE || si.si_pid != getpid())
		fail(steps, "pending SIGRTMIN+1 siginfo");
	if (sigtimedwait(&set, &si, &zero) != -1)
		fail(steps, "signal queued twice");
}

int main(int argc, char **argv)
{
	int i, r;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--sleep-ms") && i + 1 < argc)
			sleep_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else
			dir = NULL, i = argc;
	}
	if (!dir || steps <= 0) {
		fprintf(stderr, "usage: memfile --dir DIR [--steps N] [--sleep-ms M]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	setup();
	printf("start\n");
	for (i = 0; i < steps; i++) {
		for (r = 0; r < NR_REGIONS; r++)
			fill(r, i);
		raise(SIGUSR1);
		stack_sum += recurse(0, i);
		check_regions(i);
		check_signals(i);
		check_files(i);
		check_log_tail(i);
		printf("step %d ok\n", i);
	}
	check_final();
	for (r = 0; r < NR_REGIONS; r++)
		printf("final %s %016llx\n", rname[r], (unsigned long long)sum_region(r));
	printf("final stack %016llx\n", (unsigned long long)stack_sum);
	printf("PASS\n");
	return 0;
}
