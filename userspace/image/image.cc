// SPDX-License-Identifier: GPL-2.0
#include "image/image.h"

#include "common/io.h"
#include "common/names.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <unordered_set>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

namespace amber {

namespace {

using XxhStatePtr = std::unique_ptr<XXH64_state_t, decltype(&XXH64_freeState)>;

constexpr uint32_t kMaxSections = 64;

// meta.img version written, and the oldest one read (see image-format.md,
// "Versioning": 3 adds THREADS, TREE, QUEUES and the fd extras).
constexpr uint32_t kImageVersion = AMBER_IMAGE_VERSION;
constexpr uint32_t kImageVersionMin = AMBER_IMAGE_VERSION_MIN;
// Sections every image has; THREADS, TREE and QUEUES are optional.
constexpr uint32_t kLastRequiredSection = AMBER_SEC_PAGEMAP;
constexpr size_t kChunk = 1 << 20;
constexpr off_t kMaxMetaSize = off_t(1) << 30;

size_t align8(size_t n)
{
	return (n + 7) & ~size_t(7);
}

Result<void> set(const Attr &a, uint32_t &v)
{
	v = AMBER_TRY(a.u32());
	return {};
}

Result<void> set(const Attr &a, uint64_t &v)
{
	v = AMBER_TRY(a.u64());
	return {};
}

Result<void> set(const Attr &a, std::string &v)
{
	v = a.str();
	return {};
}

Result<void> set(const Attr &a, bool &v)
{
	(void)a;
	v = true;
	return {};
}

// XXH64 of len bytes at off.
Result<uint64_t> hash_range(int fd, uint64_t off, uint64_t len)
{
	XxhStatePtr st(XXH64_createState(), &XXH64_freeState);
	if (!st)
		return fail(ENOMEM, "xxhash state");
	XXH64_reset(st.get(), 0);
	std::unique_ptr<uint8_t[]> buf(new uint8_t[kChunk]);
	while (len) {
		size_t n = len < kChunk ? len : kChunk;
		AMBER_TRY(pread_full(fd, buf.get(), n, off));
		XXH64_update(st.get(), buf.get(), n);
		off += n;
		len -= n;
	}
	return XXH64_digest(st.get());
}

// meta.img as bytes: a regular file of at most kMaxMetaSize.
Result<Bytes> read_meta_bytes(const std::string &path)
{
	UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_errno("cannot open");
	struct stat st;
	if (fstat(fd.get(), &st) < 0)
		return fail_errno("stat");
	if (!S_ISREG(st.st_mode))
		return fail(EBADMSG, "not a regular file");
	if (st.st_size > kMaxMetaSize)
		return fail(EFBIG, "larger than " + std::to_string(kMaxMetaSize >> 20) + " MiB");
	Bytes b(st.st_size);
	AMBER_TRY(pread_full(fd.get(), b.data(), b.size(), 0));
	return b;
}

Result<amber_pages_hdr> read_pages_hdr(int fd)
{
	amber_pages_hdr h;
	if (!pread_full(fd, &h, sizeof(h), 0))
		return fail(EBADMSG, "truncated header");
	if (h.magic != AMBER_PAGES_MAGIC)
		return fail(EBADMSG, "bad magic");
	if (h.version != AMBER_PAGES_VERSION)
		return fail(EBADMSG, "unsupported version " + std::to_string(h.version));
	if (h.page_size < 4096 || h.page_size > (1u << 21) ||
	    (h.page_size & (h.page_size - 1)))
		return fail(EBADMSG, "bad page size " + std::to_string(h.page_size));
	return h;
}

// Bytes of page data in a run, failing on overflow.
Result<uint64_t> run_bytes(uint64_t addr, uint64_t nr_pages, uint32_t page_size)
{
	if (nr_pages == 0 || nr_pages > (UINT64_MAX - addr) / page_size ||
	    addr % page_size)
		return fail(EBADMSG, "bad run");
	return nr_pages * page_size;
}

template <typename T, typename F>
Result<std::vector<T>> parse_list(ByteView buf, uint16_t type, const char *what, F parse_one)
{
	std::vector<T> out;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		if (a.type != type)
			continue;
		auto r = parse_one(a.data);
		if (!r)
			return fail(r.error().err, std::string(what) + " " +
						   std::to_string(out.size()) + ": " + r.error().msg);
		out.push_back(std::move(*r));
	}
	return out;
}

Error attr_error(const char *what, const Attr &a, const Error &e)
{
	if (e.msg.rfind("attribute ", 0) == 0)
		return Error{e.err, std::string(what) + " " + e.msg};
	return Error{e.err, std::string(what) + " attribute " + std::to_string(a.type) +
				    ": " + e.msg};
}

} // namespace

std::string section_name(uint32_t type)
{
	switch (type) {
	case AMBER_SEC_INFO:
		return "INFO";
	case AMBER_SEC_CORE:
		return "CORE";
	case AMBER_SEC_VMAS:
		return "VMAS";
	case AMBER_SEC_FDS:
		return "FDS";
	case AMBER_SEC_PAGEMAP:
		return "PAGEMAP";
	case AMBER_SEC_THREADS:
		return "THREADS";
	case AMBER_SEC_TREE:
		return "TREE";
	case AMBER_SEC_QUEUES:
		return "QUEUES";
	default:
		return "type " + std::to_string(type);
	}
}

Bytes build_meta(const MetaSections &s)
{
	ByteView pm(reinterpret_cast<const uint8_t *>(s.pagemap.data()),
		    s.pagemap.size() * sizeof(amber_pagemap_entry));
	std::vector<std::pair<uint32_t, ByteView>> secs = {
		{AMBER_SEC_INFO, s.info},
		{AMBER_SEC_CORE, s.core},
		{AMBER_SEC_VMAS, s.vmas},
		{AMBER_SEC_FDS, s.fds},
		{AMBER_SEC_PAGEMAP, pm},
	};
	// Optional sections: absent when empty.
	for (auto [type, bytes] : {std::pair<uint32_t, ByteView>{AMBER_SEC_THREADS, s.threads},
				   {AMBER_SEC_TREE, s.tree},
				   {AMBER_SEC_QUEUES, s.queues}})
		if (!bytes.empty())
			secs.emplace_back(type, bytes);
	const uint32_t n = secs.size();

	amber_image_hdr hdr = {};
	memcpy(hdr.magic, AMBER_IMAGE_MAGIC, sizeof(hdr.magic));
	hdr.version = kImageVersion;
	hdr.nr_sections = n;

	std::vector<amber_section> table(n);
	size_t off = align8(sizeof(hdr) + n * sizeof(amber_section));
	for (uint32_t i = 0; i < n; i++) {
		table[i] = {};
		table[i].type = secs[i].first;
		table[i].offset = off;
		table[i].size = secs[i].second.size();
		table[i].xxh64 = XXH64(secs[i].second.data(), secs[i].second.size(), 0);
		off = align8(off + secs[i].second.size());
	}

	Bytes out(off, 0);
	memcpy(out.data() + sizeof(hdr), table.data(), n * sizeof(amber_section));
	for (uint32_t i = 0; i < n; i++)
		if (!secs[i].second.empty())
			memcpy(out.data() + table[i].offset, secs[i].second.data(),
			       secs[i].second.size());
	memcpy(out.data(), &hdr, sizeof(hdr));
	hdr.hdr_xxh64 = XXH64(out.data(), sizeof(hdr) + n * sizeof(amber_section), 0);
	memcpy(out.data(), &hdr, sizeof(hdr));
	return out;
}

