// SPDX-License-Identifier: GPL-2.0
/*
 * Checkpoint request lifecycle: the group stop.
 *
 * One CHECKPOINT request covers a group: every thread of the target
 * process, and with AMBER_CKPT_F_TREE every thread of every descendant. The
 * requester (the CLI, inside AMBER_CMD_CHECKPOINT) queues a task_work
 * (TWA_SIGNAL) on each thread. Each thread runs amber_thr_work() on its way
 * back to user mode, with current == that thread, records its own registers
 * and per-thread state, and parks. The requester rescans the group until a
 * scan that started while every known thread was parked finds nothing new
 * (parked threads cannot clone or fork, so that scan is exact); then, with
 * every thread of every process parked (the consistent cut), it checks the
 * caller's ptrace access to every process again and lets the thread-group
 * leaders capture their processes (memory, files, credentials, signals), in
 * parallel, each in its own context. After the last capture the group
 * resumes, or stays parked with AMBER_CKPT_F_HOLD until RELEASE.
 *
 * The request is shared and refcounted: one reference for the requester,
 * one for each queued callback (which also pins the module). Whoever gives
 * up first cancels the whole group: callbacks that have not started return
 * at once, parked threads leave, leaders stop capturing. Held groups are
 * resumed by RELEASE, by the requesting socket closing (session.c),
 * by the hold timing out (the first parked thread to time out resumes all),
 * or by module exit. Every wait, the requester's and the parked threads',
 * is killable and bounded.
 *
 * A thread being created while the group stops is found by the next scan
 * and stopped too. A vfork() child is never parked (its parent waits for it
 * uninterruptibly, so parking it would never let the parent park): the scan
 * waits until it has executed a program or exited, rescanning every few ms.
 * A process exiting during the stop fails the request with -EAGAIN (a retry
 * finds it a zombie or gone); a zombie reaped during the stop is left out.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/netlink.h>
#include <linux/pid_namespace.h>
#include <linux/ptrace.h>
#include <linux/sched/coredump.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/task_work.h>
#include <linux/wait.h>
#include <net/netlink.h>

#include <linux/amber.h>

#include "access.h"
#include "checkpoint.h"
#include "ksyms.h"
#include "nethold.h"
#include "tree.h"

/*
 * amber_reqs_lock protects the list of live requests (amber_reqs), the
 * phase, cancelled, action, counters and result of every request on it, the
 * state of every thread, their hash tables and amber_nr_stopped. It is a
 * mutex: every user can sleep (the session callbacks run under the
 * registry's mutex, which is taken before this one).
 */
static DEFINE_MUTEX(amber_reqs_lock);
static LIST_HEAD(amber_reqs);
static unsigned int amber_nr_stopped;	/* threads capturing or parked */

/* How often the stop rescans while a vfork child or an exiting process is pending. */
#define AMBER_RESCAN_MS		5
/*
 * How long a thread of the group may stay blocked in vfork() while the
 * group stops, its child neither executing a program nor exiting.
 */
#define AMBER_VFORK_MAX_MS	1000
/* A parked thread's own bound before HELD, beyond the requester's. */
#define AMBER_PARK_SLACK_MS	10000

static void amber_state_free(struct amber_state *st)
{
	amber_mm_free(&st->mm);
	amber_track_free(&st->track);
	amber_files_free(&st->files);
	amber_regs_free(&st->regs);
	amber_sig_free(&st->sig);
	amber_timers_free(&st->timers);
	amber_task_free(&st->task);
}

static void amber_proc_free(struct amber_proc *p)
{
	amber_state_free(&p->st);
	if (p->ident.cred)
		put_cred(p->ident.cred);
	if (p->pages)
		fput(p->pages);
	kfree(p->others);
	put_task_struct(p->task);
	kfree(p);
}

static void amber_thr_free(struct amber_thr *thr)
{
	amber_regs_free(&thr->regs);
	amber_thread_free(&thr->ts);
	put_task_struct(thr->task);
	kfree(thr);
}

/* kref release, called with amber_reqs_lock held (kref_put_mutex). */
static void amber_req_release(struct kref *ref)
	__releases(&amber_reqs_lock)
{
	struct amber_req *req = container_of(ref, struct amber_req, ref);
	unsigned int i;

	lockdep_assert_held(&amber_reqs_lock);
	list_del(&req->node);
	for (i = 0; i < req->nr_thrs; i++)
		hash_del(&req->thrs[i]->hnode);
	mutex_unlock(&amber_reqs_lock);

	for (i = 0; i < req->nr_thrs; i++)
		amber_thr_free(req->thrs[i]);
	kvfree(req->thrs);
	for (i = 0; i < req->nr_procs; i++)
		amber_proc_free(req->procs[i]);
	kvfree(req->procs);
	/* Pool files not handed to a process. */
	for (i = req->nr_indexed; i < req->nr_pool; i++)
		fput(req->pool[i]);
	kfree(req->pool);
	if (req->root_pages)
		fput(req->root_pages);
	kfree(req->parents);
	if (req->fileids) {
		amber_nethold_abort(req->fileids);
		amber_fileids_free(req->fileids);
	}
	put_pid_ns(req->ns);
	/* Last: module exit waits for every session to be gone. */
	amber_session_del(&req->session);
	kfree(req);
}

void amber_req_put(struct amber_req *req)
{
	kref_put_mutex(&req->ref, amber_req_release, &amber_reqs_lock);
}

static void amber_req_set_phase(struct amber_req *req, enum amber_phase ph)
{
	lockdep_assert_held(&amber_reqs_lock);
	/* Held connections: kept for a kill, back to normal before a resume. */
	if (ph == AMBER_PH_RESUME) {
		if (req->action == AMBER_RELEASE_KILL)
			amber_nethold_commit(req->fileids);
		else
			amber_nethold_abort(req->fileids);
	}
	WRITE_ONCE(req->phase, ph);
	wake_up_all(&req->thr_wq);
	wake_up_all(&req->req_wq);
}

