/* SPDX-License-Identifier: GPL-2.0 */
#ifndef AMBER_EVENTFD_H
#define AMBER_EVENTFD_H

#include "fdtable.h"
#include "msg.h"

/*
 * If @file is an eventfd, fills @f's eventfd fields (count, semaphore
 * mode); 0 for any other file. Refuses (naming the fd) an eventfd whose
 * mode cannot be read on this kernel.
 */
int amber_eventfd_capture(struct amber_fd *f, struct file *file, struct amber_err *e);

#endif /* AMBER_EVENTFD_H */
