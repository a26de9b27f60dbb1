// SPDX-License-Identifier: GPL-2.0
// signalfd on restore. The kernel reports each signalfd's mask
// (kmod/signalfd.c: AMBER_FD_SIGNALFD_MASK); the tool creates one signalfd
// per open file description before the stubs exist, like an eventfd. A
// signalfd reads the signals pending on whichever task reads it, so one made
// by the tool serves the restored process; the blocked mask and the pending
// signals are the process's own (signals.cc). The checkpoint side:
// check_supported().
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>

#include <sys/signalfd.h>

#include "common/io.h"
#include "restore/core.h"

namespace amber {

void plan_signalfd(const FdInfo &f, SharedFile &s)
{
	s.signalfd_mask = f.signalfd_mask;
}

Result<void> create_signalfds(const SharedPlan &sp, SharedFds &out)
{
	for (size_t i = 0; i < sp.files.size(); i++) {
		const SharedFile &f = sp.files[i];
		if (f.kind != SharedKind::Signalfd)
			continue;
		const std::string name = f.owner + ": " + f.path;
		// The kernel's 64-bit sigset as is: sigaddset() refuses libc's
		// internal signals 32 and 33.
		sigset_t mask;
		sigemptyset(&mask);
		std::memcpy(&mask, &f.signalfd_mask, sizeof(f.signalfd_mask));
		UniqueFd fd(signalfd(-1, &mask, SFD_CLOEXEC));
		if (!fd)
			return fail_errno(name + ": signalfd");
		AMBER_TRY(set_fl(fd.get(), f.flags, name));
		out.files[i] = std::move(fd);
	}
	return {};
}

} // namespace amber
