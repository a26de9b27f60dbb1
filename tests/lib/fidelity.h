/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fidelity check: a snapshot of the observable kernel state of a set of
 * processes, read from /proc, taken before a checkpoint and compared with
 * one taken after the restore. Any state amber captures but does not
 * restore shows up as a line naming the pid (and tid), the /proc file and
 * the field:
 *
 *   pid 812: smaps 7f12a000-7f13a000: VmFlags: before "rd wr mr mw me ac sr",
 *   after "rd wr mr mw me ac"
 *
 * What is compared, per process (every process of a tree, PIDs are the
 * same after a restore):
 *   maps	per VMA (keyed by its range; [heap] and [stack] by name, with
 *		their start and end as fields; fid_expect patterns are
 *		fnmatch() patterns: write "maps \\[heap\\]: end"): perms, offset,
 *		path
 *   smaps	per VMA: VmFlags (without "sd", see below)
 *   fd		the link target of every fd; pipe:[N] and socket:[N] are
 *		renamed pipe:#1, socket:#2... in order of first appearance
 *		(processes in the given order, fds ascending), so what is
 *		compared is the sharing pattern of those inodes across fds and
 *		processes, not the numbers (they change on restore)
 *   fdinfo	of every fd: pos, flags, mnt_id, ino (renamed as above for
 *		pipes, sockets and unlinked files or memfds, "... (deleted)",
 *		which get a new inode on restore), eventfd-count, eventfd-id
 *		(renamed eventfd:#N like inodes: a new id on restore); timerfd
 *		clockid, settime flags, it_interval, and whether
 *		it_value is armed; epoll "tfd N" lines (events, data, pos, ino
 *		renamed); "inotify wd N" lines; signalfd sigmask; any other
 *		"key: value" line as is
 *   timers	every POSIX timer: ID, signal, notify, ClockID
 *   status	Umask, Uid, Gid, Groups, NoNewPrivs, Seccomp, SigPnd, ShdPnd,
 *		SigBlk, SigIgn, SigCgt, CapInh, CapPrm, CapEff, CapBnd, CapAmb,
 *		Threads
 *   limits	every limit (soft, hard)
 *   personality, cwd, root, exe, comm
 *   stat	pgrp, session, tty_nr, priority, nice, num_threads,
 *		rt_priority, policy
 *   sched	policy, prio
 *   task/TID	per thread: status SigBlk, SigPnd, and comm
 *
 * Deliberately ignored, and why:
 *   - times, counters and sizes (stat utime/stime/minflt/..., status
 *     VmRSS/ctxt switches, smaps Rss/Pss/..., sched statistics, timerfd
 *     ticks): they move while the process runs, whether restored or not;
 *   - stat state and ppid, status State/PPid/TracerPid: a running process
 *     changes state by itself, and a restored root has amber restore (or
 *     the subreaper) as its parent (tree_test checks the parents);
 *   - "sd" (soft-dirty) in VmFlags: amber's own dirty-page tracking clears
 *     it; it is not the workload's state;
 *   - maps dev and inode: an anonymous shared mapping, a memfd or a SysV
 *     segment gets a new inode on restore; the path still names it;
 *   - the boundary between two neighbouring VMAs that mmap() would merge
 *     (same perms, path, VmFlags, contiguous file offsets): only different
 *     anon_vmas keep such VMAs apart (a thread stack carved out of a larger
 *     mapping, pages written before a split), which a restore that maps
 *     each VMA fresh does not reproduce and a program cannot observe but
 *     through /proc; both snapshots fold such a pair into one VMA;
 *   - timerfd it_value beyond armed/disarmed: the remaining time runs;
 *   - fdinfo "lock:" lines: they hold a global lock id.
 * A test names fields it expects to change with struct fid_expect (a
 * reason string is required and printed), e.g. the pos of an fd its
 * workload keeps writing while the snapshots are taken; such differences
 * are logged, never silently dropped.
 *
 * Stability: the processes keep running between the snapshot before the
 * checkpoint and the one after the restore. fid_wait_same() polls the
 * restored processes until their state equals the snapshot (but the
 * expected fields) or a timeout passes, then returns the last difference:
 * a restore in progress does not make a diff, a field that is never
 * restored does.
 */
#ifndef AMBER_FIDELITY_H
#define AMBER_FIDELITY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct fid_item {
	char *who;	/* "pid 812" or "pid 812 tid 813" */
	char *file;	/* "status", "smaps 7f12a000-7f13a000", "fdinfo 3" */
	char *field;	/* "SigBlk", "VmFlags", "pos" */
	char *value;
};

#define FID_MAXP	64

struct fid_snap {
	pid_t pids[FID_MAXP];	/* in the order given (parents first) */
	int npids;
	struct fid_item *v;
	size_t n, cap;
};

/*
 * A field a test expects to change: what is a glob (fnmatch) on
 * "FILE: FIELD", e.g. "fdinfo 1: pos", "smaps *: VmFlags", "timers*".
 * Arrays of them end with { NULL, NULL }.
 */
struct fid_expect {
	const char *what;
	const char *reason;
};

/*
 * Rows for the tests' fid_expect arrays. A one-process checkpoint (no
 * --tree) is restored in amber restore's group and session, by design.
 */
#define FID_EXPECT_ONE_PROCESS						\
	{ "stat: pgrp", "a one-process checkpoint (no --tree) is restored in "	\
	  "amber restore's group and session, by design" },			\
	{ "stat: session", "the same" }

/* Snapshot of the given processes (and all their threads); NULL on ENOMEM. */
struct fid_snap *fid_snap_pids(const pid_t *pids, int n);
/* Snapshot of root and all its descendants (tree_pids() order). */
struct fid_snap *fid_snap_tree(pid_t root);
/* A new snapshot of the same processes as s. */
struct fid_snap *fid_resnap(const struct fid_snap *s);
void fid_free(struct fid_snap *s);

/*
 * Differences between before and after, one line each, malloc'ed; NULL when
 * there are none. Differences on expected fields go to *expected (if not
 * NULL, malloc'ed or NULL), each with its reason.
 */
char *fid_diff(const struct fid_snap *before, const struct fid_snap *after,
	       const struct fid_expect *exp, char **expected);

/*
 * Snapshot the processes of before until they match it (fid_diff() is
 * NULL) or timeout_ms passes; the last difference, NULL when they matched.
 */
char *fid_wait_same(const struct fid_snap *before, const struct fid_expect *exp,
		    int timeout_ms, char **expected);

/* A line of the snapshot, for the helper's own test; NULL if none. */
const char *fid_value(const struct fid_snap *s, pid_t pid, const char *file,
		      const char *field);

/*
 * In a kselftest TEST: the processes of before are restored with the same
 * state (but exp); logs the expected differences with their reasons.
 */
#define EXPECT_FIDELITY(before, exp, timeout_ms) do {				\
	char *_fexp = NULL;							\
	char *_fd = fid_wait_same((before), (exp), (timeout_ms), &_fexp);	\
										\
	if (_fexp)								\
		TH_LOG("fidelity: expected differences:\n%s", _fexp);		\
	EXPECT_TRUE(_fd == NULL) TH_LOG("fidelity: restored state differs:\n%s", _fd); \
	free(_fd);								\
	free(_fexp);								\
} while (0)

#endif /* AMBER_FIDELITY_H */
