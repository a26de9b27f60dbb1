/* SPDX-License-Identifier: GPL-2.0 */
/* Sockets of the fd table (UNIX ones only), and the bytes queued in them. */
#ifndef _AMBER_UNIX_H
#define _AMBER_UNIX_H

#include "msg.h"

struct amber_fd;
struct amber_fileids;
struct amber_files_state;
struct file;

/*
 * For @file (fd @fd, filled but for these), if it is a socket: its
 * attributes, and its queue when this request has not captured that inode
 * yet. Refuses, by name in @e, sockets and queues that cannot be restored.
 */
int amber_unix_capture(struct amber_files_state *st, struct amber_fileids *ids,
		       struct amber_fd *fd, struct file *file, struct amber_err *e);
/* The refusals of amber_unix_capture() that need no queue, for any task's file. */
int amber_unix_precheck(unsigned int num, struct file *file, struct amber_err *e);

#endif /* _AMBER_UNIX_H */
