// SPDX-License-Identifier: GPL-2.0
// Ghost files: regular files that are open but deleted (unlinked) at the
// checkpoint. The kernel describes their fds like any other; the tool reads
// their content through /proc/PID/fd/N while the group is held (--kill) or
// right after the reply, and keeps it in the image's GHOSTS section.
// Restore recreates each one in its old directory (files.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "common/result.h"

namespace amber {

// The default of --ghost-limit: the largest deleted file saved, in bytes.
inline constexpr uint64_t kDefaultGhostLimit = 1 << 20;

// f is an fd on a deleted regular file.
bool is_ghost(const FdInfo &f);

// The path a ghost is recreated at: f.path without " (deleted)".
std::string ghost_path(const std::string &deleted);

// What the checkpoint refuses about ghost f of process pid, before reading
// anything: a size above limit ("pid P: fd N: PATH (deleted): a deleted
// file of S bytes is larger than the ghost limit of L bytes (raise it with
// --ghost-limit BYTES)"), a directory that is gone or on another file
// system now.
Result<void> check_ghost(uint32_t pid, const FdInfo &f, uint64_t limit);

// For every live process of g, in order: its GHOSTS section (empty when it
// has none). Each inode is saved once, in the first process with an fd on
// it; its content is read through /proc/PID/fd/N and checked to be that
// inode, still unlinked, with the size the kernel reported.
Result<std::vector<Bytes>> collect_ghosts(const GroupReply &g, uint64_t limit);

} // namespace amber
