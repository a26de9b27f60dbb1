// SPDX-License-Identifier: GPL-2.0
/*
 * timerfd and signalfd (issue 14; refused before: "anon_inode:[timerfd] is
 * not supported yet"). The eventfds workload holds timerfds on three clocks
 * (periodic and expired unread, one-shot relative, fired with 7 unread
 * ticks, never armed, absolute with TFD_TIMER_CANCEL_ON_SET) and a
 * signalfd; it is checkpointed with --kill (and, with a child sharing them
 * all, --tree --kill), restored, compared with the fidelity helper
 * (timerfd clockid, settime flags, interval, armed or not; signalfd
 * sigmask), and checks its own state after the restore: the periodic timer
 * fires at its interval, the one-shot once at about the time left, the
 * ticks read back, the disarmed one stays so, the absolute one keeps its
 * expiry, the signalfd reads a signal raised after the restore.
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

#define EVFDS_TMP	TEST_TMP "/eventfds"

FIXTURE(eventfds) {
	struct selfcheck sc;
};

FIXTURE_VARIANT(eventfds) {
	bool tree;		/* --fork workload, checkpoint --tree */
};

FIXTURE_VARIANT_ADD(eventfds, single_kill) { .tree = false };
FIXTURE_VARIANT_ADD(eventfds, tree_kill) { .tree = true };

FIXTURE_SETUP(eventfds)
{
	sc_setup(_metadata, &self->sc, EVFDS_TMP, "eventfds", variant->tree);
}

FIXTURE_TEARDOWN(eventfds)
{
	sc_teardown(_metadata, &self->sc);
}

TEST_F_TIMEOUT(eventfds, restore, 180)
{
	REQUIRE_AMBER();
	sc_start(_metadata, &self->sc, NULL);
	sc_restore_check(_metadata, &self->sc, sc_checkpoint_kill(_metadata, &self->sc));
}

TEST_HARNESS_MAIN
