// SPDX-License-Identifier: GPL-2.0
// Taking one checkpoint of a process into an image store: what
// `amber checkpoint` does, for the CLI and for `amber run`'s supervisor.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "checkpoint.h"
#include "store.h"
#include "result.h"

namespace amber {

struct CheckpointRequest {
	uint32_t pid = 0;
	std::string dir;		// image store
	TrackMode mode = TrackMode::Incremental;
	bool kill = false;		// HOLD, then SIGKILL once the image is durable
	uint32_t keep = 0;		// retention after publishing, 0: none
	RetainPolicy retain_policy;	// eager unless amber run asks lazy
	uint32_t timeout_ms = 60000;	// for the target to stop (and stay held)
	// Called after the kernel's reply, once the image files are written,
	// before the checkpoint is published. Its error fails the checkpoint
	// (nothing is published).
	std::function<Result<void>()> before_publish;
};

struct CheckpointSummary {
	uint32_t number = 0;
	uint32_t parent = 0;		// 0: full
	uint64_t stopped_ns = 0;	// the target's pause (kernel reply)
	uint64_t total_ns = 0;		// request until durable and retained
	uint64_t bytes = 0;		// pages.img + meta.img written
	uint64_t data_pages = 0;
	uint64_t parent_pages = 0;
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

} // namespace amber
