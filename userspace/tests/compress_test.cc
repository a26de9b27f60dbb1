// SPDX-License-Identifier: GPL-2.0
// Compressed pages files (image/compress.h): the round trip, the refusals
// of damaged streams, and chains of compressed links.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/io.h"
#include "fixtures.h"
#include "image/compress.h"
#include "image/store.h"

using namespace amber;
using namespace amber::testing;

namespace {

// Compressible bytes with some structure (what a heap looks like more or less).
Bytes sample(size_t n)
{
	Bytes b(n);
	uint32_t x = 12345;
	for (size_t i = 0; i < n; i++) {
		if ((i / 4096) % 3 == 0) {
			x = x * 1103515245 + 12345;
			b[i] = uint8_t(x >> 16);
		} else {
			b[i] = uint8_t(i / 4096);
		}
	}
	return b;
}

// A file holding data, compressed next to it; returns the .zst path.
std::string compressed(const TempDir &t, const Bytes &data)
{
	const std::string in = t.path() + "/plain";
	spit(in, data);
	auto s = compress_file(in, in + ".zst", kDefaultZstdLevel);
	EXPECT_TRUE(s) << s.error().str();
	EXPECT_EQ(data.size(), s->in_bytes);
	return in + ".zst";
}

Result<UniqueFd> decompress(const std::string &path, uint64_t size)
{
	UniqueFd fd = AMBER_TRY(open_file(path, O_RDONLY));
	return decompress_to_memfd(fd.get(), size, "checkpoint 7: pages.img.zst");
}

Bytes contents(int fd)
{
	struct stat st;
	EXPECT_EQ(0, fstat(fd, &st));
	Bytes b(st.st_size);
	EXPECT_TRUE(pread_full(fd, b.data(), b.size(), 0));
	return b;
}

// The refusal names the file as the caller named it.
void expect_refused(const Result<UniqueFd> &r, const std::string &what)
{
	ASSERT_FALSE(r);
	EXPECT_NE(std::string::npos, r.error().msg.find("checkpoint 7: pages.img.zst: "))
		<< r.error().msg;
	EXPECT_NE(std::string::npos, r.error().msg.find(what)) << r.error().msg;
}

// Rewrites DIR/N as `amber checkpoint --compress` leaves it: pages.img.zst
// and INFO PAGES_ZSTD.
// recorded: the uncompressed size INFO records, 0: the right one.
void compress_link(const std::string &dir, uint32_t number, uint64_t recorded = 0)
{
	const std::string d = dir + "/" + std::to_string(number);
	auto c = load_checkpoint_meta(d, number);
	ASSERT_TRUE(c) << c.error().str();
	auto s = compress_pages(d, kDefaultZstdLevel);
	ASSERT_TRUE(s) << s.error().str();
	ASSERT_NE(0, access((d + "/" + kPagesFile).c_str(), F_OK));
	InfoSection info = c->info;
	info.pages_zstd = recorded ? recorded : s->in_bytes;
	MetaSections m;
	m.info = encode_info(info);
	m.core = c->core_raw;
	m.vmas = c->vmas_raw;
	m.fds = c->fds_raw;
	m.pagemap = c->pagemap;
	spit(d + "/" + kMetaFile, build_meta(m));
}

} // namespace

TEST(Compress, RoundTrip)
{
	TempDir t;
	const Bytes data = sample(3 << 20);
	const std::string z = compressed(t, data);
	struct stat st;
	ASSERT_EQ(0, stat(z.c_str(), &st));
	EXPECT_LT(uint64_t(st.st_size), data.size() / 2);
	auto fd = decompress(z, data.size());
	ASSERT_TRUE(fd) << fd.error().str();
	EXPECT_EQ(data, contents(fd->get()));
	// Sealed: the verified bytes cannot change under the readers.
	EXPECT_LT(pwrite(fd->get(), "x", 1, 0), 0);
	EXPECT_NE(0, ftruncate(fd->get(), 1));
}

TEST(Compress, EmptyRoundTrip)
{
	TempDir t;
	const std::string z = compressed(t, Bytes{});
	auto fd = decompress(z, 0);
	ASSERT_TRUE(fd) << fd.error().str();
	EXPECT_TRUE(contents(fd->get()).empty());
}

TEST(Compress, TruncatedStreamIsRefused)
{
	TempDir t;
	const Bytes data = sample(1 << 20);
	const std::string z = compressed(t, data);
	Bytes b = slurp(z);
	b.resize(b.size() / 2);
	spit(z, b);
	expect_refused(decompress(z, data.size()), "truncated");
	// Even its last byte only.
	ASSERT_TRUE(compress_file(t.path() + "/plain", z, 1));
	b = slurp(z);
	b.pop_back();
	spit(z, b);
	expect_refused(decompress(z, data.size()), "truncated");
}

