// SPDX-License-Identifier: GPL-2.0
/*
 * Checkpoint request lifecycle.
 *
 * The requester (the CLI, inside AMBER_CMD_CHECKPOINT) queues a task_work on
 * the target with TWA_SIGNAL and waits. The target runs amber_ckpt_work() on
 * its way back to user mode, with current == target, captures itself and
 * completes @captured; with AMBER_CKPT_F_HOLD it then parks until @released.
 *
 * The request is shared and refcounted: one reference for the requester, one
 * for the queued callback (which also pins the module). Whoever gives up first
 * marks it cancelled; the callback then returns at once and the target simply
 * carries on. Held targets are resumed by RELEASE, by the requesting socket
 * closing (netlink notifier), by the hold timing out, or by module exit.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/netlink.h>
#include <linux/notifier.h>
#include <linux/pid_namespace.h>
#include <linux/ptrace.h>
#include <linux/sched/coredump.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/task_work.h>
#include <linux/wait.h>
#include <net/netlink.h>

#include <linux/amber.h>

#include "checkpoint.h"
#include "ksyms.h"

/*
 * amber_reqs_lock protects the list of live requests (amber_reqs), the state,
 * cancelled and action fields of every request on it, amber_nr_stopped and
 * amber_exiting. It is a mutex: every user can sleep (the netlink notifier
 * runs from a blocking notifier chain).
 */
static DEFINE_MUTEX(amber_reqs_lock);
static LIST_HEAD(amber_reqs);
static unsigned int amber_nr_stopped;	/* callbacks RUNNING or HELD */
static bool amber_exiting;

/* Number of requests not yet freed; module exit waits for zero. */
static atomic_t amber_nr_reqs = ATOMIC_INIT(0);
static DECLARE_WAIT_QUEUE_HEAD(amber_reqs_wq);

static void amber_state_free(struct amber_state *st)
{
	amber_mm_free(&st->mm);
	amber_track_free(&st->track);
	amber_files_free(&st->files);
	amber_regs_free(&st->regs);
	amber_sig_free(&st->sig);
	amber_task_free(&st->task);
}

/* kref release, called with amber_reqs_lock held (kref_put_mutex). */
static void amber_req_release(struct kref *ref)
	__releases(&amber_reqs_lock)
{
	struct amber_req *req = container_of(ref, struct amber_req, ref);

	lockdep_assert_held(&amber_reqs_lock);
	list_del(&req->node);
	mutex_unlock(&amber_reqs_lock);

	amber_state_free(&req->st);
	put_cred(req->ident.cred);
	fput(req->pages);
	put_task_struct(req->task);
	kfree(req);

	if (atomic_dec_and_test(&amber_nr_reqs))
		wake_up_all(&amber_reqs_wq);
}

void amber_req_put(struct amber_req *req)
{
	kref_put_mutex(&req->ref, amber_req_release, &amber_reqs_lock);
}

/*
 * Stop waiting for @req: a callback that has not started will return at
 * once, a running one will not hold, a held target resumes.
 */
static void amber_req_cancel_locked(struct amber_req *req)
{
	lockdep_assert_held(&amber_reqs_lock);

	req->cancelled = true;
	switch (req->state) {
	case AMBER_REQ_QUEUED:
		req->state = AMBER_REQ_CANCELLED;
		break;
	case AMBER_REQ_HELD:
		req->action = AMBER_RELEASE_RESUME;
		req->state = AMBER_REQ_RELEASING;
		complete(&req->released);
		break;
	default:
		break;
	}
}

void amber_req_abort(struct amber_req *req)
{
	mutex_lock(&amber_reqs_lock);
	amber_req_cancel_locked(req);
	mutex_unlock(&amber_reqs_lock);
}

