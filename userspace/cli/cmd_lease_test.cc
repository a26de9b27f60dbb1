// SPDX-License-Identifier: GPL-2.0
// amber lease-test (hidden): drives the replication lease (replicate/lease.h)
// from a shell, for scripts/test-lease. Acquires the key (one attempt with
// --once, else one every 0.1 s for --wait seconds), then holds it for --hold
// seconds and releases it, or until its validity runs out. One line per
// event on stdout, each with t= (CLOCK_MONOTONIC seconds, now_s()):
//   busy t= holder=TEXT rev=N        someone else holds it (first time, and
//                                    whenever the holder changes)
//   error t= what                    a failed attempt (retried)
//   acquired t= valid_until= ttl= lease= rev=
//   renewed t= valid_until=          with --verbose, each renewal
//   expired t= valid_until= late= lost= note=   the validity ran out (the
//                                    caller would kill its job now); late= is
//                                    how long after valid_until this noticed;
//                                    lost=1 when the helper said it first
//   released t=
// Exit status: 0 released after --hold (or on SIGINT/SIGTERM), 3 busy until
// --wait passed, 4 the lease's validity ran out, 1 an error.
#include <cstdio>

#include <CLI/CLI.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>

#include "cli/commands.h"
#include "common/io.h"
#include "replicate/lease.h"

namespace amber {

namespace {

struct LeaseTestOptions {
	LeaseConfig conf;
	double wait_s = 0;	// 0: --once
	bool once = false;
	double hold_s = 0;	// 0: until the lease runs out or a signal
	bool verbose = false;
};

void event(const char *what, const std::string &rest = "")
{
	printf("%s t=%.3f%s%s\n", what, now_s(), rest.empty() ? "" : " ", rest.c_str());
	fflush(stdout);
}

std::string f3(double v)
{
	char b[32];
	snprintf(b, sizeof(b), "%.3f", v);
	return b;
}

// Status 0, 3 or 4 (above); errors as errors.
Result<int> lease_test(const LeaseTestOptions &o)
{
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop, nullptr);
	UniqueFd sigfd(signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK));
	if (!sigfd)
		return fail_errno("signalfd");

	Lease lease = AMBER_TRY(Lease::start(o.conf));
	const double give_up = now_s() + (o.once ? 0 : o.wait_s);
	std::string last;
	for (;;) {
		auto got = lease.try_acquire();
		if (got && *got)
			break;
		if (!got) {
			if (o.once)
				return tl::unexpected(got.error());
			event("error", got.error().str());
		} else if (lease.holder() != last) {
			last = lease.holder();
			event("busy", "holder=" + last + " rev=" + std::to_string(lease.revision()));
		}
		if (now_s() >= give_up)
			return 3;
		pollfd p{sigfd.get(), POLLIN, 0};
		if (poll(&p, 1, 100) > 0)
			return 0;
	}
	event("acquired", "valid_until=" + f3(lease.valid_until()) +
				  " ttl=" + std::to_string(lease.ttl_s()) +
				  " lease=" + std::to_string(lease.lease_id()) +
				  " rev=" + std::to_string(lease.revision()));

	const double end = o.hold_s > 0 ? now_s() + o.hold_s : 0;
	double shown = lease.valid_until();
	for (;;) {
		const double now = now_s();
		if (now >= lease.valid_until()) {
			// What the primary does here: kill its job.
			// (valid_until() is 0 when the helper reported the lease lost.)
			event("expired", "valid_until=" + f3(shown) + " late=" + f3(now - shown) +
						 " lost=" + (lease.valid_until() ? "0" : "1") +
						 " note=" + lease.last_note());
			return 4;
		}
		if (end && now >= end)
			break;
		double until = lease.valid_until();
		if (end)
			until = std::min(until, end);
		pollfd p[2] = {{lease.fd(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
		const int ms = int((until - now) * 1000) + 1;
		if (poll(p, 2, ms) < 0 && errno != EINTR)
			return fail_errno("poll");
		if (p[1].revents)
			break;
		if (p[0].revents) {
			if (auto u = lease.update(); !u)
				event("error", u.error().str());
		}
		if (lease.valid_until() != shown && lease.valid_until() > 0) {
			shown = lease.valid_until();
			if (o.verbose)
				event("renewed", "valid_until=" + f3(shown));
		}
	}
	lease.release();
	event("released");
	return 0;
}

void run_lease_test(const LeaseTestOptions &o)
{
	auto r = lease_test(o);
	if (!r) {
		report_error("lease-test", r.error());
		return;
	}
	set_exit_status(*r);
}

} // namespace

void setup_lease_test(CLI::App &app)
{
	auto opt = std::make_shared<LeaseTestOptions>();
	CLI::App *sub = app.add_subcommand("lease-test", "Acquire and hold the replication lease (tests)");
	sub->group("");	// hidden
	sub->add_option("--endpoint", opt->conf.endpoint, "etcd URL (http://HOST:PORT)")->required();
	sub->add_option("--key", opt->conf.key, "The lease's key in etcd")->required();
	sub->add_option("--holder", opt->conf.holder, "Our name, stored as the key's value")
		->required();
	sub->add_option("--ttl", opt->conf.ttl_s, "Lease TTL asked of etcd, seconds")
		->capture_default_str()
		->check(CLI::Range(1, 3600));
	sub->add_option("--helper", opt->conf.helper,
			"Path of amber-lease (default: $AMBER_LEASE_HELPER, else next to amber)");
	sub->add_flag("--once", opt->once, "One attempt only (exit 3 when busy)");
	sub->add_option("--wait", opt->wait_s, "Seconds to keep trying while busy")
		->capture_default_str()
		->check(CLI::Range(0.0, 3600.0));
	sub->add_option("--hold", opt->hold_s, "Seconds to hold, then release (0: until lost)")
		->capture_default_str()
		->check(CLI::Range(0.0, 86400.0));
	sub->add_flag("-v,--verbose", opt->verbose, "Print every renewal");
	sub->callback([opt] { run_lease_test(*opt); });
}

} // namespace amber
