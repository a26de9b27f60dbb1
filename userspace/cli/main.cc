// SPDX-License-Identifier: GPL-2.0
// amber: checkpoint/restart of unmodified Linux processes (CLI entry point).
#include <algorithm>
#include <iterator>
#include <string_view>
#include <utility>

#include <CLI/CLI.hpp>

#include <linux/amber.h>

#include "cli/commands.h"

int main(int argc, char **argv)
{
	CLI::App app{"amber: transparent checkpoint/restart of Linux processes (tools " AMBER_VERSION_STRING ")"};
	app.require_subcommand(1);

	// Only the subcommand named, when argv[1] names one: setting up all of
	// them took about 20 ms of a lazy restore's time to first instruction in
	// the TCG guest. Anything else (--help, a typo, nothing) gets all of them,
	// so that the usage and the errors list every subcommand.
	static const std::pair<std::string_view, void (*)(CLI::App &)> commands[] = {
		{"checkpoint", amber::setup_checkpoint}, {"restore", amber::setup_restore},
		{"inspect", amber::setup_inspect},	 {"compact", amber::setup_compact},
		{"untrack", amber::setup_untrack},	 {"run", amber::setup_run},
		{"bench", amber::setup_bench},		 {"version", amber::setup_version},
		{"lease-test", amber::setup_lease_test},
		{"backup", amber::setup_backup},
	};
	const auto *named = std::find_if(std::begin(commands), std::end(commands), [&](const auto &c) {
		return argc > 1 && c.first == argv[1];
	});
	if (named != std::end(commands))
		named->second(app);
	else
		for (const auto &c : commands)
			c.second(app);

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
