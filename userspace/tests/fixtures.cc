// SPDX-License-Identifier: GPL-2.0
#include "fixtures.h"

#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/amber.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace amber::testing {

TempDir::TempDir()
{
	char tmpl[] = "/tmp/amber-unit-XXXXXX";
	const char *p = mkdtemp(tmpl);
	if (!p)
		abort();
	path_ = p;
}

TempDir::~TempDir()
{
	std::error_code ec;
	std::filesystem::remove_all(path_, ec);
}

static void put_fd(AttrWriter &w, const FdInfo &f)
{
	size_t n = w.begin_nest(AMBER_A_FD);
	w.put_u32(AMBER_FD_NUM, f.num);
	w.put_u32(AMBER_FD_TYPE, f.type);
	w.put_u32(AMBER_FD_FLAGS, f.flags);
	w.put_u64(AMBER_FD_POS, f.pos);
	if (f.cloexec)
		w.put_flag(AMBER_FD_CLOEXEC);
	w.put_string(AMBER_FD_PATH, f.path);
	w.put_u64(AMBER_FD_INO, f.ino);
	w.put_u32(AMBER_FD_MODE, f.mode);
	w.put_u64(AMBER_FD_SIZE, f.size);
	if (f.tty)
		w.put_flag(AMBER_FD_TTY);
	if (f.file_id)
		w.put_u64(AMBER_FD_FILE_ID, f.file_id);
	if (f.timerfd)
		w.put_u32(AMBER_FD_TIMERFD_CLOCKID, f.timerfd_clockid);
	if (f.signalfd)
		w.put_u64(AMBER_FD_SIGNALFD_MASK, f.signalfd_mask);
	if (f.inotify)
		w.put_flag(AMBER_FD_INOTIFY);
	for (const InotifyWatch &iw : f.inotify_watches) {
		size_t wn = w.begin_nest(AMBER_FD_INOTIFY_WATCH);
		w.put_u32(AMBER_INOTIFY_WD, iw.wd);
		w.put_u32(AMBER_INOTIFY_MASK, iw.mask);
		w.put_u64(AMBER_INOTIFY_DEV, iw.dev);
		w.put_u64(AMBER_INOTIFY_INO, iw.ino);
		w.put_u32(AMBER_INOTIFY_HANDLE_TYPE, iw.handle_type);
		w.put_binary(AMBER_INOTIFY_HANDLE, iw.handle);
		w.end_nest(wn);
	}
	w.end_nest(n);
}

static void put_vma(AttrWriter &w, uint64_t start, uint64_t end, uint32_t prot, uint32_t flags,
		    const char *path, uint64_t pages)
{
	size_t n = w.begin_nest(AMBER_A_VMA);
	w.put_u64(AMBER_VMA_START, start);
	w.put_u64(AMBER_VMA_END, end);
	w.put_u64(AMBER_VMA_PGOFF, 0);
	w.put_u32(AMBER_VMA_PROT, prot);
	w.put_u32(AMBER_VMA_FLAGS, flags);
	if (path)
		w.put_string(AMBER_VMA_PATH, path);
	w.put_u64(AMBER_VMA_PAGES, pages);
	w.end_nest(n);
}

