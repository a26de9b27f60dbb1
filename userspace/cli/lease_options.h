// SPDX-License-Identifier: GPL-2.0
// The lease options `amber run` and `amber backup` share (--etcd,
// --lease-key, --lease-ttl) and the LeaseConfig they make.
#pragma once

#include <string>

#include "common/result.h"
#include "replicate/lease.h"

namespace CLI {
class App;
}

namespace amber {

// 1 s: the backup takes over about 1 s after the primary's last renewal
// (etcd raises a TTL below its minimum, 2 s with its default election
// timeout; the lease uses what etcd granted).
inline constexpr int kDefaultLeaseTtlS = 1;

struct LeaseCliOptions {
	std::string etcd;		// "": no lease
	std::string key;		// "": /amber/lease<realpath of DIR>
	int ttl_s = kDefaultLeaseTtlS;
};

void add_lease_options(CLI::App &sub, LeaseCliOptions &o);

// The lease of the job in dir (endpoint "" without --etcd); the holder is
// "HOSTNAME pid PID".
Result<LeaseConfig> to_lease_config(const LeaseCliOptions &o, const std::string &dir);

} // namespace amber