Bytes encode_info(const InfoSection &info)
{
	AttrWriter w;
	w.put_u32(AMBER_INFO_NUMBER, info.number);
	w.put_u32(AMBER_INFO_PARENT, info.parent);
	w.put_u64(AMBER_INFO_TIME_NS, info.time_ns);
	w.put_u64(AMBER_INFO_STOPPED_NS, info.stopped_ns);
	w.put_u64(AMBER_INFO_PAGES_BYTES, info.pages_bytes);
	w.put_string(AMBER_INFO_TOOL_VERSION, info.tool_version);
	w.put_u32(AMBER_INFO_PID, info.pid);
	w.put_string(AMBER_INFO_HOSTNAME, info.hostname);
	w.put_u64(AMBER_INFO_TRACK_ID, info.track_id);
	w.put_u64(AMBER_INFO_PAGES_NR, info.pages_nr);
	w.put_u64(AMBER_INFO_PARENT_PAGES_NR, info.parent_pages_nr);
	if (!info.full_reason.empty())
		w.put_string(AMBER_INFO_FULL_REASON, info.full_reason);
	return w.take();
}

// Checks what a run says on its own and against the previous one; returns
// the bytes of data that follow its header (0 for a PARENT run).
static Result<uint64_t> check_run(uint64_t addr, uint32_t nr_pages, uint32_t flags,
				  const amber_pagemap_entry *prev, uint32_t page_size)
{
	auto len = run_bytes(addr, nr_pages, page_size);
	if (!len)
		return fail(EBADMSG, "bad run header");
	if (flags & ~uint32_t(__AMBER_RUN_F_ALL))
		return fail(EBADMSG, "unknown flags " + hex(flags));
	if (prev && addr < prev->addr + uint64_t(prev->nr_pages) * page_size)
		return fail(EBADMSG, "runs out of order or overlapping");
	return (flags & AMBER_RUN_F_PARENT) ? 0 : *len;
}

Result<std::vector<amber_pagemap_entry>> scan_pages(int fd, uint32_t *page_size)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return fail_errno("pages.img: stat");
	auto hdr = read_pages_hdr(fd);
	if (!hdr)
		return wrap(hdr.error(), "pages.img: ");
	if (page_size)
		*page_size = hdr->page_size;

	std::vector<amber_pagemap_entry> map;
	uint64_t pos = sizeof(amber_pages_hdr);
	const uint64_t size = st.st_size;
	while (pos < size) {
		const std::string where = "pages.img: run " + std::to_string(map.size());
		amber_page_run run;
		if (size - pos < sizeof(run))
			return fail(EBADMSG, where + ": truncated");
		if (auto r = pread_full(fd, &run, sizeof(run), pos); !r)
			return wrap(r.error(), where + ": ");
		const std::string at = where + " at " + hex(run.addr) + ": ";
		auto len = check_run(run.addr, run.nr_pages, run.flags,
				     map.empty() ? nullptr : &map.back(), hdr->page_size);
		if (!len)
			return wrap(len.error(), at);
		pos += sizeof(run);
		if (*len > size - pos)
			return fail(EBADMSG, at + "truncated");
		uint64_t h = 0;
		if (*len) {
			auto r = hash_range(fd, pos, *len);
			if (!r)
				return wrap(r.error(), at);
			h = *r;
		}
		map.push_back({run.addr, run.nr_pages, run.flags, pos, h});
		pos += *len;
	}
	return map;
}

PageCounts count_pages(const std::vector<amber_pagemap_entry> &map)
{
	PageCounts c;
	for (const auto &e : map)
		((e.flags & AMBER_RUN_F_PARENT) ? c.parent : c.data) += e.nr_pages;
	return c;
}

// Checks pages.img against the pagemap: same runs in the same places,
// same data, nothing more.
static Result<uint32_t> verify_pages(const std::string &path,
				     const std::vector<amber_pagemap_entry> &map)
{
	UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_errno("pages.img: cannot open " + path);
	struct stat st;
	if (fstat(fd.get(), &st) < 0)
		return fail_errno("pages.img: stat");
	auto hdr = read_pages_hdr(fd.get());
	if (!hdr)
		return wrap(hdr.error(), "pages.img: ");

	const uint64_t size = st.st_size;
	uint64_t pos = sizeof(amber_pages_hdr);
	for (size_t i = 0; i < map.size(); i++) {
		const amber_pagemap_entry &e = map[i];
		const std::string where = "pages.img: run " + std::to_string(i) + " at " + hex(e.addr);
		auto len = check_run(e.addr, e.nr_pages, e.flags, i ? &map[i - 1] : nullptr,
				     hdr->page_size);
		if (!len)
			return fail(EBADMSG, where + ": bad pagemap entry (" + len.error().msg + ")");
		if (e.offset != pos + sizeof(amber_page_run))
			return fail(EBADMSG, where + ": pagemap offset does not match the file");
		if (size < e.offset || *len > size - e.offset)
			return fail(EBADMSG, where + ": truncated");
		amber_page_run run;
		if (auto r = pread_full(fd.get(), &run, sizeof(run), pos); !r)
			return wrap(r.error(), where + ": ");
		if (run.addr != e.addr || run.nr_pages != e.nr_pages || run.flags != e.flags)
			return fail(EBADMSG, where + ": run header does not match the pagemap");
		uint64_t h = 0;
		if (*len) {
			auto r = hash_range(fd.get(), e.offset, *len);
			if (!r)
				return wrap(r.error(), where + ": ");
			h = *r;
		}
		if (h != e.xxh64)
			return fail(EBADMSG, where + ": checksum mismatch");
		pos = e.offset + *len;
	}
	if (pos != size)
		return fail(EBADMSG, "pages.img: " + std::to_string(size - pos) +
					    " unexpected bytes after the last run");
	return hdr->page_size;
}

