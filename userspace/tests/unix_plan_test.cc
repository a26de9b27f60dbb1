// SPDX-License-Identifier: GPL-2.0
// How plan_shared() groups UNIX sockets (restore/unix.cc): listeners,
// accepted connections, connections waiting in a backlog, lone and
// one-way connected datagram sockets, and what it refuses by name.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>

#include <linux/amber.h>

#include "restore/plan.h"

using namespace amber;

namespace {

Bytes name(const std::string &s, bool path = true)
{
	Bytes b(s.begin(), s.end());
	if (path)
		b.push_back(0);
	else
		b.insert(b.begin(), 0);	// abstract
	return b;
}

FdInfo sock(uint32_t num, uint64_t ino, uint64_t peer, uint32_t type = SOCK_STREAM)
{
	FdInfo f;
	f.num = num;
	f.type = AMBER_FD_SOCK;
	f.file_id = num;
	f.path = "socket:[" + std::to_string(ino) + "]";
	f.flags = O_RDWR;
	f.ino = ino;
	f.peer_ino = peer;
	f.sock_family = AF_UNIX;
	f.sock_type = type;
	f.sock_opts = true;
	f.unix_no_peer = !peer;
	return f;
}

FdInfo listener(uint32_t num, uint64_t ino, const Bytes &n, const std::string &path)
{
	FdInfo f = sock(num, ino, 0);
	f.unix_listening = true;
	f.unix_backlog = 5;
	f.unix_name = n;
	f.unix_path = path;
	return f;
}

QueueChunk chunk(uint64_t ino, const std::string &s, bool eor = false, uint32_t embryo = 0)
{
	QueueChunk q;
	q.ino = ino;
	q.data.assign(s.begin(), s.end());
	q.eor = eor;
	q.embryo = embryo;
	return q;
}

Result<SharedPlan> plan(const Checkpoint &c)
{
	return plan_shared({{1, &c}}, false);
}

std::string msg(const Checkpoint &c)
{
	auto r = plan(c);
	return r ? std::string("accepted") : r.error().msg;
}

const SharedSocket &sock_of(const SharedPlan &sp, uint32_t fd)
{
	return sp.sockets[size_t(sp.files[size_t(sp.fd_file[0].at(fd))].sock)];
}

} // namespace

// A listener bound by a relative name, a connection accepted on it with its
// client, one waiting (with a stand-in for a closed client after it).
TEST(UnixPlan, ListenerAcceptedAndWaiting)
{
	Checkpoint c;
	FdInfo l = listener(10, 100, name("srv.sock"), "/run/app/srv.sock");
	l.unix_embryos = {103, 0};
	FdInfo cli = sock(11, 101, 102);
	cli.unix_no_peer = false;
	cli.unix_peer_name = name("srv.sock");
	FdInfo acc = sock(12, 102, 101);
	acc.unix_no_peer = false;
	acc.unix_name = name("srv.sock");
	acc.unix_accepted = true;
	FdInfo wait = sock(13, 103, 0);
	wait.unix_no_peer = false;
	wait.unix_peer_name = name("srv.sock");
	c.fds = {l, cli, acc, wait};
	c.queues = {chunk(102, "hello"), chunk(101, "hi")};

	auto sp = plan(c);
	ASSERT_TRUE(sp) << sp.error().str();
	const SharedSocket &ls = sock_of(*sp, 10);
	EXPECT_EQ(SocketHow::Single, ls.how);
	EXPECT_EQ("/run/app/", ls.bind_dir[0]);
	const SharedSocket &as = sock_of(*sp, 12);
	EXPECT_EQ(SocketHow::Accept, as.how);
	EXPECT_EQ(&ls, &sp->sockets[size_t(as.listener)]);
	EXPECT_EQ(102u, as.ino[0]);
	EXPECT_EQ(101u, as.ino[1]);
	ASSERT_EQ(1u, as.queue[0].size());
	EXPECT_EQ("hello", std::string(as.queue[0][0].begin(), as.queue[0][0].end()));
	const SharedSocket &ws = sock_of(*sp, 13);
	EXPECT_EQ(SocketHow::Embryo, ws.how);
	// The stand-in for the closed client comes after it, in order.
	int embryos = 0;
	for (const SharedSocket &s : sp->sockets)
		if (s.how == SocketHow::Embryo)
			embryos++;
	EXPECT_EQ(2, embryos);
	EXPECT_EQ(SocketHow::Embryo, sp->sockets.back().how);
	EXPECT_EQ(-1, sp->sockets.back().file[0]);
}

