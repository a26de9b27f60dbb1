// SPDX-License-Identifier: GPL-2.0
/*
 * Sockets: UNIX sockets' attributes (family, type, peer, shutdown) and the
 * bytes queued in them, read without consuming anything; every other
 * socket is refused. The tool recreates the pair and sends the bytes back.
 *
 * A queue is captured once per inode and request (the first process of the
 * group to capture an fd of it carries it, see amber_fileids_claim()),
 * under the socket's iolock its readers take (its receive queue's spinlock
 * only to walk the list). Writers outside the group may still append; the
 * group's own are stopped.
 *
 * Refused, by fd number and name: sockets other than AF_UNIX, bound or
 * listening UNIX sockets, queued SCM_RIGHTS (the files in flight would have
 * to be checkpointed too), out-of-band data, SO_PEEK_OFF, and more than
 * AMBER_QUEUE_MAX_BYTES queued in a request or AMBER_FILES_PROC_QUEUE_MAX in
 * one process.
 */
#include <linux/fs.h>
#include <linux/mutex.h>
#include <linux/net.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <net/af_unix.h>
#include <net/sock.h>

#include <linux/amber.h>

#include "fdtable.h"
#include "path.h"
#include "unix.h"

/* Retries when a socket's queue changes between sizing it and copying it. */
#define AMBER_UNIX_TRIES	4

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

static int amber_unix_refuse_family(const struct amber_fd *fd, struct amber_err *e)
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
static unsigned int amber_unix_skb_len(const struct sk_buff *skb, bool stream)
{
	return stream ? skb->len - UNIXCB(skb).consumed : skb->len;
}

/*
 * Sizes the receive queue of @sk: messages (skbs with unread bytes for a
 * stream) and bytes. Fails on SCM_RIGHTS in flight and out-of-band data.
 */
static int amber_unix_size(struct sock *sk, bool stream, const struct amber_fd *fd,
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
		if (stream && !amber_unix_skb_len(skb, stream))
			continue;
		(*nr)++;
		*len += amber_unix_skb_len(skb, stream);
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
static bool amber_unix_copy(struct sock *sk, bool stream, u32 nr,
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
		skb_len = amber_unix_skb_len(skb, stream);
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
		skb_len = amber_unix_skb_len(skb, stream);
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
static int amber_unix_queue(struct amber_files_state *st,
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
	for (tries = 0; tries < AMBER_UNIX_TRIES; tries++) {
		err = amber_unix_size(sk, stream, fd, &nr, &len, e);
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
		if (amber_unix_copy(sk, stream, nr, q)) {
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
static int amber_unix_attrs(struct amber_fd *fd, struct sock *sk,
			    struct amber_err *e)
{
	bool listening, bound;
	struct sock *peer;

	fd->sock_family = sk->sk_family;
	fd->sock_type = sk->sk_type;
	if (sk->sk_family != AF_UNIX)
		return amber_unix_refuse_family(fd, e);

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
static struct sock *amber_sock_of(struct file *file)
{
	struct socket *sock;

	if (!S_ISSOCK(file_inode(file)->i_mode))
		return NULL;
	sock = sock_from_file(file);
	return sock ? sock->sk : NULL;
}

int amber_unix_capture(struct amber_files_state *st, struct amber_fileids *ids,
		       struct amber_fd *fd, struct file *file, struct amber_err *e)
{
	struct sock *sk;
	int claim, err;

	sk = amber_sock_of(file);
	if (!sk)
		return 0;
	err = amber_unix_attrs(fd, sk, e);
	if (err)
		return err;
	claim = amber_fileids_claim(ids, file_inode(file));
	if (claim < 0)
		return amber_fail(e, claim, "out of memory for the file ids");
	return claim ? amber_unix_queue(st, ids, fd, sk, e) : 0;
}

int amber_unix_precheck(unsigned int num, struct file *file, struct amber_err *e)
{
	struct amber_fd fd = { .num = num };
	struct sock *sk = amber_sock_of(file);
	int err;

	if (!sk)
		return 0;
	fd.path = amber_path_dup(&file->f_path);
	if (IS_ERR(fd.path))
		return amber_fail(e, PTR_ERR(fd.path),
				  amber_msg("fd %u: cannot resolve its path", num));
	/* amber_msg() copied the path if it failed. */
	err = amber_unix_attrs(&fd, sk, e);
	kfree(fd.path);
	return err;
}