Result<InfoSection> parse_info(ByteView buf)
{
	InfoSection in;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		Result<void> r;
		switch (a.type) {
		case AMBER_INFO_NUMBER: r = set(a, in.number); break;
		case AMBER_INFO_PARENT: r = set(a, in.parent); break;
		case AMBER_INFO_TIME_NS: r = set(a, in.time_ns); break;
		case AMBER_INFO_STOPPED_NS: r = set(a, in.stopped_ns); break;
		case AMBER_INFO_PAGES_BYTES: r = set(a, in.pages_bytes); break;
		case AMBER_INFO_TOOL_VERSION: r = set(a, in.tool_version); break;
		case AMBER_INFO_PID: r = set(a, in.pid); break;
		case AMBER_INFO_HOSTNAME: r = set(a, in.hostname); break;
		case AMBER_INFO_TRACK_ID: r = set(a, in.track_id); break;
		case AMBER_INFO_PAGES_NR: r = set(a, in.pages_nr); break;
		case AMBER_INFO_PARENT_PAGES_NR: r = set(a, in.parent_pages_nr); break;
		case AMBER_INFO_FULL_REASON: r = set(a, in.full_reason); break;
		default: break;
		}
		if (!r)
			return tl::unexpected(attr_error("INFO", a, r.error()));
	}
	return in;
}

static Result<Rlimit> parse_rlimit(ByteView buf)
{
	Rlimit rl;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		Result<void> r;
		switch (a.type) {
		case AMBER_RLIMIT_RESOURCE: r = set(a, rl.resource); break;
		case AMBER_RLIMIT_CUR: r = set(a, rl.cur); break;
		case AMBER_RLIMIT_MAX: r = set(a, rl.max); break;
		default: break;
		}
		if (!r)
			return tl::unexpected(attr_error("RLIMIT", a, r.error()));
	}
	return rl;
}

Result<TaskInfo> parse_task(ByteView buf)
{
	TaskInfo t;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		Result<void> r;
		switch (a.type) {
		case AMBER_TASK_PID: r = set(a, t.pid); break;
		case AMBER_TASK_COMM: r = set(a, t.comm); break;
		case AMBER_TASK_UID: r = set(a, t.uid); break;
		case AMBER_TASK_EUID: r = set(a, t.euid); break;
		case AMBER_TASK_SUID: r = set(a, t.suid); break;
		case AMBER_TASK_FSUID: r = set(a, t.fsuid); break;
		case AMBER_TASK_GID: r = set(a, t.gid); break;
		case AMBER_TASK_EGID: r = set(a, t.egid); break;
		case AMBER_TASK_SGID: r = set(a, t.sgid); break;
		case AMBER_TASK_FSGID: r = set(a, t.fsgid); break;
		case AMBER_TASK_GROUPS: {
			auto gs = parse_attrs(a.data);
			if (!gs) {
				r = tl::unexpected(gs.error());
				break;
			}
			for (const Attr &g : *gs) {
				if (g.type != AMBER_TASK_GROUP)
					continue;
				auto v = g.u32();
				if (!v) {
					r = tl::unexpected(v.error());
					break;
				}
				t.groups.push_back(*v);
			}
			break;
		}
		case AMBER_TASK_CAP_INH: r = set(a, t.cap_inh); break;
		case AMBER_TASK_CAP_PRM: r = set(a, t.cap_prm); break;
		case AMBER_TASK_CAP_EFF: r = set(a, t.cap_eff); break;
		case AMBER_TASK_CAP_BND: r = set(a, t.cap_bnd); break;
		case AMBER_TASK_CAP_AMB: r = set(a, t.cap_amb); break;
		case AMBER_TASK_UMASK: r = set(a, t.umask); break;
		case AMBER_TASK_PERSONALITY: r = set(a, t.personality); break;
		case AMBER_TASK_CWD: r = set(a, t.cwd); break;
		case AMBER_TASK_RLIMITS: {
			auto rls = parse_list<Rlimit>(a.data, AMBER_TASK_RLIMIT, "rlimit",
						      parse_rlimit);
			if (!rls)
				r = tl::unexpected(rls.error());
			else
				t.rlimits = std::move(*rls);
			break;
		}
		case AMBER_TASK_RSEQ: r = set(a, t.rseq); break;
		case AMBER_TASK_RSEQ_LEN: r = set(a, t.rseq_len); break;
		case AMBER_TASK_RSEQ_SIG: r = set(a, t.rseq_sig); break;
		case AMBER_TASK_CLEAR_CHILD_TID: r = set(a, t.clear_child_tid); break;
		case AMBER_TASK_ROBUST_LIST: r = set(a, t.robust_list); break;
		case AMBER_TASK_ROBUST_LIST_LEN: r = set(a, t.robust_list_len); break;
		case AMBER_TASK_SAS_SP: r = set(a, t.sas_sp); break;
		case AMBER_TASK_SAS_SIZE: r = set(a, t.sas_size); break;
		case AMBER_TASK_SAS_FLAGS: r = set(a, t.sas_flags); break;
		case AMBER_TASK_EXE: r = set(a, t.exe); break;
		case AMBER_TASK_START_TIME_NS: r = set(a, t.start_time_ns); break;
		default: break;
		}
		if (!r)
			return tl::unexpected(attr_error("TASK", a, r.error()));
	}
	return t;
}

Result<MmInfo> parse_mm(ByteView buf)
{
	MmInfo m;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		Result<void> r;
		switch (a.type) {
		case AMBER_MM_START_CODE: r = set(a, m.start_code); break;
		case AMBER_MM_END_CODE: r = set(a, m.end_code); break;
		case AMBER_MM_START_DATA: r = set(a, m.start_data); break;
		case AMBER_MM_END_DATA: r = set(a, m.end_data); break;
		case AMBER_MM_START_BRK: r = set(a, m.start_brk); break;
		case AMBER_MM_BRK: r = set(a, m.brk); break;
		case AMBER_MM_START_STACK: r = set(a, m.start_stack); break;
		case AMBER_MM_ARG_START: r = set(a, m.arg_start); break;
		case AMBER_MM_ARG_END: r = set(a, m.arg_end); break;
		case AMBER_MM_ENV_START: r = set(a, m.env_start); break;
		case AMBER_MM_ENV_END: r = set(a, m.env_end); break;
		case AMBER_MM_AUXV:
			if (a.data.size() % 16) {
				r = fail(EBADMSG, "auxv size " + std::to_string(a.data.size()) +
							 " is not a multiple of 16");
				break;
			}
			m.auxv.resize(a.data.size() / 8);
			memcpy(m.auxv.data(), a.data.data(), a.data.size());
			break;
		case AMBER_MM_VDSO: r = set(a, m.vdso); break;
		default: break;
		}
		if (!r)
			return tl::unexpected(attr_error("MM", a, r.error()));
	}
	return m;
}

Result<Regs> parse_regs(ByteView buf)
{
	Regs regs{};
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		if (a.type < 1 || a.type > AMBER_REG_MAX)
			continue;
		auto v = a.u64();
		if (!v)
			return tl::unexpected(attr_error("REGS", a, v.error()));
		regs[a.type] = *v;
	}
	return regs;
}

