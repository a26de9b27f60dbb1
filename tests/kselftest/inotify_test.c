// SPDX-License-Identifier: GPL-2.0
/*
 * inotify (issue 14; refused before: "anon_inode:inotify is not supported
 * yet"). The inotify workload holds two instances, one with watches on a
 * directory and three files (a one-shot one, one with IN_EXCL_UNLINK) and a
 * gap in its watch descriptors, one without watches, and a dup (with --fork
 * a child inherits them). It is checkpointed with --kill (and --tree
 * --kill), restored, compared with the fidelity helper (each "inotify wd:"
 * line of fdinfo: descriptor, inode, mask, file handle), and checks after
 * the restore that the descriptors are the same, the queue is empty, and
 * the events of changes made after the restore arrive under the right
 * descriptors.
 *   - restore: the image restores;
 *   - deleted: a watch on a file unlinked since (held open) is refused at
 *     checkpoint by name, nothing killed, nothing published;
 *   - nohandle: a watch on a file system that encodes file handles but
 *     cannot open them (the 9p share the workload runs from) is refused
 *     the same way.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "selfcheck.h"

#define INOTIFY_TMP	TEST_TMP "/inotify"

FIXTURE(inotify) {
	struct selfcheck sc;
};

FIXTURE_VARIANT(inotify) {
	bool tree;		/* --fork workload, checkpoint --tree */
};

FIXTURE_VARIANT_ADD(inotify, single_kill) { .tree = false };
FIXTURE_VARIANT_ADD(inotify, tree_kill) { .tree = true };

FIXTURE_SETUP(inotify)
{
	sc_setup(_metadata, &self->sc, INOTIFY_TMP, "inotify", variant->tree);
}

FIXTURE_TEARDOWN(inotify)
{
	sc_teardown(_metadata, &self->sc);
}

TEST_F_TIMEOUT(inotify, restore, 120)
{
	REQUIRE_AMBER();
	sc_start(_metadata, &self->sc, NULL);
	sc_restore_check(_metadata, &self->sc, sc_checkpoint_kill(_metadata, &self->sc));
}

/* A watch on a deleted file: refused by name, nothing killed. */
TEST_F_TIMEOUT(inotify, deleted, 120)
{
	static const char *const want[] = {
		"fd 10: anon_inode:inotify: watch 6 (inode ", "): the watched file is deleted", NULL
	};

	REQUIRE_AMBER();
	sc_start(_metadata, &self->sc, "--deleted");
	sc_refused(_metadata, &self->sc, NULL, want);
}

/* A watch on a file system that cannot reopen inodes by handle: refused. */
TEST_F_TIMEOUT(inotify, nohandle, 120)
{
	static const char *const want[] = {
		"fd 10: anon_inode:inotify: watch 6 (inode ",
		"): cannot reopen it by its file handle (a file system without file handles", NULL
	};

	REQUIRE_AMBER();
	sc_start(_metadata, &self->sc, "--nohandle");
	sc_refused(_metadata, &self->sc, NULL, want);
}

TEST_HARNESS_MAIN
