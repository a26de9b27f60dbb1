// SPDX-License-Identifier: GPL-2.0
/*
 * AMBER_CMD_RESTORE: attribute policies and the request handler.
 */
#include <linux/capability.h>
#include <linux/compat.h>
#include <linux/cred.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/futex.h>
#include <linux/mm_types.h>
#include <linux/mman.h>
#include <linux/personality.h>
#include <linux/pid.h>
#include <linux/threads.h>
#include <linux/rseq.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/signal.h>
#include <linux/slab.h>
#include <linux/uidgid.h>

#include "msg.h"
#include "restore.h"

static const struct nla_policy amber_restore_groups_policy[AMBER_TASK_GROUP + 1] = {
	[AMBER_TASK_GROUP]		= { .type = NLA_U32 },
};

static const struct nla_policy amber_restore_rlimit_policy[AMBER_RLIMIT_MAX_ATTR + 1] = {
	[AMBER_RLIMIT_RESOURCE]		= NLA_POLICY_MAX(NLA_U32, RLIM_NLIMITS - 1),
	[AMBER_RLIMIT_CUR]		= { .type = NLA_U64 },
	[AMBER_RLIMIT_MAX]		= { .type = NLA_U64 },
};

static const struct nla_policy amber_restore_rlimits_policy[AMBER_TASK_RLIMIT + 1] = {
	[AMBER_TASK_RLIMIT]		= NLA_POLICY_NESTED(amber_restore_rlimit_policy),
};

static const struct nla_policy amber_restore_task_policy[AMBER_TASK_MAX + 1] = {
	[AMBER_TASK_PID]		= { .type = NLA_U32 },
	[AMBER_TASK_COMM]		= { .type = NLA_STRING, .len = TASK_COMM_LEN - 1 },
	[AMBER_TASK_UID]		= { .type = NLA_U32 },
	[AMBER_TASK_EUID]		= { .type = NLA_U32 },
	[AMBER_TASK_SUID]		= { .type = NLA_U32 },
	[AMBER_TASK_FSUID]		= { .type = NLA_U32 },
	[AMBER_TASK_GID]		= { .type = NLA_U32 },
	[AMBER_TASK_EGID]		= { .type = NLA_U32 },
	[AMBER_TASK_SGID]		= { .type = NLA_U32 },
	[AMBER_TASK_FSGID]		= { .type = NLA_U32 },
	[AMBER_TASK_GROUPS]		= NLA_POLICY_NESTED(amber_restore_groups_policy),
	[AMBER_TASK_CAP_INH]		= { .type = NLA_U64 },
	[AMBER_TASK_CAP_PRM]		= { .type = NLA_U64 },
	[AMBER_TASK_CAP_EFF]		= { .type = NLA_U64 },
	[AMBER_TASK_CAP_BND]		= { .type = NLA_U64 },
	[AMBER_TASK_CAP_AMB]		= { .type = NLA_U64 },
	[AMBER_TASK_UMASK]		= NLA_POLICY_MAX(NLA_U32, 0777),
	[AMBER_TASK_PERSONALITY]	= { .type = NLA_U32 },
	[AMBER_TASK_CWD]		= { .type = NLA_STRING, .len = PATH_MAX - 1 },
	[AMBER_TASK_RLIMITS]		= NLA_POLICY_NESTED(amber_restore_rlimits_policy),
	[AMBER_TASK_RSEQ]		= { .type = NLA_U64 },
	[AMBER_TASK_RSEQ_LEN]		= { .type = NLA_U32 },
	[AMBER_TASK_RSEQ_SIG]		= { .type = NLA_U32 },
	[AMBER_TASK_CLEAR_CHILD_TID]	= { .type = NLA_U64 },
	[AMBER_TASK_ROBUST_LIST]	= { .type = NLA_U64 },
	[AMBER_TASK_ROBUST_LIST_LEN]	= { .type = NLA_U64 },
	[AMBER_TASK_SAS_SP]		= { .type = NLA_U64 },
	[AMBER_TASK_SAS_SIZE]		= { .type = NLA_U64 },
	[AMBER_TASK_SAS_FLAGS]		= { .type = NLA_U32 },
	[AMBER_TASK_EXE]		= { .type = NLA_STRING, .len = PATH_MAX - 1 },
	[AMBER_TASK_START_TIME_NS]	= { .type = NLA_U64 },
	[AMBER_TASK_DUMPABLE]		= NLA_POLICY_MAX(NLA_U32, SUID_DUMP_ROOT),
	[AMBER_TASK_NO_NEW_PRIVS]	= NLA_POLICY_MAX(NLA_U32, 1),
};

