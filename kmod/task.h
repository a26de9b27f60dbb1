/* SPDX-License-Identifier: GPL-2.0 */
/* Process-wide task state: comm, personality, umask, cwd, rlimits, exe. */
#ifndef _AMBER_TASK_H
#define _AMBER_TASK_H

#include <linux/resource.h>
#include <linux/sched.h>

#include "msg.h"

struct cred;

struct amber_task_state {
	char comm[TASK_COMM_LEN];
	const struct cred *cred;	/* reference; mapped to the caller's userns in the reply */
	u32 umask;
	u32 personality;
	char *cwd;
	struct rlimit rlim[RLIM_NLIMITS];
	char *exe;
	u64 start_time_ns;
	u32 dumpable;			/* SUID_DUMP_* */
	u32 no_new_privs;
};

int amber_task_capture(struct amber_task_state *st, struct amber_err *e);
void amber_task_free(struct amber_task_state *st);
/* Refuses, in @e, a task under seccomp: it would be restored without it. */
int amber_seccomp_check(struct task_struct *tsk, struct amber_err *e);

struct amber_restore;

/* Phase A: AMBER_A_TASK (the leader's registrations, personality, creds). */
int amber_restore_task_prepare(struct amber_restore *r);
/* Phase B: registrations and personality; then, after the credentials... */
void amber_restore_task_commit(struct amber_restore *r);
/* ...dumpable mode and no_new_privs. */
void amber_restore_dumpable_commit(struct amber_restore *r);

#endif /* _AMBER_TASK_H */
