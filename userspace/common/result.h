// SPDX-License-Identifier: GPL-2.0
// Errors as values and RAII file descriptors for the amber tools.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include <tl/expected.hpp>
#include <unistd.h>

namespace amber {

// An error: errno value plus a human message. For netlink errors the message
// holds the kernel's extack text when there was one, and the facts the
// kernel attached for the tool to act on (enum amber_err_attr, from the
// extack cookie: see parse_nlmsgerr()); the text is never parsed.
struct Error {
	Error(int err = 0, std::string msg = {}) : err(err), msg(std::move(msg)) {}

	int err = 0;		// positive errno, 0 if none applies
	std::string msg;	// what failed, naming the resource
	bool retry = false;	// AMBER_ERR_RETRY: transient, send the request again
	std::optional<uint32_t> pages_files;	// AMBER_ERR_PAGES_FILES

	// "msg: strerror(err)", or just msg when err is 0 or msg already says it.
	std::string str() const;
};

template <typename T>
using Result = tl::expected<T, Error>;

namespace detail {
template <typename T>
T take(Result<T> &&r)
{
	return std::move(*r);
}
inline void take(Result<void> &&) {}
} // namespace detail

// Evaluates a Result; returns its error from the enclosing function, else
// yields its value (GNU statement expression).
#define AMBER_TRY(expr)                                                   \
	({                                                                \
		auto _amber_r = (expr);                                   \
		if (!_amber_r)                                            \
			return tl::unexpected(std::move(_amber_r).error()); \
		::amber::detail::take(std::move(_amber_r));                 \
	})

inline tl::unexpected<Error> fail(int err, std::string msg)
{
	return tl::unexpected<Error>(Error{err, std::move(msg)});
}

// fail() with the current errno.
inline tl::unexpected<Error> fail_errno(std::string msg)
{
	return fail(errno, std::move(msg));
}

// Prefix an error with context: "meta.img: " + e.msg (the kernel's facts
// are kept).
inline tl::unexpected<Error> wrap(const Error &e, const std::string &prefix)
{
	Error out = e;
	if (e.msg.empty() && prefix.size() >= 2 && prefix.ends_with(": "))
		out.msg = prefix.substr(0, prefix.size() - 2);
	else
		out.msg = prefix + e.msg;
	return tl::unexpected<Error>(std::move(out));
}

inline std::string Error::str() const
{
	if (err == 0)
		return msg;
	std::string s = strerror(err);
	if (msg.empty())
		return s;
	return msg + ": " + s;
}

// Move-only owner of a file descriptor.
class UniqueFd {
public:
	UniqueFd() = default;
	explicit UniqueFd(int fd) : fd_(fd) {}
	UniqueFd(const UniqueFd &) = delete;
	UniqueFd &operator=(const UniqueFd &) = delete;
	UniqueFd(UniqueFd &&o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
	UniqueFd &operator=(UniqueFd &&o) noexcept
	{
		if (this != &o)
			reset(std::exchange(o.fd_, -1));
		return *this;
	}
	~UniqueFd() { reset(); }

	int get() const { return fd_; }
	bool valid() const { return fd_ >= 0; }
	explicit operator bool() const { return valid(); }
	int release() { return std::exchange(fd_, -1); }
	void reset(int fd = -1)
	{
		if (fd_ >= 0)
			::close(fd_);
		fd_ = fd;
	}

private:
	int fd_ = -1;
};

} // namespace amber
