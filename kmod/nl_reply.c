// SPDX-License-Identifier: GPL-2.0
/*
 * The CHECKPOINT reply: one message per process, sized exactly where the
 * lists dominate, filled from what the capture left in struct amber_proc.
 * Part of the netlink layer: it translates, it decides nothing.
 */
#include <linux/cred.h>
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uidgid.h>
#include <net/genetlink.h>
#include <net/netlink.h>

#include <linux/amber.h>

#include "checkpoint.h"
#include "epoll.h"
#include "inotify.h"
#include "inet.h"
#include "netlink.h"
#include "unix.h"

/* x86-64 never pads 64-bit attributes; AMBER_A_PAD only exists for others. */
int amber_put_u64(struct sk_buff *skb, int type, u64 value)
{
	return nla_put_u64_64bit(skb, type, value, AMBER_A_PAD);
}

/* The other nests are bounded at capture time; check rather than trust. */
static int amber_nest_end(struct sk_buff *skb, struct nlattr *nest)
{
	if (skb_tail_pointer(skb) - (unsigned char *)nest > U16_MAX)
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

static size_t amber_str_size(const char *s)
{
	return s ? nla_total_size(strlen(s) + 1) : 0;
}

#define AMBER_U32_SIZE	nla_total_size(sizeof(u32))
#define AMBER_U64_SIZE	nla_total_size_64bit(sizeof(u64))

static size_t amber_fd_size(const struct amber_fd *fd);
static int amber_fill_fd_as(struct sk_buff *skb, int type, const struct amber_fd *fd);

/* The files in flight one queued message carries (AMBER_QUEUE_FILE). */
struct amber_fq_files {
	const struct amber_fd *fds;
	u32 nr;
};

/*
 * One AMBER_A_QUEUE nest: INO, DATA, EOR, EMBRYO, SEND, CRED_* (@cred),
 * FILE per file of @files (an AMBER_A_FD nest without NUM).
 */
static size_t amber_fq_chunk_size(const struct amber_fq *q, size_t len, bool eor,
				  const struct amber_fq_cred *cred,
				  const struct amber_fq_files *files)
{
	size_t size = NLA_HDRLEN + nla_total_size_64bit(sizeof(u64)) +
		      nla_total_size(len) + (eor ? nla_total_size(0) : 0) +
		      (q->embryo ? AMBER_U32_SIZE : 0) + (q->send ? nla_total_size(0) : 0) +
		      (cred ? 3 * AMBER_U32_SIZE : 0);
	u32 i;

	for (i = 0; files && i < files->nr; i++)
		size += amber_fd_size(&files->fds[i]) - AMBER_U32_SIZE;
	return size;
}

static int amber_fq_put_cred(struct sk_buff *skb, const struct amber_fq_cred *cred)
{
	if (!cred)
		return 0;
	if (nla_put_u32(skb, AMBER_QUEUE_CRED_PID, cred->pid) ||
	    nla_put_u32(skb, AMBER_QUEUE_CRED_UID, cred->uid) ||
	    nla_put_u32(skb, AMBER_QUEUE_CRED_GID, cred->gid))
		return -EMSGSIZE;
	return 0;
}

static int amber_fq_fill_chunk(struct sk_buff *skb, const struct amber_fq *q,
			       const u8 *data, size_t len, bool eor,
			       const struct amber_fq_cred *cred,
			       const struct amber_fq_files *files)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_QUEUE);
	u32 i;

	if (!nest ||
	    amber_put_u64(skb, AMBER_QUEUE_INO, q->ino) ||
	    nla_put(skb, AMBER_QUEUE_DATA, len, data) ||
	    (eor && nla_put_flag(skb, AMBER_QUEUE_EOR)) ||
	    (q->embryo && nla_put_u32(skb, AMBER_QUEUE_EMBRYO, q->embryo)) ||
	    (q->send && nla_put_flag(skb, AMBER_QUEUE_SEND)) ||
	    amber_fq_put_cred(skb, cred))
		return -EMSGSIZE;
	for (i = 0; files && i < files->nr; i++)
		if (amber_fill_fd_as(skb, AMBER_QUEUE_FILE, &files->fds[i]))
			return -EMSGSIZE;
	/* Bounded at capture (AMBER_QUEUE_FILES_MSG_MAX): check rather than trust. */
	return amber_nest_end(skb, nest);
}

/*
 * Puts @len bytes at @data as chunks of at most AMBER_QUEUE_CHUNK bytes
 * (a message's last with EOR, an empty message as one empty chunk), or
 * only adds their size to *@size when @skb is NULL.
 */
static int amber_fq_put(struct sk_buff *skb, size_t *size, const struct amber_fq *q,
			const u8 *data, size_t len, bool msg,
			const struct amber_fq_cred *cred,
			const struct amber_fq_files *files)
{
	const struct amber_fq_files *fs;
	const struct amber_fq_cred *c;
	size_t off = 0, n;
	bool eor;

	do {
		n = min_t(size_t, len - off, AMBER_QUEUE_CHUNK);
		eor = msg && off + n == len;
		/* On the message's last chunk, which ends it. */
		c = eor && cred && cred->pid ? cred : NULL;
		fs = eor && files && files->nr ? files : NULL;
		if (!skb)
			*size += amber_fq_chunk_size(q, n, eor, c, fs);
		else if (amber_fq_fill_chunk(skb, q, data + off, n, eor, c, fs))
			return -EMSGSIZE;
		off += n;
	} while (off < len);
	return 0;
}

