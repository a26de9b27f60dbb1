// SPDX-License-Identifier: GPL-2.0
#include "common/io.h"

#include <cerrno>
#include <cstdio>

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace amber {

uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

Result<void> write_all(int fd, ByteView data, const std::string &what)
{
	while (!data.empty()) {
		ssize_t n = write(fd, data.data(), data.size());
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno(what.empty() ? "write" : "write " + what);
		}
		data = data.subspan(size_t(n));
	}
	return {};
}

Result<std::string> read_file(const std::string &path)
{
	UniqueFd fd = AMBER_TRY(open_file(path, O_RDONLY));
	std::string out;
	char buf[4096];
	for (;;) {
		ssize_t n = read(fd.get(), buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno("read " + path);
		}
		if (n == 0)
			return out;
		out.append(buf, size_t(n));
	}
}

Result<PipeFds> make_pipe(const char *what)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return fail_errno(what);
	PipeFds f;
	f.r.reset(p[0]);
	f.w.reset(p[1]);
	return f;
}

Result<UniqueFd> open_file(const std::string &path, int flags)
{
	UniqueFd fd(open(path.c_str(), flags | O_CLOEXEC));
	if (!fd)
		return fail_errno(path);
	return fd;
}

int pread_exact(int fd, void *buf, size_t len, uint64_t off)
{
	auto *p = static_cast<uint8_t *>(buf);
	while (len) {
		ssize_t n = pread(fd, p, len, off_t(off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 1;
		p += n;
		len -= size_t(n);
		off += uint64_t(n);
	}
	return 0;
}

Result<void> pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	int r = pread_exact(fd, buf, len, off);
	if (r < 0)
		return fail_errno("read");
	if (r > 0)
		return fail(EIO, "truncated");
	return {};
}

Result<void> pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	auto *p = static_cast<const uint8_t *>(buf);
	while (len) {
		ssize_t n = pwrite(fd, p, len, off_t(off));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno("write");
		}
		p += n;
		len -= size_t(n);
		off += uint64_t(n);
	}
	return {};
}

int pidfd_open(pid_t pid)
{
	return int(syscall(SYS_pidfd_open, pid, 0));
}

int pidfd_send_signal(int pidfd, int sig)
{
	return int(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

Result<void> write_file_atomic(const std::string &path, const std::string &data, bool sync)
{
	const std::string tmp = path + ".tmp";
	UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	if (!fd)
		return fail_errno("cannot create " + tmp);
	AMBER_TRY(write_all(fd.get(), data, tmp));
	if (sync && fsync(fd.get()))
		return fail_errno("fsync " + tmp);
	fd.reset();
	if (rename(tmp.c_str(), path.c_str()))
		return fail_errno("rename " + tmp + " to " + path);
	return {};
}

} // namespace amber
