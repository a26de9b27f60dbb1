// SPDX-License-Identifier: GPL-2.0
// Compressed pages files (`amber checkpoint --compress`): pages.img.zst is
// pages.img as one zstd frame, written after the target resumed; meta.img's
// INFO PAGES_ZSTD records the uncompressed size. Every reader of pages gets
// them through open_pages(): pages.img itself, or the decompressed bytes in
// a sealed memfd (a regular shmem file the restore stub maps, amber.ko
// reads and the lazy filler maps as they would pages.img).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "image/image.h"

namespace amber {

inline constexpr const char *kPagesZstFile = "pages.img.zst";
inline constexpr int kDefaultZstdLevel = 1;

struct CompressStats {
	uint64_t in_bytes = 0;		// pages.img
	uint64_t out_bytes = 0;		// pages.img.zst
};

// Compresses in_path into a new file out_path (one zstd frame at level,
// the content size in its header, on as many worker threads as the CPUs
// this process may use, up to 4, when libzstd has them), fsynced. Errors
// name the files.
Result<CompressStats> compress_file(const std::string &in_path, const std::string &out_path,
				    int level);

// Replaces dir/pages.img by dir/pages.img.zst (compress_file(), then
// pages.img removed).
Result<CompressStats> compress_pages(const std::string &dir, int level);

// Decompresses the zstd frame in file in (named name in errors, e.g.
// "checkpoint 3: pages.img.zst") into a new memfd, sealed against any
// change, that must come to exactly size bytes: a stream that decompresses
// to more or fewer, that has bytes after its frame, or that zstd refuses is
// refused ("NAME: decompresses to more than the 8192 bytes meta.img
// records"). Never holds more than size bytes of output (the memfd) plus
// zstd's window (at most 128 MiB, larger windows are refused); a size
// above the machine's memory is refused before anything is read.
Result<UniqueFd> decompress_to_memfd(int in, uint64_t size, const std::string &name);

// Opens c's pages file read-only, positioned at 0: c.pages_path, or for a
// compressed image (c.info.pages_zstd) its decompressed bytes, decompressed
// once per loaded image (c.pages_cache keeps the memfd for every later
// open, and for every copy of c) and opened again read-only.
Result<UniqueFd> open_pages(const Checkpoint &c);

// The cache open_pages() fills (load_checkpoint_meta() gives every
// compressed image one).
std::shared_ptr<PagesCache> new_pages_cache();

} // namespace amber
