// SPDX-License-Identifier: GPL-2.0
// amber backup -D DIR --listen ADDR:PORT [--takeover-after DUR] [--keep K]
//              [--etcd URL [--lease-key KEY] [--lease-ttl S]]
//              [--replicate ADDR:PORT] [--interval DUR] [--verbose]
//
// The CLI around run_backup() (replicate/backup.h): exits with the job's
// status (the primary's when it ended there, or this machine's after a
// takeover), 1 on an error.
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/lease_options.h"
#include "replicate/backup.h"

namespace amber {

namespace {

constexpr const char *kCmd = "backup";

struct BackupCliOptions {
	std::string dir;
	std::string listen;
	std::string takeover_after = "1s";
	uint32_t keep = 2;
	bool verbose = false;
	LeaseCliOptions lease;
	std::string replicate;
	std::string interval;
};

Result<BackupOptions> to_backup_options(const BackupCliOptions &c)
{
	BackupOptions o;
	o.dir = c.dir;
	o.listen = c.listen;
	o.keep = c.keep;
	o.verbose = c.verbose;
	auto t = parse_duration(c.takeover_after);
	if (!t)
		return wrap(t.error(), "--takeover-after: ");
	o.takeover_after_s = *t;
	AMBER_TRY(parse_host_port(c.listen));
	o.lease = AMBER_TRY(to_lease_config(c.lease, c.dir));
	o.run.verbose = c.verbose;
	o.run.replicate = c.replicate;
	o.run.lease_config = o.lease;
	if (!c.interval.empty()) {
		auto d = parse_duration(c.interval);
		if (!d)
			return wrap(d.error(), "--interval: ");
		o.run.interval_s = *d;
		o.run.interval_given = true;
	}
	return o;
}

void run_backup_cmd(const BackupCliOptions &c)
{
	auto o = to_backup_options(c);
	if (!o) {
		report_error(kCmd, o.error());
		return;
	}
	auto s = run_backup(*o);
	if (!s) {
		report_error(kCmd, s.error());
		return;
	}
	set_exit_status(*s);
}

} // namespace

void setup_backup(CLI::App &app)
{
	auto opt = std::make_shared<BackupCliOptions>();
	CLI::App *sub = app.add_subcommand(
		"backup", "Receive the checkpoints of `amber run --replicate` and take the job "
			  "over when its machine falls silent");
	sub->add_option("-D,--dir", opt->dir,
			"Image store of the copy: the same path as the primary's -D DIR")
		->required();
	sub->add_option("--listen", opt->listen, "ADDR:PORT to listen on (numeric)")->required();
	sub->add_option("--takeover-after", opt->takeover_after,
			"Silence of the primary (no heartbeat) after which the job is taken over")
		->capture_default_str();
	sub->add_option("--keep", opt->keep, "Restorable checkpoints kept in DIR")
		->capture_default_str()
		->check(CLI::Range(1u, 1000000u));
	add_lease_options(*sub, opt->lease);
	sub->add_option("--replicate", opt->replicate,
			"After a takeover, replicate on to the backup at ADDR:PORT");
	sub->add_option("--interval", opt->interval,
			"After a takeover, the time between checkpoints (default: the primary's)");
	sub->add_flag("--verbose", opt->verbose, "Print every log line on stderr as well");
	sub->callback([opt] { run_backup_cmd(*opt); });
}

} // namespace amber