Bytes make_reply(const std::vector<FdInfo> &extra_fds)
{
	AttrWriter w;
	w.put_u64(AMBER_A_STOPPED_NS, 1234567);
	w.put_u64(AMBER_A_PAGES_BYTES, 3 * 4096 + 16 + 2 * 16);
	w.put_u64(AMBER_A_PAGES_NR, 3);

	size_t t = w.begin_nest(AMBER_A_TASK);
	w.put_u32(AMBER_TASK_PID, 4242);
	w.put_string(AMBER_TASK_COMM, "sleeper");
	w.put_u32(AMBER_TASK_UID, 1000);
	w.put_u32(AMBER_TASK_GID, 100);
	size_t g = w.begin_nest(AMBER_TASK_GROUPS);
	w.put_u32(AMBER_TASK_GROUP, 24);
	w.put_u32(AMBER_TASK_GROUP, 27);
	w.end_nest(g);
	w.put_u32(AMBER_TASK_UMASK, 022);
	w.put_string(AMBER_TASK_CWD, "/work/main");
	size_t rls = w.begin_nest(AMBER_TASK_RLIMITS);
	size_t rl = w.begin_nest(AMBER_TASK_RLIMIT);
	w.put_u32(AMBER_RLIMIT_RESOURCE, 7);
	w.put_u64(AMBER_RLIMIT_CUR, 1024);
	w.put_u64(AMBER_RLIMIT_MAX, 4096);
	w.end_nest(rl);
	w.end_nest(rls);
	w.put_string(AMBER_TASK_EXE, "/usr/bin/sleep");
	w.put_u64(AMBER_TASK_RSEQ, 0x7f0000001000);
	w.end_nest(t);

	size_t m = w.begin_nest(AMBER_A_MM);
	w.put_u64(AMBER_MM_START_BRK, 0x600000);
	w.put_u64(AMBER_MM_BRK, 0x601000);
	const uint64_t auxv[] = {6, 4096, 0, 0};
	w.put_binary(AMBER_MM_AUXV, ByteView(reinterpret_cast<const uint8_t *>(auxv), sizeof(auxv)));
	w.put_u64(AMBER_MM_VDSO, 0x7fff00002000);
	w.end_nest(m);

	size_t r = w.begin_nest(AMBER_A_REGS);
	for (int i = 1; i <= AMBER_REG_MAX; i++)
		w.put_u64(i, 0x1000 + i);
	w.end_nest(r);

	Bytes fpu(832, 0);
	fpu[512] = 3;	// xstate_bv: x87 | sse
	w.put_binary(AMBER_A_FPU, fpu);

	size_t s = w.begin_nest(AMBER_A_SIGNALS);
	w.put_u64(AMBER_SIG_BLOCKED, 1ull << (SIGUSR1 - 1));
	size_t a = w.begin_nest(AMBER_SIG_ACTION);
	w.put_u32(AMBER_SIGACTION_SIGNO, SIGUSR2);
	w.put_u64(AMBER_SIGACTION_HANDLER, 0x401234);
	w.put_u64(AMBER_SIGACTION_FLAGS, 0x04000000);
	w.end_nest(a);
	size_t p = w.begin_nest(AMBER_SIG_PENDING);
	Bytes si(128, 0);
	si[0] = SIGUSR1;
	w.put_binary(AMBER_SIGPENDING_SIGINFO, si);
	w.put_flag(AMBER_SIGPENDING_SHARED);
	w.end_nest(p);
	w.end_nest(s);

	size_t vs = w.begin_nest(AMBER_A_VMAS);
	put_vma(w, 0x400000, 0x401000, PROT_READ | PROT_EXEC, 0, "/usr/bin/sleep", 0);
	put_vma(w, 0x600000, 0x602000, PROT_READ | PROT_WRITE, AMBER_VMA_F_ANON | AMBER_VMA_F_HEAP,
		nullptr, 2);
	put_vma(w, 0x7ffffffde000, 0x7ffffffff000, PROT_READ | PROT_WRITE,
		AMBER_VMA_F_ANON | AMBER_VMA_F_STACK | AMBER_VMA_F_GROWSDOWN, nullptr, 1);
	w.end_nest(vs);

	size_t fs = w.begin_nest(AMBER_A_FDS);
	FdInfo in{.num = 0, .type = AMBER_FD_FIFO, .flags = O_RDONLY, .path = "pipe:[77]"};
	FdInfo out{.num = 1, .type = AMBER_FD_CHR, .flags = O_RDWR, .path = "/dev/pts/0", .tty = true};
	FdInfo err{.num = 2, .type = AMBER_FD_CHR, .flags = O_RDWR, .path = "/dev/null"};
	put_fd(w, in);
	put_fd(w, out);
	put_fd(w, err);
	for (const FdInfo &f : extra_fds)
		put_fd(w, f);
	w.end_nest(fs);
	return w.take();
}

uint64_t write_pages(const std::string &path, const std::vector<std::pair<uint64_t, uint64_t>> &runs)
{
	Bytes b;
	amber_pages_hdr h{AMBER_PAGES_MAGIC, AMBER_PAGES_VERSION, 4096};
	b.insert(b.end(), reinterpret_cast<uint8_t *>(&h), reinterpret_cast<uint8_t *>(&h + 1));
	for (auto [addr, nr] : runs) {
		amber_page_run r{addr, uint32_t(nr), 0};
		b.insert(b.end(), reinterpret_cast<uint8_t *>(&r), reinterpret_cast<uint8_t *>(&r + 1));
		for (uint64_t i = 0; i < nr * 4096; i++)
			b.push_back(uint8_t((addr >> 12) + i * 7));
	}
	spit(path, b);
	return b.size();
}

namespace {

// meta.img next to DIR/pages.img: the sections of make_reply(), that file's
// pagemap, and info (with the page counts of the pagemap if counts).
void write_meta(const std::string &dir, InfoSection info, bool counts)
{
	auto reply = parse_checkpoint_reply(make_reply());
	ASSERT_TRUE(reply) << reply.error().str();

	MetaSections m;
	int fd = open((dir + "/" + kPagesFile).c_str(), O_RDONLY);
	ASSERT_GE(fd, 0);
	uint32_t ps = 0;
	auto map = scan_pages(fd, &ps);
	close(fd);
	ASSERT_TRUE(map) << map.error().str();
	m.pagemap = *map;

	if (counts) {
		PageCounts pc = count_pages(*map);
		info.pages_nr = pc.data;
		info.parent_pages_nr = pc.parent;
	}
	m.info = encode_info(info);
	m.core = reply->core;
	m.vmas = reply->vmas;
	m.fds = reply->fds;
	spit(dir + "/" + kMetaFile, build_meta(m));
}

} // namespace

