/* SPDX-License-Identifier: GPL-2.0 */
#ifndef AMBER_SIGNALFD_H
#define AMBER_SIGNALFD_H

#include "fdtable.h"
#include "msg.h"

/*
 * If @file is a signalfd, fills @f's signalfd mask; 0 for any other file.
 * Refuses (naming the fd) a signalfd whose fdinfo cannot be parsed.
 */
int amber_signalfd_capture(struct amber_fd *f, struct file *file, struct amber_err *e);

#endif /* AMBER_SIGNALFD_H */
