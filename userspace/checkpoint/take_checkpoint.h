// SPDX-License-Identifier: GPL-2.0
// Taking one checkpoint of a process into an image store: what
// `amber checkpoint` does, for the CLI and for `amber run`'s supervisor.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/ghosts.h"
#include "image/store.h"
#include "common/result.h"

namespace amber {

struct CheckpointRequest {
	uint32_t pid = 0;
	std::string dir;		// image store
	TrackMode mode = TrackMode::Incremental;
	bool kill = false;		// HOLD, then SIGKILL once the image is durable
	uint32_t keep = 0;		// retention after publishing, 0: none
	RetainPolicy retain_policy;	// eager unless amber run asks lazy
	uint32_t timeout_ms = 60000;	// for the target to stop (and stay held)
	// The target and all its descendants, as one consistent cut
	// (AMBER_CKPT_F_TREE): DIR/N holds the root's image with the TREE
	// section, DIR/N/proc/PID every other live process's.
	bool tree = false;
	// Deleted regular files open in the target are saved up to this size
	// each (ghosts.h); a larger one is refused.
	uint64_t ghost_limit = kDefaultGhostLimit;
	// zstd level (1..19) of the pages files, compressed into
	// pages.img.zst after the target resumed (image/compress.h); 0: none.
	int compress_level = 0;
	// Called after the kernel's reply, once the image files are written,
	// before the checkpoint is published. Its error fails the checkpoint
	// (nothing is published).
	std::function<Result<void>()> before_publish;
};

struct CheckpointSummary {
	uint32_t number = 0;
	uint32_t parent = 0;		// 0: full
	uint64_t stopped_ns = 0;	// the group's pause (kernel reply)
	uint64_t total_ns = 0;		// request until durable and retained
	uint64_t bytes = 0;		// pages.img (or .zst) + meta.img written
	// compress_level: the pages files' bytes before and after, and the
	// time compressing them took (part of total_ns).
	uint64_t pages_bytes = 0;
	uint64_t compressed_bytes = 0;
	uint64_t compress_ns = 0;
	uint64_t data_pages = 0;	// of all processes
	uint64_t parent_pages = 0;	// of all processes
	uint32_t processes = 1;		// live processes (with an image), root included
	uint32_t zombies = 0;		// zombies of the tree (no image)
	uint32_t threads = 1;		// of all live processes, leaders included
	uint32_t incremental_processes = 0;	// of the live ones, with a parent
	std::string full_reason;	// why full although incremental was possible
	std::string retention;		// "  keep K: ..." when keep was asked
	uint64_t compacted_bytes = 0;	// written by the retention's compactions
	// An error after the checkpoint was published (retention, --kill).
	std::optional<Error> late_error;

	bool incremental() const { return parent != 0; }
};

// Checkpoints req.pid into req.dir: incremental on the store's latest
// checkpoint when the mode and that checkpoint allow it (choose_parent()),
// published atomically, then retention to req.keep. Errors name what
// failed ("pid 42: ...", "pages.img: ...").
Result<CheckpointSummary> take_checkpoint(const CheckpointRequest &req);

// The descendants of pid found under proc_root (PROC/PID/task/*/children,
// recursively), parents before children; a snapshot, for sizing the pages
// files of a tree checkpoint and choosing its parents. Processes that
// vanish meanwhile are skipped.
std::vector<uint32_t> list_descendants(uint32_t pid, const std::string &proc_root = "/proc");

} // namespace amber
