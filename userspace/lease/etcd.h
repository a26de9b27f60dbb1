// SPDX-License-Identifier: GPL-2.0
// The requests build/amber-lease sends to etcd's v3 JSON gateway (grpc-
// gateway: POST /v3/<service>/<method>, the protobuf messages as JSON, int64
// fields as decimal strings, bytes as base64) and the parsing of its replies.
// Pure: no I/O, so that the unit tests link it (the HTTP is in
// amber-lease.cc, with libcurl).
//
// Shapes seen from etcd 3.4.23 (Debian's etcd-server):
//   lease/grant      {"header":{...},"ID":"7587...","TTL":"2"}
//   lease/keepalive  {"result":{"header":{...},"ID":"7587...","TTL":"2"}}: a
//                    streaming RPC; through the gateway one POST carries one
//                    request and gets one response. "TTL" is absent (0) when
//                    the lease does not exist (expired or revoked).
//   kv/txn           {"header":{"revision":"5",...},"succeeded":true,
//                    "responses":[...]}; "succeeded" is absent when false
//   kv/range         {"header":{...},"kvs":[{"key":"..","create_revision":"2",
//                    "value":"..","lease":"7587..."}],"count":"1"}; no "kvs"
//                    when the key does not exist
//   errors           {"error":"etcdserver: requested lease not found",
//                    "message":"...","code":5} (HTTP 404 etc.); a streaming
//                    RPC's: {"error":{"grpc_code":..,"message":".."}}
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace amber::etcd {

std::string grant_body(int64_t ttl_s);
std::string lease_id_body(int64_t lease);	// keepalive and revoke
std::string range_body(std::string_view key);
// Put key = value with the lease if the key does not exist (create_revision
// 0); otherwise read it, in the same transaction.
std::string acquire_txn_body(std::string_view key, std::string_view value, int64_t lease);

struct Grant {
	int64_t id = 0;
	int64_t ttl_s = 0;	// granted: etcd raises a TTL below its minimum
};

struct KeyValue {
	std::string value;
	int64_t lease = 0;
	int64_t create_revision = 0;
};

struct TxnResult {
	bool succeeded = false;
	int64_t revision = 0;		// the store's revision after the txn
	std::optional<KeyValue> current;	// failed: the key as it is
};

// Each takes the response body; an error body (or anything unexpected)
// gives EPROTO with etcd's message. A gateway "not found" error gives
// ENOENT (the lease does not exist).
Result<Grant> parse_grant(std::string_view body);
// The TTL left after the renewal; 0 when the lease no longer exists.
Result<int64_t> parse_keepalive(std::string_view body);
Result<TxnResult> parse_txn(std::string_view body);
Result<std::optional<KeyValue>> parse_range(std::string_view body);
Result<void> parse_revoke(std::string_view body);

} // namespace amber::etcd
