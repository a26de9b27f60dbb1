// SPDX-License-Identifier: GPL-2.0
/*
 * Restore: the shared state of one restore (struct amber_rproc), the
 * verdict its parked threads wait for, and AMBER_RESTORE_F_HOLD.
 *
 * A held process (the leader in its register task_work, every thread in
 * its park task_work) waits before its first user instruction until
 * RELEASE from the socket that sent the RESTORE: RESUME runs it, KILL kills
 * it. A process still held when that socket closes, after
 * AMBER_RESTORE_HOLD_MAX_MS, or at module exit is killed: a tree restore is
 * all or nothing. Every wait is killable and bounded.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/jiffies.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <net/genetlink.h>

#include "restore.h"

/*
 * The longest a parked thread waits for the leader's verdict (the leader
 * is filling memory from the pages files meanwhile); after that it kills
 * the process rather than wait for ever.
 */
#define AMBER_RESTORE_VERDICT_MAX_MS	(30 * 60 * 1000)

/*
 * amber_rprocs_lock protects the state, nr_parked, parked/exited flags of their threads and the hold
 * fields (hold, orphan, hold_deadline). A mutex: every user may sleep (the
 * session callbacks run under the registry's mutex, taken before this one).
 */
static DEFINE_MUTEX(amber_rprocs_lock);

static const struct amber_session_ops amber_rproc_session_ops;

/* The restore of current, sent from the socket (@portid, @net). */
struct amber_rproc *amber_rproc_new(u32 portid, const struct net *net)
{
	struct amber_rproc *p = kzalloc(sizeof(*p), GFP_KERNEL);
	int err;

	if (!p)
		return ERR_PTR(-ENOMEM);
	kref_init(&p->ref);
	init_waitqueue_head(&p->wq);
	p->state = AMBER_RP_PARKING;
	err = amber_session_add(&p->session, &amber_rproc_session_ops,
				AMBER_SESSION_RESTORE, task_pid(current), portid, net);
	if (err) {
		kfree(p);
		return ERR_PTR(err);
	}
	return p;
}

void amber_rproc_get(struct amber_rproc *p)
{
	kref_get(&p->ref);
}

static void amber_rproc_release(struct kref *ref)
{
	struct amber_rproc *p = container_of(ref, struct amber_rproc, ref);
	unsigned int i;

	for (i = 0; i < p->nr_threads; i++)
		amber_rthread_free(&p->threads[i]);
	kvfree(p->threads);
	if (p->cred)
		put_cred(p->cred);
	/* Last: module exit waits for every session to be gone. */
	amber_session_del(&p->session);
	kfree(p);
}

void amber_rproc_put(struct amber_rproc *p)
{
	kref_put(&p->ref, amber_rproc_release);
}

static void amber_rproc_set_state_locked(struct amber_rproc *p, enum amber_rproc_state state)
{
	lockdep_assert_held(&amber_rprocs_lock);
	p->state = state;
	wake_up_all(&p->wq);
}

void amber_rproc_set_state(struct amber_rproc *p, enum amber_rproc_state state)
{
	mutex_lock(&amber_rprocs_lock);
	amber_rproc_set_state_locked(p, state);
	mutex_unlock(&amber_rprocs_lock);
}

/* After a successful phase B, in the leader (still in the RESTORE doit). */
void amber_rproc_restored(struct amber_restore *r)
{
	struct amber_rproc *p = r->proc;
	enum amber_rproc_state state = AMBER_RP_RUN;

	mutex_lock(&amber_rprocs_lock);
	if (r->flags & AMBER_RESTORE_F_HOLD) {
		p->hold = true;
		p->hold_deadline = jiffies + msecs_to_jiffies(AMBER_RESTORE_HOLD_MAX_MS);
		/* Nobody is left to release it if the socket closed meanwhile. */
		state = p->orphan ? AMBER_RP_KILL : AMBER_RP_HELD;
	}
	amber_rproc_set_state_locked(p, state);
	mutex_unlock(&amber_rprocs_lock);
}

/*
 * The state, read under the lock: whatever the leader wrote before it set
 * the state (credentials, dumpable mode, hold fields) is visible after.
 */
static enum amber_rproc_state amber_rproc_state(struct amber_rproc *p)
{
	enum amber_rproc_state state;

