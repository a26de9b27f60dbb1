// SPDX-License-Identifier: GPL-2.0
// TCP and UDP sockets as the image carries them (AMBER_FD_INET, QUEUE
// chunks with AMBER_QUEUE_SEND) and as restore plans them (restore/inet.cc).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <linux/amber.h>

#include "common/attr.h"
#include "image/image.h"
#include "restore/plan.h"

using namespace amber;

namespace {

// A TCP connection 127.0.0.1:40000 -> 127.0.0.1:5000 (fd 3, inode 20) with
// rcv_nxt - copied_seq = 3 and write_seq - snd_una = 2 (one sent).
Bytes conn_fd(uint32_t state = TCP_ESTABLISHED, uint32_t alen = 4)
{
	AttrWriter w;
	w.put_u32(AMBER_FD_NUM, 3);
	w.put_u32(AMBER_FD_TYPE, AMBER_FD_SOCK);
	w.put_string(AMBER_FD_PATH, "socket:[20]");
	w.put_u64(AMBER_FD_INO, 20);
	w.put_u64(AMBER_FD_FILE_ID, 1);
	w.put_u32(AMBER_FD_SOCK_FAMILY, AF_INET);
	w.put_u32(AMBER_FD_SOCK_TYPE, SOCK_STREAM);
	size_t n = w.begin_nest(AMBER_FD_INET);
	w.put_u32(AMBER_INET_PROTO, IPPROTO_TCP);
	w.put_u32(AMBER_INET_STATE, state);
	const uint8_t lo[4] = {127, 0, 0, 1};
	w.put_binary(AMBER_INET_SRC, ByteView(lo, alen));
	w.put_u32(AMBER_INET_SPORT, 40000);
	w.put_binary(AMBER_INET_DST, ByteView(lo, 4));
	w.put_u32(AMBER_INET_DPORT, 5000);
	w.put_flag(AMBER_INET_NODELAY);
	w.put_u32(AMBER_INET_SNDBUF, 120000);
	w.put_u32(AMBER_INET_SND_UNA, 1000);
	w.put_u32(AMBER_INET_SND_NXT, 1001);
	w.put_u32(AMBER_INET_WRITE_SEQ, 1002);
	w.put_u32(AMBER_INET_RCV_NXT, 503);
	w.put_u32(AMBER_INET_COPIED_SEQ, 500);
	w.put_flag(AMBER_INET_HELD);
	w.end_nest(n);
	return w.take();
}

QueueChunk chunk(const std::string &s, bool send)
{
	QueueChunk q;
	q.ino = 20;
	q.data.assign(s.begin(), s.end());
	q.send = send;
	return q;
}

std::string plan_msg(Checkpoint &c)
{
	std::vector<ProcImage> imgs = {{1, &c}};
	auto r = plan_shared(imgs, false);
	return r ? std::string("accepted") : r.error().msg;
}

} // namespace

TEST(InetPlan, ParsesAConnection)
{
	auto f = parse_fd(conn_fd());
	ASSERT_TRUE(f) << f.error().msg;
	ASSERT_TRUE(f->is_inet);
	EXPECT_EQ(uint32_t(IPPROTO_TCP), f->inet.proto);
	EXPECT_EQ(40000u, f->inet.sport);
	EXPECT_EQ(5000u, f->inet.dport);
	EXPECT_EQ(4u, f->inet.src.size());
	EXPECT_TRUE(f->inet.nodelay);
	EXPECT_FALSE(f->inet.keepalive);
	EXPECT_EQ(120000u, f->inet.sndbuf);
	EXPECT_TRUE(f->inet.conn);
	EXPECT_TRUE(f->inet.held);
	EXPECT_FALSE(f->inet.linger_on);
}

TEST(InetPlan, RefusesABadAddress)
{
	auto f = parse_fd(conn_fd(TCP_ESTABLISHED, 3));
	ASSERT_FALSE(f);
	EXPECT_NE(std::string::npos, f.error().msg.find("addresses of 3 and 4 bytes"))
		<< f.error().msg;
}

