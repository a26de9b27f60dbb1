// SPDX-License-Identifier: GPL-2.0
/*
 * Files as the image names them: the path d_path() renders and the
 * attributes stat(2) reports, for every resource that refers to a file
 * (fds, mapped files, the executable, the current directory).
 */
#include <linux/dcache.h>
#include <linux/fs.h>
#include <linux/path.h>
#include <linux/slab.h>
#include <linux/stat.h>
#include <linux/string.h>

#include "path.h"

/* Returns a kmalloc'ed copy of d_path(@path) or an ERR_PTR. */
char *amber_path_dup(const struct path *path)
{
	char *buf, *p, *copy;

	buf = __getname();
	if (!buf)
		return ERR_PTR(-ENOMEM);
	p = d_path(path, buf, PATH_MAX);
	copy = IS_ERR(p) ? ERR_CAST(p) : kstrdup(p, GFP_KERNEL);
	__putname(buf);
	return copy ?: ERR_PTR(-ENOMEM);
}

/*
 * Attributes as stat(2) reports them, which is what the tools compare with
 * at restore: some filesystems (9p) do not keep i_size in the inode.
 */
void amber_stat_file(struct file *file, struct kstat *st)
{
	struct inode *inode = file_inode(file);

	if (!vfs_getattr(&file->f_path, st, STATX_BASIC_STATS,
			 AT_STATX_SYNC_AS_STAT))
		return;
	memset(st, 0, sizeof(*st));
	st->dev = inode->i_sb->s_dev;
	st->ino = inode->i_ino;
	st->mode = inode->i_mode;
	st->rdev = inode->i_rdev;
	st->size = i_size_read(inode);
}
