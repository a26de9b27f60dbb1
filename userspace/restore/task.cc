// SPDX-License-Identifier: GPL-2.0
// The task on restore: its PID free, and what the stub sets up itself
// (cwd, umask, comm, rlimits; plan_task()). Credentials, registrations and
// the rest of TASK go to the kernel as they are.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>
#include <fstream>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <unistd.h>

#include <linux/amber.h>

#include "common/io.h"
#include "common/names.h"
#include "restore/core.h"

namespace amber {

std::string read_comm(pid_t pid)
{
	std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
	std::string comm;
	std::getline(in, comm);
	return comm;
}

Result<void> check_pid_free(pid_t pid)
{
	std::string proc = "/proc/" + std::to_string(pid);
	bool alive = kill(pid, 0) == 0 || errno != ESRCH;
	if (!alive && access(proc.c_str(), F_OK) != 0)
		return {};
	std::string comm = read_comm(pid);
	return fail(0, "pid " + std::to_string(pid) + " is in use" +
		       (comm.empty() ? "" : " (by comm '" + comm + "')"));
}

void plan_task(const Checkpoint &c, StubPlan &p)
{
	if (!c.task.cwd.empty())
		p.cwd = c.task.cwd;
	p.umask = mode_t(c.task.umask & 0777);
	p.comm = c.task.comm.substr(0, 15);
	for (const Rlimit &r : c.task.rlimits) {
		if (r.resource >= RLIM_NLIMITS)
			continue;
		StubRlimit s;
		s.resource = int(r.resource);
		s.lim.rlim_cur = r.cur;
		s.lim.rlim_max = r.max;
		p.rlimits.push_back(s);
	}
	std::stable_partition(p.rlimits.begin(), p.rlimits.end(),
			      [](const StubRlimit &r) { return r.resource != RLIMIT_NOFILE; });
}

} // namespace amber
