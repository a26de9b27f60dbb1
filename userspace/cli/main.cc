// SPDX-License-Identifier: GPL-2.0
// amber: checkpoint/restart of unmodified Linux processes (CLI entry point).
#include <CLI/CLI.hpp>

#include <linux/amber.h>

#include "cli/commands.h"

int main(int argc, char **argv)
{
	CLI::App app{"amber: transparent checkpoint/restart of Linux processes (tools " AMBER_VERSION_STRING ")"};
	app.require_subcommand(1);

	amber::setup_checkpoint(app);
	amber::setup_restore(app);
	amber::setup_inspect(app);
	amber::setup_compact(app);
	amber::setup_untrack(app);
	amber::setup_run(app);
	amber::setup_bench(app);
	amber::setup_version(app);

	try {
		app.parse(argc, argv);
	} catch (const CLI::ParseError &e) {
		// Usage errors exit 1 like every other error; --help exits 0.
		return app.exit(e) == 0 ? 0 : 1;
	} catch (const std::exception &e) {
		fprintf(stderr, "amber: %s\n", e.what());
		return 1;
	}
	return amber::exit_status();
}
