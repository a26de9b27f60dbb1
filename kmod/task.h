/* SPDX-License-Identifier: GPL-2.0 */
/* Task state: identity, credentials, limits, signals. */
#ifndef _AMBER_TASK_H
#define _AMBER_TASK_H

#include <linux/resource.h>
#include <linux/sched.h>
#include <linux/signal.h>

#include "msg.h"

struct cred;

/* What a thread registered with the kernel: rseq, futex lists, sigaltstack. */
struct amber_task_regn {
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

struct amber_task_state {
	char comm[TASK_COMM_LEN];
	const struct cred *cred;	/* reference; mapped to the caller's userns in the reply */
	u32 umask;
	u32 personality;
	char *cwd;
	struct rlimit rlim[RLIM_NLIMITS];
	struct amber_task_regn regn;
	char *exe;
	u64 start_time_ns;
	u32 dumpable;			/* SUID_DUMP_* */
	u32 no_new_privs;
};

#define AMBER_SIGINFO_SIZE	128	/* sizeof(siginfo_t) in user space */

struct amber_sigaction {
	u64 handler;
	u64 flags;
	u64 restorer;
	u64 mask;
};

struct amber_sigpending {
	u8 info[AMBER_SIGINFO_SIZE];	/* user siginfo_t layout */
	bool shared;			/* signal->shared_pending */
};

struct amber_sig_state {
	u64 blocked;
	struct amber_sigaction action[_NSIG];	/* index signo - 1 */
	struct amber_sigpending *pending;
	unsigned int nr_pending;
};

/* State of one thread of current's thread group, other than the leader. */
struct amber_thread_state {
	char comm[TASK_COMM_LEN];
	u64 blocked;
	struct amber_sigpending *pending;	/* thread-directed only */
	unsigned int nr_pending;
	struct amber_task_regn regn;
};

int amber_task_capture(struct amber_task_state *st, struct amber_err *e);
void amber_task_free(struct amber_task_state *st);
int amber_sig_capture(struct amber_sig_state *st, struct amber_err *e);
void amber_sig_free(struct amber_sig_state *st);
/* In the thread's own context: its comm, mask, own pending queue, registrations. */
int amber_thread_capture(struct amber_thread_state *st, struct amber_err *e);
void amber_thread_free(struct amber_thread_state *st);

#endif /* _AMBER_TASK_H */
