// SPDX-License-Identifier: GPL-2.0
// Taking one checkpoint (take_checkpoint.h).
//
// Incremental by default: when DIR's latest checkpoint is a tracked one of
// the same process, its tracking id goes to the kernel as PARENT_ID and the
// kernel saves only the pages written since (if that id is still current).
#include <ctime>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <linux/amber.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "netlink.h"
#include "store.h"
#include "take_checkpoint.h"

namespace amber {

namespace {

// We wait this much longer than the kernel's own timeout: after the target
// stopped, the kernel may take up to 30 s more for the capture, then writes the pages.
constexpr int kReplySlackMs = 120000;

uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

Result<void> write_all(int fd, ByteView data)
{
	size_t off = 0;
	while (off < data.size()) {
		ssize_t n = write(fd, data.data() + off, data.size() - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno("write");
		}
		off += n;
	}
	return {};
}

Result<void> release(NetlinkClient &nl, uint32_t pid, uint32_t action)
{
	AttrWriter w;
	w.put_u32(AMBER_A_PID, pid);
	w.put_u32(AMBER_A_ACTION, action);
	auto r = nl.transact(AMBER_CMD_RELEASE, w.view(), kReplySlackMs);
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

// The store's latest checkpoint as choose_parent() needs it. A latest that
// cannot be read is no parent: the reason says why.
std::optional<LatestMeta> latest_meta(const Store &store, std::string *why)
{
	auto n = store.latest();
	if (!n)
		return std::nullopt;
	auto c = store.load_meta(*n);
	if (!c) {
		*why = "checkpoint " + std::to_string(*n) + " is unreadable";
		return std::nullopt;
	}
	return LatestMeta{*n, c->info.pid, c->task.start_time_ns, c->info.track_id};
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

Result<CheckpointSummary> do_checkpoint(const CheckpointRequest &o)
{
	NetlinkClient nl = AMBER_TRY(NetlinkClient::connect());
	Store store(o.dir);
	PendingCheckpoint pending = AMBER_TRY(store.begin());

	// Under DIR/.lock: latest cannot change until this one is published.
	std::string unreadable;
	const auto latest = latest_meta(store, &unreadable);
	ParentChoice choice =
		choose_parent(latest, o.pid, start_ticks(o.pid), sysconf(_SC_CLK_TCK), o.mode);
	if (o.mode == TrackMode::Incremental && !unreadable.empty())
		choice.why_full = unreadable;
	// A restore reads at most kMaxChainLinks pages files: a chain that long
	// starts over with a full checkpoint.
	if (choice.parent) {
		auto chain = store.chain_numbers(choice.parent);
		if (!chain || chain->size() >= kMaxChainLinks) {
			choice.why_full = "checkpoint " + std::to_string(choice.parent) +
					  (chain ? "'s chain has " + std::to_string(chain->size()) +
							   " links, the most a restore reads"
						 : "'s chain is unreadable");
			choice.parent = 0;
			choice.parent_id = 0;
		}
	}
	if (choice.untrack)
		AMBER_TRY(untrack(nl, o.pid));

	const std::string pages_path = pending.tmp_path(kPagesFile);
	UniqueFd pages(open(pages_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	if (!pages)
		return fail_errno("cannot create " + pages_path);

	AttrWriter req;
	req.put_u32(AMBER_A_PID, o.pid);
	req.put_u32(AMBER_A_PAGES_FD, pages.get());
	req.put_u32(AMBER_A_TIMEOUT_MS, o.timeout_ms);
	if (uint32_t flags = choice.flags | (o.kill ? AMBER_CKPT_F_HOLD : 0))
		req.put_u32(AMBER_A_FLAGS, flags);
	if (choice.parent_id)
		req.put_u64(AMBER_A_PARENT_ID, choice.parent_id);

	const uint64_t time_ns = now_ns(CLOCK_REALTIME);
	HoldGuard hold(nl, o.pid);
	auto reply = nl.transact(AMBER_CMD_CHECKPOINT, req.view(),
				 int(o.timeout_ms) + kReplySlackMs);
	if (!reply) {
		// The kernel resumes a held target when our socket closes; an
		// explicit RESUME is harmless when nothing is held.
		if (o.kill && reply.error().err == ETIMEDOUT)
			hold.arm();
		return wrap(reply.error(), "pid " + std::to_string(o.pid) + ": ");
	}
	if (o.kill)
		hold.arm();

	CheckpointReply r = AMBER_TRY(parse_checkpoint_reply(reply->payload));
	AMBER_TRY(check_supported(r));
	if (r.parent_id && *r.parent_id != choice.parent_id)
		return fail(EPROTO, "reply: incremental on tracking id " +
					    std::to_string(*r.parent_id) + ", asked " +
					    std::to_string(choice.parent_id));
	const bool incremental = r.parent_id.has_value();

	// The pages file: flush, then index it.
	if (fsync(pages.get()) < 0)
		return fail_errno("fsync " + pages_path);
	pages.reset();
	UniqueFd pages_in(open(pages_path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!pages_in)
		return fail_errno("cannot open " + pages_path);
	struct stat st;
	if (fstat(pages_in.get(), &st) < 0)
		return fail_errno("stat " + pages_path);
	if (uint64_t(st.st_size) != r.pages_bytes)
		return fail(EIO, "pages.img: amber.ko wrote " + std::to_string(r.pages_bytes) +
					 " bytes, the file has " + std::to_string(st.st_size));
	uint32_t page_size = 0;
	MetaSections meta;
	meta.pagemap = AMBER_TRY(scan_pages(pages_in.get(), &page_size));
	uint64_t nr = 0, parent_nr = 0;
	for (const auto &e : meta.pagemap)
		(e.flags & AMBER_RUN_F_PARENT ? parent_nr : nr) += e.nr_pages;
	if (r.pages_nr && nr != r.pages_nr)
		return fail(EIO, "pages.img: amber.ko wrote " + std::to_string(r.pages_nr) +
					 " pages, the file holds " + std::to_string(nr));
	if (parent_nr != r.pages_parent_nr)
		return fail(EIO, "pages.img: amber.ko left " + std::to_string(r.pages_parent_nr) +
					 " pages to the parent, the file says " +
					 std::to_string(parent_nr));

	const std::string full_reason = incremental	      ? std::string()
					: !r.full_reason.empty() ? r.full_reason
								 : choice.why_full;
	InfoSection info;
	info.number = pending.number();
	info.parent = incremental ? choice.parent : 0;
	info.track_id = r.track_id;
	info.pages_nr = nr;
	info.parent_pages_nr = parent_nr;
	info.full_reason = full_reason;
	info.time_ns = time_ns;
	info.stopped_ns = r.stopped_ns;
	info.pages_bytes = r.pages_bytes;
	info.tool_version = AMBER_VERSION_STRING;
	info.pid = o.pid;
	char host[256] = {};
	gethostname(host, sizeof(host) - 1);
	info.hostname = host;
	meta.info = encode_info(info);
	meta.core = std::move(r.core);
	meta.vmas = std::move(r.vmas);
	meta.fds = std::move(r.fds);
	const Bytes img = build_meta(meta);

	const std::string meta_path = pending.tmp_path(kMetaFile);
	UniqueFd mfd(open(meta_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (!mfd)
		return fail_errno("cannot create " + meta_path);
	if (auto w = write_all(mfd.get(), img); !w)
		return wrap(w.error(), meta_path + ": ");
	mfd.reset();

	if (o.before_publish)
		AMBER_TRY(o.before_publish());
	AMBER_TRY(store.publish(pending));

	CheckpointSummary s;
	s.number = pending.number();
	s.stopped_ns = r.stopped_ns;
	s.bytes = uint64_t(st.st_size) + img.size();
	s.parent = info.parent;
	s.data_pages = nr;
	s.parent_pages = parent_nr;
	s.full_reason = full_reason;
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

} // namespace amber
