// SPDX-License-Identifier: GPL-2.0
// Hand-built checkpoint replies and images for the unit tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/attr.h"
#include "checkpoint/checkpoint.h"
#include "image/image.h"

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

// A run of a pages file v2: data, or AMBER_RUN_F_PARENT (no data).
struct RunSpec {
	uint64_t addr;
	uint64_t nr_pages;
	bool parent = false;
};

// Byte i of the page at addr in a pages file written with seed: differs
// between seeds, so pages mixed from different links are noticed.
uint8_t page_byte(uint64_t addr, uint32_t seed, size_t i);

// Writes a pages file with the runs, data from page_byte(); returns its size.
uint64_t write_run_pages(const std::string &path, const std::vector<RunSpec> &runs, uint32_t seed);

// One link of a chain: DIR/N/{meta.img,pages.img} as write_checkpoint(),
// INFO parent, track_id and page counts set, page data seeded with number.
void write_link(const std::string &dir, uint32_t number, uint32_t parent,
		const std::vector<RunSpec> &runs, uint64_t track_id = 77);

// Page size and base address of the hand-built chains; pg(i): page i.
constexpr uint64_t kPs = 4096;
constexpr uint64_t kBase = 0x7f0000000000;
inline uint64_t pg(uint64_t i)
{
	return kBase + i * kPs;
}

// A VMA [start, end) with the given enum amber_vma_flags.
inline Vma make_vma(uint64_t start, uint64_t end, uint32_t flags)
{
	Vma v;
	v.start = start;
	v.end = end;
	v.flags = flags;
	return v;
}

// Pointers to each checkpoint, for resolve_chain().
std::vector<const Checkpoint *> ptrs(const std::vector<Checkpoint> &v);

// Points DIR/latest at number.
void set_latest(const std::string &store, uint32_t number);

// build/amber (next to build/unit-tests) run with a subcommand: exit
// status, stdout, stderr.
struct CliResult {
	int status = -1;
	std::string out, err;
};
CliResult run_amber(const std::string &sub, const std::vector<std::string> &args);
inline CliResult run_compact(const std::vector<std::string> &args)
{
	return run_amber("compact", args);
}

// Reads / writes a whole file.
Bytes slurp(const std::string &path);
void spit(const std::string &path, const Bytes &b);

} // namespace amber::testing
