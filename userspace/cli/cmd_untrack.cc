// SPDX-License-Identifier: GPL-2.0
// amber untrack PID: stop tracking a process's dirty pages. Its next
// checkpoint is full; nothing in the image store changes.
#include <cstdio>

#include <CLI/CLI.hpp>

#include <linux/amber.h>

#include "cli/commands.h"
#include "netlink/netlink.h"

namespace amber {

namespace {

struct UntrackOptions {
	uint32_t pid = 0;
	int timeout_ms = 5000;
};

Result<void> untrack(const UntrackOptions &o)
{
	auto nl = connect_module();
	if (!nl)
		return tl::unexpected(nl.error());
	AttrWriter w;
	w.put_u32(AMBER_A_PID, o.pid);
	auto r = nl->transact(AMBER_CMD_UNTRACK, w.view(), o.timeout_ms);
	if (!r)
		return wrap(r.error(), "pid " + std::to_string(o.pid) + ": ");
	return {};
}

void run_untrack(const UntrackOptions &o)
{
	if (auto r = untrack(o); !r) {
		report_error("untrack", r.error());
		return;
	}
	printf("pid %u: no longer tracked, its next checkpoint is full\n", o.pid);
}

} // namespace

void setup_untrack(CLI::App &app)
{
	auto opt = std::make_shared<UntrackOptions>();
	CLI::App *sub = app.add_subcommand(
		"untrack", "Stop tracking a process's dirty pages (its next checkpoint is full)");
	sub->add_option("pid", opt->pid, "Tracked process")
		->required()
		->check(CLI::Range(1u, 4194304u));
	sub->add_option("--timeout", opt->timeout_ms, "Milliseconds to wait for amber.ko")
		->capture_default_str()
		->check(CLI::Range(1, 600000));
	sub->callback([opt] { run_untrack(*opt); });
}

} // namespace amber
