// SPDX-License-Identifier: GPL-2.0
// Timers on restore: the interval timers (setitimer, alarm) and POSIX
// timers (timer_create) of AMBER_A_TIMERS, checked here and recreated by
// the stub (run_stub(), after the threads: a SIGEV_THREAD_ID target must
// exist) with the time left at the checkpoint, as CRIU does: the time
// between the checkpoint and the restore does not count. POSIX timers get
// their ids back because the kernel hands them out in sequence per process
// (posix_timer_add()): the stub creates fillers up to each id and deletes
// them. Not restored: a timer's overrun count (timer_getoverrun() gives 0
// until it next expires).
#include <cerrno>
#include <csignal>
#include <set>
#include <string>

#include <time.h>

#include <linux/amber.h>

#include "restore/core.h"

namespace amber {

namespace {

timespec ns_ts(uint64_t ns)
{
	return {time_t(ns / 1000000000), long(ns % 1000000000)};
}

// setitimer() takes microseconds: round up, so that an armed timer stays armed.
itimerval itimer_of(const ITimer &t)
{
	itimerval v = {};
	uint64_t us = (t.value + 999) / 1000, ius = (t.interval + 999) / 1000;
	v.it_value = {time_t(us / 1000000), suseconds_t(us % 1000000)};
	v.it_interval = {time_t(ius / 1000000), suseconds_t(ius % 1000000)};
	return v;
}

bool clock_ok(uint32_t c)
{
	return c == CLOCK_REALTIME || c == CLOCK_MONOTONIC || c == CLOCK_BOOTTIME ||
	       c == CLOCK_TAI || c == CLOCK_PROCESS_CPUTIME_ID;
}

} // namespace

Result<void> plan_timers(const Checkpoint &c, StubPlan &p)
{
	const Timers &t = c.timers;
	p.timers.itimer[ITIMER_REAL] = itimer_of(t.real);
	p.timers.itimer[ITIMER_VIRTUAL] = itimer_of(t.virt);
	p.timers.itimer[ITIMER_PROF] = itimer_of(t.prof);

	std::set<uint32_t> tids;
	for (const ThreadInfo &th : c.threads)
		tids.insert(th.tid);
	tids.insert(c.task.pid ? c.task.pid : c.info.pid);

	int64_t prev = -1;
	for (const PosixTimer &pt : t.timers) {
		std::string name = "image: CORE: TIMERS: POSIX timer " + std::to_string(pt.id);
		if (pt.id > AMBER_MAX_POSIX_TIMER_ID || int64_t(pt.id) <= prev)
			return fail(EINVAL, name + ": id out of range or not ascending");
		prev = pt.id;
		if (!clock_ok(pt.clock))
			return fail(EINVAL, name + ": clock " + std::to_string(pt.clock) +
						    " not supported");
		bool thread_id = pt.notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID);
		if (pt.notify != SIGEV_SIGNAL && pt.notify != SIGEV_NONE &&
		    pt.notify != SIGEV_THREAD && !thread_id)
			return fail(EINVAL, name + ": sigev_notify " + std::to_string(pt.notify) +
						    " not supported");
		if (pt.notify != SIGEV_NONE && (pt.signo < 1 || pt.signo > 64))
			return fail(EINVAL, name + ": signal " + std::to_string(pt.signo) +
						    " out of range");
		if (thread_id && !tids.count(pt.tid))
			return fail(EINVAL, name + ": SIGEV_THREAD_ID target " +
						    std::to_string(pt.tid) +
						    " is not a thread of the process");
		StubTimer st;
		st.id = int32_t(pt.id);
		st.clock = int32_t(pt.clock);
		st.ev.value = pt.sigval;
		st.ev.signo = int32_t(pt.signo);
		st.ev.notify = int32_t(pt.notify);
		st.ev.tid = thread_id ? int32_t(pt.tid) : 0;
		if (pt.value) {
			st.its.it_value = ns_ts(pt.value);
			st.its.it_interval = ns_ts(pt.interval);
		}
		p.timers.timers.push_back(st);
	}
	// Where the next timer_create() would have started, if fillers can reach it.
	if (t.next_id > uint32_t(prev + 1) && t.next_id <= AMBER_MAX_POSIX_TIMER_ID + 1)
		p.timers.next_id = int32_t(t.next_id);
	return {};
}

} // namespace amber
