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
 * repair option does. See design.md, "TCP and UDP sockets".
 *
 * Refused, by fd number and name: other protocols (raw, SCTP, MPTCP, ICMP,
 * UDP-Lite), TCP states other than LISTEN, CLOSE, ESTABLISHED and the
 * half-closed ones (FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING), a listener
 * with connections waiting in its accept queue, urgent data, a socket
 * already in repair mode, SO_BINDTODEVICE, IP_TOS / IPV6_TCLASS, multicast
 * memberships, the options of amber_inet_unkept_option(); and queues
 * beyond the request's bounds.
 */
#include <linux/fs.h>
#include <linux/net.h>
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
		if (state == TCP_LISTEN && READ_ONCE(sk->sk_ack_backlog))
			return amber_fail(e, -EOPNOTSUPP,
					  amber_msg("fd %u: %s: an %s listening socket with %u connection(s) waiting in its accept queue is not supported",
						    fd->num, fd->path, amber_af(sk),
						    READ_ONCE(sk->sk_ack_backlog)));
	}
	return 0;
}

/* Addresses, ports and socket options (sk locked). */
static void amber_inet_common(struct amber_fd *fd, struct sock *sk)
{
	struct amber_inet *in = fd->inet;
	const struct inet_sock *inet = inet_sk(sk);

	in->proto = sk->sk_protocol;
	in->state = sk->sk_state;
	fd->shutdown = sk->sk_shutdown;
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
			   const struct amber_fd *fd, struct sock *sk, size_t len,
			   bool send, struct amber_err *e)
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

/* An established connection's state and queues (sk locked). */
static int amber_tcp_conn(struct amber_files_state *st, struct amber_fileids *ids,
			  struct amber_fd *fd, struct sock *sk, bool queues,
			  struct amber_err *e)
{
	const struct tcp_sock *tp = tcp_sk(sk);
	struct amber_inet *in = fd->inet;
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
	err = amber_tcp_queue(st, ids, fd, sk, unread, false, e);
	if (err)
		return err;
	return amber_tcp_queue(st, ids, fd, sk, unacked, true, e);
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
	amber_inet_common(fd, sk);
	/* A connection may have come in since the first look. */
	err = amber_inet_check(fd, sk, e);
	if (err)
		goto out_release;
	if (amber_tcp_conn_state(state)) {
		err = amber_tcp_conn(st, ids, fd, sk, first, e);
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
	amber_inet_common(fd, sk);
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

int amber_inet_fill(struct sk_buff *skb, const struct amber_inet *in)
{
	struct nlattr *nest = nla_nest_start(skb, AMBER_FD_INET);

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
	nla_nest_end(skb, nest);
	return 0;
}

size_t amber_inet_size(const struct amber_inet *in)
{
	/* Exactly what amber_inet_fill() puts: the reply is sized by it. */
	size_t u32s = 11, flags = 0;

	u32s += !!in->sndbuf + !!in->rcvbuf + in->linger_on;
	flags += in->bound_addr + in->reuseaddr + in->reuseport + in->v6only +
		 in->keepalive + in->nodelay + in->cork + in->held;
	if (in->conn) {
		u32s += 14;
		flags += in->sack + in->wscale_ok + in->tstamp;
	}
	return NLA_HDRLEN + 2 * nla_total_size(in->alen) +
	       u32s * nla_total_size(sizeof(u32)) + flags * nla_total_size(0) +
	       (in->cc[0] ? nla_total_size(strlen(in->cc) + 1) : 0);
}

/*
 * The TCP socket of the caller's fd @fd (SOCK_FD, @attr), with a reference
 * for sockfd_put(); an ERR_PTR, told in @extack, if it is none.
 */
static struct socket *amber_tcp_sockfd(u32 fd, const struct nlattr *attr,
				       struct netlink_ext_ack *extack)
{
	struct socket *sock;
	int err;

	sock = sockfd_lookup(fd, &err);
	if (!sock) {
		NL_SET_ERR_MSG_ATTR(extack, attr, "SOCK_FD is not a socket of the caller");
		return ERR_PTR(err);
	}
	if ((sock->sk->sk_family != AF_INET && sock->sk->sk_family != AF_INET6) ||
	    sock->sk->sk_protocol != IPPROTO_TCP || sock->sk->sk_type != SOCK_STREAM) {
		sockfd_put(sock);
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
