// SPDX-License-Identifier: GPL-2.0
// Incremental chains: resolve_chain() on hand-built and random chains
// against a page-by-page model, Store::load_chain(), compact() and retain()
// on stores built on disk.
#include <gtest/gtest.h>
#include <linux/amber.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <random>

#include "fixtures.h"
#include "image/image.h"
#include "image/store.h"

using namespace amber;
using namespace amber::testing;
namespace fs = std::filesystem;

namespace {

// A checkpoint held in memory only: the pagemap as scan_pages() would
// index the pages file of these runs.
Checkpoint mem_link(uint32_t number, uint32_t parent, const std::vector<RunSpec> &runs)
{
	Checkpoint c;
	c.number = number;
	c.info.number = number;
	c.info.parent = parent;
	c.page_size = kPs;
	c.pages_path = "/nonexistent/" + std::to_string(number);
	uint64_t pos = sizeof(amber_pages_hdr);
	for (const RunSpec &r : runs) {
		pos += sizeof(amber_page_run);
		c.pagemap.push_back({r.addr, uint32_t(r.nr_pages),
				     r.parent ? uint32_t(AMBER_RUN_F_PARENT) : 0u, pos, 0});
		if (!r.parent)
			pos += r.nr_pages * kPs;
	}
	return c;
}


// Where a page's data is: link index and offset in its pages file.
using Where = std::pair<uint32_t, uint64_t>;

// The model: resolves one page of link k, page by page, no cursors.
// nullopt: the page is not listed by link k; error string: invalid chain.
struct ModelPage {
	std::optional<Where> where;
	std::string error;
};

ModelPage model_page(const std::vector<Checkpoint> &links, size_t k, uint64_t addr)
{
	for (const auto &e : links[k].pagemap) {
		if (addr < e.addr || addr >= e.addr + e.nr_pages * kPs)
			continue;
		if (!(e.flags & AMBER_RUN_F_PARENT))
			return {Where{uint32_t(k), e.offset + (addr - e.addr)}, ""};
		if (k == 0)
			return {std::nullopt, "oldest"};
		ModelPage p = model_page(links, k - 1, addr);
		if (!p.where && p.error.empty())
			p.error = "missing";
		return p;
	}
	return {};
}

// Every page of the newest link resolved by the model; error if any fails.
ModelPage model_chain(const std::vector<Checkpoint> &links, std::map<uint64_t, Where> *out)
{
	const size_t last = links.size() - 1;
	for (const auto &e : links[last].pagemap)
		for (uint64_t p = 0; p < e.nr_pages; p++) {
			ModelPage m = model_page(links, last, e.addr + p * kPs);
			if (!m.error.empty())
				return m;
			(*out)[e.addr + p * kPs] = *m.where;
		}
	return {};
}

// resolve_chain()'s answer page by page; checks ascending order.
std::map<uint64_t, Where> expand(const std::vector<PageSource> &src)
{
	std::map<uint64_t, Where> out;
	uint64_t prev_end = 0;
	for (const PageSource &s : src) {
		EXPECT_GE(s.addr, prev_end);
		EXPECT_GT(s.nr_pages, 0u);
		for (uint64_t p = 0; p < s.nr_pages; p++)
			out[s.addr + p * kPs] = {s.link, s.offset + p * kPs};
		prev_end = s.addr + s.nr_pages * kPs;
	}
	return out;
}

// Random runs over `pages` pages: each page absent, data or parent (parent
// only where `allowed` says so, unless invalid is set); runs of one kind
// split at random.
std::vector<RunSpec> random_runs(std::mt19937 &rng, uint64_t pages, const std::vector<int> *allowed,
			     bool oldest, std::vector<int> *state)
{
	std::uniform_int_distribution<int> d(0, 99);
	state->assign(pages, 0);	// 0 absent, 1 data, 2 parent
	for (uint64_t i = 0; i < pages; i++) {
		int r = d(rng);
		int s = r < 20 ? 0 : r < 50 ? 1 : 2;
		if (s == 2 && (oldest || (allowed && !(*allowed)[i])))
			s = r < 35 ? 0 : 1;
		(*state)[i] = s;
	}
	std::vector<RunSpec> runs;
	for (uint64_t i = 0; i < pages;) {
		if (!(*state)[i]) {
			i++;
			continue;
		}
		uint64_t j = i + 1;
		while (j < pages && (*state)[j] == (*state)[i] && d(rng) < 80)
			j++;
		runs.push_back({pg(i), j - i, (*state)[i] == 2});
		i = j;
	}
	return runs;
}

} // namespace

TEST(Chain, SingleFullLink)
{
	std::vector<Checkpoint> l = {mem_link(1, 0, {{pg(0), 2}, {pg(5), 1}})};
	auto r = resolve_chain(ptrs(l));
	ASSERT_TRUE(r) << r.error().str();
	ASSERT_EQ(2u, r->size());
	EXPECT_EQ(pg(0), (*r)[0].addr);
	EXPECT_EQ(2u, (*r)[0].nr_pages);
	EXPECT_EQ(0u, (*r)[0].link);
	EXPECT_EQ(32u, (*r)[0].offset);
	EXPECT_EQ(pg(5), (*r)[1].addr);
	EXPECT_EQ(32u + 2 * kPs + 16, (*r)[1].offset);
}

