// SPDX-License-Identifier: GPL-2.0
/*
 * The restore request lifecycle: AMBER_CMD_RESTORE's phases (see
 * restore.h), the shared state of one restore (struct amber_rproc), the
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

#include <linux/capability.h>
#include <linux/compat.h>
#include <linux/cred.h>
#include <linux/jiffies.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "creds.h"
#include "fdtable.h"
#include "mm.h"
#include "msg.h"
#include "regs.h"
#include "restore.h"
#include "signal.h"
#include "task.h"
#include "thread.h"

/* A formatted extack message (amber_msg() storage outlives the doit). */
void amber_restore_err(struct amber_restore *r, const struct nlattr *nla,
		       const char *fmt, ...)
{
	char buf[200];
	va_list args;

	va_start(args, fmt);
	vsnprintf(buf, sizeof(buf), fmt, args);
	va_end(args);
	if (r->err_tid)
		amber_set_msg(r->extack, amber_msg("thread %d: %s", r->err_tid, buf));
	else
		amber_set_msg(r->extack, amber_msg("%s", buf));
	if (r->extack && nla)
		r->extack->bad_attr = nla;
}

/* Who may restore: the stub itself, alone in its mm, with the capability. */
static int amber_restore_check_caller(struct amber_restore *r)
{
	if (!checkpoint_restore_ns_capable(current_user_ns())) {
		amber_restore_err(r, NULL,
				  "restore needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN");
		return -EPERM;
	}
	if ((current->flags & (PF_KTHREAD | PF_IO_WORKER)) || !current->mm) {
		amber_restore_err(r, NULL, "restore must be sent by the stub task itself");
		return -EINVAL;
	}
	if (test_thread_flag(TIF_ADDR32) || in_compat_syscall()) {
		amber_restore_err(r, NULL, "the stub must be a 64-bit task");
		return -EINVAL;
	}
	if (!thread_group_leader(current)) {
		amber_restore_err(r, NULL, "restore must be sent by the stub's thread-group leader");
		return -EINVAL;
	}
	if (!thread_group_empty(current) && !r->args->threads_nla) {
		amber_restore_err(r, NULL,
				  "the stub has %d other threads, but the request lists none (AMBER_A_THREADS)",
				  get_nr_threads(current) - 1);
		return -EBUSY;
	}
	/*
	 * Another process sharing this mm (CLONE_VM without CLONE_THREAD sets
	 * MMF_MULTIPROCESS; a vfork child borrows its parent's) would lose its
	 * memory. mm_users is no test: /proc readers and process_vm_readv()
	 * take transient references, and a concurrent `ps` must not make a
	 * restore fail.
	 */
	if (test_bit(MMF_MULTIPROCESS, &current->mm->flags) || current->vfork_done) {
		amber_restore_err(r, NULL,
				  "the stub's address space is shared with another process");
		return -EBUSY;
	}
	return 0;
}

/* Phase A: validate the whole request; nothing of the caller changes. */
static int amber_restore_prepare(struct amber_restore *r)
{
	int err;

	err = amber_restore_check_caller(r);
	if (!err)
		err = amber_restore_threads_prepare(r);
	if (!err)
		err = amber_restore_vmas_prepare(r);
	if (!err)
		err = amber_restore_mm_prepare(r);
	if (!err)
		err = amber_restore_files_prepare(r);
	if (!err)
		err = amber_restore_pages_prepare(r);
	if (!err)
		err = amber_restore_task_prepare(r);
	if (!err)
		err = amber_restore_signals_prepare(r);
	if (!err)
		err = amber_restore_close_fds_prepare(r);
	if (!err)
		err = amber_restore_regs_prepare(r);
	return err;
}

/* Phase B: past the point of no return. The caller kills us on failure. */
static int amber_restore_commit(struct amber_restore *r)
{
	struct amber_rproc *p = r->proc;
	int err;

	err = amber_restore_map(r);
	if (err)
		return err;
	err = amber_restore_pages(r);
	if (err)
		return err;
	amber_restore_mm_commit(r);
	amber_restore_task_commit(r);
	err = amber_restore_signals_commit(r);
	if (err)
		return err;
	amber_restore_creds_commit(r);
	amber_restore_dumpable_commit(r);
	amber_restore_close_fds_commit(r);

	/* What the threads take over from the leader. */
	p->cred = r->cred_changed ? get_cred(current_cred()) : NULL;
	p->dumpable = get_dumpable(current->mm);
	p->has_personality = r->has_personality;
	p->personality = r->personality;
	p->no_new_privs = r->no_new_privs;

	err = amber_restore_regs_queue(r);
	if (err)
		amber_restore_err(r, NULL, "queueing the register restore failed (%d)", err);
	return err;
}

static void amber_restore_free(struct amber_restore *r)
{
	amber_restore_regs_release(r);
	kfree(r->close_fds);
	amber_restore_creds_release(r);
	amber_restore_mm_release(r);
	if (r->proc)
		amber_rproc_put(r->proc);
	kfree(r);
}

/*
 * AMBER_CMD_RESTORE, sent by the stub about itself: validate everything
 * (phase A), park the other threads, then replace current (phase B).
 */
int amber_restore(const struct amber_restore_args *args, struct netlink_ext_ack *extack)
{
	struct amber_restore *r;
	int err;

	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	r->args = args;
	r->extack = extack;
	r->flags = args->flags;
	r->proc = amber_rproc_new(args->portid, args->net);
	if (IS_ERR(r->proc)) {
		err = PTR_ERR(r->proc);
		r->proc = NULL;
		if (err == -ENODEV)
			amber_restore_err(r, NULL, "the module is unloading");
		goto out;
	}

	err = amber_restore_prepare(r);
	if (!err)
		err = amber_restore_threads_park(r);
	if (err) {
		/* Parked threads go back to their system call, unchanged. */
		amber_rproc_set_state(r->proc, AMBER_RP_ABORT);
		goto out;
	}

	/* Point of no return: from here on a failure kills the stub. */
	err = amber_restore_commit(r);
	if (err) {
		send_sig(SIGKILL, current, 1);
		amber_rproc_set_state(r->proc, AMBER_RP_KILL);
	} else {
		amber_rproc_restored(r);
	}
out:
	/* Every refusal names its reason; this catches -ENOMEM and the like. */
	if (err && r->extack && !r->extack->_msg)
		amber_restore_err(r, NULL, "restore failed (%d)", err);
	amber_restore_free(r);
	return err;
}

/* ---- the shared state of one restore, and the hold ---- */

/*
 * The longest a parked thread waits for the leader's verdict (the leader
 * is filling memory from the pages files meanwhile); after that it kills
 * the process rather than wait for ever.
 */
#define AMBER_RESTORE_VERDICT_MAX_MS	(30 * 60 * 1000)

/*
 * amber_rprocs_lock protects the state, nr_parked, parked/exited flags of
 * their threads and the hold fields (hold, orphan, hold_deadline) of every
 * restore. A mutex: every user may sleep (the session callbacks run under
 * the registry's mutex, taken before this one).
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

	amber_rthreads_free(p);
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

void amber_rproc_thread_parked(struct amber_rproc *p, bool *flag)
{
	mutex_lock(&amber_rprocs_lock);
	WRITE_ONCE(*flag, true);
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
