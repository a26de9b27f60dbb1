// SPDX-License-Identifier: GPL-2.0
// Issue 5, checkpoint side: reply messages with PROC, THREADS, QUEUE chunks
// and PAGES_INDEX; whole tree replies; the THREADS, TREE and QUEUES sections
// of meta.img (round trip and hostile input); parents per process; the pages
// files pool.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <linux/amber.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <xxhash.h>

#include "checkpoint/checkpoint.h"
#include "fixtures.h"
#include "image/image.h"
#include "checkpoint/take_checkpoint.h"

using namespace amber;

// Designated initializers leave the other members at their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
using namespace amber::testing;

namespace {

// ---- encoders (what amber.ko sends) ----

struct ThreadSpec {
	uint32_t tid;
	uint64_t rip = 0x401000;
	std::string comm = "worker";
	bool shared_pending = false;	// hostile: SHARED in a thread's queue
	bool unknown_attr = false;	// hostile: an attribute this reader does not know
};

void put_thread(AttrWriter &w, const ThreadSpec &t)
{
	size_t n = w.begin_nest(AMBER_A_THREAD);
	w.put_u32(AMBER_THREAD_TID, t.tid);
	size_t r = w.begin_nest(AMBER_THREAD_REGS);
	for (int i = 1; i <= AMBER_REG_MAX; i++)
		w.put_u64(i, i == AMBER_REG_RIP ? t.rip : t.tid * 100 + i);
	w.end_nest(r);
	Bytes fpu(832, uint8_t(t.tid));
	w.put_binary(AMBER_THREAD_FPU, fpu);
	w.put_u64(AMBER_THREAD_BLOCKED, 1ull << (SIGUSR2 - 1));
	size_t p = w.begin_nest(AMBER_THREAD_PENDING);
	Bytes si(128, 0);
	si[0] = SIGUSR1;
	w.put_binary(AMBER_SIGPENDING_SIGINFO, si);
	if (t.shared_pending)
		w.put_flag(AMBER_SIGPENDING_SHARED);
	w.end_nest(p);
	w.put_u64(AMBER_THREAD_CLEAR_CHILD_TID, 0x7f0000000000 + t.tid);
	w.put_u64(AMBER_THREAD_ROBUST_LIST, 0x7f0000001000 + t.tid);
	w.put_u64(AMBER_THREAD_ROBUST_LIST_LEN, 24);
	w.put_u64(AMBER_THREAD_SAS_SP, 0);
	w.put_u64(AMBER_THREAD_SAS_SIZE, 0);
	w.put_u32(AMBER_THREAD_SAS_FLAGS, 2);
	w.put_u64(AMBER_THREAD_RSEQ, 0x7f0000002000 + t.tid * 32);
	w.put_u32(AMBER_THREAD_RSEQ_LEN, 32);
	w.put_u32(AMBER_THREAD_RSEQ_SIG, 0x53053053);
	w.put_string(AMBER_THREAD_COMM, t.comm);
	if (t.unknown_attr)
		w.put_u32(AMBER_THREAD_MAX + 1, 1);
	w.end_nest(n);
}

struct ProcSpec {
	uint32_t pid;
	uint32_t ppid = 1;
	uint32_t pgid = 0;
	uint32_t sid = 0;
	bool zombie = false;
	uint32_t exit_code = 0;
	uint32_t nr_threads = 1;
};

void put_proc(AttrWriter &w, const ProcSpec &p)
{
	size_t n = w.begin_nest(AMBER_A_PROC);
	w.put_u32(AMBER_PROC_PID, p.pid);
	w.put_u32(AMBER_PROC_PPID, p.ppid);
	w.put_u32(AMBER_PROC_PGID, p.pgid ? p.pgid : p.pid);
	w.put_u32(AMBER_PROC_SID, p.sid ? p.sid : p.pid);
	if (p.zombie) {
		w.put_flag(AMBER_PROC_ZOMBIE);
		w.put_u32(AMBER_PROC_EXIT_CODE, p.exit_code);
		w.put_u32(AMBER_PROC_NR_THREADS, 0);
	} else {
		w.put_u32(AMBER_PROC_NR_THREADS, p.nr_threads);
	}
	w.end_nest(n);
}

struct QueueSpec {
	uint64_t ino;
	std::string data;
	bool eor = false;
	// AMBER_QUEUE_CRED_PID, _UID, _GID, each put when not ~0.
	uint32_t cred[3] = {~0u, ~0u, ~0u};
	// AMBER_QUEUE_FILE nests: a regular file of each file id (0: without
	// FILE_ID), with AMBER_FD_NUM when file_num.
	std::vector<uint64_t> files = {};
	bool file_num = false;
};

void put_queue(AttrWriter &w, const QueueSpec &q)
{
	size_t n = w.begin_nest(AMBER_A_QUEUE);
	w.put_u64(AMBER_QUEUE_INO, q.ino);
	w.put_binary(AMBER_QUEUE_DATA,
		     ByteView(reinterpret_cast<const uint8_t *>(q.data.data()), q.data.size()));
	if (q.eor)
		w.put_flag(AMBER_QUEUE_EOR);
	for (int i = 0; i < 3; i++)
		if (q.cred[i] != ~0u)
			w.put_u32(AMBER_QUEUE_CRED_PID + i, q.cred[i]);
	for (uint64_t id : q.files) {
		size_t f = w.begin_nest(AMBER_QUEUE_FILE);
		if (q.file_num)
			w.put_u32(AMBER_FD_NUM, 7);
		w.put_u32(AMBER_FD_TYPE, AMBER_FD_REG);
		w.put_string(AMBER_FD_PATH, "/data/f");
		if (id)
			w.put_u64(AMBER_FD_FILE_ID, id);
		w.end_nest(f);
	}
	w.end_nest(n);
}

void put_fd(AttrWriter &w, const FdInfo &f)
{
	size_t n = w.begin_nest(AMBER_A_FD);
	w.put_u32(AMBER_FD_NUM, f.num);
	w.put_u32(AMBER_FD_TYPE, f.type);
	w.put_u32(AMBER_FD_FLAGS, f.flags);
	w.put_string(AMBER_FD_PATH, f.path);
	w.put_u64(AMBER_FD_INO, f.ino);
	if (f.file_id)
		w.put_u64(AMBER_FD_FILE_ID, f.file_id);
	if (f.sock_family)
		w.put_u32(AMBER_FD_SOCK_FAMILY, f.sock_family);
	if (f.sock_type)
		w.put_u32(AMBER_FD_SOCK_TYPE, f.sock_type);
	if (f.peer_ino)
		w.put_u64(AMBER_FD_PEER_INO, f.peer_ino);
	if (f.shutdown)
		w.put_u32(AMBER_FD_SHUTDOWN, f.shutdown);
	if (f.pipe_size)
		w.put_u32(AMBER_FD_PIPE_SIZE, f.pipe_size);
	w.end_nest(n);
}

// One live process's reply message. threads: the non-leader threads;
// split_threads puts each in its own THREADS nest, as the kernel does past
// 64 KiB.
struct MessageSpec {
	ProcSpec proc;
	std::vector<ThreadSpec> threads;
	std::vector<QueueSpec> queues;
	std::vector<FdInfo> fds;
	std::optional<uint32_t> pages_index;
	bool split_threads = false;
	uint64_t track_id = 0;
	std::optional<uint64_t> parent_id;
};

Bytes message(MessageSpec m)
{
	if (!m.proc.zombie && m.proc.nr_threads == 1)
		m.proc.nr_threads = m.threads.size() + 1;
	AttrWriter w;
	put_proc(w, m.proc);
	if (m.proc.zombie)
		return w.take();
	w.put_u64(AMBER_A_STOPPED_NS, 5555);
	w.put_u64(AMBER_A_PAGES_BYTES, 16);
	w.put_u64(AMBER_A_PAGES_NR, 0);
	if (m.track_id)
		w.put_u64(AMBER_A_TRACK_ID, m.track_id);
	if (m.parent_id)
		w.put_u64(AMBER_A_PARENT_ID, *m.parent_id);
	if (m.pages_index)
		w.put_u32(AMBER_A_PAGES_INDEX, *m.pages_index);
	size_t t = w.begin_nest(AMBER_A_TASK);
	w.put_u32(AMBER_TASK_PID, m.proc.pid);
	w.put_string(AMBER_TASK_COMM, "leader");
	w.put_u64(AMBER_TASK_START_TIME_NS, 1000 + m.proc.pid);
	w.end_nest(t);
	size_t mm = w.begin_nest(AMBER_A_MM);
	w.put_u64(AMBER_MM_BRK, 0x601000);
	w.end_nest(mm);
	size_t r = w.begin_nest(AMBER_A_REGS);
	for (int i = 1; i <= AMBER_REG_MAX; i++)
		w.put_u64(i, i);
	w.end_nest(r);
	w.put_binary(AMBER_A_FPU, Bytes(832, 0));
	size_t s = w.begin_nest(AMBER_A_SIGNALS);
	w.put_u64(AMBER_SIG_BLOCKED, 0);
	w.end_nest(s);
	size_t vs = w.begin_nest(AMBER_A_VMAS);
	size_t v = w.begin_nest(AMBER_A_VMA);
	w.put_u64(AMBER_VMA_START, 0x600000);
	w.put_u64(AMBER_VMA_END, 0x602000);
	w.put_u32(AMBER_VMA_FLAGS, AMBER_VMA_F_ANON);
	w.end_nest(v);
	w.end_nest(vs);
	size_t fs = w.begin_nest(AMBER_A_FDS);
	for (const FdInfo &f : m.fds)
		put_fd(w, f);
	w.end_nest(fs);
	if (!m.threads.empty() && !m.split_threads) {
		size_t ts = w.begin_nest(AMBER_A_THREADS);
		for (const ThreadSpec &th : m.threads)
			put_thread(w, th);
		w.end_nest(ts);
	}
	if (m.split_threads) {
		for (const ThreadSpec &th : m.threads) {
			size_t ts = w.begin_nest(AMBER_A_THREADS);
			put_thread(w, th);
			w.end_nest(ts);
		}
	}
	for (const QueueSpec &q : m.queues)
		put_queue(w, q);
	return w.take();
}

std::string reply_error(const Bytes &msg)
{
	auto r = parse_checkpoint_reply(msg);
	return r ? "" : r.error().msg;
}

std::string group_error(const std::vector<Bytes> &msgs, uint32_t pid = 100, bool tree = true,
			size_t pool = 8)
{
	auto g = parse_group_reply(msgs, pid, tree, pool);
	return g ? "" : g.error().msg;
}

// A tree: 100 (3 threads) -> 101 (pipe reader), 100 -> 102 (zombie),
// 101 -> 103 (new session).
std::vector<Bytes> tree_messages()
{
	return {
		message({.proc = {.pid = 100, .ppid = 1},
			 .threads = {{.tid = 104}, {.tid = 105}},
			 .queues = {{.ino = 900, .data = "hello "}, {.ino = 900, .data = "world"}},
			 .fds = {{.num = 3, .type = AMBER_FD_FIFO, .flags = O_WRONLY,
				  .path = "pipe:[900]", .ino = 900, .file_id = 1,
				  .pipe_size = 65536}}}),
		message({.proc = {.pid = 101, .ppid = 100, .pgid = 100, .sid = 100},
			 .fds = {{.num = 0, .type = AMBER_FD_FIFO, .flags = O_RDONLY,
				  .path = "pipe:[900]", .ino = 900, .file_id = 2,
				  .pipe_size = 65536}},
			 .pages_index = 0}),
		message({.proc = {.pid = 102, .ppid = 100, .zombie = true, .exit_code = 3 << 8}}),
		message({.proc = {.pid = 103, .ppid = 101, .pgid = 103, .sid = 103},
			 .pages_index = 1}),
	};
}

} // namespace

