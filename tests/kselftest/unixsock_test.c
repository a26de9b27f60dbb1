// SPDX-License-Identifier: GPL-2.0
/*
 * UNIX sockets beyond socketpairs (issue 14): the unixsock workload holds
 * one kind per variant (stream listeners on a relative path and an
 * abstract name with accepted connections, an autobound and a never
 * connected socket; a datagram server with messages from an unnamed
 * sender and a client connected to it one way, a socket connected to a
 * logger outside the checkpoint (reconnected by name); seqpacket records through
 * an accepted connection; socket options), is checkpointed with --kill
 * (the stream kind also with a child and --tree --kill), restored,
 * compared with the fidelity helper, and checks its own state: names and
 * peer names, socket file mode, queued bytes and record boundaries,
 * sender addresses, connections waiting in a backlog (with their bytes,
 * one from a closed client), listen backlogs, new connections, options.
 *
 * The refused kinds must fail the checkpoint by name with nothing killed:
 * queued credentials, an fd in flight, a connection from outside the
 * checkpoint waiting in an accept backlog, bytes sent to a waiting
 * connection (they carry credentials), a name unlinked from the file
 * system.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "selfcheck.h"

#define UNIX_TMP	TEST_TMP "/unix"

FIXTURE(unixsock) {
	struct selfcheck sc;
};

FIXTURE_VARIANT(unixsock) {
	const char *kind;	/* the workload's --KIND */
	bool tree;		/* --fork workload, checkpoint --tree */
	const char *refused;	/* NULL: restored; else the refusal's words */
};

FIXTURE_VARIANT_ADD(unixsock, stream) { .kind = "--stream" };
FIXTURE_VARIANT_ADD(unixsock, stream_tree) { .kind = "--stream", .tree = true };
FIXTURE_VARIANT_ADD(unixsock, dgram) { .kind = "--dgram" };
FIXTURE_VARIANT_ADD(unixsock, seqpacket) { .kind = "--seqpacket" };
FIXTURE_VARIANT_ADD(unixsock, options) { .kind = "--options" };
FIXTURE_VARIANT_ADD(unixsock, creds) {
	.kind = "--creds", .refused = "queued credentials (SCM_CREDENTIALS, SO_PASSCRED) are not supported",
};
FIXTURE_VARIANT_ADD(unixsock, rights) {
	.kind = "--rights", .refused = "(SCM_RIGHTS) are not supported",
};
FIXTURE_VARIANT_ADD(unixsock, backlog) {
	.kind = "--backlog", .refused = "which is not in the checkpoint, waits in its accept backlog",
};
FIXTURE_VARIANT_ADD(unixsock, early) {
	.kind = "--early", .refused = "waiting in its accept backlog holds bytes",
};
FIXTURE_VARIANT_ADD(unixsock, unlinked) {
	.kind = "--unlinked", .refused = "/gone.sock was unlinked",
};

FIXTURE_SETUP(unixsock)
{
	sc_setup(_metadata, &self->sc, UNIX_TMP, "unixsock", variant->tree);
}

FIXTURE_TEARDOWN(unixsock)
{
	sc_teardown(_metadata, &self->sc);
}

TEST_F_TIMEOUT(unixsock, checkpoint, 180)
{
	REQUIRE_AMBER();
	sc_start(_metadata, &self->sc, variant->kind);
	if (variant->refused) {
		const char *const want[] = { "fd ", variant->refused, NULL };

		sc_refused(_metadata, &self->sc, NULL, want);
		return;
	}
	sc_restore_check(_metadata, &self->sc, sc_checkpoint_kill(_metadata, &self->sc));
}

TEST_HARNESS_MAIN