static Result<SigAction> parse_sigaction(ByteView buf)
{
	SigAction s;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		Result<void> r;
		switch (a.type) {
		case AMBER_SIGACTION_SIGNO: r = set(a, s.signo); break;
		case AMBER_SIGACTION_HANDLER: r = set(a, s.handler); break;
		case AMBER_SIGACTION_FLAGS: r = set(a, s.flags); break;
		case AMBER_SIGACTION_RESTORER: r = set(a, s.restorer); break;
		case AMBER_SIGACTION_MASK: r = set(a, s.mask); break;
		default: break;
		}
		if (!r)
			return tl::unexpected(attr_error("SIGACTION", a, r.error()));
	}
	return s;
}

static Result<SigPending> parse_sigpending(ByteView buf)
{
	SigPending s;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		if (a.type == AMBER_SIGPENDING_SIGINFO) {
			if (a.data.size() != 128)
				return fail(EBADMSG, "siginfo of " + std::to_string(a.data.size()) +
							    " bytes, expected 128");
			s.siginfo = a.bytes();
		} else if (a.type == AMBER_SIGPENDING_SHARED) {
			s.shared = true;
		}
	}
	if (s.siginfo.empty())
		return fail(EBADMSG, "pending signal without siginfo");
	return s;
}

Result<Signals> parse_signals(ByteView buf)
{
	Signals s;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		Result<void> r;
		switch (a.type) {
		case AMBER_SIG_BLOCKED:
			r = set(a, s.blocked);
			break;
		case AMBER_SIG_ACTION: {
			auto v = parse_sigaction(a.data);
			if (!v)
				r = tl::unexpected(v.error());
			else
				s.actions.push_back(*v);
			break;
		}
		case AMBER_SIG_PENDING: {
			auto v = parse_sigpending(a.data);
			if (!v)
				r = tl::unexpected(v.error());
			else
				s.pending.push_back(std::move(*v));
			break;
		}
		default:
			break;
		}
		if (!r)
			return tl::unexpected(attr_error("SIGNALS", a, r.error()));
	}
	return s;
}

Result<Vma> parse_vma(ByteView buf)
{
	Vma v;
	bool have_start = false, have_end = false;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		Result<void> r;
		switch (a.type) {
		case AMBER_VMA_START: r = set(a, v.start); have_start = true; break;
		case AMBER_VMA_END: r = set(a, v.end); have_end = true; break;
		case AMBER_VMA_PGOFF: r = set(a, v.pgoff); break;
		case AMBER_VMA_PROT: r = set(a, v.prot); break;
		case AMBER_VMA_FLAGS: r = set(a, v.flags); break;
		case AMBER_VMA_PATH: r = set(a, v.path); break;
		case AMBER_VMA_DEV: r = set(a, v.dev); break;
		case AMBER_VMA_INO: r = set(a, v.ino); break;
		case AMBER_VMA_FILE_SIZE: r = set(a, v.file_size); break;
		case AMBER_VMA_PAGES: r = set(a, v.pages); break;
		default: break;
		}
		if (!r)
			return tl::unexpected(attr_error("VMA", a, r.error()));
	}
	if (!have_start || !have_end)
		return fail(EBADMSG, "VMA without start or end");
	if (v.end <= v.start)
		return fail(EBADMSG, "VMA " + hex(v.start) + "-" + hex(v.end) + " is empty");
	return v;
}

Result<FdInfo> parse_fd(ByteView buf)
{
	FdInfo f;
	bool have_num = false;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		Result<void> r;
		switch (a.type) {
		case AMBER_FD_NUM: r = set(a, f.num); have_num = true; break;
		case AMBER_FD_TYPE: r = set(a, f.type); break;
		case AMBER_FD_FLAGS: r = set(a, f.flags); break;
		case AMBER_FD_POS: r = set(a, f.pos); break;
		case AMBER_FD_CLOEXEC: r = set(a, f.cloexec); break;
		case AMBER_FD_PATH: r = set(a, f.path); break;
		case AMBER_FD_DEV: r = set(a, f.dev); break;
		case AMBER_FD_INO: r = set(a, f.ino); break;
		case AMBER_FD_RDEV: r = set(a, f.rdev); break;
		case AMBER_FD_MODE: r = set(a, f.mode); break;
		case AMBER_FD_SIZE: r = set(a, f.size); break;
		case AMBER_FD_TTY: r = set(a, f.tty); break;
		case AMBER_FD_FILE_ID: r = set(a, f.file_id); break;
		case AMBER_FD_SOCK_FAMILY: r = set(a, f.sock_family); break;
		case AMBER_FD_SOCK_TYPE: r = set(a, f.sock_type); break;
		case AMBER_FD_PEER_INO: r = set(a, f.peer_ino); break;
		case AMBER_FD_SHUTDOWN: r = set(a, f.shutdown); break;
		case AMBER_FD_PIPE_SIZE: r = set(a, f.pipe_size); break;
		default: break;
		}
		if (!r)
			return tl::unexpected(attr_error("FD", a, r.error()));
	}
	if (!have_num)
		return fail(EBADMSG, "fd without a number");
	return f;
}

Result<std::vector<Vma>> parse_vmas(ByteView buf)
{
	return parse_list<Vma>(buf, AMBER_A_VMA, "VMA", parse_vma);
}

Result<std::vector<FdInfo>> parse_fds(ByteView buf)
{
	auto fds = AMBER_TRY(parse_list<FdInfo>(buf, AMBER_A_FD, "fd", parse_fd));
	std::vector<uint32_t> nums;
	for (const FdInfo &f : fds)
		nums.push_back(f.num);
	std::sort(nums.begin(), nums.end());
	if (auto d = std::adjacent_find(nums.begin(), nums.end()); d != nums.end())
		return fail(EBADMSG, "fd " + std::to_string(*d) + " is listed twice");
	return fds;
}

namespace {

// PID_MAX_LIMIT: no pid or tid is larger.
constexpr uint32_t kPidMax = 4194304;

// The new sections are strict (image-format.md, "Versioning"): an attribute
// this reader does not know is an error, not something to skip.
Error unknown_attr(const char *what, const Attr &a)
{
	return Error{EBADMSG, std::string(what) + ": unknown attribute " + std::to_string(a.type)};
}

bool valid_pid(uint32_t pid)
{
	return pid > 0 && pid <= kPidMax;
}

} // namespace

