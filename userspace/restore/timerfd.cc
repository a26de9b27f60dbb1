// SPDX-License-Identifier: GPL-2.0
// timerfd on restore. The kernel reports each timerfd's clock, settime
// flags, unread expirations, value and interval (kmod/timerfd.c:
// AMBER_FD_TIMERFD_*); the tool creates one timerfd per open file
// description before the stubs exist, like an eventfd, so every fd and every
// process that shared it shares it again. A relative timer's time left
// counts from the restore (as POSIX timers in timers.cc); a
// TFD_TIMER_ABSTIME one keeps its absolute expiry on its clock. The
// expirations not read yet come back through TFD_IOC_SET_TICKS
// (CONFIG_CHECKPOINT_RESTORE). The checkpoint side: check_supported().
#include <cerrno>
#include <cstdint>
#include <ctime>

#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common/io.h"
#include "restore/core.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

namespace amber {

namespace {

constexpr uint64_t kNsec = 1000000000ull;

bool has_wake_alarm()
{
	__user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
	__user_cap_data_struct data[2] = {};
	if (syscall(SYS_capget, &hdr, data) != 0)
		return false;
	return data[CAP_TO_INDEX(CAP_WAKE_ALARM)].effective & CAP_TO_MASK(CAP_WAKE_ALARM);
}

timespec to_ts(uint64_t ns)
{
	return timespec{time_t(ns / kNsec), long(ns % kNsec)};
}

// Arms fd as s was; true when the timer is due at once (an expiry already
// past), so that its expiration must be absorbed before the ticks are set.
Result<bool> arm(int fd, const SharedFile &s, const std::string &name)
{
	itimerspec its{};
	its.it_interval = to_ts(s.timerfd_interval);
	bool due = false;
	const bool abs = s.timerfd_flags & TFD_TIMER_ABSTIME;
	if (s.timerfd_value) {
		its.it_value = to_ts(s.timerfd_value);
		if (abs) {
			timespec now{};
			clock_gettime(clockid_t(s.timerfd_clockid), &now);
			due = uint64_t(now.tv_sec) * kNsec + uint64_t(now.tv_nsec) >=
			      s.timerfd_value;
		}
	} else if (s.timerfd_interval && s.timerfd_ticks && !abs) {
		// Expired, not read, not re-armed yet: due at once, re-armed by
		// the next read as before.
		its.it_value = to_ts(1);
		due = true;
	}
	if (timerfd_settime(fd, int(s.timerfd_flags), &its, nullptr) != 0)
		return fail_errno(name + ": timerfd_settime");
	return due;
}

} // namespace

Result<void> plan_timerfd(const FdInfo &f, const std::string &name, SharedFile &s)
{
	switch (f.timerfd_clockid) {
	case CLOCK_REALTIME:
	case CLOCK_MONOTONIC:
	case CLOCK_BOOTTIME:
		break;
	case CLOCK_REALTIME_ALARM:
	case CLOCK_BOOTTIME_ALARM:
		if (!has_wake_alarm())
			return fail(EPERM, name + ": " + f.path +
						   ": an alarm timerfd needs CAP_WAKE_ALARM");
		break;
	default:
		return fail(EOPNOTSUPP, name + ": " + f.path + ": clock " +
						std::to_string(f.timerfd_clockid) +
						" is not supported");
	}
	if (f.timerfd_flags & ~uint32_t(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET))
		return fail(EOPNOTSUPP, name + ": " + f.path + ": settime flags " +
						std::to_string(f.timerfd_flags) + " are not supported");
	s.timerfd_clockid = f.timerfd_clockid;
	s.timerfd_flags = f.timerfd_flags;
	s.timerfd_ticks = f.timerfd_ticks;
	s.timerfd_value = f.timerfd_value;
	s.timerfd_interval = f.timerfd_interval;
	return {};
}

Result<void> create_timerfds(const SharedPlan &sp, SharedFds &out)
{
	for (size_t i = 0; i < sp.files.size(); i++) {
		const SharedFile &f = sp.files[i];
		if (f.kind != SharedKind::Timerfd)
			continue;
		const std::string name = f.owner + ": " + f.path;
		UniqueFd fd(timerfd_create(clockid_t(f.timerfd_clockid), TFD_CLOEXEC));
		if (!fd)
			return fail_errno(name + ": timerfd_create");
		const bool due = AMBER_TRY(arm(fd.get(), f, name));
		if (f.timerfd_ticks) {
			if (due) {
				// Let the expiry land first, or it would add one.
				pollfd p{fd.get(), POLLIN, 0};
				poll(&p, 1, 1000);
			}
			const uint64_t t = f.timerfd_ticks;
			if (ioctl(fd.get(), TFD_IOC_SET_TICKS, &t) != 0)
				return fail_errno(name + ": TFD_IOC_SET_TICKS");
		}
		AMBER_TRY(set_fl(fd.get(), f.flags, name));
		out.files[i] = std::move(fd);
	}
	return {};
}

} // namespace amber
