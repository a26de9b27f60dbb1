// SPDX-License-Identifier: GPL-2.0
/*
 * Process-wide task state of current: comm, personality, umask, cwd,
 * rlimits, exe path, start time, dumpable mode and no_new_privs (the
 * credentials are creds.c's, the signals signal.c's, each thread's
 * registrations thread.c's). A restore sets the personality, the dumpable
 * mode and no_new_privs; the stub set the rest with system calls.
 */
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/mm.h>
#include <linux/personality.h>
#include <linux/path.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/seccomp.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "creds.h"
#include "path.h"
#include "restore.h"
#include "task.h"
#include "thread.h"

/* A restored process would run without its sandbox: refuse, by name. */
int amber_seccomp_check(struct task_struct *tsk, struct amber_err *e)
{
#ifdef CONFIG_SECCOMP
	if (READ_ONCE(tsk->seccomp.mode) != SECCOMP_MODE_DISABLED)
		return amber_fail(e, -EOPNOTSUPP, "seccomp filters are not supported yet");
#endif
	return 0;
}

static char *amber_exe_path(struct mm_struct *mm)
{
	struct file *exe;
	char *path;

	exe = amber_get_mm_exe_file(mm);
	if (!exe)
		return NULL;
	path = amber_path_dup(&exe->f_path);
	fput(exe);
	return path;
}

static int amber_cwd_capture(struct amber_task_state *st, struct amber_err *e)
{
	struct path pwd;

	get_fs_pwd(current->fs, &pwd);
	st->cwd = amber_path_dup(&pwd);
	path_put(&pwd);
	if (IS_ERR(st->cwd)) {
		int err = PTR_ERR(st->cwd);

		st->cwd = NULL;
		return amber_fail(e, err, "cannot resolve the current directory");
	}

	spin_lock(&current->fs->lock);
	st->umask = current->fs->umask;
	spin_unlock(&current->fs->lock);
	return 0;
}

int amber_task_capture(struct amber_task_state *st, struct amber_err *e)
{
	struct task_struct *tsk = current;
	int err;

	get_task_comm(st->comm, tsk);
	err = amber_creds_capture(&st->cred, e);
	if (err)
		return err;
	st->personality = tsk->personality;
	st->start_time_ns = tsk->start_boottime;
	st->dumpable = get_dumpable(tsk->mm);
	st->no_new_privs = task_no_new_privs(tsk);
	err = amber_seccomp_check(tsk, e);
	if (!err)
		err = amber_cwd_capture(st, e);
	if (err)
		return err;

	/* As do_prlimit() reads them. */
	task_lock(tsk->group_leader);
	memcpy(st->rlim, tsk->signal->rlim, sizeof(st->rlim));
	task_unlock(tsk->group_leader);

	st->exe = amber_exe_path(tsk->mm);
	if (IS_ERR(st->exe)) {
		err = PTR_ERR(st->exe);
		st->exe = NULL;
		return amber_fail(e, err, "cannot resolve the executable's path");
	}
	return 0;
}

void amber_task_free(struct amber_task_state *st)
{
	amber_creds_free(&st->cred);
	kfree(st->cwd);
	st->cwd = NULL;
	kfree(st->exe);
	st->exe = NULL;
}

/* ---- restore ---- */

/* AMBER_A_TASK: rseq, robust list, clear_child_tid, sigaltstack, personality, creds. */
int amber_restore_task_prepare(struct amber_restore *r)
{
	const struct amber_task_args *a = &r->args->task;
	int err;

	r->t.sas_flags = SS_DISABLE;
	if (!a->nla)
		return 0;
	err = amber_rregn_prepare(r, &a->regn, &r->t);
	if (err)
		return err;
	if (a->personality.nla) {
		r->personality = a->personality.val;
		if (r->personality == 0xffffffff) {
			amber_restore_err(r, a->personality.nla, "invalid personality");
			return -EINVAL;
		}
		r->has_personality = true;
	}
	/* An image that does not say is restored non-dumpable: the safe side. */
	r->dumpable = a->dumpable.nla ? a->dumpable.val : SUID_DUMP_DISABLE;
	r->no_new_privs = a->no_new_privs.val;
	return amber_restore_creds_prepare(r);
}

/* Phase B, before the signals: the leader's registrations and personality. */
void amber_restore_task_commit(struct amber_restore *r)
{
	amber_rregn_commit(&r->t);
	if (r->has_personality)
		set_personality(r->personality);
}

/* Phase B, after the credentials: dumpable mode and no_new_privs. */
void amber_restore_dumpable_commit(struct amber_restore *r)
{
	/*
	 * commit_creds() made the mm non-dumpable if the ids changed. The
	 * restored program gets the image's dumpable mode (set_dumpable() is
	 * not exported), but never more than exec would give it: a process whose
	 * real and effective ids differ stays as commit_creds() left it, and a
	 * program that made itself non-dumpable stays non-dumpable.
	 */
	if (r->dumpable != SUID_DUMP_USER ||
	    (uid_eq(current_euid(), current_uid()) && gid_eq(current_egid(), current_gid())))
		set_mask_bits(&current->mm->flags, MMF_DUMPABLE_MASK, r->dumpable);
	if (r->no_new_privs)
		task_set_no_new_privs(current);
}
