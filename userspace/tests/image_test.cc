// SPDX-License-Identifier: GPL-2.0
#include <gtest/gtest.h>
#include <linux/amber.h>
#include <fcntl.h>
#include <sys/mman.h>

#include <cstring>

#include <xxhash.h>

#include "fixtures.h"
#include "image/image.h"

using namespace amber;
using namespace amber::testing;

namespace {

const std::vector<std::pair<uint64_t, uint64_t>> kRuns = {{0x600000, 2}, {0x7fffffffe000, 1}};

class ImageTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		dir_ = tmp_.path() + "/1";
		write_checkpoint(dir_, 1, kRuns);
	}
	std::string meta() const { return dir_ + "/meta.img"; }
	std::string pages() const { return dir_ + "/pages.img"; }
	std::string load_error()
	{
		auto c = load_checkpoint_dir(dir_, 1);
		return c ? "" : c.error().msg;
	}

	TempDir tmp_;
	std::string dir_;
};

// Offset and size of a section in meta.img.
amber_section find_section(const Bytes &meta, uint32_t type)
{
	amber_image_hdr h;
	memcpy(&h, meta.data(), sizeof(h));
	for (uint32_t i = 0; i < h.nr_sections; i++) {
		amber_section s;
		memcpy(&s, meta.data() + sizeof(h) + i * sizeof(s), sizeof(s));
		if (s.type == type)
			return s;
	}
	return {};
}

} // namespace

TEST_F(ImageTest, RoundTrip)
{
	auto c = load_checkpoint_dir(dir_, 1);
	ASSERT_TRUE(c) << c.error().str();
	EXPECT_EQ(1u, c->info.number);
	EXPECT_EQ(4242u, c->info.pid);
	EXPECT_EQ("unit", c->info.hostname);
	EXPECT_EQ(1234567u, c->info.stopped_ns);
	EXPECT_EQ("sleeper", c->task.comm);
	EXPECT_EQ(1000u, c->task.uid);
	EXPECT_EQ((std::vector<uint32_t>{24, 27}), c->task.groups);
	EXPECT_EQ("/work/main", c->task.cwd);
	ASSERT_EQ(1u, c->task.rlimits.size());
	EXPECT_EQ(7u, c->task.rlimits[0].resource);
	EXPECT_EQ(4096u, c->task.rlimits[0].max);
	EXPECT_EQ(0x7f0000001000u, c->task.rseq);
	EXPECT_EQ(0x601000u, c->mm.brk);
	EXPECT_EQ(0x7fff00002000u, c->mm.vdso);
	EXPECT_EQ((std::vector<uint64_t>{6, 4096, 0, 0}), c->mm.auxv);
	for (int i = 1; i <= AMBER_REG_MAX; i++)
		EXPECT_EQ(uint64_t(0x1000 + i), c->regs[i]);
	EXPECT_EQ(832u, c->fpu.size());
	EXPECT_EQ(1ull << (SIGUSR1 - 1), c->signals.blocked);
	ASSERT_EQ(1u, c->signals.actions.size());
	EXPECT_EQ(0x401234u, c->signals.actions[0].handler);
	ASSERT_EQ(1u, c->signals.pending.size());
	EXPECT_TRUE(c->signals.pending[0].shared);
	ASSERT_EQ(3u, c->vmas.size());
	EXPECT_EQ("/usr/bin/sleep", c->vmas[0].path);
	EXPECT_EQ(0x602000u, c->vmas[1].end);
	EXPECT_EQ(2u, c->vmas[1].pages);
	ASSERT_EQ(3u, c->fds.size());
	EXPECT_TRUE(c->fds[1].tty);
	EXPECT_EQ("/dev/null", c->fds[2].path);
	EXPECT_EQ(4096u, c->page_size);
	ASSERT_EQ(2u, c->pagemap.size());
	EXPECT_EQ(0x600000u, c->pagemap[0].addr);
	EXPECT_EQ(2u, c->pagemap[0].nr_pages);
	EXPECT_EQ(sizeof(amber_pages_hdr) + sizeof(amber_page_run), c->pagemap[0].offset);

	// The raw CORE attributes re-parse to the same values.
	auto task = parse_attrs(c->task_attr);
	ASSERT_TRUE(task);
	ASSERT_EQ(1u, task->size());
	EXPECT_EQ(AMBER_A_TASK, (*task)[0].type);
	EXPECT_EQ("sleeper", parse_task((*task)[0].data)->comm);
	EXPECT_FALSE(c->regs_attr.empty());
	EXPECT_FALSE(c->fpu_attr.empty());
	EXPECT_FALSE(c->mm_attr.empty());
	EXPECT_FALSE(c->signals_attr.empty());
	EXPECT_TRUE(verify_checkpoint_dir(dir_));
}

