/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The restore request lifecycle: turn the calling stub into the
 * checkpointed process.
 *
 * A restore request is validated completely into a struct amber_restore
 * (phase A) before anything of the caller is touched; only then are the
 * caller's memory, mm fields, task fields and credentials replaced
 * (phase B), and the registers are written by a task_work on the way out
 * of the system call (phase C). Each resource file validates and commits
 * its own part (mm_restore.c, regs.c, thread.c, task.c, creds.c, signal.c,
 * fdtable.c); this core holds what they share.
 */
#ifndef _AMBER_RESTORE_H
#define _AMBER_RESTORE_H

#include <linux/kref.h>
#include <linux/signal_types.h>
#include <linux/types.h>
#include <linux/wait.h>

#include "mm.h"
#include "restore_args.h"
#include "session.h"
#include "thread.h"

struct cred;
struct file;
struct netlink_ext_ack;
struct nlattr;

/* RESTORE: -errno with the reason in @extack, 0 once current is restored. */
int amber_restore(const struct amber_restore_args *args, struct netlink_ext_ack *extack);

/*
 * What happens to a restored process (leader and threads), under
 * amber_rprocs_lock; every change wakes @wq.
 */
enum amber_rproc_state {
	AMBER_RP_PARKING,	/* threads parking; leader validating or in phase B */
	AMBER_RP_ABORT,		/* refused before the point of no return: threads go on */
	AMBER_RP_KILL,		/* dies before any user instruction */
	AMBER_RP_HELD,		/* restored, waiting for RELEASE */
	AMBER_RP_RUN,		/* restored, runs */
};

struct amber_rthread;		/* thread.c's */

/*
 * A restore in progress or held, shared (refcounted) by the RESTORE doit,
 * the leader's register task_work and every thread's park task_work; each
 * task_work also pins the module. In the session registry from creation
 * to release.
 */
struct amber_rproc {
	struct kref ref;
	wait_queue_head_t wq;
	enum amber_rproc_state state;	/* under amber_rprocs_lock */
	unsigned int nr_parked;		/* under amber_rprocs_lock */

	struct amber_rthread *threads;
	unsigned int nr_threads;

	/* Hold: RELEASE must come from the session's socket for its pid. */
	struct amber_session session;	/* the RESTORE's socket, the leader */
	bool hold;
	bool orphan;			/* that socket closed, or module exit */
	unsigned long hold_deadline;	/* jiffies */

	/* Process-wide results of the leader's phase B, for the threads. */
	const struct cred *cred;	/* reference, NULL = threads keep theirs */
	int dumpable;			/* mm's SUID_DUMP_* after the leader's commit */
	bool has_personality;
	u32 personality;
	bool no_new_privs;
};

struct amber_restore_work;

struct amber_restore {
	const struct amber_restore_args *args;
	struct netlink_ext_ack *extack;
	/* Nonzero while a thread is validated: extack messages name it. */
	pid_t err_tid;

	struct amber_rproc *proc;
	u32 flags;			/* enum amber_restore_flags */

	/* VMAs, sorted ascending, non-overlapping. */
	struct amber_rvma *vmas;
	unsigned int nr_vmas;

	/* Where current's vvar and vDSO are (and stay). */
	unsigned long vvar_start, vvar_end;
	unsigned long vdso_start, vdso_end;

	/* Pages files, oldest first; the last is the checkpoint restored. */
	struct file **page_files;
	const struct nlattr **page_nlas;
	unsigned int nr_page_files;

	struct amber_rmm mm;

	/* New mm->exe_file, write access already denied; NULL = keep. */
	struct file *exe;

	/* Task fields. */
	struct amber_rregn t;
	bool has_personality;
	u32 personality;
	u32 dumpable;			/* SUID_DUMP_*, from the image */
	bool no_new_privs;
	sigset_t blocked;

	/* Credentials to commit, or NULL to keep the caller's. */
	struct cred *cred;
	bool cred_changed;		/* committed in phase B */

	/* Stub helper fds closed on success. */
	int *close_fds;
	unsigned int nr_close_fds;

	/* Registers and xstate, written on the way back to user mode. */
	struct amber_restore_work *work;
};

/* A refusal's message (naming r->err_tid's thread, if set), at @nla. */
__printf(3, 4)
void amber_restore_err(struct amber_restore *r, const struct nlattr *nla,
		       const char *fmt, ...);

/* The shared state of one restore, and the verdict its threads wait for. */
struct amber_rproc *amber_rproc_new(u32 portid, const struct net *net);
void amber_rproc_get(struct amber_rproc *p);
void amber_rproc_put(struct amber_rproc *p);
/* Decide the fate of the threads and the hold (wakes everybody). */
void amber_rproc_set_state(struct amber_rproc *p, enum amber_rproc_state state);
/* After a successful phase B: hold (if asked) and let the threads go. */
void amber_rproc_restored(struct amber_restore *r);
/*
 * In a restored task (leader or thread), before its first user
 * instruction: wait while held. Returns false if it must die instead.
 */
bool amber_rproc_wait_release(struct amber_rproc *p);
/* In a thread's park task_work: count it arrived, setting its @flag. */
void amber_rproc_thread_parked(struct amber_rproc *p, bool *flag);
/* In a parked thread: wait for the leader's verdict (GO = HELD or RUN). */
enum amber_rproc_state amber_rproc_wait_verdict(struct amber_rproc *p);

#endif /* _AMBER_RESTORE_H */
