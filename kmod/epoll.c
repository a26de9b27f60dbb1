// SPDX-License-Identifier: GPL-2.0
/*
 * epoll: its interest list. The tool recreates the instance with
 * epoll_create1() and adds every registration again with EPOLL_CTL_ADD once
 * its target exists, under the fd number it was added under; the kernel
 * rebuilds the ready list.
 *
 * struct eventpoll and struct epitem are private to fs/eventpoll.c, so the
 * interest list is read from the epoll's own fdinfo, by calling its
 * ->show_fdinfo into a private seq_file (as eventfd.c does), one line per
 * registration:
 *   "tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x"
 * A registration is keyed by (file, fd) and outlives close(fd) until the file
 * itself is released. Its target is taken to be the file open under that fd
 * number now, when that file has the inode fdinfo printed and is watched by
 * some epoll (f_ep); otherwise the fd was closed (or reused) since the
 * EPOLL_CTL_ADD, which epoll_ctl() cannot recreate: refused by name.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>

#include <linux/amber.h>

#include "epoll.h"

#define AMBER_EPOLL_PATH	"anon_inode:[eventpoll]"
/* Enough for AMBER_EPOLL_MAX_TFDS lines of at most 100 characters. */
#define AMBER_EPOLL_FDINFO_MAX	(128 << 10)

struct amber_epoll_line {
	int tfd;
	u32 events;
	u64 data;
	unsigned long ino;
	u32 sdev;
};

/* The epoll's fdinfo text, in a kvmalloc()ed buffer, or an ERR_PTR. */
static char *amber_epoll_fdinfo(struct file *file)
{
	size_t size;
	char *buf;

	for (size = PAGE_SIZE; size <= AMBER_EPOLL_FDINFO_MAX; size *= 2) {
		struct seq_file m = { .size = size - 1 };

		buf = kvmalloc(size, GFP_KERNEL_ACCOUNT);
		if (!buf)
			return ERR_PTR(-ENOMEM);
		m.buf = buf;
		file->f_op->show_fdinfo(&m, file);
		if (!seq_has_overflowed(&m)) {
			buf[m.count] = 0;
			return buf;
		}
		kvfree(buf);
	}
	return ERR_PTR(-E2BIG);
}

/* The target of @l, in current's fd table: its file id, or 0 if gone. */
static u64 amber_epoll_target(struct amber_fileids *ids,
			      const struct amber_epoll_line *l)
{
	struct file *t = fget_raw(l->tfd);
	u64 id = 0;

	if (!t)
		return 0;
	if (file_inode(t)->i_ino == l->ino &&
	    file_inode(t)->i_sb->s_dev == l->sdev && READ_ONCE(t->f_ep))
		id = amber_fileids_get(ids, t);
	fput(t);
	return id;
}

/* Parses @buf into @f->epoll_tfds, each with its target's file id. */
static int amber_epoll_parse(struct amber_fd *f, const char *buf,
			     struct amber_fileids *ids, struct amber_err *e)
{
	struct amber_epoll_line l;
	const char *p;
	unsigned int n = 0;

	for (p = buf; (p = strstr(p, "tfd:")); p++)
		n++;
	if (n > AMBER_EPOLL_MAX_TFDS)
		return amber_fail(e, -E2BIG,
				  amber_msg("fd %u: %s: more than %d registrations are not supported",
					    f->num, f->path, AMBER_EPOLL_MAX_TFDS));
	f->epoll_tfds = kcalloc(max(n, 1U), sizeof(*f->epoll_tfds), GFP_KERNEL_ACCOUNT);
	if (!f->epoll_tfds)
		return amber_fail(e, -ENOMEM, "out of memory for an epoll's interest list");
	for (p = buf; f->nr_epoll < n && (p = strstr(p, "tfd:")); p++) {
		struct amber_epoll_tfd *t = &f->epoll_tfds[f->nr_epoll];

		if (sscanf(p, "tfd: %d events: %x data: %llx pos:%*d ino:%lx sdev:%x",
			   &l.tfd, &l.events, &l.data, &l.ino, &l.sdev) != 5 || l.tfd < 0)
			return amber_fail(e, -EOPNOTSUPP,
					  amber_msg("fd %u: %s: cannot read its interest list on this kernel",
						    f->num, f->path));
		t->file_id = amber_epoll_target(ids, &l);
		if (!t->file_id)
			return amber_fail(e, -EOPNOTSUPP,
					  amber_msg("fd %u: %s: watches fd %d (inode %lu), closed since it was added",
						    f->num, f->path, l.tfd, l.ino));
		t->tfd = l.tfd;
		t->events = l.events;
		t->data = l.data;
		f->nr_epoll++;
	}
	return 0;
}

int amber_epoll_capture(struct amber_fd *f, struct file *file,
			struct amber_fileids *ids, struct amber_err *e)
{
	char *buf;
	int err;

	if (f->type != AMBER_FD_OTHER || !f->path ||
	    strcmp(f->path, AMBER_EPOLL_PATH) || !file->f_op->show_fdinfo)
		return 0;
	buf = amber_epoll_fdinfo(file);
	if (IS_ERR(buf))
		return amber_fail(e, PTR_ERR(buf),
				  amber_msg("fd %u: %s: cannot read its interest list",
					    f->num, f->path));
	f->epoll = true;
	err = amber_epoll_parse(f, buf, ids, e);
	kvfree(buf);
	return err;
}
