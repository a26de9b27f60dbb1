/* SPDX-License-Identifier: GPL-2.0 */
/* Formatted extack messages that outlive the handler that made them. */
#ifndef _AMBER_MSG_H
#define _AMBER_MSG_H

#include <linux/compiler.h>
#include <linux/netlink.h>

/* An error found while capturing: errno plus a message for extack. */
struct amber_err {
	int err;		/* negative errno, 0 = no error */
	const char *msg;	/* static string or from amber_msg() */
};

static inline int amber_fail(struct amber_err *e, int err, const char *msg)
{
	e->err = err;
	e->msg = msg;
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

#endif /* _AMBER_MSG_H */
