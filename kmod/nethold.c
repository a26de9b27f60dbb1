// SPDX-License-Identifier: GPL-2.0
/*
 * Held TCP connections. A checkpoint with AMBER_CKPT_F_HOLD is usually
 * followed by a kill (checkpoint --kill), and a killed process's sockets
 * would send FIN or RST to its peers, which then give up on the
 * connection. So inet.c puts each captured connection in repair mode (its
 * close sends nothing) and holds it here: every packet of its 4-tuple, in
 * either direction, is dropped by netfilter hooks (IPv4 and IPv6, at
 * PRE_ROUTING for what arrives and LOCAL_OUT for what leaves) until the
 * restore has the connection back and sends AMBER_CMD_NET_RELEASE with the
 * new socket. The peer sees a silent path and retransmits; nothing it sent
 * after the capture is acknowledged, so nothing is lost. A listening
 * socket's port is held the same way (a client's SYN is dropped and
 * retried instead of being refused).
 *
 * If the request resumes its processes instead of killing them, its holds
 * are ended and its sockets leave repair mode (amber_nethold_abort()).
 * Holds not released are ended when the module is unloaded.
 */
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/rculist.h>
#include <linux/slab.h>
#include <linux/tcp.h>
#include <net/inet_sock.h>
#include <net/ipv6.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "nethold.h"

/* A connection (or, listening, a local address and port), as on the wire. */
struct amber_tuple {
	u64 net;		/* net_cookie of its namespace */
	u8 family;		/* AF_INET (also v4-mapped IPv6) or AF_INET6 */
	bool listen;		/* raddr, rport unused */
	bool any_v4;		/* listening on :: without IPV6_V6ONLY */
	__be16 lport, rport;
	struct in6_addr laddr, raddr;	/* IPv4: s6_addr32[0] */
};

struct amber_hold {
	struct list_head node;	/* amber_holds, RCU */
	struct rcu_head rcu;
	struct amber_tuple t;
	struct list_head gone;	/* taken off amber_holds, see amber_nethold_take() */
	const void *owner;	/* the request until committed, then NULL */
	struct sock *sk;	/* reference while owned */
};

/* Protects amber_holds' changes; the hooks read it under RCU. */
static DEFINE_SPINLOCK(amber_holds_lock);
static LIST_HEAD(amber_holds);
static atomic_t amber_nr_holds = ATOMIC_INIT(0);

static void amber_tuple_of_sk(struct sock *sk, struct amber_tuple *t)
{
	struct inet_sock *inet = inet_sk(sk);

	memset(t, 0, sizeof(*t));
	t->net = sock_net(sk)->net_cookie;
	t->listen = sk->sk_state == TCP_LISTEN;
	t->lport = inet->inet_sport;
	t->rport = inet->inet_dport;
#if IS_ENABLED(CONFIG_IPV6)
	if (sk->sk_family == AF_INET6 &&
	    !(ipv6_addr_v4mapped(&sk->sk_v6_rcv_saddr) &&
	      (t->listen || ipv6_addr_v4mapped(&sk->sk_v6_daddr)))) {
		t->family = AF_INET6;
		t->laddr = sk->sk_v6_rcv_saddr;
		t->raddr = sk->sk_v6_daddr;
		t->any_v4 = t->listen && ipv6_addr_any(&t->laddr) && !sk->sk_ipv6only;
		return;
	}
#endif
	t->family = AF_INET;
	t->laddr.s6_addr32[0] = inet->inet_rcv_saddr;
	t->raddr.s6_addr32[0] = inet->inet_daddr;
}

static bool amber_addr_eq(const struct amber_tuple *t, const struct in6_addr *a,
			  const struct in6_addr *b)
{
	if (t->family == AF_INET)
		return a->s6_addr32[0] == b->s6_addr32[0];
	return ipv6_addr_equal(a, b);
}

static bool amber_addr_any(const struct amber_tuple *t, const struct in6_addr *a)
{
	return t->family == AF_INET ? !a->s6_addr32[0] : ipv6_addr_any(a);
}

/* One orientation of a packet against connection hold @h. */
static bool amber_hold_side(const struct amber_tuple *h, const struct amber_tuple *p,
			    const struct in6_addr *src, __be16 sport,
			    const struct in6_addr *dst, __be16 dport)
{
	return sport == h->lport && dport == h->rport &&
	       amber_addr_eq(p, src, &h->laddr) && amber_addr_eq(p, dst, &h->raddr);
}

