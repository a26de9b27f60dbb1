// SPDX-License-Identifier: GPL-2.0
/*
 * Who may checkpoint what (CHECKPOINT, UNTRACK, LAZY_FILL): the caller's capability,
 * its ptrace access to each process, the root process and the pages file
 * it names, and the identity a process had when its access was checked.
 */
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/ptrace.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <net/netlink.h>

#include "access.h"
#include "ksyms.h"

struct task_struct *amber_find_task(pid_t pid)
{
	struct task_struct *task;

	rcu_read_lock();
	task = pid_task(find_vpid(pid), PIDTYPE_PID);
	if (task)
		get_task_struct(task);
	rcu_read_unlock();
	return task;
}

/* Takes a reference on the target's cred into @id, even on failure. */
void amber_ident_get(struct task_struct *task, struct amber_ident *id)
{
	id->cred = get_task_cred(task);
	id->exec_id = READ_ONCE(task->self_exec_id);
	task_lock(task);
	id->dumpable = task->mm ? get_dumpable(task->mm) : -1;
	task_unlock(task);
}

/* Whether the caller may checkpoint at all (CHECKPOINT, UNTRACK, LAZY_FILL). */
static int amber_check_caps(struct netlink_ext_ack *extack)
{
	if (!checkpoint_restore_ns_capable(task_active_pid_ns(current)->user_ns)) {
		NL_SET_ERR_MSG(extack,
			       "needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN");
		return -EPERM;
	}
	return 0;
}

/*
 * -EPERM, said at @attr, unless the caller may ptrace-attach to @task as it
 * is now.
 */
static int amber_check_ptrace(struct task_struct *task, const struct nlattr *attr,
			      struct netlink_ext_ack *extack)
{
	if (!amber_ptrace_may_access(task, PTRACE_MODE_ATTACH_REALCREDS)) {
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "no ptrace access to the process (PTRACE_MODE_ATTACH)");
		return -EPERM;
	}
	return 0;
}

/*
 * The process an UNTRACK or LAZY_FILL request names at @attr, a reference:
 * the caller needs the capability and ptrace access to it, as it is now.
 */
struct task_struct *amber_find_traceable(pid_t pid, const struct nlattr *attr,
					 struct netlink_ext_ack *extack)
{
	struct task_struct *task;
	int err;

	err = amber_check_caps(extack);
	if (err)
		return ERR_PTR(err);
	task = amber_find_task(pid);
	if (!task) {
		NL_SET_ERR_MSG_ATTR(extack, attr, "no such process");
		return ERR_PTR(-ESRCH);
	}
	err = amber_check_ptrace(task, attr, extack);
	if (err) {
		put_task_struct(task);
		return ERR_PTR(err);
	}
	return task;
}

struct file *amber_get_pages_file(int fd, const struct nlattr *fd_attr,
				  struct netlink_ext_ack *extack)
{
	struct file *file = fget(fd);

	if (!file) {
		NL_SET_ERR_MSG_ATTR(extack, fd_attr,
				    "PAGES_FD is not an open file descriptor");
		return ERR_PTR(-EBADF);
	}
	if (!S_ISREG(file_inode(file)->i_mode)) {
		NL_SET_ERR_MSG_ATTR(extack, fd_attr,
				    "PAGES_FD must be a regular file");
		fput(file);
		return ERR_PTR(-EINVAL);
	}
	if (!(file->f_mode & FMODE_WRITE)) {
		NL_SET_ERR_MSG_ATTR(extack, fd_attr,
				    "PAGES_FD must be open for writing");
		fput(file);
		return ERR_PTR(-EBADF);
	}
	return file;
}

/* Whether @task may be the root of a request (the caller's caps too). */
int amber_check_root(struct task_struct *task, const struct nlattr *attr,
		     struct netlink_ext_ack *extack)
{
	int err;

	err = amber_check_caps(extack);
	if (err)
		return err;
	if (task->flags & PF_KTHREAD) {
		NL_SET_ERR_MSG_ATTR(extack, attr, "cannot checkpoint a kernel thread");
		return -EINVAL;
	}
	if (is_child_reaper(task_pid(task))) {
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "cannot checkpoint the init process of a pid namespace");
		return -EINVAL;
	}
	if (same_thread_group(task, current)) {
		NL_SET_ERR_MSG_ATTR(extack, attr, "cannot checkpoint the calling process");
		return -EINVAL;
	}
	if (!thread_group_leader(task)) {
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "the pid is a thread's, not a process's (thread group leader)");
		return -EINVAL;
	}
	if (task->flags & PF_EXITING) {
		NL_SET_ERR_MSG_ATTR(extack, attr, "the process is exiting or a zombie");
		return -ESRCH;
	}
	if (task->exit_state) {
		if (thread_group_empty(task)) {
			NL_SET_ERR_MSG_ATTR(extack, attr, "the process is exiting or a zombie");
			return -ESRCH;
		}
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "the process's main thread exited: not supported");
		return -EOPNOTSUPP;
	}
	return 0;
}