/*
 * Stop waiting for @req: callbacks that have not started return at once,
 * parked threads leave, leaders stop capturing, a held group resumes.
 */
static void amber_req_cancel_locked(struct amber_req *req)
{
	lockdep_assert_held(&amber_reqs_lock);

	WRITE_ONCE(req->cancelled, true);
	if (req->phase != AMBER_PH_RESUME) {
		req->action = AMBER_RELEASE_RESUME;
		amber_req_set_phase(req, AMBER_PH_RESUME);
	}
}

/* Records the group's first failure (@retry: a transient one) and cancels it. */
static void amber_req_fail_locked(struct amber_req *req, int err,
				  const char *msg, bool retry)
{
	lockdep_assert_held(&amber_reqs_lock);
	if (!req->result.err) {
		amber_fail(&req->result, err, msg);
		req->result.retry = retry;
	}
	amber_req_cancel_locked(req);
}

void amber_req_abort(struct amber_req *req)
{
	mutex_lock(&amber_reqs_lock);
	amber_req_cancel_locked(req);
	mutex_unlock(&amber_reqs_lock);
}

/* A failure's message, naming the process unless it is the only one. */
static const char *amber_proc_msg(struct amber_req *req, struct amber_proc *p,
				  const char *msg)
{
	if (!(req->flags & AMBER_CKPT_F_TREE) || p->pages_index < 0)
		return msg;
	return amber_msg("pid %d: %s", p->pid, msg);
}

/* The process-wide state, by its leader once every thread is parked. */
static int amber_proc_capture(struct amber_req *req, struct amber_proc *p)
{
	struct amber_state *st = &p->st;
	struct amber_err *e = &p->result;

	if ((current->flags & PF_EXITING) || !current->mm)
		return amber_fail(e, -ESRCH, "the process exited");
	/* The access check was for this identity; see amber_group_check(). */
	if (current_real_cred() != p->ident.cred ||
	    current->self_exec_id != p->ident.exec_id ||
	    get_dumpable(current->mm) != p->ident.dumpable)
		return amber_fail_retry(e, -EAGAIN,
					"the process executed a program or changed credentials or dumpability, try again");

	if (amber_task_capture(&st->task, e))
		return e->err;
	amber_regn_capture(&st->regn, current);
	if (amber_sig_capture(&st->sig, e) ||
	    amber_timers_capture(&st->timers, p->pid, req->ns, e) ||
	    amber_files_capture(&st->files, req->fileids, e))
		return e->err;

	/* Decided here, in the target: its tracking state cannot change. */
	amber_track_begin(&st->track);
	if (amber_mm_capture(&st->mm, &st->track, &req->cancelled, e))
		return e->err;
	amber_track_commit(&st->track, st->mm.pages_nr);
	return 0;
}

/* A thread's own state, in its context, before it parks. */
static int amber_thr_capture(struct amber_thr *thr)
{
	struct amber_regs_state *regs = thr->leader ? &thr->proc->st.regs :
						     &thr->regs;

	if (amber_regs_capture(regs, &thr->err))
		return thr->err.err;
	if (!thr->leader && amber_thread_capture(&thr->ts, &thr->err))
		return thr->err.err;
	return 0;
}

/* The last leader finished: the group is captured. */
static void amber_req_captured_locked(struct amber_req *req)
{
	lockdep_assert_held(&amber_reqs_lock);
	req->stopped_ns = ktime_get_ns() - req->t_stop;
	if (req->phase != AMBER_PH_CAPTURE)
		return;
	if ((req->flags & AMBER_CKPT_F_HOLD) && !req->cancelled) {
		amber_req_set_phase(req, AMBER_PH_HELD);
	} else {
		req->action = AMBER_RELEASE_RESUME;
		amber_req_set_phase(req, AMBER_PH_RESUME);
	}
}

static bool amber_thr_may_go(struct amber_thr *thr)
{
	enum amber_phase ph = READ_ONCE(thr->req->phase);

	return ph == AMBER_PH_RESUME ||
	       (thr->leader && ph == AMBER_PH_CAPTURE &&
		!READ_ONCE(thr->proc->capture_started));
}

/* Called with amber_reqs_lock held, after a parked thread's wait timed out. */
static bool amber_hold_expired(struct amber_req *req, long *next)
{
	unsigned long end;

	if (req->phase != AMBER_PH_HELD) {
		/* The requester is bounded and always resolves the phase. */
		return true;
	}
	if (READ_ONCE(req->writing)) {
		*next = msecs_to_jiffies(req->hold_ms);
		return false;
	}
	end = req->held_at + msecs_to_jiffies(req->hold_ms);
	if (time_before(jiffies, end)) {
		*next = end - jiffies;
		return false;
	}
	return true;
}

/*
 * Parks the calling thread until the group resumes. A leader leaves the
 * wait once to capture its process. Returns the release action.
 */
