/* SPDX-License-Identifier: GPL-2.0 */
/* User registers and extended FPU state. */
#ifndef _AMBER_REGS_H
#define _AMBER_REGS_H

#include <linux/amber.h>
#include <linux/types.h>

#include "msg.h"

struct amber_regs_state {
	u64 regs[AMBER_REG_MAX];	/* index AMBER_REG_x - 1 */
	void *fpu;			/* XSAVE (or FXSAVE) area, UABI layout */
	unsigned int fpu_len;
};

int amber_regs_capture(struct amber_regs_state *st, struct amber_err *e);
void amber_regs_free(struct amber_regs_state *st);

#endif /* _AMBER_REGS_H */
