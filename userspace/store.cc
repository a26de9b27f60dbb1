// SPDX-License-Identifier: GPL-2.0
#include "store.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>

#include <dirent.h>
#include <fcntl.h>
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
	const std::string lock = dir_ + "/.lock";
	p.lock_ = UniqueFd(open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
	if (!p.lock_)
		return fail_errno("cannot open " + lock);
	if (flock(p.lock_.get(), LOCK_EX | LOCK_NB) < 0)
		return fail(errno == EWOULDBLOCK ? EBUSY : errno,
			    dir_ + ": another checkpoint is being written");

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

} // namespace amber
