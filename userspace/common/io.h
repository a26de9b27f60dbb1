// SPDX-License-Identifier: GPL-2.0
// Helpers every part of the tools shares: whole reads and writes of file
// descriptors, opening with O_CLOEXEC, and the monotonic clock.
#pragma once

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

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

// Replaces path with data (path.tmp, then rename): readers see the old or
// the new contents, never a part. sync: durable before the rename.
Result<void> write_file_atomic(const std::string &path, const std::string &data, bool sync);

// open(path, flags | O_CLOEXEC); the error names path.
Result<UniqueFd> open_file(const std::string &path, int flags);

// pread() of exactly len bytes at off, retried on EINTR, allocating
// nothing (the restore stub uses it): 0, -1 with errno set, or 1 when the
// file ends first.
int pread_exact(int fd, void *buf, size_t len, uint64_t off);

// The same as a Result: "read" with errno, or EIO "truncated".
Result<void> pread_full(int fd, void *buf, size_t len, uint64_t off);

// Hands the len bytes of file fd at off to use(const uint8_t *p, size_t n)
// in order, each piece where it lies in the page cache: the file is mapped
// read-only a window (64 MiB) at a time, which copies nothing, while read()
// would copy every byte once more (in the TCG test guest, with the kernel's
// emulated rep movsb, far more than hashing or a user-space memcpy()
// costs). Returns how many bytes, at the end of the range, it did not
// hand over because a mapping failed or the file ends before them: the
// caller reads those. Allocates nothing (the restore stub uses it).
template <class F>
uint64_t for_each_mapped(int fd, uint64_t off, uint64_t len, F &&use)
{
	constexpr uint64_t kWindow = uint64_t(64) << 20;
	const uint64_t ps = uint64_t(sysconf(_SC_PAGESIZE));
	while (len) {
		const uint64_t base = off & ~(ps - 1);
		const uint64_t n = std::min<uint64_t>(len, kWindow - (off - base));
		const size_t maplen = size_t(off - base + n);
		// A file shorter than the window's end would fault past its end.
		struct stat st;
		if (fstat(fd, &st) || uint64_t(st.st_size) < off + n)
			return len;
		void *m = mmap(nullptr, maplen, PROT_READ, MAP_SHARED | MAP_POPULATE, fd,
			       off_t(base));
		if (m == MAP_FAILED)
			return len;
		use(static_cast<const uint8_t *>(m) + (off - base), size_t(n));
		munmap(m, maplen);
		off += n;
		len -= n;
	}
	return 0;
}

// pwrite() of all len bytes at off, retried on EINTR; error "write".
Result<void> pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

// pidfd_open(2) and pidfd_send_signal(2) without siginfo (the system
// calls: Debian's glibc 2.36 header lacks C linkage for C++).
int pidfd_open(pid_t pid);
int pidfd_send_signal(int pidfd, int sig);

} // namespace amber
