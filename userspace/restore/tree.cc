// SPDX-License-Identifier: GPL-2.0
// Process trees on restore: plan_process_tree() (pure, plan.h) decides
// creation order, sessions, groups and zombies; restore_tree() loads every
// chain, plans the shared objects and each stub (the private memory it
// fills and checks itself, every other page verified here), creates the
// root's stub (which creates its children, and so on: stub.cc) and runs
// them through the barrier to every kernel ACK, then releases them parents
// first.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <atomic>
#include <map>
#include <optional>
#include <thread>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <poll.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/amber.h>
#include <linux/netlink.h>

#include "common/io.h"
#include "common/names.h"
#include "restore/core.h"

namespace amber {

namespace {

// Process group / session values of the root that are outside the tree
// stand for "whatever the restoring tool has"; kToolGroup marks the root's
// group at creation when it joins a group of the tree later.
constexpr uint64_t kToolGroup = uint64_t(1) << 40;

} // namespace

int ProcessTree::index_of(uint32_t pid) const
{
	for (size_t i = 0; i < procs.size(); i++)
		if (procs[i].info.pid == pid)
			return int(i);
	return -1;
}

namespace {

// The owner (index) of the fd table (fs: the fs_struct) process i shares,
// -1 for its own. clone3() recreates the sharing only from the parent: the
// parent must be the owner or share it too (the owner is first in tree
// order, so it is an ancestor).
Result<int> plan_shared_with(const ProcessTree &t, size_t i, bool fs)
{
	const ProcInfo &p = t.procs[i].info;
	const uint32_t with = fs ? p.fs_with : p.files_with;
	const std::string what = fs ? "its cwd, root and umask (CLONE_FS)"
				    : "its fd table (CLONE_FILES)";
	if (!with)
		return -1;
	int o = t.index_of(with);
	if (o < 0 || size_t(o) >= i || t.procs[o].info.zombie ||
	    (fs ? t.procs[o].info.fs_with : t.procs[o].info.files_with))
		return fail(EINVAL, "image: TREE: " + pid_name(p.pid) + ": shares " + what +
					    " with pid " + std::to_string(with) +
					    ", not an earlier process that owns it");
	const int parent = t.procs[i].parent;
	const ProcInfo &pp = t.procs[parent].info;
	if (parent != o && (fs ? pp.fs_with : pp.files_with) != with)
		return fail(EINVAL, pid_name(p.pid) + ": shares " + what + " with pid " +
					    std::to_string(with) + " but its parent (pid " +
					    std::to_string(pp.pid) +
					    ") does not: clone() cannot recreate that");
	return o;
}

} // namespace

Result<ProcessTree> plan_process_tree(const std::vector<ProcInfo> &tree)
{
	ProcessTree t;
	if (tree.empty())
		return fail(EINVAL, "image: TREE: no process");
	std::map<uint32_t, int> index;
	for (size_t i = 0; i < tree.size(); i++) {
		const ProcInfo &p = tree[i];
		if (p.pid == 0 || p.pid > uint32_t(INT32_MAX))
			return fail(EINVAL, "image: TREE: process " + std::to_string(i) +
						    ": bad pid " + std::to_string(p.pid));
		if (!index.emplace(p.pid, int(i)).second)
			return fail(EINVAL, "image: TREE: " + pid_name(p.pid) + " listed twice");
		PlannedProc pp;
		pp.info = p;
		t.procs.push_back(pp);
	}

	const ProcInfo &root = tree[0];
	if (root.zombie)
		return fail(EINVAL, pid_name(root.pid) + ": the root of the tree is a zombie");
	for (size_t i = 1; i < tree.size(); i++) {
		const ProcInfo &p = tree[i];
		auto it = index.find(p.ppid);
		if (it == index.end())
			return fail(EINVAL, pid_name(p.pid) + ": its parent (pid " +
						    std::to_string(p.ppid) + ") is not in the tree");
		if (size_t(it->second) >= i)
			return fail(EINVAL, "image: TREE: " + pid_name(p.pid) +
						    " is listed before its parent");
		if (tree[it->second].zombie)
			return fail(EINVAL, pid_name(p.pid) + ": its parent (pid " +
						    std::to_string(p.ppid) + ") is a zombie");
		t.procs[i].parent = it->second;
		t.procs[it->second].children.push_back(int(i));
	}
	for (const PlannedProc &p : t.procs)
		if (p.info.zombie)
			AMBER_TRY(zombie_exit(p.info));
	for (size_t i = 0; i < tree.size(); i++) {
		t.procs[i].files_owner = AMBER_TRY(plan_shared_with(t, i, false));
		t.procs[i].fs_owner = AMBER_TRY(plan_shared_with(t, i, true));
	}

	// Sessions: setsid() by the leader before it creates children; everyone
	// else inherits its parent's.
	std::vector<uint32_t> eff_sid(tree.size());
	for (size_t i = 0; i < tree.size(); i++) {
		PlannedProc &p = t.procs[i];
		const ProcInfo &in = p.info;
		if (in.sid == in.pid) {
			p.setsid = true;
			if (in.pgid != in.pid)
				return fail(EINVAL, pid_name(in.pid) + ": session leader in process group " +
							    std::to_string(in.pgid));
			eff_sid[i] = in.pid;
			continue;
		}
		if (i == 0) {
			eff_sid[i] = in.sid;	// the tool's session
			continue;
		}
		eff_sid[i] = eff_sid[p.parent];
		if (in.sid == eff_sid[i])
			continue;
		int leader = t.index_of(in.sid);
		if (leader < 0 && in.sid != root.sid)
			return fail(EINVAL, pid_name(in.pid) + ": session " + std::to_string(in.sid) +
						    ": its leader is not in the tree and it is not "
						    "the session of the root (pid " +
						    std::to_string(root.pid) + ")");
		return fail(EINVAL, pid_name(in.pid) + ": session " + std::to_string(in.sid) +
					    " differs from its parent's (pid " +
					    std::to_string(tree[p.parent].pid) + ", session " +
					    std::to_string(tree[p.parent].sid) +
					    ") and it is not the session's leader: cannot recreate");
	}

	// Process groups: the leader's setpgid(0, 0) before it creates
	// children; a process born in another group joins after the barrier.
	std::vector<uint64_t> eff_pgid(tree.size());
	const bool root_group_outside =
		root.pgid != root.pid && index.find(root.pgid) == index.end();
	for (size_t i = 0; i < tree.size(); i++) {
		PlannedProc &p = t.procs[i];
		const ProcInfo &in = p.info;
		if (root_group_outside && in.pgid == root.pgid && in.sid == root.sid &&
		    !t.procs[0].setsid)
			p.outside_pgid = in.pgid;
		if (in.pgid == in.pid) {
			p.setpgid_self = !p.setsid;
			eff_pgid[i] = in.pid;
			continue;
		}
		if (i == 0)
			eff_pgid[i] = root_group_outside ? uint64_t(in.pgid) : kToolGroup;
		else
			eff_pgid[i] = eff_pgid[p.parent];
		if (uint64_t(in.pgid) == eff_pgid[i])
			continue;
		std::string name = pid_name(in.pid) + ": process group " + std::to_string(in.pgid);
		auto it = index.find(in.pgid);
		if (it == index.end()) {
			if (!root_group_outside || in.pgid != root.pgid)
				return fail(EINVAL, name + ": its leader is not in the tree");
			if (in.sid != root.sid || t.procs[0].setsid)
				return fail(EINVAL, name + " (the root's) is in another session");
			p.join = true;
			p.join_tool_group = true;
			continue;
		}
		const ProcInfo &leader = tree[it->second];
		if (leader.pgid != leader.pid)
			return fail(EINVAL, name + ": pid " + std::to_string(leader.pid) +
						    " is in the tree but in group " +
						    std::to_string(leader.pgid));
		if (leader.sid != in.sid)
			return fail(EINVAL, name + " is in session " + std::to_string(leader.sid) +
						    ", the process in session " +
						    std::to_string(in.sid));
		p.join = true;
		p.join_pgid = in.pgid;
	}
	return t;
}

Result<ZombieExit> zombie_exit(const ProcInfo &p)
{
	int st = int(p.exit_code);
	ZombieExit z;
	if (WIFEXITED(st)) {
		z.code = WEXITSTATUS(st);
		return z;
	}
	if (WIFSIGNALED(st) && WTERMSIG(st) > 0 && WTERMSIG(st) < 65 && WTERMSIG(st) != SIGSTOP) {
		z.signaled = true;
		z.code = WTERMSIG(st);
		return z;
	}
	return fail(EINVAL, pid_name(p.pid) + ": zombie with wait status " + hex(p.exit_code) +
				    " that no exit reproduces");
}

namespace {

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

// Runs the stubs from the Ready reports to every ACK. Once every stub is
// Ready (every pid exists) and before the barrier lets them on, sends the
// socket queues whose messages carry credentials of these pids.
Result<void> await_tree(std::vector<TreeProc> &procs, NetlinkClient &nl, int report_r,
			UniqueFd &go_w, SharedFds &shared, int timeout_s)
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
		AMBER_TRY(nl.drain_acks(outcomes));
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
					AMBER_TRY(send_deferred(shared));
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

// Runs work(i) for every i < n on as many threads as CPUs (at most 8).
template <class F>
void parallel_for(size_t n, F &&work)
{
	std::atomic<size_t> next{0};
	auto loop = [&] {
		for (size_t i; (i = next++) < n;)
			work(i);
	};
	size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 8);
	std::vector<std::thread> pool;
	for (size_t k = 1; k < std::min(threads, n); k++)
		pool.emplace_back(loop);
	loop();
	for (std::thread &t : pool)
		t.join();
}

// Verifies every pages file of p's chain but the runs of its newest link
// that its stub checks (unhashed), as Store::load_chain() would have, errors
// named the same way: "checkpoint 3: proc/1234/pages.img: run 2 ...".
Result<void> verify_links(TreeProc &p, uint32_t root_pid, const std::vector<bool> &unhashed)
{
	for (size_t k = 0; k < p.chain.size(); k++) {
		Checkpoint &c = p.chain[k];
		auto r = verify_pages_except(c, k + 1 == p.chain.size() ? unhashed
									 : std::vector<bool>{});
		if (!r)
			return wrap(r.error(), "checkpoint " + std::to_string(c.number) + ": " +
						       process_prefix(p.pid, root_pid));
	}
	return {};
}

} // namespace

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

	// Every process's chain: the meta.img of every link verified and
	// parsed, the pages resolved. The pages files are verified below, once
	// it is known which runs the stubs check themselves.
	std::vector<TreeProc> procs(tree.procs.size());
	std::vector<std::optional<Result<std::vector<Checkpoint>>>> loaded(procs.size());
	parallel_for(procs.size(), [&](size_t i) {
		if (i == 0)
			loaded[i] = store.load_chain_meta(std::optional<uint32_t>(number));
		else if (!tree.procs[i].info.zombie)
			loaded[i] = store.load_chain_meta(number, tree.procs[i].info.pid, root_pid);
	});
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
		for (Checkpoint &l : p.chain) {
			auto ps = pages_page_size(l);
			if (!ps)
				return wrap(ps.error(), "checkpoint " + std::to_string(l.number) + ": " +
								process_prefix(p.pid, root_pid));
			l.page_size = *ps;
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

	// Private anonymous memory each stub maps and fills itself (all of it:
	// plan_prefill()), shared copy-on-write along the tree where a child
	// has the parent's exact range with mostly the same pages. The stubs
	// check the runs in it on the memory they filled; every other page is
	// verified now, before anything is created, by a few threads at once.
	Reservation reserved;
	std::vector<int> parent(procs.size(), -1);
	std::vector<const std::vector<Vma> *> vmas(procs.size(), nullptr);
	for (size_t i = 0; i < procs.size(); i++) {
		for (int c : tree.procs[i].children)
			parent.at(size_t(c)) = int(i);
		if (!procs[i].zombie)
			vmas[i] = &procs[i].ckpt().vmas;
	}
	auto prefill = AMBER_TRY(reserve_prefill(vmas, parent, reserved, true));
	auto input = [&](size_t i) {
		return PageInput{procs[i].label, &procs[i].ckpt(), &procs[i].chain, &procs[i].sources};
	};
	for (size_t i = 0; i < procs.size(); i++)
		for (PrefillPick &k : prefill[i]) {
			const Vma &v = procs[i].ckpt().vmas[k.vma];
			if (k.inherited && parent[i] >= 0 &&
			    !mostly_shared(input(size_t(parent[i])), input(i), {v.start, v.end}))
				k.inherited = false;
		}
	std::vector<std::vector<std::vector<StubPageCheck>>> checks(procs.size());
	std::vector<std::vector<bool>> unhashed(procs.size());
	for (int i : live)
		checks[i] = plan_page_checks(procs[i].ckpt(), prefill[i], &unhashed[i]);
	std::vector<Result<void>> verified(procs.size());
	parallel_for(procs.size(), [&](size_t i) {
		if (!procs[i].zombie)
			verified[i] = verify_links(procs[i], root_pid, unhashed[i]);
	});
	for (int i : live)
		if (!verified[i])
			return wrap(verified[i].error(), procs[i].label + ": ");
	// The ranges a child inherits: filled before the stub creates its
	// children, checked after.
	std::vector<std::set<std::pair<uint64_t, uint64_t>>> handed_down(procs.size());
	for (size_t i = 0; i < procs.size(); i++)
		for (const PrefillPick &k : prefill[i])
			if (k.inherited && parent[i] >= 0) {
				const Vma &v = procs[i].ckpt().vmas[k.vma];
				handed_down[size_t(parent[i])].insert({v.start, v.end});
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
	// Shared fd tables: one StubFilesSync per owner, in memory every stub
	// shares.
	AnonMapping sync;
	AMBER_TRY(map_anon(sync, std::max<size_t>(procs.size() * sizeof(StubFilesSync), 4096),
			   "the fd tables' synchronisation", true));
	auto *syncs = static_cast<StubFilesSync *>(sync.addr);
	// Deleted cwds: entered by the stubs before they are ready, removed
	// before any process runs (the stubs are held until released).
	GhostDirs ghosts;
	for (int i : live) {
		TreeProc &p = procs[i];
		// A shared fd table's fds are installed by its owner only.
		const bool files_follower = tree.procs[i].files_owner >= 0;
		auto pr = prepare_open(p.ckpt(), p.chain,
				       files_follower ? std::vector<StubFd>{} : std::move(p.fds), stack);
		if (!pr)
			return wrap(pr.error(), p.label + ": ");
		p.pr = std::move(*pr);
		if (tree.procs[i].fs_owner >= 0) {
			// cwd and umask are the owner's, set by its stub.
			p.pr.plan.cwd.reset();
			p.pr.plan.umask.reset();
			continue;
		}
		if (is_deleted(p.ckpt().task.cwd)) {
			auto dir = ghosts.add(p.ckpt().task.cwd);
			if (!dir)
				return wrap(dir.error(), p.label + ": ");
			p.pr.plan.cwd = *dir;
		}
	}
	int max_fd = AMBER_TRY(max_open_fd());
	// The members of a shared fd table have their helpers at disjoint
	// numbers above the owner's: sizes add up per table.
	size_t most = 0;
	std::vector<size_t> table_fds(procs.size(), 0);
	for (int i : live) {
		const int o = tree.procs[i].files_owner >= 0 ? tree.procs[i].files_owner : i;
		table_fds[o] += procs[i].ckpt().fds.size() + procs[i].ckpt().vmas.size() + 8;
		most = std::max(most, table_fds[o]);
	}
	raise_nofile(max_fd + int(most) + 64);
	const pid_t fault = fault_pid("restore-refused");
	std::vector<int> table_top(procs.size(), max_fd);	// by owner
	for (size_t k = 0; k < live.size(); k++) {
		TreeProc &p = procs[live[k]];
		const int o = tree.procs[live[k]].files_owner >= 0 ? tree.procs[live[k]].files_owner
								    : live[k];
		ProcFds in;
		in.report_w = report.w.get();
		in.max_open = table_top[o];
		in.shared = &shared;
		in.vma_shmem = &sp.vma_shmem[k];
		in.prefill = &prefill[live[k]];
		in.hold = true;
		in.fault_refused = fault == pid_t(p.pid);
		if (auto r = prepare_request(p.pr, p.ckpt(), p.pages, *nl, in); !r)
			return wrap(r.error(), p.label + ": ");
		for (const FdMove &m : p.pr.plan.helpers)
			table_top[o] = std::max(table_top[o], m.to);
	}
	// The owner of a shared fd table moves every member's helpers and
	// keeps them open when it closes the rest (StubFilesSync).
	for (int i : live) {
		const int o = tree.procs[i].files_owner;
		if (o < 0)
			continue;
		StubPlan &owner = procs[o].pr.plan, &plan = procs[i].pr.plan;
		if (!owner.files_sync) {
			owner.files_sync = &syncs[o];
			owner.files_members = 1;
		}
		owner.files_members++;
		plan.files_sync = &syncs[o];
		plan.files_follower = true;
		owner.helpers.insert(owner.helpers.end(), plan.helpers.begin(), plan.helpers.end());
		plan.helpers.clear();
		plan.close.clear();
	}
	for (int i : live) {
		StubPlan &plan = procs[i].pr.plan;
		if (!plan.files_sync || plan.files_follower)
			continue;
		std::vector<int> keep;
		for (const StubFd &f : plan.fds)
			if (f.inherit)
				keep.push_back(f.num);
		for (const FdMove &m : plan.helpers)
			keep.push_back(m.to);
		std::sort(keep.begin(), keep.end());
		plan.close = close_ranges(keep);
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
		t.clone_flags = (tp.files_owner >= 0 ? uint64_t(CLONE_FILES) : 0) |
				(tp.fs_owner >= 0 ? uint64_t(CLONE_FS) : 0);
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
		plan.prefill = plan_stub_prefill(procs[i].ckpt(), procs[i].sources, prefill[i],
						 link_fds, std::move(checks[i]));
		for (StubPrefill &f : plan.prefill)
			f.before_fork = handed_down[i].count({f.range.start, f.range.end}) > 0;
		plan.pages_prefix = process_prefix(procs[i].pid, root_pid);
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

	auto r = await_tree(procs, *nl, report.r.get(), go.w, shared, req.timeout_s);
	if (r) {
		ghosts.remove();
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

} // namespace amber
