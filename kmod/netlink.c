// SPDX-License-Identifier: GPL-2.0
/*
 * The "amber" generic netlink family: attribute policies, request parsing
 * and reply building. The work itself is in checkpoint.c and restore*.c.
 */
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/pid.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/threads.h>
#include <linux/uidgid.h>
#include <net/genetlink.h>
#include <net/netlink.h>

#include <linux/amber.h>

#include "checkpoint.h"
#include "netlink.h"
#include "restore.h"
#include "session.h"
#include "track.h"

static struct genl_family amber_family;

/* Not const: 6.1's struct nla_policy points at a non-const range. */

static struct netlink_range_validation amber_pid_range = {
	.min = 1,
	.max = PID_MAX_LIMIT,
};

static struct netlink_range_validation amber_fd_range = {
	.min = 0,
	.max = INT_MAX,
};

static struct netlink_range_validation amber_timeout_range = {
	.min = 1,
	.max = AMBER_TIMEOUT_MAX_MS,
};

static const struct nla_policy amber_checkpoint_policy[AMBER_A_MAX + 1] = {
	[AMBER_A_PID]		= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_pid_range),
	[AMBER_A_PAGES_FD]	= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_fd_range),
	[AMBER_A_FLAGS]		= NLA_POLICY_MASK(NLA_U32, __AMBER_CKPT_F_ALL),
	[AMBER_A_TIMEOUT_MS]	= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_timeout_range),
	[AMBER_A_PARENT_ID]	= { .type = NLA_U64 },
	[AMBER_A_PAGES_FDS]	= { .type = NLA_NESTED },
	[AMBER_A_PARENTS]	= { .type = NLA_NESTED },
};

static const struct nla_policy amber_parent_policy[AMBER_PARENT_MAX + 1] = {
	[AMBER_PARENT_PID]	= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_pid_range),
	[AMBER_PARENT_ID]	= { .type = NLA_U64 },
};

static const struct nla_policy amber_untrack_policy[AMBER_A_MAX + 1] = {
	[AMBER_A_PID]		= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_pid_range),
};

static const struct nla_policy amber_release_policy[AMBER_A_MAX + 1] = {
	[AMBER_A_PID]		= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_pid_range),
	[AMBER_A_ACTION]	= NLA_POLICY_RANGE(NLA_U32, AMBER_RELEASE_RESUME,
						   AMBER_RELEASE_MAX),
};

/* x86-64 never pads 64-bit attributes; AMBER_A_PAD only exists for others. */
static int amber_put_u64(struct sk_buff *skb, int type, u64 value)
{
	return nla_put_u64_64bit(skb, type, value, AMBER_A_PAD);
}

static int amber_nl_get_version_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg;
	void *hdr;

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg) {
		NL_SET_ERR_MSG(info->extack, "out of memory for the reply");
		return -ENOMEM;
	}
	hdr = genlmsg_put_reply(msg, info, &amber_family, 0,
				AMBER_CMD_GET_VERSION);
	if (!hdr)
		goto err_free_msg;
	if (nla_put_string(msg, AMBER_A_MODULE_VERSION, AMBER_VERSION_STRING) ||
	    nla_put_u32(msg, AMBER_A_PROTO_VERSION, AMBER_FAMILY_VERSION) ||
	    nla_put_u32(msg, AMBER_A_SESSIONS, amber_ckpt_nr_stopped()) ||
	    nla_put_u32(msg, AMBER_A_TRACKED, amber_track_count()))
		goto err_free_msg;
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

err_free_msg:
	nlmsg_free(msg);
	NL_SET_ERR_MSG(info->extack, "the reply did not fit its buffer");
	return -EMSGSIZE;
}

/* ---- CHECKPOINT reply ---- */

/* The other nests are bounded at capture time; check rather than trust. */
static int amber_nest_end(struct sk_buff *skb, struct nlattr *nest)
{
	if (skb_tail_pointer(skb) - (unsigned char *)nest > U16_MAX)
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

static size_t amber_str_size(const char *s)
{
	return s ? nla_total_size(strlen(s) + 1) : 0;
}

#define AMBER_U32_SIZE	nla_total_size(sizeof(u32))
#define AMBER_U64_SIZE	nla_total_size_64bit(sizeof(u64))

/* START, END, PGOFF, PAGES, PROT, FLAGS; DEV, INO, FILE_SIZE with a path. */
#define AMBER_VMA_SIZE		(nla_total_size(0) + 4 * AMBER_U64_SIZE + 2 * AMBER_U32_SIZE)
#define AMBER_VMA_FILE_NLSIZE	(3 * AMBER_U64_SIZE)

/* PID, PPID, PGID, SID, NR_THREADS, EXIT_CODE, ZOMBIE. */
#define AMBER_PROC_NLSIZE	(nla_total_size(0) + 6 * AMBER_U32_SIZE + nla_total_size(0))
/* TID, BLOCKED, CLEAR_CHILD_TID, ROBUST_LIST(_LEN), SAS_*, RSEQ*, COMM. */
#define AMBER_THREAD_NLSIZE	(nla_total_size(0) + 5 * AMBER_U32_SIZE + \
				 6 * AMBER_U64_SIZE + nla_total_size(TASK_COMM_LEN))

