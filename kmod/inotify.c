// SPDX-License-Identifier: GPL-2.0
/*
 * inotify: its watches. The tool recreates the instance with
 * inotify_init1() and adds every watch again on the same inode, opened by
 * its file handle (by the tool, in its restore), under the same watch
 * descriptor.
 *
 * The inotify group and its marks are private to fs/notify, so the watches
 * are read from the instance's own fdinfo (amber_fdinfo_kvtext(), as
 * epoll.c does), one line per watch:
 *   "inotify wd:%x ino:%lx sdev:%x mask:%x ignored_mask:0 "
 *   "fhandle-bytes:%x fhandle-type:%x f_handle:%02x..."
 * The handle part is missing when the inode's file system cannot encode
 * one (no export operations): such a watch is refused, nothing could find
 * its inode again. Events queued and not yet read are not captured: the
 * restored instance starts with an empty queue (documented, as CRIU does).
 */
#include <linux/fs.h>
#include <linux/kdev_t.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>

#include <linux/amber.h>

#include "inotify.h"

/* Enough for AMBER_INOTIFY_MAX_WATCHES lines of at most 360 characters. */
#define AMBER_INOTIFY_FDINFO_MAX	(512 << 10)

static int amber_inotify_bad(const struct amber_fd *f, struct amber_err *e)
{
	return amber_fail(e, -EOPNOTSUPP,
			  amber_msg("fd %u: %s: cannot read its watches on this kernel",
				    f->num, f->path));
}

/* Parses one fdinfo line at @p into @w. */
static int amber_inotify_line(const struct amber_fd *f, const char *p,
			      struct amber_inotify_watch *w, struct amber_err *e)
{
	unsigned int wd, sdev, mask, ignored, bytes, type;
	unsigned long ino;
	int n = 0;

	if (sscanf(p, "inotify wd:%x ino:%lx sdev:%x mask:%x ignored_mask:%x %n",
		   &wd, &ino, &sdev, &mask, &ignored, &n) != 5 || !n || ignored)
		return amber_inotify_bad(f, e);
	if (wd < 1 || wd > AMBER_INOTIFY_MAX_WD)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: watch descriptor %u is above %d",
					    f->num, f->path, wd, AMBER_INOTIFY_MAX_WD));
	p += n;
	n = 0;
	if (sscanf(p, "fhandle-bytes:%x fhandle-type:%x f_handle:%n",
		   &bytes, &type, &n) != 2 || !n)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: watch %u is on inode %lu of a file system that cannot reopen it by handle",
					    f->num, f->path, wd, ino));
	if (!bytes || bytes > AMBER_INOTIFY_HANDLE_MAX ||
	    hex2bin(w->handle, p + n, bytes))
		return amber_inotify_bad(f, e);
	w->wd = wd;
	w->mask = mask;
	w->dev = new_encode_dev(sdev);
	w->ino = ino;
	w->handle_type = type;
	w->handle_bytes = bytes;
	return 0;
}

static int amber_inotify_parse(struct amber_fd *f, const char *buf, struct amber_err *e)
{
	const char *p;
	unsigned int n = 0;
	int err;

	for (p = buf; (p = strstr(p, "inotify wd:")); p++)
		n++;
	if (n > AMBER_INOTIFY_MAX_WATCHES)
		return amber_fail(e, -E2BIG,
				  amber_msg("fd %u: %s: more than %d watches are not supported",
					    f->num, f->path, AMBER_INOTIFY_MAX_WATCHES));
	f->inotify_watches = kvcalloc(max(n, 1U), sizeof(*f->inotify_watches),
				      GFP_KERNEL_ACCOUNT);
	if (!f->inotify_watches)
		return amber_fail(e, -ENOMEM, "out of memory for an inotify's watches");
	for (p = buf; f->nr_inotify < n && (p = strstr(p, "inotify wd:")); p++) {
		err = amber_inotify_line(f, p, &f->inotify_watches[f->nr_inotify], e);
		if (err)
			return err;
		f->nr_inotify++;
	}
	return 0;
}

int amber_inotify_capture(struct amber_fd *f, struct file *file, struct amber_err *e)
{
	char *buf;
	int err;

	if (!amber_is_anon_file(file, "inotify"))
		return 0;
	buf = amber_fdinfo_kvtext(file, AMBER_INOTIFY_FDINFO_MAX);
	if (IS_ERR(buf))
		return amber_fail(e, PTR_ERR(buf),
				  amber_msg("fd %u: %s: cannot read its watches",
					    f->num, f->path));
	f->inotify = true;
	err = amber_inotify_parse(f, buf, e);
	kvfree(buf);
	return err;
}
