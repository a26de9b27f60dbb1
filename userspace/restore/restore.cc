// SPDX-License-Identifier: GPL-2.0
// Restoring a process as a child of the caller (restore_process.h).
//
// The image is loaded and verified, the files it needs and its PID are
// checked, then a stub is created with clone3(set_tid = {pid}). The stub
// recreates fds, cwd, signal state and the vDSO placement (stub.cc) and sends
// AMBER_CMD_RESTORE, after which the kernel turns it into the checkpointed
// program. The netlink socket is shared: the kernel's ACK or extack error for
// the stub's request is read here, in the parent, even if the stub is gone.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/amber.h>
#include <linux/netlink.h>

#include "common/io.h"
#include "common/names.h"
#include "image/image.h"
#include "netlink/netlink.h"
#include "restore/restore.h"
#include "image/store.h"
#include "restore/stub.h"
#include "restore/tree_plan.h"

namespace amber {

namespace {

// Checks that path still exists with the expected type (and size, if any).
Result<void> check_file(const std::string &path, mode_t type, std::optional<uint64_t> size)
{
	if (is_deleted(path))
		return fail(0, path + ": was deleted before the checkpoint, cannot reopen it");
	struct stat st;
	if (stat(path.c_str(), &st)) {
		if (errno == ENOENT)
			return fail(0, path + ": missing");
		return fail_errno(path);
	}
	if ((st.st_mode & S_IFMT) != type) {
		const char *what = type == S_IFREG ? "a regular file"
				   : type == S_IFDIR ? "a directory"
				   : type == S_IFCHR ? "a character device"
						     : "the same kind of file";
		return fail(0, path + ": is no longer " + std::string(what));
	}
	if (size && uint64_t(st.st_size) != *size)
		return fail(0, path + ": size changed from " + std::to_string(*size) + " to " +
			    std::to_string(st.st_size));
	return {};
}

// For each `outer` attribute of an image section, in order: whether it holds
// an `inner` attribute. Sizes that were not recorded are not checked.
std::vector<bool> has_inner_attr(ByteView section, uint16_t outer, uint16_t inner)
{
	std::vector<bool> out;
	auto attrs = parse_attrs(section);
	if (!attrs)
		return out;
	for (const Attr &a : *attrs) {
		if (a.type != outer)
			continue;
		auto in = parse_attrs(a.data);
		out.push_back(in && find_attr(*in, inner));
	}
	return out;
}

// Every file the image needs, checked before anything is created.
Result<void> check_files(const Checkpoint &c, const std::vector<StubFd> &fds)
{
	auto vma_sized = has_inner_attr(c.vmas_raw, AMBER_A_VMA, AMBER_VMA_FILE_SIZE);
	auto fd_sized = has_inner_attr(c.fds_raw, AMBER_A_FD, AMBER_FD_SIZE);
	if (vma_sized.size() != c.vmas.size())
		vma_sized.assign(c.vmas.size(), true);
	if (fd_sized.size() != c.fds.size())
		fd_sized.assign(c.fds.size(), true);

	if (!c.task.exe.empty())
		AMBER_TRY(check_file(c.task.exe, S_IFREG, std::nullopt));
	for (size_t i = 0; i < c.vmas.size(); i++) {
		const Vma &v = c.vmas[i];
		if (vma_has_file(v))
			AMBER_TRY(check_file(v.path, S_IFREG,
					     vma_sized[i] ? std::optional(v.file_size) : std::nullopt));
	}
	for (size_t i = 0; i < c.fds.size(); i++) {
		const FdInfo &f = c.fds[i];
		// fds is sorted by number (plan_fds).
		auto s = std::lower_bound(fds.begin(), fds.end(), int(f.num),
					  [](const StubFd &s, int num) { return s.num < num; });
		if (s == fds.end() || s->num != int(f.num) || s->inherit)
			continue;
		if (s->shared >= 0 && f.type != AMBER_FD_REG && f.type != AMBER_FD_DIR &&
		    f.type != AMBER_FD_CHR && f.type != AMBER_FD_BLK)
			continue;	// a pipe or socket the tool creates
		mode_t type = f.type == AMBER_FD_REG   ? S_IFREG
			      : f.type == AMBER_FD_DIR ? S_IFDIR
			      : f.type == AMBER_FD_CHR ? S_IFCHR
						       : S_IFBLK;
		std::optional<uint64_t> size;
		if (f.type == AMBER_FD_REG && (f.flags & O_ACCMODE) == O_RDONLY && fd_sized[i])
			size = f.size;
		if (auto r = check_file(f.path, type, size); !r)
			return wrap(r.error(), "fd " + std::to_string(f.num) + ": ");
	}
	if (!c.task.cwd.empty())
		AMBER_TRY(check_file(c.task.cwd, S_IFDIR, std::nullopt));
	return {};
}

std::string read_comm(pid_t pid)
{
	std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
	std::string comm;
	std::getline(in, comm);
	return comm;
}

Result<void> check_pid_free(pid_t pid)
{
	std::string proc = "/proc/" + std::to_string(pid);
	bool alive = kill(pid, 0) == 0 || errno != ESRCH;
	if (!alive && access(proc.c_str(), F_OK) != 0)
		return {};
	std::string comm = read_comm(pid);
	return fail(0, "pid " + std::to_string(pid) + " is in use" +
		       (comm.empty() ? "" : " (by comm '" + comm + "')"));
}

// Files the stub hands to the kernel.
struct Helpers {
	std::vector<UniqueFd> pages;	// oldest first
	UniqueFd exe;
	std::map<std::pair<std::string, bool>, UniqueFd> files;	// (path, rw)
};

Result<Helpers> open_helpers(const Checkpoint &c, const std::vector<std::string> &pages)
{
	Helpers h;
	for (const std::string &path : pages)
		h.pages.push_back(AMBER_TRY(open_file(path, O_RDONLY)));
	if (!c.task.exe.empty())
		h.exe = AMBER_TRY(open_file(c.task.exe, O_RDONLY));
	for (const Vma &v : c.vmas) {
		if (!vma_has_file(v))
			continue;
		auto key = std::make_pair(v.path, vma_needs_write(v));
		if (h.files.count(key))
			continue;
		h.files[key] = AMBER_TRY(open_file(v.path, key.second ? O_RDWR : O_RDONLY));
	}
	return h;
}

struct PipeFds {
	UniqueFd r, w;
};

Result<PipeFds> make_pipe(const char *what)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return fail_errno(what);
	PipeFds f;
	f.r.reset(p[0]);
	f.w.reset(p[1]);
	return f;
}

Result<int> max_open_fd()
{
	struct Closedir {
		void operator()(DIR *d) const { closedir(d); }
	};
	std::unique_ptr<DIR, Closedir> d(opendir("/proc/self/fd"));
	if (!d)
		return fail_errno("/proc/self/fd");
	int max = 2;
	while (struct dirent *e = readdir(d.get())) {
		char *end;
		long n = strtol(e->d_name, &end, 10);
		if (*end == '\0' && end != e->d_name && n > max && n < INT_MAX)
			max = int(n);
	}
	return max;
}

// Signal state the stub installs with raw system calls.
Result<void> plan_signals(const Checkpoint &c, StubPlan &p)
{
	constexpr int kNsig = 64;
	std::vector<bool> seen(kNsig + 1);

	for (const SigAction &a : c.signals.actions) {
		if (a.signo < 1 || a.signo > kNsig)
			return fail(0, "image: CORE: signal action for signal " +
				       std::to_string(a.signo) + " out of range");
		seen[a.signo] = true;
		if (a.signo == SIGKILL || a.signo == SIGSTOP)
			continue;
		p.actions.push_back({int(a.signo), {a.handler, a.flags, a.restorer, a.mask}});
	}
	// Signals the image does not mention go back to the default.
	for (int s = 1; s <= kNsig; s++)
		if (!seen[s] && s != SIGKILL && s != SIGSTOP)
			p.actions.push_back({s, {0, 0, 0, 0}});

	for (const SigPending &sp : c.signals.pending) {
		StubSiginfo si;
		if (sp.siginfo.size() != sizeof(si.info))
			return fail(0, "image: CORE: pending siginfo of " +
				       std::to_string(sp.siginfo.size()) + " bytes");
		memcpy(si.info, sp.siginfo.data(), sizeof(si.info));
		int32_t signo;
		memcpy(&signo, si.info, sizeof(signo));
		if (signo < 1 || signo > kNsig)
			return fail(0, "image: CORE: pending signal " + std::to_string(signo) +
				       " out of range");
		if (signo == SIGKILL || signo == SIGSTOP)
			continue;
		si.signo = signo;
		si.shared = sp.shared;
		p.pending.push_back(si);
	}
	return {};
}

void plan_task(const Checkpoint &c, StubPlan &p)
{
	if (!c.task.cwd.empty())
		p.cwd = c.task.cwd;
	p.umask = mode_t(c.task.umask & 0777);
	p.comm = c.task.comm.substr(0, 15);
	for (const Rlimit &r : c.task.rlimits) {
		if (r.resource >= RLIM_NLIMITS)
			continue;
		StubRlimit s;
		s.resource = int(r.resource);
		s.lim.rlim_cur = r.cur;
		s.lim.rlim_max = r.max;
		p.rlimits.push_back(s);
	}
	std::stable_partition(p.rlimits.begin(), p.rlimits.end(),
			      [](const StubRlimit &r) { return r.resource != RLIMIT_NOFILE; });
}

// The stub places fds up to about max_fd: raise our soft RLIMIT_NOFILE (up to
// the hard one) when it is lower. The stub sets the image's limits anyway.
void raise_nofile(int max_fd)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur <= rlim_t(max_fd) &&
	    rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

// The stub sends the whole request at once: a socket's send buffer must
// exceed the message (netlink_sendmsg() refuses len > sk_sndbuf - 32).
Result<void> fit_sndbuf(int fd, size_t len)
{
	int cur = 0;
	socklen_t sl = sizeof(cur);
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &sl) == 0 && size_t(cur) > len + 4096)
		return {};
	if (len > INT_MAX / 4)
		return fail(E2BIG, "restore request of " + std::to_string(len) + " bytes");
	int want = int(len + 65536);
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want)))
		return fail_errno("netlink: send buffer for a " + std::to_string(len) +
				  "-byte restore request");
	return {};
}

