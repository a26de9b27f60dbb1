// SPDX-License-Identifier: GPL-2.0
/*
 * The table of tracked processes.
 *
 * A checkpoint with AMBER_CKPT_F_TRACK clears the target's soft-dirty bits
 * (mm.c) and records a random 64-bit id for it here; the next checkpoint
 * passing that id as PARENT_ID saves only what changed since. An entry
 * names its process by a struct pid reference (a process that reuses the
 * PID number has another struct pid) and self_exec_id (an exec starts a new
 * program). Ids come from get_random_u64() and are never 0, so they do not
 * repeat across processes or module loads. An id is set to 0 (invalid)
 * before the bits are cleared and to a fresh value only once the capture
 * succeeded: a checkpoint that failed half way makes the next one full.
 *
 * Entries of processes that exited or executed a program are collected on
 * every table operation; the table is bounded and freed on module exit.
 */
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/random.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/slab.h>
#include <net/netlink.h>

#include "access.h"
#include "track.h"

#define AMBER_TRACK_MAX		4096

struct amber_tracked {
	struct list_head node;	/* amber_tracked_list */
	struct pid *pid;	/* reference */
	u64 exec_id;		/* self_exec_id when tracking started */
	u64 id;			/* current tracking id, 0 = invalid */
	struct amber_vma_sig *sigs;	/* private VMAs at that checkpoint */
	unsigned int nr_sigs;
	u64 incr_pages;		/* data pages of that checkpoint if incremental */
};

/* amber_track_lock protects amber_tracked_list, amber_nr_tracked, entries. */
static DEFINE_MUTEX(amber_track_lock);
static LIST_HEAD(amber_tracked_list);
static unsigned int amber_nr_tracked;

static void amber_tracked_free(struct amber_tracked *t)
{
	lockdep_assert_held(&amber_track_lock);
	list_del(&t->node);
	amber_nr_tracked--;
	put_pid(t->pid);
	kvfree(t->sigs);
	kfree(t);
}

/* The process behind @t still runs the program tracking started with. */
static bool amber_tracked_live(const struct amber_tracked *t)
{
	struct task_struct *task;
	bool live;

	rcu_read_lock();
	task = pid_task(t->pid, PIDTYPE_PID);
	live = task && !(task->flags & PF_EXITING) &&
	       READ_ONCE(task->self_exec_id) == t->exec_id;
	rcu_read_unlock();
	return live;
}

/* Frees the entries of processes that exited or executed a program. */
static void amber_track_gc(void)
{
	struct amber_tracked *t, *tmp;

	lockdep_assert_held(&amber_track_lock);
	list_for_each_entry_safe(t, tmp, &amber_tracked_list, node)
		if (!amber_tracked_live(t))
			amber_tracked_free(t);
}

static struct amber_tracked *amber_track_find(struct pid *pid)
{
	struct amber_tracked *t;

	lockdep_assert_held(&amber_track_lock);
	list_for_each_entry(t, &amber_tracked_list, node)
		if (t->pid == pid)
			return t;
	return NULL;
}

static u64 amber_track_new_id(void)
{
	u64 id;

	do {
		id = get_random_u64();
	} while (!id);
	return id;
}

/* FULL_REASON strings (one line each, as the tools print them). */
static const char amber_reason_notifiers[] =
	"the process has MMU notifiers (KVM, device drivers): its dirty pages cannot be tracked";
static const char amber_reason_shared_mm[] =
	"the process shares its address space with another process: dirty pages cannot be tracked";
static const char amber_reason_untracked[] =
	"the process is not tracked (first checkpoint, restored, or module reloaded)";
static const char amber_reason_exec[] = "the process executed a new program";
static const char amber_reason_reset[] =
	"the last checkpoint of this process did not complete (tracking was reset)";
static const char amber_reason_mismatch[] =
	"another checkpoint of this process was taken since (tracking id mismatch)";
static const char amber_reason_full[] = "too many tracked processes";
static const char amber_reason_nomem[] = "out of memory for the tracking table";

/* Why current cannot be tracked at all, or NULL. */
static const char *amber_track_refusal(void)
{
	struct mm_struct *mm = current->mm;

	if (mm_has_notifiers(mm))
		return amber_reason_notifiers;
	if (test_bit(MMF_MULTIPROCESS, &mm->flags))
		return amber_reason_shared_mm;
	return NULL;
}

/* Why @t (current's entry, or NULL) does not continue from @parent_id. */
static const char *amber_track_mismatch(const struct amber_tracked *t,
					u64 parent_id)
{
	if (!t)
		return amber_reason_untracked;
	if (t->exec_id != current->self_exec_id)
		return amber_reason_exec;
	if (!t->id)
		return amber_reason_reset;
	if (t->id != parent_id)
		return amber_reason_mismatch;
	return NULL;
}

