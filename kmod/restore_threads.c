// SPDX-License-Identifier: GPL-2.0
/*
 * Restore: the stub's other threads (AMBER_A_THREADS).
 *
 * The stub created them with clone3(set_tid) and left them blocked in a
 * system call. Phase A validates every thread's state like the leader's and
 * checks that the TIDs are exactly the stub's other threads. Before the
 * point of no return each thread is parked in the module: a task_work
 * queued with TWA_SIGNAL interrupts its system call, and the thread waits
 * in amber_rthread_work() for the leader's verdict. After a successful
 * phase B every thread sets its own state in its own context and returns
 * to user mode with orig_ax = -1 (no restart of the stub's system call);
 * after a refusal it returns unchanged and its system call restarts; after
 * a failure past the point of no return it dies with the process.
 */
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/sched/coredump.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/task_work.h>

#include "restore.h"

/* How long the stub's threads may take to reach their park point. */
#define AMBER_RESTORE_PARK_MS	10000

/* The attribute stream of the request (the family has no user header). */
static struct nlattr *amber_threads_attrs(struct genl_info *info, int *len)
{
	*len = nlmsg_len(info->nlhdr) - GENL_HDRLEN;
	return (struct nlattr *)((u8 *)nlmsg_data(info->nlhdr) + GENL_HDRLEN);
}

/* AMBER_A_THREADS may be given several times (a nest holds at most 64 KiB). */
static unsigned int amber_threads_count(struct genl_info *info)
{
	const struct nlattr *a, *t;
	unsigned int n = 0;
	int len, rem, rem2;

	nla_for_each_attr(a, amber_threads_attrs(info, &len), len, rem) {
		if (nla_type(a) != AMBER_A_THREADS)
			continue;
		nla_for_each_nested(t, a, rem2)
			n++;
	}
	return n;
}

/* The stub's thread @tid: a reference, or an error (extack set). */
static int amber_rthread_lookup(struct amber_restore *r, const struct nlattr *nla,
				struct amber_rthread *t)
{
	struct task_struct *task;

	rcu_read_lock();
	task = pid_task(find_vpid(t->tid), PIDTYPE_PID);
	if (task)
		get_task_struct(task);
	rcu_read_unlock();
	if (!task) {
		amber_restore_err(r, nla, "no such thread in the stub's pid namespace");
		return -ESRCH;
	}
	t->task = task;
	if (task == current) {
		amber_restore_err(r, nla,
				  "is the calling leader (its state goes in TASK, REGS, FPU, SIGNALS)");
		return -EINVAL;
	}
	if (!same_thread_group(task, current)) {
		amber_restore_err(r, nla, "is not a thread of the calling stub (pid %d)",
				  task_tgid_vnr(task));
		return -EINVAL;
	}
	if (task->flags & PF_EXITING) {
		amber_restore_err(r, nla, "is exiting");
		return -ESRCH;
	}
	return 0;
}

/* One AMBER_A_THREAD; @prev is the TID before it (0 for the first). */
static int amber_rthread_parse(struct amber_restore *r, const struct nlattr *nla,
			       struct amber_rthread *t, pid_t prev, unsigned int idx)
{
	struct nlattr *tb[AMBER_THREAD_MAX + 1];
	struct amber_rtask_attrs a;
	int err;

	err = nla_parse_nested(tb, AMBER_THREAD_MAX, nla, NULL, r->extack);
	if (err)
		return err;
	if (!tb[AMBER_THREAD_TID]) {
		NL_SET_ERR_ATTR_MISS(r->extack, nla, AMBER_THREAD_TID);
		amber_restore_err(r, nla, "thread %u of AMBER_A_THREADS has no TID", idx);
		return -EINVAL;
	}
	t->tid = nla_get_u32(tb[AMBER_THREAD_TID]);
	r->err_tid = t->tid;
	if (t->tid <= prev) {
		amber_restore_err(r, tb[AMBER_THREAD_TID], t->tid == prev ?
				  "is listed twice" : "is not in ascending TID order");
		return -EINVAL;
	}
	err = amber_rthread_lookup(r, tb[AMBER_THREAD_TID], t);
	if (err)
		return err;
	if (!tb[AMBER_THREAD_REGS]) {
		NL_SET_ERR_ATTR_MISS(r->extack, nla, AMBER_THREAD_REGS);
		amber_restore_err(r, nla, "registers (AMBER_THREAD_REGS) are missing");
		return -EINVAL;
	}
	err = amber_rregs_prepare(r, tb[AMBER_THREAD_REGS], tb[AMBER_THREAD_FPU], &t->regs);
	if (err)
		return err;

