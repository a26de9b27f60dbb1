// SPDX-License-Identifier: GPL-2.0
// amber checkpoint PID -D DIR [--tree] [--full] [--no-track] [--keep K] [--kill]
//                  [--timeout MS] [--ghost-limit BYTES] [--compress [--compress-level L]]
//
// The CLI around take_checkpoint() (checkpoint/take_checkpoint.cc), which `amber run`
// shares.
#include <cinttypes>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "checkpoint/checkpoint.h"
#include "image/compress.h"
#include "cli/commands.h"
#include "checkpoint/take_checkpoint.h"

namespace amber {

namespace {

struct CheckpointOptions {
	uint32_t pid = 0;
	std::string dir;
	bool kill = false;
	bool full = false;
	bool no_track = false;
	bool tree = false;
	uint32_t keep = 0;		// 0: no retention
	uint32_t timeout_ms = 60000;
	uint64_t ghost_limit = kDefaultGhostLimit;
	bool compress = false;
	int compress_level = kDefaultZstdLevel;
};

void run_checkpoint(const CheckpointOptions &o)
{
	CheckpointRequest req;
	req.pid = o.pid;
	req.dir = o.dir;
	req.mode = o.no_track ? TrackMode::None : o.full ? TrackMode::Full : TrackMode::Incremental;
	req.kill = o.kill;
	req.tree = o.tree;
	req.keep = o.keep;
	req.timeout_ms = o.timeout_ms;
	req.ghost_limit = o.ghost_limit;
	req.compress_level = o.compress ? o.compress_level : 0;
	auto s = take_checkpoint(req);
	if (!s) {
		report_error("checkpoint", s.error());
		return;
	}
	// Scripts parse the first line: keep it as it is.
	printf("checkpoint %u: pid %u, stopped %.3f ms, total %.3f ms, %" PRIu64 " bytes written\n",
	       s->number, o.pid, s->stopped_ns / 1e6, s->total_ns / 1e6, s->bytes);
	printf("%s\n",
	       kind_line(s->parent, s->data_pages, s->parent_pages, s->full_reason).c_str());
	const std::string group = group_line(o.tree, s->processes + s->zombies, s->zombies,
					     s->threads);
	if (!group.empty())
		printf("%s\n", group.c_str());
	if (o.compress)
		printf("  compressed %" PRIu64 " bytes of pages to %" PRIu64
		       " (zstd level %d) in %.3f ms\n",
		       s->pages_bytes, s->compressed_bytes, o.compress_level, s->compress_ns / 1e6);
	if (!s->retention.empty())
		printf("%s\n", s->retention.c_str());
	if (s->late_error) {
		fflush(stdout);
		report_error("checkpoint", *s->late_error);
	}
}

} // namespace

void setup_checkpoint(CLI::App &app)
{
	auto opt = std::make_shared<CheckpointOptions>();
	CLI::App *sub = app.add_subcommand(
		"checkpoint", "Checkpoint a running process (all its threads), or with --tree "
			      "the process and all its descendants");
	sub->add_option("pid", opt->pid, "Process to checkpoint")
		->required()
		->check(CLI::Range(1u, 4194304u));
	sub->add_option("-D,--dir", opt->dir, "Image store directory")->required();
	sub->add_flag("--tree", opt->tree,
		      "Also checkpoint every descendant of the process (children, their "
		      "children, ..., zombies), stopped together as one consistent cut");
	CLI::Option *full = sub->add_flag("--full", opt->full,
		      "Save every page even if the latest checkpoint is of this process "
		      "(dirty tracking starts over)");
	sub->add_flag("--no-track", opt->no_track,
		      "Full checkpoint, and stop tracking the process's dirty pages")
		->excludes(full);
	sub->add_option("--keep", opt->keep,
			"Afterwards keep only the last K checkpoints restorable, deleting "
			"data that none of them needs (0: keep everything)")
		->capture_default_str()
		->check(CLI::Range(0u, 1000000u));
	sub->add_flag("--kill", opt->kill,
		      "SIGKILL the process (with --tree: every process of the tree) once the "
		      "image is durable (no instruction runs in between)");
	sub->add_option("--timeout", opt->timeout_ms,
			"Milliseconds to wait for the process to stop (and to stay held with --kill)")
		->capture_default_str()
		->check(CLI::Range(1u, 60000u));
	sub->add_option("--ghost-limit", opt->ghost_limit,
			"Largest deleted-but-open regular file whose content is saved into the "
			"image, in bytes; a larger one is refused")
		->capture_default_str();
	CLI::Option *compress = sub->add_flag(
		"--compress", opt->compress,
		"Compress the pages files with zstd (pages.img.zst) after the process resumed: "
		"smaller images of compressible memory; restore decompresses them into memory "
		"first");
	sub->add_option("--compress-level", opt->compress_level, "zstd level of --compress")
		->capture_default_str()
		->check(CLI::Range(1, 19))
		->needs(compress);
	sub->callback([opt] { run_checkpoint(*opt); });
}

} // namespace amber
