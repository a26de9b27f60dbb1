// SPDX-License-Identifier: GPL-2.0
/*
 * Sockets: UNIX sockets' attributes (family, type, peer, shutdown, names,
 * the bound socket file, a listener's backlog and the connections waiting
 * in it, options) and the bytes queued in them, read without consuming
 * anything; every other socket is refused. The tool recreates the sockets
 * and sends the bytes back.
 *
 * A queue is captured once per inode and request (the first process of the
 * group to capture an fd of it carries it, see amber_fileids_claim()),
 * under the socket's iolock its readers take (its receive queue's spinlock
 * only to walk the list). Writers outside the group may still append; the
 * group's own are stopped. The files in flight in it (SCM_RIGHTS) are held
 * while it is copied and described once the iolock is dropped (a pipe's
 * mutex is taken before a socket's iolock by splice()); the tools decide
 * which of them they can restore.
 *
 * Refused, by fd number and name: sockets other than AF_UNIX, a name
 * unlinked from the file system, more than AMBER_UNIX_EMBRYOS_MAX
 * connections waiting in a backlog, more files in flight (SCM_RIGHTS) than
 * AMBER_QUEUE_FILES_MAX in one process or descriptions of them longer than
 * AMBER_QUEUE_FILES_MSG_MAX in one message, queued SCM_CREDENTIALS
 * (bytes sent to a connection waiting in a backlog always carry them) but
 * those of a live process of a --tree checkpoint,
 * a queued message the restore could not send from the same sender,
 * out-of-band data, SO_PEEK_OFF, and more than AMBER_QUEUE_MAX_BYTES
 * queued in a request or AMBER_FILES_PROC_QUEUE_MAX in one process.
 */
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/mutex.h>
#include <linux/net.h>
#include <linux/pid.h>
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

/*
 * More than the attributes of a file in flight's description besides its
 * path take (AMBER_QUEUE_FILE: nine scalars, a file id, a socket's or a
 * pipe's few: about 170 bytes), to bound a message's descriptions by
 * AMBER_QUEUE_FILES_MSG_MAX, so that they fit in one nest with the
 * message's last AMBER_QUEUE_CHUNK of data.
 */
#define AMBER_UNIX_FLIGHT_ATTRS	192

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

/* Files in flight in @skb (SCM_RIGHTS). */
static u32 amber_unix_skb_files(const struct sk_buff *skb)
{
	return UNIXCB(skb).fp ? UNIXCB(skb).fp->count : 0;
}

/*
 * Why the queued @skb of @sk (connected to @peer, NULL if never) cannot be
 * sent again at restore, or NULL: a sender the restored socket's sender
 * would not be (restore sends a connected socket's queue from its peer, an
 * unconnected one's from an unnamed socket). Credentials are
 * amber_unix_skb_cred()'s.
 */
static const char *amber_unix_skb_refusal(const struct sk_buff *skb,
					  const struct sock *peer)
{
	if (peer && skb->sk != peer)
		return "a message queued from another socket than its peer is not supported";
	/* Acquire: pairs with the release that publishes a bound address. */
	if (!peer && skb->sk && smp_load_acquire(&unix_sk(skb->sk)->addr))
		return "a message queued from a named socket is not supported";
	return NULL;
}

/*
 * The credentials @skb carries (SCM_CREDENTIALS, or attached because an
 * end had SO_PASSCRED) into @c: pid 0 when none. False when the restore
 * could not send them again: their pid is no live process of a --tree
 * request (the restore creates those before any of them runs, and only a
 * pid that exists can be sent; any other could be gone or reused by then).
 */
static bool amber_unix_skb_cred(struct amber_fileids *ids, const struct sk_buff *skb,
				struct amber_fq_cred *c)
{
	struct user_namespace *ns = current_user_ns();

	c->pid = 0;
	if (!UNIXCB(skb).pid)
		return true;
	if (!amber_fileids_tree(ids))
		return false;
	c->pid = amber_fileids_member(ids, UNIXCB(skb).pid);
	c->uid = from_kuid_munged(ns, UNIXCB(skb).uid);
	c->gid = from_kgid_munged(ns, UNIXCB(skb).gid);
	return c->pid;
}

/* What amber_unix_size() found in a queue. */
struct amber_unix_sizes {
	u32 nr;			/* messages: skbs with unread bytes for a stream */
	size_t len;		/* their bytes */
	bool creds;		/* one of them carries credentials */
	u32 files;		/* files in flight in them */
	struct pid *bad_cred;	/* the first pid amber_unix_skb_cred() refuses */
};

