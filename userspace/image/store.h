// SPDX-License-Identifier: GPL-2.0
// The image store: DIR/N/{meta.img,pages.img}, DIR/latest -> "N".
// A checkpoint is built in DIR/.tmp-N, fsync'ed, renamed to DIR/N, and only
// then DIR/latest is replaced (symlink latest.tmp + rename + fsync DIR).
// An incremental checkpoint names its parent in INFO; DIR/N with its
// parents is a chain (at most kMaxChainLinks links). Everything that writes
// or removes (begin/publish, compact, retain) holds the flock on DIR/.lock;
// anything named DIR/.tmp-* is stale when the lock is taken.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "image/image.h"
#include "common/result.h"

namespace amber {

// A checkpoint being written. Removes its temporary directory on
// destruction unless published.
class PendingCheckpoint {
public:
	PendingCheckpoint(const PendingCheckpoint &) = delete;
	PendingCheckpoint &operator=(const PendingCheckpoint &) = delete;
	PendingCheckpoint(PendingCheckpoint &&o) noexcept;
	PendingCheckpoint &operator=(PendingCheckpoint &&) = delete;
	~PendingCheckpoint();

	uint32_t number() const { return number_; }
	const std::string &tmp_dir() const { return tmp_dir_; }
	std::string tmp_path(const char *file) const { return tmp_dir_ + "/" + file; }
	// Where process pid's meta.img and pages.img go (process_dir() of
	// image.h in the temporary directory), created if needed.
	Result<std::string> process_tmp_dir(uint32_t pid, uint32_t root_pid) const;

private:
	friend class Store;
	PendingCheckpoint() = default;

	uint32_t number_ = 0;
	std::string tmp_dir_;
	UniqueFd lock_;		// flock on DIR/.lock while building
	bool done_ = true;
};

// One compaction (Store::compact()). A tree checkpoint compacts every
// process image that has a parent; the numbers add up over its processes.
struct CompactResult {
	uint32_t number = 0;
	bool compacted = false;	// false: it was already a full checkpoint
	size_t links = 1;	// links of its longest process chain before
	size_t processes = 1;	// process images in the checkpoint
	size_t compacted_processes = 0;	// of those, rewritten as full
	uint64_t pages = 0;	// pages with data (all its memory) now
	uint64_t bytes = 0;	// size of its pages.img + meta.img files now
};

// PIDs with an image in a checkpoint whose root image is `root`: the root
// (root.info.pid) first, then every live process of root.tree (zombies have
// no image) in tree order. Just the root for a single-process checkpoint.
std::vector<uint32_t> image_pids(const Checkpoint &root);

// "" for the root, "proc/PID/" otherwise: what a file of process pid is
// called inside its checkpoint directory, for messages.
std::string process_prefix(uint32_t pid, uint32_t root_pid);

// The checkpoints a set of process chains needs: the union of chains (each
// oldest first, from Store::chain_numbers()), ascending. Pure.
std::vector<uint32_t> needed_numbers(const std::vector<std::vector<uint32_t>> &chains);

// Whether a set of process chains of kept checkpoint reaches a checkpoint
// that is not kept, and if so the checkpoints to compact so that none does
// (lazy policy): for each such chain, its oldest kept link. Ascending,
// without duplicates; empty when no chain reaches an unkept checkpoint. Pure.
std::vector<uint32_t> lazy_compact_bases(const std::vector<std::vector<uint32_t>> &chains,
					 const std::vector<uint32_t> &kept);

// What Store::retain() did.
struct RetainResult {
	std::vector<uint32_t> kept;		// ascending
	std::vector<CompactResult> compacted;	// kept ones made full, ascending
	std::vector<uint32_t> deleted;		// ascending
};

// How retain() decides what to compact.
struct RetainPolicy {
	// 0: eager (`amber checkpoint --keep`): every kept checkpoint whose
	// chain reaches one that is not kept is compacted at once, so that only
	// kept checkpoints remain.
	// > 0: lazy (`amber run`): the older links a kept checkpoint's chain
	// needs stay. Once a kept checkpoint's chain has more than max_links
	// links, or its links' pages files hold more than max_data_ratio times
	// the memory it resolves to, the oldest kept checkpoint of that chain is
	// compacted and the links before it go. A periodic checkpoint then costs
	// its own pages; the full rewrite happens once in many checkpoints.
	size_t max_links = 0;
	double max_data_ratio = 2.0;
};

// The lazy policy `amber run --lazy-keep` and `amber backup` use: periodic
// checkpoints keep their chain until it has 16 links or holds twice the
// program's memory, then the oldest kept one is compacted: a checkpoint costs
// its own pages, not a rewrite of everything every time.
inline constexpr RetainPolicy kLazyRetainPolicy{16, 2.0};

class Store {
public:
	explicit Store(std::string dir) : dir_(std::move(dir)) {}

