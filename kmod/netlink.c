// SPDX-License-Identifier: GPL-2.0
/*
 * The "amber" generic netlink family: attribute policies, request parsing
 * and reply building. The work itself is in checkpoint.c and restore*.c.
 */
#include <linux/cred.h>
#include <linux/kernel.h>
#include <linux/pid.h>
#include <linux/threads.h>
#include <linux/uidgid.h>
#include <net/genetlink.h>
#include <net/netlink.h>

#include <linux/amber.h>

#include "checkpoint.h"
#include "netlink.h"
#include "restore.h"
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
	    nla_put_u32(msg, AMBER_A_SESSIONS, amber_sessions()) ||
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
/* NUM, TYPE, FLAGS, MODE; POS, DEV, INO, RDEV, SIZE; CLOEXEC, TTY; path. */
#define AMBER_FD_NLSIZE		(nla_total_size(0) + 4 * AMBER_U32_SIZE + \
				 5 * AMBER_U64_SIZE + 2 * nla_total_size(0))

/* An upper bound of the reply's attribute payload. */
static size_t amber_reply_size(const struct amber_state *st)
{
	/* Top-level scalars and nest headers, split list nests included. */
	size_t size = 1024 + (st->mm.nr_vmas + st->files.nr) / 64 * NLA_HDRLEN;
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
		size += AMBER_VMA_SIZE + (st->mm.vmas[i].path ?
			amber_str_size(st->mm.vmas[i].path) + AMBER_VMA_FILE_NLSIZE : 0);
	for (i = 0; i < st->files.nr; i++)
		size += AMBER_FD_NLSIZE + amber_str_size(st->files.fds[i].path);
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

static int amber_fill_task(struct sk_buff *skb, const struct amber_req *req)
{
	const struct amber_task_state *t = &req->st.task;
	struct nlattr *nest;

	nest = nla_nest_start(skb, AMBER_A_TASK);
	if (!nest ||
	    nla_put_u32(skb, AMBER_TASK_PID, req->pid) ||
	    nla_put_string(skb, AMBER_TASK_COMM, t->comm) ||
	    amber_fill_creds(skb, t->cred) ||
	    nla_put_u32(skb, AMBER_TASK_UMASK, t->umask) ||
	    nla_put_u32(skb, AMBER_TASK_PERSONALITY, t->personality) ||
	    nla_put_string(skb, AMBER_TASK_CWD, t->cwd) ||
	    amber_fill_rlimits(skb, t) ||
	    amber_put_u64(skb, AMBER_TASK_RSEQ, t->rseq) ||
	    nla_put_u32(skb, AMBER_TASK_RSEQ_LEN, t->rseq_len) ||
	    nla_put_u32(skb, AMBER_TASK_RSEQ_SIG, t->rseq_sig) ||
	    amber_put_u64(skb, AMBER_TASK_CLEAR_CHILD_TID, t->clear_child_tid) ||
	    amber_put_u64(skb, AMBER_TASK_ROBUST_LIST, t->robust_list) ||
	    amber_put_u64(skb, AMBER_TASK_ROBUST_LIST_LEN, t->robust_list_len) ||
	    amber_put_u64(skb, AMBER_TASK_SAS_SP, t->sas_sp) ||
	    amber_put_u64(skb, AMBER_TASK_SAS_SIZE, t->sas_size) ||
	    nla_put_u32(skb, AMBER_TASK_SAS_FLAGS, t->sas_flags) ||
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
	if (v->path &&
	    (nla_put_string(skb, AMBER_VMA_PATH, v->path) ||
	     amber_put_u64(skb, AMBER_VMA_DEV, v->dev) ||
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

static int amber_fill_regs(struct sk_buff *skb, const struct amber_regs_state *r)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_REGS);
	int i;

	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < AMBER_REG_MAX; i++)
		if (amber_put_u64(skb, i + 1, r->regs[i]))
			return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return nla_put(skb, AMBER_A_FPU, r->fpu_len, r->fpu);
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

static int amber_fill_sigpending(struct sk_buff *skb,
				 const struct amber_sigpending *p)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_SIG_PENDING);

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
		if (amber_fill_sigpending(skb, &s->pending[i]))
			return -EMSGSIZE;
	return amber_nest_end(skb, nest);
}

static int amber_fill_fd(struct sk_buff *skb, const struct amber_fd *fd)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_FD);

	if (!nest ||
	    nla_put_u32(skb, AMBER_FD_NUM, fd->num) ||
	    nla_put_u32(skb, AMBER_FD_TYPE, fd->type) ||
	    nla_put_u32(skb, AMBER_FD_FLAGS, fd->flags) ||
	    amber_put_u64(skb, AMBER_FD_POS, fd->pos) ||
	    (fd->cloexec && nla_put_flag(skb, AMBER_FD_CLOEXEC)) ||
	    nla_put_string(skb, AMBER_FD_PATH, fd->path) ||
	    amber_put_u64(skb, AMBER_FD_DEV, fd->dev) ||
	    amber_put_u64(skb, AMBER_FD_INO, fd->ino) ||
	    amber_put_u64(skb, AMBER_FD_RDEV, fd->rdev) ||
	    nla_put_u32(skb, AMBER_FD_MODE, fd->mode) ||
	    amber_put_u64(skb, AMBER_FD_SIZE, fd->size) ||
	    (fd->tty && nla_put_flag(skb, AMBER_FD_TTY)))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

