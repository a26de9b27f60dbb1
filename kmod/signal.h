/* SPDX-License-Identifier: GPL-2.0 */
/* Signals: actions, pending queues, blocked masks. */
#ifndef _AMBER_SIGNAL_H
#define _AMBER_SIGNAL_H

#include <linux/signal_types.h>
#include <linux/types.h>

#include "msg.h"

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

/* current's actions, mask and pending signals, the shared queue with @shared. */
int amber_sig_capture_one(struct amber_sig_state *st, bool shared,
			  struct amber_err *e);
int amber_sig_capture(struct amber_sig_state *st, struct amber_err *e);
void amber_sig_free(struct amber_sig_state *st);

struct amber_restore;
struct amber_nl_u64;

void amber_restore_mask(sigset_t *set, const struct amber_nl_u64 *m);
/* Phase A and B: the leader's blocked mask. */
int amber_restore_signals_prepare(struct amber_restore *r);
int amber_restore_signals_commit(struct amber_restore *r);

#endif /* _AMBER_SIGNAL_H */
