// SPDX-License-Identifier: GPL-2.0
/*
 * User registers, FS/GS base and xstate.
 *
 * Capture, of current, through the ptrace regsets: the general regset
 * gives struct user_regs_struct with FS/GS base read live, the xstate
 * regset syncs the live FPU registers and returns the standard
 * (non-compacted) XSAVE layout that restore feeds back through ->set.
 *
 * Restore: they are validated before the point of no return and written by
 * a task_work (TWA_RESUME) that runs on the way back to user mode, after
 * the system call exit path has stored sendmsg()'s return value in regs->ax.
 * A signal that the restored blocked mask leaves deliverable is still
 * delivered on the restored registers: get_signal() runs pending task_works
 * before it dequeues a signal, and resume_user_mode_work() runs them before
 * the rseq fixup, which therefore sees the restored instruction pointer.
 */
#include <linux/elf.h>
#include <linux/errno.h>
#include <linux/module.h>
#include <linux/regset.h>
#include <linux/sched.h>
#include <linux/sched/task_stack.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/task_work.h>
#include <asm/fpu/api.h>
#include <asm/fpu/types.h>
#include <asm/fpu/xcr.h>
#include <asm/fsgsbase.h>
#include <asm/pkru.h>
#include <asm/ptrace.h>
#include <asm/segment.h>
#include <asm/unistd.h>
#include <asm/user.h>

#include "regs.h"
#include "restore.h"

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

static int amber_regs_selectors_check(u64 cs, u64 ss, const u64 *seg, const char **msg);

int amber_regs_capture(struct amber_regs_state *st, struct amber_err *e)
{
	const struct user_regset *rs = amber_find_regset(NT_PRSTATUS);
	struct user_regs_struct regs;
	const char *msg;
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
	/* What restore's amber_restore_regs_check() would refuse. */
	if (amber_regs_selectors_check(st->regs[AMBER_REG_CS - 1], st->regs[AMBER_REG_SS - 1],
				       &st->regs[AMBER_REG_DS - 1], &msg) >= 0)
		return amber_fail(e, -EOPNOTSUPP, msg);

	return amber_fpu_capture(st, e);
}

void amber_regs_free(struct amber_regs_state *st)
{
	kvfree(st->fpu);
	st->fpu = NULL;
}

/* ---- restore ---- */

/* User-changeable EFLAGS bits, as FLAG_MASK in arch/x86/kernel/ptrace.c. */
#define AMBER_FLAG_MASK	(X86_EFLAGS_CF | X86_EFLAGS_PF | X86_EFLAGS_AF |	\
			 X86_EFLAGS_ZF | X86_EFLAGS_SF | X86_EFLAGS_TF |	\
			 X86_EFLAGS_DF | X86_EFLAGS_OF | X86_EFLAGS_RF |	\
			 X86_EFLAGS_AC | X86_EFLAGS_NT)

/* Smallest XSAVE area in UABI layout: legacy area plus header. */
#define AMBER_XSAVE_MIN	(sizeof(struct fxregs_state) + sizeof(struct xstate_header))

/* The leader's registers, written by a TWA_RESUME task_work. */
struct amber_restore_work {
	struct callback_head twork;
	struct amber_rregs rr;
	struct amber_rproc *proc;	/* reference */
};

static const char * const amber_reg_names[AMBER_REG_MAX + 1] = {
	[AMBER_REG_R15] = "r15", [AMBER_REG_R14] = "r14",
	[AMBER_REG_R13] = "r13", [AMBER_REG_R12] = "r12",
	[AMBER_REG_RBP] = "rbp", [AMBER_REG_RBX] = "rbx",
	[AMBER_REG_R11] = "r11", [AMBER_REG_R10] = "r10",
	[AMBER_REG_R9] = "r9", [AMBER_REG_R8] = "r8",
	[AMBER_REG_RAX] = "rax", [AMBER_REG_RCX] = "rcx",
	[AMBER_REG_RDX] = "rdx", [AMBER_REG_RSI] = "rsi",
	[AMBER_REG_RDI] = "rdi", [AMBER_REG_ORIG_RAX] = "orig_rax",
	[AMBER_REG_RIP] = "rip", [AMBER_REG_CS] = "cs",
	[AMBER_REG_EFLAGS] = "eflags", [AMBER_REG_RSP] = "rsp",
	[AMBER_REG_SS] = "ss", [AMBER_REG_FS_BASE] = "fs_base",
	[AMBER_REG_GS_BASE] = "gs_base", [AMBER_REG_DS] = "ds",
	[AMBER_REG_ES] = "es", [AMBER_REG_FS] = "fs", [AMBER_REG_GS] = "gs",
};

