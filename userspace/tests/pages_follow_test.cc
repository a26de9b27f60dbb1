// SPDX-License-Identifier: GPL-2.0
// PagesFollower: a pages file indexed and hashed while another thread
// appends it piece by piece gives what scan_pages() gives for the finished
// file; a file that ends inside a run is an error.
#include <gtest/gtest.h>
#include <linux/amber.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/io.h"
#include "fixtures.h"
#include "image/image.h"

using namespace amber;
using namespace amber::testing;

namespace {

// Appends b to path in pieces of `piece` bytes, a pause between them.
void append_slowly(const std::string &path, const Bytes &b, size_t piece)
{
	UniqueFd fd(open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
	ASSERT_TRUE(fd);
	for (size_t off = 0; off < b.size(); off += piece) {
		const size_t n = std::min(piece, b.size() - off);
		ASSERT_EQ(ssize_t(n), write(fd.get(), b.data() + off, n));
		std::this_thread::sleep_for(std::chrono::microseconds(300));
	}
}

void expect_same(const std::vector<amber_pagemap_entry> &a,
		 const std::vector<amber_pagemap_entry> &b)
{
	ASSERT_EQ(a.size(), b.size());
	for (size_t i = 0; i < a.size(); i++) {
		EXPECT_EQ(a[i].addr, b[i].addr) << i;
		EXPECT_EQ(a[i].nr_pages, b[i].nr_pages) << i;
		EXPECT_EQ(a[i].flags, b[i].flags) << i;
		EXPECT_EQ(a[i].offset, b[i].offset) << i;
		EXPECT_EQ(a[i].xxh64, b[i].xxh64) << i;
	}
}

} // namespace

TEST(PagesFollower, SameIndexAsScanWhileAppended)
{
	TempDir dir;
	const std::string src = dir.path() + "/src", dst = dir.path() + "/pages.img";
	// Runs of every size up to past the follower's 8 MiB pieces, parent
	// runs between them.
	std::vector<RunSpec> runs = {{pg(0), 1}, {pg(1), 3, true}, {pg(10), 700},
				     {pg(800), 2500}, {pg(4000), 5, true}, {pg(4100), 2}};
	write_run_pages(src, runs, 3);
	const Bytes b = slurp(src);
	spit(dst, {});

	for (size_t piece : {size_t(4096 * 97 + 13), size_t(1) << 20, size_t(7)}) {
		ASSERT_EQ(0, truncate(dst.c_str(), 0));
		UniqueFd rd(open(dst.c_str(), O_RDONLY | O_CLOEXEC));
		PagesFollower f(rd.get());
		if (piece == 7) {
			// Tiny appends over the headers, the rest at once.
			Bytes head(b.begin(), b.begin() + 200);
			Bytes tail(b.begin() + 200, b.end());
			append_slowly(dst, head, 7);
			append_slowly(dst, tail, tail.size());
		} else {
			append_slowly(dst, b, piece);
		}
		uint32_t ps = 0;
		auto got = f.finish(&ps);
		ASSERT_TRUE(got) << got.error().msg;
		EXPECT_EQ(ps, 4096u);
		UniqueFd fd(open(dst.c_str(), O_RDONLY | O_CLOEXEC));
		uint32_t ps2 = 0;
		auto want = scan_pages(fd.get(), &ps2);
		ASSERT_TRUE(want) << want.error().msg;
		expect_same(*got, *want);
	}
}

TEST(PagesFollower, EndInsideARunIsAnError)
{
	TempDir dir;
	const std::string src = dir.path() + "/src", dst = dir.path() + "/pages.img";
	write_run_pages(src, {{pg(0), 4}, {pg(8), 4}}, 5);
	Bytes b = slurp(src);
	b.resize(b.size() - 100);
	spit(dst, {});
	UniqueFd rd(open(dst.c_str(), O_RDONLY | O_CLOEXEC));
	PagesFollower f(rd.get());
	append_slowly(dst, b, 5000);
	auto got = f.finish(nullptr);
	ASSERT_FALSE(got);
	EXPECT_NE(got.error().msg.find("run 1"), std::string::npos) << got.error().msg;
	EXPECT_NE(got.error().msg.find("truncated"), std::string::npos) << got.error().msg;
}

TEST(PagesFollower, BadHeaderIsAnError)
{
	TempDir dir;
	const std::string dst = dir.path() + "/pages.img";
	spit(dst, Bytes(64, 0xab));
	UniqueFd rd(open(dst.c_str(), O_RDONLY | O_CLOEXEC));
	PagesFollower f(rd.get());
	auto got = f.finish(nullptr);
	ASSERT_FALSE(got);
	EXPECT_NE(got.error().msg.find("magic"), std::string::npos) << got.error().msg;
}

TEST(PagesFollower, DestroyedUnfinishedStops)
{
	TempDir dir;
	const std::string dst = dir.path() + "/pages.img";
	spit(dst, {});
	UniqueFd rd(open(dst.c_str(), O_RDONLY | O_CLOEXEC));
	const auto t0 = std::chrono::steady_clock::now();
	{
		PagesFollower f(rd.get());
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	}
	EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}