static size_t amber_thread_size(const struct amber_thr *thr)
{
	return AMBER_THREAD_NLSIZE +
	       nla_total_size(0) + AMBER_REG_MAX * AMBER_U64_SIZE +
	       nla_total_size(thr->regs.fpu_len) +
	       thr->ts.nr_pending * (nla_total_size(0) +
				     nla_total_size(AMBER_SIGINFO_SIZE));
}

/* An upper bound of a live process's reply payload. */
static size_t amber_reply_size(const struct amber_proc *p)
{
	const struct amber_state *st = &p->st;
	/* Top-level scalars and nest headers, split list nests included. */
	size_t size = 1024 + st->mm.nr_vmas / 64 * NLA_HDRLEN;
	unsigned int i;

	size += 1024 + amber_str_size(st->task.cwd) + amber_str_size(st->task.exe);
	size += amber_str_size(st->track.full_reason);
	size += st->task.cred->group_info->ngroups * nla_total_size(sizeof(u32));
	size += RLIM_NLIMITS * (nla_total_size(0) + nla_total_size(sizeof(u32)) +
				2 * nla_total_size(sizeof(u64)));
	size += 512 + nla_total_size(sizeof(st->mm.auxv));
	size += nla_total_size(0) + AMBER_REG_MAX * nla_total_size(sizeof(u64));
	size += nla_total_size(st->regs.fpu_len);
	size += _NSIG * (nla_total_size(0) + nla_total_size(sizeof(u32)) +
			 4 * nla_total_size(sizeof(u64)));
	size += st->sig.nr_pending * (nla_total_size(0) +
				      nla_total_size(AMBER_SIGINFO_SIZE) +
				      nla_total_size(0));
	/*
	 * The lists dominate: count them exactly, so that a large reply is not
	 * twice its size in the receiver's socket buffer (netlink_trim() only
	 * shrinks buffers that are more than half empty).
	 */
	for (i = 0; i < st->mm.nr_vmas; i++)
		size += AMBER_VMA_SIZE + AMBER_VMA_FILE_NLSIZE +
			amber_str_size(st->mm.vmas[i].path);
	size += amber_files_reply_size(&st->files);
	size += AMBER_PROC_NLSIZE + AMBER_U32_SIZE;
	size += (p->nr_others / 16 + 1) * NLA_HDRLEN;
	for (i = 0; i < p->nr_others; i++)
		size += amber_thread_size(p->others[i]);
	return size;
}

static u64 amber_cap(kernel_cap_t cap)
{
	BUILD_BUG_ON(_KERNEL_CAPABILITY_U32S != 2);
	return (u64)cap.cap[1] << 32 | cap.cap[0];
}

/* Credentials as seen from the caller's user namespace. */
static int amber_fill_creds(struct sk_buff *skb, const struct cred *cred)
{
	struct user_namespace *ns = current_user_ns();
	const struct group_info *gi = cred->group_info;
	struct nlattr *nest;
	int i;

	if (nla_put_u32(skb, AMBER_TASK_UID, from_kuid_munged(ns, cred->uid)) ||
	    nla_put_u32(skb, AMBER_TASK_EUID, from_kuid_munged(ns, cred->euid)) ||
	    nla_put_u32(skb, AMBER_TASK_SUID, from_kuid_munged(ns, cred->suid)) ||
	    nla_put_u32(skb, AMBER_TASK_FSUID, from_kuid_munged(ns, cred->fsuid)) ||
	    nla_put_u32(skb, AMBER_TASK_GID, from_kgid_munged(ns, cred->gid)) ||
	    nla_put_u32(skb, AMBER_TASK_EGID, from_kgid_munged(ns, cred->egid)) ||
	    nla_put_u32(skb, AMBER_TASK_SGID, from_kgid_munged(ns, cred->sgid)) ||
	    nla_put_u32(skb, AMBER_TASK_FSGID, from_kgid_munged(ns, cred->fsgid)))
		return -EMSGSIZE;

	nest = nla_nest_start(skb, AMBER_TASK_GROUPS);
	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < gi->ngroups; i++)
		if (nla_put_u32(skb, AMBER_TASK_GROUP,
				from_kgid_munged(ns, gi->gid[i])))
			return -EMSGSIZE;
	if (amber_nest_end(skb, nest))
		return -EMSGSIZE;

	if (amber_put_u64(skb, AMBER_TASK_CAP_INH, amber_cap(cred->cap_inheritable)) ||
	    amber_put_u64(skb, AMBER_TASK_CAP_PRM, amber_cap(cred->cap_permitted)) ||
	    amber_put_u64(skb, AMBER_TASK_CAP_EFF, amber_cap(cred->cap_effective)) ||
	    amber_put_u64(skb, AMBER_TASK_CAP_BND, amber_cap(cred->cap_bset)) ||
	    amber_put_u64(skb, AMBER_TASK_CAP_AMB, amber_cap(cred->cap_ambient)))
		return -EMSGSIZE;
	return 0;
}

