// SPDX-License-Identifier: GPL-2.0
// The replication lease's pure parts: base64, the helper's line protocol,
// the validity arithmetic, etcd's JSON gateway requests and replies (shapes
// taken from etcd 3.4.23), and the Lease class against a scripted fake
// helper (a shell script speaking the line protocol; no etcd).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/stat.h>

#include "common/io.h"
#include "lease/etcd.h"
#include "replicate/lease.h"
#include "replicate/lease_proto.h"
#include "fixtures.h"

using namespace amber;
using nlohmann::json;

namespace {

// ---- base64 -----------------------------------------------------------------

TEST(LeaseBase64, Rfc4648Vectors)
{
	const std::pair<const char *, const char *> v[] = {
		{"", ""},	  {"f", "Zg=="},	 {"fo", "Zm8="},	 {"foo", "Zm9v"},
		{"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
	};
	for (const auto &[plain, enc] : v) {
		EXPECT_EQ(enc, base64_encode(plain));
		auto d = base64_decode(enc);
		ASSERT_TRUE(d) << enc;
		EXPECT_EQ(plain, *d);
	}
}

TEST(LeaseBase64, AllBytesRoundTrip)
{
	std::string all;
	for (int i = 0; i < 256; i++)
		all += char(i);
	for (size_t n = 0; n <= all.size(); n += 37) {
		auto d = base64_decode(base64_encode(all.substr(0, n)));
		ASSERT_TRUE(d);
		EXPECT_EQ(all.substr(0, n), *d);
	}
}

TEST(LeaseBase64, RejectsNonCanonical)
{
	for (const char *bad : {"Zg=", "Zg", "Z===", "Zm9v!A==", "Zh==", "Zm9=", "=Zm9", "Zg==Zg==",
				"Zm 9", "Zm9v\n"}) {
		auto d = base64_decode(bad);
		EXPECT_FALSE(d) << bad;
		if (!d) {
			EXPECT_EQ(EINVAL, d.error().err);
		}
	}
}

// ---- the line protocol ------------------------------------------------------

TEST(LeaseProto, ParsesEachKind)
{
	auto a = parse_lease_msg("acquired 7587 2 123456789 42");
	ASSERT_TRUE(a) << a.error().str();
	EXPECT_EQ(LeaseMsg::Acquired, a->kind);
	EXPECT_EQ(7587, a->lease);
	EXPECT_EQ(2, a->ttl_s);
	EXPECT_EQ(123456789u, a->send_ns);
	EXPECT_EQ(42, a->revision);

	auto b = parse_lease_msg("busy 5 " + base64_encode("host a pid 12"));
	ASSERT_TRUE(b);
	EXPECT_EQ(LeaseMsg::Busy, b->kind);
	EXPECT_EQ(5, b->revision);
	EXPECT_EQ("host a pid 12", b->text);
	auto empty = parse_lease_msg("busy 5 ");
	ASSERT_TRUE(empty);
	EXPECT_EQ("", empty->text);

	auto r = parse_lease_msg("renewed 7587 987654321 1");
	ASSERT_TRUE(r);
	EXPECT_EQ(LeaseMsg::Renewed, r->kind);
	EXPECT_EQ(7587, r->lease);
	EXPECT_EQ(987654321u, r->send_ns);
	EXPECT_EQ(1, r->ttl_s);

	auto l = parse_lease_msg("lost 7587 etcd says the lease no longer exists");
	ASSERT_TRUE(l);
	EXPECT_EQ(LeaseMsg::Lost, l->kind);
	EXPECT_EQ(7587, l->lease);
	EXPECT_EQ("etcd says the lease no longer exists", l->text);

	auto rel = parse_lease_msg("released 0");
	ASSERT_TRUE(rel);
	EXPECT_EQ(LeaseMsg::Released, rel->kind);
	EXPECT_EQ(0, rel->lease);

	auto e = parse_lease_msg("error POST /v3/kv/range: Timeout was reached");
	ASSERT_TRUE(e);
	EXPECT_EQ(LeaseMsg::Error, e->kind);
	EXPECT_EQ("POST /v3/kv/range: Timeout was reached", e->text);
	auto n = parse_lease_msg("note renewal failed");
	ASSERT_TRUE(n);
	EXPECT_EQ(LeaseMsg::Note, n->kind);
}

TEST(LeaseProto, RejectsMalformed)
{
	for (const char *bad : {"", "acquire", "acquired", "acquired 1 2 3", "acquired 1 2 3 4 5",
				"acquired 1 0 3 4", "acquired 1 2 3 0", "acquired 1 -2 3 4",
				"acquired x 2 3 4", "acquired 1 2 -3 4", "acquired 1 2 +3 4",
				"acquired 1  2 3 4", "busy", "busy x Zg==", "busy 5 Zg=", "busy -1 Zg==",
				"renewed 1 2", "renewed 1 2 0", "renewed 1 2 3 4", "released",
				"released 1 2", "lost", "lost x why", "hello 1"}) {
		auto m = parse_lease_msg(bad);
		EXPECT_FALSE(m) << "'" << bad << "'";
		if (!m) {
			EXPECT_EQ(EPROTO, m.error().err);
		}
	}
}

TEST(LeaseProto, FormatRoundTrips)
{
	LeaseMsg ms[7];
	ms[0] = {LeaseMsg::Acquired, 7587, 1, 5000000000, 9, ""};
	ms[1] = {LeaseMsg::Busy, 0, 0, 0, 12, "b\nhost \x01 pid 7"};
	ms[2] = {LeaseMsg::Error, 0, 0, 0, 0, "etcd: requested lease not found"};
	ms[3] = {LeaseMsg::Released, 7587, 0, 0, 0, ""};
	ms[4] = {LeaseMsg::Renewed, 7587, 2, 6000000000, 0, ""};
	ms[5] = {LeaseMsg::Lost, 7587, 0, 0, 0, "validity ran out"};
	ms[6] = {LeaseMsg::Note, 0, 0, 0, 0, "renewal failed"};
	for (const LeaseMsg &m : ms) {
		std::string line = format_lease_msg(m);
		ASSERT_FALSE(line.empty());
		EXPECT_EQ('\n', line.back());
		EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
		auto p = parse_lease_msg(std::string_view(line).substr(0, line.size() - 1));
		ASSERT_TRUE(p) << line << p.error().str();
		EXPECT_EQ(m.kind, p->kind);
		EXPECT_EQ(m.lease, p->lease);
		EXPECT_EQ(m.ttl_s, p->ttl_s);
		EXPECT_EQ(m.send_ns, p->send_ns);
		EXPECT_EQ(m.revision, p->revision);
		EXPECT_EQ(m.text, p->text);	// the holder keeps its bytes (base64)
	}
	// Text of errors and notes loses its control characters, not the line.
	EXPECT_EQ("note a b\n", format_lease_msg({LeaseMsg::Note, 0, 0, 0, 0, "a\nb"}));
}

// ---- validity -----------------------------------------------------------------

TEST(LeaseValidity, SendPlusTtlMinusMargin)
{
	EXPECT_DOUBLE_EQ(0.2, lease_margin_s(1));
	EXPECT_DOUBLE_EQ(0.3, lease_margin_s(2));
	EXPECT_DOUBLE_EQ(1.1, lease_margin_s(10));
	// TTL 1 s: certainly held until 0.8 s after the send.
	EXPECT_NEAR(100.8, lease_valid_until(100000000000, 1), 1e-9);
	EXPECT_NEAR(101.7, lease_valid_until(100000000000, 2), 1e-9);
	EXPECT_NEAR(12.5 + 10 - 1.1, lease_valid_until(12500000000, 10), 1e-9);
	// The margin stays below the TTL, and the renewals come well before it
	// runs out: at least two more renewals fit before the validity ends.
	for (int64_t ttl : {1, 2, 5, 60}) {
		EXPECT_LT(lease_margin_s(ttl), double(ttl));
		const double period = double(lease_renew_period_ns(ttl)) / 1e9;
		EXPECT_DOUBLE_EQ(ttl / 4.0, period);
		EXPECT_GE(ttl - lease_margin_s(ttl), 3 * period) << ttl;
	}
}

// ---- etcd's JSON gateway ------------------------------------------------------

const char kHeader[] = R"("header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"3","raft_term":"2"})";