/* Everything the callback records, in the target's own context. */
static int amber_capture(struct amber_req *req)
{
	struct amber_state *st = &req->st;
	struct amber_err *e = &req->result;

	if ((current->flags & PF_EXITING) || !current->mm)
		return amber_fail(e, -ESRCH, "the process exited");
	/* The access check was for this identity; see amber_check_target(). */
	if (current_real_cred() != req->ident.cred ||
	    current->self_exec_id != req->ident.exec_id ||
	    get_dumpable(current->mm) != req->ident.dumpable)
		return amber_fail(e, -EAGAIN,
				  "the process executed a program or changed credentials or dumpability, try again");
	if (get_nr_threads(current) > 1)
		return amber_fail(e, -EOPNOTSUPP,
				  "multi-threaded processes are not supported yet");

	if (amber_regs_capture(&st->regs, e) ||
	    amber_task_capture(&st->task, e) ||
	    amber_sig_capture(&st->sig, e) ||
	    amber_files_capture(&st->files, e))
		return e->err;

	/* Decided here, in the target: its tracking state cannot change. */
	amber_track_begin(&st->track);
	if (amber_mm_capture(&st->mm, &st->track, &req->cancelled, e))
		return e->err;
	amber_track_commit(&st->track, st->mm.pages_nr);
	return 0;
}

static void amber_ckpt_hold(struct amber_req *req)
{
	bool timed_out;
	long left;
	u32 action;

	/* The hold times out hold_ms after the pages file was written. */
	do {
		left = wait_for_completion_killable_timeout(&req->released,
							    msecs_to_jiffies(req->hold_ms));
	} while (!left && READ_ONCE(req->writing));

	/*
	 * The state decides, not @left: a RELEASE that raced with the timeout
	 * or a fatal signal has already told its caller it was obeyed.
	 */
	mutex_lock(&amber_reqs_lock);
	if (req->state == AMBER_REQ_RELEASING) {
		action = req->action;
		timed_out = false;
	} else {
		action = AMBER_RELEASE_RESUME;
		timed_out = !left;
	}
	req->state = AMBER_REQ_DONE;
	amber_nr_stopped--;
	mutex_unlock(&amber_reqs_lock);

	if (timed_out)
		pr_warn("pid %d: hold timed out after %u ms, resuming\n",
			task_pid_nr(current), req->hold_ms);
	/* Dies on the way out of task_work: no user instruction runs. */
	if (action == AMBER_RELEASE_KILL)
		send_sig(SIGKILL, current, 1);
}

/*
 * The task_work callback. Runs in the target with current == target, from
 * get_signal() (TWA_SIGNAL) on the way back to user mode, or from do_exit()
 * if the target exits first.
 */
static void amber_ckpt_work(struct callback_head *work)
{
	struct amber_req *req = container_of(work, struct amber_req, work);
	u64 start = ktime_get_ns();
	bool hold;
	int err;

	mutex_lock(&amber_reqs_lock);
	if (req->cancelled) {
		mutex_unlock(&amber_reqs_lock);
		goto out_put;
	}
	req->state = AMBER_REQ_RUNNING;
	amber_nr_stopped++;
	mutex_unlock(&amber_reqs_lock);

	err = amber_capture(req);
	req->st.stopped_ns = ktime_get_ns() - start;
	WRITE_ONCE(req->writing, !err);

	mutex_lock(&amber_reqs_lock);
	hold = !err && (req->flags & AMBER_CKPT_F_HOLD) && !req->cancelled;
	if (hold) {
		req->state = AMBER_REQ_HELD;
	} else {
		req->state = AMBER_REQ_DONE;
		amber_nr_stopped--;
	}
	mutex_unlock(&amber_reqs_lock);

	complete(&req->captured);
	if (hold)
		amber_ckpt_hold(req);
out_put:
	amber_req_put(req);
	/*
	 * Last thing touching module memory but the return itself; module
	 * exit cannot start before this reference is gone.
	 */
	module_put(THIS_MODULE);
}

static struct task_struct *amber_find_task(pid_t pid)
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
static void amber_ident_get(struct task_struct *task, struct amber_ident *id)
{
	id->cred = get_task_cred(task);
	id->exec_id = READ_ONCE(task->self_exec_id);
	task_lock(task);
	id->dumpable = task->mm ? get_dumpable(task->mm) : -1;
	task_unlock(task);
}

/*
 * @id is taken before the access check: if the target changes identity
 * after it, the callback sees the difference and refuses.
 */
