// SPDX-License-Identifier: GPL-2.0
/*
 * Pipes, FIFOs and UNIX sockets: their attributes (capacity; family, type,
 * peer, shutdown) and the bytes queued in them, read without consuming
 * anything, so that the program finds them where they were.
 *
 * A queue is captured once per inode and request (the first process of the
 * group to capture an fd of it carries it), under the lock its readers
 * take: the pipe mutex for pipes, the socket's iolock for sockets (its
 * receive queue's spinlock only to walk the list). Writers outside the
 * group may still append; the group's own are stopped.
 *
 * Refused, by fd number and name: sockets other than AF_UNIX, bound or
 * listening UNIX sockets, queued SCM_RIGHTS (the files in flight would have
 * to be checkpointed too), out-of-band data, SO_PEEK_OFF, packet-mode
 * (O_DIRECT) pipe data, and more than AMBER_QUEUE_MAX_BYTES queued in a
 * request or AMBER_FILES_PROC_QUEUE_MAX in one process.
 */
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/net.h>
#include <linux/pipe_fs_i.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <net/af_unix.h>
#include <net/netlink.h>
#include <net/sock.h>

#include <linux/amber.h>

#include "fileq.h"

/* Retries when a socket's queue changes between sizing it and copying it. */
#define AMBER_FQ_TRIES	4

void amber_fq_free(struct amber_fq *q)
{
	if (!q)
		return;
	kvfree(q->data);
	kvfree(q->msg_len);
	kfree(q);
}

static struct amber_fq *amber_fq_alloc(u64 ino, size_t len, u32 nr_msgs)
{
	struct amber_fq *q = kzalloc(sizeof(*q), GFP_KERNEL_ACCOUNT);

	if (!q)
		return NULL;
	q->ino = ino;
	q->len = len;
	q->nr_msgs = nr_msgs;
	q->data = kvmalloc(max_t(size_t, len, 1), GFP_KERNEL_ACCOUNT);
	if (nr_msgs)
		q->msg_len = kvmalloc_array(nr_msgs, sizeof(*q->msg_len),
					    GFP_KERNEL_ACCOUNT);
	if (!q->data || (nr_msgs && !q->msg_len)) {
		amber_fq_free(q);
		return NULL;
	}
	return q;
}

static void amber_fq_add(struct amber_files_state *st, struct amber_fq *q)
{
	if (st->last_queue)
		st->last_queue->next = q;
	else
		st->queues = q;
	st->last_queue = q;
	st->queue_bytes += q->len;
}

/*
 * Accounts @len queued bytes about to be captured for @fd, against the
 * request's and the process's bounds.
 */
static int amber_fq_charge(struct amber_files_state *st,
			   struct amber_fileids *ids, const struct amber_fd *fd,
			   size_t len, struct amber_err *e)
{
	if (st->queue_bytes + len > AMBER_FILES_PROC_QUEUE_MAX)
		return amber_fail(e, -E2BIG,
				  amber_msg("fd %u: %s: more than %u KiB queued in the pipes and sockets of one process",
					    fd->num, fd->path,
					    AMBER_FILES_PROC_QUEUE_MAX >> 10));
	if (!amber_fileids_charge(ids, len))
		return amber_fail(e, -E2BIG,
				  amber_msg("fd %u: %s: more than %u MiB queued in pipes and sockets",
					    fd->num, fd->path,
					    AMBER_QUEUE_MAX_BYTES >> 20));
	return 0;
}

/* ---- pipes and FIFOs ---- */

/* The pipe of an open (not O_PATH) pipe or FIFO, or NULL. */
static struct pipe_inode_info *amber_fq_pipe_of(struct file *file)
{
	struct inode *inode = file_inode(file);
	struct pipe_inode_info *pipe;

	if (!S_ISFIFO(inode->i_mode) || (file->f_mode & FMODE_PATH))
		return NULL;
	/* fifo_open() points both at the pipe; an open file keeps i_pipe. */
	pipe = READ_ONCE(inode->i_pipe);
	return pipe && file->private_data == pipe ? pipe : NULL;
}