static const struct nla_policy amber_restore_mm_policy[AMBER_MM_MAX + 1] = {
	[AMBER_MM_START_CODE]		= { .type = NLA_U64 },
	[AMBER_MM_END_CODE]		= { .type = NLA_U64 },
	[AMBER_MM_START_DATA]		= { .type = NLA_U64 },
	[AMBER_MM_END_DATA]		= { .type = NLA_U64 },
	[AMBER_MM_START_BRK]		= { .type = NLA_U64 },
	[AMBER_MM_BRK]			= { .type = NLA_U64 },
	[AMBER_MM_START_STACK]		= { .type = NLA_U64 },
	[AMBER_MM_ARG_START]		= { .type = NLA_U64 },
	[AMBER_MM_ARG_END]		= { .type = NLA_U64 },
	[AMBER_MM_ENV_START]		= { .type = NLA_U64 },
	[AMBER_MM_ENV_END]		= { .type = NLA_U64 },
	[AMBER_MM_AUXV]			= { .type = NLA_BINARY,
					    .len = sizeof_field(struct mm_struct, saved_auxv) },
	[AMBER_MM_VDSO]			= { .type = NLA_U64 },
};

static const struct nla_policy amber_restore_vma_policy[AMBER_VMA_MAX + 1] = {
	[AMBER_VMA_START]		= { .type = NLA_U64 },
	[AMBER_VMA_END]			= { .type = NLA_U64 },
	[AMBER_VMA_PGOFF]		= { .type = NLA_U64 },
	[AMBER_VMA_PROT]		= NLA_POLICY_MASK(NLA_U32,
							  PROT_READ | PROT_WRITE | PROT_EXEC),
	[AMBER_VMA_FLAGS]		= NLA_POLICY_MASK(NLA_U32, __AMBER_VMA_F_ALL),
	[AMBER_VMA_PATH]		= { .type = NLA_STRING, .len = PATH_MAX - 1 },
	[AMBER_VMA_DEV]			= { .type = NLA_U64 },
	[AMBER_VMA_INO]			= { .type = NLA_U64 },
	[AMBER_VMA_FILE_SIZE]		= { .type = NLA_U64 },
	[AMBER_VMA_PAGES]		= { .type = NLA_U64 },
	[AMBER_VMA_FILE_FD]		= { .type = NLA_U32 },
};

static const struct nla_policy amber_restore_vmas_policy[AMBER_A_VMA + 1] = {
	[AMBER_A_VMA]			= NLA_POLICY_NESTED(amber_restore_vma_policy),
};

static const struct nla_policy amber_restore_regs_policy[AMBER_REG_MAX + 1] = {
	[AMBER_REG_R15 ... AMBER_REG_GS] = { .type = NLA_U64 },
};

static const struct nla_policy amber_restore_sigaction_policy[AMBER_SIGACTION_MAX + 1] = {
	[AMBER_SIGACTION_SIGNO]		= NLA_POLICY_RANGE(NLA_U32, 1, _NSIG),
	[AMBER_SIGACTION_HANDLER]	= { .type = NLA_U64 },
	[AMBER_SIGACTION_FLAGS]		= { .type = NLA_U64 },
	[AMBER_SIGACTION_RESTORER]	= { .type = NLA_U64 },
	[AMBER_SIGACTION_MASK]		= { .type = NLA_U64 },
};

static const struct nla_policy amber_restore_sigpending_policy[AMBER_SIGPENDING_MAX + 1] = {
	[AMBER_SIGPENDING_SIGINFO]	= NLA_POLICY_EXACT_LEN(128),
	[AMBER_SIGPENDING_SHARED]	= { .type = NLA_FLAG },
};

static const struct nla_policy amber_restore_signals_policy[AMBER_SIG_MAX + 1] = {
	[AMBER_SIG_BLOCKED]		= { .type = NLA_U64 },
	[AMBER_SIG_ACTION]		= NLA_POLICY_NESTED(amber_restore_sigaction_policy),
	[AMBER_SIG_PENDING]		= NLA_POLICY_NESTED(amber_restore_sigpending_policy),
};

