/* SPDX-License-Identifier: GPL-2.0 */
/* The processes and threads a CHECKPOINT request covers. */
#ifndef _AMBER_TREE_H
#define _AMBER_TREE_H

#include <linux/types.h>

struct task_struct;

/*
 * Takes a reference on @root and, with @tree, on every process that
 * descends from it (zombies included: their leader task), into @out,
 * ordered by depth: @root first, every process after its parent. Returns
 * the number found, or -E2BIG if there are more than @max.
 */
int amber_tree_collect(struct task_struct *root, bool tree,
		       struct task_struct **out, unsigned int max);

/*
 * Takes a reference on every thread of @leader's group that has not
 * exited, into @out. Returns the number, or -E2BIG if more than @max.
 */
int amber_tree_threads(struct task_struct *leader, struct task_struct **out,
		       unsigned int max);

/* The process @task's real parent belongs to (its leader), or NULL. */
struct task_struct *amber_tree_parent(struct task_struct *task);

void amber_tree_put(struct task_struct **tasks, unsigned int nr);

/* A zombie's wait status, as waitpid() reports it. */
u32 amber_tree_zombie_status(struct task_struct *p);

#endif /* _AMBER_TREE_H */
