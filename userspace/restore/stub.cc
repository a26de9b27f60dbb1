// SPDX-License-Identifier: GPL-2.0
#include "restore/stub.h"
#include "common/io.h"
#include "common/names.h"
#include "checkpoint/checkpoint.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <charconv>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/amber.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <xxhash.h>

#include "restore/lazy.h"

namespace amber {

namespace {


std::string rlimit_name(int res)
{
	static const char *const names[] = {
		"CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE",
		"MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME",
	};
	if (res >= 0 && size_t(res) < sizeof(names) / sizeof(names[0]))
		return std::string("RLIMIT_") + names[res];
	return "rlimit " + std::to_string(res);
}

std::string rlim_str(rlim_t v)
{
	return v == RLIM_INFINITY ? "unlimited" : std::to_string(v);
}

} // namespace

namespace {

} // namespace

std::vector<std::pair<unsigned, unsigned>> close_ranges(const std::vector<int> &keep)
{
	std::vector<std::pair<unsigned, unsigned>> out;
	unsigned next = 0;

	for (int k : keep) {
		if (k < 0 || unsigned(k) < next)
			continue;
		if (unsigned(k) > next)
			out.emplace_back(next, unsigned(k) - 1);
		next = unsigned(k) + 1;
	}
	out.emplace_back(next, UINT_MAX);
	return out;
}

std::vector<FdMove> plan_helper_moves(const std::vector<int> &helpers, int max_image_fd,
				      int max_open_fd)
{
	std::vector<FdMove> out;
	int next = std::max(max_image_fd, max_open_fd) + 1;

	for (int fd : helpers)
		out.push_back({fd, next++});
	return out;
}

std::string describe_step(const StubPlan &plan, const StubReport &r)
{
	auto fd_name = [&](const char *what) {
		if (r.index < 0 || size_t(r.index) >= plan.fds.size())
			return std::string("fd: ") + what;
		const StubFd &f = plan.fds[r.index];
		return "fd " + std::to_string(f.num) + ": " + f.path + ": " + what;
	};

	switch (StubStep(r.step)) {
	case StubStep::SigMask:
		return "stub: blocking signals";
	case StubStep::MoveFd:
		return "stub: moving helper fd " + std::to_string(r.index);
	case StubStep::CloseFds:
		return "stub: closing inherited fds";
	case StubStep::OpenFd:
		return fd_name("open");
	case StubStep::DupFd:
		return fd_name("dup3");
	case StubStep::SeekFd:
		return fd_name("lseek");
	case StubStep::Chdir:
		return "cwd " + plan.cwd.value_or("") + ": chdir";
	case StubStep::Comm:
		return "comm '" + plan.comm + "': prctl(PR_SET_NAME)";
	case StubStep::Sigaction:
		return "signal " + signal_name(r.index) + ": rt_sigaction";
	case StubStep::SigQueue:
		return "pending signal " + signal_name(r.index) + ": rt_sigqueueinfo";
	case StubStep::VdsoScratch:
		return "vdso: reserving a scratch area";
	case StubStep::VdsoMove:
		return "vdso: mremap to " + range_str(plan.vdso.img_vvar) + " / " +
		       range_str(plan.vdso.img_vdso);
	case StubStep::Rlimit:
		for (const StubRlimit &l : plan.rlimits)
			if (l.resource == r.index)
				return rlimit_name(r.index) + " " + rlim_str(l.lim.rlim_cur) + "/" +
				       rlim_str(l.lim.rlim_max) + ": setrlimit";
		return rlimit_name(r.index) + ": setrlimit";
	case StubStep::Send:
		return "netlink: sending AMBER_CMD_RESTORE";
	case StubStep::Returned:
		return "amber.ko refused the restore request";
	case StubStep::Setsid:
		return "stub: setsid";
	case StubStep::Setpgid:
		return "stub: setpgid(0, 0) (leader of group " + std::to_string(r.index) + ")";
	case StubStep::Fork:
		return "child pid " + std::to_string(r.index) + ": clone3 with set_tid";
	case StubStep::Barrier:
		return "stub: waiting for the other processes";
	case StubStep::JoinGroup:
		return "stub: setpgid into process group " + std::to_string(r.index);
	case StubStep::ZombieWait:
		return "zombie child pid " + std::to_string(r.index) + ": waitid";
	case StubStep::Thread:
		return "thread " + std::to_string(r.index) + ": clone3 with set_tid";
	case StubStep::ThreadSig:
		return "thread " + std::to_string(r.index) + ": rt_tgsigqueueinfo";
	case StubStep::Ready:
		return "stub: ready";
	case StubStep::ZombieExit:
		return "zombie: exit with " + std::to_string(r.index);
	case StubStep::ITimer:
		return std::string(r.index == ITIMER_REAL      ? "ITIMER_REAL"
				   : r.index == ITIMER_VIRTUAL ? "ITIMER_VIRTUAL"
							       : "ITIMER_PROF") +
		       ": setitimer";
	case StubStep::Timer:
		return "POSIX timer " + std::to_string(r.index) + ": timer_create/timer_settime";
	case StubStep::TimerId:
		return "POSIX timer " + std::to_string(r.index) +
		       ": timer_create did not hand out this id";
	case StubStep::Prefill:
		if (r.index >= 0 && size_t(r.index) < plan.prefill.size())
			return "private memory " + range_str(plan.prefill[r.index].range) +
			       ": mapping and filling it";
		return "private memory: mapping and filling it";
	case StubStep::PagesChecksum: {
		int32_t k = r.index;
		for (const StubPrefill &f : plan.prefill) {
			if (k >= 0 && size_t(k) < f.checks.size()) {
				const StubPageCheck &c = f.checks[size_t(k)];
				return "checkpoint " + std::to_string(c.number) + ": " +
				       plan.pages_prefix + "pages.img: run " +
				       std::to_string(c.run) + " at " + hex(c.addr) +
				       ": checksum mismatch";
			}
			k -= int32_t(f.checks.size());
		}
		return "pages.img: checksum mismatch";
	}
	case StubStep::Userfaultfd:
		if (r.index >= 0 && size_t(r.index) < plan.prefill.size())
			return "lazy restore: registering " + range_str(plan.prefill[r.index].range) +
			       " with the userfaultfd";
		return "lazy restore: creating a userfaultfd (root, or "
		       "/proc/sys/vm/unprivileged_userfaultfd)";
	case StubStep::LazyReady:
		return "stub: userfaultfd ready";
	}
	return "stub: step " + std::to_string(r.step);
}

std::string fd_legend(const std::string &msg, const std::map<int, std::string> &names)
{
	std::string legend;
	for (size_t at = msg.find("fd "); at != std::string::npos; at = msg.find("fd ", at + 3)) {
		if (at > 0 && isalnum((unsigned char)msg[at - 1]))
			continue;
		char *end;
		long n = strtol(msg.c_str() + at + 3, &end, 10);
		auto it = names.find(int(n));
		if (end == msg.c_str() + at + 3 || it == names.end())
			continue;
		std::string item = "fd " + std::to_string(n) + " is " + it->second;
		if (legend.find(item) == std::string::npos)
			legend += (legend.empty() ? "" : ", ") + item;
	}
	return legend.empty() ? "" : " [" + legend + "]";
}

namespace {

// vvar and vDSO stay in the list: the kernel checks that the stub moved them
// to the image's addresses. A nest holds at most 64 KiB, so long lists are
// split over several AMBER_A_VMAS, which the kernel joins.
Result<void> put_vmas(AttrWriter &w, const std::vector<Vma> &vmas, const RequestFds &fds)
{
	constexpr size_t kNestMax = 65535;
	size_t nest = w.begin_nest(AMBER_A_VMAS);

	for (const Vma &v : vmas) {
		// Upper bound of one encoded VMA: 10 numbers, the path, the nest.
		size_t need = 4 + 10 * 12 + 4 + v.path.size() + 4;
		if (w.bytes().size() - nest + need > kNestMax) {
			w.end_nest(nest);
			nest = w.begin_nest(AMBER_A_VMAS);
		}
		size_t n = w.begin_nest(AMBER_A_VMA);
		w.put_u64(AMBER_VMA_START, v.start);
		w.put_u64(AMBER_VMA_END, v.end);
		w.put_u64(AMBER_VMA_PGOFF, v.pgoff);
		w.put_u32(AMBER_VMA_PROT, v.prot);
		size_t idx = size_t(&v - vmas.data());
		bool prefilled = idx < fds.prefilled.size() && fds.prefilled[idx];
		w.put_u32(AMBER_VMA_FLAGS, v.flags | (prefilled ? AMBER_VMA_F_PREFILLED : 0));
		if (!v.path.empty())
			w.put_string(AMBER_VMA_PATH, v.path);
		w.put_u64(AMBER_VMA_DEV, v.dev);
		w.put_u64(AMBER_VMA_INO, v.ino);
		w.put_u64(AMBER_VMA_FILE_SIZE, v.file_size);
		w.put_u64(AMBER_VMA_PAGES, v.pages);
		if (auto m = fds.shmem.find(int(idx)); m != fds.shmem.end()) {
			w.put_u32(AMBER_VMA_FILE_FD, uint32_t(m->second));
		} else if (vma_has_file(v)) {
			auto fd = fds.files.find({v.path, vma_needs_write(v)});
			if (fd == fds.files.end())
				return fail(0, v.path + ": no fd opened to map it");
			w.put_u32(AMBER_VMA_FILE_FD, uint32_t(fd->second));
		}
		w.end_nest(n);
	}
	w.end_nest(nest);
	return {};
}

} // namespace

Result<Bytes> build_restore_attrs(const Checkpoint &c, const RequestFds &fds)
{
	AttrWriter w;

	w.put_raw(c.task_attr);
	w.put_raw(c.mm_attr);
	w.put_raw(c.regs_attr);
	if (!c.fpu_attr.empty())
		w.put_raw(c.fpu_attr);
	w.put_raw(c.signals_attr);
	AMBER_TRY(put_vmas(w, c.vmas, fds));

	size_t n = w.begin_nest(AMBER_A_PAGE_FDS);
	for (int fd : fds.pages)
		w.put_u32(AMBER_A_PAGE_FD, uint32_t(fd));
	w.end_nest(n);
	n = w.begin_nest(AMBER_A_CLOSE_FDS);
	for (int fd : fds.close)
		w.put_u32(AMBER_A_CLOSE_FD, uint32_t(fd));
	w.end_nest(n);
	if (fds.exe >= 0)
		w.put_u32(AMBER_A_EXE_FD, uint32_t(fds.exe));
	if (!c.threads.empty()) {
		// Split over several AMBER_A_THREADS nests (at most 64 KiB
		// each), which the kernel joins, as for VMAS.
		constexpr size_t kNestMax = 65535;
		n = w.begin_nest(AMBER_A_THREADS);
		for (const ThreadInfo &t : c.threads) {
			if (t.raw.empty())
				return fail(EINVAL, "image: THREADS: thread " + std::to_string(t.tid) +
							    ": no attribute to send");
			if (t.raw.size() + 8 > kNestMax)
				return fail(E2BIG, "image: THREADS: thread " + std::to_string(t.tid) +
							   ": " + std::to_string(t.raw.size()) +
							   " bytes, more than one attribute holds");
			if (w.bytes().size() - n + t.raw.size() + 4 > kNestMax) {
				w.end_nest(n);
				n = w.begin_nest(AMBER_A_THREADS);
			}
			w.put_raw(t.raw);
		}
		w.end_nest(n);
	}
	if (fds.hold || fds.lazy)
		w.put_u32(AMBER_A_FLAGS, (fds.hold ? AMBER_RESTORE_F_HOLD : 0) |
						 (fds.lazy ? AMBER_RESTORE_F_LAZY : 0));
	if (!w.ok())
		return fail(E2BIG, "restore request: an attribute exceeds 64 KiB");
	return w.take();
}

// ---- The child. Only system calls from here on. ----

namespace {

// The report pipe's number: the tool's until the helper moves, then ours.
int g_report_fd = -1;

void report(StubStep step, int index, int err)
{
	StubReport r;
	r.step = uint32_t(step);
	r.index = index;
	r.err = err;
	r.pid = int32_t(syscall(SYS_getpid));
	if (g_report_fd >= 0) {
		ssize_t n = write(g_report_fd, &r, sizeof(r));
		(void)n;
	}
}

[[noreturn]] void stub_fail(const StubPlan &, StubStep step, int index)
{
	report(step, index, errno);
	_exit(126);
}

// clone3() for a thread that parks at once: the new thread never returns
// into C++ code (its stack is not ours to use). It first queues its own
// pending signals (sigs[0..nsigs), writing each result), then loops in
// pause() with every signal blocked until amber.ko takes it over. Returns
// the TID or -errno.
long clone3_parked_thread(StubCloneArgs *args, StubThreadSig *sigs, long nsigs, long tgid,
			  long tid)
{
	long ret;
	register long r12 asm("r12") = long(sigs);
	register long r13 asm("r13") = nsigs;
	register long r14 asm("r14") = tgid;
	register long r15 asm("r15") = tid;
	asm volatile("syscall\n\t"
		     "test %%rax, %%rax\n\t"
		     "jnz 1f\n\t"
		     "3:\n\t"
		     "test %%r13, %%r13\n\t"
		     "jz 2f\n\t"
		     "mov %[tgsq], %%eax\n\t"
		     "mov %%r14, %%rdi\n\t"
		     "mov %%r15, %%rsi\n\t"
		     "movslq %c[signo](%%r12), %%rdx\n\t"
		     "lea %c[info](%%r12), %%r10\n\t"
		     "syscall\n\t"
		     "movl %%eax, %c[result](%%r12)\n\t"
		     "add %[size], %%r12\n\t"
		     "dec %%r13\n\t"
		     "jmp 3b\n\t"
		     "2:\n\t"
		     "mov %[pause], %%eax\n\t"
		     "syscall\n\t"
		     "jmp 2b\n\t"
		     "1:\n\t"
		     : "=a"(ret), "+r"(r12), "+r"(r13), "+r"(r14), "+r"(r15)
		     : "a"(long(SYS_clone3)), "D"(args), "S"(sizeof(*args)),
		       [pause] "i"(SYS_pause), [tgsq] "i"(SYS_rt_tgsigqueueinfo),
		       [signo] "i"(offsetof(StubThreadSig, signo)),
		       [info] "i"(offsetof(StubThreadSig, info)),
		       [result] "i"(offsetof(StubThreadSig, result)),
		       [size] "i"(sizeof(StubThreadSig))
		     : "rcx", "r11", "rdx", "r10", "memory");
	return ret;
}

// A zombie's stub: exits with the recorded status; for a signal, by the
// signal's default action, without a core dump.
[[noreturn]] void zombie_exit(const StubPlan &plan)
{
	if (!plan.tree.exit_signaled)
		_exit(plan.tree.exit_code);
	int sig = plan.tree.exit_code;
	struct rlimit core = {0, 0};
	setrlimit(RLIMIT_CORE, &core);
	KernelSigaction dfl = {0, 0, 0, 0};
	syscall(SYS_rt_sigaction, sig, &dfl, nullptr, 8);
	syscall(SYS_kill, syscall(SYS_getpid), sig);
	uint64_t mask = ~(uint64_t(1) << (sig - 1));
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, nullptr, sizeof(mask));
	errno = EINVAL;		// still alive: the signal does not kill
	stub_fail(plan, StubStep::ZombieExit, sig);
}

// pread_exact(), false with errno set: EIO if the pages file is shorter
// than its index says.
bool pread_pages(int fd, void *buf, uint64_t len, uint64_t off)
{
	int r = pread_exact(fd, buf, len, off);
	if (r > 0)
		errno = EIO;
	return r == 0;
}

bool page_is_zero(const uint64_t *w, size_t words)
{
	for (size_t i = 0; i < words; i++)
		if (w[i])
			return false;
	return true;
}

// Inherited pages of [addr, end) that must be zero: those resident and not
// zero are dropped (never-touched ones are not even read). Uses the scratch
// buffer for mincore().
bool zero_pages(const StubPlan &plan, uint64_t addr, uint64_t end, size_t ps)
{
	auto *vec = reinterpret_cast<unsigned char *>(plan.scratch);
	while (addr < end) {
		uint64_t n = std::min<uint64_t>((end - addr) / ps, plan.scratch_size);
		if (mincore(reinterpret_cast<void *>(addr), n * ps, vec))
			return false;
		for (uint64_t k = 0; k < n; k++) {
			uint64_t page = addr + k * ps;
			if ((vec[k] & 1) &&
			    !page_is_zero(reinterpret_cast<const uint64_t *>(page), ps / 8) &&
			    madvise(reinterpret_cast<void *>(page), ps, MADV_DONTNEED))
				return false;
		}
		addr += n * ps;
	}
	return true;
}

// Writes what differs of src[0, n) to dst, a page of dst at a time.
void copy_differing(uint8_t *dst, const uint8_t *src, size_t n, size_t ps)
{
	while (n) {
		size_t k = std::min(n, ps - (uintptr_t(dst) & (ps - 1)));
		if (memcmp(dst, src, k))
			memcpy(dst, src, k);
		dst += k;
		src += k;
		n -= k;
	}
}

// Inherited memory: a page is written only where it differs from the image,
// compared with the pages file where it lies in the page cache
// (for_each_mapped()); what cannot be mapped goes through the scratch buffer.
bool fix_inherited(const StubPlan &plan, const StubPrefill &f, size_t ps)
{
	auto *scratch = reinterpret_cast<uint8_t *>(plan.scratch);
	uint64_t at = f.range.start;

	for (const PrefillSeg &s : f.segs) {
		if (!zero_pages(plan, at, s.addr, ps))
			return false;
		auto *mem = reinterpret_cast<uint8_t *>(s.addr);
		uint64_t left = for_each_mapped(s.fd, s.off, s.len, [&](const uint8_t *p, size_t n) {
			copy_differing(mem, p, n, ps);
			mem += n;
		});
		for (uint64_t done = s.len - left; done < s.len;) {
			uint64_t n = std::min<uint64_t>(s.len - done, plan.scratch_size);
			if (!pread_pages(s.fd, scratch, n, s.off + done))
				return false;
			copy_differing(reinterpret_cast<uint8_t *>(s.addr + done), scratch, n, ps);
			done += n;
		}
		at = s.addr + s.len;
	}
	return zero_pages(plan, at, f.range.end, ps);
}

// Waits (futex, across processes) until *v is at least want.
void wait_at_least(int32_t *v, int32_t want)
{
	int32_t cur;
	while ((cur = __atomic_load_n(v, __ATOMIC_ACQUIRE)) < want)
		syscall(SYS_futex, v, FUTEX_WAIT, cur, nullptr, nullptr, 0);
}

void add_and_wake(int32_t *v)
{
	__atomic_add_fetch(v, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, v, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

} // namespace

namespace {

// Copies len bytes of file fd at off to addr from where they lie in the
// page cache (for_each_mapped()), with a user-space memcpy(): read() would
// copy with the kernel's copy_to_user() instead, the slowest copy there is
// where the guest's CPU is emulated (rep movsb). What cannot be mapped is
// read. Allocates nothing.
bool fill_from_file(int fd, uint64_t addr, uint64_t len, uint64_t off)
{
	uint8_t *to = reinterpret_cast<uint8_t *>(addr);
	uint64_t left = for_each_mapped(fd, off, len, [&](const uint8_t *p, size_t n) {
		memcpy(to, p, n);
		to += n;
	});
	return !left || pread_pages(fd, to, left, off + len - left);
}

} // namespace

namespace {

// Maps and fills plan.prefill[i] (read-write), or fixes it up where inherited.
bool fill_one(const StubPlan &plan, size_t i)
{
	const StubPrefill &f = plan.prefill.at(i);
	void *at = reinterpret_cast<void *>(f.range.start);
	const int rw = PROT_READ | PROT_WRITE;

	if (f.inherited)
		return !mprotect(at, f.range.size(), rw) &&
		       fix_inherited(plan, f, size_t(sysconf(_SC_PAGESIZE)));
	// Over the tool's PROT_NONE reservation, or over what the parent's stub
	// prefilled for itself only.
	if (mmap(at, f.range.size(), rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != at)
		return false;
	// Lazy: the tool fills it through the userfaultfd, checking each run
	// before any of its pages is handed over.
	if (plan.lazy)
		return true;
	for (const PrefillSeg &s : f.segs)
		if (!fill_from_file(s.fd, s.addr, s.len, s.off))
			return false;
	return true;
}

// Checks the runs the tool left to us on the memory the process will run
// with, before it exists, then sets the protection of plan.prefill[i].
bool finish_one(const StubPlan &plan, size_t i, int *bad_check)
{
	const StubPrefill &f = plan.prefill.at(i);

	for (size_t k = 0; !plan.lazy && k < f.checks.size(); k++) {
		const StubPageCheck &c = f.checks[k];
		if (XXH64(reinterpret_cast<const void *>(c.addr), size_t(c.len), 0) != c.xxh64) {
			*bad_check = int(k);
			errno = EBADMSG;
			return false;
		}
	}
	return f.prot == (PROT_READ | PROT_WRITE) ||
	       !mprotect(reinterpret_cast<void *>(f.range.start), f.range.size(), f.prot);
}

} // namespace

bool prefill_one(const StubPlan &plan, size_t i, int *bad_check)
{
	int bad = -1;
	bool ok = fill_one(plan, i) && finish_one(plan, i, &bad);
	if (bad_check)
		*bad_check = bad;
	return ok;
}

namespace {

// Maps and fills the prefilled VMAs (see StubPrefill), or fixes up those
// inherited from the parent's stub. before_fork: only those a child
// inherits, left read-write and unchecked; then (after the children are
// created) every other one is filled, and every one is checked and gets its
// protection.
void prefill(const StubPlan &plan, bool before_fork = false)
{
	int checks = 0;
	for (size_t i = 0; i < plan.prefill.size(); i++) {
		const StubPrefill &f = plan.prefill[i];
		int bad = -1;
		bool ok = before_fork ? !f.before_fork || fill_one(plan, i)
				      : (f.before_fork || fill_one(plan, i)) &&
						finish_one(plan, i, &bad);
		if (!ok) {
			if (bad >= 0)
				stub_fail(plan, StubStep::PagesChecksum, checks + bad);
			stub_fail(plan, StubStep::Prefill, int(i));
		}
		checks += int(f.checks.size());
	}
}

// Lazy restore: the prefilled (still empty) memory registered with a new
// userfaultfd, which the tool copies with pidfd_getfd() once it has it
// (LazyReady). The tool's byte on lazy_go_fd says it holds it and serves
// faults; then ours is closed, leaving no trace in the process.
void lazy_register(const StubPlan &plan)
{
	close(plan.lazy_go_w_fd);	// EOF on go once the tool gives up
	int uffd = int(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
	if (uffd < 0)
		stub_fail(plan, StubStep::Userfaultfd, -1);
	struct uffdio_api api = {};
	api.api = UFFD_API;
	api.features = kLazyUffdFeatures;
	if (ioctl(uffd, UFFDIO_API, &api))
		stub_fail(plan, StubStep::Userfaultfd, -1);
	for (size_t i = 0; i < plan.prefill.size(); i++) {
		const StubPrefill &f = plan.prefill[i];
		struct uffdio_register reg = {};
		reg.range.start = f.range.start;
		reg.range.len = f.range.size();
		reg.mode = UFFDIO_REGISTER_MODE_MISSING;
		if (ioctl(uffd, UFFDIO_REGISTER, &reg))
			stub_fail(plan, StubStep::Userfaultfd, int(i));
		if (!(reg.ioctls & (uint64_t(1) << _UFFDIO_COPY))) {
			errno = EOPNOTSUPP;
			stub_fail(plan, StubStep::Userfaultfd, int(i));
		}
	}
	report(StubStep::LazyReady, uffd, 0);
	char go;
	ssize_t n;
	while ((n = read(plan.lazy_go_fd, &go, 1)) < 0 && errno == EINTR)
		;
	if (n != 1)
		_exit(126);	// the tool gave up: no report
	close(uffd);
}

// Tree part of a stub, before it restores itself: session and group,
// children, the barrier, joining a group. Zombies end here.
void run_tree_stub(const StubPlan &plan)
{
	const StubTree &t = plan.tree;
	if (t.go_w_fd >= 0)
		close(t.go_w_fd);	// EOF at the barrier once the tool gives up
	if (t.setsid && syscall(SYS_setsid) < 0)
		stub_fail(plan, StubStep::Setsid, 0);
	if (t.setpgid_self && setpgid(0, 0))
		stub_fail(plan, StubStep::Setpgid, plan.pid);
	prefill(plan, true);

	for (const auto &[pid, child] : t.children) {
		pid_t tid = pid;
		StubCloneArgs args = {};
		args.flags = child->tree.clone_flags;
		args.exit_signal = SIGCHLD;
		args.set_tid = uint64_t(&tid);
		args.set_tid_size = 1;
		long r = syscall(SYS_clone3, &args, sizeof(args));
		if (r == 0)
			run_stub(*child);
		if (r < 0)
			stub_fail(plan, StubStep::Fork, pid);
	}
	// The rest of its memory, while the children fill theirs.
	prefill(plan);

	// Every process exists once the tool has all Ready reports.
	report(StubStep::Ready, 0, 0);
	char go;
	ssize_t n;
	while ((n = read(t.go_fd, &go, 1)) < 0 && errno == EINTR)
		;
	if (n != 1)
		_exit(126);	// the tool gave up: no report
	bool joined = t.outside_pgid > 0 && setpgid(0, t.outside_pgid) == 0;
	if (!joined && t.join && setpgid(0, t.join_pgid))
		stub_fail(plan, StubStep::JoinGroup, t.join_pgid);
	if (t.zombie)
		zombie_exit(plan);

	// Zombie children become zombies now; their SIGCHLD is not the
	// program's (its own pending signals come next).
	for (pid_t z : t.zombie_children) {
		siginfo_t si;
		while (waitid(P_PID, id_t(z), &si, WEXITED | WNOWAIT) < 0)
			if (errno != EINTR)
				stub_fail(plan, StubStep::ZombieWait, z);
	}
	if (!t.zombie_children.empty()) {
		uint64_t chld = uint64_t(1) << (SIGCHLD - 1);
		struct timespec zero = {0, 0};
		siginfo_t si;
		while (syscall(SYS_rt_sigtimedwait, &chld, &si, &zero, sizeof(chld)) > 0)
			;
	}
}

// Moves [vvar] and [vdso] to the image's addresses through a scratch area,
// so that no order of the two moves can clobber the other mapping.
bool move_vdso(const StubPlan &plan, StubStep *step)
{
	const VdsoPlan &v = plan.vdso;

	if (v.action == VdsoPlan::Action::Unmap) {
		*step = StubStep::VdsoMove;
		if (!v.cur_vvar.empty() && munmap((void *)v.cur_vvar.start, v.cur_vvar.size()))
			return false;
		if (!v.cur_vdso.empty() && munmap((void *)v.cur_vdso.start, v.cur_vdso.size()))
			return false;
		return true;
	}
	if (v.action != VdsoPlan::Action::Move)
		return true;

	uint64_t span = v.cur_vvar.size() + v.cur_vdso.size();
	*step = StubStep::VdsoScratch;
	void *res = mmap(nullptr, 5 * span, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return false;
	uint64_t base = uint64_t(res);
	int c = pick_scratch_chunk(base, span, v.img_vvar, v.img_vdso);
	if (c < 0) {
		errno = EFAULT;
		return false;
	}
	uint64_t tmp = base + c * span;

	*step = StubStep::VdsoMove;
	const int mf = MREMAP_MAYMOVE | MREMAP_FIXED;
	uint64_t tmp_vvar = tmp, tmp_vdso = tmp + v.cur_vvar.size();
	if (!v.cur_vvar.empty() &&
	    mremap((void *)v.cur_vvar.start, v.cur_vvar.size(), v.cur_vvar.size(), mf,
		   (void *)tmp_vvar) == MAP_FAILED)
		return false;
	if (mremap((void *)v.cur_vdso.start, v.cur_vdso.size(), v.cur_vdso.size(), mf,
		   (void *)tmp_vdso) == MAP_FAILED)
		return false;
	// Drop the rest of the scratch area before the final move: it may
	// cover the targets, and must not be unmapped after it.
	if (c > 0 && munmap(res, c * span))
		return false;
	if (c < 4 && munmap((void *)(tmp + span), (4 - c) * span))
		return false;
	if (!v.cur_vvar.empty() &&
	    mremap((void *)tmp_vvar, v.cur_vvar.size(), v.cur_vvar.size(), mf,
		   (void *)v.img_vvar.start) == MAP_FAILED)
		return false;
	if (mremap((void *)tmp_vdso, v.cur_vdso.size(), v.cur_vdso.size(), mf,
		   (void *)v.img_vdso.start) == MAP_FAILED)
		return false;
	return true;
}

// setitimer(), then timer_create() in id order: the kernel hands out ids
// in sequence per process, so fillers below a wanted id are created and
// deleted; then timer_settime() with the time left.
void run_timers(const StubPlan &plan)
{
	const StubTimers &t = plan.timers;
	for (int w = ITIMER_REAL; w <= ITIMER_PROF; w++) {
		const itimerval &v = t.itimer[w];
		if ((v.it_value.tv_sec || v.it_value.tv_usec) &&
		    syscall(SYS_setitimer, w, &v, nullptr))
			stub_fail(plan, StubStep::ITimer, w);
	}
	int32_t last = -1;
	for (const StubTimer &st : t.timers) {
		int32_t id = -1;
		for (;;) {
			if (syscall(SYS_timer_create, st.clock, &st.ev, &id))
				stub_fail(plan, StubStep::Timer, st.id);
			if (id == st.id)
				break;
			syscall(SYS_timer_delete, id);
			if (id > st.id) {
				errno = EEXIST;
				stub_fail(plan, StubStep::TimerId, st.id);
			}
		}
		if ((st.its.it_value.tv_sec || st.its.it_value.tv_nsec) &&
		    syscall(SYS_timer_settime, id, 0, &st.its, nullptr))
			stub_fail(plan, StubStep::Timer, st.id);
		last = id;
	}
	StubTimer filler;
	filler.ev.notify = SIGEV_NONE;
	while (last + 1 < t.next_id) {
		if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &filler.ev, &last))
			stub_fail(plan, StubStep::TimerId, t.next_id);
		syscall(SYS_timer_delete, last);
	}
}

} // namespace

void run_stub(const StubPlan &plan)
{
	g_report_fd = plan.early_report_fd >= 0 ? plan.early_report_fd : plan.report_fd;

	// 1. Nothing may interrupt the stub; pending signals stay queued.
	uint64_t all = ~0ULL;
	if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, nullptr, sizeof(all)))
		stub_fail(plan, StubStep::SigMask, 0);
	if (plan.tree.active)
		run_tree_stub(plan);
	else
		prefill(plan);
	if (plan.lazy)
		lazy_register(plan);

	// A shared fd table is set up once, by its owner (StubFilesSync).
	if (plan.files_sync) {
		add_and_wake(&plan.files_sync->passed);
		if (plan.files_follower) {
			wait_at_least(&plan.files_sync->ready, 1);
			g_report_fd = plan.report_fd;
			goto process;
		}
		wait_at_least(&plan.files_sync->passed, plan.files_members);
	}

	// 2. Helper fds above every image fd, then drop everything else.
	// Several moves may start from one fd (the socket, the report pipe
	// of every member of a shared table): all are moved, then closed.
	for (size_t i = 0; i < plan.helpers.size(); i++) {
		const FdMove &m = plan.helpers[i];
		if (dup3(m.from, m.to, O_CLOEXEC) < 0)
			stub_fail(plan, StubStep::MoveFd, int(i));
		if (m.from == g_report_fd)
			g_report_fd = m.to;
	}
	for (const FdMove &m : plan.helpers)
		close(m.from);
	g_report_fd = plan.report_fd;
	for (const auto &[lo, hi] : plan.close)
		if (syscall(SYS_close_range, lo, hi, 0))
			stub_fail(plan, StubStep::CloseFds, 0);

	// 3. The image's fds at their numbers.
	for (size_t i = 0; i < plan.fds.size(); i++) {
		const StubFd &f = plan.fds[i];
		if (f.inherit) {
			fcntl(f.num, F_SETFD, (f.flags & O_CLOEXEC) ? FD_CLOEXEC : 0);
			continue;
		}
		if (f.src >= 0) {
			if (dup3(f.src, f.num, f.flags & O_CLOEXEC) < 0)
				stub_fail(plan, StubStep::DupFd, int(i));
			continue;
		}
		int fd = open(f.path.c_str(), f.flags);
		if (fd < 0)
			stub_fail(plan, StubStep::OpenFd, int(i));
		if (fd != f.num) {
			if (dup3(fd, f.num, f.flags & O_CLOEXEC) < 0)
				stub_fail(plan, StubStep::DupFd, int(i));
			close(fd);
		}
		if (f.seek && lseek(f.num, f.pos, SEEK_SET) < 0)
			stub_fail(plan, StubStep::SeekFd, int(i));
	}
	for (int fd : plan.close_after)
		close(fd);
	if (plan.files_sync)
		add_and_wake(&plan.files_sync->ready);

process:
	// 4. Process attributes.
	if (plan.cwd && (chdir(plan.cwd->c_str()) || (plan.cwd_ghost && rmdir(plan.cwd->c_str()))))
		stub_fail(plan, StubStep::Chdir, 0);
	if (plan.umask)
		umask(*plan.umask);
	if (!plan.comm.empty() && prctl(PR_SET_NAME, plan.comm.c_str(), 0, 0, 0))
		stub_fail(plan, StubStep::Comm, 0);

	// 5. Signal handlers, then the pending signals (all blocked: they stay
	// queued until the kernel installs the image's blocked mask).
	for (const StubSigaction &a : plan.actions)
		if (syscall(SYS_rt_sigaction, a.signo, &a.act, nullptr, 8))
			stub_fail(plan, StubStep::Sigaction, a.signo);
	pid_t self = pid_t(syscall(SYS_getpid));
	for (const StubSiginfo &s : plan.pending) {
		long r = s.shared ? syscall(SYS_rt_sigqueueinfo, self, s.signo, s.info)
				  : syscall(SYS_rt_tgsigqueueinfo, self, self, s.signo, s.info);
		if (r)
			stub_fail(plan, StubStep::SigQueue, s.signo);
	}

	// 6. vvar/vDSO to the image's addresses. From here on nothing may use
	// the vDSO (no clock_gettime, time, gettimeofday).
	StubStep step = StubStep::VdsoMove;
	if (!move_vdso(plan, &step))
		stub_fail(plan, step, 0);

	// 7. The other threads, parked in pause() with every signal blocked
	// (inherited), each having queued its own pending signals.
	size_t sig = 0;
	for (pid_t tid : plan.threads) {
		pid_t want = tid;
		StubCloneArgs args = {};
		args.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
			     CLONE_SYSVSEM;
		args.stack = plan.thread_stack;
		args.stack_size = plan.thread_stack_size;
		args.set_tid = uint64_t(&want);
		args.set_tid_size = 1;
		size_t first = sig;
		while (sig < plan.thread_pending.size() && plan.thread_pending[sig].tid == tid)
			sig++;
		long r = clone3_parked_thread(&args, plan.thread_pending.data() + first,
					      long(sig - first), self, tid);
		if (r < 0) {
			errno = int(-r);
			stub_fail(plan, StubStep::Thread, tid);
		}
	}
	if (sig != plan.thread_pending.size()) {
		errno = EINVAL;
		stub_fail(plan, StubStep::ThreadSig, plan.thread_pending[sig].tid);
	}
	for (StubThreadSig &ts : plan.thread_pending) {
		volatile int32_t *res = &ts.result;
		while (*res == StubThreadSig::kPending)
			syscall(SYS_sched_yield);
		if (*res < 0) {
			errno = -*res;
			stub_fail(plan, StubStep::ThreadSig, ts.tid);
		}
	}

	// 8. Timers, once their SIGEV_THREAD_ID targets exist. What they send
	// stays pending (all blocked) until the kernel installs the masks.
	run_timers(plan);

	// 9. Limits last: a low RLIMIT_NOFILE must not stop the steps above.
	for (const StubRlimit &r : plan.rlimits)
		if (setrlimit(__rlimit_resource(r.resource), &r.lim))
			stub_fail(plan, StubStep::Rlimit, r.resource);

	// 10. Become the checkpointed process. On success this never returns.
	if (send(plan.nl_fd, plan.msg.data(), plan.msg.size(), 0) < 0)
		stub_fail(plan, StubStep::Send, 0);
	errno = 0;
	stub_fail(plan, StubStep::Returned, 0);
}

} // namespace amber