/* Both for amber_fq_fill() and amber_fq_size(): see amber_fq_put(). */
static int amber_fq_put_all(struct sk_buff *skb, size_t *size,
			    const struct amber_fq *q)
{
	struct amber_fq_files files = { .fds = q->files };
	const u8 *data = q->data;
	u32 i;

	if (!q->nr_msgs)
		return q->len ? amber_fq_put(skb, size, q, data, q->len, false, NULL, NULL) : 0;
	for (i = 0; i < q->nr_msgs; i++) {
		files.nr = q->msg_files ? q->msg_files[i] : 0;
		if (amber_fq_put(skb, size, q, data, q->msg_len[i], true,
				 q->cred ? &q->cred[i] : NULL, &files))
			return -EMSGSIZE;
		data += q->msg_len[i];
		files.fds += files.nr;
	}
	return 0;
}

static int amber_fq_fill(struct sk_buff *skb, const struct amber_fq *q)
{
	return amber_fq_put_all(skb, NULL, q);
}

static size_t amber_fq_size(const struct amber_fq *q)
{
	size_t size = 0;

	amber_fq_put_all(NULL, &size, q);
	return size;
}

/* The UNIX_* and SOCK_* options of a UNIX socket's fd, as amber_fill_unix() puts them. */
static size_t amber_unix_fd_size(const struct amber_unix_fd *u)
{
	/* RCVBUF, SNDBUF, USERLOCKS, RCVLOWAT; RCVTIMEO, SNDTIMEO */
	size_t size = 4 * AMBER_U32_SIZE + 2 * AMBER_U64_SIZE;

	if (u->name_len)
		size += nla_total_size(u->name_len);
	if (u->accepted)
		size += nla_total_size(0);
	if (u->path[0])	/* PATH; FILE_MODE, FILE_UID, FILE_GID */
		size += nla_total_size(strlen(u->path) + 1) + 3 * AMBER_U32_SIZE;
	if (u->listening)
		size += AMBER_U32_SIZE;
	if (u->no_peer)
		size += nla_total_size(0);
	if (u->peer_name_len)
		size += nla_total_size(u->peer_name_len);
	if (u->passcred)
		size += nla_total_size(0);
	if (u->passsec)
		size += nla_total_size(0);
	return size + u->nr_embryos * AMBER_U64_SIZE;
}

/* The AMBER_A_FD nest of @fd, header included, as amber_fill_fd() puts it. */
static size_t amber_fd_size(const struct amber_fd *fd)
{
	/* NUM, TYPE, FLAGS, MODE; POS, DEV, INO, RDEV, SIZE; PATH. */
	size_t size = NLA_HDRLEN + 4 * AMBER_U32_SIZE + 5 * AMBER_U64_SIZE +
		      nla_total_size(strlen(fd->path) + 1);
	u32 i;

	if (fd->cloexec)
		size += nla_total_size(0);
	if (fd->tty)
		size += nla_total_size(0);
	if (fd->file_id)
		size += AMBER_U64_SIZE;
	if (fd->sock_family)	/* SOCK_FAMILY, SOCK_TYPE, SHUTDOWN */
		size += 3 * AMBER_U32_SIZE;
	if (fd->peer_ino)
		size += AMBER_U64_SIZE;
	if (fd->pipe_size)
		size += AMBER_U32_SIZE;
	if (fd->pipe_no_readers)
		size += nla_total_size(0);
	if (fd->pipe_no_writers)
		size += nla_total_size(0);
	if (fd->eventfd)
		size += AMBER_U64_SIZE;
	if (fd->eventfd && fd->eventfd_sem)
		size += nla_total_size(0);
	if (fd->epoll)	/* EPOLL; per registration TFD, EVENTS, DATA, FILE_ID */
		size += nla_total_size(0) +
			fd->nr_epoll * (NLA_HDRLEN + 2 * AMBER_U32_SIZE + 2 * AMBER_U64_SIZE);
	if (fd->timerfd)	/* CLOCKID, SETTIME_FLAGS; TICKS, VALUE, INTERVAL */
		size += 2 * AMBER_U32_SIZE + 3 * AMBER_U64_SIZE;
	if (fd->signalfd)
		size += AMBER_U64_SIZE;
	/* INOTIFY; per watch WD, MASK, HANDLE_TYPE; DEV, INO; HANDLE */
	if (fd->inotify)
		size += nla_total_size(0);
	for (i = 0; fd->inotify && i < fd->nr_inotify; i++)
		size += NLA_HDRLEN + 3 * AMBER_U32_SIZE + 2 * AMBER_U64_SIZE +
			nla_total_size(fd->inotify_watches[i].handle_bytes);
	if (fd->un)
		size += amber_unix_fd_size(fd->un);
	if (fd->inet)
		size += amber_inet_size(fd->inet);
	return size;
}

static int amber_fill_epoll(struct sk_buff *skb, const struct amber_fd *fd)
{
	const struct amber_epoll_tfd *t;
	struct nlattr *nest;
	u32 i;

	if (nla_put_flag(skb, AMBER_FD_EPOLL))
		return -EMSGSIZE;
	for (i = 0; i < fd->nr_epoll; i++) {
		t = &fd->epoll_tfds[i];
		nest = nla_nest_start(skb, AMBER_FD_EPOLL_TFD);
		if (!nest ||
		    nla_put_u32(skb, AMBER_EPOLL_TFD, t->tfd) ||
		    nla_put_u32(skb, AMBER_EPOLL_EVENTS, t->events) ||
		    amber_put_u64(skb, AMBER_EPOLL_DATA, t->data) ||
		    amber_put_u64(skb, AMBER_EPOLL_FILE_ID, t->file_id))
			return -EMSGSIZE;
		nla_nest_end(skb, nest);
	}
	return 0;
}