Result<ThreadInfo> parse_thread(ByteView buf)
{
	ThreadInfo t;
	bool have_regs = false;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		Result<void> r;
		switch (a.type) {
		case AMBER_THREAD_TID: r = set(a, t.tid); break;
		case AMBER_THREAD_REGS: {
			auto regs = parse_regs(a.data);
			if (!regs)
				r = tl::unexpected(regs.error());
			else
				t.regs = *regs;
			have_regs = true;
			break;
		}
		case AMBER_THREAD_FPU: t.fpu = a.bytes(); break;
		case AMBER_THREAD_BLOCKED: r = set(a, t.blocked); break;
		case AMBER_THREAD_PENDING: {
			auto p = parse_sigpending(a.data);
			if (!p)
				r = tl::unexpected(p.error());
			else if (p->shared)
				r = fail(EBADMSG, "a process-wide (SHARED) pending signal");
			else
				t.pending.push_back(std::move(*p));
			break;
		}
		case AMBER_THREAD_CLEAR_CHILD_TID: r = set(a, t.clear_child_tid); break;
		case AMBER_THREAD_ROBUST_LIST: r = set(a, t.robust_list); break;
		case AMBER_THREAD_ROBUST_LIST_LEN: r = set(a, t.robust_list_len); break;
		case AMBER_THREAD_SAS_SP: r = set(a, t.sas_sp); break;
		case AMBER_THREAD_SAS_SIZE: r = set(a, t.sas_size); break;
		case AMBER_THREAD_SAS_FLAGS: r = set(a, t.sas_flags); break;
		case AMBER_THREAD_RSEQ: r = set(a, t.rseq); break;
		case AMBER_THREAD_RSEQ_LEN: r = set(a, t.rseq_len); break;
		case AMBER_THREAD_RSEQ_SIG: r = set(a, t.rseq_sig); break;
		case AMBER_THREAD_COMM:
			r = set(a, t.comm);
			if (r && t.comm.size() > 15)
				r = fail(EBADMSG, "comm of " + std::to_string(t.comm.size()) +
							  " characters (at most 15)");
			break;
		default:
			return tl::unexpected(unknown_attr("THREAD", a));
		}
		if (!r)
			return tl::unexpected(attr_error("THREAD", a, r.error()));
	}
	if (!valid_pid(t.tid))
		return fail(EBADMSG, "thread without a valid TID (" + std::to_string(t.tid) + ")");
	if (!have_regs)
		return fail(EBADMSG, "thread " + std::to_string(t.tid) + ": no REGS");
	return t;
}

Result<std::vector<ThreadInfo>> parse_threads(ByteView buf, uint32_t leader_pid)
{
	std::vector<ThreadInfo> out;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		const std::string what = "thread " + std::to_string(out.size());
		if (a.type != AMBER_A_THREAD)
			return fail(EBADMSG, what + ": unexpected attribute " + std::to_string(a.type));
		auto t = parse_thread(a.data);
		if (!t)
			return wrap(t.error(), what + ": ");
		const std::string tid = "thread " + std::to_string(t->tid) + ": ";
		if (t->tid == leader_pid)
			return fail(EBADMSG, tid + "is the thread group leader");
		if (!out.empty() && t->tid <= out.back().tid)
			return fail(EBADMSG, tid + (t->tid == out.back().tid ? "listed twice"
									     : "not in ascending TID order"));
		t->raw = a.raw_bytes();
		out.push_back(std::move(*t));
	}
	return out;
}

Result<ProcInfo> parse_proc(ByteView buf)
{
	ProcInfo p;
	bool have_threads = false, have_exit = false;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		Result<void> r;
		switch (a.type) {
		case AMBER_PROC_PID: r = set(a, p.pid); break;
		case AMBER_PROC_PPID: r = set(a, p.ppid); break;
		case AMBER_PROC_PGID: r = set(a, p.pgid); break;
		case AMBER_PROC_SID: r = set(a, p.sid); break;
		case AMBER_PROC_ZOMBIE: r = set(a, p.zombie); break;
		case AMBER_PROC_EXIT_CODE: r = set(a, p.exit_code); have_exit = true; break;
		case AMBER_PROC_NR_THREADS: r = set(a, p.nr_threads); have_threads = true; break;
		default:
			return tl::unexpected(unknown_attr("PROC", a));
		}
		if (!r)
			return tl::unexpected(attr_error("PROC", a, r.error()));
	}
	if (!valid_pid(p.pid))
		return fail(EBADMSG, "process without a valid PID (" + std::to_string(p.pid) + ")");
	const std::string pid = "pid " + std::to_string(p.pid) + ": ";
	for (auto [v, name] : {std::pair{p.ppid, "PPID"}, {p.pgid, "PGID"}, {p.sid, "SID"}})
		if (v > kPidMax)
			return fail(EBADMSG, pid + name + " " + std::to_string(v) + " out of range");
	if (p.zombie) {
		if (p.nr_threads)
			return fail(EBADMSG, pid + "a zombie with " + std::to_string(p.nr_threads) +
						     " threads");
		if (!have_exit)
			return fail(EBADMSG, pid + "a zombie without EXIT_CODE");
		if (p.exit_code > 0xffff)
			return fail(EBADMSG, pid + "wait status " + hex(p.exit_code) + " out of range");
	} else {
		if (have_exit)
			return fail(EBADMSG, pid + "EXIT_CODE of a live process");
		if (!have_threads || p.nr_threads == 0)
			return fail(EBADMSG, pid + "a live process without NR_THREADS");
	}
	return p;
}

Result<std::vector<ProcInfo>> parse_tree(ByteView buf, uint32_t root_pid)
{
	std::vector<ProcInfo> out;
	std::unordered_set<uint32_t> seen;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		const std::string what = "process " + std::to_string(out.size());
		if (a.type != AMBER_A_PROC)
			return fail(EBADMSG, what + ": unexpected attribute " + std::to_string(a.type));
		auto p = parse_proc(a.data);
		if (!p)
			return wrap(p.error(), what + ": ");
		const std::string pid = "pid " + std::to_string(p->pid) + ": ";
		if (out.empty()) {
			if (p->pid != root_pid)
				return fail(EBADMSG, "the first process is pid " +
							     std::to_string(p->pid) + ", not the image's pid " +
							     std::to_string(root_pid));
			if (p->zombie)
				return fail(EBADMSG, pid + "the root process is a zombie");
		} else {
			if (seen.count(p->pid))
				return fail(EBADMSG, pid + "listed twice");
			if (!seen.count(p->ppid))
				return fail(EBADMSG, pid + "its parent " + std::to_string(p->ppid) +
							     " is not listed before it");
		}
		seen.insert(p->pid);
		out.push_back(*p);
	}
	if (out.empty())
		return fail(EBADMSG, "no process");
	return out;
}

Result<QueueChunk> parse_queue(ByteView buf)
{
	QueueChunk q;
	bool have_data = false;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		Result<void> r;
		switch (a.type) {
		case AMBER_QUEUE_INO: r = set(a, q.ino); break;
		case AMBER_QUEUE_DATA:
			if (a.data.size() > AMBER_QUEUE_CHUNK)
				r = fail(EBADMSG, std::to_string(a.data.size()) +
							  " bytes, at most " +
							  std::to_string(AMBER_QUEUE_CHUNK));
			q.data = a.bytes();
			have_data = true;
			break;
		case AMBER_QUEUE_EOR: r = set(a, q.eor); break;
		default:
			return tl::unexpected(unknown_attr("QUEUE", a));
		}
		if (!r)
			return tl::unexpected(attr_error("QUEUE", a, r.error()));
	}
	if (!q.ino)
		return fail(EBADMSG, "chunk without an inode");
	const std::string ino = "inode " + std::to_string(q.ino) + ": ";
	if (!have_data)
		return fail(EBADMSG, ino + "chunk without DATA");
	// An empty chunk is only an empty datagram.
	if (q.data.empty() && !q.eor)
		return fail(EBADMSG, ino + "empty chunk");
	return q;
}

