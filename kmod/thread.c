// SPDX-License-Identifier: GPL-2.0
/*
 * Threads: what each thread registered with the kernel (rseq, futex lists,
 * sigaltstack), captured and restored for the leader and every other
 * thread, and the per-thread state of the threads other than the leader
 * (comm, registers, blocked mask, own pending signals).
 *
 * Restore of the stub's other threads (AMBER_A_THREADS): the stub created
 * them with clone3(set_tid) and left them blocked in a system call. Phase A
 * validates every thread's state like the leader's and checks that the
 * TIDs are exactly the stub's other threads. Before the point of no return
 * each thread is parked in the module: a task_work queued with TWA_SIGNAL
 * interrupts its system call, and the thread waits in amber_rthread_work()
 * for the leader's verdict. After a successful phase B every thread sets
 * its own state in its own context and returns to user mode with
 * orig_ax = -1 (no restart of the stub's system call); after a refusal it
 * returns unchanged and its system call restarts; after a failure past the
 * point of no return it dies with the process.
 */
#include <linux/mutex.h> /* 6.12's futex.h uses mutex_init() without it */
#include <linux/futex.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/rseq.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/task_work.h>

#include "regs.h"
#include "restore.h"
#include "signal.h"
#include "task.h"
#include "thread.h"

/* 6.1 has no rseq_len; registration with a smaller struct is refused there. */
#define AMBER_RSEQ_LEN	32

/* A thread's registrations, read in its own context (or while it is parked). */
void amber_regn_capture(struct amber_regn *r, struct task_struct *tsk)
{
#ifdef CONFIG_RSEQ
	r->rseq = (unsigned long)tsk->rseq;
	r->rseq_sig = tsk->rseq_sig;
	r->rseq_len = tsk->rseq ? AMBER_RSEQ_LEN : 0;
#endif
	r->clear_child_tid = (unsigned long)tsk->clear_child_tid;
#ifdef CONFIG_FUTEX
	r->robust_list = (unsigned long)tsk->robust_list;
	r->robust_list_len = sizeof(struct robust_list_head);
#endif
	r->sas_sp = tsk->sas_ss_sp;
	r->sas_size = tsk->sas_ss_size;
	r->sas_flags = tsk->sas_ss_flags;
}

/*
 * A thread other than the leader: the process-wide parts (actions, shared
 * queue) are the leader's. The action table is filled and dropped: it costs
 * a copy of 64 entries, and keeps one path for the pending queues.
 */
int amber_thread_capture(struct amber_thread_state *st, struct amber_err *e)
{
	struct task_struct *tsk = current;
	struct amber_sig_state *sig;
	int err;

	sig = kzalloc(sizeof(*sig), GFP_KERNEL);
	if (!sig)
		return amber_fail(e, -ENOMEM, "out of memory for a thread's signals");
	err = amber_sig_capture_one(sig, false, e);
	st->blocked = sig->blocked;
	st->pending = sig->pending;
	st->nr_pending = sig->nr_pending;
	kfree(sig);
	if (err)
		return err;

	get_task_comm(st->comm, tsk);
	amber_regn_capture(&st->regn, tsk);
	return amber_seccomp_check(tsk, e);
}

void amber_thread_free(struct amber_thread_state *st)
{
	kfree(st->pending);
	st->pending = NULL;
	st->nr_pending = 0;
}

/* ---- restore: registrations, of the leader and of every thread ---- */

