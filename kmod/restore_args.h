/* SPDX-License-Identifier: GPL-2.0 */
/*
 * AMBER_CMD_RESTORE as the netlink layer parsed it (nl_restore.c): plain
 * values, each with the attribute it came from, for extack. Nothing here
 * is validated beyond the attribute policies; restore.c and the resource
 * files decide. An absent attribute has a NULL nla and a zero value.
 */
#ifndef _AMBER_RESTORE_ARGS_H
#define _AMBER_RESTORE_ARGS_H

#include <linux/amber.h>
#include <linux/sched.h>
#include <linux/types.h>

struct net;
struct nlattr;

/* Counts past these are refused; the parser does not store the entries. */
#define AMBER_RESTORE_MAX_VMAS		65530
#define AMBER_RESTORE_MAX_PAGE_FILES	64	/* links of a chain */

struct amber_nl_u32 {
	u32 val;
	const struct nlattr *nla;
};

struct amber_nl_u64 {
	u64 val;
	const struct nlattr *nla;
};

/* A list of fds (PAGE_FDS, CLOSE_FDS). */
struct amber_fd_list_args {
	const struct nlattr *nla;	/* the nest, NULL: absent */
	struct amber_nl_u32 *fd;	/* NULL if more than the bound */
	unsigned int nr;
};

/* REGS and FPU (or THREAD_REGS and THREAD_FPU) of one thread. */
struct amber_regs_args {
	const struct nlattr *nla;	/* the REGS nest, NULL: absent */
	struct amber_nl_u64 reg[AMBER_REG_MAX + 1];	/* by enum amber_reg */
	const struct nlattr *fpu;	/* NULL: keep the xstate */
	const void *xsave;		/* UABI layout, in the request */
	unsigned int xsave_len;
};

/* What a thread registered: rseq, futex lists, sigaltstack. */
struct amber_regn_args {
	struct amber_nl_u64 rseq;
	struct amber_nl_u32 rseq_len, rseq_sig;
	struct amber_nl_u64 clear_child_tid, robust_list, robust_list_len;
	struct amber_nl_u64 sas_sp, sas_size;
	struct amber_nl_u32 sas_flags;
	const struct nlattr *parent;	/* TASK or THREAD, for extack */
};

/* Ids, groups and capability sets of AMBER_A_TASK. */
struct amber_creds_args {
	struct amber_nl_u32 id[8];	/* AMBER_TASK_UID .. AMBER_TASK_FSGID */
	const struct nlattr *groups;	/* AMBER_TASK_GROUPS, NULL: absent */
	struct amber_nl_u32 *group;
	unsigned int nr_groups;
	struct amber_nl_u64 cap[5];	/* AMBER_TASK_CAP_INH .. _AMB */
};

struct amber_task_args {
	const struct nlattr *nla;	/* AMBER_A_TASK, NULL: absent */
	struct amber_regn_args regn;
	struct amber_nl_u32 personality, dumpable, no_new_privs;
	struct amber_creds_args creds;
};

struct amber_sig_args {
	const struct nlattr *nla;	/* AMBER_A_SIGNALS, NULL: absent */
	struct amber_nl_u64 blocked;
};

struct amber_vma_args {
	const struct nlattr *nla;	/* AMBER_A_VMA */
	struct amber_nl_u64 start, end, pgoff;
	struct amber_nl_u32 prot, flags, file_fd;
};

struct amber_mm_args {
	const struct nlattr *nla;	/* AMBER_A_MM, NULL: absent */
	struct amber_nl_u64 field[AMBER_MM_ENV_END + 1];	/* START_CODE..ENV_END */
	struct amber_nl_u64 vdso;
	const struct nlattr *auxv;	/* NULL: absent */
	const u64 *auxv_data;
	unsigned int auxv_len;		/* bytes */
};

struct amber_thread_args {
	const struct nlattr *nla;	/* AMBER_A_THREAD */
	struct amber_nl_u32 tid;
	struct amber_regs_args regs;
	struct amber_regn_args regn;
	struct amber_nl_u64 blocked;
	bool has_comm;
	char comm[TASK_COMM_LEN];
};

struct amber_restore_args {
	u32 portid;			/* the requesting socket */
	const struct net *net;		/* compared, never dereferenced */
	u32 flags;			/* enum amber_restore_flags */
	struct amber_task_args task;
	struct amber_mm_args mm;
	/* Every AMBER_A_VMA of every AMBER_A_VMAS, in order. */
	const struct nlattr *vmas_nla;	/* the last AMBER_A_VMAS, NULL: none */
	struct amber_vma_args *vmas;	/* NULL if more than the bound */
	unsigned int nr_vmas;
	struct amber_regs_args regs;
	struct amber_sig_args sig;
	struct amber_fd_list_args page_fds;
	struct amber_fd_list_args close_fds;
	struct amber_nl_u32 exe_fd;
	/* Every AMBER_A_THREAD of every AMBER_A_THREADS, in order. */
	const struct nlattr *threads_nla;	/* the last AMBER_A_THREADS */
	struct amber_thread_args *threads;
	unsigned int nr_threads;
};

#endif /* _AMBER_RESTORE_ARGS_H */