/* Whether the caller may checkpoint at all (CHECKPOINT, UNTRACK). */
static int amber_check_caps(struct netlink_ext_ack *extack)
{
	if (!checkpoint_restore_ns_capable(task_active_pid_ns(current)->user_ns)) {
		NL_SET_ERR_MSG(extack,
			       "needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN");
		return -EPERM;
	}
	return 0;
}

/* Whether the caller may trace @task, as it is now (CHECKPOINT, UNTRACK). */
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

static int amber_check_target(struct task_struct *task,
			      const struct amber_ckpt_args *args,
			      struct amber_ident *id,
			      struct netlink_ext_ack *extack)
{
	const struct nlattr *attr = args->pid_attr;
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
	if (task->exit_state || (task->flags & PF_EXITING)) {
		NL_SET_ERR_MSG_ATTR(extack, attr, "the process is exiting or a zombie");
		return -ESRCH;
	}
	if (get_nr_threads(task) > 1) {
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "multi-threaded processes are not supported yet");
		return -EOPNOTSUPP;
	}
	amber_ident_get(task, id);
	return amber_check_ptrace(task, attr, extack);
}

static struct file *amber_get_pages_file(const struct amber_ckpt_args *args,
					 struct netlink_ext_ack *extack)
{
	struct file *file = fget(args->pages_fd);

	if (!file) {
		NL_SET_ERR_MSG_ATTR(extack, args->fd_attr,
				    "PAGES_FD is not an open file descriptor");
		return ERR_PTR(-EBADF);
	}
	if (!S_ISREG(file_inode(file)->i_mode)) {
		NL_SET_ERR_MSG_ATTR(extack, args->fd_attr,
				    "PAGES_FD must be a regular file");
		fput(file);
		return ERR_PTR(-EINVAL);
	}
	if (!(file->f_mode & FMODE_WRITE)) {
		NL_SET_ERR_MSG_ATTR(extack, args->fd_attr,
				    "PAGES_FD must be open for writing");
		fput(file);
		return ERR_PTR(-EBADF);
	}
	return file;
}

static struct amber_req *amber_req_new(struct task_struct *task,
				       struct file *pages,
				       const struct amber_ident *id,
				       const struct amber_ckpt_args *args)
{
	struct amber_req *req = kzalloc(sizeof(*req), GFP_KERNEL);

	if (!req)
		return NULL;
	kref_init(&req->ref);
	INIT_LIST_HEAD(&req->node);
	init_task_work(&req->work, amber_ckpt_work);
	req->task = task;
	req->pages = pages;
	req->pid = args->pid;
	req->flags = args->flags;
	req->hold_ms = max_t(u32, args->timeout_ms, AMBER_HOLD_MIN_MS);
	req->portid = args->portid;
	req->net = args->net;
	req->ident = *id;
	req->st.track.want = args->flags & AMBER_CKPT_F_TRACK;
	req->st.track.parent_id = args->parent_id;
	amber_mm_init(&req->st.mm);
	req->state = AMBER_REQ_QUEUED;
	init_completion(&req->captured);
	init_completion(&req->released);
	atomic_inc(&amber_nr_reqs);
	return req;
}

/* Publishes @req and queues its callback on the target. */
static int amber_req_queue(struct amber_req *req,
			   const struct amber_ckpt_args *args,
			   struct netlink_ext_ack *extack)
{
	struct amber_req *other;
	int err;

	mutex_lock(&amber_reqs_lock);
	if (amber_exiting) {
		NL_SET_ERR_MSG(extack, "the module is unloading");
		err = -ENODEV;
		goto out_unlock;
	}
	list_for_each_entry(other, &amber_reqs, node) {
		if (other->task == req->task && other->state != AMBER_REQ_DONE &&
		    other->state != AMBER_REQ_CANCELLED) {
			NL_SET_ERR_MSG_ATTR(extack, args->pid_attr,
					    "a checkpoint of this process is already in progress");
			err = -EBUSY;
			goto out_unlock;
		}
	}
	list_add_tail(&req->node, &amber_reqs);

