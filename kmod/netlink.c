// SPDX-License-Identifier: GPL-2.0
/*
 * The "amber" generic netlink family: attribute policies, request parsing
 * and reply building. The work itself is in checkpoint.c and restore*.c.
 */
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/mman.h>
#include <linux/pid.h>
#include <linux/resource.h>
#include <linux/sched/coredump.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/threads.h>
#include <linux/uidgid.h>
#include <net/genetlink.h>
#include <net/netlink.h>

#include <linux/amber.h>

#include "checkpoint.h"
#include "inet.h"
#include "lazy.h"
#include "netlink.h"
#include "restore.h"
#include "session.h"
#include "track.h"

/* Not const: 6.1's struct nla_policy points at a non-const range. */

const struct amber_regn_types amber_task_regn_types = {
	AMBER_TASK_RSEQ, AMBER_TASK_RSEQ_LEN, AMBER_TASK_RSEQ_SIG,
	AMBER_TASK_CLEAR_CHILD_TID, AMBER_TASK_ROBUST_LIST, AMBER_TASK_ROBUST_LIST_LEN,
	AMBER_TASK_SAS_SP, AMBER_TASK_SAS_SIZE, AMBER_TASK_SAS_FLAGS,
};

const struct amber_regn_types amber_thread_regn_types = {
	AMBER_THREAD_RSEQ, AMBER_THREAD_RSEQ_LEN, AMBER_THREAD_RSEQ_SIG,
	AMBER_THREAD_CLEAR_CHILD_TID, AMBER_THREAD_ROBUST_LIST, AMBER_THREAD_ROBUST_LIST_LEN,
	AMBER_THREAD_SAS_SP, AMBER_THREAD_SAS_SIZE, AMBER_THREAD_SAS_FLAGS,
};

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

/* PAGES_FDS: u32 PAGE_FD attributes (checked against INT_MAX with a message). */
static const struct nla_policy amber_pages_fds_policy[AMBER_A_PAGE_FD + 1] = {
	[AMBER_A_PAGE_FD]	= { .type = NLA_U32 },
};

/* PARENTS: an array of PARENT_ENTRY nests. */
static const struct nla_policy amber_parent_policy[AMBER_PARENT_MAX + 1] = {
	[AMBER_PARENT_PID]	= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_pid_range),
	[AMBER_PARENT_ID]	= { .type = NLA_U64 },
};

static const struct nla_policy amber_checkpoint_policy[AMBER_A_MAX + 1] = {
	[AMBER_A_PID]		= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_pid_range),
	[AMBER_A_PAGES_FD]	= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_fd_range),
	[AMBER_A_FLAGS]		= NLA_POLICY_MASK(NLA_U32, __AMBER_CKPT_F_ALL),
	[AMBER_A_TIMEOUT_MS]	= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_timeout_range),
	[AMBER_A_PARENT_ID]	= { .type = NLA_U64 },
	[AMBER_A_PAGES_FDS]	= NLA_POLICY_NESTED(amber_pages_fds_policy),
	[AMBER_A_PARENTS]	= NLA_POLICY_NESTED_ARRAY(amber_parent_policy),
};

static const struct nla_policy amber_untrack_policy[AMBER_A_MAX + 1] = {
	[AMBER_A_PID]		= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_pid_range),
};

/* SOCK_FDS: u32 SOCK_FD attributes. */
static const struct nla_policy amber_sock_fds_policy[AMBER_A_SOCK_FD + 1] = {
	[AMBER_A_SOCK_FD]	= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_fd_range),
};

static const struct nla_policy amber_net_release_policy[AMBER_A_MAX + 1] = {
	[AMBER_A_SOCK_FDS]	= NLA_POLICY_NESTED(amber_sock_fds_policy),
};

static const struct nla_policy amber_peer_fin_policy[AMBER_A_MAX + 1] = {
	[AMBER_A_SOCK_FD]	= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_fd_range),
};

static const struct nla_policy amber_tcp_graft_policy[AMBER_A_MAX + 1] = {
	[AMBER_A_SOCK_FD]	= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_fd_range),
	[AMBER_A_TCP_CHILD_FD]	= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_fd_range),
};

static const struct nla_policy amber_release_policy[AMBER_A_MAX + 1] = {
	[AMBER_A_PID]		= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_pid_range),
	[AMBER_A_ACTION]	= NLA_POLICY_RANGE(NLA_U32, AMBER_RELEASE_RESUME,
						   AMBER_RELEASE_MAX),
};

static const struct nla_policy amber_lazy_fill_policy[AMBER_A_MAX + 1] = {
	[AMBER_A_PID]		= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_pid_range),
	[AMBER_A_UFFD_FD]	= NLA_POLICY_FULL_RANGE(NLA_U32, &amber_fd_range),
};

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