static u32 amber_thr_park(struct amber_thr *thr)
{
	struct amber_req *req = thr->req;
	struct amber_proc *p = thr->proc;
	long timeout = msecs_to_jiffies(req->park_ms);
	long left;
	u32 action;
	int err;

	for (;;) {
		left = wait_event_killable_timeout(req->thr_wq,
						   amber_thr_may_go(thr), timeout);
		mutex_lock(&amber_reqs_lock);
		if (req->phase == AMBER_PH_RESUME) {
			action = req->action;
			break;
		}
		if (left < 0) {
			/* Killed: a group not yet captured cannot be. */
			if (req->phase != AMBER_PH_HELD)
				amber_req_fail_locked(req, -EINTR,
						      amber_msg("pid %d tid %d was killed during the checkpoint",
								p->pid, thr->tid), false);
			action = AMBER_RELEASE_RESUME;
			break;
		}
		if (!left) {
			if (!amber_hold_expired(req, &timeout)) {
				mutex_unlock(&amber_reqs_lock);
				continue;
			}
			if (req->phase == AMBER_PH_HELD)
				pr_warn("pid %d: hold timed out after %u ms, resuming\n",
					req->pid, req->hold_ms);
			else
				amber_req_fail_locked(req, -ETIMEDOUT,
						      "the checkpoint did not finish in time",
						      false);
			req->action = AMBER_RELEASE_RESUME;
			amber_req_set_phase(req, AMBER_PH_RESUME);
			action = AMBER_RELEASE_RESUME;
			break;
		}
		if (thr->leader && req->phase == AMBER_PH_CAPTURE &&
		    !p->capture_started) {
			WRITE_ONCE(p->capture_started, true);
			mutex_unlock(&amber_reqs_lock);

			err = amber_proc_capture(req, p);

			mutex_lock(&amber_reqs_lock);
			if (err)
				amber_req_fail_locked(req, err,
						      amber_proc_msg(req, p, p->result.msg),
						      p->result.retry);
			if (!--req->nr_capturing)
				amber_req_captured_locked(req);
			wake_up_all(&req->req_wq);
		}
		mutex_unlock(&amber_reqs_lock);
	}
	thr->state = AMBER_THR_LEFT;
	amber_nr_stopped--;
	mutex_unlock(&amber_reqs_lock);
	return action;
}

/*
 * The task_work callback. Runs in the thread with current == thread, from
 * get_signal() (TWA_SIGNAL) on the way back to user mode, or from do_exit()
 * if the thread exits first.
 */
static void amber_thr_work(struct callback_head *work)
{
	struct amber_thr *thr = container_of(work, struct amber_thr, work);
	struct amber_req *req = thr->req;
	u64 now = ktime_get_ns();
	int err;

	mutex_lock(&amber_reqs_lock);
	req->nr_waiting--;
	wake_up_all(&req->req_wq);
	/* Past exit_mm() and exit_files(): nothing of it is left to stop. */
	if (req->phase != AMBER_PH_GATHER || (current->flags & PF_EXITING)) {
		thr->state = AMBER_THR_GONE;
		mutex_unlock(&amber_reqs_lock);
		goto out_put;
	}
	req->nr_waiting++;
	thr->state = AMBER_THR_RUNNING;
	if (!req->t_stop)
		req->t_stop = now;
	amber_nr_stopped++;
	mutex_unlock(&amber_reqs_lock);

	err = amber_thr_capture(thr);

	mutex_lock(&amber_reqs_lock);
	thr->state = AMBER_THR_PARKED;
	req->nr_waiting--;
	if (err)
		amber_req_fail_locked(req, err,
				      thr->leader ? amber_proc_msg(req, thr->proc, thr->err.msg) :
				      amber_msg("pid %d tid %d: %s", thr->proc->pid,
						thr->tid, thr->err.msg), thr->err.retry);
	wake_up_all(&req->req_wq);
	mutex_unlock(&amber_reqs_lock);

	/* Dies on the way out of task_work: no user instruction runs. */
	if (amber_thr_park(thr) == AMBER_RELEASE_KILL)
		send_sig(SIGKILL, current, 1);
out_put:
	amber_req_put(req);
	/*
	 * Last thing touching module memory but the return itself; module
	 * exit cannot start before this reference is gone.
	 */
	module_put(THIS_MODULE);
}

/* Ends a request that failed, in the requester: the group resumes. */
static int amber_req_error(struct amber_req *req, int err,
			   struct netlink_ext_ack *extack)
{
	mutex_lock(&amber_reqs_lock);
	/* A failure a thread reported first explains the others. */
	if (req->result.err) {
		err = req->result.err;
		amber_set_err(extack, &req->result);
	}
	amber_req_cancel_locked(req);
	mutex_unlock(&amber_reqs_lock);
	return err;
}

static struct amber_thr *amber_thr_find(struct amber_req *req,
					struct task_struct *task)
{
	struct amber_thr *thr;

	hash_for_each_possible(req->thr_hash, thr, hnode, (unsigned long)task)
		if (thr->task == task)
			return thr;
	return NULL;
}

/* Whether another live request has stopped or is stopping @task. */
static bool amber_thr_busy(struct amber_req *req, struct task_struct *task)
{
	struct amber_req *other;
	struct amber_thr *thr;

	lockdep_assert_held(&amber_reqs_lock);
	list_for_each_entry(other, &amber_reqs, node) {
		if (other == req || other->phase == AMBER_PH_RESUME)
			continue;
		thr = amber_thr_find(other, task);
		if (thr && thr->state >= AMBER_THR_QUEUED &&
		    thr->state <= AMBER_THR_PARKED)
			return true;
	}
	return false;
}

/* Adds @task (reference taken over) as a thread of @p and queues its callback. */
static int amber_thr_add(struct amber_req *req, struct amber_proc *p,
			 struct task_struct *task, struct netlink_ext_ack *extack)
{
	struct amber_thr *thr;
	int err;

	if (req->nr_thrs >= AMBER_MAX_THREADS) {
		put_task_struct(task);
		amber_set_msg(extack, amber_msg("more than %u threads in the group are not supported",
						AMBER_MAX_THREADS));
		return -E2BIG;
	}
	thr = kzalloc(sizeof(*thr), GFP_KERNEL);
	if (!thr) {
		put_task_struct(task);
		NL_SET_ERR_MSG(extack, "out of memory");
		return -ENOMEM;
	}
	init_task_work(&thr->work, amber_thr_work);
	thr->req = req;
	thr->proc = p;
	thr->task = task;
	thr->tid = task_pid_nr_ns(task, req->ns);
	thr->leader = task == p->task;
	if (thr->leader)
		p->leader = thr;

