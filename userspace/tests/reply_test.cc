// SPDX-License-Identifier: GPL-2.0
#include <gtest/gtest.h>
#include <fcntl.h>
#include <linux/amber.h>
#include <linux/netlink.h>

#include <cstring>

#include "checkpoint.h"
#include "fixtures.h"
#include "netlink.h"

using namespace amber;
using namespace amber::testing;

TEST(Reply, ParsesHandBuiltReply)
{
	auto r = parse_checkpoint_reply(make_reply());
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_EQ(1234567u, r->stopped_ns);
	EXPECT_EQ(3u, r->pages_nr);
	EXPECT_EQ(4242u, r->task.pid);
	ASSERT_EQ(3u, r->vma_list.size());
	EXPECT_EQ(0x400000u, r->vma_list[0].start);
	ASSERT_EQ(3u, r->fd_list.size());
	EXPECT_EQ(AMBER_FD_FIFO, r->fd_list[0].type);
	EXPECT_TRUE(check_supported(*r));

	// CORE holds exactly TASK, MM, REGS, FPU, SIGNALS, in that order.
	auto core = parse_attrs(r->core);
	ASSERT_TRUE(core);
	std::vector<uint16_t> types;
	for (const Attr &a : *core)
		types.push_back(a.type);
	EXPECT_EQ((std::vector<uint16_t>{AMBER_A_TASK, AMBER_A_MM, AMBER_A_REGS, AMBER_A_FPU,
					 AMBER_A_SIGNALS}),
		  types);
}

TEST(Reply, MissingCoreAttribute)
{
	AttrWriter w;
	w.put_u64(AMBER_A_STOPPED_NS, 1);
	auto r = parse_checkpoint_reply(w.bytes());
	ASSERT_FALSE(r);
	EXPECT_EQ("reply: no TASK attribute", r.error().msg);
}

TEST(Reply, RefusesUnsupportedFds)
{
	FdInfo sock{.num = 5, .type = AMBER_FD_SOCK, .path = "socket:[1234]"};
	auto r = parse_checkpoint_reply(make_reply({sock}));
	ASSERT_TRUE(r);
	auto c = check_supported(*r);
	ASSERT_FALSE(c);
	EXPECT_EQ("fd 5: socket:[1234] is not supported yet", c.error().msg);

	FdInfo pipe{.num = 4, .type = AMBER_FD_FIFO, .path = "pipe:[99]"};
	c = check_supported(*parse_checkpoint_reply(make_reply({pipe})));
	ASSERT_FALSE(c);
	EXPECT_EQ("fd 4: pipe:[99] is not supported yet", c.error().msg);

	FdInfo ev{.num = 3, .type = AMBER_FD_OTHER, .path = "anon_inode:[eventfd]"};
	c = check_supported(*parse_checkpoint_reply(make_reply({ev})));
	ASSERT_FALSE(c);
	EXPECT_EQ("fd 3: anon_inode:[eventfd] is not supported yet", c.error().msg);

	FdInfo del{.num = 3, .type = AMBER_FD_REG, .path = "/tmp/x (deleted)"};
	c = check_supported(*parse_checkpoint_reply(make_reply({del})));
	ASSERT_FALSE(c);
	EXPECT_EQ("fd 3: /tmp/x (deleted): deleted files are not supported yet", c.error().msg);

	FdInfo ok{.num = 3, .type = AMBER_FD_REG, .flags = O_RDWR, .path = "/tmp/data"};
	EXPECT_TRUE(check_supported(*parse_checkpoint_reply(make_reply({ok}))));
}

TEST(Reply, MalformedNestedValue)
{
	Bytes b = make_reply();
	// Corrupt the first VMA's START into a 4-byte value: find it by parsing.
	AttrWriter w;
	size_t vs = w.begin_nest(AMBER_A_VMAS);
	size_t v = w.begin_nest(AMBER_A_VMA);
	w.put_u32(AMBER_VMA_START, 1);
	w.put_u64(AMBER_VMA_END, 0x2000);
	w.end_nest(v);
	w.end_nest(vs);
	auto attrs = parse_attrs(b);
	ASSERT_TRUE(attrs);
	AttrWriter out;
	for (const Attr &a : *attrs)
		if (a.type != AMBER_A_VMAS)
			out.put_raw(a.raw);
	out.put_raw(w.bytes());
	auto r = parse_checkpoint_reply(out.bytes());
	ASSERT_FALSE(r);
	EXPECT_NE(std::string::npos, r.error().msg.find("VMA 0: VMA attribute 1: expected 8 bytes"))
		<< r.error().msg;
}

// NLMSG_ERROR with an extack message, as the kernel sends it with
// NETLINK_EXT_ACK and NETLINK_CAP_ACK.
TEST(Netlink, ExtackMessageIsSurfaced)
{
	AttrWriter tlv;
	tlv.put_string(NLMSGERR_ATTR_MSG, "pid 42: target is a kernel thread");
	Bytes msg(NLMSG_HDRLEN + sizeof(nlmsgerr));
	nlmsghdr h = {};
	h.nlmsg_len = msg.size() + tlv.bytes().size();
	h.nlmsg_type = NLMSG_ERROR;
	h.nlmsg_flags = NLM_F_CAPPED | NLM_F_ACK_TLVS;
	nlmsgerr e = {};
	e.error = -EPERM;
	e.msg.nlmsg_len = NLMSG_HDRLEN + 100;
	memcpy(msg.data(), &h, sizeof(h));
	memcpy(msg.data() + NLMSG_HDRLEN, &e, sizeof(e));
	msg.insert(msg.end(), tlv.bytes().begin(), tlv.bytes().end());

	auto r = parse_nlmsgerr(msg);
	ASSERT_FALSE(r);
	EXPECT_EQ(EPERM, r.error().err);
	EXPECT_EQ("pid 42: target is a kernel thread", r.error().msg);
	EXPECT_EQ("pid 42: target is a kernel thread: Operation not permitted", r.error().str());

	// A plain ACK.
	e.error = 0;
	memcpy(msg.data() + NLMSG_HDRLEN, &e, sizeof(e));
	EXPECT_TRUE(parse_nlmsgerr(msg));

	// Truncated.
	EXPECT_FALSE(parse_nlmsgerr(ByteView(msg).first(10)));
}

// On the host the module cannot be loaded: connect() must say so plainly.
// In the guest with amber.ko loaded it must succeed.
TEST(Netlink, ConnectResolvesTheFamilyOrSaysNotLoaded)
{
	auto nl = NetlinkClient::connect();
	if (nl) {
		EXPECT_GT(nl->family(), 0);
		EXPECT_GE(nl->fd(), 0);
		return;
	}
	EXPECT_EQ(ENOENT, nl.error().err);
	EXPECT_EQ("amber.ko is not loaded", nl.error().msg);
}