	a = (struct amber_rtask_attrs) {
		.rseq = tb[AMBER_THREAD_RSEQ],
		.rseq_len = tb[AMBER_THREAD_RSEQ_LEN],
		.rseq_sig = tb[AMBER_THREAD_RSEQ_SIG],
		.clear_child_tid = tb[AMBER_THREAD_CLEAR_CHILD_TID],
		.robust_list = tb[AMBER_THREAD_ROBUST_LIST],
		.robust_list_len = tb[AMBER_THREAD_ROBUST_LIST_LEN],
		.sas_sp = tb[AMBER_THREAD_SAS_SP],
		.sas_size = tb[AMBER_THREAD_SAS_SIZE],
		.sas_flags = tb[AMBER_THREAD_SAS_FLAGS],
		.parent = nla,
	};
	err = amber_rtask_prepare(r, &a, &t->t);
	if (err)
		return err;

	sigemptyset(&t->blocked);
	if (tb[AMBER_THREAD_BLOCKED])
		t->blocked.sig[0] = nla_get_u64(tb[AMBER_THREAD_BLOCKED]);
	sigdelsetmask(&t->blocked, sigmask(SIGKILL) | sigmask(SIGSTOP));
	if (tb[AMBER_THREAD_COMM]) {
		nla_strscpy(t->comm, tb[AMBER_THREAD_COMM], sizeof(t->comm));
		t->has_comm = true;
	}
	/*
	 * AMBER_THREAD_PENDING is the stub's job, as SIGNALS' pending
	 * signals are: it queues them to the thread (rt_tgsigqueueinfo)
	 * while the thread still blocks everything.
	 */
	r->err_tid = 0;
	return 0;
}