TEST(LeaseEtcd, RequestBodies)
{
	json g = json::parse(etcd::grant_body(2));
	EXPECT_EQ("2", g["TTL"]);
	json k = json::parse(etcd::lease_id_body(4111120510060425735));
	EXPECT_EQ("4111120510060425735", k["ID"]);
	json r = json::parse(etcd::range_body("/amber/job/owner"));
	EXPECT_EQ(base64_encode("/amber/job/owner"), r["key"]);

	json t = json::parse(etcd::acquire_txn_body("/amber/job/owner", "host a", 77));
	const std::string key = base64_encode("/amber/job/owner");
	ASSERT_EQ(1u, t["compare"].size());
	EXPECT_EQ(key, t["compare"][0]["key"]);
	EXPECT_EQ("CREATE", t["compare"][0]["target"]);
	EXPECT_EQ("EQUAL", t["compare"][0]["result"]);
	EXPECT_EQ("0", t["compare"][0]["create_revision"]);
	ASSERT_EQ(1u, t["success"].size());
	EXPECT_EQ(key, t["success"][0]["request_put"]["key"]);
	EXPECT_EQ(base64_encode("host a"), t["success"][0]["request_put"]["value"]);
	EXPECT_EQ("77", t["success"][0]["request_put"]["lease"]);
	ASSERT_EQ(1u, t["failure"].size());
	EXPECT_EQ(key, t["failure"][0]["request_range"]["key"]);
}