static int amber_fill_inotify(struct sk_buff *skb, const struct amber_fd *fd)
{
	const struct amber_inotify_watch *w;
	struct nlattr *nest;
	u32 i;

	if (nla_put_flag(skb, AMBER_FD_INOTIFY))
		return -EMSGSIZE;
	for (i = 0; i < fd->nr_inotify; i++) {
		w = &fd->inotify_watches[i];
		nest = nla_nest_start(skb, AMBER_FD_INOTIFY_WATCH);
		if (!nest ||
		    nla_put_u32(skb, AMBER_INOTIFY_WD, w->wd) ||
		    nla_put_u32(skb, AMBER_INOTIFY_MASK, w->mask) ||
		    amber_put_u64(skb, AMBER_INOTIFY_DEV, w->dev) ||
		    amber_put_u64(skb, AMBER_INOTIFY_INO, w->ino) ||
		    nla_put_u32(skb, AMBER_INOTIFY_HANDLE_TYPE, w->handle_type) ||
		    nla_put(skb, AMBER_INOTIFY_HANDLE, w->handle_bytes, w->handle))
			return -EMSGSIZE;
		nla_nest_end(skb, nest);
	}
	return 0;
}

static int amber_fill_unix(struct sk_buff *skb, const struct amber_unix_fd *u)
{
	u32 i;

	if ((u->name_len && nla_put(skb, AMBER_FD_UNIX_NAME, u->name_len, u->name)) ||
	    (u->accepted && nla_put_flag(skb, AMBER_FD_UNIX_ACCEPTED)))
		return -EMSGSIZE;
	if (u->path[0] &&
	    (nla_put_string(skb, AMBER_FD_UNIX_PATH, u->path) ||
	     nla_put_u32(skb, AMBER_FD_UNIX_FILE_MODE, u->file_mode) ||
	     nla_put_u32(skb, AMBER_FD_UNIX_FILE_UID, u->file_uid) ||
	     nla_put_u32(skb, AMBER_FD_UNIX_FILE_GID, u->file_gid)))
		return -EMSGSIZE;
	if ((u->listening && nla_put_u32(skb, AMBER_FD_UNIX_BACKLOG, u->backlog)) ||
	    (u->no_peer && nla_put_flag(skb, AMBER_FD_UNIX_NO_PEER)) ||
	    (u->peer_name_len &&
	     nla_put(skb, AMBER_FD_UNIX_PEER_NAME, u->peer_name_len, u->peer_name)))
		return -EMSGSIZE;
	if (nla_put_u32(skb, AMBER_FD_SOCK_RCVBUF, u->rcvbuf) ||
	    nla_put_u32(skb, AMBER_FD_SOCK_SNDBUF, u->sndbuf) ||
	    nla_put_u32(skb, AMBER_FD_SOCK_USERLOCKS, u->userlocks) ||
	    nla_put_u32(skb, AMBER_FD_SOCK_RCVLOWAT, u->rcvlowat) ||
	    amber_put_u64(skb, AMBER_FD_SOCK_RCVTIMEO, u->rcvtimeo) ||
	    amber_put_u64(skb, AMBER_FD_SOCK_SNDTIMEO, u->sndtimeo) ||
	    (u->passcred && nla_put_flag(skb, AMBER_FD_SOCK_PASSCRED)) ||
	    (u->passsec && nla_put_flag(skb, AMBER_FD_SOCK_PASSSEC)))
		return -EMSGSIZE;
	for (i = 0; i < u->nr_embryos; i++)
		if (amber_put_u64(skb, AMBER_FD_UNIX_EMBRYO, u->embryos[i]))
			return -EMSGSIZE;
	return 0;
}

/*
 * The nest @type of @fd: an AMBER_A_FD, or an AMBER_QUEUE_FILE (a file in
 * flight, which has no number).
 */