static int amber_fill_rlimits(struct sk_buff *skb,
			      const struct amber_task_state *t)
{
	struct nlattr *nest, *rl;
	unsigned int i;

	nest = nla_nest_start(skb, AMBER_TASK_RLIMITS);
	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < RLIM_NLIMITS; i++) {
		rl = nla_nest_start(skb, AMBER_TASK_RLIMIT);
		if (!rl ||
		    nla_put_u32(skb, AMBER_RLIMIT_RESOURCE, i) ||
		    amber_put_u64(skb, AMBER_RLIMIT_CUR, t->rlim[i].rlim_cur) ||
		    amber_put_u64(skb, AMBER_RLIMIT_MAX, t->rlim[i].rlim_max))
			return -EMSGSIZE;
		nla_nest_end(skb, rl);
	}
	nla_nest_end(skb, nest);
	return 0;
}

/* Attribute types of the registrations in a TASK or a THREAD nest. */
struct amber_regn_types {
	int rseq, rseq_len, rseq_sig, clear_child_tid, robust_list, robust_list_len;
	int sas_sp, sas_size, sas_flags;
};

static const struct amber_regn_types amber_task_regn_types = {
	AMBER_TASK_RSEQ, AMBER_TASK_RSEQ_LEN, AMBER_TASK_RSEQ_SIG,
	AMBER_TASK_CLEAR_CHILD_TID, AMBER_TASK_ROBUST_LIST, AMBER_TASK_ROBUST_LIST_LEN,
	AMBER_TASK_SAS_SP, AMBER_TASK_SAS_SIZE, AMBER_TASK_SAS_FLAGS,
};

static const struct amber_regn_types amber_thread_regn_types = {
	AMBER_THREAD_RSEQ, AMBER_THREAD_RSEQ_LEN, AMBER_THREAD_RSEQ_SIG,
	AMBER_THREAD_CLEAR_CHILD_TID, AMBER_THREAD_ROBUST_LIST, AMBER_THREAD_ROBUST_LIST_LEN,
	AMBER_THREAD_SAS_SP, AMBER_THREAD_SAS_SIZE, AMBER_THREAD_SAS_FLAGS,
};

/* rseq, futex lists and sigaltstack, as @t names them. */
static int amber_fill_regn(struct sk_buff *skb, const struct amber_task_regn *r,
			   const struct amber_regn_types *t)
{
	if (amber_put_u64(skb, t->rseq, r->rseq) ||
	    nla_put_u32(skb, t->rseq_len, r->rseq_len) ||
	    nla_put_u32(skb, t->rseq_sig, r->rseq_sig) ||
	    amber_put_u64(skb, t->clear_child_tid, r->clear_child_tid) ||
	    amber_put_u64(skb, t->robust_list, r->robust_list) ||
	    amber_put_u64(skb, t->robust_list_len, r->robust_list_len) ||
	    amber_put_u64(skb, t->sas_sp, r->sas_sp) ||
	    amber_put_u64(skb, t->sas_size, r->sas_size) ||
	    nla_put_u32(skb, t->sas_flags, r->sas_flags))
		return -EMSGSIZE;
	return 0;
}

static int amber_fill_task(struct sk_buff *skb, const struct amber_proc *p)
{
	const struct amber_task_state *t = &p->st.task;
	struct nlattr *nest;

	nest = nla_nest_start(skb, AMBER_A_TASK);
	if (!nest ||
	    nla_put_u32(skb, AMBER_TASK_PID, p->pid) ||
	    nla_put_string(skb, AMBER_TASK_COMM, t->comm) ||
	    amber_fill_creds(skb, t->cred) ||
	    nla_put_u32(skb, AMBER_TASK_UMASK, t->umask) ||
	    nla_put_u32(skb, AMBER_TASK_PERSONALITY, t->personality) ||
	    nla_put_string(skb, AMBER_TASK_CWD, t->cwd) ||
	    amber_fill_rlimits(skb, t) ||
	    amber_fill_regn(skb, &t->regn, &amber_task_regn_types) ||
	    (t->exe && nla_put_string(skb, AMBER_TASK_EXE, t->exe)) ||
	    amber_put_u64(skb, AMBER_TASK_START_TIME_NS, t->start_time_ns) ||
	    nla_put_u32(skb, AMBER_TASK_DUMPABLE, t->dumpable) ||
	    nla_put_u32(skb, AMBER_TASK_NO_NEW_PRIVS, t->no_new_privs))
		return -EMSGSIZE;
	return amber_nest_end(skb, nest);
}

