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
 * The pointer is called indirectly. The Debian 6.1 kernel is built without
 * CONFIG_X86_KERNEL_IBT. On a kernel with IBT, objtool seals functions whose
 * address is never taken (their ENDBR becomes a NOP) and this call would
 * trap: such a kernel would need another route, which is why this stays the
 * only use and is refused at load if the symbol is missing.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/ptrace.h>

#include "ksyms.h"

typedef unsigned long (*amber_kallsyms_lookup_name_t)(const char *name);
typedef bool (*amber_ptrace_may_access_t)(struct task_struct *task,
					  unsigned int mode);

/* Written once in amber_ksyms_init(), read-only afterwards. */
static amber_ptrace_may_access_t amber_ptrace_may_access_fn __ro_after_init;

static unsigned long amber_lookup(const char *name)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	amber_kallsyms_lookup_name_t lookup;
	int ret;

	ret = register_kprobe(&kp);
	if (ret < 0) {
		pr_err("cannot place a kprobe on kallsyms_lookup_name: %d\n",
		       ret);
		return 0;
	}
	lookup = (amber_kallsyms_lookup_name_t)kp.addr;
	unregister_kprobe(&kp);
	return lookup ? lookup(name) : 0;
}

int amber_ksyms_init(void)
{
	unsigned long addr = amber_lookup("ptrace_may_access");

	if (!addr) {
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