static int amber_restore_user_ptr(struct amber_restore *r, const struct amber_nl_u64 *a,
				  unsigned long size, unsigned long align,
				  const char *what, unsigned long *out)
{
	u64 v = a->val;

	if (v && (v >= TASK_SIZE || TASK_SIZE - v < size || !IS_ALIGNED(v, align))) {
		amber_restore_err(r, a->nla, "%s 0x%llx is not a valid user address", what, v);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int amber_rregn_sas_prepare(struct amber_restore *r, const struct amber_regn_args *a,
				   struct amber_rregn *t)
{
	u32 mode;

	t->sas_flags = SS_DISABLE;
	if (!a->sas_flags.nla)
		return 0;
	t->sas_flags = a->sas_flags.val;
	mode = t->sas_flags & ~SS_FLAG_BITS;
	if (mode != SS_DISABLE && mode != SS_ONSTACK && mode != 0) {
		amber_restore_err(r, a->sas_flags.nla, "sigaltstack flags 0x%x are invalid",
				  t->sas_flags);
		return -EINVAL;
	}
	if (mode == SS_DISABLE)
		return 0;
	t->sas_sp = a->sas_sp.val;
	t->sas_size = a->sas_size.val;
	if (t->sas_sp >= TASK_SIZE || t->sas_size > TASK_SIZE - t->sas_sp ||
	    (t->sas_size && t->sas_size < MINSIGSTKSZ)) {
		amber_restore_err(r, a->sas_sp.nla, "sigaltstack 0x%lx+0x%zx is invalid",
				  t->sas_sp, t->sas_size);
		return -EINVAL;
	}
	return 0;
}

/* rseq, robust list, clear_child_tid and sigaltstack of one task (leader or thread). */
int amber_rregn_prepare(struct amber_restore *r, const struct amber_regn_args *a,
			struct amber_rregn *t)
{
	int err;

	err = amber_restore_user_ptr(r, &a->rseq, sizeof(struct rseq),
				     __alignof__(struct rseq), "rseq", &t->rseq);
	if (err)
		return err;
	if (t->rseq) {
		if (!a->rseq_sig.nla ||
		    (a->rseq_len.nla && a->rseq_len.val != sizeof(struct rseq))) {
			amber_restore_err(r, a->rseq.nla,
					  "rseq needs a signature and a length of %zu",
					  sizeof(struct rseq));
			return -EINVAL;
		}
		t->rseq_sig = a->rseq_sig.val;
	}
	if ((t->rseq && !IS_ENABLED(CONFIG_RSEQ)) ||
	    (a->robust_list.val && !IS_ENABLED(CONFIG_FUTEX))) {
		amber_restore_err(r, a->parent, "this kernel has no rseq or no futex support");
		return -EOPNOTSUPP;
	}
	err = amber_restore_user_ptr(r, &a->clear_child_tid, sizeof(int),
				     1, "clear_child_tid", &t->clear_child_tid);
	if (err)
		return err;
	err = amber_restore_user_ptr(r, &a->robust_list, sizeof(struct robust_list_head), 1,
				     "robust list", &t->robust_list);
	if (err)
		return err;
	if (t->robust_list && (!a->robust_list_len.nla ||
			       a->robust_list_len.val != sizeof(struct robust_list_head))) {
		amber_restore_err(r, a->robust_list.nla, "robust list length must be %zu",
				  sizeof(struct robust_list_head));
		return -EINVAL;
	}
	return amber_rregn_sas_prepare(r, a, t);
}

/* In current's own context: the fields amber_rregn_prepare() validated. */
void amber_rregn_commit(const struct amber_rregn *rt)
{
	struct task_struct *t = current;

#ifdef CONFIG_RSEQ
	t->rseq = (struct rseq __user *)rt->rseq;
	t->rseq_sig = rt->rseq_sig;
	/* As if preempted and migrated: abort a critical section, refresh cpu_id. */
	preempt_disable();
	t->rseq_event_mask = 0;
	rseq_preempt(t);
	rseq_migrate(t);
	preempt_enable();
#endif
	t->clear_child_tid = (int __user *)rt->clear_child_tid;
#ifdef CONFIG_FUTEX
	t->robust_list = (struct robust_list_head __user *)rt->robust_list;
#ifdef CONFIG_COMPAT
	t->compat_robust_list = NULL;
#endif
#endif
	t->sas_ss_sp = rt->sas_sp;
	t->sas_ss_size = rt->sas_size;
	t->sas_ss_flags = rt->sas_flags;
}

/* ---- restore: the stub's other threads ---- */

/* How long the stub's threads may take to reach their park point. */
#define AMBER_RESTORE_PARK_MS	10000

/* One thread other than the leader (AMBER_A_THREAD), validated. */
struct amber_rthread {
	struct callback_head twork;	/* parks the thread (TWA_SIGNAL) */
	struct amber_rproc *proc;
	struct task_struct *task;	/* reference */
	pid_t tid;
	bool parked;			/* under amber_rprocs_lock */
	bool exited;			/* reached its park point exiting */
	struct amber_rregs regs;
	struct amber_rregn t;
	sigset_t blocked;
	bool has_comm;
	char comm[TASK_COMM_LEN];
};

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
static int amber_rthread_parse(struct amber_restore *r, const struct amber_thread_args *ta,
			       struct amber_rthread *t, pid_t prev, unsigned int idx)
{
	const struct nlattr *nla = ta->nla;
	int err;

	if (!ta->tid.nla) {
		NL_SET_ERR_ATTR_MISS(r->extack, nla, AMBER_THREAD_TID);
		amber_restore_err(r, nla, "thread %u of AMBER_A_THREADS has no TID", idx);
		return -EINVAL;
	}
	t->tid = ta->tid.val;
	r->err_tid = t->tid;
	if (t->tid <= prev) {
		amber_restore_err(r, ta->tid.nla, t->tid == prev ?
				  "is listed twice" : "is not in ascending TID order");
		return -EINVAL;
	}
	err = amber_rthread_lookup(r, ta->tid.nla, t);
	if (err)
		return err;
	if (!ta->regs.nla) {
		NL_SET_ERR_ATTR_MISS(r->extack, nla, AMBER_THREAD_REGS);
		amber_restore_err(r, nla, "registers (AMBER_THREAD_REGS) are missing");
		return -EINVAL;
	}
	err = amber_rregs_prepare(r, &ta->regs, &t->regs);
	if (err)
		return err;
	err = amber_rregn_prepare(r, &ta->regn, &t->t);
	if (err)
		return err;

	amber_restore_mask(&t->blocked, &ta->blocked);
	t->has_comm = ta->has_comm;
	memcpy(t->comm, ta->comm, sizeof(t->comm));
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
		amber_restore_err(r, r->args->threads_nla,
				  "thread %d of the stub is not in AMBER_A_THREADS (%u listed, the stub has %d other threads)",
				  missing, r->proc->nr_threads, get_nr_threads(current) - 1);
		return -EINVAL;
	}
	return 0;
}

/* Phase A: every AMBER_A_THREAD, in order. Nothing is changed. */
int amber_restore_threads_prepare(struct amber_restore *r)
{
	const struct amber_restore_args *a = r->args;
	struct amber_rproc *p = r->proc;
	unsigned int n = a->nr_threads, i;
	pid_t prev = 0;
	int err;

	if (!a->threads_nla)
		return 0;
	if (!n)
		return amber_rthreads_check_all(r);
	p->threads = kvcalloc(n, sizeof(*p->threads), GFP_KERNEL_ACCOUNT);
	if (!p->threads)
		return -ENOMEM;

	for (i = 0; i < n; i++) {
		struct amber_rthread *t = &p->threads[i];

		t->proc = p;
		p->nr_threads = i + 1;	/* so that release sees its task */
		err = amber_rthread_parse(r, &a->threads[i], t, prev, i);
		if (err)
			return err;
		prev = t->tid;
	}
	return amber_rthreads_check_all(r);
}

void amber_rthreads_free(struct amber_rproc *p)
{
	unsigned int i;

	for (i = 0; i < p->nr_threads; i++) {
		struct amber_rthread *t = &p->threads[i];

		amber_rregs_free(&t->regs);
		if (t->task)
			put_task_struct(t->task);
		t->task = NULL;
	}
	kvfree(p->threads);
	p->threads = NULL;
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

/* In the thread, after the leader's phase B: its own state. */
static void amber_rthread_apply(struct amber_rthread *t, struct amber_rproc *p)
{
	amber_rregs_write(&t->regs);
	sigprocmask(SIG_SETMASK, &t->blocked, NULL);
	/* A stub blocked in sigsuspend() or ppoll() must not get its old mask back. */
	clear_restore_sigmask();
	amber_rregn_commit(&t->t);
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
static void amber_rthread_work(struct callback_head *head)
{
	struct amber_rthread *t = container_of(head, struct amber_rthread, twork);
	struct amber_rproc *p = t->proc;

	if (current->flags & PF_EXITING) {
		amber_rproc_thread_parked(p, &t->exited);
		goto out;
	}
	amber_rproc_thread_parked(p, &t->parked);
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