/* Refuses the credentials of z->bad_cred, in @fd (@embryo: of that connection). */
static int amber_unix_refuse_cred(struct amber_fileids *ids, const struct amber_fd *fd,
				  u32 embryo, const struct amber_unix_sizes *z,
				  struct amber_err *e)
{
	const char *why = amber_fileids_tree(ids) ?
		", not a live process of the checkpoint: not supported" :
		", which only a --tree checkpoint restores";
	pid_t nr = pid_vnr(z->bad_cred);
	char who[32];

	if (nr)
		snprintf(who, sizeof(who), "pid %d", nr);
	else
		strscpy(who, "an exited process", sizeof(who));
	if (embryo)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: connection %u waiting in its accept backlog holds bytes with credentials (SCM_CREDENTIALS) of %s%s",
					    fd->num, fd->path, embryo, who, why));
	return amber_fail(e, -EOPNOTSUPP,
			  amber_msg("fd %u: %s: a queued message carries credentials (SCM_CREDENTIALS) of %s%s",
				    fd->num, fd->path, who, why));
}

/*
 * Sizes the receive queue of @sk (@embryo: the connection waiting in a
 * backlog it is) into @z. Fails on what amber_unix_skb_refusal() and
 * amber_unix_skb_cred() refuse, and out-of-band data.
 */
static int amber_unix_size(struct amber_fileids *ids, struct sock *sk, struct sock *peer,
			   bool stream, const struct amber_fd *fd, u32 embryo,
			   struct amber_unix_sizes *z, struct amber_err *e)
{
	struct sk_buff_head *queue = &sk->sk_receive_queue;
	const char *refusal = NULL;
	struct amber_fq_cred c;
	struct sk_buff *skb;
	bool oob = false;
	int err = 0;

	memset(z, 0, sizeof(*z));
	spin_lock(&queue->lock);
#if IS_ENABLED(CONFIG_AF_UNIX_OOB)
	oob = READ_ONCE(unix_sk(sk)->oob_skb);
#endif
	skb_queue_walk(queue, skb) {
		if (stream && !amber_unix_skb_len(skb, stream))
			continue;
		if (!refusal)
			refusal = amber_unix_skb_refusal(skb, peer);
		if (!z->bad_cred && !amber_unix_skb_cred(ids, skb, &c))
			z->bad_cred = get_pid(UNIXCB(skb).pid);
		z->creds |= !!UNIXCB(skb).pid;
		z->files += amber_unix_skb_files(skb);
		z->nr++;
		z->len += amber_unix_skb_len(skb, stream);
	}
	spin_unlock(&queue->lock);
	if (refusal)
		err = amber_fail(e, -EOPNOTSUPP,
				 amber_msg("fd %u: %s: %s", fd->num, fd->path, refusal));
	else if (z->bad_cred)
		err = amber_unix_refuse_cred(ids, fd, embryo, z, e);
	else if (oob)
		err = amber_fail(e, -EOPNOTSUPP,
				 amber_msg("fd %u: %s: queued out-of-band data (MSG_OOB) is not supported",
					   fd->num, fd->path));
	put_pid(z->bad_cred);
	z->bad_cred = NULL;
	return err;
}

/*
 * Holds the files in flight in @skb, the @n-th message of @q, in q->flight
 * from *@f on: false when they are more than @q was sized for.
 */
static bool amber_unix_hold_files(const struct sk_buff *skb, struct amber_fq *q,
				  u32 n, u32 *f)
{
	const struct scm_fp_list *fpl = UNIXCB(skb).fp;
	u32 i, count = amber_unix_skb_files(skb);

	if (!count)
		return true;
	if (!q->msg_files || count > q->nr_files - *f)
		return false;
	q->msg_files[n] = count;
	for (i = 0; i < count; i++)
		q->flight[(*f)++] = get_file(fpl->fp[i]);
	return true;
}

/*
 * Copies the first @nr skbs with unread bytes of @sk's receive queue to @q,
 * which was sized for them (with q->cred, their credentials too; with
 * q->flight, references to their files in flight). False, with nothing
 * usable in @q, when the queue no longer starts with skbs of those sizes
 * and kinds.
 */