	const std::string &dir() const { return dir_; }

	// Numbers of complete checkpoints, ascending.
	Result<std::vector<uint32_t>> list() const;
	// Target of DIR/latest (ENOENT error if there is none).
	Result<uint32_t> latest() const;
	// number or, if empty, latest.
	Result<uint32_t> resolve(std::optional<uint32_t> number) const;
	std::string path(uint32_t number) const;
	// process_dir() of checkpoint number: DIR/N or DIR/N/proc/PID.
	std::string process_path(uint32_t number, uint32_t pid, uint32_t root_pid) const;

	// Creates DIR if needed, takes DIR/.lock, removes stale .tmp-* left by
	// killed checkpoints, and creates DIR/.tmp-N for the next number.
	Result<PendingCheckpoint> begin() const;
	// The same for a given number, newer than every checkpoint in DIR
	// (EEXIST otherwise): `amber backup` keeps the primary's numbers, which
	// incremental checkpoints name their parents by.
	Result<PendingCheckpoint> begin_at(std::optional<uint32_t> number) const;

	// fsyncs the files in the temporary directory and the directory,
	// renames it to DIR/N, fsyncs DIR, then points DIR/latest at N.
	Result<void> publish(PendingCheckpoint &p) const;

	// Loads and verifies a checkpoint (latest if number is empty).
	Result<Checkpoint> load(std::optional<uint32_t> number) const;

	// Loads the chain of a checkpoint (latest if number is empty), oldest
	// first, the checkpoint itself last; each link fully verified
	// (checksums of meta.img and pages.img). A parent must be older than
	// its child, the chain at most kMaxChainLinks long. Errors are prefixed
	// "checkpoint N: " naming the failing link, e.g. "checkpoint 2:
	// pages.img: run 1 at 0x7f0000001000: checksum mismatch". Does not
	// resolve pages: see resolve_chain().
	Result<std::vector<Checkpoint>> load_chain(std::optional<uint32_t> number) const;

	// The chain of one process of checkpoint `number` (root_pid: the tree's
	// root, INFO.pid of DIR/N), oldest first, every link fully verified;
	// link k is process_dir(DIR/<k>, pid, root_pid) and its INFO pid must be
	// pid. Errors name the image: "checkpoint 3: proc/1234/pages.img: run 2
	// at 0x7f0000001000: checksum mismatch".
	Result<std::vector<Checkpoint>> load_chain(uint32_t number, uint32_t pid,
						   uint32_t root_pid) const;

	// The same links, meta.img of each verified and parsed, pages.img of
	// none read (page_size 0): the caller verifies them (restore does it
	// as it reads them, verify_pages_except()).
	Result<std::vector<Checkpoint>> load_chain_meta(std::optional<uint32_t> number) const;
	// The same for one process of a tree checkpoint (see load_chain()).
	Result<std::vector<Checkpoint>> load_chain_meta(uint32_t number, uint32_t pid,
							uint32_t root_pid) const;
	// The same chain, from its newest link already loaded by load_meta()
	// (a single process's checkpoint): that meta.img is not read again.
	Result<std::vector<Checkpoint>> load_chain_meta(Checkpoint newest) const;

	// Every link of every process chain of checkpoint `number` verified
	// (checksums, parents present, pages resolvable): whether it can be
	// restored. The first damage is the error, named as load_chain() does.
	Result<void> verify(uint32_t number) const;

