// SPDX-License-Identifier: GPL-2.0
// Helpers every part of the tools shares: whole reads and writes of file
// descriptors, opening with O_CLOEXEC, and the monotonic clock.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include <sys/types.h>

#include "common/attr.h"
#include "common/result.h"

namespace amber {

// Nanoseconds on clk; ms and seconds on CLOCK_MONOTONIC.
uint64_t now_ns(clockid_t clk = CLOCK_MONOTONIC);
inline int64_t now_ms()
{
	return int64_t(now_ns() / 1000000);
}
inline double now_s()
{
	return double(now_ns()) / 1e9;
}

// Writes all of data, retried on EINTR. Errors "write WHAT" ("write"
// without what).
Result<void> write_all(int fd, ByteView data, const std::string &what = "");
inline Result<void> write_all(int fd, std::string_view text, const std::string &what = "")
{
	return write_all(fd, ByteView(reinterpret_cast<const uint8_t *>(text.data()), text.size()),
			 what);
}

// The whole file; errno ENOENT when it does not exist. Errors name path.
Result<std::string> read_file(const std::string &path);

// Both ends of a pipe2(O_CLOEXEC); the error is "WHAT: ...".
struct PipeFds {
	UniqueFd r, w;
};
Result<PipeFds> make_pipe(const char *what = "pipe");

// open(path, flags | O_CLOEXEC); the error names path.
Result<UniqueFd> open_file(const std::string &path, int flags);

// pread() of exactly len bytes at off, retried on EINTR, allocating
// nothing (the restore stub uses it): 0, -1 with errno set, or 1 when the
// file ends first.
int pread_exact(int fd, void *buf, size_t len, uint64_t off);

// The same as a Result: "read" with errno, or EIO "truncated".
Result<void> pread_full(int fd, void *buf, size_t len, uint64_t off);

// pwrite() of all len bytes at off, retried on EINTR; error "write".
Result<void> pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

// pidfd_open(2) and pidfd_send_signal(2) without siginfo (the system
// calls: Debian's glibc 2.36 header lacks C linkage for C++).
int pidfd_open(pid_t pid);
int pidfd_send_signal(int pidfd, int sig);

} // namespace amber