Result<std::vector<QueueChunk>> parse_queues(ByteView buf)
{
	std::vector<QueueChunk> out;
	std::unordered_set<uint64_t> done;	// inodes whose chunks ended
	uint64_t total = 0;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		const std::string what = "chunk " + std::to_string(out.size());
		if (a.type != AMBER_A_QUEUE)
			return fail(EBADMSG, what + ": unexpected attribute " + std::to_string(a.type));
		auto q = parse_queue(a.data);
		if (!q)
			return wrap(q.error(), what + ": ");
		if (!out.empty() && out.back().ino != q->ino)
			done.insert(out.back().ino);
		if (done.count(q->ino))
			return fail(EBADMSG, what + ": inode " + std::to_string(q->ino) +
						     ": its chunks are not contiguous");
		total += q->data.size();
		if (total > AMBER_QUEUE_MAX_BYTES)
			return fail(EBADMSG, what + ": more than " +
						     std::to_string(AMBER_QUEUE_MAX_BYTES) +
						     " bytes queued in all");
		out.push_back(std::move(*q));
	}
	return out;
}

namespace {

// meta.img, checksums verified, split into sections.
struct MetaFile {
	uint32_t version = 0;
	Bytes data;
	std::vector<amber_section> table;

	bool has(uint32_t type) const
	{
		for (const auto &s : table)
			if (s.type == type)
				return true;
		return false;
	}

	ByteView section(uint32_t type) const
	{
		for (const auto &s : table)
			if (s.type == type)
				return ByteView(data).subspan(s.offset, s.size);
		return {};
	}
};

Result<MetaFile> read_meta(const std::string &path)
{
	MetaFile m;
	auto data = read_meta_bytes(path);
	if (!data)
		return wrap(data.error(), "meta.img: " + path + ": ");
	m.data = std::move(*data);

	amber_image_hdr hdr;
	if (m.data.size() < sizeof(hdr))
		return fail(EBADMSG, "meta.img: truncated");
	memcpy(&hdr, m.data.data(), sizeof(hdr));
	if (memcmp(hdr.magic, AMBER_IMAGE_MAGIC, sizeof(hdr.magic)))
		return fail(EBADMSG, "meta.img: bad magic (not an amber image)");
	if (hdr.version < kImageVersionMin || hdr.version > kImageVersion)
		return fail(EBADMSG, "meta.img: unsupported version " + std::to_string(hdr.version));
	m.version = hdr.version;
	if (hdr.nr_sections > kMaxSections)
		return fail(EBADMSG, "meta.img: header: " + std::to_string(hdr.nr_sections) +
					    " sections");
	size_t table_end = sizeof(hdr) + hdr.nr_sections * sizeof(amber_section);
	if (m.data.size() < table_end)
		return fail(EBADMSG, "meta.img: truncated");

	amber_image_hdr zeroed = hdr;
	zeroed.hdr_xxh64 = 0;
	XxhStatePtr st(XXH64_createState(), &XXH64_freeState);
	XXH64_reset(st.get(), 0);
	XXH64_update(st.get(), &zeroed, sizeof(zeroed));
	XXH64_update(st.get(), m.data.data() + sizeof(hdr), table_end - sizeof(hdr));
	if (XXH64_digest(st.get()) != hdr.hdr_xxh64)
		return fail(EBADMSG, "meta.img: header: checksum mismatch");

	m.table.resize(hdr.nr_sections);
	memcpy(m.table.data(), m.data.data() + sizeof(hdr), table_end - sizeof(hdr));
	for (const auto &s : m.table) {
		const std::string name = "meta.img: section " + section_name(s.type);
		if (s.offset > m.data.size() || s.size > m.data.size() - s.offset)
			return fail(EBADMSG, "meta.img: truncated (section " +
						    section_name(s.type) + ")");
		if (XXH64(m.data.data() + s.offset, s.size, 0) != s.xxh64)
			return fail(EBADMSG, name + ": checksum mismatch");
		if (s.offset < table_end)
			return fail(EBADMSG, name + ": overlaps the header");
	}
	// Unknown section types (newer optional ones) are ignored, checksum
	// verified; the known ones appear at most once, the required ones once.
	for (uint32_t type = AMBER_SEC_INFO; type <= AMBER_SEC_MAX; type++) {
		int n = 0;
		for (const auto &s : m.table)
			n += s.type == type;
		if (n == 0 && type <= kLastRequiredSection)
			return fail(EBADMSG, "meta.img: section " + section_name(type) + " missing");
		if (n > 1)
			return fail(EBADMSG, "meta.img: section " + section_name(type) + " repeated");
		if (n && type > kLastRequiredSection && hdr.version < 3)
			return fail(EBADMSG, "meta.img: section " + section_name(type) +
						     " in a version " + std::to_string(hdr.version) +
						     " image");
	}
	return m;
}

Result<void> parse_core(Checkpoint &c)
{
	auto attrs = AMBER_TRY(parse_attrs(c.core_raw));
	struct {
		uint16_t type;
		const char *name;
		Bytes *raw;
	} parts[] = {
		{AMBER_A_TASK, "TASK", &c.task_attr},
		{AMBER_A_MM, "MM", &c.mm_attr},
		{AMBER_A_REGS, "REGS", &c.regs_attr},
		{AMBER_A_FPU, "FPU", &c.fpu_attr},
		{AMBER_A_SIGNALS, "SIGNALS", &c.signals_attr},
	};
	for (auto &p : parts) {
		const Attr *a = find_attr(attrs, p.type);
		if (!a)
			return fail(EBADMSG, std::string("missing ") + p.name);
		*p.raw = a->raw_bytes();
	}
	const Attr *a = find_attr(attrs, AMBER_A_TASK);
	c.task = AMBER_TRY(parse_task(a->data));
	c.mm = AMBER_TRY(parse_mm(find_attr(attrs, AMBER_A_MM)->data));
	c.regs = AMBER_TRY(parse_regs(find_attr(attrs, AMBER_A_REGS)->data));
	c.fpu = find_attr(attrs, AMBER_A_FPU)->bytes();
	c.signals = AMBER_TRY(parse_signals(find_attr(attrs, AMBER_A_SIGNALS)->data));
	return {};
}

Result<std::vector<amber_pagemap_entry>> parse_pagemap(ByteView buf)
{
	if (buf.size() % sizeof(amber_pagemap_entry))
		return fail(EBADMSG, "size is not a multiple of the entry size");
	std::vector<amber_pagemap_entry> map(buf.size() / sizeof(amber_pagemap_entry));
	if (!map.empty())
		memcpy(map.data(), buf.data(), buf.size());
	return map;
}

// THREADS, TREE and QUEUES (absent: empty), checked against CORE and INFO.
Result<void> parse_optional_sections(Checkpoint &c, const MetaFile &m)
{
	auto sec = [&](uint32_t t) {
		ByteView v = m.section(t);
		return Bytes(v.begin(), v.end());
	};
	c.threads_raw = sec(AMBER_SEC_THREADS);
	c.tree_raw = sec(AMBER_SEC_TREE);
	c.queues_raw = sec(AMBER_SEC_QUEUES);
	const bool have_tree = m.has(AMBER_SEC_TREE);
	for (uint32_t t : {AMBER_SEC_THREADS, AMBER_SEC_TREE, AMBER_SEC_QUEUES})
		if (m.has(t) && m.section(t).empty())
			return fail(EBADMSG, "meta.img: section " + section_name(t) +
						     ": empty (an empty section is left out)");

	auto threads = parse_threads(c.threads_raw, c.task.pid);
	if (!threads)
		return wrap(threads.error(), "meta.img: section THREADS: ");
	c.threads = std::move(*threads);
	auto queues = parse_queues(c.queues_raw);
	if (!queues)
		return wrap(queues.error(), "meta.img: section QUEUES: ");
	c.queues = std::move(*queues);
	if (!have_tree)
		return {};

	auto tree = parse_tree(c.tree_raw, c.info.pid);
	if (!tree)
		return wrap(tree.error(), "meta.img: section TREE: ");
	c.tree = std::move(*tree);
	if (c.tree[0].nr_threads != c.threads.size() + 1)
		return fail(EBADMSG, "meta.img: section TREE: pid " + std::to_string(c.info.pid) +
					     " has " + std::to_string(c.tree[0].nr_threads) +
					     " threads, section THREADS lists " +
					     std::to_string(c.threads.size()) + " besides the leader");
	return {};
}

} // namespace