TEST(LeaseEtcd, Grant)
{
	auto g = etcd::parse_grant(std::string("{") + kHeader + R"(,"ID":"4111120510060425733","TTL":"1"})");
	ASSERT_TRUE(g) << g.error().str();
	EXPECT_EQ(4111120510060425733, g->id);
	EXPECT_EQ(1, g->ttl_s);
	for (const char *bad : {R"({"ID":"5"})", R"({"TTL":"2"})", R"({"ID":"x","TTL":"2"})",
				R"({"ID":"5","TTL":[2]})", R"({"ID":"5","TTL":"2x"})", "[]", "", "{",
				"Not Found"}) {
		auto b = etcd::parse_grant(bad);
		EXPECT_FALSE(b) << bad;
		if (!b) {
			EXPECT_EQ(EPROTO, b.error().err) << bad;
		}
	}
}

TEST(LeaseEtcd, Keepalive)
{
	auto k = etcd::parse_keepalive(std::string(R"({"result":{)") + kHeader +
				       R"(,"ID":"4111120510060425735","TTL":"2"}})");
	ASSERT_TRUE(k) << k.error().str();
	EXPECT_EQ(2, *k);
	// A lease that is gone: etcd answers without TTL (proto3 omits 0).
	auto gone = etcd::parse_keepalive(std::string(R"({"result":{)") + kHeader +
					  R"(,"ID":"4111120510060425735"}})");
	ASSERT_TRUE(gone);
	EXPECT_EQ(0, *gone);
	auto neg = etcd::parse_keepalive(R"({"result":{"ID":"1","TTL":"-1"}})");
	ASSERT_TRUE(neg);
	EXPECT_EQ(0, *neg);
	// A stream's error, and a reply without result.
	auto e = etcd::parse_keepalive(R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}})");
	ASSERT_FALSE(e);
	EXPECT_EQ("etcd: etcdserver: no leader", e.error().msg);
	EXPECT_FALSE(etcd::parse_keepalive(std::string("{") + kHeader + "}"));
}

