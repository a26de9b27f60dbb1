/* SPDX-License-Identifier: GPL-2.0 */
#ifndef AMBER_INOTIFY_H
#define AMBER_INOTIFY_H

#include <linux/amber.h>

#include "fdtable.h"
#include "msg.h"

struct amber_inotify_watch {
	u32 wd;
	u32 mask;		/* IN_*, IN_ONESHOT and IN_EXCL_UNLINK included */
	u64 dev;		/* st_dev encoding */
	u64 ino;
	u32 handle_type;
	u32 handle_bytes;	/* 1..AMBER_INOTIFY_HANDLE_MAX */
	u8 handle[AMBER_INOTIFY_HANDLE_MAX];
};

/*
 * If @file is an inotify instance, fills @f's inotify fields (its watches);
 * 0 for any other file. Refuses (naming the fd) a watch without a file
 * handle (its file system cannot reopen inodes by handle), more than
 * AMBER_INOTIFY_MAX_WATCHES watches, a watch descriptor above
 * AMBER_INOTIFY_MAX_WD, and fdinfo it cannot parse.
 */
int amber_inotify_capture(struct amber_fd *f, struct file *file, struct amber_err *e);

#endif /* AMBER_INOTIFY_H */