/*
 * The segment selectors a restore can give back: a 64-bit user cs:ss, ds
 * and es null or __USER_DS, fs and gs null (an LDT or GDT TLS selector loaded
 * by modify_ldt() or set_thread_area() cannot be). Capture and restore both
 * call it, so a checkpoint refuses what its restore would, with the same
 * message. seg: ds, es, fs, gs in that order. Returns the register at fault
 * (*msg: why), or -1.
 */
static int amber_regs_selectors_check(u64 cs, u64 ss, const u64 *seg, const char **msg)
{
	int i, reg;

	if (cs != __USER_CS || ss != __USER_DS) {
		*msg = amber_msg("cs:ss %llx:%llx is not a 64-bit user context (%x:%x)",
				 cs, ss, __USER_CS, __USER_DS);
		return AMBER_REG_CS;
	}
	for (i = 0; i <= AMBER_REG_GS - AMBER_REG_DS; i++) {
		reg = AMBER_REG_DS + i;
		if (!seg[i] || (reg <= AMBER_REG_ES && seg[i] == __USER_DS))
			continue;
		if (reg <= AMBER_REG_ES)
			*msg = amber_msg("%s selector 0x%llx is not supported",
					 amber_reg_names[reg], seg[i]);
		else
			*msg = amber_msg("%s selector 0x%llx is not supported (TLS segments)",
					 amber_reg_names[reg], seg[i]);
		return reg;
	}
	return -1;
}

/* Validate the general registers like putreg() and sigreturn do. */
static int amber_restore_regs_check(struct amber_restore *r,
				    const struct amber_regs_args *a, u64 *regs)
{
	const struct amber_nl_u64 *tb = a->reg;
	const char *msg;
	static const int user_addr[] = {
		AMBER_REG_RIP, AMBER_REG_RSP, AMBER_REG_FS_BASE, AMBER_REG_GS_BASE,
	};
	int i;

	for (i = AMBER_REG_R15; i <= AMBER_REG_MAX; i++) {
		if (tb[i].nla) {
			regs[i] = tb[i].val;
		} else if (i < AMBER_REG_DS) {
			amber_restore_err(r, a->nla, "register %s is missing",
					  amber_reg_names[i]);
			return -EINVAL;
		}
	}

	for (i = 0; i < ARRAY_SIZE(user_addr); i++) {
		if (regs[user_addr[i]] >= TASK_SIZE_MAX) {
			amber_restore_err(r, tb[user_addr[i]].nla,
					  "%s 0x%llx is not a user address",
					  amber_reg_names[user_addr[i]],
					  regs[user_addr[i]]);
			return -EINVAL;
		}
	}
	i = amber_regs_selectors_check(regs[AMBER_REG_CS], regs[AMBER_REG_SS],
				       &regs[AMBER_REG_DS], &msg);
	if (i >= 0) {
		amber_restore_err(r, tb[i].nla, "%s", msg);
		return -EINVAL;
	}
	return 0;
}

/* Size of the xstate regset, i.e. of a complete UABI XSAVE buffer. */
static unsigned int amber_xstate_uabi_size(void)
{
	const struct user_regset_view *view = task_user_regset_view(current);
	unsigned int i;

	if (!boot_cpu_has(X86_FEATURE_XSAVE))
		return sizeof(struct fxregs_state);
	for (i = 0; i < view->n; i++) {
		if (view->regsets[i].core_note_type == NT_X86_XSTATE)
			return view->regsets[i].n * view->regsets[i].size;
	}
	return 0;
}

static u64 amber_xcr0(void)
{
	return boot_cpu_has(X86_FEATURE_XSAVE) ? xgetbv(XCR_XFEATURE_ENABLED_MASK) : 0;
}

/*
 * Run the kernel's own UABI xstate validation (header, reserved bytes,
 * MXCSR) on a scratch copy of current's fpstate, so that a bad blob is
 * refused before the point of no return.
 */
static int amber_restore_fpu_dry_run(const void *xsave)
{
	struct fpstate *live = current->thread.fpu.fpstate;
	size_t head = offsetof(struct fpstate, regs);
	struct fpu_guest g = {};
	struct fpstate *scratch;
	u32 pkru = 0;
	int err;

	scratch = kvzalloc(max_t(size_t, sizeof(*scratch), head + live->size),
			   GFP_KERNEL);
	if (!scratch)
		return -ENOMEM;
	memcpy(scratch, live, head);
	scratch->regs.xsave.header.xcomp_bv = live->regs.xsave.header.xcomp_bv;
	g.fpstate = scratch;
	err = fpu_copy_uabi_to_guest_fpstate(&g, xsave, amber_xcr0(), &pkru);
	kvfree(scratch);
	return err;
}

