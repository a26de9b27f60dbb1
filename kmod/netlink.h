/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The netlink layer: the "amber" generic netlink family (netlink.c: the
 * policies and the doits) and its translation helpers (nl_reply.c: the
 * CHECKPOINT reply; nl_restore.c: the RESTORE request). It translates
 * attributes to and from plain structs; the rest of the module decides.
 */
#ifndef _AMBER_NETLINK_H
#define _AMBER_NETLINK_H

#include <linux/types.h>

struct amber_req;
struct amber_restore_args;
struct genl_family;
struct genl_info;
struct sk_buff;

int amber_netlink_init(void);
void amber_netlink_exit(void);

/* Within the netlink layer. */
extern struct genl_family amber_family;

int amber_put_u64(struct sk_buff *skb, int type, u64 value);

/*
 * Attribute types of a thread's registrations (rseq, futex lists,
 * sigaltstack), which a TASK and a THREAD nest number differently.
 */
struct amber_regn_types {
	int rseq, rseq_len, rseq_sig, clear_child_tid, robust_list, robust_list_len;
	int sas_sp, sas_size, sas_flags;
};

extern const struct amber_regn_types amber_task_regn_types;
extern const struct amber_regn_types amber_thread_regn_types;
/* The reply messages of a CHECKPOINT, one per process, before the ACK. */
int amber_nl_checkpoint_reply(struct amber_req *req, struct genl_info *info);
/* RESTORE into @args (nl_restore.c); free @args even on failure. */
int amber_nl_restore_parse(struct genl_info *info, struct amber_restore_args *args);
void amber_nl_restore_free(struct amber_restore_args *args);

#endif /* _AMBER_NETLINK_H */