TEST_F(ImageTest, TruncatedMeta)
{
	Bytes m = slurp(meta());
	for (size_t len : {size_t(0), size_t(10), sizeof(amber_image_hdr) + 8, m.size() - 1,
			   m.size() / 2}) {
		spit(meta(), Bytes(m.begin(), m.begin() + len));
		std::string e = load_error();
		EXPECT_NE(std::string::npos, e.find("meta.img")) << len << ": " << e;
		EXPECT_NE(std::string::npos, e.find("truncated")) << len << ": " << e;
	}
}

TEST_F(ImageTest, TruncatedPages)
{
	Bytes p = slurp(pages());
	spit(pages(), Bytes(p.begin(), p.end() - 1));
	std::string e = load_error();
	EXPECT_NE(std::string::npos, e.find("pages.img: run 1 at 0x7fffffffe000: truncated")) << e;

	spit(pages(), Bytes(p.begin(), p.begin() + 8));
	e = load_error();
	EXPECT_NE(std::string::npos, e.find("pages.img")) << e;

	Bytes longer = p;
	longer.push_back(0);
	spit(pages(), longer);
	e = load_error();
	EXPECT_NE(std::string::npos, e.find("pages.img: 1 unexpected bytes")) << e;
}

TEST_F(ImageTest, FlippedByteInEachSection)
{
	const Bytes orig = slurp(meta());
	// The sections every image has (the optional ones: tree_image_test.cc).
	for (uint32_t type = AMBER_SEC_INFO; type <= AMBER_SEC_PAGEMAP; type++) {
		amber_section s = find_section(orig, type);
		ASSERT_GT(s.size, 0u) << section_name(type);
		for (uint64_t at : {uint64_t(0), uint64_t(s.size / 2), uint64_t(s.size - 1)}) {
			Bytes m = orig;
			m[s.offset + at] ^= 0x10;
			spit(meta(), m);
			EXPECT_EQ("meta.img: section " + section_name(type) + ": checksum mismatch",
				  load_error());
		}
	}
}

TEST_F(ImageTest, FlippedByteInHeaderAndTable)
{
	const Bytes orig = slurp(meta());
	// Version and section count are checked on their own; the rest of the
	// header and the table by the header checksum.
	for (size_t at : {size_t(16), size_t(20), sizeof(amber_image_hdr) + 9,
			  sizeof(amber_image_hdr) + 2 * sizeof(amber_section) + 30}) {
		Bytes m = orig;
		m[at] ^= 0x01;
		spit(meta(), m);
		EXPECT_EQ("meta.img: header: checksum mismatch", load_error()) << at;
	}
	Bytes m = orig;
	m[0] = 'X';
	spit(meta(), m);
	EXPECT_NE(std::string::npos, load_error().find("meta.img: bad magic"));
}

TEST_F(ImageTest, FlippedByteInPageRun)
{
	const Bytes orig = slurp(pages());
	const size_t run1_data = sizeof(amber_pages_hdr) + sizeof(amber_page_run) + 2 * 4096 +
				 sizeof(amber_page_run);
	Bytes p = orig;
	p[run1_data + 100] ^= 0xff;
	spit(pages(), p);
	EXPECT_EQ("pages.img: run 1 at 0x7fffffffe000: checksum mismatch", load_error());

	p = orig;
	p[sizeof(amber_pages_hdr) + sizeof(amber_page_run) + 4096] ^= 1;
	spit(pages(), p);
	EXPECT_EQ("pages.img: run 0 at 0x600000: checksum mismatch", load_error());

	// A run header that no longer matches the pagemap.
	p = orig;
	p[sizeof(amber_pages_hdr) + 1] ^= 1;
	spit(pages(), p);
	EXPECT_EQ("pages.img: run 0 at 0x600000: run header does not match the pagemap",
		  load_error());
}

TEST_F(ImageTest, ScanPagesRejectsGarbage)
{
	Bytes p = slurp(pages());
	p[0] ^= 1;	// magic
	spit(pages(), p);
	UniqueFd fd(open(pages().c_str(), O_RDONLY));
	auto r = scan_pages(fd.get(), nullptr);
	ASSERT_FALSE(r);
	EXPECT_EQ("pages.img: bad magic", r.error().msg);
}