TEST(LeaseEtcd, TxnSucceededAndFailed)
{
	auto ok = etcd::parse_txn(std::string("{") + kHeader +
				  R"(,"succeeded":true,"responses":[{"response_put":{"header":{"revision":"3"}}}]})");
	ASSERT_TRUE(ok) << ok.error().str();
	EXPECT_TRUE(ok->succeeded);
	EXPECT_EQ(3, ok->revision);
	EXPECT_FALSE(ok->current);

	// "succeeded" is omitted when false; the failure branch's range names
	// the holder.
	const std::string failed = std::string("{") + kHeader +
				   R"(,"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"L3g=","create_revision":"2","mod_revision":"2","version":"1","value":"bWU=","lease":"4111120510060425735"}],"count":"1"}}]})";
	auto busy = etcd::parse_txn(failed);
	ASSERT_TRUE(busy) << busy.error().str();
	EXPECT_FALSE(busy->succeeded);
	ASSERT_TRUE(busy->current);
	EXPECT_EQ("me", busy->current->value);
	EXPECT_EQ(2, busy->current->create_revision);
	EXPECT_EQ(4111120510060425735, busy->current->lease);

	auto e = etcd::parse_txn(R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})");
	ASSERT_FALSE(e);
	EXPECT_EQ(ENOENT, e.error().err);
	EXPECT_EQ("etcd: etcdserver: requested lease not found", e.error().msg);
	for (const std::string &bad :
	     {std::string(R"({"succeeded":true})"), std::string(R"({"header":{},"succeeded":true})"),
	      std::string("{") + kHeader + R"(,"succeeded":"yes"})",
	      std::string("{") + kHeader + R"(,"responses":[]})",
	      std::string("{") + kHeader + R"(,"responses":[{"response_put":{}}]})",
	      std::string("{") + kHeader +
		      R"(,"responses":[{"response_range":{"kvs":[{"value":"!!","create_revision":"2"}]}}]})",
	      std::string("{") + kHeader +
		      R"(,"responses":[{"response_range":{"kvs":[{"value":"bWU="}]}}]})"}) {
		auto b = etcd::parse_txn(bad);
		EXPECT_FALSE(b) << bad;
	}
}

TEST(LeaseEtcd, Range)
{
	auto none = etcd::parse_range(std::string("{") + kHeader + "}");
	ASSERT_TRUE(none) << none.error().str();
	EXPECT_FALSE(*none);
	auto one = etcd::parse_range(std::string("{") + kHeader +
				     R"(,"kvs":[{"key":"L3g=","create_revision":"7","value":"aG9zdCBh","lease":"9"}],"count":"1"})");
	ASSERT_TRUE(one) << one.error().str();
	ASSERT_TRUE(*one);
	EXPECT_EQ("host a", (*one)->value);
	EXPECT_EQ(7, (*one)->create_revision);
	EXPECT_EQ(9, (*one)->lease);
	// An empty value is omitted by etcd.
	auto empty = etcd::parse_range(R"({"kvs":[{"key":"L3g=","create_revision":"7"}]})");
	ASSERT_TRUE(empty);
	ASSERT_TRUE(*empty);
	EXPECT_EQ("", (*empty)->value);
	EXPECT_FALSE(etcd::parse_range(R"({"kvs":{"key":"L3g="}})"));
	EXPECT_FALSE(etcd::parse_range(R"({"kvs":[{"key":"L3g=","create_revision":"7","value":5}]})"));
}

TEST(LeaseEtcd, Errors)
{
	auto nf = etcd::parse_revoke(R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})");
	ASSERT_FALSE(nf);
	EXPECT_EQ(ENOENT, nf.error().err);
	auto bad = etcd::parse_revoke(R"({"error":"invalid character 'a' looking for beginning of value","code":3})");
	ASSERT_FALSE(bad);
	EXPECT_EQ(EPROTO, bad.error().err);
	EXPECT_EQ("etcd: invalid character 'a' looking for beginning of value", bad.error().msg);
	EXPECT_TRUE(etcd::parse_revoke(std::string("{") + kHeader + "}"));
}

