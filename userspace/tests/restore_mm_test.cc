// SPDX-License-Identifier: GPL-2.0
// Units of restore/mm.cc: /proc/PID/maps, the move of the vDSO, and the
// private memory a tree's stubs prefill (planned, then filled by the stub
// in a forked child on the host).
#include <gtest/gtest.h>

#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/amber.h>
#include <xxhash.h>

#include "common/names.h"
#include "fixtures.h"
#include "restore/core.h"
#include "restore/stub.h"

using namespace amber;
using amber::testing::make_vma;


namespace {

std::vector<MapEntry> sample_maps()
{
	return *parse_maps("555555554000-555555556000 r--p 00000000 08:01 123 /usr/bin/amber\n"
			   "7ffff7fc1000-7ffff7fc5000 r--p 00000000 00:00 0                  [vvar]\n"
			   "7ffff7fc5000-7ffff7fc7000 r-xp 00000000 00:00 0                  [vdso]\n"
			   "7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                  [stack]\n");
}

} // namespace

TEST(RestoreMaps, ParsesRangesAndNames)
{
	auto maps = parse_maps("00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/my prog\n"
			       "7f00-8f00 rw-p 00000000 00:00 0 \n"
			       "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]\n");
	ASSERT_TRUE(maps) << maps.error().str();
	ASSERT_EQ(3u, maps->size());
	EXPECT_EQ(0x400000u, (*maps)[0].range.start);
	EXPECT_EQ(0x452000u, (*maps)[0].range.end);
	EXPECT_EQ("/usr/bin/my prog", (*maps)[0].name);
	EXPECT_EQ("", (*maps)[1].name);
	EXPECT_EQ("[vsyscall]", (*maps)[2].name);
}

TEST(RestoreMaps, RejectsGarbage)
{
	EXPECT_FALSE(parse_maps("zzzz-1000 r--p 0 0:0 0\n"));
	EXPECT_FALSE(parse_maps("2000-1000 r--p 0 0:0 0\n"));
	EXPECT_FALSE(parse_maps("1000-2000 r--p\n"));
}

TEST(RestoreMaps, ReadsOwnVdso)
{
	auto maps = read_own_maps();
	ASSERT_TRUE(maps) << maps.error().str();
	bool vdso = false;
	for (const MapEntry &m : *maps)
		vdso |= m.name == "[vdso]";
	EXPECT_TRUE(vdso);
}

TEST(RestoreVdso, PlansMove)
{
	std::vector<Vma> img = {make_vma(0x7f0000000000, 0x7f0000004000, AMBER_VMA_F_VVAR),
				make_vma(0x7f0000004000, 0x7f0000006000, AMBER_VMA_F_VDSO)};
	auto p = plan_vdso(sample_maps(), img);
	ASSERT_TRUE(p) << p.error().str();
	EXPECT_EQ(VdsoPlan::Action::Move, p->action);
	EXPECT_EQ(0x7ffff7fc1000u, p->cur_vvar.start);
	EXPECT_EQ(0x7ffff7fc5000u, p->cur_vdso.start);
	EXPECT_EQ(0x7f0000000000u, p->img_vvar.start);
	EXPECT_EQ(0x7f0000004000u, p->img_vdso.start);
}

TEST(RestoreVdso, OverlapWithOwnVdsoIsFine)
{
	// The image's vDSO sits where our vvar is: the scratch area handles it.
	std::vector<Vma> img = {make_vma(0x7ffff7fbd000, 0x7ffff7fc1000, AMBER_VMA_F_VVAR),
				make_vma(0x7ffff7fc1000, 0x7ffff7fc3000, AMBER_VMA_F_VDSO)};
	auto p = plan_vdso(sample_maps(), img);
	ASSERT_TRUE(p) << p.error().str();
	EXPECT_EQ(VdsoPlan::Action::Move, p->action);
}

TEST(RestoreVdso, SizeMismatchFails)
{
	std::vector<Vma> img = {make_vma(0x7f0000000000, 0x7f0000003000, AMBER_VMA_F_VVAR),
				make_vma(0x7f0000003000, 0x7f0000005000, AMBER_VMA_F_VDSO)};
	auto p = plan_vdso(sample_maps(), img);
	ASSERT_FALSE(p);
	EXPECT_NE(std::string::npos, p.error().msg.find("vdso size differs"));
}