// A datagram server, a client connected to it one way (its queue is sent
// from the server), and one connected to a logger outside the checkpoint.
TEST(UnixPlan, DatagramOneWay)
{
	Checkpoint c;
	FdInfo srv = sock(10, 100, 0, SOCK_DGRAM);
	srv.unix_name = name("/run/d.sock");
	srv.unix_path = "/run/d.sock";
	FdInfo cli = sock(11, 101, 100, SOCK_DGRAM);
	cli.unix_name = name("cli", false);
	cli.unix_peer_name = name("/run/d.sock");
	FdInfo log = sock(12, 102, 555, SOCK_DGRAM);
	log.unix_peer_name = name("/dev/log");
	c.fds = {srv, cli, log};
	c.queues = {chunk(100, "m1", true), chunk(101, "r", true)};

	auto sp = plan(c);
	ASSERT_TRUE(sp) << sp.error().str();
	const SharedSocket &cs = sock_of(*sp, 11);
	EXPECT_EQ(SocketHow::Single, cs.how);
	EXPECT_EQ(name("/run/d.sock"), cs.connect_name);
	EXPECT_EQ(sp->fd_file[0].at(10), cs.sender);
	const SharedSocket &gs = sock_of(*sp, 12);
	EXPECT_EQ(name("/dev/log"), gs.connect_name);
	EXPECT_EQ(-1, gs.sender);

	// Messages from the logger cannot be sent again.
	c.queues.push_back(chunk(102, "x", true));
	EXPECT_EQ("pid 1: fd 12: socket:[102]: messages queued from its peer /dev/log, which "
		  "is not in the checkpoint",
		  msg(c));
}

TEST(UnixPlan, Refusals)
{
	Checkpoint c;
	FdInfo acc = sock(3, 100, 0);
	acc.unix_no_peer = false;
	acc.unix_name = name("srv.sock");
	acc.unix_accepted = true;
	c.fds = {acc};
	EXPECT_EQ("pid 1: fd 3: socket:[100]: accepted on srv.sock, whose listener is not in the "
		  "checkpoint",
		  msg(c));

	FdInfo l0 = listener(4, 99, name("srv.sock"), "/run/srv.sock");
	acc.peer_ino = 555;
	c.fds = {acc, l0};
	EXPECT_EQ("pid 1: fd 3: socket:[100]: its client socket:[555] is not in the checkpoint",
		  msg(c));

	FdInfo cli = sock(3, 100, 0);
	cli.unix_no_peer = false;
	cli.unix_peer_name = name("lst", false);
	c.fds = {cli};
	EXPECT_EQ("pid 1: fd 3: socket:[100]: connected to @lst, which is not in the checkpoint",
		  msg(c));

	FdInfo l = listener(3, 100, name("srv.sock"), "/run/srv.sock");
	l.unix_embryos = {777};
	c.fds = {l};
	EXPECT_EQ("pid 1: fd 3: socket:[100]: a connection from socket:[777], which is not in "
		  "the checkpoint, waits in its accept backlog",
		  msg(c));

	FdInfo rel = sock(3, 100, 0, SOCK_DGRAM);
	rel.unix_name = name("a.sock");
	rel.unix_path = "/run/b.sock";
	c.fds = {rel};
	EXPECT_EQ("pid 1: fd 3: socket:[100]: bound by the relative name a.sock, which does not "
		  "end its file's path /run/b.sock",
		  msg(c));

	FdInfo d = sock(3, 100, 101, SOCK_DGRAM);
	FdInfo e = sock(4, 101, 102, SOCK_DGRAM);
	FdInfo f = sock(5, 102, 101, SOCK_DGRAM);
	c.fds = {d, e, f};
	EXPECT_EQ("pid 1: fd 3: socket:[100]: connected to the unnamed pid 1: fd 4: socket:[101], "
		  "which is not connected back",
		  msg(c));
}

