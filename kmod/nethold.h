/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Held TCP connections: packets of a checkpointed connection (both
 * directions, IPv4 and IPv6) are dropped between a held checkpoint and the
 * restore of its socket, so that its peer sees neither FIN nor RST, only
 * silence (and retransmits).
 */
#ifndef _AMBER_NETHOLD_H
#define _AMBER_NETHOLD_H

#include <linux/types.h>

struct sock;

/*
 * Holds the packets of @sk's connection (or, listening, of its local port)
 * on behalf of @owner (a request), and keeps a reference on @sk for
 * amber_nethold_abort(). Every packet that passed the hook before returns
 * has been processed (sleeps). -ENOMEM.
 */
int amber_nethold_add(struct sock *sk, const void *owner);
/*
 * The request @owner resumes its processes: turns repair mode off on each
 * socket it held and ends those holds.
 */
void amber_nethold_abort(const void *owner);
/*
 * The request @owner kills its processes: its holds stay until
 * amber_nethold_release() (the references on the sockets are dropped).
 */
void amber_nethold_commit(const void *owner);
/* Ends the committed holds on @sk's connection or port; how many. */
unsigned int amber_nethold_release(struct sock *sk);

int amber_nethold_init(void);
void amber_nethold_exit(void);

#endif /* _AMBER_NETHOLD_H */
