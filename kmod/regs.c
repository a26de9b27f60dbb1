// SPDX-License-Identifier: GPL-2.0
/*
 * User registers and FPU state of current, through the ptrace regsets: the
 * general regset gives struct user_regs_struct with FS/GS base read live,
 * the xstate regset syncs the live FPU registers and returns the standard
 * (non-compacted) XSAVE layout that restore feeds back through ->set.
 */
#include <linux/elf.h>
#include <linux/errno.h>
#include <linux/regset.h>
#include <linux/sched.h>
#include <linux/sched/task_stack.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <asm/ptrace.h>
#include <asm/unistd.h>
#include <asm/user.h>

#include "regs.h"

static const struct user_regset *amber_find_regset(unsigned int note_type)
{
	const struct user_regset_view *view = task_user_regset_view(current);
	unsigned int i;

	for (i = 0; i < view->n; i++) {
		const struct user_regset *rs = &view->regsets[i];

		if (rs->core_note_type != note_type || !rs->n)
			continue;
		if (rs->active && rs->active(current, rs) <= 0)
			continue;
		return rs;
	}
	return NULL;
}

/*
 * Records the registers as user space sees them once the system call exit
 * path has run: an interrupted restartable call is re-issued (ax = orig_ax,
 * ip back over the 2-byte syscall instruction). -ERESTART_RESTARTBLOCK is
 * re-issued as the original call too, since the restart_block does not
 * survive a restore.
 *
 * A target already inside restart_syscall (an earlier interruption, e.g. a
 * previous checkpoint that let it resume) cannot be re-issued: the original
 * call number is gone and restart_syscall would run whatever restart_block
 * the restored task inherits. It gets -EINTR instead, as if a handled signal
 * had interrupted the call, which every restartable call may return.
 *
 * orig_ax = -1 so nothing applies restart logic again.
 */
static void amber_regs_normalise(struct user_regs_struct *r)
{
	if ((long)r->orig_ax >= 0) {
		switch ((long)r->ax) {
		case -ERESTARTSYS:
		case -ERESTARTNOINTR:
		case -ERESTARTNOHAND:
		case -ERESTART_RESTARTBLOCK:
			if (r->orig_ax == __NR_restart_syscall) {
				r->ax = -EINTR;
				break;
			}
			r->ax = r->orig_ax;
			r->ip -= 2;
			break;
		}
	}
	r->orig_ax = -1UL;
}

static int amber_fpu_capture(struct amber_regs_state *st, struct amber_err *e)
{
	const struct user_regset *rs = amber_find_regset(NT_X86_XSTATE);
	unsigned int size;
	int ret;

	/* Without XSAVE, fall back to the legacy 512-byte FXSAVE area. */
	if (!rs)
		rs = amber_find_regset(NT_PRFPREG);
	if (!rs)
		return amber_fail(e, -EOPNOTSUPP, "no FPU register set on this CPU");

	size = rs->n * rs->size;
	st->fpu = kvzalloc(size, GFP_KERNEL);
	if (!st->fpu)
		return amber_fail(e, -ENOMEM, "out of memory for the FPU state");
	ret = regset_get(current, rs, size, st->fpu);
	if (ret < 0)
		return amber_fail(e, ret, "reading the FPU state failed");
	st->fpu_len = ret;
	return 0;
}

int amber_regs_capture(struct amber_regs_state *st, struct amber_err *e)
{
	const struct user_regset *rs = amber_find_regset(NT_PRSTATUS);
	struct user_regs_struct regs;
	int ret;

	BUILD_BUG_ON(sizeof(regs) != sizeof(st->regs));

	if (!user_64bit_mode(task_pt_regs(current)))
		return amber_fail(e, -EOPNOTSUPP, "32-bit processes are not supported yet");
	if (!rs)
		return amber_fail(e, -EOPNOTSUPP, "no general register set");
	memset(&regs, 0, sizeof(regs));
	ret = regset_get(current, rs, sizeof(regs), &regs);
	if (ret < 0)
		return amber_fail(e, ret, "reading the registers failed");
	if (ret != sizeof(regs))
		return amber_fail(e, -EIO, "short general register set");

	/*
	 * task_work also runs from inside some system calls (io_uring waits,
	 * KVM_RUN) where the registers still hold the entry state: the call
	 * has no result yet and cannot be described. Real returns of -ENOSYS
	 * are refused too; a retry gets past them.
	 */
	if ((long)regs.orig_ax >= 0 && (long)regs.ax == -ENOSYS)
		return amber_fail_retry(e, -EAGAIN,
					"the process was stopped inside a system call (io_uring, KVM?), try again");

	amber_regs_normalise(&regs);
	/* user_regs_struct and enum amber_reg share their order. */
	memcpy(st->regs, &regs, sizeof(regs));

	return amber_fpu_capture(st, e);
}

void amber_regs_free(struct amber_regs_state *st)
{
	kvfree(st->fpu);
	st->fpu = NULL;
}