static int amber_restore_fpu_check(struct amber_restore *r,
				   const struct amber_regs_args *a, void **out)
{
	struct fpstate *live = current->thread.fpu.fpstate;
	const struct nlattr *attr = a->fpu;
	unsigned int len = a->xsave_len, size, min;
	struct xregs_state *xsave;
	u64 xfeatures;
	int err;

	size = amber_xstate_uabi_size();
	min = boot_cpu_has(X86_FEATURE_XSAVE) ? AMBER_XSAVE_MIN : sizeof(struct fxregs_state);
	if (len < min || len > size) {
		amber_restore_err(r, attr,
				  "xstate is %u bytes, this kernel takes %u to %u",
				  len, min, size);
		return -EINVAL;
	}

	/* Zero-filled beyond the image's size: its xfeatures say what is read. */
	xsave = kvzalloc(max_t(size_t, size, sizeof(struct xregs_state)), GFP_KERNEL);
	if (!xsave)
		return -ENOMEM;
	memcpy(xsave, a->xsave, len);

	xfeatures = xsave->header.xfeatures;
	if (boot_cpu_has(X86_FEATURE_XSAVE) &&
	    (xfeatures & ~live->user_xfeatures || xfeatures & live->xfd)) {
		amber_restore_err(r, attr,
				  "xstate features 0x%llx not enabled here (0x%llx)",
				  xfeatures, live->user_xfeatures & ~live->xfd);
		err = -EINVAL;
		goto err_free;
	}
	err = amber_restore_fpu_dry_run(xsave);
	if (err) {
		amber_restore_err(r, attr,
				  "xstate rejected by the kernel (header, reserved bits or MXCSR)");
		goto err_free;
	}
	*out = xsave;
	return 0;

err_free:
	kvfree(xsave);
	return err;
}

/* Validate one thread's REGS and FPU (no FPU: keep the xstate). */
int amber_rregs_prepare(struct amber_restore *r, const struct amber_regs_args *a,
			struct amber_rregs *out)
{
	int err;

	err = amber_restore_regs_check(r, a, out->regs);
	if (!err && a->fpu)
		err = amber_restore_fpu_check(r, a, &out->xsave);
	return err;
}

void amber_rregs_free(struct amber_rregs *rr)
{
	kvfree(rr->xsave);
	rr->xsave = NULL;
}

int amber_restore_regs_prepare(struct amber_restore *r)
{
	struct amber_restore_work *w;
	int err;

	if (!r->args->regs.nla) {
		NL_SET_ERR_ATTR_MISS(r->extack, NULL, AMBER_A_REGS);
		amber_restore_err(r, NULL, "registers (AMBER_A_REGS) are missing");
		return -EINVAL;
	}
	w = kzalloc(sizeof(*w), GFP_KERNEL);
	if (!w)
		return -ENOMEM;
	err = amber_rregs_prepare(r, &r->args->regs, &w->rr);
	if (err)
		goto err_free;
	r->work = w;
	return 0;

err_free:
	amber_rregs_free(&w->rr);
	kfree(w);
	return err;
}

static void amber_restore_work_free(struct amber_restore_work *w)
{
	if (w->proc)
		amber_rproc_put(w->proc);
	amber_rregs_free(&w->rr);
	kfree(w);
}

void amber_restore_regs_release(struct amber_restore *r)
{
	if (r->work)
		amber_restore_work_free(r->work);
	r->work = NULL;
}

static void amber_restore_write_regs(const u64 *v)
{
	struct pt_regs *regs = task_pt_regs(current);

	regs->r15 = v[AMBER_REG_R15];
	regs->r14 = v[AMBER_REG_R14];
	regs->r13 = v[AMBER_REG_R13];
	regs->r12 = v[AMBER_REG_R12];
	regs->bp = v[AMBER_REG_RBP];
	regs->bx = v[AMBER_REG_RBX];
	regs->r11 = v[AMBER_REG_R11];
	regs->r10 = v[AMBER_REG_R10];
	regs->r9 = v[AMBER_REG_R9];
	regs->r8 = v[AMBER_REG_R8];
	regs->ax = v[AMBER_REG_RAX];
	regs->cx = v[AMBER_REG_RCX];
	regs->dx = v[AMBER_REG_RDX];
	regs->si = v[AMBER_REG_RSI];
	regs->di = v[AMBER_REG_RDI];
	/* Not in a system call: no restart logic applies on the way out. */
	regs->orig_ax = -1;
	regs->ip = v[AMBER_REG_RIP];
	regs->cs = __USER_CS;
	regs->flags = (regs->flags & ~AMBER_FLAG_MASK) |
		      (v[AMBER_REG_EFLAGS] & AMBER_FLAG_MASK);
	regs->sp = v[AMBER_REG_RSP];
	regs->ss = __USER_DS;

	loadsegment(ds, v[AMBER_REG_DS]);
	loadsegment(es, v[AMBER_REG_ES]);
}

