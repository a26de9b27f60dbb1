// SPDX-License-Identifier: GPL-2.0
// Tree checkpoints in a store: DIR/N/proc/PID chains (issue 5), their
// loading, damage, compaction, retention and the inspect / compact commands.
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

constexpr uint32_t kRoot = 100;

ProcInfo proc(uint32_t pid, uint32_t ppid, bool zombie = false)
{
	ProcInfo p;
	p.pid = pid;
	p.ppid = ppid;
	p.pgid = kRoot;
	p.sid = kRoot;
	p.zombie = zombie;
	p.nr_threads = zombie ? 0 : 1;
	return p;
}

Bytes encode_tree(const std::vector<ProcInfo> &tree)
{
	AttrWriter w;
	for (const ProcInfo &p : tree) {
		size_t t = w.begin_nest(AMBER_A_PROC);
		w.put_u32(AMBER_PROC_PID, p.pid);
		w.put_u32(AMBER_PROC_PPID, p.ppid);
		w.put_u32(AMBER_PROC_PGID, p.pgid);
		w.put_u32(AMBER_PROC_SID, p.sid);
		if (p.zombie) {
			w.put_flag(AMBER_PROC_ZOMBIE);
			w.put_u32(AMBER_PROC_EXIT_CODE, p.exit_code);
		}
		w.put_u32(AMBER_PROC_NR_THREADS, p.nr_threads);
		w.end_nest(t);
	}
	return w.take();
}

// The CORE attributes with the TASK nest's PID replaced by pid.
Bytes core_with_pid(ByteView core, uint32_t pid)
{
	AttrWriter w;
	auto top = parse_attrs(core);
	EXPECT_TRUE(top);
	for (const Attr &a : *top) {
		if (a.type != AMBER_A_TASK) {
			w.put_raw(a.raw);
			continue;
		}
		size_t t = w.begin_nest(AMBER_A_TASK);
		auto fields = parse_attrs(a.data);
		EXPECT_TRUE(fields);
		for (const Attr &f : *fields) {
			if (f.type == AMBER_TASK_PID)
				w.put_u32(AMBER_TASK_PID, pid);
			else
				w.put_raw(f.raw);
		}
		w.end_nest(t);
	}
	return w.take();
}

// Process pid's image in checkpoint n of a tree store (root kRoot): pages
// seeded by n and pid, INFO parent `parent`, the TREE section on the root.
void write_proc_link(const std::string &dir, uint32_t n, uint32_t pid, uint32_t parent,
		     const std::vector<RunSpec> &runs, const std::vector<ProcInfo> &tree)
{
	const std::string d = process_dir(dir + "/" + std::to_string(n), pid, kRoot);
	fs::create_directories(d);
	const uint64_t size = write_run_pages(d + "/" + kPagesFile, runs, n * 7 + pid);
	auto reply = parse_checkpoint_reply(make_reply());
	ASSERT_TRUE(reply) << reply.error().str();
	UniqueFd fd(open((d + "/" + kPagesFile).c_str(), O_RDONLY));
	uint32_t ps = 0;
	auto map = scan_pages(fd.get(), &ps);
	ASSERT_TRUE(map) << map.error().str();
	InfoSection info;
	info.number = n;
	info.parent = parent;
	info.time_ns = 1700000000ull * 1000000000ull + n;
	info.stopped_ns = 1000 + n;
	info.pages_bytes = size;
	info.tool_version = AMBER_VERSION_STRING;
	info.pid = pid;
	info.hostname = "unit";
	info.track_id = 5000 + pid;
	PageCounts pc = count_pages(*map);
	info.pages_nr = pc.data;
	info.parent_pages_nr = pc.parent;
	MetaSections m;
	m.info = encode_info(info);
	m.core = core_with_pid(reply->core, pid);
	m.vmas = reply->vmas;
	m.fds = reply->fds;
	m.pagemap = *map;
	if (pid == kRoot)
		m.tree = encode_tree(tree);
	spit(d + "/" + kMetaFile, build_meta(m));
}

