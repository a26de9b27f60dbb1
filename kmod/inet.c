// SPDX-License-Identifier: GPL-2.0
/*
 * TCP and UDP sockets over IPv4 and IPv6. The module has the struct sock
 * in hand, so it reads a connection's state straight from struct tcp_sock
 * under lock_sock (the lock the socket's own system calls take; packets
 * arriving meanwhile wait in its backlog): sequence numbers, window,
 * negotiated options, timestamp clock, and the bytes of its send queue
 * (written, not yet acknowledged) and receive queue (not yet read), copied
 * without consuming anything. A checkpoint that lets the target run on
 * leaves its sockets untouched. With a held checkpoint (--kill) each
 * connection is held first (nethold.c) and left in repair mode, so that the
 * kill closes it without a FIN or RST. The tool rebuilds each connection
 * with the kernel's TCP_REPAIR interface (userspace/restore/); the
 * peer's FIN of a half-closed one with amber_inet_peer_fin(), which no
 * repair option does. A listener's waiting connections (its accept queue)
 * are captured like established ones; the tool rebuilds each and hands it
 * back with amber_inet_tcp_graft(), which no system call does. See
 * design.md, "TCP and UDP sockets".
 *
 * Refused, by fd number and name: other protocols (raw, SCTP, MPTCP, ICMP,
 * UDP-Lite), TCP states other than LISTEN, CLOSE, ESTABLISHED and the
 * half-closed ones (FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING), a listener
 * with more than AMBER_INET_CHILDREN_MAX connections waiting in its accept
 * queue or with one that is not ESTABLISHED (reset, or closed by its peer),
 * has bytes to send or came by TCP Fast Open, urgent data, a socket
 * already in repair mode, SO_BINDTODEVICE, IP_TOS / IPV6_TCLASS, multicast
 * memberships, the options of amber_inet_unkept_option(); and queues
 * beyond the request's bounds.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/memcontrol.h>
#include <linux/net.h>
#include <linux/security.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/tcp.h>
#include <net/inet_connection_sock.h>
#include <net/inet_sock.h>
#include <net/ipv6.h>
#include <net/sock.h>
#include <net/tcp.h>

#include <linux/amber.h>

#include "fdtable.h"
#include "inet.h"
#include "nethold.h"
#include "path.h"

static const char *amber_tcp_state_name(int state)
{
	static const char *const names[] = {
		[TCP_ESTABLISHED] = "ESTABLISHED", [TCP_SYN_SENT] = "SYN_SENT",
		[TCP_SYN_RECV] = "SYN_RECV", [TCP_FIN_WAIT1] = "FIN_WAIT1",
		[TCP_FIN_WAIT2] = "FIN_WAIT2", [TCP_TIME_WAIT] = "TIME_WAIT",
		[TCP_CLOSE] = "CLOSE", [TCP_CLOSE_WAIT] = "CLOSE_WAIT",
		[TCP_LAST_ACK] = "LAST_ACK", [TCP_LISTEN] = "LISTEN",
		[TCP_CLOSING] = "CLOSING", [TCP_NEW_SYN_RECV] = "NEW_SYN_RECV",
	};

	if (state > 0 && state < ARRAY_SIZE(names) && names[state])
		return names[state];
	return "?";
}

/* A connection: established, or half-closed by either side or both. */
static bool amber_tcp_conn_state(int state)
{
	return (1 << state) & (TCPF_ESTABLISHED | TCPF_FIN_WAIT1 | TCPF_FIN_WAIT2 |
			       TCPF_CLOSE_WAIT | TCPF_LAST_ACK | TCPF_CLOSING);
}

/* Our FIN is in the sequence space (write_seq counts it). */
static bool amber_tcp_fin_sent(int state)
{
	return (1 << state) & (TCPF_FIN_WAIT1 | TCPF_FIN_WAIT2 | TCPF_LAST_ACK | TCPF_CLOSING);
}

/* The peer's FIN was received (rcv_nxt counts it). */
static bool amber_tcp_fin_rcvd(int state)
{
	return (1 << state) & (TCPF_CLOSE_WAIT | TCPF_LAST_ACK | TCPF_CLOSING);
}

static struct sock *amber_inet_sock_of(struct file *file)
{
	struct socket *sock;

	if (!S_ISSOCK(file_inode(file)->i_mode))
		return NULL;
	sock = sock_from_file(file);
	if (!sock || !sock->sk)
		return NULL;
	if (sock->sk->sk_family != AF_INET && sock->sk->sk_family != AF_INET6)
		return NULL;
	return sock->sk;
}

static const char *amber_af(const struct sock *sk)
{
	return sk->sk_family == AF_INET ? "AF_INET" : "AF_INET6";
}

/*
 * The name of an option the program set that restore does not set again,
 * or NULL. Read without the lock: a program changing it concurrently races
 * with the checkpoint anyway.
 */
static const char *amber_inet_unkept_option(struct sock *sk)
{
	const struct inet_sock *inet = inet_sk(sk);

	if (inet->uc_ttl != -1)
		return "IP_TTL";
	if (amber_inet_cmsg_flags(sk))
		return "IP_PKTINFO / IP_RECV* (control messages)";
	if (amber_inet_freebind(sk) || amber_inet_transparent(sk))
		return "IP_FREEBIND / IP_TRANSPARENT";
	if (sock_flag(sk, SOCK_BROADCAST))
		return "SO_BROADCAST";
	if (READ_ONCE(sk->sk_rcvlowat) != 1)
		return "SO_RCVLOWAT";
#if IS_ENABLED(CONFIG_IPV6)
	if (sk->sk_family == AF_INET6 &&
	    (inet6_sk(sk)->hop_limit != -1 || inet6_sk(sk)->rxopt.all))
		return "IPV6_UNICAST_HOPS / IPV6_RECV* (control messages)";
#endif
	if (sk->sk_protocol == IPPROTO_TCP) {
		const struct tcp_sock *tp = tcp_sk(sk);
		const struct inet_connection_sock *icsk = inet_csk(sk);

		if (READ_ONCE(tp->rx_opt.user_mss))
			return "TCP_MAXSEG";
		if (READ_ONCE(tp->notsent_lowat))
			return "TCP_NOTSENT_LOWAT";
		if (READ_ONCE(icsk->icsk_accept_queue.rskq_defer_accept))
			return "TCP_DEFER_ACCEPT";
		if (READ_ONCE(icsk->icsk_accept_queue.fastopenq.max_qlen))
			return "TCP_FASTOPEN";
	}
	return NULL;
}

