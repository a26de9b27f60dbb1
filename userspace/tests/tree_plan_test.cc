// SPDX-License-Identifier: GPL-2.0
// Planning a tree restore (plan.h): creation order, sessions, process
// groups, zombies, and the shared objects (open file descriptions, pipes,
// socketpairs, shared memory) built from hand-made checkpoints.
#include <gtest/gtest.h>

#include <csignal>

#include <fcntl.h>
#include <sys/socket.h>

#include <linux/amber.h>

#include "restore/plan.h"

using namespace amber;

namespace {

ProcInfo proc(uint32_t pid, uint32_t ppid, uint32_t pgid, uint32_t sid)
{
	ProcInfo p;
	p.pid = pid;
	p.ppid = ppid;
	p.pgid = pgid;
	p.sid = sid;
	p.nr_threads = 1;
	return p;
}

ProcInfo zombie(uint32_t pid, uint32_t ppid, uint32_t pgid, uint32_t sid, uint32_t status)
{
	ProcInfo p = proc(pid, ppid, pgid, sid);
	p.zombie = true;
	p.exit_code = status;
	p.nr_threads = 0;
	return p;
}

FdInfo fd(uint32_t num, uint32_t type, uint64_t file_id, const std::string &path,
	  uint32_t flags = O_RDWR)
{
	FdInfo f;
	f.num = num;
	f.type = type;
	f.file_id = file_id;
	f.path = path;
	f.flags = flags;
	return f;
}

FdInfo pipe_fd(uint32_t num, uint64_t file_id, uint64_t ino, uint32_t flags)
{
	FdInfo f = fd(num, AMBER_FD_FIFO, file_id, "pipe:[" + std::to_string(ino) + "]", flags);
	f.ino = ino;
	f.pipe_size = 65536;
	return f;
}

FdInfo sock_fd(uint32_t num, uint64_t file_id, uint64_t ino, uint64_t peer,
	       uint32_t type = SOCK_STREAM)
{
	FdInfo f = fd(num, AMBER_FD_SOCK, file_id, "socket:[" + std::to_string(ino) + "]");
	f.ino = ino;
	f.peer_ino = peer;
	f.sock_family = AF_UNIX;
	f.sock_type = type;
	return f;
}

QueueChunk chunk(uint64_t ino, const std::string &s, bool eor = false)
{
	QueueChunk q;
	q.ino = ino;
	q.data.assign(s.begin(), s.end());
	q.eor = eor;
	return q;
}

std::string str(const Bytes &b)
{
	return std::string(b.begin(), b.end());
}

} // namespace

// `sh -c 'a | b'` started from a shell: the root's session and group are
// the caller's, everyone inherits them.
TEST(TreePlan, PipelineInheritsEverything)
{
	auto t = plan_process_tree({proc(100, 1, 50, 40), proc(101, 100, 50, 40),
				    proc(102, 100, 50, 40)});
	ASSERT_TRUE(t) << t.error().str();
	ASSERT_EQ(3u, t->procs.size());
	EXPECT_EQ(-1, t->procs[0].parent);
	EXPECT_EQ((std::vector<int>{1, 2}), t->procs[0].children);
	EXPECT_EQ(0, t->procs[1].parent);
	for (const PlannedProc &p : t->procs) {
		EXPECT_FALSE(p.setsid);
		EXPECT_FALSE(p.setpgid_self);
		EXPECT_FALSE(p.join);
		EXPECT_EQ(50u, p.outside_pgid);	// back into group 50 if it still exists
	}
}