/*
 * Whether packet @p belongs to hold @h: to its connection, either way (both
 * ends may be held, in a tree), or for a listening port, to that port on
 * this host (@p's laddr/lport are the local end).
 */
static bool amber_hold_match(const struct amber_tuple *h, const struct amber_tuple *p)
{
	if (h->net != p->net)
		return false;
	if (h->family != p->family && !(h->any_v4 && p->family == AF_INET))
		return false;
	if (h->listen)
		return p->lport == h->lport &&
		       (amber_addr_any(h, &h->laddr) || amber_addr_eq(p, &p->laddr, &h->laddr));
	return amber_hold_side(h, p, &p->laddr, p->lport, &p->raddr, p->rport) ||
	       amber_hold_side(h, p, &p->raddr, p->rport, &p->laddr, p->lport);
}

/* The TCP 4-tuple of @skb (its source as laddr/lport), or false if not TCP. */
static bool amber_tuple_of_skb(struct sk_buff *skb, u8 pf, struct amber_tuple *t)
{
	__be16 ports[2], *pp;
	int off;

	memset(t, 0, sizeof(*t));
	if (pf == NFPROTO_IPV4) {
		const struct iphdr *iph = ip_hdr(skb);

		if (iph->protocol != IPPROTO_TCP || ip_is_fragment(iph))
			return false;
		t->family = AF_INET;
		t->laddr.s6_addr32[0] = iph->saddr;
		t->raddr.s6_addr32[0] = iph->daddr;
		off = skb_network_offset(skb) + iph->ihl * 4;
	} else {
		const struct ipv6hdr *ip6h = ipv6_hdr(skb);
		u8 nexthdr = ip6h->nexthdr;
		__be16 frag_off;

		t->family = AF_INET6;
		t->laddr = ip6h->saddr;
		t->raddr = ip6h->daddr;
		off = ipv6_skip_exthdr(skb, skb_network_offset(skb) + sizeof(*ip6h),
				       &nexthdr, &frag_off);
		if (off < 0 || nexthdr != IPPROTO_TCP || (frag_off & htons(~0x7)))
			return false;
	}
	pp = skb_header_pointer(skb, off, sizeof(ports), ports);
	if (!pp)
		return false;
	t->lport = pp[0];
	t->rport = pp[1];
	return true;
}

static unsigned int amber_nethold_hook(void *priv, struct sk_buff *skb,
				       const struct nf_hook_state *state)
{
	struct amber_tuple p;
	struct amber_hold *h;
	bool drop = false;

	if (!atomic_read(&amber_nr_holds))
		return NF_ACCEPT;
	if (!amber_tuple_of_skb(skb, state->pf, &p))
		return NF_ACCEPT;
	p.net = state->net->net_cookie;
	/* Arriving: the local end is the destination. */
	if (state->hook == NF_INET_PRE_ROUTING) {
		swap(p.laddr, p.raddr);
		swap(p.lport, p.rport);
	}
	rcu_read_lock();
	list_for_each_entry_rcu(h, &amber_holds, node) {
		if (amber_hold_match(&h->t, &p)) {
			drop = true;
			break;
		}
	}
	rcu_read_unlock();
	return drop ? NF_DROP : NF_ACCEPT;
}

static const struct nf_hook_ops amber_nethold_ops[] = {
	{ .hook = amber_nethold_hook, .pf = NFPROTO_IPV4,
	  .hooknum = NF_INET_PRE_ROUTING, .priority = NF_IP_PRI_FIRST },
	{ .hook = amber_nethold_hook, .pf = NFPROTO_IPV4,
	  .hooknum = NF_INET_LOCAL_OUT, .priority = NF_IP_PRI_FIRST },
	{ .hook = amber_nethold_hook, .pf = NFPROTO_IPV6,
	  .hooknum = NF_INET_PRE_ROUTING, .priority = NF_IP6_PRI_FIRST },
	{ .hook = amber_nethold_hook, .pf = NFPROTO_IPV6,
	  .hooknum = NF_INET_LOCAL_OUT, .priority = NF_IP6_PRI_FIRST },
};

int amber_nethold_add(struct sock *sk, const void *owner)
{
	struct amber_hold *h = kzalloc(sizeof(*h), GFP_KERNEL);

	if (!h)
		return -ENOMEM;
	amber_tuple_of_sk(sk, &h->t);
	h->owner = owner;
	sock_hold(sk);
	h->sk = sk;
	spin_lock_bh(&amber_holds_lock);
	list_add_rcu(&h->node, &amber_holds);
	atomic_inc(&amber_nr_holds);
	spin_unlock_bh(&amber_holds_lock);
	/* Packets already past the hook have reached the socket. */
	synchronize_net();
	return 0;
}