static bool amber_rthreads_has(const struct amber_rproc *p, pid_t tid)
{
	unsigned int lo = 0, hi = p->nr_threads;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (p->threads[mid].tid == tid)
			return true;
		if (p->threads[mid].tid < tid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* A thread of the stub that THREADS does not list (0 if none). */
static pid_t amber_rthreads_unlisted(const struct amber_rproc *p)
{
	struct task_struct *t;
	pid_t missing = 0;

	rcu_read_lock();
	for_each_thread(current, t) {
		pid_t tid = task_pid_vnr(t);

		/* 0: exiting, its pid already detached */
		if (t != current && tid && !amber_rthreads_has(p, tid)) {
			missing = tid;
			break;
		}
	}
	rcu_read_unlock();
	return missing;
}

/* The whole list must be exactly the stub's other threads. */
static int amber_rthreads_check_all(struct amber_restore *r)
{
	pid_t missing = amber_rthreads_unlisted(r->proc);

	if (missing) {
		amber_restore_err(r, r->info->attrs[AMBER_A_THREADS],
				  "thread %d of the stub is not in AMBER_A_THREADS (%u listed, the stub has %d other threads)",
				  missing, r->proc->nr_threads, get_nr_threads(current) - 1);
		return -EINVAL;
	}
	return 0;
}

/* Phase A: every AMBER_A_THREAD, in order. Nothing is changed. */
int amber_restore_threads_prepare(struct amber_restore *r)
{
	struct amber_rproc *p = r->proc;
	const struct nlattr *a, *nla;
	unsigned int n, i = 0;
	int len, rem, rem2, err;
	pid_t prev = 0;

	if (!r->info->attrs[AMBER_A_THREADS])
		return 0;
	n = amber_threads_count(r->info);
	if (!n)
		return amber_rthreads_check_all(r);
	p->threads = kvcalloc(n, sizeof(*p->threads), GFP_KERNEL_ACCOUNT);
	if (!p->threads)
		return -ENOMEM;

	nla_for_each_attr(a, amber_threads_attrs(r->info, &len), len, rem) {
		if (nla_type(a) != AMBER_A_THREADS)
			continue;
		nla_for_each_nested(nla, a, rem2) {
			struct amber_rthread *t = &p->threads[i];

			t->proc = p;
			p->nr_threads = ++i;	/* so that release sees its task */
			err = amber_rthread_parse(r, nla, t, prev, i - 1);
			if (err)
				return err;
			prev = t->tid;
		}
	}
	return amber_rthreads_check_all(r);
}

void amber_rthread_free(struct amber_rthread *t)
{
	amber_rregs_free(&t->regs);
	if (t->task)
		put_task_struct(t->task);
	t->task = NULL;
}

/* The first thread that is not parked, or that exited (0 if none). */
static pid_t amber_rthreads_first(struct amber_rproc *p, bool exited)
{
	unsigned int i;

	for (i = 0; i < p->nr_threads; i++) {
		struct amber_rthread *t = &p->threads[i];

		if (exited ? READ_ONCE(t->exited) : !READ_ONCE(t->parked) && !READ_ONCE(t->exited))
			return t->tid;
	}
	return 0;
}

static int amber_rthreads_queue(struct amber_restore *r)
{
	struct amber_rproc *p = r->proc;
	unsigned int i;
	int err;

	for (i = 0; i < p->nr_threads; i++) {
		struct amber_rthread *t = &p->threads[i];

		/* Each queued callback pins the module until it has returned. */
		if (!try_module_get(THIS_MODULE)) {
			amber_restore_err(r, NULL, "the module is unloading");
			return -ENODEV;
		}
		init_task_work(&t->twork, amber_rthread_work);
		amber_rproc_get(p);
		err = task_work_add(t->task, &t->twork, TWA_SIGNAL);
		if (err) {
			amber_rproc_put(p);
			module_put(THIS_MODULE);
			r->err_tid = t->tid;
			amber_restore_err(r, NULL, "is exiting");
			r->err_tid = 0;
			return -ESRCH;
		}
	}
	return 0;
}

/*
 * Park every other thread in the module before the point of no return.
 * On failure the caller sets AMBER_RP_ABORT: parked threads go back to
 * their system call unchanged, queued ones return as soon as they run.
 */
int amber_restore_threads_park(struct amber_restore *r)
{
	struct amber_rproc *p = r->proc;
	pid_t tid;
	long left;
	int err;

	if (!p->nr_threads)
		return 0;
	err = amber_rthreads_queue(r);
	if (err)
		return err;
	left = wait_event_killable_timeout(p->wq, READ_ONCE(p->nr_parked) == p->nr_threads,
					   msecs_to_jiffies(AMBER_RESTORE_PARK_MS));
	if (left < 0) {
		amber_restore_err(r, NULL, "killed while parking the stub's threads");
		return -EINTR;
	}
	if (!left) {
		r->err_tid = amber_rthreads_first(p, false);
		amber_restore_err(r, NULL,
				  "did not stop within %u ms (stopped, traced or in an uninterruptible sleep?)",
				  AMBER_RESTORE_PARK_MS);
		r->err_tid = 0;
		return -ETIMEDOUT;
	}
	tid = amber_rthreads_first(p, true);
	if (tid) {
		r->err_tid = tid;
		amber_restore_err(r, NULL, "exited while being parked");
		r->err_tid = 0;
		return -ESRCH;
	}
	/* Parked threads cannot clone: the group is final now. */
	if (get_nr_threads(current) != p->nr_threads + 1) {
		err = amber_rthreads_check_all(r);
		if (!err)
			amber_restore_err(r, NULL,
					  "the stub has %d threads while its %u listed ones were parked",
					  get_nr_threads(current), p->nr_threads + 1);
		return err ?: -EBUSY;
	}
	return 0;
}

/* In the thread, after the leader's phase B: its own state. */
static void amber_rthread_apply(struct amber_rthread *t, struct amber_rproc *p)
{
	amber_rregs_write(&t->regs);
	sigprocmask(SIG_SETMASK, &t->blocked, NULL);
	/* A stub blocked in sigsuspend() or ppoll() must not get its old mask back. */
	clear_restore_sigmask();
	amber_rtask_commit(&t->t);
	if (t->has_comm) {
		/* __set_task_comm() is not exported; no perf/trace comm event. */
		task_lock(current);
		strscpy_pad(current->comm, t->comm, sizeof(current->comm));
		task_unlock(current);
	}
	if (p->cred) {
		/*
		 * The leader's committed credentials, shared as clone(CLONE_THREAD)
		 * shares them; commit_creds() takes over the reference.
		 * It may reset the mm's dumpable mode: set the leader's again.
		 */
		commit_creds((struct cred *)get_cred(p->cred));
		set_mask_bits(&current->mm->flags, MMF_DUMPABLE_MASK, p->dumpable);
	}
	if (p->has_personality)
		set_personality(p->personality);
	if (p->no_new_privs)
		task_set_no_new_privs(current);
}

/*
 * The park task_work of one thread. Runs in the thread with current ==
 * thread, from get_signal() (TWA_SIGNAL) on the way back to user mode, or
 * from do_exit() if the thread exits first.
 */
void amber_rthread_work(struct callback_head *head)
{
	struct amber_rthread *t = container_of(head, struct amber_rthread, twork);
	struct amber_rproc *p = t->proc;

	if (current->flags & PF_EXITING) {
		amber_rproc_thread_parked(p, t, true);
		goto out;
	}
	amber_rproc_thread_parked(p, t, false);
	switch (amber_rproc_wait_verdict(p)) {
	case AMBER_RP_ABORT:
		break;		/* refused: nothing changed, the system call restarts */
	case AMBER_RP_HELD:
	case AMBER_RP_RUN:
		/*
		 * Released first: a held thread that is killed dies as the
		 * stub's thread (no image clear_child_tid or robust list to
		 * process on exit).
		 */
		if (amber_rproc_wait_release(p)) {
			amber_rthread_apply(t, p);
			break;
		}
		fallthrough;
	default:
		/* Dies on the way out of task_work: no user instruction runs. */
		send_sig(SIGKILL, current, 1);
		break;
	}
out:
	amber_rproc_put(p);
	/* Last thing touching module memory but the return itself. */
	module_put(THIS_MODULE);
}
