// SPDX-License-Identifier: GPL-2.0
// Lazy restore (`amber restore --lazy`): the restored process runs before
// its private anonymous memory is filled. Its stub maps that memory empty
// and registers it with a userfaultfd (stub.cc, lazy_register); the tool
// takes a copy of the userfaultfd, pins it in amber.ko for as long as it
// lives (AMBER_CMD_LAZY_FILL) and forks the filler, which copies each page
// in on first touch and every other page in the background, in address
// order, until none is left; then it tells amber.ko and exits, and the
// process no longer depends on the image.
//
// A run is handed over only once its checksum matched: a run found damaged
// (checksum mismatch, pages file too short) kills the process, and its
// descendants, while it waits in the fault, with a message naming the pages
// file, the run and the pid. If the filler dies first, amber.ko kills the
// process: it never sees a missing page as zero.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <linux/userfaultfd.h>
#include <sys/types.h>

#include "common/result.h"
#include "netlink/netlink.h"
#include "restore/stub.h"

namespace amber {

// What the filler hears of besides faults: forks (the child gets its own
// userfaultfd and the pages still missing at the fork), mremap() (missing
// pages move), madvise(MADV_DONTNEED/REMOVE) and munmap() (missing pages
// that must stay zero or are gone). Without them a forked child or a
// removed range would read zeros or stale image data.
inline constexpr uint64_t kLazyUffdFeatures = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
					      UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP;

// A run of the restored checkpoint's pages file whose XXH64 is checked on
// the file's bytes before any of its pages is copied in.
struct LazyCheck {
	uint64_t addr = 0;		// where it was at restore (for messages)
	uint64_t len = 0;
	int fd = -1;			// the pages file
	uint64_t off = 0;		// of its data
	uint64_t xxh64 = 0;
	uint32_t number = 0;		// its checkpoint
	uint32_t run = 0;		// its index in that checkpoint's pagemap
	bool verified = false;
};

// Memory still to fill: len bytes at addr, from file fd at off. check is
// the LazyCheck covering it, or -1 for data verified before the restore.
struct LazyExtent {
	uint64_t addr = 0;
	uint64_t len = 0;
	int fd = -1;
	uint64_t off = 0;
	int check = -1;

	uint64_t end() const { return addr + len; }
	bool operator==(const LazyExtent &) const = default;
};

// The pages still missing in one process, by address; disjoint extents.
class LazyMap {
public:
	void add(const LazyExtent &e);
	// The missing piece holding addr, clipped to the chunk-aligned window
	// [addr & ~(chunk - 1), + chunk); nullopt if addr is not missing.
	std::optional<LazyExtent> find(uint64_t addr, uint64_t chunk) const;
	// The lowest missing piece, clipped to its chunk-aligned window.
	std::optional<LazyExtent> first(uint64_t chunk) const;
	// [start, end) is no longer to fill (filled, or zero/unmapped now).
	void remove(uint64_t start, uint64_t end);
	// mremap(): what is missing in [from, from + len) is at to now.
	void remap(uint64_t from, uint64_t to, uint64_t len);
	bool empty() const { return m_.empty(); }
	uint64_t bytes() const;
	std::vector<LazyExtent> extents() const;

private:
	// [start, end) of it, with the file offset adjusted.
	static LazyExtent clip(const LazyExtent &e, uint64_t start, uint64_t end);
	std::map<uint64_t, LazyExtent> m_;	// by addr
};

// The extents and checks of a single process's prefilled memory: each
// StubPrefill's segments split at the boundaries of its checks, so that an
// extent lies in at most one check.
struct LazyPlan {
	std::vector<LazyExtent> extents;
	std::vector<LazyCheck> checks;
};
LazyPlan plan_lazy(const std::vector<StubPrefill> &prefill);

// A UFFDIO_COPY of piece p that copied `copied` bytes (<= 0: none) and
// stopped at a page that exists already (EEXIST): what is left to copy,
// past that page; nullopt if nothing.
std::optional<LazyExtent> after_eexist(const LazyExtent &p, int64_t copied, uint64_t page_size);

// The filler, set up in `amber restore` before the stub may go on (the
// pages files are mapped here, so that a failure fails the restore), run
// in a child of it.
struct LazyFiller {
	pid_t pid = 0;
	UniqueFd pidfd;				// the restored process's
	UniqueFd uffd;
	std::optional<NetlinkClient> nl;	// holds AMBER_CMD_LAZY_FILL
	LazyPlan plan;
	std::map<int, std::string> paths;	// pages file fd -> path
	int log_fd = 2;				// where the filler's messages go
	bool log_done = false;			// also say when it starts and ends
	// For the tests (AMBER_FAULT=lazy-stall:PID): faults are served, the
	// background fill never runs, so the fill never completes.
	bool stall = false;

	// Maps the pages files (every extent's fd).
	Result<void> map_files();
	// Fills until no page is missing in any process or they are gone;
	// an error once it killed the process (damaged run) or failed.
	Result<void> run();

	std::map<int, std::pair<const uint8_t *, uint64_t>> maps;	// fd -> mapping, size
};

// AMBER_CMD_LAZY_FILL: PID with UFFD_FD pins the userfaultfd to nl's
// socket; without (uffd_fd < 0), the fill is complete.
Result<void> lazy_fill_request(NetlinkClient &nl, pid_t pid, int uffd_fd);

// SIGKILLs pid and every descendant of it (/proc/PID/task/*/children).
void kill_descendants(pid_t pid);

} // namespace amber