/* What needs no lock: protocol, and options restore cannot set. */
static int amber_inet_check(const struct amber_fd *fd, struct sock *sk,
			    struct amber_err *e)
{
	const struct inet_sock *inet = inet_sk(sk);
	const char *opt;

	if (!((sk->sk_type == SOCK_STREAM && sk->sk_protocol == IPPROTO_TCP) ||
	      (sk->sk_type == SOCK_DGRAM && sk->sk_protocol == IPPROTO_UDP)))
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: %s sockets of type %u protocol %u are not supported (only TCP and UDP)",
					    fd->num, fd->path, amber_af(sk), sk->sk_type,
					    sk->sk_protocol));
	if (READ_ONCE(sk->sk_bound_dev_if))
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: a socket bound to a device (SO_BINDTODEVICE) is not supported",
					    fd->num, fd->path));
	if (READ_ONCE(inet->tos) ||
	    (sk->sk_family == AF_INET6 && READ_ONCE(inet6_sk(sk)->tclass)))
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: IP_TOS / IPV6_TCLASS is not supported",
					    fd->num, fd->path));
	if (READ_ONCE(inet->mc_list) ||
	    (sk->sk_family == AF_INET6 && READ_ONCE(inet6_sk(sk)->ipv6_mc_list)))
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: multicast group memberships are not supported",
					    fd->num, fd->path));
	opt = amber_inet_unkept_option(sk);
	if (opt)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: the socket option %s is not supported",
					    fd->num, fd->path, opt));
	if (sk->sk_protocol == IPPROTO_TCP) {
		int state = READ_ONCE(sk->sk_state);

		if (state != TCP_LISTEN && state != TCP_CLOSE && !amber_tcp_conn_state(state))
			return amber_fail(e, -EOPNOTSUPP,
					  amber_msg("fd %u: %s: TCP connections in state %s are not supported",
						    fd->num, fd->path,
						    amber_tcp_state_name(state)));
		if (tcp_sk(sk)->repair)
			return amber_fail(e, -EOPNOTSUPP,
					  amber_msg("fd %u: %s: a TCP socket in repair mode (TCP_REPAIR) is not supported",
						    fd->num, fd->path));
		if (state == TCP_LISTEN &&
		    READ_ONCE(sk->sk_ack_backlog) > AMBER_INET_CHILDREN_MAX)
			return amber_fail(e, -EOPNOTSUPP,
					  amber_msg("fd %u: %s: an %s listening socket with %u connections waiting in its accept queue is not supported (at most %u)",
						    fd->num, fd->path, amber_af(sk),
						    READ_ONCE(sk->sk_ack_backlog),
						    AMBER_INET_CHILDREN_MAX));
	}
	return 0;
}

/* Addresses, ports and socket options (sk locked). */
static void amber_inet_common(struct amber_inet *in, struct sock *sk)
{
	const struct inet_sock *inet = inet_sk(sk);

	in->proto = sk->sk_protocol;
	in->state = sk->sk_state;
	in->sport = ntohs(inet->inet_sport);
	in->dport = ntohs(inet->inet_dport);
	if (!inet->inet_num)
		in->sport = 0;
	in->bound_addr = sk->sk_userlocks & SOCK_BINDADDR_LOCK;
	in->alen = 4;
	memcpy(in->src, &inet->inet_rcv_saddr, 4);
	memcpy(in->dst, &inet->inet_daddr, 4);
#if IS_ENABLED(CONFIG_IPV6)
	if (sk->sk_family == AF_INET6) {
		in->alen = 16;
		memcpy(in->src, &sk->sk_v6_rcv_saddr, 16);
		memcpy(in->dst, &sk->sk_v6_daddr, 16);
		in->v6only = sk->sk_ipv6only;
	}
#endif
	in->reuseaddr = sk->sk_reuse != SK_NO_REUSE;
	in->reuseport = sk->sk_reuseport;
	in->mark = sk->sk_mark;
	in->priority = sk->sk_priority;
	if (sk->sk_userlocks & SOCK_SNDBUF_LOCK)
		in->sndbuf = sk->sk_sndbuf;
	if (sk->sk_userlocks & SOCK_RCVBUF_LOCK)
		in->rcvbuf = sk->sk_rcvbuf;
	in->linger_on = sock_flag(sk, SOCK_LINGER);
	in->linger = sk->sk_lingertime / HZ;
	in->keepalive = sock_flag(sk, SOCK_KEEPOPEN);
	if (sk->sk_protocol == IPPROTO_TCP) {
		const struct tcp_sock *tp = tcp_sk(sk);

		in->keepidle = tp->keepalive_time / HZ;
		in->keepintvl = tp->keepalive_intvl / HZ;
		in->keepcnt = tp->keepalive_probes;
		in->nodelay = tp->nonagle & TCP_NAGLE_OFF;
		in->cork = tp->nonagle & TCP_NAGLE_CORK;
		in->user_timeout = inet_csk(sk)->icsk_user_timeout;
		in->backlog = sk->sk_max_ack_backlog;
		strscpy(in->cc, inet_csk(sk)->icsk_ca_ops->name, sizeof(in->cc));
	}
}

