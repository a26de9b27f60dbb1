/* SPDX-License-Identifier: GPL-2.0 */
/* Sockets of the fd table (UNIX ones only), and the bytes queued in them. */
#ifndef _AMBER_UNIX_H
#define _AMBER_UNIX_H

#include <linux/types.h>
#include <linux/un.h>

#include "msg.h"

/*
 * What an fd of a UNIX socket says besides the generic socket fields of
 * struct amber_fd: its name, its peer's, how it got them, its options.
 * See the AMBER_FD_UNIX_* and AMBER_FD_SOCK_* attributes.
 */
struct amber_unix_fd {
	u8 name_len;		/* 0: unnamed */
	u8 peer_name_len;	/* 0: no peer, or an unnamed one */
	bool accepted;		/* the name is the listener's */
	bool listening;		/* backlog is set */
	bool no_peer;		/* never connected */
	bool passcred, passsec;
	u32 backlog;
	u32 file_mode, file_uid, file_gid;	/* path[0]: the socket file */
	u32 rcvbuf, sndbuf, userlocks, rcvlowat;
	u64 rcvtimeo, sndtimeo;	/* us, 0 = none */
	u32 nr_embryos;		/* listeners: connections waiting */
	u64 *embryos;		/* their clients' inodes, in the same allocation */
	char *path;		/* "" unless bound to a name in the file system */
	char name[UNIX_PATH_MAX];
	char peer_name[UNIX_PATH_MAX];
};

/* Most connections waiting in one listener's backlog that are captured. */
#define AMBER_UNIX_EMBRYOS_MAX	256

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
