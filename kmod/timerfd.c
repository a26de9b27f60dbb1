// SPDX-License-Identifier: GPL-2.0
/*
 * timerfd: its clock, settime flags, remaining time, interval and the
 * expirations not yet read. The tool recreates it with timerfd_create(),
 * timerfd_settime() and the TFD_IOC_SET_TICKS ioctl (userspace/restore/);
 * O_NONBLOCK is in the fd's f_flags as for any file.
 *
 * struct timerfd_ctx is private to the timerfd core, timerfd_get_remaining()
 * is not exported: everything comes from the text the timerfd's own
 * ->show_fdinfo prints (6.1: "clockid", "ticks", "settime flags",
 * "it_value", "it_interval"), which reads the timer under its lock. A file
 * is a timerfd when it is an anonymous inode file named "[timerfd]"; one
 * whose fdinfo does not parse is refused, not guessed at.
 *
 * it_value is the time left; for a TFD_TIMER_ABSTIME timer it is turned
 * back into the absolute expiry on the timer's own clock, which restore
 * keeps. A periodic timer that expired and was not read yet shows 0 left
 * (the next read re-arms it): relative, VALUE stays 0; absolute, VALUE is
 * the capture time, an expiry already past.
 */
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/time64.h>
#include <linux/timekeeping.h>
#include <linux/timerfd.h>

#include <linux/amber.h>

#include "timerfd.h"

#define AMBER_TFD_INFO_SIZE	256

struct amber_tfd_info {
	int clockid;
	unsigned long long ticks;
	unsigned int flags;
	unsigned long long value[2], interval[2];	/* sec, nsec */
};

static int amber_timerfd_parse(const char *buf, struct amber_tfd_info *t)
{
	const char *p;

	p = strstr(buf, "clockid:");
	if (!p || sscanf(p, "clockid: %d", &t->clockid) != 1)
		return -EINVAL;
	p = strstr(buf, "ticks:");
	if (!p || sscanf(p, "ticks: %llu", &t->ticks) != 1)
		return -EINVAL;
	p = strstr(buf, "settime flags:");
	if (!p || sscanf(p, "settime flags: %o", &t->flags) != 1)
		return -EINVAL;
	p = strstr(buf, "it_value:");
	if (!p || sscanf(p, "it_value: (%llu, %llu)", &t->value[0], &t->value[1]) != 2)
		return -EINVAL;
	p = strstr(buf, "it_interval:");
	if (!p || sscanf(p, "it_interval: (%llu, %llu)",
			 &t->interval[0], &t->interval[1]) != 2)
		return -EINVAL;
	if (t->value[0] > KTIME_SEC_MAX || t->value[1] >= NSEC_PER_SEC ||
	    t->interval[0] > KTIME_SEC_MAX || t->interval[1] >= NSEC_PER_SEC ||
	    (t->flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET)))
		return -EINVAL;
	return 0;
}

/* Now on @clockid, as the timerfd's hrtimer or alarm counts; -1 if unknown. */
static s64 amber_timerfd_now(int clockid)
{
	switch (clockid) {
	case CLOCK_REALTIME:
	case CLOCK_REALTIME_ALARM:
		return ktime_get_real();
	case CLOCK_MONOTONIC:
		return ktime_get();
	case CLOCK_BOOTTIME:
	case CLOCK_BOOTTIME_ALARM:
		return ktime_get_boottime();
	default:
		return -1;
	}
}

static int amber_timerfd_fill(struct amber_fd *f, const struct amber_tfd_info *t)
{
	u64 left = t->value[0] * NSEC_PER_SEC + t->value[1];
	s64 now = amber_timerfd_now(t->clockid);

	if (now < 0)
		return -EINVAL;
	f->timerfd = true;
	f->timerfd_clockid = t->clockid;
	f->timerfd_flags = t->flags;
	f->timerfd_ticks = t->ticks;
	f->timerfd_interval = t->interval[0] * NSEC_PER_SEC + t->interval[1];
	f->timerfd_value = left;
	if ((t->flags & TFD_TIMER_ABSTIME) &&
	    (left || (f->timerfd_interval && t->ticks)))
		f->timerfd_value = now + left;
	return 0;
}

int amber_timerfd_capture(struct amber_fd *f, struct file *file, struct amber_err *e)
{
	struct amber_tfd_info t;
	char *buf;
	int err;

	if (!amber_is_anon_file(file, "[timerfd]"))
		return 0;
	buf = kmalloc(AMBER_TFD_INFO_SIZE, GFP_KERNEL);
	if (!buf)
		return amber_fail(e, -ENOMEM, "out of memory for a timerfd's fdinfo");
	err = amber_fdinfo_text(file, buf, AMBER_TFD_INFO_SIZE);
	if (!err)
		err = amber_timerfd_parse(buf, &t);
	if (!err)
		err = amber_timerfd_fill(f, &t);
	kfree(buf);
	if (err)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("fd %u: %s: cannot read its settings on this kernel",
					    f->num, f->path));
	return 0;
}