// What restoring process pid of checkpoint n would put in memory.
std::map<uint64_t, Bytes> proc_memory(const Store &s, uint32_t n, uint32_t pid)
{
	std::map<uint64_t, Bytes> out;
	auto chain = s.load_chain(n, pid, kRoot);
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

// 1: root 100 and 200 full.  2: 100 and 200 incremental on 1, 300 new
// (full), 400 a zombie.  3: 100, 200 and 300 incremental on 2.
class TreeStore : public ::testing::Test {
protected:
	void SetUp() override
	{
		dir_ = tmp_.path() + "/store";
		const std::vector<ProcInfo> t1 = {proc(100, 1), proc(200, 100)};
		const std::vector<ProcInfo> t2 = {proc(100, 1), proc(200, 100), proc(300, 200),
						  proc(400, 100, true)};
		const std::vector<ProcInfo> t3 = {proc(100, 1), proc(200, 100), proc(300, 200)};
		for (uint32_t pid : {100u, 200u})
			write_proc_link(dir_, 1, pid, 0, {{pg(0), 6}, {pg(10), 2}}, t1);
		for (uint32_t pid : {100u, 200u})
			write_proc_link(dir_, 2, pid, 1, {{pg(0), 2, true}, {pg(2), 1}, {pg(3), 3, true},
							  {pg(10), 2, true}}, t2);
		write_proc_link(dir_, 2, 300, 0, {{pg(0), 4}}, t2);
		for (uint32_t pid : {100u, 200u})
			write_proc_link(dir_, 3, pid, 2, {{pg(0), 1}, {pg(1), 5, true},
							  {pg(10), 1, true}}, t3);
		write_proc_link(dir_, 3, 300, 2, {{pg(0), 2, true}, {pg(2), 1}, {pg(3), 1, true}}, t3);
		set_latest(dir_, 3);
		Store s(dir_);
		auto root = s.load_meta(3);
		ASSERT_TRUE(root) << root.error().str();
		has_tree_ = root->is_tree();
	}

	std::map<std::pair<uint32_t, uint32_t>, std::map<uint64_t, Bytes>> snapshot(const Store &s)
	{
		std::map<std::pair<uint32_t, uint32_t>, std::map<uint64_t, Bytes>> out;
		auto list = s.list();
		EXPECT_TRUE(list);
		for (uint32_t n : *list) {
			auto root = s.load_meta(n);
			EXPECT_TRUE(root) << root.error().str();
			if (!root)
				continue;
			for (uint32_t pid : image_pids(*root))
				out[{n, pid}] = proc_memory(s, n, pid);
		}
		return out;
	}

	TempDir tmp_;
	std::string dir_;
	bool has_tree_ = false;
};

} // namespace

TEST(TreeRetention, ImagePidsSkipZombiesAndKeepTreeOrder)
{
	Checkpoint c;
	c.info.pid = 100;
	EXPECT_EQ((std::vector<uint32_t>{100}), image_pids(c));
	c.tree = {proc(100, 1), proc(300, 100), proc(250, 300, true), proc(200, 100)};
	EXPECT_EQ((std::vector<uint32_t>{100, 300, 200}), image_pids(c));
	EXPECT_EQ("", process_prefix(100, 100));
	EXPECT_EQ("proc/300/", process_prefix(300, 100));
}

TEST(TreeRetention, NeededIsTheUnionOfEveryProcessChain)
{
	// Kept 5 and 6: the root chains to 3, a child to 4 only, one is new in 6.
	EXPECT_EQ((std::vector<uint32_t>{3, 4, 5, 6}),
		  needed_numbers({{3, 4, 5}, {4, 5}, {3, 4, 5, 6}, {5, 6}, {6}}));
	EXPECT_EQ((std::vector<uint32_t>{}), needed_numbers({}));
}

TEST(TreeRetention, LazyBasesAreTheOldestKeptLinkOfEachReachingChain)
{
	const std::vector<uint32_t> kept = {4, 5, 6};
	// Every chain inside kept: nothing to compact.
	EXPECT_TRUE(lazy_compact_bases({{4, 5, 6}, {5, 6}, {6}}, kept).empty());
	// The root reaches 2 (base 4), a child reaches 3 but started at 5 in
	// the kept ones, a new process does not reach anything.
	EXPECT_EQ((std::vector<uint32_t>{4, 5}),
		  lazy_compact_bases({{2, 3, 4, 5, 6}, {3, 5, 6}, {6}}, kept));
	// A chain with no kept link at all (a checkpoint of a kept one is
	// always kept, so only through damage) gives no base.
	EXPECT_TRUE(lazy_compact_bases({{1, 2}}, kept).empty());
}