/*
 * do_arch_prctl_64(ARCH_SET_FS / ARCH_SET_GS) for task == current;
 * x86_gsbase_write_cpu_inactive() is not exported, so its body is here.
 */
static void amber_restore_write_fsgs(unsigned long fsbase, unsigned long gsbase)
{
	unsigned long flags;

	preempt_disable();
	loadsegment(fs, 0);
	x86_fsbase_write_cpu(fsbase);
	current->thread.fsbase = fsbase;

	load_gs_index(0);
	if (boot_cpu_has(X86_FEATURE_FSGSBASE) &&
	    !cpu_feature_enabled(X86_FEATURE_XENPV)) {
		local_irq_save(flags);
		native_swapgs();
		wrgsbase(gsbase);
		native_swapgs();
		local_irq_restore(flags);
	} else {
		wrmsrl(MSR_KERNEL_GS_BASE, gsbase);
	}
	current->thread.gsbase = gsbase;
	preempt_enable();
}

/*
 * Load the validated UABI xstate into current's fpstate. kernel_fpu_begin
 * saves the live user registers into fpstate (unless already saved), sets
 * TIF_NEED_FPU_LOAD and keeps preemption off, so the exit path reloads the
 * registers from what is written here. PKRU
 * is not part of that reload (it is switched eagerly): write it here.
 */
static int amber_restore_write_fpu(const void *xsave)
{
	struct fpu_guest g = { .fpstate = current->thread.fpu.fpstate };
	const struct xregs_state *x = xsave;
	u64 xcr0 = amber_xcr0();
	int err;

	kernel_fpu_begin_mask(0);
	err = fpu_copy_uabi_to_guest_fpstate(&g, xsave, xcr0,
					     &current->thread.pkru);
	if (!err && !(x->header.xfeatures & XFEATURE_MASK_PKRU))
		current->thread.pkru = 0;	/* as XRSTOR of an init PKRU */
	if (!err)
		write_pkru(current->thread.pkru);
	/*
	 * __fpu_invalidate_fpregs_state(), as ptrace and sigreturn do: a CPU
	 * that still holds this task's old registers must not be trusted.
	 */
	current->thread.fpu.last_cpu = -1;
	kernel_fpu_end();
	return err;
}

/*
 * Write registers, FS/GS base and xstate of current, on its way to user
 * mode (from a task_work), with orig_ax = -1: no restart logic applies to
 * the system call current was in.
 */
void amber_rregs_write(const struct amber_rregs *rr)
{
	amber_restore_write_regs(rr->regs);
	amber_restore_write_fsgs(rr->regs[AMBER_REG_FS_BASE], rr->regs[AMBER_REG_GS_BASE]);
	/* Validated by the dry run: a failure here is a kernel bug. */
	if (rr->xsave && WARN_ON_ONCE(amber_restore_write_fpu(rr->xsave)))
		send_sig(SIGKILL, current, 1);
}

static void amber_restore_work_fn(struct callback_head *head)
{
	struct amber_restore_work *w = container_of(head, struct amber_restore_work, twork);

	/*
	 * A held restore waits here, before the first user instruction. Not
	 * released (KILL, the socket closed, the hold timed out): current
	 * must not return to the stub's registers over the image's memory,
	 * so it dies on the way out, whether or not a thread's SIGKILL
	 * reached it first.
	 */
	if (!(current->flags & PF_EXITING)) {
		if (amber_rproc_wait_release(w->proc))
			amber_rregs_write(&w->rr);
		else
			send_sig(SIGKILL, current, 1);
	}
	amber_restore_work_free(w);
	module_put(THIS_MODULE);
}

/* Last step of a restore: hand the registers over to the exit path. */
int amber_restore_regs_queue(struct amber_restore *r)
{
	struct amber_restore_work *w = r->work;
	int err;

	if (!try_module_get(THIS_MODULE))
		return -ENODEV;
	init_task_work(&w->twork, amber_restore_work_fn);
	amber_rproc_get(r->proc);
	w->proc = r->proc;
	err = task_work_add(current, &w->twork, TWA_RESUME);
	if (err) {
		w->proc = NULL;
		amber_rproc_put(r->proc);
		module_put(THIS_MODULE);
		return err;
	}
	r->work = NULL;		/* owned by the task_work now */
	return 0;
}
