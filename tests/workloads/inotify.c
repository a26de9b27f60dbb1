// SPDX-License-Identifier: GPL-2.0
/*
 * inotify: watches checked after restore. Under DIR/w (on the guest's
 * tmpfs): files a, b, c, a directory sub.
 *
 *   fd 10  inotify, IN_NONBLOCK | IN_CLOEXEC, watches:
 *            wd 1  DIR/w   IN_CREATE | IN_DELETE
 *            wd 2  w/a     IN_MODIFY
 *            wd 3  w/b     IN_ATTRIB | IN_ONESHOT
 *            (wd 4 on w/sub, removed: a gap)
 *            wd 5  w/c     IN_MODIFY | IN_EXCL_UNLINK
 *   fd 11  inotify, blocking, no watch
 *   fd 12  dup(10)
 * Its queue is read empty before "ready" (queued events are not restored).
 * With --fork a child inherits them all. --deleted adds wd 6 on w/gone,
 * unlinked but held open by fd 13 (refused at checkpoint). --nohandle adds
 * wd 6 on the workload's own executable, on the 9p share of the guest, which
 * encodes file handles but cannot open them (refused at checkpoint).
 *
 * After --go: the child checks, through IN_MASK_ADD of a mask bit already
 * set (which returns the existing watch's descriptor and changes nothing),
 * that w/c is still wd 5, and exits. The parent checks flags, an empty
 * queue, the descriptors of w, a, b, c the same way, then the events of
 * creating w/new, writing a, chmod'ing b twice (one IN_ATTRIB, then
 * IN_IGNORED: one-shot), writing c; that a new watch on w/sub gets wd 6
 * (7 with --deleted or --nohandle); that fd 11 has no watch on w. Prints
 * PASS, or FAIL lines and exits 1.
 *
 * Usage: inotify --dir DIR --go FILE [--fork] [--deleted | --nohandle]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "selfcheck.h"

static char w[256], a[300], b[300], c[300], sub[300], gone[300], fresh[300];

static int place(int fd, int num)
{
	if (fd < 0 || dup3(fd, num, fcntl(fd, F_GETFD) & FD_CLOEXEC ? O_CLOEXEC : 0) != num)
		return -1;
	close(fd);
	return 0;
}

static int touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int append(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, "x", 1) == 1 ? 0 : -1;
	close(fd);
	return ok;
}

/* The watch descriptor of @path on @fd without changing its mask (@bit set). */
static int wd_of(int fd, const char *path, uint32_t bit)
{
	return inotify_add_watch(fd, path, bit | IN_MASK_ADD);
}

/* The next event on nonblocking @fd: 0, or -errno. */
static int next_event(int fd, int *wd, uint32_t *mask, char *name, size_t size)
{
	static char buf[4096] __attribute__((aligned(8)));
	static ssize_t len, off;
	const struct inotify_event *ev;

	if (off >= len) {
		len = read(fd, buf, sizeof(buf));
		off = 0;
		if (len < 0)
			return -errno;
	}
	ev = (const struct inotify_event *)(buf + off);
	*wd = ev->wd;
	*mask = ev->mask;
	snprintf(name, size, "%s", ev->len ? ev->name : "");
	off += sizeof(*ev) + ev->len;
	return 0;
}

static void expect_event(int fd, int want_wd, uint32_t want_mask, const char *want_name)
{
	uint32_t mask = 0;
	char name[64];
	int wd = 0, err;

	err = next_event(fd, &wd, &mask, name, sizeof(name));
	CHECK(!err, "no event (%d), want wd %d mask %x", err, want_wd, want_mask);
	if (err)
		return;
	CHECK(wd == want_wd && mask == want_mask && !strcmp(name, want_name),
	      "event wd %d mask %x name '%s', want wd %d mask %x name '%s'", wd, mask, name,
	      want_wd, want_mask, want_name);
}

