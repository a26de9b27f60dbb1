// SPDX-License-Identifier: GPL-2.0
/*
 * Formatted extack messages.
 *
 * In 6.1, struct netlink_ext_ack stores a pointer to the message, not a copy
 * (NL_SET_ERR_MSG_FMT and its in-struct buffer arrived in 6.2), and the ACK
 * that reads it is built after the doit handler has returned. A message that
 * names a resource ("vma 7f..-7f..: /tmp/x (deleted) ...") therefore has to
 * live in storage that stays valid past the handler: a small ring of static
 * slots. A slot is reused only after AMBER_MSG_SLOTS - 1 newer messages, far
 * more than can be formatted between a handler's return and its ACK. The
 * last byte of every slot is never written, so a reader always finds a NUL
 * inside the slot even while a slot is being rewritten. The module cannot go
 * away under a pending ACK: genl_unregister_family() waits for handlers and
 * their ACKs (cb_lock).
 */
#include <linux/atomic.h>
#include <linux/kernel.h>
#include <linux/string.h>
#include <net/netlink.h>

#include <linux/amber.h>

#include "msg.h"

#define AMBER_MSG_SLOTS	32	/* power of two */
#define AMBER_MSG_LEN	256

static char amber_msgs[AMBER_MSG_SLOTS][AMBER_MSG_LEN + 1];
static atomic_t amber_msg_next = ATOMIC_INIT(0);

const char *amber_msg(const char *fmt, ...)
{
	unsigned int slot;
	va_list args;
	char *buf;

	slot = (unsigned int)atomic_inc_return(&amber_msg_next) &
	       (AMBER_MSG_SLOTS - 1);
	buf = amber_msgs[slot];
	va_start(args, fmt);
	vsnprintf(buf, AMBER_MSG_LEN, fmt, args);
	va_end(args);
	return buf;
}

/*
 * Appends one attribute to the extack cookie, which netlink_ack() copies
 * as NLMSGERR_ATTR_COOKIE into the ACK, error or not. Each fact is put at
 * most once; one that does not fit the 20 bytes is dropped (the largest
 * set, a flag and a u32, takes 12).
 */
static void amber_cookie_put(struct netlink_ext_ack *extack, u16 type,
			     const void *data, u16 len)
{
	unsigned int off = 0;
	struct nlattr *nla;

	if (!extack)
		return;
	while (off + NLA_HDRLEN <= extack->cookie_len) {
		nla = (struct nlattr *)(extack->cookie + off);
		if (nla->nla_type == type)
			return;
		off += NLA_ALIGN(nla->nla_len);
	}
	if (extack->cookie_len + nla_total_size(len) > NETLINK_MAX_COOKIE_LEN)
		return;
	nla = (struct nlattr *)(extack->cookie + extack->cookie_len);
	nla->nla_type = type;
	nla->nla_len = nla_attr_size(len);
	if (len)
		memcpy(nla_data(nla), data, len);
	memset((u8 *)nla_data(nla) + len, 0, nla_padlen(len));
	extack->cookie_len += nla_total_size(len);
}

void amber_set_retry(struct netlink_ext_ack *extack)
{
	amber_cookie_put(extack, AMBER_ERR_RETRY, NULL, 0);
}

void amber_set_pages_files(struct netlink_ext_ack *extack, u32 need)
{
	amber_cookie_put(extack, AMBER_ERR_PAGES_FILES, &need, sizeof(need));
}