	mutex_lock(&amber_rprocs_lock);
	state = p->state;
	mutex_unlock(&amber_rprocs_lock);
	return state;
}

void amber_rproc_thread_parked(struct amber_rproc *p, struct amber_rthread *t, bool exited)
{
	mutex_lock(&amber_rprocs_lock);
	if (exited)
		WRITE_ONCE(t->exited, true);
	else
		WRITE_ONCE(t->parked, true);
	WRITE_ONCE(p->nr_parked, p->nr_parked + 1);
	wake_up_all(&p->wq);
	mutex_unlock(&amber_rprocs_lock);
}

enum amber_rproc_state amber_rproc_wait_verdict(struct amber_rproc *p)
{
	long left;

	left = wait_event_killable_timeout(p->wq, READ_ONCE(p->state) != AMBER_RP_PARKING,
					   msecs_to_jiffies(AMBER_RESTORE_VERDICT_MAX_MS));
	if (left < 0)
		return AMBER_RP_KILL;	/* the process is being killed */
	if (!left) {
		pr_warn("pid %d: restore did not finish within %u ms, killing it\n",
			task_tgid_nr(current), AMBER_RESTORE_VERDICT_MAX_MS);
		return AMBER_RP_KILL;
	}
	return amber_rproc_state(p);
}

bool amber_rproc_wait_release(struct amber_rproc *p)
{
	enum amber_rproc_state state;
	unsigned long deadline;

	mutex_lock(&amber_rprocs_lock);
	deadline = p->hold_deadline;
	mutex_unlock(&amber_rprocs_lock);
	for (;;) {
		long left;

		state = amber_rproc_state(p);
		if (state != AMBER_RP_HELD)
			break;
		left = (long)(deadline - jiffies);
		if (left <= 0) {
			mutex_lock(&amber_rprocs_lock);
			if (p->state == AMBER_RP_HELD) {
				pr_warn("pid %d: restore hold timed out after %u ms, killing it\n",
					task_tgid_nr(current), AMBER_RESTORE_HOLD_MAX_MS);
				amber_rproc_set_state_locked(p, AMBER_RP_KILL);
			}
			mutex_unlock(&amber_rprocs_lock);
			continue;
		}
		if (wait_event_killable_timeout(p->wq, READ_ONCE(p->state) != AMBER_RP_HELD,
						left) < 0)
			return false;	/* the process is being killed */
	}
	return state == AMBER_RP_RUN;
}

/* RELEASE from the RESTORE's socket: a held process runs or is killed. */
static int amber_rproc_session_release(struct amber_session *s, u32 action)
{
	struct amber_rproc *p = container_of(s, struct amber_rproc, session);
	int err = -ESRCH;

	mutex_lock(&amber_rprocs_lock);
	if (p->state == AMBER_RP_HELD) {
		amber_rproc_set_state_locked(p, action == AMBER_RELEASE_RESUME ?
					     AMBER_RP_RUN : AMBER_RP_KILL);
		err = 0;
	}
	mutex_unlock(&amber_rprocs_lock);
	return err;
}

/* The RESTORE's socket closed: a held process is killed, a later hold too. */
static void amber_rproc_session_sock_gone(struct amber_session *s)
{
	struct amber_rproc *p = container_of(s, struct amber_rproc, session);

	mutex_lock(&amber_rprocs_lock);
	p->orphan = true;
	if (p->state == AMBER_RP_HELD)
		amber_rproc_set_state_locked(p, AMBER_RP_KILL);
	mutex_unlock(&amber_rprocs_lock);
}

/* Module exit: whatever is held or still parking is killed. */
static void amber_rproc_session_exit(struct amber_session *s)
{
	struct amber_rproc *p = container_of(s, struct amber_rproc, session);

	mutex_lock(&amber_rprocs_lock);
	p->orphan = true;
	if (p->state == AMBER_RP_HELD || p->state == AMBER_RP_PARKING)
		amber_rproc_set_state_locked(p, AMBER_RP_KILL);
	mutex_unlock(&amber_rprocs_lock);
}

static const struct amber_session_ops amber_rproc_session_ops = {
	.release	= amber_rproc_session_release,
	.sock_gone	= amber_rproc_session_sock_gone,
	.exit		= amber_rproc_session_exit,
};