static int amber_fill_fd_i(struct sk_buff *skb, const void *list,
			   unsigned int i)
{
	return amber_fill_fd(skb, &((const struct amber_fd *)list)[i]);
}

static int amber_fill_fds(struct sk_buff *skb, const struct amber_files_state *f)
{
	return amber_fill_list(skb, AMBER_A_FDS, f->nr, amber_fill_fd_i, f->fds);
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

static int amber_fill_checkpoint(struct sk_buff *skb, const struct amber_req *req)
{
	const struct amber_state *st = &req->st;

	if (amber_fill_task(skb, req) ||
	    amber_fill_mm(skb, &st->mm) ||
	    amber_fill_vmas(skb, &st->mm) ||
	    amber_fill_regs(skb, &st->regs) ||
	    amber_fill_signals(skb, &st->sig) ||
	    amber_fill_fds(skb, &st->files) ||
	    amber_put_u64(skb, AMBER_A_STOPPED_NS, st->stopped_ns) ||
	    amber_put_u64(skb, AMBER_A_PAGES_BYTES, st->mm.pages_bytes) ||
	    amber_put_u64(skb, AMBER_A_PAGES_NR, st->mm.pages_nr) ||
	    amber_put_u64(skb, AMBER_A_PAGES_PARENT_NR, st->mm.pages_parent_nr) ||
	    amber_fill_track(skb, &st->track))
		return -EMSGSIZE;
	return 0;
}

#define AMBER_REPLY_MAX	(64 << 20)

static int amber_checkpoint_reply(struct amber_req *req, struct genl_info *info)
{
	size_t size = amber_reply_size(&req->st);
	struct sk_buff *msg;
	void *hdr;

	/* genlmsg_new() takes an int: refuse absurd states before it wraps. */
	if (size > AMBER_REPLY_MAX) {
		NL_SET_ERR_MSG(info->extack, "the process state is too large for one reply");
		return -E2BIG;
	}
	msg = genlmsg_new(size, GFP_KERNEL);
	if (!msg) {
		NL_SET_ERR_MSG(info->extack, "out of memory for the reply");
		return -ENOMEM;
	}
	hdr = genlmsg_put_reply(msg, info, &amber_family, 0,
				AMBER_CMD_CHECKPOINT);
	if (!hdr || amber_fill_checkpoint(msg, req)) {
		nlmsg_free(msg);
		NL_SET_ERR_MSG(info->extack, "the reply did not fit its buffer");
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
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

	if (GENL_REQ_ATTR_CHECK(info, AMBER_A_PID)) {
		NL_SET_ERR_MSG(info->extack, "missing PID");
		return -EINVAL;
	}
	if (GENL_REQ_ATTR_CHECK(info, AMBER_A_ACTION)) {
		NL_SET_ERR_MSG(info->extack, "missing ACTION");
		return -EINVAL;
	}

	return amber_release(nla_get_u32(attrs[AMBER_A_PID]), info->snd_portid,
			     genl_info_net(info),
			     nla_get_u32(attrs[AMBER_A_ACTION]),
			     attrs[AMBER_A_PID], info->extack);
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
