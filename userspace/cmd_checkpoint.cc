// SPDX-License-Identifier: GPL-2.0
// amber checkpoint PID -D DIR [--kill] [--timeout MS]
#include <cinttypes>
#include <cstdio>
#include <ctime>

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
	uint32_t number;
	uint64_t stopped_ns;
	uint64_t bytes;
};

Result<Summary> do_checkpoint(const CheckpointOptions &o)
{
	NetlinkClient nl = AMBER_TRY(NetlinkClient::connect());
	Store store(o.dir);
	PendingCheckpoint pending = AMBER_TRY(store.begin());

	const std::string pages_path = pending.tmp_path(kPagesFile);
	UniqueFd pages(open(pages_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	if (!pages)
		return fail_errno("cannot create " + pages_path);

	AttrWriter req;
	req.put_u32(AMBER_A_PID, o.pid);
	req.put_u32(AMBER_A_PAGES_FD, pages.get());
	req.put_u32(AMBER_A_TIMEOUT_MS, o.timeout_ms);
	if (o.kill)
		req.put_u32(AMBER_A_FLAGS, AMBER_CKPT_F_HOLD);

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
	uint64_t nr = 0;
	for (const auto &e : meta.pagemap)
		nr += e.nr_pages;
	if (r.pages_nr && nr != r.pages_nr)
		return fail(EIO, "pages.img: amber.ko wrote " + std::to_string(r.pages_nr) +
					 " pages, the file holds " + std::to_string(nr));

	InfoSection info;
	info.number = pending.number();
	info.parent = 0;
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

	if (o.kill) {
		hold.disarm();
		if (auto k = release(nl, o.pid, AMBER_RELEASE_KILL); !k)
			return wrap(k.error(), "checkpoint " + std::to_string(pending.number()) +
						       " is complete, but ");
	}
	return Summary{pending.number(), r.stopped_ns, uint64_t(st.st_size) + img.size()};
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
	printf("checkpoint %u: pid %u, stopped %.3f ms, total %.3f ms, %" PRIu64 " bytes written\n",
	       s->number, o.pid, s->stopped_ns / 1e6, total / 1e6, s->bytes);
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
	sub->add_flag("--kill", opt->kill,
		      "SIGKILL the process once the image is durable (no instruction runs in between)");
	sub->add_option("--timeout", opt->timeout_ms,
			"Milliseconds to wait for the process to stop (and to stay held with --kill)")
		->capture_default_str()
		->check(CLI::Range(1u, 60000u));
	sub->callback([opt] { run_checkpoint(*opt); });
}

} // namespace amber