TEST(TreePlan, SessionsAndGroups)
{
	// 100: root in the caller's session; 101 a new session (daemon-like)
	// with child 103 in it; 102 a group leader whose child 104 stays in
	// the root's group; 105 (child of the root) joins 102's group.
	auto t = plan_process_tree({proc(100, 1, 50, 40), proc(101, 100, 101, 101),
				    proc(102, 100, 102, 40), proc(103, 101, 101, 101),
				    proc(104, 102, 50, 40), proc(105, 100, 102, 40)});
	ASSERT_TRUE(t) << t.error().str();
	const auto &p = t->procs;
	EXPECT_TRUE(p[1].setsid);
	EXPECT_FALSE(p[1].setpgid_self);	// setsid() made it the group leader
	EXPECT_FALSE(p[3].setsid);
	EXPECT_FALSE(p[3].join);
	EXPECT_TRUE(p[2].setpgid_self);
	EXPECT_TRUE(p[4].join);			// back to the root's group
	EXPECT_TRUE(p[4].join_tool_group);
	EXPECT_TRUE(p[5].join);
	EXPECT_FALSE(p[5].join_tool_group);
	EXPECT_EQ(102u, p[5].join_pgid);
	EXPECT_EQ(50u, p[0].outside_pgid);
	EXPECT_EQ(50u, p[4].outside_pgid);
	EXPECT_EQ(0u, p[1].outside_pgid);
	EXPECT_EQ(0u, p[2].outside_pgid);
	EXPECT_EQ(3, t->index_of(103));
	EXPECT_EQ(-1, t->index_of(7));
}

TEST(TreePlan, RootLeadsItsSessionAndAChildJoinsAZombieLeader)
{
	auto t = plan_process_tree({proc(10, 1, 10, 10),
				    zombie(11, 10, 11, 10, 3 << 8), proc(12, 10, 11, 10)});
	ASSERT_TRUE(t) << t.error().str();
	EXPECT_TRUE(t->procs[0].setsid);
	EXPECT_EQ(0u, t->procs[0].outside_pgid);
	EXPECT_TRUE(t->procs[1].setpgid_self);
	EXPECT_TRUE(t->procs[2].join);
	EXPECT_EQ(11u, t->procs[2].join_pgid);
}

TEST(TreePlan, ChildOfAJoinerJoinsToo)
{
	// 11 joins 12's group after the barrier; 13 was created by 11 before
	// that, so it joins as well.
	auto t = plan_process_tree({proc(10, 1, 10, 10), proc(11, 10, 12, 10),
				    proc(12, 10, 12, 10), proc(13, 11, 12, 10)});
	ASSERT_TRUE(t) << t.error().str();
	EXPECT_TRUE(t->procs[1].join);
	EXPECT_TRUE(t->procs[3].join);
	EXPECT_EQ(12u, t->procs[3].join_pgid);
}

// CLONE_FILES / CLONE_FS sharing: from the parent, or along a chain of
// sharers; not past a parent that does not share.
TEST(TreePlan, SharedFdTableAndFs)
{
	auto with = [](ProcInfo p, uint32_t files, uint32_t fs) {
		p.files_with = files;
		p.fs_with = fs;
		return p;
	};
	auto t = plan_process_tree({proc(10, 1, 10, 10), with(proc(11, 10, 10, 10), 10, 0),
				    with(proc(12, 11, 10, 10), 10, 0), with(proc(13, 10, 10, 10), 0, 10)});
	ASSERT_TRUE(t) << t.error().msg;
	EXPECT_EQ(-1, t->procs[0].files_owner);
	EXPECT_EQ(0, t->procs[1].files_owner);
	EXPECT_EQ(-1, t->procs[1].fs_owner);
	EXPECT_EQ(0, t->procs[2].files_owner);
	EXPECT_EQ(-1, t->procs[2].fs_owner);
	EXPECT_EQ(-1, t->procs[3].files_owner);
	EXPECT_EQ(0, t->procs[3].fs_owner);

	auto r = plan_process_tree({proc(10, 1, 10, 10), proc(11, 10, 10, 10),
				    with(proc(12, 11, 10, 10), 10, 0)});
	ASSERT_FALSE(r);
	EXPECT_EQ("pid 12: shares its fd table (CLONE_FILES) with pid 10 but its parent (pid 11) "
		  "does not: clone() cannot recreate that",
		  r.error().msg);
	r = plan_process_tree({proc(10, 1, 10, 10), with(proc(11, 10, 10, 10), 0, 12),
			       proc(12, 10, 10, 10)});
	ASSERT_FALSE(r);
	EXPECT_EQ("image: TREE: pid 11: shares its cwd, root and umask (CLONE_FS) with pid 12, "
		  "not an earlier process that owns it",
		  r.error().msg);
}

