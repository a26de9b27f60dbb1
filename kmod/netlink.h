/* SPDX-License-Identifier: GPL-2.0 */
/* The "amber" generic netlink family. */
#ifndef _AMBER_NETLINK_H
#define _AMBER_NETLINK_H

int amber_netlink_init(void);
void amber_netlink_exit(void);

#endif /* _AMBER_NETLINK_H */