TEST(InetPlan, QueuesMatchTheSequenceNumbers)
{
	Checkpoint c;
	c.fds = {*parse_fd(conn_fd())};
	c.queues = {chunk("abc", false), chunk("xy", true)};
	EXPECT_EQ("accepted", plan_msg(c));
	auto sp = plan_shared({{1, &c}}, false);
	ASSERT_TRUE(sp) << sp.error().msg;
	ASSERT_EQ(1u, sp->inets.size());
	EXPECT_EQ(3u, sp->inets[0].recvq.size());
	EXPECT_EQ(2u, sp->inets[0].sendq.size());
	EXPECT_EQ(SharedKind::Inet, sp->files[sp->inets[0].file].kind);

	c.queues = {chunk("abcd", false), chunk("xy", true)};
	EXPECT_EQ("pid 1: fd 3: socket:[20]: its queues (4 and 2 bytes) do not match its sequence "
		  "numbers",
		  plan_msg(c));
	c.queues = {chunk("abc", false)};
	EXPECT_EQ("pid 1: fd 3: socket:[20]: its queues (3 and 0 bytes) do not match its sequence "
		  "numbers",
		  plan_msg(c));
}

TEST(InetPlan, HalfClosedQueuesLeaveTheFinsOut)
{
	// CLOSE_WAIT: rcv_nxt counts the peer's FIN, so 2 bytes are unread.
	Checkpoint c;
	c.fds = {*parse_fd(conn_fd(TCP_CLOSE_WAIT))};
	c.queues = {chunk("ab", false), chunk("xy", true)};
	EXPECT_EQ("accepted", plan_msg(c));
	// FIN_WAIT1: write_seq counts our FIN, so 1 byte is unacknowledged.
	c.fds = {*parse_fd(conn_fd(TCP_FIN_WAIT1))};
	c.queues = {chunk("abc", false), chunk("x", true)};
	EXPECT_EQ("accepted", plan_msg(c));
}

TEST(InetPlan, RefusesStatesItCannotRebuild)
{
	Checkpoint c;
	c.fds = {*parse_fd(conn_fd(TCP_SYN_SENT))};
	EXPECT_EQ("pid 1: fd 3: socket:[20]: TCP state 2 cannot be restored", plan_msg(c));
}

// A socket shared by two processes (nginx's listener in the master and its
// workers): the kernel marks it held in whichever process it captured
// first, which need not be the first the plan sees. Either makes the
// restore release its hold.
TEST(InetPlan, HeldInAnyProcessIsHeld)
{
	Checkpoint first, second;
	first.fds = {*parse_fd(conn_fd())};
	first.fds[0].inet.held = false;
	first.queues = {chunk("abc", false), chunk("xy", true)};
	second.fds = {*parse_fd(conn_fd())};
	ASSERT_TRUE(second.fds[0].inet.held);
	auto sp = plan_shared({{1, &first}, {2, &second}}, false);
	ASSERT_TRUE(sp) << sp.error().msg;
	ASSERT_EQ(1u, sp->inets.size());
	EXPECT_TRUE(sp->inets[0].info.held);

	second.fds[0].inet.held = false;
	sp = plan_shared({{1, &first}, {2, &second}}, false);
	ASSERT_TRUE(sp) << sp.error().msg;
	EXPECT_FALSE(sp->inets[0].info.held);
}