	mutex_lock(&amber_reqs_lock);
	req->thrs[req->nr_thrs++] = thr;
	hash_add(req->thr_hash, &thr->hnode, (unsigned long)task);
	if (req->cancelled) {
		err = -ECANCELED;
		NL_SET_ERR_MSG(extack, "the checkpoint was cancelled");
		goto out_unlock;
	}
	if (amber_thr_busy(req, task)) {
		err = -EBUSY;
		amber_set_msg(extack, amber_msg("a checkpoint of this process is already in progress (pid %d tid %d)",
						p->pid, thr->tid));
		goto out_unlock;
	}
	/* Each queued callback pins the module until it has returned. */
	if (!try_module_get(THIS_MODULE)) {
		err = -ENODEV;
		NL_SET_ERR_MSG(extack, "the module is unloading");
		goto out_unlock;
	}
	/*
	 * The callback's reference, and its count in nr_waiting: both before
	 * queueing, the callback drops them. It starts by taking
	 * amber_reqs_lock, which is held here.
	 */
	kref_get(&req->ref);
	req->nr_waiting++;
	thr->state = AMBER_THR_QUEUED;
	err = task_work_add(task, &thr->work, TWA_SIGNAL);
	if (err) {
		/* Past exit_task_work(): exited, nothing to stop. */
		req->nr_waiting--;
		thr->state = AMBER_THR_GONE;
		module_put(THIS_MODULE);
		/* Not the last reference: the requester holds one. */
		refcount_dec(&req->ref.refcount);
		err = 0;
	}
out_unlock:
	mutex_unlock(&amber_reqs_lock);
	return err;
}

static u64 amber_parent_id_of(struct amber_req *req, pid_t pid)
{
	unsigned int i;

	for (i = 0; i < req->nr_parents; i++)
		if (req->parents[i].pid == pid)
			return req->parents[i].id;
	return 0;
}

static struct amber_proc *amber_proc_find(struct amber_req *req,
					  struct task_struct *task)
{
	unsigned int i;

	for (i = 0; i < req->nr_procs; i++)
		if (req->procs[i]->task == task)
			return req->procs[i];
	return NULL;
}

/*
 * A process the scan has not seen before: a zombie, or a live process to
 * stop (access checked here, its pages file assigned, its buffer
 * preallocated). Takes over the reference on @task. Returns 1 if it must be
 * waited for (vfork child, exiting, or its parent is), 0 when added.
 */
static int amber_scan_new_proc(struct amber_req *req, struct task_struct *task,
			       bool root, struct amber_proc **out,
			       struct netlink_ext_ack *extack)
{
	pid_t pid = task_tgid_nr_ns(task, req->ns);
	struct amber_proc *p, *parent = NULL;
	bool zombie = false;

	*out = NULL;
	if (!root) {
		parent = amber_proc_find(req, amber_tree_parent(task));
		/* Its parent exited or is still pending: wait for it. */
		if (!parent || parent->zombie)
			goto wait;
	}
	if (task->exit_state) {
		if (task->exit_state != EXIT_ZOMBIE)
			goto skip;		/* being reaped */
		if (!thread_group_empty(task)) {
			put_task_struct(task);
			amber_set_msg(extack, amber_msg("pid %d: the process's main thread exited: not supported",
							pid));
			return -EOPNOTSUPP;
		}
		zombie = true;
	} else if (task->flags & PF_EXITING) {
		goto wait;			/* soon a zombie, or gone */
	} else if (READ_ONCE(task->vfork_done)) {
		goto wait;			/* a vfork child: until exec or exit */
	}

	if (req->nr_procs >= AMBER_TREE_MAX_PROCS) {
		put_task_struct(task);
		amber_set_msg(extack, amber_msg("more than %u processes in the tree are not supported",
						AMBER_TREE_MAX_PROCS));
		return -E2BIG;
	}
	p = kzalloc(sizeof(*p), GFP_KERNEL);
	if (!p) {
		put_task_struct(task);
		NL_SET_ERR_MSG(extack, "out of memory");
		return -ENOMEM;
	}
	p->task = task;
	p->pid = pid;
	p->zombie = zombie;
	p->seen = true;
	p->pages_index = -1;
	amber_mm_init(&p->st.mm);
	req->procs[req->nr_procs++] = p;
	*out = p;
	if (zombie) {
		p->exit_code = amber_tree_zombie_status(task);
		return 0;
	}

	/* Taken again once all are parked: see amber_group_check(). */
	amber_ident_get(task, &p->ident);
	if (!amber_ptrace_may_access(task, PTRACE_MODE_ATTACH_REALCREDS)) {
		amber_set_msg(extack, amber_msg("pid %d: no ptrace access to the process (PTRACE_MODE_ATTACH)",
						pid));
		return -EPERM;
	}
	/* What is refused anyway is refused before anything is stopped. */
	if (amber_files_precheck(task, &p->result)) {
		amber_set_msg(extack, amber_proc_msg(req, p, p->result.msg));
		return p->result.err;
	}
	p->st.track.want = req->flags & AMBER_CKPT_F_TRACK;
	if (root) {
		p->pages = get_file(req->root_pages);
		p->st.track.parent_id = req->parent_id;
	} else {
		p->pages_index = req->nr_indexed;
		if (req->nr_indexed >= req->nr_pool)
			return 0;	/* counted by the caller */
		p->pages = req->pool[req->nr_indexed++];
		p->st.track.parent_id = amber_parent_id_of(req, pid);
	}
	amber_mm_prepare(&p->st.mm, task, p->pages, p->st.track.parent_id,
			 p->st.track.want, &req->cancelled);
	return 0;

wait:
	put_task_struct(task);
	return 1;
skip:
	put_task_struct(task);
	return 0;
}

/* The live processes past the pool: -EAGAIN, saying how many files are needed. */
static int amber_scan_pool(struct amber_req *req, struct netlink_ext_ack *extack)
{
	unsigned int i, need = 0;

	for (i = 0; i < req->nr_procs; i++)
		if (req->procs[i]->pages_index >= 0)
			need++;
	if (need <= req->nr_pool)
		return 0;
	amber_set_msg(extack, amber_msg("the tree of pid %d needs %u pages files (PAGES_FDS has %u)",
					req->pid, need, req->nr_pool));
	amber_set_pages_files(extack, need);
	return -EAGAIN;
}

