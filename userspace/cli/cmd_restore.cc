// SPDX-License-Identifier: GPL-2.0
// amber restore -D DIR [--checkpoint N] [--detach]: bring a checkpointed
// process back with its original PID (restore/restore.cc), then wait for it
// and exit with its status, or print its PID with --detach.
#include <cerrno>
#include <cstdio>

#include <CLI/CLI.hpp>

#include <sys/wait.h>

#include "cli/commands.h"
#include "restore/restore.h"

namespace amber {

namespace {

constexpr const char *kCmd = "restore";

struct RestoreOptions {
	std::string dir;
	uint32_t checkpoint = 0;	// 0: latest
	bool detach = false;
	std::string pid_conflict = "fail";
	int timeout_s = 60;
};

// "128 + signal" for a killed child, its exit code otherwise.
int status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 1;
}

Result<int> restore(const RestoreOptions &o)
{
	RestoreRequest req;
	req.dir = o.dir;
	if (o.checkpoint)
		req.number = o.checkpoint;
	req.timeout_s = o.timeout_s;
	RestoredProcess p = AMBER_TRY(restore_process(req));
	if (o.detach) {
		printf("restored pid %d\n", p.pid);
		fflush(stdout);
		return 0;
	}
	int st;
	while (waitpid(p.pid, &st, 0) < 0)
		if (errno != EINTR)
			return fail_errno("waitpid " + std::to_string(p.pid));
	return status_code(st);
}

void run_restore(const RestoreOptions &o)
{
	auto r = restore(o);
	if (!r) {
		report_error(kCmd, r.error());
		return;
	}
	set_exit_status(*r);
}

} // namespace

void setup_restore(CLI::App &app)
{
	auto opt = std::make_shared<RestoreOptions>();
	CLI::App *sub = app.add_subcommand("restore",
					   "Restore a checkpointed process with its original PID");
	sub->add_option("-D,--dir", opt->dir, "Image store directory")->required();
	sub->add_option("--checkpoint", opt->checkpoint,
			"Checkpoint number to restore (0: the latest)")
		->capture_default_str();
	sub->add_flag("--detach", opt->detach,
		      "Return once the process runs instead of waiting for it");
	sub->add_option("--pid-conflict", opt->pid_conflict,
			"What to do when the PID is taken (only 'fail')")
		->check(CLI::IsMember({"fail"}))
		->capture_default_str();
	sub->add_option("--timeout", opt->timeout_s,
			"Seconds to wait for amber.ko to answer the restore request")
		->check(CLI::Range(1, 3600))
		->capture_default_str();
	sub->callback([opt] { run_restore(*opt); });
}

} // namespace amber