TEST(Chain, TwoLinksExactSources)
{
	// 1: [0,4) data.  2: [0] data, [1,4) parent.
	std::vector<Checkpoint> l = {mem_link(1, 0, {{pg(0), 4}}),
				     mem_link(2, 1, {{pg(0), 1}, {pg(1), 3, true}})};
	auto r = resolve_chain(ptrs(l));
	ASSERT_TRUE(r) << r.error().str();
	ASSERT_EQ(2u, r->size());
	EXPECT_EQ(pg(0), (*r)[0].addr);
	EXPECT_EQ(1u, (*r)[0].nr_pages);
	EXPECT_EQ(1u, (*r)[0].link);
	EXPECT_EQ(32u, (*r)[0].offset);
	EXPECT_EQ(pg(1), (*r)[1].addr);
	EXPECT_EQ(3u, (*r)[1].nr_pages);
	EXPECT_EQ(0u, (*r)[1].link);
	EXPECT_EQ(32u + kPs, (*r)[1].offset);
}

TEST(Chain, MultiLinkThroughParentRuns)
{
	// A PARENT range of link 4 that crosses data and PARENT runs of link 3,
	// whose PARENT runs cross runs of link 2, down to link 1.
	std::vector<Checkpoint> l = {
		mem_link(1, 0, {{pg(0), 10}, {pg(20), 2}}),
		mem_link(2, 1, {{pg(0), 2}, {pg(2), 6, true}, {pg(8), 2}, {pg(20), 2, true}}),
		mem_link(3, 2, {{pg(0), 5, true}, {pg(5), 1}, {pg(6), 4, true}, {pg(20), 1, true}}),
		mem_link(4, 3, {{pg(0), 9, true}, {pg(9), 1}, {pg(20), 1, true}}),
	};
	auto r = resolve_chain(ptrs(l));
	ASSERT_TRUE(r) << r.error().str();
	std::map<uint64_t, Where> want;
	ASSERT_TRUE(model_chain(l, &want).error.empty());
	EXPECT_EQ(want, expand(*r));
	// Spot checks: page 0,1 from link 2 (index 1); 2-4 from link 1; 5 from
	// link 3; 6,7 from link 1; 8 from link 2; 9 from link 4; 20 from link 1.
	auto m = expand(*r);
	EXPECT_EQ(1u, m[pg(0)].first);
	EXPECT_EQ(0u, m[pg(3)].first);
	EXPECT_EQ(2u, m[pg(5)].first);
	EXPECT_EQ(0u, m[pg(7)].first);
	EXPECT_EQ(1u, m[pg(8)].first);
	EXPECT_EQ(3u, m[pg(9)].first);
	EXPECT_EQ(0u, m[pg(20)].first);
	EXPECT_EQ(0u, m.count(pg(21)));
	EXPECT_EQ(11u, m.size());
}

TEST(Chain, GapInParentIsNamed)
{
	// Link 2 says pages 2-5 are unchanged, link 1 lacks 3 and 4.
	std::vector<Checkpoint> l = {mem_link(1, 0, {{pg(0), 3}, {pg(5), 1}}),
				     mem_link(2, 1, {{pg(2), 4, true}})};
	auto r = resolve_chain(ptrs(l));
	ASSERT_FALSE(r);
	EXPECT_EQ("checkpoint 2: pages 0x7f0000003000-0x7f0000005000 are missing from its "
		  "parent checkpoint 1",
		  r.error().msg);

	// Missing at the end of the parent's runs.
	l = {mem_link(1, 0, {{pg(0), 3}}), mem_link(2, 1, {{pg(1), 4, true}})};
	r = resolve_chain(ptrs(l));
	ASSERT_FALSE(r);
	EXPECT_EQ("checkpoint 2: pages 0x7f0000003000-0x7f0000005000 are missing from its "
		  "parent checkpoint 1",
		  r.error().msg);
}

TEST(Chain, GapDeepInTheChainNamesThatLink)
{
	std::vector<Checkpoint> l = {
		mem_link(4, 0, {{pg(0), 2}}),
		mem_link(6, 4, {{pg(0), 3, true}}),	// page 2 not in 4
		mem_link(9, 6, {{pg(0), 3, true}}),
	};
	auto r = resolve_chain(ptrs(l));
	ASSERT_FALSE(r);
	EXPECT_EQ("checkpoint 6: pages 0x7f0000002000-0x7f0000003000 are missing from its "
		  "parent checkpoint 4",
		  r.error().msg);
}

