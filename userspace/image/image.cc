// SPDX-License-Identifier: GPL-2.0
#include "image/image.h"

#include "common/io.h"
#include "common/names.h"
#include "image/compress.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <unordered_set>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

namespace amber {

namespace {

using XxhStatePtr = std::unique_ptr<XXH64_state_t, decltype(&XXH64_freeState)>;

constexpr uint32_t kMaxSections = 64;

// meta.img version written, and the oldest one read (see image-format.md,
// "Versioning": 3 adds THREADS, TREE, QUEUES and the fd extras, 4 the
// connections waiting in TCP listeners' accept queues).
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

// Hashes len bytes at off into st, read with pread() into a buffer.
Result<void> hash_read(XXH64_state_t *st, int fd, uint64_t off, uint64_t len)
{
	std::unique_ptr<uint8_t[]> buf(new uint8_t[kChunk]);
	while (len) {
		size_t n = len < kChunk ? len : kChunk;
		AMBER_TRY(pread_full(fd, buf.get(), n, off));
		XXH64_update(st, buf.get(), n);
		off += n;
		len -= n;
	}
	return {};
}

// Hashes len bytes at off into st where they lie in the page cache
// (for_each_mapped()); what cannot be mapped is read. The caller checked
// that off + len is within the file.
Result<void> hash_into(XXH64_state_t *st, int fd, uint64_t off, uint64_t len)
{
	uint64_t left = for_each_mapped(fd, off, len, [&](const uint8_t *p, size_t n) {
		XXH64_update(st, p, n);
	});
	if (left)
		AMBER_TRY(hash_read(st, fd, off + len - left, left));
	return {};
}

// XXH64 of len bytes at off (hash_into()).
Result<uint64_t> hash_range(int fd, uint64_t off, uint64_t len)
{
	XxhStatePtr st(XXH64_createState(), &XXH64_freeState);
	if (!st)
		return fail(ENOMEM, "xxhash state");
	XXH64_reset(st.get(), 0);
	AMBER_TRY(hash_into(st.get(), fd, off, len));
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
	case AMBER_SEC_GHOSTS:
		return "GHOSTS";
	default:
		return "type " + std::to_string(type);
	}
}

Bytes encode_meta(uint32_t version, const std::vector<std::pair<uint32_t, ByteView>> &secs)
{
	const uint32_t n = secs.size();
	amber_image_hdr hdr = {};
	memcpy(hdr.magic, AMBER_IMAGE_MAGIC, sizeof(hdr.magic));
	hdr.version = version;
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
				   {AMBER_SEC_QUEUES, s.queues},
				   {AMBER_SEC_GHOSTS, s.ghosts}})
		if (!bytes.empty())
			secs.emplace_back(type, bytes);
	return encode_meta(kImageVersion, secs);
}

