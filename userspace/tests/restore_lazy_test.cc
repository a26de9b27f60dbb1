// SPDX-License-Identifier: GPL-2.0
// Units of restore/lazy.cc: what a lazy restore's filler still has to copy
// (LazyMap under faults, removals, mremap and forks), how prefilled memory
// is split into extents and checks, and the range left after an EEXIST.
#include <gtest/gtest.h>

#include "restore/lazy.h"

using namespace amber;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kChunk = 1 << 20;

LazyExtent ext(uint64_t addr, uint64_t len, uint64_t off, int check = -1, int fd = 7)
{
	LazyExtent e;
	e.addr = addr;
	e.len = len;
	e.fd = fd;
	e.off = off;
	e.check = check;
	return e;
}

} // namespace

TEST(LazyMap, FindClipsToTheChunkAroundTheFault)
{
	LazyMap m;
	m.add(ext(0x100000, 4 * kChunk, 0x5000));
	auto p = m.find(0x100000 + kChunk + 3 * kPage, kChunk);
	ASSERT_TRUE(p);
	EXPECT_EQ(ext(0x200000, kChunk, 0x5000 + kChunk), *p);
	EXPECT_FALSE(m.find(0xff000, kChunk));
	EXPECT_FALSE(m.find(0x100000 + 4 * kChunk, kChunk));
	// an unaligned extent: the piece starts at the extent, not the window
	LazyMap u;
	u.add(ext(0x103000, 2 * kPage, 0));
	EXPECT_EQ(ext(0x103000, 2 * kPage, 0), *u.find(0x104000, kChunk));
}

TEST(LazyMap, RemoveSplitsAndKeepsFileOffsets)
{
	LazyMap m;
	m.add(ext(0x10000, 16 * kPage, 0x1000));
	m.remove(0x10000 + 4 * kPage, 0x10000 + 6 * kPage);
	std::vector<LazyExtent> want = {
		ext(0x10000, 4 * kPage, 0x1000),
		ext(0x10000 + 6 * kPage, 10 * kPage, 0x1000 + 6 * kPage),
	};
	EXPECT_EQ(want, m.extents());
	EXPECT_EQ(14 * kPage, m.bytes());
	// across both pieces and past the end
	m.remove(0x10000 + 2 * kPage, 0x10000 + 100 * kPage);
	want = {ext(0x10000, 2 * kPage, 0x1000)};
	EXPECT_EQ(want, m.extents());
	m.remove(0, 0x10000 + 2 * kPage);
	EXPECT_TRUE(m.empty());
	EXPECT_FALSE(m.first(kChunk));
}

TEST(LazyMap, FirstIsTheLowestPieceInAddressOrder)
{
	LazyMap m;
	m.add(ext(0x900000, kPage, 0x9000, 1));
	m.add(ext(0x100000 + kChunk - kPage, 3 * kPage, 0x2000, 0));
	auto p = m.first(kChunk);
	ASSERT_TRUE(p);
	// clipped at the chunk boundary: one page, then the next window
	EXPECT_EQ(ext(0x100000 + kChunk - kPage, kPage, 0x2000, 0), *p);
	m.remove(p->addr, p->end());
	EXPECT_EQ(ext(0x100000 + kChunk, 2 * kPage, 0x3000, 0), *m.first(kChunk));
}

TEST(LazyMap, RemapMovesWhatIsMissing)
{
	LazyMap m;
	m.add(ext(0x10000, 8 * kPage, 0));
	m.add(ext(0x80000, 2 * kPage, 0x100000));	// overwritten by the move
	// mremap of 4 pages from the middle to 0x80000
	m.remap(0x10000 + 2 * kPage, 0x80000, 4 * kPage);
	std::vector<LazyExtent> want = {
		ext(0x10000, 2 * kPage, 0),
		ext(0x10000 + 6 * kPage, 2 * kPage, 6 * kPage),
		ext(0x80000, 4 * kPage, 2 * kPage),
	};
	EXPECT_EQ(want, m.extents());
}

TEST(LazyMap, AForkedChildMissesWhatItsParentMissed)
{
	LazyMap parent;
	parent.add(ext(0x10000, 8 * kPage, 0));
	parent.remove(0x10000, 0x10000 + kPage);	// filled before the fork
	LazyMap child = parent;
	parent.remove(0x10000, 0x20000);		// the parent goes on
	EXPECT_TRUE(parent.empty());
	EXPECT_EQ(7 * kPage, child.bytes());
}

TEST(LazyPlan, ExtentsSplitAtChecks)
{
	StubPrefill f;
	f.range = {0x100000, 0x200000};
	// one segment of file 5 holding two runs, and a page the tool verified
	f.segs.push_back({0x100000, 16 * kPage, 5, 0x2000});
	f.checks.push_back({0x100000 + 2 * kPage, 4 * kPage, 0xaa, 3, 10});
	f.checks.push_back({0x100000 + 6 * kPage, 8 * kPage, 0xbb, 3, 11});
	LazyPlan p = plan_lazy({f});
	ASSERT_EQ(2u, p.checks.size());
	EXPECT_EQ(5, p.checks[0].fd);
	EXPECT_EQ(0x2000 + 2 * kPage, p.checks[0].off);
	EXPECT_EQ(0x2000 + 6 * kPage, p.checks[1].off);
	EXPECT_EQ(11u, p.checks[1].run);
	std::vector<LazyExtent> want = {
		ext(0x100000, 2 * kPage, 0x2000, -1, 5),
		ext(0x100000 + 2 * kPage, 4 * kPage, 0x2000 + 2 * kPage, 0, 5),
		ext(0x100000 + 6 * kPage, 8 * kPage, 0x2000 + 6 * kPage, 1, 5),
		ext(0x100000 + 14 * kPage, 2 * kPage, 0x2000 + 14 * kPage, -1, 5),
	};
	EXPECT_EQ(want, p.extents);
}

TEST(LazyPlan, EveryPageOfEverySegmentOnce)
{
	StubPrefill a, b;
	a.segs.push_back({0x10000, 4 * kPage, 3, 0});
	a.segs.push_back({0x20000, 4 * kPage, 4, 0x8000});
	a.checks.push_back({0x20000, 4 * kPage, 1, 2, 0});
	b.segs.push_back({0x90000, kPage, 3, 0x4000});
	LazyPlan p = plan_lazy({a, b});
	uint64_t total = 0;
	for (const LazyExtent &e : p.extents)
		total += e.len;
	EXPECT_EQ(9 * kPage, total);
	ASSERT_EQ(3u, p.extents.size());
	EXPECT_EQ(0, p.extents[1].check);
	EXPECT_EQ(-1, p.extents[2].check);
}

TEST(LazyEexist, SkipsThePageThatExists)
{
	LazyExtent p = ext(0x10000, 8 * kPage, 0x1000);
	// nothing copied, the first page exists
	EXPECT_EQ(ext(0x10000 + kPage, 7 * kPage, 0x1000 + kPage), *after_eexist(p, -17, kPage));
	// three copied, the fourth exists
	EXPECT_EQ(ext(0x10000 + 4 * kPage, 4 * kPage, 0x1000 + 4 * kPage),
		  *after_eexist(p, 3 * kPage, kPage));
	// the last page exists: nothing left
	EXPECT_FALSE(after_eexist(p, 7 * kPage, kPage));
	EXPECT_FALSE(after_eexist(ext(0x10000, kPage, 0), 0, kPage));
}
