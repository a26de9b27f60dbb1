// SPDX-License-Identifier: GPL-2.0
// find_unchanged() and rewrite_unchanged(): the pages of an incremental
// link saved whole (a collapsed huge page) that equal the parent chain's
// become AMBER_RUN_F_PARENT runs, and the chain still resolves to the same
// bytes page by page.
#include <gtest/gtest.h>
#include <linux/amber.h>
#include <fcntl.h>
#include <unistd.h>

#include <functional>
#include <map>

#include "common/io.h"
#include "fixtures.h"
#include "image/compress.h"
#include "image/image.h"

using namespace amber;
using namespace amber::testing;

namespace {

// Which seed (page_byte()) each page of a link holds; 0: a parent run.
using Content = std::map<uint64_t, uint32_t>;

// Writes a pages file whose runs follow content (consecutive pages of the
// same kind in one run, data pages of any seed joined).
void write_content(const std::string &path, const Content &content)
{
	Bytes b;
	amber_pages_hdr h{AMBER_PAGES_MAGIC, AMBER_PAGES_VERSION, kPs};
	b.insert(b.end(), reinterpret_cast<uint8_t *>(&h), reinterpret_cast<uint8_t *>(&h + 1));
	size_t run_at = 0;
	uint64_t next = 0;
	bool parent = false, open = false;
	for (const auto &[addr, seed] : content) {
		const bool p = seed == 0;
		if (!open || addr != next || p != parent) {
			amber_page_run r{addr, 0, p ? uint32_t(AMBER_RUN_F_PARENT) : 0u};
			run_at = b.size();
			b.insert(b.end(), reinterpret_cast<uint8_t *>(&r),
				 reinterpret_cast<uint8_t *>(&r + 1));
			open = true;
			parent = p;
		}
		reinterpret_cast<amber_page_run *>(b.data() + run_at)->nr_pages++;
		if (!p)
			for (size_t i = 0; i < kPs; i++)
				b.push_back(page_byte(addr, seed, i));
		next = addr + kPs;
	}
	spit(path, b);
}

Checkpoint link_at(const std::string &path, uint32_t number, uint32_t parent)
{
	Checkpoint c;
	c.number = number;
	c.info.number = number;
	c.info.parent = parent;
	c.pages_path = path;
	UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
	EXPECT_TRUE(fd);
	auto map = scan_pages(fd.get(), &c.page_size);
	EXPECT_TRUE(map) << map.error().msg;
	c.pagemap = *map;
	return c;
}

// Every page the chain's newest link resolves to, read back: the seed that
// produced it (0 when it matches none of 1..20).
std::map<uint64_t, uint32_t> read_back(const std::vector<Checkpoint> &links)
{
	std::map<uint64_t, uint32_t> out;
	auto src = resolve_chain(ptrs(links));
	EXPECT_TRUE(src) << src.error().msg;
	if (!src)
		return out;
	for (const PageSource &s : *src) {
		UniqueFd fd(open(links[s.link].pages_path.c_str(), O_RDONLY | O_CLOEXEC));
		for (uint64_t p = 0; p < s.nr_pages; p++) {
			uint8_t page[kPs];
			const uint64_t addr = s.addr + p * kPs;
			EXPECT_TRUE(pread_full(fd.get(), page, kPs, s.offset + p * kPs));
			uint32_t found = 0;
			for (uint32_t seed = 1; seed <= 20 && !found; seed++) {
				bool same = true;
				for (size_t i = 0; i < kPs && same; i++)
					same = page[i] == page_byte(addr, seed, i);
				if (same)
					found = seed;
			}
			out[addr] = found;
		}
	}
	return out;
}

// The parent chain: link 1 full (pages 0-19, seed 1), link 2 with pages
// 0-3 rewritten (seed 2) and 4-19 unchanged.
struct Fixture {
	TempDir dir;
	std::vector<Checkpoint> links;

	Fixture()
	{
		Content c1, c2;
		for (uint64_t i = 0; i < 20; i++) {
			c1[pg(i)] = 1;
			c2[pg(i)] = i < 4 ? 2 : 0;
		}
		write_content(dir.path() + "/1", c1);
		write_content(dir.path() + "/2", c2);
		links.push_back(link_at(dir.path() + "/1", 1, 0));
		links.push_back(link_at(dir.path() + "/2", 2, 1));
	}
};

constexpr uint64_t kUnit = 8 * kPs;	// a "huge page" of 8 pages

} // namespace

