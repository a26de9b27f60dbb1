// SPDX-License-Identifier: GPL-2.0
/*
 * Signals: the actions, the pending queues (private and shared) and the
 * blocked mask of current. A restore sets the blocked masks; the stub set
 * the actions and queued the pending signals itself.
 */
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/signal.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "restore.h"
#include "signal.h"

/* Keeps the SIGNALS nest of the reply under the 64 KiB an attribute can hold. */
#define AMBER_MAX_PENDING	256

static unsigned int amber_count_pending(struct sigpending *p)
{
	struct sigqueue *q;
	unsigned int n = 0;
	int sig;

	list_for_each_entry(q, &p->list, list)
		n++;
	/* Legacy signals with no queue entry get a minimal siginfo. */
	for (sig = 1; sig <= _NSIG; sig++)
		if (sigismember(&p->signal, sig))
			n++;
	return n;
}

static bool amber_sig_queued(struct sigpending *p, int sig)
{
	struct sigqueue *q;

	list_for_each_entry(q, &p->list, list)
		if (q->info.si_signo == sig)
			return true;
	return false;
}

static void amber_fill_pending(struct amber_sig_state *st, unsigned int max,
			       struct sigpending *p, bool shared)
{
	struct amber_sigpending *out;
	struct sigqueue *q;
	int sig;

	BUILD_BUG_ON(sizeof(kernel_siginfo_t) > AMBER_SIGINFO_SIZE);

	list_for_each_entry(q, &p->list, list) {
		if (WARN_ON_ONCE(st->nr_pending >= max))
			return;
		out = &st->pending[st->nr_pending++];
		memcpy(out->info, &q->info, sizeof(q->info));
		out->shared = shared;
	}
	for (sig = 1; sig <= _NSIG; sig++) {
		kernel_siginfo_t info;

		if (!sigismember(&p->signal, sig) || amber_sig_queued(p, sig))
			continue;
		if (WARN_ON_ONCE(st->nr_pending >= max))
			return;
		clear_siginfo(&info);
		info.si_signo = sig;
		info.si_code = SI_USER;
		out = &st->pending[st->nr_pending++];
		memcpy(out->info, &info, sizeof(info));
		out->shared = shared;
	}
}

static void amber_fill_actions(struct amber_sig_state *st)
{
	struct k_sigaction *ka = current->sighand->action;
	int i;

	for (i = 0; i < _NSIG; i++) {
		st->action[i].handler = (unsigned long)ka[i].sa.sa_handler;
		st->action[i].flags = ka[i].sa.sa_flags;
		st->action[i].restorer = (unsigned long)ka[i].sa.sa_restorer;
		st->action[i].mask = ka[i].sa.sa_mask.sig[0];
	}
}

/* Under siglock, with room for @max pending entries. */
static void amber_sig_fill(struct amber_sig_state *st, unsigned int max,
			   bool shared)
{
	lockdep_assert_held(&current->sighand->siglock);

	st->nr_pending = 0;
	amber_fill_pending(st, max, &current->pending, false);
	if (shared)
		amber_fill_pending(st, max, &current->signal->shared_pending, true);
	amber_fill_actions(st);
	/* Inside sigsuspend/ppoll/pselect the real mask is the saved one. */
	st->blocked = test_restore_sigmask() ? current->saved_sigmask.sig[0] :
					       current->blocked.sig[0];
}

/*
 * The queues can grow while the lock is dropped to allocate (other tasks
 * send signals), so the count is taken again under the lock and the
 * allocation retried a few times. The count is an upper bound (queued
 * entries plus pending bits).
 */
int amber_sig_capture_one(struct amber_sig_state *st, bool shared,
			  struct amber_err *e)
{
	struct sighand_struct *sighand = current->sighand;
	unsigned int cap = 16, n;
	int tries;

	BUILD_BUG_ON(_NSIG != 64);

	for (tries = 0; tries < 4; tries++) {
		st->pending = kcalloc(cap, sizeof(*st->pending), GFP_KERNEL);
		if (!st->pending)
			return amber_fail(e, -ENOMEM, "out of memory for pending signals");

		spin_lock_irq(&sighand->siglock);
		n = amber_count_pending(&current->pending) +
		    (shared ? amber_count_pending(&current->signal->shared_pending) : 0);
		if (n <= cap) {
			amber_sig_fill(st, cap, shared);
			spin_unlock_irq(&sighand->siglock);
			break;
		}
		spin_unlock_irq(&sighand->siglock);

		kfree(st->pending);
		st->pending = NULL;
		if (n > 2 * AMBER_MAX_PENDING)
			break;
		cap = n + 8;
	}
	if (!st->pending && n > 2 * AMBER_MAX_PENDING)
		return amber_fail(e, -E2BIG, "more than 256 pending signals are not supported");
	if (!st->pending)
		return amber_fail(e, -EAGAIN,
				  "pending signals kept changing during the checkpoint");
	if (st->nr_pending > AMBER_MAX_PENDING)
		return amber_fail(e, -E2BIG, "more than 256 pending signals are not supported");
	return 0;
}

int amber_sig_capture(struct amber_sig_state *st, struct amber_err *e)
{
	return amber_sig_capture_one(st, true, e);
}

void amber_sig_free(struct amber_sig_state *st)
{
	kfree(st->pending);
	st->pending = NULL;
	st->nr_pending = 0;
}

/* ---- restore ---- */

/* A blocked mask to restore: bit (signo - 1) of @m, never SIGKILL or SIGSTOP. */
void amber_restore_mask(sigset_t *set, const struct amber_nl_u64 *m)
{
	sigemptyset(set);
	set->sig[0] = m->val;
	sigdelsetmask(set, sigmask(SIGKILL) | sigmask(SIGSTOP));
}

/* AMBER_A_SIGNALS: only the blocked mask is ours (the stub set the rest). */
int amber_restore_signals_prepare(struct amber_restore *r)
{
	amber_restore_mask(&r->blocked, &r->args->sig.blocked);
	return 0;
}

int amber_restore_signals_commit(struct amber_restore *r)
{
	int err = sigprocmask(SIG_SETMASK, &r->blocked, NULL);

	if (err)
		amber_restore_err(r, r->args->sig.nla,
				  "setting the blocked mask failed (%d)", err);
	return err;
}
