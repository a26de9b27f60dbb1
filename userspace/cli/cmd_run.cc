// SPDX-License-Identifier: GPL-2.0
// amber run -D DIR [--interval 30s|auto] [--mtbf DUR] [--keep K] [--max-restarts N]
//           [--stdout FILE] [--stderr FILE] [--verbose] [--ghost-limit BYTES]
//           -- CMD ARGS...
// amber run --resume -D DIR [--interval ..] [--mtbf ..] [--keep ..] [--max-restarts ..]
//
// The CLI around run_supervised() (run.cc): exits with the program's status
// (128 + signal when it was killed and not restored), 1 on an error.
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/lease_options.h"
#include "image/compress.h"
#include "run/run.h"

namespace amber {

namespace {

constexpr const char *kCmd = "run";

struct RunCliOptions {
	std::string dir;
	std::string interval = "30s";
	std::string mtbf;
	uint32_t keep = 2;
	uint32_t max_restarts = 10;
	std::string stdout_path;
	std::string stderr_path;
	bool verbose = false;
	bool resume = false;
	bool lazy_keep = false;
	uint64_t ghost_limit = kDefaultGhostLimit;
	bool compress = false;
	int compress_level = kDefaultZstdLevel;
	std::string replicate;
	bool output_commit = false;
	LeaseCliOptions lease;
	std::vector<std::string> cmd;
};

Result<RunOptions> to_run_options(const RunCliOptions &c, const CLI::App &sub)
{
	RunOptions o;
	o.dir = c.dir;
	o.argv = c.cmd;
	o.keep = c.keep;
	o.max_restarts = c.max_restarts;
	o.stdout_path = c.stdout_path;
	o.stderr_path = c.stderr_path;
	o.verbose = c.verbose;
	o.resume = c.resume;
	o.lazy_keep = c.lazy_keep;
	o.ghost_limit = c.ghost_limit;
	o.compress_level = c.compress ? c.compress_level : 0;
	o.replicate = c.replicate;
	o.output_commit = c.output_commit;
	o.lease_config = AMBER_TRY(to_lease_config(c.lease, c.dir));
	o.interval_given = sub.count("--interval") > 0;
	o.mtbf_given = sub.count("--mtbf") > 0;
	o.keep_given = sub.count("--keep") > 0;
	o.max_restarts_given = sub.count("--max-restarts") > 0;
	if (c.interval != "auto") {
		auto d = parse_duration(c.interval);
		if (!d)
			return wrap(d.error(), "--interval: ");
		o.interval_s = *d;
	}
	if (o.mtbf_given) {
		auto d = parse_duration(c.mtbf);
		if (!d)
			return wrap(d.error(), "--mtbf: ");
		o.mtbf_s = *d;
	}
	if (c.resume) {
		if (!c.cmd.empty())
			return fail(0, "--resume takes the command from DIR/run.conf: "
					    "give no CMD");
		if (!c.stdout_path.empty() || !c.stderr_path.empty())
			return fail(0, "--resume takes the output files from DIR/run.conf");
		// auto without --mtbf is checked against run.conf's mtbf.
		return o;
	}
	if (c.cmd.empty())
		return fail(0, "no command: amber run -D DIR [options] -- CMD ARGS...");
	if (!o.interval_s && !o.mtbf_given)
		return fail(0, "--interval auto needs --mtbf");
	return o;
}

void run_run(const RunCliOptions &c, const CLI::App &sub)
{
	auto o = to_run_options(c, sub);
	if (!o) {
		report_error(kCmd, o.error());
		return;
	}
	auto supervise = [&o]() -> int {
		auto s = run_supervised(*o);
		if (!s)
			return report_error(kCmd, s.error());
		return s->exit_status;
	};
	// A job under a lease dies with its supervisor (run.h).
	set_exit_status(o->lease_config.endpoint.empty() ? supervise()
							 : run_with_lifeline(supervise));
}

} // namespace

void setup_run(CLI::App &app)
{
	auto opt = std::make_shared<RunCliOptions>();
	CLI::App *sub = app.add_subcommand(
		"run", "Run a program, checkpoint it periodically and restore it when it dies");
	sub->add_option("-D,--dir", opt->dir,
			"Directory of the run: checkpoints, run.conf, run.log, pid, output")
		->required();
	sub->add_option("--interval", opt->interval,
			"Time between checkpoints (30s, 2m, 1h, 500ms, 1.5s, 45), or 'auto' "
			"(from the checkpoint cost and --mtbf)")
		->capture_default_str();
	sub->add_option("--mtbf", opt->mtbf,
			"Mean time between failures, for --interval auto (a duration)");
	sub->add_option("--keep", opt->keep, "Restorable checkpoints kept in DIR")
		->capture_default_str()
		->check(CLI::Range(1u, 1000000u));
	sub->add_flag("--lazy-keep", opt->lazy_keep,
		      "Compact only when the latest chain has 16 links or holds twice the memory "
		      "(more than K checkpoints may stay) instead of at every checkpoint");
	sub->add_option("--max-restarts", opt->max_restarts,
			"Give up when the program dies more often than this")
		->capture_default_str()
		->check(CLI::Range(0u, 1000000u));
	sub->add_option("--ghost-limit", opt->ghost_limit,
			"Largest deleted-but-open regular file saved into each checkpoint, in "
			"bytes (a larger one fails the checkpoint)")
		->capture_default_str();
	CLI::Option *compress = sub->add_flag(
		"--compress", opt->compress,
		"Compress each checkpoint's pages files with zstd (pages.img.zst) after the "
		"program resumed: smaller images of compressible memory, restores decompress them "
		"into memory first");
	sub->add_option("--compress-level", opt->compress_level, "zstd level of --compress")
		->capture_default_str()
		->check(CLI::Range(1, 19))
		->needs(compress);
	sub->add_option("--stdout", opt->stdout_path,
			"File the program's stdout is appended to (default DIR/stdout)");
	sub->add_option("--stderr", opt->stderr_path,
			"File the program's stderr is appended to (default DIR/stderr)");
	sub->add_option("--replicate", opt->replicate,
			"Send every checkpoint (its delta) and the output up to it to `amber "
			"backup` at ADDR:PORT, with heartbeats");
	sub->add_flag("--output-commit", opt->output_commit,
		      "The stdout and stderr files get the program's output only once a "
		      "checkpoint covering it is safe (acknowledged by the backup): a takeover "
		      "never repeats output already visible");
	add_lease_options(*sub, opt->lease);
	sub->add_flag("--verbose", opt->verbose, "Print every log line on stderr as well");
	sub->add_flag("--resume", opt->resume,
		      "Take over the run in DIR after its supervisor (or the machine) went down");
	sub->add_option("cmd", opt->cmd, "The command and its arguments, after --");
	sub->callback([opt, sub] { run_run(*opt, *sub); });
}

} // namespace amber