/*
 * One scan of the group: new processes and threads are added and their
 * callbacks queued. *@more says whether anything was added or is pending.
 */
static int amber_scan(struct amber_req *req, struct task_struct *root,
		      bool *more, bool *pending, struct netlink_ext_ack *extack)
{
	unsigned int max = AMBER_TREE_MAX_PROCS + 1;
	struct task_struct **tasks, **thr_tasks;
	struct amber_proc *p, **live;
	unsigned int i, j, nl = 0;
	int n, nt, err = 0, r;

	*more = false;
	*pending = false;
	tasks = kvmalloc_array(max, sizeof(*tasks), GFP_KERNEL);
	live = kvmalloc_array(max, sizeof(*live), GFP_KERNEL);
	thr_tasks = kvmalloc_array(AMBER_PROC_MAX_THREADS, sizeof(*thr_tasks), GFP_KERNEL);
	if (!tasks || !live || !thr_tasks) {
		kvfree(tasks);
		kvfree(live);
		kvfree(thr_tasks);
		NL_SET_ERR_MSG(extack, "out of memory");
		return -ENOMEM;
	}
	n = amber_tree_collect(root, req->flags & AMBER_CKPT_F_TREE, tasks, max);
	if (n < 0) {
		err = n;
		if (err == -E2BIG)
			amber_set_msg(extack, amber_msg("more than %u processes in the tree are not supported",
							AMBER_TREE_MAX_PROCS));
		else
			NL_SET_ERR_MSG(extack, "out of memory");
		goto out;
	}
	for (i = 0; i < req->nr_procs; i++)
		req->procs[i]->seen = false;

	/*
	 * First every process: checks, pages files and buffers (which take
	 * time: allocating and zeroing) before any thread is stopped.
	 */
	for (i = 0; i < n; i++) {
		struct task_struct *task = tasks[i];

		tasks[i] = NULL;
		p = amber_proc_find(req, task);
		if (p) {
			put_task_struct(task);
			p->seen = true;
			if (p->zombie)
				continue;
			if (task->exit_state || (task->flags & PF_EXITING) ||
			    (p->leader && p->leader->state == AMBER_THR_GONE))
				goto exited;
		} else {
			r = amber_scan_new_proc(req, task, !i, &p, extack);
			if (r < 0) {
				err = r;
				goto out_put;
			}
			if (r > 0)
				*pending = true;
			if (!p || p->zombie)
				continue;
			*more = true;
		}
		live[nl++] = p;
	}

	for (i = 0; i < req->nr_procs; i++) {
		p = req->procs[i];
		if (p->seen)
			continue;
		if (!p->zombie)
			goto exited;
		p->gone = true;		/* reaped meanwhile */
	}
	err = amber_scan_pool(req, extack);
	if (err)
		goto out;

	/* Then their threads. */
	for (i = 0; i < nl && !err; i++) {
		p = live[i];
		nt = amber_tree_threads(p->task, thr_tasks, AMBER_PROC_MAX_THREADS);
		if (nt < 0) {
			err = -E2BIG;
			amber_set_msg(extack, amber_msg("pid %d: more than %u threads in one process are not supported",
							p->pid, AMBER_PROC_MAX_THREADS));
			break;
		}
		for (j = 0; j < nt; j++) {
			if (err || amber_thr_find(req, thr_tasks[j])) {
				put_task_struct(thr_tasks[j]);
				continue;
			}
			err = amber_thr_add(req, p, thr_tasks[j], extack);
			*more = true;
		}
	}
	goto out;

exited:
	amber_set_msg(extack, amber_msg("pid %d exited during the checkpoint, try again",
					p->pid));
	amber_set_retry(extack);
	err = -EAGAIN;
out_put:
	for (i = 0; i < n; i++)
		if (tasks[i])
			put_task_struct(tasks[i]);
out:
	kvfree(tasks);
	kvfree(live);
	kvfree(thr_tasks);
	return err;
}

/* A thread that has not stopped, for the timeout message. */
static const char *amber_stop_timeout_msg(struct amber_req *req, u32 timeout_ms)
{
	struct amber_thr *late = NULL;
	unsigned int i;

	mutex_lock(&amber_reqs_lock);
	for (i = 0; i < req->nr_thrs && !late; i++)
		if (req->thrs[i]->state == AMBER_THR_QUEUED)
			late = req->thrs[i];
	mutex_unlock(&amber_reqs_lock);
	if (!late)
		return amber_msg("the process did not stop within %u ms: a vfork() child did not execute a program",
				 timeout_ms);
	return amber_msg("the process did not stop within %u ms %s: pid %d tid %d",
			 timeout_ms, "(stopped, traced or in an uninterruptible sleep?)",
			 late->proc->pid, late->tid);
}

/*
 * A thread of the group blocked in vfork() parks only once its child has
 * executed a program or exited: the wait in vfork() is killable, not
 * interruptible, so the task_work cannot run before. Returns such a child's
 * pid (its parent's in @ppid), 0 if there is none. The child itself is
 * never parked (see amber_scan_new_proc()). RCU, as kmod/tree.c walks.
 */
static pid_t amber_vfork_child(struct amber_req *req, pid_t *ppid)
{
	struct task_struct *p, *parent;
	pid_t child = 0;

	rcu_read_lock();
	for_each_process(p) {
		if (!READ_ONCE(p->vfork_done))
			continue;
		/* The thread that called vfork() (no CLONE_PARENT with vfork). */
		parent = rcu_dereference(p->real_parent);
		if (!amber_proc_find(req, READ_ONCE(parent->group_leader)))
			continue;
		child = task_tgid_nr_ns(p, req->ns);
		*ppid = task_tgid_nr_ns(parent, req->ns);
		if (child && *ppid)
			break;
		child = 0;
	}
	rcu_read_unlock();
	return child;
}

