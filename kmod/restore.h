/* SPDX-License-Identifier: GPL-2.0 */
/* Restore: turn the calling stub into the checkpointed process. */
#ifndef _AMBER_RESTORE_H
#define _AMBER_RESTORE_H

#include <net/genetlink.h>
#include <linux/amber.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mm_types.h>
#include <linux/sched.h>
#include <linux/signal_types.h>
#include <linux/wait.h>

#include "session.h"

extern const struct nla_policy amber_restore_policy[AMBER_A_MAX + 1];

int amber_nl_restore_doit(struct sk_buff *skb, struct genl_info *info);

/*
 * Everything below is private to restore*.c.
 *
 * A restore request is validated completely into a struct amber_restore
 * (phase A) before anything of the caller is touched; only then are the
 * caller's memory, mm fields, task fields and credentials replaced
 * (phase B), and the registers are written by a task_work on the way out
 * of the system call (phase C).
 */

/* One VMA of the image, validated. */
struct amber_rvma {
	unsigned long start;
	unsigned long end;
	unsigned long pgoff;
	u32 prot;			/* PROT_* */
	u32 flags;			/* enum amber_vma_flags */
	struct file *file;		/* from AMBER_VMA_FILE_FD, or NULL */
	const struct nlattr *nla;	/* AMBER_A_VMA, for extack */
};

/* mm layout fields (AMBER_A_MM), validated like prctl(PR_SET_MM_MAP). */
struct amber_rmm {
	bool present;
	unsigned long start_code, end_code, start_data, end_data;
	unsigned long start_brk, brk, start_stack;
	unsigned long arg_start, arg_end, env_start, env_end;
	unsigned int auxv_len;		/* bytes, 0 = keep */
	unsigned long auxv[AT_VECTOR_SIZE];
};

/* User registers and xstate of one thread, validated (restore_regs.c). */
struct amber_rregs {
	u64 regs[AMBER_REG_MAX + 1];	/* indexed by enum amber_reg */
	void *xsave;			/* UABI layout, NULL = keep */
};

/* Per-task fields every thread has, validated (restore.c). */
struct amber_rtask {
	unsigned long rseq;
	u32 rseq_sig;
	unsigned long clear_child_tid;
	unsigned long robust_list;
	unsigned long sas_sp;
	size_t sas_size;
	u32 sas_flags;
};

struct amber_rproc;

/* One thread other than the leader (AMBER_A_THREAD), validated. */
struct amber_rthread {
	struct callback_head twork;	/* parks the thread (TWA_SIGNAL) */
	struct amber_rproc *proc;
	struct task_struct *task;	/* reference */
	pid_t tid;
	bool parked;			/* under amber_rprocs_lock */
	bool exited;			/* reached its park point exiting */
	struct amber_rregs regs;
	struct amber_rtask t;
	sigset_t blocked;
	bool has_comm;
	char comm[TASK_COMM_LEN];
};

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
	struct genl_info *info;
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
	struct amber_rtask t;
	bool has_personality;
	u32 personality;
	u32 dumpable;			/* SUID_DUMP_*, from the image */
	bool no_new_privs;
	bool has_blocked;
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

/* restore.c */
__printf(3, 4)
void amber_restore_err(struct amber_restore *r, const struct nlattr *nla,
		       const char *fmt, ...);

/* The attributes of one task's per-task fields (TASK or THREAD numbering). */
struct amber_rtask_attrs {
	const struct nlattr *rseq, *rseq_len, *rseq_sig;
	const struct nlattr *clear_child_tid, *robust_list, *robust_list_len;
	const struct nlattr *sas_sp, *sas_size, *sas_flags;
	const struct nlattr *parent;	/* TASK or THREAD, for extack */
};

int amber_rtask_prepare(struct amber_restore *r, const struct amber_rtask_attrs *a,
			struct amber_rtask *t);
void amber_rtask_commit(const struct amber_rtask *t);

/* restore_mm.c */
int amber_restore_vmas_prepare(struct amber_restore *r);
int amber_restore_mm_prepare(struct amber_restore *r, const struct nlattr *attr);
int amber_restore_files_prepare(struct amber_restore *r);
void amber_restore_mm_release(struct amber_restore *r);
int amber_restore_map(struct amber_restore *r);
int amber_restore_pages_prepare(struct amber_restore *r);
int amber_restore_pages(struct amber_restore *r);
void amber_restore_mm_commit(struct amber_restore *r);

/* restore_regs.c */
int amber_rregs_prepare(struct amber_restore *r, const struct nlattr *regs,
			const struct nlattr *fpu, struct amber_rregs *out);
void amber_rregs_free(struct amber_rregs *rr);
void amber_rregs_write(const struct amber_rregs *rr);
int amber_restore_regs_prepare(struct amber_restore *r);
void amber_restore_regs_release(struct amber_restore *r);
int amber_restore_regs_queue(struct amber_restore *r);

/* restore_threads.c */
int amber_restore_threads_prepare(struct amber_restore *r);
int amber_restore_threads_park(struct amber_restore *r);
void amber_rthread_free(struct amber_rthread *t);
void amber_rthread_work(struct callback_head *head);

/* restore_hold.c */
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
/* In a thread's park task_work: count it parked (or exited). */
void amber_rproc_thread_parked(struct amber_rproc *p, struct amber_rthread *t, bool exited);
/* In a parked thread: wait for the leader's verdict (GO = HELD or RUN). */
enum amber_rproc_state amber_rproc_wait_verdict(struct amber_rproc *p);

#endif /* _AMBER_RESTORE_H */
