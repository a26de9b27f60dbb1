/* SPDX-License-Identifier: GPL-2.0 */
/* Checkpoint requests: the target captures itself in a task_work. */
#ifndef _AMBER_CHECKPOINT_H
#define _AMBER_CHECKPOINT_H

#include <linux/hashtable.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/types.h>
#include <linux/wait.h>

#include "access.h"
#include "fdtable.h"
#include "mm.h"
#include "msg.h"
#include "regs.h"
#include "session.h"
#include "signal.h"
#include "task.h"
#include "thread.h"
#include "timers.h"
#include "track.h"

struct net;
struct pid_namespace;
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

/* Bounds of one CHECKPOINT request (refused above, with a message). */
#define AMBER_TREE_MAX_PROCS	512	/* processes, zombies included */
#define AMBER_MAX_THREADS	4096	/* threads of all processes */
/*
 * Threads of one process: its reply message (one kmalloc'ed buffer, at most
 * 4 MiB) carries about 3 KiB of registers and xstate per thread.
 */
#define AMBER_PROC_MAX_THREADS	1024

/* What a process's leader captured, read by the reply builder. */
struct amber_state {
	struct amber_task_state task;
	struct amber_regn regn;		/* the leader's registrations */
	struct amber_sig_state sig;
	struct amber_regs_state regs;
	struct amber_files_state files;
	struct amber_mm_state mm;
	struct amber_track track;
	struct amber_timers_state timers;
};

/* AMBER_A_PARENTS entry. */
struct amber_parent {
	pid_t pid;
	u64 id;
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
	/* TREE: pages files of the other live processes (references). */
	struct file **pool;
	unsigned int nr_pool;
	/* TREE with TRACK: PARENT_ID of the other processes. */
	struct amber_parent *parents;
	unsigned int nr_parents;
};

/* Where the whole group is; under amber_reqs_lock, read with READ_ONCE. */
enum amber_phase {
	AMBER_PH_GATHER,	/* threads parking; the requester rescans */
	AMBER_PH_CAPTURE,	/* all parked: each leader captures its process */
	AMBER_PH_HELD,		/* captured, held until released */
	AMBER_PH_RESUME,	/* every thread leaves (req->action says how) */
};

enum amber_thr_state {
	AMBER_THR_NEW,		/* not queued */
	AMBER_THR_QUEUED,	/* task_work queued, callback not started */
	AMBER_THR_RUNNING,	/* capturing its own state */
	AMBER_THR_PARKED,	/* waiting in the callback */
	AMBER_THR_GONE,		/* exited, or came after the group gave up */
	AMBER_THR_LEFT,		/* parked, then left */
};

struct amber_req;
struct amber_proc;

/* One thread of the group: its task_work, and what it captured of itself. */
struct amber_thr {
	struct callback_head work;
	struct hlist_node hnode;	/* req->thr_hash, under amber_reqs_lock */
	struct amber_req *req;
	struct amber_proc *proc;
	struct task_struct *task;	/* reference */
	pid_t tid;			/* in the caller's pid namespace */
	bool leader;
	enum amber_thr_state state;	/* under amber_reqs_lock */
	struct amber_err err;
	struct amber_regs_state regs;	/* not the leader's: proc->st.regs */
	struct amber_thread_state ts;	/* not the leader */
};

/* One process of the group. */
struct amber_proc {
	struct task_struct *task;	/* thread group leader, reference */
	pid_t pid;			/* in the caller's pid namespace */
	bool zombie;
	bool gone;			/* a zombie reaped during the stop */
	bool seen;			/* by the latest scan */
	u32 exit_code;			/* zombie: as waitpid() reports it */
	int pages_index;		/* into the pool, -1: PAGES_FD or none */
	struct file *pages;		/* reference (live processes) */
	struct amber_ident ident;	/* live processes */
	struct amber_thr *leader;
	/* Set once all are parked. */
	u32 ppid, pgid, sid;
	/* First member sharing its files_struct / fs_struct, 0: none (tree.c). */
	u32 files_with, fs_with;
	unsigned int nr_threads;	/* parked, leader included */
	struct amber_thr **others;	/* parked non-leaders, by TID */
	unsigned int nr_others;
	/* The leader's capture. */
	bool capture_started;		/* under amber_reqs_lock */
	struct amber_err result;
	struct amber_state st;
};

struct amber_req {
	struct kref ref;	/* requester + each queued callback */
	struct list_head node;	/* amber_reqs, under amber_reqs_lock */
	pid_t pid;		/* the root */
	u32 flags;
	u32 hold_ms;
	u32 park_ms;		/* bound of a parked thread's wait before HELD */
	struct amber_session session;	/* the requesting socket and the root */
	struct pid_namespace *ns;	/* the caller's, reference */

	/* Under amber_reqs_lock (phase, cancelled also read with READ_ONCE). */
	enum amber_phase phase;
	bool cancelled;		/* requester or socket gone, or a failure */
	u32 action;		/* enum amber_release_action, with RESUME */
	unsigned int nr_waiting;	/* queued threads that have not arrived */
	unsigned int nr_capturing;	/* leaders still capturing */
	u64 t_stop;		/* ktime of the first arrival */
	u64 stopped_ns;		/* first arrival to the last capture */
	struct amber_err result;	/* the first failure */
	DECLARE_HASHTABLE(thr_hash, 8);	/* struct amber_thr by task */

	wait_queue_head_t req_wq;	/* the requester waits here */
	wait_queue_head_t thr_wq;	/* parked threads wait here */
	/* Set while the pages are written; the hold counts from held_at. */
	bool writing;
	unsigned long held_at;

	/* Written by the requester only (threads read their own entries). */
	struct amber_proc **procs;	/* discovery order: root, parents first */
	unsigned int nr_procs;
	struct amber_thr **thrs;
	unsigned int nr_thrs;
	unsigned int nr_indexed;	/* pool entries handed out */
	struct file *root_pages;	/* reference */
	struct file **pool;		/* references */
	unsigned int nr_pool;
	struct amber_parent *parents;
	unsigned int nr_parents;
	u64 parent_id;
	struct amber_fileids *fileids;	/* FILE_IDs and queues, whole group */
};

/* Takes over args->pool and args->parents, also on failure. */
struct amber_req *amber_checkpoint(const struct amber_ckpt_args *args,
				   struct netlink_ext_ack *extack);
/* Drops args->pool and args->parents. */
void amber_ckpt_args_free(const struct amber_ckpt_args *args);
void amber_req_abort(struct amber_req *req);
void amber_req_put(struct amber_req *req);

/* Threads capturing or parked, for GET_VERSION's AMBER_A_SESSIONS. */
u32 amber_ckpt_nr_stopped(void);

#endif /* _AMBER_CHECKPOINT_H */