static bool amber_unix_copy(struct amber_fileids *ids, struct sock *sk, struct sock *peer,
			    bool stream, u32 nr, struct amber_fq *q)
{
	struct sk_buff_head *queue = &sk->sk_receive_queue;
	struct amber_fq_cred c;
	unsigned int skb_len;
	struct sk_buff *skb;
	bool ok = false;
	size_t len = 0;
	u32 n = 0, f = 0;
	u8 *to;

	spin_lock(&queue->lock);
	/* Check first, so that a mismatch copies nothing out of bounds. */
	skb_queue_walk(queue, skb) {
		skb_len = amber_unix_skb_len(skb, stream);
		if (stream && !skb_len)
			continue;
		if (n == nr)
			break;
		if (amber_unix_skb_refusal(skb, peer) || !amber_unix_skb_cred(ids, skb, &c) ||
		    (c.pid && !q->cred))
			goto out_unlock;
		len += skb_len;
		f += amber_unix_skb_files(skb);
		n++;
	}
	if (n != nr || len != q->len || f != q->nr_files)
		goto out_unlock;

	to = q->data;
	n = 0;
	f = 0;
	skb_queue_walk(queue, skb) {
		skb_len = amber_unix_skb_len(skb, stream);
		if (stream && !skb_len)
			continue;
		if (n == nr)
			break;
		if (skb_copy_bits(skb, stream ? UNIXCB(skb).consumed : 0, to, skb_len))
			goto out_unlock;
		if (q->nr_msgs)
			q->msg_len[n] = skb_len;
		if (q->cred)
			amber_unix_skb_cred(ids, skb, &q->cred[n]);
		if (!amber_unix_hold_files(skb, q, n, &f))
			goto out_unlock;	/* amber_fq_free() drops them */
		to += skb_len;
		n++;
	}
	ok = true;
out_unlock:
	spin_unlock(&queue->lock);
	return ok;
}

/*
 * A queue of @z for @fd's inode: a stream's bytes concatenate unless one
 * of its skbs carries credentials or files (a reader sees each skb's then).
 */
static struct amber_fq *amber_unix_fq_alloc(const struct amber_fd *fd, bool stream,
					    u32 embryo, const struct amber_unix_sizes *z)
{
	struct amber_fq *q;

	q = amber_fq_alloc(fd->ino, z->len,
			   stream && !z->creds && !z->files ? 0 : z->nr);
	if (!q)
		return NULL;
	q->embryo = embryo;
	if (z->creds) {
		q->cred = kvcalloc(z->nr, sizeof(*q->cred), GFP_KERNEL_ACCOUNT);
		if (!q->cred)
			goto err_free;
	}
	if (z->files) {
		q->nr_files = z->files;
		q->msg_files = kvcalloc(z->nr, sizeof(*q->msg_files), GFP_KERNEL_ACCOUNT);
		q->flight = kvcalloc(z->files, sizeof(*q->flight), GFP_KERNEL_ACCOUNT);
		q->files = kvcalloc(z->files, sizeof(*q->files), GFP_KERNEL_ACCOUNT);
		if (!q->msg_files || !q->flight || !q->files)
			goto err_free;
	}
	return q;

err_free:
	amber_fq_free(q);
	return NULL;
}

/*
 * Describes the files in flight of @q, a queue of @fd's socket captured
 * into @st, and drops the references the copy took. Their descriptions
 * count as queued bytes, and a message's are bounded.
 */
static int amber_unix_describe_flight(struct amber_files_state *st,
				      struct amber_fileids *ids, const struct amber_fd *fd,
				      struct amber_fq *q, struct amber_err *e)
{
	const struct amber_fd *f = q->files;
	size_t bytes = 0, msg;
	u32 n, i;
	int err;

	for (i = 0; i < q->nr_files; i++) {
		err = amber_fd_describe_flight(st, ids, fd, &q->files[i], q->flight[i], e);
		fput(q->flight[i]);
		q->flight[i] = NULL;
		if (err)
			return err;
	}
	for (n = 0; n < q->nr_msgs; n++) {
		for (msg = 0, i = 0; i < q->msg_files[n]; i++, f++)
			msg += strlen(f->path) + 1 + AMBER_UNIX_FLIGHT_ATTRS;
		if (msg > AMBER_QUEUE_FILES_MSG_MAX)
			return amber_fail(e, -E2BIG,
					  amber_msg("fd %u: %s: queued message %u carries files in flight (SCM_RIGHTS) whose descriptions take more than %u bytes",
						    fd->num, fd->path, n + 1,
						    AMBER_QUEUE_FILES_MSG_MAX));
		bytes += msg;
	}
	err = amber_fq_charge(st, ids, fd, bytes, e);
	if (!err)
		st->queue_bytes += bytes;
	return err;
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
			    struct sock *sk, u32 embryo, struct amber_err *e)
{
	bool stream = sk->sk_type == SOCK_STREAM;
	struct sock *peer = unix_peer_get(sk);
	struct amber_unix_sizes z;
	struct amber_fq *q = NULL;
	int tries, err = 0;
	bool got = false;