/*
 * Unlinks the holds that @pick selects onto @out (through their ->gone
 * node: readers may still walk ->node until a grace period has passed).
 */
static unsigned int amber_nethold_take(bool (*pick)(const struct amber_hold *h,
						    const void *arg),
				       const void *arg, struct list_head *out)
{
	struct amber_hold *h, *tmp;
	unsigned int n = 0;

	spin_lock_bh(&amber_holds_lock);
	list_for_each_entry_safe(h, tmp, &amber_holds, node) {
		if (!pick(h, arg))
			continue;
		list_del_rcu(&h->node);
		atomic_dec(&amber_nr_holds);
		list_add_tail(&h->gone, out);
		n++;
	}
	spin_unlock_bh(&amber_holds_lock);
	return n;
}

static void amber_holds_free(struct list_head *gone)
{
	struct amber_hold *h, *tmp;

	list_for_each_entry_safe(h, tmp, gone, gone) {
		if (h->sk)
			sock_put(h->sk);
		kfree_rcu(h, rcu);
	}
}

static bool amber_pick_owner(const struct amber_hold *h, const void *owner)
{
	return h->owner == owner;
}

void amber_nethold_abort(const void *owner)
{
	struct amber_hold *h;
	LIST_HEAD(gone);

	if (!amber_nethold_take(amber_pick_owner, owner, &gone))
		return;
	/* Back to normal before the processes run again. */
	list_for_each_entry(h, &gone, gone) {
		lock_sock(h->sk);
		tcp_sk(h->sk)->repair = 0;
		tcp_sk(h->sk)->repair_queue = TCP_NO_QUEUE;
		release_sock(h->sk);
	}
	amber_holds_free(&gone);
}

void amber_nethold_commit(const void *owner)
{
	struct amber_hold *h;

	spin_lock_bh(&amber_holds_lock);
	list_for_each_entry(h, &amber_holds, node) {
		if (h->owner != owner)
			continue;
		h->owner = NULL;
		/* Sockets are freed from softirqs too: no sleep here. */
		sock_put(h->sk);
		h->sk = NULL;
	}
	spin_unlock_bh(&amber_holds_lock);
}

static bool amber_pick_tuple(const struct amber_hold *h, const void *arg)
{
	const struct amber_tuple *t = arg, *o = &h->t;

	if (h->owner || o->net != t->net || o->family != t->family ||
	    o->listen != t->listen)
		return false;
	if (!amber_addr_eq(t, &o->laddr, &t->laddr) || o->lport != t->lport) {
		/* The other end of a connection checkpointed in the same tree. */
		return !t->listen && amber_addr_eq(t, &o->laddr, &t->raddr) &&
		       o->lport == t->rport && amber_addr_eq(t, &o->raddr, &t->laddr) &&
		       o->rport == t->lport;
	}
	return t->listen || (amber_addr_eq(t, &o->raddr, &t->raddr) && o->rport == t->rport);
}

unsigned int amber_nethold_release(struct sock *sk)
{
	struct amber_tuple t;
	LIST_HEAD(gone);
	unsigned int n;

	amber_tuple_of_sk(sk, &t);
	n = amber_nethold_take(amber_pick_tuple, &t, &gone);
	amber_holds_free(&gone);
	return n;
}

static bool amber_pick_all(const struct amber_hold *h, const void *arg)
{
	return true;
}

static int __net_init amber_nethold_net_init(struct net *net)
{
	return nf_register_net_hooks(net, amber_nethold_ops, ARRAY_SIZE(amber_nethold_ops));
}

static void __net_exit amber_nethold_net_exit(struct net *net)
{
	nf_unregister_net_hooks(net, amber_nethold_ops, ARRAY_SIZE(amber_nethold_ops));
}

static struct pernet_operations amber_nethold_net_ops = {
	.init = amber_nethold_net_init,
	.exit = amber_nethold_net_exit,
};

int amber_nethold_init(void)
{
	return register_pernet_subsys(&amber_nethold_net_ops);
}

void amber_nethold_exit(void)
{
	LIST_HEAD(gone);

	/* The requests are gone: every hold left is committed. */
	unregister_pernet_subsys(&amber_nethold_net_ops);
	amber_nethold_take(amber_pick_all, NULL, &gone);
	amber_holds_free(&gone);
	rcu_barrier();
}
