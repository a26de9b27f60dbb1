/* SPDX-License-Identifier: GPL-2.0 */
/* The fd table, and the bytes queued in the pipes and sockets it refers to. */
#ifndef _AMBER_FDTABLE_H
#define _AMBER_FDTABLE_H

#include <linux/types.h>

#include "msg.h"

struct amber_epoll_tfd;
struct amber_inotify_watch;
struct amber_unix_fd;
struct amber_inet;
struct file;
struct inode;
struct task_struct;

struct amber_fd {
	u32 num;
	u32 type;	/* enum amber_fd_type */
	u32 flags;	/* f_flags */
	u32 mode;	/* i_mode */
	u64 pos;
	u64 dev;	/* st_dev encoding */
	u64 ino;
	u64 rdev;
	u64 size;
	u64 file_id;	/* AMBER_FD_FILE_ID, 0 = none */
	u64 peer_ino;	/* UNIX socket: the peer's inode, 0 = no peer */
	u32 sock_family; /* AF_*, 0 = not a socket */
	u32 sock_type;
	u32 shutdown;	/* sk_shutdown */
	u32 pipe_size;	/* pipe/FIFO capacity in bytes, 0 = not a pipe */
	bool pipe_no_readers;	/* pipe: no open file reads it, anywhere */
	bool pipe_no_writers;	/* pipe: no open file writes it, anywhere */
	u64 eventfd_count;	/* eventfd only */
	bool eventfd;		/* an eventfd: eventfd_count, eventfd_sem */
	bool eventfd_sem;	/* EFD_SEMAPHORE */
	bool epoll;		/* an epoll: nr_epoll registrations */
	u32 nr_epoll;
	struct amber_epoll_tfd *epoll_tfds;	/* kcalloc()ed, epoll only */
	bool timerfd;		/* a timerfd: the timerfd_* fields */
	bool signalfd;		/* a signalfd: signalfd_mask */
	u32 timerfd_clockid;
	u32 timerfd_flags;	/* settime flags */
	u64 timerfd_ticks;
	u64 timerfd_value;	/* ns, see AMBER_FD_TIMERFD_VALUE */
	u64 timerfd_interval;	/* ns */
	u64 signalfd_mask;
	bool inotify;		/* an inotify: nr_inotify watches */
	u32 nr_inotify;
	struct amber_inotify_watch *inotify_watches;	/* kvcalloc()ed */
	bool cloexec;
	bool tty;
	char *path;
	struct amber_unix_fd *un;	/* kzalloc()ed, UNIX sockets only */
	struct amber_inet *inet;	/* TCP/UDP socket (inet.c), kzalloc()ed */
};

/*
 * The bytes queued in one pipe, FIFO or UNIX socket, in read order: a byte
 * stream, or (nr_msgs > 0) the messages of a SOCK_DGRAM/SEQPACKET socket,
 * msg_len[i] bytes each, back to back in data.
 */
struct amber_fq {
	struct amber_fq *next;
	u64 ino;		/* as AMBER_FD_INO of the fds that refer to it */
	u32 embryo;		/* 0, or AMBER_QUEUE_EMBRYO: ino is the listener */
	size_t len;		/* bytes in data */
	u32 nr_msgs;		/* 0 for pipes, FIFOs and SOCK_STREAM */
	bool send;		/* a TCP socket's send queue (AMBER_QUEUE_SEND) */
	u32 *msg_len;
	/* NULL, or per message: the credentials it carries (AMBER_QUEUE_CRED_*). */
	struct amber_fq_cred *cred;
	/*
	 * Files in flight (SCM_RIGHTS, AMBER_QUEUE_FILE): nr_files of them,
	 * described in files[], message after message; msg_files (NULL when
	 * none) says how many each message carries. flight holds a reference
	 * on each from the queue's copy until they are described.
	 */
	u32 nr_files;
	u32 *msg_files;
	struct amber_fd *files;
	struct file **flight;
	u8 *data;
};

/* Credentials of a queued message (SCM_CREDENTIALS); pid 0: none. */
struct amber_fq_cred {
	u32 pid;		/* in the caller's pid namespace */
	u32 uid, gid;		/* in the target's user namespace */
};

struct amber_files_state {
	struct amber_fd *fds;
	unsigned int nr;
	struct amber_fq *queues;	/* in capture order; NULL = none */
	struct amber_fq *last_queue;
	size_t queue_bytes;		/* sum of their len */
	u32 queue_files;		/* sum of their nr_files */
};

/*
 * Per CHECKPOINT request, shared by the processes of the group: the ids of
 * the open file descriptions seen so far and the inodes whose queue has
 * been captured. Locks inside; amber_fileids_free() may sleep.
 */
struct amber_fileids;

struct amber_fileids *amber_fileids_new(void);
void amber_fileids_free(struct amber_fileids *ids);
/*
 * The id of @file's open file description in the request (from 1), taking
 * a reference on it the first time; 0 without memory.
 */
u64 amber_fileids_get(struct amber_fileids *ids, struct file *file);
/*
 * The request holds its processes after capture (AMBER_CKPT_F_HOLD): its
 * TCP connections are held too (inet.c, nethold.c), on behalf of @ids.
 */
