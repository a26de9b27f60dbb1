// SPDX-License-Identifier: GPL-2.0
// Lazy restore: planning the fill and the filler (lazy.h).
#include "restore/lazy.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <fstream>

#include <dirent.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/amber.h>
#include <xxhash.h>

#include "common/attr.h"
#include "common/io.h"
#include "common/names.h"

namespace amber {

// ---- LazyMap ----

LazyExtent LazyMap::clip(const LazyExtent &e, uint64_t start, uint64_t end)
{
	LazyExtent c = e;
	start = std::max(start, e.addr);
	end = std::min(end, e.end());
	c.off = e.off + (start - e.addr);
	c.addr = start;
	c.len = end > start ? end - start : 0;
	return c;
}

void LazyMap::add(const LazyExtent &e)
{
	if (e.len)
		m_[e.addr] = e;
}

std::optional<LazyExtent> LazyMap::find(uint64_t addr, uint64_t chunk) const
{
	auto it = m_.upper_bound(addr);
	if (it == m_.begin())
		return std::nullopt;
	--it;
	if (addr >= it->second.end())
		return std::nullopt;
	uint64_t lo = addr & ~(chunk - 1);
	return clip(it->second, lo, lo + chunk);
}

std::optional<LazyExtent> LazyMap::first(uint64_t chunk) const
{
	if (m_.empty())
		return std::nullopt;
	const LazyExtent &e = m_.begin()->second;
	uint64_t lo = e.addr & ~(chunk - 1);
	return clip(e, lo, lo + chunk);
}

void LazyMap::remove(uint64_t start, uint64_t end)
{
	if (start >= end)
		return;
	auto it = m_.upper_bound(start);
	if (it != m_.begin() && std::prev(it)->second.end() > start)
		--it;
	std::vector<LazyExtent> keep;
	while (it != m_.end() && it->second.addr < end) {
		const LazyExtent e = it->second;
		it = m_.erase(it);
		if (e.addr < start)
			keep.push_back(clip(e, e.addr, start));
		if (e.end() > end)
			keep.push_back(clip(e, end, e.end()));
	}
	for (const LazyExtent &k : keep)
		add(k);
}

void LazyMap::remap(uint64_t from, uint64_t to, uint64_t len)
{
	std::vector<LazyExtent> moved;
	for (const LazyExtent &e : extents())
		if (e.addr < from + len && e.end() > from)
			moved.push_back(clip(e, from, from + len));
	remove(from, from + len);
	// The kernel unmapped the target range first (an UNMAP event came,
	// or nothing was there).
	remove(to, to + len);
	for (LazyExtent e : moved) {
		e.addr = e.addr - from + to;
		add(e);
	}
}

uint64_t LazyMap::bytes() const
{
	uint64_t n = 0;
	for (const auto &[a, e] : m_)
		n += e.len;
	return n;
}

std::vector<LazyExtent> LazyMap::extents() const
{
	std::vector<LazyExtent> out;
	for (const auto &[a, e] : m_)
		out.push_back(e);
	return out;
}

// ---- planning ----

LazyPlan plan_lazy(const std::vector<StubPrefill> &prefill)
{
	LazyPlan p;
	for (const StubPrefill &f : prefill) {
		// Checks lie wholly in one segment (a run is contiguous in its
		// file and in memory): record where.
		size_t first_check = p.checks.size();
		for (const StubPageCheck &c : f.checks) {
			LazyCheck k;
			k.addr = c.addr;
			k.len = c.len;
			k.xxh64 = c.xxh64;
			k.number = c.number;
			k.run = c.run;
			for (const PrefillSeg &s : f.segs)
				if (c.addr >= s.addr && c.addr + c.len <= s.addr + s.len) {
					k.fd = s.fd;
					k.off = s.off + (c.addr - s.addr);
				}
			p.checks.push_back(k);
		}
		for (const PrefillSeg &s : f.segs) {
			uint64_t at = s.addr;
			const uint64_t end = s.addr + s.len;
			while (at < end) {
				LazyExtent e;
				e.addr = at;
				e.fd = s.fd;
				e.off = s.off + (at - s.addr);
				uint64_t stop = end;
				for (size_t k = first_check; k < p.checks.size(); k++) {
					const LazyCheck &c = p.checks[k];
					if (c.fd < 0)
						continue;
					if (at >= c.addr && at < c.addr + c.len) {
						e.check = int(k);
						stop = std::min(stop, c.addr + c.len);
					} else if (c.addr > at) {
						stop = std::min(stop, c.addr);
					}
				}
				e.len = stop - at;
				p.extents.push_back(e);
				at = stop;
			}
		}
	}
	return p;
}

std::optional<LazyExtent> after_eexist(const LazyExtent &p, int64_t copied, uint64_t page_size)
{
	uint64_t skip = (copied > 0 ? uint64_t(copied) : 0) + page_size;
	if (skip >= p.len)
		return std::nullopt;
	LazyExtent r = p;
	r.addr += skip;
	r.off += skip;
	r.len -= skip;
	return r;
}

Result<void> lazy_fill_request(NetlinkClient &nl, pid_t pid, int uffd_fd)
{
	AttrWriter w;
	w.put_u32(AMBER_A_PID, uint32_t(pid));
	if (uffd_fd >= 0)
		w.put_u32(AMBER_A_UFFD_FD, uint32_t(uffd_fd));
	auto r = nl.transact(AMBER_CMD_LAZY_FILL, w.view(), 10000);
	if (!r)
		return tl::unexpected(r.error());
	return {};
}

void kill_descendants(pid_t pid)
{
	kill(pid, SIGKILL);
	std::string dir = "/proc/" + std::to_string(pid) + "/task";
	DIR *d = opendir(dir.c_str());
	if (!d)
		return;
	std::vector<pid_t> kids;
	while (struct dirent *e = readdir(d)) {
		if (e->d_name[0] == '.')
			continue;
		std::ifstream in(dir + "/" + e->d_name + "/children");
		pid_t k;
		while (in >> k)
			kids.push_back(k);
	}
	closedir(d);
	for (pid_t k : kids)
		kill_descendants(k);
}

// ---- the filler ----

Result<void> LazyFiller::map_files()
{
	for (const LazyExtent &e : plan.extents) {
		if (maps.count(e.fd))
			continue;
		struct stat st;
		if (fstat(e.fd, &st))
			return fail_errno(paths[e.fd] + ": fstat");
		void *m = nullptr;
		if (st.st_size > 0) {
			m = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_SHARED, e.fd, 0);
			if (m == MAP_FAILED)
				return fail_errno(paths[e.fd] + ": mmap for the lazy fill");
			madvise(m, size_t(st.st_size), MADV_SEQUENTIAL);
		}
		maps[e.fd] = {static_cast<const uint8_t *>(m), uint64_t(st.st_size)};
	}
	return {};
}