TEST_F(ImageTest, BadAttributeInSectionIsReported)
{
	// A VMAS section whose VMA lacks an end: checksums fine, content wrong.
	auto c = load_checkpoint_dir(dir_, 1);
	ASSERT_TRUE(c);
	AttrWriter w;
	size_t n = w.begin_nest(AMBER_A_VMA);
	w.put_u64(AMBER_VMA_START, 0x1000);
	w.end_nest(n);
	MetaSections m;
	m.info = c->info_raw;
	m.core = c->core_raw;
	m.vmas = w.take();
	m.fds = c->fds_raw;
	m.pagemap = c->pagemap;
	spit(meta(), build_meta(m));
	EXPECT_EQ("meta.img: section VMAS: VMA 0: VMA without start or end", load_error());
}

TEST_F(ImageTest, ScanPagesNamesTheTruncatedRun)
{
	Bytes p = slurp(pages());
	spit(pages(), Bytes(p.begin(), p.end() - 4096));
	UniqueFd fd(open(pages().c_str(), O_RDONLY));
	auto r = scan_pages(fd.get(), nullptr);
	ASSERT_FALSE(r);
	EXPECT_EQ("pages.img: run 1 at 0x7fffffffe000: truncated", r.error().msg);

	// A run header cut in half.
	spit(pages(), Bytes(p.begin(), p.begin() + sizeof(amber_pages_hdr) + 8));
	UniqueFd fd2(open(pages().c_str(), O_RDONLY));
	r = scan_pages(fd2.get(), nullptr);
	ASSERT_FALSE(r);
	EXPECT_EQ("pages.img: run 0: truncated", r.error().msg);
}

TEST_F(ImageTest, MissingSection)
{
	auto c = load_checkpoint_dir(dir_, 1);
	ASSERT_TRUE(c);
	// Rewrite the table so that the FDS entry claims another type.
	Bytes m = slurp(meta());
	amber_image_hdr h;
	memcpy(&h, m.data(), sizeof(h));
	for (uint32_t i = 0; i < h.nr_sections; i++) {
		amber_section s;
		memcpy(&s, m.data() + sizeof(h) + i * sizeof(s), sizeof(s));
		if (s.type == AMBER_SEC_FDS)
			s.type = 100;
		memcpy(m.data() + sizeof(h) + i * sizeof(s), &s, sizeof(s));
	}
	h.hdr_xxh64 = 0;
	memcpy(m.data(), &h, sizeof(h));
	h.hdr_xxh64 = XXH64(m.data(), sizeof(h) + h.nr_sections * sizeof(amber_section), 0);
	memcpy(m.data(), &h, sizeof(h));
	spit(meta(), m);
	EXPECT_EQ("meta.img: section FDS missing", load_error());
}

TEST(ImageV2, ParentRunsHaveNoData)
{
	TempDir t;
	const std::string p = t.path() + "/pages.img";
	write_run_pages(p, {{0x600000, 2}, {0x602000, 3, true}, {0x700000, 1}}, 5);
	UniqueFd fd(open(p.c_str(), O_RDONLY));
	uint32_t ps = 0;
	auto map = scan_pages(fd.get(), &ps);
	ASSERT_TRUE(map) << map.error().str();
	EXPECT_EQ(4096u, ps);
	ASSERT_EQ(3u, map->size());
	const uint64_t h = sizeof(amber_pages_hdr), r = sizeof(amber_page_run);
	EXPECT_EQ(h + r, (*map)[0].offset);
	EXPECT_EQ(0u, (*map)[0].flags);
	EXPECT_NE(0u, (*map)[0].xxh64);
	EXPECT_EQ(0x602000u, (*map)[1].addr);
	EXPECT_EQ(3u, (*map)[1].nr_pages);
	EXPECT_EQ(uint32_t(AMBER_RUN_F_PARENT), (*map)[1].flags);
	EXPECT_EQ(h + r + 2 * 4096 + r, (*map)[1].offset);
	EXPECT_EQ(0u, (*map)[1].xxh64);
	EXPECT_EQ(h + r + 2 * 4096 + 2 * r, (*map)[2].offset);
	PageCounts c = count_pages(*map);
	EXPECT_EQ(3u, c.data);
	EXPECT_EQ(3u, c.parent);
}