static int amber_fill_mm(struct sk_buff *skb, const struct amber_mm_state *mm)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_MM);

	if (!nest ||
	    amber_put_u64(skb, AMBER_MM_START_CODE, mm->start_code) ||
	    amber_put_u64(skb, AMBER_MM_END_CODE, mm->end_code) ||
	    amber_put_u64(skb, AMBER_MM_START_DATA, mm->start_data) ||
	    amber_put_u64(skb, AMBER_MM_END_DATA, mm->end_data) ||
	    amber_put_u64(skb, AMBER_MM_START_BRK, mm->start_brk) ||
	    amber_put_u64(skb, AMBER_MM_BRK, mm->brk) ||
	    amber_put_u64(skb, AMBER_MM_START_STACK, mm->start_stack) ||
	    amber_put_u64(skb, AMBER_MM_ARG_START, mm->arg_start) ||
	    amber_put_u64(skb, AMBER_MM_ARG_END, mm->arg_end) ||
	    amber_put_u64(skb, AMBER_MM_ENV_START, mm->env_start) ||
	    amber_put_u64(skb, AMBER_MM_ENV_END, mm->env_end) ||
	    nla_put(skb, AMBER_MM_AUXV, mm->auxv_len * sizeof(u64), mm->auxv) ||
	    amber_put_u64(skb, AMBER_MM_VDSO, mm->vdso))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

static int amber_fill_vma(struct sk_buff *skb, const struct amber_vma *v)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_VMA);

	if (!nest ||
	    amber_put_u64(skb, AMBER_VMA_START, v->start) ||
	    amber_put_u64(skb, AMBER_VMA_END, v->end) ||
	    amber_put_u64(skb, AMBER_VMA_PGOFF, v->pgoff) ||
	    nla_put_u32(skb, AMBER_VMA_PROT, v->prot) ||
	    nla_put_u32(skb, AMBER_VMA_FLAGS, v->flags) ||
	    amber_put_u64(skb, AMBER_VMA_PAGES, v->pages))
		return -EMSGSIZE;
	if (v->path && nla_put_string(skb, AMBER_VMA_PATH, v->path))
		return -EMSGSIZE;
	/* A mapped file, or the shmem object of shared anonymous memory. */
	if ((v->path || (v->flags & AMBER_VMA_F_SHMEM)) &&
	    (amber_put_u64(skb, AMBER_VMA_DEV, v->dev) ||
	     amber_put_u64(skb, AMBER_VMA_INO, v->ino) ||
	     amber_put_u64(skb, AMBER_VMA_FILE_SIZE, v->file_size)))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

/*
 * nla_len is 16 bits: a list that outgrows one nest continues in another
 * nest of the same type (the tools concatenate them). Each entry is filled,
 * and moved to a fresh nest if it made the current one too long.
 */
static int amber_fill_list(struct sk_buff *skb, int type, unsigned int count,
			   int (*fill)(struct sk_buff *skb, const void *list,
				       unsigned int i),
			   const void *list)
{
	struct nlattr *nest = nla_nest_start(skb, type);
	unsigned int i;

	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < count; i++) {
		unsigned char *mark = skb_tail_pointer(skb);

		if (fill(skb, list, i))
			return -EMSGSIZE;
		if (skb_tail_pointer(skb) - (unsigned char *)nest <= U16_MAX)
			continue;
		nlmsg_trim(skb, mark);
		nla_nest_end(skb, nest);
		nest = nla_nest_start(skb, type);
		if (!nest || fill(skb, list, i) ||
		    skb_tail_pointer(skb) - (unsigned char *)nest > U16_MAX)
			return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

static int amber_fill_vma_i(struct sk_buff *skb, const void *list,
			    unsigned int i)
{
	return amber_fill_vma(skb, &((const struct amber_vma *)list)[i]);
}

static int amber_fill_vmas(struct sk_buff *skb, const struct amber_mm_state *mm)
{
	return amber_fill_list(skb, AMBER_A_VMAS, mm->nr_vmas, amber_fill_vma_i,
			       mm->vmas);
}

static int amber_fill_regs_as(struct sk_buff *skb, const struct amber_regs_state *r,
			      int regs_type, int fpu_type)
{
	struct nlattr *nest = nla_nest_start(skb, regs_type);
	int i;

	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < AMBER_REG_MAX; i++)
		if (amber_put_u64(skb, i + 1, r->regs[i]))
			return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return nla_put(skb, fpu_type, r->fpu_len, r->fpu);
}

