// SPDX-License-Identifier: GPL-2.0
/*
 * epoll: its interest list. The tool recreates the instance with
 * epoll_create1() and adds every registration again with EPOLL_CTL_ADD once
 * its target exists, under the fd number it was added under; the kernel
 * rebuilds the ready list.
 *
 * struct eventpoll and struct epitem are private to fs/eventpoll.c, so the
 * interest list is read from the epoll's own fdinfo, by calling its
 * ->show_fdinfo (amber_fdinfo_text(), as eventfd.c does), one line per
 * registration:
 *   "tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x"
 * A registration is keyed by (file, fd) and outlives close(fd) until the file
 * itself is released, so the fd number does not name its target. fdinfo
 * prints the target's inode; the target is the file of current's fd table,
 * under any fd number, with that inode and, on its own list of the epitems
 * that watch it (file->f_ep, under file->f_lock), one of this epoll with
 * this fd number, events and data. struct epitem is mirrored below (its 6.1
 * layout, unchanged through 6.12) and only read, under the lock that keeps
 * the list alive; a changed layout matches nothing and is refused, not
 * crashed on. A registration whose file is open in no fd of the process
 * (kept alive by something else) cannot be recreated by epoll_ctl():
 * refused by name.
 */
#include <linux/capability.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/rbtree.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/slab.h>
#include <linux/string.h>
/* after linux/fs.h and linux/capability.h, which it needs but lacks */
#include <linux/eventpoll.h>

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

/* struct epoll_filefd and struct epitem of Linux 6.1 (fs/eventpoll.c). */
struct amber_epoll_filefd {
	struct file *file;
	int fd;
} __packed;

struct amber_epitem {
	union {
		struct rb_node rbn;
		struct rcu_head rcu;
	};
	struct list_head rdllink;
	struct amber_epitem *next;
	struct amber_epoll_filefd ffd;
	bool dying;
	void *pwqlist;
	void *ep;			/* struct eventpoll, the epoll's private_data */
	struct hlist_node fllink;	/* on ffd.file->f_ep */
	void __rcu *ws;
	struct epoll_event event;
};

struct amber_epoll_find {
	const struct amber_epoll_line *l;
	const void *ep;
	struct file *found;		/* with a reference */
};

/* Whether @t is watched by the registration @x->l of @x->ep. */
static bool amber_epoll_watches(struct amber_epoll_find *x, struct file *t)
{
	const struct amber_epitem *epi;
	struct hlist_node *node;
	bool ret = false;

	if (file_inode(t)->i_ino != x->l->ino ||
	    file_inode(t)->i_sb->s_dev != x->l->sdev || !READ_ONCE(t->f_ep))
		return false;
	spin_lock(&t->f_lock);		/* keeps t->f_ep and its epitems */
	if (t->f_ep)
		hlist_for_each(node, t->f_ep) {
			epi = hlist_entry(node, struct amber_epitem, fllink);
			if (epi->ep == x->ep && epi->ffd.file == t &&
			    epi->ffd.fd == x->l->tfd &&
			    epi->event.events == x->l->events &&
			    epi->event.data == x->l->data) {
				ret = true;
				break;
			}
		}
	spin_unlock(&t->f_lock);
	return ret;
}

static int amber_epoll_find_fd(const void *arg, struct file *t, unsigned int fd)
{
	struct amber_epoll_find *x = (struct amber_epoll_find *)arg;

	if (!amber_epoll_watches(x, t))
		return 0;
	x->found = get_file(t);
	return 1;
}

/*
 * The target of @l in current's fd table: its file id, 0 if no fd holds it,
 * -ENOMEM.
 */
static s64 amber_epoll_target(struct amber_fileids *ids, struct file *epfile,
			      const struct amber_epoll_line *l)
{
	struct amber_epoll_find x = { .l = l, .ep = epfile->private_data };
	struct file *t = fget_raw(l->tfd);
	u64 id;

	/* Usually still open under the number it was added under. */
	if (t && amber_epoll_watches(&x, t))
		x.found = t;
	else if (t)
		fput(t);
	if (!x.found)
		iterate_fd(current->files, 0, amber_epoll_find_fd, &x);
	if (!x.found)
		return 0;
	id = amber_fileids_get(ids, x.found);
	fput(x.found);
	return id ? id : -ENOMEM;
}

/* Parses @buf into @f->epoll_tfds, each with its target's file id. */
static int amber_epoll_parse(struct amber_fd *f, struct file *file, const char *buf,
			     struct amber_fileids *ids, struct amber_err *e)
{
	struct amber_epoll_line l;
	s64 id;
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
		id = amber_epoll_target(ids, file, &l);
		if (id < 0)
			return amber_fail(e, -ENOMEM, "out of memory for the file ids");
		if (!id)
			return amber_fail(e, -EOPNOTSUPP,
					  amber_msg("fd %u: %s: watches fd %d (inode %lu), whose file is open in no fd",
						    f->num, f->path, l.tfd, l.ino));
		t->file_id = id;
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
	buf = amber_fdinfo_kvtext(file, AMBER_EPOLL_FDINFO_MAX);
	if (IS_ERR(buf))
		return amber_fail(e, PTR_ERR(buf),
				  amber_msg("fd %u: %s: cannot read its interest list",
					    f->num, f->path));
	f->epoll = true;
	err = amber_epoll_parse(f, file, buf, ids, e);
	kvfree(buf);
	return err;
}