// ---- Lease against a fake helper ----------------------------------------------

// Writes an executable shell script standing in for amber-lease.
std::string fake_helper(const amber::testing::TempDir &dir, const std::string &body)
{
	const std::string path = dir.path() + "/fake-lease";
	std::ofstream(path) << "#!/bin/bash\n" << body;
	chmod(path.c_str(), 0755);
	return path;
}

LeaseConfig config(const std::string &helper)
{
	LeaseConfig c;
	c.endpoint = "http://127.0.0.1:1";
	c.key = "/amber/test/owner";
	c.holder = "me";
	c.ttl_s = 1;
	c.helper = helper;
	return c;
}

// update() until pred() holds or 5 s passed.
template <typename P>
bool update_until(Lease &l, P pred)
{
	for (int i = 0; i < 500 && !pred(); i++) {
		pollfd p{l.fd(), POLLIN, 0};
		if (l.fd() < 0 || poll(&p, 1, 10) < 0)
			return pred();
		if (p.revents)
			(void)l.update();
	}
	return pred();
}

TEST(LeaseFake, BusyNamesTheHolder)
{
	amber::testing::TempDir dir;
	const std::string helper = fake_helper(dir, R"SH(
read -r cmd; [ "$cmd" = acquire ] || exit 1
echo "busy 12 $(printf 'host a pid 7' | base64)"
read -r cmd; [ "$cmd" = acquire ] || exit 1
echo "error POST /v3/kv/range: Could not connect to server"
read -r cmd
)SH");
	auto l = Lease::start(config(helper));
	ASSERT_TRUE(l) << l.error().str();
	auto got = l->try_acquire();
	ASSERT_TRUE(got) << got.error().str();
	EXPECT_FALSE(*got);
	EXPECT_EQ("host a pid 7", l->holder());
	EXPECT_EQ(12, l->revision());
	EXPECT_FALSE(l->held());
	EXPECT_EQ(0, l->valid_until());
	auto err = l->try_acquire();
	ASSERT_FALSE(err);
	EXPECT_EQ("amber-lease: POST /v3/kv/range: Could not connect to server", err.error().msg);
}

TEST(LeaseFake, RenewalsAdvanceValidityLostEndsIt)
{
	amber::testing::TempDir dir;
	// Send times in the future, so that the lease is held while the test
	// looks at it; renewals of another lease are ignored.
	const uint64_t base = now_ns() + 30000000000ull;
	auto ns = [&](double s) { return std::to_string(base + uint64_t(s * 1e9)); };
	const std::string helper = fake_helper(dir, R"SH(
read -r cmd; [ "$cmd" = acquire ] || exit 1
echo "acquired 42 1 )SH" + ns(0) + R"SH( 9"
read -r cmd; [ "$cmd" = renew ] || exit 1
echo "renewed 42 )SH" + ns(0.25) + R"SH( 1"
echo "renewed 99 )SH" + ns(5) + R"SH( 1"
echo "note renewal of lease 42 failed: Timeout was reached"
read -r cmd; [ "$cmd" = go ] || exit 1
echo "renewed 42 )SH" + ns(0.5) + R"SH( 2"
echo "lost 42 etcd says the lease no longer exists"
read -r cmd
)SH");
	auto l = Lease::start(config(helper));
	ASSERT_TRUE(l) << l.error().str();
	auto got = l->try_acquire();
	ASSERT_TRUE(got) << got.error().str();
	ASSERT_TRUE(*got);
	EXPECT_TRUE(l->held());
	EXPECT_EQ(42, l->lease_id());
	EXPECT_EQ(9, l->revision());
	EXPECT_EQ(1, l->ttl_s());
	EXPECT_EQ("me", l->holder());
	const double t0 = double(base) / 1e9;
	EXPECT_NEAR(t0 + 0.8, l->valid_until(), 1e-6);
	// The fake reads these from its stdin: the socket amber writes to.
	ASSERT_EQ(6, ::write(l->fd(), "renew\n", 6));
	EXPECT_TRUE(update_until(*l, [&] { return !l->last_note().empty(); }));
	EXPECT_NEAR(t0 + 0.25 + 0.8, l->valid_until(), 1e-6);
	EXPECT_EQ("renewal of lease 42 failed: Timeout was reached", l->last_note());
	// Already held: no request.
	auto again = l->try_acquire();
	ASSERT_TRUE(again);
	EXPECT_TRUE(*again);

	ASSERT_EQ(3, ::write(l->fd(), "go\n", 3));
	EXPECT_TRUE(update_until(*l, [&] { return !l->held(); }));
	EXPECT_FALSE(l->held());
	EXPECT_EQ(0, l->valid_until());
	EXPECT_EQ("lease 42 lost: etcd says the lease no longer exists", l->last_note());
}