static int amber_fill_fd_as(struct sk_buff *skb, int type, const struct amber_fd *fd)
{
	struct nlattr *nest = nla_nest_start(skb, type);

	if (!nest ||
	    (type == AMBER_A_FD && nla_put_u32(skb, AMBER_FD_NUM, fd->num)) ||
	    nla_put_u32(skb, AMBER_FD_TYPE, fd->type) ||
	    nla_put_u32(skb, AMBER_FD_FLAGS, fd->flags) ||
	    amber_put_u64(skb, AMBER_FD_POS, fd->pos) ||
	    (fd->cloexec && nla_put_flag(skb, AMBER_FD_CLOEXEC)) ||
	    nla_put_string(skb, AMBER_FD_PATH, fd->path) ||
	    amber_put_u64(skb, AMBER_FD_DEV, fd->dev) ||
	    amber_put_u64(skb, AMBER_FD_INO, fd->ino) ||
	    amber_put_u64(skb, AMBER_FD_RDEV, fd->rdev) ||
	    nla_put_u32(skb, AMBER_FD_MODE, fd->mode) ||
	    amber_put_u64(skb, AMBER_FD_SIZE, fd->size) ||
	    (fd->tty && nla_put_flag(skb, AMBER_FD_TTY)) ||
	    (fd->file_id && amber_put_u64(skb, AMBER_FD_FILE_ID, fd->file_id)))
		return -EMSGSIZE;
	if (fd->sock_family &&
	    (nla_put_u32(skb, AMBER_FD_SOCK_FAMILY, fd->sock_family) ||
	     nla_put_u32(skb, AMBER_FD_SOCK_TYPE, fd->sock_type) ||
	     nla_put_u32(skb, AMBER_FD_SHUTDOWN, fd->shutdown)))
		return -EMSGSIZE;
	if ((fd->peer_ino && amber_put_u64(skb, AMBER_FD_PEER_INO, fd->peer_ino)) ||
	    (fd->pipe_size && nla_put_u32(skb, AMBER_FD_PIPE_SIZE, fd->pipe_size)) ||
	    (fd->pipe_no_readers && nla_put_flag(skb, AMBER_FD_PIPE_NO_READERS)) ||
	    (fd->pipe_no_writers && nla_put_flag(skb, AMBER_FD_PIPE_NO_WRITERS)))
		return -EMSGSIZE;
	if (fd->eventfd &&
	    (amber_put_u64(skb, AMBER_FD_EVENTFD_COUNT, fd->eventfd_count) ||
	     (fd->eventfd_sem && nla_put_flag(skb, AMBER_FD_EVENTFD_SEMAPHORE))))
		return -EMSGSIZE;
	if (fd->epoll && amber_fill_epoll(skb, fd))
		return -EMSGSIZE;
	if (fd->un && amber_fill_unix(skb, fd->un))
		return -EMSGSIZE;
	if (fd->timerfd &&
	    (nla_put_u32(skb, AMBER_FD_TIMERFD_CLOCKID, fd->timerfd_clockid) ||
	     nla_put_u32(skb, AMBER_FD_TIMERFD_SETTIME_FLAGS, fd->timerfd_flags) ||
	     amber_put_u64(skb, AMBER_FD_TIMERFD_TICKS, fd->timerfd_ticks) ||
	     amber_put_u64(skb, AMBER_FD_TIMERFD_VALUE, fd->timerfd_value) ||
	     amber_put_u64(skb, AMBER_FD_TIMERFD_INTERVAL, fd->timerfd_interval)))
		return -EMSGSIZE;
	if (fd->signalfd &&
	    amber_put_u64(skb, AMBER_FD_SIGNALFD_MASK, fd->signalfd_mask))
		return -EMSGSIZE;
	if (fd->inotify && amber_fill_inotify(skb, fd))
		return -EMSGSIZE;
	if (fd->inet && amber_inet_fill(skb, fd->inet))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

static int amber_fill_fd(struct sk_buff *skb, const struct amber_fd *fd)
{
	return amber_fill_fd_as(skb, AMBER_A_FD, fd);
}

static size_t amber_files_reply_size(const struct amber_files_state *st)
{
	size_t size = 0, nest = NLA_HDRLEN, fd;
	const struct amber_fq *q;
	unsigned int i;

	for (i = 0; i < st->nr; i++) {
		fd = amber_fd_size(&st->fds[i]);
		if (nest + fd > U16_MAX) {
			size += nest;
			nest = NLA_HDRLEN;
		}
		nest += fd;
	}
	size += nest;
	for (q = st->queues; q; q = q->next)
		size += amber_fq_size(q);
	return size;
}

/* START, END, PGOFF, PAGES, PROT, FLAGS; DEV, INO, FILE_SIZE with a path. */
#define AMBER_VMA_SIZE		(nla_total_size(0) + 4 * AMBER_U64_SIZE + 2 * AMBER_U32_SIZE)
#define AMBER_VMA_FILE_NLSIZE	(3 * AMBER_U64_SIZE)

/* PID, PPID, PGID, SID, NR_THREADS, EXIT_CODE, FILES_WITH, FS_WITH, ZOMBIE. */
#define AMBER_PROC_NLSIZE	(nla_total_size(0) + 8 * AMBER_U32_SIZE + nla_total_size(0))
/* TID, BLOCKED, CLEAR_CHILD_TID, ROBUST_LIST(_LEN), SAS_*, RSEQ*, COMM. */
#define AMBER_THREAD_NLSIZE	(nla_total_size(0) + 5 * AMBER_U32_SIZE + \
				 6 * AMBER_U64_SIZE + nla_total_size(TASK_COMM_LEN))

static size_t amber_thread_size(const struct amber_thr *thr)
{
	return AMBER_THREAD_NLSIZE +
	       nla_total_size(0) + AMBER_REG_MAX * AMBER_U64_SIZE +
	       nla_total_size(thr->regs.fpu_len) +
	       thr->ts.nr_pending * (nla_total_size(0) +
				     nla_total_size(AMBER_SIGINFO_SIZE));
}

/* An upper bound of a live process's reply payload. */
#define AMBER_TIMER_NLSIZE	(NLA_HDRLEN + 7 * AMBER_U32_SIZE + 3 * AMBER_U64_SIZE)

static size_t amber_timers_size(const struct amber_timers_state *t)
{
	return NLA_HDRLEN + 6 * AMBER_U64_SIZE + AMBER_U32_SIZE + t->nr * AMBER_TIMER_NLSIZE;
}

static size_t amber_reply_size(const struct amber_proc *p)
{
	const struct amber_state *st = &p->st;
	/* Top-level scalars and nest headers, split list nests included. */
	size_t size = 1024 + st->mm.nr_vmas / 64 * NLA_HDRLEN;
	unsigned int i;

	size += 1024 + amber_str_size(st->task.cwd) + amber_str_size(st->task.exe);
	size += amber_str_size(st->track.full_reason);
	size += st->task.cred->group_info->ngroups * nla_total_size(sizeof(u32));
	size += RLIM_NLIMITS * (nla_total_size(0) + nla_total_size(sizeof(u32)) +
				2 * nla_total_size(sizeof(u64)));
	size += 512 + nla_total_size(sizeof(st->mm.auxv));
	size += nla_total_size(0) + AMBER_REG_MAX * nla_total_size(sizeof(u64));
	size += nla_total_size(st->regs.fpu_len);
	size += _NSIG * (nla_total_size(0) + nla_total_size(sizeof(u32)) +
			 4 * nla_total_size(sizeof(u64)));
	size += st->sig.nr_pending * (nla_total_size(0) +
				      nla_total_size(AMBER_SIGINFO_SIZE) +
				      nla_total_size(0));
	/*
	 * The lists dominate: count them exactly, so that a large reply is not
	 * twice its size in the receiver's socket buffer (netlink_trim() only
	 * shrinks buffers that are more than half empty).
	 */
	for (i = 0; i < st->mm.nr_vmas; i++)
		size += AMBER_VMA_SIZE + AMBER_VMA_FILE_NLSIZE +
			amber_str_size(st->mm.vmas[i].path);
	size += amber_files_reply_size(&st->files);
	size += amber_timers_size(&st->timers);
	size += AMBER_PROC_NLSIZE + AMBER_U32_SIZE;
	size += (p->nr_others / 16 + 1) * NLA_HDRLEN;
	for (i = 0; i < p->nr_others; i++)
		size += amber_thread_size(p->others[i]);
	return size;
}

