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

#include "attr.h"
#include "image.h"

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
};

RunResult run_amber(const std::vector<std::string> &args)
{
	RunResult r;
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return r;
	std::string bin = amber_bin();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 2);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		std::vector<char *> argv = {const_cast<char *>(bin.c_str())};
		for (const std::string &a : args)
			argv.push_back(const_cast<char *>(a.c_str()));
		argv.push_back(nullptr);
		execv(bin.c_str(), argv.data());
		_exit(127);
	}
	close(p[1]);
	char buf[4096];
	ssize_t n;
	while ((n = read(p[0], buf, sizeof(buf))) > 0)
		r.err.append(buf, size_t(n));
	close(p[0]);
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
	void write_image()
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

		InfoSection info;
		info.number = 1;
		info.pid = uint32_t(pid);
		MetaSections s;
		s.info = encode_info(info);
		s.core = core.take();
		s.vmas = vw.take();
		s.fds = fw.take();

		std::string dir = store + "/1";
		ASSERT_EQ(0, mkdir(store.c_str(), 0755));
		ASSERT_EQ(0, mkdir(dir.c_str(), 0755));
		write_bytes(dir + "/meta.img", build_meta(s));
		amber_pages_hdr hdr = {AMBER_PAGES_MAGIC, AMBER_PAGES_VERSION, 4096};
		const uint8_t *h = reinterpret_cast<const uint8_t *>(&hdr);
		write_bytes(dir + "/pages.img", Bytes(h, h + sizeof(hdr)));
		ASSERT_EQ(0, symlink("1", (store + "/latest").c_str()));
	}

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
	EXPECT_EQ(0u, r.err.find("amber restore: meta.img: ")) << r.err;
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