TEST(LeaseFake, HelperDeathFreezesValidity)
{
	amber::testing::TempDir dir;
	const uint64_t base = now_ns() + 30000000000ull;
	const std::string helper = fake_helper(dir, R"SH(
read -r cmd; [ "$cmd" = acquire ] || exit 1
echo "acquired 42 2 )SH" + std::to_string(base) + R"SH( 9"
exit 3
)SH");
	auto l = Lease::start(config(helper));
	ASSERT_TRUE(l) << l.error().str();
	auto got = l->try_acquire();
	ASSERT_TRUE(got && *got);
	const double v = l->valid_until();
	EXPECT_NEAR(double(base) / 1e9 + 1.7, v, 1e-6);
	bool failed = false;
	for (int i = 0; i < 500 && !failed; i++) {
		pollfd p{l->fd(), POLLIN, 0};
		ASSERT_EQ(1, poll(&p, 1, 5000));
		failed = !l->update();
	}
	ASSERT_TRUE(failed);
	EXPECT_EQ(-1, l->fd());
	EXPECT_EQ(-1, l->helper_pid());
	// What it reported stands: the caller's timer does the rest.
	EXPECT_EQ(v, l->valid_until());
	EXPECT_TRUE(l->held());
	auto u = l->update();
	ASSERT_FALSE(u);
	EXPECT_EQ("amber-lease exited with status 3", u.error().msg);
	l->release();
	EXPECT_FALSE(l->held());
}

TEST(LeaseFake, ReleaseRevokesAndWaits)
{
	amber::testing::TempDir dir;
	const std::string marker = dir.path() + "/released";
	const std::string helper = fake_helper(dir, R"SH(
read -r cmd; [ "$cmd" = acquire ] || exit 1
echo "acquired 42 1 )SH" + std::to_string(now_ns() + 30000000000ull) + R"SH( 9"
read -r cmd; [ "$cmd" = release ] || exit 1
: >)SH" + marker + R"SH(
echo "released 42"
read -r cmd
)SH");
	{
		auto l = Lease::start(config(helper));
		ASSERT_TRUE(l) << l.error().str();
		auto got = l->try_acquire();
		ASSERT_TRUE(got && *got);
		Lease moved = std::move(*l);
		EXPECT_FALSE(l->held());
		EXPECT_TRUE(moved.held());
		moved.release();
		EXPECT_FALSE(moved.held());
		EXPECT_EQ(0, moved.valid_until());
		EXPECT_EQ(0, access(marker.c_str(), F_OK));
		EXPECT_GT(moved.helper_pid(), 0);
	}
}

TEST(LeaseFake, MissingHelper)
{
	auto l = Lease::start(config("/nonexistent/amber-lease"));
	ASSERT_FALSE(l);
	EXPECT_EQ(ENOENT, l.error().err);
	LeaseConfig c = config("/bin/true");
	c.ttl_s = 0;
	EXPECT_FALSE(Lease::start(c));
	c = config("/bin/true");
	c.key.clear();
	EXPECT_FALSE(Lease::start(c));
}

} // namespace
