// SPDX-License-Identifier: GPL-2.0
/*
 * The session registry. A checkpoint registers its request for its whole
 * life, a restore its process; RELEASE, the requesting socket closing and
 * module exit reach every held process through here, whatever its kind.
 * Each kind keeps its own guarantees in its callbacks: a checkpoint's group
 * resumes, a held restore is killed (see checkpoint.c and restore.c).
 */
#include <linux/mutex.h>
#include <linux/netlink.h>
#include <linux/notifier.h>
#include <linux/pid.h>
#include <linux/rcupdate.h>
#include <linux/wait.h>

#include "session.h"

/*
 * amber_sessions_lock protects amber_sessions and amber_sessions_exiting.
 * A mutex: the callbacks sleep on the owners' mutexes, and the netlink
 * notifier runs from a blocking chain.
 */
static DEFINE_MUTEX(amber_sessions_lock);
static LIST_HEAD(amber_sessions);
static bool amber_sessions_exiting;
/* Module exit waits here for the list to empty. */
static DECLARE_WAIT_QUEUE_HEAD(amber_sessions_wq);

int amber_session_add(struct amber_session *s, const struct amber_session_ops *ops,
		      enum amber_session_kind kind, struct pid *pid, u32 portid,
		      const struct net *net)
{
	int err = 0;

	s->ops = ops;
	s->kind = kind;
	s->pid = get_pid(pid);
	s->portid = portid;
	s->net = net;
	mutex_lock(&amber_sessions_lock);
	if (amber_sessions_exiting)
		err = -ENODEV;
	else
		list_add_tail(&s->node, &amber_sessions);
	mutex_unlock(&amber_sessions_lock);
	if (err) {
		put_pid(s->pid);
		s->pid = NULL;
		INIT_LIST_HEAD(&s->node);
	}
	return err;
}

void amber_session_del(struct amber_session *s)
{
	mutex_lock(&amber_sessions_lock);
	list_del_init(&s->node);
	if (list_empty(&amber_sessions))
		wake_up_all(&amber_sessions_wq);
	mutex_unlock(&amber_sessions_lock);
	put_pid(s->pid);
	s->pid = NULL;
}

int amber_session_release(pid_t pid, u32 portid, const struct net *net, u32 action)
{
	struct amber_session *s;
	struct pid *want;
	int err = -ESRCH;

	rcu_read_lock();
	want = get_pid(find_vpid(pid));
	rcu_read_unlock();
	if (!want)
		return -ESRCH;

	mutex_lock(&amber_sessions_lock);
	list_for_each_entry(s, &amber_sessions, node) {
		if (s->pid != want || s->portid != portid || s->net != net)
			continue;
		err = s->ops->release(s, action);
		if (!err)
			break;
	}
	mutex_unlock(&amber_sessions_lock);
	put_pid(want);
	return err;
}

/* A generic netlink socket is closing: its sessions lose their releaser. */
static int amber_sessions_netlink_event(struct notifier_block *nb,
					unsigned long event, void *ptr)
{
	struct netlink_notify *n = ptr;
	struct amber_session *s;

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC ||
	    !n->portid)
		return NOTIFY_DONE;

	mutex_lock(&amber_sessions_lock);
	list_for_each_entry(s, &amber_sessions, node) {
		if (s->portid == n->portid && s->net == n->net)
			s->ops->sock_gone(s);
	}
	mutex_unlock(&amber_sessions_lock);
	return NOTIFY_DONE;
}

static struct notifier_block amber_sessions_nb = {
	.notifier_call = amber_sessions_netlink_event,
};

int amber_sessions_init(void)
{
	return netlink_register_notifier(&amber_sessions_nb);
}

static bool amber_sessions_empty(void)
{
	bool empty;

	mutex_lock(&amber_sessions_lock);
	empty = list_empty(&amber_sessions);
	mutex_unlock(&amber_sessions_lock);
	return empty;
}

/*
 * Called after the family is unregistered, so no handler is left. Every
 * task_work of a session pins the module, so normally nothing is live
 * here; this still releases whatever is (checkpoints resume, restores are
 * killed) and waits for all of them, so the module never leaves a task
 * parked or a callback pointing into freed text.
 */
void amber_sessions_exit(void)
{
	struct amber_session *s;

	netlink_unregister_notifier(&amber_sessions_nb);

	mutex_lock(&amber_sessions_lock);
	amber_sessions_exiting = true;
	list_for_each_entry(s, &amber_sessions, node)
		s->ops->exit(s);
	mutex_unlock(&amber_sessions_lock);

	wait_event(amber_sessions_wq, amber_sessions_empty());
}
