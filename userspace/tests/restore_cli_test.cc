// SPDX-License-Identifier: GPL-2.0
// `amber restore` on synthetic images: everything it checks before it talks
// to amber.ko (files the image needs, fds it cannot recreate, the PID, a
// damaged image) must fail with a message naming the resource, exit 1 and
// create nothing. Runs build/amber next to build/unit-tests.
#include <gtest/gtest.h>

#include <climits>
#include <csignal>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/amber.h>

#include "common/attr.h"
#include "image/image.h"

using namespace amber;

namespace {

std::string amber_bin()
{
	char self[PATH_MAX] = {};
	if (readlink("/proc/self/exe", self, sizeof(self) - 1) <= 0)
		return "";
	std::string s = self;
	return s.substr(0, s.rfind('/')) + "/amber";
}

struct RunResult {
	int status = -1;
	std::string err;
	std::string out;
};

// Reads a pipe to its end.
std::string drain(int fd)
{
	std::string s;
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		s.append(buf, size_t(n));
	close(fd);
	return s;
}

RunResult run_amber(const std::vector<std::string> &args)
{
	RunResult r;
	int p[2], o[2];
	if (pipe2(p, O_CLOEXEC))
		return r;
	if (pipe2(o, O_CLOEXEC))
		return r;
	std::string bin = amber_bin();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 2);
		dup2(o[1], 1);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		std::vector<char *> argv = {const_cast<char *>(bin.c_str())};
		for (const std::string &a : args)
			argv.push_back(const_cast<char *>(a.c_str()));
		argv.push_back(nullptr);
		execv(bin.c_str(), argv.data());
		_exit(127);
	}
	close(p[1]);
	close(o[1]);
	// Small outputs: read stderr, then stdout (both fit in a pipe).
	r.err = drain(p[0]);
	r.out = drain(o[0]);
	int st;
	if (waitpid(pid, &st, 0) == pid && WIFEXITED(st))
		r.status = WEXITSTATUS(st);
	return r;
}

void write_file(const std::string &path, size_t size)
{
	std::ofstream out(path, std::ios::binary | std::ios::trunc);
	out << std::string(size, 'x');
}

void write_bytes(const std::string &path, const Bytes &b)
{
	std::ofstream out(path, std::ios::binary | std::ios::trunc);
	out.write(reinterpret_cast<const char *>(b.data()), std::streamsize(b.size()));
}

// A PID nobody uses right now.
pid_t free_pid()
{
	for (pid_t p = 4000000; p > 300000; p -= 7919)
		if (kill(p, 0) < 0 && errno == ESRCH &&
		    access(("/proc/" + std::to_string(p)).c_str(), F_OK) != 0)
			return p;
	return 0;
}

class RestoreCli : public ::testing::Test {
protected:
	void SetUp() override
	{
		if (access(amber_bin().c_str(), X_OK))
			GTEST_SKIP() << amber_bin() << " not built";
		char tmpl[] = "/tmp/amber-restore-cli-XXXXXX";
		ASSERT_NE(nullptr, mkdtemp(tmpl));
		base = tmpl;
		store = base + "/store";
		pid = free_pid();
		ASSERT_NE(0, pid);
	}

	void TearDown() override
	{
		if (!base.empty())
			system(("rm -rf '" + base + "'").c_str());
	}

	// Writes store/1/{meta,pages}.img and store/latest.
	void write_image() { write_link(1, 0, {}); }

	// One run of a synthetic pages file (data: a pattern of the address).
	struct TestRun {
		uint64_t addr;
		uint32_t nr_pages;
		bool parent = false;
	};

