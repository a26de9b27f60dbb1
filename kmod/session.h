/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The session registry: every process a request holds (a checkpoint's
 * stopped group, a restored process waiting for RELEASE), keyed by the
 * requesting socket (netlink portid and netns) and the process's pid.
 */
#ifndef _AMBER_SESSION_H
#define _AMBER_SESSION_H

#include <linux/list.h>
#include <linux/types.h>

struct net;
struct pid;
struct amber_session;

enum amber_session_kind {
	AMBER_SESSION_CHECKPOINT,	/* struct amber_req */
	AMBER_SESSION_RESTORE,		/* struct amber_rproc */
};

/*
 * Called with amber_sessions_lock held, which is taken before the owners'
 * own locks (amber_reqs_lock, amber_rprocs_lock): an owner never takes it
 * while holding its own lock. An owner whose last reference is gone may
 * still be called until amber_session_del() returns: the callbacks only
 * change state under the owner's lock.
 */
struct amber_session_ops {
	/*
	 * AMBER_CMD_RELEASE from the owning socket, with enum
	 * amber_release_action @action: 0, or -ESRCH if nothing is held now.
	 */
	int (*release)(struct amber_session *s, u32 action);
	/* The owning socket closed: nobody is left to release the process. */
	void (*sock_gone)(struct amber_session *s);
	/* Module exit: a checkpoint resumes its group, a restore is killed. */
	void (*exit)(struct amber_session *s);
};

struct amber_session {
	struct list_head node;		/* under amber_sessions_lock */
	const struct amber_session_ops *ops;
	enum amber_session_kind kind;
	struct pid *pid;		/* reference: the pid RELEASE names */
	u32 portid;			/* of the requesting socket */
	const struct net *net;		/* compared, never dereferenced */
};

/* -ENODEV once the module is unloading. Takes a reference on @pid. */
int amber_session_add(struct amber_session *s, const struct amber_session_ops *ops,
		      enum amber_session_kind kind, struct pid *pid, u32 portid,
		      const struct net *net);
/* Before the owner is freed; module exit waits for the last. */
void amber_session_del(struct amber_session *s);

/*
 * AMBER_CMD_RELEASE: @pid (in the caller's pid namespace) held for the
 * socket (@portid, @net). -ESRCH if that socket holds no such process.
 */
int amber_session_release(pid_t pid, u32 portid, const struct net *net, u32 action);

int amber_sessions_init(void);
/* After the family is unregistered: releases every session, waits for all. */
void amber_sessions_exit(void);

#endif /* _AMBER_SESSION_H */
