// SPDX-License-Identifier: GPL-2.0
/*
 * The fd table of current. Every fd is described (type, flags, offset,
 * path as d_path() renders it, "pipe:[ino]" and the like included) and
 * gets the id of its open file description; the tools decide what they
 * can restore. Pipes are pipe.c's and sockets unix.c's (the only fds
 * refused are sockets that cannot be checkpointed); both keep their queued
 * bytes in the struct amber_fq list kept here.
 *
 * File ids are per CHECKPOINT request (struct amber_fileids), shared by the
 * processes of the group, which capture their tables concurrently: one
 * struct file, one id, in every process. The request holds a reference on
 * every file it gave an id to, so that a file closed and freed meanwhile
 * cannot hand its address, and its id, to another file.
 *
 * The tool restores the fd table; the module only closes the stub's own
 * helper fds once a restore has succeeded.
 */
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hashtable.h>
#include <linux/kdev_t.h>
#include <linux/magic.h>
#include <linux/major.h>
#include <linux/mutex.h>
#include <linux/net.h>
#include <linux/rcupdate.h>
#include <linux/seq_file.h>
#include <linux/sched.h>
#include <linux/stat.h>
#include <linux/slab.h>
#include <linux/string.h>

#include <linux/amber.h>

#include "epoll.h"
#include "eventfd.h"
#include "fdtable.h"
#include "inotify.h"
#include "path.h"
#include "pipe.h"
#include "restore.h"
#include "signalfd.h"
#include "inet.h"
#include "timerfd.h"
#include "unix.h"

struct amber_fileid {
	struct hlist_node node;
	struct file *file;	/* holds a reference */
	u64 id;
};

struct amber_fileino {
	struct hlist_node node;
	const struct inode *inode;	/* pinned by a file in ->files */
};

struct amber_fileids {
	struct mutex lock;		/* protects everything below */
	DECLARE_HASHTABLE(files, 10);	/* struct amber_fileid by file */
	DECLARE_HASHTABLE(inodes, 8);	/* struct amber_fileino by inode */
	u64 last_id;
	size_t queued;			/* bytes of the queues captured */
	bool hold;			/* set before any capture, then read-only */
	/* Set before any capture, then read-only: see amber_fileids_set_members(). */
	pid_t (*member)(const void *ctx, struct pid *pid);
	const void *member_ctx;
	bool tree;
};

void amber_fileids_set_hold(struct amber_fileids *ids)
{
	ids->hold = true;
}

void amber_fileids_set_members(struct amber_fileids *ids,
			       pid_t (*member)(const void *ctx, struct pid *pid),
			       const void *ctx, bool tree)
{
	ids->member = member;
	ids->member_ctx = ctx;
	ids->tree = tree;
}

pid_t amber_fileids_member(const struct amber_fileids *ids, struct pid *pid)
{
	return ids->member ? ids->member(ids->member_ctx, pid) : 0;
}

bool amber_fileids_tree(const struct amber_fileids *ids)
{
	return ids->tree;
}

struct amber_fileids *amber_fileids_new(void)
{
	struct amber_fileids *ids = kvzalloc(sizeof(*ids), GFP_KERNEL_ACCOUNT);

	if (!ids)
		return NULL;
	mutex_init(&ids->lock);
	hash_init(ids->files);
	hash_init(ids->inodes);
	return ids;
}

void amber_fileids_free(struct amber_fileids *ids)
{
	struct amber_fileino *ino;
	struct amber_fileid *fid;
	struct hlist_node *tmp;
	int bkt;

	if (!ids)
		return;
	hash_for_each_safe(ids->inodes, bkt, tmp, ino, node)
		kfree(ino);
	hash_for_each_safe(ids->files, bkt, tmp, fid, node) {
		fput(fid->file);
		kfree(fid);
	}
	mutex_destroy(&ids->lock);
	kvfree(ids);
}

u64 amber_fileids_get(struct amber_fileids *ids, struct file *file)
{
	struct amber_fileid *fid;
	u64 id = 0;

	mutex_lock(&ids->lock);
	hash_for_each_possible(ids->files, fid, node, (unsigned long)file)
		if (fid->file == file) {
			id = fid->id;
			goto out_unlock;
		}
	fid = kmalloc(sizeof(*fid), GFP_KERNEL_ACCOUNT);
	if (fid) {
		fid->file = get_file(file);
		id = ++ids->last_id;
		fid->id = id;
		hash_add(ids->files, &fid->node, (unsigned long)file);
	}
out_unlock:
	mutex_unlock(&ids->lock);
	return id;
}

/*
 * Claims the queue of @inode for the caller: 1 the first time per request
 * (the caller captures it), 0 after, -ENOMEM. @inode must belong to a file
 * amber_fileids_get() has seen.
 */