TEST(TreePlan, RefusesWhatCannotBeRecreated)
{
	auto msg = [](std::vector<ProcInfo> t) {
		auto r = plan_process_tree(t);
		return r ? std::string("accepted") : r.error().msg;
	};
	// A session whose leader left, different from the root's.
	EXPECT_EQ("pid 11: session 77: its leader is not in the tree and it is not the "
		  "session of the root (pid 10)",
		  msg({proc(10, 1, 50, 40), proc(11, 10, 50, 77)}));
	// A child left in its parent's old session after the parent's setsid().
	EXPECT_EQ("pid 12: session 40 differs from its parent's (pid 11, session 11) and it "
		  "is not the session's leader: cannot recreate",
		  msg({proc(10, 1, 50, 40), proc(11, 10, 11, 11), proc(12, 11, 50, 40)}));
	EXPECT_EQ("pid 11: process group 66: its leader is not in the tree",
		  msg({proc(10, 1, 50, 40), proc(11, 10, 66, 40)}));
	EXPECT_EQ("pid 11: its parent (pid 9) is not in the tree",
		  msg({proc(10, 1, 50, 40), proc(11, 9, 50, 40)}));
	EXPECT_EQ("pid 10: the root of the tree is a zombie",
		  msg({zombie(10, 1, 50, 40, 0)}));
	EXPECT_EQ("pid 12: its parent (pid 11) is a zombie",
		  msg({proc(10, 1, 50, 40), zombie(11, 10, 50, 40, 0),
		       proc(12, 11, 50, 40)}));
	EXPECT_EQ("image: TREE: pid 11 listed twice",
		  msg({proc(10, 1, 50, 40), proc(11, 10, 50, 40), proc(11, 10, 50, 40)}));
	EXPECT_EQ("pid 11: zombie with wait status 0x137f that no exit reproduces",
		  msg({proc(10, 1, 50, 40), zombie(11, 10, 50, 40, 0x137f)}));
	EXPECT_EQ("accepted", msg({proc(10, 1, 50, 40), proc(11, 10, 50, 40)}));
}

TEST(TreePlan, ZombieExitStatus)
{
	auto z = zombie_exit(zombie(5, 1, 1, 1, 42 << 8));
	ASSERT_TRUE(z);
	EXPECT_FALSE(z->signaled);
	EXPECT_EQ(42, z->code);
	z = zombie_exit(zombie(5, 1, 1, 1, SIGTERM));
	ASSERT_TRUE(z);
	EXPECT_TRUE(z->signaled);
	EXPECT_EQ(SIGTERM, z->code);
	z = zombie_exit(zombie(5, 1, 1, 1, SIGSEGV | 0x80));	// core dumped
	ASSERT_TRUE(z);
	EXPECT_TRUE(z->signaled);
	EXPECT_EQ(SIGSEGV, z->code);
}

