// SPDX-License-Identifier: GPL-2.0
// Units of the restore stub: planning (pure) and the stub itself run in a
// forked child on the host, up to the point where it sends its request.
#include <gtest/gtest.h>

#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/amber.h>

#include "fixtures.h"
#include "restore/stub.h"

using namespace amber;
using amber::testing::make_vma;

namespace {

std::string slurp(const std::string &path)
{
	std::ifstream in(path);
	std::stringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

// "Field:\tvalue" of /proc/PID/status.
std::string status_field(pid_t pid, const std::string &field)
{
	std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/status"));
	std::string line;
	while (std::getline(in, line))
		if (line.rfind(field + ":", 0) == 0)
			return line.substr(line.find_first_not_of(" \t", field.size() + 1));
	return "";
}

} // namespace

TEST(RestoreFds, CloseRangesAreTheGaps)
{
	auto r = close_ranges({1, 2, 10, 11, 20});
	std::vector<std::pair<unsigned, unsigned>> want = {
		{0, 0}, {3, 9}, {12, 19}, {21, UINT_MAX}};
	EXPECT_EQ(want, r);
	want = {{0, UINT_MAX}};
	EXPECT_EQ(want, close_ranges({}));
	want = {{1, UINT_MAX}};
	EXPECT_EQ(want, close_ranges({0}));
}

TEST(RestoreFds, HelpersGoAboveEverything)
{
	auto m = plan_helper_moves({3, 4, 9}, 12, 7);
	ASSERT_EQ(3u, m.size());
	EXPECT_EQ(3, m[0].from);
	EXPECT_EQ(13, m[0].to);
	EXPECT_EQ(14, m[1].to);
	EXPECT_EQ(15, m[2].to);
	m = plan_helper_moves({5}, 2, 40);
	EXPECT_EQ(41, m[0].to);
}

TEST(RestoreFds, PlansReopenAndInherit)
{
	std::vector<FdInfo> fds(4);
	fds[0].num = 0;
	fds[0].type = AMBER_FD_CHR;
	fds[0].tty = true;
	fds[0].path = "/dev/pts/0";
	fds[1].num = 1;
	fds[1].type = AMBER_FD_FIFO;
	fds[1].path = "pipe:[1234]";
	fds[2].num = 5;
	fds[2].type = AMBER_FD_REG;
	fds[2].flags = O_WRONLY | O_CREAT | O_TRUNC | O_APPEND;
	fds[2].pos = 77;
	fds[2].cloexec = true;
	fds[2].path = "/tmp/log";
	fds[3].num = 3;
	fds[3].type = AMBER_FD_CHR;
	fds[3].flags = O_RDWR;
	fds[3].path = "/dev/null";

	auto p = plan_fds(fds);
	ASSERT_TRUE(p) << p.error().str();
	ASSERT_EQ(4u, p->size());
	EXPECT_TRUE((*p)[0].inherit);
	EXPECT_TRUE((*p)[1].inherit);
	EXPECT_EQ(3, (*p)[2].num);	// sorted by number
	EXPECT_FALSE((*p)[2].inherit);
	EXPECT_EQ(O_RDWR | O_NOCTTY, (*p)[2].flags);
	EXPECT_FALSE((*p)[2].seek);
	EXPECT_EQ(5, (*p)[3].num);
	EXPECT_EQ(O_WRONLY | O_APPEND | O_CLOEXEC, (*p)[3].flags);
	EXPECT_TRUE((*p)[3].seek);
	EXPECT_EQ(77, (*p)[3].pos);
}

TEST(RestoreFds, RefusesWhatCannotBeReopened)
{
	std::vector<FdInfo> fds(1);
	fds[0].num = 4;
	fds[0].type = AMBER_FD_SOCK;
	fds[0].path = "socket:[99]";
	auto p = plan_fds(fds);
	ASSERT_FALSE(p);
	EXPECT_NE(std::string::npos, p.error().msg.find("fd 4: socket:[99]")) << p.error().msg;

	fds[0].type = AMBER_FD_FIFO;
	fds[0].path = "pipe:[5]";
	EXPECT_FALSE(plan_fds(fds));

	fds[0].type = AMBER_FD_REG;
	fds[0].path = "relative/path";
	EXPECT_FALSE(plan_fds(fds));

	fds.resize(2);
	fds[0].path = fds[1].path = "/tmp/x";
	fds[1].num = 4;
	fds[1].type = AMBER_FD_REG;
	EXPECT_FALSE(plan_fds(fds));
}

TEST(RestoreFds, DescribesFailures)
{
	StubPlan plan;
	StubFd f;
	f.num = 3;
	f.path = "/tmp/data.bin";
	plan.fds.push_back(f);
	StubReport r{uint32_t(StubStep::OpenFd), 0, ENOENT};
	EXPECT_EQ("fd 3: /tmp/data.bin: open", describe_step(plan, r));
	r.index = 7;	// out of range: no crash
	EXPECT_EQ("fd: open", describe_step(plan, r));
}

// The whole stub in a child, with a stream socket in place of the netlink
// socket: it must set everything up, then send exactly the prepared bytes.
// The big message keeps it blocked in send() while we look at it.
TEST(RestoreStub, RunsUpToTheRequest)
{
	char dir[] = "/tmp/amber-stub-XXXXXX";
	ASSERT_NE(nullptr, mkdtemp(dir));
	std::string file = std::string(dir) + "/data";
	{
		std::ofstream out(file);
		out << "0123456789";
	}

	int sv[2], rep[2];
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	ASSERT_EQ(0, pipe2(rep, O_CLOEXEC));

	StubPlan plan;
	plan.helpers = plan_helper_moves({sv[1], rep[1]}, 9, 1000);
	plan.nl_fd = plan.helpers[0].to;
	plan.report_fd = plan.helpers[1].to;
	StubFd a;
	a.num = 4;
	a.path = file;
	a.flags = O_RDWR;
	a.seek = true;
	a.pos = 6;
	StubFd b;
	b.num = 9;
	b.path = "/dev/null";
	b.flags = O_WRONLY | O_CLOEXEC;
	plan.fds = {a, b};
	plan.close = close_ranges({plan.helpers[0].to, plan.helpers[1].to});
	plan.cwd = dir;
	plan.umask = 027;
	plan.comm = "stub-test";
	plan.actions.push_back({SIGUSR1, {uint64_t(SIG_IGN), 0, 0, 0}});
	// Every other signal back to SIG_DFL, as plan_signals() does, so dispositions the
	// test inherited (a runner may ignore some) do not leak into the stub.
	for (int s = 1; s <= 64; s++)
		if (s != SIGUSR1 && s != SIGKILL && s != SIGSTOP)
			plan.actions.push_back({s, {0, 0, 0, 0}});
	StubSiginfo si;
	si.signo = SIGUSR2;
	si.shared = false;
	siginfo_t info = {};
	info.si_signo = SIGUSR2;
	info.si_code = SI_QUEUE;
	memcpy(si.info, &info, sizeof(si.info));
	plan.pending.push_back(si);
	StubRlimit rl;
	rl.resource = RLIMIT_CORE;
	rl.lim = {0, 0};
	plan.rlimits.push_back(rl);
	plan.msg.resize(8 << 20);
	for (size_t i = 0; i < plan.msg.size(); i++)
		plan.msg[i] = uint8_t(i * 7);

	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		run_stub(plan);
	close(sv[1]);
	close(rep[1]);

	// The first bytes arrive once every earlier step is done.
	std::vector<uint8_t> got(plan.msg.size());
	size_t have = 0;
	ssize_t n = read(sv[0], got.data(), 4096);
	ASSERT_GT(n, 0);
	have = size_t(n);

	std::string proc = "/proc/" + std::to_string(pid);
	char link[PATH_MAX] = {};
	ASSERT_GT(readlink((proc + "/fd/4").c_str(), link, sizeof(link) - 1), 0);
	EXPECT_EQ(file, link);
	EXPECT_NE(std::string::npos, slurp(proc + "/fdinfo/4").find("pos:\t6\n"));
	EXPECT_NE(std::string::npos, slurp(proc + "/fdinfo/9").find("flags:\t02100001"))
		<< slurp(proc + "/fdinfo/9");
	EXPECT_NE(0, access((proc + "/fd/0").c_str(), F_OK));	// closed
	EXPECT_NE(0, access((proc + "/fd/3").c_str(), F_OK));
	memset(link, 0, sizeof(link));
	ASSERT_GT(readlink((proc + "/cwd").c_str(), link, sizeof(link) - 1), 0);
	EXPECT_STREQ(dir, link);
	EXPECT_EQ("stub-test\n", slurp(proc + "/comm"));
	EXPECT_EQ("0027", status_field(pid, "Umask"));
	// All but SIGKILL and SIGSTOP, which cannot be blocked.
	EXPECT_EQ("fffffffffffbfeff", status_field(pid, "SigBlk"));
	EXPECT_EQ("0000000000000200", status_field(pid, "SigIgn"));	// SIGUSR1
	EXPECT_EQ("0000000000000800", status_field(pid, "SigPnd"));	// SIGUSR2
	EXPECT_NE(std::string::npos, slurp(proc + "/limits").find("Max core file size        0"));

	while (have < got.size()) {
		n = read(sv[0], got.data() + have, got.size() - have);
		ASSERT_GT(n, 0);
		have += size_t(n);
	}
	EXPECT_TRUE(got == plan.msg);

	StubReport r;
	ASSERT_EQ(ssize_t(sizeof(r)), read(rep[0], &r, sizeof(r)));
	EXPECT_EQ(uint32_t(StubStep::Returned), r.step);
	int st;
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	EXPECT_TRUE(WIFEXITED(st));
	close(sv[0]);
	close(rep[0]);
	unlink(file.c_str());
	rmdir(dir);
}

TEST(RestoreStub, ReportsTheFileThatFailed)
{
	int rep[2];
	ASSERT_EQ(0, pipe2(rep, O_CLOEXEC));
	StubPlan plan;
	plan.helpers = plan_helper_moves({rep[1]}, 5, 1000);
	plan.report_fd = plan.helpers[0].to;
	plan.close = close_ranges({plan.report_fd});
	StubFd f;
	f.num = 5;
	f.path = "/nonexistent/amber-test";
	f.flags = O_RDONLY;
	plan.fds = {f};

	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		run_stub(plan);
	close(rep[1]);
	StubReport r;
	ASSERT_EQ(ssize_t(sizeof(r)), read(rep[0], &r, sizeof(r)));
	EXPECT_EQ(uint32_t(StubStep::OpenFd), r.step);
	EXPECT_EQ(ENOENT, r.err);
	EXPECT_EQ("fd 5: /nonexistent/amber-test: open", describe_step(plan, r));
	int st;
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	close(rep[0]);
}

// Moving vvar/vDSO as the stub does, where this kernel has only those two
// special mappings (the 6.1 target; newer kernels add [vvar_vclock]).
TEST(RestoreStub, MovesTheVdso)
{
	auto maps = read_own_maps();
	ASSERT_TRUE(maps);
	const MapEntry *vvar = nullptr, *vdso = nullptr;
	for (const MapEntry &m : *maps) {
		if (m.name == "[vvar_vclock]")
			GTEST_SKIP() << "kernel has [vvar_vclock]";
		if (m.name == "[vvar]")
			vvar = &m;
		if (m.name == "[vdso]")
			vdso = &m;
	}
	if (!vvar || !vdso)
		GTEST_SKIP() << "no vDSO";

	// A free place for the image's vvar+vdso.
	uint64_t span = vvar->range.size() + vdso->range.size();
	void *hole = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	munmap(hole, span);
	uint64_t at = uint64_t(hole);
	std::vector<Vma> img = {make_vma(at, at + vvar->range.size(), AMBER_VMA_F_VVAR),
				make_vma(at + vvar->range.size(), at + span, AMBER_VMA_F_VDSO)};
	maps = read_own_maps();
	ASSERT_TRUE(maps);

	int sv[2], rep[2];
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	ASSERT_EQ(0, pipe2(rep, O_CLOEXEC));
	StubPlan plan;
	auto v = plan_vdso(*maps, img);
	ASSERT_TRUE(v) << v.error().str();
	plan.vdso = *v;
	plan.helpers = plan_helper_moves({sv[1], rep[1]}, 2, 1000);
	plan.nl_fd = plan.helpers[0].to;
	plan.report_fd = plan.helpers[1].to;
	plan.close = close_ranges({plan.nl_fd, plan.report_fd});
	plan.msg.resize(4 << 20);

	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		run_stub(plan);
	close(sv[1]);
	close(rep[1]);
	std::vector<uint8_t> buf(1 << 16);
	ssize_t n = read(sv[0], buf.data(), buf.size());
	ASSERT_GT(n, 0);

	auto child = parse_maps(slurp("/proc/" + std::to_string(pid) + "/maps"));
	ASSERT_TRUE(child);
	bool vvar_ok = false, vdso_ok = false;
	for (const MapEntry &m : *child) {
		if (m.name == "[vvar]")
			vvar_ok = m.range.start == img[0].start && m.range.end == img[0].end;
		if (m.name == "[vdso]")
			vdso_ok = m.range.start == img[1].start && m.range.end == img[1].end;
	}
	EXPECT_TRUE(vvar_ok);
	EXPECT_TRUE(vdso_ok);

	while (read(sv[0], buf.data(), buf.size()) > 0)
		;
	StubReport r;
	ASSERT_EQ(ssize_t(sizeof(r)), read(rep[0], &r, sizeof(r)));
	EXPECT_EQ(uint32_t(StubStep::Returned), r.step);
	int st;
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	close(sv[0]);
	close(rep[0]);
}

TEST(RestoreFds, LegendNamesTheStubsFds)
{
	std::map<int, std::string> names = {{16, "/usr/bin/prog"}, {17, "/s/1/pages.img"}};
	EXPECT_EQ(" [fd 16 is /usr/bin/prog]",
		  fd_legend("exe fd 16: the file is open for writing", names));
	EXPECT_EQ(" [fd 17 is /s/1/pages.img, fd 16 is /usr/bin/prog]",
		  fd_legend("pages fd 17 and fd 16 and again fd 17", names));
	EXPECT_EQ("", fd_legend("VMA 0x1000-0x2000: fd 3 is not open", names));
	EXPECT_EQ("", fd_legend("vdso at 0x7fd 16", names));
	EXPECT_EQ("", fd_legend("trailing fd ", names));
}

namespace {

Bytes encoded(uint16_t type, uint64_t v)
{
	AttrWriter w;
	size_t n = w.begin_nest(type);
	w.put_u64(1, v);
	w.end_nest(n);
	return w.take();
}

} // namespace

TEST(RestoreRequest, CarriesCoreVmasAndFds)
{
	Checkpoint c;
	c.task_attr = encoded(AMBER_A_TASK, 11);
	c.mm_attr = encoded(AMBER_A_MM, 12);
	c.regs_attr = encoded(AMBER_A_REGS, 13);
	{
		AttrWriter w;
		uint8_t fpu[3] = {1, 2, 3};	// odd length: the next one must be aligned
		w.put_binary(AMBER_A_FPU, fpu);
		c.fpu_attr = w.take();
		c.fpu_attr.resize(4 + 3);
	}
	c.signals_attr = encoded(AMBER_A_SIGNALS, 14);
	c.vmas = {make_vma(0x1000, 0x2000, AMBER_VMA_F_ANON),
		  make_vma(0x3000, 0x4000, AMBER_VMA_F_SHARED | AMBER_VMA_F_MAYWRITE),
		  make_vma(0x5000, 0x6000, 0),
		  make_vma(0x7000, 0x9000, AMBER_VMA_F_VDSO)};
	c.vmas[1].path = c.vmas[2].path = "/tmp/f";

	RequestFds fds;
	fds.pages = {20};
	fds.exe = 21;
	fds.files[{"/tmp/f", true}] = 22;
	fds.files[{"/tmp/f", false}] = 23;
	fds.close = {18, 19, 20, 21, 22, 23};
	auto attrs = build_restore_attrs(c, fds);
	ASSERT_TRUE(attrs) << attrs.error().str();

	auto top = parse_attrs(*attrs);
	ASSERT_TRUE(top) << top.error().str();
	std::vector<uint16_t> types;
	for (const Attr &a : *top)
		types.push_back(a.type);
	std::vector<uint16_t> want = {AMBER_A_TASK, AMBER_A_MM, AMBER_A_REGS, AMBER_A_FPU,
				      AMBER_A_SIGNALS, AMBER_A_VMAS, AMBER_A_PAGE_FDS,
				      AMBER_A_CLOSE_FDS, AMBER_A_EXE_FD};
	ASSERT_EQ(want, types);
	EXPECT_EQ(3u, (*top)[3].data.size());
	EXPECT_EQ(21u, *(*top)[8].u32());

	auto vmas = parse_attrs((*top)[5].data);
	ASSERT_TRUE(vmas);
	ASSERT_EQ(4u, vmas->size());
	std::vector<int64_t> file_fds;
	for (const Attr &v : *vmas) {
		auto f = parse_attrs(v.data);
		ASSERT_TRUE(f);
		const Attr *fd = find_attr(*f, AMBER_VMA_FILE_FD);
		file_fds.push_back(fd ? int64_t(*fd->u32()) : -1);
	}
	std::vector<int64_t> want_fds = {-1, 22, 23, -1};
	EXPECT_EQ(want_fds, file_fds);

	auto close = parse_attrs((*top)[7].data);
	ASSERT_TRUE(close);
	EXPECT_EQ(6u, close->size());
}

// A chain's pages files go to the kernel oldest first, the restored one last.
TEST(RestoreRequest, PageFdsOfAChainInOrder)
{
	Checkpoint c;
	c.task_attr = encoded(AMBER_A_TASK, 11);
	c.mm_attr = encoded(AMBER_A_MM, 12);
	c.regs_attr = encoded(AMBER_A_REGS, 13);
	c.fpu_attr = encoded(AMBER_A_FPU, 15);
	c.signals_attr = encoded(AMBER_A_SIGNALS, 14);
	c.vmas = {make_vma(0x1000, 0x2000, AMBER_VMA_F_ANON)};

	RequestFds fds;
	fds.pages = {30, 27, 31, 29};
	fds.close = {27, 29, 30, 31};
	auto attrs = build_restore_attrs(c, fds);
	ASSERT_TRUE(attrs) << attrs.error().str();
	auto top = parse_attrs(*attrs);
	ASSERT_TRUE(top);
	const Attr *pfds = find_attr(*top, AMBER_A_PAGE_FDS);
	ASSERT_NE(nullptr, pfds);
	auto list = parse_attrs(pfds->data);
	ASSERT_TRUE(list);
	std::vector<uint32_t> got;
	for (const Attr &a : *list) {
		EXPECT_EQ(AMBER_A_PAGE_FD, a.type);
		got.push_back(*a.u32());
	}
	EXPECT_EQ((std::vector<uint32_t>{30, 27, 31, 29}), got);
}

TEST(RestoreRequest, SplitsLongVmaLists)
{
	Checkpoint c;
	for (uint64_t i = 0; i < 3000; i++) {
		c.vmas.push_back(make_vma((i + 1) << 20, ((i + 1) << 20) + 0x1000, 0));
		c.vmas.back().path = "/usr/lib/x86_64-linux-gnu/libsomething-" + std::to_string(i);
	}
	RequestFds fds;
	for (const Vma &v : c.vmas)
		fds.files[{v.path, false}] = 100;
	auto attrs = build_restore_attrs(c, fds);
	ASSERT_TRUE(attrs) << attrs.error().str();
	auto top = parse_attrs(*attrs);
	ASSERT_TRUE(top);
	size_t nests = 0, total = 0;
	for (const Attr &a : *top) {
		if (a.type != AMBER_A_VMAS)
			continue;
		nests++;
		EXPECT_LE(a.raw.size(), 65535u);
		total += parse_attrs(a.data)->size();
	}
	EXPECT_GT(nests, 1u);
	EXPECT_EQ(3000u, total);

	c.vmas[5].path = "/elsewhere";	// no fd for it
	EXPECT_FALSE(build_restore_attrs(c, fds));
}

namespace {

// A PID that nothing uses (for clone3 set_tid), above ours.
pid_t free_pid(pid_t after)
{
	long max = atol(slurp("/proc/sys/kernel/pid_max").c_str());
	if (max < 1000)
		max = 32768;
	for (long i = 0; i < max; i++) {
		pid_t p = pid_t((after + 500 + i) % max);
		if (p < 300)
			continue;
		if (kill(p, 0) < 0 && errno == ESRCH &&
		    access(("/proc/" + std::to_string(p)).c_str(), F_OK) != 0)
			return p;
	}
	return -1;
}

// Field n (1-based) of /proc/PID/stat, after the comm.
std::string stat_field(pid_t pid, int n)
{
	std::string s = slurp("/proc/" + std::to_string(pid) + "/stat");
	size_t at = s.rfind(')');
	if (at == std::string::npos)
		return "";
	std::istringstream in(s.substr(at + 2));
	std::string f;
	for (int i = 3; i <= n && in >> f;)
		if (i++ == n)
			return f;
	return "";
}

bool wait_for(const std::function<bool()> &cond)
{
	for (int i = 0; i < 500; i++) {
		if (cond())
			return true;
		usleep(10000);
	}
	return cond();
}

} // namespace

TEST(RestoreRequest, ThreadsSharedMemoryAndHold)
{
	Checkpoint c;
	c.vmas = {make_vma(0x10000, 0x12000, AMBER_VMA_F_SHARED | AMBER_VMA_F_SHMEM)};
	ThreadInfo t;
	t.tid = 12;
	AttrWriter tw;
	size_t n = tw.begin_nest(AMBER_A_THREAD);
	tw.put_u32(AMBER_THREAD_TID, 12);
	tw.end_nest(n);
	t.raw = tw.take();
	c.threads = {t};
	RequestFds fds;
	fds.shmem[0] = 41;
	fds.hold = true;
	auto attrs = build_restore_attrs(c, fds);
	ASSERT_TRUE(attrs) << attrs.error().str();
	auto top = parse_attrs(*attrs);
	ASSERT_TRUE(top);
	const Attr *flags = find_attr(*top, AMBER_A_FLAGS);
	ASSERT_NE(nullptr, flags);
	EXPECT_EQ(uint32_t(AMBER_RESTORE_F_HOLD), *flags->u32());
	const Attr *threads = find_attr(*top, AMBER_A_THREADS);
	ASSERT_NE(nullptr, threads);
	auto list = parse_attrs(threads->data);
	ASSERT_TRUE(list);
	ASSERT_EQ(1u, list->size());
	auto tid = parse_attrs((*list)[0].data);
	ASSERT_TRUE(tid);
	EXPECT_EQ(12u, *find_attr(*tid, AMBER_THREAD_TID)->u32());
	auto vmas = parse_attrs(find_attr(*top, AMBER_A_VMAS)->data);
	auto vma = parse_attrs((*vmas)[0].data);
	ASSERT_NE(nullptr, find_attr(*vma, AMBER_VMA_FILE_FD));
	EXPECT_EQ(41u, *find_attr(*vma, AMBER_VMA_FILE_FD)->u32());

	// Without threads, hold or memfds: none of them.
	c.threads.clear();
	attrs = build_restore_attrs(c, RequestFds{});
	top = parse_attrs(*attrs);
	EXPECT_EQ(nullptr, find_attr(*top, AMBER_A_FLAGS));
	EXPECT_EQ(nullptr, find_attr(*top, AMBER_A_THREADS));
	vmas = parse_attrs(find_attr(*top, AMBER_A_VMAS)->data);
	vma = parse_attrs((*vmas)[0].data);
	EXPECT_EQ(nullptr, find_attr(*vma, AMBER_VMA_FILE_FD));
}

TEST(RestoreFds, SharedDescriptions)
{
	std::vector<FdInfo> fds(3);
	fds[0].num = 4;
	fds[0].type = AMBER_FD_FIFO;
	fds[0].path = "pipe:[9]";
	fds[0].cloexec = true;
	fds[1].num = 0;
	fds[1].type = AMBER_FD_FIFO;
	fds[1].path = "pipe:[8]";	// not shared: inherited stdio
	fds[2].num = 6;
	fds[2].type = AMBER_FD_SOCK;
	fds[2].path = "socket:[7]";
	auto r = plan_fds(fds, {{4, 1}, {6, 0}}, {"socket:[7]", "pipe:[9]"});
	ASSERT_TRUE(r) << r.error().str();
	ASSERT_EQ(3u, r->size());
	EXPECT_TRUE((*r)[0].inherit);
	EXPECT_EQ(1, (*r)[1].shared);
	EXPECT_EQ(O_CLOEXEC, (*r)[1].flags);
	EXPECT_EQ("pipe:[9]", (*r)[1].path);
	EXPECT_EQ(0, (*r)[2].shared);
	// Without the shared map, a socket is refused as before.
	EXPECT_FALSE(plan_fds(fds));
}

TEST(RestoreStub, ThreadSignalsArePlanned)
{
	Checkpoint c;
	c.task.pid = 10;
	ThreadInfo a, b;
	a.tid = 11;
	b.tid = 12;
	siginfo_t info = {};
	info.si_signo = SIGUSR1;
	info.si_code = SI_TKILL;
	SigPending sp;
	sp.siginfo.assign(reinterpret_cast<uint8_t *>(&info),
			  reinterpret_cast<uint8_t *>(&info) + 128);
	b.pending = {sp};
	c.threads = {a, b};
	auto r = plan_thread_signals(c);
	ASSERT_TRUE(r) << r.error().str();
	ASSERT_EQ(1u, r->size());
	EXPECT_EQ(12, (*r)[0].tid);
	EXPECT_EQ(SIGUSR1, (*r)[0].signo);
	EXPECT_EQ(StubThreadSig::kPending, (*r)[0].result);

	c.threads = {b, a};
	EXPECT_FALSE(plan_thread_signals(c));
	a.tid = 10;
	c.threads = {a};
	EXPECT_FALSE(plan_thread_signals(c));
}

// The stub creates its threads with their TIDs, parked in pause() with every
// signal blocked, their own pending signals queued.
TEST(RestoreStub, CreatesParkedThreads)
{
	if (geteuid() != 0)
		GTEST_SKIP() << "clone3 set_tid needs root";
	pid_t t1 = free_pid(getpid());
	pid_t t2 = free_pid(t1);
	ASSERT_GT(t1, 0);
	ASSERT_GT(t2, 0);
	int sv[2], rep[2];
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	ASSERT_EQ(0, pipe2(rep, O_CLOEXEC));
	void *stack = mmap(nullptr, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
	ASSERT_NE(MAP_FAILED, stack);

	StubPlan plan;
	plan.helpers = plan_helper_moves({sv[1], rep[1]}, 2, 1000);
	plan.nl_fd = plan.helpers[0].to;
	plan.report_fd = plan.helpers[1].to;
	plan.early_report_fd = rep[1];
	plan.close = close_ranges({plan.nl_fd, plan.report_fd});
	plan.threads = {t1, t2};
	plan.thread_stack = uint64_t(stack);
	plan.thread_stack_size = 65536;
	StubThreadSig ts;
	ts.tid = t2;
	ts.signo = SIGUSR2;
	siginfo_t info = {};
	info.si_signo = SIGUSR2;
	info.si_code = SI_TKILL;	// tgkill(): only the thread itself may queue it
	memcpy(ts.info, &info, sizeof(ts.info));
	plan.thread_pending = {ts};
	ts.signo = SIGRTMIN + 1;
	((siginfo_t *)ts.info)->si_signo = SIGRTMIN + 1;
	((siginfo_t *)ts.info)->si_code = SI_QUEUE;
	plan.thread_pending.push_back(ts);
	plan.msg.resize(8 << 20);	// blocks in send() while we look

	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		run_stub(plan);
	close(sv[1]);
	close(rep[1]);
	std::vector<uint8_t> buf(4096);
	if (read(sv[0], buf.data(), buf.size()) <= 0) {
		StubReport r;
		ASSERT_EQ(ssize_t(sizeof(r)), read(rep[0], &r, sizeof(r)));
		FAIL() << describe_step(plan, r) << ": " << strerror(r.err);
	}

	std::string task = "/proc/" + std::to_string(pid) + "/task/";
	for (pid_t t : {t1, t2}) {
		std::string st = slurp(task + std::to_string(t) + "/status");
		ASSERT_FALSE(st.empty()) << "no thread " << t;
		EXPECT_NE(std::string::npos, st.find("SigBlk:\tfffffffffffbfeff")) << st;
		EXPECT_NE(std::string::npos, st.find("Tgid:\t" + std::to_string(pid))) << st;
		EXPECT_TRUE(wait_for([&] {
			return slurp(task + std::to_string(t) + "/stat").find(") S ") !=
			       std::string::npos;
		})) << "thread " << t << " does not sleep";
	}
	EXPECT_NE(std::string::npos, slurp(task + std::to_string(t2) + "/status")
					     .find("SigPnd:\t0000000400000800"))
		<< slurp(task + std::to_string(t2) + "/status");
	EXPECT_NE(std::string::npos, slurp(task + std::to_string(t1) + "/status")
					     .find("SigPnd:\t0000000000000000"));
	kill(pid, SIGKILL);
	int st;
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	close(sv[0]);
	close(rep[0]);
	munmap(stack, 65536);
}

// A tree stub: a session leader creates a zombie group leader and a child
// that joins the zombie's group after the barrier; the zombie exits with its
// status and its parent does not reap it.
TEST(RestoreStub, CreatesATree)
{
	if (geteuid() != 0)
		GTEST_SKIP() << "clone3 set_tid needs root";
	pid_t zpid = free_pid(getpid());
	pid_t cpid = free_pid(zpid);
	ASSERT_GT(zpid, 0);
	ASSERT_GT(cpid, 0);
	int sv[2], rep[2], go[2];
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	ASSERT_EQ(0, pipe2(rep, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(go, O_CLOEXEC));

	auto base = [&](StubPlan &p) {
		p.helpers = plan_helper_moves({sv[1], rep[1]}, 2, 1000);
		p.nl_fd = p.helpers[0].to;
		p.report_fd = p.helpers[1].to;
		p.early_report_fd = rep[1];
		p.close = close_ranges({p.nl_fd, p.report_fd});
		p.msg.resize(8 << 20);
		p.tree.active = true;
		p.tree.ready_fd = rep[1];
		p.tree.go_fd = go[0];
		p.tree.go_w_fd = go[1];
	};
	StubPlan root, z, c;
	base(root);
	base(z);
	base(c);
	root.tree.setsid = true;
	root.tree.children = {{zpid, &z}, {cpid, &c}};
	root.tree.zombie_children = {zpid};
	z.pid = zpid;
	z.tree.setpgid_self = true;
	z.tree.zombie = true;
	z.tree.exit_code = 7;
	c.pid = cpid;
	c.tree.join = true;
	c.tree.join_pgid = zpid;

	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		run_stub(root);
	close(sv[1]);
	close(rep[1]);
	close(go[0]);

	std::set<int32_t> ready;
	for (int i = 0; i < 3; i++) {
		StubReport r;
		ASSERT_EQ(ssize_t(sizeof(r)), read(rep[0], &r, sizeof(r)));
		ASSERT_EQ(uint32_t(StubStep::Ready), r.step) << describe_step(root, r);
		ready.insert(r.pid);
	}
	EXPECT_EQ((std::set<int32_t>{pid, zpid, cpid}), ready);
	EXPECT_EQ(std::to_string(pid), stat_field(zpid, 4));	// ppid
	EXPECT_EQ(std::to_string(zpid), stat_field(zpid, 5));	// pgid
	EXPECT_EQ(std::to_string(pid), stat_field(cpid, 6));	// sid
	ASSERT_EQ(3, write(go[1], "ggg", 3));
	close(go[1]);

	// Both live stubs reach send(); the zombie stays a zombie.
	std::vector<uint8_t> buf(4096);
	ASSERT_GT(read(sv[0], buf.data(), buf.size()), 0);
	EXPECT_TRUE(wait_for([&] { return stat_field(cpid, 5) == std::to_string(zpid); }))
		<< "pgid of " << cpid << ": " << stat_field(cpid, 5);
	EXPECT_TRUE(wait_for([&] { return stat_field(zpid, 3) == "Z"; }));
	EXPECT_EQ(std::to_string(pid), stat_field(pid, 6));	// setsid()
	EXPECT_EQ(std::to_string(pid), stat_field(cpid, 4));
	siginfo_t si = {};
	EXPECT_EQ(-1, waitid(P_PID, id_t(zpid), &si, WEXITED | WNOHANG | WNOWAIT));	// not ours
	EXPECT_EQ(ECHILD, errno);
	// The root's SIGCHLD from the zombie was consumed.
	EXPECT_TRUE(wait_for([&] {
		return status_field(pid, "SigPnd") == "0000000000000000" &&
		       status_field(pid, "ShdPnd") == "0000000000000000";
	})) << status_field(pid, "ShdPnd");

	kill(cpid, SIGKILL);
	kill(pid, SIGKILL);
	int st;
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	close(sv[0]);
	close(rep[0]);
}

// A failing child stub reports with its own pid; stubs at the barrier exit
// when the tool closes it.
TEST(RestoreStub, TreeFailureIsReportedByPid)
{
	if (geteuid() != 0)
		GTEST_SKIP() << "clone3 set_tid needs root";
	pid_t cpid = free_pid(getpid());
	ASSERT_GT(cpid, 0);
	int rep[2], go[2];
	ASSERT_EQ(0, pipe2(rep, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(go, O_CLOEXEC));
	StubPlan root, c;
	for (StubPlan *p : {&root, &c}) {
		p->early_report_fd = rep[1];
		p->tree.active = true;
		p->tree.go_fd = go[0];
		p->tree.go_w_fd = go[1];
	}
	root.tree.children = {{cpid, &c}};
	c.pid = cpid;
	c.tree.join = true;
	c.tree.join_pgid = 1;	// init's group, in another session: EPERM

	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		run_stub(root);
	close(rep[1]);
	close(go[0]);
	StubReport r;
	ASSERT_EQ(ssize_t(sizeof(r)), read(rep[0], &r, sizeof(r)));
	EXPECT_EQ(uint32_t(StubStep::Ready), r.step);
	ASSERT_EQ(ssize_t(sizeof(r)), read(rep[0], &r, sizeof(r)));
	EXPECT_EQ(uint32_t(StubStep::Ready), r.step);
	ASSERT_EQ(2, write(go[1], "gg", 2));
	ASSERT_EQ(ssize_t(sizeof(r)), read(rep[0], &r, sizeof(r)));
	EXPECT_EQ(uint32_t(StubStep::JoinGroup), r.step);
	EXPECT_EQ(cpid, r.pid);
	EXPECT_EQ(EPERM, r.err);
	EXPECT_EQ("stub: setpgid into process group 1", describe_step(c, r));
	close(go[1]);
	kill(pid, SIGKILL);
	int st;
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	close(rep[0]);
}

TEST(RestoreRequest, SplitsLongThreadLists)
{
	Checkpoint c;
	for (uint32_t tid = 100; tid < 140; tid++) {
		ThreadInfo t;
		t.tid = tid;
		AttrWriter tw;
		size_t n = tw.begin_nest(AMBER_A_THREAD);
		tw.put_u32(AMBER_THREAD_TID, tid);
		tw.put_binary(AMBER_THREAD_FPU, Bytes(2700, uint8_t(tid)));	// AVX-512 size
		tw.end_nest(n);
		t.raw = tw.take();
		c.threads.push_back(t);
	}
	auto attrs = build_restore_attrs(c, RequestFds{});
	ASSERT_TRUE(attrs) << attrs.error().str();
	auto top = parse_attrs(*attrs);
	ASSERT_TRUE(top);
	size_t nests = 0;
	std::vector<uint32_t> tids;
	for (const Attr &a : *top) {
		if (a.type != AMBER_A_THREADS)
			continue;
		nests++;
		EXPECT_LE(a.raw.size(), 65535u);
		auto list = parse_attrs(a.data);
		ASSERT_TRUE(list);
		for (const Attr &t : *list) {
			auto in = parse_attrs(t.data);
			ASSERT_TRUE(in);
			tids.push_back(*find_attr(*in, AMBER_THREAD_TID)->u32());
		}
	}
	EXPECT_GT(nests, 1u);
	ASSERT_EQ(40u, tids.size());
	for (uint32_t i = 0; i < 40; i++)
		EXPECT_EQ(100 + i, tids[i]);
}
