/* SPDX-License-Identifier: GPL-2.0 */
/* Restore: turn the calling stub into the checkpointed process. */
#ifndef _AMBER_RESTORE_H
#define _AMBER_RESTORE_H

#include <net/genetlink.h>
#include <linux/amber.h>
#include <linux/mm_types.h>

extern const struct nla_policy amber_restore_policy[AMBER_A_MAX + 1];

int amber_nl_restore_doit(struct sk_buff *skb, struct genl_info *info);

/*
 * Everything below is private to restore*.c.
 *
 * A restore request is validated completely into a struct amber_restore
 * (phase A) before anything of the caller is touched; only then are the
 * caller's memory, mm fields, task fields and credentials replaced
 * (phase B), and the registers are written by a task_work on the way out
 * of the system call (phase C).
 */

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

struct amber_restore_work;

struct amber_restore {
	struct genl_info *info;
	struct netlink_ext_ack *extack;

	/* VMAs, sorted ascending, non-overlapping. */
	struct amber_rvma *vmas;
	unsigned int nr_vmas;

	/* Where current's vvar and vDSO are (and stay). */
	unsigned long vvar_start, vvar_end;
	unsigned long vdso_start, vdso_end;

	/* Pages files, oldest first; the last is the checkpoint restored. */
	struct file **page_files;
	const struct nlattr **page_nlas;
	unsigned int nr_page_files;

	struct amber_rmm mm;

	/* New mm->exe_file, write access already denied; NULL = keep. */
	struct file *exe;

	/* Task fields. */
	unsigned long rseq;
	u32 rseq_sig;
	unsigned long clear_child_tid;
	unsigned long robust_list;
	unsigned long sas_sp;
	size_t sas_size;
	u32 sas_flags;
	bool has_personality;
	u32 personality;
	u32 dumpable;			/* SUID_DUMP_*, from the image */
	bool no_new_privs;
	bool has_blocked;
	sigset_t blocked;

	/* Credentials to commit, or NULL to keep the caller's. */
	struct cred *cred;

	/* Stub helper fds closed on success. */
	int *close_fds;
	unsigned int nr_close_fds;

	/* Registers and xstate, written on the way back to user mode. */
	struct amber_restore_work *work;
};

/* restore.c */
__printf(3, 4)
void amber_restore_err(struct amber_restore *r, const struct nlattr *nla,
		       const char *fmt, ...);

/* restore_mm.c */
int amber_restore_vmas_prepare(struct amber_restore *r);
int amber_restore_mm_prepare(struct amber_restore *r, const struct nlattr *attr);
int amber_restore_files_prepare(struct amber_restore *r);
void amber_restore_mm_release(struct amber_restore *r);
int amber_restore_map(struct amber_restore *r);
int amber_restore_pages_prepare(struct amber_restore *r);
int amber_restore_pages(struct amber_restore *r);
void amber_restore_mm_commit(struct amber_restore *r);

/* restore_regs.c */
int amber_restore_regs_prepare(struct amber_restore *r);
void amber_restore_regs_release(struct amber_restore *r);
int amber_restore_regs_queue(struct amber_restore *r);

#endif /* _AMBER_RESTORE_H */
