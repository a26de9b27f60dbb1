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
 * Queued credentials (--creds-tree, --tree --kill): messages from the
 * parent, with another uid and gid, from the child, and bytes waiting in
 * a backlog come back with their pid, uid, gid and boundaries.
 *
 * Files in flight (--rights, also --tree --kill): regular files, a
 * device and pipe ends held only by queued messages, and fds of the
 * process passed too, come back with the messages that pass them.
 *
 * The refused kinds must fail the checkpoint by name with nothing killed:
 * queued credentials of a single-process checkpoint or of a pid outside
 * the checkpoint, an eventfd or a socket in flight that no fd holds, a connection from outside the
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
	const char *inspect[6];	/* what `amber inspect` shows of the image */
};

FIXTURE_VARIANT_ADD(unixsock, stream) {
	.kind = "--stream",
	.inspect = { "listening, backlog 7, 1 waiting, bound to srv.sock (file 640 0:0)",
		     "accepted on srv.sock", "peer name srv.sock",
		     "listening, backlog 3, 1 waiting, bound to @amber-lst-", "unconnected" },
};
FIXTURE_VARIANT_ADD(unixsock, stream_tree) { .kind = "--stream", .tree = true };
FIXTURE_VARIANT_ADD(unixsock, dgram) {
	.kind = "--dgram",
	.inspect = { "unconnected, bound to /tmp/amber-tests/unix/",
		     "11 bytes queued in 2 messages", "/log.sock, rcvbuf" },
};
FIXTURE_VARIANT_ADD(unixsock, seqpacket) { .kind = "--seqpacket" };
FIXTURE_VARIANT_ADD(unixsock, options) {
	.kind = "--options",
	.inspect = { "rcvbuf 200000 (set)", "rcvlowat 5", "passcred" },
};
FIXTURE_VARIANT_ADD(unixsock, creds_tree) {
	.kind = "--creds-tree", .tree = true,
	.inspect = { "bytes queued in 3 messages (message 1: credentials pid ",
		     ", message 2: credentials pid ", " uid 1234 gid 5678, message 3: credentials pid ",
		     "passcred" },
};
FIXTURE_VARIANT_ADD(unixsock, creds) {
	.kind = "--creds", .refused = "(SCM_CREDENTIALS) of pid ",
};
FIXTURE_VARIANT_ADD(unixsock, creds_single) {
	.kind = "--creds", .refused = ", which only a --tree checkpoint restores",
};
FIXTURE_VARIANT_ADD(unixsock, creds_outside) {
	.kind = "--creds-outside", .tree = true,
	.refused = "(SCM_CREDENTIALS) of pid 1, not a live process of the checkpoint: not supported",
};
FIXTURE_VARIANT_ADD(unixsock, rights) {
	.kind = "--rights",
	.inspect = { "4 bytes queued in 2 messages (message 1: passes [/tmp/amber-tests/unix/",
		     "/rights.dat at offset 2, /dev/null], message 2: passes [pipe:[",
		     "] (also fd 15), socket:[", "] (also fd 10)])",
		     "20 bytes queued in 4 messages (message 2: passes [",
		     "/rights.dat at offset 4], message 3: passes [pipe:[" },
};
FIXTURE_VARIANT_ADD(unixsock, rights_tree) { .kind = "--rights", .tree = true };
FIXTURE_VARIANT_ADD(unixsock, rights_eventfd) {
	.kind = "--rights-eventfd",
	.refused = "anon_inode:[eventfd]: an anonymous inode passed in a queued message (SCM_RIGHTS) and held by no fd of the checkpoint: not supported",
};
FIXTURE_VARIANT_ADD(unixsock, rights_socket) {
	.kind = "--rights-socket",
	.refused = ": a socket passed in a queued message (SCM_RIGHTS) and held by no fd of the checkpoint",
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
	struct fid_snap *before;

	REQUIRE_AMBER();
	sc_start(_metadata, &self->sc, variant->kind);
	if (variant->refused) {
		const char *const want[] = { "fd ", variant->refused, NULL };

		sc_refused(_metadata, &self->sc, NULL, want);
		return;
	}
	before = sc_checkpoint_kill(_metadata, &self->sc);
	if (variant->inspect[0]) {
		struct cmd_result r = { 0 };

		ASSERT_EQ(0, run_cmdl(30000, &r, AMBER_BIN, "inspect", "-D", self->sc.dir, NULL));
		EXPECT_EQ(0, exit_code(r.status)) TH_LOG("inspect: %s", r.err);
		for (int i = 0; i < 6 && variant->inspect[i]; i++) {
			EXPECT_TRUE(r.out && strstr(r.out, variant->inspect[i]))
				TH_LOG("inspect shows no \"%s\":\n%s", variant->inspect[i], r.out);
		}
		cmd_result_free(&r);
	}
	sc_restore_check(_metadata, &self->sc, before);
}

TEST_HARNESS_MAIN