/*
 * Stops the group: scans and waits until a scan that started with every
 * known thread parked finds nothing new and nothing pending. A thread held
 * in vfork() for AMBER_VFORK_MAX_MS by a child that does not execute a
 * program fails the request at once, naming both (restore cannot recreate
 * a child running on its parent's memory): nothing stays stopped.
 */
static int amber_group_stop(struct amber_req *req, struct task_struct *root,
			    u32 timeout_ms, struct netlink_ext_ack *extack)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(timeout_ms);
	unsigned long vfork_since = 0;
	pid_t vfork_child = 0, child, vfork_parent = 0;
	bool more, pending, idle;
	long left, wait;
	int err;

	for (;;) {
		/* Only a scan that starts with everything parked can be the last. */
		mutex_lock(&amber_reqs_lock);
		idle = !req->nr_waiting;
		mutex_unlock(&amber_reqs_lock);
		err = amber_scan(req, root, &more, &pending, extack);
		if (err)
			return amber_req_error(req, err, extack);
		if (idle && !more && !pending)
			return 0;

		/* Whatever idle was: the scan may just have queued the parent. */
		child = amber_vfork_child(req, &vfork_parent);
		if (child != vfork_child) {
			vfork_child = child;
			vfork_since = jiffies;
		}
		if (vfork_child && time_after(jiffies, vfork_since +
					      msecs_to_jiffies(AMBER_VFORK_MAX_MS))) {
			amber_set_msg(extack, amber_msg("pid %d is blocked in vfork(): its child pid %d has not executed a program for %u ms; a process sharing its parent's memory is not supported",
							vfork_parent, vfork_child,
							AMBER_VFORK_MAX_MS));
			return amber_req_error(req, -EBUSY, extack);
		}
		pending |= vfork_child;	/* polled, whatever the scan says */

		left = (long)(deadline - jiffies);
		if (left <= 0) {
			amber_set_msg(extack, amber_stop_timeout_msg(req, timeout_ms));
			return amber_req_error(req, -ETIMEDOUT, extack);
		}
		/* A pending vfork child or exiting process is polled. */
		if (pending) {
			wait = min_t(long, left, msecs_to_jiffies(AMBER_RESCAN_MS));
			left = wait_event_killable_timeout(req->req_wq,
							   READ_ONCE(req->cancelled), wait);
		} else {
			left = wait_event_killable_timeout(req->req_wq,
							   !READ_ONCE(req->nr_waiting) ||
							   READ_ONCE(req->cancelled), left);
		}
		if (left < 0) {
			NL_SET_ERR_MSG(extack, "interrupted while waiting for the process");
			return amber_req_error(req, -EINTR, extack);
		}
		if (READ_ONCE(req->cancelled)) {
			NL_SET_ERR_MSG(extack, "the checkpoint was cancelled");
			return amber_req_error(req, -ECANCELED, extack);
		}
	}
}

static int amber_thr_cmp(const void *a, const void *b)
{
	const struct amber_thr *x = *(const struct amber_thr **)a;
	const struct amber_thr *y = *(const struct amber_thr **)b;

	return x->tid < y->tid ? -1 : x->tid > y->tid;
}

/*
 * Everything is parked: identities cannot change any more. Checks access
 * again, records each process's place in the tree and its threads.
 */
/* What a parked thread shares with clone(CLONE_FILES) and clone(CLONE_FS). */
struct amber_shared {
	const void *files, *fs;		/* compared only */
	int files_users, fs_users;	/* tasks using them, as the kernel counts */
};

static void amber_shared_get(struct task_struct *t, struct amber_shared *s)
{
	/* Parked: neither can change (no unshare(), no exec) until resumed. */
	task_lock(t);
	s->files = t->files;
	s->files_users = t->files ? atomic_read(&t->files->count) : 0;
	s->fs = t->fs;
	if (t->fs) {
		spin_lock(&t->fs->lock);
		s->fs_users = t->fs->users;
		spin_unlock(&t->fs->lock);
	} else {
		s->fs_users = 0;
	}
	task_unlock(t);
}

/*
 * At the cut: which member shares its fd table (files_struct) and its
 * cwd/root/umask (fs_struct) with which other member, for the tool to
 * create it with CLONE_FILES / CLONE_FS. Threads of one process always
 * share them; across processes (clone() without CLONE_THREAD) each member
 * records the first member, in request order, with the same struct. A
 * struct with more users than parked threads of the request using it is
 * also used outside the checkpoint: refused, as no restore can share it
 * with a process that is not restored.
 */
static int amber_group_sharing(struct amber_req *req, struct netlink_ext_ack *extack)
{
	struct amber_shared *thr;
	unsigned int i, j, k;
	int err = 0;

	thr = kvcalloc(max(req->nr_thrs, 1U), sizeof(*thr), GFP_KERNEL);
	if (!thr) {
		NL_SET_ERR_MSG(extack, "out of memory");
		return amber_req_error(req, -ENOMEM, extack);
	}
	for (j = 0; j < req->nr_thrs; j++)
		if (req->thrs[j]->state == AMBER_THR_PARKED)
			amber_shared_get(req->thrs[j]->task, &thr[j]);

	for (i = 0; i < req->nr_procs && !err; i++) {
		struct amber_proc *p = req->procs[i];
		struct amber_shared s;
		int files_in = 0, fs_in = 0;

		if (p->gone || p->zombie)
			continue;
		amber_shared_get(p->task, &s);
		for (j = 0; j < req->nr_thrs; j++) {
			files_in += s.files && thr[j].files == s.files;
			fs_in += s.fs && thr[j].fs == s.fs;
		}
		for (k = 0; k < i; k++) {
			struct amber_proc *q = req->procs[k];
			struct amber_shared o;

			if (q->gone || q->zombie)
				continue;
			amber_shared_get(q->task, &o);
			if (!p->files_with && s.files && o.files == s.files)
				p->files_with = q->pid;
			if (!p->fs_with && s.fs && o.fs == s.fs)
				p->fs_with = q->pid;
		}
		if (s.files_users > files_in) {
			amber_set_msg(extack, amber_msg("pid %d: its fd table is shared (clone CLONE_FILES) with a process outside the checkpoint",
							p->pid));
			err = -EOPNOTSUPP;
		} else if (s.fs_users > fs_in) {
			amber_set_msg(extack, amber_msg("pid %d: its cwd, root and umask are shared (clone CLONE_FS) with a process outside the checkpoint",
							p->pid));
			err = -EOPNOTSUPP;
		}
	}
	kvfree(thr);
	return err ? amber_req_error(req, err, extack) : 0;
}

