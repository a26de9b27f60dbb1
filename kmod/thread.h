/* SPDX-License-Identifier: GPL-2.0 */
/* Threads: per-thread registrations and state. */
#ifndef _AMBER_THREAD_H
#define _AMBER_THREAD_H

#include <linux/sched.h>
#include <linux/types.h>

#include "msg.h"

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

#endif /* _AMBER_THREAD_H */