static u64 amber_cap(kernel_cap_t cap)
{
	return amber_cap_to_u64(cap);
}

/* Credentials as seen from the caller's user namespace. */
static int amber_fill_creds(struct sk_buff *skb, const struct cred *cred)
{
	struct user_namespace *ns = current_user_ns();
	const struct group_info *gi = cred->group_info;
	struct nlattr *nest;
	int i;

	if (nla_put_u32(skb, AMBER_TASK_UID, from_kuid_munged(ns, cred->uid)) ||
	    nla_put_u32(skb, AMBER_TASK_EUID, from_kuid_munged(ns, cred->euid)) ||
	    nla_put_u32(skb, AMBER_TASK_SUID, from_kuid_munged(ns, cred->suid)) ||
	    nla_put_u32(skb, AMBER_TASK_FSUID, from_kuid_munged(ns, cred->fsuid)) ||
	    nla_put_u32(skb, AMBER_TASK_GID, from_kgid_munged(ns, cred->gid)) ||
	    nla_put_u32(skb, AMBER_TASK_EGID, from_kgid_munged(ns, cred->egid)) ||
	    nla_put_u32(skb, AMBER_TASK_SGID, from_kgid_munged(ns, cred->sgid)) ||
	    nla_put_u32(skb, AMBER_TASK_FSGID, from_kgid_munged(ns, cred->fsgid)))
		return -EMSGSIZE;

	nest = nla_nest_start(skb, AMBER_TASK_GROUPS);
	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < gi->ngroups; i++)
		if (nla_put_u32(skb, AMBER_TASK_GROUP,
				from_kgid_munged(ns, gi->gid[i])))
			return -EMSGSIZE;
	if (amber_nest_end(skb, nest))
		return -EMSGSIZE;

	if (amber_put_u64(skb, AMBER_TASK_CAP_INH, amber_cap(cred->cap_inheritable)) ||
	    amber_put_u64(skb, AMBER_TASK_CAP_PRM, amber_cap(cred->cap_permitted)) ||
	    amber_put_u64(skb, AMBER_TASK_CAP_EFF, amber_cap(cred->cap_effective)) ||
	    amber_put_u64(skb, AMBER_TASK_CAP_BND, amber_cap(cred->cap_bset)) ||
	    amber_put_u64(skb, AMBER_TASK_CAP_AMB, amber_cap(cred->cap_ambient)))
		return -EMSGSIZE;
	return 0;
}

static int amber_fill_rlimits(struct sk_buff *skb,
			      const struct amber_task_state *t)
{
	struct nlattr *nest, *rl;
	unsigned int i;

	nest = nla_nest_start(skb, AMBER_TASK_RLIMITS);
	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < RLIM_NLIMITS; i++) {
		rl = nla_nest_start(skb, AMBER_TASK_RLIMIT);
		if (!rl ||
		    nla_put_u32(skb, AMBER_RLIMIT_RESOURCE, i) ||
		    amber_put_u64(skb, AMBER_RLIMIT_CUR, t->rlim[i].rlim_cur) ||
		    amber_put_u64(skb, AMBER_RLIMIT_MAX, t->rlim[i].rlim_max))
			return -EMSGSIZE;
		nla_nest_end(skb, rl);
	}
	nla_nest_end(skb, nest);
	return 0;
}

/* rseq, futex lists and sigaltstack, as @t names them. */
static int amber_fill_regn(struct sk_buff *skb, const struct amber_regn *r,
			   const struct amber_regn_types *t)
{
	if (amber_put_u64(skb, t->rseq, r->rseq) ||
	    nla_put_u32(skb, t->rseq_len, r->rseq_len) ||
	    nla_put_u32(skb, t->rseq_sig, r->rseq_sig) ||
	    amber_put_u64(skb, t->clear_child_tid, r->clear_child_tid) ||
	    amber_put_u64(skb, t->robust_list, r->robust_list) ||
	    amber_put_u64(skb, t->robust_list_len, r->robust_list_len) ||
	    amber_put_u64(skb, t->sas_sp, r->sas_sp) ||
	    amber_put_u64(skb, t->sas_size, r->sas_size) ||
	    nla_put_u32(skb, t->sas_flags, r->sas_flags))
		return -EMSGSIZE;
	return 0;
}