// ---- one reply message ----

TEST(TreeReply, ThreadsProcQueuesAndPagesIndex)
{
	for (bool split : {false, true}) {
		auto r = parse_checkpoint_reply(message({
			.proc = {.pid = 200, .ppid = 7, .pgid = 7, .sid = 6},
			.threads = {{.tid = 201, .rip = 0x401111}, {.tid = 230, .comm = "io"}},
			.queues = {{.ino = 5, .data = "abc"},
				   {.ino = 5, .data = "", .eor = true},
				   {.ino = 6, .data = std::string(AMBER_QUEUE_CHUNK, 'x')}},
			.pages_index = 3,
			.split_threads = split,
		}));
		ASSERT_TRUE(r) << r.error().str();
		ASSERT_TRUE(r->proc);
		EXPECT_EQ(200u, r->pid());
		EXPECT_EQ(7u, r->proc->ppid);
		EXPECT_EQ(7u, r->proc->pgid);
		EXPECT_EQ(6u, r->proc->sid);
		EXPECT_EQ(3u, r->proc->nr_threads);
		EXPECT_EQ(3u, r->nr_threads());
		EXPECT_FALSE(r->zombie());
		ASSERT_TRUE(r->pages_index);
		EXPECT_EQ(3u, *r->pages_index);

		ASSERT_EQ(2u, r->thread_list.size());
		const ThreadInfo &t = r->thread_list[0];
		EXPECT_EQ(201u, t.tid);
		EXPECT_EQ(0x401111u, t.regs[AMBER_REG_RIP]);
		EXPECT_EQ(201u * 100 + AMBER_REG_RSP, t.regs[AMBER_REG_RSP]);
		EXPECT_EQ(832u, t.fpu.size());
		EXPECT_EQ(1ull << (SIGUSR2 - 1), t.blocked);
		ASSERT_EQ(1u, t.pending.size());
		EXPECT_FALSE(t.pending[0].shared);
		EXPECT_EQ(0x7f0000000000u + 201, t.clear_child_tid);
		EXPECT_EQ(0x7f0000001000u + 201, t.robust_list);
		EXPECT_EQ(24u, t.robust_list_len);
		EXPECT_EQ(2u, t.sas_flags);
		EXPECT_EQ(32u, t.rseq_len);
		EXPECT_EQ(0x53053053u, t.rseq_sig);
		EXPECT_EQ("worker", t.comm);
		EXPECT_EQ("io", r->thread_list[1].comm);
		EXPECT_EQ(230u, r->thread_list[1].tid);

		// raw: the whole AMBER_A_THREAD attribute, which parses back to it.
		auto raw = parse_attrs(t.raw);
		ASSERT_TRUE(raw);
		ASSERT_EQ(1u, raw->size());
		EXPECT_EQ(AMBER_A_THREAD, (*raw)[0].type);
		EXPECT_TRUE((*raw)[0].nested);
		auto again = parse_thread((*raw)[0].data);
		ASSERT_TRUE(again);
		EXPECT_EQ(201u, again->tid);
		// The THREADS section bytes hold both threads, in order.
		auto both = parse_threads(r->threads, 200);
		ASSERT_TRUE(both) << both.error().str();
		EXPECT_EQ(2u, both->size());

		ASSERT_EQ(3u, r->queue_list.size());
		EXPECT_EQ(5u, r->queue_list[0].ino);
		EXPECT_EQ((Bytes{'a', 'b', 'c'}), r->queue_list[0].data);
		EXPECT_FALSE(r->queue_list[0].eor);
		EXPECT_TRUE(r->queue_list[1].data.empty());
		EXPECT_TRUE(r->queue_list[1].eor);
		EXPECT_EQ(size_t(AMBER_QUEUE_CHUNK), r->queue_list[2].data.size());
		auto qs = parse_queues(r->queues);
		ASSERT_TRUE(qs) << qs.error().str();
		EXPECT_EQ(3u, qs->size());
		EXPECT_TRUE(check_supported(*r));
	}
}

