// SPDX-License-Identifier: GPL-2.0
// eventfd on restore. The kernel reports each eventfd's count and its
// EFD_SEMAPHORE mode (kmod/eventfd.c: AMBER_FD_EVENTFD_COUNT,
// AMBER_FD_EVENTFD_SEMAPHORE); the tool creates one eventfd per open file
// description before the stubs exist, like a pipe, so every fd and every
// process that shared it shares it again. The checkpoint side:
// check_supported().
#include <cerrno>
#include <cstdint>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/io.h"
#include "restore/core.h"

namespace amber {

void plan_eventfd(const FdInfo &f, SharedFile &s)
{
	s.eventfd_count = f.eventfd_count;
	s.eventfd_sem = f.eventfd_sem;
}

Result<void> create_eventfds(const SharedPlan &sp, SharedFds &out)
{
	for (size_t i = 0; i < sp.files.size(); i++) {
		const SharedFile &f = sp.files[i];
		if (f.kind != SharedKind::Eventfd)
			continue;
		const std::string name = f.owner + ": " + f.path;
		// eventfd() takes an unsigned int: the count is written in.
		UniqueFd fd(eventfd(0, EFD_CLOEXEC | (f.eventfd_sem ? EFD_SEMAPHORE : 0)));
		if (!fd)
			return fail_errno(name + ": eventfd");
		if (f.eventfd_count) {
			const uint64_t v = f.eventfd_count;
			if (write(fd.get(), &v, sizeof(v)) != sizeof(v))
				return fail_errno(name + ": writing its count");
		}
		AMBER_TRY(set_fl(fd.get(), f.flags, name));
		out.files[i] = std::move(fd);
	}
	return {};
}

} // namespace amber
