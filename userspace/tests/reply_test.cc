// SPDX-License-Identifier: GPL-2.0
#include <gtest/gtest.h>
#include <fcntl.h>
#include <linux/amber.h>
#include <linux/netlink.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "checkpoint/checkpoint.h"
#include "fixtures.h"
#include "netlink/netlink.h"

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

	// Issue 5: pipes beyond stdio are restored now (with their queued bytes).
	FdInfo pipe{.num = 4, .type = AMBER_FD_FIFO, .path = "pipe:[99]"};
	c = check_supported(*parse_checkpoint_reply(make_reply({pipe})));
	EXPECT_TRUE(c) << c.error().str();

	FdInfo ev{.num = 3, .type = AMBER_FD_OTHER, .path = "anon_inode:[eventfd]"};
	c = check_supported(*parse_checkpoint_reply(make_reply({ev})));
	ASSERT_FALSE(c);
	EXPECT_EQ("fd 3: anon_inode:[eventfd] is not supported yet", c.error().msg);

	// Issue 14: a timerfd or signalfd the kernel described is kept.
	FdInfo tfd{.num = 6, .type = AMBER_FD_OTHER, .path = "anon_inode:[timerfd]",
		   .file_id = 1, .timerfd = true};
	c = check_supported(*parse_checkpoint_reply(make_reply({tfd})));
	EXPECT_TRUE(c) << c.error().str();
	FdInfo sfd{.num = 7, .type = AMBER_FD_OTHER, .path = "anon_inode:[signalfd]",
		   .file_id = 2, .signalfd = true};
	c = check_supported(*parse_checkpoint_reply(make_reply({sfd})));
	EXPECT_TRUE(c) << c.error().str();
	FdInfo ino{.num = 8, .type = AMBER_FD_OTHER, .path = "anon_inode:inotify", .file_id = 3};
	c = check_supported(*parse_checkpoint_reply(make_reply({ino})));
	ASSERT_FALSE(c);
	EXPECT_EQ("fd 8: anon_inode:inotify is not supported yet", c.error().msg);

	FdInfo del{.num = 3, .type = AMBER_FD_REG, .path = "/tmp/x (deleted)"};
	c = check_supported(*parse_checkpoint_reply(make_reply({del})));
	ASSERT_FALSE(c);
	EXPECT_EQ("fd 3: /tmp/x (deleted): was deleted before the checkpoint, cannot reopen it",
		  c.error().msg);

	FdInfo ok{.num = 3, .type = AMBER_FD_REG, .flags = O_RDWR, .path = "/tmp/data"};
	EXPECT_TRUE(check_supported(*parse_checkpoint_reply(make_reply({ok}))));
}

