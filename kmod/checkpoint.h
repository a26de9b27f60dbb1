/* SPDX-License-Identifier: GPL-2.0 */
/* Checkpoint requests: the target captures itself in a task_work. */
#ifndef _AMBER_CHECKPOINT_H
#define _AMBER_CHECKPOINT_H

#include <linux/completion.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/types.h>

#include "files.h"
#include "mm.h"
#include "msg.h"
#include "regs.h"
#include "task.h"
#include "track.h"

struct net;
struct nlattr;
struct netlink_ext_ack;

#define AMBER_TIMEOUT_DEFAULT_MS	10000
/*
 * The CHECKPOINT doit runs under genetlink's cb_lock (read), which stalls
 * every generic netlink family's (un)registration, and then all of generic
 * netlink, while it sleeps: each of its waits is bounded. 60 s is the CLI's
 * default timeout.
 */
#define AMBER_TIMEOUT_MAX_MS		60000
/* How long a capture that has started may take. */
#define AMBER_CAPTURE_MAX_MS		30000
#define AMBER_HOLD_MIN_MS		30000

/* Everything the callback captured, read by the reply builder. */
struct amber_state {
	struct amber_task_state task;
	struct amber_sig_state sig;
	struct amber_regs_state regs;
	struct amber_files_state files;
	struct amber_mm_state mm;
	struct amber_track track;
	u64 stopped_ns;
};

/* CHECKPOINT arguments; the attributes are only used to point extack. */
struct amber_ckpt_args {
	pid_t pid;
	int pages_fd;
	u32 flags;
	u32 timeout_ms;
	u64 parent_id;			/* 0: none */
	u32 portid;			/* requesting socket, for RELEASE */
	const struct net *net;		/* compared, never dereferenced */
	const struct nlattr *pid_attr;
	const struct nlattr *fd_attr;
};

/*
 * Who the target was when the caller's ptrace access was checked; the
 * callback refuses to capture if it changed (exec, setuid, PR_SET_DUMPABLE).
 */
struct amber_ident {
	const struct cred *cred;	/* reference: the target's real_cred */
	u64 exec_id;			/* self_exec_id */
	int dumpable;			/* get_dumpable(mm) */
};

enum amber_req_state {
	AMBER_REQ_QUEUED,	/* task_work queued, callback not started */
	AMBER_REQ_CANCELLED,	/* requester gave up before the callback ran */
	AMBER_REQ_RUNNING,	/* callback capturing */
	AMBER_REQ_HELD,		/* captured, target parked until released */
	AMBER_REQ_RELEASING,	/* release decided, target leaving the hold */
	AMBER_REQ_DONE,		/* callback finished with the target */
};

struct amber_req {
	struct kref ref;	/* requester + queued callback */
	struct list_head node;	/* amber_reqs, under amber_reqs_lock */
	struct callback_head work;
	struct task_struct *task;	/* reference */
	struct file *pages;		/* reference */
	pid_t pid;
	u32 flags;
	u32 hold_ms;
	u32 portid;
	const struct net *net;
	struct amber_ident ident;

	/* Under amber_reqs_lock (cancelled is also polled with READ_ONCE). */
	enum amber_req_state state;
	bool cancelled;		/* requester or socket gone: do not hold */
	u32 action;		/* enum amber_release_action */

	struct completion captured;	/* callback -> requester */
	struct completion released;	/* RELEASE/notifier/exit -> callback */
	/* Set by the callback, cleared once the requester wrote the pages. */
	bool writing;

	/* Written by the callback before it completes @captured. */
	struct amber_err result;
	struct amber_state st;
};

struct amber_req *amber_checkpoint(const struct amber_ckpt_args *args,
				   struct netlink_ext_ack *extack);
void amber_req_abort(struct amber_req *req);
void amber_req_put(struct amber_req *req);

int amber_release(pid_t pid, u32 portid, const struct net *net, u32 action,
		  const struct nlattr *pid_attr,
		  struct netlink_ext_ack *extack);

u32 amber_sessions(void);

int amber_untrack(pid_t pid, const struct nlattr *pid_attr,
		  struct netlink_ext_ack *extack);

int amber_checkpoint_init(void);
void amber_checkpoint_exit(void);

#endif /* _AMBER_CHECKPOINT_H */
