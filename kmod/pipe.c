// SPDX-License-Identifier: GPL-2.0
/*
 * Pipes and FIFOs: their capacity and the bytes queued in them, read
 * without consuming anything, so that the program finds them where they
 * were. The tool recreates the pipe and writes the bytes back.
 *
 * A queue is captured once per inode and request (the first process of the
 * group to capture an fd of it carries it, see amber_fileids_claim()),
 * under the pipe mutex its readers take. Writers outside the group may
 * still append; the group's own are stopped.
 *
 * Refused, by fd number and name: packet-mode (O_DIRECT) pipe data, and
 * more than AMBER_QUEUE_MAX_BYTES queued in a request or
 * AMBER_FILES_PROC_QUEUE_MAX in one process.
 */
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/pipe_fs_i.h>
#include <linux/slab.h>

#include <linux/amber.h>

#include "fdtable.h"
#include "pipe.h"

/* The pipe of an open (not O_PATH) pipe or FIFO, or NULL. */
static struct pipe_inode_info *amber_pipe_of(struct file *file)
{
	struct inode *inode = file_inode(file);
	struct pipe_inode_info *pipe;

	if (!S_ISFIFO(inode->i_mode) || (file->f_mode & FMODE_PATH))
		return NULL;
	/* fifo_open() points both at the pipe; an open file keeps i_pipe. */
	pipe = READ_ONCE(inode->i_pipe);
	return pipe && file->private_data == pipe ? pipe : NULL;
}

/*
 * Copies @buf's bytes to @to. A buffer may lie in a compound page (spliced
 * socket data) and span several of its pages: map them one at a time.
 */
static void amber_pipe_copy_buf(u8 *to, const struct pipe_buffer *buf)
{
	unsigned int off = buf->offset, left = buf->len, n;
	struct page *page;
	void *from;

	while (left) {
		page = nth_page(buf->page, off >> PAGE_SHIFT);
		n = min_t(unsigned int, left, PAGE_SIZE - offset_in_page(off));
		from = kmap_local_page(page);
		memcpy(to, from + offset_in_page(off), n);
		kunmap_local(from);
		to += n;
		off += n;
		left -= n;
	}
}

/* The bytes in @pipe, tail to head. Called with the pipe mutex held. */
static int amber_pipe_queue(struct amber_files_state *st,
			    struct amber_fileids *ids, const struct amber_fd *fd,
			    struct pipe_inode_info *pipe, struct amber_err *e)
{
	unsigned int mask = pipe->ring_size - 1, head = pipe->head, i;
	struct pipe_buffer *buf;
	struct amber_fq *q;
	size_t len = 0;
	u8 *to;
	int err;

	lockdep_assert_held(&pipe->mutex);
	for (i = pipe->tail; i != head; i++) {
		buf = &pipe->bufs[i & mask];
		if (buf->flags & PIPE_BUF_FLAG_PACKET)
			return amber_fail(e, -EOPNOTSUPP,
					  amber_msg("fd %u: %s: packets queued in a packet-mode (O_DIRECT) pipe are not supported",
						    fd->num, fd->path));
		len += buf->len;
	}
	if (!len)
		return 0;
	err = amber_fq_charge(st, ids, fd, len, e);
	if (err)
		return err;
	q = amber_fq_alloc(fd->ino, len, 0);
	if (!q)
		return amber_fail(e, -ENOMEM,
				  amber_msg("fd %u: %s: out of memory for its %zu queued bytes",
					    fd->num, fd->path, len));
	to = q->data;
	for (i = pipe->tail; i != head; i++) {
		buf = &pipe->bufs[i & mask];
		/* Spliced page cache pages may still be under read I/O. */
		err = pipe_buf_confirm(pipe, buf);
		if (err) {
			amber_fq_free(q);
			return amber_fail(e, err,
					  amber_msg("fd %u: %s: cannot read the queued bytes",
						    fd->num, fd->path));
		}
		amber_pipe_copy_buf(to, buf);
		to += buf->len;
	}
	amber_fq_add(st, q);
	return 0;
}

int amber_pipe_capture(struct amber_files_state *st, struct amber_fileids *ids,
		       struct amber_fd *fd, struct file *file, struct amber_err *e)
{
	struct pipe_inode_info *pipe = amber_pipe_of(file);
	int claim, err = 0;

	if (!pipe)
		return 0;
	claim = amber_fileids_claim(ids, file_inode(file));
	if (claim < 0)
		return amber_fail(e, claim, "out of memory for the file ids");
	/* pipe_lock()'s lockdep class, but killable. */
	if (mutex_lock_killable_nested(&pipe->mutex, I_MUTEX_PARENT))
		return amber_fail(e, -EINTR,
				  amber_msg("fd %u: %s: interrupted waiting for the pipe",
					    fd->num, fd->path));
	fd->pipe_size = pipe->max_usage << PAGE_SHIFT;
	/*
	 * An end the group does not hold may be held outside it (stdio), or
	 * closed by everyone (a reader whose writer exited): only the
	 * counts tell them apart.
	 */
	fd->pipe_no_readers = !pipe->readers;
	fd->pipe_no_writers = !pipe->writers;
	if (claim)
		err = amber_pipe_queue(st, ids, fd, pipe, e);
	mutex_unlock(&pipe->mutex);
	return err;
}