/* Copies @skb's bytes in [@from, @to) (sequence space) into @q at their place. */
static int amber_tcp_copy(struct sk_buff *skb, u32 seq, u32 from, u32 to,
			  struct amber_fq *q, size_t *covered)
{
	u32 start = seq, end = seq + skb->len;
	int err;

	if (before(start, from))
		start = from;
	if (after(end, to))
		end = to;
	if (!before(start, end))
		return 0;
	if (end - from > q->len)
		return -EFAULT;
	err = skb_copy_bits(skb, start - seq, q->data + (start - from), end - start);
	if (err)
		return err;
	*covered += end - start;
	return 0;
}

/* The unread bytes [copied_seq, copied_seq + q->len) of the receive queue. */
static int amber_tcp_recvq(struct sock *sk, struct amber_fq *q)
{
	const struct tcp_sock *tp = tcp_sk(sk);
	struct sk_buff *skb;
	size_t covered = 0;
	u32 seq;
	int err;

	skb_queue_walk(&sk->sk_receive_queue, skb) {
		seq = TCP_SKB_CB(skb)->seq;
		if (TCP_SKB_CB(skb)->tcp_flags & TCPHDR_SYN)
			seq++;
		err = amber_tcp_copy(skb, seq, tp->copied_seq, tp->copied_seq + q->len, q,
				     &covered);
		if (err)
			return err;
	}
	return covered == q->len ? 0 : -EFAULT;
}

/*
 * The bytes [snd_una, snd_una + q->len): sent and unacknowledged, then
 * unsent (a FIN ends the last skb, beyond its len).
 */
static int amber_tcp_sendq(struct sock *sk, struct amber_fq *q)
{
	const struct tcp_sock *tp = tcp_sk(sk);
	u32 end = tp->snd_una + q->len;
	struct sk_buff *skb;
	size_t covered = 0;
	int err;

	skb_rbtree_walk(skb, &sk->tcp_rtx_queue) {
		err = amber_tcp_copy(skb, TCP_SKB_CB(skb)->seq, tp->snd_una, end, q,
				     &covered);
		if (err)
			return err;
	}
	skb_queue_walk(&sk->sk_write_queue, skb) {
		err = amber_tcp_copy(skb, TCP_SKB_CB(skb)->seq, tp->snd_una, end, q,
				     &covered);
		if (err)
			return err;
	}
	return covered == q->len ? 0 : -EFAULT;
}

/*
 * One of a connection's queues (sk locked): @len bytes, accounted to the
 * request. The allocation may sleep: lock_sock keeps the socket's owner
 * semantics (softirqs queue to the backlog), so it does.
 */
static int amber_tcp_queue(struct amber_files_state *st, struct amber_fileids *ids,
			   const struct amber_fd *fd, struct sock *sk, u32 embryo,
			   size_t len, bool send, struct amber_err *e)
{
	struct amber_fq *q;
	int err;

	if (!len)
		return 0;
	err = amber_fq_charge(st, ids, fd, len, e);
	if (err)
		return err;
	q = amber_fq_alloc(fd->ino, len, 0);
	if (!q) {
		amber_fileids_charge(ids, -(ssize_t)len);
		return amber_fail(e, -ENOMEM,
				  amber_msg("fd %u: %s: out of memory for its %zu queued bytes",
					    fd->num, fd->path, len));
	}
	q->send = send;
	q->embryo = embryo;
	err = send ? amber_tcp_sendq(sk, q) : amber_tcp_recvq(sk, q);
	if (err) {
		amber_fq_free(q);
		amber_fileids_charge(ids, -(ssize_t)len);
		return amber_fail(e, -EIO,
				  amber_msg("fd %u: %s: its %s queue does not match its sequence numbers",
					    fd->num, fd->path, send ? "send" : "receive"));
	}
	amber_fq_add(st, q);
	return 0;
}

/*
 * An established connection's state into @in and its queues (sk locked);
 * @embryo: its place in the accept queue of listener @fd, 0 if it is @fd's.
 */
static int amber_tcp_conn(struct amber_files_state *st, struct amber_fileids *ids,
			  struct amber_fd *fd, struct amber_inet *in, struct sock *sk,
			  u32 embryo, bool queues, struct amber_err *e)
{
	const struct tcp_sock *tp = tcp_sk(sk);
	u32 unread, unacked;
	int err;

	if (tp->urg_data || tp->snd_up != tp->snd_una)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: urgent data (MSG_OOB) is not supported",
					    fd->num, fd->path));
	in->conn = true;
	in->snd_una = tp->snd_una;
	in->snd_nxt = tp->snd_nxt;
	in->write_seq = tp->write_seq;
	in->rcv_nxt = tp->rcv_nxt;
	in->copied_seq = tp->copied_seq;
	in->mss = tp->rx_opt.mss_clamp;
	in->snd_wscale = tp->rx_opt.snd_wscale;
	in->rcv_wscale = tp->rx_opt.rcv_wscale;
	in->sack = tp->rx_opt.sack_ok;
	in->wscale_ok = tp->rx_opt.wscale_ok;
	in->tstamp = tp->rx_opt.tstamp_ok;
	in->timestamp = amber_tcp_timestamp(tp);
	in->snd_wl1 = tp->snd_wl1;
	in->snd_wnd = tp->snd_wnd;
	in->max_window = tp->max_window;
	in->rcv_wnd = tp->rcv_wnd;
	in->rcv_wup = tp->rcv_wup;
	if (!queues)
		return 0;
	/* Data only: a FIN not yet read, or not yet acknowledged, is no byte. */
	unread = tp->rcv_nxt - tp->copied_seq;
	if (unread && amber_tcp_fin_rcvd(sk->sk_state))
		unread--;
	unacked = tp->write_seq - tp->snd_una;
	if (unacked && amber_tcp_fin_sent(sk->sk_state))
		unacked--;
	err = amber_tcp_queue(st, ids, fd, sk, embryo, unread, false, e);
	if (err)
		return err;
	return amber_tcp_queue(st, ids, fd, sk, embryo, unacked, true, e);
}

