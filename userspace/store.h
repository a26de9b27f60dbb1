// SPDX-License-Identifier: GPL-2.0
// The image store: DIR/N/{meta.img,pages.img}, DIR/latest -> "N".
// A checkpoint is built in DIR/.tmp-N, fsync'ed, renamed to DIR/N, and only
// then DIR/latest is replaced (symlink latest.tmp + rename + fsync DIR).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "image.h"
#include "result.h"

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

private:
	friend class Store;
	PendingCheckpoint() = default;

	uint32_t number_ = 0;
	std::string tmp_dir_;
	UniqueFd lock_;		// flock on DIR/.lock while building
	bool done_ = true;
};

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

	// Creates DIR if needed, takes DIR/.lock, removes stale .tmp-* left by
	// killed checkpoints, and creates DIR/.tmp-N for the next number.
	Result<PendingCheckpoint> begin() const;

	// fsyncs the files in the temporary directory and the directory,
	// renames it to DIR/N, fsyncs DIR, then points DIR/latest at N.
	Result<void> publish(PendingCheckpoint &p) const;

	// Loads and verifies a checkpoint (latest if number is empty).
	Result<Checkpoint> load(std::optional<uint32_t> number) const;

private:
	std::string dir_;
};

} // namespace amber
