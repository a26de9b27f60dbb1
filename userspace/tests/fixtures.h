// SPDX-License-Identifier: GPL-2.0
// Hand-built checkpoint replies and images for the unit tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attr.h"
#include "checkpoint.h"
#include "image.h"

namespace amber::testing {

// A temporary directory removed at destruction.
class TempDir {
public:
	TempDir();
	~TempDir();
	const std::string &path() const { return path_; }

private:
	std::string path_;
};

// Attributes of a CHECKPOINT reply for a small process: 3 VMAs (text,
// heap, stack), fds 0-2 on a pipe/tty plus extra_fds.
Bytes make_reply(const std::vector<FdInfo> &extra_fds = {});

// Writes a pages file with the given runs (page data filled with a pattern
// derived from the address) and returns its size.
uint64_t write_pages(const std::string &path, const std::vector<std::pair<uint64_t, uint64_t>> &runs);

// Builds DIR/N/{meta.img,pages.img} from make_reply() and the runs,
// as `amber checkpoint` does, without a store.
void write_checkpoint(const std::string &dir, uint32_t number,
		      const std::vector<std::pair<uint64_t, uint64_t>> &runs);

// Reads / writes a whole file.
Bytes slurp(const std::string &path);
void spit(const std::string &path, const Bytes &b);

} // namespace amber::testing
