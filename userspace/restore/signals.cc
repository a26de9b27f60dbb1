// SPDX-License-Identifier: GPL-2.0
// Signals on restore: the dispositions and process-wide pending signals the
// stub installs itself (plan_signals()), the thread-directed ones each new
// thread queues for itself (plan_thread_signals()). The blocked masks and
// the rest travel in SIGNALS and THREAD to the kernel.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/amber.h>

#include "common/io.h"
#include "common/names.h"
#include "restore/core.h"

namespace amber {

Result<void> plan_signals(const Checkpoint &c, StubPlan &p)
{
	constexpr int kNsig = 64;
	std::vector<bool> seen(kNsig + 1);

	for (const SigAction &a : c.signals.actions) {
		if (a.signo < 1 || a.signo > kNsig)
			return fail(0, "image: CORE: signal action for signal " +
				       std::to_string(a.signo) + " out of range");
		seen[a.signo] = true;
		if (a.signo == SIGKILL || a.signo == SIGSTOP)
			continue;
		p.actions.push_back({int(a.signo), {a.handler, a.flags, a.restorer, a.mask}});
	}
	// Signals the image does not mention go back to the default.
	for (int s = 1; s <= kNsig; s++)
		if (!seen[s] && s != SIGKILL && s != SIGSTOP)
			p.actions.push_back({s, {0, 0, 0, 0}});

	for (const SigPending &sp : c.signals.pending) {
		StubSiginfo si;
		if (sp.siginfo.size() != sizeof(si.info))
			return fail(0, "image: CORE: pending siginfo of " +
				       std::to_string(sp.siginfo.size()) + " bytes");
		memcpy(si.info, sp.siginfo.data(), sizeof(si.info));
		int32_t signo;
		memcpy(&signo, si.info, sizeof(signo));
		if (signo < 1 || signo > kNsig)
			return fail(0, "image: CORE: pending signal " + std::to_string(signo) +
				       " out of range");
		if (signo == SIGKILL || signo == SIGSTOP)
			continue;
		si.signo = signo;
		si.shared = sp.shared;
		p.pending.push_back(si);
	}
	return {};
}

Result<std::vector<StubThreadSig>> plan_thread_signals(const Checkpoint &c)
{
	std::vector<StubThreadSig> out;
	uint32_t prev = 0;
	for (const ThreadInfo &t : c.threads) {
		std::string name = "image: THREADS: thread " + std::to_string(t.tid);
		if (t.tid == 0 || t.tid > uint32_t(INT32_MAX) || t.tid <= prev)
			return fail(EINVAL, name + ": TIDs not ascending");
		if (t.tid == c.task.pid)
			return fail(EINVAL, name + ": the thread group leader's TID");
		prev = t.tid;
		for (const SigPending &sp : t.pending) {
			StubThreadSig ts;
			ts.tid = pid_t(t.tid);
			if (sp.siginfo.size() != sizeof(ts.info))
				return fail(EINVAL, name + ": pending siginfo of " +
							    std::to_string(sp.siginfo.size()) +
							    " bytes");
			memcpy(ts.info, sp.siginfo.data(), sizeof(ts.info));
			int32_t signo;
			memcpy(&signo, ts.info, sizeof(signo));
			if (signo < 1 || signo > 64)
				return fail(EINVAL, name + ": pending signal " +
							    std::to_string(signo) + " out of range");
			if (signo == SIGKILL || signo == SIGSTOP)
				continue;
			ts.signo = signo;
			out.push_back(ts);
		}
	}
	return out;
}

} // namespace amber
