// SPDX-License-Identifier: GPL-2.0
#include "image/compress.h"
#include "image/store.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <set>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace amber {

namespace fs = std::filesystem;

namespace {

constexpr const char *kLatest = "latest";
constexpr const char *kTmpPrefix = ".tmp-";

// Parses a decimal checkpoint number (1..UINT32_MAX), nothing else.
std::optional<uint32_t> parse_number(std::string_view s)
{
	uint32_t n = 0;
	if (s.empty() || s.size() > 10 || s[0] == '0')
		return std::nullopt;
	auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
	if (ec != std::errc() || p != s.data() + s.size() || n == 0)
		return std::nullopt;
	return n;
}

Result<void> fsync_path(const std::string &path, bool dir)
{
	UniqueFd fd(open(path.c_str(), (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC));
	if (!fd)
		return fail_errno("cannot open " + path);
	if (fsync(fd.get()) < 0)
		return fail_errno("fsync " + path);
	return {};
}

void remove_tree(const std::string &path)
{
	std::error_code ec;
	fs::remove_all(path, ec);
}

} // namespace

PendingCheckpoint::PendingCheckpoint(PendingCheckpoint &&o) noexcept
	: number_(o.number_), tmp_dir_(std::move(o.tmp_dir_)), lock_(std::move(o.lock_)),
	  done_(std::exchange(o.done_, true))
{
}

PendingCheckpoint::~PendingCheckpoint()
{
	if (!done_)
		remove_tree(tmp_dir_);
}

Result<std::string> PendingCheckpoint::process_tmp_dir(uint32_t pid, uint32_t root_pid) const
{
	const std::string d = process_dir(tmp_dir_, pid, root_pid);
	if (d == tmp_dir_)
		return d;
	std::error_code ec;
	fs::create_directories(d, ec);
	if (ec)
		return fail(ec.value(), "cannot create " + d);
	return d;
}

std::vector<uint32_t> image_pids(const Checkpoint &root)
{
	std::vector<uint32_t> out{root.info.pid};
	for (const ProcInfo &p : root.tree)
		if (!p.zombie && p.pid != root.info.pid &&
		    std::find(out.begin(), out.end(), p.pid) == out.end())
			out.push_back(p.pid);
	return out;
}

std::string process_prefix(uint32_t pid, uint32_t root_pid)
{
	return pid == root_pid ? "" : "proc/" + std::to_string(pid) + "/";
}

std::vector<uint32_t> needed_numbers(const std::vector<std::vector<uint32_t>> &chains)
{
	std::set<uint32_t> s;
	for (const auto &c : chains)
		s.insert(c.begin(), c.end());
	return {s.begin(), s.end()};
}

std::vector<uint32_t> lazy_compact_bases(const std::vector<std::vector<uint32_t>> &chains,
					 const std::vector<uint32_t> &kept)
{
	auto is_kept = [&](uint32_t c) { return std::find(kept.begin(), kept.end(), c) != kept.end(); };
	std::set<uint32_t> bases;
	for (const auto &chain : chains) {
		if (std::all_of(chain.begin(), chain.end(), is_kept))
			continue;
		auto base = std::find_if(chain.begin(), chain.end(), is_kept);
		if (base != chain.end())
			bases.insert(*base);
	}
	return {bases.begin(), bases.end()};
}

Result<UniqueFd> Store::lock(const char *busy) const
{
	const std::string path = dir_ + "/.lock";
	UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
	if (!fd)
		return fail_errno("cannot open " + path);
	if (flock(fd.get(), LOCK_EX | LOCK_NB) < 0)
		return fail(errno == EWOULDBLOCK ? EBUSY : errno,
			    dir_ + ": " + busy + " (" + path + " is locked)");
	return fd;
}

std::string Store::path(uint32_t number) const
{
	return dir_ + "/" + std::to_string(number);
}

std::string Store::process_path(uint32_t number, uint32_t pid, uint32_t root_pid) const
{
	return process_dir(path(number), pid, root_pid);
}

Result<std::vector<uint32_t>> Store::list() const
{
	std::vector<uint32_t> out;
	std::error_code ec;
	for (const auto &e : fs::directory_iterator(dir_, ec)) {
		auto n = parse_number(e.path().filename().string());
		if (n && e.is_directory(ec))
			out.push_back(*n);
	}
	if (ec)
		return fail(ec.value(), dir_);
	std::sort(out.begin(), out.end());
	return out;
}

Result<uint32_t> Store::latest() const
{
	const std::string link = dir_ + "/" + kLatest;
	char buf[64];
	ssize_t n = readlink(link.c_str(), buf, sizeof(buf) - 1);
	if (n < 0) {
		if (errno == ENOENT)
			return fail(ENOENT, dir_ + ": no checkpoint (no " + kLatest + ")");
		return fail_errno(link);
	}
	auto num = parse_number(std::string_view(buf, n));
	if (!num)
		return fail(EINVAL, link + ": does not point to a checkpoint number");
	return *num;
}

Result<uint32_t> Store::resolve(std::optional<uint32_t> number) const
{
	if (number)
		return *number;
	return latest();
}

Result<PendingCheckpoint> Store::begin() const
{
	return begin_at(std::nullopt);
}

Result<PendingCheckpoint> Store::begin_at(std::optional<uint32_t> number) const
{
	std::error_code ec;
	fs::create_directories(dir_, ec);
	if (ec)
		return fail(ec.value(), "cannot create " + dir_);

	PendingCheckpoint p;
	p.lock_ = AMBER_TRY(lock("another checkpoint is being written"));

	// Under the lock nobody else writes here: any .tmp-* is stale.
	uint32_t max = 0;
	std::vector<std::string> stale;
	for (const auto &e : fs::directory_iterator(dir_, ec)) {
		std::string name = e.path().filename().string();
		if (name.rfind(kTmpPrefix, 0) == 0)
			stale.push_back(e.path().string());
		else if (auto n = parse_number(name))
			max = std::max(max, *n);
	}
	if (ec)
		return fail(ec.value(), dir_);
	for (const auto &s : stale)
		remove_tree(s);
	if (auto l = latest())
		max = std::max(max, *l);
	if (max == UINT32_MAX)
		return fail(EOVERFLOW, dir_ + ": checkpoint numbers exhausted");
	if (number && *number <= max)
		return fail(EEXIST, dir_ + ": checkpoint " + std::to_string(*number) +
					    " is not newer than checkpoint " + std::to_string(max) +
					    " there");

	p.number_ = number ? *number : max + 1;
	p.tmp_dir_ = dir_ + "/" + kTmpPrefix + std::to_string(p.number_);
	if (mkdir(p.tmp_dir_.c_str(), 0700) < 0)
		return fail_errno("cannot create " + p.tmp_dir_);
	p.done_ = false;
	return p;
}

Result<void> Store::publish(PendingCheckpoint &p) const
{
	// Every file and directory below: a tree checkpoint has proc/PID/.
	std::error_code ec;
	for (const auto &e : fs::recursive_directory_iterator(p.tmp_dir_, ec)) {
		std::error_code dec;
		AMBER_TRY(fsync_path(e.path().string(), e.is_directory(dec)));
	}
	if (ec)
		return fail(ec.value(), p.tmp_dir_);
	AMBER_TRY(fsync_path(p.tmp_dir_, true));

	const std::string final_dir = path(p.number_);
	if (rename(p.tmp_dir_.c_str(), final_dir.c_str()) < 0)
		return fail_errno("cannot rename " + p.tmp_dir_ + " to " + final_dir);
	p.done_ = true;
	AMBER_TRY(fsync_path(dir_, true));

	const std::string tmp_link = dir_ + "/" + kLatest + ".tmp";
	const std::string link = dir_ + "/" + kLatest;
	unlink(tmp_link.c_str());
	if (symlink(std::to_string(p.number_).c_str(), tmp_link.c_str()) < 0)
		return fail_errno("cannot create " + tmp_link);
	if (rename(tmp_link.c_str(), link.c_str()) < 0)
		return fail_errno("cannot replace " + link);
	AMBER_TRY(fsync_path(dir_, true));
	return {};
}

Result<Checkpoint> Store::load(std::optional<uint32_t> number) const
{
	uint32_t n = AMBER_TRY(resolve(number));
	const std::string d = path(n);
	struct stat st;
	if (stat(d.c_str(), &st) < 0)
		return fail_errno("checkpoint " + std::to_string(n) + ": " + d);
	return load_checkpoint_dir(d, n);
}

Result<Checkpoint> Store::load_link(uint32_t number, uint32_t pid, uint32_t root_pid,
				    uint32_t child, bool meta_only) const
{
	const std::string name = "checkpoint " + std::to_string(number) + ": ";
	const std::string prefix = process_prefix(pid, root_pid);
	const std::string d = process_path(number, pid, root_pid);
	struct stat st;
	if (stat(d.c_str(), &st) < 0) {
		std::string what = d;
		if (child)
			what += " (parent of checkpoint " + std::to_string(child) +
				(prefix.empty() ? "" : " for pid " + std::to_string(pid)) + ")";
		return fail_errno(name + what);
	}
	auto c = meta_only ? load_checkpoint_meta(d, number) : load_checkpoint_dir(d, number);
	if (!c)
		return wrap(c.error(), name + prefix);
	if (root_pid && c->info.pid != pid)
		return fail(EPROTO, name + prefix + kMetaFile + ": INFO pid " +
					    std::to_string(c->info.pid) + ", expected " +
					    std::to_string(pid));
	return c;
}

Result<std::vector<Checkpoint>> Store::walk_chain(uint32_t n, uint32_t pid, uint32_t root_pid,
						  bool meta_only, std::optional<Checkpoint> newest) const
{
	std::vector<Checkpoint> chain;
	for (uint32_t child = 0;;) {
		if (chain.size() == kMaxChainLinks)
			return fail(E2BIG, "checkpoint " + std::to_string(chain.front().number) +
						   ": " + process_prefix(pid, root_pid) +
						   "chain longer than " +
						   std::to_string(kMaxChainLinks) + " links");
		if (newest) {
			chain.push_back(std::move(*newest));
			newest.reset();
		} else {
			chain.push_back(AMBER_TRY(load_link(n, pid, root_pid, child, meta_only)));
		}
		const uint32_t parent = chain.back().info.parent;
		if (parent == 0)
			break;
		if (parent >= n)
			return fail(EPROTO, "checkpoint " + std::to_string(n) + ": " +
						    process_prefix(pid, root_pid) +
						    "parent " + std::to_string(parent) +
						    " is not older");
		child = n;
		n = parent;
	}
	std::reverse(chain.begin(), chain.end());
	return chain;
}

Result<std::vector<Checkpoint>> Store::load_chain(std::optional<uint32_t> number) const
{
	uint32_t n = AMBER_TRY(resolve(number));
	return walk_chain(n, 0, 0, false);
}

Result<std::vector<Checkpoint>> Store::load_chain_meta(std::optional<uint32_t> number) const
{
	uint32_t n = AMBER_TRY(resolve(number));
	return walk_chain(n, 0, 0, true);
}

Result<std::vector<Checkpoint>> Store::load_chain(uint32_t number, uint32_t pid,
						  uint32_t root_pid) const
{
	return walk_chain(number, pid, root_pid, false);
}

Result<std::vector<Checkpoint>> Store::load_chain_meta(uint32_t number, uint32_t pid,
						       uint32_t root_pid) const
{
	return walk_chain(number, pid, root_pid, true);
}

Result<std::vector<Checkpoint>> Store::load_chain_meta(Checkpoint newest) const
{
	uint32_t n = newest.number;
	return walk_chain(n, 0, 0, true, std::move(newest));
}

Result<Checkpoint> Store::load_meta(std::optional<uint32_t> number) const
{
	uint32_t n = AMBER_TRY(resolve(number));
	return load_link(n, 0, 0, 0, true);
}

Result<Checkpoint> Store::load_meta(uint32_t number, uint32_t pid, uint32_t root_pid) const
{
	return load_link(number, pid, root_pid, 0, true);
}

Result<std::vector<uint32_t>> Store::chain_numbers(uint32_t number) const
{
	return chain_numbers(number, 0, 0);
}

Result<std::vector<uint32_t>> Store::chain_numbers(uint32_t number, uint32_t pid,
						   uint32_t root_pid) const
{
	std::vector<uint32_t> out;
	for (const Checkpoint &c : AMBER_TRY(walk_chain(number, pid, root_pid, true)))
		out.push_back(c.number);
	return out;
}

Result<std::vector<std::vector<uint32_t>>> Store::process_chains(uint32_t number) const
{
	Checkpoint root = AMBER_TRY(load_link(number, 0, 0, 0, true));
	std::vector<std::vector<uint32_t>> out;
	for (uint32_t pid : image_pids(root))
		out.push_back(AMBER_TRY(chain_numbers(number, pid, root.info.pid)));
	return out;
}

Result<void> Store::verify(uint32_t number) const
{
	Checkpoint root = AMBER_TRY(load_link(number, 0, 0, 0, true));
	for (uint32_t pid : image_pids(root)) {
		std::vector<Checkpoint> chain = AMBER_TRY(load_chain(number, pid, root.info.pid));
		std::vector<const Checkpoint *> links;
		for (const Checkpoint &c : chain)
			links.push_back(&c);
		if (auto r = resolve_chain(links); !r) {
			const std::string &m = r.error().msg;
			if (m.rfind("checkpoint ", 0) == 0)
				return fail(r.error().err, m.substr(0, m.find(": ") + 2) +
								   process_prefix(pid, root.info.pid) +
								   m.substr(m.find(": ") + 2));
			return wrap(r.error(), "checkpoint " + std::to_string(number) + ": " +
						       process_prefix(pid, root.info.pid));
		}
	}
	return {};
}

namespace {

Result<uint64_t> write_file(const std::string &path, const Bytes &b)
{
	UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (!fd)
		return fail_errno("cannot create " + path);
	for (size_t off = 0; off < b.size();) {
		ssize_t n = write(fd.get(), b.data() + off, b.size() - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno("write " + path);
		}
		off += n;
	}
	if (fsync(fd.get()) < 0)
		return fail_errno("fsync " + path);
	return b.size();
}

// Removes a directory tree when it goes out of scope, unless disarmed.
class TreeRemover {
public:
	explicit TreeRemover(std::string path) : path_(std::move(path)) {}
	TreeRemover(const TreeRemover &) = delete;
	TreeRemover &operator=(const TreeRemover &) = delete;
	~TreeRemover()
	{
		if (!path_.empty())
			remove_tree(path_);
	}
	void disarm() { path_.clear(); }

private:
	std::string path_;
};

} // namespace

namespace {

struct ImageSize {
	uint64_t pages = 0;	// with data
	uint64_t bytes = 0;	// meta.img + pages.img
};

// Writes the newest link of a process chain (more than one link) as a full
// image into out_dir: its memory resolved through the chain, its sections
// as they are, INFO with parent 0 and the page counts updated.
Result<ImageSize> write_compacted(const std::vector<Checkpoint> &chain, const std::string &out_dir,
				  const std::string &name)
{
	const Checkpoint &last = chain.back();
	std::vector<const Checkpoint *> links;
	for (const Checkpoint &c : chain)
		links.push_back(&c);
	std::vector<PageSource> sources = AMBER_TRY(resolve_chain(links));

	const std::string pages_path = out_dir + "/" + kPagesFile;
	UniqueFd pages(open(pages_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (!pages)
		return fail_errno("cannot create " + pages_path);
	auto map = write_full_pages(pages.get(), links, sources, last.page_size);
	if (!map)
		return wrap(map.error(), name);
	if (fsync(pages.get()) < 0)
		return fail_errno("fsync " + pages_path);
	struct stat st;
	if (fstat(pages.get(), &st) < 0)
		return fail_errno("stat " + pages_path);
	pages.reset();

	InfoSection info = last.info;
	info.parent = 0;
	info.pages_nr = count_pages(*map).data;
	info.parent_pages_nr = 0;
	info.pages_bytes = st.st_size;
	uint64_t pages_bytes = st.st_size;
	// Compressed stays compressed (amber checkpoint --compress).
	info.pages_zstd = 0;
	if (last.info.pages_zstd) {
		const CompressStats cs = AMBER_TRY(compress_pages(out_dir, kDefaultZstdLevel));
		info.pages_zstd = cs.in_bytes;
		pages_bytes = cs.out_bytes;
	}
	MetaSections meta;
	meta.info = encode_info(info);
	meta.core = last.core_raw;
	meta.vmas = last.vmas_raw;
	meta.fds = last.fds_raw;
	meta.pagemap = std::move(*map);
	meta.threads = last.threads_raw;
	meta.tree = last.tree_raw;
	meta.queues = last.queues_raw;
	meta.ghosts = last.ghosts_raw;
	const uint64_t meta_size =
		AMBER_TRY(write_file(out_dir + "/" + kMetaFile, build_meta(meta)));
	return ImageSize{info.pages_nr, pages_bytes + meta_size};
}

// A full image kept as it is: hard links (a copy where the file system has
// none) of its two files into out_dir.
Result<ImageSize> link_image(const std::string &from_dir, const std::string &out_dir,
			     const Checkpoint &meta)
{
	ImageSize sz;
	sz.pages = count_pages(meta.pagemap).data;
	const char *pages = meta.info.pages_zstd ? kPagesZstFile : kPagesFile;
	for (const char *f : {kMetaFile, pages}) {
		const std::string from = from_dir + "/" + f;
		const std::string to = out_dir + "/" + f;
		if (link(from.c_str(), to.c_str()) < 0) {
			std::error_code ec;
			if (!fs::copy_file(from, to, ec) || ec)
				return fail(ec ? ec.value() : EIO, "cannot copy " + from + " to " + to);
			AMBER_TRY(fsync_path(to, false));
		}
		struct stat st;
		if (stat(to.c_str(), &st) == 0)
			sz.bytes += uint64_t(st.st_size);
	}
	return sz;
}

} // namespace

Result<CompactResult> Store::compact_locked(uint32_t number) const
{
	const std::string name = "checkpoint " + std::to_string(number);
	Checkpoint root = AMBER_TRY(load_link(number, 0, 0, 0, true));
	const uint32_t root_pid = root.info.pid;
	const std::vector<uint32_t> pids = image_pids(root);
	CompactResult res;
	res.number = number;
	res.processes = pids.size();
	std::vector<size_t> lengths;
	for (uint32_t pid : pids) {
		lengths.push_back(AMBER_TRY(chain_numbers(number, pid, root_pid)).size());
		res.links = std::max(res.links, lengths.back());
	}
	if (res.links == 1) {
		// Already full: verify it all the same, as a rewrite would.
		for (uint32_t pid : pids) {
			Checkpoint c = AMBER_TRY(load_link(number, pid, root_pid, 0, false));
			res.pages += count_pages(c.pagemap).data;
			struct stat a, b;
			if (stat(c.pages_path.c_str(), &a) == 0 && stat(c.meta_path.c_str(), &b) == 0)
				res.bytes += a.st_size + b.st_size;
		}
		return res;
	}

	const std::string tmp = dir_ + "/" + kTmpPrefix + std::to_string(number);
	remove_tree(tmp);
	if (mkdir(tmp.c_str(), 0700) < 0)
		return fail_errno("cannot create " + tmp);
	TreeRemover cleanup(tmp);

	for (size_t i = 0; i < pids.size(); i++) {
		const uint32_t pid = pids[i];
		const std::string out = process_dir(tmp, pid, root_pid);
		if (out != tmp) {
			std::error_code ec;
			fs::create_directories(out, ec);
			if (ec)
				return fail(ec.value(), "cannot create " + out);
		}
		const std::string pname = name + ": " + process_prefix(pid, root_pid);
		ImageSize sz;
		if (lengths[i] == 1) {
			Checkpoint c = AMBER_TRY(load_link(number, pid, root_pid, 0, true));
			sz = AMBER_TRY(link_image(process_path(number, pid, root_pid), out, c));
		} else {
			std::vector<Checkpoint> chain = AMBER_TRY(load_chain(number, pid, root_pid));
			sz = AMBER_TRY(write_compacted(chain, out, pname));
			res.compacted_processes++;
		}
		res.pages += sz.pages;
		res.bytes += sz.bytes;
		if (out != tmp)
			AMBER_TRY(fsync_path(out, true));
	}
	if (pids.size() > 1)
		AMBER_TRY(fsync_path(tmp + "/proc", true));
	AMBER_TRY(fsync_path(tmp, true));

	// Read back what is about to replace the checkpoint.
	for (uint32_t pid : pids) {
		const std::string d = process_dir(tmp, pid, root_pid);
		if (auto c = load_checkpoint_dir(d, number); !c)
			return wrap(c.error(), name + ": the compacted copy in " + tmp +
						       " fails to verify: " +
						       process_prefix(pid, root_pid));
	}

	const std::string final_dir = path(number);
	if (renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) < 0) {
		if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)
			return fail(errno, dir_ + ": cannot compact " + name +
						   " in place: the file system does not support "
						   "atomic exchange (renameat2 RENAME_EXCHANGE)");
		return fail_errno("cannot exchange " + tmp + " and " + final_dir);
	}
	// tmp now holds the old contents.
	if (auto r = fsync_path(dir_, true); !r) {
		cleanup.disarm();	// removed by the next begin()
		return tl::unexpected(r.error());
	}
	res.compacted = true;
	return res;
}

bool Store::holds_lock(const PendingCheckpoint &p) const
{
	return p.lock_ && p.tmp_dir_.rfind(dir_ + "/" + kTmpPrefix, 0) == 0;
}

Result<CompactResult> Store::compact(uint32_t number) const
{
	UniqueFd l = AMBER_TRY(lock("a checkpoint or compaction is in progress"));
	return compact_locked(number);
}

Result<CompactResult> Store::compact(uint32_t number, const PendingCheckpoint &locked) const
{
	if (!holds_lock(locked))
		return fail(EINVAL, dir_ + ": compact without the store lock");
	return compact_locked(number);
}

Result<bool> Store::chain_due(uint32_t n, const std::vector<std::vector<uint32_t>> &chains,
			      const RetainPolicy &policy) const
{
	for (const auto &chain : chains)
		if (chain.size() > policy.max_links)
			return true;
	Checkpoint root = AMBER_TRY(load_link(n, 0, 0, 0, true));
	const std::vector<uint32_t> pids = image_pids(root);
	uint64_t data = 0, memory = 0;
	for (size_t i = 0; i < pids.size() && i < chains.size(); i++) {
		for (uint32_t c : chains[i]) {
			struct stat st;
			const std::string d = process_path(c, pids[i], root.info.pid) + "/";
			std::string p = d + kPagesFile;
			// On disk: compressed, when it is (amber checkpoint --compress).
			if (stat(p.c_str(), &st) < 0 && errno == ENOENT)
				p = d + kPagesZstFile;
			if (stat(p.c_str(), &st) < 0)
				return fail_errno(p);
			data += uint64_t(st.st_size);
		}
		const Checkpoint c = pids[i] == root.info.pid
					     ? root
					     : AMBER_TRY(load_link(n, pids[i], root.info.pid, 0, true));
		memory += (c.info.pages_nr + c.info.parent_pages_nr) * uint64_t(sysconf(_SC_PAGESIZE));
	}
	return double(data) > policy.max_data_ratio * double(memory);
}

Result<RetainResult> Store::retain_locked(uint32_t keep, const RetainPolicy &policy) const
{
	if (keep == 0)
		return fail(EINVAL, "must keep at least one checkpoint");
	std::vector<uint32_t> all = AMBER_TRY(list());
	RetainResult res;
	std::set<uint32_t> kept;
	for (size_t i = all.size() > keep ? all.size() - keep : 0; i < all.size(); i++)
		kept.insert(all[i]);
	if (auto l = latest(); l && std::binary_search(all.begin(), all.end(), *l))
		kept.insert(*l);
	res.kept.assign(kept.begin(), kept.end());

	auto compacted = [&](uint32_t c) {
		return std::any_of(res.compacted.begin(), res.compacted.end(),
				   [&](const CompactResult &r) { return r.number == c; });
	};
	for (uint32_t n : res.kept) {
		// Per process: a tree checkpoint's processes chain separately.
		auto chains = AMBER_TRY(process_chains(n));
		std::vector<uint32_t> bases = lazy_compact_bases(chains, res.kept);
		if (bases.empty())
			continue;
		if (!policy.max_links) {
			res.compacted.push_back(AMBER_TRY(compact_locked(n)));
			continue;
		}
		if (!AMBER_TRY(chain_due(n, chains, policy)))
			continue;
		// The oldest kept link of each chain: later kept ones chain onto it.
		for (uint32_t base : bases)
			if (!compacted(base))
				res.compacted.push_back(AMBER_TRY(compact_locked(base)));
	}
	std::sort(res.compacted.begin(), res.compacted.end(),
		  [](const CompactResult &a, const CompactResult &b) { return a.number < b.number; });

	std::vector<std::vector<uint32_t>> all_chains;
	for (uint32_t n : res.kept)
		for (auto &c : AMBER_TRY(process_chains(n)))
			all_chains.push_back(std::move(c));
	const std::vector<uint32_t> needed_v = needed_numbers(all_chains);
	std::set<uint32_t> needed(needed_v.begin(), needed_v.end());

	std::vector<std::string> doomed;
	for (auto it = all.rbegin(); it != all.rend(); ++it) {
		if (needed.count(*it))
			continue;
		const std::string from = path(*it);
		const std::string to = dir_ + "/" + kTmpPrefix + "deleted-" + std::to_string(*it);
		remove_tree(to);
		if (rename(from.c_str(), to.c_str()) < 0)
			return fail_errno("cannot remove checkpoint " + std::to_string(*it) +
					  ": rename " + from);
		doomed.push_back(to);
		res.deleted.insert(res.deleted.begin(), *it);
	}
	if (!doomed.empty()) {
		AMBER_TRY(fsync_path(dir_, true));
		for (const auto &d : doomed)
			remove_tree(d);
	}
	return res;
}

Result<RetainResult> Store::retain(uint32_t keep) const
{
	UniqueFd l = AMBER_TRY(lock("a checkpoint or compaction is in progress"));
	return retain_locked(keep, RetainPolicy{});
}

Result<RetainResult> Store::retain(uint32_t keep, const PendingCheckpoint &locked) const
{
	return retain(keep, locked, RetainPolicy{});
}

Result<RetainResult> Store::retain(uint32_t keep, const PendingCheckpoint &locked,
				   const RetainPolicy &policy) const
{
	if (!holds_lock(locked))
		return fail(EINVAL, dir_ + ": retain without the store lock");
	return retain_locked(keep, policy);
}

} // namespace amber