static int amber_fill_regs(struct sk_buff *skb, const struct amber_regs_state *r)
{
	return amber_fill_regs_as(skb, r, AMBER_A_REGS, AMBER_A_FPU);
}

static int amber_fill_sigaction(struct sk_buff *skb, int signo,
				const struct amber_sigaction *a)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_SIG_ACTION);

	if (!nest ||
	    nla_put_u32(skb, AMBER_SIGACTION_SIGNO, signo) ||
	    amber_put_u64(skb, AMBER_SIGACTION_HANDLER, a->handler) ||
	    amber_put_u64(skb, AMBER_SIGACTION_FLAGS, a->flags) ||
	    amber_put_u64(skb, AMBER_SIGACTION_RESTORER, a->restorer) ||
	    amber_put_u64(skb, AMBER_SIGACTION_MASK, a->mask))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

static int amber_fill_sigpending_as(struct sk_buff *skb, int type,
				    const struct amber_sigpending *p)
{
	struct nlattr *nest = nla_nest_start(skb, type);

	if (!nest ||
	    nla_put(skb, AMBER_SIGPENDING_SIGINFO, sizeof(p->info), p->info) ||
	    (p->shared && nla_put_flag(skb, AMBER_SIGPENDING_SHARED)))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

static int amber_fill_signals(struct sk_buff *skb,
			      const struct amber_sig_state *s)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_SIGNALS);
	unsigned int i;

	if (!nest || amber_put_u64(skb, AMBER_SIG_BLOCKED, s->blocked))
		return -EMSGSIZE;
	for (i = 0; i < _NSIG; i++)
		if (amber_fill_sigaction(skb, i + 1, &s->action[i]))
			return -EMSGSIZE;
	for (i = 0; i < s->nr_pending; i++)
		if (amber_fill_sigpending_as(skb, AMBER_SIG_PENDING, &s->pending[i]))
			return -EMSGSIZE;
	return amber_nest_end(skb, nest);
}

/* TRACK_ID when tracked, PARENT_ID iff incremental, FULL_REASON if refused. */
static int amber_fill_track(struct sk_buff *skb, const struct amber_track *t)
{
	if ((t->id && amber_put_u64(skb, AMBER_A_TRACK_ID, t->id)) ||
	    (t->incremental && amber_put_u64(skb, AMBER_A_PARENT_ID, t->parent_id)) ||
	    (t->full_reason && nla_put_string(skb, AMBER_A_FULL_REASON, t->full_reason)))
		return -EMSGSIZE;
	return 0;
}

static int amber_fill_thread(struct sk_buff *skb, const struct amber_thr *thr)
{
	const struct amber_thread_state *t = &thr->ts;
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_THREAD);
	unsigned int i;

	if (!nest ||
	    nla_put_u32(skb, AMBER_THREAD_TID, thr->tid) ||
	    amber_fill_regs_as(skb, &thr->regs, AMBER_THREAD_REGS, AMBER_THREAD_FPU) ||
	    amber_put_u64(skb, AMBER_THREAD_BLOCKED, t->blocked) ||
	    amber_fill_regn(skb, &t->regn, &amber_thread_regn_types) ||
	    nla_put_string(skb, AMBER_THREAD_COMM, t->comm))
		return -EMSGSIZE;
	for (i = 0; i < t->nr_pending; i++)
		if (amber_fill_sigpending_as(skb, AMBER_THREAD_PENDING, &t->pending[i]))
			return -EMSGSIZE;
	return amber_nest_end(skb, nest);
}

static int amber_fill_thread_i(struct sk_buff *skb, const void *list,
			       unsigned int i)
{
	return amber_fill_thread(skb, ((struct amber_thr * const *)list)[i]);
}