namespace {

// meta.img of DIR/N, verified and parsed; pages.img not touched.
Result<Checkpoint> load_meta_only(const std::string &ckpt_dir, uint32_t number, MetaFile &m)
{
	Checkpoint c;
	c.number = number;
	c.dir = ckpt_dir;
	c.meta_path = ckpt_dir + "/" + kMetaFile;
	c.pages_path = ckpt_dir + "/" + kPagesFile;

	m = AMBER_TRY(read_meta(c.meta_path));
	auto pm = parse_pagemap(m.section(AMBER_SEC_PAGEMAP));
	if (!pm)
		return wrap(pm.error(), "meta.img: section PAGEMAP: ");
	c.pagemap = std::move(*pm);

	auto sec = [&](uint32_t t) {
		ByteView v = m.section(t);
		return Bytes(v.begin(), v.end());
	};
	c.info_raw = sec(AMBER_SEC_INFO);
	c.core_raw = sec(AMBER_SEC_CORE);
	c.vmas_raw = sec(AMBER_SEC_VMAS);
	c.fds_raw = sec(AMBER_SEC_FDS);

	auto info = parse_info(c.info_raw);
	if (!info)
		return wrap(info.error(), "meta.img: section INFO: ");
	c.info = std::move(*info);
	if (auto r = parse_core(c); !r)
		return wrap(r.error(), "meta.img: section CORE: ");
	auto vmas = parse_vmas(c.vmas_raw);
	if (!vmas)
		return wrap(vmas.error(), "meta.img: section VMAS: ");
	c.vmas = std::move(*vmas);
	auto fds = parse_fds(c.fds_raw);
	if (!fds)
		return wrap(fds.error(), "meta.img: section FDS: ");
	c.fds = std::move(*fds);
	AMBER_TRY(parse_optional_sections(c, m));

	if (c.info.parent == 0) {
		for (size_t i = 0; i < c.pagemap.size(); i++)
			if (c.pagemap[i].flags & AMBER_RUN_F_PARENT)
				return fail(EBADMSG, "pages.img: run " + std::to_string(i) + " at " +
							    hex(c.pagemap[i].addr) +
							    ": unchanged since a parent checkpoint, but "
							    "the checkpoint has no parent");
	} else if (c.info.parent >= number) {
		return fail(EBADMSG, "meta.img: section INFO: parent checkpoint " +
					    std::to_string(c.info.parent) + " is not older");
	}
	return c;
}

} // namespace

Result<Checkpoint> load_checkpoint_dir(const std::string &ckpt_dir, uint32_t number)
{
	MetaFile m;
	Checkpoint c = AMBER_TRY(load_meta_only(ckpt_dir, number, m));
	c.page_size = AMBER_TRY(verify_pages(c.pages_path, c.pagemap));
	return c;
}

Result<Checkpoint> load_checkpoint_meta(const std::string &ckpt_dir, uint32_t number)
{
	MetaFile m;
	return load_meta_only(ckpt_dir, number, m);
}

namespace {

// Streaming resolution of a chain (see resolve_chain()): one forward-only
// cursor per link, as ranges are requested in ascending order.
class ChainResolver {
public:
	ChainResolver(const std::vector<const Checkpoint *> &links, uint64_t page_size)
		: links_(links), ps_(page_size), cursor_(links.size(), 0)
	{
	}

	Result<std::vector<PageSource>> run()
	{
		const size_t last = links_.size() - 1;
		for (const amber_pagemap_entry &e : links_[last]->pagemap) {
			const uint64_t end = e.addr + e.nr_pages * ps_;
			if (e.flags & AMBER_RUN_F_PARENT)
				AMBER_TRY(from_parent(last, e.addr, end));
			else
				emit(e.addr, e.nr_pages, last, e.offset);
		}
		return std::move(out_);
	}

private:
	void emit(uint64_t addr, uint64_t nr, size_t link, uint64_t offset)
	{
		if (!out_.empty()) {
			PageSource &b = out_.back();
			if (b.link == link && b.addr + b.nr_pages * ps_ == addr &&
			    b.offset + b.nr_pages * ps_ == offset) {
				b.nr_pages += nr;
				return;
			}
		}
		out_.push_back({addr, nr, uint32_t(link), offset});
	}

