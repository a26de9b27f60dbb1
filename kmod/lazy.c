// SPDX-License-Identifier: GPL-2.0
/*
 * Lazy restore: a restored process's private anonymous memory is registered
 * with a userfaultfd by its stub, and the tool (the filler) copies the pages
 * in on first touch and in the background. If the last reference to that
 * userfaultfd went away while pages were still missing, the kernel would
 * unregister the memory and the process would read zeros where its data
 * was. So the filler hands the module a reference (AMBER_CMD_LAZY_FILL), tied
 * to its netlink socket: when that socket closes before the filler says the
 * fill is complete (the filler was killed, or crashed), the module SIGKILLs
 * the process first and only then drops the reference. A thread blocked in
 * a missing-page fault dies without returning to user mode.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/list.h>
#include <linux/magic.h>
#include <linux/mutex.h>
#include <linux/netlink.h>
#include <linux/notifier.h>
#include <linux/pid.h>
#include <linux/rcupdate.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <net/netlink.h>

#include "access.h"
#include "lazy.h"

struct amber_lazy {
	struct list_head node;		/* in amber_lazies */
	struct pid *pid;		/* reference: the process filled */
	struct file *uffd;		/* reference: its userfaultfd */
	u32 portid;			/* of the filling socket */
	const struct net *net;		/* compared, never dereferenced */
};

/* amber_lazy_lock protects amber_lazies. */
static DEFINE_MUTEX(amber_lazy_lock);
static LIST_HEAD(amber_lazies);

static void amber_lazy_free(struct amber_lazy *l)
{
	lockdep_assert_held(&amber_lazy_lock);
	list_del(&l->node);
	fput(l->uffd);
	put_pid(l->pid);
	kfree(l);
}

/*
 * A userfaultfd is an anonymous inode file named "[userfaultfd]"; its
 * file operations are not exported, so the name is what identifies it.
 */
static bool amber_is_userfaultfd(struct file *file)
{
	return file->f_path.mnt->mnt_sb->s_magic == ANON_INODE_FS_MAGIC &&
	       !strcmp(file->f_path.dentry->d_name.name, "[userfaultfd]");
}

int amber_lazy_hold(pid_t pid, const struct nlattr *pid_attr, int fd,
		    const struct nlattr *fd_attr, u32 portid, const struct net *net,
		    struct netlink_ext_ack *extack)
{
	struct task_struct *task;
	struct amber_lazy *l;
	struct file *file;
	int err;

	task = amber_find_traceable(pid, pid_attr, extack);
	if (IS_ERR(task))
		return PTR_ERR(task);
	file = fget(fd);
	if (!file) {
		NL_SET_ERR_MSG_ATTR(extack, fd_attr, "UFFD_FD is not an open file descriptor");
		err = -EBADF;
		goto err_put_task;
	}
	if (!amber_is_userfaultfd(file)) {
		NL_SET_ERR_MSG_ATTR(extack, fd_attr, "UFFD_FD is not a userfaultfd");
		err = -EINVAL;
		goto err_put_file;
	}
	l = kzalloc(sizeof(*l), GFP_KERNEL);
	if (!l) {
		NL_SET_ERR_MSG(extack, "out of memory");
		err = -ENOMEM;
		goto err_put_file;
	}
	l->pid = get_task_pid(task, PIDTYPE_TGID);
	l->uffd = file;
	l->portid = portid;
	l->net = net;
	mutex_lock(&amber_lazy_lock);
	list_add_tail(&l->node, &amber_lazies);
	mutex_unlock(&amber_lazy_lock);
	put_task_struct(task);
	return 0;

err_put_file:
	fput(file);
err_put_task:
	put_task_struct(task);
	return err;
}

int amber_lazy_done(pid_t pid, const struct nlattr *pid_attr, u32 portid,
		    const struct net *net, struct netlink_ext_ack *extack)
{
	struct amber_lazy *l, *tmp;
	struct pid *want;
	int err = -ENOENT;

	rcu_read_lock();
	want = get_pid(find_vpid(pid));
	rcu_read_unlock();

	mutex_lock(&amber_lazy_lock);
	list_for_each_entry_safe(l, tmp, &amber_lazies, node) {
		/* A pid gone from the namespace: its fills end too. */
		if (l->portid != portid || l->net != net || (want && l->pid != want))
			continue;
		if (!want && pid_task(l->pid, PIDTYPE_TGID))
			continue;
		amber_lazy_free(l);
		err = 0;
	}
	mutex_unlock(&amber_lazy_lock);
	put_pid(want);
	if (err)
		NL_SET_ERR_MSG_ATTR(extack, pid_attr, "this socket fills no process with that pid");
	return err;
}

/*
 * SIGKILLs the process of @pid and every process descended from it: a child
 * it forked during the fill misses the same pages (its userfaultfd is pinned
 * under the same pid, see AMBER_CMD_LAZY_FILL).
 */
static void amber_lazy_kill(struct pid *pid)
{
	struct task_struct *root, *p, *a;

	/* tasklist_lock is not exported: the process list is walked under RCU. */
	rcu_read_lock();
	root = pid_task(pid, PIDTYPE_TGID);
	if (root) {
		pr_warn("pid %d: its lazy restore's filler went away, killing it\n",
			pid_nr(pid));
		for_each_process(p) {
			for (a = p; a != &init_task && a != root;
			     a = rcu_dereference(a->real_parent)->group_leader)
				;
			if (a == root)
				kill_pid(task_tgid(p), SIGKILL, 1);
		}
	}
	rcu_read_unlock();
}

/* The filling socket closed: its processes cannot get their pages any more. */
static int amber_lazy_netlink_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct netlink_notify *n = ptr;
	struct amber_lazy *l, *tmp;

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC || !n->portid)
		return NOTIFY_DONE;

	mutex_lock(&amber_lazy_lock);
	list_for_each_entry_safe(l, tmp, &amber_lazies, node) {
		if (l->portid != n->portid || l->net != n->net)
			continue;
		/* Killed before the userfaultfd can be released. */
		amber_lazy_kill(l->pid);
		amber_lazy_free(l);
	}
	mutex_unlock(&amber_lazy_lock);
	return NOTIFY_DONE;
}

static struct notifier_block amber_lazy_nb = {
	.notifier_call = amber_lazy_netlink_event,
};

int amber_lazy_init(void)
{
	return netlink_register_notifier(&amber_lazy_nb);
}

void amber_lazy_exit(void)
{
	struct amber_lazy *l, *tmp;

	netlink_unregister_notifier(&amber_lazy_nb);
	mutex_lock(&amber_lazy_lock);
	list_for_each_entry_safe(l, tmp, &amber_lazies, node)
		amber_lazy_free(l);
	mutex_unlock(&amber_lazy_lock);
}