	// Writes store/N/{meta,pages}.img with INFO parent and the runs, and
	// points store/latest at N.
	void write_link(uint32_t number, uint32_t parent, const std::vector<TestRun> &runs)
	{
		AttrWriter core;
		size_t n = core.begin_nest(AMBER_A_TASK);
		core.put_u32(AMBER_TASK_PID, uint32_t(pid));
		core.put_string(AMBER_TASK_COMM, "victim");
		core.put_string(AMBER_TASK_CWD, cwd);
		core.end_nest(n);
		core.end_nest(core.begin_nest(AMBER_A_MM));
		core.end_nest(core.begin_nest(AMBER_A_REGS));
		uint8_t fpu[512] = {};
		core.put_binary(AMBER_A_FPU, fpu);
		core.end_nest(core.begin_nest(AMBER_A_SIGNALS));

		AttrWriter vw;
		for (const Vma &v : vmas) {
			size_t k = vw.begin_nest(AMBER_A_VMA);
			vw.put_u64(AMBER_VMA_START, v.start);
			vw.put_u64(AMBER_VMA_END, v.end);
			vw.put_u32(AMBER_VMA_PROT, v.prot);
			vw.put_u32(AMBER_VMA_FLAGS, v.flags);
			if (!v.path.empty())
				vw.put_string(AMBER_VMA_PATH, v.path);
			if (record_sizes)
				vw.put_u64(AMBER_VMA_FILE_SIZE, v.file_size);
			vw.end_nest(k);
		}
		AttrWriter fw;
		for (const FdInfo &f : fds) {
			size_t k = fw.begin_nest(AMBER_A_FD);
			fw.put_u32(AMBER_FD_NUM, f.num);
			fw.put_u32(AMBER_FD_TYPE, f.type);
			fw.put_u32(AMBER_FD_FLAGS, f.flags);
			fw.put_string(AMBER_FD_PATH, f.path);
			if (record_sizes)
				fw.put_u64(AMBER_FD_SIZE, f.size);
			fw.end_nest(k);
		}

		std::string dir = store + "/" + std::to_string(number);
		mkdir(store.c_str(), 0755);
		ASSERT_EQ(0, mkdir(dir.c_str(), 0755));
		amber_pages_hdr hdr = {AMBER_PAGES_MAGIC, AMBER_PAGES_VERSION, 4096};
		const uint8_t *h = reinterpret_cast<const uint8_t *>(&hdr);
		Bytes pages(h, h + sizeof(hdr));
		uint64_t data = 0, parents = 0;
		for (const TestRun &t : runs) {
			amber_page_run run = {t.addr, t.nr_pages, t.parent ? uint32_t(AMBER_RUN_F_PARENT) : 0u};
			const uint8_t *rp = reinterpret_cast<const uint8_t *>(&run);
			pages.insert(pages.end(), rp, rp + sizeof(run));
			(t.parent ? parents : data) += t.nr_pages;
			if (t.parent)
				continue;
			for (uint64_t i = 0; i < uint64_t(t.nr_pages) * 4096; i++)
				pages.push_back(uint8_t((t.addr + i) * 31 + number));
		}
		write_bytes(dir + "/pages.img", pages);
		int fd = open((dir + "/pages.img").c_str(), O_RDONLY);
		ASSERT_LE(0, fd);
		uint32_t page_size = 0;
		auto map = scan_pages(fd, &page_size);
		close(fd);
		ASSERT_TRUE(map) << map.error().str();

		InfoSection info;
		info.number = number;
		info.parent = parent;
		info.pid = uint32_t(pid);
		info.pages_nr = data;
		info.parent_pages_nr = parents;
		info.track_id = 0x1000 + number;
		MetaSections s;
		s.info = encode_info(info);
		s.core = core.take();
		s.vmas = vw.take();
		s.fds = fw.take();
		s.pagemap = *map;
		write_bytes(dir + "/meta.img", build_meta(s));
		unlink((store + "/latest").c_str());
		ASSERT_EQ(0, symlink(std::to_string(number).c_str(), (store + "/latest").c_str()));
	}

	// A chain 1 <- 2 <- 3 over one anonymous VMA of 8 pages at 0x10000000.
	void write_chain()
	{
		Vma v;
		v.start = kBase;
		v.end = kBase + 8 * 4096;
		v.prot = 3;
		v.flags = AMBER_VMA_F_ANON;
		vmas.push_back(v);
		write_link(1, 0, {{kBase, 4}});
		write_link(2, 1, {{kBase, 3, true}, {kBase + 3 * 4096, 2}});
		write_link(3, 2, {{kBase, 1}, {kBase + 4096, 4, true}});
	}

	static constexpr uint64_t kBase = 0x10000000;

	RunResult restore() { return run_amber({"restore", "-D", store}); }

	void add_fd(uint32_t num, uint32_t type, uint32_t flags, const std::string &path,
		    uint64_t size)
	{
		FdInfo f;
		f.num = num;
		f.type = type;
		f.flags = flags;
		f.path = path;
		f.size = size;
		fds.push_back(f);
	}

	std::string base, store;
	std::string cwd = "/";
	bool record_sizes = true;
	pid_t pid = 0;
	std::vector<Vma> vmas;
	std::vector<FdInfo> fds;
};

} // namespace

TEST_F(RestoreCli, MissingFile)
{
	add_fd(3, AMBER_FD_REG, O_RDONLY, base + "/data.bin", 4096);
	write_image();
	RunResult r = restore();
	EXPECT_EQ(1, r.status);
	EXPECT_EQ("amber restore: fd 3: " + base + "/data.bin: missing\n", r.err);
}

TEST_F(RestoreCli, ReadOnlyFileChangedSize)
{
	add_fd(3, AMBER_FD_REG, O_RDONLY, base + "/data.bin", 4096);
	write_file(base + "/data.bin", 8192);
	write_image();
	RunResult r = restore();
	EXPECT_EQ(1, r.status);
	EXPECT_EQ("amber restore: fd 3: " + base + "/data.bin: size changed from 4096 to 8192\n",
		  r.err);
}