TEST(Chain, DontNeedBetweenCheckpoints)
{
	// Page 1 had data in 1, was dropped (MADV_DONTNEED) before 2: 2 does
	// not list it, so it is not in the result although 1 has it.
	std::vector<Checkpoint> l = {mem_link(1, 0, {{pg(0), 3}}),
				     mem_link(2, 1, {{pg(0), 1, true}, {pg(2), 1, true}})};
	auto r = resolve_chain(ptrs(l));
	ASSERT_TRUE(r) << r.error().str();
	auto m = expand(*r);
	EXPECT_EQ(2u, m.size());
	EXPECT_EQ(0u, m.count(pg(1)));

	// Link 3 claims page 1 unchanged since 2: invalid even though link 1
	// has data for it (pages come from the direct parent only).
	l.push_back(mem_link(3, 2, {{pg(0), 3, true}}));
	r = resolve_chain(ptrs(l));
	ASSERT_FALSE(r);
	EXPECT_EQ("checkpoint 3: pages 0x7f0000001000-0x7f0000002000 are missing from its "
		  "parent checkpoint 2",
		  r.error().msg);
}

TEST(Chain, ParentRunInOldestLink)
{
	std::vector<Checkpoint> l = {mem_link(1, 0, {{pg(0), 1}, {pg(1), 2, true}})};
	auto r = resolve_chain(ptrs(l));
	ASSERT_FALSE(r);
	EXPECT_EQ("checkpoint 1: pages 0x7f0000001000-0x7f0000003000 are unchanged since a parent "
		  "checkpoint, but it is the oldest of the chain",
		  r.error().msg);

	// Also when the newest link does not need that run.
	l = {mem_link(1, 0, {{pg(0), 1}, {pg(9), 1, true}}), mem_link(2, 1, {{pg(0), 1, true}})};
	EXPECT_FALSE(resolve_chain(ptrs(l)));
}

TEST(Chain, RunsTheNewestDoesNotNeedAreIgnored)
{
	// Link 1 and 2 have pages at addresses unmapped by link 3.
	std::vector<Checkpoint> l = {
		mem_link(1, 0, {{pg(0), 2}, {pg(100), 50}}),
		mem_link(2, 1, {{pg(0), 2, true}, {pg(100), 10, true}, {pg(200), 5}}),
		mem_link(3, 2, {{pg(1), 1, true}, {pg(300), 1}}),
	};
	auto r = resolve_chain(ptrs(l));
	ASSERT_TRUE(r) << r.error().str();
	auto m = expand(*r);
	ASSERT_EQ(2u, m.size());
	EXPECT_EQ(0u, m[pg(1)].first);
	EXPECT_EQ(32u + kPs, m[pg(1)].second);
	EXPECT_EQ(2u, m[pg(300)].first);
}

TEST(Chain, AdjacentPiecesOfOneLinkAreMerged)
{
	// Two PARENT runs of link 2 back to back over one data run of link 1.
	std::vector<Checkpoint> l = {mem_link(1, 0, {{pg(0), 8}}),
				     mem_link(2, 1, {{pg(0), 3, true}, {pg(3), 5, true}})};
	auto r = resolve_chain(ptrs(l));
	ASSERT_TRUE(r);
	ASSERT_EQ(1u, r->size());
	EXPECT_EQ(8u, (*r)[0].nr_pages);
}

TEST(Chain, BadLinksAreRefused)
{
	std::vector<Checkpoint> l = {mem_link(1, 0, {{pg(0), 2}}), mem_link(3, 2, {{pg(0), 2, true}})};
	auto r = resolve_chain(ptrs(l));
	ASSERT_FALSE(r);
	EXPECT_EQ("checkpoint 3: its parent is checkpoint 2, not 1", r.error().msg);

	l = {mem_link(1, 0, {{pg(2), 2}, {pg(3), 1}})};	// overlapping
	r = resolve_chain(ptrs(l));
	ASSERT_FALSE(r);
	EXPECT_NE(std::string::npos, r.error().msg.find("checkpoint 1: pages.img: run 1")) <<
		r.error().msg;

	l = {mem_link(1, 0, {{pg(0), 2}})};
	l[0].pagemap[0].flags = 0x80;
	EXPECT_FALSE(resolve_chain(ptrs(l)));

	l = {mem_link(1, 0, {{pg(0), 2}}), mem_link(2, 1, {{pg(0), 2, true}})};
	l[0].page_size = 8192;
	EXPECT_FALSE(resolve_chain(ptrs(l)));

	EXPECT_FALSE(resolve_chain({}));
}

TEST(Chain, RandomValidChainsMatchTheModel)
{
	std::mt19937 rng(12345);
	for (int iter = 0; iter < 300; iter++) {
		const uint64_t pages = 1 + rng() % 40;
		const size_t nlinks = 1 + rng() % 7;
		std::vector<Checkpoint> l;
		std::vector<int> prev, state, has;
		for (size_t k = 0; k < nlinks; k++) {
			auto runs = random_runs(rng, pages, k ? &has : nullptr, k == 0, &state);
			l.push_back(mem_link(uint32_t(k + 1) * 2, uint32_t(k) * 2, runs));
			has.assign(pages, 0);
			for (uint64_t i = 0; i < pages; i++)
				has[i] = state[i] != 0;
		}
		std::map<uint64_t, Where> want;
		ASSERT_TRUE(model_chain(l, &want).error.empty()) << iter;
		auto r = resolve_chain(ptrs(l));
		ASSERT_TRUE(r) << iter << ": " << r.error().str();
		ASSERT_EQ(want, expand(*r)) << iter;
	}
}