// `a | b | c` under a shell whose stdio is a terminal: two internal pipes
// with bytes in flight, stdio inherited, fds shared by fork share one
// description.
TEST(TreePlan, PipelinePipes)
{
	Checkpoint sh, a, b, c;
	FdInfo tty = fd(0, AMBER_FD_CHR, 1, "/dev/pts/0");
	tty.tty = true;
	FdInfo tty1 = tty, tty2 = tty;
	tty1.num = 1;
	tty2.num = 2;
	FdInfo log = fd(5, AMBER_FD_REG, 2, "/tmp/log", O_WRONLY | O_APPEND);
	log.pos = 123;
	sh.fds = {tty, tty1, tty2, log};
	a.fds = {tty, pipe_fd(1, 3, 900, O_WRONLY), tty2, log};
	b.fds = {pipe_fd(0, 4, 900, O_RDONLY), pipe_fd(1, 5, 901, O_WRONLY | O_NONBLOCK), tty2};
	c.fds = {pipe_fd(0, 6, 901, O_RDONLY), tty1, tty2};
	a.queues = {chunk(900, "hello "), chunk(900, "world")};
	b.queues = {chunk(901, "xyz")};

	auto sp = plan_shared({{1, &sh}, {2, &a}, {3, &b}, {4, &c}}, true);
	ASSERT_TRUE(sp) << sp.error().str();
	// /tmp/log once (shared by sh and a), four pipe ends, no tty.
	ASSERT_EQ(5u, sp->files.size());
	ASSERT_EQ(2u, sp->pipes.size());
	EXPECT_EQ(0u, sp->fd_file[0].count(0));	// tty inherited
	EXPECT_EQ(sp->fd_file[0].at(5), sp->fd_file[1].at(5));
	const SharedFile &lf = sp->files[sp->fd_file[0].at(5)];
	EXPECT_EQ(SharedKind::File, lf.kind);
	EXPECT_TRUE(lf.seek);
	EXPECT_EQ(123, lf.pos);
	EXPECT_EQ(O_WRONLY | O_APPEND, lf.flags);
	EXPECT_EQ("pid 1: fd 5", lf.owner);

	const SharedPipe &p900 = sp->pipes[sp->files[sp->fd_file[1].at(1)].pipe];
	EXPECT_EQ(900u, p900.ino);
	EXPECT_FALSE(p900.named);
	EXPECT_EQ(65536u, p900.size);
	EXPECT_EQ("hello world", str(p900.queue));
	EXPECT_EQ(2u, p900.files.size());
	EXPECT_EQ(sp->files[sp->fd_file[2].at(0)].pipe, sp->files[sp->fd_file[1].at(1)].pipe);
	const SharedPipe &p901 = sp->pipes[sp->files[sp->fd_file[3].at(0)].pipe];
	EXPECT_EQ("xyz", str(p901.queue));
	EXPECT_EQ(O_WRONLY | O_NONBLOCK, sp->files[sp->fd_file[2].at(1)].flags);
	EXPECT_TRUE(sp->shmem.empty());
}

// A pipe to the outside on stdio (only one direction in the checkpoint, only
// on fds 0-2) is inherited, and its queued bytes are not ours.
TEST(TreePlan, StdioPipeToTheOutsideIsInherited)
{
	Checkpoint a, b;
	a.fds = {pipe_fd(1, 1, 700, O_WRONLY)};
	b.fds = {pipe_fd(1, 1, 700, O_WRONLY)};
	a.queues = {chunk(700, "not ours")};
	auto sp = plan_shared({{1, &a}, {2, &b}}, false);
	ASSERT_TRUE(sp) << sp.error().str();
	EXPECT_TRUE(sp->files.empty());
	EXPECT_TRUE(sp->fd_file[0].empty());

	// The same pipe also on fd 4: recreated, with its bytes.
	b.fds.push_back(pipe_fd(4, 2, 700, O_RDONLY));
	sp = plan_shared({{1, &a}, {2, &b}}, false);
	ASSERT_TRUE(sp) << sp.error().str();
	ASSERT_EQ(1u, sp->pipes.size());
	EXPECT_EQ("not ours", str(sp->pipes[0].queue));
	EXPECT_EQ(1u, sp->fd_file[0].count(1));
}