TEST(TreeReply, ZombieHasOnlyProc)
{
	auto r = parse_checkpoint_reply(
		message({.proc = {.pid = 300, .ppid = 100, .zombie = true, .exit_code = 9}}));
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_TRUE(r->zombie());
	EXPECT_EQ(300u, r->pid());
	EXPECT_EQ(9u, r->proc->exit_code);
	EXPECT_EQ(0u, r->nr_threads());
	EXPECT_TRUE(r->core.empty());
	EXPECT_TRUE(check_supported(*r));

	// Anything else with a zombie's PROC is refused.
	AttrWriter w;
	w.put_raw(message({.proc = {.pid = 300, .ppid = 100, .zombie = true, .exit_code = 9}}));
	w.put_u64(AMBER_A_STOPPED_NS, 1);
	EXPECT_EQ("reply: pid 300: a zombie with attribute " + std::to_string(AMBER_A_STOPPED_NS),
		  reply_error(w.bytes()));
}

TEST(TreeReply, HostileMessagesAreRefused)
{
	// NR_THREADS disagrees with THREADS.
	EXPECT_EQ("reply: pid 200: 5 threads, THREADS lists 1 besides the leader",
		  reply_error(message({.proc = {.pid = 200, .nr_threads = 5},
				       .threads = {{.tid = 201}}})));
	// Duplicate and unordered TIDs, the leader among the threads.
	EXPECT_EQ("reply: THREADS: thread 201: listed twice",
		  reply_error(message({.proc = {.pid = 200},
				       .threads = {{.tid = 201}, {.tid = 201}}})));
	EXPECT_EQ("reply: THREADS: thread 201: not in ascending TID order",
		  reply_error(message({.proc = {.pid = 200},
				       .threads = {{.tid = 205}, {.tid = 201}}})));
	EXPECT_EQ("reply: THREADS: thread 200: is the thread group leader",
		  reply_error(message({.proc = {.pid = 200}, .threads = {{.tid = 200}}})));
	// A process-wide signal in a thread's own queue.
	EXPECT_EQ("reply: THREADS: thread 0: THREAD attribute " +
			  std::to_string(AMBER_THREAD_PENDING) +
			  ": a process-wide (SHARED) pending signal",
		  reply_error(message({.proc = {.pid = 200},
				       .threads = {{.tid = 201, .shared_pending = true}}})));
	// Unknown thread attribute (it would be sent to the kernel verbatim).
	EXPECT_EQ("reply: THREADS: thread 0: THREAD: unknown attribute " +
			  std::to_string(AMBER_THREAD_MAX + 1),
		  reply_error(message({.proc = {.pid = 200},
				       .threads = {{.tid = 201, .unknown_attr = true}}})));
	// comm longer than TASK_COMM_LEN - 1.
	EXPECT_NE(std::string::npos,
		  reply_error(message({.proc = {.pid = 200},
				       .threads = {{.tid = 201, .comm = "0123456789abcdef"}}}))
			  .find("comm of 16 characters (at most 15)"));
	// Queue chunks: too big, empty without EOR, an inode split in two runs.
	EXPECT_NE(std::string::npos,
		  reply_error(message({.proc = {.pid = 200},
				       .queues = {{.ino = 5,
						   .data = std::string(AMBER_QUEUE_CHUNK + 1, 'x')}}}))
			  .find("bytes, at most 32768"));
	EXPECT_EQ("reply: QUEUE: chunk 0: inode 5: empty chunk",
		  reply_error(message({.proc = {.pid = 200}, .queues = {{.ino = 5, .data = ""}}})));
	EXPECT_EQ("reply: QUEUE: chunk 2: inode 5: its chunks are not contiguous",
		  reply_error(message({.proc = {.pid = 200},
				       .queues = {{.ino = 5, .data = "a"},
						  {.ino = 6, .data = "b"},
						  {.ino = 5, .data = "c"}}})));
	EXPECT_EQ("reply: QUEUE: chunk 0: chunk without an inode",
		  reply_error(message({.proc = {.pid = 200}, .queues = {{.ino = 0, .data = "a"}}})));
	// PROC of one process, TASK of another.
	Bytes a = message({.proc = {.pid = 200}});
	auto attrs = parse_attrs(a);
	ASSERT_TRUE(attrs);
	AttrWriter w;
	put_proc(w, {.pid = 201});
	for (const Attr &x : *attrs)
		if (x.type != AMBER_A_PROC)
			w.put_raw(x.raw);
	EXPECT_EQ("reply: pid 201: TASK is of pid 200", reply_error(w.bytes()));
	// A live process without NR_THREADS; a zombie with threads.
	AttrWriter p;
	size_t n = p.begin_nest(AMBER_A_PROC);
	p.put_u32(AMBER_PROC_PID, 9);
	p.end_nest(n);
	EXPECT_EQ("reply: PROC: pid 9: a live process without NR_THREADS", reply_error(p.bytes()));
	AttrWriter z;
	n = z.begin_nest(AMBER_A_PROC);
	z.put_u32(AMBER_PROC_PID, 9);
	z.put_flag(AMBER_PROC_ZOMBIE);
	z.put_u32(AMBER_PROC_EXIT_CODE, 0);
	z.put_u32(AMBER_PROC_NR_THREADS, 2);
	z.end_nest(n);
	EXPECT_EQ("reply: PROC: pid 9: a zombie with 2 threads", reply_error(z.bytes()));
}

