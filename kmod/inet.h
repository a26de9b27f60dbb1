/* SPDX-License-Identifier: GPL-2.0 */
/* TCP and UDP sockets over IPv4 and IPv6: their state, options and queues. */
#ifndef _AMBER_INET_H
#define _AMBER_INET_H

#include <linux/types.h>
#include <net/tcp.h>

#include "msg.h"

struct amber_fd;
struct amber_fileids;
struct amber_files_state;
struct file;
struct netlink_ext_ack;
struct nlattr;
struct sk_buff;

/* AMBER_FD_INET; sizes and flags as amber.h's enum amber_inet_attr says. */
struct amber_inet {
	u32 proto, state;
	u32 alen;			/* 4 or 16 */
	u8 src[16], dst[16];
	u16 sport, dport;
	bool bound_addr, reuseaddr, reuseport, v6only;
	bool keepalive, nodelay, cork, linger_on;
	bool sack, wscale_ok, tstamp, held, conn;
	u32 backlog, mark, priority, sndbuf, rcvbuf, linger;
	u32 keepidle, keepintvl, keepcnt, user_timeout;
	u32 snd_una, snd_nxt, write_seq, rcv_nxt, copied_seq;
	u32 mss, snd_wscale, rcv_wscale, timestamp;
	u32 snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup;
	char cc[TCP_CA_NAME_MAX];	/* TCP: congestion control, "" for UDP */
	/* TCP listeners: the connections waiting in the accept queue, in order */
	u32 nr_children;
	struct amber_inet *children;
};

/*
 * For @file (fd @fd, filled but for these), if it is an AF_INET or
 * AF_INET6 socket: sets fd->sock_* and, for TCP and UDP, fd->inet (and the
 * TCP queues, once per inode). Refuses by name in @e what restore cannot
 * bring back. With @hold, each TCP connection and listening socket is held
 * (see nethold.c) on behalf of @ids and a connection is left in repair
 * mode. Returns 0 with fd->inet NULL for other sockets (unix.c decides).
 */
int amber_inet_capture(struct amber_files_state *st, struct amber_fileids *ids,
		       struct amber_fd *fd, struct file *file, bool hold,
		       struct amber_err *e);
/* The refusals of amber_inet_capture() that need no lock; 1: inet, handled. */
int amber_inet_precheck(unsigned int num, struct file *file, struct amber_err *e);

/*
 * AMBER_CMD_NET_RELEASE of the caller's socket @fd (@attr for extack): ends
 * the holds on its connection or listening port; not a TCP socket: refused.
 */
int amber_inet_net_release(u32 fd, const struct nlattr *attr,
			   struct netlink_ext_ack *extack);

/*
 * AMBER_CMD_TCP_PEER_FIN of the caller's socket @fd: a connection rebuilt in
 * repair mode takes its peer's FIN as received.
 */
int amber_inet_peer_fin(u32 fd, const struct nlattr *attr, struct netlink_ext_ack *extack);

/*
 * AMBER_CMD_TCP_GRAFT: the caller's repaired connection @cfd goes to the
 * accept queue of its listening socket @lfd (@lattr, @cattr for extack).
 */
int amber_inet_tcp_graft(u32 lfd, const struct nlattr *lattr, u32 cfd,
			 const struct nlattr *cattr, struct netlink_ext_ack *extack);

void amber_inet_free(struct amber_inet *in);
int amber_inet_fill(struct sk_buff *skb, const struct amber_inet *in);
size_t amber_inet_size(const struct amber_inet *in);

#endif /* _AMBER_INET_H */