	if (mutex_lock_killable(&unix_sk(sk)->iolock)) {
		err = amber_fail(e, -EINTR,
				 amber_msg("fd %u: %s: interrupted waiting for the socket",
					   fd->num, fd->path));
		goto out_put;
	}
	for (tries = 0; tries < AMBER_UNIX_TRIES; tries++) {
		err = amber_unix_size(ids, sk, peer, stream, fd, embryo, &z, e);
		if (err || !z.nr)
			goto out_unlock;
		if (z.files > AMBER_QUEUE_FILES_MAX - st->queue_files) {
			err = amber_fail(e, -E2BIG,
					 amber_msg("fd %u: %s: more than %u files in flight (SCM_RIGHTS) in the queues of one process",
						   fd->num, fd->path, AMBER_QUEUE_FILES_MAX));
			goto out_unlock;
		}
		err = amber_fq_charge(st, ids, fd, z.len, e);
		if (err)
			goto out_unlock;
		q = amber_unix_fq_alloc(fd, stream, embryo, &z);
		if (!q) {
			amber_fileids_charge(ids, -(ssize_t)z.len);
			err = amber_fail(e, -ENOMEM,
					 amber_msg("fd %u: %s: out of memory for its %zu queued bytes",
						   fd->num, fd->path, z.len));
			goto out_unlock;
		}
		if (amber_unix_copy(ids, sk, peer, stream, z.nr, q)) {
			/* @st owns it from here, and frees it on failure. */
			amber_fq_add(st, q);
			got = true;
			goto out_unlock;
		}
		amber_fq_free(q);
		amber_fileids_charge(ids, -(ssize_t)z.len);
	}
	err = amber_fail(e, -EAGAIN,
			 amber_msg("fd %u: %s: its receive queue kept changing while it was read",
				   fd->num, fd->path));
out_unlock:
	mutex_unlock(&unix_sk(sk)->iolock);
	if (got && q->nr_files)
		err = amber_unix_describe_flight(st, ids, fd, q, e);
out_put:
	if (peer)
		sock_put(peer);
	return err;
}

/* Copies the sun_path bytes of @addr (NULL: unnamed) to @buf, of UNIX_PATH_MAX. */
static u8 amber_unix_copy_name(char *buf, const struct unix_address *addr)
{
	int len;

	if (!addr)
		return 0;
	len = addr->len - (int)offsetof(struct sockaddr_un, sun_path);
	len = clamp(len, 0, UNIX_PATH_MAX);
	memcpy(buf, addr->name->sun_path, len);
	return len;
}

/*
 * Whether @sk's name came from accept() rather than bind(): an accepted
 * socket shares its listener's address but is in no bind table, neither
 * the file system's (sk_bind_node) nor the abstract one (whose hashes are
 * above UNIX_HASH_MOD; unbound sockets hash below).
 */
static bool amber_unix_accepted(struct sock *sk, const struct unix_address *addr)
{
	if (addr->name->sun_path[0])
		return hlist_unhashed(&sk->sk_bind_node);
	return READ_ONCE(sk->sk_hash) <= UNIX_HASH_MOD;
}

/* Microseconds of a socket timeout, as getsockopt() reports it; 0 = none. */
static u64 amber_sock_timeo(long timeo)
{
	if (timeo == MAX_SCHEDULE_TIMEOUT)
		return 0;
	return (u64)(timeo / HZ) * USEC_PER_SEC +
	       (u64)(timeo % HZ) * USEC_PER_SEC / HZ;
}

