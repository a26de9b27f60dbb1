// SPDX-License-Identifier: GPL-2.0
// The replication lease (design.md, "Replication lease"): a key in etcd
// created with an etcd lease, so that at most one machine holds it, renewed
// while held. The primary runs its job only while it holds the lease and
// kills the job once valid_until() has passed; the backup restores only
// after try_acquire() returned true.
//
// All HTTP to etcd is done by the helper build/amber-lease (libcurl, which
// does not link statically), started here with a socket on its stdin and
// stdout; this side parses its reports (replicate/lease_proto.h).
//
// Typical use by a primary:
//	auto lease = AMBER_TRY(Lease::start(conf));
//	if (!AMBER_TRY(lease.try_acquire())) ... lease.holder() has it
//	start the job; then loop:
//		poll(lease.fd() for POLLIN, timeout until lease.valid_until());
//		if POLLIN: lease.update();
//		if (now_s() >= lease.valid_until()) kill the job;
//	kill the job, then lease.release().
#pragma once

#include <cstdint>
#include <string>

#include <sys/types.h>

#include "common/result.h"
#include "replicate/lease_proto.h"

namespace amber {

struct LeaseConfig {
	std::string endpoint;	// "http://10.0.2.100:2379" (AMBER_ETCD in the test guests)
	std::string key;	// e.g. "/amber/JOBNAME/owner"
	std::string holder;	// who we are, stored as the key's value (e.g. "hostname pid N")
	int ttl_s = 2;		// the lease's TTL asked of etcd (it may grant more: its minimum)
	std::string helper;	// path of amber-lease; "": $AMBER_LEASE_HELPER, else next to /proc/self/exe
};

class Lease {
public:
	// Spawns the helper; acquires nothing.
	static Result<Lease> start(const LeaseConfig &c);

	Lease(Lease &&o) noexcept;
	Lease &operator=(Lease &&o) noexcept;
	Lease(const Lease &) = delete;
	Lease &operator=(const Lease &) = delete;
	// release(), then the helper is told to exit and reaped (killed if it
	// does not exit within a second).
	~Lease();

	// One attempt (a few requests to etcd, 2 s at most each): true when we
	// now hold the key (a new lease granted, the key created with it; true
	// at once while held() already); false when someone else holds it
	// (holder() names them). Errors: etcd unreachable, the helper gone, etc.
	Result<bool> try_acquire();
	// The value of the key after a false try_acquire(): the other holder.
	const std::string &holder() const { return holder_; }

	// While held, the helper renews in the background (every TTL/4). Poll
	// fd() for POLLIN, then call update(), which reads the helper's reports
	// without blocking. An error means the helper has exited: fd() is -1
	// from then on, and valid_until() advances no more.
	int fd() const { return sock_.get(); }
	Result<void> update();

	// CLOCK_MONOTONIC seconds (now_s() of common/io.h) until which we
	// certainly still hold the lease: the send time of the last request
	// that etcd acknowledged (the grant, then each keepalive) plus the TTL
	// it granted, minus the margin of lease_margin_s(). 0 when not held
	// (never acquired, lost as the helper reported, or released). The caller
	// kills its job when now_s() >= valid_until().
	double valid_until() const { return held_ ? valid_until_ : 0; }
	// Acquired, not lost nor released, and valid_until() not yet reached.
	bool held() const;
	// Revokes the lease (best effort, about a second at most); held() is
	// false afterwards. Only once the job is dead: the key is free at once.
	void release();

	// Besides: the TTL etcd granted (it raises one below its minimum), the
	// lease's ID, the key's create revision (a fencing token: a later holder
	// gets a larger one), and the helper's last note or error (for logs).
	int64_t ttl_s() const { return ttl_s_; }
	int64_t lease_id() const { return lease_id_; }
	int64_t revision() const { return revision_; }
	const std::string &last_note() const { return note_; }
	// The helper's PID (-1 once it has exited), for a supervisor that kills
	// and reaps all its children (amber run's kill_remains()) to leave alone.
	pid_t helper_pid() const { return pid_; }

private:
	Lease() = default;
	Result<void> send(const char *cmd);
	// Reads and applies the helper's lines until one of the wanted kind
	// arrives (bitmask of 1 << LeaseMsg::Kind) or timeout_ms passes (-1:
	// only what is there now). Returns the reply, if one came.
	Result<bool> pump(unsigned want, int timeout_ms, LeaseMsg *reply);
	void apply(const LeaseMsg &m);
	void drain();
	void helper_gone();
	void stop();

	pid_t pid_ = -1;
	UniqueFd sock_;
	std::string in_;	// a partial line from the helper
	bool held_ = false;
	double valid_until_ = 0;
	int64_t lease_id_ = 0;
	int64_t ttl_s_ = 0;
	int64_t revision_ = 0;
	std::string holder_;
	std::string self_;	// our holder text
	std::string note_;
	std::string exit_;	// how the helper ended, once it has
};

} // namespace amber
