// SPDX-License-Identifier: GPL-2.0
/*
 * signalfd: its mask. The tool recreates it with signalfd(-1, mask, flags)
 * (userspace/restore/); SFD_NONBLOCK is O_NONBLOCK in the fd's f_flags.
 * A signalfd holds no signals itself: they stay pending on the process,
 * which kmod/signal.c saves.
 *
 * struct signalfd_ctx is private to the signalfd core: the mask is what its
 * own ->show_fdinfo prints ("sigmask:\t%016lx", the signals it accepts,
 * bit N-1 for signal N). A file is a signalfd when it is an anonymous
 * inode file named "[signalfd]"; one whose fdinfo does not parse is
 * refused.
 */
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/string.h>

#include <linux/amber.h>

#include "signalfd.h"

#define AMBER_SFD_INFO_SIZE	64

int amber_signalfd_capture(struct amber_fd *f, struct file *file, struct amber_err *e)
{
	unsigned long long mask;
	const char *p;
	char *buf;
	int err;

	if (!amber_is_anon_file(file, "[signalfd]"))
		return 0;
	buf = kmalloc(AMBER_SFD_INFO_SIZE, GFP_KERNEL);
	if (!buf)
		return amber_fail(e, -ENOMEM, "out of memory for a signalfd's fdinfo");
	err = amber_fdinfo_text(file, buf, AMBER_SFD_INFO_SIZE);
	if (!err) {
		p = strstr(buf, "sigmask:");
		if (!p || sscanf(p, "sigmask: %llx", &mask) != 1)
			err = -EINVAL;
	}
	kfree(buf);
	if (err)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: cannot read its mask on this kernel",
					    f->num, f->path));
	f->signalfd = true;
	f->signalfd_mask = mask;
	return 0;
}
