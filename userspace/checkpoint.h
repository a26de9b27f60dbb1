// SPDX-License-Identifier: GPL-2.0
// The AMBER_CMD_CHECKPOINT reply and what the tools accept from it.
// No I/O here: parsing and policy, so the unit tests can exercise them.
#pragma once

#include <cstdint>
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
	uint64_t pages_nr = 0;
};

// Parses and validates the attributes of a CHECKPOINT reply.
Result<CheckpointReply> parse_checkpoint_reply(ByteView payload);

// Refuses what restore cannot recreate yet, naming the resource:
// "fd 5: socket:[1234] is not supported yet", deleted files, ...
Result<void> check_supported(const CheckpointReply &r);

// Human name of an fd type ("regular file", "socket", ...).
const char *fd_type_name(uint32_t type);

} // namespace amber