static void amber_sock_options(struct amber_unix_fd *u, struct sock *sk)
{
	struct socket *sock = sk->sk_socket;

	u->rcvbuf = READ_ONCE(sk->sk_rcvbuf);
	u->sndbuf = READ_ONCE(sk->sk_sndbuf);
	u->userlocks = sk->sk_userlocks & (SOCK_SNDBUF_LOCK | SOCK_RCVBUF_LOCK);
	u->rcvlowat = READ_ONCE(sk->sk_rcvlowat);
	u->rcvtimeo = amber_sock_timeo(READ_ONCE(sk->sk_rcvtimeo));
	u->sndtimeo = amber_sock_timeo(READ_ONCE(sk->sk_sndtimeo));
	u->passcred = sock && test_bit(SOCK_PASSCRED, &sock->flags);
	u->passsec = sock && test_bit(SOCK_PASSSEC, &sock->flags);
}

/*
 * The socket file of @sk, bound to a name in the file system: its absolute
 * path (kmalloc'ed, in *@path) and inode attributes. Refuses a name whose
 * file was unlinked: nothing could bind it again.
 */
static int amber_unix_bound_file(struct amber_fd *fd, struct sock *sk,
				 struct amber_unix_fd *attrs, char **path,
				 struct amber_err *e)
{
	struct path p;
	struct inode *inode;
	int err = 0;

	unix_state_lock(sk);
	p = unix_sk(sk)->path;
	path_get(&p);
	unix_state_unlock(sk);
	if (!p.dentry)
		goto out;	/* cannot be: a file system name has a path */
	if (d_unlinked(p.dentry)) {
		err = amber_fail(e, -EOPNOTSUPP,
				 amber_msg("fd %u: %s: its name %.*s was unlinked from the file system",
					   fd->num, fd->path, (int)attrs->name_len, attrs->name));
		goto out;
	}
	inode = d_inode(p.dentry);
	attrs->file_mode = inode->i_mode;
	attrs->file_uid = i_uid_read(inode);
	attrs->file_gid = i_gid_read(inode);
	*path = amber_path_dup(&p);
	if (IS_ERR(*path)) {
		err = amber_fail(e, PTR_ERR(*path),
				 amber_msg("fd %u: %s: cannot resolve the path of its name",
					   fd->num, fd->path));
		*path = NULL;
	}
out:
	path_put(&p);
	return err;
}

/*
 * Holds the connections waiting in listener @sk's backlog (their embryo
 * sockets, in accept() order) in @out, at most AMBER_UNIX_EMBRYOS_MAX;
 * returns how many there are, which may be more.
 */
static u32 amber_unix_embryos(struct sock *sk, struct sock **out)
{
	struct sk_buff_head *queue = &sk->sk_receive_queue;
	struct sk_buff *skb;
	u32 n = 0;

	spin_lock(&queue->lock);
	skb_queue_walk(queue, skb) {
		if (n < AMBER_UNIX_EMBRYOS_MAX && skb->sk) {
			sock_hold(skb->sk);
			out[n] = skb->sk;
		}
		n++;
	}
	spin_unlock(&queue->lock);
	return n;
}

static void amber_unix_put_embryos(struct sock **embryos, u32 n)
{
	u32 i;

	for (i = 0; i < min_t(u32, n, AMBER_UNIX_EMBRYOS_MAX); i++)
		if (embryos[i])
			sock_put(embryos[i]);
}

/*
 * Fills a kzalloc()ed fd->un from @attrs, the file's @path (maybe NULL)
 * and, for a listener, the clients of the connections in its backlog.
 */
static int amber_unix_keep(struct amber_fd *fd, struct sock *sk,
			   const struct amber_unix_fd *attrs, const char *path,
			   struct amber_err *e)
{
	size_t len = path ? strlen(path) + 1 : 1;
	struct sock **embryos = NULL, *client;
	u32 n = 0, i;

	if (attrs->listening) {
		embryos = kcalloc(AMBER_UNIX_EMBRYOS_MAX, sizeof(*embryos), GFP_KERNEL);
		if (!embryos)
			goto err_nomem;
		n = amber_unix_embryos(sk, embryos);
		if (n > AMBER_UNIX_EMBRYOS_MAX) {
			amber_unix_put_embryos(embryos, n);
			kfree(embryos);
			return amber_fail(e, -EOPNOTSUPP,
					  amber_msg("fd %u: %s: more than %u connections wait in its accept backlog",
						    fd->num, fd->path, AMBER_UNIX_EMBRYOS_MAX));
		}
	}
	fd->un = kzalloc(sizeof(*fd->un) + n * sizeof(u64) + len, GFP_KERNEL);
	if (!fd->un) {
		amber_unix_put_embryos(embryos, n);
		kfree(embryos);
		goto err_nomem;
	}
	*fd->un = *attrs;
	fd->un->nr_embryos = n;
	fd->un->embryos = (u64 *)(fd->un + 1);
	fd->un->path = (char *)(fd->un->embryos + n);
	if (path)
		memcpy(fd->un->path, path, len);
	for (i = 0; i < n; i++) {
		client = unix_peer_get(embryos[i]);
		/* 0 once the client is closed. */
		fd->un->embryos[i] = client ? sock_i_ino(client) : 0;
		if (client)
			sock_put(client);
	}
	amber_unix_put_embryos(embryos, n);
	kfree(embryos);
	return 0;

err_nomem:
	return amber_fail(e, -ENOMEM,
			  amber_msg("fd %u: %s: out of memory", fd->num, fd->path));
}