/*
 * Copies @buf's bytes to @to. A buffer may lie in a compound page (spliced
 * socket data) and span several of its pages: map them one at a time.
 */
static void amber_fq_copy_buf(u8 *to, const struct pipe_buffer *buf)
{
	unsigned int off = buf->offset, left = buf->len, n;
	struct page *page;
	void *from;

	while (left) {
		page = nth_page(buf->page, off >> PAGE_SHIFT);
		n = min_t(unsigned int, left, PAGE_SIZE - offset_in_page(off));
		from = kmap_local_page(page);
		memcpy(to, from + offset_in_page(off), n);
		kunmap_local(from);
		to += n;
		off += n;
		left -= n;
	}
}

/* The bytes in @pipe, tail to head. Called with the pipe mutex held. */
static int amber_fq_pipe_queue(struct amber_files_state *st,
			       struct amber_fileids *ids, const struct amber_fd *fd,
			       struct pipe_inode_info *pipe, struct amber_err *e)
{
	unsigned int mask = pipe->ring_size - 1, head = pipe->head, i;
	struct pipe_buffer *buf;
	struct amber_fq *q;
	size_t len = 0;
	u8 *to;
	int err;

	lockdep_assert_held(&pipe->mutex);
	for (i = pipe->tail; i != head; i++) {
		buf = &pipe->bufs[i & mask];
		if (buf->flags & PIPE_BUF_FLAG_PACKET)
			return amber_fail(e, -EOPNOTSUPP,
					  amber_msg("fd %u: %s: packets queued in a packet-mode (O_DIRECT) pipe are not supported",
						    fd->num, fd->path));
		len += buf->len;
	}
	if (!len)
		return 0;
	err = amber_fq_charge(st, ids, fd, len, e);
	if (err)
		return err;
	q = amber_fq_alloc(fd->ino, len, 0);
	if (!q)
		return amber_fail(e, -ENOMEM,
				  amber_msg("fd %u: %s: out of memory for its %zu queued bytes",
					    fd->num, fd->path, len));
	to = q->data;
	for (i = pipe->tail; i != head; i++) {
		buf = &pipe->bufs[i & mask];
		/* Spliced page cache pages may still be under read I/O. */
		err = pipe_buf_confirm(pipe, buf);
		if (err) {
			amber_fq_free(q);
			return amber_fail(e, err,
					  amber_msg("fd %u: %s: cannot read the queued bytes",
						    fd->num, fd->path));
		}
		amber_fq_copy_buf(to, buf);
		to += buf->len;
	}
	amber_fq_add(st, q);
	return 0;
}

static int amber_fq_pipe(struct amber_files_state *st, struct amber_fileids *ids,
			 struct amber_fd *fd, struct file *file,
			 struct pipe_inode_info *pipe, struct amber_err *e)
{
	int claim, err = 0;

	claim = amber_fileids_claim(ids, file_inode(file));
	if (claim < 0)
		return amber_fail(e, claim, "out of memory for the file ids");
	/* pipe_lock()'s lockdep class, but killable. */
	if (mutex_lock_killable_nested(&pipe->mutex, I_MUTEX_PARENT))
		return amber_fail(e, -EINTR,
				  amber_msg("fd %u: %s: interrupted waiting for the pipe",
					    fd->num, fd->path));
	fd->pipe_size = pipe->max_usage << PAGE_SHIFT;
	if (claim)
		err = amber_fq_pipe_queue(st, ids, fd, pipe, e);
	mutex_unlock(&pipe->mutex);
	return err;
}

/* ---- UNIX sockets ---- */

static const char *amber_af_name(int family)
{
	switch (family) {
	case AF_INET:		return "AF_INET";
	case AF_INET6:		return "AF_INET6";
	case AF_NETLINK:	return "AF_NETLINK";
	case AF_PACKET:		return "AF_PACKET";
	case AF_KEY:		return "AF_KEY";
	case AF_ALG:		return "AF_ALG";
	case AF_VSOCK:		return "AF_VSOCK";
	case AF_BLUETOOTH:	return "AF_BLUETOOTH";
	case AF_CAN:		return "AF_CAN";
	case AF_TIPC:		return "AF_TIPC";
	case AF_XDP:		return "AF_XDP";
	default:		return NULL;
	}
}

