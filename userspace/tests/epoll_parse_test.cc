// SPDX-License-Identifier: GPL-2.0
// An epoll's interest list as the image carries it (AMBER_FD_EPOLL_TFD).
#include <gtest/gtest.h>
#include <sys/epoll.h>

#include <linux/amber.h>

#include "common/attr.h"
#include "image/image.h"

using namespace amber;

namespace {

void put_tfd(AttrWriter &w, uint32_t tfd, uint32_t events, uint64_t data, uint64_t id)
{
	size_t n = w.begin_nest(AMBER_FD_EPOLL_TFD);
	w.put_u32(AMBER_EPOLL_TFD, tfd);
	w.put_u32(AMBER_EPOLL_EVENTS, events);
	w.put_u64(AMBER_EPOLL_DATA, data);
	if (id)
		w.put_u64(AMBER_EPOLL_FILE_ID, id);
	w.end_nest(n);
}

} // namespace

TEST(EpollParse, InterestList)
{
	AttrWriter w;
	w.put_u32(AMBER_FD_NUM, 13);
	w.put_u32(AMBER_FD_TYPE, AMBER_FD_OTHER);
	w.put_string(AMBER_FD_PATH, "anon_inode:[eventpoll]");
	w.put_u64(AMBER_FD_FILE_ID, 4);
	w.put_flag(AMBER_FD_EPOLL);
	put_tfd(w, 12, EPOLLONESHOT, 0x1212, 3);
	put_tfd(w, 10, EPOLLIN | EPOLLET | EPOLLERR | EPOLLHUP, 0x1010, 1);
	auto f = parse_fd(w.view());
	ASSERT_TRUE(f) << f.error().msg;
	EXPECT_TRUE(f->epoll);
	ASSERT_EQ(2u, f->epoll_tfds.size());
	EXPECT_EQ(12u, f->epoll_tfds[0].tfd);
	EXPECT_EQ(uint32_t(EPOLLONESHOT), f->epoll_tfds[0].events);
	EXPECT_EQ(0x1212u, f->epoll_tfds[0].data);
	EXPECT_EQ(3u, f->epoll_tfds[0].file_id);
	EXPECT_EQ(10u, f->epoll_tfds[1].tfd);
	EXPECT_EQ(1u, f->epoll_tfds[1].file_id);
}

TEST(EpollParse, EmptyInterestList)
{
	AttrWriter w;
	w.put_u32(AMBER_FD_NUM, 5);
	w.put_flag(AMBER_FD_EPOLL);
	auto f = parse_fd(w.view());
	ASSERT_TRUE(f) << f.error().msg;
	EXPECT_TRUE(f->epoll);
	EXPECT_TRUE(f->epoll_tfds.empty());
}

TEST(EpollParse, RefusesBadRegistrations)
{
	AttrWriter nofile;
	nofile.put_u32(AMBER_FD_NUM, 5);
	nofile.put_flag(AMBER_FD_EPOLL);
	put_tfd(nofile, 3, EPOLLIN, 0, 0);
	EXPECT_FALSE(parse_fd(nofile.view()));

	AttrWriter notepoll;
	notepoll.put_u32(AMBER_FD_NUM, 5);
	put_tfd(notepoll, 3, EPOLLIN, 0, 1);
	auto r = parse_fd(notepoll.view());
	ASSERT_FALSE(r);
	EXPECT_EQ("fd 5: EPOLL_TFD on a non-epoll", r.error().msg);
}