TEST(RestoreVdso, OverlapWithOtherMappingFails)
{
	std::vector<Vma> img = {make_vma(0x7ffffffdc000, 0x7ffffffe0000, AMBER_VMA_F_VVAR),
				make_vma(0x7ffffffe0000, 0x7ffffffe2000, AMBER_VMA_F_VDSO)};
	auto p = plan_vdso(sample_maps(), img);
	ASSERT_FALSE(p);
	EXPECT_NE(std::string::npos, p.error().msg.find("[stack]")) << p.error().msg;
}

TEST(RestoreVdso, NoVdsoInImageUnmaps)
{
	auto p = plan_vdso(sample_maps(), {make_vma(0x1000, 0x2000, AMBER_VMA_F_ANON)});
	ASSERT_TRUE(p);
	EXPECT_EQ(VdsoPlan::Action::Unmap, p->action);
}

TEST(RestoreVdso, ScratchChunkAvoidsTargets)
{
	const uint64_t base = 0x10000, span = 0x6000;
	Range a{base + 0x1000, base + 0x5000}, b{base + 0x5000, base + 0x7000};
	int c = pick_scratch_chunk(base, span, a, b);
	ASSERT_GE(c, 0);
	Range chunk{base + c * span, base + (c + 1) * span};
	EXPECT_FALSE(chunk.overlaps(a));
	EXPECT_FALSE(chunk.overlaps(b));

	// Worst case: each target straddles two chunks.
	a = {base + span - 0x1000, base + span + 0x3000};
	b = {base + 3 * span - 0x1000, base + 3 * span + 0x1000};
	EXPECT_EQ(4, pick_scratch_chunk(base, span, a, b));
	EXPECT_EQ(0, pick_scratch_chunk(base, span, {1, 2}, {3, 4}));
}


// ---- Prefilled private memory of tree restores ----

namespace {

Vma anon_vma(uint64_t start, uint64_t end, uint32_t extra = 0, uint32_t prot = PROT_READ | PROT_WRITE)
{
	Vma v = make_vma(start, end, AMBER_VMA_F_ANON | AMBER_VMA_F_MAYWRITE | AMBER_VMA_F_ACCOUNT | extra);
	v.prot = prot;
	return v;
}

std::vector<std::pair<size_t, bool>> picks_of(const std::vector<PrefillPick> &p)
{
	std::vector<std::pair<size_t, bool>> out;
	for (const PrefillPick &k : p)
		out.emplace_back(k.vma, k.inherited);
	return out;
}

} // namespace

TEST(RestorePrefill, PicksRangesSharedAlongTheTree)
{
	// 0 -> 1 -> 2, 0 -> 3 (a zombie)
	std::vector<Vma> root = {anon_vma(0x10000, 0x20000), anon_vma(0x30000, 0x40000),
				 anon_vma(0x50000, 0x60000, AMBER_VMA_F_HEAP)};
	std::vector<Vma> child = {anon_vma(0x10000, 0x20000),
				  anon_vma(0x50000, 0x60000, AMBER_VMA_F_HEAP),
				  anon_vma(0x70000, 0x80000)};
	std::vector<Vma> grand = {anon_vma(0x10000, 0x20000), anon_vma(0x70000, 0x80000),
				  anon_vma(0x90000, 0xa0000)};
	auto p = plan_prefill({&root, &child, &grand, nullptr}, {-1, 0, 1, 0}, {});
	ASSERT_EQ(4u, p.size());
	using V = std::vector<std::pair<size_t, bool>>;
	EXPECT_EQ((V{{0, false}, {2, false}}), picks_of(p[0]));	// not 0x30000: no child has it
	EXPECT_EQ((V{{0, true}, {1, true}, {2, false}}), picks_of(p[1]));
	EXPECT_EQ((V{{0, true}, {1, true}}), picks_of(p[2]));		// not 0x90000
	EXPECT_TRUE(p[3].empty());
}

