// SPDX-License-Identifier: GPL-2.0
// Taking one checkpoint (take_checkpoint.h).
//
// Incremental by default: when DIR's latest checkpoint is a tracked one of
// the same process, its tracking id goes to the kernel as PARENT_ID and the
// kernel saves only the pages written since (if that id is still current).
#include <algorithm>
#include <climits>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include <fcntl.h>
#include <linux/amber.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/io.h"
#include "common/kernel.h"
#include "image/compress.h"
#include "image/image.h"
#include "netlink/netlink.h"
#include "image/store.h"
#include "checkpoint/take_checkpoint.h"
#include "restore/plan.h"

namespace amber {

namespace {

// We wait this much longer than the kernel's own timeout: after the target
// stopped, the kernel may take up to 30 s more for the capture, then writes the pages.
constexpr int kReplySlackMs = 120000;

Result<void> release(NetlinkClient &nl, uint32_t pid, uint32_t action)
{
	auto r = amber::release(nl, pid, action, kReplySlackMs);
	if (!r)
		return wrap(r.error(), std::string(action == AMBER_RELEASE_KILL ? "kill" : "resume") +
					       " pid " + std::to_string(pid) + ": ");
	return {};
}

// Resumes a held target on every exit path that does not kill it.
class HoldGuard {
public:
	HoldGuard(NetlinkClient &nl, uint32_t pid) : nl_(nl), pid_(pid) {}
	HoldGuard(const HoldGuard &) = delete;
	HoldGuard &operator=(const HoldGuard &) = delete;
	~HoldGuard()
	{
		if (armed_)
			(void)release(nl_, pid_, AMBER_RELEASE_RESUME);
	}
	void arm() { armed_ = true; }
	void disarm() { armed_ = false; }

private:
	NetlinkClient &nl_;
	uint32_t pid_;
	bool armed_ = false;
};

// The target's start time in clock ticks since boot, if it can be read.
std::optional<uint64_t> start_ticks(uint32_t pid)
{
	std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
	std::stringstream ss;
	ss << in.rdbuf();
	if (!in)
		return std::nullopt;
	return parse_stat_start_ticks(ss.str());
}

// The store's latest checkpoint as choose_parent() needs it: its root
// image, and for a tree checkpoint each other process's image. A latest that
// cannot be read is no parent: the reason says why. Unreadable images of
// other processes make those processes full.
struct Latest {
	std::optional<LatestMeta> root;
	std::vector<LatestMeta> procs;	// not the root
};

Latest latest_meta(const Store &store, bool tree, std::string *why)
{
	Latest l;
	auto n = store.latest();
	if (!n)
		return l;
	auto c = store.load_meta(*n);
	if (!c) {
		*why = "checkpoint " + std::to_string(*n) + " is unreadable";
		return l;
	}
	l.root = LatestMeta{*n, c->info.pid, c->task.start_time_ns, c->info.track_id};
	if (!tree)
		return l;
	for (uint32_t pid : image_pids(*c)) {
		if (pid == c->info.pid)
			continue;
		auto p = load_checkpoint_meta(store.process_path(*n, pid, c->info.pid), *n);
		if (p && p->info.pid == pid)
			l.procs.push_back(
				LatestMeta{*n, pid, p->task.start_time_ns, p->info.track_id});
	}
	return l;
}

// A chain as long as a restore reads starts over with a full checkpoint.
void cap_chain(const Store &store, ParentChoice &c, uint32_t pid, uint32_t root_pid)
{
	if (!c.parent)
		return;
	auto chain = pid == root_pid ? store.chain_numbers(c.parent)
				     : store.chain_numbers(c.parent, pid, root_pid);
	if (chain && chain->size() < kMaxChainLinks)
		return;
	c.why_full = "checkpoint " + std::to_string(c.parent) +
		     (chain ? "'s chain has " + std::to_string(chain->size()) +
				      " links, the most a restore reads"
			    : "'s chain is unreadable");
	c.parent = 0;
	c.parent_id = 0;
}

Result<void> untrack(NetlinkClient &nl, uint32_t pid)
{
	AttrWriter w;
	w.put_u32(AMBER_A_PID, pid);
	auto r = nl.transact(AMBER_CMD_UNTRACK, w.view(), kReplySlackMs);
	if (!r && r.error().err != ENOENT)
		return wrap(r.error(), "untrack pid " + std::to_string(pid) + ": ");
	return {};
}

std::string retention_line(uint32_t keep, const RetainResult &rr)
{
	auto list = [](const std::vector<uint32_t> &v) {
		std::string s;
		for (uint32_t n : v)
			s += (s.empty() ? "" : ", ") + std::to_string(n);
		return s;
	};
	std::string s = "  keep " + std::to_string(keep) + ": ";
	std::vector<uint32_t> compacted;
	for (const CompactResult &c : rr.compacted)
		if (c.compacted)
			compacted.push_back(c.number);
	if (compacted.empty() && rr.deleted.empty())
		return s + "nothing to compact or delete";
	if (!compacted.empty())
		s += "compacted " + list(compacted);
	if (!rr.deleted.empty())
		s += std::string(compacted.empty() ? "" : ", ") + "deleted " + list(rr.deleted);
	return s;
}

// The parent asked for each process: the root's, and in a tree the others'.
struct Choices {
	ParentChoice root;
	std::vector<std::pair<uint32_t, ParentChoice>> others;
	std::vector<uint32_t> found;	// descendants listed before the request