TEST(TreeReply, SupportedFdsOfATree)
{
	// Pipes at any fd, UNIX socketpairs of every type: restored.
	FdInfo pipe{.num = 7, .type = AMBER_FD_FIFO, .flags = O_WRONLY, .path = "pipe:[9]",
		    .ino = 9, .file_id = 1, .pipe_size = 4096};
	FdInfo fifo{.num = 8, .type = AMBER_FD_FIFO, .flags = O_RDONLY, .path = "/tmp/fifo",
		    .ino = 10, .file_id = 2, .pipe_size = 65536};
	std::vector<FdInfo> fds{pipe, fifo};
	uint32_t num = 9;
	for (uint32_t type : {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET})
		fds.push_back({.num = num++, .type = AMBER_FD_SOCK, .flags = O_RDWR,
			       .path = "socket:[11]", .ino = 11 + num, .file_id = num,
			       .sock_family = AF_UNIX, .sock_type = type, .peer_ino = 50 + num,
			       .shutdown = 1});
	auto r = parse_checkpoint_reply(message({.proc = {.pid = 200}, .fds = fds}));
	ASSERT_TRUE(r) << r.error().str();
	EXPECT_TRUE(check_supported(*r));
	ASSERT_EQ(5u, r->fd_list.size());
	EXPECT_EQ(4096u, r->fd_list[0].pipe_size);
	EXPECT_EQ(1u, r->fd_list[0].file_id);
	EXPECT_EQ(uint32_t(AF_UNIX), r->fd_list[2].sock_family);
	EXPECT_EQ(uint32_t(SOCK_STREAM), r->fd_list[2].sock_type);
	EXPECT_EQ(uint32_t(SOCK_SEQPACKET), r->fd_list[4].sock_type);
	EXPECT_EQ(50u + 10, r->fd_list[2].peer_ino);
	EXPECT_EQ(1u, r->fd_list[2].shutdown);

	auto refused = [](FdInfo f) {
		auto r = parse_checkpoint_reply(message({.proc = {.pid = 200}, .fds = {f}}));
		EXPECT_TRUE(r) << r.error().str();
		auto c = check_supported(*r);
		return c ? std::string() : c.error().msg;
	};
	EXPECT_EQ("fd 5: socket:[77]: AF_INET SOCK_STREAM sockets are not supported",
		  refused({.num = 5, .type = AMBER_FD_SOCK, .path = "socket:[77]",
			   .sock_family = AF_INET, .sock_type = SOCK_STREAM}));
	EXPECT_EQ("fd 5: socket:[77]: AF_UNIX SOCK_RAW sockets are not supported",
		  refused({.num = 5, .type = AMBER_FD_SOCK, .path = "socket:[77]",
			   .sock_family = AF_UNIX, .sock_type = SOCK_RAW}));
	// Without a peer: a stream whose peer closed is fine, an unconnected socket is not.
	EXPECT_EQ("", refused({.num = 5, .type = AMBER_FD_SOCK, .path = "socket:[77]",
			       .sock_family = AF_UNIX, .sock_type = SOCK_STREAM, .shutdown = 3}));
	EXPECT_EQ("fd 5: socket:[77]: an unconnected AF_UNIX SOCK_STREAM socket is not supported",
		  refused({.num = 5, .type = AMBER_FD_SOCK, .path = "socket:[77]",
			   .sock_family = AF_UNIX, .sock_type = SOCK_STREAM}));
	EXPECT_EQ("fd 5: socket:[77]: an unconnected AF_UNIX SOCK_DGRAM socket is not supported",
		  refused({.num = 5, .type = AMBER_FD_SOCK, .path = "socket:[77]",
			   .sock_family = AF_UNIX, .sock_type = SOCK_DGRAM, .shutdown = 3}));
	// A socket amber.ko did not describe.
	EXPECT_EQ("fd 5: socket:[77] is not supported yet",
		  refused({.num = 5, .type = AMBER_FD_SOCK, .path = "socket:[77]"}));
	EXPECT_EQ("fd 4: anon_inode:[eventfd] is not supported yet",
		  refused({.num = 4, .type = AMBER_FD_OTHER, .path = "anon_inode:[eventfd]"}));
	// fd numbers are unique.
	EXPECT_EQ("reply: fd 4 is listed twice",
		  reply_error(message({.proc = {.pid = 200},
				       .fds = {{.num = 4, .type = AMBER_FD_FIFO, .path = "pipe:[1]"},
					       {.num = 4, .type = AMBER_FD_FIFO,
						.path = "pipe:[1]"}}})));
}

// ---- a whole reply ----

TEST(TreeReply, GroupOfFourWithAZombie)
{
	auto g = parse_group_reply(tree_messages(), 100, true, 6);
	ASSERT_TRUE(g) << g.error().str();
	ASSERT_EQ(4u, g->procs.size());
	EXPECT_EQ(1u, g->zombies);
	EXPECT_EQ(5u, g->threads);	// 3 + 1 + 0 + 1
	EXPECT_EQ(100u, g->root().pid());
	EXPECT_EQ(5555u, g->root().stopped_ns);
	EXPECT_EQ(0u, *g->procs[1].pages_index);
	EXPECT_TRUE(g->procs[2].zombie());
	EXPECT_EQ(1u, *g->procs[3].pages_index);

	// The TREE section: every PROC, in order, and it reads back.
	auto tree = parse_tree(g->tree, 100);
	ASSERT_TRUE(tree) << tree.error().str();
	ASSERT_EQ(4u, tree->size());
	EXPECT_EQ(3u, (*tree)[0].nr_threads);
	EXPECT_EQ(101u, (*tree)[1].pid);
	EXPECT_EQ(100u, (*tree)[1].pgid);
	EXPECT_TRUE((*tree)[2].zombie);
	EXPECT_EQ(3u << 8, (*tree)[2].exit_code);
	EXPECT_EQ(103u, (*tree)[3].sid);

	// Without TREE: one message, no TREE section.
	auto one = parse_group_reply({tree_messages()[0]}, 100, false, 0);
	ASSERT_TRUE(one) << one.error().str();
	EXPECT_TRUE(one->tree.empty());
	EXPECT_EQ(3u, one->threads);
	// A single-process reply of a kernel that sends no PROC is still read.
	auto old = parse_group_reply({make_reply()}, 4242, false, 0);
	ASSERT_TRUE(old) << old.error().str();
	EXPECT_EQ(1u, old->threads);
}

TEST(TreeReply, HostileGroupsAreRefused)
{
	auto msgs = tree_messages();
	EXPECT_EQ("pid 100: amber.ko acknowledged without a reply", group_error({}));
	EXPECT_EQ("pid 100: 4 reply messages for one process", group_error(msgs, 100, false));
	EXPECT_EQ("pid 101: the reply begins with pid 100", group_error(msgs, 101));
	// Parents after children.
	EXPECT_EQ("reply: pid 103: its parent 101 is not listed before it",
		  group_error({msgs[0], msgs[3], msgs[1]}));
	// The same pid twice.
	EXPECT_EQ("reply: pid 101: listed twice",
		  group_error({msgs[0], msgs[1],
			       message({.proc = {.pid = 101, .ppid = 100}, .pages_index = 1})}));
	// Root as a zombie; a non-root without PAGES_INDEX or with a bad one.
	EXPECT_EQ("pid 100: reported as a zombie",
		  group_error({message({.proc = {.pid = 100, .zombie = true}})}));
	EXPECT_EQ("pid 101: no PAGES_INDEX",
		  group_error({msgs[0], message({.proc = {.pid = 101, .ppid = 100}})}));
	EXPECT_EQ("pid 101: PAGES_INDEX 8 out of range",
		  group_error({msgs[0],
			       message({.proc = {.pid = 101, .ppid = 100}, .pages_index = 8})}));
	EXPECT_EQ("pid 103: PAGES_INDEX 0 already used",
		  group_error({msgs[0], msgs[1],
			       message({.proc = {.pid = 103, .ppid = 101}, .pages_index = 0})}));
	EXPECT_EQ("pid 100: has a PAGES_INDEX (its pages go to PAGES_FD)",
		  group_error({message({.proc = {.pid = 100}, .pages_index = 0})}));
	// The queued bytes of one inode in two processes' messages.
	EXPECT_EQ("pid 101: queued bytes of inode 900 also came with pid 100",
		  group_error({msgs[0], message({.proc = {.pid = 101, .ppid = 100},
						 .queues = {{.ino = 900, .data = "x"}},
						 .pages_index = 0})}));
	// A tree message without PROC.
	EXPECT_NE(std::string::npos, group_error({msgs[0], make_reply()}).find("without PROC"));
}

// ---- parents per process ----

