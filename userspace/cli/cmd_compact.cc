// SPDX-License-Identifier: GPL-2.0
// amber compact -D DIR [--checkpoint N] [--keep K]: rewrites a checkpoint of
// an incremental chain as a full one, in place (latest, or N), and with
// --keep keeps only the K newest checkpoints restorable, deleting the rest.
#include <cinttypes>
#include <cstdio>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "image/store.h"

namespace amber {

namespace {

struct CompactOptions {
	std::string dir;
	uint32_t checkpoint = 0;	// 0: latest (unless --keep alone)
	uint32_t keep = 0;		// 0: no retention
};

void print_compact(const CompactResult &r)
{
	// A tree checkpoint: how many process images, how many were rewritten.
	std::string procs;
	if (r.processes > 1)
		procs = (r.compacted ? "; " : " (") + std::to_string(r.processes) + " processes" +
			(r.compacted ? ", " + std::to_string(r.compacted_processes) + " rewritten"
				     : ")");
	if (r.compacted)
		printf("compacted checkpoint %u: %" PRIu64 " pages, %" PRIu64
		       " bytes (chain of %zu links%s)\n",
		       r.number, r.pages, r.bytes, r.links, procs.c_str());
	else
		printf("checkpoint %u is already full: %" PRIu64 " pages, %" PRIu64 " bytes%s\n",
		       r.number, r.pages, r.bytes, procs.c_str());
}

std::string join(const std::vector<uint32_t> &v)
{
	std::string s;
	for (uint32_t n : v)
		s += (s.empty() ? "" : ", ") + std::to_string(n);
	return s;
}

Result<void> do_compact(const CompactOptions &o)
{
	Store store(o.dir);
	if (o.checkpoint || !o.keep) {
		uint32_t n = AMBER_TRY(store.resolve(o.checkpoint ? std::optional<uint32_t>(o.checkpoint)
								  : std::nullopt));
		print_compact(AMBER_TRY(store.compact(n)));
	}
	if (o.keep) {
		RetainResult r = AMBER_TRY(store.retain(o.keep));
		for (const CompactResult &c : r.compacted)
			print_compact(c);
		if (r.deleted.empty())
			printf("kept checkpoints %s, nothing to delete\n", join(r.kept).c_str());
		else
			printf("kept checkpoints %s, deleted %s\n", join(r.kept).c_str(),
			       join(r.deleted).c_str());
	}
	return {};
}

} // namespace

void setup_compact(CLI::App &app)
{
	auto opt = std::make_shared<CompactOptions>();
	CLI::App *sub = app.add_subcommand(
		"compact", "Merge a checkpoint's chain into one full checkpoint, keep the newest K");
	sub->add_option("-D,--dir", opt->dir, "Image store directory")->required();
	sub->add_option("--checkpoint", opt->checkpoint,
			"Checkpoint to compact (default: latest, or none with --keep alone)")
		->check(CLI::Range(1u, UINT32_MAX));
	sub->add_option("--keep", opt->keep,
			"Keep the newest K checkpoints restorable, compacting them as needed, "
			"and delete the others")
		->check(CLI::Range(1u, UINT32_MAX));
	sub->callback([opt] {
		if (auto r = do_compact(*opt); !r)
			report_error("compact", r.error());
	});
}

} // namespace amber
