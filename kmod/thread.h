/* SPDX-License-Identifier: GPL-2.0 */
/* Threads: per-thread registrations and state. */
#ifndef _AMBER_THREAD_H
#define _AMBER_THREAD_H

#include <linux/sched.h>
#include <linux/types.h>

#include "msg.h"
#include "restore_args.h"

struct amber_restore;
struct amber_rproc;
struct amber_sigpending;

/* What a thread registered with the kernel: rseq, futex lists, sigaltstack. */
struct amber_regn {
	u64 rseq;
	u32 rseq_len;
	u32 rseq_sig;
	u64 clear_child_tid;
	u64 robust_list;
	u64 robust_list_len;
	u64 sas_sp;
	u64 sas_size;
	u32 sas_flags;
};

/* State of one thread of current's thread group, other than the leader. */
struct amber_thread_state {
	char comm[TASK_COMM_LEN];
	u64 blocked;
	struct amber_sigpending *pending;	/* thread-directed only */
	unsigned int nr_pending;
	struct amber_regn regn;
};

/* A thread's registrations, read in its own context (or while it is parked). */
void amber_regn_capture(struct amber_regn *r, struct task_struct *tsk);
/* In the thread's own context: its comm, mask, own pending queue, registrations. */
int amber_thread_capture(struct amber_thread_state *st, struct amber_err *e);
void amber_thread_free(struct amber_thread_state *st);

/* A thread's registrations, validated for restore. */
struct amber_rregn {
	unsigned long rseq;
	u32 rseq_sig;
	unsigned long clear_child_tid;
	unsigned long robust_list;
	unsigned long sas_sp;
	size_t sas_size;
	u32 sas_flags;
};

int amber_rregn_prepare(struct amber_restore *r, const struct amber_regn_args *a,
			struct amber_rregn *t);
/* In the task's own context. */
void amber_rregn_commit(const struct amber_rregn *t);

/* Phase A: every AMBER_A_THREAD, in order, exactly the stub's other threads. */
int amber_restore_threads_prepare(struct amber_restore *r);
/*
 * Parks every other thread in the module before the point of no return.
 * On failure the caller sets AMBER_RP_ABORT: parked threads go back to
 * their system call unchanged, queued ones return as soon as they run.
 */
int amber_restore_threads_park(struct amber_restore *r);
/* Frees @p's threads (struct amber_rthread is thread.c's own). */
void amber_rthreads_free(struct amber_rproc *p);

#endif /* _AMBER_THREAD_H */