	const ParentChoice *of(uint32_t pid, uint32_t root_pid) const
	{
		if (pid == root_pid)
			return &root;
		for (const auto &[p, c] : others)
			if (p == pid)
				return &c;
		return nullptr;
	}
};

Choices choose(const Store &store, const CheckpointRequest &o)
{
	Choices ch;
	std::string unreadable;
	const Latest latest = latest_meta(store, o.tree, &unreadable);
	const long hz = sysconf(_SC_CLK_TCK);
	ch.root = choose_parent(latest.root, o.pid, start_ticks(o.pid), hz, o.mode);
	if (o.mode == TrackMode::Incremental && !unreadable.empty())
		ch.root.why_full = unreadable;
	cap_chain(store, ch.root, o.pid, o.pid);
	if (!o.tree)
		return ch;

	ch.found = list_descendants(o.pid);
	std::vector<ProcessStart> starts;
	for (uint32_t pid : ch.found)
		starts.push_back({pid, start_ticks(pid)});
	std::optional<uint32_t> number;
	uint32_t latest_root = 0;
	if (latest.root) {
		number = latest.root->number;
		latest_root = latest.root->pid;
	}
	ch.others = choose_tree_parents(number, latest_root, latest.procs, o.pid, starts, hz, o.mode);
	for (auto &[pid, c] : ch.others)
		cap_chain(store, c, pid, o.pid);
	return ch;
}

// One pages file per process other than the root, handed to the kernel in
// AMBER_A_PAGES_FDS: DIR/.tmp-N/pool-K until the reply says whose it is.
struct PagesPool {
	std::vector<std::string> paths;
	std::vector<UniqueFd> fds;

	Result<void> create(const PendingCheckpoint &pending, size_t n)
	{
		clear();
		for (size_t k = 0; k < n; k++) {
			std::string path = pending.tmp_path(("pool-" + std::to_string(k)).c_str());
			UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
			if (!fd)
				return fail_errno("cannot create " + path);
			paths.push_back(std::move(path));
			fds.push_back(std::move(fd));
		}
		return {};
	}