static int amber_fill_proc(struct sk_buff *skb, const struct amber_proc *p)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_PROC);

	if (!nest ||
	    nla_put_u32(skb, AMBER_PROC_PID, p->pid) ||
	    nla_put_u32(skb, AMBER_PROC_PPID, p->ppid) ||
	    nla_put_u32(skb, AMBER_PROC_PGID, p->pgid) ||
	    nla_put_u32(skb, AMBER_PROC_SID, p->sid))
		return -EMSGSIZE;
	if (p->zombie) {
		if (nla_put_flag(skb, AMBER_PROC_ZOMBIE) ||
		    nla_put_u32(skb, AMBER_PROC_EXIT_CODE, p->exit_code))
			return -EMSGSIZE;
	} else if (nla_put_u32(skb, AMBER_PROC_NR_THREADS, p->nr_threads)) {
		return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

static int amber_fill_checkpoint(struct sk_buff *skb, const struct amber_req *req,
				 const struct amber_proc *p)
{
	const struct amber_state *st = &p->st;

	if (amber_fill_proc(skb, p))
		return -EMSGSIZE;
	if (p->zombie)
		return 0;
	if (p->pages_index >= 0 &&
	    nla_put_u32(skb, AMBER_A_PAGES_INDEX, p->pages_index))
		return -EMSGSIZE;
	if (p->nr_others &&
	    amber_fill_list(skb, AMBER_A_THREADS, p->nr_others, amber_fill_thread_i,
			    p->others))
		return -EMSGSIZE;
	if (amber_fill_task(skb, p) ||
	    amber_fill_mm(skb, &st->mm) ||
	    amber_fill_vmas(skb, &st->mm) ||
	    amber_fill_regs(skb, &st->regs) ||
	    amber_fill_signals(skb, &st->sig) ||
	    amber_files_fill(skb, &st->files) ||
	    amber_put_u64(skb, AMBER_A_STOPPED_NS, req->stopped_ns) ||
	    amber_put_u64(skb, AMBER_A_PAGES_BYTES, st->mm.pages_bytes) ||
	    amber_put_u64(skb, AMBER_A_PAGES_NR, st->mm.pages_nr) ||
	    amber_put_u64(skb, AMBER_A_PAGES_PARENT_NR, st->mm.pages_parent_nr) ||
	    amber_fill_track(skb, &st->track))
		return -EMSGSIZE;
	return 0;
}

/*
 * A genetlink message is one kmalloc'ed buffer: at most KMALLOC_MAX_SIZE
 * (4 MiB here), less the skb's shared info and the headers.
 */
#define AMBER_REPLY_MAX	(KMALLOC_MAX_SIZE - SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) - \
			 NLMSG_HDRLEN - GENL_HDRLEN - 64)

static int amber_checkpoint_reply_one(struct amber_req *req,
				      struct amber_proc *p, struct genl_info *info)
{
	size_t size = p->zombie ? AMBER_PROC_NLSIZE : amber_reply_size(p);
	struct sk_buff *msg;
	void *hdr;
	int err;

	/* genlmsg_new() takes an int: refuse absurd states before it wraps. */
	if (size > AMBER_REPLY_MAX) {
		amber_set_msg(info->extack,
			      amber_msg("pid %d: the process state is too large for one reply (%zu bytes, %u threads)",
					p->pid, size, p->nr_threads));
		return -E2BIG;
	}
	msg = genlmsg_new(size, GFP_KERNEL);
	if (!msg) {
		NL_SET_ERR_MSG(info->extack, "out of memory for the reply");
		return -ENOMEM;
	}
	hdr = genlmsg_put_reply(msg, info, &amber_family, 0,
				AMBER_CMD_CHECKPOINT);
	if (!hdr || amber_fill_checkpoint(msg, req, p)) {
		nlmsg_free(msg);
		NL_SET_ERR_MSG(info->extack, "the reply did not fit its buffer");
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	err = genlmsg_reply(msg, info);
	if (err)
		amber_set_msg(info->extack,
			      amber_msg("sending the reply of pid %d failed (receive buffer too small?)",
					p->pid));
	return err;
}

/* One message per process, in discovery order: the root, parents first. */
static int amber_checkpoint_reply(struct amber_req *req, struct genl_info *info)
{
	unsigned int i;
	int err;

	for (i = 0; i < req->nr_procs; i++) {
		if (req->procs[i]->gone)
			continue;
		err = amber_checkpoint_reply_one(req, req->procs[i], info);
		if (err)
			return err;
	}
	return 0;
}

/* PAGES_FDS: each a regular file open for writing, none twice. */
static int amber_parse_pool(struct nlattr *attr, int root_fd,
			    struct amber_ckpt_args *args, struct netlink_ext_ack *extack)
{
	struct nlattr *a;
	int rem, err = 0;
	unsigned int i;

	args->pool = kcalloc(AMBER_TREE_MAX_PROCS, sizeof(*args->pool), GFP_KERNEL);
	if (!args->pool) {
		NL_SET_ERR_MSG(extack, "out of memory");
		return -ENOMEM;
	}
	nla_for_each_nested(a, attr, rem) {
		struct file *file;
		u32 fd;

		if (nla_type(a) != AMBER_A_PAGE_FD || nla_len(a) != sizeof(u32)) {
			NL_SET_ERR_MSG_ATTR(extack, a, "PAGES_FDS holds only u32 PAGE_FD attributes");
			return -EINVAL;
		}
		if (args->nr_pool >= AMBER_TREE_MAX_PROCS) {
			NL_SET_ERR_MSG_ATTR(extack, a, "more than 512 PAGES_FDS");
			return -E2BIG;
		}
		fd = nla_get_u32(a);
		file = fd <= INT_MAX ? fget(fd) : NULL;
		if (!file) {
			amber_set_msg(extack, amber_msg("PAGES_FDS: fd %u is not an open file descriptor",
							fd));
			return -EBADF;
		}
		args->pool[args->nr_pool++] = file;
		if (!S_ISREG(file_inode(file)->i_mode)) {
			amber_set_msg(extack, amber_msg("PAGES_FDS: fd %u must be a regular file", fd));
			return -EINVAL;
		}
		if (!(file->f_mode & FMODE_WRITE)) {
			amber_set_msg(extack, amber_msg("PAGES_FDS: fd %u must be open for writing",
							fd));
			return -EBADF;
		}
		if (fd == root_fd)
			err = -EINVAL;
		for (i = 0; i + 1 < args->nr_pool; i++)
			if (args->pool[i] == file)
				err = -EINVAL;
		if (err) {
			amber_set_msg(extack, amber_msg("PAGES_FDS: fd %u is given twice (each process needs its own pages file)",
							fd));
			return err;
		}
	}
	return 0;
}

static int amber_parse_parents(struct nlattr *attr, struct amber_ckpt_args *args,
			       struct netlink_ext_ack *extack)
{
	struct nlattr *tb[AMBER_PARENT_MAX + 1];
	struct nlattr *a;
	int rem, err;

