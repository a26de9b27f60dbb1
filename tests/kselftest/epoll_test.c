// SPDX-License-Identifier: GPL-2.0
/*
 * epoll (issue 14): the epoll workload holds two epolls, one watching the
 * other, with edge-triggered, ONESHOT (fired: disarmed), EPOLLEXCLUSIVE and
 * EPOLLWAKEUP registrations on a pipe with bytes queued and an eventfd, and
 * one under an fd dup'ed and closed since (with --fork a child inherits
 * them). It is checkpointed with --kill (and --tree
 * --kill), restored, compared with the fidelity helper (the "tfd" lines of
 * each epoll's fdinfo), and checks what epoll_wait() reports after the
 * restore.
 *   - restore: the image restores (refused before: "anon_inode:[eventpoll]
 *     is not supported yet");
 *   - closed: a registration whose fd was closed since EPOLL_CTL_ADD, its
 *     file held by a child only (outside a single checkpoint; in a tree,
 *     not in the process reporting the epoll), is refused at checkpoint by
 *     name, nothing killed, nothing published.
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

#define EPOLL_TMP	TEST_TMP "/epoll"

FIXTURE(epoll) {
	struct selfcheck sc;
};

FIXTURE_VARIANT(epoll) {
	bool tree;		/* --fork workload, checkpoint --tree */
};

FIXTURE_VARIANT_ADD(epoll, single_kill) { .tree = false };
FIXTURE_VARIANT_ADD(epoll, tree_kill) { .tree = true };

FIXTURE_SETUP(epoll)
{
	sc_setup(_metadata, &self->sc, EPOLL_TMP, "epoll", variant->tree);
}

FIXTURE_TEARDOWN(epoll)
{
	sc_teardown(_metadata, &self->sc);
}

TEST_F_TIMEOUT(epoll, restore, 120)
{
	REQUIRE_AMBER();
	sc_start(_metadata, &self->sc, NULL);
	sc_restore_check(_metadata, &self->sc, sc_checkpoint_kill(_metadata, &self->sc));
}

/* A registration whose file no fd holds: refused by name, nothing killed. */
TEST_F_TIMEOUT(epoll, closed, 120)
{
	static const char *const want[] = {
		"fd 13: anon_inode:[eventpoll]: watches fd 21 (inode ",
		"), whose file is open in no fd", NULL
	};

	REQUIRE_AMBER();
	sc_start(_metadata, &self->sc, "--closed");
	sc_refused(_metadata, &self->sc, NULL, want);
}

TEST_HARNESS_MAIN