// A stream's buffers with credentials stay messages of their own, in
// order, each with its pid, uid and gid; a tree restore only, and only of
// a live process of the tree.
TEST(UnixPlan, Credentials)
{
	Checkpoint c;
	FdInfo a = sock(10, 200, 201), b = sock(11, 201, 200);
	a.unix_no_peer = b.unix_no_peer = false;
	c.fds = {a, b};
	auto cred = [](std::string s, uint32_t pid, uint32_t uid, uint32_t gid) {
		QueueChunk q = chunk(201, s, true);
		q.cred_pid = pid, q.cred_uid = uid, q.cred_gid = gid;
		return q;
	};
	c.queues = {cred("par", 7, 0, 0), chunk(201, "no", true), cred("uid", 7, 1234, 5678),
		    cred("kid", 8, 0, 0)};
	ProcInfo p7, p8, z9;
	p7.pid = 7;
	p8.pid = 8;
	p8.ppid = 7;
	z9.pid = 9;
	z9.ppid = 7;
	z9.zombie = true;
	c.tree = {p7, p8, z9};

	auto sp = plan_shared({{7, &c}}, true);
	ASSERT_TRUE(sp) << sp.error().str();
	const SharedSocket &s = sock_of(*sp, 10);
	ASSERT_EQ(4u, s.queue[1].size());
	ASSERT_EQ(4u, s.creds[1].size());
	const char *want[] = {"par", "no", "uid", "kid"};
	const uint32_t pids[] = {7, 0, 7, 8};
	for (size_t i = 0; i < 4; i++) {
		EXPECT_EQ(want[i], std::string(s.queue[1][i].begin(), s.queue[1][i].end()));
		EXPECT_EQ(pids[i], s.creds[1][i].pid);
	}
	EXPECT_EQ(1234u, s.creds[1][2].uid);
	EXPECT_EQ(5678u, s.creds[1][2].gid);
	EXPECT_TRUE(s.queue[0].empty());

	// Not a tree: nothing would exist to send them in time.
	EXPECT_EQ("pid 1: image: QUEUES: socket:[201]: a message with the credentials of pid 7, "
		  "which only a tree restore sends",
		  msg(c));
	// A zombie's or an unknown pid.
	c.queues = {cred("z", 9, 0, 0)};
	auto z = plan_shared({{7, &c}}, true);
	ASSERT_FALSE(z);
	EXPECT_EQ("pid 7: image: QUEUES: socket:[201]: a message with the credentials of pid 9, "
		  "not a live process of the tree",
		  z.error().msg);
}

namespace {

// A file in flight (QueueChunk::files) of type, path and file id.
FdInfo flight(uint32_t type, const std::string &path, uint64_t file_id, uint64_t ino = 500)
{
	FdInfo f;
	f.num = kFlightFd;
	f.type = type;
	f.path = path;
	f.file_id = file_id;
	f.ino = ino;
	f.flags = O_RDONLY;
	return f;
}

} // namespace