	args->parents = kcalloc(AMBER_TREE_MAX_PROCS, sizeof(*args->parents), GFP_KERNEL);
	if (!args->parents) {
		NL_SET_ERR_MSG(extack, "out of memory");
		return -ENOMEM;
	}
	nla_for_each_nested(a, attr, rem) {
		if (nla_type(a) != AMBER_A_PARENT_ENTRY) {
			NL_SET_ERR_MSG_ATTR(extack, a, "PARENTS holds only PARENT_ENTRY nests");
			return -EINVAL;
		}
		if (args->nr_parents >= AMBER_TREE_MAX_PROCS) {
			NL_SET_ERR_MSG_ATTR(extack, a, "more than 512 PARENTS entries");
			return -E2BIG;
		}
		err = nla_parse_nested(tb, AMBER_PARENT_MAX, a, amber_parent_policy, extack);
		if (err)
			return err;
		if (!tb[AMBER_PARENT_PID] || !tb[AMBER_PARENT_ID] ||
		    !nla_get_u64(tb[AMBER_PARENT_ID])) {
			NL_SET_ERR_MSG_ATTR(extack, a,
					    "a PARENT_ENTRY needs a PID and a non-zero PARENT_ID");
			return -EINVAL;
		}
		args->parents[args->nr_parents++] = (struct amber_parent){
			.pid = nla_get_u32(tb[AMBER_PARENT_PID]),
			.id = nla_get_u64(tb[AMBER_PARENT_ID]),
		};
	}
	return 0;
}

static void amber_args_free(struct amber_ckpt_args *args)
{
	unsigned int i;

	for (i = 0; i < args->nr_pool; i++)
		fput(args->pool[i]);
	kfree(args->pool);
	kfree(args->parents);
}

static int amber_nl_checkpoint_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **attrs = info->attrs;
	struct amber_ckpt_args args = {
		.timeout_ms = AMBER_TIMEOUT_DEFAULT_MS,
		.portid = info->snd_portid,
		.net = genl_info_net(info),
	};
	struct amber_req *req;
	int err;

	if (GENL_REQ_ATTR_CHECK(info, AMBER_A_PID)) {
		NL_SET_ERR_MSG(info->extack, "missing PID");
		return -EINVAL;
	}
	if (GENL_REQ_ATTR_CHECK(info, AMBER_A_PAGES_FD)) {
		NL_SET_ERR_MSG(info->extack, "missing PAGES_FD");
		return -EINVAL;
	}

	args.pid = nla_get_u32(attrs[AMBER_A_PID]);
	args.pid_attr = attrs[AMBER_A_PID];
	args.pages_fd = nla_get_u32(attrs[AMBER_A_PAGES_FD]);
	args.fd_attr = attrs[AMBER_A_PAGES_FD];
	if (attrs[AMBER_A_FLAGS])
		args.flags = nla_get_u32(attrs[AMBER_A_FLAGS]);
	if (attrs[AMBER_A_TIMEOUT_MS])
		args.timeout_ms = nla_get_u32(attrs[AMBER_A_TIMEOUT_MS]);
	if (attrs[AMBER_A_PARENT_ID]) {
		args.parent_id = nla_get_u64(attrs[AMBER_A_PARENT_ID]);
		if (!(args.flags & AMBER_CKPT_F_TRACK)) {
			NL_SET_ERR_MSG_ATTR(info->extack, attrs[AMBER_A_PARENT_ID],
					    "PARENT_ID needs FLAGS with AMBER_CKPT_F_TRACK");
			return -EINVAL;
		}
		if (!args.parent_id) {
			NL_SET_ERR_MSG_ATTR(info->extack, attrs[AMBER_A_PARENT_ID],
					    "PARENT_ID 0 is not a tracking id");
			return -EINVAL;
		}
	}

