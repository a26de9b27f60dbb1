// SPDX-License-Identifier: GPL-2.0
/*
 * Enumeration of a checkpoint's group: a process and, for a tree, its
 * descendants; and the threads of each.
 *
 * tasklist_lock is not exported, and the children lists are only stable
 * under it, so descendants are found the RCU way: walk the task list
 * (for_each_process() is RCU-safe) and follow each process's real_parent
 * pointers (RCU-protected) up to the root or to pid 0. This is a snapshot
 * that may be stale by the time it is used; checkpoint.c rescans until a
 * scan, started when every known thread was already parked, finds nothing
 * new (parked tasks cannot fork, so that scan is exact).
 */
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/sort.h>

#include "tree.h"

/* Deeper than PID_MAX_LIMIT ancestors cannot exist: a bound for the walk. */
#define AMBER_TREE_MAX_DEPTH	4194304

/* Under rcu_read_lock(): @p's depth below @root, 0 if not below it. */
static unsigned int amber_tree_depth(struct task_struct *p,
				     struct task_struct *root)
{
	struct task_struct *t = p;
	unsigned int depth;

	for (depth = 1; depth < AMBER_TREE_MAX_DEPTH; depth++) {
		t = rcu_dereference(t->real_parent);
		if (!t || !t->pid)
			return 0;
		if (same_thread_group(t, root))
			return depth;
		if (t == rcu_access_pointer(t->real_parent))
			return 0;
	}
	return 0;
}

struct amber_tree_ent {
	struct task_struct *task;
	unsigned int depth;
	unsigned int seq;	/* list order, for a stable sort */
};

static int amber_tree_cmp(const void *a, const void *b)
{
	const struct amber_tree_ent *x = a, *y = b;

	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int amber_tree_collect(struct task_struct *root, bool tree,
		       struct task_struct **out, unsigned int max)
{
	struct amber_tree_ent *ents;
	struct task_struct *p;
	unsigned int n = 0, i;
	int err = 0;

	get_task_struct(root);
	out[0] = root;
	if (!tree)
		return 1;

	ents = kmalloc_array(max, sizeof(*ents), GFP_KERNEL);
	if (!ents) {
		put_task_struct(root);
		return -ENOMEM;
	}
	ents[n++] = (struct amber_tree_ent){ .task = root, .depth = 0, .seq = 0 };
	rcu_read_lock();
	for_each_process(p) {
		unsigned int depth;

		if (p == root)
			continue;
		depth = amber_tree_depth(p, root);
		if (!depth)
			continue;
		if (n >= max) {
			err = -E2BIG;
			break;
		}
		get_task_struct(p);
		ents[n] = (struct amber_tree_ent){ .task = p, .depth = depth, .seq = n };
		n++;
	}
	rcu_read_unlock();

	sort(ents, n, sizeof(*ents), amber_tree_cmp, NULL);
	for (i = 0; i < n; i++)
		out[i] = ents[i].task;
	kfree(ents);
	if (err) {
		amber_tree_put(out, n);
		return err;
	}
	return n;
}

int amber_tree_threads(struct task_struct *leader, struct task_struct **out,
		       unsigned int max)
{
	struct task_struct *t;
	unsigned int n = 0;
	int err = 0;

	rcu_read_lock();
	for_each_thread(leader, t) {
		if (t->exit_state)
			continue;
		if (n >= max) {
			err = -E2BIG;
			break;
		}
		get_task_struct(t);
		out[n++] = t;
	}
	rcu_read_unlock();
	if (err) {
		amber_tree_put(out, n);
		return err;
	}
	return n;
}

struct task_struct *amber_tree_parent(struct task_struct *task)
{
	struct task_struct *parent;

	rcu_read_lock();
	parent = rcu_dereference(task->real_parent);
	parent = parent ? parent->group_leader : NULL;
	rcu_read_unlock();
	/* Compared only: no reference. */
	return parent;
}

void amber_tree_put(struct task_struct **tasks, unsigned int nr)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		put_task_struct(tasks[i]);
}

u32 amber_tree_zombie_status(struct task_struct *p)
{
	/* As wait_task_zombie() reports it. */
	return (READ_ONCE(p->signal->flags) & SIGNAL_GROUP_EXIT) ?
	       READ_ONCE(p->signal->group_exit_code) : READ_ONCE(p->exit_code);
}
