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
#include <linux/netlink.h>
#include <linux/notifier.h>
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
 * amber_rprocs_lock protects the list of live restores (amber_rprocs), the
 * state, nr_parked, parked/exited flags of their threads, the hold fields
 * (pid, portid, net, sock_gone) and amber_rprocs_exiting. A mutex: every
 * user may sleep (the netlink notifier runs from a blocking chain).
 */
static DEFINE_MUTEX(amber_rprocs_lock);
static LIST_HEAD(amber_rprocs);
static bool amber_rprocs_exiting;

/* Restores not yet freed; module exit waits for zero. */
static atomic_t amber_nr_rprocs = ATOMIC_INIT(0);
static DECLARE_WAIT_QUEUE_HEAD(amber_rprocs_wq);

struct amber_rproc *amber_rproc_new(struct genl_info *info)
{
	struct amber_rproc *p = kzalloc(sizeof(*p), GFP_KERNEL);

	if (!p)
		return NULL;
	kref_init(&p->ref);
	init_waitqueue_head(&p->wq);
	p->state = AMBER_RP_PARKING;
	p->portid = info->snd_portid;
	p->net = genl_info_net(info);
	atomic_inc(&amber_nr_rprocs);
	mutex_lock(&amber_rprocs_lock);
	list_add_tail(&p->node, &amber_rprocs);
	mutex_unlock(&amber_rprocs_lock);
	return p;
}

void amber_rproc_get(struct amber_rproc *p)
{
	kref_get(&p->ref);
}

/* kref release, called with amber_rprocs_lock held (kref_put_mutex). */
static void amber_rproc_release(struct kref *ref)
	__releases(&amber_rprocs_lock)
{
	struct amber_rproc *p = container_of(ref, struct amber_rproc, ref);
	unsigned int i;

	lockdep_assert_held(&amber_rprocs_lock);
	list_del(&p->node);
	mutex_unlock(&amber_rprocs_lock);

	for (i = 0; i < p->nr_threads; i++)
		amber_rthread_free(&p->threads[i]);
	kvfree(p->threads);
	if (p->cred)
		put_cred(p->cred);
	put_pid(p->pid);
	kfree(p);

	if (atomic_dec_and_test(&amber_nr_rprocs))
		wake_up_all(&amber_rprocs_wq);
}

void amber_rproc_put(struct amber_rproc *p)
{
	kref_put_mutex(&p->ref, amber_rproc_release, &amber_rprocs_lock);
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
		p->pid = get_task_pid(current, PIDTYPE_PID);
		p->hold_deadline = jiffies + msecs_to_jiffies(AMBER_RESTORE_HOLD_MAX_MS);
		/* Nobody is left to release it if the socket closed meanwhile. */
		state = amber_rprocs_exiting || p->sock_gone ? AMBER_RP_KILL : AMBER_RP_HELD;
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

int amber_restore_release(pid_t pid, u32 portid, const struct net *net, u32 action)
{
	struct amber_rproc *p;
	struct pid *want;
	int err = -ESRCH;

	rcu_read_lock();
	want = get_pid(find_vpid(pid));
	rcu_read_unlock();
	if (!want)
		return -ESRCH;

	mutex_lock(&amber_rprocs_lock);
	list_for_each_entry(p, &amber_rprocs, node) {
		if (p->state != AMBER_RP_HELD || p->pid != want || p->portid != portid ||
		    p->net != net)
			continue;
		amber_rproc_set_state_locked(p, action == AMBER_RELEASE_RESUME ?
					     AMBER_RP_RUN : AMBER_RP_KILL);
		err = 0;
		break;
	}
	mutex_unlock(&amber_rprocs_lock);
	put_pid(want);
	return err;
}

/* Kills the restores held for a generic netlink socket that is closing. */
static int amber_restore_netlink_event(struct notifier_block *nb, unsigned long event,
				       void *ptr)
{
	struct netlink_notify *n = ptr;
	struct amber_rproc *p;

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC || !n->portid)
		return NOTIFY_DONE;

	mutex_lock(&amber_rprocs_lock);
	list_for_each_entry(p, &amber_rprocs, node) {
		if (p->portid != n->portid || p->net != n->net)
			continue;
		p->sock_gone = true;
		if (p->state == AMBER_RP_HELD)
			amber_rproc_set_state_locked(p, AMBER_RP_KILL);
	}
	mutex_unlock(&amber_rprocs_lock);
	return NOTIFY_DONE;
}

static struct notifier_block amber_restore_netlink_nb = {
	.notifier_call = amber_restore_netlink_event,
};

int amber_restore_init(void)
{
	return netlink_register_notifier(&amber_restore_netlink_nb);
}

/*
 * Called after the family is unregistered, so no RESTORE doit is left.
 * Every task_work of a restore pins the module, so normally nothing is
 * live here; this still kills whatever is held and waits for all of them,
 * so the module never leaves a task parked or pointing into freed text.
 */
void amber_restore_exit(void)
{
	struct amber_rproc *p;

	netlink_unregister_notifier(&amber_restore_netlink_nb);

	mutex_lock(&amber_rprocs_lock);
	amber_rprocs_exiting = true;
	list_for_each_entry(p, &amber_rprocs, node) {
		if (p->state == AMBER_RP_HELD || p->state == AMBER_RP_PARKING)
			amber_rproc_set_state_locked(p, AMBER_RP_KILL);
	}
	mutex_unlock(&amber_rprocs_lock);

	wait_event(amber_rprocs_wq, !atomic_read(&amber_nr_rprocs));
}