/*
 * Waiting connection @n (from 1) of listener @fd, @child, locked: what
 * amber_tcp_conn() captures of an accepted one, if restore can rebuild it.
 */
static int amber_tcp_child(struct amber_files_state *st, struct amber_fileids *ids,
			   struct amber_fd *fd, struct sock *child, u32 n, bool hold,
			   struct amber_err *e)
{
	struct amber_inet *in = &fd->inet->children[n - 1];
	struct tcp_sock *tp = tcp_sk(child);
	int err;

	if (child->sk_state != TCP_ESTABLISHED)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: an %s listening socket whose waiting connection %u is in state %s (reset or closed by its peer before accept()) is not supported, only ESTABLISHED ones",
					    fd->num, fd->path, amber_af(child), n,
					    amber_tcp_state_name(child->sk_state)));
	if (rcu_access_pointer(tp->fastopen_rsk))
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: waiting connection %u came by TCP Fast Open, which is not supported",
					    fd->num, fd->path, n));
	if (tp->write_seq != tp->snd_una)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: waiting connection %u has bytes to send, which is not supported",
					    fd->num, fd->path, n));
	err = amber_inet_check(fd, child, e);
	if (err)
		return err;
	amber_inet_common(in, child);
	err = amber_tcp_conn(st, ids, fd, in, child, n, true, e);
	if (err)
		return err;
	in->held = hold;
	if (hold) {
		/* The listener's close (the kill) sends it nothing. */
		tp->repair = 1;
		tp->repair_queue = TCP_NO_QUEUE;
	}
	return 0;
}

/*
 * Takes a reference on each connection waiting in listener @sk's accept
 * queue (locked: accept() cannot take them meanwhile) into @kids, in
 * accept() order, at most AMBER_INET_CHILDREN_MAX. Returns how many are
 * waiting; *@tfo: one came by TCP Fast Open (its handshake may still be
 * going on).
 */
static int amber_tcp_kids(struct sock *sk, struct sock **kids, bool *tfo)
{
	struct request_sock_queue *queue = &inet_csk(sk)->icsk_accept_queue;
	struct request_sock *req;
	int n = 0;

	*tfo = false;
	spin_lock_bh(&queue->rskq_lock);
	for (req = queue->rskq_accept_head; req; req = req->dl_next) {
		if (!req->sk || tcp_rsk(req)->tfo_listener)
			*tfo = true;
		else if (n < AMBER_INET_CHILDREN_MAX)
			sock_hold(kids[n] = req->sk);
		n++;
	}
	spin_unlock_bh(&queue->rskq_lock);
	return n;
}

/* Listener @fd's waiting connections (sk locked), held with @hold. */
static int amber_tcp_children(struct amber_files_state *st, struct amber_fileids *ids,
			      struct amber_fd *fd, struct sock *sk, bool hold,
			      struct amber_err *e)
{
	struct sock **kids;
	int n, i, err = 0;
	bool tfo;

	kids = kcalloc(AMBER_INET_CHILDREN_MAX, sizeof(*kids), GFP_KERNEL);
	if (!kids)
		return amber_fail(e, -ENOMEM, "out of memory for a listener's connections");
	n = amber_tcp_kids(sk, kids, &tfo);
	if (tfo) {
		err = amber_fail(e, -EOPNOTSUPP,
				 amber_msg("fd %u: %s: a connection waiting in its accept queue came by TCP Fast Open, which is not supported",
					   fd->num, fd->path));
		goto out_put;
	}
	if (n > AMBER_INET_CHILDREN_MAX) {
		err = amber_fail(e, -EOPNOTSUPP,
				 amber_msg("fd %u: %s: %d connections waiting in its accept queue are not supported (at most %u)",
					   fd->num, fd->path, n, AMBER_INET_CHILDREN_MAX));
		goto out_put;
	}
	if (n) {
		fd->inet->children = kcalloc(n, sizeof(*fd->inet->children),
					     GFP_KERNEL_ACCOUNT);
		if (!fd->inet->children) {
			err = amber_fail(e, -ENOMEM, "out of memory for a listener's connections");
			goto out_put;
		}
	}
	for (i = 0; i < n && !err; i++) {
		/* The listener's hold already drops their packets: no race. */
		if (hold) {
			err = amber_nethold_add(kids[i], ids);
			if (err) {
				err = amber_fail(e, err, "out of memory for the held connections");
				break;
			}
		}
		/* Nested in the listener's lock as inet_csk_listen_stop() is. */
		lock_sock_nested(kids[i], SINGLE_DEPTH_NESTING);
		err = amber_tcp_child(st, ids, fd, kids[i], i + 1, hold, e);
		release_sock(kids[i]);
		fd->inet->nr_children = i + 1;
	}
out_put:
	for (i = 0; i < AMBER_INET_CHILDREN_MAX; i++)
		if (kids[i])
			sock_put(kids[i]);
	kfree(kids);
	return err;
}