// Issue 14: an inotify's watches are kept; a descriptor or a file handle out
// of range is refused.
TEST(Reply, InotifyWatches)
{
	InotifyWatch w{.wd = 5, .mask = 0x2, .dev = 0x801, .ino = 42, .handle_type = 1,
		       .handle = Bytes{1, 2, 3, 4, 5, 6, 7, 8}};
	FdInfo ino{.num = 8, .type = AMBER_FD_OTHER, .path = "anon_inode:inotify", .file_id = 3,
		   .inotify = true, .inotify_watches = {w}};
	auto r = parse_checkpoint_reply(make_reply({ino}));
	ASSERT_TRUE(r) << r.error().str();
	ASSERT_FALSE(r->fd_list.empty());
	ASSERT_EQ(1u, r->fd_list.back().inotify_watches.size());
	const InotifyWatch &got = r->fd_list.back().inotify_watches[0];
	EXPECT_EQ(5u, got.wd);
	EXPECT_EQ(0x2u, got.mask);
	EXPECT_EQ(0x801u, got.dev);
	EXPECT_EQ(42u, got.ino);
	EXPECT_EQ(w.handle, got.handle);
	EXPECT_TRUE(check_supported(*r));

	FdInfo bad = ino;
	bad.inotify_watches[0].wd = 0;
	r = parse_checkpoint_reply(make_reply({bad}));
	ASSERT_FALSE(r);
	EXPECT_NE(std::string::npos, r.error().msg.find("INOTIFY_WATCH wd 0 out of range"))
		<< r.error().msg;
	bad.inotify_watches[0].wd = AMBER_INOTIFY_MAX_WD + 1;
	EXPECT_FALSE(parse_checkpoint_reply(make_reply({bad})));
	bad = ino;
	bad.inotify_watches[0].handle = Bytes(AMBER_INOTIFY_HANDLE_MAX + 1, 7);
	r = parse_checkpoint_reply(make_reply({bad}));
	ASSERT_FALSE(r);
	EXPECT_NE(std::string::npos, r.error().msg.find("a file handle of 129 bytes"))
		<< r.error().msg;
	bad = ino;
	bad.inotify = false;
	r = parse_checkpoint_reply(make_reply({bad}));
	ASSERT_FALSE(r);
	EXPECT_NE(std::string::npos, r.error().msg.find("INOTIFY_WATCH on a non-inotify"))
		<< r.error().msg;
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

namespace {

// make_reply() plus extra attributes.
Bytes reply_with(void (*add)(AttrWriter &))
{
	AttrWriter w;
	w.put_raw(make_reply());
	add(w);
	return w.take();
}

} // namespace

TEST(Reply, FullReplyHasNoTrackingByDefault)
{
	auto r = parse_checkpoint_reply(make_reply());
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_EQ(0u, r->track_id);
	EXPECT_FALSE(r->parent_id);
	EXPECT_EQ(0u, r->pages_parent_nr);
	EXPECT_EQ("", r->full_reason);
}

TEST(Reply, IncrementalReply)
{
	auto r = parse_checkpoint_reply(reply_with([](AttrWriter &w) {
		w.put_u64(AMBER_A_TRACK_ID, 0x1122334455667788ull);
		w.put_u64(AMBER_A_PARENT_ID, 0x99);
		w.put_u64(AMBER_A_PAGES_PARENT_NR, 250);
	}));
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_EQ(0x1122334455667788ull, r->track_id);
	ASSERT_TRUE(r->parent_id);
	EXPECT_EQ(0x99u, *r->parent_id);
	EXPECT_EQ(250u, r->pages_parent_nr);
	EXPECT_EQ(3u, r->pages_nr);
	EXPECT_EQ("", r->full_reason);
}

TEST(Reply, RefusedParentGivesTheReason)
{
	auto r = parse_checkpoint_reply(reply_with([](AttrWriter &w) {
		w.put_u64(AMBER_A_TRACK_ID, 7);
		w.put_string(AMBER_A_FULL_REASON, "the process executed a new program");
	}));
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_EQ(7u, r->track_id);
	EXPECT_FALSE(r->parent_id);
	EXPECT_EQ("the process executed a new program", r->full_reason);
}

TEST(Reply, InconsistentTrackingAttributes)
{
	auto r = parse_checkpoint_reply(
		reply_with([](AttrWriter &w) { w.put_u64(AMBER_A_PARENT_ID, 5); }));
	ASSERT_FALSE(r);
	EXPECT_EQ("reply: incremental (PARENT_ID) but no TRACK_ID", r.error().msg);

	r = parse_checkpoint_reply(reply_with([](AttrWriter &w) {
		w.put_u64(AMBER_A_TRACK_ID, 7);
		w.put_u64(AMBER_A_PARENT_ID, 0);
	}));
	ASSERT_FALSE(r);
	EXPECT_EQ("reply: PARENT_ID is 0", r.error().msg);

	r = parse_checkpoint_reply(reply_with([](AttrWriter &w) {
		w.put_u64(AMBER_A_TRACK_ID, 7);
		w.put_u64(AMBER_A_PAGES_PARENT_NR, 4);
	}));
	ASSERT_FALSE(r);
	EXPECT_EQ("reply: 4 parent pages in a full checkpoint", r.error().msg);

	r = parse_checkpoint_reply(reply_with([](AttrWriter &w) {
		w.put_u64(AMBER_A_TRACK_ID, 7);
		w.put_u64(AMBER_A_PARENT_ID, 5);
		w.put_string(AMBER_A_FULL_REASON, "x");
	}));
	ASSERT_FALSE(r);
	EXPECT_EQ("reply: both PARENT_ID and FULL_REASON", r.error().msg);

	r = parse_checkpoint_reply(
		reply_with([](AttrWriter &w) { w.put_u32(AMBER_A_TRACK_ID, 7); }));
	ASSERT_FALSE(r);
	EXPECT_NE(std::string::npos, r.error().msg.find("expected 8 bytes")) << r.error().msg;
}

namespace {

constexpr long kHz = 100;
constexpr uint64_t kStartNs = 123456789012ull;	// 12345 ticks of 10 ms
constexpr uint64_t kTicks = kStartNs / 10000000ull;

LatestMeta latest_of(uint32_t pid, uint64_t track_id)
{
	return LatestMeta{.number = 4, .pid = pid, .start_time_ns = kStartNs, .track_id = track_id};
}

} // namespace

TEST(ChooseParent, IncrementalOnLatestOfTheSameProcess)
{
	auto c = choose_parent(latest_of(42, 0xabc), 42, kTicks, kHz, TrackMode::Incremental);
	EXPECT_EQ(4u, c.parent);
	EXPECT_EQ(0xabcu, c.parent_id);
	EXPECT_EQ(uint32_t(AMBER_CKPT_F_TRACK), c.flags);
	EXPECT_FALSE(c.untrack);
	EXPECT_EQ("", c.why_full);

	// Start time unknown (/proc unreadable): the kernel's id check decides.
	c = choose_parent(latest_of(42, 0xabc), 42, std::nullopt, kHz, TrackMode::Incremental);
	EXPECT_EQ(4u, c.parent);
	EXPECT_EQ(0xabcu, c.parent_id);
}

TEST(ChooseParent, FullWhenNothingToChainOn)
{
	// Empty store: full, tracked, no reason to give.
	auto c = choose_parent(std::nullopt, 42, kTicks, kHz, TrackMode::Incremental);
	EXPECT_EQ(0u, c.parent);
	EXPECT_EQ(0u, c.parent_id);
	EXPECT_EQ(uint32_t(AMBER_CKPT_F_TRACK), c.flags);
	EXPECT_EQ("", c.why_full);

	c = choose_parent(latest_of(41, 0xabc), 42, kTicks, kHz, TrackMode::Incremental);
	EXPECT_EQ(0u, c.parent_id);
	EXPECT_EQ(uint32_t(AMBER_CKPT_F_TRACK), c.flags);
	EXPECT_EQ("checkpoint 4 is of pid 41", c.why_full);

	c = choose_parent(latest_of(42, 0), 42, kTicks, kHz, TrackMode::Incremental);
	EXPECT_EQ(0u, c.parent_id);
	EXPECT_EQ("checkpoint 4 is not tracked", c.why_full);

	// PID reused by another process: another start time.
	c = choose_parent(latest_of(42, 0xabc), 42, kTicks + 1, kHz, TrackMode::Incremental);
	EXPECT_EQ(0u, c.parent);
	EXPECT_EQ(0u, c.parent_id);
	EXPECT_EQ("checkpoint 4 is of another process with pid 42: restored since, or the pid was "
		  "reused",
		  c.why_full);
}

TEST(ChooseParent, FullAndNoTrackModes)
{
	auto c = choose_parent(latest_of(42, 0xabc), 42, kTicks, kHz, TrackMode::Full);
	EXPECT_EQ(0u, c.parent);
	EXPECT_EQ(0u, c.parent_id);
	EXPECT_EQ(uint32_t(AMBER_CKPT_F_TRACK), c.flags);
	EXPECT_FALSE(c.untrack);
	EXPECT_EQ("", c.why_full);

	c = choose_parent(latest_of(42, 0xabc), 42, kTicks, kHz, TrackMode::None);
	EXPECT_EQ(0u, c.parent);
	EXPECT_EQ(0u, c.parent_id);
	EXPECT_EQ(0u, c.flags);
	EXPECT_TRUE(c.untrack);
}

// The exact text tests/lib/amber_test.c and scripts parse.
TEST(CheckpointOutput, KindLine)
{
	EXPECT_EQ("  incremental on checkpoint 4: 12 pages saved, 300 pages unchanged",
		  kind_line(4, 12, 300, ""));
	EXPECT_EQ("  full: 312 pages saved", kind_line(0, 312, 0, ""));
	EXPECT_EQ("  full (the process executed a new program): 312 pages saved",
		  kind_line(0, 312, 0, "the process executed a new program"));
}

TEST(ChooseParent, StartTimeFromProcStat)
{
	EXPECT_EQ(std::optional<uint64_t>(12345),
		  parse_stat_start_ticks("42 (sleeper) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 "
					 "20 0 1 0 12345 2420736 200 18446744073709551615\n"));
	// comm with spaces and parentheses
	EXPECT_EQ(std::optional<uint64_t>(777),
		  parse_stat_start_ticks("7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 "
					 "0 0"));
	EXPECT_FALSE(parse_stat_start_ticks("7 (short) R 1 2 3"));
	EXPECT_FALSE(parse_stat_start_ticks("garbage"));
	EXPECT_FALSE(parse_stat_start_ticks("7 (x) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 12a 0"));

	// Our own: the real thing parses and the policy accepts it for a
	// latest recorded with the matching nanoseconds.
	std::string stat;
	{
		FILE *f = fopen("/proc/self/stat", "r");
		ASSERT_NE(nullptr, f);
		char buf[1024] = {};
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		stat.assign(buf, n);
	}
	auto ticks = parse_stat_start_ticks(stat);
	ASSERT_TRUE(ticks);
	LatestMeta l{.number = 1, .pid = 9, .start_time_ns = *ticks * 10000000ull + 9999999,
		     .track_id = 5};
	EXPECT_EQ(5u, choose_parent(l, 9, ticks, kHz, TrackMode::Incremental).parent_id);
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

// An NLMSG_ERROR reply: error, the extack TLVs; with echo, the request
// (a genetlink header and 8 bytes of attributes) sits between nlmsgerr and
// the TLVs, as without NETLINK_CAP_ACK.
Bytes nlmsgerr_msg(int error, const Bytes &tlvs, bool echo = false)
{
	const size_t req_len = NLMSG_HDRLEN + 4 + 8;
	Bytes msg(NLMSG_HDRLEN + sizeof(nlmsgerr) + (echo ? NLMSG_ALIGN(req_len) - NLMSG_HDRLEN : 0));
	nlmsghdr h = {};
	h.nlmsg_len = msg.size() + tlvs.size();
	h.nlmsg_type = NLMSG_ERROR;
	h.nlmsg_flags = (echo ? 0 : NLM_F_CAPPED) | NLM_F_ACK_TLVS;
	nlmsgerr e = {};
	e.error = error;
	e.msg.nlmsg_len = echo ? req_len : NLMSG_HDRLEN + 100;
	memcpy(msg.data(), &h, sizeof(h));
	memcpy(msg.data() + NLMSG_HDRLEN, &e, sizeof(e));
	msg.insert(msg.end(), tlvs.begin(), tlvs.end());
	return msg;
}

// The facts the tool acts on come in the extack cookie (enum
// amber_err_attr), next to the message, which is only shown.
TEST(Netlink, ExtackCookieCarriesTheFacts)
{
	AttrWriter cookie;
	cookie.put_flag(AMBER_ERR_RETRY);
	cookie.put_u32(AMBER_ERR_PAGES_FILES, 57);
	ASSERT_LE(cookie.bytes().size(), 20u);	// NETLINK_MAX_COOKIE_LEN
	AttrWriter tlv;
	tlv.put_string(NLMSGERR_ATTR_MSG, "the tree of pid 4021 grew");
	tlv.put_binary(NLMSGERR_ATTR_COOKIE, cookie.bytes());

	for (bool echo : {false, true}) {
		auto r = parse_nlmsgerr(nlmsgerr_msg(-EAGAIN, tlv.bytes(), echo));
		ASSERT_FALSE(r);
		EXPECT_EQ(EAGAIN, r.error().err);
		EXPECT_EQ("the tree of pid 4021 grew", r.error().msg);
		EXPECT_TRUE(r.error().retry);
		EXPECT_EQ(57u, r.error().pages_files);
	}

	// One fact alone.
	AttrWriter only_retry, t2;
	only_retry.put_flag(AMBER_ERR_RETRY);
	t2.put_binary(NLMSGERR_ATTR_COOKIE, only_retry.bytes());
	auto r = parse_nlmsgerr(nlmsgerr_msg(-EAGAIN, t2.bytes()));
	ASSERT_FALSE(r);
	EXPECT_TRUE(r.error().retry);
	EXPECT_FALSE(r.error().pages_files);
	EXPECT_EQ("", r.error().msg);
}

TEST(Netlink, WithoutACookieThereAreNoFacts)
{
	// The text says what older tools parsed: it is not read.
	AttrWriter tlv;
	tlv.put_string(NLMSGERR_ATTR_MSG,
		       "the tree of pid 4021 needs 57 pages files (PAGES_FDS has 40), try again");
	auto r = parse_nlmsgerr(nlmsgerr_msg(-EAGAIN, tlv.bytes()));
	ASSERT_FALSE(r);
	EXPECT_FALSE(r.error().retry);
	EXPECT_FALSE(r.error().pages_files);

	// A cookie that is not an attribute stream, and a PAGES_FILES of the
	// wrong size, are ignored; unknown facts are skipped.
	AttrWriter bad;
	bad.put_binary(NLMSGERR_ATTR_COOKIE, Bytes{1, 2, 3});
	r = parse_nlmsgerr(nlmsgerr_msg(-EAGAIN, bad.bytes()));
	ASSERT_FALSE(r);
	EXPECT_FALSE(r.error().retry);
	EXPECT_FALSE(r.error().pages_files);

	AttrWriter cookie, tlv2;
	cookie.put_u64(AMBER_ERR_PAGES_FILES, 57);
	cookie.put_u32(AMBER_ERR_MAX + 1, 1);
	tlv2.put_binary(NLMSGERR_ATTR_COOKIE, cookie.bytes());
	r = parse_nlmsgerr(nlmsgerr_msg(-EAGAIN, tlv2.bytes()));
	ASSERT_FALSE(r);
	EXPECT_FALSE(r.error().pages_files);
	EXPECT_FALSE(r.error().retry);

	// An ACK carries nothing to act on.
	EXPECT_TRUE(parse_nlmsgerr(nlmsgerr_msg(0, tlv.bytes())));
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