	// Pages [a, b) of link k are unchanged since link k-1.
	Result<void> from_parent(size_t k, uint64_t a, uint64_t b)
	{
		const size_t j = k - 1;	// k >= 1: checked by resolve_chain()
		const auto &map = links_[j]->pagemap;
		size_t &i = cursor_[j];
		while (a < b) {
			while (i < map.size() && map[i].addr + map[i].nr_pages * ps_ <= a)
				i++;
			if (i == map.size() || map[i].addr > a) {
				uint64_t end = i == map.size() ? b : std::min<uint64_t>(b, map[i].addr);
				return fail(EBADMSG, "checkpoint " + std::to_string(links_[k]->number) +
							    ": pages " + hex(a) + "-" + hex(end) +
							    " are missing from its parent checkpoint " +
							    std::to_string(links_[j]->number));
			}
			const amber_pagemap_entry &e = map[i];
			const uint64_t end = std::min<uint64_t>(b, e.addr + e.nr_pages * ps_);
			if (e.flags & AMBER_RUN_F_PARENT)
				AMBER_TRY(from_parent(j, a, end));
			else
				emit(a, (end - a) / ps_, j, e.offset + (a - e.addr));
			a = end;
		}
		return {};
	}

	const std::vector<const Checkpoint *> &links_;
	const uint64_t ps_;
	std::vector<size_t> cursor_;
	std::vector<PageSource> out_;
};

} // namespace

Result<std::vector<PageSource>> resolve_chain(const std::vector<const Checkpoint *> &links)
{
	if (links.empty())
		return fail(EINVAL, "empty chain");
	if (links.size() > kMaxChainLinks)
		return fail(E2BIG, "checkpoint " + std::to_string(links.back()->number) +
					   ": chain of " + std::to_string(links.size()) +
					   " links, at most " + std::to_string(kMaxChainLinks));
	const uint32_t ps = links.back()->page_size;
	for (size_t k = 0; k < links.size(); k++) {
		const Checkpoint &c = *links[k];
		const std::string name = "checkpoint " + std::to_string(c.number);
		if (c.page_size != ps || ps == 0)
			return fail(EINVAL, name + ": page size " + std::to_string(c.page_size) +
						    " differs from the chain's " + std::to_string(ps));
		if (k && c.info.parent != links[k - 1]->number)
			return fail(EINVAL, name + ": its parent is checkpoint " +
						    std::to_string(c.info.parent) + ", not " +
						    std::to_string(links[k - 1]->number));
		for (size_t i = 0; i < c.pagemap.size(); i++) {
			const amber_pagemap_entry &e = c.pagemap[i];
			auto r = check_run(e.addr, e.nr_pages, e.flags, i ? &c.pagemap[i - 1] : nullptr,
					   ps);
			if (!r)
				return fail(EBADMSG, name + ": pages.img: run " + std::to_string(i) +
							    " at " + hex(e.addr) + ": " + r.error().msg);
			if (k == 0 && (e.flags & AMBER_RUN_F_PARENT))
				return fail(EBADMSG, name + ": pages " + hex(e.addr) + "-" +
							    hex(e.addr + uint64_t(e.nr_pages) * ps) +
							    " are unchanged since a parent checkpoint, but "
							    "it is the oldest of the chain");
		}
	}
	return ChainResolver(links, ps).run();
}

namespace {

// Pages of a run starting at sources[si] + sdone pages: contiguous
// addresses, at most UINT32_MAX pages.
uint64_t run_length(const std::vector<PageSource> &sources, size_t si, uint64_t sdone,
		    uint64_t ps)
{
	uint64_t nr = 0;
	uint64_t next = sources[si].addr + sdone * ps;
	for (; si < sources.size() && nr < UINT32_MAX; si++, sdone = 0) {
		const PageSource &s = sources[si];
		if (s.addr + sdone * ps != next)
			break;
		const uint64_t take = std::min<uint64_t>(s.nr_pages - sdone, UINT32_MAX - nr);
		nr += take;
		next += take * ps;
	}
	return nr;
}

} // namespace

Result<std::vector<amber_pagemap_entry>> write_full_pages(
	int out, const std::vector<const Checkpoint *> &links,
	const std::vector<PageSource> &sources, uint32_t page_size)
{
	const uint64_t ps = page_size;
	for (size_t i = 0; i < sources.size(); i++) {
		const PageSource &s = sources[i];
		if (s.link >= links.size() || s.nr_pages == 0 ||
		    (i && s.addr < sources[i - 1].addr + sources[i - 1].nr_pages * ps))
			return fail(EINVAL, "page source " + std::to_string(i) + " at " +
						    hex(s.addr) + ": bad or out of order");
	}
	std::vector<UniqueFd> in(links.size());
	for (size_t k = 0; k < links.size(); k++) {
		in[k] = UniqueFd(open(links[k]->pages_path.c_str(), O_RDONLY | O_CLOEXEC));
		if (!in[k])
			return fail_errno("cannot open " + links[k]->pages_path);
	}

	amber_pages_hdr hdr = {AMBER_PAGES_MAGIC, AMBER_PAGES_VERSION, page_size};
	AMBER_TRY(pwrite_full(out, &hdr, sizeof(hdr), 0));
	uint64_t pos = sizeof(hdr);

	XxhStatePtr st(XXH64_createState(), &XXH64_freeState);
	if (!st)
		return fail(ENOMEM, "xxhash state");
	std::unique_ptr<uint8_t[]> buf(new uint8_t[kChunk]);
	std::vector<amber_pagemap_entry> map;
	size_t si = 0;
	uint64_t sdone = 0;	// pages of sources[si] already written
	while (si < sources.size()) {
		const uint64_t addr = sources[si].addr + sdone * ps;
		const uint64_t nr = run_length(sources, si, sdone, ps);
		amber_page_run run = {addr, uint32_t(nr), 0};
		AMBER_TRY(pwrite_full(out, &run, sizeof(run), pos));
		pos += sizeof(run);
		const uint64_t data_pos = pos;

		XXH64_reset(st.get(), 0);
		for (uint64_t left = nr; left;) {
			const PageSource &s = sources[si];
			const uint64_t take = std::min<uint64_t>(s.nr_pages - sdone, left);
			uint64_t from = s.offset + sdone * ps;
			for (uint64_t bytes = take * ps; bytes;) {
				const size_t n = bytes < kChunk ? bytes : kChunk;
				if (auto r = pread_full(in[s.link].get(), buf.get(), n, from); !r)
					return wrap(r.error(), links[s.link]->pages_path + ": ");
				XXH64_update(st.get(), buf.get(), n);
				AMBER_TRY(pwrite_full(out, buf.get(), n, pos));
				from += n;
				pos += n;
				bytes -= n;
			}
			left -= take;
			sdone += take;
			if (sdone == s.nr_pages) {
				si++;
				sdone = 0;
			}
		}
		map.push_back({addr, uint32_t(nr), 0, data_pos, XXH64_digest(st.get())});
	}
	return map;
}

Result<void> verify_checkpoint_dir(const std::string &ckpt_dir)
{
	MetaFile m = AMBER_TRY(read_meta(ckpt_dir + "/" + kMetaFile));
	auto pm = parse_pagemap(m.section(AMBER_SEC_PAGEMAP));
	if (!pm)
		return wrap(pm.error(), "meta.img: section PAGEMAP: ");
	AMBER_TRY(verify_pages(ckpt_dir + "/" + kPagesFile, *pm));
	return {};
}

} // namespace amber