static const struct nla_policy amber_restore_policy[AMBER_A_MAX + 1] = {
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
			amber_set_msg(extack, amber_msg("PAGES_FDS: fd %u must be a regular file",
							fd));
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
		/* Validated by the policy (NLA_POLICY_NESTED_ARRAY). */
		err = nla_parse_nested(tb, AMBER_PARENT_MAX, a, NULL, extack);
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
		amber_ckpt_args_free(&args);
		return err;
	}

	/* Takes over args.pool and args.parents. */
	req = amber_checkpoint(&args, info->extack);
	if (IS_ERR(req))
		return PTR_ERR(req);

	err = amber_nl_checkpoint_reply(req, info);
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

static int amber_nl_restore_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct amber_restore_args args = {};
	int err;

	err = amber_nl_restore_parse(info, &args);
	if (!err)
		err = amber_restore(&args, info->extack);
	else if (!info->extack->_msg)
		amber_set_msg(info->extack, amber_msg("restore failed (%d)", err));
	amber_nl_restore_free(&args);
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

static int amber_nl_net_release_doit(struct sk_buff *skb, struct genl_info *info)
{
	const struct nlattr *a;
	int rem, err;

	if (GENL_REQ_ATTR_CHECK(info, AMBER_A_SOCK_FDS)) {
		NL_SET_ERR_MSG(info->extack, "missing SOCK_FDS");
		return -EINVAL;
	}
	nla_for_each_nested(a, info->attrs[AMBER_A_SOCK_FDS], rem) {
		if (nla_type(a) != AMBER_A_SOCK_FD) {
			NL_SET_ERR_MSG_ATTR(info->extack, a, "SOCK_FDS holds only SOCK_FD");
			return -EINVAL;
		}
		err = amber_inet_net_release(nla_get_u32(a), a, info->extack);
		if (err)
			return err;
	}
	return 0;
}

static int amber_nl_tcp_peer_fin_doit(struct sk_buff *skb, struct genl_info *info)
{
	if (GENL_REQ_ATTR_CHECK(info, AMBER_A_SOCK_FD)) {
		NL_SET_ERR_MSG(info->extack, "missing SOCK_FD");
		return -EINVAL;
	}
	return amber_inet_peer_fin(nla_get_u32(info->attrs[AMBER_A_SOCK_FD]),
				   info->attrs[AMBER_A_SOCK_FD], info->extack);
}

static int amber_nl_tcp_graft_doit(struct sk_buff *skb, struct genl_info *info)
{
	if (GENL_REQ_ATTR_CHECK(info, AMBER_A_SOCK_FD)) {
		NL_SET_ERR_MSG(info->extack, "missing SOCK_FD");
		return -EINVAL;
	}
	if (GENL_REQ_ATTR_CHECK(info, AMBER_A_TCP_CHILD_FD)) {
		NL_SET_ERR_MSG(info->extack, "missing TCP_CHILD_FD");
		return -EINVAL;
	}
	return amber_inet_tcp_graft(nla_get_u32(info->attrs[AMBER_A_SOCK_FD]),
				    info->attrs[AMBER_A_SOCK_FD],
				    nla_get_u32(info->attrs[AMBER_A_TCP_CHILD_FD]),
				    info->attrs[AMBER_A_TCP_CHILD_FD], info->extack);
}

static int amber_nl_lazy_fill_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **attrs = info->attrs;
	pid_t pid;

	if (GENL_REQ_ATTR_CHECK(info, AMBER_A_PID)) {
		NL_SET_ERR_MSG(info->extack, "missing PID");
		return -EINVAL;
	}
	pid = nla_get_u32(attrs[AMBER_A_PID]);
	if (!attrs[AMBER_A_UFFD_FD])
		return amber_lazy_done(pid, attrs[AMBER_A_PID], info->snd_portid,
				       genl_info_net(info), info->extack);
	return amber_lazy_hold(pid, attrs[AMBER_A_PID], nla_get_u32(attrs[AMBER_A_UFFD_FD]),
			       attrs[AMBER_A_UFFD_FD], info->snd_portid, genl_info_net(info),
			       info->extack);
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
	{
		.cmd	= AMBER_CMD_NET_RELEASE,
		.doit	= amber_nl_net_release_doit,
		.policy	= amber_net_release_policy,
		.maxattr = AMBER_A_MAX,
		.flags	= GENL_ADMIN_PERM,
	},
	{
		.cmd	= AMBER_CMD_TCP_PEER_FIN,
		.doit	= amber_nl_tcp_peer_fin_doit,
		.policy	= amber_peer_fin_policy,
		.maxattr = AMBER_A_MAX,
		.flags	= GENL_ADMIN_PERM,
	},
	{
		.cmd	= AMBER_CMD_TCP_GRAFT,
		.doit	= amber_nl_tcp_graft_doit,
		.policy	= amber_tcp_graft_policy,
		.maxattr = AMBER_A_MAX,
		.flags	= GENL_ADMIN_PERM,
	},
	{
		.cmd	= AMBER_CMD_LAZY_FILL,
		.doit	= amber_nl_lazy_fill_doit,
		.policy	= amber_lazy_fill_policy,
		.maxattr = AMBER_A_MAX,
	},
};

struct genl_family amber_family __ro_after_init = {
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