int amber_fileids_claim(struct amber_fileids *ids, const struct inode *inode)
{
	struct amber_fileino *ino;
	int ret = 0;

	mutex_lock(&ids->lock);
	hash_for_each_possible(ids->inodes, ino, node, (unsigned long)inode)
		if (ino->inode == inode)
			goto out_unlock;
	ino = kmalloc(sizeof(*ino), GFP_KERNEL_ACCOUNT);
	ret = -ENOMEM;
	if (ino) {
		ino->inode = inode;
		hash_add(ids->inodes, &ino->node, (unsigned long)inode);
		ret = 1;
	}
out_unlock:
	mutex_unlock(&ids->lock);
	return ret;
}

/*
 * Accounts @bytes more (or, negative, fewer) queued bytes to the request;
 * false when that would exceed AMBER_QUEUE_MAX_BYTES (nothing accounted).
 */
bool amber_fileids_charge(struct amber_fileids *ids, ssize_t bytes)
{
	bool ok;

	mutex_lock(&ids->lock);
	ok = bytes <= 0 || ids->queued + bytes <= AMBER_QUEUE_MAX_BYTES;
	if (ok)
		ids->queued += bytes;
	mutex_unlock(&ids->lock);
	return ok;
}

static u32 amber_fd_type(umode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return AMBER_FD_REG;
	case S_IFDIR:
		return AMBER_FD_DIR;
	case S_IFCHR:
		return AMBER_FD_CHR;
	case S_IFBLK:
		return AMBER_FD_BLK;
	case S_IFIFO:
		return AMBER_FD_FIFO;
	case S_IFSOCK:
		return AMBER_FD_SOCK;
	default:
		return AMBER_FD_OTHER;	/* anon inodes have no type bits */
	}
}

/*
 * The tty driver's fops are not exported, so terminals are recognised by
 * major number: 4 (tty, ttyS), 5 (/dev/tty, console, ptmx), 136-143 (pts).
 */
static bool amber_is_tty(umode_t mode, dev_t rdev)
{
	unsigned int major = MAJOR(rdev);

	if (!S_ISCHR(mode))
		return false;
	return major == TTY_MAJOR || major == TTYAUX_MAJOR ||
	       (major >= UNIX98_PTY_SLAVE_MAJOR &&
		major < UNIX98_PTY_SLAVE_MAJOR + UNIX98_PTY_MAJOR_COUNT);
}

static int amber_fd_fill(struct amber_fd *fd, struct file *file)
{
	struct kstat st;

	amber_stat_file(file, &st);
	/* Anon inodes have no type bits; stat() may make some up. */
	fd->mode = st.mode;
	fd->type = amber_fd_type(file_inode(file)->i_mode);
	fd->flags = file->f_flags;
	fd->pos = file->f_pos;
	fd->dev = new_encode_dev(st.dev);
	fd->ino = st.ino;
	fd->rdev = new_encode_dev(st.rdev);
	fd->size = st.size;
	fd->tty = amber_is_tty(st.mode, st.rdev);
	fd->path = amber_path_dup(&file->f_path);
	if (IS_ERR(fd->path)) {
		int err = PTR_ERR(fd->path);

		fd->path = NULL;
		return err;
	}
	return 0;
}

int amber_fdinfo_text(struct file *file, char *buf, size_t size)
{
	struct seq_file m = { .buf = buf, .size = size - 1 };

	if (!file->f_op->show_fdinfo)
		return -EOPNOTSUPP;
	file->f_op->show_fdinfo(&m, file);
	if (seq_has_overflowed(&m))
		return -EOVERFLOW;
	buf[m.count] = 0;
	return 0;
}

char *amber_fdinfo_kvtext(struct file *file, size_t max)
{
	size_t size;
	char *buf;

	for (size = PAGE_SIZE; size <= max; size *= 2) {
		int err;

		buf = kvmalloc(size, GFP_KERNEL_ACCOUNT);
		if (!buf)
			return ERR_PTR(-ENOMEM);
		err = amber_fdinfo_text(file, buf, size);
		if (!err)
			return buf;
		kvfree(buf);
		if (err != -EOVERFLOW)
			return ERR_PTR(err);
	}
	return ERR_PTR(-E2BIG);
}

bool amber_is_anon_file(struct file *file, const char *name)
{
	/* anon_inode_getfile() names the file's dentry, nothing renames it */
	return file_inode(file)->i_sb->s_magic == ANON_INODE_FS_MAGIC &&
	       !strcmp(file->f_path.dentry->d_name.name, name);
}

#define AMBER_MAX_FDS	65536