static int amber_fill_task(struct sk_buff *skb, const struct amber_proc *p)
{
	const struct amber_task_state *t = &p->st.task;
	struct nlattr *nest;

	nest = nla_nest_start(skb, AMBER_A_TASK);
	if (!nest ||
	    nla_put_u32(skb, AMBER_TASK_PID, p->pid) ||
	    nla_put_string(skb, AMBER_TASK_COMM, t->comm) ||
	    amber_fill_creds(skb, t->cred) ||
	    nla_put_u32(skb, AMBER_TASK_UMASK, t->umask) ||
	    nla_put_u32(skb, AMBER_TASK_PERSONALITY, t->personality) ||
	    nla_put_string(skb, AMBER_TASK_CWD, t->cwd) ||
	    amber_fill_rlimits(skb, t) ||
	    amber_fill_regn(skb, &p->st.regn, &amber_task_regn_types) ||
	    (t->exe && nla_put_string(skb, AMBER_TASK_EXE, t->exe)) ||
	    amber_put_u64(skb, AMBER_TASK_START_TIME_NS, t->start_time_ns) ||
	    nla_put_u32(skb, AMBER_TASK_DUMPABLE, t->dumpable) ||
	    nla_put_u32(skb, AMBER_TASK_NO_NEW_PRIVS, t->no_new_privs))
		return -EMSGSIZE;
	return amber_nest_end(skb, nest);
}

static int amber_fill_mm(struct sk_buff *skb, const struct amber_mm_state *mm)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_MM);

	if (!nest ||
	    amber_put_u64(skb, AMBER_MM_START_CODE, mm->start_code) ||
	    amber_put_u64(skb, AMBER_MM_END_CODE, mm->end_code) ||
	    amber_put_u64(skb, AMBER_MM_START_DATA, mm->start_data) ||
	    amber_put_u64(skb, AMBER_MM_END_DATA, mm->end_data) ||
	    amber_put_u64(skb, AMBER_MM_START_BRK, mm->start_brk) ||
	    amber_put_u64(skb, AMBER_MM_BRK, mm->brk) ||
	    amber_put_u64(skb, AMBER_MM_START_STACK, mm->start_stack) ||
	    amber_put_u64(skb, AMBER_MM_ARG_START, mm->arg_start) ||
	    amber_put_u64(skb, AMBER_MM_ARG_END, mm->arg_end) ||
	    amber_put_u64(skb, AMBER_MM_ENV_START, mm->env_start) ||
	    amber_put_u64(skb, AMBER_MM_ENV_END, mm->env_end) ||
	    nla_put(skb, AMBER_MM_AUXV, mm->auxv_len * sizeof(u64), mm->auxv) ||
	    amber_put_u64(skb, AMBER_MM_VDSO, mm->vdso))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

static int amber_fill_vma(struct sk_buff *skb, const struct amber_vma *v)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_VMA);

	if (!nest ||
	    amber_put_u64(skb, AMBER_VMA_START, v->start) ||
	    amber_put_u64(skb, AMBER_VMA_END, v->end) ||
	    amber_put_u64(skb, AMBER_VMA_PGOFF, v->pgoff) ||
	    nla_put_u32(skb, AMBER_VMA_PROT, v->prot) ||
	    nla_put_u32(skb, AMBER_VMA_FLAGS, v->flags) ||
	    amber_put_u64(skb, AMBER_VMA_PAGES, v->pages))
		return -EMSGSIZE;
	if (v->path && nla_put_string(skb, AMBER_VMA_PATH, v->path))
		return -EMSGSIZE;
	/* A mapped file, or the shmem object of shared anonymous memory. */
	if ((v->path || (v->flags & AMBER_VMA_F_SHMEM)) &&
	    (amber_put_u64(skb, AMBER_VMA_DEV, v->dev) ||
	     amber_put_u64(skb, AMBER_VMA_INO, v->ino) ||
	     amber_put_u64(skb, AMBER_VMA_FILE_SIZE, v->file_size)))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

/*
 * nla_len is 16 bits: a list that outgrows one nest continues in another
 * nest of the same type (the tools concatenate them). Each entry is filled,
 * and moved to a fresh nest if it made the current one too long.
 */
static int amber_fill_list(struct sk_buff *skb, int type, unsigned int count,
			   int (*fill)(struct sk_buff *skb, const void *list,
				       unsigned int i),
			   const void *list)
{
	struct nlattr *nest = nla_nest_start(skb, type);
	unsigned int i;

	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < count; i++) {
		unsigned char *mark = skb_tail_pointer(skb);

		if (fill(skb, list, i))
			return -EMSGSIZE;
		if (skb_tail_pointer(skb) - (unsigned char *)nest <= U16_MAX)
			continue;
		nlmsg_trim(skb, mark);
		nla_nest_end(skb, nest);
		nest = nla_nest_start(skb, type);
		if (!nest || fill(skb, list, i) ||
		    skb_tail_pointer(skb) - (unsigned char *)nest > U16_MAX)
			return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

/*
 * AMBER_A_FDS holds at most U16_MAX bytes: a table that outgrows one nest
 * continues in another (amber_fill_list()), as amber_files_reply_size()
 * counts.
 */
static int amber_fill_fd_i(struct sk_buff *skb, const void *list,
			   unsigned int i)
{
	return amber_fill_fd(skb, &((const struct amber_fd *)list)[i]);
}

static int amber_files_fill(struct sk_buff *skb, const struct amber_files_state *st)
{
	unsigned char *start = skb_tail_pointer(skb);
	const struct amber_fq *q;

	if (amber_fill_list(skb, AMBER_A_FDS, st->nr, amber_fill_fd_i, st->fds))
		return -EMSGSIZE;
	for (q = st->queues; q; q = q->next)
		if (amber_fq_fill(skb, q))
			return -EMSGSIZE;
	/* The reply is sized by amber_files_reply_size(): keep them in step. */
	WARN_ON_ONCE(skb_tail_pointer(skb) - start != amber_files_reply_size(st));
	return 0;
}

static int amber_fill_vma_i(struct sk_buff *skb, const void *list,
			    unsigned int i)
{
	return amber_fill_vma(skb, &((const struct amber_vma *)list)[i]);
}

static int amber_fill_vmas(struct sk_buff *skb, const struct amber_mm_state *mm)
{
	return amber_fill_list(skb, AMBER_A_VMAS, mm->nr_vmas, amber_fill_vma_i,
			       mm->vmas);
}

static int amber_fill_regs_as(struct sk_buff *skb, const struct amber_regs_state *r,
			      int regs_type, int fpu_type)
{
	struct nlattr *nest = nla_nest_start(skb, regs_type);
	int i;

	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < AMBER_REG_MAX; i++)
		if (amber_put_u64(skb, i + 1, r->regs[i]))
			return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return nla_put(skb, fpu_type, r->fpu_len, r->fpu);
}