void amber_track_begin(struct amber_track *t)
{
	struct pid *pid = task_pid(current);
	const char *refusal = amber_track_refusal();
	struct amber_tracked *e;

	if (!t->want)
		return;

	mutex_lock(&amber_track_lock);
	e = amber_track_find(pid);
	if (t->parent_id)
		t->full_reason = refusal ?: amber_track_mismatch(e, t->parent_id);
	t->incremental = t->parent_id && !t->full_reason;
	if (e && (refusal || e->exec_id != current->self_exec_id)) {
		amber_tracked_free(e);
		e = NULL;
	}
	amber_track_gc();
	if (refusal)
		goto out_unlock;

	if (!e) {
		if (amber_nr_tracked >= AMBER_TRACK_MAX) {
			if (!t->full_reason && t->parent_id)
				t->full_reason = amber_reason_full;
			t->incremental = false;
			goto out_unlock;
		}
		e = kzalloc(sizeof(*e), GFP_KERNEL);
		if (!e) {
			t->incremental = false;
			if (t->parent_id)
				t->full_reason = amber_reason_nomem;
			goto out_unlock;
		}
		e->pid = get_pid(pid);
		e->exec_id = current->self_exec_id;
		list_add_tail(&e->node, &amber_tracked_list);
		amber_nr_tracked++;
	}
	/* From here on, until commit, the bits on record are being changed. */
	e->id = 0;
	t->clear = true;
	if (t->incremental) {
		t->prev = e->sigs;
		t->nr_prev = e->nr_sigs;
	} else {
		kvfree(e->sigs);
	}
	e->sigs = NULL;
	e->nr_sigs = 0;
out_unlock:
	mutex_unlock(&amber_track_lock);
}

void amber_track_commit(struct amber_track *t, u64 pages)
{
	struct amber_tracked *e;

	if (!t->clear)
		return;
	mutex_lock(&amber_track_lock);
	/* Gone if AMBER_CMD_UNTRACK raced with the capture: stays untracked. */
	e = amber_track_find(task_pid(current));
	if (e) {
		e->id = amber_track_new_id();
		t->id = e->id;
		kvfree(e->sigs);
		e->sigs = t->sigs;
		e->nr_sigs = t->nr_sigs;
		e->incr_pages = t->incremental ? pages : 0;
		t->sigs = NULL;
		t->nr_sigs = 0;
	}
	mutex_unlock(&amber_track_lock);
}

u64 amber_track_hint(struct pid *pid, u64 parent_id)
{
	struct amber_tracked *e;
	u64 pages = 0;

	mutex_lock(&amber_track_lock);
	e = amber_track_find(pid);
	if (e && e->id == parent_id)
		pages = e->incr_pages;
	mutex_unlock(&amber_track_lock);
	return pages;
}

void amber_track_free(struct amber_track *t)
{
	kvfree(t->prev);
	kvfree(t->sigs);
	t->prev = NULL;
	t->sigs = NULL;
}

int amber_track_drop(struct pid *pid)
{
	struct amber_tracked *e;
	int err = -ENOENT;

	mutex_lock(&amber_track_lock);
	amber_track_gc();
	e = amber_track_find(pid);
	if (e) {
		amber_tracked_free(e);
		err = 0;
	}
	mutex_unlock(&amber_track_lock);
	return err;
}

u32 amber_track_count(void)
{
	u32 n;

	mutex_lock(&amber_track_lock);
	amber_track_gc();
	n = amber_nr_tracked;
	mutex_unlock(&amber_track_lock);
	return n;
}

void amber_track_exit(void)
{
	struct amber_tracked *t, *tmp;

	mutex_lock(&amber_track_lock);
	list_for_each_entry_safe(t, tmp, &amber_tracked_list, node)
		amber_tracked_free(t);
	mutex_unlock(&amber_track_lock);
}

/* Same access rule as CHECKPOINT: a caller that may checkpoint may untrack. */
int amber_untrack(pid_t pid, const struct nlattr *pid_attr,
		  struct netlink_ext_ack *extack)
{
	struct task_struct *task;
	int err;

	task = amber_find_traceable(pid, pid_attr, extack);
	if (IS_ERR(task))
		return PTR_ERR(task);
	err = amber_track_drop(task_pid(task));
	if (err)
		NL_SET_ERR_MSG_ATTR(extack, pid_attr, "the process is not tracked");
	put_task_struct(task);
	return err;
}

