// SPDX-License-Identifier: GPL-2.0
/*
 * The one place amber reaches an unexported kernel function.
 *
 * CHECKPOINT must apply the same access rule as ptrace attach
 * (ptrace_may_access(task, PTRACE_MODE_ATTACH_REALCREDS): same uids or
 * CAP_SYS_PTRACE in the target's user namespace, dumpable, LSM hooks such as
 * Yama). No exported function performs that check, and re-implementing it
 * would silently skip the LSM and dumpability rules, so the real function is
 * looked up once at module load. kallsyms_lookup_name itself is not exported
 * since 5.7; its address is read from a kprobe placed on it and the kprobe
 * removed at once. If anything here fails, the module refuses to load rather
 * than run without the check.
 *
 * The pointers are called indirectly. The Debian 6.1 kernel is built without
 * CONFIG_X86_KERNEL_IBT; Debian's 6.12 has it. With IBT enforced (a CPU with
 * CET-IBT, not disabled by ibt=off), an indirect call must land on an ENDBR
 * instruction: a kprobe's address skips a leading ENDBR
 * (arch_adjust_kprobe_addr()), so the function start is taken 4 bytes back,
 * and objtool seals functions whose address is never taken (their ENDBR
 * becomes a NOP), so a target without ENDBR is refused at load rather than
 * called into a #CP fault. This is why this stays the only use.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kprobes.h>
#include <linux/uaccess.h>
#include <asm/cpufeature.h>
#include <asm/ibt.h>
#include <linux/module.h>
#include <linux/ptrace.h>

#include "ksyms.h"

typedef unsigned long (*amber_kallsyms_lookup_name_t)(const char *name);
typedef bool (*amber_ptrace_may_access_t)(struct task_struct *task,
					  unsigned int mode);

/* Written once in amber_ksyms_init(), read-only afterwards. */
static amber_ptrace_may_access_t amber_ptrace_may_access_fn __ro_after_init;

/* Whether *@addr starts with ENDBR64 (always false without IBT support). */
static bool amber_at_endbr(unsigned long addr)
{
	u32 insn;

	return !copy_from_kernel_nofault(&insn, (void *)addr, sizeof(insn)) &&
	       is_endbr(insn);
}

/*
 * Whether an indirect call to @addr is safe: with IBT enforced it must land
 * on ENDBR.
 */
static bool amber_callable(const char *name, unsigned long addr)
{
	if (!cpu_feature_enabled(X86_FEATURE_IBT) || amber_at_endbr(addr))
		return true;
	pr_err("%s has no ENDBR and IBT is enforced: cannot call it\n", name);
	return false;
}

static unsigned long amber_lookup(const char *name)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	amber_kallsyms_lookup_name_t lookup;
	unsigned long addr;
	int ret;

	ret = register_kprobe(&kp);
	if (ret < 0) {
		pr_err("cannot place a kprobe on kallsyms_lookup_name: %d\n",
		       ret);
		return 0;
	}
	addr = (unsigned long)kp.addr;
	unregister_kprobe(&kp);
	if (!addr)
		return 0;
	/* The probe sits after a leading ENDBR: the function starts there. */
	if (IS_ENABLED(CONFIG_X86_KERNEL_IBT) && amber_at_endbr(addr - 4))
		addr -= 4;
	if (!amber_callable("kallsyms_lookup_name", addr))
		return 0;
	lookup = (amber_kallsyms_lookup_name_t)addr;
	return lookup(name);
}

int amber_ksyms_init(void)
{
	unsigned long addr = amber_lookup("ptrace_may_access");

	if (!addr || !amber_callable("ptrace_may_access", addr)) {
		pr_err("cannot resolve ptrace_may_access, refusing to load\n");
		return -ENOENT;
	}
	amber_ptrace_may_access_fn = (amber_ptrace_may_access_t)addr;
	return 0;
}

bool amber_ptrace_may_access(struct task_struct *task, unsigned int mode)
{
	return amber_ptrace_may_access_fn(task, mode);
}
