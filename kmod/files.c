// SPDX-License-Identifier: GPL-2.0
/*
 * The fd table of current. Nothing is refused here: every fd is described
 * (type, flags, offset, path as d_path() renders it, "pipe:[ino]" and the
 * like included) and the tools decide what they can restore.
 */
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kdev_t.h>
#include <linux/major.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/stat.h>
#include <linux/slab.h>
#include <linux/string.h>

#include <linux/amber.h>

#include "files.h"

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

static u32 amber_fd_type(umode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return AMBER_FD_REG;
	case S_IFDIR:
		return AMBER_FD_DIR;
	case S_IFCHR:
		return AMBER_FD_CHR;
	case S_IFBLK:
		return AMBER_FD_BLK;
	case S_IFIFO:
		return AMBER_FD_FIFO;
	case S_IFSOCK:
		return AMBER_FD_SOCK;
	default:
		return AMBER_FD_OTHER;	/* anon inodes have no type bits */
	}
}

/*
 * The tty driver's fops are not exported, so terminals are recognised by
 * major number: 4 (tty, ttyS), 5 (/dev/tty, console, ptmx), 136-143 (pts).
 */
static bool amber_is_tty(umode_t mode, dev_t rdev)
{
	unsigned int major = MAJOR(rdev);

	if (!S_ISCHR(mode))
		return false;
	return major == TTY_MAJOR || major == TTYAUX_MAJOR ||
	       (major >= UNIX98_PTY_SLAVE_MAJOR &&
		major < UNIX98_PTY_SLAVE_MAJOR + UNIX98_PTY_MAJOR_COUNT);
}

static int amber_fd_fill(struct amber_fd *fd, struct file *file)
{
	struct kstat st;

	amber_stat_file(file, &st);
	/* Anon inodes have no type bits; stat() may make some up. */
	fd->mode = st.mode;
	fd->type = amber_fd_type(file_inode(file)->i_mode);
	fd->flags = file->f_flags;
	fd->pos = file->f_pos;
	fd->dev = new_encode_dev(st.dev);
	fd->ino = st.ino;
	fd->rdev = new_encode_dev(st.rdev);
	fd->size = st.size;
	fd->tty = amber_is_tty(st.mode, st.rdev);
	fd->path = amber_path_dup(&file->f_path);
	if (IS_ERR(fd->path)) {
		int err = PTR_ERR(fd->path);

		fd->path = NULL;
		return err;
	}
	return 0;
}

#define AMBER_MAX_FDS	65536

static int amber_files_grow(struct amber_files_state *st, unsigned int *cap)
{
	unsigned int ncap = *cap ? *cap * 2 : 16;
	struct amber_fd *fds;

	fds = kvcalloc(ncap, sizeof(*fds), GFP_KERNEL_ACCOUNT);
	if (!fds)
		return -ENOMEM;
	if (st->nr)
		memcpy(fds, st->fds, st->nr * sizeof(*fds));
	kvfree(st->fds);
	st->fds = fds;
	*cap = ncap;
	return 0;
}

/*
 * Finds the next open fd at or after @fd; returns false past the end of the
 * table. The fd number only ever grows, so the walk ends.
 */
static bool amber_next_fd(struct files_struct *files, unsigned int *fd,
			  bool *cloexec)
{
	struct fdtable *fdt;
	bool found = false;

	rcu_read_lock();
	fdt = files_fdtable(files);
	if (*fd < fdt->max_fds) {
		*fd = find_next_bit(fdt->open_fds, fdt->max_fds, *fd);
		if (*fd < fdt->max_fds) {
			*cloexec = close_on_exec(*fd, fdt);
			found = true;
		}
	}
	rcu_read_unlock();
	return found;
}

int amber_files_capture(struct amber_files_state *st, struct amber_err *e)
{
	struct files_struct *files = current->files;
	unsigned int fd = 0, cap = 0;
	struct file *file;
	bool cloexec;
	int err;

	if (!files)
		return 0;

	for (; amber_next_fd(files, &fd, &cloexec); fd++) {
		file = fget_raw(fd);
		if (!file)
			continue;	/* closed meanwhile */
		/* The target sizes these allocations: bound them. */
		if (st->nr >= AMBER_MAX_FDS) {
			fput(file);
			return amber_fail(e, -E2BIG,
					  "more than 65536 open fds are not supported");
		}
		if (st->nr == cap && amber_files_grow(st, &cap)) {
			fput(file);
			return amber_fail(e, -ENOMEM, "out of memory for the fd table");
		}
		st->fds[st->nr].num = fd;
		st->fds[st->nr].cloexec = cloexec;
		err = amber_fd_fill(&st->fds[st->nr], file);
		fput(file);
		if (err)
			return amber_fail(e, err,
					  amber_msg("fd %u: cannot resolve its path", fd));
		st->nr++;
	}
	return 0;
}

void amber_files_free(struct amber_files_state *st)
{
	unsigned int i;

	for (i = 0; i < st->nr; i++)
		kfree(st->fds[i].path);
	kvfree(st->fds);
	st->fds = NULL;
	st->nr = 0;
}