static const char *amber_sock_type_name(int type)
{
	switch (type) {
	case SOCK_STREAM:	return "SOCK_STREAM";
	case SOCK_DGRAM:	return "SOCK_DGRAM";
	case SOCK_RAW:		return "SOCK_RAW";
	case SOCK_RDM:		return "SOCK_RDM";
	case SOCK_SEQPACKET:	return "SOCK_SEQPACKET";
	case SOCK_DCCP:		return "SOCK_DCCP";
	case SOCK_PACKET:	return "SOCK_PACKET";
	default:		return "SOCK_?";
	}
}

static int amber_fq_refuse_family(const struct amber_fd *fd, struct amber_err *e)
{
	const char *af = amber_af_name(fd->sock_family);
	const char *type = amber_sock_type_name(fd->sock_type);

	if (af)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: %s %s sockets are not supported",
					    fd->num, fd->path, af, type));
	return amber_fail(e, -EOPNOTSUPP,
			  amber_msg("fd %u: %s: address family %u %s sockets are not supported",
				    fd->num, fd->path, fd->sock_family, type));
}

/* Bytes of @skb still to be read: a stream skb may be partly read already. */
static unsigned int amber_fq_skb_len(const struct sk_buff *skb, bool stream)
{
	return stream ? skb->len - UNIXCB(skb).consumed : skb->len;
}

/*
 * Sizes the receive queue of @sk: messages (skbs with unread bytes for a
 * stream) and bytes. Fails on SCM_RIGHTS in flight and out-of-band data.
 */
static int amber_fq_unix_size(struct sock *sk, bool stream, const struct amber_fd *fd,
			      u32 *nr, size_t *len, struct amber_err *e)
{
	struct sk_buff_head *queue = &sk->sk_receive_queue;
	bool fds = false, oob = false;
	struct sk_buff *skb;

	*nr = 0;
	*len = 0;
	spin_lock(&queue->lock);
#if IS_ENABLED(CONFIG_AF_UNIX_OOB)
	oob = READ_ONCE(unix_sk(sk)->oob_skb);
#endif
	skb_queue_walk(queue, skb) {
		if (UNIXCB(skb).fp)
			fds = true;
		if (stream && !amber_fq_skb_len(skb, stream))
			continue;
		(*nr)++;
		*len += amber_fq_skb_len(skb, stream);
	}
	spin_unlock(&queue->lock);
	if (fds)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: file descriptors queued (SCM_RIGHTS) are not supported",
					    fd->num, fd->path));
	if (oob)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: queued out-of-band data (MSG_OOB) is not supported",
					    fd->num, fd->path));
	return 0;
}

/*
 * Copies the first @nr skbs with unread bytes of @sk's receive queue to @q,
 * which was sized for them. False, with nothing usable in @q, when the
 * queue no longer starts with skbs of those sizes.
 */
static bool amber_fq_unix_copy(struct sock *sk, bool stream, u32 nr,
			       struct amber_fq *q)
{
	struct sk_buff_head *queue = &sk->sk_receive_queue;
	unsigned int skb_len;
	struct sk_buff *skb;
	bool ok = false;
	size_t len = 0;
	u32 n = 0;
	u8 *to;

	spin_lock(&queue->lock);
	/* Check first, so that a mismatch copies nothing out of bounds. */
	skb_queue_walk(queue, skb) {
		skb_len = amber_fq_skb_len(skb, stream);
		if (stream && !skb_len)
			continue;
		if (n == nr)
			break;
		if (UNIXCB(skb).fp)
			goto out_unlock;
		len += skb_len;
		n++;
	}
	if (n != nr || len != q->len)
		goto out_unlock;

