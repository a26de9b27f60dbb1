// SPDX-License-Identifier: GPL-2.0
// The pure parts of the replication lease (lease.h): the line protocol
// between amber and its helper build/amber-lease, base64 (etcd's JSON
// gateway carries keys and values in it), and the validity arithmetic.
// No I/O here: amber, amber-lease and the unit tests all link it.
//
// The protocol, one line each way per message, fields separated by one space:
//   amber -> helper   acquire            one attempt at the key
//                     release            revoke the lease held (if any)
//   helper -> amber   acquired ID TTL SEND_NS REV   reply to acquire: lease ID
//                          (granted TTL seconds) now holds the key; the grant
//                          request was sent at SEND_NS (CLOCK_MONOTONIC ns);
//                          REV is the key's create revision
//                     busy REV [VALUE64]  reply to acquire: someone else holds
//                          the key, created at REV, with this value (base64;
//                          empty for an empty value)
//                     error TEXT          reply to acquire: the attempt failed
//                     released ID         reply to release (0: nothing held);
//                          the revoke is best effort
//                     renewed ID SEND_NS TTL   unsolicited: etcd acknowledged
//                          a keepalive of lease ID sent at SEND_NS, TTL left
//                     lost ID TEXT        unsolicited: lease ID is gone (etcd
//                          says so, or its validity ran out here); the helper
//                          no longer renews it
//                     note TEXT           unsolicited: for the log (a failed
//                          renewal, ...)
// TEXT runs to the end of the line (the helper replaces control characters).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace amber {

std::string base64_encode(std::string_view data);
// Standard alphabet with padding (what etcd's gateway writes); EINVAL for
// anything else.
Result<std::string> base64_decode(std::string_view text);

struct LeaseMsg {
	enum Kind { Acquired, Busy, Error, Released, Renewed, Lost, Note };
	Kind kind = Note;
	int64_t lease = 0;	// Acquired, Released, Renewed, Lost
	int64_t ttl_s = 0;	// Acquired, Renewed: the TTL etcd granted / left
	uint64_t send_ns = 0;	// Acquired, Renewed: CLOCK_MONOTONIC of the request
	int64_t revision = 0;	// Acquired, Busy: the key's create revision
	std::string text;	// Busy: the holder (decoded); Error, Lost, Note
};

// One line without its newline; EPROTO naming the line when malformed.
Result<LeaseMsg> parse_lease_msg(std::string_view line);
// The line for m, with its newline (the helper's side; also for the tests).
std::string format_lease_msg(const LeaseMsg &m);

// The safety margin subtracted from a lease's lower-bound expiry (design.md,
// "Replication lease"): 10% of the TTL for clock rate differences between
// this machine and etcd's over one TTL, plus 100 ms for scheduling.
double lease_margin_s(int64_t ttl_s);
// CLOCK_MONOTONIC seconds until which a lease whose renewal (or grant) sent
// at send_ns was acknowledged with ttl_s is certainly still held:
// send + TTL - margin. etcd sets the expiry at the time it processes the
// request plus the TTL, which is later than the send.
double lease_valid_until(uint64_t send_ns, int64_t ttl_s);
// How often the helper renews: a quarter of the TTL.
uint64_t lease_renew_period_ns(int64_t ttl_s);

} // namespace amber