static int amber_fill_regs(struct sk_buff *skb, const struct amber_regs_state *r)
{
	return amber_fill_regs_as(skb, r, AMBER_A_REGS, AMBER_A_FPU);
}

static int amber_fill_sigaction(struct sk_buff *skb, int signo,
				const struct amber_sigaction *a)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_SIG_ACTION);

	if (!nest ||
	    nla_put_u32(skb, AMBER_SIGACTION_SIGNO, signo) ||
	    amber_put_u64(skb, AMBER_SIGACTION_HANDLER, a->handler) ||
	    amber_put_u64(skb, AMBER_SIGACTION_FLAGS, a->flags) ||
	    amber_put_u64(skb, AMBER_SIGACTION_RESTORER, a->restorer) ||
	    amber_put_u64(skb, AMBER_SIGACTION_MASK, a->mask))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

static int amber_fill_sigpending_as(struct sk_buff *skb, int type,
				    const struct amber_sigpending *p)
{
	struct nlattr *nest = nla_nest_start(skb, type);

	if (!nest ||
	    nla_put(skb, AMBER_SIGPENDING_SIGINFO, sizeof(p->info), p->info) ||
	    (p->shared && nla_put_flag(skb, AMBER_SIGPENDING_SHARED)))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

static int amber_fill_signals(struct sk_buff *skb,
			      const struct amber_sig_state *s)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_SIGNALS);
	unsigned int i;

	if (!nest || amber_put_u64(skb, AMBER_SIG_BLOCKED, s->blocked))
		return -EMSGSIZE;
	for (i = 0; i < _NSIG; i++)
		if (amber_fill_sigaction(skb, i + 1, &s->action[i]))
			return -EMSGSIZE;
	for (i = 0; i < s->nr_pending; i++)
		if (amber_fill_sigpending_as(skb, AMBER_SIG_PENDING, &s->pending[i]))
			return -EMSGSIZE;
	return amber_nest_end(skb, nest);
}

static int amber_fill_ptimer(struct sk_buff *skb, const struct amber_ptimer *t)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_TIMERS_TIMER);

	if (!nest ||
	    nla_put_u32(skb, AMBER_TIMER_ID, t->id) ||
	    nla_put_u32(skb, AMBER_TIMER_CLOCK, t->clock) ||
	    nla_put_u32(skb, AMBER_TIMER_NOTIFY, t->notify) ||
	    nla_put_u32(skb, AMBER_TIMER_SIGNO, t->signo) ||
	    amber_put_u64(skb, AMBER_TIMER_SIGVAL, t->sigval) ||
	    (t->tid && nla_put_u32(skb, AMBER_TIMER_TID, t->tid)) ||
	    amber_put_u64(skb, AMBER_TIMER_VALUE, t->value) ||
	    amber_put_u64(skb, AMBER_TIMER_INTERVAL, t->interval) ||
	    nla_put_u32(skb, AMBER_TIMER_OVERRUN, t->overrun))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

/* AMBER_A_TIMERS, left out when nothing is armed or created. */
static int amber_fill_timers(struct sk_buff *skb, const struct amber_timers_state *t)
{
	struct nlattr *nest;
	unsigned int i;

	if (amber_timers_empty(t))
		return 0;
	nest = nla_nest_start(skb, AMBER_A_TIMERS);
	if (!nest ||
	    amber_put_u64(skb, AMBER_TIMERS_REAL_VALUE, t->real.value) ||
	    amber_put_u64(skb, AMBER_TIMERS_REAL_INTERVAL, t->real.interval) ||
	    amber_put_u64(skb, AMBER_TIMERS_VIRT_VALUE, t->virt.value) ||
	    amber_put_u64(skb, AMBER_TIMERS_VIRT_INTERVAL, t->virt.interval) ||
	    amber_put_u64(skb, AMBER_TIMERS_PROF_VALUE, t->prof.value) ||
	    amber_put_u64(skb, AMBER_TIMERS_PROF_INTERVAL, t->prof.interval) ||
	    nla_put_u32(skb, AMBER_TIMERS_NEXT_ID, t->next_id))
		return -EMSGSIZE;
	for (i = 0; i < t->nr; i++)
		if (amber_fill_ptimer(skb, &t->timers[i]))
			return -EMSGSIZE;
	return amber_nest_end(skb, nest);
}

/* TRACK_ID when tracked, PARENT_ID iff incremental, FULL_REASON if refused. */
static int amber_fill_track(struct sk_buff *skb, const struct amber_track *t)
{
	if ((t->id && amber_put_u64(skb, AMBER_A_TRACK_ID, t->id)) ||
	    (t->incremental && amber_put_u64(skb, AMBER_A_PARENT_ID, t->parent_id)) ||
	    (t->full_reason && nla_put_string(skb, AMBER_A_FULL_REASON, t->full_reason)))
		return -EMSGSIZE;
	return 0;
}