TEST(RestorePrefill, OnlyPlainPrivateAnonymousMemoryClearOfBusy)
{
	std::vector<Vma> root = {
		anon_vma(0x10000, 0x20000, AMBER_VMA_F_GROWSDOWN),
		anon_vma(0x20000, 0x30000, AMBER_VMA_F_SHARED | AMBER_VMA_F_SHMEM),
		anon_vma(0x30000, 0x40000, 0, PROT_NONE),
		anon_vma(0x40000, 0x50000, AMBER_VMA_F_DONTFORK),
		anon_vma(0x50000, 0x60000),	// overlaps busy
		anon_vma(0x60000, 0x70000),
	};
	Vma file = make_vma(0x70000, 0x80000, 0);
	file.prot = PROT_READ | PROT_WRITE;
	file.path = "/tmp/x";
	root.push_back(file);
	// Never charged (read-only from the start): the stub's writable
	// mapping would charge it, and "ac" would appear in its VmFlags.
	Vma uncharged = anon_vma(0x90000, 0xa0000, 0, PROT_READ);
	uncharged.flags &= ~AMBER_VMA_F_ACCOUNT;
	root.push_back(uncharged);
	std::vector<Vma> child = root;
	child.push_back(anon_vma(0x80000, 0x90000));	// partial overlap with nothing: the root lacks it
	auto p = plan_prefill({&root, &child}, {-1, 0}, {{0x5f000, 0x60000}});
	using V = std::vector<std::pair<size_t, bool>>;
	EXPECT_EQ((V{{5, false}}), picks_of(p[0]));
	EXPECT_EQ((V{{5, true}}), picks_of(p[1]));
}

TEST(RestorePrefill, NothingNextToAVmaFlaggedAfterMmap)
{
	// A glibc thread stack on Linux 6.12: guard page and stack carry
	// MAP_STACK's VM_NOHUGEPAGE, the TLS block above the stack does not. The
	// kernel maps the stack and then checks it did not merge: a prefilled
	// TLS block next to it would have.
	std::vector<Vma> root = {
		anon_vma(0x10000, 0x11000, AMBER_VMA_F_NOHUGEPAGE, PROT_NONE),
		anon_vma(0x11000, 0x20000, AMBER_VMA_F_NOHUGEPAGE),
		anon_vma(0x20000, 0x23000),	// touches the stack: not prefilled
		anon_vma(0x30000, 0x3f000),
		anon_vma(0x40000, 0x50000, AMBER_VMA_F_DONTDUMP),
		anon_vma(0x50000, 0x60000),	// touches it: not prefilled
		anon_vma(0x61000, 0x70000),	// a gap away: prefilled
	};
	std::vector<Vma> child = root;
	auto p = plan_prefill({&root, &child}, {-1, 0}, {});
	using V = std::vector<std::pair<size_t, bool>>;
	EXPECT_EQ((V{{3, false}, {6, false}}), picks_of(p[0]));
	EXPECT_EQ((V{{3, true}, {6, true}}), picks_of(p[1]));
}

// A single process's restore prefills every eligible VMA, not only those
// shared along a tree.
TEST(RestorePrefill, AllPicksEveryEligibleVma)
{
	std::vector<Vma> root = {anon_vma(0x10000, 0x20000), anon_vma(0x30000, 0x40000),
				 anon_vma(0x50000, 0x60000, AMBER_VMA_F_GROWSDOWN),
				 anon_vma(0x70000, 0x80000, AMBER_VMA_F_HEAP)};
	auto p = plan_prefill({&root}, {-1}, {{0x38000, 0x39000}}, true);
	using V = std::vector<std::pair<size_t, bool>>;
	ASSERT_EQ(1u, p.size());
	EXPECT_EQ((V{{0, false}, {3, false}}), picks_of(p[0]));	// not busy, not the stack
	EXPECT_TRUE(plan_prefill({&root}, {-1}, {}, false)[0].empty());
}

