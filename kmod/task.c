// SPDX-License-Identifier: GPL-2.0
/*
 * Task state of current: identity, credentials, cwd, umask, rlimits, rseq,
 * futex and sigaltstack registrations, exe path, and signal state.
 */
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/futex.h>
#include <linux/mm.h>
#include <linux/path.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/signal.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "files.h"
#include "task.h"

/* 6.1 has no rseq_len; registration with a smaller struct is refused there. */
#define AMBER_RSEQ_LEN	32

/*
 * Bounds that keep the TASK and SIGNALS nests of the reply under the 64 KiB
 * an attribute can hold.
 */
#define AMBER_MAX_GROUPS	4096
#define AMBER_MAX_PENDING	256

static char *amber_exe_path(struct mm_struct *mm)
{
	struct file *exe;
	char *path;

	rcu_read_lock();
	exe = rcu_dereference(mm->exe_file);
	if (exe && !get_file_rcu(exe))
		exe = NULL;
	rcu_read_unlock();
	if (!exe)
		return NULL;
	path = amber_path_dup(&exe->f_path);
	fput(exe);
	return path;
}

static int amber_cwd_capture(struct amber_task_state *st, struct amber_err *e)
{
	struct path pwd;

	get_fs_pwd(current->fs, &pwd);
	st->cwd = amber_path_dup(&pwd);
	path_put(&pwd);
	if (IS_ERR(st->cwd)) {
		int err = PTR_ERR(st->cwd);

		st->cwd = NULL;
		return amber_fail(e, err, "cannot resolve the current directory");
	}

	spin_lock(&current->fs->lock);
	st->umask = current->fs->umask;
	spin_unlock(&current->fs->lock);
	return 0;
}

/* A thread's registrations, read in its own context (or while it is parked). */
static void amber_regn_capture(struct amber_task_regn *r, struct task_struct *tsk)
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

int amber_task_capture(struct amber_task_state *st, struct amber_err *e)
{
	struct task_struct *tsk = current;
	int err;

	get_task_comm(st->comm, tsk);
	st->cred = get_current_cred();
	if (st->cred->group_info->ngroups > AMBER_MAX_GROUPS)
		return amber_fail(e, -E2BIG,
				  "more than 4096 supplementary groups are not supported");
	st->personality = tsk->personality;
	st->start_time_ns = tsk->start_boottime;
	st->dumpable = get_dumpable(tsk->mm);
	st->no_new_privs = task_no_new_privs(tsk);
#ifdef CONFIG_SECCOMP
	/* A restored process would run without its sandbox: refuse, by name. */
	if (READ_ONCE(tsk->seccomp.mode) != SECCOMP_MODE_DISABLED)
		return amber_fail(e, -EOPNOTSUPP, "seccomp filters are not supported yet");
#endif

	err = amber_cwd_capture(st, e);
	if (err)
		return err;

	/* As do_prlimit() reads them. */
	task_lock(tsk->group_leader);
	memcpy(st->rlim, tsk->signal->rlim, sizeof(st->rlim));
	task_unlock(tsk->group_leader);

	amber_regn_capture(&st->regn, tsk);

	st->exe = amber_exe_path(tsk->mm);
	if (IS_ERR(st->exe)) {
		err = PTR_ERR(st->exe);
		st->exe = NULL;
		return amber_fail(e, err, "cannot resolve the executable's path");
	}
	return 0;
}

void amber_task_free(struct amber_task_state *st)
{
	if (st->cred)
		put_cred(st->cred);
	st->cred = NULL;
	kfree(st->cwd);
	st->cwd = NULL;
	kfree(st->exe);
	st->exe = NULL;
}

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
static int amber_sig_capture_one(struct amber_sig_state *st, bool shared,
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
#ifdef CONFIG_SECCOMP
	if (READ_ONCE(tsk->seccomp.mode) != SECCOMP_MODE_DISABLED)
		return amber_fail(e, -EOPNOTSUPP, "seccomp filters are not supported yet");
#endif
	return 0;
}

void amber_thread_free(struct amber_thread_state *st)
{
	kfree(st->pending);
	st->pending = NULL;
	st->nr_pending = 0;
}