	// meta.img of one checkpoint only, verified and parsed; pages.img is
	// neither read nor hashed (page_size stays 0). Errors "checkpoint N: ".
	Result<Checkpoint> load_meta(std::optional<uint32_t> number) const;
	// The same for one process image of a tree checkpoint (errors
	// "checkpoint N: proc/PID/meta.img: ...").
	Result<Checkpoint> load_meta(uint32_t number, uint32_t pid, uint32_t root_pid) const;

	// Rewrites checkpoint `number` in place as a full checkpoint holding
	// the same memory (resolved through its chain) and the same CORE,
	// VMAS, FDS and INFO (parent 0, page counts updated, same track_id:
	// later incremental checkpoints still chain onto it). Builds
	// DIR/.tmp-N, fsyncs and verifies it, swaps it with DIR/N with
	// renameat2(RENAME_EXCHANGE), fsyncs DIR and removes the old contents:
	// DIR/N is complete at every instant. Nothing to do (compacted false)
	// for a full checkpoint. A tree checkpoint: every process image with a
	// parent is rewritten so, the others are hard-linked unchanged, all in
	// the one DIR/.tmp-N swapped in at once; the THREADS, TREE and QUEUES
	// sections stay as they are. Takes DIR/.lock (EBUSY if held elsewhere).
	// Fails (EINVAL) where the file system has no RENAME_EXCHANGE.
	Result<CompactResult> compact(uint32_t number) const;

	// Keeps the newest `keep` checkpoints (by number, >= 1; latest is
	// always kept) restorable and deletes the rest: first every kept
	// checkpoint any of whose process chains reaches one that is not kept is
	// compacted (ascending, so a later kept one then stops at an earlier
	// compacted one), then every checkpoint that no process chain of a kept
	// one needs is
	// removed (renamed to DIR/.tmp-deleted-N, DIR fsynced, then deleted;
	// newest first). Nothing is deleted if a compaction fails. Takes
	// DIR/.lock.
	Result<RetainResult> retain(uint32_t keep) const;

	// The same for a caller that already holds DIR/.lock through a
	// PendingCheckpoint from begin() on this store: `amber checkpoint
	// --keep K` calls retain(K, pending) after publish(pending), while the
	// lock is still held (it is released when pending is destroyed).
	Result<CompactResult> compact(uint32_t number, const PendingCheckpoint &locked) const;
	Result<RetainResult> retain(uint32_t keep, const PendingCheckpoint &locked) const;
	Result<RetainResult> retain(uint32_t keep, const PendingCheckpoint &locked,
				    const RetainPolicy &policy) const;

	// Numbers of a checkpoint's chain from meta.img only, oldest first
	// (E2BIG past kMaxChainLinks links).
	Result<std::vector<uint32_t>> chain_numbers(uint32_t number) const;
	// The same for one process of the checkpoint (see load_chain()).
	Result<std::vector<uint32_t>> chain_numbers(uint32_t number, uint32_t pid,
						    uint32_t root_pid) const;
	// The chains (chain_numbers()) of every process image of checkpoint
	// number, root first (image_pids() order).
	Result<std::vector<std::vector<uint32_t>>> process_chains(uint32_t number) const;

private:
	Result<UniqueFd> lock(const char *busy) const;
	// p came from begin() on this store and still holds DIR/.lock.
	bool holds_lock(const PendingCheckpoint &p) const;
	// Process pid's image in checkpoint number (pid == root_pid: DIR/N;
	// root_pid 0: DIR/N, INFO pid not checked).
	Result<Checkpoint> load_link(uint32_t number, uint32_t pid, uint32_t root_pid,
				     uint32_t child, bool meta_only) const;
	// newest: link `number` when the caller has loaded it already.
	Result<std::vector<Checkpoint>> walk_chain(uint32_t number, uint32_t pid,
						   uint32_t root_pid, bool meta_only,
						   std::optional<Checkpoint> newest = {}) const;
	Result<CompactResult> compact_locked(uint32_t number) const;
	Result<RetainResult> retain_locked(uint32_t keep, const RetainPolicy &policy) const;
	// Whether kept checkpoint n's chain is due for compaction (lazy policy).
	Result<bool> chain_due(uint32_t n, const std::vector<std::vector<uint32_t>> &chains,
			       const RetainPolicy &policy) const;

	std::string dir_;
};

} // namespace amber