static int amber_tcp_capture(struct amber_files_state *st, struct amber_fileids *ids,
			     struct amber_fd *fd, struct sock *sk, bool first,
			     bool hold, struct amber_err *e)
{
	int state = READ_ONCE(sk->sk_state);
	bool held = false;
	int err = 0;

	/* Before the lock: no packet may change the state once it is read. */
	if (hold && first && state != TCP_CLOSE) {
		err = amber_nethold_add(sk, ids);
		if (err)
			return amber_fail(e, err, "out of memory for the held connections");
		held = true;
	}
	lock_sock(sk);
	if (sk->sk_state != state) {
		err = amber_fail(e, -EAGAIN,
				 amber_msg("fd %u: %s: the connection changed state from %s to %s while it was captured",
					   fd->num, fd->path, amber_tcp_state_name(state),
					   amber_tcp_state_name(sk->sk_state)));
		goto out_release;
	}
	amber_inet_common(fd->inet, sk);
	fd->shutdown = sk->sk_shutdown;
	/* A connection may have come in since the first look. */
	err = amber_inet_check(fd, sk, e);
	if (err)
		goto out_release;
	if (state == TCP_LISTEN && first) {
		err = amber_tcp_children(st, ids, fd, sk, hold, e);
		if (err)
			goto out_release;
	}
	if (amber_tcp_conn_state(state)) {
		err = amber_tcp_conn(st, ids, fd, fd->inet, sk, 0, first, e);
		if (err)
			goto out_release;
		if (held) {
			/* Its close now sends nothing (tcp_disconnect()). */
			tcp_sk(sk)->repair = 1;
			tcp_sk(sk)->repair_queue = TCP_NO_QUEUE;
		}
	}
	fd->inet->held = held;
out_release:
	release_sock(sk);
	/* A failed request resumes: amber_nethold_abort() ends the hold. */
	return err;
}

int amber_inet_capture(struct amber_files_state *st, struct amber_fileids *ids,
		       struct amber_fd *fd, struct file *file, bool hold,
		       struct amber_err *e)
{
	struct sock *sk = amber_inet_sock_of(file);
	int first, err;

	if (!sk)
		return 0;
	fd->sock_family = sk->sk_family;
	fd->sock_type = sk->sk_type;
	err = amber_inet_check(fd, sk, e);
	if (err)
		return err;
	fd->inet = kzalloc(sizeof(*fd->inet), GFP_KERNEL_ACCOUNT);
	if (!fd->inet)
		return amber_fail(e, -ENOMEM, "out of memory for a socket");
	first = amber_fileids_claim(ids, file_inode(file));
	if (first < 0)
		return amber_fail(e, first, "out of memory for the file ids");
	if (sk->sk_protocol == IPPROTO_TCP)
		return amber_tcp_capture(st, ids, fd, sk, first, hold, e);
	/* UDP: queued datagrams are not kept (see design.md). */
	lock_sock(sk);
	amber_inet_common(fd->inet, sk);
	fd->shutdown = sk->sk_shutdown;
	release_sock(sk);
	return 0;
}

int amber_inet_precheck(unsigned int num, struct file *file, struct amber_err *e)
{
	struct amber_fd fd = { .num = num };
	struct sock *sk = amber_inet_sock_of(file);
	int err;

	if (!sk)
		return 0;
	fd.path = amber_path_dup(&file->f_path);
	if (IS_ERR(fd.path))
		return amber_fail(e, PTR_ERR(fd.path),
				  amber_msg("fd %u: cannot resolve its path", num));
	err = amber_inet_check(&fd, sk, e);
	kfree(fd.path);
	return err ?: 1;
}

static int amber_inet_put_flag(struct sk_buff *skb, int type, bool set)
{
	return set ? nla_put_flag(skb, type) : 0;
}

void amber_inet_free(struct amber_inet *in)
{
	if (in)
		kfree(in->children);
	kfree(in);
}

