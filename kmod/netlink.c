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