/*
 * The socket's attributes, and the refusals that need no look at its
 * queue: other families, a file name unlinked, more connections waiting
 * in a listener's backlog than are captured, SO_PEEK_OFF.
 */
static int amber_unix_attrs(struct amber_fd *fd, struct sock *sk,
			    struct amber_err *e)
{
	struct amber_unix_fd attrs = {};
	struct unix_address *addr;
	struct sock *peer;
	char *path = NULL;
	int err;

	fd->sock_family = sk->sk_family;
	fd->sock_type = sk->sk_type;
	if (sk->sk_family != AF_UNIX)
		return amber_unix_refuse_family(fd, e);

	unix_state_lock(sk);
	attrs.listening = sk->sk_state == TCP_LISTEN;
	if (attrs.listening)
		attrs.backlog = READ_ONCE(sk->sk_max_ack_backlog);
	/* Acquire: pairs with the release in bind(), autobind and accept(). */
	addr = smp_load_acquire(&unix_sk(sk)->addr);
	attrs.name_len = amber_unix_copy_name(attrs.name, addr);
	attrs.accepted = addr && amber_unix_accepted(sk, addr);
	fd->shutdown = READ_ONCE(sk->sk_shutdown);
	peer = unix_peer(sk);
	if (peer)
		sock_hold(peer);
	attrs.no_peer = !peer;
	unix_state_unlock(sk);
	amber_sock_options(&attrs, sk);
	if (peer) {
		/* 0 once the peer is closed: no inode to name. */
		fd->peer_ino = sock_i_ino(peer);
		/* Acquire: pairs with the release that publishes its address. */
		addr = smp_load_acquire(&unix_sk(peer)->addr);
		attrs.peer_name_len = amber_unix_copy_name(attrs.peer_name, addr);
		sock_put(peer);
	}
	/* The peek position would be lost: recv(MSG_PEEK) would start over. */
	if (READ_ONCE(sk->sk_peek_off) >= 0)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: SO_PEEK_OFF is not supported",
					    fd->num, fd->path));
	if (attrs.name_len && attrs.name[0] && !attrs.accepted) {
		err = amber_unix_bound_file(fd, sk, &attrs, &path, e);
		if (err)
			return err;
	}
	err = amber_unix_keep(fd, sk, &attrs, path, e);
	kfree(path);
	return err;
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

/*
 * The queues of the connections waiting in listener @sk's backlog (the
 * listener's own receive queue holds only them), each keyed by its place.
 */
static int amber_unix_embryo_queues(struct amber_files_state *st,
				    struct amber_fileids *ids, const struct amber_fd *fd,
				    struct sock *sk, struct amber_err *e)
{
	struct sock **embryos;
	int err = 0;
	u32 n, i;

	embryos = kcalloc(AMBER_UNIX_EMBRYOS_MAX, sizeof(*embryos), GFP_KERNEL);
	if (!embryos)
		return amber_fail(e, -ENOMEM,
				  amber_msg("fd %u: %s: out of memory", fd->num, fd->path));
	n = amber_unix_embryos(sk, embryos);
	/* More than were listed: one connected since; it will not be restored. */
	for (i = 0; i < min_t(u32, n, fd->un->nr_embryos) && !err; i++)
		if (embryos[i])
			err = amber_unix_queue(st, ids, fd, embryos[i], i + 1, e);
	amber_unix_put_embryos(embryos, n);
	kfree(embryos);
	return err;
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
	if (!claim)
		return 0;
	if (fd->un && fd->un->listening)
		return amber_unix_embryo_queues(st, ids, fd, sk, e);
	return amber_unix_queue(st, ids, fd, sk, 0, e);
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
	kfree(fd.un);
	kfree(fd.path);
	return err;
}