// Files in flight (SCM_RIGHTS): one an fd also refers to is that fd's
// description; a regular file and both ends of a pipe on their own are
// descriptions of their own, the pipe with both its ends; each message
// keeps its files in order.
TEST(UnixPlan, FilesInFlight)
{
	Checkpoint c;
	FdInfo a = sock(10, 100, 101, SOCK_DGRAM), b = sock(11, 101, 100, SOCK_DGRAM);
	a.unix_no_peer = b.unix_no_peer = false;
	FdInfo ev;
	ev.num = 12;
	ev.type = AMBER_FD_OTHER;
	ev.path = "anon_inode:[eventfd]";
	ev.file_id = 12;
	ev.eventfd = true;
	c.fds = {a, b, ev};
	QueueChunk m1 = chunk(101, "one", true), m2 = chunk(101, "two", true);
	m1.files = {flight(AMBER_FD_REG, "/data/f", 40), flight(AMBER_FD_OTHER, ev.path, 12)};
	FdInfo rd = flight(AMBER_FD_FIFO, "pipe:[77]", 41, 77), wr = rd;
	wr.file_id = 42;
	wr.flags = O_WRONLY;
	m2.files = {rd, wr};
	c.queues = {m1, chunk(101, "plain", true), m2};

	auto sp = plan(c);
	ASSERT_TRUE(sp) << sp.error().str();
	const SharedSocket &s = sock_of(*sp, 11);
	int side = s.ino[0] == 101 ? 0 : 1;
	ASSERT_EQ(3u, s.queue[side].size());
	ASSERT_EQ(3u, s.rights[side].size());
	ASSERT_EQ(2u, s.rights[side][0].size());
	const SharedFile &file = sp->files[size_t(s.rights[side][0][0])];
	EXPECT_EQ(SharedKind::File, file.kind);
	EXPECT_EQ("/data/f", file.path);
	EXPECT_EQ(sp->fd_file[0].at(12), s.rights[side][0][1]);
	EXPECT_TRUE(s.rights[side][1].empty());
	ASSERT_EQ(2u, s.rights[side][2].size());
	const SharedFile &r = sp->files[size_t(s.rights[side][2][0])];
	const SharedFile &w = sp->files[size_t(s.rights[side][2][1])];
	EXPECT_EQ(SharedKind::Pipe, r.kind);
	EXPECT_EQ(r.pipe, w.pipe);
	EXPECT_EQ(2u, sp->pipes[size_t(r.pipe)].files.size());
	// No fd of the process is any of the files only in flight.
	EXPECT_EQ(3u, sp->fd_file[0].size());
}

// What cannot be restored on its own is refused by name: an eventfd, a
// socket or a deleted file that no fd holds, and a file id that an fd
// has as something else.
TEST(UnixPlan, FilesInFlightRefused)
{
	auto with = [](const FdInfo &f) {
		Checkpoint c;
		FdInfo a = sock(10, 100, 101, SOCK_DGRAM), b = sock(11, 101, 100, SOCK_DGRAM);
		a.unix_no_peer = b.unix_no_peer = false;
		c.fds = {a, b};
		QueueChunk m = chunk(101, "m", true);
		m.files = {f};
		c.queues = {m};
		return msg(c);
	};
	FdInfo ev = flight(AMBER_FD_OTHER, "anon_inode:[eventfd]", 40);
	ev.eventfd = true;
	EXPECT_EQ("pid 1: fd 11: socket:[101]: a file in flight: anon_inode:[eventfd]: an "
		  "anonymous inode passed in a queued message (SCM_RIGHTS) and held by no fd of the "
		  "checkpoint: not supported (only regular files, directories, devices and pipes "
		  "are restored on their own)",
		  with(ev));
	EXPECT_NE(std::string::npos,
		  with(flight(AMBER_FD_SOCK, "socket:[9]", 40)).find(": a socket passed in a queued"));
	EXPECT_NE(std::string::npos, with(flight(AMBER_FD_REG, "/data/x (deleted)", 40))
					     .find("/data/x (deleted): a deleted file passed"));
	EXPECT_NE(std::string::npos, with(flight(AMBER_FD_REG, "/data/y", 10))
					     .find("/data/y: file id 10 is also pid 1: fd 10: socket:[100]"));
}