// ---- Shared objects (tree_plan.h), created once by the tool. ----

struct SharedFds {
	std::vector<UniqueFd> files;	// per SharedPlan::files
	std::vector<UniqueFd> shmem;	// per SharedPlan::shmem
	std::vector<std::string> names;	// per files: "pipe:[12]" etc.
};

// One live process's pages, for filling shared memory objects.
struct PageInput {
	std::string name;				// "pid 12"
	const Checkpoint *ckpt = nullptr;
	const std::vector<Checkpoint> *chain = nullptr;
	const std::vector<PageSource> *sources = nullptr;
};

Result<void> set_fl(int fd, int flags, const std::string &name)
{
	if (fcntl(fd, F_SETFL, flags & ~O_ACCMODE) < 0)
		return fail_errno(name + ": fcntl(F_SETFL)");
	return {};
}

// Writes all of data without blocking (a full pipe or socket is an error).
Result<void> write_queue(int fd, ByteView data, bool sock, const std::string &name)
{
	for (size_t off = 0; off < data.size();) {
		ssize_t n = sock ? send(fd, data.data() + off, data.size() - off,
					MSG_DONTWAIT | MSG_NOSIGNAL)
				 : write(fd, data.data() + off, data.size() - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return fail(ENOSPC, name + ": its " + std::to_string(data.size()) +
						    " queued bytes do not fit in it");
		if (n < 0)
			return fail_errno(name + ": writing its queued bytes");
		off += size_t(n);
	}
	return {};
}

Result<void> create_files(const SharedPlan &sp, SharedFds &out)
{
	for (size_t i = 0; i < sp.files.size(); i++) {
		const SharedFile &f = sp.files[i];
		if (f.kind != SharedKind::File)
			continue;
		std::string name = f.owner + ": " + f.path;
		UniqueFd fd(open(f.path.c_str(), f.flags | O_CLOEXEC));
		if (!fd)
			return fail_errno(name + ": open");
		if (f.seek && lseek(fd.get(), f.pos, SEEK_SET) < 0)
			return fail_errno(name + ": lseek");
		out.files[i] = std::move(fd);
	}
	return {};
}

Result<void> create_pipes(const SharedPlan &sp, SharedFds &out)
{
	for (const SharedPipe &p : sp.pipes) {
		std::string name = sp.files[p.files.at(0)].owner + ": " + p.path;
		UniqueFd rd, wr, keeper;
		int setsz;
		if (p.named) {
			// O_RDWR on a FIFO never blocks and keeps it open while
			// the ends are opened.
			keeper.reset(open(p.path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
			if (!keeper)
				return fail_errno(name + ": open");
			struct stat st;
			if (fstat(keeper.get(), &st) || !S_ISFIFO(st.st_mode))
				return fail(0, name + ": is no longer a FIFO");
			setsz = keeper.get();
		} else {
			PipeFds pf = AMBER_TRY(make_pipe("pipe"));
			rd = std::move(pf.r);
			wr = std::move(pf.w);
			setsz = wr.get();
		}
		if (p.size && fcntl(setsz, F_GETPIPE_SZ) < int(p.size) &&
		    fcntl(setsz, F_SETPIPE_SZ, int(p.size)) < 0)
			return fail_errno(name + ": F_SETPIPE_SZ " + std::to_string(p.size));
		if (!p.queue.empty()) {
			int w = p.named ? keeper.get() : wr.get();
			AMBER_TRY(set_fl(w, O_NONBLOCK, name));
			AMBER_TRY(write_queue(w, p.queue, false, name));
			AMBER_TRY(set_fl(w, 0, name));
		}
		for (int idx : p.files) {
			const SharedFile &f = sp.files[idx];
			std::string fname = f.owner + ": " + f.path;
			int acc = f.flags & O_ACCMODE;
			UniqueFd fd;
			if (p.named) {
				fd.reset(open(p.path.c_str(), acc | O_NONBLOCK | O_CLOEXEC));
			} else if (acc == O_RDONLY && rd) {
				fd = std::move(rd);
			} else if (acc == O_WRONLY && wr) {
				fd = std::move(wr);
			} else {
				// Another description of the same pipe.
				int end = -1;
				for (int j : p.files)
					if (out.files[j] && (sp.files[j].flags & O_ACCMODE) == acc)
						end = out.files[j].get();
				if (end < 0)
					return fail(EINVAL, fname + ": no end to reopen");
				std::string proc = "/proc/self/fd/" + std::to_string(end);
				fd.reset(open(proc.c_str(), acc | O_NONBLOCK | O_CLOEXEC));
			}
			if (!fd)
				return fail_errno(fname + ": open");
			AMBER_TRY(set_fl(fd.get(), f.flags, fname));
			out.files[idx] = std::move(fd);
		}
	}
	return {};
}

Result<void> create_sockets(const SharedPlan &sp, SharedFds &out)
{
	for (const SharedSocket &s : sp.sockets) {
		const SharedFile &f0 = sp.files[s.file[0]];
		std::string name = f0.owner + ": " + f0.path;
		int sv[2];
		if (socketpair(int(s.family), int(s.type) | SOCK_CLOEXEC, 0, sv))
			return fail_errno(name + ": socketpair");
		UniqueFd side[2] = {UniqueFd(sv[0]), UniqueFd(sv[1])};
		// Side i's queue is sent from the other side.
		for (int i = 0; i < 2; i++) {
			const auto &q = s.queue[i];
			if (q.empty())
				continue;
			int from = side[1 - i].get();
			size_t total = 0;
			for (const Bytes &m : q)
				total += m.size() + 1024;
			int cur = 0;
			socklen_t sl = sizeof(cur);
			if (getsockopt(from, SOL_SOCKET, SO_SNDBUF, &cur, &sl) == 0 &&
			    size_t(cur) < 2 * total + 65536 && total < size_t(INT_MAX / 4)) {
				int want = int(2 * total + 65536);
				if (setsockopt(from, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)))
					setsockopt(from, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
			}
			std::string qname = s.file[i] >= 0
						    ? sp.files[s.file[i]].owner + ": " +
							      sp.files[s.file[i]].path
						    : name;
			for (const Bytes &m : q) {
				if (s.type == SOCK_STREAM) {
					AMBER_TRY(write_queue(from, m, true, qname));
					continue;
				}
				ssize_t n;
				while ((n = send(from, m.data(), m.size(),
						 MSG_DONTWAIT | MSG_NOSIGNAL)) < 0 &&
				       errno == EINTR)
					;
				if (n < 0)
					return fail_errno(qname + ": queueing a " +
							  std::to_string(m.size()) + "-byte message");
				if (size_t(n) != m.size())
					return fail(EMSGSIZE, qname + ": a " + std::to_string(m.size()) +
								      "-byte message was cut");
			}
		}
		for (int i = 0; i < 2; i++) {
			uint32_t sh = s.shutdown[i] & 3;
			if (!sh || s.file[i] < 0)
				continue;
			int how = sh == 1 ? SHUT_RD : sh == 2 ? SHUT_WR : SHUT_RDWR;
			if (shutdown(side[i].get(), how))
				return fail_errno(sp.files[s.file[i]].owner + ": shutdown");
		}
		for (int i = 0; i < 2; i++) {
			if (s.file[i] < 0)
				continue;	// the peer is gone: side[i] closes now
			const SharedFile &f = sp.files[s.file[i]];
			AMBER_TRY(set_fl(side[i].get(), f.flags, f.owner + ": " + f.path));
			out.files[s.file[i]] = std::move(side[i]);
		}
	}
	return {};
}

// Copies len bytes between files at the given offsets.
Result<void> copy_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len,
			const std::string &name)
{
	static thread_local std::vector<uint8_t> buf(1 << 20);
	while (len) {
		size_t n = size_t(std::min<uint64_t>(len, buf.size()));
		ssize_t r = pread(in, buf.data(), n, off_t(in_off));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? fail_errno(name + ": reading pages")
				     : fail(EIO, name + ": pages file ends early");
		for (ssize_t done = 0; done < r;) {
			ssize_t w = pwrite(out, buf.data() + done, size_t(r - done),
					   off_t(out_off + done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return fail_errno(name + ": writing shared memory");
			done += w;
		}
		in_off += uint64_t(r);
		out_off += uint64_t(r);
		len -= uint64_t(r);
	}
	return {};
}

Result<void> create_shmem(const SharedPlan &sp, const std::vector<PageInput> &procs,
			  SharedFds &out)
{
	for (size_t k = 0; k < sp.shmem.size(); k++) {
		const SharedMem &m = sp.shmem[k];
		std::string name = "shared memory " + std::to_string(m.dev) + ":" +
				   std::to_string(m.ino);
		UniqueFd fd(int(syscall(SYS_memfd_create, "amber-shmem", MFD_CLOEXEC)));
		if (!fd)
			return fail_errno(name + ": memfd_create");
		if (ftruncate(fd.get(), off_t(m.size)))
			return fail_errno(name + ": ftruncate " + std::to_string(m.size));
		for (const auto &[pi, vi] : m.vmas) {
			const PageInput &p = procs[pi];
			const Vma &v = p.ckpt->vmas[vi];
			uint32_t ps = p.ckpt->page_size;
			std::string vname = p.name + ": " + name;
			std::vector<UniqueFd> links(p.chain->size());
			for (const PageSource &src : *p.sources) {
				uint64_t lo = std::max(src.addr, v.start);
				uint64_t hi = std::min(src.addr + src.nr_pages * ps, v.end);
				if (lo >= hi)
					continue;
				uint64_t dst = shmem_offset(v, lo, ps);
				if (dst + (hi - lo) > m.size)
					return fail(EINVAL, vname + ": pages beyond its size " +
								    std::to_string(m.size));
				UniqueFd &lf = links.at(src.link);
				if (!lf)
					lf = AMBER_TRY(open_file((*p.chain)[src.link].pages_path,
								 O_RDONLY));
				AMBER_TRY(copy_range(lf.get(), src.offset + (lo - src.addr), fd.get(),
						     dst, hi - lo, vname));
			}
		}
		out.shmem.push_back(std::move(fd));
	}
	return {};
}

Result<SharedFds> create_shared(const SharedPlan &sp, const std::vector<PageInput> &procs)
{
	SharedFds out;
	out.files.resize(sp.files.size());
	for (const SharedFile &f : sp.files)
		out.names.push_back(f.path);
	AMBER_TRY(create_files(sp, out));
	AMBER_TRY(create_pipes(sp, out));
	AMBER_TRY(create_sockets(sp, out));
	AMBER_TRY(create_shmem(sp, procs, out));
	return out;
}

std::vector<std::string> shared_names(const SharedPlan &sp)
{
	std::vector<std::string> out;
	for (const SharedFile &f : sp.files)
		out.push_back(f.path);
	return out;
}

// ---- One process's stub. ----

struct Prepared {
	StubPlan plan;
	Helpers helpers;
	std::map<int, std::string> fd_names;	// stub's helper fd -> what it is
	uint32_t seq = 0;
};

// Anonymous memory of the tool that the stubs inherit: the parked threads'
// stack (they never use it, but clone3() gets one), the prefill scratch.
struct AnonMapping {
	void *addr = MAP_FAILED;
	size_t size = 0;
	AnonMapping() = default;
	AnonMapping(const AnonMapping &) = delete;
	AnonMapping &operator=(const AnonMapping &) = delete;
	~AnonMapping()
	{
		if (addr != MAP_FAILED)
			munmap(addr, size);
	}
};
using ThreadStack = AnonMapping;

Result<void> map_anon(AnonMapping &m, size_t size, const std::string &what)
{
	m.size = size;
	m.addr = mmap(nullptr, m.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m.addr == MAP_FAILED)
		return fail_errno("mmap of " + what);
	return {};
}

Result<void> map_thread_stack(ThreadStack &s)
{
	return map_anon(s, 64 << 10, "the threads' stack");
}

// First half: the plan's content and the files it needs (opened now).
Result<Prepared> prepare_open(const Checkpoint &c, const std::vector<std::string> &pages,
			      std::vector<StubFd> fds, const ThreadStack &stack)
{
	Prepared pr;
	StubPlan &p = pr.plan;

	p.pid = pid_t(c.task.pid ? c.task.pid : c.info.pid);
	p.fds = std::move(fds);
	AMBER_TRY(plan_signals(c, p));
	plan_task(c, p);
	p.thread_pending = AMBER_TRY(plan_thread_signals(c));
	for (const ThreadInfo &t : c.threads)
		p.threads.push_back(pid_t(t.tid));
	p.thread_stack = uint64_t(stack.addr);
	p.thread_stack_size = stack.size;
	pr.helpers = AMBER_TRY(open_helpers(c, pages));
	return pr;
}

// What the second half needs besides the image.
struct ProcFds {
	int report_w = -1;
	int max_open = 2;			// highest fd open in the tool
	const SharedFds *shared = nullptr;
	const std::map<int, int> *vma_shmem = nullptr;	// VMA -> shmem
	const std::vector<PrefillPick> *prefill = nullptr;
	bool hold = false;
	bool fault_refused = false;	// AMBER_FAULT (fault_pid())
};

// Fault injection for the tests, as CRIU_FAULT does for CRIU's:
// AMBER_FAULT=restore-refused:PID makes process PID's request one that
// amber.ko refuses (its stack marked PREFILLED), once the other processes
// of the tree exist. 0 when not asked.
pid_t fault_pid(const char *what)
{
	const char *f = getenv("AMBER_FAULT");
	size_t n = strlen(what);
	if (!f || strncmp(f, what, n) || f[n] != ':')
		return 0;
	return pid_t(strtol(f + n + 1, nullptr, 10));
}

// Second half, once every fd of the tool is open: helper moves, the fds to
// close and the request.
Result<void> prepare_request(Prepared &pr, const Checkpoint &c,
			     const std::vector<std::string> &pages, NetlinkClient &nl,
			     const ProcFds &in)
{
	StubPlan &p = pr.plan;
	int max_image_fd = 2;
	for (const StubFd &f : p.fds)
		max_image_fd = std::max(max_image_fd, f.num);

	// Helper fds, moved by the stub above every image fd and every fd we
	// hold now; CLOSE_FDS lists those the kernel needs (all but the
	// shared descriptions, which the stub closes once placed).
	Helpers &h = pr.helpers;
	std::vector<int> helpers = {nl.fd(), in.report_w};
	std::vector<std::string> names = {"the netlink socket", "the report pipe"};
	for (size_t i = 0; i < h.pages.size(); i++) {
		helpers.push_back(h.pages[i].get());
		names.push_back(pages[i]);
	}
	if (h.exe) {
		helpers.push_back(h.exe.get());
		names.push_back(c.task.exe);
	}
	for (const auto &[key, fd] : h.files) {
		helpers.push_back(fd.get());
		names.push_back(key.first);
	}
	std::map<int, int> shmem_helper;	// shmem index -> helpers index
	if (in.vma_shmem)
		for (const auto &[vi, k] : *in.vma_shmem)
			if (!shmem_helper.count(k)) {
				shmem_helper[k] = int(helpers.size());
				helpers.push_back(in.shared->shmem.at(k).get());
				names.push_back("a memfd of shared memory");
			}
	const size_t kernel_helpers = helpers.size();
	std::map<int, int> shared_helper;	// SharedFile index -> helpers index
	for (const StubFd &f : p.fds)
		if (f.shared >= 0 && !shared_helper.count(f.shared)) {
			shared_helper[f.shared] = int(helpers.size());
			helpers.push_back(in.shared->files.at(f.shared).get());
			names.push_back(in.shared->names.at(f.shared));
		}
	p.helpers = plan_helper_moves(helpers, max_image_fd, in.max_open);
	for (size_t i = 0; i < p.helpers.size(); i++)
		pr.fd_names[p.helpers[i].to] = names[i];
	p.nl_fd = p.helpers[0].to;
	p.report_fd = p.helpers[1].to;
	p.early_report_fd = in.report_w;
	for (StubFd &f : p.fds)
		if (f.shared >= 0)
			f.src = p.helpers[shared_helper.at(f.shared)].to;
	for (size_t i = kernel_helpers; i < p.helpers.size(); i++)
		p.close_after.push_back(p.helpers[i].to);

	std::vector<int> keep;
	for (const StubFd &f : p.fds)
		if (f.inherit)
			keep.push_back(f.num);
	for (const FdMove &m : p.helpers)
		keep.push_back(m.to);
	std::sort(keep.begin(), keep.end());
	p.close = close_ranges(keep);

	// The request names the fds by their numbers in the stub.
	RequestFds rf;
	std::map<int, int> moved;
	for (size_t i = 0; i < kernel_helpers; i++) {
		moved[p.helpers[i].from] = p.helpers[i].to;
		rf.close.push_back(p.helpers[i].to);
	}
	for (const UniqueFd &fd : h.pages)
		rf.pages.push_back(moved.at(fd.get()));
	if (h.exe)
		rf.exe = moved.at(h.exe.get());
	for (const auto &[key, fd] : h.files)
		rf.files[key] = moved.at(fd.get());
	if (in.vma_shmem)
		for (const auto &[vi, k] : *in.vma_shmem)
			rf.shmem[vi] = p.helpers[shmem_helper.at(k)].to;
	rf.prefilled.assign(c.vmas.size(), false);
	if (in.prefill)
		for (const PrefillPick &k : *in.prefill)
			rf.prefilled.at(k.vma) = true;
	for (size_t i = 0; in.fault_refused && i < c.vmas.size(); i++)
		if (c.vmas[i].flags & AMBER_VMA_F_STACK) {
			rf.prefilled[i] = true;
			break;
		}
	rf.hold = in.hold;
	Bytes attrs = AMBER_TRY(build_restore_attrs(c, rf));
	Request req = AMBER_TRY(nl.make_request(AMBER_CMD_RESTORE, attrs));
	const struct nlmsghdr *hdr = nlmsg_hdr(req.msg.get());
	const uint8_t *raw = reinterpret_cast<const uint8_t *>(hdr);
	p.msg.assign(raw, raw + hdr->nlmsg_len);
	pr.seq = req.seq;
	AMBER_TRY(fit_sndbuf(nl.fd(), p.msg.size()));
	return {};
}

Result<std::pair<pid_t, UniqueFd>> spawn_stub(pid_t pid, const StubPlan &plan)
{
	pid_t tid = pid;
	int pidfd = -1;
	StubCloneArgs args = {};
	args.flags = CLONE_PIDFD;
	args.pidfd = uint64_t(&pidfd);
	args.exit_signal = SIGCHLD;
	args.set_tid = uint64_t(&tid);
	args.set_tid_size = 1;

	fflush(nullptr);
	long r = syscall(SYS_clone3, &args, sizeof(args));
	if (r == 0)
		run_stub(plan);
	if (r < 0) {
		std::string p = "pid " + std::to_string(pid);
		switch (errno) {
		case EEXIST:
			return fail(0, p + " is in use (by comm '" + read_comm(pid) + "')");
		case EPERM:
			return fail(EPERM, "clone3 with set_tid=" + std::to_string(pid) +
					       " needs CAP_CHECKPOINT_RESTORE (run as root)");
		case EINVAL:
			return fail(EINVAL, p + ": clone3 refused set_tid (above pid_max?)");
		default:
			return fail_errno("clone3 with set_tid=" + std::to_string(pid));
		}
	}
	return std::make_pair(pid_t(r), UniqueFd(pidfd));
}

bool readable_now(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};
	return poll(&p, 1, 0) == 1;
}

// The kernel names the chain's pages files by index in PAGE_FDS (oldest
// first, from 0): " [pages file 1 is checkpoint 3]" for each one named.
std::string pages_legend(const std::string &msg, const std::vector<uint32_t> &links)
{
	constexpr std::string_view tag = "pages file ";
	std::string out;
	std::vector<bool> seen(links.size());
	for (size_t p = msg.find(tag); p != std::string::npos; p = msg.find(tag, p + 1)) {
		size_t i = p + tag.size(), idx = 0;
		if (i >= msg.size() || !isdigit((unsigned char)msg[i]))
			continue;
		while (i < msg.size() && isdigit((unsigned char)msg[i]) && idx < links.size())
			idx = idx * 10 + size_t(msg[i++] - '0');
		if (idx >= links.size() || seen[idx])
			continue;
		seen[idx] = true;
		out += " [pages file " + std::to_string(idx) + " is checkpoint " +
		       std::to_string(links[idx]) + "]";
	}
	return out;
}

Error kernel_error(const Error &e, const std::map<int, std::string> &names,
		   const std::vector<uint32_t> &links)
{
	std::string msg = "amber.ko refused the restore";
	if (!e.msg.empty())
		msg += ": " + e.msg + fd_legend(e.msg, names) + pages_legend(e.msg, links);
	return Error{e.err, msg};
}

// Waits for the outcome of the stub's request: the kernel's ACK, the kernel's
// error, a failure report of the stub, the stub's death or the timeout.
Result<void> wait_outcome(NetlinkClient &nl, uint32_t seq, const StubPlan &plan,
			  const std::map<int, std::string> &fd_names,
			  const std::vector<uint32_t> &links, int report_fd, int pidfd, pid_t pid,
			  int timeout_s)
{
	int64_t deadline = now_ms() + int64_t(timeout_s) * 1000;
	bool report_open = true;

	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return fail(ETIMEDOUT, "no answer from amber.ko to the restore of pid " +
						       std::to_string(pid) + " within " +
						       std::to_string(timeout_s) + " s");
		struct pollfd fds[3] = {
			{nl.fd(), POLLIN, 0},
			{report_open ? report_fd : -1, POLLIN, 0},
			{pidfd, POLLIN, 0},
		};
		int n = poll(fds, 3, int(std::min<int64_t>(left, INT_MAX)));
		if (n < 0 && errno != EINTR)
			return fail_errno("poll");
		if (n <= 0)
			continue;

		if (fds[0].revents) {
			auto r = nl.wait_ack(seq, 2000);
			if (r)
				return {};
			if (r.error().err == ETIMEDOUT &&
			    r.error().msg.rfind("netlink: ", 0) == 0)
				continue;	// not our message
			return tl::unexpected(kernel_error(r.error(), fd_names, links));
		}
		if (fds[1].revents) {
			StubReport rep;
			ssize_t k = read(report_fd, &rep, sizeof(rep));
			if (k == ssize_t(sizeof(rep))) {
				if (StubStep(rep.step) != StubStep::Returned)
					return fail(rep.err, describe_step(plan, rep));
				auto r = nl.wait_ack(seq, 5000);
				if (!r)
					return tl::unexpected(kernel_error(r.error(), fd_names, links));
				return fail(EPROTO, "amber.ko acknowledged the restore but the "
						    "stub carried on");
			}
			if (k < 0 && errno == EINTR)
				continue;
			report_open = false;	// EOF: stub gone or fds closed by the kernel
			continue;
		}
		if (fds[2].revents) {
			// Any ACK was queued before the stub could die.
			if (readable_now(nl.fd()))
				continue;
			siginfo_t si = {};
			std::string how = "exited";
			if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
			    si.si_pid == pid)
				how = si.si_code == CLD_EXITED
					      ? "exited with status " + std::to_string(si.si_status)
					      : std::string("was killed by signal ") +
							strsignal(si.si_status);
			return fail(0, "restore stub (pid " + std::to_string(pid) + ") " + how +
					       " before amber.ko answered");
		}
	}
}

void kill_and_reap(int pidfd, pid_t pid)
{
	pidfd_send_signal(pidfd, SIGKILL);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

// Loads the chain of the checkpoint to restore (oldest first, every link
// verified) and checks that it holds every page the checkpoint needs, before
// anything is created. Errors name the link: "checkpoint 3: ...".
Result<std::vector<Checkpoint>> load_chain(const Store &store, std::optional<uint32_t> number)
{
	std::vector<Checkpoint> chain = AMBER_TRY(store.load_chain(number));
	if (chain.empty())
		return fail(EPROTO, store.dir() + ": empty checkpoint chain");
	std::vector<const Checkpoint *> links;
	for (const Checkpoint &c : chain)
		links.push_back(&c);
	AMBER_TRY(resolve_chain(links));
	return chain;
}

// Every TID of a process must be free too.
Result<void> check_threads(const Checkpoint &c, pid_t pid)
{
	for (const ThreadInfo &t : c.threads) {
		if (pid_t(t.tid) == pid)
			return fail(EINVAL, "image: THREADS: thread " + std::to_string(t.tid) +
						    " is the thread group leader");
		auto r = check_pid_free(pid_t(t.tid));
		if (!r)
			return fail(0, "tid " + std::to_string(t.tid) + " (a thread of pid " +
					       std::to_string(pid) + ")" +
					       r.error().msg.substr(r.error().msg.find(" is in use")));
	}
	return {};
}

Result<RestoredProcess> restore_single(const RestoreRequest &req, std::vector<Checkpoint> chain)
{
	std::vector<std::string> pages;
	std::vector<uint32_t> links;
	for (const Checkpoint &l : chain) {
		pages.push_back(l.pages_path);
		links.push_back(l.number);
	}
	const Checkpoint &c = chain.back();

	// Files and PID before anything else: nothing is created on failure.
	pid_t pid = pid_t(c.task.pid ? c.task.pid : c.info.pid);
	if (pid <= 0)
		return fail(0, c.meta_path + ": no pid recorded");
	SharedPlan sp = AMBER_TRY(plan_shared({ProcImage{uint32_t(pid), &c}}, false));
	auto fds = AMBER_TRY(plan_fds(c.fds, sp.fd_file[0], shared_names(sp)));
	AMBER_TRY(check_files(c, fds));
	AMBER_TRY(check_pid_free(pid));
	AMBER_TRY(check_threads(c, pid));

	auto nl = connect_module();
	if (!nl)
		return tl::unexpected(nl.error());
	SharedFds shared = AMBER_TRY(create_shared(sp, {}));
	PipeFds report = AMBER_TRY(make_pipe("pipe"));
	ThreadStack stack;
	if (!c.threads.empty())
		AMBER_TRY(map_thread_stack(stack));
	Prepared pr = AMBER_TRY(prepare_open(c, pages, std::move(fds), stack));
	int max_fd = AMBER_TRY(max_open_fd());
	// Room for the image's fds plus our helpers above them.
	raise_nofile(std::max(max_fd, 2) + int(c.fds.size() + c.vmas.size()) + 64);
	ProcFds in;
	in.report_w = report.w.get();
	in.max_open = max_fd;
	in.shared = &shared;
	AMBER_TRY(prepare_request(pr, c, pages, *nl, in));
	// Last, so no later allocation of ours can land where the stub moves
	// the vDSO to: the stub's mappings are ours at clone3() time.
	auto maps = AMBER_TRY(read_own_maps());
	pr.plan.vdso = AMBER_TRY(plan_vdso(maps, c.vmas));

	auto [child, pidfd] = AMBER_TRY(spawn_stub(pid, pr.plan));
	// Only the stub keeps the write end: EOF once it exits or the kernel
	// closes its helper fds.
	report.w.reset();

	auto r = wait_outcome(*nl, pr.seq, pr.plan, pr.fd_names, links, report.r.get(),
			      pidfd.get(), child, req.timeout_s);
	if (!r) {
		kill_and_reap(pidfd.get(), child);
		return tl::unexpected(r.error());
	}
	RestoredProcess p;
	p.number = c.number;
	p.pid = child;
	p.pidfd = std::move(pidfd);
	return p;
}

// ---- Trees ----

struct TreeProc {
	uint32_t pid = 0;
	bool zombie = false;
	std::string label;			// "pid 12 (comm x)"
	std::vector<Checkpoint> chain;		// live processes: oldest first
	std::vector<PageSource> sources;
	std::vector<std::string> pages;
	std::vector<uint32_t> links;
	std::vector<StubFd> fds;
	Prepared pr;
	UniqueFd pidfd;
	bool ready = false;
	bool acked = false;
	bool exited = false;
	const Checkpoint &ckpt() const { return chain.back(); }
};

// Reads every ACK and error queued on the netlink socket: seq -> outcome.
Result<void> drain_acks(int fd, std::map<uint32_t, Result<void>> &out)
{
	static thread_local std::vector<uint8_t> buf(1 << 16);
	for (;;) {
		ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return {};
		if (n < 0)
			return fail_errno("netlink: recv");
		int len = int(n);
		for (auto *h = reinterpret_cast<struct nlmsghdr *>(buf.data()); NLMSG_OK(h, len);
		     h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type != NLMSG_ERROR)
				continue;
			out.emplace(h->nlmsg_seq,
				    parse_nlmsgerr(ByteView(reinterpret_cast<uint8_t *>(h),
							    h->nlmsg_len)));
		}
	}
}

// Kills every process of a failed tree restore and reaps what is ours.
void kill_tree(std::vector<TreeProc> &procs, NetlinkClient &nl, UniqueFd &go_w)
{
	go_w.reset();	// stubs still at the barrier read EOF and exit
	for (TreeProc &p : procs)
		if (p.acked)
			(void)release(nl, p.pid, AMBER_RELEASE_KILL, 5000);
	for (TreeProc &p : procs)
		if (p.pidfd)
			pidfd_send_signal(p.pidfd.get(), SIGKILL);
	int st;
	while (waitpid(pid_t(procs[0].pid), &st, 0) < 0 && errno == EINTR)
		;
	// The others are reparented (to us if we are a subreaper): wait until
	// each has exited, reaping those that became ours.
	int64_t deadline = now_ms() + 5000;
	for (size_t i = 1; i < procs.size(); i++) {
		TreeProc &p = procs[i];
		if (!p.pidfd)
			continue;
		while (now_ms() < deadline) {
			struct pollfd pf = {p.pidfd.get(), POLLIN, 0};
			if (poll(&pf, 1, 50) == 1)
				break;
		}
		waitpid(pid_t(p.pid), &st, WNOHANG);
	}
}

std::string step_error(const TreeProc &p, const StubReport &rep)
{
	return p.label + ": " + describe_step(p.pr.plan, rep);
}

// Runs the stubs from the Ready reports to every ACK.
Result<void> await_tree(std::vector<TreeProc> &procs, NetlinkClient &nl, int report_r,
			UniqueFd &go_w, int timeout_s)
{
	std::map<uint32_t, int> by_seq, by_pid;
	size_t live = 0;
	for (size_t i = 0; i < procs.size(); i++) {
		by_pid[procs[i].pid] = int(i);
		if (!procs[i].zombie) {
			by_seq[procs[i].pr.seq] = int(i);
			live++;
		}
	}
	size_t ready = 0, acked = 0;
	bool report_open = true, go_sent = false;
	std::map<uint32_t, Result<void>> outcomes;
	int64_t deadline = now_ms() + int64_t(timeout_s) * 1000;

	auto take_acks = [&]() -> Result<void> {
		AMBER_TRY(drain_acks(nl.fd(), outcomes));
		for (auto &[seq, r] : outcomes) {
			auto it = by_seq.find(seq);
			if (it == by_seq.end())
				continue;
			TreeProc &p = procs[it->second];
			if (!r)
				return fail(r.error().err,
					    p.label + ": " +
						    kernel_error(r.error(), p.pr.fd_names, p.links).msg);
			if (!p.acked) {
				p.acked = true;
				acked++;
			}
		}
		outcomes.clear();
		return {};
	};

	while (acked < live || !go_sent) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return fail(ETIMEDOUT, "no answer from amber.ko to the restore of the tree "
					       "within " + std::to_string(timeout_s) + " s (" +
					       std::to_string(ready) + " of " +
					       std::to_string(procs.size()) + " processes created, " +
					       std::to_string(acked) + " of " + std::to_string(live) +
					       " restored)");
		std::vector<struct pollfd> fds = {{nl.fd(), POLLIN, 0},
						  {report_open ? report_r : -1, POLLIN, 0}};
		std::vector<int> who;
		for (size_t i = 0; i < procs.size(); i++)
			if (procs[i].pidfd && !procs[i].exited) {
				fds.push_back({procs[i].pidfd.get(), POLLIN, 0});
				who.push_back(int(i));
			}
		int n = poll(fds.data(), fds.size(), int(std::min<int64_t>(left, 1000)));
		if (n < 0 && errno != EINTR)
			return fail_errno("poll");
		if (n <= 0)
			continue;
		if (fds[0].revents) {
			AMBER_TRY(take_acks());
			continue;
		}
		if (fds[1].revents) {
			StubReport rep;
			ssize_t k = read(report_r, &rep, sizeof(rep));
			if (k < 0 && errno == EINTR)
				continue;
			if (k != ssize_t(sizeof(rep))) {
				report_open = false;
				continue;
			}
			auto it = by_pid.find(uint32_t(rep.pid));
			if (it == by_pid.end())
				return fail(EPROTO, "restore stub: report from unknown pid " +
							    std::to_string(rep.pid));
			TreeProc &p = procs[it->second];
			switch (StubStep(rep.step)) {
			case StubStep::Ready:
				if (p.ready)
					break;
				p.ready = true;
				ready++;
				if (!p.pidfd) {
					p.pidfd.reset(pidfd_open(pid_t(p.pid)));
					if (!p.pidfd)
						return fail_errno(p.label + ": pidfd_open");
				}
				if (ready == procs.size()) {
					std::string go(procs.size(), 'g');
					if (write(go_w.get(), go.data(), go.size()) !=
					    ssize_t(go.size()))
						return fail_errno("restore: releasing the barrier");
					go_w.reset();
					go_sent = true;
				}
				break;
			case StubStep::Returned: {
				// The kernel refused: its error is on the socket.
				struct pollfd pf = {nl.fd(), POLLIN, 0};
				if (poll(&pf, 1, 5000) == 1)
					AMBER_TRY(take_acks());
				return fail(EPROTO, p.label + ": amber.ko acknowledged the restore "
							      "but the stub carried on");
			}
			default:
				return fail(rep.err, step_error(p, rep));
			}
			continue;
		}
		for (size_t j = 2; j < fds.size(); j++) {
			if (!fds[j].revents)
				continue;
			TreeProc &p = procs[who[j - 2]];
			if (readable_now(nl.fd()) || (report_open && readable_now(report_r)))
				break;	// read what it said first
			p.exited = true;
			if (p.zombie && go_sent)
				continue;
			return fail(0, p.label + ": " + (p.acked ? "died while held"
								   : "restore stub exited before "
								     "amber.ko answered"));
		}
	}
	return {};
}

