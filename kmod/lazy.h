/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Lazy restore (AMBER_CMD_LAZY_FILL): the userfaultfds through which a
 * tool fills restored processes' memory on first touch, pinned for as long
 * as the filling socket lives, so that a filler's death kills the process
 * instead of letting it see its missing pages as zero.
 */
#ifndef _AMBER_LAZY_H
#define _AMBER_LAZY_H

#include <linux/types.h>

struct net;
struct netlink_ext_ack;
struct nlattr;

/* PID, UFFD_FD: pin the userfaultfd for the socket (@portid, @net). */
int amber_lazy_hold(pid_t pid, const struct nlattr *pid_attr, int fd,
		    const struct nlattr *fd_attr, u32 portid, const struct net *net,
		    struct netlink_ext_ack *extack);
/* PID alone: the fill is complete; -ENOENT if that socket holds none. */
int amber_lazy_done(pid_t pid, const struct nlattr *pid_attr, u32 portid,
		    const struct net *net, struct netlink_ext_ack *extack);

int amber_lazy_init(void);
/* Drops every pin (without killing: fillers still running go on). */
void amber_lazy_exit(void);

#endif /* _AMBER_LAZY_H */
