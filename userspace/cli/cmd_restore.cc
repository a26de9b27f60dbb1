// SPDX-License-Identifier: GPL-2.0
// amber restore -D DIR [--checkpoint N] [--detach] [--lazy [--lazy-log FILE]]:
// bring a checkpointed process back with its original PID
// (restore/restore.cc), then wait for it and exit with its status, or print
// its PID with --detach. --lazy runs it before its memory is filled
// (restore/lazy.h).
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
	bool lazy = false;
	std::string lazy_log;
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
	req.lazy = o.lazy;
	req.lazy_log = o.lazy_log;
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
	sub->add_flag("--lazy", opt->lazy,
		      "Run the process before its private anonymous memory is filled: a "
		      "background child of this command fills each page on first touch and "
		      "the rest in address order, checking every run's checksum first (a "
		      "damaged run kills the process, naming the pages file, run and pid). "
		      "Single processes only");
	sub->add_option("--lazy-log", opt->lazy_log,
			"With --lazy: append the filler's messages, and a line once the fill "
			"is complete, to this file instead of stderr")
		->needs("--lazy");
	sub->callback([opt] { run_restore(*opt); });
}

} // namespace amber