TEST_F(TreeStore, ProcessChainsFollowEachProcess)
{
	ASSERT_TRUE(has_tree_) << "checkpoint 3 has no TREE section";
	Store s(dir_);
	auto c = s.process_chains(3);
	ASSERT_TRUE(c) << c.error().str();
	EXPECT_EQ((std::vector<std::vector<uint32_t>>{{1, 2, 3}, {1, 2, 3}, {2, 3}}), *c);
	auto one = s.chain_numbers(3, 300, kRoot);
	ASSERT_TRUE(one) << one.error().str();
	EXPECT_EQ((std::vector<uint32_t>{2, 3}), *one);
	EXPECT_TRUE(s.verify(3)) << s.verify(3).error().str();
	// 300's pages at 3: pages 0,1 and 3 from 2, page 2 from 3.
	auto mem = proc_memory(s, 3, 300);
	ASSERT_EQ(4u, mem.size());
	EXPECT_EQ(page_byte(pg(0), 2 * 7 + 300, 0), mem[pg(0)][0]);
	EXPECT_EQ(page_byte(pg(2), 3 * 7 + 300, 0), mem[pg(2)][0]);
}

TEST_F(TreeStore, DamageInAChildImageIsNamed)
{
	ASSERT_TRUE(has_tree_) << "checkpoint 3 has no TREE section";
	// Flip a byte of the data of 300's only run in checkpoint 2.
	const std::string p = dir_ + "/2/proc/300/pages.img";
	Bytes b = slurp(p);
	b[sizeof(amber_pages_hdr) + sizeof(amber_page_run) + 5] ^= 0xff;
	spit(p, b);
	Store s(dir_);
	auto v = s.verify(3);
	ASSERT_FALSE(v);
	EXPECT_EQ(0u, v.error().msg.find("checkpoint 2: proc/300/pages.img: run "))
		<< v.error().msg;
	// The root's chain alone is fine; 200's too.
	EXPECT_TRUE(s.load_chain(3));
	EXPECT_TRUE(s.load_chain(3, 200, kRoot));
	// A missing child image names the process.
	fs::remove_all(dir_ + "/2/proc/200");
	v = s.verify(3);
	ASSERT_FALSE(v);
	EXPECT_NE(std::string::npos, v.error().msg.find("checkpoint 2: "));
	EXPECT_NE(std::string::npos, v.error().msg.find("proc/200 (parent of checkpoint 3 for pid 200)"))
		<< v.error().msg;
}

TEST_F(TreeStore, CompactRewritesEveryProcessInOneSwap)
{
	ASSERT_TRUE(has_tree_) << "checkpoint 3 has no TREE section";
	Store s(dir_);
	auto before = snapshot(s);
	ASSERT_EQ(8u, before.size());	// 2 + 3 + 3 process images
	auto r = s.compact(3);
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_TRUE(r->compacted);
	EXPECT_EQ(3u, r->links);
	EXPECT_EQ(3u, r->processes);
	EXPECT_EQ(3u, r->compacted_processes);
	EXPECT_EQ(7u + 7u + 4u, r->pages);
	EXPECT_TRUE(before == snapshot(s));
	for (uint32_t pid : {100u, 200u, 300u}) {
		auto c = s.chain_numbers(3, pid, kRoot);
		ASSERT_TRUE(c) << c.error().str();
		EXPECT_EQ((std::vector<uint32_t>{3}), *c) << pid;
	}
	// The root keeps its TREE section.
	auto root = s.load_meta(3);
	ASSERT_TRUE(root);
	ASSERT_EQ(3u, root->tree.size());
	EXPECT_EQ(300u, root->tree[2].pid);
	EXPECT_EQ(200u, root->tree[2].ppid);
	// Nothing left behind.
	EXPECT_FALSE(fs::exists(dir_ + "/.tmp-3"));

	// Compacting 2: 300 is already full there and stays as it was.
	const Bytes p300 = slurp(dir_ + "/2/proc/300/pages.img");
	r = s.compact(2);
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_EQ(2u, r->compacted_processes);
	EXPECT_EQ(3u, r->processes);	// the zombie has no image
	EXPECT_TRUE(p300 == slurp(dir_ + "/2/proc/300/pages.img"));
	EXPECT_TRUE(before == snapshot(s));
	r = s.compact(2);
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_FALSE(r->compacted);
}