TEST(TreeParents, PerProcessChoice)
{
	constexpr long hz = 100;
	auto ticks = [](uint32_t pid) { return uint64_t(1000 + pid) * 10000000ull / 10000000ull; };
	const std::vector<LatestMeta> latest = {
		{.number = 7, .pid = 101, .start_time_ns = 1101 * 10000000ull, .track_id = 0x101},
		{.number = 7, .pid = 102, .start_time_ns = 1102 * 10000000ull, .track_id = 0x102},
		{.number = 7, .pid = 103, .start_time_ns = 1103 * 10000000ull, .track_id = 0},
	};
	const std::vector<ProcessStart> now = {
		{100, ticks(100)},	// the root: not in the result
		{101, ticks(101)},	// same process: incremental
		{102, ticks(102) + 1},	// pid reused: full
		{103, ticks(103)},	// untracked: full
		{104, ticks(104)},	// new since: full, no reason
		{105, std::nullopt},	// start unknown, not in latest: full
	};
	auto c = choose_tree_parents(7, 100, latest, 100, now, hz, TrackMode::Incremental);
	ASSERT_EQ(5u, c.size());
	auto of = [&](uint32_t pid) {
		for (auto &[p, ch] : c)
			if (p == pid)
				return ch;
		ADD_FAILURE() << "no choice for pid " << pid;
		return ParentChoice{};
	};
	EXPECT_EQ(7u, of(101).parent);
	EXPECT_EQ(0x101u, of(101).parent_id);
	EXPECT_EQ(uint32_t(AMBER_CKPT_F_TRACK), of(101).flags);
	EXPECT_EQ(0u, of(102).parent_id);
	EXPECT_EQ("checkpoint 7 is of another process with pid 102: restored since, or the pid "
		  "was reused",
		  of(102).why_full);
	EXPECT_EQ(0u, of(103).parent_id);
	EXPECT_EQ("checkpoint 7 is not tracked", of(103).why_full);
	EXPECT_EQ(0u, of(104).parent_id);
	EXPECT_EQ("", of(104).why_full);
	EXPECT_EQ(0u, of(105).parent_id);

	// Latest is of another root: nothing chains on it.
	c = choose_tree_parents(7, 99, latest, 100, now, hz, TrackMode::Incremental);
	for (auto &[p, ch] : c) {
		EXPECT_EQ(0u, ch.parent_id) << p;
		EXPECT_EQ("checkpoint 7 is of pid 99", ch.why_full) << p;
	}
	// Empty store; --full; --no-track.
	c = choose_tree_parents(std::nullopt, 0, {}, 100, now, hz, TrackMode::Incremental);
	for (auto &[p, ch] : c)
		EXPECT_EQ(0u, ch.parent_id) << p;
	c = choose_tree_parents(7, 100, latest, 100, now, hz, TrackMode::Full);
	EXPECT_EQ(0u, of(101).parent_id);
	EXPECT_EQ(uint32_t(AMBER_CKPT_F_TRACK), of(101).flags);
	c = choose_tree_parents(7, 100, latest, 100, now, hz, TrackMode::None);
	EXPECT_EQ(0u, of(101).parent_id);
	EXPECT_TRUE(of(101).untrack);
	EXPECT_EQ(0u, of(101).flags);
}

// ---- the pages files pool ----

TEST(TreePool, SizingAndTheKernelsCount)
{
	EXPECT_EQ(4u, pages_pool_size(0));
	EXPECT_EQ(11u, pages_pool_size(7));
	EXPECT_EQ(40u, pages_pool_size(32));
	EXPECT_EQ(1250u, pages_pool_size(1000));
	for (size_t n : {0, 1, 5, 100, 5000})
		EXPECT_GT(pages_pool_size(n), n);

}

// An error as parse_nlmsgerr() returns it: errno, the kernel's text (for
// people only) and the facts of its extack cookie.
Error kernel_error(int err, std::string msg, std::optional<uint32_t> pages_files, bool retry)
{
	Error e{err, std::move(msg)};
	e.pages_files = pages_files;
	e.retry = retry;
	return e;
}

TEST(TreePool, RetriedWithTheKernelsCountOrWhenTransient)
{
	std::vector<size_t> sent;
	auto kernel = [&](size_t needs) {
		return [&sent, needs](size_t n) -> Result<void> {
			sent.push_back(n);
			if (n >= needs)
				return {};
			return tl::unexpected(kernel_error(EAGAIN, "too few pages files",
							   uint32_t(needs), false));
		};
	};
	// Enough at once: one request.
	EXPECT_TRUE(with_retries(8, kernel(5), [] { return size_t(0); }));
	EXPECT_EQ((std::vector<size_t>{8}), sent);
	// The kernel's count, with slack.
	sent.clear();
	EXPECT_TRUE(with_retries(8, kernel(40), [] { return size_t(3); }));
	EXPECT_EQ((std::vector<size_t>{8, 50}), sent);
	// A new walk of /proc found more than the kernel did.
	sent.clear();
	EXPECT_TRUE(with_retries(8, kernel(40), [] { return size_t(60); }));
	EXPECT_EQ((std::vector<size_t>{8, 75}), sent);
	// Only once: a tree that keeps growing fails with the kernel's error.
	sent.clear();
	auto growing = [&](size_t n) -> Result<void> {
		sent.push_back(n);
		return tl::unexpected(kernel_error(EAGAIN, "the tree of pid 10 grew",
						   uint32_t(2 * n), false));
	};
	auto r = with_retries(8, growing, [] { return size_t(3); });
	ASSERT_FALSE(r);
	EXPECT_EQ(EAGAIN, r.error().err);
	EXPECT_EQ("the tree of pid 10 grew", r.error().msg);
	EXPECT_EQ(40u, r.error().pages_files);
	EXPECT_EQ((std::vector<size_t>{8, 20}), sent);
	// A member that exited or executed a program during the stop (RETRY):
	// tried again (the tree re-walked), at most kTransientRetries times.
	sent.clear();
	int left = 2;
	auto exited = [&](size_t n) -> Result<void> {
		sent.push_back(n);
		if (left-- > 0)
			return tl::unexpected(kernel_error(EAGAIN, "pid 12 exited", std::nullopt,
							   true));
		return {};
	};
	EXPECT_TRUE(with_retries(8, exited, [] { return size_t(30); }));
	EXPECT_EQ((std::vector<size_t>{8, 37, 37}), sent);
	sent.clear();
	auto execs = [&](size_t n) -> Result<void> {
		sent.push_back(n);
		return tl::unexpected(kernel_error(EAGAIN, "pid 12 executed a program",
						   std::nullopt, true));
	};
	r = with_retries(0, execs, [] { return size_t(30); });
	ASSERT_FALSE(r);
	EXPECT_EQ(EAGAIN, r.error().err);
	EXPECT_TRUE(r.error().retry);
	// Without a tree (first 0) the pool stays empty.
	EXPECT_EQ(std::vector<size_t>(1 + kTransientRetries, 0), sent);
}

TEST(TreePool, TheMessageTextIsNeverActedOn)
{
	// What older tools read in the text: without the cookie's facts, an
	// EAGAIN is returned at once whatever its message says.
	std::vector<size_t> sent;
	for (const char *text : {"the tree of pid 4021 needs 57 pages files (PAGES_FDS has 40)",
				 "pid 12 exited during the checkpoint, try again",
				 "the VMA list changed during the checkpoint"}) {
		sent.clear();
		auto plain = [&](size_t n) -> Result<void> {
			sent.push_back(n);
			return fail(EAGAIN, text);
		};
		auto r = with_retries(8, plain, [] { return size_t(3); });
		ASSERT_FALSE(r);
		EXPECT_EQ(text, r.error().msg);
		EXPECT_EQ((std::vector<size_t>{8}), sent) << text;
	}
	// PAGES_FILES counts only with EAGAIN; other errors are returned at once.
	sent.clear();
	auto perm = [&](size_t n) -> Result<void> {
		sent.push_back(n);
		return tl::unexpected(kernel_error(EPERM, "pid 1: no ptrace access", 50u, false));
	};
	EXPECT_FALSE(with_retries(8, perm, [] { return size_t(3); }));
	EXPECT_EQ((std::vector<size_t>{8}), sent);
	// The facts survive the context the caller adds.
	Error e = wrap(kernel_error(EAGAIN, "grew", 9u, true), "pid 3: ").value();
	EXPECT_EQ("pid 3: grew", e.msg);
	EXPECT_EQ(9u, e.pages_files);
	EXPECT_TRUE(e.retry);
}

