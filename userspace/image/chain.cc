// SPDX-License-Identifier: GPL-2.0
// Incremental chains (image.h): where each page of a chain's newest link
// has its data (resolve_chain()), and a full pages file written from them
// (write_full_pages(), for compaction).
#include <algorithm>
#include <cstring>
#include <memory>

#include <fcntl.h>
#include <xxhash.h>

#include "common/io.h"
#include "common/names.h"
#include "image/compress.h"
#include "image/image.h"

namespace amber {

namespace {

using XxhStatePtr = std::unique_ptr<XXH64_state_t, decltype(&XXH64_freeState)>;
constexpr size_t kChunk = 1 << 20;

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

// Copies bytes from in at from to out at to through buf (kChunk bytes),
// feeding them to st. A read error is prefixed "in_name: " (unless empty).
Result<void> copy_hashed(int in, const std::string &in_name, uint64_t from, int out, uint64_t to,
			 uint64_t bytes, XXH64_state_t *st, uint8_t *buf)
{
	while (bytes) {
		const size_t n = bytes < kChunk ? bytes : kChunk;
		if (auto r = pread_full(in, buf, n, from); !r)
			return in_name.empty() ? r : wrap(r.error(), in_name + ": ");
		XXH64_update(st, buf, n);
		AMBER_TRY(pwrite_full(out, buf, n, to));
		from += n;
		to += n;
		bytes -= n;
	}
	return {};
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
		auto fd = open_pages(*links[k]);
		if (!fd)
			return wrap(fd.error(), "checkpoint " + std::to_string(links[k]->number) +
							": ");
		in[k] = std::move(*fd);
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
			AMBER_TRY(copy_hashed(in[s.link].get(), links[s.link]->pages_path,
					      s.offset + sdone * ps, out, pos, take * ps, st.get(),
					      buf.get()));
			pos += take * ps;
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

Result<std::vector<PageRange>> find_unchanged(int new_fd,
					      const std::vector<amber_pagemap_entry> &map,
					      const std::vector<const Checkpoint *> &parent,
					      uint32_t page_size, uint64_t unit)
{
	const uint64_t ps = page_size;
	if (ps == 0 || unit < ps || unit % ps)
		return fail(EINVAL, "unit " + std::to_string(unit) + " is not a multiple of the page size");
	std::vector<PageRange> out;
	// The blocks a data run covers whole: address and offset in new_fd.
	std::vector<std::pair<uint64_t, uint64_t>> blocks;
	for (const amber_pagemap_entry &e : map) {
		if (e.flags & AMBER_RUN_F_PARENT)
			continue;
		const uint64_t end = e.addr + e.nr_pages * ps;
		for (uint64_t a = (e.addr + unit - 1) / unit * unit; a + unit <= end; a += unit)
			blocks.emplace_back(a, e.offset + (a - e.addr));
	}
	if (blocks.empty() || parent.empty())
		return out;

	const std::vector<PageSource> src = AMBER_TRY(resolve_chain(parent));
	std::vector<UniqueFd> in(parent.size());
	std::unique_ptr<uint8_t[]> now(new uint8_t[unit]), was(new uint8_t[unit]);
	auto add = [&](uint64_t addr, uint64_t nr) {
		if (!out.empty() && out.back().addr + out.back().nr_pages * ps == addr)
			out.back().nr_pages += nr;
		else
			out.push_back({addr, nr});
	};
	for (const auto &[base, offset] : blocks) {
		bool read = false;
		// The first source that ends after base.
		auto it = std::upper_bound(src.begin(), src.end(), base,
					   [ps](uint64_t a, const PageSource &s) {
						   return a < s.addr + s.nr_pages * ps;
					   });
		for (uint64_t a = base; a < base + unit && it != src.end();) {
			if (it->addr >= base + unit)
				break;
			if (it->addr > a)
				a = it->addr;
			const uint64_t end = std::min(base + unit, it->addr + it->nr_pages * ps);
			if (!read) {
				if (auto r = pread_full(new_fd, now.get(), unit, offset); !r)
					return wrap(r.error(), "pages.img: ");
				read = true;
			}
			UniqueFd &fd = in[it->link];
			const Checkpoint &link = *parent[it->link];
			if (!fd) {
				auto opened = open_pages(link);
				if (!opened)
					return wrap(opened.error(),
						    "checkpoint " + std::to_string(link.number) + ": ");
				fd = std::move(*opened);
			}
			const uint64_t len = end - a;
			if (auto r = pread_full(fd.get(), was.get(), len, it->offset + (a - it->addr)); !r)
				return wrap(r.error(), link.pages_path + ": ");
			for (uint64_t p = 0; p < len; p += ps)
				if (!memcmp(now.get() + (a - base) + p, was.get() + p, ps))
					add(a + p, 1);
			a = end;
			++it;
		}
	}
	return out;
}

Result<std::vector<amber_pagemap_entry>> rewrite_unchanged(
	int in, int out, const std::vector<amber_pagemap_entry> &map,
	const std::vector<PageRange> &unchanged, uint32_t page_size)
{
	const uint64_t ps = page_size;
	// The runs to write: data runs keep their offset in `in`.
	std::vector<amber_pagemap_entry> runs;
	auto push = [&](uint64_t addr, uint64_t nr, uint32_t flags, uint64_t from) {
		if (!nr)
			return;
		if ((flags & AMBER_RUN_F_PARENT) && !runs.empty() &&
		    (runs.back().flags & AMBER_RUN_F_PARENT) &&
		    runs.back().addr + uint64_t(runs.back().nr_pages) * ps == addr &&
		    runs.back().nr_pages + nr <= UINT32_MAX) {
			runs.back().nr_pages += uint32_t(nr);
			return;
		}
		runs.push_back({addr, uint32_t(nr), flags, from, 0});
	};
	size_t u = 0;
	for (const amber_pagemap_entry &e : map) {
		const uint64_t end = e.addr + uint64_t(e.nr_pages) * ps;
		if (e.flags & AMBER_RUN_F_PARENT) {
			push(e.addr, e.nr_pages, e.flags, 0);
			continue;
		}
		uint64_t a = e.addr;
		for (; u < unchanged.size() && unchanged[u].addr < end; u++) {
			const PageRange &r = unchanged[u];
			const uint64_t r_end = r.addr + r.nr_pages * ps;
			if (r.addr < a || r_end > end || r.nr_pages == 0)
				return fail(EINVAL, "unchanged pages " + hex(r.addr) + "-" + hex(r_end) +
							    " are not inside one data run");
			push(a, (r.addr - a) / ps, 0, e.offset + (a - e.addr));
			push(r.addr, r.nr_pages, AMBER_RUN_F_PARENT, 0);
			a = r_end;
		}
		push(a, (end - a) / ps, 0, e.offset + (a - e.addr));
	}
	if (u != unchanged.size())
		return fail(EINVAL, "unchanged pages " + hex(unchanged[u].addr) +
					    " are not inside a data run");

	amber_pages_hdr hdr = {AMBER_PAGES_MAGIC, AMBER_PAGES_VERSION, page_size};
	AMBER_TRY(pwrite_full(out, &hdr, sizeof(hdr), 0));
	uint64_t pos = sizeof(hdr);
	XxhStatePtr st(XXH64_createState(), &XXH64_freeState);
	if (!st)
		return fail(ENOMEM, "xxhash state");
	std::unique_ptr<uint8_t[]> buf(new uint8_t[kChunk]);
	for (amber_pagemap_entry &e : runs) {
		amber_page_run run = {e.addr, e.nr_pages, e.flags};
		AMBER_TRY(pwrite_full(out, &run, sizeof(run), pos));
		pos += sizeof(run);
		const uint64_t from = e.offset;
		e.offset = pos;
		if (e.flags & AMBER_RUN_F_PARENT)
			continue;
		const uint64_t bytes = uint64_t(e.nr_pages) * ps;
		XXH64_reset(st.get(), 0);
		AMBER_TRY(copy_hashed(in, "", from, out, pos, bytes, st.get(), buf.get()));
		pos += bytes;
		e.xxh64 = XXH64_digest(st.get());
	}
	return runs;
}

} // namespace amber
