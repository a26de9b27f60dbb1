// SPDX-License-Identifier: GPL-2.0
// etcd v3 JSON gateway requests and replies (etcd.h), with nlohmann/json.
#include "lease/etcd.h"

#include <charconv>

#include <nlohmann/json.hpp>

#include "replicate/lease_proto.h"

namespace amber::etcd {

namespace {

using nlohmann::json;

constexpr int kGrpcNotFound = 5;

// An int64 field: the gateway writes them as decimal strings; numbers are
// accepted too. Absent: 0 (proto3 omits zero values).
Result<int64_t> int_field(const json &j, const char *name)
{
	auto it = j.find(name);
	if (it == j.end())
		return 0;
	if (it->is_number_integer())
		return it->get<int64_t>();
	if (!it->is_string())
		return fail(EPROTO, std::string("etcd: \"") + name + "\" is not a number");
	const std::string &s = it->get_ref<const std::string &>();
	int64_t v = 0;
	auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
	if (s.empty() || ec != std::errc() || p != s.data() + s.size())
		return fail(EPROTO, std::string("etcd: \"") + name + "\" is not a number");
	return v;
}

// The body as a JSON object, or etcd's error (EPROTO; ENOENT for gRPC's
// NOT_FOUND).
Result<json> object(std::string_view body)
{
	json j = json::parse(body, nullptr, false);
	if (j.is_discarded() || !j.is_object()) {
		std::string b(body.substr(0, 200));
		for (char &c : b)
			if (static_cast<unsigned char>(c) < 0x20)
				c = ' ';
		return fail(EPROTO, "etcd: not a JSON object: '" + b + "'");
	}
	auto e = j.find("error");
	if (e == j.end())
		return j;
	// {"error":"text","message":"text","code":N}, or for a stream
	// {"error":{"grpc_code":N,"message":"text",...}}.
	const json &src = e->is_object() ? *e : j;
	std::string msg = "etcd error";
	auto m = src.find("message");
	if (m != src.end() && m->is_string())
		msg = "etcd: " + m->get<std::string>();
	else if (e->is_string())
		msg = "etcd: " + e->get<std::string>();
	int64_t code = 0;
	for (const char *k : {"code", "grpc_code"}) {
		auto c = src.find(k);
		if (c != src.end() && c->is_number_integer())
			code = c->get<int64_t>();
	}
	return fail(code == kGrpcNotFound ? ENOENT : EPROTO, msg);
}

Result<KeyValue> key_value(const json &kv)
{
	if (!kv.is_object())
		return fail(EPROTO, "etcd: a key-value is not an object");
	KeyValue out;
	auto v = kv.find("value");
	if (v != kv.end()) {
		if (!v->is_string())
			return fail(EPROTO, "etcd: a value is not a string");
		auto d = base64_decode(v->get_ref<const std::string &>());
		if (!d)
			return fail(EPROTO, "etcd: a value is not base64");
		out.value = std::move(*d);
	}
	out.lease = AMBER_TRY(int_field(kv, "lease"));
	out.create_revision = AMBER_TRY(int_field(kv, "create_revision"));
	if (out.create_revision <= 0)
		return fail(EPROTO, "etcd: a key without a create revision");
	return out;
}

// The first key of a RangeResponse, if any.
Result<std::optional<KeyValue>> first_kv(const json &range)
{
	if (!range.is_object())
		return fail(EPROTO, "etcd: a range response is not an object");
	auto kvs = range.find("kvs");
	if (kvs == range.end() || (kvs->is_array() && kvs->empty()))
		return std::optional<KeyValue>();
	if (!kvs->is_array())
		return fail(EPROTO, "etcd: \"kvs\" is not an array");
	return std::optional<KeyValue>(AMBER_TRY(key_value(kvs->front())));
}

} // namespace

std::string grant_body(int64_t ttl_s)
{
	return json{{"TTL", std::to_string(ttl_s)}}.dump();
}

std::string lease_id_body(int64_t lease)
{
	return json{{"ID", std::to_string(lease)}}.dump();
}

std::string range_body(std::string_view key)
{
	return json{{"key", base64_encode(key)}}.dump();
}

std::string acquire_txn_body(std::string_view key, std::string_view value, int64_t lease)
{
	const std::string k = base64_encode(key);
	json compare{{"key", k}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}};
	json put{{"key", k}, {"value", base64_encode(value)}, {"lease", std::to_string(lease)}};
	json txn{
		{"compare", json::array({compare})},
		{"success", json::array({json{{"request_put", put}}})},
		{"failure", json::array({json{{"request_range", json{{"key", k}}}}})},
	};
	return txn.dump();
}

Result<Grant> parse_grant(std::string_view body)
{
	json j = AMBER_TRY(object(body));
	Grant g;
	g.id = AMBER_TRY(int_field(j, "ID"));
	g.ttl_s = AMBER_TRY(int_field(j, "TTL"));
	if (g.id == 0 || g.ttl_s <= 0)
		return fail(EPROTO, "etcd: a lease grant without ID or TTL");
	return g;
}

Result<int64_t> parse_keepalive(std::string_view body)
{
	json j = AMBER_TRY(object(body));
	auto r = j.find("result");
	if (r == j.end() || !r->is_object())
		return fail(EPROTO, "etcd: a keepalive reply without \"result\"");
	const int64_t ttl = AMBER_TRY(int_field(*r, "TTL"));
	return ttl < 0 ? 0 : ttl;
}

Result<TxnResult> parse_txn(std::string_view body)
{
	json j = AMBER_TRY(object(body));
	TxnResult t;
	auto s = j.find("succeeded");
	if (s != j.end()) {
		if (!s->is_boolean())
			return fail(EPROTO, "etcd: \"succeeded\" is not a boolean");
		t.succeeded = s->get<bool>();
	}
	auto h = j.find("header");
	if (h == j.end() || !h->is_object())
		return fail(EPROTO, "etcd: a txn reply without header");
	t.revision = AMBER_TRY(int_field(*h, "revision"));
	if (t.revision <= 0)
		return fail(EPROTO, "etcd: a txn reply without revision");
	if (t.succeeded)
		return t;
	auto rs = j.find("responses");
	if (rs == j.end() || !rs->is_array() || rs->size() != 1 || !rs->front().is_object())
		return fail(EPROTO, "etcd: a failed txn without its range response");
	auto range = rs->front().find("response_range");
	if (range == rs->front().end())
		return fail(EPROTO, "etcd: a failed txn without its range response");
	t.current = AMBER_TRY(first_kv(*range));
	return t;
}

Result<std::optional<KeyValue>> parse_range(std::string_view body)
{
	json j = AMBER_TRY(object(body));
	return first_kv(j);
}

Result<void> parse_revoke(std::string_view body)
{
	AMBER_TRY(object(body));
	return {};
}

} // namespace amber::etcd