TEST(TreePool, DescendantsFromAFakeProc)
{
	TempDir t;
	auto put = [&](uint32_t pid, uint32_t tid, const std::string &children) {
		const std::string d =
			t.path() + "/" + std::to_string(pid) + "/task/" + std::to_string(tid);
		std::filesystem::create_directories(d);
		std::ofstream(d + "/children") << children;
	};
	put(10, 10, "11 12 ");
	put(11, 11, "13 ");
	put(11, 14, "15 ");	// a child of thread 14 of process 11
	put(12, 12, "");
	put(13, 13, "10 ");	// a loop (pid reuse while walking): not followed
	put(15, 15, "");
	auto d = list_descendants(10, t.path());
	EXPECT_EQ((std::vector<uint32_t>{11, 12, 13, 15}), d);
	EXPECT_TRUE(list_descendants(999, t.path()).empty());
}

TEST(TreePool, DescendantsOfARealTree)
{
	int go[2];
	ASSERT_EQ(0, pipe(go));
	int ready[2];
	ASSERT_EQ(0, pipe(ready));
	pid_t child = fork();
	ASSERT_GE(child, 0);
	if (child == 0) {
		// Both wait for EOF on go: only the test keeps its write end.
		close(go[1]);
		pid_t grandchild = fork();
		if (grandchild == 0) {
			char c;
			(void)!read(go[0], &c, 1);
			_exit(0);
		}
		(void)!write(ready[1], &grandchild, sizeof(grandchild));
		char c;
		(void)!read(go[0], &c, 1);
		waitpid(grandchild, nullptr, 0);
		_exit(0);
	}
	pid_t grandchild = 0;
	ASSERT_EQ(ssize_t(sizeof(grandchild)), read(ready[0], &grandchild, sizeof(grandchild)));
	auto d = list_descendants(uint32_t(getpid()));
	close(go[1]);	// both exit on EOF
	waitpid(child, nullptr, 0);
	close(go[0]);
	close(ready[0]);
	close(ready[1]);
	auto at = [&](pid_t p) { return std::find(d.begin(), d.end(), uint32_t(p)); };
	ASSERT_NE(d.end(), at(child));
	ASSERT_NE(d.end(), at(grandchild));
	EXPECT_LT(at(child), at(grandchild));
}

TEST(TreeOutput, GroupLine)
{
	EXPECT_EQ("  tree: 4 processes (1 zombie), 11 threads", group_line(true, 4, 1, 11));
	EXPECT_EQ("  tree: 1 process, 1 thread", group_line(true, 1, 0, 1));
	EXPECT_EQ("  tree: 3 processes (2 zombies), 1 thread", group_line(true, 3, 2, 1));
	EXPECT_EQ("  threads: 8", group_line(false, 1, 0, 8));
	EXPECT_EQ("", group_line(false, 1, 0, 1));
}

// ---- meta.img: THREADS, TREE, QUEUES ----

namespace {

// A section list written by hand (version, types and bytes as given).
Bytes raw_meta(uint32_t version, const std::vector<std::pair<uint32_t, Bytes>> &secs)
{
	std::vector<std::pair<uint32_t, ByteView>> views(secs.begin(), secs.end());
	return encode_meta(version, views);
}

Bytes threads_of(std::vector<ThreadSpec> ts)
{
	AttrWriter w;
	for (const ThreadSpec &t : ts)
		put_thread(w, t);
	return w.take();
}

Bytes tree_of(std::vector<ProcSpec> ps)
{
	AttrWriter w;
	for (const ProcSpec &p : ps)
		put_proc(w, p);
	return w.take();
}

Bytes queues_of(std::vector<QueueSpec> qs)
{
	AttrWriter w;
	for (const QueueSpec &q : qs)
		put_queue(w, q);
	return w.take();
}

// DIR/1 of the fixtures (pid 4242), rewritten with extra sections.
class TreeImage : public ::testing::Test {
protected:
	void SetUp() override
	{
		dir_ = tmp_.path() + "/1";
		write_checkpoint(dir_, 1, {{0x600000, 2}});
		auto c = load_checkpoint_dir(dir_, 1);
		ASSERT_TRUE(c) << c.error().str();
		base_ = *c;
	}

	std::vector<std::pair<uint32_t, Bytes>> base_sections() const
	{
		Bytes pm(base_.pagemap.size() * sizeof(amber_pagemap_entry));
		memcpy(pm.data(), base_.pagemap.data(), pm.size());
		return {{AMBER_SEC_INFO, base_.info_raw},
			{AMBER_SEC_CORE, base_.core_raw},
			{AMBER_SEC_VMAS, base_.vmas_raw},
			{AMBER_SEC_FDS, base_.fds_raw},
			{AMBER_SEC_PAGEMAP, pm}};
	}

	// Writes meta.img with the base sections plus extra, returns the load error.
	std::string load_with(std::vector<std::pair<uint32_t, Bytes>> extra,
			      uint32_t version = AMBER_IMAGE_VERSION)
	{
		auto secs = base_sections();
		secs.insert(secs.end(), extra.begin(), extra.end());
		spit(dir_ + "/meta.img", raw_meta(version, secs));
		auto c = load_checkpoint_dir(dir_, 1);
		return c ? "" : c.error().msg;
	}

	MetaSections meta_with(Bytes threads, Bytes tree, Bytes queues) const
	{
		MetaSections m;
		m.info = base_.info_raw;
		m.core = base_.core_raw;
		m.vmas = base_.vmas_raw;
		m.fds = base_.fds_raw;
		m.pagemap = base_.pagemap;
		m.threads = std::move(threads);
		m.tree = std::move(tree);
		m.queues = std::move(queues);
		return m;
	}

	TempDir tmp_;
	std::string dir_;
	Checkpoint base_;
};

} // namespace