TEST_F(RestoreCli, MappedFileChangedSizeOrMissing)
{
	Vma v;
	v.start = 0x10000;
	v.end = 0x12000;
	v.prot = 1;
	v.path = base + "/lib.so";
	v.file_size = 12345;
	vmas.push_back(v);
	write_file(v.path, 100);
	write_image();
	RunResult r = restore();
	EXPECT_EQ(1, r.status);
	EXPECT_EQ("amber restore: " + v.path + ": size changed from 12345 to 100\n", r.err);

	unlink(v.path.c_str());
	r = restore();
	EXPECT_EQ(1, r.status);
	EXPECT_EQ("amber restore: " + v.path + ": missing\n", r.err);
}

TEST_F(RestoreCli, MissingCwd)
{
	cwd = base + "/gone";
	write_image();
	RunResult r = restore();
	EXPECT_EQ(1, r.status);
	EXPECT_EQ("amber restore: " + cwd + ": missing\n", r.err);
}

TEST_F(RestoreCli, UnrestorableFd)
{
	add_fd(4, AMBER_FD_SOCK, O_RDWR, "socket:[77]", 0);
	write_image();
	RunResult r = restore();
	EXPECT_EQ(1, r.status);
	EXPECT_EQ(0u, r.err.find("amber restore: fd 4: socket:[77]: cannot restore a socket"))
		<< r.err;
}

// A writable file may have grown: not an error. The PID check comes next.
TEST_F(RestoreCli, PidInUse)
{
	add_fd(3, AMBER_FD_REG, O_WRONLY | O_APPEND, base + "/log", 10);
	write_file(base + "/log", 50);
	pid = getpid();
	write_image();
	RunResult r = restore();
	EXPECT_EQ(1, r.status);
	EXPECT_EQ(0u, r.err.find("amber restore: pid " + std::to_string(pid) + " is in use (by comm '"))
		<< r.err;
}

TEST_F(RestoreCli, DamagedImage)
{
	write_image();
	std::string meta = store + "/1/meta.img";
	struct stat st;
	ASSERT_EQ(0, stat(meta.c_str(), &st));
	int fd = open(meta.c_str(), O_RDWR);
	ASSERT_LE(0, fd);
	char c;
	ASSERT_EQ(1, pread(fd, &c, 1, st.st_size - 3));
	c ^= 0x55;
	ASSERT_EQ(1, pwrite(fd, &c, 1, st.st_size - 3));
	close(fd);
	RunResult r = restore();
	EXPECT_EQ(1, r.status);
	EXPECT_EQ(0u, r.err.find("amber restore: checkpoint 1: meta.img: ")) << r.err;
	EXPECT_NE(std::string::npos, r.err.find("checksum")) << r.err;
}

TEST_F(RestoreCli, OnlyFailOnPidConflict)
{
	write_image();
	RunResult r = run_amber({"restore", "-D", store, "--pid-conflict", "kill"});
	EXPECT_NE(0, r.status);
}

// An image without recorded sizes: existence and type are still checked,
// sizes are not. The PID check comes next.
TEST_F(RestoreCli, SizesNotRecordedAreNotChecked)
{
	record_sizes = false;
	add_fd(3, AMBER_FD_REG, O_RDONLY, base + "/data.bin", 4096);
	write_file(base + "/data.bin", 10);
	Vma v;
	v.start = 0x10000;
	v.end = 0x12000;
	v.prot = 1;
	v.path = base + "/lib.so";
	v.file_size = 12345;
	vmas.push_back(v);
	write_file(v.path, 100);
	pid = getpid();
	write_image();
	RunResult r = restore();
	EXPECT_EQ(1, r.status);
	EXPECT_EQ(0u, r.err.find("amber restore: pid " + std::to_string(pid) + " is in use")) << r.err;

	unlink(v.path.c_str());
	r = restore();
	EXPECT_EQ("amber restore: " + v.path + ": missing\n", r.err);
}

// A sound chain passes every check before the kernel is asked: on the host
// the next thing to fail is the netlink family.
TEST_F(RestoreCli, ChainIsResolvedBeforeTheKernel)
{
	write_chain();
	for (const char *n : {"3", "2", "1"}) {
		RunResult r = run_amber({"restore", "-D", store, "--checkpoint", n});
		EXPECT_EQ(1, r.status);
		if (access("/sys/module/amber", F_OK) == 0)
			continue;
		EXPECT_EQ("amber restore: amber.ko is not loaded (insmod kmod/amber.ko)\n", r.err)
			<< "checkpoint " << n;
	}
}

