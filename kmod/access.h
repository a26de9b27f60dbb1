/* SPDX-License-Identifier: GPL-2.0 */
/* Who may checkpoint what. */
#ifndef _AMBER_ACCESS_H
#define _AMBER_ACCESS_H

#include <linux/types.h>

struct cred;
struct file;
struct netlink_ext_ack;
struct nlattr;
struct task_struct;

/*
 * Who a process was when the caller's ptrace access was checked; its leader
 * refuses to capture if it changed (exec, setuid, PR_SET_DUMPABLE). Taken
 * before the access check: if the target changes identity after it, the
 * capture sees the difference and refuses.
 */
struct amber_ident {
	const struct cred *cred;	/* reference: the target's real_cred */
	u64 exec_id;			/* self_exec_id */
	int dumpable;			/* get_dumpable(mm) */
};

/* @pid in the caller's pid namespace, a reference, or NULL. */
struct task_struct *amber_find_task(pid_t pid);
/* Takes a reference on the target's cred into @id, even on failure. */
void amber_ident_get(struct task_struct *task, struct amber_ident *id);
/* Caps, lookup and ptrace access in one: a reference or an ERR_PTR. */
struct task_struct *amber_find_traceable(pid_t pid, const struct nlattr *attr,
					 struct netlink_ext_ack *extack);
int amber_check_root(struct task_struct *task, const struct nlattr *attr,
		     struct netlink_ext_ack *extack);
/* PAGES_FD: a reference on a regular file open for writing, or an ERR_PTR. */
struct file *amber_get_pages_file(int fd, const struct nlattr *fd_attr,
				  struct netlink_ext_ack *extack);

#endif /* _AMBER_ACCESS_H */