// Issue 13: `echo x | md5sum` run by a shell whose echo has exited: md5sum
// holds the only end of its pipe, on fd 0, and nothing anywhere writes it.
// That pipe is the checkpoint's own (bytes, then EOF), not stdio to the
// outside: inheriting the tool's stdin made md5sum wait on a terminal.
TEST(TreePlan, StdioPipeWhoseWriterExitedIsRecreated)
{
	Checkpoint sh, md5;
	FdInfo in = pipe_fd(0, 1, 800, O_RDONLY);
	in.pipe_no_writers = true;
	md5.fds = {in};
	md5.queues = {chunk(800, "5\n")};
	auto sp = plan_shared({{1, &sh}, {2, &md5}}, false);
	ASSERT_TRUE(sp) << sp.error().str();
	ASSERT_EQ(1u, sp->pipes.size());
	EXPECT_EQ("5\n", str(sp->pipes[0].queue));
	ASSERT_EQ(1u, sp->fd_file[1].count(0));
	EXPECT_EQ(O_RDONLY, sp->files[sp->fd_file[1].at(0)].flags & O_ACCMODE);

	// A writer to a pipe nobody reads any more: recreated too (EPIPE).
	FdInfo out = pipe_fd(1, 2, 801, O_WRONLY);
	out.pipe_no_readers = true;
	sh.fds = {out};
	sp = plan_shared({{1, &sh}, {2, &md5}}, false);
	ASSERT_TRUE(sp) << sp.error().str();
	EXPECT_EQ(2u, sp->pipes.size());
	EXPECT_EQ(1u, sp->fd_file[0].count(1));

	// A writer still open somewhere (outside): inherited, as before.
	md5.fds[0].pipe_no_writers = false;
	sp = plan_shared({{1, &sh}, {2, &md5}}, false);
	ASSERT_TRUE(sp) << sp.error().str();
	EXPECT_EQ(0u, sp->fd_file[1].count(0));
}

TEST(TreePlan, SocketPairs)
{
	Checkpoint parent, w1, w2;
	// Stream pair 10/11 between parent fd 3 and worker 1 fd 3; seqpacket
	// pair 20/21 with worker 2; a dgram socket 30 whose peer is gone.
	FdInfo s10 = sock_fd(3, 1, 10, 11);
	s10.shutdown = 2;
	parent.fds = {s10, sock_fd(4, 2, 20, 21, SOCK_SEQPACKET), sock_fd(5, 3, 30, 99, SOCK_DGRAM)};
	w1.fds = {sock_fd(3, 4, 11, 10)};
	w2.fds = {sock_fd(3, 5, 21, 20, SOCK_SEQPACKET)};
	parent.queues = {chunk(10, "ab"), chunk(10, "cd"), chunk(20, "m1", true),
			 chunk(20, "m2a"), chunk(20, "m2b", true), chunk(30, "d", true)};
	w2.queues = {chunk(21, "r", true)};

	auto sp = plan_shared({{1, &parent}, {2, &w1}, {3, &w2}}, false);
	ASSERT_TRUE(sp) << sp.error().str();
	ASSERT_EQ(3u, sp->sockets.size());
	const SharedFile &f10 = sp->files[sp->fd_file[0].at(3)];
	const SharedSocket &st = sp->sockets[f10.sock];
	EXPECT_EQ(uint32_t(SOCK_STREAM), st.type);
	EXPECT_EQ(10u, st.ino[f10.side]);
	EXPECT_EQ(11u, st.ino[1 - f10.side]);
	EXPECT_EQ(2u, st.shutdown[f10.side]);
	ASSERT_EQ(1u, st.queue[f10.side].size());
	EXPECT_EQ("abcd", str(st.queue[f10.side][0]));
	EXPECT_TRUE(st.queue[1 - f10.side].empty());
	EXPECT_EQ(sp->fd_file[1].at(3), st.file[1 - f10.side]);

	const SharedFile &f20 = sp->files[sp->fd_file[0].at(4)];
	const SharedSocket &sq = sp->sockets[f20.sock];
	ASSERT_EQ(2u, sq.queue[f20.side].size());
	EXPECT_EQ("m1", str(sq.queue[f20.side][0]));
	EXPECT_EQ("m2am2b", str(sq.queue[f20.side][1]));
	ASSERT_EQ(1u, sq.queue[1 - f20.side].size());
	EXPECT_EQ("r", str(sq.queue[1 - f20.side][0]));

	const SharedFile &f30 = sp->files[sp->fd_file[0].at(5)];
	const SharedSocket &sd = sp->sockets[f30.sock];
	EXPECT_EQ(0, f30.side);
	EXPECT_EQ(0u, sd.ino[1]);
	EXPECT_EQ(-1, sd.file[1]);
	ASSERT_EQ(1u, sd.queue[0].size());
	EXPECT_EQ("d", str(sd.queue[0][0]));
}