TEST(Chain, RandomInvalidChainsAreRefused)
{
	std::mt19937 rng(777);
	int invalid = 0;
	for (int iter = 0; iter < 300; iter++) {
		const uint64_t pages = 1 + rng() % 30;
		const size_t nlinks = 2 + rng() % 5;
		std::vector<Checkpoint> l;
		std::vector<int> state;
		for (size_t k = 0; k < nlinks; k++) {
			auto runs = random_runs(rng, pages, nullptr, k == 0, &state);
			l.push_back(mem_link(uint32_t(k + 1), uint32_t(k), runs));
		}
		std::map<uint64_t, Where> want;
		ModelPage m = model_chain(l, &want);
		auto r = resolve_chain(ptrs(l));
		if (m.error.empty()) {
			ASSERT_TRUE(r) << iter << ": " << r.error().str();
			ASSERT_EQ(want, expand(*r)) << iter;
		} else {
			invalid++;
			ASSERT_FALSE(r) << iter;
			EXPECT_NE(std::string::npos,
				  r.error().msg.find("are missing from its parent checkpoint"))
				<< r.error().msg;
		}
	}
	EXPECT_GT(invalid, 100);
}

// ---- stores on disk ----

namespace {

// What restoring checkpoint n would put in memory: page -> contents.
std::map<uint64_t, Bytes> resolved_memory(const Store &s, uint32_t n)
{
	std::map<uint64_t, Bytes> out;
	auto chain = s.load_chain(n);
	EXPECT_TRUE(chain) << chain.error().str();
	if (!chain)
		return out;
	auto src = resolve_chain(ptrs(*chain));
	EXPECT_TRUE(src) << src.error().str();
	if (!src)
		return out;
	for (const PageSource &p : *src) {
		UniqueFd fd(open((*chain)[p.link].pages_path.c_str(), O_RDONLY));
		for (uint64_t i = 0; i < p.nr_pages; i++) {
			Bytes b(kPs);
			EXPECT_EQ(ssize_t(kPs), pread(fd.get(), b.data(), kPs, p.offset + i * kPs));
			out[p.addr + i * kPs] = b;
		}
	}
	return out;
}

// The model of a store: runs and parent of each checkpoint.
struct Model {
	std::map<uint32_t, std::pair<uint32_t, std::vector<RunSpec>>> links;

	void add(const std::string &dir, uint32_t n, uint32_t parent, const std::vector<RunSpec> &runs)
	{
		write_link(dir, n, parent, runs, 1000 + n);
		links[n] = {parent, runs};
	}

	// Expected memory of n from the page pattern: the seed of the link
	// that holds each page's data.
	std::map<uint64_t, Bytes> memory(uint32_t n) const
	{
		std::map<uint64_t, Bytes> out;
		for (const RunSpec &r : links.at(n).second)
			for (uint64_t p = 0; p < r.nr_pages; p++) {
				const uint64_t a = r.addr + p * kPs;
				uint32_t seed = n;
				for (bool parent = r.parent; parent;) {
					seed = links.at(seed).first;
					parent = false;
					for (const RunSpec &q : links.at(seed).second)
						if (a >= q.addr && a < q.addr + q.nr_pages * kPs)
							parent = q.parent;
				}
				Bytes b(kPs);
				for (size_t i = 0; i < kPs; i++)
					b[i] = page_byte(a, seed, i);
				out[a] = b;
			}
		return out;
	}
};

class ChainStore : public ::testing::Test {
protected:
	void SetUp() override
	{
		dir_ = tmp_.path() + "/store";
		// 1 full; 2-6 incremental, with unmapped, dropped, new and
		// rewritten pages between them.
		m_.add(dir_, 1, 0, {{pg(0), 8}, {pg(16), 4}, {pg(40), 2}});
		m_.add(dir_, 2, 1, {{pg(0), 2, true}, {pg(2), 2}, {pg(4), 4, true}, {pg(16), 4, true}});
		m_.add(dir_, 3, 2, {{pg(0), 5, true}, {pg(5), 1}, {pg(6), 2, true}, {pg(17), 3, true},
				    {pg(30), 3}});
		m_.add(dir_, 4, 3, {{pg(0), 1}, {pg(1), 7, true}, {pg(18), 2, true}, {pg(30), 3, true}});
		m_.add(dir_, 5, 4, {{pg(0), 8, true}, {pg(19), 1}, {pg(31), 1, true}, {pg(50), 2}});
		m_.add(dir_, 6, 5, {{pg(0), 3, true}, {pg(3), 1}, {pg(4), 4, true}, {pg(50), 2, true}});
		set_latest(dir_, 6);
	}

