/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel internals that are not exported to modules. */
#ifndef _AMBER_KSYMS_H
#define _AMBER_KSYMS_H

#include <linux/types.h>

struct task_struct;

int amber_ksyms_init(void);
bool amber_ptrace_may_access(struct task_struct *task, unsigned int mode);

#endif /* _AMBER_KSYMS_H */
