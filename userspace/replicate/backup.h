// SPDX-License-Identifier: GPL-2.0
// amber backup: the receiving end of `amber run --replicate` (stream.h).
//
// It keeps DIR as a normal image store: each checkpoint the primary sends
// is written into DIR/.tmp-N, verified as a whole (every section's and run's
// checksum, every field parsed, its parent present), fsynced, published as
// DIR/N under the primary's number and only then acknowledged. The output
// files (run.conf's stdout and stderr) follow up to the checkpoint, fsynced
// before the acknowledgement. DIR must be the primary's DIR path: the images
// name the output files by path, as run.conf does.
//
// Once a primary has been heard and a checkpoint is stored, silence for
// takeover_after_s (no frame at all, heartbeats included) is the primary's
// death: the backup takes the lease (when one is configured: it waits for
// it) and becomes `amber run --resume -D DIR`.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "replicate/lease.h"
#include "run/run.h"

namespace amber {

struct BackupOptions {
	std::string dir;
	std::string listen;		// ADDR:PORT (numeric IPv4 or [IPv6])
	double takeover_after_s = 1.0;
	uint32_t keep = 2;		// checkpoints kept in DIR (lazy retention:
					// more may stay while their chains are short)
	bool verbose = false;
	// The lease (lease.h): endpoint "" runs without one (no split-brain
	// protection: only for tests without etcd; a warning says so).
	LeaseConfig lease;
	// What the job runs with after the takeover (dir and resume are set
	// here; replicate may name a next backup).
	RunOptions run;
};

// Serves until the job ends (the primary's BYE: its exit status), or takes
// over and returns what `amber run` returned.
Result<int> run_backup(const BackupOptions &o);

// "ADDR:PORT" or "[ADDR]:PORT", numeric only (a static binary has no NSS).
struct SockAddr {
	uint8_t storage[128] = {};
	uint32_t len = 0;
	int family = 0;
};
Result<SockAddr> parse_host_port(const std::string &s);

} // namespace amber
