/* SPDX-License-Identifier: GPL-2.0 */
/* User registers and extended FPU state: capture and restore. */
#ifndef _AMBER_REGS_H
#define _AMBER_REGS_H

#include <linux/amber.h>
#include <linux/types.h>

#include "msg.h"
#include "restore_args.h"

struct amber_restore;

struct amber_regs_state {
	u64 regs[AMBER_REG_MAX];	/* index AMBER_REG_x - 1 */
	void *fpu;			/* XSAVE (or FXSAVE) area, UABI layout */
	unsigned int fpu_len;
};

int amber_regs_capture(struct amber_regs_state *st, struct amber_err *e);
void amber_regs_free(struct amber_regs_state *st);

/* User registers and xstate of one thread, validated for restore. */
struct amber_rregs {
	u64 regs[AMBER_REG_MAX + 1];	/* indexed by enum amber_reg */
	void *xsave;			/* UABI layout, NULL = keep */
};

/* Validates one thread's REGS and FPU (no FPU: keep the xstate). */
int amber_rregs_prepare(struct amber_restore *r, const struct amber_regs_args *a,
			struct amber_rregs *out);
void amber_rregs_free(struct amber_rregs *rr);
/* In current's context, on its way to user mode: writes @rr. */
void amber_rregs_write(const struct amber_rregs *rr);

/* The leader's: validated (phase A), dropped, queued as a task_work (phase C). */
int amber_restore_regs_prepare(struct amber_restore *r);
void amber_restore_regs_release(struct amber_restore *r);
int amber_restore_regs_queue(struct amber_restore *r);

#endif /* _AMBER_REGS_H */