	to = q->data;
	n = 0;
	skb_queue_walk(queue, skb) {
		skb_len = amber_fq_skb_len(skb, stream);
		if (stream && !skb_len)
			continue;
		if (n == nr)
			break;
		if (skb_copy_bits(skb, stream ? UNIXCB(skb).consumed : 0, to, skb_len))
			goto out_unlock;
		if (!stream)
			q->msg_len[n] = skb_len;
		to += skb_len;
		n++;
	}
	ok = true;
out_unlock:
	spin_unlock(&queue->lock);
	return ok;
}

/*
 * The receive queue of @sk. The socket's iolock keeps its readers (and
 * splice, which appends to the last stream skb) out; senders only append
 * whole skbs, under the queue's lock. Sizing, allocating (sleeps) and
 * copying are separate steps: if a sender outside the group changed the
 * queue's head in between (a datagram reconnect purges it), start over.
 */
static int amber_fq_unix_queue(struct amber_files_state *st,
			       struct amber_fileids *ids, const struct amber_fd *fd,
			       struct sock *sk, struct amber_err *e)
{
	bool stream = sk->sk_type == SOCK_STREAM;
	struct amber_fq *q = NULL;
	int tries, err = 0;
	size_t len;
	u32 nr;

	if (mutex_lock_killable(&unix_sk(sk)->iolock))
		return amber_fail(e, -EINTR,
				  amber_msg("fd %u: %s: interrupted waiting for the socket",
					    fd->num, fd->path));
	for (tries = 0; tries < AMBER_FQ_TRIES; tries++) {
		err = amber_fq_unix_size(sk, stream, fd, &nr, &len, e);
		if (err || !nr)
			goto out_unlock;
		err = amber_fq_charge(st, ids, fd, len, e);
		if (err)
			goto out_unlock;
		q = amber_fq_alloc(fd->ino, len, stream ? 0 : nr);
		if (!q) {
			amber_fileids_charge(ids, -(ssize_t)len);
			err = amber_fail(e, -ENOMEM,
					 amber_msg("fd %u: %s: out of memory for its %zu queued bytes",
						   fd->num, fd->path, len));
			goto out_unlock;
		}
		if (amber_fq_unix_copy(sk, stream, nr, q)) {
			amber_fq_add(st, q);
			goto out_unlock;
		}
		amber_fq_free(q);
		amber_fileids_charge(ids, -(ssize_t)len);
	}
	err = amber_fail(e, -EAGAIN,
			 amber_msg("fd %u: %s: its receive queue kept changing while it was read",
				   fd->num, fd->path));
out_unlock:
	mutex_unlock(&unix_sk(sk)->iolock);
	return err;
}

/*
 * The socket's attributes, and the refusals that need no look at its
 * queue: everything but connected or unnamed UNIX sockets.
 */
static int amber_fq_sock_attrs(struct amber_fd *fd, struct sock *sk,
			       struct amber_err *e)
{
	bool listening, bound;
	struct sock *peer;

	fd->sock_family = sk->sk_family;
	fd->sock_type = sk->sk_type;
	if (sk->sk_family != AF_UNIX)
		return amber_fq_refuse_family(fd, e);

	unix_state_lock(sk);
	listening = sk->sk_state == TCP_LISTEN;
	bound = unix_sk(sk)->addr;
	fd->shutdown = READ_ONCE(sk->sk_shutdown);
	peer = unix_peer(sk);
	if (peer)
		sock_hold(peer);
	unix_state_unlock(sk);
	if (peer) {
		/* 0 once the peer is closed: no inode to name. */
		fd->peer_ino = sock_i_ino(peer);
		sock_put(peer);
	}
	if (listening || bound)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: %s UNIX sockets are not supported",
					    fd->num, fd->path,
					    listening ? "listening" : "bound"));
	/* The peek position would be lost: recv(MSG_PEEK) would start over. */
	if (READ_ONCE(sk->sk_peek_off) >= 0)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: SO_PEEK_OFF is not supported",
					    fd->num, fd->path));
	return 0;
}

/* The socket of an open socket file, or NULL (an O_PATH fd is none). */
static struct sock *amber_fq_sock_of(struct file *file)
{
	struct socket *sock;

	if (!S_ISSOCK(file_inode(file)->i_mode))
		return NULL;
	sock = sock_from_file(file);
	return sock ? sock->sk : NULL;
}