TEST(Compress, CorruptedStreamIsRefused)
{
	TempDir t;
	const Bytes data = sample(1 << 20);
	const std::string z = compressed(t, data);
	const Bytes good = slurp(z);
	// Anywhere: in the frame header, in a block, in zstd's checksum.
	for (size_t at : {size_t(5), good.size() / 3, good.size() / 2, good.size() - 2}) {
		Bytes b = good;
		b[at] ^= 0x5a;
		spit(z, b);
		auto r = decompress(z, data.size());
		expect_refused(r, "");
		if (!r) {
			EXPECT_EQ(EBADMSG, r.error().err) << "damage at " << at;
		}
	}
	// Not a zstd stream at all.
	spit(z, data);
	expect_refused(decompress(z, data.size()), "damaged");
}

TEST(Compress, MoreThanRecordedIsRefused)
{
	TempDir t;
	const Bytes data = sample(1 << 20);
	const std::string z = compressed(t, data);
	expect_refused(decompress(z, data.size() - 1), "decompresses to more than the 1048575 bytes");
	expect_refused(decompress(z, 4096), "more than");
	expect_refused(decompress(z, 0), "more than");
}

TEST(Compress, FewerThanRecordedIsRefused)
{
	TempDir t;
	const Bytes data = sample(1 << 20);
	const std::string z = compressed(t, data);
	expect_refused(decompress(z, data.size() + 1),
		       "decompresses to 1048576 bytes, not the 1048577 bytes");
	expect_refused(decompress(z, data.size() * 4), "decompresses to 1048576 bytes");
}

TEST(Compress, BytesAfterTheFrameAreRefused)
{
	TempDir t;
	const Bytes data = sample(1 << 20);
	const std::string z = compressed(t, data);
	Bytes b = slurp(z);
	const Bytes again = b;
	b.insert(b.end(), again.begin(), again.end());	// a second frame
	spit(z, b);
	expect_refused(decompress(z, data.size()), "after the end of its zstd frame");
	b = again;
	b.push_back(0);
	spit(z, b);
	expect_refused(decompress(z, data.size()), "after the end of its zstd frame");
}

TEST(Compress, SizeBeyondMemoryIsRefusedUpFront)
{
	TempDir t;
	const std::string z = compressed(t, sample(4096));
	expect_refused(decompress(z, uint64_t(1) << 60), "more than this machine's memory");
}

// A bomb: a few KiB that would decompress to 256 MiB stop at the recorded size.
TEST(Compress, BombStopsAtTheRecordedSize)
{
	TempDir t;
	const std::string in = t.path() + "/zeros";
	{
		UniqueFd fd(open(in.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600));
		ASSERT_TRUE(fd);
		ASSERT_EQ(0, ftruncate(fd.get(), 1 << 28));
	}
	ASSERT_TRUE(compress_file(in, in + ".zst", 1));
	struct stat st;
	ASSERT_EQ(0, stat((in + ".zst").c_str(), &st));
	EXPECT_LT(st.st_size, 1 << 16);
	expect_refused(decompress(in + ".zst", 1 << 20), "more than");
}