static int setup(const char *dir, const char *self, bool deleted, bool nohandle)
{
	int fd, wd;

	snprintf(w, sizeof(w), "%s/w", dir);
	snprintf(a, sizeof(a), "%s/a", w);
	snprintf(b, sizeof(b), "%s/b", w);
	snprintf(c, sizeof(c), "%s/c", w);
	snprintf(sub, sizeof(sub), "%s/sub", w);
	snprintf(gone, sizeof(gone), "%s/gone", w);
	snprintf(fresh, sizeof(fresh), "%s/new", w);
	if ((mkdir(dir, 0755) && errno != EEXIST) || mkdir(w, 0755) || mkdir(sub, 0755) ||
	    touch(a) || touch(b) || touch(c))
		return -1;
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (place(fd, 10) || place(inotify_init1(0), 11) || dup2(10, 12) != 12)
		return -1;
	if (inotify_add_watch(10, w, IN_CREATE | IN_DELETE) != 1 ||
	    inotify_add_watch(10, a, IN_MODIFY) != 2 ||
	    inotify_add_watch(10, b, IN_ATTRIB | IN_ONESHOT) != 3)
		return -1;
	wd = inotify_add_watch(10, sub, IN_ATTRIB);
	if (wd != 4 || inotify_rm_watch(10, wd) ||
	    inotify_add_watch(10, c, IN_MODIFY | IN_EXCL_UNLINK) != 5)
		return -1;
	if (deleted) {
		if (touch(gone) || place(open(gone, O_RDONLY), 13) ||
		    inotify_add_watch(10, gone, IN_MODIFY) != 6 || unlink(gone))
			return -1;
	}
	if (nohandle && inotify_add_watch(10, self, IN_OPEN) != 6)
		return -1;
	/* Read the queue empty (the IN_IGNORED of wd 4): fd 10 does not block. */
	for (;;) {
		char buf[4096];

		if (read(10, buf, sizeof(buf)) < 0)
			break;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *go = NULL, *dir = NULL;
	bool do_fork = false, deleted = false, nohandle = false;
	char name[64];
	uint32_t mask;
	pid_t child = 0;
	int i, wd, err;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--go") && i + 1 < argc)
			go = argv[++i];
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--fork"))
			do_fork = true;
		else if (!strcmp(argv[i], "--deleted"))
			deleted = true;
		else if (!strcmp(argv[i], "--nohandle"))
			nohandle = true;
	}
	if (!go || !dir) {
		fprintf(stderr, "usage: inotify --dir DIR --go FILE [--fork] [--deleted | --nohandle]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (setup(dir, argv[0], deleted, nohandle)) {
		perror("inotify: setup");
		return 2;
	}

	if (do_fork) {
		child = fork();
		if (child < 0)
			return 2;
		if (child == 0) {
			sc_child_ready(go);
			wd = wd_of(12, c, IN_MODIFY);
			CHECK(wd == 5, "w/c: watch %d, want 5", wd);
			_exit(failed);
		}
	}
	sc_parent_ready(go, child);
	CHECK(fcntl(10, F_GETFL) & O_NONBLOCK, "fd 10: O_NONBLOCK lost");
	CHECK(fcntl(10, F_GETFD) & FD_CLOEXEC, "fd 10: FD_CLOEXEC lost");
	CHECK(!(fcntl(11, F_GETFL) & O_NONBLOCK), "fd 11: O_NONBLOCK set");
	CHECK(!(fcntl(11, F_GETFD) & FD_CLOEXEC), "fd 11: FD_CLOEXEC set");
	err = next_event(10, &wd, &mask, name, sizeof(name));
	CHECK(err == -EAGAIN, "queue not empty after restore: %d (wd %d mask %x '%s')", err, wd,
	      mask, err ? "" : name);
	wd = wd_of(10, w, IN_CREATE);
	CHECK(wd == 1, "w: watch %d, want 1", wd);
	wd = wd_of(10, a, IN_MODIFY);
	CHECK(wd == 2, "w/a: watch %d, want 2", wd);
	wd = wd_of(10, b, IN_ATTRIB);
	CHECK(wd == 3, "w/b: watch %d, want 3", wd);
	wd = wd_of(12, c, IN_MODIFY);
	CHECK(wd == 5, "w/c: watch %d, want 5", wd);

	CHECK(touch(fresh) == 0, "create w/new");
	expect_event(10, 1, IN_CREATE, "new");
	CHECK(append(a) == 0, "write w/a");
	expect_event(10, 2, IN_MODIFY, "");
	CHECK(chmod(b, 0600) == 0 && chmod(b, 0644) == 0, "chmod w/b");
	expect_event(10, 3, IN_ATTRIB, "");
	expect_event(10, 3, IN_IGNORED, "");
	CHECK(append(c) == 0, "write w/c");
	expect_event(10, 5, IN_MODIFY, "");
	err = next_event(10, &wd, &mask, name, sizeof(name));
	CHECK(err == -EAGAIN, "an extra event: wd %d mask %x '%s'", wd, mask, err ? "" : name);

	wd = inotify_add_watch(10, sub, IN_ATTRIB);
	CHECK(wd == (deleted || nohandle ? 7 : 6), "w/sub: new watch %d", wd);
	wd = inotify_add_watch(11, w, IN_CREATE | IN_MASK_CREATE);
	CHECK(wd == 1, "fd 11: its first watch is %d, want 1 (it had none)", wd);
	return sc_done();
}
