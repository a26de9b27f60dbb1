// SPDX-License-Identifier: GPL-2.0
#include "cli/lease_options.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

#include <CLI/CLI.hpp>

namespace amber {

void add_lease_options(CLI::App &sub, LeaseCliOptions &o)
{
	sub.add_option("--etcd", o.etcd,
		       "etcd endpoint (http://ADDR:PORT, its v3 JSON gateway) holding the job's "
		       "lease: the job runs only where the lease is held");
	sub.add_option("--lease-key", o.key,
		       "etcd key of the lease (default /amber/lease followed by DIR's absolute "
		       "path, the same on the primary and the backup)");
	sub.add_option("--lease-ttl", o.ttl_s, "TTL of the lease in seconds")
		->capture_default_str()
		->check(CLI::Range(1, 60));
}

Result<LeaseConfig> to_lease_config(const LeaseCliOptions &o, const std::string &dir)
{
	LeaseConfig c;
	if (o.etcd.empty())
		return c;
	c.endpoint = o.etcd;
	c.ttl_s = o.ttl_s;
	c.key = o.key;
	if (c.key.empty()) {
		std::error_code ec;
		std::filesystem::create_directories(dir, ec);
		char real[PATH_MAX];
		if (!realpath(dir.c_str(), real))
			return fail_errno("realpath " + dir);
		c.key = std::string("/amber/lease") + real;
	}
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	c.holder = std::string(host) + " pid " + std::to_string(getpid());
	return c;
}

} // namespace amber