TEST_F(RestoreCli, DamagedMiddleLinkIsNamed)
{
	write_chain();
	// Flip a byte of checkpoint 2's data run (its second run header + data).
	std::string pages = store + "/2/pages.img";
	int fd = open(pages.c_str(), O_RDWR);
	ASSERT_LE(0, fd);
	off_t off = sizeof(amber_pages_hdr) + 2 * sizeof(amber_page_run) + 100;
	char c;
	ASSERT_EQ(1, pread(fd, &c, 1, off));
	c ^= 0x55;
	ASSERT_EQ(1, pwrite(fd, &c, 1, off));
	close(fd);

	RunResult r = restore();
	EXPECT_EQ(1, r.status);
	EXPECT_EQ(0u, r.err.find("amber restore: checkpoint 2: pages.img: ")) << r.err;
	EXPECT_NE(std::string::npos, r.err.find("checksum")) << r.err;
	EXPECT_NE(0, kill(pid, 0));

	// Checkpoint 1 does not need it.
	r = run_amber({"restore", "-D", store, "--checkpoint", "1"});
	EXPECT_EQ(std::string::npos, r.err.find("checkpoint 2")) << r.err;

	// inspect marks it and what depends on it, and fails.
	r = run_amber({"inspect", "-D", store});
	EXPECT_EQ(1, r.status);
	EXPECT_NE(std::string::npos, r.err.find("checkpoint 2: pages.img")) << r.err;
	EXPECT_NE(std::string::npos, r.out.find("damaged")) << r.out;
	EXPECT_NE(std::string::npos, r.out.find("parent 2 damaged")) << r.out;
}

TEST_F(RestoreCli, MissingLinkIsNamed)
{
	write_chain();
	ASSERT_EQ(0, system(("rm -rf '" + store + "/2'").c_str()));
	RunResult r = restore();
	EXPECT_EQ(1, r.status);
	EXPECT_NE(std::string::npos, r.err.find("checkpoint 2")) << r.err;
	EXPECT_EQ(0u, r.err.find("amber restore: ")) << r.err;
}

TEST_F(RestoreCli, PagesMissingFromTheParentAreNamed)
{
	Vma v;
	v.start = kBase;
	v.end = kBase + 8 * 4096;
	v.prot = 3;
	v.flags = AMBER_VMA_F_ANON;
	vmas.push_back(v);
	write_link(1, 0, {{kBase, 2}});
	write_link(2, 1, {{kBase, 4, true}});
	RunResult r = restore();
	EXPECT_EQ(1, r.status);
	EXPECT_EQ(0u, r.err.find("amber restore: checkpoint 2: ")) << r.err;
	EXPECT_NE(std::string::npos, r.err.find("0x10002000")) << r.err;
	EXPECT_NE(std::string::npos, r.err.find("checkpoint 1")) << r.err;
}

// The store table: every checkpoint, full or incremental on which, page
// counts, the latest marked; then details of the latest with its chain.
TEST_F(RestoreCli, InspectShowsTheChain)
{
	write_chain();
	RunResult r = run_amber({"inspect", "-D", store});
	EXPECT_EQ(0, r.status) << r.err;
	const std::string &o = r.out;
	if (getenv("AMBER_TEST_VERBOSE"))
		printf("%s", o.c_str());
	EXPECT_NE(std::string::npos, o.find("3 checkpoints, latest 3")) << o;
	EXPECT_NE(std::string::npos, o.find(" 1  full ")) << o;
	EXPECT_NE(std::string::npos, o.find(" 2  incr on 1 ")) << o;
	EXPECT_NE(std::string::npos, o.find("* ")) << o;
	EXPECT_NE(std::string::npos, o.find(" 3  incr on 2 ")) << o;
	// checkpoint 3 takes page 0 from itself, 1-2 from 1, 3-4 from 2.
	EXPECT_NE(std::string::npos, o.find("chain: 1 (full, 2 pages) <- 2 (2 pages) <- 3 (1 pages)"))
		<< o;
	EXPECT_NE(std::string::npos, o.find("checkpoint 3: ")) << o;
	EXPECT_NE(std::string::npos, o.find("checksums: all sections OK")) << o;

	r = run_amber({"inspect", "-D", store, "--checkpoint", "2"});
	EXPECT_EQ(0, r.status) << r.err;
	EXPECT_NE(std::string::npos, r.out.find("checkpoint 2: ")) << r.out;
	EXPECT_NE(std::string::npos, r.out.find("incremental on checkpoint 1: 2 pages saved, 3 unchanged"))
		<< r.out;
	EXPECT_NE(std::string::npos, r.out.find("chain: 1 (full, 3 pages) <- 2 (2 pages)")) << r.out;
}
