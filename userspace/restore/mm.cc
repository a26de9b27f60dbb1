// SPDX-License-Identifier: GPL-2.0
// Memory on restore: the stub's own maps and the move of its vDSO
// (plan_vdso()), file-backed VMAs (the fds the kernel maps them through),
// the private memory a tree's stubs prefill and share copy-on-write
// (plan_prefill(), reserve_prefill()), and the shared anonymous memory of a
// tree, one memfd per object filled from the pages files (plan_shmem(),
// create_shmem()). The pages themselves: image/chain.cc; the kernel maps
// the rest from AMBER_CMD_RESTORE's VMAS.
#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <linux/amber.h>

#include "common/io.h"
#include "common/names.h"
#include "image/compress.h"
#include "restore/core.h"

namespace amber {

namespace {

// Splits off the next blank-separated field of s.
std::string_view next_field(std::string_view &s)
{
	size_t b = s.find_first_not_of(' ');
	if (b == std::string_view::npos) {
		s = {};
		return {};
	}
	s.remove_prefix(b);
	size_t e = s.find(' ');
	std::string_view f = s.substr(0, e);
	s.remove_prefix(e == std::string_view::npos ? s.size() : e);
	return f;
}

bool parse_hex(std::string_view s, uint64_t *v)
{
	auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v, 16);
	return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

const MapEntry *find_map(const std::vector<MapEntry> &maps, std::string_view name)
{
	for (const MapEntry &m : maps)
		if (m.name == name)
			return &m;
	return nullptr;
}

const Vma *find_vma_flag(const std::vector<Vma> &vmas, uint32_t flag)
{
	for (const Vma &v : vmas)
		if (v.flags & flag)
			return &v;
	return nullptr;
}

// A VMA amber.ko maps first and then madvise()s (AMBER_VMA_F_ADVICE):
// mapped next to a prefilled VMA with the same flags before the advice,
// the kernel merges the two and the restore fails with EEXIST. A thread
// stack on Linux 6.7 and later is such a VMA (MAP_STACK sets
// VM_NOHUGEPAGE), next to the TLS block glibc maps above it. (A read-only
// charged VMA that merges is mapped again by the kernel.)
static bool advised(const Vma &v)
{
	return v.flags & AMBER_VMA_F_ADVICE;
}

bool prefill_eligible(const std::vector<Vma> &vmas, size_t k, const std::vector<Range> &busy)
{
	const Vma &v = vmas[k];
	if ((k > 0 && vmas[k - 1].end == v.start && advised(vmas[k - 1])) ||
	    (k + 1 < vmas.size() && vmas[k + 1].start == v.end && advised(vmas[k + 1])))
		return false;

	const uint32_t plain = AMBER_VMA_F_ANON | AMBER_VMA_F_HEAP | AMBER_VMA_F_MAYWRITE |
			       AMBER_VMA_F_ACCOUNT;
	Range r{v.start, v.end};

	// The stub maps it writable, then mprotect()s it: that charges it
	// (VM_ACCOUNT), so only a VMA that was charged qualifies.
	if (!(v.flags & AMBER_VMA_F_ANON) || !(v.flags & AMBER_VMA_F_ACCOUNT) ||
	    (v.flags & ~plain) || !v.prot || r.empty())
		return false;
	return std::none_of(busy.begin(), busy.end(), [&](const Range &b) { return b.overlaps(r); });
}

// Copies len bytes between files at the given offsets.
Result<void> copy_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len,
			const std::string &name)
{
	static thread_local std::vector<uint8_t> buf(1 << 20);
	while (len) {
		size_t n = size_t(std::min<uint64_t>(len, buf.size()));
		ssize_t r = pread(in, buf.data(), n, off_t(in_off));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? fail_errno(name + ": reading pages")
				     : fail(EIO, name + ": pages file ends early");
		for (ssize_t done = 0; done < r;) {
			ssize_t w = pwrite(out, buf.data() + done, size_t(r - done),
					   off_t(out_off + done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return fail_errno(name + ": writing shared memory");
			done += w;
		}
		in_off += uint64_t(r);
		out_off += uint64_t(r);
		len -= uint64_t(r);
	}
	return {};
}

} // namespace

std::string range_str(const Range &r)
{
	return hex(r.start) + "-" + hex(r.end);
}

Result<std::vector<MapEntry>> parse_maps(std::string_view text)
{
	std::vector<MapEntry> maps;
	size_t lineno = 0;

	while (!text.empty()) {
		size_t nl = text.find('\n');
		std::string_view line = text.substr(0, nl);
		text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
		lineno++;
		if (line.empty())
			continue;

		std::string_view rest = line;
		std::string_view addrs = next_field(rest);
		for (int i = 0; i < 4; i++)	// perms, offset, dev, inode
			if (next_field(rest).empty())
				return fail(EPROTO, "maps line " + std::to_string(lineno) +
					    ": too few fields");
		size_t dash = addrs.find('-');
		MapEntry m;
		if (dash == std::string_view::npos ||
		    !parse_hex(addrs.substr(0, dash), &m.range.start) ||
		    !parse_hex(addrs.substr(dash + 1), &m.range.end) ||
		    m.range.end < m.range.start)
			return fail(EPROTO, "maps line " + std::to_string(lineno) +
				    ": bad address range");
		size_t b = rest.find_first_not_of(' ');
		if (b != std::string_view::npos)
			m.name = rest.substr(b);
		maps.push_back(std::move(m));
	}
	return maps;
}

Result<std::vector<MapEntry>> read_own_maps()
{
	std::ifstream in("/proc/self/maps");
	if (!in)
		return fail_errno("/proc/self/maps");
	std::stringstream ss;
	ss << in.rdbuf();
	auto maps = parse_maps(ss.str());
	if (!maps)
		return wrap(maps.error(), "/proc/self/maps: ");
	return maps;
}

Result<VdsoPlan> plan_vdso(const std::vector<MapEntry> &own, const std::vector<Vma> &img)
{
	VdsoPlan p;
	const MapEntry *own_vvar = find_map(own, "[vvar]");
	const MapEntry *own_vdso = find_map(own, "[vdso]");
	const Vma *img_vvar = find_vma_flag(img, AMBER_VMA_F_VVAR);
	const Vma *img_vdso = find_vma_flag(img, AMBER_VMA_F_VDSO);

	if (own_vvar)
		p.cur_vvar = own_vvar->range;
	if (own_vdso)
		p.cur_vdso = own_vdso->range;
	if (img_vvar)
		p.img_vvar = {img_vvar->start, img_vvar->end};
	if (img_vdso)
		p.img_vdso = {img_vdso->start, img_vdso->end};

	if (!img_vvar && !img_vdso) {
		// The process ran without a vDSO: the stub drops its own.
		p.action = (own_vvar || own_vdso) ? VdsoPlan::Action::Unmap
						  : VdsoPlan::Action::None;
		return p;
	}
	if (p.cur_vvar.size() != p.img_vvar.size() || p.cur_vdso.size() != p.img_vdso.size() ||
	    p.img_vvar.end < p.img_vvar.start || p.img_vdso.end < p.img_vdso.start)
		return fail(0, "vdso size differs: restore needs the same kernel (image: vvar " +
			    std::to_string(p.img_vvar.size()) + ", vdso " +
			    std::to_string(p.img_vdso.size()) + " bytes; this kernel: vvar " +
			    std::to_string(p.cur_vvar.size()) + ", vdso " +
			    std::to_string(p.cur_vdso.size()) + " bytes)");
	if (p.img_vvar.overlaps(p.img_vdso))
		return fail(0, "image: [vvar] " + range_str(p.img_vvar) + " overlaps [vdso] " +
			    range_str(p.img_vdso));

	for (const MapEntry &m : own) {
		if (&m == own_vvar || &m == own_vdso)
			continue;
		for (const Range *r : {&p.img_vvar, &p.img_vdso}) {
			if (!m.range.overlaps(*r))
				continue;
			return fail(0, std::string("the image's ") +
				    (r == &p.img_vvar ? "[vvar] " : "[vdso] ") + range_str(*r) +
				    " overlaps amber restore's own mapping " + range_str(m.range) +
				    (m.name.empty() ? "" : " " + m.name) +
				    "; its layout is randomized, run amber restore again");
		}
	}
	p.action = VdsoPlan::Action::Move;
	return p;
}

int pick_scratch_chunk(uint64_t base, uint64_t span, const Range &a, const Range &b)
{
	for (int i = 0; i < 5; i++) {
		Range c{base + i * span, base + (i + 1) * span};
		if (!c.overlaps(a) && !c.overlaps(b))
			return i;
	}
	return -1;
}

std::vector<std::vector<PrefillPick>> plan_prefill(const std::vector<const std::vector<Vma> *> &vmas,
						   const std::vector<int> &parent,
						   const std::vector<Range> &busy, bool all)
{
	const size_t n = vmas.size();
	// Eligible ranges of each process: (start, end) -> VMA index.
	std::vector<std::map<std::pair<uint64_t, uint64_t>, size_t>> elig(n);
	std::vector<std::vector<size_t>> children(n);
	for (size_t i = 0; i < n; i++) {
		if (parent[i] >= 0 && size_t(parent[i]) < n)
			children[parent[i]].push_back(i);
		if (!vmas[i])
			continue;
		for (size_t k = 0; k < vmas[i]->size(); k++)
			if (prefill_eligible(*vmas[i], k, busy))
				elig[i][{(*vmas[i])[k].start, (*vmas[i])[k].end}] = k;
	}

	std::vector<std::vector<PrefillPick>> out(n);
	std::vector<std::map<std::pair<uint64_t, uint64_t>, size_t>> picked(n);
	std::vector<bool> done(n);
	// Parents before children, whatever the order of the indexes.
	std::vector<size_t> todo;
	for (size_t i = 0; i < n; i++)
		if (parent[i] < 0 || size_t(parent[i]) >= n)
			todo.push_back(i);
	while (!todo.empty()) {
		size_t i = todo.back();
		todo.pop_back();
		if (done[i])
			continue;
		done[i] = true;
		for (size_t c : children[i])
			todo.push_back(c);
		int p = parent[i];
		for (const auto &[range, k] : elig[i]) {
			bool inherited = p >= 0 && size_t(p) < n && picked[p].count(range);
			bool wanted = all || inherited ||
				      std::any_of(children[i].begin(), children[i].end(),
						  [&](size_t c) { return elig[c].count(range) > 0; });
			if (!wanted)
				continue;
			picked[i][range] = k;
			out[i].push_back({k, inherited});
		}
	}
	return out;
}

std::vector<PrefillSeg> prefill_segs(const std::vector<PageSource> &sources, Range r,
				     uint64_t page_size, const std::vector<int> &link_fds)
{
	std::vector<PrefillSeg> out;
	for (const PageSource &s : sources) {
		uint64_t lo = std::max(s.addr, r.start);
		uint64_t hi = std::min(s.addr + s.nr_pages * page_size, r.end);
		if (lo >= hi || s.link >= link_fds.size())
			continue;
		out.push_back({lo, hi - lo, link_fds[s.link], s.offset + (lo - s.addr)});
	}
	std::sort(out.begin(), out.end(),
		  [](const PrefillSeg &a, const PrefillSeg &b) { return a.addr < b.addr; });
	return out;
}

std::vector<std::vector<StubPageCheck>> plan_page_checks(const Checkpoint &c,
							 const std::vector<PrefillPick> &picks,
							 std::vector<bool> *unhashed)
{
	const uint64_t ps = c.page_size;
	std::vector<std::vector<StubPageCheck>> out(picks.size());
	unhashed->assign(c.pagemap.size(), false);
	size_t run = 0;
	for (size_t i = 0; i < picks.size(); i++) {
		const Vma &v = c.vmas.at(picks[i].vma);
		while (run < c.pagemap.size() && c.pagemap[run].addr < v.start)
			run++;
		for (; run < c.pagemap.size(); run++) {
			const amber_pagemap_entry &e = c.pagemap[run];
			const uint64_t len = uint64_t(e.nr_pages) * ps;
			if (e.addr >= v.end)
				break;
			if ((e.flags & AMBER_RUN_F_PARENT) || e.addr + len > v.end)
				continue;
			out[i].push_back({e.addr, len, e.xxh64, c.number, uint32_t(run)});
			(*unhashed)[run] = true;
		}
	}
	return out;
}

std::vector<StubPrefill> plan_stub_prefill(const Checkpoint &c,
					   const std::vector<PageSource> &sources,
					   const std::vector<PrefillPick> &picks,
					   const std::vector<int> &link_fds,
					   std::vector<std::vector<StubPageCheck>> checks)
{
	std::vector<StubPrefill> out;
	for (size_t i = 0; i < picks.size(); i++) {
		const Vma &v = c.vmas.at(picks[i].vma);
		StubPrefill f;
		f.range = {v.start, v.end};
		f.prot = int(v.prot);
		f.inherited = picks[i].inherited;
		f.segs = prefill_segs(sources, f.range, c.page_size, link_fds);
		if (i < checks.size())
			f.checks = std::move(checks[i]);
		out.push_back(std::move(f));
	}
	return out;
}

namespace {

// The data of p's page at addr (its resolved chain) into buf; false for a
// page without data (zero) or one that cannot be read.
bool read_page(const PageInput &p, uint64_t addr, std::map<uint32_t, UniqueFd> &fds,
	       std::vector<uint8_t> &buf)
{
	const uint64_t ps = p.ckpt->page_size;
	const std::vector<PageSource> &src = *p.sources;
	auto it = std::upper_bound(src.begin(), src.end(), addr,
				   [](uint64_t a, const PageSource &s) { return a < s.addr; });
	if (it == src.begin() || addr >= (--it)->addr + it->nr_pages * ps ||
	    it->link >= p.chain->size())
		return false;
	UniqueFd &fd = fds[it->link];
	if (!fd) {
		auto f = open_pages((*p.chain)[it->link]);
		if (!f)
			return false;
		fd = std::move(*f);
	}
	buf.resize(ps);
	return pread_exact(fd.get(), buf.data(), ps, it->offset + (addr - it->addr)) == 0;
}

} // namespace

bool mostly_shared(const PageInput &parent, const PageInput &child, Range r)
{
	constexpr uint64_t kSamples = 32;
	const uint64_t ps = child.ckpt->page_size;
	if (!ps || ps != parent.ckpt->page_size)
		return true;
	const uint64_t pages = r.size() / ps;
	std::map<uint32_t, UniqueFd> pfds, cfds;
	std::vector<uint8_t> a, b;
	uint64_t n = std::min(kSamples, pages), equal = 0;
	for (uint64_t k = 0; k < n; k++) {
		const uint64_t addr = r.start + (k * pages / n) * ps;
		const bool pa = read_page(parent, addr, pfds, a);
		const bool ca = read_page(child, addr, cfds, b);
		if (pa == ca && (!pa || a == b))
			equal++;
	}
	return 2 * equal >= n;
}

bool vma_has_file(const Vma &v)
{
	constexpr uint32_t no_file = AMBER_VMA_F_ANON | AMBER_VMA_F_SHMEM |
				     AMBER_VMA_F_VDSO | AMBER_VMA_F_VVAR;
	return !(v.flags & no_file) && !v.path.empty() && v.path[0] == '/';
}

bool vma_needs_write(const Vma &v)
{
	return (v.flags & AMBER_VMA_F_SHARED) && (v.flags & AMBER_VMA_F_MAYWRITE);
}

void plan_shmem(SharedPlan &sp, const std::vector<ProcImage> &procs)
{
	std::map<std::pair<uint64_t, uint64_t>, int> shm;
	for (size_t pi = 0; pi < procs.size(); pi++) {
		const auto &vmas = procs[pi].ckpt->vmas;
		for (size_t vi = 0; vi < vmas.size(); vi++) {
			const Vma &v = vmas[vi];
			if (!(v.flags & AMBER_VMA_F_SHMEM) || !v.ino)
				continue;
			auto [it, added] = shm.emplace(std::make_pair(v.dev, v.ino),
						       int(sp.shmem.size()));
			if (added) {
				SharedMem m;
				m.dev = v.dev;
				m.ino = v.ino;
				sp.shmem.push_back(m);
			}
			SharedMem &m = sp.shmem[it->second];
			m.size = std::max(m.size, v.file_size);
			m.vmas.emplace_back(int(pi), int(vi));
			sp.vma_shmem[pi][int(vi)] = it->second;
		}
	}
}

namespace {

// A file of the kind a shared anonymous mapping has ("/dev/zero (deleted)"
// in /proc/PID/maps, as before the checkpoint; a memfd would read
// "/memfd:..."): mapped here, opened again through /proc/self/map_files (as
// CRIU does; root only), unmapped.
Result<UniqueFd> new_shmem_file(uint64_t size, const std::string &name)
{
	size_t len = size_t(std::max<uint64_t>(size, uint64_t(sysconf(_SC_PAGESIZE))));
	void *a = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return fail_errno(name + ": mmap");
	auto lo = reinterpret_cast<uintptr_t>(a);
	std::string path = fmt::format("/proc/self/map_files/{:x}-{:x}", lo, lo + len);
	UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
	int err = errno;
	munmap(a, len);
	if (!fd) {
		errno = err;
		return fail_errno(name + ": opening " + path);
	}
	return fd;
}

} // namespace

Result<void> create_shmem(const SharedPlan &sp, const std::vector<PageInput> &procs,
			  SharedFds &out)
{
	for (size_t k = 0; k < sp.shmem.size(); k++) {
		const SharedMem &m = sp.shmem[k];
		std::string name = "shared memory " + std::to_string(m.dev) + ":" +
				   std::to_string(m.ino);
		UniqueFd fd = AMBER_TRY(new_shmem_file(m.size, name));
		if (ftruncate(fd.get(), off_t(m.size)))
			return fail_errno(name + ": ftruncate " + std::to_string(m.size));
		for (const auto &[pi, vi] : m.vmas) {
			const PageInput &p = procs[pi];
			const Vma &v = p.ckpt->vmas[vi];
			uint32_t ps = p.ckpt->page_size;
			std::string vname = p.name + ": " + name;
			std::vector<UniqueFd> links(p.chain->size());
			for (const PageSource &src : *p.sources) {
				uint64_t lo = std::max(src.addr, v.start);
				uint64_t hi = std::min(src.addr + src.nr_pages * ps, v.end);
				if (lo >= hi)
					continue;
				uint64_t dst = shmem_offset(v, lo, ps);
				if (dst + (hi - lo) > m.size)
					return fail(EINVAL, vname + ": pages beyond its size " +
								    std::to_string(m.size));
				UniqueFd &lf = links.at(src.link);
				if (!lf)
					lf = AMBER_TRY(open_pages((*p.chain)[src.link]));
				AMBER_TRY(copy_range(lf.get(), src.offset + (lo - src.addr), fd.get(),
						     dst, hi - lo, vname));
			}
		}
		out.shmem.push_back(std::move(fd));
	}
	return {};
}

Result<void> map_anon(AnonMapping &m, size_t size, const std::string &what, bool shared)
{
	m.size = size;
	m.addr = mmap(nullptr, m.size, PROT_READ | PROT_WRITE,
		      (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
	if (m.addr == MAP_FAILED)
		return fail_errno("mmap of " + what);
	return {};
}

Result<std::vector<std::vector<PrefillPick>>> reserve_prefill(
	const std::vector<const std::vector<Vma> *> &vmas, const std::vector<int> &parent,
	Reservation &res, bool all)
{
	std::vector<Range> busy;
	for (const std::vector<Vma> *vs : vmas)
		for (size_t i = 0; vs && i < vs->size(); i++)
			if ((*vs)[i].flags & (AMBER_VMA_F_VDSO | AMBER_VMA_F_VVAR))
				busy.push_back({(*vs)[i].start, (*vs)[i].end});	// where a stub moves its vDSO
	for (const MapEntry &m : AMBER_TRY(read_own_maps()))
		busy.push_back(m.range);

	for (int attempt = 0; attempt < 4; attempt++) {
		auto picks = plan_prefill(vmas, parent, busy, all);
		std::vector<Range> want;
		for (size_t i = 0; i < picks.size(); i++)
			for (const PrefillPick &k : picks[i])
				want.push_back({(*vmas[i])[k.vma].start, (*vmas[i])[k.vma].end});
		std::sort(want.begin(), want.end(),
			  [](const Range &a, const Range &b) { return a.start < b.start; });
		std::vector<Range> merged;
		for (const Range &r : want)
			if (!merged.empty() && r.start <= merged.back().end)
				merged.back().end = std::max(merged.back().end, r.end);
			else
				merged.push_back(r);
		bool clash = false;
		for (const Range &r : merged) {
			void *want_at = reinterpret_cast<void *>(r.start);
			void *a = mmap(want_at, r.size(), PROT_NONE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
				       -1, 0);
			if (a == want_at) {
				res.ranges.push_back(r);
				continue;
			}
			if (a != MAP_FAILED)
				munmap(a, r.size());
			busy.push_back(r);	// taken meanwhile: not prefilled
			clash = true;
		}
		if (!clash)
			return picks;
		res.clear();
	}
	return std::vector<std::vector<PrefillPick>>(vmas.size());
}

} // namespace amber
