// SPDX-License-Identifier: GPL-2.0
// Restoring a checkpointed process as a child of the caller: what
// `amber restore` does, for the CLI and for `amber run`'s supervisor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <sys/types.h>

#include "common/result.h"

namespace amber {

struct RestoreRequest {
	std::string dir;			// image store
	std::optional<uint32_t> number;		// nullopt: the latest
	int timeout_s = 60;			// for amber.ko's answer
	// Lazy restore (restore/lazy.h): the process runs before its private
	// anonymous memory is filled; a child of the caller fills it. Its
	// messages go to lazy_log (appended) if set, else to stderr; with
	// lazy_log it also says when the fill is complete.
	bool lazy = false;
	std::string lazy_log;
};

// A restored process: a child of the caller (it exits with SIGCHLD, wait for
// it with waitid() on the pidfd or waitpid() on the pid), running.
struct RestoredProcess {
	uint32_t number = 0;	// checkpoint restored
	pid_t pid = -1;		// its original PID
	UniqueFd pidfd;
};

// Loads and verifies the checkpoint's chain, checks the files it needs and
// its PID, creates the stub with clone3(set_tid) and waits for amber.ko to
// turn it into the program; does not wait for the program. Nothing is left
// behind on failure. Errors name what failed ("pid 42 is in use (by comm
// 'x')", "fd 1: /tmp/out: missing", "amber.ko refused the restore: ...").
Result<RestoredProcess> restore_process(const RestoreRequest &req);

} // namespace amber