TEST(TreePlan, RefusesBadSharedObjects)
{
	auto msg = [](std::vector<Checkpoint> cs) {
		std::vector<ProcImage> imgs;
		for (size_t i = 0; i < cs.size(); i++)
			imgs.push_back({uint32_t(i + 1), &cs[i]});
		auto r = plan_shared(imgs, false);
		return r ? std::string("accepted") : r.error().msg;
	};
	Checkpoint a;
	FdInfo tcp = sock_fd(3, 1, 10, 0);
	tcp.sock_family = AF_INET;
	a.fds = {tcp};
	EXPECT_EQ("pid 1: fd 3: socket:[10]: AF_INET sockets are not supported", msg({a}));

	a.fds = {sock_fd(3, 1, 10, 11, SOCK_DGRAM)};
	a.queues = {chunk(10, "no end")};
	EXPECT_EQ("image: QUEUES: socket:[10]: the last message has no end", msg({a}));

	a.fds = {pipe_fd(3, 1, 10, O_RDONLY)};
	a.queues = {chunk(11, "x")};
	EXPECT_EQ("pid 1: image: QUEUES: bytes for inode 11 that no fd refers to", msg({a}));

	Checkpoint b;
	a.queues.clear();
	b.fds = {fd(3, AMBER_FD_REG, 1, "/other")};
	EXPECT_EQ("pid 2: fd 3: /other: file id 1 is also pid 1: fd 3: pipe:[10]", msg({a, b}));
}

TEST(TreePlan, SharedMemoryByInode)
{
	Checkpoint a, b;
	Vma v1;
	v1.start = 0x10000;
	v1.end = 0x12000;
	v1.flags = AMBER_VMA_F_SHARED | AMBER_VMA_F_SHMEM;
	v1.dev = 5;
	v1.ino = 77;
	v1.file_size = 0x2000;
	Vma priv;
	priv.start = 0x20000;
	priv.end = 0x21000;
	priv.flags = AMBER_VMA_F_ANON;
	Vma v2 = v1;
	v2.start = 0x30000;
	v2.end = 0x31000;
	v2.pgoff = 1;
	a.vmas = {v1, priv};
	b.vmas = {priv, v2};
	auto sp = plan_shared({{1, &a}, {2, &b}}, true);
	ASSERT_TRUE(sp) << sp.error().str();
	ASSERT_EQ(1u, sp->shmem.size());
	EXPECT_EQ(0x2000u, sp->shmem[0].size);
	EXPECT_EQ((std::vector<std::pair<int, int>>{{0, 0}, {1, 1}}), sp->shmem[0].vmas);
	EXPECT_EQ(0, sp->vma_shmem[0].at(0));
	EXPECT_EQ(0u, sp->vma_shmem[0].count(1));
	EXPECT_EQ(0, sp->vma_shmem[1].at(1));
	EXPECT_EQ(0x1000u + 0x234, shmem_offset(v2, 0x30234, 0x1000));

	sp = plan_shared({{1, &a}, {2, &b}}, false);
	ASSERT_TRUE(sp);
	EXPECT_TRUE(sp->shmem.empty());
}