static int amber_files_grow(struct amber_files_state *st, unsigned int *cap)
{
	unsigned int ncap = *cap ? *cap * 2 : 16;
	struct amber_fd *fds;

	fds = kvcalloc(ncap, sizeof(*fds), GFP_KERNEL_ACCOUNT);
	if (!fds)
		return -ENOMEM;
	if (st->nr)
		memcpy(fds, st->fds, st->nr * sizeof(*fds));
	kvfree(st->fds);
	st->fds = fds;
	*cap = ncap;
	return 0;
}

/*
 * Finds the next open fd at or after @fd; returns false past the end of the
 * table. The fd number only ever grows, so the walk ends.
 */
static bool amber_next_fd(struct files_struct *files, unsigned int *fd,
			  bool *cloexec)
{
	struct fdtable *fdt;
	bool found = false;

	rcu_read_lock();
	fdt = files_fdtable(files);
	if (*fd < fdt->max_fds) {
		*fd = find_next_bit(fdt->open_fds, fdt->max_fds, *fd);
		if (*fd < fdt->max_fds) {
			/* close_on_exec() takes the files_struct since 6.8 */
			*cloexec = test_bit(*fd, fdt->close_on_exec);
			found = true;
		}
	}
	rcu_read_unlock();
	return found;
}

/* Fills fds[st->nr] for @fd; a failure says why in @e. */
static int amber_fd_capture(struct amber_files_state *st,
			    struct amber_fileids *ids, struct file *file,
			    unsigned int fd, bool cloexec, struct amber_err *e)
{
	struct amber_fd *f = &st->fds[st->nr];
	int err;

	f->num = fd;
	f->cloexec = cloexec;
	err = amber_fd_fill(f, file);
	if (err)
		return amber_fail(e, err,
				  amber_msg("fd %u: cannot resolve its path", fd));
	/* From here fds[nr] owns path: count it so that it is freed. */
	st->nr++;
	f->file_id = amber_fileids_get(ids, file);
	if (!f->file_id)
		return amber_fail(e, -ENOMEM, "out of memory for the file ids");
	err = amber_pipe_capture(st, ids, f, file, e);
	if (err)
		return err;
	err = amber_eventfd_capture(f, file, e);
	if (err)
		return err;
	err = amber_epoll_capture(f, file, ids, e);
	if (err)
		return err;
	err = amber_timerfd_capture(f, file, e);
	if (err)
		return err;
	err = amber_signalfd_capture(f, file, e);
	if (err)
		return err;
	err = amber_inotify_capture(f, file, e);
	if (err)
		return err;
	err = amber_inet_capture(st, ids, f, file, ids->hold, e);
	if (err || f->inet)
		return err;
	return amber_unix_capture(st, ids, f, file, e);
}

int amber_files_capture(struct amber_files_state *st, struct amber_fileids *ids,
			struct amber_err *e)
{
	struct files_struct *files = current->files;
	unsigned int fd = 0, cap = 0;
	struct file *file;
	bool cloexec;
	int err;

	if (!files)
		return 0;

	for (; amber_next_fd(files, &fd, &cloexec); fd++) {
		file = fget_raw(fd);
		if (!file)
			continue;	/* closed meanwhile */
		/* The target sizes these allocations: bound them. */
		if (st->nr >= AMBER_MAX_FDS) {
			fput(file);
			return amber_fail(e, -E2BIG,
					  "more than 65536 open fds are not supported");
		}
		if (st->nr == cap && amber_files_grow(st, &cap)) {
			fput(file);
			return amber_fail(e, -ENOMEM, "out of memory for the fd table");
		}
		err = amber_fd_capture(st, ids, file, fd, cloexec, e);
		fput(file);
		if (err)
			return err;
	}
	return 0;
}

int amber_files_precheck(struct task_struct *task, struct amber_err *e)
{
	unsigned int fd, n = 0;
	struct file *file;
	int err;

	for (fd = 0; n < AMBER_MAX_FDS; fd++, n++) {
		file = amber_task_next_file(task, &fd);
		if (!file)
			return 0;
		err = amber_inet_precheck(fd, file, e);
		if (!err)
			err = amber_unix_precheck(fd, file, e);
		fput(file);
		if (err > 0)
			continue;	/* an inet socket: checked */
		if (err)
			return err;
	}
	return 0;
}

int amber_fd_describe_flight(struct amber_files_state *st, struct amber_fileids *ids,
			     const struct amber_fd *via, struct amber_fd *fd,
			     struct file *file, struct amber_err *e)
{
	struct socket *sock;
	int err;

	fd->num = via->num;
	err = amber_fd_fill(fd, file);
	if (err)
		return amber_fail(e, err,
				  amber_msg("fd %u: %s: cannot resolve the path of a file in flight in its queue",
					    via->num, via->path));
	fd->file_id = amber_fileids_get(ids, file);
	if (!fd->file_id)
		return amber_fail(e, -ENOMEM, "out of memory for the file ids");
	if (S_ISSOCK(file_inode(file)->i_mode)) {
		/* Named for the tools; its own queue is its fd's, if any. */
		sock = sock_from_file(file);
		if (sock && sock->sk) {
			fd->sock_family = sock->sk->sk_family;
			fd->sock_type = sock->sk->sk_type;
		}
		return 0;
	}
	return amber_pipe_capture(st, ids, fd, file, e);
}

