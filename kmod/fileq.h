/* SPDX-License-Identifier: GPL-2.0 */
/* Pipes, FIFOs and UNIX sockets of the fd table, and the bytes queued in them. */
#ifndef _AMBER_FILEQ_H
#define _AMBER_FILEQ_H

#include <linux/types.h>

#include "files.h"

struct inode;

/*
 * For a pipe, FIFO or socket @file (fd @fd, filled but for these): its
 * attributes, and its queue when this request has not captured that inode
 * yet. Refuses, by name in @e, sockets and queues that cannot be restored.
 */
int amber_fq_capture(struct amber_files_state *st, struct amber_fileids *ids,
		     struct amber_fd *fd, struct file *file, struct amber_err *e);
void amber_fq_free(struct amber_fq *q);
/* The refusals of amber_fq_capture() that need no queue, for any task's file. */
int amber_fq_precheck(unsigned int num, struct file *file, struct amber_err *e);

/* The AMBER_A_QUEUE chunks of @q, and exactly their size. */
int amber_fq_fill(struct sk_buff *skb, const struct amber_fq *q);
size_t amber_fq_size(const struct amber_fq *q);

/* files.c's per-request bookkeeping, for fileq.c. */
int amber_fileids_claim(struct amber_fileids *ids, const struct inode *inode);
bool amber_fileids_charge(struct amber_fileids *ids, ssize_t bytes);

#endif /* _AMBER_FILEQ_H */