TEST_F(TreeStore, RetainKeepsWhatAnyProcessChainNeeds)
{
	ASSERT_TRUE(has_tree_) << "checkpoint 3 has no TREE section";
	Store s(dir_);
	auto before = snapshot(s);
	// Lazy: short chains stay, so 1 stays for 100's and 200's chains.
	{
		auto p = s.begin();
		ASSERT_TRUE(p);
		auto r = s.retain(2, *p, RetainPolicy{16, 100.0});
		ASSERT_TRUE(r) << r.error().str();
		EXPECT_TRUE(r->compacted.empty());
		EXPECT_TRUE(r->deleted.empty());
	}
	// Eager: 2 is compacted (all three of its processes), 1 goes.
	auto r = s.retain(2);
	ASSERT_TRUE(r) << r.error().str();
	ASSERT_EQ(1u, r->compacted.size());
	EXPECT_EQ(2u, r->compacted[0].number);
	EXPECT_EQ(2u, r->compacted[0].compacted_processes);
	EXPECT_EQ((std::vector<uint32_t>{1}), r->deleted);
	for (uint32_t n : {2u, 3u}) {
		auto root = s.load_meta(n);
		ASSERT_TRUE(root);
		for (uint32_t pid : image_pids(*root))
			EXPECT_TRUE(before.at(std::make_pair(n, pid)) == proc_memory(s, n, pid)) << n << " " << pid;
	}
	EXPECT_TRUE(s.verify(3));
}

TEST_F(TreeStore, LazyRetainCompactsWhenAChildChainIsTooLong)
{
	ASSERT_TRUE(has_tree_) << "checkpoint 3 has no TREE section";
	Store s(dir_);
	auto before = snapshot(s);
	auto p = s.begin();
	ASSERT_TRUE(p);
	// Chains of 3 links are longer than 2: the oldest kept link (2) of
	// each reaching chain is compacted; 300's chain did not reach 1.
	auto r = s.retain(2, *p, RetainPolicy{2, 100.0});
	ASSERT_TRUE(r) << r.error().str();
	ASSERT_EQ(1u, r->compacted.size());
	EXPECT_EQ(2u, r->compacted[0].number);
	EXPECT_EQ((std::vector<uint32_t>{1}), r->deleted);
	EXPECT_TRUE(before.at(std::make_pair(3, 300)) == proc_memory(s, 3, 300));
	EXPECT_TRUE(before.at(std::make_pair(3, 200)) == proc_memory(s, 3, 200));
}

TEST_F(TreeStore, InspectAndCompactCommands)
{
	CliResult r = run_amber("inspect", {"-D", dir_});
	ASSERT_EQ(0, r.status) << r.err << r.out;
	EXPECT_NE(std::string::npos, r.out.find("tree: 3 processes (0 zombies), 3 threads\n"))
		<< r.out;
	EXPECT_NE(std::string::npos, r.out.find("     300      200      100      100       1  live"))
		<< r.out;
	EXPECT_NE(std::string::npos, r.out.find("  2 <- 3\n")) << r.out;
	EXPECT_NE(std::string::npos, r.out.find("(3 process images, chains of up to 3 checkpoints)"))
		<< r.out;

	r = run_amber("inspect", {"-D", dir_, "--checkpoint", "2"});
	ASSERT_EQ(0, r.status) << r.err << r.out;
	EXPECT_NE(std::string::npos, r.out.find("tree: 4 processes (1 zombie), 3 threads")) << r.out;
	EXPECT_NE(std::string::npos, r.out.find("zombie 0")) << r.out;

	r = run_compact({"-D", dir_});
	ASSERT_EQ(0, r.status) << r.err;
	EXPECT_EQ(0u, r.out.find("compacted checkpoint 3: 18 pages, ")) << r.out;
	EXPECT_NE(std::string::npos, r.out.find(" bytes (chain of 3 links; 3 processes, 3 rewritten)\n"))
		<< r.out;

	// Damage in a child's image of a parent: the store table and the
	// details name the process image.
	const std::string p = dir_ + "/2/proc/200/pages.img";
	Bytes b = slurp(p);
	b[sizeof(amber_pages_hdr) + 2 * sizeof(amber_page_run) + 3] ^= 0x55;
	spit(p, b);
	r = run_amber("inspect", {"-D", dir_});
	EXPECT_EQ(1, r.status) << r.out;
	EXPECT_NE(std::string::npos, r.out.find("checkpoint 2: proc/200/pages.img: run ")) << r.out;
	r = run_amber("inspect", {"-D", dir_, "--checkpoint", "2"});
	EXPECT_EQ(1, r.status) << r.out;
	EXPECT_NE(std::string::npos, r.err.find("checkpoint 2: proc/200/pages.img: run ")) << r.err;
}