static int amber_group_check(struct amber_req *req, struct netlink_ext_ack *extack)
{
	unsigned int i, j;

	for (i = 0; i < req->nr_procs; i++) {
		struct amber_proc *p = req->procs[i];
		struct task_struct *parent;

		if (p->gone)
			continue;
		/*
		 * The identity the capture must find is the one checked now,
		 * with every thread parked: none of them can exec or change
		 * credentials any more. (A member that executed a program
		 * between enumeration and parking was checked then as what it
		 * was; it is checked again here as what it is.)
		 */
		if (!p->zombie) {
			put_cred(p->ident.cred);
			amber_ident_get(p->task, &p->ident);
		}
		if (!p->zombie &&
		    !amber_ptrace_may_access(p->task, PTRACE_MODE_ATTACH_REALCREDS)) {
			amber_set_msg(extack, amber_msg("pid %d: no ptrace access to the process (PTRACE_MODE_ATTACH)",
							p->pid));
			return amber_req_error(req, -EPERM, extack);
		}
		rcu_read_lock();
		parent = rcu_dereference(p->task->real_parent);
		p->ppid = parent ? task_tgid_nr_ns(parent, req->ns) : 0;
		rcu_read_unlock();
		p->pgid = task_pgrp_nr_ns(p->task, req->ns);
		p->sid = task_session_nr_ns(p->task, req->ns);
		if (p->zombie) {
			p->exit_code = amber_tree_zombie_status(p->task);
			continue;
		}
		if (!p->leader || p->leader->state != AMBER_THR_PARKED) {
			amber_set_msg(extack, amber_msg("pid %d exited during the checkpoint, try again",
							p->pid));
			amber_set_retry(extack);
			return amber_req_error(req, -EAGAIN, extack);
		}
		p->others = kcalloc(max(req->nr_thrs, 1U), sizeof(*p->others), GFP_KERNEL);
		if (!p->others) {
			NL_SET_ERR_MSG(extack, "out of memory");
			return amber_req_error(req, -ENOMEM, extack);
		}
		for (j = 0; j < req->nr_thrs; j++) {
			struct amber_thr *thr = req->thrs[j];

			if (thr->proc == p && !thr->leader &&
			    thr->state == AMBER_THR_PARKED)
				p->others[p->nr_others++] = thr;
		}
		sort(p->others, p->nr_others, sizeof(*p->others), amber_thr_cmp, NULL);
		p->nr_threads = p->nr_others + 1;
	}
	return amber_group_sharing(req, extack);
}

/* Lets the leaders capture, and waits for the last. */
static int amber_group_capture(struct amber_req *req, struct netlink_ext_ack *extack)
{
	unsigned int i, n = 0;
	long left;

	mutex_lock(&amber_reqs_lock);
	for (i = 0; i < req->nr_procs; i++)
		if (!req->procs[i]->zombie)
			n++;
	req->nr_capturing = n;
	if (!req->cancelled)
		amber_req_set_phase(req, AMBER_PH_CAPTURE);
	mutex_unlock(&amber_reqs_lock);

	left = wait_event_killable_timeout(req->req_wq,
					   !READ_ONCE(req->nr_capturing) ||
					   READ_ONCE(req->cancelled),
					   msecs_to_jiffies(AMBER_CAPTURE_MAX_MS));
	if (left < 0) {
		NL_SET_ERR_MSG(extack, "interrupted while waiting for the process");
		return amber_req_error(req, -EINTR, extack);
	}
	mutex_lock(&amber_reqs_lock);
	if (!req->result.err && !req->cancelled && !req->nr_capturing) {
		/* HELD or RESUME by now; the hold counts from the pages' end. */
		WRITE_ONCE(req->writing, true);
		mutex_unlock(&amber_reqs_lock);
		return 0;
	}
	mutex_unlock(&amber_reqs_lock);
	if (!left) {
		amber_set_msg(extack, amber_msg("the capture did not finish within %u ms",
						AMBER_CAPTURE_MAX_MS));
		return amber_req_error(req, -ETIMEDOUT, extack);
	}
	NL_SET_ERR_MSG(extack, "the checkpoint was cancelled");
	return amber_req_error(req, -ECANCELED, extack);
}

/*
 * After the capture, in the requester's context (the group runs again
 * unless held): writes the pages each leader left in memory to its pages
 * file. A held group's hold timeout only starts counting afterwards.
 */
static int amber_group_write_pages(struct amber_req *req,
				   struct netlink_ext_ack *extack)
{
	unsigned int i;
	int err = 0;

	for (i = 0; i < req->nr_procs && !err; i++) {
		struct amber_proc *p = req->procs[i];

		if (p->zombie)
			continue;
		err = amber_mm_write_pages(&p->st.mm, &p->result);
		if (err)
			amber_set_msg(extack, amber_proc_msg(req, p, p->result.msg));
	}
	mutex_lock(&amber_reqs_lock);
	req->held_at = jiffies;
	WRITE_ONCE(req->writing, false);
	mutex_unlock(&amber_reqs_lock);
	return err;
}