	void expect_model(const Store &s, uint32_t n)
	{
		auto got = resolved_memory(s, n);
		auto want = m_.memory(n);
		EXPECT_EQ(want.size(), got.size()) << "checkpoint " << n;
		EXPECT_TRUE(want == got) << "checkpoint " << n << " resolves to other bytes";
	}

	TempDir tmp_;
	std::string dir_;
	Model m_;
};

} // namespace

TEST_F(ChainStore, LoadChainResolvesToTheModel)
{
	Store s(dir_);
	auto chain = s.load_chain(std::nullopt);
	ASSERT_TRUE(chain) << chain.error().str();
	ASSERT_EQ(6u, chain->size());
	for (uint32_t i = 0; i < 6; i++)
		EXPECT_EQ(i + 1, (*chain)[i].number);
	EXPECT_EQ(1006u, chain->back().info.track_id);
	EXPECT_EQ(1u, chain->back().info.pages_nr);
	EXPECT_EQ(9u, chain->back().info.parent_pages_nr);
	for (uint32_t n = 1; n <= 6; n++)
		expect_model(s, n);

	auto c3 = s.load_chain(3u);
	ASSERT_TRUE(c3);
	EXPECT_EQ(3u, c3->size());
}

TEST_F(ChainStore, DamagedMiddleLinkIsNamed)
{
	const std::string p = dir_ + "/3/pages.img";
	Bytes b = slurp(p);
	b[sizeof(amber_pages_hdr) + 2 * sizeof(amber_page_run) + 10] ^= 0xff;	// data of run 1
	spit(p, b);
	auto chain = Store(dir_).load_chain(std::nullopt);
	ASSERT_FALSE(chain);
	EXPECT_EQ("checkpoint 3: pages.img: run 1 at 0x7f0000005000: checksum mismatch",
		  chain.error().msg);
	// Checkpoint 2's chain does not include 3.
	EXPECT_TRUE(Store(dir_).load_chain(2u));
	// Meta only: fine.
	EXPECT_TRUE(Store(dir_).load_meta(3u));
}

TEST_F(ChainStore, MissingParentIsNamed)
{
	fs::remove_all(dir_ + "/2");
	auto chain = Store(dir_).load_chain(4u);
	ASSERT_FALSE(chain);
	EXPECT_EQ(ENOENT, chain.error().err);
	EXPECT_EQ("checkpoint 2: " + dir_ + "/2 (parent of checkpoint 3)", chain.error().msg);
}

TEST_F(ChainStore, ParentMustBeOlder)
{
	write_link(dir_, 7, 9, {{pg(0), 1, true}});
	auto chain = Store(dir_).load_chain(7u);
	ASSERT_FALSE(chain);
	EXPECT_EQ("checkpoint 7: meta.img: section INFO: parent checkpoint 9 is not older",
		  chain.error().msg);
}

TEST_F(ChainStore, ParentRunWithoutParentIsRefused)
{
	write_link(dir_, 7, 0, {{pg(0), 1, true}});
	auto c = Store(dir_).load_chain(7u);
	ASSERT_FALSE(c);
	EXPECT_EQ("checkpoint 7: pages.img: run 0 at 0x7f0000000000: unchanged since a parent "
		  "checkpoint, but the checkpoint has no parent",
		  c.error().msg);
}

TEST_F(ChainStore, ChainLongerThanTheLimit)
{
	for (uint32_t n = 7; n <= 70; n++)
		write_link(dir_, n, n - 1, {{pg(0), 1, true}});
	Store s(dir_);
	EXPECT_TRUE(s.load_chain(64u));
	auto c = s.load_chain(65u);
	ASSERT_FALSE(c);
	EXPECT_EQ(E2BIG, c.error().err);
	// Compaction is the way out: compact 64, then 70 chains onto it.
	auto r = s.compact(64);
	ASSERT_TRUE(r) << r.error().str();
	auto c70 = s.load_chain(70u);
	ASSERT_TRUE(c70) << c70.error().str();
	EXPECT_EQ(7u, c70->size());
}

TEST_F(ChainStore, CompactLatestKeepsItsMemory)
{
	Store s(dir_);
	auto before = resolved_memory(s, 6);
	ASSERT_FALSE(before.empty());
	auto r = s.compact(6);
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_TRUE(r->compacted);
	EXPECT_EQ(6u, r->number);
	EXPECT_EQ(6u, r->links);
	EXPECT_EQ(before.size(), r->pages);
	EXPECT_EQ(uint64_t(fs::file_size(dir_ + "/6/pages.img") + fs::file_size(dir_ + "/6/meta.img")),
		  r->bytes);

	auto chain = s.load_chain(6u);
	ASSERT_TRUE(chain) << chain.error().str();
	ASSERT_EQ(1u, chain->size());
	const Checkpoint &c = chain->front();
	EXPECT_EQ(0u, c.info.parent);
	EXPECT_EQ(1006u, c.info.track_id);
	EXPECT_EQ(before.size(), c.info.pages_nr);
	EXPECT_EQ(0u, c.info.parent_pages_nr);
	EXPECT_EQ(1006u, c.info.stopped_ns);
	EXPECT_EQ(1700000000ull * 1000000000ull + 6, c.info.time_ns);
	EXPECT_EQ(6u, c.info.number);
	EXPECT_EQ(0u, count_pages(c.pagemap).parent);
	EXPECT_EQ("sleeper", c.task.comm);
	EXPECT_EQ(3u, c.vmas.size());
	EXPECT_TRUE(before == resolved_memory(s, 6));
	expect_model(s, 6);

	// No leftovers; the older links are untouched and still resolve.
	for (const auto &e : fs::directory_iterator(dir_))
		EXPECT_NE(0u, e.path().filename().string().rfind(".tmp-", 0)) << e.path();
	for (uint32_t n = 1; n <= 5; n++)
		expect_model(s, n);

	// Again: already full.
	auto again = s.compact(6);
	ASSERT_TRUE(again);
	EXPECT_FALSE(again->compacted);
	EXPECT_EQ(before.size(), again->pages);
}