Result<uint64_t> check_run(uint64_t addr, uint32_t nr_pages, uint32_t flags,
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

struct PagesFollower::State {
	int fd;
	std::atomic<bool> done{false};	// the writer finished
	std::atomic<bool> stop{false};	// give up (destructor)
	Result<std::vector<amber_pagemap_entry>> result = fail(EINVAL, "not finished");
	uint32_t page_size = 0;
	std::thread thread;

	// Waits until the file holds `want` bytes: false when it never will
	// (the writer is done and the file is shorter) or on stop.
	bool wait_size(uint64_t want, uint64_t *size)
	{
		for (;;) {
			// done first: a size read after it is final.
			const bool final = done.load();
			struct stat st;
			if (fstat(fd, &st) < 0)
				return false;
			*size = uint64_t(st.st_size);
			if (*size >= want)
				return true;
			if (final || stop.load())
				return false;
			const struct timespec ts = {0, 2 * 1000 * 1000};
			nanosleep(&ts, nullptr);
		}
	}

	Result<std::vector<amber_pagemap_entry>> follow()
	{
		// What is hashed at once: not too little, to map few windows.
		constexpr uint64_t kPiece = uint64_t(8) << 20;
		uint64_t size = 0;
		if (!wait_size(sizeof(amber_pages_hdr), &size))
			return fail(EBADMSG, "pages.img: truncated header");
		auto hdr = read_pages_hdr(fd);
		if (!hdr)
			return wrap(hdr.error(), "pages.img: ");
		page_size = hdr->page_size;
		XxhStatePtr st(XXH64_createState(), &XXH64_freeState);
		if (!st)
			return fail(ENOMEM, "xxhash state");
		std::vector<amber_pagemap_entry> map;
		uint64_t pos = sizeof(amber_pages_hdr);
		for (;;) {
			if (!wait_size(pos + 1, &size)) {
				if (stop.load())
					return fail(ECANCELED, "stopped");
				break;	// the end of the file
			}
			const std::string where = "pages.img: run " + std::to_string(map.size());
			amber_page_run run;
			if (!wait_size(pos + sizeof(run), &size))
				return fail(EBADMSG, where + ": truncated");
			AMBER_TRY(pread_full(fd, &run, sizeof(run), pos));
			const std::string at = where + " at " + hex(run.addr) + ": ";
			auto len = check_run(run.addr, run.nr_pages, run.flags,
					     map.empty() ? nullptr : &map.back(), page_size);
			if (!len)
				return wrap(len.error(), at);
			pos += sizeof(run);
			XXH64_reset(st.get(), 0);
			for (uint64_t done_bytes = 0; done_bytes < *len;) {
				const uint64_t left = *len - done_bytes;
				if (!wait_size(pos + done_bytes + std::min(left, kPiece), &size) &&
				    size <= pos + done_bytes)
					return fail(EBADMSG, at + "truncated");
				const uint64_t n = std::min(left, size - (pos + done_bytes));
				AMBER_TRY(hash_into(st.get(), fd, pos + done_bytes, n));
				done_bytes += n;
			}
			map.push_back({run.addr, run.nr_pages, run.flags, pos,
				       *len ? XXH64_digest(st.get()) : 0});
			pos += *len;
		}
		return map;
	}
};

PagesFollower::PagesFollower(int fd) : s_(std::make_unique<State>())
{
	s_->fd = fd;
	s_->thread = std::thread([st = s_.get()] { st->result = st->follow(); });
}

PagesFollower::~PagesFollower()
{
	if (s_->thread.joinable()) {
		s_->stop = true;
		s_->thread.join();
	}
}

Result<std::vector<amber_pagemap_entry>> PagesFollower::finish(uint32_t *page_size)
{
	s_->done = true;
	s_->thread.join();
	if (page_size)
		*page_size = s_->page_size;
	return std::move(s_->result);
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
// Runs marked in unhashed (by index; may be shorter than map) are checked
// but not hashed.
static Result<uint32_t> verify_pages(const Checkpoint &c,
				     const std::vector<amber_pagemap_entry> &map,
				     const std::vector<bool> &unhashed = {})
{
	// Its errors name the file ("pages.img.zst: truncated ...").
	UniqueFd fd = AMBER_TRY(open_pages(c));
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
		const bool hash = i >= unhashed.size() || !unhashed[i];
		uint64_t h = 0;
		if (*len && hash) {
			auto r = hash_range(fd.get(), e.offset, *len);
			if (!r)
				return wrap(r.error(), where + ": ");
			h = *r;
		}
		if (hash && h != e.xxh64)
			return fail(EBADMSG, where + ": checksum mismatch");
		pos = e.offset + *len;
	}
	if (pos != size)
		return fail(EBADMSG, "pages.img: " + std::to_string(size - pos) +
					    " unexpected bytes after the last run");
	return hdr->page_size;
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

	Bytes copy(uint32_t type) const
	{
		ByteView v = section(type);
		return Bytes(v.begin(), v.end());
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
	if (const Attr *t = find_attr(attrs, AMBER_A_TIMERS)) {
		c.timers_attr = t->raw_bytes();
		auto timers = parse_timers(t->data);
		if (!timers)
			return wrap(timers.error(), "TIMERS: ");
		c.timers = std::move(*timers);
	}
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
	c.threads_raw = m.copy(AMBER_SEC_THREADS);
	c.tree_raw = m.copy(AMBER_SEC_TREE);
	c.queues_raw = m.copy(AMBER_SEC_QUEUES);
	c.ghosts_raw = m.copy(AMBER_SEC_GHOSTS);
	const bool have_tree = m.has(AMBER_SEC_TREE);
	for (uint32_t t : {AMBER_SEC_THREADS, AMBER_SEC_TREE, AMBER_SEC_QUEUES, AMBER_SEC_GHOSTS})
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
	auto ghosts = parse_ghosts(c.ghosts_raw);
	if (!ghosts)
		return wrap(ghosts.error(), "meta.img: section GHOSTS: ");
	c.ghosts = std::move(*ghosts);
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

// Whether a pages file of size bytes can be what map describes: its last
// run ends there for one of the page sizes a pages header may have (the
// pagemap gives offsets, not the page size). Bounds what a compressed pages
// file may decompress to by what the image says it holds.
bool pages_size_fits(const std::vector<amber_pagemap_entry> &map, uint64_t size)
{
	if (map.empty())
		return size == sizeof(amber_pages_hdr);
	const amber_pagemap_entry &e = map.back();
	for (uint64_t ps = 4096; ps <= (1u << 21); ps *= 2) {
		const uint64_t len = (e.flags & AMBER_RUN_F_PARENT) ? 0 : uint64_t(e.nr_pages) * ps;
		if (e.offset <= UINT64_MAX - len && e.offset + len == size)
			return true;
	}
	return false;
}

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

	c.info_raw = m.copy(AMBER_SEC_INFO);
	c.core_raw = m.copy(AMBER_SEC_CORE);
	c.vmas_raw = m.copy(AMBER_SEC_VMAS);
	c.fds_raw = m.copy(AMBER_SEC_FDS);

	auto info = parse_info(c.info_raw);
	if (!info)
		return wrap(info.error(), "meta.img: section INFO: ");
	c.info = std::move(*info);
	if (c.info.pages_zstd) {
		if (m.version < 6)
			return fail(EBADMSG, "meta.img: section INFO: a compressed pages file in a "
					     "version " + std::to_string(m.version) + " image");
		if (!pages_size_fits(c.pagemap, c.info.pages_zstd))
			return fail(EBADMSG, "meta.img: section INFO: the compressed pages file is "
					     "said to hold " + std::to_string(c.info.pages_zstd) +
					     " bytes, not what its PAGEMAP describes");
		c.pages_path = ckpt_dir + "/" + kPagesZstFile;
		c.pages_cache = new_pages_cache();
	}
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
	c.page_size = AMBER_TRY(verify_pages(c, c.pagemap));
	return c;
}

Result<void> verify_pages_except(Checkpoint &c, const std::vector<bool> &unhashed)
{
	c.page_size = AMBER_TRY(verify_pages(c, c.pagemap, unhashed));
	return {};
}

Result<uint32_t> pages_page_size(const std::string &path)
{
	UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_errno("pages.img: cannot open " + path);
	auto hdr = read_pages_hdr(fd.get());
	if (!hdr)
		return wrap(hdr.error(), "pages.img: ");
	return hdr->page_size;
}

Result<uint32_t> pages_page_size(const Checkpoint &c)
{
	UniqueFd fd = AMBER_TRY(open_pages(c));
	auto hdr = read_pages_hdr(fd.get());
	if (!hdr)
		return wrap(hdr.error(), "pages.img: ");
	return hdr->page_size;
}

Result<Checkpoint> load_checkpoint_meta(const std::string &ckpt_dir, uint32_t number)
{
	MetaFile m;
	return load_meta_only(ckpt_dir, number, m);
}

Result<void> verify_checkpoint_dir(const std::string &ckpt_dir)
{
	MetaFile m = AMBER_TRY(read_meta(ckpt_dir + "/" + kMetaFile));
	auto pm = parse_pagemap(m.section(AMBER_SEC_PAGEMAP));
	if (!pm)
		return wrap(pm.error(), "meta.img: section PAGEMAP: ");
	auto info = parse_info(m.copy(AMBER_SEC_INFO));
	if (!info)
		return wrap(info.error(), "meta.img: section INFO: ");
	Checkpoint c;
	c.info = std::move(*info);
	c.pages_path = ckpt_dir + "/" + (c.info.pages_zstd ? kPagesZstFile : kPagesFile);
	AMBER_TRY(verify_pages(c, *pm));
	return {};
}

} // namespace amber
