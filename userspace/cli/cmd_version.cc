// SPDX-License-Identifier: GPL-2.0
// amber version: tool and module versions.
#include <cstdio>

#include <CLI/CLI.hpp>

#include <linux/amber.h>

#include "cli/commands.h"
#include "netlink/netlink.h"

namespace amber {

namespace {

struct VersionOptions {
	int timeout_ms = 5000;
};

// "X" from GET_VERSION, or an error (ENOENT "amber.ko is not loaded").
Result<std::string> module_version(int timeout_ms)
{
	auto nl = AMBER_TRY(NetlinkClient::connect());
	auto reply = AMBER_TRY(nl.transact(AMBER_CMD_GET_VERSION, {}, timeout_ms));
	auto attrs = AMBER_TRY(reply.attrs());
	const Attr *v = find_attr(attrs, AMBER_A_MODULE_VERSION);
	if (!v)
		return fail(EPROTO, "amber.ko sent no version");
	std::string s = v->str();
	if (const Attr *p = find_attr(attrs, AMBER_A_PROTO_VERSION)) {
		auto proto = p->u32();
		if (proto && *proto != AMBER_FAMILY_VERSION)
			s += " (protocol " + std::to_string(*proto) + ", tools speak " +
			     std::to_string(AMBER_FAMILY_VERSION) + ")";
	}
	if (const Attr *p = find_attr(attrs, AMBER_A_SESSIONS)) {
		if (auto n = p->u32(); n && *n)
			s += ", " + std::to_string(*n) + " target(s) stopped or held";
	}
	if (const Attr *p = find_attr(attrs, AMBER_A_TRACKED)) {
		if (auto n = p->u32())
			s += ", " + std::to_string(*n) + " tracked process" + (*n == 1 ? "" : "es");
	}
	return s;
}

void run_version(const VersionOptions &o)
{
	printf("amber tools %s\n", AMBER_VERSION_STRING);
	auto v = module_version(o.timeout_ms);
	if (v) {
		printf("amber.ko %s\n", v->c_str());
	} else if (v.error().err == ENOENT) {
		printf("amber.ko not loaded\n");
	} else {
		fflush(stdout);
		report_error("version", v.error());
	}
}

} // namespace

void setup_version(CLI::App &app)
{
	auto opt = std::make_shared<VersionOptions>();
	CLI::App *sub = app.add_subcommand("version", "Print the tool and module versions");
	sub->add_option("--timeout", opt->timeout_ms, "Milliseconds to wait for amber.ko")
		->capture_default_str();
	sub->callback([opt] { run_version(*opt); });
}

} // namespace amber
