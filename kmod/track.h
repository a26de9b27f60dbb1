/* SPDX-License-Identifier: GPL-2.0 */
/* Dirty tracking: which processes are tracked, and under which id. */
#ifndef _AMBER_TRACK_H
#define _AMBER_TRACK_H

#include <linux/types.h>

struct pid;

/*
 * The identity of a private VMA's mapping at a tracked checkpoint. A page is
 * only compared with its parent if the parent's VMA at that address had the
 * same identity: mremap() can move whole page tables (move_normal_pmd())
 * without setting their soft-dirty bits, so moved memory must not be taken
 * for what was at its new address before. Pointers are only compared.
 */
struct amber_vma_sig {
	unsigned long start, end;
	unsigned long delta;		/* vm_start - (vm_pgoff << PAGE_SHIFT) */
	const void *anon_vma;
	const void *file;
};

/* What one checkpoint does about tracking, decided by amber_track_begin(). */
struct amber_track {
	/* Asked for by the requester. */
	bool want;		/* AMBER_CKPT_F_TRACK */
	u64 parent_id;		/* AMBER_A_PARENT_ID, 0 if none */
	/* Decided in the target. */
	bool clear;		/* clear soft-dirty bits, then record a new id */
	bool incremental;	/* pages unchanged since parent_id are PARENT runs */
	const char *full_reason;	/* why parent_id was not used */
	u64 id;			/* the new tracking id, once committed */
	/* Private VMAs at the parent (owned; NULL: trust nothing). */
	struct amber_vma_sig *prev;
	unsigned int nr_prev;
	/* Private VMAs now, filled by the capture when clearing (owned). */
	struct amber_vma_sig *sigs;
	unsigned int nr_sigs;
};

/*
 * In the target (current), before its memory is walked: decides whether
 * this checkpoint is incremental and whether it clears the dirty bits, and
 * if it does, invalidates current's tracking id (a failure from here on
 * makes the next checkpoint full).
 */
void amber_track_begin(struct amber_track *t);
/*
 * In the target, after a successful capture of @pages data pages: records
 * a new tracking id.
 */
void amber_track_commit(struct amber_track *t, u64 pages);
/*
 * In the requester, a guess for sizing the page buffer: the data pages of
 * the last checkpoint if it was incremental on top of @parent_id's chain,
 * 0 if unknown.
 */
u64 amber_track_hint(struct pid *pid, u64 parent_id);

/* Frees what @t owns. */
void amber_track_free(struct amber_track *t);

/* Stops tracking @pid; -ENOENT if it was not tracked. */
int amber_track_drop(struct pid *pid);
/* Number of live tracked processes. */
u32 amber_track_count(void);

void amber_track_exit(void);

struct netlink_ext_ack;
struct nlattr;

/* UNTRACK of @pid, by a caller that may checkpoint it. */
int amber_untrack(pid_t pid, const struct nlattr *pid_attr,
		  struct netlink_ext_ack *extack);

#endif /* _AMBER_TRACK_H */