/* RELEASE from the requesting socket: a held group resumes or is killed. */
static int amber_req_session_release(struct amber_session *s, u32 action)
{
	struct amber_req *req = container_of(s, struct amber_req, session);
	int err = -ESRCH;

	mutex_lock(&amber_reqs_lock);
	if (req->phase == AMBER_PH_HELD) {
		req->action = action;
		amber_req_set_phase(req, AMBER_PH_RESUME);
		err = 0;
	}
	mutex_unlock(&amber_reqs_lock);
	return err;
}

/* The requesting socket closed, or the module is unloading: resume. */
static void amber_req_session_cancel(struct amber_session *s)
{
	amber_req_abort(container_of(s, struct amber_req, session));
}

static const struct amber_session_ops amber_req_session_ops = {
	.release	= amber_req_session_release,
	.sock_gone	= amber_req_session_cancel,
	.exit		= amber_req_session_cancel,
};

/*
 * The number of the live process of @ctx (a request) whose thread group id
 * is @pid, or 0. Captures run once the scan is over: the list is final.
 */
static pid_t amber_req_member(const void *ctx, struct pid *pid)
{
	const struct amber_req *req = ctx;
	unsigned int i;

	for (i = 0; i < req->nr_procs; i++)
		if (!req->procs[i]->zombie && task_tgid(req->procs[i]->task) == pid)
			return req->procs[i]->pid;
	return 0;
}

static struct amber_req *amber_req_new(const struct amber_ckpt_args *args,
				       struct file *pages)
{
	struct amber_req *req = kzalloc(sizeof(*req), GFP_KERNEL);

	if (!req)
		return NULL;
	req->procs = kvcalloc(AMBER_TREE_MAX_PROCS, sizeof(*req->procs), GFP_KERNEL);
	req->thrs = kvcalloc(AMBER_MAX_THREADS, sizeof(*req->thrs), GFP_KERNEL);
	req->fileids = amber_fileids_new();
	if (!req->procs || !req->thrs || !req->fileids) {
		if (req->fileids)
			amber_fileids_free(req->fileids);
		kvfree(req->procs);
		kvfree(req->thrs);
		kfree(req);
		return NULL;
	}
	kref_init(&req->ref);
	INIT_LIST_HEAD(&req->node);
	hash_init(req->thr_hash);
	init_waitqueue_head(&req->req_wq);
	init_waitqueue_head(&req->thr_wq);
	req->pid = args->pid;
	req->flags = args->flags;
	if (req->flags & AMBER_CKPT_F_HOLD)
		amber_fileids_set_hold(req->fileids);
	amber_fileids_set_members(req->fileids, amber_req_member, req,
				  req->flags & AMBER_CKPT_F_TREE);
	req->hold_ms = max_t(u32, args->timeout_ms, AMBER_HOLD_MIN_MS);
	req->park_ms = args->timeout_ms + AMBER_CAPTURE_MAX_MS + AMBER_PARK_SLACK_MS;
	req->ns = get_pid_ns(task_active_pid_ns(current));
	req->phase = AMBER_PH_GATHER;
	req->root_pages = pages;
	req->pool = args->pool;
	req->nr_pool = args->nr_pool;
	req->parents = args->parents;
	req->nr_parents = args->nr_parents;
	req->parent_id = args->parent_id;
	return req;
}

void amber_ckpt_args_free(const struct amber_ckpt_args *args)
{
	unsigned int i;

	for (i = 0; i < args->nr_pool; i++)
		fput(args->pool[i]);
	kfree(args->pool);
	kfree(args->parents);
}

/* Takes over args->pool and args->parents, also on failure. */
struct amber_req *amber_checkpoint(const struct amber_ckpt_args *args,
				   struct netlink_ext_ack *extack)
{
	struct task_struct *root;
	struct amber_req *req;
	struct file *pages;
	int err;

	root = amber_find_task(args->pid);
	if (!root) {
		NL_SET_ERR_MSG_ATTR(extack, args->pid_attr, "no such process");
		err = -ESRCH;
		goto err_args;
	}
	err = amber_check_root(root, args->pid_attr, extack);
	if (err)
		goto err_put_task;

	pages = amber_get_pages_file(args->pages_fd, args->fd_attr, extack);
	if (IS_ERR(pages)) {
		err = PTR_ERR(pages);
		goto err_put_task;
	}

	req = amber_req_new(args, pages);
	if (!req) {
		fput(pages);
		NL_SET_ERR_MSG(extack, "out of memory");
		err = -ENOMEM;
		goto err_put_task;
	}
	/* From here on, the request owns the files. */
	mutex_lock(&amber_reqs_lock);
	list_add_tail(&req->node, &amber_reqs);
	mutex_unlock(&amber_reqs_lock);
	/* A failed add leaves the session empty: the release ignores it. */
	err = amber_session_add(&req->session, &amber_req_session_ops,
				AMBER_SESSION_CHECKPOINT, task_pid(root),
				args->portid, args->net);
	if (err)
		NL_SET_ERR_MSG(extack, "the module is unloading");

	if (!err)
		err = amber_group_stop(req, root, args->timeout_ms, extack);
	if (!err)
		err = amber_group_check(req, extack);
	if (!err)
		err = amber_group_capture(req, extack);
	if (!err)
		err = amber_group_write_pages(req, extack);
	put_task_struct(root);
	if (err) {
		/* A held group whose image is incomplete resumes. */
		amber_req_abort(req);
		amber_req_put(req);
		return ERR_PTR(err);
	}
	return req;

err_put_task:
	put_task_struct(root);
err_args:
	amber_ckpt_args_free(args);
	return ERR_PTR(err);
}

u32 amber_ckpt_nr_stopped(void)
{
	u32 n;

	mutex_lock(&amber_reqs_lock);
	n = amber_nr_stopped;
	mutex_unlock(&amber_reqs_lock);
	return n;
}