// PROT_NONE placeholders over the ranges the stubs prefill: no mapping of
// the tool can land there before the stubs exist, and a stub's MAP_FIXED
// replaces only a placeholder or what its parent's stub prefilled.
struct Reservation {
	std::vector<Range> ranges;
	Reservation() = default;
	Reservation(const Reservation &) = delete;
	Reservation &operator=(const Reservation &) = delete;
	~Reservation() { clear(); }
	void clear()
	{
		for (const Range &r : ranges)
			munmap(reinterpret_cast<void *>(r.start), r.size());
		ranges.clear();
	}
};

// Which VMAs each process prefills (plan_prefill), their ranges reserved.
// A range the tool cannot reserve is left out (its pages are then copied).
Result<std::vector<std::vector<PrefillPick>>> reserve_prefill(const ProcessTree &tree,
							      const std::vector<TreeProc> &procs,
							      Reservation &res)
{
	std::vector<int> parent(procs.size(), -1);
	std::vector<const std::vector<Vma> *> vmas(procs.size(), nullptr);
	std::vector<Range> busy;
	for (size_t i = 0; i < procs.size(); i++) {
		for (int c : tree.procs[i].children)
			parent.at(size_t(c)) = int(i);
		if (procs[i].zombie)
			continue;
		vmas[i] = &procs[i].ckpt().vmas;
		for (const Vma &v : procs[i].ckpt().vmas)
			if (v.flags & (AMBER_VMA_F_VDSO | AMBER_VMA_F_VVAR))
				busy.push_back({v.start, v.end});	// where a stub moves its vDSO
	}
	for (const MapEntry &m : AMBER_TRY(read_own_maps()))
		busy.push_back(m.range);

	for (int attempt = 0; attempt < 4; attempt++) {
		auto picks = plan_prefill(vmas, parent, busy);
		std::vector<Range> want;
		for (size_t i = 0; i < picks.size(); i++)
			for (const PrefillPick &k : picks[i])
				want.push_back({(*vmas[i])[k.vma].start, (*vmas[i])[k.vma].end});
		std::sort(want.begin(), want.end(),
			  [](const Range &a, const Range &b) { return a.start < b.start; });
		std::vector<Range> merged;
		for (const Range &r : want)
			if (!merged.empty() && r.start <= merged.back().end)
				merged.back().end = std::max(merged.back().end, r.end);
			else
				merged.push_back(r);
		bool clash = false;
		for (const Range &r : merged) {
			void *want_at = reinterpret_cast<void *>(r.start);
			void *a = mmap(want_at, r.size(), PROT_NONE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
				       -1, 0);
			if (a == want_at) {
				res.ranges.push_back(r);
				continue;
			}
			if (a != MAP_FAILED)
				munmap(a, r.size());
			busy.push_back(r);	// taken meanwhile: not prefilled
			clash = true;
		}
		if (!clash)
			return picks;
		res.clear();
	}
	return std::vector<std::vector<PrefillPick>>(procs.size());
}