// A chain whose links are all compressed loads, verifies and resolves as the
// uncompressed one does; compacting it keeps it compressed.
TEST(Compress, CompressedChainLoadsAndCompacts)
{
	TempDir t;
	const std::string dir = t.path() + "/s";
	write_link(dir, 1, 0, {{pg(0), 4}, {pg(8), 2}});
	write_link(dir, 2, 1, {{pg(0), 1, true}, {pg(1), 1}, {pg(2), 2, true}, {pg(8), 2, true}});
	set_latest(dir, 2);
	Store plain(dir);
	auto want = plain.load_chain(2u);
	ASSERT_TRUE(want) << want.error().str();
	auto want_src = resolve_chain(ptrs(*want));
	ASSERT_TRUE(want_src);

	compress_link(dir, 1);
	compress_link(dir, 2);
	Store s(dir);
	auto chain = s.load_chain(2u);
	ASSERT_TRUE(chain) << chain.error().str();
	ASSERT_EQ(2u, chain->size());
	EXPECT_EQ((*want)[1].info.pages_bytes, (*chain)[1].info.pages_zstd);
	EXPECT_NE(std::string::npos, (*chain)[1].pages_path.find(kPagesZstFile));
	auto src = resolve_chain(ptrs(*chain));
	ASSERT_TRUE(src) << src.error().str();
	ASSERT_EQ(want_src->size(), src->size());
	// Each page's bytes, through open_pages(), as in the uncompressed chain.
	for (const PageSource &p : *src)
		for (uint64_t i = 0; i < p.nr_pages; i++) {
			auto fd = open_pages((*chain)[p.link]);
			ASSERT_TRUE(fd) << fd.error().str();
			Bytes page(kPs);
			ASSERT_TRUE(pread_full(fd->get(), page.data(), kPs, p.offset + i * kPs));
			const uint32_t seed = (*chain)[p.link].number;
			for (size_t b = 0; b < kPs; b += 511)
				ASSERT_EQ(page_byte(p.addr + i * kPs, seed, b), page[b]);
		}

	auto c = s.compact(2);
	ASSERT_TRUE(c) << c.error().str();
	EXPECT_TRUE(c->compacted);
	EXPECT_EQ(0, access((dir + "/2/" + kPagesZstFile).c_str(), F_OK));
	EXPECT_NE(0, access((dir + "/2/" + kPagesFile).c_str(), F_OK));
	auto full = s.load_chain(2u);
	ASSERT_TRUE(full) << full.error().str();
	ASSERT_EQ(1u, full->size());
	EXPECT_NE(0u, full->back().info.pages_zstd);
}

// A damaged compressed link is refused naming the checkpoint and the file.
TEST(Compress, DamagedLinkIsRefusedByName)
{
	TempDir t;
	const std::string dir = t.path() + "/s";
	write_link(dir, 1, 0, {{pg(0), 4}});
	write_link(dir, 2, 1, {{pg(0), 1, true}, {pg(1), 3}});
	set_latest(dir, 2);
	compress_link(dir, 1);
	compress_link(dir, 2);
	const std::string z = dir + "/1/" + kPagesZstFile;
	Bytes b = slurp(z);
	b.resize(b.size() - 3);
	spit(z, b);
	Store s(dir);
	auto chain = s.load_chain(2u);
	ASSERT_FALSE(chain);
	EXPECT_NE(std::string::npos, chain.error().msg.find("checkpoint 1: pages.img.zst: truncated"))
		<< chain.error().msg;
}

// A version 5 image cannot say its pages are compressed.
TEST(Compress, OlderImageVersionCannotBeCompressed)
{
	TempDir t;
	const std::string dir = t.path() + "/s";
	write_link(dir, 1, 0, {{pg(0), 1}});
	compress_link(dir, 1);
	const std::string d = dir + "/1";
	auto c = load_checkpoint_meta(d, 1);
	ASSERT_TRUE(c) << c.error().str();
	const Bytes pm(reinterpret_cast<const uint8_t *>(c->pagemap.data()),
		       reinterpret_cast<const uint8_t *>(c->pagemap.data() + c->pagemap.size()));
	spit(d + "/" + kMetaFile, encode_meta(5, {{AMBER_SEC_INFO, c->info_raw},
						  {AMBER_SEC_CORE, c->core_raw},
						  {AMBER_SEC_VMAS, c->vmas_raw},
						  {AMBER_SEC_FDS, c->fds_raw},
						  {AMBER_SEC_PAGEMAP, pm}}));
	auto r = load_checkpoint_meta(d, 1);
	ASSERT_FALSE(r);
	EXPECT_NE(std::string::npos, r.error().msg.find("compressed pages file in a version 5"))
		<< r.error().msg;
}

// The recorded size must be the one the PAGEMAP describes: a small stream
// cannot claim more memory than the image holds.
TEST(Compress, RecordedSizeMustFitThePagemap)
{
	TempDir t;
	const std::string dir = t.path() + "/s";
	write_link(dir, 1, 0, {{pg(0), 2}});
	const uint64_t size = 16 + 16 + 2 * kPs;
	compress_link(dir, 1, size + kPs);
	auto r = load_checkpoint_meta(dir + "/1", 1);
	ASSERT_FALSE(r);
	EXPECT_NE(std::string::npos, r.error().msg.find("not what its PAGEMAP describes"))
		<< r.error().msg;

	write_link(dir, 2, 0, {{pg(0), 2}});
	compress_link(dir, 2);
	auto ok = load_checkpoint_dir(dir + "/2", 2);
	ASSERT_TRUE(ok) << ok.error().msg;
	EXPECT_EQ(size, ok->info.pages_zstd);
}
