// SPDX-License-Identifier: GPL-2.0
#include <gtest/gtest.h>
#include <linux/netlink.h>

#include "common/attr.h"

using namespace amber;

TEST(Attr, RoundTrip)
{
	AttrWriter w;
	w.put_u32(1, 0xdeadbeef);
	w.put_u64(2, 0x0123456789abcdefull);
	w.put_string(3, "hello");
	w.put_flag(4);
	size_t n = w.begin_nest(5);
	w.put_u32(1, 7);
	w.put_binary(2, Bytes{1, 2, 3});
	w.end_nest(n);
	ASSERT_TRUE(w.ok());
	EXPECT_EQ(0u, w.bytes().size() % 4);

	auto attrs = parse_attrs(w.bytes());
	ASSERT_TRUE(attrs) << attrs.error().str();
	ASSERT_EQ(5u, attrs->size());
	EXPECT_EQ(0xdeadbeefu, *(*attrs)[0].u32());
	EXPECT_EQ(0x0123456789abcdefull, *(*attrs)[1].u64());
	EXPECT_EQ("hello", (*attrs)[2].str());
	EXPECT_EQ(0u, (*attrs)[3].data.size());
	const Attr &nest = (*attrs)[4];
	EXPECT_TRUE(nest.nested);
	EXPECT_EQ(5, nest.type);
	auto inner = parse_attrs(nest.data);
	ASSERT_TRUE(inner);
	ASSERT_EQ(2u, inner->size());
	EXPECT_EQ(7u, *(*inner)[0].u32());
	EXPECT_EQ((Bytes{1, 2, 3}), (*inner)[1].bytes());
	// raw covers the header and the payload, and re-parses to itself.
	auto again = parse_attrs(nest.raw);
	ASSERT_TRUE(again);
	EXPECT_EQ(5, (*again)[0].type);
}

TEST(Attr, WrongSizeIsAnError)
{
	AttrWriter w;
	w.put_u32(1, 1);
	auto attrs = parse_attrs(w.bytes());
	ASSERT_TRUE(attrs);
	EXPECT_FALSE((*attrs)[0].u64());
}

TEST(Attr, MalformedStreams)
{
	AttrWriter w;
	w.put_u64(1, 1);
	Bytes b = w.take();
	// Length running past the end.
	Bytes cut(b.begin(), b.end() - 4);
	EXPECT_FALSE(parse_attrs(cut));
	// Length below the header size.
	Bytes bad = b;
	bad[0] = 2;
	bad[1] = 0;
	EXPECT_FALSE(parse_attrs(bad));
	// Empty is fine.
	EXPECT_TRUE(parse_attrs(ByteView()));
}

TEST(Attr, NestTooBigIsFlagged)
{
	AttrWriter w;
	size_t n = w.begin_nest(1);
	Bytes big(40000, 0);
	w.put_binary(2, big);
	w.put_binary(3, big);
	w.end_nest(n);
	EXPECT_FALSE(w.ok());
}

TEST(Error, WrapAndStr)
{
	EXPECT_EQ("pid 5: Invalid argument", wrap(Error{EINVAL, ""}, "pid 5: ").value().str());
	EXPECT_EQ("pid 5: bad: Invalid argument", wrap(Error{EINVAL, "bad"}, "pid 5: ").value().str());
	EXPECT_EQ("no errno", (Error{0, "no errno"}).str());
}
