/* SPDX-License-Identifier: GPL-2.0 */
/* Restore: turn the calling stub into the checkpointed process. */
#ifndef _AMBER_RESTORE_H
#define _AMBER_RESTORE_H

#include <net/genetlink.h>
#include <linux/amber.h>

extern const struct nla_policy amber_restore_policy[AMBER_A_MAX + 1];

int amber_nl_restore_doit(struct sk_buff *skb, struct genl_info *info);

#endif /* _AMBER_RESTORE_H */
