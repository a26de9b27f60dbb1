// SPDX-License-Identifier: GPL-2.0
/*
 * Threads: what each thread registered with the kernel (rseq, futex lists,
 * sigaltstack), and the per-thread state of the threads other than the
 * leader (comm, blocked mask, own pending signals).
 */
#include <linux/futex.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include "signal.h"
#include "task.h"
#include "thread.h"

/* 6.1 has no rseq_len; registration with a smaller struct is refused there. */
#define AMBER_RSEQ_LEN	32

/* A thread's registrations, read in its own context (or while it is parked). */
void amber_regn_capture(struct amber_regn *r, struct task_struct *tsk)
{
#ifdef CONFIG_RSEQ
	r->rseq = (unsigned long)tsk->rseq;
	r->rseq_sig = tsk->rseq_sig;
	r->rseq_len = tsk->rseq ? AMBER_RSEQ_LEN : 0;
#endif
	r->clear_child_tid = (unsigned long)tsk->clear_child_tid;
#ifdef CONFIG_FUTEX
	r->robust_list = (unsigned long)tsk->robust_list;
	r->robust_list_len = sizeof(struct robust_list_head);
#endif
	r->sas_sp = tsk->sas_ss_sp;
	r->sas_size = tsk->sas_ss_size;
	r->sas_flags = tsk->sas_ss_flags;
}

/*
 * A thread other than the leader: the process-wide parts (actions, shared
 * queue) are the leader's. The action table is filled and dropped: it costs
 * a copy of 64 entries, and keeps one path for the pending queues.
 */
int amber_thread_capture(struct amber_thread_state *st, struct amber_err *e)
{
	struct task_struct *tsk = current;
	struct amber_sig_state *sig;
	int err;

	sig = kzalloc(sizeof(*sig), GFP_KERNEL);
	if (!sig)
		return amber_fail(e, -ENOMEM, "out of memory for a thread's signals");
	err = amber_sig_capture_one(sig, false, e);
	st->blocked = sig->blocked;
	st->pending = sig->pending;
	st->nr_pending = sig->nr_pending;
	kfree(sig);
	if (err)
		return err;

	get_task_comm(st->comm, tsk);
	amber_regn_capture(&st->regn, tsk);
	return amber_seccomp_check(tsk, e);
}

void amber_thread_free(struct amber_thread_state *st)
{
	kfree(st->pending);
	st->pending = NULL;
	st->nr_pending = 0;
}
