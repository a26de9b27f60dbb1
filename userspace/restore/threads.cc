// SPDX-License-Identifier: GPL-2.0
// Threads on restore: their TIDs free, and the stack the parked threads
// are created on. The stub creates them (clone3_parked_thread(), stub.cc),
// the kernel gives them their state from THREADS.
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

Result<void> map_thread_stack(ThreadStack &s)
{
	return map_anon(s, 64 << 10, "the threads' stack");
}

Result<void> check_threads(const Checkpoint &c, pid_t pid)
{
	for (const ThreadInfo &t : c.threads) {
		if (pid_t(t.tid) == pid)
			return fail(EINVAL, "image: THREADS: thread " + std::to_string(t.tid) +
						    " is the thread group leader");
		auto r = check_pid_free(pid_t(t.tid));
		if (!r)
			return fail(0, "tid " + std::to_string(t.tid) + " (a thread of pid " +
					       std::to_string(pid) + ")" +
					       r.error().msg.substr(r.error().msg.find(" is in use")));
	}
	return {};
}

} // namespace amber