static const struct nla_policy amber_restore_page_fds_policy[AMBER_A_PAGE_FD + 1] = {
	[AMBER_A_PAGE_FD]		= { .type = NLA_U32 },
};

static const struct nla_policy amber_restore_close_fds_policy[AMBER_A_CLOSE_FD + 1] = {
	[AMBER_A_CLOSE_FD]		= { .type = NLA_U32 },
};

/* The largest XSAVE area a ptrace-layout blob can have; the exact bound is checked at run time. */
#define AMBER_FPU_MAX_LEN	(64 * 1024 - NLA_HDRLEN - 4)

/* Not const: 6.1's struct nla_policy points at a non-const range. */
static struct netlink_range_validation amber_restore_tid_range = {
	.min = 1,
	.max = PID_MAX_LIMIT,
};

static const struct nla_policy amber_restore_thread_policy[AMBER_THREAD_MAX + 1] = {
	[AMBER_THREAD_TID]		= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_restore_tid_range),
	[AMBER_THREAD_REGS]		= NLA_POLICY_NESTED(amber_restore_regs_policy),
	[AMBER_THREAD_FPU]		= { .type = NLA_BINARY, .len = AMBER_FPU_MAX_LEN },
	[AMBER_THREAD_BLOCKED]		= { .type = NLA_U64 },
	[AMBER_THREAD_PENDING]		= NLA_POLICY_NESTED(amber_restore_sigpending_policy),
	[AMBER_THREAD_CLEAR_CHILD_TID]	= { .type = NLA_U64 },
	[AMBER_THREAD_ROBUST_LIST]	= { .type = NLA_U64 },
	[AMBER_THREAD_ROBUST_LIST_LEN]	= { .type = NLA_U64 },
	[AMBER_THREAD_SAS_SP]		= { .type = NLA_U64 },
	[AMBER_THREAD_SAS_SIZE]		= { .type = NLA_U64 },
	[AMBER_THREAD_SAS_FLAGS]	= { .type = NLA_U32 },
	[AMBER_THREAD_RSEQ]		= { .type = NLA_U64 },
	[AMBER_THREAD_RSEQ_LEN]		= { .type = NLA_U32 },
	[AMBER_THREAD_RSEQ_SIG]		= { .type = NLA_U32 },
	[AMBER_THREAD_COMM]		= { .type = NLA_STRING, .len = TASK_COMM_LEN - 1 },
};

static const struct nla_policy amber_restore_threads_policy[AMBER_A_THREAD + 1] = {
	[AMBER_A_THREAD]		= NLA_POLICY_NESTED(amber_restore_thread_policy),
};

