// SPDX-License-Identifier: GPL-2.0
/*
 * Ghost files (issue 13): regular files open but unlinked at the
 * checkpoint. The ghost workload holds two descriptions of one deleted
 * file (one of them dup'ed, and with --fork inherited by a child) and an
 * empty deleted file of mode 0400; it is checkpointed with --kill (and
 * --tree --kill), restored, compared with the fidelity helper, and checks
 * its own state after the restore (content from its offset, the sharing,
 * O_APPEND, st_nlink 0, sizes and modes).
 *   - restore: the image restores (refused before: "was deleted before the
 *     checkpoint, cannot reopen it");
 *   - limit: a ghost above --ghost-limit is refused at checkpoint naming
 *     the pid, fd, path, size and the option, nothing killed.
 * The eventfd variants run the eventfd workload the same way (issue 13,
 * refused before: "anon_inode:[eventfd] is not supported yet"): counts (one
 * above 32 bits), EFD_SEMAPHORE (1 per read), O_NONBLOCK (EAGAIN at 0),
 * FD_CLOEXEC, a dup and, with --fork, a child sharing them.
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

#define GHOST_TMP	TEST_TMP "/ghost"

FIXTURE(ghost) {
	struct selfcheck sc;
};

FIXTURE_VARIANT(ghost) {
	const char *w;		/* workload */
	bool tree;		/* --fork workload, checkpoint --tree */
};

FIXTURE_VARIANT_ADD(ghost, single_kill) { .w = "ghost", .tree = false };
FIXTURE_VARIANT_ADD(ghost, tree_kill) { .w = "ghost", .tree = true };
FIXTURE_VARIANT_ADD(ghost, eventfd_single_kill) { .w = "eventfd", .tree = false };
FIXTURE_VARIANT_ADD(ghost, eventfd_tree_kill) { .w = "eventfd", .tree = true };

FIXTURE_SETUP(ghost)
{
	sc_setup(_metadata, &self->sc, GHOST_TMP, variant->w, variant->tree);
}

FIXTURE_TEARDOWN(ghost)
{
	sc_teardown(_metadata, &self->sc);
}

/* Nothing of the ghost workload's deleted file is left under its name. */
static void no_ghost_left(struct __test_metadata *_metadata, const struct selfcheck *sc,
			  const char *when)
{
	char p[400];

	snprintf(p, sizeof(p), "%s/ghost-a", sc->base);
	EXPECT_NE(0, access(p, F_OK)) TH_LOG("%s left %s behind", when, p);
}

TEST_F_TIMEOUT(ghost, restore, 120)
{
	struct fid_snap *before;

	REQUIRE_AMBER();
	sc_start(_metadata, &self->sc, NULL);
	before = sc_checkpoint_kill(_metadata, &self->sc);
	no_ghost_left(_metadata, &self->sc, "the checkpoint");
	sc_restore_check(_metadata, &self->sc, before);
	no_ghost_left(_metadata, &self->sc, "the restore");
}

/* Above --ghost-limit: refused by name, nothing killed, nothing published. */
TEST_F_TIMEOUT(ghost, limit, 120)
{
	static const char *const opts[] = { "--ghost-limit", "100000", NULL };
	const char *want[2] = { NULL, NULL };
	char msg[800];

	REQUIRE_AMBER();
	if (strcmp(variant->w, "ghost"))
		SKIP(return, "ghost files only");
	sc_start(_metadata, &self->sc, NULL);
	snprintf(msg, sizeof(msg), "pid %d: fd 10: %s/ghost-a (deleted): a deleted file of "
		 "200000 bytes is larger than the ghost limit of 100000 bytes (raise it with "
		 "--ghost-limit BYTES)", self->sc.pid, self->sc.base);
	want[0] = msg;
	sc_refused(_metadata, &self->sc, opts, want);
}

TEST_HARNESS_MAIN
