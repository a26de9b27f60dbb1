/* SPDX-License-Identifier: GPL-2.0 */
#ifndef AMBER_EPOLL_H
#define AMBER_EPOLL_H

#include "fdtable.h"
#include "msg.h"

struct amber_epoll_tfd {
	u32 tfd;	/* the fd number it was added under */
	u32 events;	/* EPOLL* mask, private bits included */
	u64 data;
	u64 file_id;	/* the target's file id in the request */
};

/*
 * If @file is an epoll instance, fills @f's epoll fields (its interest
 * list, each target mapped to its file id in @ids); 0 for any other file.
 * Runs in the context of the process that holds @file, its group stopped.
 * Refuses (naming the fd) a registration whose file is open in no fd of
 * current, and interest lists longer than AMBER_EPOLL_MAX_TFDS.
 */
int amber_epoll_capture(struct amber_fd *f, struct file *file,
			struct amber_fileids *ids, struct amber_err *e);

#endif /* AMBER_EPOLL_H */