// root: the root's meta.img only; every chain is loaded and verified here.
Result<RestoredProcess> restore_tree(const RestoreRequest &req, const Store &store,
				     const Checkpoint &root)
{
	const uint32_t number = root.number;
	const uint32_t root_pid = root.task.pid ? root.task.pid : root.info.pid;
	ProcessTree tree = AMBER_TRY(plan_process_tree(root.tree));
	if (tree.procs[0].info.pid != root_pid)
		return fail(EINVAL, root.meta_path + ": TREE: its first process is pid " +
					    std::to_string(tree.procs[0].info.pid) + ", not pid " +
					    std::to_string(root_pid));

	// Every process's chain, verified and resolved. Verifying reads and
	// hashes every page: the chains are loaded by a few threads at once.
	std::vector<TreeProc> procs(tree.procs.size());
	std::vector<std::optional<Result<std::vector<Checkpoint>>>> loaded(procs.size());
	{
		std::atomic<size_t> next{0};
		auto work = [&] {
			for (size_t i; (i = next++) < procs.size();)
				if (i == 0)
					loaded[i] = store.load_chain(std::optional<uint32_t>(number));
				else if (!tree.procs[i].info.zombie)
					loaded[i] = store.load_chain(number, tree.procs[i].info.pid,
								     root_pid);
		};
		size_t n = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 8);
		std::vector<std::thread> pool;
		for (size_t k = 1; k < std::min(n, procs.size()); k++)
			pool.emplace_back(work);
		work();
		for (std::thread &t : pool)
			t.join();
	}
	for (size_t i = 0; i < procs.size(); i++) {
		TreeProc &p = procs[i];
		const ProcInfo &info = tree.procs[i].info;
		p.pid = info.pid;
		p.zombie = info.zombie;
		p.label = "pid " + std::to_string(p.pid);
		if (p.zombie)
			continue;
		if (!*loaded[i])
			return tl::unexpected(loaded[i]->error());
		p.chain = std::move(**loaded[i]);
		if (p.chain.empty())
			return fail(EPROTO, store.dir() + ": empty checkpoint chain");
		std::vector<const Checkpoint *> links;
		for (const Checkpoint &l : p.chain) {
			links.push_back(&l);
			p.pages.push_back(l.pages_path);
			p.links.push_back(l.number);
		}
		auto src = resolve_chain(links);
		if (!src)
			return wrap(src.error(), p.label + ": ");
		p.sources = std::move(*src);
		const Checkpoint &c = p.ckpt();
		if (c.task.pid && c.task.pid != p.pid)
			return fail(EINVAL, p.label + ": its image is of pid " +
						    std::to_string(c.task.pid));
		if (!c.task.comm.empty())
			p.label += " (comm " + c.task.comm + ")";
		if (info.nr_threads && info.nr_threads != c.threads.size() + 1)
			return fail(EINVAL, p.label + ": TREE says " +
						    std::to_string(info.nr_threads) +
						    " threads, its image has " +
						    std::to_string(c.threads.size() + 1));
	}

	// Shared objects and fds, files, PIDs and TIDs: before anything exists.
	std::vector<ProcImage> images;
	std::vector<PageInput> inputs;
	std::vector<int> live;
	for (size_t i = 0; i < procs.size(); i++)
		if (!procs[i].zombie) {
			images.push_back({procs[i].pid, &procs[i].ckpt()});
			inputs.push_back({procs[i].label, &procs[i].ckpt(), &procs[i].chain,
					  &procs[i].sources});
			live.push_back(int(i));
		}
	SharedPlan sp = AMBER_TRY(plan_shared(images, true));
	std::vector<std::string> snames = shared_names(sp);
	for (size_t k = 0; k < live.size(); k++) {
		TreeProc &p = procs[live[k]];
		auto fds = plan_fds(p.ckpt().fds, sp.fd_file[k], snames);
		if (!fds)
			return wrap(fds.error(), p.label + ": ");
		p.fds = std::move(*fds);
		if (auto r = check_files(p.ckpt(), p.fds); !r)
			return wrap(r.error(), p.label + ": ");
	}
	for (TreeProc &p : procs) {
		AMBER_TRY(check_pid_free(pid_t(p.pid)));
		if (!p.zombie)
			AMBER_TRY(check_threads(p.ckpt(), pid_t(p.pid)));
	}

	auto nl = connect_module();
	if (!nl)
		return tl::unexpected(nl.error());
	SharedFds shared = AMBER_TRY(create_shared(sp, inputs));
	PipeFds report = AMBER_TRY(make_pipe("pipe"));
	PipeFds go = AMBER_TRY(make_pipe("pipe"));
	ThreadStack stack;
	AMBER_TRY(map_thread_stack(stack));
	AnonMapping scratch;
	AMBER_TRY(map_anon(scratch, 1 << 20, "the prefill scratch buffer"));
	// Private memory shared copy-on-write along the tree (StubPrefill).
	Reservation reserved;
	auto prefill = AMBER_TRY(reserve_prefill(tree, procs, reserved));
	for (int i : live) {
		TreeProc &p = procs[i];
		auto pr = prepare_open(p.ckpt(), p.pages, std::move(p.fds), stack);
		if (!pr)
			return wrap(pr.error(), p.label + ": ");
		p.pr = std::move(*pr);
	}
	int max_fd = AMBER_TRY(max_open_fd());
	size_t most = 0;
	for (int i : live)
		most = std::max(most, procs[i].ckpt().fds.size() + procs[i].ckpt().vmas.size());
	raise_nofile(max_fd + int(most) + 64);
	const pid_t fault = fault_pid("restore-refused");
	for (size_t k = 0; k < live.size(); k++) {
		TreeProc &p = procs[live[k]];
		ProcFds in;
		in.report_w = report.w.get();
		in.max_open = max_fd;
		in.shared = &shared;
		in.vma_shmem = &sp.vma_shmem[k];
		in.prefill = &prefill[live[k]];
		in.hold = true;
		in.fault_refused = fault == pid_t(p.pid);
		if (auto r = prepare_request(p.pr, p.ckpt(), p.pages, *nl, in); !r)
			return wrap(r.error(), p.label + ": ");
	}
	pid_t tool_pgid = getpgrp();
	for (size_t i = 0; i < procs.size(); i++) {
		const PlannedProc &tp = tree.procs[i];
		StubPlan &plan = procs[i].pr.plan;
		StubTree &t = plan.tree;
		plan.pid = pid_t(procs[i].pid);
		if (procs[i].zombie)
			plan.early_report_fd = report.w.get();
		t.active = true;
		t.setsid = tp.setsid;
		t.setpgid_self = tp.setpgid_self;
		t.join = tp.join;
		t.join_pgid = tp.join_tool_group ? tool_pgid : pid_t(tp.join_pgid);
		t.outside_pgid = pid_t(tp.outside_pgid);
		for (int ci : tp.children) {
			t.children.emplace_back(pid_t(procs[ci].pid), &procs[ci].pr.plan);
			if (procs[ci].zombie)
				t.zombie_children.push_back(pid_t(procs[ci].pid));
		}
		if (tp.info.zombie) {
			ZombieExit z = AMBER_TRY(zombie_exit(tp.info));
			t.zombie = true;
			t.exit_signaled = z.signaled;
			t.exit_code = z.code;
		}
		t.ready_fd = report.w.get();
		t.go_fd = go.r.get();
		t.go_w_fd = go.w.get();
		if (procs[i].zombie)
			continue;
		std::vector<int> link_fds;
		for (const UniqueFd &fd : procs[i].pr.helpers.pages)
			link_fds.push_back(fd.get());
		for (const PrefillPick &k : prefill[i]) {
			const Vma &v = procs[i].ckpt().vmas[k.vma];
			Range r{v.start, v.end};
			plan.prefill.push_back({r, int(v.prot), k.inherited,
						prefill_segs(procs[i].sources, r,
							     procs[i].ckpt().page_size, link_fds)});
		}
		plan.scratch = uint64_t(scratch.addr);
		plan.scratch_size = scratch.size;
	}
	// Last, so no later allocation of ours can land where a stub moves the
	// vDSO to: the stubs' mappings are ours at clone3() time.
	auto maps = AMBER_TRY(read_own_maps());
	for (int i : live) {
		auto v = plan_vdso(maps, procs[i].ckpt().vmas);
		if (!v)
			return wrap(v.error(), procs[i].label + ": ");
		procs[i].pr.plan.vdso = *v;
	}

	auto [child, pidfd] = AMBER_TRY(spawn_stub(pid_t(root_pid), procs[0].pr.plan));
	procs[0].pidfd = std::move(pidfd);
	report.w.reset();
	go.r.reset();

	auto r = await_tree(procs, *nl, report.r.get(), go.w, req.timeout_s);
	if (r) {
		// Parents first; a failure leaves nothing running.
		for (int i : live) {
			auto rel = release(*nl, procs[i].pid, AMBER_RELEASE_RESUME, 5000);
			if (!rel) {
				r = fail(rel.error().err, procs[i].label + ": release: " +
								  rel.error().msg);
				break;
			}
		}
	}
	if (!r) {
		kill_tree(procs, *nl, go.w);
		return tl::unexpected(r.error());
	}
	RestoredProcess p;
	p.number = number;
	p.pid = child;
	p.pidfd = std::move(procs[0].pidfd);
	return p;
}

} // namespace

Result<RestoredProcess> restore_process(const RestoreRequest &req)
{
	Store store(req.dir);
	// VMAs, CORE and FDS come from the restored checkpoint, the pages from
	// every link of its chain (PAGE_FDS, oldest first).
	Checkpoint meta = AMBER_TRY(store.load_meta(req.number));
	if (meta.is_tree())
		return restore_tree(req, store, meta);	// verifies the chains in parallel
	return restore_single(req, AMBER_TRY(load_chain(store, meta.number)));
}

} // namespace amber
