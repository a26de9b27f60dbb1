// SPDX-License-Identifier: GPL-2.0
// The AMBER_CMD_CHECKPOINT reply and what the tools accept from it.
// No I/O here: parsing and policy, so the unit tests can exercise them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attr.h"
#include "image.h"
#include "result.h"

namespace amber {

struct CheckpointReply {
	Bytes core;		// TASK, MM, REGS, FPU, SIGNALS attributes (raw)
	Bytes vmas;		// payload of AMBER_A_VMAS: AMBER_A_VMA attributes
	Bytes fds;		// payload of AMBER_A_FDS: AMBER_A_FD attributes
	TaskInfo task;
	std::vector<Vma> vma_list;
	std::vector<FdInfo> fd_list;
	uint64_t stopped_ns = 0;
	uint64_t pages_bytes = 0;
	uint64_t pages_nr = 0;		// pages with data in the pages file
	uint64_t pages_parent_nr = 0;	// pages in AMBER_RUN_F_PARENT runs
	uint64_t track_id = 0;		// 0: the target is not tracked
	std::optional<uint64_t> parent_id;	// echoed iff incremental
	std::string full_reason;	// why a PARENT_ID was not used
};

// Parses and validates the attributes of a CHECKPOINT reply.
Result<CheckpointReply> parse_checkpoint_reply(ByteView payload);

// Refuses what restore cannot recreate yet, naming the resource:
// "fd 5: socket:[1234] is not supported yet", deleted files, ...
Result<void> check_supported(const CheckpointReply &r);

// Which checkpoint a new one may be incremental to.
enum class TrackMode {
	Incremental,	// default: on the latest one when it is of the same process
	Full,		// --full: full, tracked from now on
	None,		// --no-track: full, and the process is no longer tracked
};

// What the store's latest checkpoint says about its process (INFO, TASK).
struct LatestMeta {
	uint32_t number = 0;
	uint32_t pid = 0;
	uint64_t start_time_ns = 0;	// AMBER_TASK_START_TIME_NS (boottime)
	uint64_t track_id = 0;
};

struct ParentChoice {
	uint32_t parent = 0;		// checkpoint number asked as parent, 0: none
	uint64_t parent_id = 0;		// AMBER_A_PARENT_ID, 0: not sent
	uint32_t flags = 0;		// AMBER_CKPT_F_TRACK (HOLD is added by --kill)
	bool untrack = false;		// send AMBER_CMD_UNTRACK first
	std::string why_full;		// when no parent is asked although the mode allows it
};

// The parent-choosing policy of `amber checkpoint`: incremental on latest
// iff the mode allows it, latest is tracked (track_id != 0), of the same pid
// and, when the target's start time is known (start_ticks, clock ticks since
// boot from /proc/PID/stat), of the same process (PID reuse).
ParentChoice choose_parent(const std::optional<LatestMeta> &latest, uint32_t pid,
			   std::optional<uint64_t> start_ticks, long ticks_per_sec, TrackMode mode);

// Second line of `amber checkpoint` (scripts parse it, with the first):
// "  incremental on checkpoint M: D pages saved, U pages unchanged",
// "  full (REASON): D pages saved" or "  full: D pages saved" (no newline).
std::string kind_line(uint32_t parent, uint64_t data_pages, uint64_t parent_pages,
		      const std::string &full_reason);

// Field 22 (starttime, clock ticks since boot) of a /proc/PID/stat line.
std::optional<uint64_t> parse_stat_start_ticks(std::string_view stat);

// Human name of an fd type ("regular file", "socket", ...).
const char *fd_type_name(uint32_t type);

} // namespace amber