TEST(Unchanged, EqualPagesOfWholeBlocksBecomeParentRuns)
{
	Fixture f;
	// Link 3: block 0 (pages 0-7) saved whole, pages 2 and 5 really
	// written; block 1 (8-15) saved whole, every page written; pages
	// 16-17 saved, equal to the parent, but not a whole block.
	Content c3;
	for (uint64_t i = 0; i < 18; i++)
		c3[pg(i)] = i < 4 ? 2 : 1;
	c3[pg(2)] = 9;
	c3[pg(5)] = 9;
	for (uint64_t i = 8; i < 16; i++)
		c3[pg(i)] = 9;
	c3[pg(18)] = 0;
	c3[pg(19)] = 0;
	const std::string p3 = f.dir.path() + "/3";
	write_content(p3, c3);
	Checkpoint l3 = link_at(p3, 3, 2);

	UniqueFd in(open(p3.c_str(), O_RDONLY | O_CLOEXEC));
	auto same = find_unchanged(in.get(), l3.pagemap, ptrs(f.links), kPs, kUnit);
	ASSERT_TRUE(same) << same.error().msg;
	// Pages 0-1, 3-4 (from two different links, merged) and 6-7.
	ASSERT_EQ(same->size(), 3u);
	EXPECT_EQ((*same)[0].addr, pg(0));
	EXPECT_EQ((*same)[0].nr_pages, 2u);
	EXPECT_EQ((*same)[1].addr, pg(3));
	EXPECT_EQ((*same)[1].nr_pages, 2u);
	EXPECT_EQ((*same)[2].addr, pg(6));
	EXPECT_EQ((*same)[2].nr_pages, 2u);

	const std::string p3b = f.dir.path() + "/3b";
	UniqueFd out(open(p3b.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	auto runs = rewrite_unchanged(in.get(), out.get(), l3.pagemap, *same, kPs);
	ASSERT_TRUE(runs) << runs.error().msg;
	out.reset();

	// The new file indexes as rewrite_unchanged() said, checksums included.
	Checkpoint l3b = link_at(p3b, 3, 2);
	ASSERT_EQ(l3b.pagemap.size(), runs->size());
	for (size_t i = 0; i < runs->size(); i++) {
		EXPECT_EQ(l3b.pagemap[i].addr, (*runs)[i].addr);
		EXPECT_EQ(l3b.pagemap[i].nr_pages, (*runs)[i].nr_pages);
		EXPECT_EQ(l3b.pagemap[i].flags, (*runs)[i].flags);
		EXPECT_EQ(l3b.pagemap[i].offset, (*runs)[i].offset);
		EXPECT_EQ(l3b.pagemap[i].xxh64, (*runs)[i].xxh64);
	}
	PageCounts before = count_pages(l3.pagemap), after = count_pages(l3b.pagemap);
	EXPECT_EQ(before.data - after.data, 6u);
	EXPECT_EQ(after.parent - before.parent, 6u);

	// The chain through either file reads the same bytes, page by page.
	std::vector<Checkpoint> chain_a = f.links, chain_b = f.links;
	chain_a.push_back(l3);
	chain_b.push_back(l3b);
	auto a = read_back(chain_a), b = read_back(chain_b);
	EXPECT_EQ(a.size(), 20u);
	EXPECT_EQ(a, b);
	EXPECT_EQ(b[pg(2)], 9u);
	EXPECT_EQ(b[pg(1)], 2u);
	EXPECT_EQ(b[pg(4)], 1u);
}

TEST(Unchanged, NothingOutsideWholeAlignedBlocks)
{
	Fixture f;
	// Pages 1-8 equal to the parent: 8 pages, but across two blocks.
	Content c3;
	for (uint64_t i = 1; i < 9; i++)
		c3[pg(i)] = i < 4 ? 2 : 1;
	const std::string p3 = f.dir.path() + "/3";
	write_content(p3, c3);
	Checkpoint l3 = link_at(p3, 3, 2);
	UniqueFd in(open(p3.c_str(), O_RDONLY | O_CLOEXEC));
	auto same = find_unchanged(in.get(), l3.pagemap, ptrs(f.links), kPs, kUnit);
	ASSERT_TRUE(same) << same.error().msg;
	EXPECT_TRUE(same->empty());
}

TEST(Unchanged, PagesTheParentDoesNotHaveStayData)
{
	Fixture f;
	// Pages 16-23: 16-19 equal to the parent, 20-23 new memory (the parent
	// has no such pages; their bytes happen to be what seed 1 gives).
	Content c3;
	for (uint64_t i = 16; i < 24; i++)
		c3[pg(i)] = 1;
	const std::string p3 = f.dir.path() + "/3";
	write_content(p3, c3);
	Checkpoint l3 = link_at(p3, 3, 2);
	UniqueFd in(open(p3.c_str(), O_RDONLY | O_CLOEXEC));
	auto same = find_unchanged(in.get(), l3.pagemap, ptrs(f.links), kPs, kUnit);
	ASSERT_TRUE(same) << same.error().msg;
	ASSERT_EQ(same->size(), 1u);
	EXPECT_EQ((*same)[0].addr, pg(16));
	EXPECT_EQ((*same)[0].nr_pages, 4u);
}

TEST(Unchanged, RangesOutsideDataRunsAreRefused)
{
	Fixture f;
	Content c3;
	for (uint64_t i = 0; i < 8; i++)
		c3[pg(i)] = i < 4 ? 0 : 9;
	const std::string p3 = f.dir.path() + "/3";
	write_content(p3, c3);
	Checkpoint l3 = link_at(p3, 3, 2);
	UniqueFd in(open(p3.c_str(), O_RDONLY | O_CLOEXEC));
	const std::string p3b = f.dir.path() + "/3b";
	UniqueFd out(open(p3b.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	// Pages 2-5: half in the parent run.
	auto r = rewrite_unchanged(in.get(), out.get(), l3.pagemap, {{pg(2), 4}}, kPs);
	ASSERT_FALSE(r);
	EXPECT_NE(r.error().msg.find("not inside"), std::string::npos) << r.error().msg;
	// Pages 20-21: in no run at all.
	r = rewrite_unchanged(in.get(), out.get(), l3.pagemap, {{pg(20), 2}}, kPs);
	ASSERT_FALSE(r);
	auto bad = find_unchanged(in.get(), l3.pagemap, ptrs(f.links), kPs, kPs + 1);
	EXPECT_FALSE(bad);
}

// A compressed parent chain (amber checkpoint --compress) gives the same
// answer: its links are read decompressed, through open_pages().
TEST(Unchanged, CompressedParentChain)
{
	Fixture f;
	Content c3;
	for (uint64_t i = 0; i < 8; i++)
		c3[pg(i)] = i < 4 ? 2 : 1;
	c3[pg(5)] = 9;
	const std::string p3 = f.dir.path() + "/3";
	write_content(p3, c3);
	Checkpoint l3 = link_at(p3, 3, 2);
	UniqueFd in(open(p3.c_str(), O_RDONLY | O_CLOEXEC));
	auto want = find_unchanged(in.get(), l3.pagemap, ptrs(f.links), kPs, kUnit);
	ASSERT_TRUE(want) << want.error().msg;
	ASSERT_FALSE(want->empty());

	for (Checkpoint &l : f.links) {
		auto s = compress_file(l.pages_path, l.pages_path + ".zst", kDefaultZstdLevel);
		ASSERT_TRUE(s) << s.error().msg;
		ASSERT_EQ(0, unlink(l.pages_path.c_str()));
		l.pages_path += ".zst";
		l.info.pages_zstd = s->in_bytes;
		l.pages_cache = new_pages_cache();
	}
	auto same = find_unchanged(in.get(), l3.pagemap, ptrs(f.links), kPs, kUnit);
	ASSERT_TRUE(same) << same.error().msg;
	ASSERT_EQ(want->size(), same->size());
	for (size_t i = 0; i < same->size(); i++) {
		EXPECT_EQ((*want)[i].addr, (*same)[i].addr);
		EXPECT_EQ((*want)[i].nr_pages, (*same)[i].nr_pages);
	}
}