	if (attrs[AMBER_A_PAGES_FDS] || attrs[AMBER_A_PARENTS]) {
		struct nlattr *a = attrs[AMBER_A_PAGES_FDS] ?: attrs[AMBER_A_PARENTS];

		if (!(args.flags & AMBER_CKPT_F_TREE)) {
			NL_SET_ERR_MSG_ATTR(info->extack, a,
					    "PAGES_FDS and PARENTS need FLAGS with AMBER_CKPT_F_TREE");
			return -EINVAL;
		}
	}
	if (attrs[AMBER_A_PARENTS] && !(args.flags & AMBER_CKPT_F_TRACK)) {
		NL_SET_ERR_MSG_ATTR(info->extack, attrs[AMBER_A_PARENTS],
				    "PARENTS needs FLAGS with AMBER_CKPT_F_TRACK");
		return -EINVAL;
	}
	err = 0;
	if (attrs[AMBER_A_PAGES_FDS])
		err = amber_parse_pool(attrs[AMBER_A_PAGES_FDS], args.pages_fd, &args,
				       info->extack);
	if (!err && attrs[AMBER_A_PARENTS])
		err = amber_parse_parents(attrs[AMBER_A_PARENTS], &args, info->extack);
	if (err) {
		amber_args_free(&args);
		return err;
	}

	/* Takes over args.pool and args.parents. */
	req = amber_checkpoint(&args, info->extack);
	if (IS_ERR(req))
		return PTR_ERR(req);

	err = amber_checkpoint_reply(req, info);
	/* Nobody will release a target whose image did not reach user space. */
	if (err)
		amber_req_abort(req);
	amber_req_put(req);
	return err;
}

static int amber_nl_release_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **attrs = info->attrs;
	u32 action;
	pid_t pid;
	int err;

	if (GENL_REQ_ATTR_CHECK(info, AMBER_A_PID)) {
		NL_SET_ERR_MSG(info->extack, "missing PID");
		return -EINVAL;
	}
	if (GENL_REQ_ATTR_CHECK(info, AMBER_A_ACTION)) {
		NL_SET_ERR_MSG(info->extack, "missing ACTION");
		return -EINVAL;
	}

	pid = nla_get_u32(attrs[AMBER_A_PID]);
	action = nla_get_u32(attrs[AMBER_A_ACTION]);
	err = amber_session_release(pid, info->snd_portid, genl_info_net(info), action);
	if (err)
		NL_SET_ERR_MSG_ATTR(info->extack, attrs[AMBER_A_PID],
				    "this socket holds no process with that pid (hold timed out?)");
	return err;
}

static int amber_nl_untrack_doit(struct sk_buff *skb, struct genl_info *info)
{
	if (GENL_REQ_ATTR_CHECK(info, AMBER_A_PID)) {
		NL_SET_ERR_MSG(info->extack, "missing PID");
		return -EINVAL;
	}
	return amber_untrack(nla_get_u32(info->attrs[AMBER_A_PID]),
			     info->attrs[AMBER_A_PID], info->extack);
}

static const struct genl_ops amber_ops[] = {
	{
		.cmd	= AMBER_CMD_GET_VERSION,
		.doit	= amber_nl_get_version_doit,
		/* No policy: every attribute is rejected. */
	},
	{
		.cmd	= AMBER_CMD_CHECKPOINT,
		.doit	= amber_nl_checkpoint_doit,
		.policy	= amber_checkpoint_policy,
		.maxattr = AMBER_A_MAX,
	},
	{
		.cmd	= AMBER_CMD_RELEASE,
		.doit	= amber_nl_release_doit,
		.policy	= amber_release_policy,
		.maxattr = AMBER_A_MAX,
	},
	{
		.cmd	= AMBER_CMD_RESTORE,
		.doit	= amber_nl_restore_doit,
		.policy	= amber_restore_policy,
		.maxattr = AMBER_A_MAX,
	},
	{
		.cmd	= AMBER_CMD_UNTRACK,
		.doit	= amber_nl_untrack_doit,
		.policy	= amber_untrack_policy,
		.maxattr = AMBER_A_MAX,
	},
};

static struct genl_family amber_family __ro_after_init = {
	.name		= AMBER_FAMILY_NAME,
	.version	= AMBER_FAMILY_VERSION,
	.maxattr	= AMBER_A_MAX,
	/* PIDs are looked up in the caller's pid namespace, not its netns. */
	.netnsok	= true,
	/* Handlers sleep for long (checkpoint wait, restore): own locking. */
	.parallel_ops	= true,
	.module		= THIS_MODULE,
	.ops		= amber_ops,
	.n_ops		= ARRAY_SIZE(amber_ops),
};

int amber_netlink_init(void)
{
	return genl_register_family(&amber_family);
}

void amber_netlink_exit(void)
{
	genl_unregister_family(&amber_family);
}
