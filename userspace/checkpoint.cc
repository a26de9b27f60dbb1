// SPDX-License-Identifier: GPL-2.0
#include "checkpoint.h"

#include <cinttypes>
#include <cstdio>

#include <linux/amber.h>

namespace amber {

namespace {

constexpr std::string_view kDeleted = " (deleted)";

bool is_deleted(const std::string &path)
{
	return path.size() >= kDeleted.size() &&
	       path.compare(path.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0;
}

std::string fd_name(const FdInfo &f)
{
	if (!f.path.empty())
		return f.path;
	return fd_type_name(f.type);
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
	if (r.parent_id && !r.track_id)
		return fail(EPROTO, "reply: incremental (PARENT_ID) but no TRACK_ID");
	if (r.parent_id && !r.full_reason.empty())
		return fail(EPROTO, "reply: both PARENT_ID and FULL_REASON");
	if (!r.parent_id && r.pages_parent_nr)
		return fail(EPROTO, "reply: " + std::to_string(r.pages_parent_nr) +
					    " parent pages in a full checkpoint");
	return r;
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

Result<void> check_supported(const CheckpointReply &r)
{
	for (const FdInfo &f : r.fd_list) {
		const std::string fd = "fd " + std::to_string(f.num) + ": ";
		switch (f.type) {
		case AMBER_FD_REG:
		case AMBER_FD_DIR:
			if (is_deleted(f.path))
				return fail(EOPNOTSUPP, fd + f.path +
							    ": deleted files are not supported yet");
			if (f.path.empty() || f.path[0] != '/')
				return fail(EOPNOTSUPP, fd + fd_name(f) + " is not supported yet");
			break;
		case AMBER_FD_CHR:
			// /dev/null, ttys, ...: reopened by path (stdio: inherited).
			if (f.num > 2 && (f.path.empty() || f.path[0] != '/' || is_deleted(f.path)))
				return fail(EOPNOTSUPP, fd + fd_name(f) + " is not supported yet");
			break;
		case AMBER_FD_FIFO:
			// stdio pipes are replaced by restore's own stdio.
			if (f.num > 2)
				return fail(EOPNOTSUPP, fd + fd_name(f) + " is not supported yet");
			break;
		default:
			return fail(EOPNOTSUPP, fd + fd_name(f) + " is not supported yet");
		}
	}
	for (const Vma &v : r.vma_list) {
		if (v.flags & (AMBER_VMA_F_ANON | AMBER_VMA_F_SHMEM | AMBER_VMA_F_VDSO |
			       AMBER_VMA_F_VVAR))
			continue;
		char range[64];
		snprintf(range, sizeof(range), "VMA %#" PRIx64 "-%#" PRIx64 ": ", v.start, v.end);
		if (v.path.empty() || v.path[0] != '/')
			return fail(EOPNOTSUPP, range + (v.path.empty() ? std::string("unnamed file mapping")
								       : v.path) +
							" is not supported yet");
		if (is_deleted(v.path))
			return fail(EOPNOTSUPP, range + v.path +
							": deleted files are not supported yet");
	}
	return {};
}

} // namespace amber
