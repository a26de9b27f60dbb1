// SPDX-License-Identifier: GPL-2.0
// Subcommands of the amber CLI. Each lives in its own cmd_<name>.cc with an
// options struct, registers itself on the top-level CLI::App with
// setup_<name>() and runs from a CLI11 callback. A callback never throws
// for an operational error: it prints "amber <name>: <message>" with
// report_error() and records the exit status with set_exit_status().
#pragma once

#include <string>

#include "common/result.h"

namespace CLI {
class App;
}

namespace amber {

void setup_checkpoint(CLI::App &app);
void setup_restore(CLI::App &app);	// cmd_restore.cc
void setup_inspect(CLI::App &app);
void setup_version(CLI::App &app);
void setup_compact(CLI::App &app);	// cmd_compact.cc
void setup_untrack(CLI::App &app);
void setup_run(CLI::App &app);		// cmd_run.cc
void setup_bench(CLI::App &app);	// cmd_bench.cc
void setup_lease_test(CLI::App &app);	// cmd_lease_test.cc (hidden, for tests)
void setup_backup(CLI::App &app);	// cmd_backup.cc

// Exit status main() returns once the subcommand's callback is done.
void set_exit_status(int status);
int exit_status();

// Prints "amber <cmd>: <e.str()>" on stderr, sets the exit status to 1 and
// returns 1.
int report_error(const char *cmd, const Error &e);

} // namespace amber
