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
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/amber.h>
#include <linux/netlink.h>

#include "image.h"
#include "netlink.h"
#include "restore_process.h"
#include "store.h"
#include "stub.h"

namespace amber {

namespace {

// struct clone_args of clone3(2), up to set_tid_size (CLONE_ARGS_SIZE_VER1).
struct CloneArgs {
	uint64_t flags;
	uint64_t pidfd;
	uint64_t child_tid;
	uint64_t parent_tid;
	uint64_t exit_signal;
	uint64_t stack;
	uint64_t stack_size;
	uint64_t tls;
	uint64_t set_tid;
	uint64_t set_tid_size;
};

bool is_deleted(const std::string &path)
{
	constexpr std::string_view tag = " (deleted)";
	return path.size() > tag.size() &&
	       path.compare(path.size() - tag.size(), tag.size(), tag) == 0;
}

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

Result<UniqueFd> open_file(const std::string &path, int flags)
{
	UniqueFd fd(open(path.c_str(), flags | O_CLOEXEC));
	if (!fd)
		return fail_errno(path);
	return fd;
}

// Files the stub hands to the kernel.
struct Helpers {
	std::vector<UniqueFd> pages;	// oldest first
	UniqueFd exe;
	std::map<std::pair<std::string, bool>, UniqueFd> files;	// (path, rw)
	UniqueFd report_r, report_w;
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
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return fail_errno("pipe");
	h.report_r.reset(p[0]);
	h.report_w.reset(p[1]);
	return h;
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

struct Prepared {
	StubPlan plan;
	Helpers helpers;
	std::map<int, std::string> fd_names;	// stub's helper fd -> what it is
	uint32_t seq = 0;
};

// Everything the stub needs, given the image's fd plan (already checked).
Result<Prepared> prepare(const Checkpoint &c, const std::vector<std::string> &pages,
			 std::vector<StubFd> fds, NetlinkClient &nl)
{
	Prepared pr;
	StubPlan &p = pr.plan;

	p.fds = std::move(fds);
	AMBER_TRY(plan_signals(c, p));
	plan_task(c, p);
	int max_image_fd = 2;
	for (const StubFd &f : p.fds)
		max_image_fd = std::max(max_image_fd, f.num);
	// Room for the image's fds plus our helpers above them.
	raise_nofile(max_image_fd + int(c.vmas.size()) + 64);
	pr.helpers = AMBER_TRY(open_helpers(c, pages));

	// Helper fds, moved by the stub above every image fd and every fd we
	// hold now; CLOSE_FDS lists them all.
	Helpers &h = pr.helpers;
	std::vector<int> helpers = {nl.fd(), h.report_w.get()};
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
	int max_fd = AMBER_TRY(max_open_fd());
	p.helpers = plan_helper_moves(helpers, max_image_fd, max_fd);
	for (size_t i = 0; i < p.helpers.size(); i++)
		pr.fd_names[p.helpers[i].to] = names[i];
	p.nl_fd = p.helpers[0].to;
	p.report_fd = p.helpers[1].to;

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
	for (const FdMove &m : p.helpers) {
		moved[m.from] = m.to;
		rf.close.push_back(m.to);
	}
	for (const UniqueFd &fd : h.pages)
		rf.pages.push_back(moved.at(fd.get()));
	if (h.exe)
		rf.exe = moved.at(h.exe.get());
	for (const auto &[key, fd] : h.files)
		rf.files[key] = moved.at(fd.get());
	Bytes attrs = AMBER_TRY(build_restore_attrs(c, rf));
	Request req = AMBER_TRY(nl.make_request(AMBER_CMD_RESTORE, attrs));
	const struct nlmsghdr *hdr = nlmsg_hdr(req.msg.get());
	const uint8_t *raw = reinterpret_cast<const uint8_t *>(hdr);
	p.msg.assign(raw, raw + hdr->nlmsg_len);
	pr.seq = req.seq;
	AMBER_TRY(fit_sndbuf(nl.fd(), p.msg.size()));

	// Last, so no later allocation of ours can land where the stub moves
	// the vDSO to: the stub's mappings are ours at clone3() time.
	auto maps = AMBER_TRY(read_own_maps());
	p.vdso = AMBER_TRY(plan_vdso(maps, c.vmas));
	return pr;
}

Result<std::pair<pid_t, UniqueFd>> spawn_stub(pid_t pid, const StubPlan &plan)
{
	pid_t tid = pid;
	int pidfd = -1;
	CloneArgs args = {};
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

int64_t now_ms()
{
	return std::chrono::duration_cast<std::chrono::milliseconds>(
		       std::chrono::steady_clock::now().time_since_epoch())
		.count();
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
	syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
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

} // namespace

Result<RestoredProcess> restore_process(const RestoreRequest &req)
{
	Store store(req.dir);
	// VMAs, CORE and FDS come from the restored checkpoint, the pages from
	// every link of its chain (PAGE_FDS, oldest first).
	std::vector<Checkpoint> chain = AMBER_TRY(load_chain(store, req.number));
	std::vector<std::string> pages;
	std::vector<uint32_t> links;
	for (const Checkpoint &l : chain) {
		pages.push_back(l.pages_path);
		links.push_back(l.number);
	}
	const Checkpoint &c = chain.back();

	// Files and PID before anything else: nothing is created on failure.
	auto fds = AMBER_TRY(plan_fds(c.fds));
	AMBER_TRY(check_files(c, fds));
	pid_t pid = pid_t(c.task.pid ? c.task.pid : c.info.pid);
	if (pid <= 0)
		return fail(0, c.meta_path + ": no pid recorded");
	AMBER_TRY(check_pid_free(pid));

	auto nl = NetlinkClient::connect();
	if (!nl) {
		if (nl.error().err == ENOENT)
			return fail(0, nl.error().msg + " (insmod kmod/amber.ko)");
		return tl::unexpected(nl.error());
	}
	Prepared pr = AMBER_TRY(prepare(c, pages, std::move(fds), *nl));

	auto [child, pidfd] = AMBER_TRY(spawn_stub(pid, pr.plan));
	// Only the stub keeps the write end: EOF once it exits or the kernel
	// closes its helper fds.
	pr.helpers.report_w.reset();

	auto r = wait_outcome(*nl, pr.seq, pr.plan, pr.fd_names, links, pr.helpers.report_r.get(),
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

} // namespace amber
