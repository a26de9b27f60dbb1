// SPDX-License-Identifier: GPL-2.0
// amber checkpoint PID -D DIR [--full] [--no-track] [--keep K] [--kill] [--timeout MS]
//
// Incremental by default: when DIR's latest checkpoint is a tracked one of
// the same process, its tracking id goes to the kernel as PARENT_ID and the
// kernel saves only the pages written since (if that id is still current).
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <linux/amber.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "commands.h"
#include "image.h"
#include "netlink.h"
#include "store.h"

namespace amber {

namespace {

struct CheckpointOptions {
	uint32_t pid = 0;
	std::string dir;
	bool kill = false;
	bool full = false;
	bool no_track = false;
	uint32_t keep = 0;		// 0: no retention
	uint32_t timeout_ms = 60000;
};

// The CLI waits this much longer than the kernel's own timeout: after the target
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

struct Summary {
	uint32_t number = 0;
	uint64_t stopped_ns = 0;
	uint64_t bytes = 0;
	uint32_t parent = 0;		// 0: full
	uint64_t data_pages = 0;
	uint64_t parent_pages = 0;
	std::string full_reason;	// why full although incremental was possible
	std::string retention;		// third line with --keep
	std::optional<Error> late_error;	// after the checkpoint was published
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

Result<Summary> do_checkpoint(const CheckpointOptions &o)
{
	NetlinkClient nl = AMBER_TRY(NetlinkClient::connect());
	Store store(o.dir);
	PendingCheckpoint pending = AMBER_TRY(store.begin());

	// Under DIR/.lock: latest cannot change until this one is published.
	std::string unreadable;
	const auto latest = latest_meta(store, &unreadable);
	const TrackMode mode = o.no_track ? TrackMode::None
			       : o.full	  ? TrackMode::Full
					  : TrackMode::Incremental;
	ParentChoice choice =
		choose_parent(latest, o.pid, start_ticks(o.pid), sysconf(_SC_CLK_TCK), mode);
	if (mode == TrackMode::Incremental && !unreadable.empty())
		choice.why_full = unreadable;
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

	AMBER_TRY(store.publish(pending));

	Summary s;
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
		auto rr = store.retain(o.keep, pending);
		if (rr)
			s.retention = retention_line(o.keep, *rr);
		else
			s.late_error = wrap(rr.error(), done + "keep " + std::to_string(o.keep) +
								 ": ").value();
	}
	return s;
}

void run_checkpoint(const CheckpointOptions &o)
{
	const uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	auto s = do_checkpoint(o);
	if (!s) {
		report_error("checkpoint", s.error());
		return;
	}
	const uint64_t total = now_ns(CLOCK_MONOTONIC) - t0;
	// Scripts parse the first line: keep it as it is.
	printf("checkpoint %u: pid %u, stopped %.3f ms, total %.3f ms, %" PRIu64 " bytes written\n",
	       s->number, o.pid, s->stopped_ns / 1e6, total / 1e6, s->bytes);
	printf("%s\n",
	       kind_line(s->parent, s->data_pages, s->parent_pages, s->full_reason).c_str());
	if (!s->retention.empty())
		printf("%s\n", s->retention.c_str());
	if (s->late_error) {
		fflush(stdout);
		report_error("checkpoint", *s->late_error);
	}
}

} // namespace

void setup_checkpoint(CLI::App &app)
{
	auto opt = std::make_shared<CheckpointOptions>();
	CLI::App *sub = app.add_subcommand("checkpoint", "Checkpoint a running process");
	sub->add_option("pid", opt->pid, "Process to checkpoint")
		->required()
		->check(CLI::Range(1u, 4194304u));
	sub->add_option("-D,--dir", opt->dir, "Image store directory")->required();
	CLI::Option *full = sub->add_flag("--full", opt->full,
		      "Save every page even if the latest checkpoint is of this process "
		      "(dirty tracking starts over)");
	sub->add_flag("--no-track", opt->no_track,
		      "Full checkpoint, and stop tracking the process's dirty pages")
		->excludes(full);
	sub->add_option("--keep", opt->keep,
			"Afterwards keep only the last K checkpoints restorable, deleting "
			"data that none of them needs (0: keep everything)")
		->capture_default_str()
		->check(CLI::Range(0u, 1000000u));
	sub->add_flag("--kill", opt->kill,
		      "SIGKILL the process once the image is durable (no instruction runs in between)");
	sub->add_option("--timeout", opt->timeout_ms,
			"Milliseconds to wait for the process to stop (and to stay held with --kill)")
		->capture_default_str()
		->check(CLI::Range(1u, 60000u));
	sub->callback([opt] { run_checkpoint(*opt); });
}

} // namespace amber