	// Removes the files still here (unused, or all on failure).
	void clear()
	{
		fds.clear();
		for (const std::string &p : paths)
			unlink(p.c_str());
		paths.clear();
	}
};

// Room for pool fds: raises the soft RLIMIT_NOFILE when the pool needs it.
Result<void> make_room_for_fds(size_t pool)
{
	constexpr rlim_t kSpare = 64;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return fail_errno("getrlimit(RLIMIT_NOFILE)");
	const rlim_t want = rlim_t(pool) + kSpare * 2;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
			return fail(EMFILE, std::to_string(pool) +
						    " pages files for the tree need as many fds; "
						    "RLIMIT_NOFILE is " + std::to_string(rl.rlim_cur));
	}
	return {};
}

// Receive buffer for a reply of 1 + pool processes: all of it is queued
// before anything is read. Queued pipe and socket bytes (at most
// AMBER_QUEUE_MAX_BYTES in all) dominate; each process's state is far below
// 2 MiB unless it has tens of thousands of VMAs.
int reply_buffer(size_t pool)
{
	const uint64_t want = uint64_t(AMBER_QUEUE_MAX_BYTES) + (1 + uint64_t(pool)) * (2 << 20);
	return int(std::min<uint64_t>(want, INT_MAX / 2));
}

Result<Bytes> build_request(const CheckpointRequest &o, const Choices &ch, int pages_fd,
			    const PagesPool &pool)
{
	AttrWriter req;
	req.put_u32(AMBER_A_PID, o.pid);
	req.put_u32(AMBER_A_PAGES_FD, pages_fd);
	req.put_u32(AMBER_A_TIMEOUT_MS, o.timeout_ms);
	if (uint32_t flags = ch.root.flags | (o.kill ? AMBER_CKPT_F_HOLD : 0) |
			     (o.tree ? AMBER_CKPT_F_TREE : 0))
		req.put_u32(AMBER_A_FLAGS, flags);
	if (ch.root.parent_id)
		req.put_u64(AMBER_A_PARENT_ID, ch.root.parent_id);
	if (o.tree) {
		size_t n = req.begin_nest(AMBER_A_PAGES_FDS);
		for (const UniqueFd &fd : pool.fds)
			req.put_u32(AMBER_A_PAGE_FD, fd.get());
		req.end_nest(n);
		bool any = false;
		for (const auto &[pid, c] : ch.others)
			any |= c.parent_id != 0;
		if (any) {
			n = req.begin_nest(AMBER_A_PARENTS);
			for (const auto &[pid, c] : ch.others) {
				if (!c.parent_id)
					continue;
				size_t e = req.begin_nest(AMBER_A_PARENT_ENTRY);
				req.put_u32(AMBER_PARENT_PID, pid);
				req.put_u64(AMBER_PARENT_ID, c.parent_id);
				req.end_nest(e);
			}
			req.end_nest(n);
		}
	}
	if (!req.ok())
		return fail(E2BIG, "a tree of " + std::to_string(pool.fds.size()) +
					   " processes does not fit one request");
	return req.take();
}

// What one process's image took.
struct ImageStats {
	uint64_t bytes = 0;	// pages.img (or pages.img.zst) + meta.img
	CompressStats compressed;	// --compress: pages.img -> pages.img.zst
	uint64_t compress_ns = 0;
	uint64_t data_pages = 0;
	uint64_t parent_pages = 0;
	uint32_t parent = 0;
	std::string full_reason;
};

// Huge pages that khugepaged collapsed between two checkpoints come back
// dirty as a whole (the new PMD is dirty); amber_split_huge() in the module
// splits them again, but their 4 KiB pages were all saved. Those of them
// whose bytes equal the parent chain's become AMBER_RUN_F_PARENT runs:
// pages.img is rewritten beside the kernel's and renamed over it, after the
// target resumed. Looks only at 2 MiB blocks a data run covers whole, so an
// incremental without such blocks costs nothing more. Returns whether
// pages.img changed (*map then indexes the new file).
Result<bool> drop_unchanged_huge(const Store &store, const std::string &pages_path,
				 uint32_t parent, uint32_t pid, uint32_t root_pid, uint32_t page_size,
				 std::vector<amber_pagemap_entry> *map)
{
	constexpr uint64_t kHugeBytes = 2 << 20;
	bool any = false;
	for (const amber_pagemap_entry &e : *map)
		if (!(e.flags & AMBER_RUN_F_PARENT) &&
		    uint64_t(e.nr_pages) * page_size >= kHugeBytes)
			any = true;
	if (!any)
		return false;
	const std::vector<uint32_t> numbers =
		AMBER_TRY(pid == root_pid ? store.chain_numbers(parent)
					  : store.chain_numbers(parent, pid, root_pid));
	std::vector<Checkpoint> links;
	for (uint32_t n : numbers) {
		Checkpoint c = AMBER_TRY(load_checkpoint_meta(store.process_path(n, pid, root_pid), n));
		c.page_size = page_size;
		links.push_back(std::move(c));
	}
	std::vector<const Checkpoint *> chain;
	for (const Checkpoint &c : links)
		chain.push_back(&c);
	UniqueFd in(open(pages_path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!in)
		return fail_errno("cannot open " + pages_path);
	const std::vector<PageRange> same =
		AMBER_TRY(find_unchanged(in.get(), *map, chain, page_size, kHugeBytes));
	if (same.empty())
		return false;
	const std::string tmp = pages_path + ".tmp";
	UniqueFd out(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	if (!out)
		return fail_errno("cannot create " + tmp);
	auto runs = rewrite_unchanged(in.get(), out.get(), *map, same, page_size);
	if (!runs)
		return wrap(runs.error(), tmp + ": ");
	if (fsync(out.get()) < 0)
		return fail_errno("fsync " + tmp);
	if (rename(tmp.c_str(), pages_path.c_str()) < 0)
		return fail_errno("cannot rename " + tmp + " to " + pages_path);
	*map = std::move(*runs);
	return true;
}

// Writes process r's image into dir (pages.img already there, from the
// kernel): checks and indexes pages.img (followed: its index, if a
// PagesFollower made one; scanned here otherwise), compresses it into
// pages.img.zst when compress_level is not 0 (the target runs meanwhile),
// writes meta.img, fsyncs both.
Result<ImageStats> write_image(const std::string &dir, const CheckpointReply &r,
			       const ParentChoice *asked, const GroupReply &g, bool tree,
			       uint32_t number, uint64_t time_ns, const Bytes &ghosts,
			       const Store &store, uint32_t root_pid,
			       Result<std::vector<amber_pagemap_entry>> *followed,
			       uint32_t followed_page_size, int compress_level)
{
	const std::string pages_path = dir + "/" + kPagesFile;
	const ParentChoice none;
	if (!asked)
		asked = &none;
	if (r.parent_id && *r.parent_id != asked->parent_id)
		return fail(EPROTO, "reply: incremental on tracking id " +
					    std::to_string(*r.parent_id) + ", asked " +
					    std::to_string(asked->parent_id));
	const bool incremental = r.parent_id.has_value();

	// The pages file: flush, then index it.
	UniqueFd pages(open(pages_path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!pages)
		return fail_errno("cannot open " + pages_path);
	if (fsync(pages.get()) < 0)
		return fail_errno("fsync " + pages_path);
	struct stat st;
	if (fstat(pages.get(), &st) < 0)
		return fail_errno("stat " + pages_path);
	if (uint64_t(st.st_size) != r.pages_bytes)
		return fail(EIO, "pages.img: amber.ko wrote " + std::to_string(r.pages_bytes) +
					 " bytes, the file has " + std::to_string(st.st_size));
	uint32_t page_size = 0;
	MetaSections meta;
	if (followed && *followed) {
		meta.pagemap = std::move(**followed);
		page_size = followed_page_size;
	} else {
		meta.pagemap = AMBER_TRY(scan_pages(pages.get(), &page_size));
	}
	PageCounts pc = count_pages(meta.pagemap);
	if (r.pages_nr && pc.data != r.pages_nr)
		return fail(EIO, "pages.img: amber.ko wrote " + std::to_string(r.pages_nr) +
					 " pages, the file holds " + std::to_string(pc.data));
	if (pc.parent != r.pages_parent_nr)
		return fail(EIO, "pages.img: amber.ko left " + std::to_string(r.pages_parent_nr) +
					 " pages to the parent, the file says " +
					 std::to_string(pc.parent));
	uint64_t pages_bytes = r.pages_bytes;
	if (incremental && AMBER_TRY(drop_unchanged_huge(store, pages_path, asked->parent, r.pid(),
							 root_pid, page_size, &meta.pagemap))) {
		pages = UniqueFd(open(pages_path.c_str(), O_RDONLY | O_CLOEXEC));
		if (!pages || fstat(pages.get(), &st) < 0)
			return fail_errno("cannot open " + pages_path);
		pages_bytes = st.st_size;
		pc = count_pages(meta.pagemap);
	}
	pages.reset();

	ImageStats s;
	uint64_t on_disk = pages_bytes;
	if (compress_level) {
		const uint64_t t0 = now_ns();
		s.compressed = AMBER_TRY(compress_pages(dir, compress_level));
		s.compress_ns = now_ns() - t0;
		if (s.compressed.in_bytes != pages_bytes)
			return fail(EIO, pages_path + ": compressed " +
						 std::to_string(s.compressed.in_bytes) + " bytes, it had " +
						 std::to_string(pages_bytes));
		on_disk = s.compressed.out_bytes;
	}
	s.full_reason = incremental ? std::string()
			: !r.full_reason.empty() ? r.full_reason
						 : asked->why_full;
	s.parent = incremental ? asked->parent : 0;
	s.data_pages = pc.data;
	s.parent_pages = pc.parent;

	InfoSection info;
	info.number = number;
	info.parent = s.parent;
	info.track_id = r.track_id;
	info.pages_nr = pc.data;
	info.parent_pages_nr = pc.parent;
	info.full_reason = s.full_reason;
	info.time_ns = time_ns;
	info.stopped_ns = g.root().stopped_ns;
	info.pages_bytes = pages_bytes;
	info.pages_zstd = compress_level ? pages_bytes : 0;
	info.tool_version = AMBER_VERSION_STRING;
	info.pid = r.pid();
	char host[256] = {};
	gethostname(host, sizeof(host) - 1);
	info.hostname = host;
	const KernelId kernel = AMBER_TRY(this_kernel());
	info.kernel = kernel.release;
	info.vdso_xxh64 = kernel.vdso_xxh64;
	meta.info = encode_info(info);
	meta.core = r.core;
	meta.vmas = r.vmas;
	meta.fds = r.fds;
	meta.threads = r.threads;
	meta.queues = r.queues;
	meta.ghosts = ghosts;
	if (tree && &r == &g.root())
		meta.tree = g.tree;
	const Bytes img = build_meta(meta);

	const std::string meta_path = dir + "/" + kMetaFile;
	UniqueFd mfd(open(meta_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (!mfd)
		return fail_errno("cannot create " + meta_path);
	if (auto w = write_all(mfd.get(), img); !w)
		return wrap(w.error(), meta_path + ": ");
	if (fsync(mfd.get()) < 0)
		return fail_errno("fsync " + meta_path);
	s.bytes = on_disk + img.size();
	return s;
}

Result<CheckpointSummary> do_checkpoint(const CheckpointRequest &o)
{
	NetlinkClient nl = AMBER_TRY(NetlinkClient::connect());
	Store store(o.dir);
	PendingCheckpoint pending = AMBER_TRY(store.begin());
	const std::string root_name = "pid " + std::to_string(o.pid) + ": ";

	// Under DIR/.lock: latest cannot change until this one is published.
	const Choices ch = choose(store, o);
	if (ch.root.untrack) {
		AMBER_TRY(untrack(nl, o.pid));
		// A descendant may have exited since it was listed.
		for (uint32_t pid : ch.found)
			if (auto u = untrack(nl, pid); !u && u.error().err != ESRCH)
				return tl::unexpected(u.error());
	}

	const std::string pages_path = pending.tmp_path(kPagesFile);
	UniqueFd pages(open(pages_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	if (!pages)
		return fail_errno("cannot create " + pages_path);

	// A tree may have grown since it was listed: the kernel then says how
	// many pages files it needs (EAGAIN, AMBER_ERR_PAGES_FILES in the
	// extack cookie), and the request is sent once more;
	// a member that exited or executed a program during the stop is tried
	// again a few times too (with_retries()).
	PagesPool pool;
	// One process: its pages are hashed as the kernel writes them.
	UniqueFd follow_fd;
	std::unique_ptr<PagesFollower> follower;
	if (!o.tree) {
		follow_fd = UniqueFd(open(pages_path.c_str(), O_RDONLY | O_CLOEXEC));
		if (!follow_fd)
			return fail_errno("cannot open " + pages_path);
	}
	const uint64_t time_ns = now_ns(CLOCK_REALTIME);
	HoldGuard hold(nl, o.pid);
	Result<std::vector<Reply>> reply = fail(EINVAL, "no request sent");
	auto attempt = [&](size_t pool_size) -> Result<void> {
		AMBER_TRY(make_room_for_fds(pool_size));
		AMBER_TRY(pool.create(pending, pool_size));
		follower.reset();
		if (ftruncate(pages.get(), 0) < 0 || lseek(pages.get(), 0, SEEK_SET) < 0)
			return fail_errno("cannot truncate " + pages_path);
		if (follow_fd)
			follower = std::make_unique<PagesFollower>(follow_fd.get());
		(void)nl.set_rcvbuf(reply_buffer(pool_size));
		const Bytes req = AMBER_TRY(build_request(o, ch, pages.get(), pool));
		reply = nl.transact_multi(AMBER_CMD_CHECKPOINT, req, int(o.timeout_ms) + kReplySlackMs);
		if (!reply)
			return tl::unexpected(reply.error());
		return {};
	};
	Result<void> sent = with_retries(o.tree ? pages_pool_size(ch.found.size()) : 0, attempt,
					 [&] { return list_descendants(o.pid).size(); });
	if (!sent) {
		// The kernel resumes a held target when our socket closes; an
		// explicit RESUME is harmless when nothing is held.
		if (o.kill && sent.error().err == ETIMEDOUT)
			hold.arm();
		return wrap(sent.error(), root_name);
	}
	if (o.kill)
		hold.arm();
	pages.reset();
	uint32_t followed_page_size = 0;
	Result<std::vector<amber_pagemap_entry>> followed = fail(EINVAL, "not followed");
	if (follower)
		followed = follower->finish(&followed_page_size);
	follower.reset();
	follow_fd.reset();

	std::vector<Bytes> messages;
	for (Reply &r : *reply)
		messages.push_back(std::move(r.payload));
	const GroupReply g = AMBER_TRY(parse_group_reply(messages, o.pid, o.tree, pool.fds.size()));
	// Before a page is written or anything killed (HoldGuard resumes).
	AMBER_TRY(check_restorable(g, o.tree));
	// Deleted files' content, while the group is held (--kill) or right
	// after it resumed.
	const std::vector<Bytes> ghosts = AMBER_TRY(collect_ghosts(g, o.ghost_limit));

	CheckpointSummary s;
	s.number = pending.number();
	s.stopped_ns = g.root().stopped_ns;
	s.processes = g.procs.size() - g.zombies;
	s.zombies = g.zombies;
	s.threads = g.threads;
	std::vector<std::pair<uint32_t, std::string>> written;	// pid, image dir
	for (size_t i = 0; i < g.procs.size(); i++) {
		const CheckpointReply &r = g.procs[i];
		if (r.zombie())
			continue;
		const bool is_root = &r == &g.root();
		const std::string name = is_root ? "" : "pid " + std::to_string(r.pid()) + ": ";
		auto dir = pending.process_tmp_dir(r.pid(), o.pid);
		if (!dir)
			return wrap(dir.error(), name);
		if (!is_root) {
			const std::string to = *dir + "/" + kPagesFile;
			std::string &from = pool.paths[*r.pages_index];
			if (rename(from.c_str(), to.c_str()) < 0)
				return fail_errno(name + "cannot rename " + from + " to " + to);
			from.clear();
		}
		auto img = write_image(*dir, r, ch.of(r.pid(), o.pid), g, o.tree, s.number, time_ns,
				       ghosts[i], store, o.pid, is_root ? &followed : nullptr,
				       followed_page_size, o.compress_level);
		if (!img)
			return wrap(img.error(), name);
		written.emplace_back(r.pid(), *dir);
		s.bytes += img->bytes;
		s.pages_bytes += img->compressed.in_bytes;
		s.compressed_bytes += img->compressed.out_bytes;
		s.compress_ns += img->compress_ns;
		s.data_pages += img->data_pages;
		s.parent_pages += img->parent_pages;
		s.incremental_processes += img->parent != 0;
		if (is_root) {
			s.parent = img->parent;
			s.full_reason = img->full_reason;
		}
	}
	pool.clear();

	// The restorability contract: the image as restore will read it,
	// planned as restore plans it, before it is published or anything
	// killed.
	std::vector<Checkpoint> images;
	images.reserve(written.size());
	for (const auto &[pid, dir] : written)
		images.push_back(AMBER_TRY(load_checkpoint_meta(dir, s.number)));
	std::vector<ProcImage> plan;
	for (size_t i = 0; i < images.size(); i++)
		plan.push_back({written[i].first, &images[i]});
	AMBER_TRY(plan_restore(plan, o.tree));

	if (o.before_publish)
		AMBER_TRY(o.before_publish());
	AMBER_TRY(store.publish(pending));

	const std::string done = "checkpoint " + std::to_string(s.number) + " is complete, but ";
	if (o.kill) {
		hold.disarm();
		if (auto k = release(nl, o.pid, AMBER_RELEASE_KILL); !k)
			return wrap(k.error(), done);
	}
	// Still under DIR/.lock (pending holds it).
	if (o.keep) {
		auto rr = store.retain(o.keep, pending, o.retain_policy);
		if (rr) {
			s.retention = retention_line(o.keep, *rr);
			for (const CompactResult &c : rr->compacted)
				if (c.compacted)
					s.compacted_bytes += c.bytes;
		} else
			s.late_error = wrap(rr.error(), done + "keep " + std::to_string(o.keep) +
								 ": ").value();
	}
	return s;
}

} // namespace

Result<CheckpointSummary> take_checkpoint(const CheckpointRequest &req)
{
	const uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	auto s = do_checkpoint(req);
	if (s)
		s->total_ns = now_ns(CLOCK_MONOTONIC) - t0;
	return s;
}


std::vector<uint32_t> list_descendants(uint32_t pid, const std::string &proc_root)
{
	std::vector<uint32_t> out;
	std::vector<uint32_t> todo{pid};
	std::unordered_set<uint32_t> seen{pid};
	// Breadth first: parents before children.
	for (size_t i = 0; i < todo.size(); i++) {
		const std::string task = proc_root + "/" + std::to_string(todo[i]) + "/task";
		std::error_code ec;
		for (const auto &t : std::filesystem::directory_iterator(task, ec)) {
			std::ifstream in(t.path() / "children");
			uint64_t child;
			while (in >> child) {
				if (child == 0 || child > UINT32_MAX || !seen.insert(child).second)
					continue;
				todo.push_back(uint32_t(child));
				out.push_back(uint32_t(child));
			}
		}
	}
	return out;
}

} // namespace amber