// The stub checks the XXH64 of the runs it filled on the memory itself: a
// run whose data differs from its checksum fails the fill with EBADMSG,
// naming the check.
TEST(RestorePrefill, ChecksTheRunsItFilled)
{
	const size_t ps = size_t(sysconf(_SC_PAGESIZE));
	const size_t pages = 4;
	FILE *img = tmpfile();
	ASSERT_NE(nullptr, img);
	std::string data(32, 'h');	// a header, then pages 0-2 of the range
	for (char c : {'a', 'b', 'c'})
		data += std::string(ps, c);
	ASSERT_EQ(data.size(), fwrite(data.data(), 1, data.size(), img));
	fflush(img);
	auto *mem = static_cast<uint8_t *>(mmap(nullptr, pages * ps, PROT_NONE,
						 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
	ASSERT_NE(MAP_FAILED, mem);
	const uint64_t base = uint64_t(mem);

	StubPlan plan;
	StubPrefill f;
	f.range = {base, base + pages * ps};
	f.prot = PROT_READ | PROT_WRITE;
	f.segs = {{base, 3 * ps, fileno(img), 32}};
	// Two runs: page 0, pages 1-2.
	f.checks = {{base, ps, XXH64(data.data() + 32, ps, 0), 1, 0},
		    {base + ps, 2 * ps, XXH64(data.data() + 32 + ps, 2 * ps, 0), 1, 1}};
	plan.prefill.push_back(f);
	int bad = 7;
	ASSERT_TRUE(prefill_one(plan, 0, &bad)) << strerror(errno);
	EXPECT_EQ(-1, bad);
	EXPECT_EQ('a', mem[0]);
	EXPECT_EQ('c', mem[2 * ps + 1]);
	EXPECT_EQ(0, mem[3 * ps]);

	plan.prefill[0].checks[1].xxh64 ^= 1;
	errno = 0;
	EXPECT_FALSE(prefill_one(plan, 0, &bad));
	EXPECT_EQ(EBADMSG, errno);
	EXPECT_EQ(1, bad);
	StubReport rep{uint32_t(StubStep::PagesChecksum), 1, EBADMSG, 0};
	EXPECT_EQ("checkpoint 1: pages.img: run 1 at " + hex(base + ps) + ": checksum mismatch",
		  describe_step(plan, rep));
	munmap(mem, pages * ps);
	fclose(img);
}

// The runs the stub checks: those of the restored link wholly inside a
// picked VMA, by pick; runs of older links and runs crossing a VMA's end are
// left to the tool (not marked unhashed). Computed once, before the fds exist.
TEST(RestorePrefill, PageChecksAreTheRunsInsideThePicks)
{
	Checkpoint c;
	c.number = 5;
	c.page_size = 0x1000;
	c.vmas = {anon_vma(0x10000, 0x20000), anon_vma(0x20000, 0x30000), anon_vma(0x40000, 0x50000),
		  anon_vma(0x60000, 0x70000)};
	c.pagemap = {
		{0x8000, 2, 0, 0, 1},				// before every VMA
		{0x10000, 2, 0, 0, 2},				// in VMA 0
		{0x1e000, 4, 0, 0, 3},				// crosses into VMA 1
		{0x24000, 1, AMBER_RUN_F_PARENT, 0, 0},		// an older link's
		{0x25000, 3, 0, 0, 4},				// in VMA 1
		{0x40000, 16, 0, 0, 5},				// all of VMA 2 (not picked)
		{0x6f000, 1, 0, 0, 6},				// VMA 3's last page
	};
	std::vector<PrefillPick> picks = {{0, false}, {1, true}, {3, false}};
	std::vector<bool> unhashed;
	auto checks = plan_page_checks(c, picks, &unhashed);
	ASSERT_EQ(3u, checks.size());
	ASSERT_EQ(1u, checks[0].size());
	EXPECT_EQ(0x10000u, checks[0][0].addr);
	EXPECT_EQ(0x2000u, checks[0][0].len);
	EXPECT_EQ(2u, checks[0][0].xxh64);
	EXPECT_EQ(5u, checks[0][0].number);
	EXPECT_EQ(1u, checks[0][0].run);
	ASSERT_EQ(1u, checks[1].size());	// inherited ranges are checked too
	EXPECT_EQ(4u, checks[1][0].run);
	EXPECT_EQ(0x3000u, checks[1][0].len);
	ASSERT_EQ(1u, checks[2].size());
	EXPECT_EQ(6u, checks[2][0].run);
	EXPECT_EQ((std::vector<bool>{false, true, false, false, true, false, true}), unhashed);

	// The plan carries them with the segments.
	std::vector<PageSource> src = {{0x10000, 2, 0, 100}, {0x25000, 3, 1, 200}};
	auto f = plan_stub_prefill(c, src, picks, {7, 9}, checks);
	ASSERT_EQ(3u, f.size());
	EXPECT_EQ(0x20000u, f[1].range.start);
	EXPECT_TRUE(f[1].inherited);
	ASSERT_EQ(1u, f[1].segs.size());
	EXPECT_EQ(9, f[1].segs[0].fd);
	EXPECT_EQ(4u, f[1].checks[0].run);
	EXPECT_FALSE(f[0].before_fork);
	EXPECT_TRUE(f[2].segs.empty());
}

// An inherited range is checked too, on the memory once fixed up: damage in
// the child's own pages fails it, the same pages undamaged pass.
TEST(RestorePrefill, ChecksInheritedMemoryOnceFixed)
{
	const size_t ps = size_t(sysconf(_SC_PAGESIZE));
	const size_t pages = 2;
	FILE *img = tmpfile();
	ASSERT_NE(nullptr, img);
	std::string data = std::string(ps, 'a') + std::string(ps, 'b');
	ASSERT_EQ(data.size(), fwrite(data.data(), 1, data.size(), img));
	fflush(img);
	void *scratch = mmap(nullptr, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, scratch);
	auto *mem = static_cast<uint8_t *>(mmap(nullptr, pages * ps, PROT_READ | PROT_WRITE,
						 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	ASSERT_NE(MAP_FAILED, mem);
	memset(mem, 'p', pages * ps);	// the parent's view
	const uint64_t base = uint64_t(mem);

	StubPlan plan;
	plan.scratch = uint64_t(scratch);
	plan.scratch_size = 4 * ps;
	StubPrefill f;
	f.range = {base, base + pages * ps};
	f.prot = PROT_READ;
	f.inherited = true;
	f.segs = {{base, pages * ps, fileno(img), 0}};
	f.checks = {{base, pages * ps, XXH64(data.data(), data.size(), 0), 2, 7}};
	plan.prefill.push_back(f);
	int bad = 5;
	ASSERT_TRUE(prefill_one(plan, 0, &bad)) << strerror(errno);
	EXPECT_EQ(-1, bad);
	EXPECT_EQ('b', mem[ps]);

	ASSERT_EQ(0, mprotect(mem, pages * ps, PROT_READ | PROT_WRITE));
	memset(mem, 'p', pages * ps);
	plan.prefill[0].checks[0].xxh64 ^= 1;
	errno = 0;
	EXPECT_FALSE(prefill_one(plan, 0, &bad));
	EXPECT_EQ(EBADMSG, errno);
	EXPECT_EQ(0, bad);
	munmap(mem, pages * ps);
	munmap(scratch, 4 * ps);
	fclose(img);
}

// A child's range is inherited only when most of its pages are its
// parent's too (a sample read from both images); memory the child filled on
// its own at the same address is filled afresh.
TEST(RestorePrefill, InheritsOnlyMostlySharedRanges)
{
	const uint64_t ps = 0x1000, pages = 64;
	auto write_img = [&](const std::string &path, uint64_t differ_from, uint64_t skip) {
		std::string data;
		for (uint64_t k = 0; k < pages; k++)
			data += std::string(ps, char(k >= differ_from ? 'x' + (k & 1) : 'a' + k % 20));
		data = std::string(skip, 'h') + data;
		FILE *f = fopen(path.c_str(), "w");
		ASSERT_NE(nullptr, f);
		ASSERT_EQ(data.size(), fwrite(data.data(), 1, data.size(), f));
		fclose(f);
	};
	char dir[] = "/tmp/amber-shared-XXXXXX";
	ASSERT_NE(nullptr, mkdtemp(dir));
	const std::string pa = std::string(dir) + "/parent", pb = std::string(dir) + "/same",
			  pc = std::string(dir) + "/other";
	write_img(pa, pages, 16);
	write_img(pb, pages - 4, 32);	// 4 of 64 pages its own
	write_img(pc, 0, 32);			// every page its own

	const uint64_t base = 0x7f0000000000;
	auto make = [&](const std::string &path, uint64_t off) {
		Checkpoint c;
		c.page_size = ps;
		c.pages_path = path;
		return std::make_pair(std::vector<Checkpoint>{c},
				      std::vector<PageSource>{{base, pages, 0, off}});
	};
	auto [ca, sa] = make(pa, 16);
	auto [cb, sb] = make(pb, 32);
	auto [cc, sc] = make(pc, 32);
	PageInput parent{"pid 1", &ca[0], &ca, &sa}, same{"pid 2", &cb[0], &cb, &sb},
		other{"pid 3", &cc[0], &cc, &sc};
	Range r{base, base + pages * ps};
	EXPECT_TRUE(mostly_shared(parent, parent, r));
	EXPECT_TRUE(mostly_shared(parent, same, r));
	EXPECT_FALSE(mostly_shared(parent, other, r));
	// Pages without data in both images are equal (zero); in one only, not.
	std::vector<PageSource> none;
	PageInput empty{"pid 4", &cc[0], &cc, &none};
	EXPECT_TRUE(mostly_shared(empty, empty, r));
	EXPECT_FALSE(mostly_shared(parent, empty, r));
	for (const std::string &p : {pa, pb, pc})
		unlink(p.c_str());
	rmdir(dir);
}

TEST(RestorePrefill, SegmentsClipToTheRange)
{
	std::vector<PageSource> src = {{0x1000, 4, 0, 100}, {0x6000, 2, 1, 8192}, {0x9000, 1, 0, 0}};
	auto s = prefill_segs(src, {0x2000, 0x7000}, 0x1000, {7, 9});
	ASSERT_EQ(2u, s.size());
	EXPECT_EQ(0x2000u, s[0].addr);
	EXPECT_EQ(0x3000u, s[0].len);
	EXPECT_EQ(7, s[0].fd);
	EXPECT_EQ(100u + 0x1000, s[0].off);
	EXPECT_EQ(0x6000u, s[1].addr);
	EXPECT_EQ(0x1000u, s[1].len);
	EXPECT_EQ(9, s[1].fd);
	EXPECT_EQ(8192u, s[1].off);
}

// The stub's own step, run here: fresh memory filled from the file, and
// inherited memory fixed up where it differs (data pages rewritten, pages
// that must be zero dropped) and left alone where it is equal.
TEST(RestorePrefill, FillsFreshAndFixesInheritedMemory)
{
	const size_t ps = size_t(sysconf(_SC_PAGESIZE));
	const size_t pages = 8;
	char path[] = "/tmp/amber-prefill-XXXXXX";
	int fd = mkstemp(path);
	ASSERT_LE(0, fd);
	unlink(path);
	// The file: 16 bytes of junk, then pages 1-3 of the image ('a', 'b', 'c').
	std::string data(16, 'j');
	for (char c : {'a', 'b', 'c'})
		data += std::string(ps, c);
	ASSERT_EQ(ssize_t(data.size()), pwrite(fd, data.data(), data.size(), 0));

	void *scratch = mmap(nullptr, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, scratch);
	auto *mem = static_cast<uint8_t *>(mmap(nullptr, pages * ps, PROT_READ | PROT_WRITE,
						 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	ASSERT_NE(MAP_FAILED, mem);
	uint64_t base = uint64_t(mem);

	StubPlan plan;
	plan.scratch = uint64_t(scratch);
	plan.scratch_size = 2 * ps;	// smaller than a segment: chunks
	StubPrefill f;
	f.range = {base, base + pages * ps};
	f.prot = PROT_READ;
	f.segs = {{base + ps, 3 * ps, fd, 16}};
	plan.prefill.push_back(f);

	// Fresh: the range is replaced (what was there is gone).
	memset(mem, 'x', pages * ps);
	ASSERT_TRUE(prefill_one(plan, 0)) << strerror(errno);
	auto expect_image = [&] {
		for (size_t i = 0; i < pages; i++) {
			char want = i >= 1 && i <= 3 ? char('a' + i - 1) : 0;
			for (size_t k = 0; k < ps; k += 512)
				if (mem[i * ps + k] != uint8_t(want))
					return ::testing::AssertionFailure()
					       << "page " << i << " byte " << k << " is " << int(mem[i * ps + k]);
		}
		return ::testing::AssertionSuccess();
	};
	EXPECT_TRUE(expect_image());

	// Inherited: a parent's different view of the same range.
	ASSERT_EQ(0, mprotect(mem, pages * ps, PROT_READ | PROT_WRITE));
	memset(mem, 'p', 2 * ps);		// page 0 (must be zero), page 1 (must be 'a')
	mem[6 * ps + 5] = 1;			// page 6: must be zero
	plan.prefill[0].inherited = true;
	ASSERT_TRUE(prefill_one(plan, 0)) << strerror(errno);
	EXPECT_TRUE(expect_image());
	// Its protection is the image's.
	pid_t pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		mem[2 * ps] = 1;
		_exit(0);
	}
	int status;
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);

	munmap(mem, pages * ps);
	munmap(scratch, 4 * ps);
	close(fd);
}

namespace {

// Shared_Dirty and Private_Dirty (kB) of our VMA starting at start.
// /proc/self/pagemap entries of @n pages from @start (0 or -1).
constexpr uint64_t kPmPresent = 1ull << 63;
constexpr uint64_t kPmExclusive = 1ull << 56;	// mapped by this process only

int page_flags(uint64_t start, size_t n, uint64_t *out)
{
	const size_t ps = size_t(sysconf(_SC_PAGESIZE));
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t r = pread(fd, out, n * 8, off_t(start / ps * 8));
	close(fd);
	return r == ssize_t(n * 8) ? 0 : -1;
}

} // namespace

// A child's stub keeps the pages equal to its parent's shared and copies
// only those that differ.
TEST(RestorePrefill, KeepsEqualPagesShared)
{
	const size_t ps = size_t(sysconf(_SC_PAGESIZE));
	const size_t pages = 4;
	FILE *parent_img = tmpfile(), *child_img = tmpfile();
	ASSERT_NE(nullptr, parent_img);
	ASSERT_NE(nullptr, child_img);
	for (char c : {'a', 'b', 'c'})
		ASSERT_EQ(ps, fwrite(std::string(ps, c).data(), 1, ps, parent_img));
	for (char c : {'a', 'z', 'c'})
		ASSERT_EQ(ps, fwrite(std::string(ps, c).data(), 1, ps, child_img));
	fflush(parent_img);
	fflush(child_img);

	void *scratch = mmap(nullptr, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, scratch);
	// Between two PROT_NONE guard pages: no neighbour merges with it.
	auto *guarded = static_cast<uint8_t *>(mmap(nullptr, (pages + 2) * ps, PROT_NONE,
						     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
	ASSERT_NE(MAP_FAILED, guarded);
	uint8_t *mem = guarded + ps;
	uint64_t base = uint64_t(mem);
	StubPlan plan;
	plan.scratch = uint64_t(scratch);
	plan.scratch_size = 4 * ps;
	StubPrefill f;
	f.range = {base, base + pages * ps};
	f.prot = PROT_READ | PROT_WRITE;
	f.segs = {{base, 3 * ps, fileno(parent_img), 0}};
	plan.prefill.push_back(f);
	ASSERT_TRUE(prefill_one(plan, 0)) << strerror(errno);
	ASSERT_EQ('b', mem[ps]);

	pid_t pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		plan.prefill[0].inherited = true;
		plan.prefill[0].segs[0].fd = fileno(child_img);
		if (!prefill_one(plan, 0))
			_exit(10);
		if (mem[0] != 'a' || mem[ps] != 'z' || mem[2 * ps] != 'c' || mem[3 * ps])
			_exit(11);
		// pages 0 and 2 still the parent's, page 1 our own copy
		uint64_t pm[pages];
		if (page_flags(base, pages, pm))
			_exit(13);
		for (size_t k = 0; k < 3; k++)
			fprintf(stderr, "page %zu: %s\n", k,
				!(pm[k] & kPmPresent) ? "absent" :
				(pm[k] & kPmExclusive) ? "exclusive" : "shared");
		_exit((pm[0] & kPmPresent) && !(pm[0] & kPmExclusive) &&
		      (pm[1] & kPmPresent) && (pm[1] & kPmExclusive) &&
		      (pm[2] & kPmPresent) && !(pm[2] & kPmExclusive) ? 0 : 12);
	}
	int status;
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) << "10: prefill failed, 11: wrong content, 12: pages not shared as expected, 13: pagemap unreadable";
	EXPECT_EQ('b', mem[ps]);	// ours unchanged
	munmap(guarded, (pages + 2) * ps);
	munmap(scratch, 4 * ps);
	fclose(parent_img);
	fclose(child_img);
}
