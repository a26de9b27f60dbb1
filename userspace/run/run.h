// SPDX-License-Identifier: GPL-2.0
// amber run: start a program, checkpoint it periodically and bring it back
// from its latest good checkpoint when it dies by a signal.
//
// DIR is an image store (store.h) plus the supervisor's own files:
//   DIR/run.conf   the command and options, written at the first start,
//                  read by --resume
//   DIR/run.log    one line per event, appended (format in run.cc)
//   DIR/pid        the program's current PID and a newline
//   DIR/run.lock   flock held by the supervisor for its whole life (holds
//                  the supervisor's PID)
//   DIR/run.state  the program's PID, start time and boot id (for --resume
//                  to recognize it), and whether the run ended
//   DIR/stdout, DIR/stderr   the program's output (unless --stdout/--stderr)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/ghosts.h"
#include "common/result.h"
#include "replicate/lease.h"

namespace amber {

struct RunOptions {
	std::string dir;
	std::vector<std::string> argv;		// CMD ARGS (empty with resume)
	std::optional<double> interval_s;	// nullopt: --interval auto
	double mtbf_s = 0;			// --mtbf, needed by auto
	uint32_t keep = 2;			// restorable checkpoints kept
	uint32_t max_restarts = 10;
	std::string stdout_path;		// "": DIR/stdout
	std::string stderr_path;		// "": DIR/stderr
	bool verbose = false;			// log lines on stderr too
	bool progress = true;			// progress line when stderr is a tty
	bool resume = false;
	// amber bench overhead: false runs the program once under the same
	// schedule and never restores it (its death ends the run).
	bool restart = true;
	// --lazy-keep: retention with run.cc's lazy RetainPolicy (store.h)
	// instead of compacting at every checkpoint; more than `keep`
	// checkpoints may then stay in DIR.
	bool lazy_keep = false;
	// --ghost-limit: the largest deleted open file each checkpoint saves
	// (not kept in run.conf: a resumed run takes it from its command line).
	uint64_t ghost_limit = kDefaultGhostLimit;
	// --compress: the zstd level of every checkpoint's pages files, 0:
	// uncompressed (not kept in run.conf either).
	int compress_level = 0;
	// --replicate ADDR:PORT: each checkpoint also goes to `amber backup`
	// there (replicate/sender.h); "": none.
	std::string replicate;
	// --output-commit: the program writes DIR/stdout.uncommitted and
	// DIR/stderr.uncommitted; the stdout and stderr files get what an
	// acknowledged checkpoint covers (all of it when the job ended and the
	// backup was told), so that a takeover never repeats visible output.
	bool output_commit = false;
	// --etcd: the job runs only while this supervisor holds the lease
	// (replicate/lease.h); endpoint "": no lease.
	LeaseConfig lease_config;
	// A lease already held (`amber backup` after its takeover), renewed
	// and watched like one acquired here.
	std::shared_ptr<Lease> lease;
	// With resume: which of interval_s/mtbf_s, keep, max_restarts the
	// command line gave (they override run.conf; the others come from it).
	bool interval_given = false;
	bool mtbf_given = false;
	bool keep_given = false;
	bool max_restarts_given = false;
};

// One checkpoint taken by the supervisor.
struct RunCheckpoint {
	uint32_t number = 0;
	bool incremental = false;
	double stopped_ms = 0;		// the program's pause
	double total_ms = 0;		// request until durable (and retention)
	uint64_t bytes = 0;		// meta.img + pages.img written
};

struct RunStats {
	int exit_status = 0;		// what `amber run` exits with
	double wall_s = 0;		// program start until its final exit
	uint32_t restarts = 0;
	uint32_t failed_checkpoints = 0;
	std::vector<RunCheckpoint> checkpoints;
};

// Runs the supervisor to the end (the program's own exit, give-up, or a
// stop signal). Operational failures that end the run (DIR locked by another
// supervisor, CMD not executable, every restore refused, ...) are errors;
// the program's own exit or death is a RunStats with its exit_status.
Result<RunStats> run_supervised(const RunOptions &o);

// The job must not outlive a supervisor that holds its lease: if the
// supervisor is killed (not its machine), the lease runs out and the backup
// takes over while the job would still run. So body() (the supervisor) runs
// in a child process, and this process stays, as a child subreaper, the
// parent the job is reparented to if the supervisor dies: it then SIGKILLs
// every process left below it (the job's tree, the lease's helper). SIGTERM
// sent to this process is passed on to the supervisor; SIGINT and SIGHUP (a
// terminal's, which reach the whole process group) are left to it. Returns
// body's status, or 128 + the signal that killed the supervisor.
int run_with_lifeline(const std::function<int()> &body);

// "30s", "2m", "1h", "500ms", "1.5s", "45" (seconds). > 0.
Result<double> parse_duration(std::string_view s);

// Daly's higher-order estimate of the optimum checkpoint interval for a
// checkpoint cost c_s and a mean time between failures mtbf_s (Young's
// sqrt(2*C*M) is its first term); mtbf_s when c_s >= 2*mtbf_s.
double daly_interval(double c_s, double mtbf_s);

} // namespace amber