TEST_F(ChainStore, CompactMiddleKeepsItsChildren)
{
	Store s(dir_);
	std::map<uint32_t, std::map<uint64_t, Bytes>> before;
	for (uint32_t n = 1; n <= 6; n++)
		before[n] = resolved_memory(s, n);
	auto r = s.compact(3);
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_EQ(3u, r->links);
	for (uint32_t n = 1; n <= 6; n++)
		EXPECT_TRUE(before[n] == resolved_memory(s, n)) << n;
	auto c6 = s.load_chain(6u);
	ASSERT_TRUE(c6);
	EXPECT_EQ(4u, c6->size());	// 3 4 5 6
	// 1 and 2 are no longer needed by 6.
	fs::remove_all(dir_ + "/1");
	fs::remove_all(dir_ + "/2");
	EXPECT_TRUE(before[6] == resolved_memory(s, 6));
}

TEST_F(ChainStore, CompactCleansStaleTemporaryAndRespectsTheLock)
{
	Store s(dir_);
	fs::create_directory(dir_ + "/.tmp-6");
	spit(dir_ + "/.tmp-6/pages.img", Bytes(100, 1));
	{
		auto p = s.begin();	// holds DIR/.lock
		ASSERT_TRUE(p);
		auto r = s.compact(6);
		ASSERT_FALSE(r);
		EXPECT_EQ(EBUSY, r.error().err);
		// With the lock of the pending checkpoint.
		auto r2 = s.compact(6, *p);
		ASSERT_TRUE(r2) << r2.error().str();
		EXPECT_TRUE(r2->compacted);
	}
	EXPECT_FALSE(fs::exists(dir_ + "/.tmp-6"));
	expect_model(s, 6);
}

TEST_F(ChainStore, CompactOfABrokenChainChangesNothing)
{
	// Checkpoint 5 damaged: compacting 6 fails, 6 keeps its files.
	const std::string p = dir_ + "/5/pages.img";
	Bytes b = slurp(p);
	b.back() ^= 1;
	spit(p, b);
	const Bytes meta6 = slurp(dir_ + "/6/meta.img");
	Store s(dir_);
	auto r = s.compact(6);
	ASSERT_FALSE(r);
	EXPECT_EQ(0u, r.error().msg.rfind("checkpoint 5: pages.img:", 0)) << r.error().msg;
	EXPECT_TRUE(meta6 == slurp(dir_ + "/6/meta.img"));
	EXPECT_FALSE(fs::exists(dir_ + "/.tmp-6"));
}

TEST_F(ChainStore, RetainKeepsEveryKeptCheckpointIdentical)
{
	Store s(dir_);
	std::map<uint32_t, std::map<uint64_t, Bytes>> before;
	for (uint32_t n = 1; n <= 6; n++)
		before[n] = resolved_memory(s, n);
	auto r = s.retain(2);
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_EQ((std::vector<uint32_t>{5, 6}), r->kept);
	ASSERT_EQ(1u, r->compacted.size());
	EXPECT_EQ(5u, r->compacted[0].number);
	EXPECT_EQ(5u, r->compacted[0].links);
	EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 4}), r->deleted);
	EXPECT_EQ((std::vector<uint32_t>{5, 6}), *s.list());
	EXPECT_EQ(6u, *s.latest());
	for (uint32_t n : {5u, 6u})
		EXPECT_TRUE(before[n] == resolved_memory(s, n)) << n;
	expect_model(s, 6);
	for (const auto &e : fs::directory_iterator(dir_))
		EXPECT_NE(0u, e.path().filename().string().rfind(".tmp-", 0)) << e.path();

	// Nothing more to do.
	auto again = s.retain(2);
	ASSERT_TRUE(again);
	EXPECT_TRUE(again->compacted.empty());
	EXPECT_TRUE(again->deleted.empty());
}