namespace {

// One waiting connection 127.0.0.1:5000 <- 127.0.0.1:@cport, @unread bytes
// received, nothing sent; @state and @sport to make bad ones.
void put_child(AttrWriter &w, uint32_t cport, uint32_t unread, uint32_t state = TCP_ESTABLISHED,
	       uint32_t sport = 5000)
{
	const uint8_t lo[4] = {127, 0, 0, 1};
	size_t n = w.begin_nest(AMBER_INET_CHILD);
	w.put_u32(AMBER_INET_PROTO, IPPROTO_TCP);
	w.put_u32(AMBER_INET_STATE, state);
	w.put_binary(AMBER_INET_SRC, ByteView(lo, 4));
	w.put_u32(AMBER_INET_SPORT, sport);
	w.put_binary(AMBER_INET_DST, ByteView(lo, 4));
	w.put_u32(AMBER_INET_DPORT, cport);
	w.put_u32(AMBER_INET_SND_UNA, 7000);
	w.put_u32(AMBER_INET_SND_NXT, 7000);
	w.put_u32(AMBER_INET_WRITE_SEQ, 7000);
	w.put_u32(AMBER_INET_RCV_NXT, 100 + unread);
	w.put_u32(AMBER_INET_COPIED_SEQ, 100);
	w.end_nest(n);
}

// A listener on 127.0.0.1:5000 (fd 4, inode 30) with @kids(w) inside its INET nest.
template <typename F>
Bytes listener_fd(F kids, uint32_t state = TCP_LISTEN)
{
	const uint8_t lo[4] = {127, 0, 0, 1};
	AttrWriter w;
	w.put_u32(AMBER_FD_NUM, 4);
	w.put_u32(AMBER_FD_TYPE, AMBER_FD_SOCK);
	w.put_string(AMBER_FD_PATH, "socket:[30]");
	w.put_u64(AMBER_FD_INO, 30);
	w.put_u64(AMBER_FD_FILE_ID, 2);
	w.put_u32(AMBER_FD_SOCK_FAMILY, AF_INET);
	w.put_u32(AMBER_FD_SOCK_TYPE, SOCK_STREAM);
	size_t n = w.begin_nest(AMBER_FD_INET);
	w.put_u32(AMBER_INET_PROTO, IPPROTO_TCP);
	w.put_u32(AMBER_INET_STATE, state);
	w.put_binary(AMBER_INET_SRC, ByteView(lo, 4));
	w.put_u32(AMBER_INET_SPORT, 5000);
	w.put_binary(AMBER_INET_DST, ByteView(lo, 4));
	w.put_u32(AMBER_INET_DPORT, 0);
	w.put_u32(AMBER_INET_BACKLOG, 8);
	kids(w);
	w.end_nest(n);
	return w.take();
}

QueueChunk embryo_chunk(const std::string &s, uint32_t embryo)
{
	QueueChunk q;
	q.ino = 30;
	q.data.assign(s.begin(), s.end());
	q.embryo = embryo;
	return q;
}

} // namespace

TEST(InetPlan, ListenerCarriesItsWaitingConnectionsInOrder)
{
	auto f = parse_fd(listener_fd([](AttrWriter &w) {
		put_child(w, 41000, 3);
		put_child(w, 41001, 0);
	}));
	ASSERT_TRUE(f) << f.error().msg;
	ASSERT_EQ(2u, f->inet.children.size());
	EXPECT_EQ(41000u, f->inet.children[0].dport);
	EXPECT_EQ(41001u, f->inet.children[1].dport);
	EXPECT_TRUE(f->inet.children[0].conn);

	Checkpoint c;
	c.fds = {*f};
	c.queues = {embryo_chunk("abc", 1)};
	auto sp = plan_shared({{1, &c}}, false);
	ASSERT_TRUE(sp) << sp.error().msg;
	ASSERT_EQ(1u, sp->inets.size());
	ASSERT_EQ(2u, sp->inets[0].child_recvq.size());
	EXPECT_EQ(3u, sp->inets[0].child_recvq[0].size());
	EXPECT_TRUE(sp->inets[0].recvq.empty());
	EXPECT_TRUE(sp->inets[0].child_recvq[1].empty());

	// Bytes that do not match the second one's sequence numbers, or for a third.
	c.queues = {embryo_chunk("abc", 1), embryo_chunk("x", 2)};
	EXPECT_EQ("pid 1: fd 4: socket:[30]: waiting connection 2: its queues do not match its "
		  "sequence numbers",
		  plan_msg(c));
	c.queues = {embryo_chunk("abc", 1), embryo_chunk("x", 3)};
	EXPECT_NE(std::string::npos, plan_msg(c).find("bytes for inode 30")) << plan_msg(c);
}

TEST(InetPlan, RefusesWaitingConnectionsItCannotRebuild)
{
	auto msg = [](Bytes fd) {
		auto f = parse_fd(fd);
		return f ? std::string("accepted") : f.error().msg;
	};
	EXPECT_NE(std::string::npos,
		  msg(listener_fd([](AttrWriter &w) { put_child(w, 41000, 0, TCP_CLOSE_WAIT); }))
			  .find("not an ESTABLISHED TCP one"));
	EXPECT_NE(std::string::npos,
		  msg(listener_fd([](AttrWriter &w) { put_child(w, 41000, 0, TCP_ESTABLISHED, 6000); }))
			  .find("on another port or family"));
	EXPECT_NE(std::string::npos,
		  msg(listener_fd([](AttrWriter &w) { put_child(w, 41000, 0); }, TCP_CLOSE))
			  .find("not a TCP listener"));
	EXPECT_NE(std::string::npos, msg(listener_fd([](AttrWriter &w) {
				     for (uint32_t i = 0; i <= AMBER_INET_CHILDREN_MAX; i++)
					     put_child(w, 41000 + i, 0);
			     })).find("more than 64 waiting connections"));
}