	/* Each queued callback pins the module until it has returned. */
	if (!try_module_get(THIS_MODULE)) {
		NL_SET_ERR_MSG(extack, "the module is unloading");
		err = -ENODEV;
		goto out_unlock;
	}
	err = task_work_add(req->task, &req->work, TWA_SIGNAL);
	if (err) {
		NL_SET_ERR_MSG_ATTR(extack, args->pid_attr, "the process is exiting");
		err = -ESRCH;
		goto err_put_module;
	}
	/*
	 * The callback's reference. Taking it after queueing is safe: the
	 * callback starts by taking amber_reqs_lock, which is held here.
	 */
	kref_get(&req->ref);
	mutex_unlock(&amber_reqs_lock);
	return 0;

err_put_module:
	module_put(THIS_MODULE);
out_unlock:
	mutex_unlock(&amber_reqs_lock);
	return err;
}

/* The callback has started (it may also have finished). */
static bool amber_req_started(struct amber_req *req)
{
	bool started;

	mutex_lock(&amber_reqs_lock);
	started = req->state != AMBER_REQ_QUEUED &&
		  req->state != AMBER_REQ_CANCELLED;
	mutex_unlock(&amber_reqs_lock);
	return started;
}

/*
 * Waits for the callback; on failure the request is cancelled. @timeout_ms
 * bounds how long the target may take to reach its stop point; a capture
 * that has started gets AMBER_CAPTURE_MAX_MS more (it polls cancellation, so
 * it stops soon after giving up). Every wait is killable and bounded.
 */
static int amber_req_wait(struct amber_req *req, u32 timeout_ms,
			  struct netlink_ext_ack *extack)
{
	long capture_max = msecs_to_jiffies(AMBER_CAPTURE_MAX_MS);
	bool started = false;
	const char *msg;
	long left;

	left = wait_for_completion_killable_timeout(&req->captured,
						    msecs_to_jiffies(timeout_ms));
	if (!left) {
		started = amber_req_started(req);
		if (started)
			left = wait_for_completion_killable_timeout(&req->captured,
								    capture_max);
	}
	if (left > 0) {
		if (req->result.err) {
			amber_set_msg(extack, req->result.msg);
			return req->result.err;
		}
		return 0;
	}

	amber_req_abort(req);
	if (left < 0) {
		NL_SET_ERR_MSG(extack, "interrupted while waiting for the process");
		return -EINTR;
	}
	if (started)
		msg = amber_msg("the capture did not finish within %u ms more",
				AMBER_CAPTURE_MAX_MS);
	else
		msg = amber_msg("the process did not stop within %u ms %s", timeout_ms,
				"(stopped, traced or in an uninterruptible sleep?)");
	amber_set_msg(extack, msg);
	return -ETIMEDOUT;
}

/*
 * After the capture, in the requester's context (the target runs again
 * unless held): writes the pages the target left in memory to the pages
 * file. A held target's hold timeout only starts counting afterwards.
 */
static int amber_req_write_pages(struct amber_req *req,
				 struct netlink_ext_ack *extack)
{
	int err = amber_mm_write_pages(&req->st.mm, &req->result);

	WRITE_ONCE(req->writing, false);
	if (err)
		amber_set_msg(extack, req->result.msg);
	return err;
}

struct amber_req *amber_checkpoint(const struct amber_ckpt_args *args,
				   struct netlink_ext_ack *extack)
{
	struct amber_ident id = { };
	struct task_struct *task;
	struct amber_req *req;
	struct file *pages;
	int err;

	task = amber_find_task(args->pid);
	if (!task) {
		NL_SET_ERR_MSG_ATTR(extack, args->pid_attr, "no such process");
		return ERR_PTR(-ESRCH);
	}
	err = amber_check_target(task, args, &id, extack);
	if (err)
		goto err_put_task;

	pages = amber_get_pages_file(args, extack);
	if (IS_ERR(pages)) {
		err = PTR_ERR(pages);
		goto err_put_task;
	}