TEST_F(ChainStore, RetainOnlyDeletesWhatNoKeptChainNeeds)
{
	// A second chain: 7 full (another process), 8 on 7.
	m_.add(dir_, 7, 0, {{pg(0), 2}});
	m_.add(dir_, 8, 7, {{pg(0), 1, true}, {pg(1), 1}});
	set_latest(dir_, 8);
	Store s(dir_);
	std::map<uint32_t, std::map<uint64_t, Bytes>> before;
	for (uint32_t n = 1; n <= 8; n++)
		before[n] = resolved_memory(s, n);

	// Keep 7 and 8: their chain is self-contained, nothing compacted.
	{
		TempDir t2;
		fs::copy(dir_, t2.path() + "/s", fs::copy_options::recursive |
							 fs::copy_options::copy_symlinks);
		Store s2(t2.path() + "/s");
		auto r = s2.retain(2);
		ASSERT_TRUE(r) << r.error().str();
		EXPECT_TRUE(r->compacted.empty());
		EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 4, 5, 6}), r->deleted);
		EXPECT_TRUE(before[8] == resolved_memory(s2, 8));
	}

	// Keep 5-8: 5 is compacted, 6 then chains onto it; 1-4 go.
	auto r = s.retain(4);
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_EQ((std::vector<uint32_t>{5, 6, 7, 8}), r->kept);
	ASSERT_EQ(1u, r->compacted.size());
	EXPECT_EQ(5u, r->compacted[0].number);
	EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 4}), r->deleted);
	for (uint32_t n = 5; n <= 8; n++)
		EXPECT_TRUE(before[n] == resolved_memory(s, n)) << n;
}

TEST_F(ChainStore, RetainWithTheCheckpointLock)
{
	Store s(dir_);
	auto before = resolved_memory(s, 6);
	auto p = s.begin();
	ASSERT_TRUE(p);
	auto busy = s.retain(1);
	ASSERT_FALSE(busy);
	EXPECT_EQ(EBUSY, busy.error().err);
	auto r = s.retain(1, *p);
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_EQ((std::vector<uint32_t>{6}), r->kept);
	EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 4, 5}), r->deleted);
	EXPECT_TRUE(before == resolved_memory(s, 6));
	EXPECT_FALSE(s.retain(0, *p));
}

TEST_F(ChainStore, RetainFailsBeforeDeletingAnything)
{
	// 4 is needed by the kept 6 and damaged: compaction fails, nothing goes.
	const std::string p = dir_ + "/4/pages.img";
	Bytes b = slurp(p);
	b.back() ^= 1;
	spit(p, b);
	Store s(dir_);
	auto r = s.retain(1);
	ASSERT_FALSE(r);
	EXPECT_EQ(0u, r.error().msg.rfind("checkpoint 4: ", 0)) << r.error().msg;
	EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 4, 5, 6}), *s.list());
}

TEST_F(ChainStore, LazyRetainKeepsShortChainsAsTheyAre)
{
	Store s(dir_);
	auto p = s.begin();
	ASSERT_TRUE(p);
	// Six links, at most 8 allowed, data well under 100x the memory:
	// 5 and 6 still need 1-4, so nothing is compacted or deleted.
	auto r = s.retain(2, *p, RetainPolicy{8, 100.0});
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_EQ((std::vector<uint32_t>{5, 6}), r->kept);
	EXPECT_TRUE(r->compacted.empty());
	EXPECT_TRUE(r->deleted.empty());
	EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 4, 5, 6}), *s.list());
	for (uint32_t n = 1; n <= 6; n++)
		expect_model(s, n);
}

TEST_F(ChainStore, LazyRetainCompactsTheOldestKeptLinkOfALongChain)
{
	Store s(dir_);
	std::map<uint32_t, std::map<uint64_t, Bytes>> before;
	for (uint32_t n = 1; n <= 6; n++)
		before[n] = resolved_memory(s, n);
	auto p = s.begin();
	ASSERT_TRUE(p);
	// 5 has five links, 6 six: over 4. 5 (the oldest kept) is compacted
	// once, 6 then chains onto it and 1-4 go.
	auto r = s.retain(2, *p, RetainPolicy{4, 100.0});
	ASSERT_TRUE(r) << r.error().str();
	ASSERT_EQ(1u, r->compacted.size());
	EXPECT_EQ(5u, r->compacted[0].number);
	EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 4}), r->deleted);
	EXPECT_EQ(2u, s.chain_numbers(6)->size());
	for (uint32_t n : {5u, 6u})
		EXPECT_TRUE(before[n] == resolved_memory(s, n)) << n;
	expect_model(s, 6);
}

TEST_F(ChainStore, LazyRetainCompactsWhenTheChainHoldsTooMuchData)
{
	Store s(dir_);
	auto before = resolved_memory(s, 6);
	auto p = s.begin();
	ASSERT_TRUE(p);
	// Short enough, but the links hold more than 1.0x the memory of 5.
	auto r = s.retain(2, *p, RetainPolicy{64, 1.0});
	ASSERT_TRUE(r) << r.error().str();
	ASSERT_EQ(1u, r->compacted.size());
	EXPECT_EQ(5u, r->compacted[0].number);
	EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 4}), r->deleted);
	EXPECT_TRUE(before == resolved_memory(s, 6));
}