void amber_fd_release(struct amber_fd *fd)
{
	kfree(fd->path);
	kfree(fd->epoll_tfds);
	kvfree(fd->inotify_watches);
	kfree(fd->un);
	amber_inet_free(fd->inet);
}

void amber_files_free(struct amber_files_state *st)
{
	struct amber_fq *q, *next;
	unsigned int i;

	for (i = 0; i < st->nr; i++)
		amber_fd_release(&st->fds[i]);
	kvfree(st->fds);
	st->fds = NULL;
	st->nr = 0;
	for (q = st->queues; q; q = next) {
		next = q->next;
		amber_fq_free(q);
	}
	st->queues = NULL;
	st->last_queue = NULL;
	st->queue_bytes = 0;
	st->queue_files = 0;
}

/* ---- queued bytes, shared by pipe.c and unix.c ---- */

void amber_fq_free(struct amber_fq *q)
{
	u32 i;

	if (!q)
		return;
	for (i = 0; q->flight && i < q->nr_files; i++)
		if (q->flight[i])
			fput(q->flight[i]);
	for (i = 0; q->files && i < q->nr_files; i++)
		amber_fd_release(&q->files[i]);
	kvfree(q->flight);
	kvfree(q->files);
	kvfree(q->msg_files);
	kvfree(q->data);
	kvfree(q->msg_len);
	kvfree(q->cred);
	kfree(q);
}

struct amber_fq *amber_fq_alloc(u64 ino, size_t len, u32 nr_msgs)
{
	struct amber_fq *q = kzalloc(sizeof(*q), GFP_KERNEL_ACCOUNT);

	if (!q)
		return NULL;
	q->ino = ino;
	q->len = len;
	q->nr_msgs = nr_msgs;
	q->data = kvmalloc(max_t(size_t, len, 1), GFP_KERNEL_ACCOUNT);
	if (nr_msgs)
		q->msg_len = kvmalloc_array(nr_msgs, sizeof(*q->msg_len),
					    GFP_KERNEL_ACCOUNT);
	if (!q->data || (nr_msgs && !q->msg_len)) {
		amber_fq_free(q);
		return NULL;
	}
	return q;
}

void amber_fq_add(struct amber_files_state *st, struct amber_fq *q)
{
	if (st->last_queue)
		st->last_queue->next = q;
	else
		st->queues = q;
	st->last_queue = q;
	st->queue_bytes += q->len;
	st->queue_files += q->nr_files;
}

/*
 * Accounts @len queued bytes about to be captured for @fd, against the
 * request's and the process's bounds.
 */
int amber_fq_charge(struct amber_files_state *st,
		    struct amber_fileids *ids, const struct amber_fd *fd,
		    size_t len, struct amber_err *e)
{
	if (st->queue_bytes + len > AMBER_FILES_PROC_QUEUE_MAX)
		return amber_fail(e, -E2BIG,
				  amber_msg("fd %u: %s: more than %u KiB queued in the pipes and sockets of one process",
					    fd->num, fd->path,
					    AMBER_FILES_PROC_QUEUE_MAX >> 10));
	if (!amber_fileids_charge(ids, len))
		return amber_fail(e, -E2BIG,
				  amber_msg("fd %u: %s: more than %u MiB queued in pipes and sockets",
					    fd->num, fd->path,
					    AMBER_QUEUE_MAX_BYTES >> 20));
	return 0;
}

/* ---- restore ---- */

/* Phase A: the stub's helper fds (AMBER_A_CLOSE_FDS), closed on success. */
int amber_restore_close_fds_prepare(struct amber_restore *r)
{
	const struct amber_fd_list_args *l = &r->args->close_fds;
	unsigned int i;

	if (!l->nla)
		return 0;
	r->close_fds = kcalloc(l->nr, sizeof(*r->close_fds), GFP_KERNEL);
	if (!r->close_fds)
		return -ENOMEM;
	for (i = 0; i < l->nr; i++) {
		u32 fd = l->fd[i].val;
		struct file *file = fget(fd);

		if (!file) {
			amber_restore_err(r, l->fd[i].nla, "close fd %u is not open", fd);
			return -EBADF;
		}
		fput(file);
		r->close_fds[r->nr_close_fds++] = fd;
	}
	return 0;
}

void amber_restore_close_fds_commit(struct amber_restore *r)
{
	unsigned int i;

	for (i = 0; i < r->nr_close_fds; i++)
		close_fd(r->close_fds[i]);
}