const struct nla_policy amber_restore_policy[AMBER_A_MAX + 1] = {
	[AMBER_A_TASK]			= NLA_POLICY_NESTED(amber_restore_task_policy),
	[AMBER_A_MM]			= NLA_POLICY_NESTED(amber_restore_mm_policy),
	[AMBER_A_VMAS]			= NLA_POLICY_NESTED(amber_restore_vmas_policy),
	[AMBER_A_REGS]			= NLA_POLICY_NESTED(amber_restore_regs_policy),
	[AMBER_A_FPU]			= { .type = NLA_BINARY, .len = AMBER_FPU_MAX_LEN },
	[AMBER_A_SIGNALS]		= NLA_POLICY_NESTED(amber_restore_signals_policy),
	[AMBER_A_PAGE_FDS]		= NLA_POLICY_NESTED(amber_restore_page_fds_policy),
	[AMBER_A_CLOSE_FDS]		= NLA_POLICY_NESTED(amber_restore_close_fds_policy),
	[AMBER_A_EXE_FD]		= { .type = NLA_U32 },
	[AMBER_A_FLAGS]			= NLA_POLICY_MASK(NLA_U32, __AMBER_RESTORE_F_ALL),
	[AMBER_A_THREADS]		= NLA_POLICY_NESTED(amber_restore_threads_policy),
};

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
	if (!thread_group_empty(current) && !r->info->attrs[AMBER_A_THREADS]) {
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

static int amber_restore_ids(struct amber_restore *r, struct nlattr **tb,
			     const struct nlattr *task, struct cred *new)
{
	const struct cred *old = current_cred();
	struct user_namespace *ns = old->user_ns;
	bool setuid = ns_capable(ns, CAP_SETUID), setgid = ns_capable(ns, CAP_SETGID);
	kuid_t *uids[] = { &new->uid, &new->euid, &new->suid, &new->fsuid };
	kgid_t *gids[] = { &new->gid, &new->egid, &new->sgid, &new->fsgid };
	int i;

	for (i = AMBER_TASK_UID; i <= AMBER_TASK_FSGID; i++) {
		if (!tb[i]) {
			NL_SET_ERR_ATTR_MISS(r->extack, task, i);
			amber_restore_err(r, task,
					  "credentials need all of uid..fsgid (%d missing)", i);
			return -EINVAL;
		}
	}
	for (i = 0; i < 4; i++) {
		const struct nlattr *a = tb[AMBER_TASK_UID + i];
		kuid_t k = make_kuid(ns, nla_get_u32(a));

		if (!uid_valid(k)) {
			amber_restore_err(r, a, "uid %u is not mapped", nla_get_u32(a));
			return -EINVAL;
		}
		/* As setresuid(): without CAP_SETUID only the old real, effective or saved id. */
		if (!setuid && !uid_eq(k, old->uid) && !uid_eq(k, old->euid) &&
		    !uid_eq(k, old->suid)) {
			amber_restore_err(r, a, "uid %u needs CAP_SETUID", nla_get_u32(a));
			return -EPERM;
		}
		*uids[i] = k;
	}
	for (i = 0; i < 4; i++) {
		const struct nlattr *a = tb[AMBER_TASK_GID + i];
		kgid_t k = make_kgid(ns, nla_get_u32(a));

		if (!gid_valid(k)) {
			amber_restore_err(r, a, "gid %u is not mapped", nla_get_u32(a));
			return -EINVAL;
		}
		if (!setgid && !gid_eq(k, old->gid) && !gid_eq(k, old->egid) &&
		    !gid_eq(k, old->sgid)) {
			amber_restore_err(r, a, "gid %u needs CAP_SETGID", nla_get_u32(a));
			return -EPERM;
		}
		*gids[i] = k;
	}
	return 0;
}

static bool amber_groups_equal(const struct group_info *a, const struct group_info *b)
{
	int i;

	if (a->ngroups != b->ngroups)
		return false;
	for (i = 0; i < a->ngroups; i++) {
		if (!gid_eq(a->gid[i], b->gid[i]))
			return false;
	}
	return true;
}

static int amber_restore_groups(struct amber_restore *r, const struct nlattr *attr,
				struct cred *new)
{
	struct user_namespace *ns = current_user_ns();
	struct group_info *gi;
	const struct nlattr *nla;
	int n = 0, rem, err = 0;

	nla_for_each_nested(nla, attr, rem)
		n++;
	if (n > NGROUPS_MAX) {
		amber_restore_err(r, attr, "%d supplementary groups, at most %d", n, NGROUPS_MAX);
		return -EINVAL;
	}
	gi = groups_alloc(n);
	if (!gi)
		return -ENOMEM;
	n = 0;
	nla_for_each_nested(nla, attr, rem) {
		kgid_t k = make_kgid(ns, nla_get_u32(nla));

		if (!gid_valid(k)) {
			amber_restore_err(r, nla, "group %u is not mapped", nla_get_u32(nla));
			err = -EINVAL;
			goto out;
		}
		gi->gid[n++] = k;
	}
	groups_sort(gi);
	if (!ns_capable(ns, CAP_SETGID) && !amber_groups_equal(gi, current_cred()->group_info)) {
		amber_restore_err(r, attr, "changing supplementary groups needs CAP_SETGID");
		err = -EPERM;
		goto out;
	}
	set_groups(new, gi);
out:
	put_group_info(gi);
	return err;
}

static int amber_cap_get(struct amber_restore *r, const struct nlattr *a, kernel_cap_t *c)
{
	u64 v = nla_get_u64(a);

	if (v & ~GENMASK_ULL(CAP_LAST_CAP, 0)) {
		amber_restore_err(r, a, "capability set 0x%llx has unknown bits", v);
		return -EINVAL;
	}
	c->cap[0] = lower_32_bits(v);
	c->cap[1] = upper_32_bits(v);
	return 0;
}

/* The restored sets may only be subsets of what the caller holds. */
static int amber_restore_caps(struct amber_restore *r, struct nlattr **tb,
			      const struct nlattr *task, struct cred *new)
{
	const struct cred *old = current_cred();
	kernel_cap_t *sets[] = {
		&new->cap_inheritable, &new->cap_permitted, &new->cap_effective,
		&new->cap_bset, &new->cap_ambient,
	};
	int i, err;

	for (i = 0; i < ARRAY_SIZE(sets); i++) {
		if (!tb[AMBER_TASK_CAP_INH + i]) {
			NL_SET_ERR_ATTR_MISS(r->extack, task, AMBER_TASK_CAP_INH + i);
			amber_restore_err(r, task, "capabilities need all five sets");
			return -EINVAL;
		}
		err = amber_cap_get(r, tb[AMBER_TASK_CAP_INH + i], sets[i]);
		if (err)
			return err;
	}
	if (!cap_issubset(new->cap_permitted, old->cap_permitted) ||
	    !cap_issubset(new->cap_inheritable,
			  cap_combine(old->cap_inheritable, old->cap_permitted)) ||
	    !cap_issubset(new->cap_effective, new->cap_permitted) ||
	    !cap_issubset(new->cap_bset, old->cap_bset) ||
	    !cap_issubset(new->cap_ambient,
			  cap_intersect(new->cap_permitted, new->cap_inheritable))) {
		amber_restore_err(r, tb[AMBER_TASK_CAP_PRM],
				  "capabilities exceed the caller's own");
		return -EPERM;
	}
	return 0;
}

static int amber_restore_creds_prepare(struct amber_restore *r, struct nlattr **tb,
				       const struct nlattr *task)
{
	int i, ids = 0, caps = 0, err = 0;
	struct cred *new;

	for (i = AMBER_TASK_UID; i <= AMBER_TASK_FSGID; i++)
		ids += !!tb[i];
	for (i = AMBER_TASK_CAP_INH; i <= AMBER_TASK_CAP_AMB; i++)
		caps += !!tb[i];
	if (!ids && !caps && !tb[AMBER_TASK_GROUPS])
		return 0;

	new = prepare_creds();
	if (!new)
		return -ENOMEM;
	if (ids)
		err = amber_restore_ids(r, tb, task, new);
	if (!err && tb[AMBER_TASK_GROUPS])
		err = amber_restore_groups(r, tb[AMBER_TASK_GROUPS], new);
	if (!err && caps)
		err = amber_restore_caps(r, tb, task, new);
	/*
	 * setresuid() clears the capability sets of a process that leaves uid 0:
	 * never hand the caller's capabilities to the image's ids, or the image's
	 * capabilities to the caller's ids. Checked after the parts, so each
	 * part's own error wins.
	 */
	if (!err && (ids != AMBER_TASK_FSGID - AMBER_TASK_UID + 1 ||
		     caps != AMBER_TASK_CAP_AMB - AMBER_TASK_CAP_INH + 1 ||
		     !tb[AMBER_TASK_GROUPS])) {
		amber_restore_err(r, task,
				  "credentials need all uids, gids, groups and the five capability sets together");
		err = -EINVAL;
	}
	if (err) {
		abort_creds(new);
		return err;
	}
	r->cred = new;
	return 0;
}

static int amber_restore_user_ptr(struct amber_restore *r, const struct nlattr *a,
				  unsigned long size, unsigned long align,
				  const char *what, unsigned long *out)
{
	u64 v = a ? nla_get_u64(a) : 0;

	if (v && (v >= TASK_SIZE || TASK_SIZE - v < size || !IS_ALIGNED(v, align))) {
		amber_restore_err(r, a, "%s 0x%llx is not a valid user address", what, v);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int amber_rtask_sas_prepare(struct amber_restore *r, const struct amber_rtask_attrs *a,
				   struct amber_rtask *t)
{
	u32 mode;

	t->sas_flags = SS_DISABLE;
	if (!a->sas_flags)
		return 0;
	t->sas_flags = nla_get_u32(a->sas_flags);
	mode = t->sas_flags & ~SS_FLAG_BITS;
	if (mode != SS_DISABLE && mode != SS_ONSTACK && mode != 0) {
		amber_restore_err(r, a->sas_flags, "sigaltstack flags 0x%x are invalid",
				  t->sas_flags);
		return -EINVAL;
	}
	if (mode == SS_DISABLE)
		return 0;
	t->sas_sp = a->sas_sp ? nla_get_u64(a->sas_sp) : 0;
	t->sas_size = a->sas_size ? nla_get_u64(a->sas_size) : 0;
	if (t->sas_sp >= TASK_SIZE || t->sas_size > TASK_SIZE - t->sas_sp ||
	    (t->sas_size && t->sas_size < MINSIGSTKSZ)) {
		amber_restore_err(r, a->sas_sp, "sigaltstack 0x%lx+0x%zx is invalid",
				  t->sas_sp, t->sas_size);
		return -EINVAL;
	}
	return 0;
}

/* rseq, robust list, clear_child_tid and sigaltstack of one task (leader or thread). */
int amber_rtask_prepare(struct amber_restore *r, const struct amber_rtask_attrs *a,
			struct amber_rtask *t)
{
	int err;

	err = amber_restore_user_ptr(r, a->rseq, sizeof(struct rseq),
				     __alignof__(struct rseq), "rseq", &t->rseq);
	if (err)
		return err;
	if (t->rseq) {
		if (!a->rseq_sig ||
		    (a->rseq_len && nla_get_u32(a->rseq_len) != sizeof(struct rseq))) {
			amber_restore_err(r, a->rseq,
					  "rseq needs a signature and a length of %zu",
					  sizeof(struct rseq));
			return -EINVAL;
		}
		t->rseq_sig = nla_get_u32(a->rseq_sig);
	}
	if ((t->rseq && !IS_ENABLED(CONFIG_RSEQ)) ||
	    (a->robust_list && nla_get_u64(a->robust_list) && !IS_ENABLED(CONFIG_FUTEX))) {
		amber_restore_err(r, a->parent, "this kernel has no rseq or no futex support");
		return -EOPNOTSUPP;
	}
	err = amber_restore_user_ptr(r, a->clear_child_tid, sizeof(int),
				     1, "clear_child_tid", &t->clear_child_tid);
	if (err)
		return err;
	err = amber_restore_user_ptr(r, a->robust_list, sizeof(struct robust_list_head), 1,
				     "robust list", &t->robust_list);
	if (err)
		return err;
	if (t->robust_list && (!a->robust_list_len ||
			       nla_get_u64(a->robust_list_len) !=
			       sizeof(struct robust_list_head))) {
		amber_restore_err(r, a->robust_list, "robust list length must be %zu",
				  sizeof(struct robust_list_head));
		return -EINVAL;
	}
	return amber_rtask_sas_prepare(r, a, t);
}

/* AMBER_A_TASK: rseq, robust list, clear_child_tid, sigaltstack, personality, creds. */
static int amber_restore_task_prepare(struct amber_restore *r)
{
	const struct nlattr *task = r->info->attrs[AMBER_A_TASK];
	struct nlattr *tb[AMBER_TASK_MAX + 1] = {};
	struct amber_rtask_attrs a;
	int err;

	r->t.sas_flags = SS_DISABLE;
	if (!task)
		return 0;
	err = nla_parse_nested(tb, AMBER_TASK_MAX, task, NULL, r->extack);
	if (err)
		return err;

	a = (struct amber_rtask_attrs) {
		.rseq = tb[AMBER_TASK_RSEQ],
		.rseq_len = tb[AMBER_TASK_RSEQ_LEN],
		.rseq_sig = tb[AMBER_TASK_RSEQ_SIG],
		.clear_child_tid = tb[AMBER_TASK_CLEAR_CHILD_TID],
		.robust_list = tb[AMBER_TASK_ROBUST_LIST],
		.robust_list_len = tb[AMBER_TASK_ROBUST_LIST_LEN],
		.sas_sp = tb[AMBER_TASK_SAS_SP],
		.sas_size = tb[AMBER_TASK_SAS_SIZE],
		.sas_flags = tb[AMBER_TASK_SAS_FLAGS],
		.parent = task,
	};
	err = amber_rtask_prepare(r, &a, &r->t);
	if (err)
		return err;
	if (tb[AMBER_TASK_PERSONALITY]) {
		r->personality = nla_get_u32(tb[AMBER_TASK_PERSONALITY]);
		if (r->personality == 0xffffffff) {
			amber_restore_err(r, tb[AMBER_TASK_PERSONALITY], "invalid personality");
			return -EINVAL;
		}
		r->has_personality = true;
	}
	/* An image that does not say is restored non-dumpable: the safe side. */
	r->dumpable = tb[AMBER_TASK_DUMPABLE] ?
		      nla_get_u32(tb[AMBER_TASK_DUMPABLE]) : SUID_DUMP_DISABLE;
	r->no_new_privs = tb[AMBER_TASK_NO_NEW_PRIVS] &&
			  nla_get_u32(tb[AMBER_TASK_NO_NEW_PRIVS]);
	return amber_restore_creds_prepare(r, tb, task);
}

/* AMBER_A_SIGNALS: only the blocked mask is ours (the stub set the rest). */
static int amber_restore_signals_prepare(struct amber_restore *r)
{
	const struct nlattr *attr = r->info->attrs[AMBER_A_SIGNALS];
	struct nlattr *tb[AMBER_SIG_MAX + 1] = {};
	int err;

	sigemptyset(&r->blocked);
	if (attr) {
		err = nla_parse_nested(tb, AMBER_SIG_MAX, attr, NULL, r->extack);
		if (err)
			return err;
	}
	if (tb[AMBER_SIG_BLOCKED])
		r->blocked.sig[0] = nla_get_u64(tb[AMBER_SIG_BLOCKED]);
	sigdelsetmask(&r->blocked, sigmask(SIGKILL) | sigmask(SIGSTOP));
	return 0;
}

static int amber_restore_close_fds_prepare(struct amber_restore *r)
{
	const struct nlattr *attr = r->info->attrs[AMBER_A_CLOSE_FDS], *nla;
	unsigned int n = 0;
	int rem;

	if (!attr)
		return 0;
	nla_for_each_nested(nla, attr, rem)
		n++;
	r->close_fds = kcalloc(n, sizeof(*r->close_fds), GFP_KERNEL);
	if (!r->close_fds)
		return -ENOMEM;
	nla_for_each_nested(nla, attr, rem) {
		u32 fd = nla_get_u32(nla);
		struct file *file = fget(fd);

		if (!file) {
			amber_restore_err(r, nla, "close fd %u is not open", fd);
			return -EBADF;
		}
		fput(file);
		r->close_fds[r->nr_close_fds++] = fd;
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
		err = amber_restore_mm_prepare(r, r->info->attrs[AMBER_A_MM]);
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

/* In current's own context: the fields amber_rtask_prepare() validated. */
void amber_rtask_commit(const struct amber_rtask *rt)
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

static void amber_restore_task_commit(struct amber_restore *r)
{
	amber_rtask_commit(&r->t);
	if (r->has_personality)
		set_personality(r->personality);
}

/* Phase B: past the point of no return. The caller kills us on failure. */
static int amber_restore_commit(struct amber_restore *r)
{
	struct amber_rproc *p = r->proc;
	unsigned int i;
	int err;

	err = amber_restore_map(r);
	if (err)
		return err;
	err = amber_restore_pages(r);
	if (err)
		return err;
	amber_restore_mm_commit(r);
	amber_restore_task_commit(r);
	err = sigprocmask(SIG_SETMASK, &r->blocked, NULL);
	if (err) {
		amber_restore_err(r, r->info->attrs[AMBER_A_SIGNALS],
				  "setting the blocked mask failed (%d)", err);
		return err;
	}
	if (r->cred) {
		commit_creds(r->cred);
		r->cred = NULL;
		r->cred_changed = true;
	}
	/*
	 * commit_creds() made the mm non-dumpable if the ids changed. The
	 * restored program gets the image's dumpable mode (set_dumpable() is
	 * not exported), but never more than exec would give it: a process whose
	 * real and effective ids differ stays as commit_creds() left it, and a
	 * program that made itself non-dumpable stays non-dumpable.
	 */
	if (r->dumpable != SUID_DUMP_USER ||
	    (uid_eq(current_euid(), current_uid()) && gid_eq(current_egid(), current_gid())))
		set_mask_bits(&current->mm->flags, MMF_DUMPABLE_MASK, r->dumpable);
	if (r->no_new_privs)
		task_set_no_new_privs(current);
	for (i = 0; i < r->nr_close_fds; i++)
		close_fd(r->close_fds[i]);

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
	if (r->cred)
		abort_creds(r->cred);
	amber_restore_mm_release(r);
	if (r->proc)
		amber_rproc_put(r->proc);
	kfree(r);
}

int amber_nl_restore_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct amber_restore *r;
	int err;

	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	r->info = info;
	r->extack = info->extack;
	if (info->attrs[AMBER_A_FLAGS])
		r->flags = nla_get_u32(info->attrs[AMBER_A_FLAGS]);
	r->proc = amber_rproc_new(info->snd_portid, genl_info_net(info));
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