TEST_F(ChainStore, ChainNumbersFromMetaOnly)
{
	Store s(dir_);
	auto c = s.chain_numbers(4);
	ASSERT_TRUE(c) << c.error().str();
	EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 4}), *c);
}

TEST(ChainStoreRandom, CompactAndRetainPreserveMemory)
{
	std::mt19937 rng(4242);
	for (int iter = 0; iter < 12; iter++) {
		TempDir t;
		const std::string dir = t.path() + "/s";
		Model m;
		const uint64_t pages = 1 + rng() % 24;
		const uint32_t n = 2 + rng() % 7;
		std::vector<int> state, has;
		for (uint32_t k = 1; k <= n; k++) {
			bool full = k == 1 || rng() % 5 == 0;
			auto runs = random_runs(rng, pages, full ? nullptr : &has, full, &state);
			m.add(dir, k, full ? 0 : k - 1, runs);
			has.assign(pages, 0);
			for (uint64_t i = 0; i < pages; i++)
				has[i] = state[i] != 0;
		}
		set_latest(dir, n);
		Store s(dir);
		for (uint32_t k = 1; k <= n; k++)
			ASSERT_TRUE(m.memory(k) == resolved_memory(s, k)) << iter << " " << k;
		const uint32_t mid = 1 + rng() % n;
		ASSERT_TRUE(s.compact(mid)) << iter;
		for (uint32_t k = 1; k <= n; k++)
			ASSERT_TRUE(m.memory(k) == resolved_memory(s, k)) << iter << " " << k;
		const uint32_t keep = 1 + rng() % n;
		auto r = s.retain(keep);
		ASSERT_TRUE(r) << iter << ": " << r.error().str();
		for (uint32_t k = n - keep + 1; k <= n; k++)
			ASSERT_TRUE(m.memory(k) == resolved_memory(s, k)) << iter << " " << k;
		auto left = *s.list();
		for (uint32_t k : r->kept)
			EXPECT_TRUE(std::binary_search(left.begin(), left.end(), k)) << k;
		EXPECT_EQ(size_t(n), left.size() + r->deleted.size());
		for (uint32_t d : r->deleted)
			EXPECT_LT(d, n - keep + 1);
		// What is left is only what the kept chains need.
		for (uint32_t k : left) {
			bool needed = k >= n - keep + 1;
			for (uint32_t j = n - keep + 1; j <= n && !needed; j++) {
				auto c = s.load_chain(j);
				ASSERT_TRUE(c);
				for (const auto &l : *c)
					needed |= l.number == k;
			}
			EXPECT_TRUE(needed) << iter << ": " << k << " left but not needed";
		}
	}
}

// ---- amber compact (build/amber next to build/unit-tests) ----

TEST_F(ChainStore, CompactCommand)
{
	Store s(dir_);
	auto before6 = resolved_memory(s, 6);
	auto before5 = resolved_memory(s, 5);

	CliResult r = run_compact({"-D", dir_});
	ASSERT_EQ(0, r.status) << r.err;
	const uint64_t bytes6 = fs::file_size(dir_ + "/6/pages.img") + fs::file_size(dir_ + "/6/meta.img");
	EXPECT_EQ("compacted checkpoint 6: 10 pages, " + std::to_string(bytes6) +
			  " bytes (chain of 6 links)\n",
		  r.out);
	EXPECT_EQ("", r.err);
	EXPECT_TRUE(before6 == resolved_memory(s, 6));

	r = run_compact({"-D", dir_, "--checkpoint", "6"});
	ASSERT_EQ(0, r.status) << r.err;
	EXPECT_EQ("checkpoint 6 is already full: 10 pages, " + std::to_string(bytes6) + " bytes\n",
		  r.out);

	r = run_compact({"-D", dir_, "--keep", "2"});
	ASSERT_EQ(0, r.status) << r.err;
	const uint64_t bytes5 = fs::file_size(dir_ + "/5/pages.img") + fs::file_size(dir_ + "/5/meta.img");
	EXPECT_EQ("compacted checkpoint 5: 12 pages, " + std::to_string(bytes5) +
			  " bytes (chain of 5 links)\nkept checkpoints 5, 6, deleted 1, 2, 3, 4\n",
		  r.out);
	EXPECT_TRUE(before5 == resolved_memory(s, 5));
	EXPECT_TRUE(before6 == resolved_memory(s, 6));

	r = run_compact({"-D", dir_, "--keep", "2"});
	ASSERT_EQ(0, r.status) << r.err;
	EXPECT_EQ("kept checkpoints 5, 6, nothing to delete\n", r.out);

	r = run_compact({"-D", dir_, "--checkpoint", "9"});
	EXPECT_EQ(1, r.status);
	EXPECT_EQ("amber compact: checkpoint 9: " + dir_ + "/9: No such file or directory\n", r.err);

	r = run_compact({"-D", dir_, "--keep", "0"});
	EXPECT_EQ(1, r.status);
	EXPECT_EQ("", r.out);
}