TEST(ImageV2, ScanPagesRejectsBadRuns)
{
	TempDir t;
	const std::string p = t.path() + "/pages.img";
	auto scan_error = [&](const std::vector<RunSpec> &runs, uint32_t flags_of_last) {
		write_run_pages(p, runs, 1);
		if (flags_of_last) {
			// Patch the last run header's flags.
			Bytes b = slurp(p);
			size_t pos = sizeof(amber_pages_hdr);
			for (size_t i = 0; i + 1 < runs.size(); i++)
				pos += sizeof(amber_page_run) + (runs[i].parent ? 0 : runs[i].nr_pages * 4096);
			memcpy(b.data() + pos + 12, &flags_of_last, 4);
			spit(p, b);
		}
		UniqueFd fd(open(p.c_str(), O_RDONLY));
		auto r = scan_pages(fd.get(), nullptr);
		return r ? std::string() : r.error().msg;
	};
	EXPECT_EQ("", scan_error({{0x1000, 1}, {0x2000, 1, true}}, 0));
	EXPECT_EQ("pages.img: run 1 at 0x2000: unknown flags 0x2",
		  scan_error({{0x1000, 1}, {0x2000, 1}}, 2));
	EXPECT_EQ("pages.img: run 1 at 0x1000: runs out of order or overlapping",
		  scan_error({{0x1000, 2}, {0x1000, 1, true}}, 0));
	EXPECT_EQ("pages.img: run 1 at 0x2000: runs out of order or overlapping",
		  scan_error({{0x1000, 2, true}, {0x2000, 1}}, 0));
	EXPECT_EQ("pages.img: run 1 at 0x1000: runs out of order or overlapping",
		  scan_error({{0x5000, 1}, {0x1000, 1}}, 0));
	EXPECT_EQ("pages.img: run 0 at 0x1000: bad run header", scan_error({{0x1000, 0}}, 0));

	// Version 1 files are refused.
	write_run_pages(p, {{0x1000, 1}}, 1);
	Bytes b = slurp(p);
	b[8] = 1;
	spit(p, b);
	UniqueFd fd(open(p.c_str(), O_RDONLY));
	auto r = scan_pages(fd.get(), nullptr);
	ASSERT_FALSE(r);
	EXPECT_EQ("pages.img: unsupported version 1", r.error().msg);
}

TEST(ImageV2, InfoRoundTrip)
{
	InfoSection in;
	in.number = 7;
	in.parent = 6;
	in.track_id = 0xfedcba9876543210ull;
	in.pages_nr = 12;
	in.parent_pages_nr = 300;
	in.full_reason = "the process executed a new program";
	in.kernel = "6.12.118+deb12-amd64";
	in.vdso_xxh64 = 0x0123456789abcdefull;
	auto out = parse_info(encode_info(in));
	ASSERT_TRUE(out);
	EXPECT_EQ(in.kernel, out->kernel);
	EXPECT_EQ(in.vdso_xxh64, out->vdso_xxh64);
	EXPECT_EQ(6u, out->parent);
	EXPECT_EQ(in.track_id, out->track_id);
	EXPECT_EQ(12u, out->pages_nr);
	EXPECT_EQ(300u, out->parent_pages_nr);
	EXPECT_EQ(in.full_reason, out->full_reason);
	in.full_reason.clear();
	EXPECT_EQ("", parse_info(encode_info(in))->full_reason);
}

TEST(ImageV2, IncrementalLinkLoadsAndVerifiesParentRuns)
{
	TempDir t;
	write_link(t.path(), 2, 1, {{0x600000, 1}, {0x601000, 1, true}});
	const std::string d = t.path() + "/2";
	auto c = load_checkpoint_dir(d, 2);
	ASSERT_TRUE(c) << c.error().str();
	EXPECT_EQ(1u, c->info.parent);
	EXPECT_EQ(1u, c->info.pages_nr);
	EXPECT_EQ(1u, c->info.parent_pages_nr);
	EXPECT_EQ(77u, c->info.track_id);
	ASSERT_EQ(2u, c->pagemap.size());
	EXPECT_EQ(uint32_t(AMBER_RUN_F_PARENT), c->pagemap[1].flags);

	// The pagemap's flags must match the run header's.
	Bytes p = slurp(d + "/pages.img");
	const size_t run1 = sizeof(amber_pages_hdr) + sizeof(amber_page_run) + 4096;
	p[run1 + 12] = 0;
	spit(d + "/pages.img", p);
	auto bad = load_checkpoint_dir(d, 2);
	ASSERT_FALSE(bad);
	EXPECT_EQ("pages.img: run 1 at 0x601000: run header does not match the pagemap",
		  bad.error().msg);
	// Data appended to a PARENT run: extra bytes.
	p[run1 + 12] = AMBER_RUN_F_PARENT;
	p.push_back(0);
	spit(d + "/pages.img", p);
	bad = load_checkpoint_dir(d, 2);
	ASSERT_FALSE(bad);
	EXPECT_EQ("pages.img: 1 unexpected bytes after the last run", bad.error().msg);

	// load_checkpoint_meta() does not look at pages.img.
	auto m = load_checkpoint_meta(d, 2);
	ASSERT_TRUE(m) << m.error().str();
	EXPECT_EQ(0u, m->page_size);
	EXPECT_EQ(2u, m->pagemap.size());
}
