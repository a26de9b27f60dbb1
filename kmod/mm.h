/* SPDX-License-Identifier: GPL-2.0 */
/* Address space: mm fields, VMAs and the pages files (mm.c, mm_restore.c). */
#ifndef _AMBER_MM_H
#define _AMBER_MM_H

#include <linux/auxvec.h>
#include <linux/mm_types.h>
#include <linux/types.h>

#include "arena.h"
#include "msg.h"

struct amber_restore;
struct amber_track;
struct file;
struct nlattr;
struct task_struct;

struct amber_vma {
	u64 start;
	u64 end;
	u64 pgoff;
	u32 prot;	/* PROT_* */
	u32 flags;	/* enum amber_vma_flags */
	char *path;	/* mapped file, NULL for anonymous memory */
	u64 dev;
	u64 ino;
	u64 file_size;
	u64 pages;	/* pages of this VMA listed in the pages file */
};

struct amber_mm_state {
	u64 start_code, end_code, start_data, end_data;
	u64 start_brk, brk, start_stack;
	u64 arg_start, arg_end, env_start, env_end;
	u64 vdso;
	u64 auxv[AT_VECTOR_SIZE];	/* pairs up to and including AT_NULL */
	unsigned int auxv_len;		/* entries used in auxv[] */
	struct amber_vma *vmas;
	unsigned int nr_vmas;
	u64 pages_bytes;		/* of the pages file */
	u64 pages_nr;			/* in data runs */
	u64 pages_parent_nr;		/* in AMBER_RUN_F_PARENT runs */
	struct amber_arena arena;	/* the pages file, until written out */
};

void amber_mm_init(struct amber_mm_state *st);
/*
 * In the requester, before the capture: sets up st->arena for @pages and
 * allocates about as much memory as @task's pages will need (less when the
 * checkpoint is meant to be incremental on @parent_id, if not 0; without
 * its anonymous pages when @track: those are saved copy-on-write).
 */
void amber_mm_prepare(struct amber_mm_state *st, struct task_struct *task,
		      struct file *pages, u64 parent_id, bool track,
		      const bool *cancelled);
/*
 * Captures current's address space and copies the pages file's contents
 * into st->arena (writing part of it to the pages file if memory runs
 * short). @t says whether the file is incremental (clean pages become
 * AMBER_RUN_F_PARENT runs) and whether dirty bits are cleared; when they
 * are, the private VMAs are recorded in t->sigs. @cancelled
 * is polled between page runs; when it becomes true the capture stops with
 * -ECANCELED.
 */
int amber_mm_capture(struct amber_mm_state *st, struct amber_track *t,
		     const bool *cancelled, struct amber_err *e);
/* Writes what st->arena still holds to the pages file, then frees it. */
int amber_mm_write_pages(struct amber_mm_state *st, struct amber_err *e);
void amber_mm_free(struct amber_mm_state *st);

/*
 * brk and the data segment under @rlim (RLIMIT_DATA), as prctl(PR_SET_MM)
 * checks: restore sets them under the image's own limit (the stub sets the
 * image's limits first), so a process that lowered RLIMIT_DATA below what
 * it uses cannot be restored. Capture and restore both call it, with the
 * same message. NULL when they fit.
 */
const char *amber_mm_data_check(unsigned long rlim, unsigned long brk,
				unsigned long start_brk, unsigned long end_data,
				unsigned long start_data);

/* ---- restore (mm_restore.c) ---- */

/* One VMA of the image, validated. */
struct amber_rvma {
	unsigned long start;
	unsigned long end;
	unsigned long pgoff;
	u32 prot;			/* PROT_* */
	u32 flags;			/* enum amber_vma_flags */
	struct file *file;		/* from AMBER_VMA_FILE_FD, or NULL */
	const struct nlattr *nla;	/* AMBER_A_VMA, for extack */
};

/* mm layout fields (AMBER_A_MM), validated like prctl(PR_SET_MM_MAP). */
struct amber_rmm {
	bool present;
	unsigned long start_code, end_code, start_data, end_data;
	unsigned long start_brk, brk, start_stack;
	unsigned long arg_start, arg_end, env_start, env_end;
	unsigned int auxv_len;		/* bytes, 0 = keep */
	unsigned long auxv[AT_VECTOR_SIZE];
};

/* Phase A: nothing of the caller changes. */
int amber_restore_vmas_prepare(struct amber_restore *r);
int amber_restore_mm_prepare(struct amber_restore *r);
int amber_restore_files_prepare(struct amber_restore *r);
int amber_restore_pages_prepare(struct amber_restore *r);
void amber_restore_mm_release(struct amber_restore *r);
/* Phase B: the caller's memory is replaced. */
int amber_restore_map(struct amber_restore *r);
int amber_restore_pages(struct amber_restore *r);
void amber_restore_mm_commit(struct amber_restore *r);

#endif /* _AMBER_MM_H */
