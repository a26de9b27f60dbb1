/* SPDX-License-Identifier: GPL-2.0 */
#ifndef AMBER_TIMERFD_H
#define AMBER_TIMERFD_H

#include "fdtable.h"
#include "msg.h"

/*
 * If @file is a timerfd, fills @f's timerfd fields (clock, settime flags,
 * ticks not read, value and interval); 0 for any other file. Refuses
 * (naming the fd) a timerfd whose fdinfo cannot be read or parsed.
 */
int amber_timerfd_capture(struct amber_fd *f, struct file *file, struct amber_err *e);

#endif /* AMBER_TIMERFD_H */