TEST_F(TreeImage, RoundTripWithEverySection)
{
	const Bytes threads = threads_of({{.tid = 4243}, {.tid = 4250, .comm = "gc"}});
	const Bytes tree = tree_of({{.pid = 4242, .ppid = 1, .nr_threads = 3},
				    {.pid = 4300, .ppid = 4242, .pgid = 4300},
				    {.pid = 4301, .ppid = 4242, .zombie = true, .exit_code = 0x0f},
				    {.pid = 4302, .ppid = 4300, .sid = 4302, .nr_threads = 2}});
	const Bytes queues = queues_of({{.ino = 900, .data = "in flight"},
					{.ino = 901, .data = "dgram", .eor = true},
					{.ino = 901, .data = "", .eor = true}});
	// FDS with the issue-5 extras.
	AttrWriter fw;
	put_fd(fw, {.num = 0, .type = AMBER_FD_FIFO, .path = "pipe:[900]", .ino = 900,
		    .file_id = 3, .pipe_size = 8192});
	put_fd(fw, {.num = 4, .type = AMBER_FD_SOCK, .path = "socket:[901]", .ino = 901,
		    .file_id = 4, .sock_family = AF_UNIX, .sock_type = SOCK_DGRAM,
		    .peer_ino = 902, .shutdown = 2});
	MetaSections m = meta_with(threads, tree, queues);
	m.fds = fw.take();
	const Bytes img = build_meta(m);
	amber_image_hdr h;
	memcpy(&h, img.data(), sizeof(h));
	EXPECT_EQ(uint32_t(AMBER_IMAGE_VERSION), h.version);
	EXPECT_EQ(8u, h.nr_sections);
	spit(dir_ + "/meta.img", img);

	auto c = load_checkpoint_dir(dir_, 1);
	ASSERT_TRUE(c) << c.error().str();
	EXPECT_EQ(threads, c->threads_raw);
	EXPECT_EQ(tree, c->tree_raw);
	EXPECT_EQ(queues, c->queues_raw);
	ASSERT_EQ(2u, c->threads.size());
	EXPECT_EQ(4243u, c->threads[0].tid);
	EXPECT_EQ(4250u, c->threads[1].tid);
	EXPECT_EQ("gc", c->threads[1].comm);
	EXPECT_EQ(4250u * 100 + AMBER_REG_RAX, c->threads[1].regs[AMBER_REG_RAX]);
	// raw is the attribute as stored: the THREADS section is their concatenation.
	Bytes joined;
	for (const ThreadInfo &t : c->threads) {
		joined.insert(joined.end(), t.raw.begin(), t.raw.end());
		joined.resize((joined.size() + 3) & ~size_t(3));
	}
	EXPECT_EQ(threads, joined);
	ASSERT_TRUE(c->is_tree());
	ASSERT_EQ(4u, c->tree.size());
	EXPECT_EQ(4242u, c->tree[0].pid);
	EXPECT_EQ(4300u, c->tree[1].pgid);
	EXPECT_TRUE(c->tree[2].zombie);
	EXPECT_EQ(0x0fu, c->tree[2].exit_code);
	EXPECT_EQ(4302u, c->tree[3].sid);
	EXPECT_EQ(2u, c->tree[3].nr_threads);
	ASSERT_EQ(3u, c->queues.size());
	const std::string flight = "in flight";
	EXPECT_EQ(Bytes(flight.begin(), flight.end()), c->queues[0].data);
	EXPECT_TRUE(c->queues[1].eor);
	EXPECT_TRUE(c->queues[2].data.empty());
	ASSERT_EQ(2u, c->fds.size());
	EXPECT_EQ(3u, c->fds[0].file_id);
	EXPECT_EQ(8192u, c->fds[0].pipe_size);
	EXPECT_EQ(uint32_t(AF_UNIX), c->fds[1].sock_family);
	EXPECT_EQ(uint32_t(SOCK_DGRAM), c->fds[1].sock_type);
	EXPECT_EQ(902u, c->fds[1].peer_ino);
	EXPECT_EQ(2u, c->fds[1].shutdown);

	// load_checkpoint_meta fills the same.
	auto meta = load_checkpoint_meta(dir_, 1);
	ASSERT_TRUE(meta) << meta.error().str();
	EXPECT_EQ(2u, meta->threads.size());
	EXPECT_EQ(4u, meta->tree.size());
	EXPECT_EQ(3u, meta->queues.size());
}

TEST_F(TreeImage, EmptySectionsAreLeftOut)
{
	const Bytes img = build_meta(meta_with({}, {}, {}));
	amber_image_hdr h;
	memcpy(&h, img.data(), sizeof(h));
	EXPECT_EQ(5u, h.nr_sections);
	spit(dir_ + "/meta.img", img);
	auto c = load_checkpoint_dir(dir_, 1);
	ASSERT_TRUE(c) << c.error().str();
	EXPECT_TRUE(c->threads.empty());
	EXPECT_FALSE(c->is_tree());
	EXPECT_TRUE(c->queues.empty());
	// One thread section only: the others stay absent.
	const Bytes one = build_meta(meta_with(threads_of({{.tid = 4243}}), {}, {}));
	memcpy(&h, one.data(), sizeof(h));
	EXPECT_EQ(6u, h.nr_sections);
}

TEST_F(TreeImage, FlippedByteInEachOptionalSection)
{
	const Bytes img = build_meta(
		meta_with(threads_of({{.tid = 4243}}),
			  tree_of({{.pid = 4242, .nr_threads = 2}, {.pid = 4300, .ppid = 4242}}),
			  queues_of({{.ino = 9, .data = "xyz"}})));
	amber_image_hdr h;
	memcpy(&h, img.data(), sizeof(h));
	int checked = 0;
	for (uint32_t i = 0; i < h.nr_sections; i++) {
		amber_section s;
		memcpy(&s, img.data() + sizeof(h) + i * sizeof(s), sizeof(s));
		if (s.type <= AMBER_SEC_PAGEMAP)
			continue;
		for (uint64_t at : {uint64_t(0), uint64_t(s.size / 2), uint64_t(s.size - 1)}) {
			Bytes m = img;
			m[s.offset + at] ^= 0x20;
			spit(dir_ + "/meta.img", m);
			auto c = load_checkpoint_dir(dir_, 1);
			ASSERT_FALSE(c);
			EXPECT_EQ("meta.img: section " + section_name(s.type) + ": checksum mismatch",
				  c.error().msg);
		}
		checked++;
	}
	EXPECT_EQ(3, checked);
}

TEST_F(TreeImage, HostileTreeSections)
{
	auto tree = [&](std::vector<ProcSpec> ps) {
		return load_with({{AMBER_SEC_TREE, tree_of(std::move(ps))}});
	};
	EXPECT_EQ("", tree({{.pid = 4242}, {.pid = 4300, .ppid = 4242}}));
	EXPECT_EQ("meta.img: section TREE: the first process is pid 4300, not the image's pid 4242",
		  tree({{.pid = 4300}, {.pid = 4242, .ppid = 4300}}));
	EXPECT_EQ("meta.img: section TREE: pid 4301: its parent 4300 is not listed before it",
		  tree({{.pid = 4242}, {.pid = 4301, .ppid = 4300}, {.pid = 4300, .ppid = 4242}}));
	EXPECT_EQ("meta.img: section TREE: pid 4300: listed twice",
		  tree({{.pid = 4242}, {.pid = 4300, .ppid = 4242}, {.pid = 4300, .ppid = 4242}}));
	EXPECT_EQ("meta.img: section TREE: pid 4242: listed twice",
		  tree({{.pid = 4242}, {.pid = 4242, .ppid = 4242}}));
	EXPECT_EQ("meta.img: section TREE: pid 4242: the root process is a zombie",
		  tree({{.pid = 4242, .zombie = true}}));
	EXPECT_EQ("meta.img: section TREE: process 1: pid 4300: PPID 4194305 out of range",
		  tree({{.pid = 4242}, {.pid = 4300, .ppid = 4194305}}));
	EXPECT_EQ("meta.img: section TREE: pid 4242 has 3 threads, section THREADS lists 0 "
		  "besides the leader",
		  tree({{.pid = 4242, .nr_threads = 3}}));
	// Something else than PROC in TREE; PROC with an unknown attribute.
	AttrWriter w;
	put_proc(w, {.pid = 4242});
	w.put_u32(AMBER_A_PID, 4242);
	EXPECT_EQ("meta.img: section TREE: process 1: unexpected attribute " +
			  std::to_string(AMBER_A_PID),
		  load_with({{AMBER_SEC_TREE, w.take()}}));
	AttrWriter u;
	size_t n = u.begin_nest(AMBER_A_PROC);
	u.put_u32(AMBER_PROC_PID, 4242);
	u.put_u32(AMBER_PROC_NR_THREADS, 1);
	u.put_u32(AMBER_PROC_MAX + 1, 0);
	u.end_nest(n);
	EXPECT_EQ("meta.img: section TREE: process 0: PROC: unknown attribute " +
			  std::to_string(AMBER_PROC_MAX + 1),
		  load_with({{AMBER_SEC_TREE, u.take()}}));
	// A malformed attribute stream.
	Bytes cut = tree_of({{.pid = 4242}});
	cut.resize(cut.size() - 4);
	EXPECT_NE(std::string::npos,
		  load_with({{AMBER_SEC_TREE, cut}}).find("meta.img: section TREE: "));
}