	req = amber_req_new(task, pages, &id, args);
	if (!req) {
		NL_SET_ERR_MSG(extack, "out of memory");
		err = -ENOMEM;
		goto err_put_pages;
	}
	/* From here on, the request owns the task, file and cred references. */
	amber_mm_prepare(&req->st.mm, task, pages, args->parent_id,
			 &req->cancelled);
	err = amber_req_queue(req, args, extack);
	if (!err)
		err = amber_req_wait(req, args->timeout_ms, extack);
	if (!err)
		err = amber_req_write_pages(req, extack);
	if (err) {
		/* A held target whose image is incomplete resumes. */
		amber_req_abort(req);
		amber_req_put(req);
		return ERR_PTR(err);
	}
	return req;

err_put_pages:
	fput(pages);
err_put_task:
	put_cred(id.cred);
	put_task_struct(task);
	return ERR_PTR(err);
}

int amber_release(pid_t pid, u32 portid, const struct net *net, u32 action,
		  const struct nlattr *pid_attr,
		  struct netlink_ext_ack *extack)
{
	struct amber_req *req;
	int err = -ESRCH;

	mutex_lock(&amber_reqs_lock);
	list_for_each_entry(req, &amber_reqs, node) {
		if (req->pid != pid || req->portid != portid || req->net != net ||
		    req->state != AMBER_REQ_HELD)
			continue;
		req->action = action;
		req->state = AMBER_REQ_RELEASING;
		complete(&req->released);
		err = 0;
		break;
	}
	mutex_unlock(&amber_reqs_lock);

	if (err)
		NL_SET_ERR_MSG_ATTR(extack, pid_attr,
				    "this socket holds no process with that pid (hold timed out?)");
	return err;
}

u32 amber_sessions(void)
{
	u32 n;

	mutex_lock(&amber_reqs_lock);
	n = amber_nr_stopped;
	mutex_unlock(&amber_reqs_lock);
	return n;
}

/* Same access rule as CHECKPOINT: a caller that may checkpoint may untrack. */
int amber_untrack(pid_t pid, const struct nlattr *pid_attr,
		  struct netlink_ext_ack *extack)
{
	struct task_struct *task;
	int err;

	err = amber_check_caps(extack);
	if (err)
		return err;
	task = amber_find_task(pid);
	if (!task) {
		NL_SET_ERR_MSG_ATTR(extack, pid_attr, "no such process");
		return -ESRCH;
	}
	err = amber_check_ptrace(task, pid_attr, extack);
	if (!err) {
		err = amber_track_drop(task_pid(task));
		if (err)
			NL_SET_ERR_MSG_ATTR(extack, pid_attr, "the process is not tracked");
	}
	put_task_struct(task);
	return err;
}

/* Resumes the targets held for a generic netlink socket that is closing. */
static int amber_netlink_event(struct notifier_block *nb, unsigned long event,
			       void *ptr)
{
	struct netlink_notify *n = ptr;
	struct amber_req *req;

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC ||
	    !n->portid)
		return NOTIFY_DONE;

	mutex_lock(&amber_reqs_lock);
	list_for_each_entry(req, &amber_reqs, node) {
		if (req->portid == n->portid && req->net == n->net)
			amber_req_cancel_locked(req);
	}
	mutex_unlock(&amber_reqs_lock);
	return NOTIFY_DONE;
}

static struct notifier_block amber_netlink_nb = {
	.notifier_call = amber_netlink_event,
};

int amber_checkpoint_init(void)
{
	return netlink_register_notifier(&amber_netlink_nb);
}

/*
 * Called after the family is unregistered, so no requester is left. Queued
 * and held callbacks pin the module, so normally nothing is live here; this
 * still resumes and waits for anything that is, so the module never leaves a
 * target parked or a callback pointing into freed text.
 */
void amber_checkpoint_exit(void)
{
	struct amber_req *req;

	netlink_unregister_notifier(&amber_netlink_nb);

	mutex_lock(&amber_reqs_lock);
	amber_exiting = true;
	list_for_each_entry(req, &amber_reqs, node)
		amber_req_cancel_locked(req);
	mutex_unlock(&amber_reqs_lock);

	wait_event(amber_reqs_wq, !atomic_read(&amber_nr_reqs));
}