void amber_fileids_set_hold(struct amber_fileids *ids);
/*
 * The processes the request restores: @member(@ctx, pid) returns the number
 * (in the caller's pid namespace) of the live process of the request whose
 * thread group id is @pid, or 0. @tree: a --tree request, whose restore
 * creates every process before any of them runs. Set before any capture.
 */
void amber_fileids_set_members(struct amber_fileids *ids,
			       pid_t (*member)(const void *ctx, struct pid *pid),
			       const void *ctx, bool tree);
/* As amber_fileids_set_members()'s callback; 0 when none was set. */
pid_t amber_fileids_member(const struct amber_fileids *ids, struct pid *pid);
bool amber_fileids_tree(const struct amber_fileids *ids);

/*
 * Captures current's fd table. Runs in the target's context while its
 * group is stopped; processes of one group may call it concurrently with
 * the same @ids. Refuses (by fd number and name, in @e) what cannot be
 * checkpointed: sockets other than UNIX, TCP and UDP ones, and sockets and
 * queued data that cannot be restored (see pipe.c, unix.c and inet.c).
 */
/*
 * Runs @file's own ->show_fdinfo (the text of /proc/PID/fdinfo/N after its
 * generic lines) into @buf of @size bytes, NUL-terminated (maybe empty: the
 * caller's parsing decides). -EOPNOTSUPP if the file has no ->show_fdinfo,
 * -EOVERFLOW if it prints more than @size - 1 bytes.
 */
int amber_fdinfo_text(struct file *file, char *buf, size_t size);

/*
 * amber_fdinfo_text() into a kvmalloc()ed buffer that grows from a page up
 * to @max bytes until the text fits; the text or an ERR_PTR (-E2BIG: longer
 * than @max).
 */
char *amber_fdinfo_kvtext(struct file *file, size_t max);

/* Whether @file is an anonymous inode file named @name ("[timerfd]"). */
bool amber_is_anon_file(struct file *file, const char *name);

int amber_files_capture(struct amber_files_state *st, struct amber_fileids *ids,
			struct amber_err *e);
/*
 * Describes @file, in flight in a message queued on the socket of @via
 * (unix.c), into the zeroed @fd: what an fd of it would say (num aside:
 * @via's, for messages), its file id, and a pipe's queue, captured once per
 * request as for an fd. Refusals name @via. Sleeps.
 */
int amber_fd_describe_flight(struct amber_files_state *st, struct amber_fileids *ids,
			     const struct amber_fd *via, struct amber_fd *fd,
			     struct file *file, struct amber_err *e);
/* Frees what amber_files_capture() or amber_fd_describe_flight() put in @fd. */
void amber_fd_release(struct amber_fd *fd);
void amber_files_free(struct amber_files_state *st);

/*
 * Optional, before anything is stopped: the refusals of amber_files_capture()
 * that a look from outside can make now (sockets other than UNIX ones, UNIX
 * sockets refused by their attributes), same messages, for any @task (the caller keeps it
 * alive). Capture checks again. Sleeps.
 */
int amber_files_precheck(struct task_struct *task, struct amber_err *e);

/*
 * Queued bytes one process's reply can carry: a genetlink reply is one
 * kmalloc'ed buffer, at most KMALLOC_MAX_SIZE (4 MiB), and the rest of the
 * process's state needs room too.
 */
#define AMBER_FILES_PROC_QUEUE_MAX	(3U << 20)

/*
 * The file ids' per-request bookkeeping of queues, for pipe.c and unix.c.
 * amber_fileids_claim(): 1 the first time @inode is claimed in the request
 * (the caller captures its queue), 0 after, -ENOMEM. @inode must belong to
 * a file the request has given an id.
 */
int amber_fileids_claim(struct amber_fileids *ids, const struct inode *inode);
/*
 * Accounts @bytes more (or, negative, fewer) queued bytes to the request;
 * false when that would exceed AMBER_QUEUE_MAX_BYTES (nothing accounted).
 */
bool amber_fileids_charge(struct amber_fileids *ids, ssize_t bytes);

/* A queue of @len bytes (@nr_msgs messages, 0 for a byte stream), or NULL. */
struct amber_fq *amber_fq_alloc(u64 ino, size_t len, u32 nr_msgs);
void amber_fq_free(struct amber_fq *q);
/* Appends @q to @st's queues. */
void amber_fq_add(struct amber_files_state *st, struct amber_fq *q);
/*
 * Accounts @len queued bytes about to be captured for @fd, against the
 * request's and the process's bounds; refuses by name in @e.
 */
int amber_fq_charge(struct amber_files_state *st, struct amber_fileids *ids,
		    const struct amber_fd *fd, size_t len, struct amber_err *e);

struct amber_restore;

/* Phase A and B: AMBER_A_CLOSE_FDS, closed once the restore succeeded. */
int amber_restore_close_fds_prepare(struct amber_restore *r);
void amber_restore_close_fds_commit(struct amber_restore *r);

#endif /* _AMBER_FDTABLE_H */
