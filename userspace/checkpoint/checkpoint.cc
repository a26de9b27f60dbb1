// SPDX-License-Identifier: GPL-2.0
#include <fmt/format.h>

#include "checkpoint/checkpoint.h"
#include "restore/plan.h"
#include "common/names.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <thread>
#include <unordered_map>

#include <sys/socket.h>

#include <linux/amber.h>

namespace amber {

namespace {

std::string fd_name(const FdInfo &f)
{
	if (!f.path.empty())
		return f.path;
	return fd_type_name(f.type);
}

// "AF_INET SOCK_STREAM", as the kernel's refusals say it.
std::string sock_name(uint32_t family, uint32_t type)
{
	return family_name(family) + " " + sock_type_name(type);
}

} // namespace

const char *fd_type_name(uint32_t type)
{
	switch (type) {
	case AMBER_FD_REG:
		return "regular file";
	case AMBER_FD_DIR:
		return "directory";
	case AMBER_FD_CHR:
		return "character device";
	case AMBER_FD_BLK:
		return "block device";
	case AMBER_FD_FIFO:
		return "pipe";
	case AMBER_FD_SOCK:
		return "socket";
	case AMBER_FD_OTHER:
		return "anonymous inode";
	default:
		return "unknown file type";
	}
}

Result<CheckpointReply> parse_checkpoint_reply(ByteView payload)
{
	CheckpointReply r;
	auto attrs = parse_attrs(payload);
	if (!attrs)
		return wrap(attrs.error(), "reply: ");

	if (const Attr *a = find_attr(*attrs, AMBER_A_PROC)) {
		auto p = parse_proc(a->data);
		if (!p)
			return wrap(p.error(), "reply: PROC: ");
		r.proc = *p;
		r.proc_attr = a->raw_bytes();
	}
	if (r.zombie()) {
		// Nothing but PROC: an exited process has no state to capture.
		for (const Attr &a : *attrs)
			if (a.type != AMBER_A_PROC)
				return fail(EPROTO, "reply: pid " + std::to_string(r.proc->pid) +
							    ": a zombie with attribute " +
							    std::to_string(a.type));
		return r;
	}

	static const struct {
		uint16_t type;
		const char *name;
	} core[] = {
		{AMBER_A_TASK, "TASK"},	  {AMBER_A_MM, "MM"},
		{AMBER_A_REGS, "REGS"},	  {AMBER_A_FPU, "FPU"},
		{AMBER_A_SIGNALS, "SIGNALS"},
	};
	AttrWriter w;
	for (const auto &c : core) {
		const Attr *a = find_attr(*attrs, c.type);
		if (!a)
			return fail(EPROTO, std::string("reply: no ") + c.name + " attribute");
		w.put_raw(a->raw);
	}
	if (const Attr *a = find_attr(*attrs, AMBER_A_TIMERS)) {
		auto t = parse_timers(a->data);
		if (!t)
			return wrap(t.error(), "reply: TIMERS: ");
		w.put_raw(a->raw);
	}
	r.core = w.take();

	auto task = parse_task(find_attr(*attrs, AMBER_A_TASK)->data);
	if (!task)
		return wrap(task.error(), "reply: ");
	r.task = std::move(*task);
	for (auto [type, fn] : {std::pair{AMBER_A_MM, "MM"}, std::pair{AMBER_A_REGS, "REGS"},
				std::pair{AMBER_A_SIGNALS, "SIGNALS"}}) {
		const Attr *a = find_attr(*attrs, type);
		Result<void> ok;
		if (type == AMBER_A_MM)
			ok = parse_mm(a->data).map([](auto &&) {});
		else if (type == AMBER_A_REGS)
			ok = parse_regs(a->data).map([](auto &&) {});
		else
			ok = parse_signals(a->data).map([](auto &&) {});
		if (!ok)
			return wrap(ok.error(), std::string("reply: ") + fn + ": ");
	}

	// A nest holds at most 64 KiB: long lists may come in several nests.
	bool have_vmas = false;
	for (const Attr &a : *attrs) {
		Bytes *to = a.type == AMBER_A_VMAS ? &r.vmas : a.type == AMBER_A_FDS ? &r.fds : nullptr;
		if (!to)
			continue;
		have_vmas |= a.type == AMBER_A_VMAS;
		to->insert(to->end(), a.data.begin(), a.data.end());
	}
	if (!have_vmas)
		return fail(EPROTO, "reply: no VMAS attribute");
	auto vmas = parse_vmas(r.vmas);
	if (!vmas)
		return wrap(vmas.error(), "reply: ");
	r.vma_list = std::move(*vmas);
	auto fds = parse_fds(r.fds);
	if (!fds)
		return wrap(fds.error(), "reply: ");
	r.fd_list = std::move(*fds);

	struct {
		uint16_t type;
		uint64_t *out;
	} nums[] = {
		{AMBER_A_STOPPED_NS, &r.stopped_ns},
		{AMBER_A_PAGES_BYTES, &r.pages_bytes},
		{AMBER_A_PAGES_NR, &r.pages_nr},
		{AMBER_A_PAGES_PARENT_NR, &r.pages_parent_nr},
		{AMBER_A_TRACK_ID, &r.track_id},
	};
	for (auto &n : nums) {
		if (const Attr *a = find_attr(*attrs, n.type)) {
			auto v = a->u64();
			if (!v)
				return wrap(v.error(), "reply: ");
			*n.out = *v;
		}
	}
	if (const Attr *a = find_attr(*attrs, AMBER_A_PARENT_ID)) {
		auto v = a->u64();
		if (!v)
			return wrap(v.error(), "reply: PARENT_ID: ");
		if (!*v)
			return fail(EPROTO, "reply: PARENT_ID is 0");
		r.parent_id = *v;
	}
	if (const Attr *a = find_attr(*attrs, AMBER_A_FULL_REASON))
		r.full_reason = a->str();
	if (const Attr *a = find_attr(*attrs, AMBER_A_PAGES_INDEX)) {
		auto v = a->u32();
		if (!v)
			return wrap(v.error(), "reply: PAGES_INDEX: ");
		r.pages_index = *v;
	}

	// THREADS and QUEUE chunks, as for VMAS: several nests / attributes.
	for (const Attr &a : *attrs) {
		if (a.type == AMBER_A_THREADS)
			r.threads.insert(r.threads.end(), a.data.begin(), a.data.end());
		else if (a.type == AMBER_A_QUEUE)
			r.queues.insert(r.queues.end(), a.raw.begin(), a.raw.end());
		else
			continue;
		// Attributes start 4-byte aligned in the concatenation.
		Bytes &to = a.type == AMBER_A_THREADS ? r.threads : r.queues;
		to.resize((to.size() + 3) & ~size_t(3), 0);
	}
	auto threads = parse_threads(r.threads, r.task.pid);
	if (!threads)
		return wrap(threads.error(), "reply: THREADS: ");
	r.thread_list = std::move(*threads);
	auto queues = parse_queues(r.queues);
	if (!queues)
		return wrap(queues.error(), "reply: QUEUE: ");
	r.queue_list = std::move(*queues);
	if (r.proc) {
		const std::string pid = "reply: pid " + std::to_string(r.proc->pid) + ": ";
		if (r.proc->pid != r.task.pid)
			return fail(EPROTO, pid + "TASK is of pid " + std::to_string(r.task.pid));
		if (r.proc->nr_threads != r.thread_list.size() + 1)
			return fail(EPROTO, pid + std::to_string(r.proc->nr_threads) +
						    " threads, THREADS lists " +
						    std::to_string(r.thread_list.size()) +
						    " besides the leader");
	}
	if (r.parent_id && !r.track_id)
		return fail(EPROTO, "reply: incremental (PARENT_ID) but no TRACK_ID");
	if (r.parent_id && !r.full_reason.empty())
		return fail(EPROTO, "reply: both PARENT_ID and FULL_REASON");
	if (!r.parent_id && r.pages_parent_nr)
		return fail(EPROTO, "reply: " + std::to_string(r.pages_parent_nr) +
					    " parent pages in a full checkpoint");
	return r;
}

Result<GroupReply> parse_group_reply(const std::vector<Bytes> &messages, uint32_t pid, bool tree,
				     size_t nr_pages_fds)
{
	GroupReply g;
	const std::string root = "pid " + std::to_string(pid) + ": ";
	if (messages.empty())
		return fail(EPROTO, root + "amber.ko acknowledged without a reply");
	if (!tree && messages.size() != 1)
		return fail(EPROTO, root + std::to_string(messages.size()) +
					    " reply messages for one process");
	std::vector<bool> index_used(nr_pages_fds, false);
	std::unordered_map<uint64_t, uint32_t> queue_owner;	// inode -> pid
	for (size_t i = 0; i < messages.size(); i++) {
		auto r = parse_checkpoint_reply(messages[i]);
		if (!r)
			return wrap(r.error(), "message " + std::to_string(i) + " of " +
						       std::to_string(messages.size()) + ": ");
		const std::string name = "pid " + std::to_string(r->pid()) + ": ";
		if (i == 0) {
			if (r->pid() != pid)
				return fail(EPROTO, root + "the reply begins with pid " +
							    std::to_string(r->pid()));
			if (r->zombie())
				return fail(EPROTO, root + "reported as a zombie");
			if (r->pages_index)
				return fail(EPROTO, root + "has a PAGES_INDEX (its pages go to PAGES_FD)");
		} else if (!r->proc) {
			return fail(EPROTO, name + "reply message without PROC");
		} else if (!r->zombie()) {
			if (!r->pages_index)
				return fail(EPROTO, name + "no PAGES_INDEX");
			if (*r->pages_index >= nr_pages_fds || index_used[*r->pages_index])
				return fail(EPROTO, name + "PAGES_INDEX " +
							    std::to_string(*r->pages_index) +
							    (*r->pages_index >= nr_pages_fds
								     ? " out of range"
								     : " already used"));
			index_used[*r->pages_index] = true;
		}
		if (tree && !r->proc)
			return fail(EPROTO, name + "reply message without PROC");
		for (const QueueChunk &q : r->queue_list) {
			auto [it, fresh] = queue_owner.emplace(q.ino, r->pid());
			if (!fresh && it->second != r->pid())
				return fail(EPROTO, name + "queued bytes of inode " +
							    std::to_string(q.ino) +
							    " also came with pid " +
							    std::to_string(it->second));
		}
		g.zombies += r->zombie();
		g.threads += r->nr_threads();
		g.tree.insert(g.tree.end(), r->proc_attr.begin(), r->proc_attr.end());
		g.tree.resize((g.tree.size() + 3) & ~size_t(3), 0);
		g.procs.push_back(std::move(*r));
	}
	if (!tree) {
		g.tree.clear();
		return g;
	}
	// Unique pids, parents first: the rules the TREE section is read with.
	if (auto t = parse_tree(g.tree, pid); !t)
		return wrap(t.error(), "reply: ");
	return g;
}

ParentChoice choose_parent(const std::optional<LatestMeta> &latest, uint32_t pid,
			   std::optional<uint64_t> start_ticks, long ticks_per_sec, TrackMode mode)
{
	ParentChoice c;
	switch (mode) {
	case TrackMode::None:
		c.untrack = true;
		return c;
	case TrackMode::Full:
		c.flags = AMBER_CKPT_F_TRACK;
		return c;
	case TrackMode::Incremental:
		c.flags = AMBER_CKPT_F_TRACK;
		break;
	}
	if (!latest)
		return c;
	const std::string n = "checkpoint " + std::to_string(latest->number);
	if (latest->pid != pid) {
		c.why_full = n + " is of pid " + std::to_string(latest->pid);
		return c;
	}
	if (!latest->track_id) {
		c.why_full = n + " is not tracked";
		return c;
	}
	// /proc reports the start time in clock ticks, truncated from the
	// boottime nanoseconds the kernel module records.
	if (start_ticks && ticks_per_sec > 0) {
		const uint64_t ns_per_tick = 1000000000ull / uint64_t(ticks_per_sec);
		if (latest->start_time_ns / ns_per_tick != *start_ticks) {
			c.why_full = n + " is of another process with pid " + std::to_string(pid) +
				     ": restored since, or the pid was reused";
			return c;
		}
	}
	c.parent = latest->number;
	c.parent_id = latest->track_id;
	return c;
}

std::string kind_line(uint32_t parent, uint64_t data_pages, uint64_t parent_pages,
		      const std::string &full_reason)
{
	const std::string saved = std::to_string(data_pages) + " pages saved";
	if (parent)
		return "  incremental on checkpoint " + std::to_string(parent) + ": " + saved +
		       ", " + std::to_string(parent_pages) + " pages unchanged";
	if (!full_reason.empty())
		return "  full (" + full_reason + "): " + saved;
	return "  full: " + saved;
}

std::optional<uint64_t> parse_stat_start_ticks(std::string_view stat)
{
	// "pid (comm) state ppid ...": comm may hold spaces and ')'.
	size_t p = stat.rfind(')');
	if (p == std::string_view::npos)
		return std::nullopt;
	stat.remove_prefix(p + 1);
	// Fields after comm start at 3 (state); starttime is field 22.
	for (int field = 3; field <= 22; field++) {
		size_t b = stat.find_first_not_of(' ');
		if (b == std::string_view::npos)
			return std::nullopt;
		stat.remove_prefix(b);
		size_t e = stat.find_first_of(" \n");
		std::string_view tok = stat.substr(0, e);
		if (field == 22) {
			uint64_t v = 0;
			if (tok.empty())
				return std::nullopt;
			for (char ch : tok) {
				if (ch < '0' || ch > '9' || v > (UINT64_MAX - 9) / 10)
					return std::nullopt;
				v = v * 10 + uint64_t(ch - '0');
			}
			return v;
		}
		if (e == std::string_view::npos)
			return std::nullopt;
		stat.remove_prefix(e);
	}
	return std::nullopt;
}

Result<void> check_not_deleted(const std::string &path)
{
	if (is_deleted(path))
		return fail(EOPNOTSUPP, path + ": was deleted before the checkpoint, cannot reopen it");
	return {};
}

Result<void> check_supported(const CheckpointReply &r)
{
	if (r.zombie())
		return {};
	AMBER_TRY(check_not_deleted(r.task.exe));
	// A deleted cwd is restored (restore's GhostDirs).
	for (const FdInfo &f : r.fd_list) {
		const std::string fd = "fd " + std::to_string(f.num) + ": ";
		switch (f.type) {
		case AMBER_FD_REG:
		case AMBER_FD_DIR:
			// A deleted regular file is a ghost: its content is saved
			// (checkpoint/ghosts.h) and restore recreates it.
			if (f.type == AMBER_FD_REG && f.file_id && is_deleted(f.path))
				break;
			if (auto d = check_not_deleted(f.path); !d)
				return wrap(d.error(), fd);
			if (f.path.empty() || f.path[0] != '/')
				return fail(EOPNOTSUPP, fd + fd_name(f) + " is not supported yet");
			break;
		case AMBER_FD_CHR:
			// /dev/null, ttys, ...: reopened by path (stdio: inherited).
			if (f.num > 2 && (f.path.empty() || f.path[0] != '/' || is_deleted(f.path)))
				return fail(EOPNOTSUPP, fd + fd_name(f) + " is not supported yet");
			break;
		case AMBER_FD_FIFO:
			// Pipes and FIFOs are recreated with their queued bytes.
			break;
		case AMBER_FD_SOCK:
			// UNIX socketpairs and connected UNIX sockets are recreated;
			// the kernel refuses bound and listening ones. Anything it did
			// not describe (an older module) cannot be.
			if (!f.sock_family)
				return fail(EOPNOTSUPP, fd + fd_name(f) + " is not supported yet");
			// TCP and UDP: restore/inet.cc (plan_inet()) decides.
			if (f.is_inet)
				break;
			if (f.sock_family != AF_UNIX)
				return fail(EOPNOTSUPP, fd + fd_name(f) + ": " +
							    sock_name(f.sock_family, f.sock_type) +
							    " sockets are not supported");
			if (f.sock_type != SOCK_STREAM && f.sock_type != SOCK_DGRAM &&
			    f.sock_type != SOCK_SEQPACKET)
				return fail(EOPNOTSUPP, fd + fd_name(f) + ": " +
							    sock_name(f.sock_family, f.sock_type) +
							    " sockets are not supported");
			// Without a peer it is restored as one end of a socketpair whose
			// other end is closed: right when the peer was closed (a stream's
			// reads and writes both shut down), wrong for a socket that was
			// never connected (it could still connect()).
			if (!f.peer_ino && (f.sock_type == SOCK_DGRAM || f.shutdown != 3))
				return fail(EOPNOTSUPP, fd + fd_name(f) + ": an unconnected " +
							    sock_name(f.sock_family, f.sock_type) +
							    " socket is not supported");
			break;
		case AMBER_FD_OTHER:
			// An eventfd is recreated with its count and mode, a
			// timerfd with its timer, a signalfd with its mask, an
			// epoll with its interest list.
			if ((f.eventfd || f.timerfd || f.signalfd || f.epoll) && f.file_id)
				break;
			return fail(EOPNOTSUPP, fd + fd_name(f) + " is not supported yet");
		default:
			return fail(EOPNOTSUPP, fd + fd_name(f) + " is not supported yet");
		}
	}
	for (const Vma &v : r.vma_list) {
		if (v.flags & (AMBER_VMA_F_ANON | AMBER_VMA_F_SHMEM | AMBER_VMA_F_VDSO |
			       AMBER_VMA_F_VVAR))
			continue;
		const std::string range = "VMA " + hex(v.start) + "-" + hex(v.end) + ": ";
		if (v.path.empty() || v.path[0] != '/')
			return fail(EOPNOTSUPP, range + (v.path.empty() ? std::string("unnamed file mapping")
								       : v.path) +
							" is not supported yet");
		if (auto d = check_not_deleted(v.path); !d)
			return wrap(d.error(), range);
	}
	return {};
}

Result<void> check_restorable(const GroupReply &g, bool tree)
{
	for (const CheckpointReply &r : g.procs) {
		auto ok = check_supported(r);
		if (!ok)
			return tree ? wrap(ok.error(), "pid " + std::to_string(r.pid()) + ": ")
				    : tl::unexpected(ok.error());
	}
	if (!tree)
		return {};
	// The TREE section exactly as restore reads it, planned as restore plans it.
	auto procs = parse_tree(g.tree, g.root().pid());
	if (!procs)
		return wrap(procs.error(), "reply: ");
	AMBER_TRY(plan_process_tree(*procs));
	return {};
}

std::vector<std::pair<uint32_t, ParentChoice>> choose_tree_parents(
	std::optional<uint32_t> latest_number, uint32_t latest_root_pid,
	const std::vector<LatestMeta> &latest_procs, uint32_t root_pid,
	const std::vector<ProcessStart> &pids, long ticks_per_sec, TrackMode mode)
{
	std::vector<std::pair<uint32_t, ParentChoice>> out;
	for (const ProcessStart &p : pids) {
		if (p.pid == root_pid)
			continue;
		std::optional<LatestMeta> mine;
		std::string why;
		if (latest_number && latest_root_pid != root_pid) {
			why = "checkpoint " + std::to_string(*latest_number) + " is of pid " +
			      std::to_string(latest_root_pid);
		} else if (latest_number) {
			for (const LatestMeta &l : latest_procs)
				if (l.pid == p.pid)
					mine = l;
		}
		ParentChoice c = choose_parent(mine, p.pid, p.start_ticks, ticks_per_sec, mode);
		if (mode == TrackMode::Incremental && !c.parent_id)
			c.why_full = why.empty() ? c.why_full : why;
		out.emplace_back(p.pid, std::move(c));
	}
	return out;
}

size_t pages_pool_size(size_t found)
{
	return found + std::max<size_t>(4, found / 4);
}

Result<void> with_retries(size_t first, const std::function<Result<void>(size_t)> &attempt,
			  const std::function<size_t()> &recount)
{
	size_t n = first;
	bool pool_retried = false;
	for (int transient = 0;;) {
		auto r = attempt(n);
		if (r)
			return r;
		const Error &e = r.error();
		if (e.err == EAGAIN && e.pages_files) {
			if (pool_retried)
				return r;
			pool_retried = true;
			n = std::max(pages_pool_size(*e.pages_files), pages_pool_size(recount()));
			continue;
		}
		if (!e.retry || transient == kTransientRetries)
			return r;
		std::this_thread::sleep_for(std::chrono::milliseconds(10 << transient++));
		if (first)	// a tree: it may have grown
			n = std::max(n, pages_pool_size(recount()));
	}
}

std::string group_line(bool tree, uint32_t processes, uint32_t zombies, uint32_t threads)
{
	auto plural = [](uint32_t n, const char *one, const char *many) {
		return std::to_string(n) + " " + (n == 1 ? one : many);
	};
	if (tree) {
		std::string s = "  tree: " + plural(processes, "process", "processes");
		if (zombies)
			s += " (" + plural(zombies, "zombie", "zombies") + ")";
		return s + ", " + plural(threads, "thread", "threads");
	}
	if (threads > 1)
		return "  threads: " + std::to_string(threads);
	return "";
}

} // namespace amber