int amber_fq_capture(struct amber_files_state *st, struct amber_fileids *ids,
		     struct amber_fd *fd, struct file *file, struct amber_err *e)
{
	struct pipe_inode_info *pipe;
	struct sock *sk;
	int claim, err;

	pipe = amber_fq_pipe_of(file);
	if (pipe)
		return amber_fq_pipe(st, ids, fd, file, pipe, e);
	sk = amber_fq_sock_of(file);
	if (!sk)
		return 0;
	err = amber_fq_sock_attrs(fd, sk, e);
	if (err)
		return err;
	claim = amber_fileids_claim(ids, file_inode(file));
	if (claim < 0)
		return amber_fail(e, claim, "out of memory for the file ids");
	return claim ? amber_fq_unix_queue(st, ids, fd, sk, e) : 0;
}

int amber_fq_precheck(unsigned int num, struct file *file, struct amber_err *e)
{
	struct amber_fd fd = { .num = num };
	struct sock *sk = amber_fq_sock_of(file);
	int err;

	if (!sk)
		return 0;
	fd.path = amber_path_dup(&file->f_path);
	if (IS_ERR(fd.path))
		return amber_fail(e, PTR_ERR(fd.path),
				  amber_msg("fd %u: cannot resolve its path", num));
	/* amber_msg() copied the path if it failed. */
	err = amber_fq_sock_attrs(&fd, sk, e);
	kfree(fd.path);
	return err;
}

/* ---- reply ---- */

/* One AMBER_A_QUEUE nest: INO, DATA, EOR. */
static size_t amber_fq_chunk_size(size_t len, bool eor)
{
	return NLA_HDRLEN + nla_total_size_64bit(sizeof(u64)) +
	       nla_total_size(len) + (eor ? nla_total_size(0) : 0);
}

static int amber_fq_fill_chunk(struct sk_buff *skb, u64 ino, const u8 *data,
			       size_t len, bool eor)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_A_QUEUE);

	if (!nest ||
	    nla_put_u64_64bit(skb, AMBER_QUEUE_INO, ino, AMBER_A_PAD) ||
	    nla_put(skb, AMBER_QUEUE_DATA, len, data) ||
	    (eor && nla_put_flag(skb, AMBER_QUEUE_EOR)))
		return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

/*
 * Puts @len bytes at @data as chunks of at most AMBER_QUEUE_CHUNK bytes
 * (a message's last with EOR, an empty message as one empty chunk), or
 * only adds their size to *@size when @skb is NULL.
 */
static int amber_fq_put(struct sk_buff *skb, size_t *size, u64 ino,
			const u8 *data, size_t len, bool msg)
{
	size_t off = 0, n;
	bool eor;

	do {
		n = min_t(size_t, len - off, AMBER_QUEUE_CHUNK);
		eor = msg && off + n == len;
		if (!skb)
			*size += amber_fq_chunk_size(n, eor);
		else if (amber_fq_fill_chunk(skb, ino, data + off, n, eor))
			return -EMSGSIZE;
		off += n;
	} while (off < len);
	return 0;
}

/* Both for amber_fq_fill() and amber_fq_size(): see amber_fq_put(). */
static int amber_fq_put_all(struct sk_buff *skb, size_t *size,
			    const struct amber_fq *q)
{
	const u8 *data = q->data;
	u32 i;

	if (!q->nr_msgs)
		return q->len ? amber_fq_put(skb, size, q->ino, data, q->len, false) : 0;
	for (i = 0; i < q->nr_msgs; i++) {
		if (amber_fq_put(skb, size, q->ino, data, q->msg_len[i], true))
			return -EMSGSIZE;
		data += q->msg_len[i];
	}
	return 0;
}

int amber_fq_fill(struct sk_buff *skb, const struct amber_fq *q)
{
	return amber_fq_put_all(skb, NULL, q);
}

size_t amber_fq_size(const struct amber_fq *q)
{
	size_t size = 0;

	amber_fq_put_all(NULL, &size, q);
	return size;
}