namespace {

constexpr uint64_t kChunk = uint64_t(1) << 20;	// copied at once, a power of two

class Filler {
public:
	explicit Filler(LazyFiller &f) : f_(f), ps_(uint64_t(sysconf(_SC_PAGESIZE)))
	{
		Target t;
		t.uffd = f.uffd.get();
		for (const LazyExtent &e : f.plan.extents)
			t.map.add(e);
		targets_.push_back(std::move(t));
	}
	~Filler()
	{
		for (size_t i = 1; i < targets_.size(); i++)
			close(targets_[i].uffd);
	}

	Result<void> run();
	std::string done_;	// the line saying it is complete

private:
	struct Target {
		int uffd = -1;
		LazyMap map;
		bool gone = false;
	};
	struct Fault {
		size_t target;
		uint64_t addr;
	};

	Result<void> drain(size_t t);
	Result<void> verify(int check);
	Result<void> copy(size_t t, const LazyExtent &p);
	Result<void> serve(size_t t, uint64_t addr);
	Result<void> damaged(const LazyCheck &c, const std::string &why);
	void gone(size_t t)
	{
		targets_[t].gone = true;
		targets_[t].map = LazyMap();
	}

	LazyFiller &f_;
	const uint64_t ps_;
	std::vector<Target> targets_;
	std::deque<Fault> faults_;
	uint64_t filled_ = 0;
};

// Reads every message waiting on target t's userfaultfd.
Result<void> Filler::drain(size_t t)
{
	for (;;) {
		struct uffd_msg msg;
		ssize_t n = read(targets_[t].uffd, &msg, sizeof(msg));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return {};
		if (n != ssize_t(sizeof(msg)))
			return fail_errno("lazy restore: reading the userfaultfd");
		switch (msg.event) {
		case UFFD_EVENT_PAGEFAULT:
			faults_.push_back({t, msg.arg.pagefault.address & ~(ps_ - 1)});
			break;
		case UFFD_EVENT_FORK: {
			// The child misses what the parent misses now.
			Target c;
			c.uffd = int(msg.arg.fork.ufd);
			c.map = targets_[t].map;
			targets_.push_back(std::move(c));
			// Pinned under the restored pid: if we die, amber.ko
			// kills it and its descendants. Best effort: it fails
			// only once the restored process is gone.
			if (f_.nl)
				(void)lazy_fill_request(*f_.nl, f_.pid, int(msg.arg.fork.ufd));
			break;
		}
		case UFFD_EVENT_REMAP:
			targets_[t].map.remap(msg.arg.remap.from, msg.arg.remap.to,
					      msg.arg.remap.len);
			break;
		case UFFD_EVENT_REMOVE:
		case UFFD_EVENT_UNMAP:
			targets_[t].map.remove(msg.arg.remove.start, msg.arg.remove.end);
			break;
		default:
			break;
		}
	}
}

Result<void> Filler::damaged(const LazyCheck &c, const std::string &why)
{
	// Every thread touching the run waits in the fault: none gets a page.
	pidfd_send_signal(f_.pidfd.get(), SIGKILL);
	kill_descendants(f_.pid);
	return fail(EBADMSG, "lazy restore of pid " + std::to_string(f_.pid) + ": checkpoint " +
				     std::to_string(c.number) + ": " + f_.paths[c.fd] + ": run " +
				     std::to_string(c.run) + " at " + hex(c.addr) + "-" +
				     hex(c.addr + c.len) + ": " + why + "; pid " +
				     std::to_string(f_.pid) + " killed");
}

Result<void> Filler::verify(int check)
{
	if (check < 0)
		return {};
	LazyCheck &c = f_.plan.checks[size_t(check)];
	if (c.verified)
		return {};
	const auto &[base, size] = f_.maps.at(c.fd);
	if (c.off > size || c.len > size - c.off)
		return damaged(c, "the pages file ends before the run");
	if (XXH64(base + c.off, size_t(c.len), 0) != c.xxh64)
		return damaged(c, "checksum mismatch");
	c.verified = true;
	return {};
}

// Copies piece p into target t (what is still missing of it: p may have
// been filled, removed or moved meanwhile by the process's own actions).
Result<void> Filler::copy(size_t t, const LazyExtent &want)
{
	std::optional<LazyExtent> p = want;
	bool one_page = false;
	while (p && !targets_[t].gone) {
		AMBER_TRY(verify(p->check));
		const uint8_t *base = f_.maps.at(p->fd).first;
		struct uffdio_copy c = {};
		c.dst = p->addr;
		c.src = uint64_t(base + p->off);
		c.len = one_page ? ps_ : p->len;
		if (ioctl(targets_[t].uffd, UFFDIO_COPY, &c) == 0) {
			targets_[t].map.remove(p->addr, p->addr + c.len);
			filled_ += c.len;
			if (c.len == p->len)
				return {};
			p = after_eexist(*p, int64_t(c.len) - int64_t(ps_), ps_);
			one_page = false;
			continue;
		}
		int err = errno;
		if (c.copy > 0) {	// partial: the rest is tried again
			targets_[t].map.remove(p->addr, p->addr + uint64_t(c.copy));
			filled_ += uint64_t(c.copy);
		}
		switch (err) {
		case EEXIST:	// a page there already (the process's own)
			targets_[t].map.remove(p->addr + std::max<int64_t>(c.copy, 0),
					       p->addr + std::max<int64_t>(c.copy, 0) + ps_);
			p = after_eexist(*p, c.copy, ps_);
			break;
		case EAGAIN:	// the layout is changing: its events first, then the
				// caller looks again at what is missing
			return drain(t);
		case ENOENT:	// the range spans VMAs, or is not registered any more
			if (one_page || p->len == ps_) {
				targets_[t].map.remove(p->addr, p->addr + ps_);
				p = after_eexist(*p, 0, ps_);
				one_page = false;
			} else {
				one_page = true;
			}
			break;
		case ESRCH:	// the process exited or executed a program
			gone(t);
			return {};
		default:
			return fail(err, "lazy restore of pid " + std::to_string(f_.pid) +
						 ": UFFDIO_COPY at " + hex(p->addr));
		}
	}
	return {};
}

// A fault at addr of target t: its piece copied in, or, if no image data
// is missing there, a zero page (or a wake-up if a page is there).
Result<void> Filler::serve(size_t t, uint64_t addr)
{
	for (int tries = 0; tries < 64 && !targets_[t].gone; tries++) {
		if (auto p = targets_[t].map.find(addr, kChunk)) {
			AMBER_TRY(copy(t, *p));
			continue;
		}
		struct uffdio_zeropage z = {};
		z.range.start = addr;
		z.range.len = ps_;
		if (ioctl(targets_[t].uffd, UFFDIO_ZEROPAGE, &z) == 0)
			return {};
		switch (errno) {
		case EEXIST: {
			struct uffdio_range w = {addr, ps_};
			ioctl(targets_[t].uffd, UFFDIO_WAKE, &w);
			return {};
		}
		case EAGAIN:
			AMBER_TRY(drain(t));
			continue;
		case ESRCH:
			gone(t);
			return {};
		default:	// not registered any more: the kernel woke it
			return {};
		}
	}
	return {};
}

Result<void> Filler::run()
{
	const int64_t start = now_ms();
	if (f_.log_done) {
		std::string m = "lazy restore of pid " + std::to_string(f_.pid) + ": filling " +
				std::to_string(targets_[0].map.bytes() >> 20) + " MiB (filler pid " +
				std::to_string(getpid()) + ")\n";
		(void)!write(f_.log_fd, m.data(), m.size());
	}
	for (;;) {
		if (f_.stall) {
			// Faults only, until the process is gone.
			std::vector<struct pollfd> p = {{f_.pidfd.get(), POLLIN, 0}};
			for (const Target &t : targets_)
				p.push_back({t.gone ? -1 : t.uffd, POLLIN, 0});
			if (poll(p.data(), p.size(), 1000) < 0 && errno != EINTR)
				return fail_errno("poll");
			if (p[0].revents)
				break;
		}
		for (size_t t = 0; t < targets_.size(); t++)
			if (!targets_[t].gone)
				AMBER_TRY(drain(t));
		while (!faults_.empty()) {
			Fault fl = faults_.front();
			faults_.pop_front();
			if (!targets_[fl.target].gone)
				AMBER_TRY(serve(fl.target, fl.addr));
		}
		if (f_.stall)
			continue;
		size_t t = 0;
		while (t < targets_.size() && targets_[t].map.empty())
			t++;
		if (t == targets_.size())
			break;
		AMBER_TRY(copy(t, *targets_[t].map.first(kChunk)));
	}
	done_ = "lazy restore of pid " + std::to_string(f_.pid) + ": complete, " +
		std::to_string(filled_ >> 20) + " MiB filled in " +
		std::to_string(now_ms() - start) + " ms" +
		(targets_[0].gone ? " (the process is gone)" : "") + "\n";
	return {};
}

} // namespace

Result<void> LazyFiller::run()
{
	std::string done;
	{
		Filler f(*this);
		auto r = f.run();
		if (!r)
			return r;
		done = f.done_;
	}
	// No page is missing any more: our copies of the userfaultfds go,
	// then the pin, and with it the registration (the last reference: the
	// process is on its own, and may be checkpointed again).
	uffd.reset();
	if (nl) {
		auto d = lazy_fill_request(*nl, pid, -1);
		if (!d && d.error().err != ENOENT)
			return wrap(d.error(), "lazy restore: telling amber.ko the fill is complete: ");
	}
	if (log_done)
		(void)!write(log_fd, done.data(), done.size());
	return {};
}

} // namespace amber
