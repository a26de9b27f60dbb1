// SPDX-License-Identifier: GPL-2.0
#include "store.h"

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

	p.number_ = max + 1;
	p.tmp_dir_ = dir_ + "/" + kTmpPrefix + std::to_string(p.number_);
	if (mkdir(p.tmp_dir_.c_str(), 0700) < 0)
		return fail_errno("cannot create " + p.tmp_dir_);
	p.done_ = false;
	return p;
}

Result<void> Store::publish(PendingCheckpoint &p) const
{
	std::error_code ec;
	for (const auto &e : fs::directory_iterator(p.tmp_dir_, ec))
		AMBER_TRY(fsync_path(e.path().string(), false));
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

Result<Checkpoint> Store::load_link(uint32_t number, uint32_t child, bool meta_only) const
{
	const std::string name = "checkpoint " + std::to_string(number) + ": ";
	const std::string d = path(number);
	struct stat st;
	if (stat(d.c_str(), &st) < 0) {
		std::string what = d;
		if (child)
			what += " (parent of checkpoint " + std::to_string(child) + ")";
		return fail_errno(name + what);
	}
	auto c = meta_only ? load_checkpoint_meta(d, number) : load_checkpoint_dir(d, number);
	if (!c)
		return wrap(c.error(), name);
	return c;
}

Result<std::vector<Checkpoint>> Store::load_chain(std::optional<uint32_t> number) const
{
	uint32_t n = AMBER_TRY(resolve(number));
	std::vector<Checkpoint> chain;
	for (uint32_t child = 0;;) {
		if (chain.size() == kMaxChainLinks)
			return fail(E2BIG, "checkpoint " + std::to_string(chain.front().number) +
						   ": chain longer than " +
						   std::to_string(kMaxChainLinks) + " links");
		chain.push_back(AMBER_TRY(load_link(n, child, false)));
		const uint32_t parent = chain.back().info.parent;
		if (parent == 0)
			break;
		child = n;
		n = parent;	// < n: checked when loading
	}
	std::reverse(chain.begin(), chain.end());
	return chain;
}

Result<Checkpoint> Store::load_meta(std::optional<uint32_t> number) const
{
	uint32_t n = AMBER_TRY(resolve(number));
	return load_link(n, 0, true);
}

Result<std::vector<uint32_t>> Store::chain_numbers(uint32_t number) const
{
	std::vector<uint32_t> out;
	for (uint32_t n = number, child = 0; n;) {
		if (out.size() == kMaxChainLinks)
			return fail(E2BIG, "checkpoint " + std::to_string(number) +
						   ": chain longer than " +
						   std::to_string(kMaxChainLinks) + " links");
		out.push_back(n);
		Checkpoint c = AMBER_TRY(load_link(n, child, true));
		child = n;
		n = c.info.parent;
	}
	std::reverse(out.begin(), out.end());
	return out;
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

Result<CompactResult> Store::compact_locked(uint32_t number) const
{
	const std::string name = "checkpoint " + std::to_string(number);
	std::vector<Checkpoint> chain = AMBER_TRY(load_chain(number));
	const Checkpoint &last = chain.back();
	CompactResult res;
	res.number = number;
	res.links = chain.size();
	if (chain.size() == 1) {
		res.pages = count_pages(last.pagemap).data;
		struct stat a, b;
		if (stat(last.pages_path.c_str(), &a) == 0 && stat(last.meta_path.c_str(), &b) == 0)
			res.bytes = a.st_size + b.st_size;
		return res;
	}

	std::vector<const Checkpoint *> links;
	for (const Checkpoint &c : chain)
		links.push_back(&c);
	std::vector<PageSource> sources = AMBER_TRY(resolve_chain(links));

	const std::string tmp = dir_ + "/" + kTmpPrefix + std::to_string(number);
	remove_tree(tmp);
	if (mkdir(tmp.c_str(), 0700) < 0)
		return fail_errno("cannot create " + tmp);
	TreeRemover cleanup(tmp);

	const std::string pages_path = tmp + "/" + kPagesFile;
	UniqueFd pages(open(pages_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (!pages)
		return fail_errno("cannot create " + pages_path);
	auto map = write_full_pages(pages.get(), links, sources, last.page_size);
	if (!map)
		return wrap(map.error(), name + ": ");
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
	MetaSections meta;
	meta.info = encode_info(info);
	meta.core = last.core_raw;
	meta.vmas = last.vmas_raw;
	meta.fds = last.fds_raw;
	meta.pagemap = std::move(*map);
	const uint64_t meta_size =
		AMBER_TRY(write_file(tmp + "/" + kMetaFile, build_meta(meta)));
	AMBER_TRY(fsync_path(tmp, true));

	// Read back what is about to replace the chain's newest link.
	if (auto c = load_checkpoint_dir(tmp, number); !c)
		return wrap(c.error(), name + ": the compacted copy in " + tmp + " fails to verify: ");

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
	res.pages = info.pages_nr;
	res.bytes = st.st_size + meta_size;
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

Result<bool> Store::chain_due(uint32_t n, const std::vector<uint32_t> &chain,
			      const RetainPolicy &policy) const
{
	if (chain.size() > policy.max_links)
		return true;
	uint64_t data = 0;
	for (uint32_t c : chain) {
		struct stat st;
		const std::string p = path(c) + "/" + kPagesFile;
		if (stat(p.c_str(), &st) < 0)
			return fail_errno(p);
		data += uint64_t(st.st_size);
	}
	Checkpoint c = AMBER_TRY(load_link(n, 0, true));
	const uint64_t memory = (c.info.pages_nr + c.info.parent_pages_nr) *
				uint64_t(sysconf(_SC_PAGESIZE));
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

	for (uint32_t n : res.kept) {
		std::vector<uint32_t> chain = AMBER_TRY(chain_numbers(n));
		bool reaches_other = std::any_of(chain.begin(), chain.end(),
						 [&](uint32_t c) { return !kept.count(c); });
		if (!reaches_other)
			continue;
		if (!policy.max_links) {
			res.compacted.push_back(AMBER_TRY(compact_locked(n)));
			continue;
		}
		if (!AMBER_TRY(chain_due(n, chain, policy)))
			continue;
		// The oldest kept link of the chain: later kept ones chain onto it.
		uint32_t base = *std::find_if(chain.begin(), chain.end(),
					      [&](uint32_t c) { return kept.count(c); });
		if (std::none_of(res.compacted.begin(), res.compacted.end(),
				 [&](const CompactResult &r) { return r.number == base; }))
			res.compacted.push_back(AMBER_TRY(compact_locked(base)));
	}

	std::set<uint32_t> needed;
	for (uint32_t n : res.kept)
		for (uint32_t c : AMBER_TRY(chain_numbers(n)))
			needed.insert(c);

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