TEST_F(TreeImage, HostileThreadsAndQueuesSections)
{
	EXPECT_EQ("", load_with({{AMBER_SEC_THREADS, threads_of({{.tid = 4243}, {.tid = 4244}})}}));
	EXPECT_EQ("meta.img: section THREADS: thread 4243: listed twice",
		  load_with({{AMBER_SEC_THREADS, threads_of({{.tid = 4243}, {.tid = 4243}})}}));
	EXPECT_EQ("meta.img: section THREADS: thread 4242: is the thread group leader",
		  load_with({{AMBER_SEC_THREADS, threads_of({{.tid = 4242}})}}));
	EXPECT_EQ("meta.img: section THREADS: thread 0: thread without a valid TID (0)",
		  load_with({{AMBER_SEC_THREADS, threads_of({{.tid = 0}})}}));
	EXPECT_EQ("meta.img: section THREADS: thread 0: THREAD: unknown attribute " +
			  std::to_string(AMBER_THREAD_MAX + 1),
		  load_with({{AMBER_SEC_THREADS,
			      threads_of({{.tid = 4243, .unknown_attr = true}})}}));
	// A thread without registers.
	AttrWriter nr;
	size_t n = nr.begin_nest(AMBER_A_THREAD);
	nr.put_u32(AMBER_THREAD_TID, 4243);
	nr.end_nest(n);
	EXPECT_EQ("meta.img: section THREADS: thread 0: thread 4243: no REGS",
		  load_with({{AMBER_SEC_THREADS, nr.take()}}));
	// A bad size inside a thread.
	AttrWriter bs;
	n = bs.begin_nest(AMBER_A_THREAD);
	bs.put_u64(AMBER_THREAD_TID, 4243);
	bs.end_nest(n);
	EXPECT_NE(std::string::npos, load_with({{AMBER_SEC_THREADS, bs.take()}})
					     .find("expected 4 bytes, got 8"));

	EXPECT_EQ("", load_with({{AMBER_SEC_QUEUES, queues_of({{.ino = 3, .data = "q"}})}}));
	EXPECT_EQ("meta.img: section QUEUES: chunk 1: inode 3: empty chunk",
		  load_with({{AMBER_SEC_QUEUES,
			      queues_of({{.ino = 3, .data = "q"}, {.ino = 3, .data = ""}})}}));
	// Credentials: all three, on a message's EOR chunk, of a pid.
	EXPECT_EQ("", load_with({{AMBER_SEC_QUEUES,
				  queues_of({{.ino = 3, .data = "c", .eor = true,
					      .cred = {12, 1234, 5678}}})}}));
	EXPECT_EQ("meta.img: section QUEUES: chunk 0: inode 3: credentials without all of "
		  "CRED_PID, CRED_UID, CRED_GID",
		  load_with({{AMBER_SEC_QUEUES, queues_of({{.ino = 3, .data = "c", .eor = true,
							     .cred = {12, 0, ~0u}}})}}));
	EXPECT_EQ("meta.img: section QUEUES: chunk 0: inode 3: credentials of pid 0",
		  load_with({{AMBER_SEC_QUEUES, queues_of({{.ino = 3, .data = "c", .eor = true,
							     .cred = {0, 0, 0}}})}}));
	EXPECT_EQ("meta.img: section QUEUES: chunk 0: inode 3: credentials on a chunk that "
		  "ends no UNIX message",
		  load_with({{AMBER_SEC_QUEUES,
			      queues_of({{.ino = 3, .data = "c", .cred = {12, 0, 0}}})}}));
	// Files in flight: on a message's EOR chunk, each with a file id and
	// no number, at most SCM_MAX_FD of them.
	auto loaded = load_with({{AMBER_SEC_QUEUES,
				  queues_of({{.ino = 3, .data = "f", .eor = true, .files = {5, 6}}})}});
	EXPECT_EQ("", loaded);
	EXPECT_EQ("meta.img: section QUEUES: chunk 0: QUEUE attribute 9: FILE: a file in flight "
		  "with a number or without a file id",
		  load_with({{AMBER_SEC_QUEUES,
			      queues_of({{.ino = 3, .data = "f", .eor = true, .files = {0}}})}}));
	EXPECT_EQ("meta.img: section QUEUES: chunk 0: QUEUE attribute 9: FILE: a file in flight "
		  "with a number or without a file id",
		  load_with({{AMBER_SEC_QUEUES, queues_of({{.ino = 3, .data = "f", .eor = true,
							     .files = {5}, .file_num = true}})}}));
	EXPECT_EQ("meta.img: section QUEUES: chunk 0: inode 3: files in flight on a chunk that "
		  "ends no UNIX message",
		  load_with({{AMBER_SEC_QUEUES,
			      queues_of({{.ino = 3, .data = "f", .files = {5}}})}}));
	EXPECT_EQ("meta.img: section QUEUES: chunk 0: inode 3: 254 files in flight in one "
		  "message, at most 253",
		  load_with({{AMBER_SEC_QUEUES,
			      queues_of({{.ino = 3, .data = "f", .eor = true,
					  .files = std::vector<uint64_t>(254, 5)}})}}));
	// More than AMBER_QUEUE_MAX_BYTES in all (a tree's queues are bounded).
	std::vector<QueueSpec> big;
	for (uint64_t i = 0; i <= AMBER_QUEUE_MAX_BYTES / AMBER_QUEUE_CHUNK; i++)
		big.push_back({.ino = 3, .data = std::string(AMBER_QUEUE_CHUNK, 'b')});
	EXPECT_NE(std::string::npos, load_with({{AMBER_SEC_QUEUES, queues_of(big)}})
					     .find("bytes queued in all"));
}

TEST_F(TreeImage, SectionTableRules)
{
	const Bytes th = threads_of({{.tid = 4243}});
	// Present but empty: a writer leaves it out instead.
	EXPECT_EQ("meta.img: section THREADS: empty (an empty section is left out)",
		  load_with({{AMBER_SEC_THREADS, {}}}));
	EXPECT_EQ("meta.img: section THREADS repeated",
		  load_with({{AMBER_SEC_THREADS, th}, {AMBER_SEC_THREADS, th}}));
	// An unknown (newer, optional) section type is skipped.
	EXPECT_EQ("", load_with({{AMBER_SEC_MAX + 7, Bytes{1, 2, 3}}}));
	// ... but not when damaged.
	auto secs = base_sections();
	secs.push_back({AMBER_SEC_MAX + 7, Bytes{1, 2, 3}});
	Bytes m = raw_meta(AMBER_IMAGE_VERSION, secs);
	m[m.size() - 8] ^= 1;	// the unknown section's first byte (8-aligned at the end)
	spit(dir_ + "/meta.img", m);
	auto c = load_checkpoint_dir(dir_, 1);
	ASSERT_FALSE(c);
	EXPECT_EQ("meta.img: section type " + std::to_string(AMBER_SEC_MAX + 7) +
			  ": checksum mismatch",
		  c.error().msg);

	// Versions: 2 (issue 4) still reads, without the new sections; newer
	// than this reader or older than 2 is refused.
	EXPECT_EQ("", load_with({}, 2));
	EXPECT_EQ("meta.img: section THREADS in a version 2 image",
		  load_with({{AMBER_SEC_THREADS, th}}, 2));
	EXPECT_EQ("meta.img: unsupported version " + std::to_string(AMBER_IMAGE_VERSION + 1),
		  load_with({}, AMBER_IMAGE_VERSION + 1));
	EXPECT_EQ("meta.img: unsupported version 1", load_with({}, 1));
}
