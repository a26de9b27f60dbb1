// SPDX-License-Identifier: GPL-2.0
/*
 * eventfd: its count and its EFD_SEMAPHORE mode. The tool recreates it
 * with eventfd(count, flags); O_NONBLOCK is in the fd's f_flags as for any
 * file.
 *
 * The count is what the kernel prints in the eventfd's fdinfo
 * ("eventfd-count: %16llx", "eventfd-id: %d"), read here by calling the
 * file's own ->show_fdinfo into a private seq_file. Linux 6.1 does not
 * print the semaphore mode (6.7 and later print "eventfd-semaphore: %d",
 * used when present), and struct eventfd_ctx is private to the eventfd core.
 * Its 6.1 layout (unchanged through 6.12) is mirrored below and trusted
 * only when it agrees with what fdinfo printed: the same count and id, and
 * no flag bits other than EFD_SEMAPHORE, EFD_CLOEXEC, EFD_NONBLOCK. The
 * mirror is only read (the context is pinned by eventfd_ctx_fileget()), never
 * locked through or written, so a layout that changed is refused, not
 * crashed on. The group is stopped, but a process outside it may write to
 * the eventfd meanwhile: a disagreement is retried a few times.
 */
#include <linux/eventfd.h>
#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/wait.h>

#include <linux/amber.h>

#include "eventfd.h"

/* struct eventfd_ctx of Linux 6.1 (private to the eventfd core). */
struct amber_eventfd_ctx {
	struct kref kref;
	wait_queue_head_t wqh;
	__u64 count;
	unsigned int flags;
	int id;
};

#define AMBER_EFD_FLAGS	(EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK)
#define AMBER_FDINFO_SIZE	256

struct amber_efd_info {
	u64 count;
	int id;
	int semaphore;		/* -1: not printed */
};

/* Runs @file's ->show_fdinfo into @buf and parses it; -EINVAL if unparsable. */
static int amber_eventfd_fdinfo(struct file *file, char *buf, struct amber_efd_info *info)
{
	const char *p;

	if (amber_fdinfo_text(file, buf, AMBER_FDINFO_SIZE))
		return -EINVAL;
	p = strstr(buf, "eventfd-count:");
	if (!p || sscanf(p, "eventfd-count: %llx", &info->count) != 1)
		return -EINVAL;
	p = strstr(buf, "eventfd-id:");
	if (!p || sscanf(p, "eventfd-id: %d", &info->id) != 1)
		return -EINVAL;
	info->semaphore = -1;
	p = strstr(buf, "eventfd-semaphore:");
	if (p && sscanf(p, "eventfd-semaphore: %d", &info->semaphore) != 1)
		return -EINVAL;
	return 0;
}

int amber_eventfd_capture(struct amber_fd *f, struct file *file, struct amber_err *e)
{
	const struct amber_eventfd_ctx *mirror;
	struct amber_efd_info info;
	struct eventfd_ctx *ctx;
	int tries, err = 0;
	char *buf;

	ctx = eventfd_ctx_fileget(file);
	if (IS_ERR(ctx))
		return 0;	/* not an eventfd */
	mirror = (const struct amber_eventfd_ctx *)ctx;
	buf = kmalloc(AMBER_FDINFO_SIZE, GFP_KERNEL);
	if (!buf) {
		err = amber_fail(e, -ENOMEM, "out of memory for an eventfd's fdinfo");
		goto out_put;
	}
	for (tries = 0; tries < 4; tries++) {
		err = amber_eventfd_fdinfo(file, buf, &info);
		if (err)
			break;
		if (info.semaphore >= 0) {
			f->eventfd_sem = info.semaphore != 0;
			goto found;
		}
		if ((READ_ONCE(mirror->flags) & ~AMBER_EFD_FLAGS) ||
		    READ_ONCE(mirror->id) != info.id) {
			err = -EOPNOTSUPP;
			break;
		}
		if (READ_ONCE(mirror->count) == info.count) {
			f->eventfd_sem = READ_ONCE(mirror->flags) & EFD_SEMAPHORE;
			goto found;
		}
		err = -EAGAIN;	/* written to meanwhile */
	}
	err = amber_fail(e, err == -EAGAIN ? -EAGAIN : -EOPNOTSUPP,
			 amber_msg("fd %u: %s: %s", f->num, f->path,
				   err == -EAGAIN ? "its count kept changing" :
				   "cannot read its mode on this kernel"));
	goto out_free;
found:
	f->eventfd = true;
	f->eventfd_count = info.count;
	err = 0;
out_free:
	kfree(buf);
out_put:
	eventfd_ctx_put(ctx);
	return err;
}
