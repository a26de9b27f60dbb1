/* SPDX-License-Identifier: GPL-2.0 */
/* Formatted extack messages that outlive the handler that made them. */
#ifndef _AMBER_MSG_H
#define _AMBER_MSG_H

#include <linux/compiler.h>
#include <linux/netlink.h>
#include <linux/types.h>

/* An error found while capturing: errno plus a message for extack. */
struct amber_err {
	int err;		/* negative errno, 0 = no error */
	const char *msg;	/* static string or from amber_msg() */
	bool retry;		/* transient: the same request may succeed */
};

static inline int amber_fail(struct amber_err *e, int err, const char *msg)
{
	e->err = err;
	e->msg = msg;
	e->retry = false;
	return err;
}

/* A transient failure: the reply tells the tool to resend (AMBER_ERR_RETRY). */
static inline int amber_fail_retry(struct amber_err *e, int err, const char *msg)
{
	amber_fail(e, err, msg);
	e->retry = true;
	return err;
}

__printf(1, 2) const char *amber_msg(const char *fmt, ...);

/*
 * NL_SET_ERR_MSG() only takes string literals; this sets a message that is
 * static or comes from amber_msg().
 */
static inline void amber_set_msg(struct netlink_ext_ack *extack,
				 const char *msg)
{
	if (extack)
		extack->_msg = msg;
}

/*
 * Facts the tool acts on, as enum amber_err_attr attributes in the extack
 * cookie (never in the message text): AMBER_ERR_RETRY, and with the pool
 * of pages files short, AMBER_ERR_PAGES_FILES.
 */
void amber_set_retry(struct netlink_ext_ack *extack);
void amber_set_pages_files(struct netlink_ext_ack *extack, u32 need);

/* @e's message and retry verdict replace what @extack says. */
static inline void amber_set_err(struct netlink_ext_ack *extack,
				 const struct amber_err *e)
{
	amber_set_msg(extack, e->msg);
	if (extack)
		extack->cookie_len = 0;
	if (e->retry)
		amber_set_retry(extack);
}

#endif /* _AMBER_MSG_H */
