// SPDX-License-Identifier: GPL-2.0
// epoll on restore. The kernel reports each epoll's interest list
// (kmod/epoll.c: AMBER_FD_EPOLL, AMBER_FD_EPOLL_TFD): per registration the
// fd number it was added under, its events and data, and its target's file
// id. The tool creates one epoll per open file description, after every
// other description, like an eventfd; then adds each registration with
// EPOLL_CTL_ADD with the target installed, for that call, under the fd
// number it was registered under in the tool's own table (a registration
// is keyed by file and fd number and outlives the fd). Epolls watched by
// other epolls get their registrations first. The kernel rebuilds the ready
// lists. The checkpoint side: check_supported().
//
// A ONESHOT registration that fired has only its private bits left
// (disarmed). EPOLL_CTL_ADD and EPOLL_CTL_MOD always add EPOLLERR and
// EPOLLHUP, so it is added armed for every event and fired once with
// epoll_wait(), alone in the epoll at that point. A target ready for nothing
// at restore cannot be fired: it stays armed for EPOLLERR and EPOLLHUP only,
// with a warning.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/io.h"
#include "restore/core.h"

namespace amber {

namespace {

constexpr uint32_t kPrivate = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE;
// Every readiness bit: a disarmed ONESHOT registration is added with these
// to be fired at once.
constexpr uint32_t kAnyEvent = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDNORM | EPOLLRDBAND |
			       EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG | EPOLLRDHUP;

bool disarmed(uint32_t events)
{
	return (events & EPOLLONESHOT) && !(events & ~kPrivate);
}

// epoll_ctl(ep, EPOLL_CTL_ADD, tfd, ...) on the file of target, which the
// tool holds on fd target: installed under tfd for the call, then whatever
// the tool had there (or nothing) is put back.
Result<void> add_as(int ep, int target, int tfd, uint32_t events, uint64_t data,
		    const std::string &name)
{
	struct epoll_event ev = {};
	ev.events = events;
	ev.data.u64 = data;
	if (target == tfd) {
		if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) < 0)
			return fail_errno(name + ": epoll_ctl(EPOLL_CTL_ADD)");
		return {};
	}
	const int fdflags = fcntl(tfd, F_GETFD);
	UniqueFd saved(fdflags < 0 ? -1 : fcntl(tfd, F_DUPFD_CLOEXEC, 0));
	if (fdflags >= 0 && !saved)
		return fail_errno(name + ": saving the tool's fd " + std::to_string(tfd));
	const int epfd = ep == tfd ? saved.get() : ep;
	if (dup3(target, tfd, O_CLOEXEC) < 0)
		return fail_errno(name + ": dup3() to fd " + std::to_string(tfd));
	const int r = epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);
	const int err = errno;
	if (saved)
		dup3(saved.get(), tfd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0);
	else
		close(tfd);
	if (r < 0) {
		errno = err;
		return fail_errno(name + ": epoll_ctl(EPOLL_CTL_ADD)");
	}
	return {};
}

// Adds epoll i's registrations, disarmed ONESHOT ones first.
Result<void> add_registrations(const SharedPlan &sp, const SharedFds &out, size_t i)
{
	const SharedFile &f = sp.files[i];
	const int ep = out.files[i].get();

	for (int pass = 0; pass < 2; pass++)
		for (const SharedEpollTfd &t : f.epoll) {
			if (disarmed(t.reg.events) != (pass == 0))
				continue;
			const std::string name = f.owner + ": " + f.path + ": watching fd " +
						 std::to_string(t.reg.tfd);
			const int target = t.file >= 0 ? out.files[t.file].get() : t.outside;
			if (pass == 1) {
				AMBER_TRY(add_as(ep, target, int(t.reg.tfd), t.reg.events, t.reg.data,
						 name));
				continue;
			}
			AMBER_TRY(add_as(ep, target, int(t.reg.tfd), t.reg.events | kAnyEvent,
					 t.reg.data, name));
			struct epoll_event ev;
			int n;
			do
				n = epoll_wait(ep, &ev, 1, 0);
			while (n < 0 && errno == EINTR);
			if (n < 0)
				return fail_errno(name + ": epoll_wait");
			if (n == 1)
				continue;	// fired: disarmed
			struct epoll_event mod = {};
			mod.events = t.reg.events;
			mod.data.u64 = t.reg.data;
			if (epoll_ctl(ep, EPOLL_CTL_MOD, int(t.reg.tfd), &mod) < 0)
				return fail_errno(name + ": epoll_ctl(EPOLL_CTL_MOD)");
			fprintf(stderr,
				"amber: warning: %s: a fired EPOLLONESHOT registration whose "
				"target is not ready stays armed for EPOLLERR and EPOLLHUP\n",
				name.c_str());
		}
	return {};
}

} // namespace

void plan_epoll(const FdInfo &f, SharedFile &s)
{
	for (const EpollTfd &t : f.epoll_tfds)
		s.epoll.push_back({.reg = t});
}

Result<void> plan_epoll_targets(SharedBuild &b)
{
	std::map<uint64_t, int> by_id;
	for (size_t i = 0; i < b.sp.files.size(); i++)
		by_id.emplace(b.sp.files[i].file_id, int(i));
	for (SharedFile &f : b.sp.files)
		for (SharedEpollTfd &t : f.epoll) {
			if (auto it = by_id.find(t.reg.file_id); it != by_id.end())
				t.file = it->second;
			else if (auto o = b.outside_fd.find(t.reg.file_id); o != b.outside_fd.end())
				t.outside = o->second;
			else
				return fail(EOPNOTSUPP, f.owner + ": " + f.path + ": watches fd " +
								std::to_string(t.reg.tfd) +
								", whose file is not restored");
		}
	return {};
}

Result<void> create_epolls(const SharedPlan &sp, SharedFds &out)
{
	for (size_t i = 0; i < sp.files.size(); i++) {
		const SharedFile &f = sp.files[i];
		if (f.kind != SharedKind::Epoll)
			continue;
		UniqueFd fd(epoll_create1(EPOLL_CLOEXEC));
		if (!fd)
			return fail_errno(f.owner + ": " + f.path + ": epoll_create1");
		out.files[i] = std::move(fd);
	}
	// Depth first: the epolls an epoll watches get their registrations
	// before it (the kernel refuses loops, so this ends).
	std::vector<char> done(sp.files.size(), 0);
	std::function<Result<void>(size_t)> visit = [&](size_t i) -> Result<void> {
		done[i] = 1;
		for (const SharedEpollTfd &t : sp.files[i].epoll)
			if (t.file >= 0 && sp.files[t.file].kind == SharedKind::Epoll &&
			    !done[t.file])
				AMBER_TRY(visit(size_t(t.file)));
		AMBER_TRY(add_registrations(sp, out, i));
		return {};
	};
	for (size_t i = 0; i < sp.files.size(); i++)
		if (sp.files[i].kind == SharedKind::Epoll && !done[i])
			AMBER_TRY(visit(i));
	for (size_t i = 0; i < sp.files.size(); i++)
		if (sp.files[i].kind == SharedKind::Epoll)
			AMBER_TRY(set_fl(out.files[i].get(), sp.files[i].flags,
					 sp.files[i].owner + ": " + sp.files[i].path));
	return {};
}

} // namespace amber
