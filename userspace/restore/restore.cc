// SPDX-License-Identifier: GPL-2.0
// Restoring a process as a child of the caller (restore.h): the core.
//
// The image is loaded and verified, the files it needs and its PID are
// checked, then a stub is created with clone3(set_tid = {pid}). The stub
// recreates fds, cwd, signal state and the vDSO placement (stub.cc) and sends
// AMBER_CMD_RESTORE, after which the kernel turns it into the checkpointed
// program. The netlink socket is shared: the kernel's ACK or extack error for
// the stub's request is read here, in the parent, even if the stub is gone.
// What each resource needs is planned and created by its own file (core.h);
// trees are restored by tree.cc on the same steps.
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
#include "common/kernel.h"
#include "common/names.h"
#include "image/compress.h"
#include "image/image.h"
#include "netlink/netlink.h"
#include "image/store.h"
#include "restore/core.h"
#include "restore/lazy.h"

namespace amber {

namespace {

Result<Helpers> open_helpers(const Checkpoint &c, const std::vector<Checkpoint> &chain)
{
	Helpers h;
	for (const Checkpoint &l : chain)
		h.pages.push_back(AMBER_TRY(open_pages(l)));
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

} // namespace

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

// First half: the plan's content and the files it needs (opened now).
Result<Prepared> prepare_open(const Checkpoint &c, const std::vector<Checkpoint> &chain,
			      std::vector<StubFd> fds, const ThreadStack &stack)
{
	Prepared pr;
	StubPlan &p = pr.plan;

	p.pid = pid_t(c.task.pid ? c.task.pid : c.info.pid);
	p.fds = std::move(fds);
	AMBER_TRY(plan_signals(c, p));
	plan_task(c, p);
	p.thread_pending = AMBER_TRY(plan_thread_signals(c));
	AMBER_TRY(plan_timers(c, p));
	for (const ThreadInfo &t : c.threads)
		p.threads.push_back(pid_t(t.tid));
	p.thread_stack = uint64_t(stack.addr);
	p.thread_stack_size = stack.size;
	pr.helpers = AMBER_TRY(open_helpers(c, chain));
	return pr;
}

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
	rf.lazy = in.lazy;
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

Error kernel_error(const Error &e, const std::map<int, std::string> &names,
		   const std::vector<uint32_t> &links)
{
	std::string msg = "amber.ko refused the restore";
	if (!e.msg.empty())
		msg += ": " + e.msg + fd_legend(e.msg, names) + pages_legend(e.msg, links);
	return Error{e.err, msg};
}

namespace {

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

// The chain of the checkpoint to restore, oldest first, and where each of
// its pages is: every meta.img verified, the pages files' headers read,
// the chain resolved, before anything is created. The pages files are
// verified by verify_chain() once it is known which runs the stub checks
// itself. Errors name the link: "checkpoint 3: ...".
struct LoadedChain {
	std::vector<Checkpoint> links;
	std::vector<PageSource> sources;
};

Result<LoadedChain> load_chain(const Store &store, Checkpoint newest)
{
	LoadedChain lc;
	lc.links = AMBER_TRY(store.load_chain_meta(std::move(newest)));
	if (lc.links.empty())
		return fail(EPROTO, store.dir() + ": empty checkpoint chain");
	std::vector<const Checkpoint *> links;
	for (Checkpoint &c : lc.links) {
		auto ps = pages_page_size(c);
		if (!ps)
			return wrap(ps.error(), "checkpoint " + std::to_string(c.number) + ": ");
		c.page_size = *ps;
		links.push_back(&c);
	}
	lc.sources = AMBER_TRY(resolve_chain(links));
	return lc;
}

// Verifies every pages file of the chain but the runs of its last link
// that the stub checks (unhashed, by pagemap index), as load_chain() of the
// store would have: any damage fails the restore here, before the stub exists.
Result<void> verify_chain(LoadedChain &lc, const std::vector<bool> &unhashed)
{
	for (size_t k = 0; k < lc.links.size(); k++) {
		Checkpoint &c = lc.links[k];
		auto r = verify_pages_except(c, k + 1 == lc.links.size() ? unhashed
									 : std::vector<bool>{});
		if (!r)
			return wrap(r.error(), "checkpoint " + std::to_string(c.number) + ": ");
	}
	return {};
}

// Lazy restore, once the stub runs: waits for its userfaultfd (LazyReady),
// takes a copy, pins it in amber.ko and forks the filler, which is serving
// faults when this returns. Failing, nothing is left: the caller kills the
// stub, the filler (if any) finds the process gone.
Result<void> start_lazy(const RestoreRequest &req, const StubPlan &plan, int report_fd,
			int pidfd, pid_t pid, const std::vector<std::string> &pages,
			const std::vector<int> &link_fds)
{
	int64_t deadline = now_ms() + int64_t(req.timeout_s) * 1000;
	int stub_fd = -1;
	while (stub_fd < 0) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return fail(ETIMEDOUT, "lazy restore: the stub of pid " + std::to_string(pid) +
						       " did not register its memory in time");
		struct pollfd fds[2] = {{report_fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
		int n = poll(fds, 2, int(std::min<int64_t>(left, INT_MAX)));
		if (n < 0 && errno != EINTR)
			return fail_errno("poll");
		if (n <= 0)
			continue;
		if (fds[0].revents) {
			StubReport rep;
			ssize_t k = read(report_fd, &rep, sizeof(rep));
			if (k < 0 && errno == EINTR)
				continue;
			if (k != ssize_t(sizeof(rep)))
				return fail(0, "restore stub (pid " + std::to_string(pid) +
						       ") exited before registering its memory");
			if (StubStep(rep.step) != StubStep::LazyReady)
				return fail(rep.err, describe_step(plan, rep));
			stub_fd = rep.index;
		} else if (fds[1].revents) {
			return fail(0, "restore stub (pid " + std::to_string(pid) +
					       ") exited before registering its memory");
		}
	}

	LazyFiller lf;
	lf.pid = pid;
	lf.uffd = UniqueFd(int(syscall(SYS_pidfd_getfd, pidfd, stub_fd, 0)));
	if (!lf.uffd)
		return fail_errno("lazy restore: pidfd_getfd of the stub's userfaultfd");
	lf.pidfd = UniqueFd(fcntl(pidfd, F_DUPFD_CLOEXEC, 3));
	if (!lf.pidfd)
		return fail_errno("dup");
	lf.plan = plan_lazy(plan.prefill);
	lf.stall = fault_pid("lazy-stall") == pid;
	for (size_t i = 0; i < link_fds.size(); i++)
		lf.paths[link_fds[i]] = pages[i];
	AMBER_TRY(lf.map_files());
	UniqueFd log;
	if (!req.lazy_log.empty()) {
		log = AMBER_TRY(open_file(req.lazy_log, O_WRONLY | O_CREAT | O_APPEND));
		lf.log_done = true;
	}
	auto nl = connect_module();
	if (!nl)
		return tl::unexpected(nl.error());
	lf.nl.emplace(std::move(*nl));
	auto held = lazy_fill_request(*lf.nl, pid, lf.uffd.get());
	if (!held)
		return wrap(held.error(), "lazy restore: amber.ko refused the userfaultfd: ");

	fflush(nullptr);
	pid_t filler = fork();
	if (filler < 0)
		return fail_errno("lazy restore: fork of the filler");
	if (filler > 0)
		return {};	// our copies of the fds close here; the filler's stay

	// The filler: the fds it needs, nothing else (0 and 1 on /dev/null,
	// 2 on the log), so that nobody waits for its output to end.
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
	}
	if (log)
		dup2(log.get(), 2);
	std::vector<int> keep = {0, 1, 2, lf.uffd.get(), lf.pidfd.get(), lf.nl->fd()};
	for (const auto &[fd, path] : lf.paths)
		keep.push_back(fd);
	std::sort(keep.begin(), keep.end());
	for (const auto &[lo, hi] : close_ranges(keep))
		syscall(SYS_close_range, lo, hi, 0);
	auto r = lf.run();
	if (!r) {
		std::string m = "amber restore: " + r.error().str() + "\n";
		(void)!write(2, m.data(), m.size());
	}
	_exit(r ? 0 : 1);
}

Result<RestoredProcess> restore_single(const RestoreRequest &req, LoadedChain lc)
{
	const std::vector<Checkpoint> &chain = lc.links;
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
	// Private anonymous memory the stub maps and fills itself, checking
	// the checksums of the runs in it (StubPrefill); every other page is
	// verified now, before anything is created.
	Reservation reserved;
	auto picks = AMBER_TRY(reserve_prefill({&c.vmas}, {-1}, reserved, true));
	std::vector<bool> unhashed;
	auto checks = plan_page_checks(c, picks[0], &unhashed);
	AMBER_TRY(verify_chain(lc, unhashed));

	auto nl = connect_module();
	if (!nl)
		return tl::unexpected(nl.error());
	SharedFds shared = AMBER_TRY(create_shared(sp, {}));
	PipeFds report = AMBER_TRY(make_pipe("pipe"));
	ThreadStack stack;
	if (!c.threads.empty())
		AMBER_TRY(map_thread_stack(stack));
	Prepared pr = AMBER_TRY(prepare_open(c, chain, std::move(fds), stack));
	std::vector<int> link_fds;
	for (const UniqueFd &fd : pr.helpers.pages)
		link_fds.push_back(fd.get());
	pr.plan.prefill = plan_stub_prefill(c, lc.sources, picks[0], link_fds, std::move(checks));
	// Lazy: the stub waits on go once its memory is registered.
	PipeFds go;
	if (req.lazy) {
		go = AMBER_TRY(make_pipe("pipe"));
		pr.plan.lazy = true;
		pr.plan.lazy_go_fd = go.r.get();
		pr.plan.lazy_go_w_fd = go.w.get();
	}
	// A deleted cwd: the stub enters a ghost directory and removes it.
	GhostDirs ghosts;
	if (is_deleted(c.task.cwd)) {
		pr.plan.cwd = AMBER_TRY(ghosts.add(c.task.cwd));
		pr.plan.cwd_ghost = true;
	}
	int max_fd = AMBER_TRY(max_open_fd());
	// Room for the image's fds plus our helpers above them.
	raise_nofile(std::max(max_fd, 2) + int(c.fds.size() + c.vmas.size()) + 64);
	ProcFds in;
	in.report_w = report.w.get();
	in.max_open = max_fd;
	in.shared = &shared;
	in.prefill = &picks[0];
	in.lazy = req.lazy;
	AMBER_TRY(prepare_request(pr, c, pages, *nl, in));
	// Last, so no later allocation of ours can land where the stub moves
	// the vDSO to: the stub's mappings are ours at clone3() time.
	auto maps = AMBER_TRY(read_own_maps());
	pr.plan.vdso = AMBER_TRY(plan_vdso(maps, c.vmas));

	auto [child, pidfd] = AMBER_TRY(spawn_stub(pid, pr.plan));
	// Only the stub keeps the write end: EOF once it exits or the kernel
	// closes its helper fds.
	report.w.reset();
	if (req.lazy) {
		go.r.reset();
		auto l = start_lazy(req, pr.plan, report.r.get(), pidfd.get(), child, pages,
				    link_fds);
		if (!l) {
			kill_and_reap(pidfd.get(), child);
			return tl::unexpected(l.error());
		}
		char b = 1;
		if (write(go.w.get(), &b, 1) != 1) {
			kill_and_reap(pidfd.get(), child);
			return fail_errno("lazy restore: releasing the stub");
		}
		go.w.reset();
	}

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

} // namespace

Result<void> plan_restore(const std::vector<ProcImage> &procs, bool tree)
{
	if (procs.empty() || !procs[0].ckpt)
		return fail(EINVAL, "image: no process");
	if (tree)
		AMBER_TRY(plan_process_tree(procs[0].ckpt->tree));
	// The same calls, in the same order, as restore_single() and restore_tree().
	SharedPlan sp = AMBER_TRY(plan_shared(procs, tree));
	const std::vector<std::string> names = shared_names(sp);
	for (size_t k = 0; k < procs.size(); k++) {
		auto fds = plan_fds(procs[k].ckpt->fds, sp.fd_file[k], names);
		if (!fds)
			return tree ? wrap(fds.error(), pid_name(procs[k].pid) + ": ")
				    : tl::unexpected(fds.error());
	}
	return {};
}

Result<RestoredProcess> restore_process(const RestoreRequest &req)
{
	Store store(req.dir);
	// VMAs, CORE and FDS come from the restored checkpoint, the pages from
	// every link of its chain (PAGE_FDS, oldest first).
	Checkpoint meta = AMBER_TRY(store.load_meta(req.number));
	AMBER_TRY(check_kernel({meta.info.kernel, meta.info.vdso_xxh64}, AMBER_TRY(this_kernel())));
	if (meta.is_tree()) {
		if (req.lazy)
			return fail(EOPNOTSUPP, "--lazy restores a single process; checkpoint " +
							std::to_string(meta.number) +
							" is a process tree (restore it without --lazy)");
		return restore_tree(req, store, meta);	// verifies the chains in parallel
	}
	return restore_single(req, AMBER_TRY(load_chain(store, std::move(meta))));
}

} // namespace amber