/* The attributes of @in, in a nest of type @type. */
static int amber_inet_put(struct sk_buff *skb, int type, const struct amber_inet *in)
{
	struct nlattr *nest = nla_nest_start(skb, type);
	u32 i;

	if (!nest ||
	    nla_put_u32(skb, AMBER_INET_PROTO, in->proto) ||
	    nla_put_u32(skb, AMBER_INET_STATE, in->state) ||
	    nla_put(skb, AMBER_INET_SRC, in->alen, in->src) ||
	    nla_put_u32(skb, AMBER_INET_SPORT, in->sport) ||
	    nla_put(skb, AMBER_INET_DST, in->alen, in->dst) ||
	    nla_put_u32(skb, AMBER_INET_DPORT, in->dport) ||
	    amber_inet_put_flag(skb, AMBER_INET_BOUND_ADDR, in->bound_addr) ||
	    nla_put_u32(skb, AMBER_INET_BACKLOG, in->backlog) ||
	    amber_inet_put_flag(skb, AMBER_INET_REUSEADDR, in->reuseaddr) ||
	    amber_inet_put_flag(skb, AMBER_INET_REUSEPORT, in->reuseport) ||
	    amber_inet_put_flag(skb, AMBER_INET_V6ONLY, in->v6only) ||
	    nla_put_u32(skb, AMBER_INET_MARK, in->mark) ||
	    nla_put_u32(skb, AMBER_INET_PRIORITY, in->priority) ||
	    (in->sndbuf && nla_put_u32(skb, AMBER_INET_SNDBUF, in->sndbuf)) ||
	    (in->rcvbuf && nla_put_u32(skb, AMBER_INET_RCVBUF, in->rcvbuf)) ||
	    (in->linger_on && nla_put_u32(skb, AMBER_INET_LINGER, in->linger)) ||
	    amber_inet_put_flag(skb, AMBER_INET_KEEPALIVE, in->keepalive) ||
	    nla_put_u32(skb, AMBER_INET_KEEPIDLE, in->keepidle) ||
	    nla_put_u32(skb, AMBER_INET_KEEPINTVL, in->keepintvl) ||
	    nla_put_u32(skb, AMBER_INET_KEEPCNT, in->keepcnt) ||
	    amber_inet_put_flag(skb, AMBER_INET_NODELAY, in->nodelay) ||
	    amber_inet_put_flag(skb, AMBER_INET_CORK, in->cork) ||
	    nla_put_u32(skb, AMBER_INET_USER_TIMEOUT, in->user_timeout) ||
	    amber_inet_put_flag(skb, AMBER_INET_HELD, in->held) ||
	    (in->cc[0] && nla_put_string(skb, AMBER_INET_CONGESTION, in->cc)))
		return -EMSGSIZE;
	if (in->conn &&
	    (nla_put_u32(skb, AMBER_INET_SND_UNA, in->snd_una) ||
	     nla_put_u32(skb, AMBER_INET_SND_NXT, in->snd_nxt) ||
	     nla_put_u32(skb, AMBER_INET_WRITE_SEQ, in->write_seq) ||
	     nla_put_u32(skb, AMBER_INET_RCV_NXT, in->rcv_nxt) ||
	     nla_put_u32(skb, AMBER_INET_COPIED_SEQ, in->copied_seq) ||
	     nla_put_u32(skb, AMBER_INET_MSS, in->mss) ||
	     nla_put_u32(skb, AMBER_INET_SND_WSCALE, in->snd_wscale) ||
	     nla_put_u32(skb, AMBER_INET_RCV_WSCALE, in->rcv_wscale) ||
	     amber_inet_put_flag(skb, AMBER_INET_SACK, in->sack) ||
	     amber_inet_put_flag(skb, AMBER_INET_WSCALE_OK, in->wscale_ok) ||
	     amber_inet_put_flag(skb, AMBER_INET_TSTAMP, in->tstamp) ||
	     nla_put_u32(skb, AMBER_INET_TIMESTAMP, in->timestamp) ||
	     nla_put_u32(skb, AMBER_INET_SND_WL1, in->snd_wl1) ||
	     nla_put_u32(skb, AMBER_INET_SND_WND, in->snd_wnd) ||
	     nla_put_u32(skb, AMBER_INET_MAX_WINDOW, in->max_window) ||
	     nla_put_u32(skb, AMBER_INET_RCV_WND, in->rcv_wnd) ||
	     nla_put_u32(skb, AMBER_INET_RCV_WUP, in->rcv_wup)))
		return -EMSGSIZE;
	for (i = 0; i < in->nr_children; i++)
		if (amber_inet_put(skb, AMBER_INET_CHILD, &in->children[i]))
			return -EMSGSIZE;
	nla_nest_end(skb, nest);
	return 0;
}

int amber_inet_fill(struct sk_buff *skb, const struct amber_inet *in)
{
	return amber_inet_put(skb, AMBER_FD_INET, in);
}

size_t amber_inet_size(const struct amber_inet *in)
{
	/* Exactly what amber_inet_fill() puts: the reply is sized by it. */
	size_t u32s = 11, flags = 0, kids = 0;
	u32 i;

	u32s += !!in->sndbuf + !!in->rcvbuf + in->linger_on;
	flags += in->bound_addr + in->reuseaddr + in->reuseport + in->v6only +
		 in->keepalive + in->nodelay + in->cork + in->held;
	if (in->conn) {
		u32s += 14;
		flags += in->sack + in->wscale_ok + in->tstamp;
	}
	for (i = 0; i < in->nr_children; i++)
		kids += amber_inet_size(&in->children[i]);
	return kids + NLA_HDRLEN + 2 * nla_total_size(in->alen) +
	       u32s * nla_total_size(sizeof(u32)) + flags * nla_total_size(0) +
	       (in->cc[0] ? nla_total_size(strlen(in->cc) + 1) : 0);
}

/*
 * The TCP socket of the caller's fd @fd (SOCK_FD or TCP_CHILD_FD, @attr), with a reference
 * for sockfd_put(); an ERR_PTR, told in @extack, if it is none.
 */
static struct socket *amber_tcp_sockfd(u32 fd, const struct nlattr *attr,
				       struct netlink_ext_ack *extack)
{
	bool child = nla_type(attr) == AMBER_A_TCP_CHILD_FD;
	struct socket *sock;
	int err;

	sock = sockfd_lookup(fd, &err);
	if (!sock) {
		if (child)
			NL_SET_ERR_MSG_ATTR(extack, attr, "TCP_CHILD_FD is not a socket of the caller");
		else
			NL_SET_ERR_MSG_ATTR(extack, attr, "SOCK_FD is not a socket of the caller");
		return ERR_PTR(err);
	}
	if ((sock->sk->sk_family != AF_INET && sock->sk->sk_family != AF_INET6) ||
	    sock->sk->sk_protocol != IPPROTO_TCP || sock->sk->sk_type != SOCK_STREAM) {
		sockfd_put(sock);
		if (child)
			NL_SET_ERR_MSG_ATTR(extack, attr, "TCP_CHILD_FD is not a TCP socket");
		else
			NL_SET_ERR_MSG_ATTR(extack, attr, "SOCK_FD is not a TCP socket");
		return ERR_PTR(-EINVAL);
	}
	return sock;
}

int amber_inet_net_release(u32 fd, const struct nlattr *attr,
			   struct netlink_ext_ack *extack)
{
	struct socket *sock = amber_tcp_sockfd(fd, attr, extack);

	if (IS_ERR(sock))
		return PTR_ERR(sock);
	lock_sock(sock->sk);
	amber_nethold_release(sock->sk);
	release_sock(sock->sk);
	sockfd_put(sock);
	return 0;
}