static int amber_fill_thread(struct sk_buff *skb, const struct amber_thr *thr)
{
	const struct amber_thread_state *t = &thr->ts;
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_THREAD);
	unsigned int i;

	if (!nest ||
	    nla_put_u32(skb, AMBER_THREAD_TID, thr->tid) ||
	    amber_fill_regs_as(skb, &thr->regs, AMBER_THREAD_REGS, AMBER_THREAD_FPU) ||
	    amber_put_u64(skb, AMBER_THREAD_BLOCKED, t->blocked) ||
	    amber_fill_regn(skb, &t->regn, &amber_thread_regn_types) ||
	    nla_put_string(skb, AMBER_THREAD_COMM, t->comm))
		return -EMSGSIZE;
	for (i = 0; i < t->nr_pending; i++)
		if (amber_fill_sigpending_as(skb, AMBER_THREAD_PENDING, &t->pending[i]))
			return -EMSGSIZE;
	return amber_nest_end(skb, nest);
}

static int amber_fill_thread_i(struct sk_buff *skb, const void *list,
			       unsigned int i)
{
	return amber_fill_thread(skb, ((struct amber_thr * const *)list)[i]);
}

static int amber_fill_proc(struct sk_buff *skb, const struct amber_proc *p)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_PROC);

	if (!nest ||
	    nla_put_u32(skb, AMBER_PROC_PID, p->pid) ||
	    nla_put_u32(skb, AMBER_PROC_PPID, p->ppid) ||
	    nla_put_u32(skb, AMBER_PROC_PGID, p->pgid) ||
	    nla_put_u32(skb, AMBER_PROC_SID, p->sid))
		return -EMSGSIZE;
	if (p->zombie) {
		if (nla_put_flag(skb, AMBER_PROC_ZOMBIE) ||
		    nla_put_u32(skb, AMBER_PROC_EXIT_CODE, p->exit_code))
			return -EMSGSIZE;
	} else if (nla_put_u32(skb, AMBER_PROC_NR_THREADS, p->nr_threads) ||
		   (p->files_with && nla_put_u32(skb, AMBER_PROC_FILES_WITH, p->files_with)) ||
		   (p->fs_with && nla_put_u32(skb, AMBER_PROC_FS_WITH, p->fs_with))) {
		return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

static int amber_fill_checkpoint(struct sk_buff *skb, const struct amber_req *req,
				 const struct amber_proc *p)
{
	const struct amber_state *st = &p->st;

	if (amber_fill_proc(skb, p))
		return -EMSGSIZE;
	if (p->zombie)
		return 0;
	if (p->pages_index >= 0 &&
	    nla_put_u32(skb, AMBER_A_PAGES_INDEX, p->pages_index))
		return -EMSGSIZE;
	if (p->nr_others &&
	    amber_fill_list(skb, AMBER_A_THREADS, p->nr_others, amber_fill_thread_i,
			    p->others))
		return -EMSGSIZE;
	if (amber_fill_task(skb, p) ||
	    amber_fill_mm(skb, &st->mm) ||
	    amber_fill_vmas(skb, &st->mm) ||
	    amber_fill_regs(skb, &st->regs) ||
	    amber_fill_signals(skb, &st->sig) ||
	    amber_fill_timers(skb, &st->timers) ||
	    amber_files_fill(skb, &st->files) ||
	    amber_put_u64(skb, AMBER_A_STOPPED_NS, req->stopped_ns) ||
	    amber_put_u64(skb, AMBER_A_PAGES_BYTES, st->mm.pages_bytes) ||
	    amber_put_u64(skb, AMBER_A_PAGES_NR, st->mm.pages_nr) ||
	    amber_put_u64(skb, AMBER_A_PAGES_PARENT_NR, st->mm.pages_parent_nr) ||
	    amber_fill_track(skb, &st->track))
		return -EMSGSIZE;
	return 0;
}

/*
 * A genetlink message is one kmalloc'ed buffer: at most KMALLOC_MAX_SIZE
 * (4 MiB here), less the skb's shared info and the headers.
 */
#define AMBER_REPLY_MAX	(KMALLOC_MAX_SIZE - SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) - \
			 NLMSG_HDRLEN - GENL_HDRLEN - 64)

static int amber_checkpoint_reply_one(struct amber_req *req,
				      struct amber_proc *p, struct genl_info *info)
{
	size_t size = p->zombie ? AMBER_PROC_NLSIZE : amber_reply_size(p);
	struct sk_buff *msg;
	void *hdr;
	int err;

	/* genlmsg_new() takes an int: refuse absurd states before it wraps. */
	if (size > AMBER_REPLY_MAX) {
		amber_set_msg(info->extack,
			      amber_msg("pid %d: the process state is too large for one reply (%zu bytes, %u threads)",
					p->pid, size, p->nr_threads));
		return -E2BIG;
	}
	msg = genlmsg_new(size, GFP_KERNEL);
	if (!msg) {
		NL_SET_ERR_MSG(info->extack, "out of memory for the reply");
		return -ENOMEM;
	}
	hdr = genlmsg_put_reply(msg, info, &amber_family, 0,
				AMBER_CMD_CHECKPOINT);
	if (!hdr || amber_fill_checkpoint(msg, req, p)) {
		nlmsg_free(msg);
		NL_SET_ERR_MSG(info->extack, "the reply did not fit its buffer");
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	err = genlmsg_reply(msg, info);
	if (err)
		amber_set_msg(info->extack,
			      amber_msg("sending the reply of pid %d failed (receive buffer too small?)",
					p->pid));
	return err;
}

/* One message per process, in discovery order: the root, parents first. */
int amber_nl_checkpoint_reply(struct amber_req *req, struct genl_info *info)
{
	unsigned int i;
	int err;

	for (i = 0; i < req->nr_procs; i++) {
		if (req->procs[i]->gone)
			continue;
		err = amber_checkpoint_reply_one(req, req->procs[i], info);
		if (err)
			return err;
	}
	return 0;
}

