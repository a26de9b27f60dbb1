// SPDX-License-Identifier: GPL-2.0
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "fixtures.h"
#include "image/store.h"

using namespace amber;
using namespace amber::testing;
namespace fs = std::filesystem;

namespace {

const std::vector<std::pair<uint64_t, uint64_t>> kRuns = {{0x600000, 1}};

// What `amber checkpoint` does with a pending checkpoint.
void fill(const PendingCheckpoint &p)
{
	write_checkpoint(p.tmp_dir(), p.number(), kRuns);
}

} // namespace

TEST(Store, EmptyHasNoLatest)
{
	TempDir t;
	Store s(t.path() + "/store");
	auto l = s.latest();
	ASSERT_FALSE(l);
	EXPECT_EQ(ENOENT, l.error().err);
	EXPECT_FALSE(s.load(std::nullopt));
}

TEST(Store, LatestOnlyAfterPublish)
{
	TempDir t;
	Store s(t.path() + "/store");
	{
		auto p = s.begin();
		ASSERT_TRUE(p) << p.error().str();
		EXPECT_EQ(1u, p->number());
		fill(*p);
		EXPECT_FALSE(s.latest());	// complete files, not yet published
		EXPECT_TRUE(fs::exists(t.path() + "/store/.tmp-1"));
		ASSERT_TRUE(s.publish(*p));
		EXPECT_EQ(1u, *s.latest());
		EXPECT_FALSE(fs::exists(t.path() + "/store/.tmp-1"));
	}
	EXPECT_TRUE(fs::exists(t.path() + "/store/1/meta.img"));
	auto c = s.load(std::nullopt);
	ASSERT_TRUE(c) << c.error().str();
	EXPECT_EQ(1u, c->number);

	auto p2 = s.begin();
	ASSERT_TRUE(p2);
	EXPECT_EQ(2u, p2->number());
	fill(*p2);
	ASSERT_TRUE(s.publish(*p2));
	EXPECT_EQ(2u, *s.latest());
	EXPECT_EQ((std::vector<uint32_t>{1, 2}), *s.list());
	EXPECT_TRUE(s.load(1u));
}

TEST(Store, AbandonedCheckpointLeavesLatest)
{
	TempDir t;
	Store s(t.path() + "/store");
	{
		auto p = s.begin();
		ASSERT_TRUE(p);
		fill(*p);
		ASSERT_TRUE(s.publish(*p));
	}
	{
		auto p = s.begin();
		ASSERT_TRUE(p);
		EXPECT_EQ(2u, p->number());
		fill(*p);
		// Dropped without publish (an error path): removed.
	}
	EXPECT_FALSE(fs::exists(t.path() + "/store/.tmp-2"));
	EXPECT_EQ(1u, *s.latest());
}

TEST(Store, KilledCheckpointIsCleanedUp)
{
	TempDir t;
	const std::string d = t.path() + "/store";
	Store s(d);
	{
		auto p = s.begin();
		ASSERT_TRUE(p);
		fill(*p);
		ASSERT_TRUE(s.publish(*p));
	}
	// What a checkpoint killed half-way leaves behind.
	fs::create_directory(d + "/.tmp-2");
	write_pages(d + "/.tmp-2/pages.img", kRuns);
	fs::create_directory(d + "/.tmp-9");
	EXPECT_EQ(1u, *s.latest());
	auto c = s.load(std::nullopt);
	ASSERT_TRUE(c) << c.error().str();
	EXPECT_EQ(1u, c->number);

	auto p = s.begin();
	ASSERT_TRUE(p);
	EXPECT_EQ(2u, p->number());
	EXPECT_FALSE(fs::exists(d + "/.tmp-9"));
	EXPECT_TRUE(fs::exists(d + "/.tmp-2"));	  // fresh, ours
	EXPECT_TRUE(fs::is_empty(d + "/.tmp-2"));
}

TEST(Store, ConcurrentCheckpointIsRefused)
{
	TempDir t;
	Store s(t.path() + "/store");
	auto p = s.begin();
	ASSERT_TRUE(p);
	auto q = s.begin();
	ASSERT_FALSE(q);
	EXPECT_EQ(EBUSY, q.error().err);
}

TEST(Store, LatestPointingNowhere)
{
	TempDir t;
	const std::string d = t.path() + "/store";
	fs::create_directory(d);
	ASSERT_EQ(0, symlink("../etc", (d + "/latest").c_str()));
	auto l = Store(d).latest();
	ASSERT_FALSE(l);
	EXPECT_NE(std::string::npos, l.error().msg.find("does not point to a checkpoint number"));
}

TEST(Store, CreatesMissingParents)
{
	TempDir t;
	Store s(t.path() + "/a/b/store");
	auto p = s.begin();
	ASSERT_TRUE(p) << p.error().str();
	EXPECT_EQ(1u, p->number());
}