/*
 * The peer's FIN, on a connection being rebuilt in repair mode: queued
 * after the receive queue's bytes as the kernel queues a received FIN (the
 * program reads the end of the stream after them), and the state moves as
 * tcp_fin() moves it. Nothing is sent.
 */
static int amber_tcp_peer_fin(struct sock *sk, const struct nlattr *attr,
			      struct netlink_ext_ack *extack)
{
	struct tcp_sock *tp = tcp_sk(sk);
	struct sk_buff *skb;

	if (!tp->repair || !((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_FIN_WAIT1)) ||
	    (sk->sk_shutdown & RCV_SHUTDOWN)) {
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "SOCK_FD is not an established TCP socket in repair mode with its receiving side open");
		return -EINVAL;
	}
	skb = alloc_skb(0, GFP_KERNEL);
	if (!skb) {
		NL_SET_ERR_MSG(extack, "out of memory for the FIN");
		return -ENOMEM;
	}
	memset(TCP_SKB_CB(skb), 0, sizeof(struct tcp_skb_cb));
	TCP_SKB_CB(skb)->seq = tp->rcv_nxt;
	TCP_SKB_CB(skb)->end_seq = tp->rcv_nxt + 1;
	TCP_SKB_CB(skb)->tcp_flags = TCPHDR_FIN | TCPHDR_ACK;
	skb_set_owner_r(skb, sk);
	__skb_queue_tail(&sk->sk_receive_queue, skb);
	WRITE_ONCE(tp->rcv_nxt, tp->rcv_nxt + 1);
	WRITE_ONCE(sk->sk_shutdown, sk->sk_shutdown | RCV_SHUTDOWN);
	sock_set_flag(sk, SOCK_DONE);
	if (sk->sk_state == TCP_ESTABLISHED) {
		tcp_set_state(sk, TCP_CLOSE_WAIT);
		inet_csk_enter_pingpong_mode(sk);
	} else {
		tcp_set_state(sk, TCP_CLOSING);
	}
	return 0;
}

int amber_inet_peer_fin(u32 fd, const struct nlattr *attr, struct netlink_ext_ack *extack)
{
	struct socket *sock = amber_tcp_sockfd(fd, attr, extack);
	int err;

	if (IS_ERR(sock))
		return PTR_ERR(sock);
	lock_sock(sock->sk);
	err = amber_tcp_peer_fin(sock->sk, attr, extack);
	release_sock(sock->sk);
	sockfd_put(sock);
	return err;
}

/*
 * The memory cgroup charge of @child, made for the caller who created it:
 * dropped, as inet_csk_accept() charges a connection it takes from the
 * queue to the accepting program's cgroup (what it charges: its forward
 * allocation and received bytes; a waiting connection has nothing to send).
 * __sk_mem_reclaim() uncharges the cgroup together with the protocol's
 * total, which stays: added back (the connection keeps its memory).
 */
static void amber_tcp_uncharge(struct sock *child)
{
	int amt;

	if (!mem_cgroup_sockets_enabled || !child->sk_memcg)
		return;
	amt = sk_mem_pages(child->sk_forward_alloc + atomic_read(&child->sk_rmem_alloc));
	if (amt) {
		sk_forward_alloc_add(child, amt << PAGE_SHIFT);
		__sk_mem_reclaim(child, amt << PAGE_SHIFT);
		/* What sk_memory_allocated_add() flushes to (its per-cpu cache is internal). */
		atomic_long_add(amt, child->sk_prot->memory_allocated);
	}
	css_put(&child->sk_memcg->css);
	child->sk_memcg = NULL;
}

/* Why connection @c (locked) cannot join listener @l's queue, or NULL. */
static const char *amber_tcp_graft_check(struct sock *l, struct sock *c, struct socket *csock)
{
	if (l->sk_state != TCP_LISTEN)
		return "SOCK_FD is not a listening socket";
	if (c->sk_family != l->sk_family)
		return "TCP_CHILD_FD and SOCK_FD are of different address families";
	if (!net_eq(sock_net(c), sock_net(l)))
		return "TCP_CHILD_FD and SOCK_FD are in different network namespaces";
	if (c->sk_state != TCP_ESTABLISHED)
		return "TCP_CHILD_FD is not an ESTABLISHED connection";
	if (c->sk_socket != csock)
		return "TCP_CHILD_FD's connection is not its socket's";
	if (inet_sk(c)->inet_num != inet_sk(l)->inet_num)
		return "TCP_CHILD_FD's local port is not SOCK_FD's";
	if (l->sk_family == AF_INET && inet_sk(l)->inet_rcv_saddr &&
	    inet_sk(l)->inet_rcv_saddr != inet_sk(c)->inet_rcv_saddr)
		return "TCP_CHILD_FD's local address is not the one SOCK_FD is bound to";
#if IS_ENABLED(CONFIG_IPV6)
	if (l->sk_family == AF_INET6 && !ipv6_addr_any(&l->sk_v6_rcv_saddr) &&
	    !ipv6_addr_equal(&l->sk_v6_rcv_saddr, &c->sk_v6_rcv_saddr))
		return "TCP_CHILD_FD's local address is not the one SOCK_FD is bound to";
#endif
	if (sk_acceptq_is_full(l))
		return "SOCK_FD's accept queue is full (its listen() backlog)";
	return NULL;
}

/*
 * Moves @c (locked) from the caller's socket @csock to the accept queue of
 * @l (locked) through @req; @csock gets @spare's fresh sock, so that a
 * system call or epoll on the caller's fd never finds a socket without
 * one.
 */
static void amber_tcp_graft(struct sock *l, struct sock *c, struct socket *csock,
			    struct socket *spare, struct request_sock *req)
{
	struct sock *fresh = spare->sk;

