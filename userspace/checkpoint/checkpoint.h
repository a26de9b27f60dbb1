// SPDX-License-Identifier: GPL-2.0
// The AMBER_CMD_CHECKPOINT reply and what the tools accept from it.
// No I/O here: parsing and policy, so the unit tests can exercise them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/attr.h"
#include "image/image.h"
#include "common/result.h"

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

	// Issue 5. PROC: every message of a CHECKPOINT reply has it (a kernel
	// without it sent one message for one single-threaded process).
	std::optional<ProcInfo> proc;
	Bytes proc_attr;		// the whole AMBER_A_PROC attribute (for TREE)
	Bytes threads;			// AMBER_A_THREAD attributes (THREADS nests' payload)
	std::vector<ThreadInfo> thread_list;	// ascending TID, raw filled
	Bytes queues;			// AMBER_A_QUEUE attributes, as sent
	std::vector<QueueChunk> queue_list;
	std::optional<uint32_t> pages_index;	// into PAGES_FDS; absent for PID

	bool zombie() const { return proc && proc->zombie; }
	// The process's pid (a zombie has no TASK).
	uint32_t pid() const { return proc ? proc->pid : task.pid; }
	// Threads, the leader included; 0 for a zombie.
	uint32_t nr_threads() const { return zombie() ? 0 : uint32_t(thread_list.size()) + 1; }
};

// Parses and validates the attributes of one CHECKPOINT reply message: a
// live process (TASK, MM, VMAS, ..., THREADS, QUEUE chunks) or a zombie
// (PROC only).
Result<CheckpointReply> parse_checkpoint_reply(ByteView payload);

// A whole CHECKPOINT reply: one message per process.
struct GroupReply {
	std::vector<CheckpointReply> procs;	// PID first, parents before children
	Bytes tree;		// AMBER_A_PROC of every process: the TREE section
	uint32_t zombies = 0;
	uint32_t threads = 0;	// of all live processes, leaders included

	const CheckpointReply &root() const { return procs.front(); }
};

// Parses and validates the messages of a CHECKPOINT reply for pid: without
// tree exactly one message, of pid; with tree, pid's first, every message
// with PROC, unique pids, parents before children (the TREE rules of
// parse_tree()), every live process other than pid with a PAGES_INDEX below
// nr_pages_fds used once, a queued inode in one message only. Errors name
// the process ("pid 1234: ...").
Result<GroupReply> parse_group_reply(const std::vector<Bytes> &messages, uint32_t pid, bool tree,
				     size_t nr_pages_fds);

// Refuses what restore cannot recreate yet, naming the resource:
// "fd 5: anon_inode:[inotify] is not supported yet", deleted directories
// (a deleted regular file is a ghost, checkpoint/ghosts.h), sockets
// other than UNIX ones, ... Threads, pipes, FIFOs and UNIX sockets are
// restored (the kernel refuses the sockets it cannot describe).
Result<void> check_supported(const CheckpointReply &r);

// The restorability contract: what restore refuses in a state the
// checkpoint could see is refused here first, before a page is written or
// a process killed, by the same function and with the same message.
//
// A path the kernel reported as deleted: "PATH: was deleted before the
// checkpoint, cannot reopen it" (restore's check_files() and
// check_supported() for fds, mappings, cwd and exe).
Result<void> check_not_deleted(const std::string &path);
// Every process of g by check_supported(); for a tree, also the process
// tree as restore plans it (plan_process_tree(): sessions and process
// groups whose leader is not in the tree, zombies' exit status, ...).
Result<void> check_restorable(const GroupReply &g, bool tree);

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

// choose_parent() for the other processes of a tree (pids: found under
// root_pid before the request, each with its start time in clock ticks if
// known). A process is incremental on its image in latest
// (process_dir(latest, pid, root_pid)) iff the mode allows it, latest is a
// checkpoint of the same root pid (latest_root_pid) and holds a tracked
// image of pid (latest_procs) of the same process (start time). Processes
// new since latest are full without a reason; the others' why_full says
// why. The flags and untrack of each entry are as for the root.
struct ProcessStart {
	uint32_t pid = 0;
	std::optional<uint64_t> start_ticks;
};
std::vector<std::pair<uint32_t, ParentChoice>> choose_tree_parents(
	std::optional<uint32_t> latest_number, uint32_t latest_root_pid,
	const std::vector<LatestMeta> &latest_procs, uint32_t root_pid,
	const std::vector<ProcessStart> &pids, long ticks_per_sec, TrackMode mode);

// Pages files to create for a tree whose walk of /proc found `found`
// processes besides its root (some slack: it may grow until it is stopped).
size_t pages_pool_size(size_t found);

// The retries of a CHECKPOINT request: attempt(n) sends it with n pages
// files. They act on the facts the kernel attached to its error (the
// extack cookie, parse_nlmsgerr()), never on its message text:
//  - EAGAIN with Error::pages_files (AMBER_ERR_PAGES_FILES, the pages
//    files the tree needs): sent once more with pages_pool_size() of that
//    count or of recount() (a new walk of /proc), whichever is larger;
//  - Error::retry (AMBER_ERR_RETRY: a member exited or executed a program
//    while the group was being stopped, nothing was captured): sent again
//    after 10, 20, 40 ms, at most kTransientRetries times.
// Any other failure, or one past these, is returned as is.
inline constexpr int kTransientRetries = 3;
Result<void> with_retries(size_t first, const std::function<Result<void>(size_t)> &attempt,
			  const std::function<size_t()> &recount);

// Third line of `amber checkpoint` when relevant: "  tree: 4 processes
// (1 zombie), 11 threads" for a tree, "  threads: 3" for one
// multi-threaded process, "" otherwise.
std::string group_line(bool tree, uint32_t processes, uint32_t zombies, uint32_t threads);

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
