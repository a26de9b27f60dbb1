// SPDX-License-Identifier: GPL-2.0
// amber-lease: the replication lease's helper (design.md, "Replication
// lease"). amber starts it with a socket on stdin and stdout and talks the
// line protocol of replicate/lease_proto.h; it does all HTTP to etcd's v3
// JSON gateway with libcurl, which is why it is a program of its own: amber
// is a static-pie executable and Debian's libcurl links only dynamically.
//
// Usage: amber-lease --endpoint URL --key KEY --holder TEXT --ttl SECONDS
//
// While it holds a lease it renews it every TTL/4 (one POST
// /v3/lease/keepalive each, on one kept-alive connection) and reports each
// acknowledged renewal with the CLOCK_MONOTONIC time at which it was sent.
// It stops renewing, says "lost" and revokes (best effort) once the lease's
// validity (lease_valid_until()) ran out without a new acknowledgement, or
// when etcd says the lease is gone.
//
// It exits when stdin ends. A lease still held then is NOT revoked: amber
// sends "release" first when it gives the lease up after killing its job,
// so an end of input without it means that amber died, perhaps leaving the
// job running; the lease then runs out by its TTL alone.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include <curl/curl.h>
#include <poll.h>
#include <unistd.h>

#include "common/result.h"
#include "lease/etcd.h"
#include "replicate/lease_proto.h"

namespace amber {

namespace {

constexpr int64_t kMaxTtl = 3600;
constexpr long kAcquireTimeoutMs = 2000;	// each request of an acquire
constexpr long kRevokeTimeoutMs = 500;
constexpr uint64_t kRetryNs = 50000000;		// after a failed renewal

uint64_t mono_ns()
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return uint64_t(ts.tv_sec) * 1000000000 + uint64_t(ts.tv_nsec);
}

void say(const LeaseMsg &m)
{
	const std::string line = format_lease_msg(m);
	size_t off = 0;
	while (off < line.size()) {
		ssize_t n = write(1, line.data() + off, line.size() - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);	// amber is gone
		off += size_t(n);
	}
}

void say(LeaseMsg::Kind kind, std::string text, int64_t lease = 0)
{
	LeaseMsg m;
	m.kind = kind;
	m.lease = lease;
	m.text = std::move(text);
	say(m);
}

size_t append_body(char *p, size_t size, size_t n, void *out)
{
	static_cast<std::string *>(out)->append(p, size * n);
	return size * n;
}

// One libcurl handle, so that its connection to etcd is kept and reused.
class Etcd {
public:
	explicit Etcd(std::string endpoint) : endpoint_(std::move(endpoint))
	{
		h_ = curl_easy_init();
		headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
	}
	~Etcd()
	{
		curl_slist_free_all(headers_);
		curl_easy_cleanup(h_);
	}
	Etcd(const Etcd &) = delete;
	Etcd &operator=(const Etcd &) = delete;

	// The 200 reply's body; a failure or an error reply as an error naming
	// the path (ENOENT when etcd says "not found"). Its message says it all
	// (libcurl's or etcd's words): the protocol carries only that.
	Result<std::string> post(const char *path, const std::string &body, long timeout_ms)
	{
		if (!h_ || !headers_)
			return fail(ENOMEM, "curl_easy_init failed");
		std::string url = endpoint_ + path, reply;
		curl_easy_reset(h_);
		curl_easy_setopt(h_, CURLOPT_URL, url.c_str());
		curl_easy_setopt(h_, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h_, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h_, CURLOPT_HTTPHEADER, headers_);
		curl_easy_setopt(h_, CURLOPT_POSTFIELDS, body.c_str());
		curl_easy_setopt(h_, CURLOPT_POSTFIELDSIZE, long(body.size()));
		curl_easy_setopt(h_, CURLOPT_TIMEOUT_MS, timeout_ms);
		curl_easy_setopt(h_, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
		curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, append_body);
		curl_easy_setopt(h_, CURLOPT_WRITEDATA, &reply);
		CURLcode rc = curl_easy_perform(h_);
		if (rc != CURLE_OK)
			return fail(rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : EIO,
				    std::string("POST ") + path + ": " + curl_easy_strerror(rc));
		long status = 0;
		curl_easy_getinfo(h_, CURLINFO_RESPONSE_CODE, &status);
		if (status != 200) {
			// The gateway's error body names the problem.
			auto e = etcd::parse_revoke(reply);
			if (!e)
				return wrap(e.error(), std::string("POST ") + path + ": ");
			return fail(EPROTO, std::string("POST ") + path + ": HTTP " +
						    std::to_string(status));
		}
		return reply;
	}

private:
	std::string endpoint_;
	CURL *h_ = nullptr;
	curl_slist *headers_ = nullptr;
};

struct Options {
	std::string endpoint, key, holder;
	int64_t ttl_s = 0;
};

struct Held {
	int64_t id = 0;
	int64_t ttl_s = 0;		// as etcd last acknowledged it
	uint64_t ack_send_ns = 0;	// send time of the last acknowledged request
	uint64_t next_renew_ns = 0;
};

class Helper {
public:
	explicit Helper(const Options &o) : o_(o), etcd_(o.endpoint) {}

