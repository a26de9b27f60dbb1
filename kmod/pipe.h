/* SPDX-License-Identifier: GPL-2.0 */
/* Pipes and FIFOs of the fd table, and the bytes queued in them. */
#ifndef _AMBER_PIPE_H
#define _AMBER_PIPE_H

#include "msg.h"

struct amber_fd;
struct amber_fileids;
struct amber_files_state;
struct file;

/*
 * For @file (fd @fd, filled but for this), if it is an open pipe or FIFO:
 * its capacity, and its queue when this request has not captured that
 * pipe yet. Refuses, by name in @e, queues that cannot be restored.
 */
int amber_pipe_capture(struct amber_files_state *st, struct amber_fileids *ids,
		       struct amber_fd *fd, struct file *file, struct amber_err *e);

#endif /* _AMBER_PIPE_H */