void write_checkpoint(const std::string &dir, uint32_t number,
		      const std::vector<std::pair<uint64_t, uint64_t>> &runs)
{
	mkdir(dir.c_str(), 0700);
	uint64_t size = write_pages(dir + "/" + kPagesFile, runs);
	auto reply = parse_checkpoint_reply(make_reply());
	ASSERT_TRUE(reply) << reply.error().str();

	InfoSection info;
	info.number = number;
	info.time_ns = 1700000000ull * 1000000000ull;
	info.stopped_ns = reply->stopped_ns;
	info.pages_bytes = size;
	info.tool_version = AMBER_VERSION_STRING;
	info.pid = 4242;
	info.hostname = "unit";
	write_meta(dir, info, false);
}

uint8_t page_byte(uint64_t addr, uint32_t seed, size_t i)
{
	return uint8_t((addr >> 12) * 31 + seed * 101 + i * 7 + (i >> 8));
}

uint64_t write_run_pages(const std::string &path, const std::vector<RunSpec> &runs, uint32_t seed)
{
	Bytes b;
	amber_pages_hdr h{AMBER_PAGES_MAGIC, AMBER_PAGES_VERSION, 4096};
	b.insert(b.end(), reinterpret_cast<uint8_t *>(&h), reinterpret_cast<uint8_t *>(&h + 1));
	for (const RunSpec &run : runs) {
		amber_page_run r{run.addr, uint32_t(run.nr_pages),
				 run.parent ? uint32_t(AMBER_RUN_F_PARENT) : 0u};
		b.insert(b.end(), reinterpret_cast<uint8_t *>(&r), reinterpret_cast<uint8_t *>(&r + 1));
		if (run.parent)
			continue;
		for (uint64_t p = 0; p < run.nr_pages; p++)
			for (size_t i = 0; i < 4096; i++)
				b.push_back(page_byte(run.addr + p * 4096, seed, i));
	}
	spit(path, b);
	return b.size();
}

void write_link(const std::string &dir, uint32_t number, uint32_t parent,
		const std::vector<RunSpec> &runs, uint64_t track_id)
{
	const std::string d = dir + "/" + std::to_string(number);
	mkdir(dir.c_str(), 0700);
	mkdir(d.c_str(), 0700);
	uint64_t size = write_run_pages(d + "/" + kPagesFile, runs, number);

	InfoSection info;
	info.number = number;
	info.parent = parent;
	info.time_ns = 1700000000ull * 1000000000ull + number;
	info.stopped_ns = 1000 + number;
	info.pages_bytes = size;
	info.tool_version = AMBER_VERSION_STRING;
	info.pid = 4242;
	info.hostname = "unit";
	info.track_id = track_id;
	write_meta(d, info, true);
}

void set_latest(const std::string &store, uint32_t number)
{
	const std::string link = store + "/latest";
	unlink(link.c_str());
	ASSERT_EQ(0, symlink(std::to_string(number).c_str(), link.c_str()));
}

Bytes slurp(const std::string &path)
{
	std::ifstream f(path, std::ios::binary);
	return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void spit(const std::string &path, const Bytes &b)
{
	std::ofstream f(path, std::ios::binary | std::ios::trunc);
	f.write(reinterpret_cast<const char *>(b.data()), b.size());
}

std::vector<const Checkpoint *> ptrs(const std::vector<Checkpoint> &v)
{
	std::vector<const Checkpoint *> out;
	for (const auto &c : v)
		out.push_back(&c);
	return out;
}

CliResult run_amber(const std::string &sub, const std::vector<std::string> &args)
{
	char self[PATH_MAX] = {};
	if (readlink("/proc/self/exe", self, sizeof(self) - 1) <= 0)
		return {};
	std::string bin = self;
	bin = bin.substr(0, bin.rfind('/')) + "/amber";
	TempDir t;
	const std::string out = t.path() + "/out", err = t.path() + "/err";
	std::string cmd = bin + " " + sub;
	for (const auto &a : args)
		cmd += " '" + a + "'";
	cmd += " >" + out + " 2>" + err + " </dev/null";
	CliResult r;
	int st = system(cmd.c_str());
	if (WIFEXITED(st))
		r.status = WEXITSTATUS(st);
	Bytes o = slurp(out), e = slurp(err);
	r.out.assign(o.begin(), o.end());
	r.err.assign(e.begin(), e.end());
	return r;
}


} // namespace amber::testing