	// Until stdin ends.
	void run();

private:
	void command(std::string_view line);
	void acquire();
	void release();
	void renew();
	void revoke(int64_t id, long timeout_ms);
	uint64_t lapse_ns() const
	{
		const double s = lease_valid_until(held_->ack_send_ns, held_->ttl_s);
		return s <= 0 ? 0 : uint64_t(s * 1e9);
	}

	Options o_;
	Etcd etcd_;
	std::optional<Held> held_;
};

void Helper::run()
{
	std::string in;
	for (;;) {
		int timeout = -1;
		if (held_) {
			const uint64_t now = mono_ns(), at = std::min(held_->next_renew_ns, lapse_ns());
			timeout = at <= now ? 0 : int((at - now + 999999) / 1000000);
		}
		pollfd p{0, POLLIN, 0};
		int n = poll(&p, 1, timeout);
		if (n < 0 && errno != EINTR)
			_exit(1);
		if (n > 0) {
			char buf[512];
			ssize_t r = read(0, buf, sizeof(buf));
			if (r < 0 && errno != EINTR && errno != EAGAIN)
				return;
			if (r == 0)
				return;	// amber is gone: see the top of this file
			if (r > 0)
				in.append(buf, size_t(r));
			size_t nl;
			while ((nl = in.find('\n')) != std::string::npos) {
				command(std::string_view(in).substr(0, nl));
				in.erase(0, nl + 1);
			}
			if (in.size() > 4096)
				return;
		}
		if (held_ && mono_ns() >= held_->next_renew_ns)
			renew();
		if (held_ && mono_ns() >= lapse_ns()) {
			const int64_t id = held_->id;
			held_.reset();
			say(LeaseMsg::Lost, "no renewal acknowledged in time (validity ran out)", id);
			revoke(id, kRevokeTimeoutMs);
		}
	}
}

void Helper::command(std::string_view line)
{
	if (line == "acquire")
		acquire();
	else if (line == "release")
		release();
	else
		say(LeaseMsg::Note, "unknown command '" + std::string(line.substr(0, 100)) + "'");
}

void Helper::acquire()
{
	if (held_) {
		// A new attempt replaces the lease held (amber asks only when it
		// considers it lost).
		revoke(held_->id, kRevokeTimeoutMs);
		held_.reset();
	}
	auto busy = [](const etcd::KeyValue &kv) {
		LeaseMsg m;
		m.kind = LeaseMsg::Busy;
		m.revision = kv.create_revision;
		m.text = kv.value;
		say(m);
	};
	auto error = [](const Error &e) { say(LeaseMsg::Error, e.msg); };

	// Who holds it, without a grant for nothing while someone does.
	auto body = etcd_.post("/v3/kv/range", etcd::range_body(o_.key), kAcquireTimeoutMs);
	if (!body)
		return error(body.error());
	auto cur = etcd::parse_range(*body);
	if (!cur)
		return error(cur.error());
	if (*cur)
		return busy(**cur);

	const uint64_t send = mono_ns();
	body = etcd_.post("/v3/lease/grant", etcd::grant_body(o_.ttl_s), kAcquireTimeoutMs);
	if (!body)
		return error(body.error());
	auto grant = etcd::parse_grant(*body);
	if (!grant)
		return error(grant.error());

	body = etcd_.post("/v3/kv/txn", etcd::acquire_txn_body(o_.key, o_.holder, grant->id),
			  kAcquireTimeoutMs);
	Result<etcd::TxnResult> txn = body ? etcd::parse_txn(*body) : tl::unexpected(body.error());
	if (!txn || !txn->succeeded)
		revoke(grant->id, kRevokeTimeoutMs);
	if (!txn)
		return error(txn.error());
	if (!txn->succeeded) {
		if (!txn->current)
			return error(Error(EPROTO, "etcd: the key exists but the txn did not return it"));
		return busy(*txn->current);
	}
	held_ = Held{grant->id, grant->ttl_s, send, send + lease_renew_period_ns(grant->ttl_s)};
	LeaseMsg m;
	m.kind = LeaseMsg::Acquired;
	m.lease = grant->id;
	m.ttl_s = grant->ttl_s;
	m.send_ns = send;
	m.revision = txn->revision;
	say(m);
}

void Helper::release()
{
	int64_t id = 0;
	if (held_) {
		id = held_->id;
		held_.reset();
		revoke(id, kRevokeTimeoutMs);
	}
	LeaseMsg m;
	m.kind = LeaseMsg::Released;
	m.lease = id;
	say(m);
}

void Helper::renew()
{
	Held &h = *held_;
	// A renewal that takes longer than a third of the TTL is abandoned for
	// a new one (a new connection, if that one died).
	const long timeout_ms = std::max<long>(250, long(h.ttl_s) * 1000 / 3);
	const uint64_t send = mono_ns();
	auto body = etcd_.post("/v3/lease/keepalive", etcd::lease_id_body(h.id), timeout_ms);
	Result<int64_t> ttl = body ? etcd::parse_keepalive(*body) : tl::unexpected(body.error());
	if (!ttl) {
		say(LeaseMsg::Note, "renewal of lease " + std::to_string(h.id) + " failed: " +
					    ttl.error().msg);
		h.next_renew_ns = std::max(mono_ns(), send + kRetryNs);
		return;
	}
	if (*ttl == 0) {
		const int64_t id = h.id;
		held_.reset();
		say(LeaseMsg::Lost, "etcd says the lease no longer exists", id);
		return;
	}
	h.ack_send_ns = send;
	h.ttl_s = *ttl;
	h.next_renew_ns = send + lease_renew_period_ns(*ttl);
	LeaseMsg m;
	m.kind = LeaseMsg::Renewed;
	m.lease = h.id;
	m.send_ns = send;
	m.ttl_s = *ttl;
	say(m);
}

void Helper::revoke(int64_t id, long timeout_ms)
{
	auto body = etcd_.post("/v3/lease/revoke", etcd::lease_id_body(id), timeout_ms);
	if (!body && body.error().err != ENOENT)
		say(LeaseMsg::Note, "revoking lease " + std::to_string(id) + " failed: " +
					    body.error().msg);
}

int usage(const char *why)
{
	fprintf(stderr,
		"amber-lease: %s\n"
		"usage: amber-lease --endpoint URL --key KEY --holder TEXT --ttl SECONDS\n"
		"(started by amber; speaks the line protocol of replicate/lease_proto.h)\n",
		why);
	return 2;
}

} // namespace

} // namespace amber

int main(int argc, char **argv)
{
	using namespace amber;
	Options o;
	for (int i = 1; i < argc; i += 2) {
		const std::string_view a = argv[i];
		if (i + 1 >= argc)
			return usage("an option without its value");
		const char *v = argv[i + 1];
		if (a == "--endpoint")
			o.endpoint = v;
		else if (a == "--key")
			o.key = v;
		else if (a == "--holder")
			o.holder = v;
		else if (a == "--ttl") {
			char *end;
			errno = 0;
			long long t = strtoll(v, &end, 10);
			if (errno || *end || end == v || t < 1 || t > kMaxTtl)
				return usage("--ttl wants whole seconds from 1 to 3600");
			o.ttl_s = t;
		} else {
			return usage("unknown option");
		}
	}
	if (o.endpoint.empty() || o.key.empty() || !o.ttl_s)
		return usage("--endpoint, --key and --ttl are required");
	while (!o.endpoint.empty() && o.endpoint.back() == '/')
		o.endpoint.pop_back();
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return usage("curl_global_init failed");
	{
		Helper h(o);
		h.run();
	}
	curl_global_cleanup();
	return 0;
}
