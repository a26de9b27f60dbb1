/* SPDX-License-Identifier: GPL-2.0 */
/* The fd table. */
#ifndef _AMBER_FILES_H
#define _AMBER_FILES_H

#include <linux/types.h>

#include "msg.h"

struct file;
struct kstat;
struct path;

struct amber_fd {
	u32 num;
	u32 type;	/* enum amber_fd_type */
	u32 flags;	/* f_flags */
	u32 mode;	/* i_mode */
	u64 pos;
	u64 dev;	/* st_dev encoding */
	u64 ino;
	u64 rdev;
	u64 size;
	bool cloexec;
	bool tty;
	char *path;
};

struct amber_files_state {
	struct amber_fd *fds;
	unsigned int nr;
};

int amber_files_capture(struct amber_files_state *st, struct amber_err *e);
void amber_files_free(struct amber_files_state *st);

char *amber_path_dup(const struct path *path);
void amber_stat_file(struct file *file, struct kstat *st);

#endif /* _AMBER_FILES_H */