	amber_tcp_uncharge(c);
	/* As a connection the kernel queues: no socket yet, as sock_orphan() leaves it. */
	write_lock_bh(&c->sk_callback_lock);
	sk_set_socket(c, NULL);
	RCU_INIT_POINTER(c->sk_wq, NULL);
	write_unlock_bh(&c->sk_callback_lock);
	c->sk_reuse = l->sk_reuse;
	spare->sk = NULL;
	/* sock_graft(), but the socket never shows no sock (it WARNs on one). */
	write_lock_bh(&fresh->sk_callback_lock);
	rcu_assign_pointer(fresh->sk_wq, &csock->wq);
	sk_set_socket(fresh, csock);
	fresh->sk_uid = SOCK_INODE(csock)->i_uid;
	security_sock_graft(fresh, csock);
	WRITE_ONCE(csock->sk, fresh);
	write_unlock_bh(&fresh->sk_callback_lock);
	csock->state = SS_UNCONNECTED;

	/* What inet_csk_accept() and reqsk_put() read; the rest as allocated. */
	memset((char *)req + sizeof(struct inet_request_sock), 0,
	       sizeof(struct tcp_request_sock) - sizeof(struct inet_request_sock));
	req->syncookie = 0;
	refcount_set(&req->rsk_refcnt, 1);
	/* The queue's lock is taken in softirqs. */
	local_bh_disable();
	inet_csk_reqsk_queue_add(l, req, c);
	local_bh_enable();
	l->sk_data_ready(l);
}

/* NL_SET_ERR_MSG_ATTR() for a message chosen at run time (@why: static). */
static void amber_tcp_graft_refuse(struct netlink_ext_ack *extack,
				   const struct nlattr *attr, const char *why)
{
	NL_SET_BAD_ATTR(extack, attr);
	if (extack)
		extack->_msg = why;
}

int amber_inet_tcp_graft(u32 lfd, const struct nlattr *lattr, u32 cfd,
			 const struct nlattr *cattr, struct netlink_ext_ack *extack)
{
	struct socket *lsock, *csock, *spare;
	struct request_sock *req;
	struct sock *l, *c;
	const char *why;
	int off = TCP_REPAIR_OFF, err;

	lsock = amber_tcp_sockfd(lfd, lattr, extack);
	if (IS_ERR(lsock))
		return PTR_ERR(lsock);
	csock = amber_tcp_sockfd(cfd, cattr, extack);
	if (IS_ERR(csock)) {
		err = PTR_ERR(csock);
		goto out_lsock;
	}
	l = lsock->sk;
	c = csock->sk;
	err = -EINVAL;
	if (l == c) {
		NL_SET_ERR_MSG_ATTR(extack, cattr, "TCP_CHILD_FD is SOCK_FD's socket");
		goto out_csock;
	}
	err = -EPERM;
	if (!ns_capable(sock_net(l)->user_ns, CAP_NET_ADMIN)) {
		NL_SET_ERR_MSG(extack, "needs CAP_NET_ADMIN in the sockets' network namespace");
		goto out_csock;
	}
	/* Our reference and the caller's fd: no other fd, thread or message has it. */
	err = -EBUSY;
	if (file_count(csock->file) != 2) {
		NL_SET_ERR_MSG_ATTR(extack, cattr,
				    "TCP_CHILD_FD's socket is also open elsewhere (another fd, process or message)");
		goto out_csock;
	}
	/* The listener first, as everywhere (inet_csk_listen_stop()). */
	lock_sock(l);
	lock_sock_nested(c, SINGLE_DEPTH_NESTING);
	why = tcp_sk(c)->repair ? amber_tcp_graft_check(l, c, csock) :
				  "TCP_CHILD_FD is not in repair mode (TCP_REPAIR)";
	release_sock(c);
	release_sock(l);
	err = -EINVAL;
	if (why) {
		amber_tcp_graft_refuse(extack, cattr, why);
		goto out_csock;
	}
	err = __sock_create(sock_net(c), c->sk_family, SOCK_STREAM, IPPROTO_TCP, &spare, 0);
	if (err) {
		NL_SET_ERR_MSG(extack, "cannot create the socket left on TCP_CHILD_FD");
		goto out_csock;
	}
	err = -ENOMEM;
	req = inet_reqsk_alloc(l->sk_prot->rsk_prot, l, true);
	if (!req) {
		NL_SET_ERR_MSG(extack, "out of memory for the accept queue's entry");
		goto out_spare;
	}
	/*
	 * TCP_REPAIR off, window probe included (takes c's lock), through the
	 * protocol as setsockopt() goes (tcp_setsockopt() is not exported in 6.12).
	 */
	err = c->sk_prot->setsockopt(c, SOL_TCP, TCP_REPAIR, KERNEL_SOCKPTR(&off), sizeof(off));
	if (err) {
		NL_SET_ERR_MSG_ATTR(extack, cattr, "TCP_CHILD_FD cannot leave repair mode");
		goto out_req;
	}
	lock_sock(l);
	lock_sock_nested(c, SINGLE_DEPTH_NESTING);
	why = tcp_sk(c)->repair ? "TCP_CHILD_FD went back to repair mode" :
				  amber_tcp_graft_check(l, c, csock);
	if (!why) {
		amber_tcp_graft(l, c, csock, spare, req);
		req = NULL;
		/* The checkpoint's hold on it ends (the listener's port may stay held). */
		amber_nethold_release(c);
	}
	release_sock(c);
	release_sock(l);
	err = 0;
	if (why) {
		amber_tcp_graft_refuse(extack, cattr, why);
		err = -EINVAL;
	}
out_req:
	if (req)
		reqsk_free(req);
out_spare:
	sock_release(spare);
out_csock:
	sockfd_put(csock);
out_lsock:
	sockfd_put(lsock);
	return err;
}
