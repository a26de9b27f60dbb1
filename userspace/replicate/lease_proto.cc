// SPDX-License-Identifier: GPL-2.0
// The lease helper's line protocol, base64 and the validity arithmetic
// (lease_proto.h).
#include "replicate/lease_proto.h"

#include <charconv>
#include <vector>

namespace amber {

namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

template <typename T>
bool parse_int(std::string_view s, T &out)
{
	if (s.empty() || s[0] == '+')
		return false;
	auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
	return ec == std::errc() && p == s.data() + s.size();
}

// Splits off the first n space-separated fields; the rest of the line (after
// one space, possibly empty) goes to rest.
bool split(std::string_view line, size_t n, std::vector<std::string_view> &fields,
	   std::string_view *rest)
{
	fields.clear();
	while (fields.size() < n) {
		size_t sp = line.find(' ');
		std::string_view f = line.substr(0, sp);
		if (f.empty())
			return false;
		fields.push_back(f);
		if (sp == std::string_view::npos) {
			line = {};
			if (fields.size() < n)
				return false;
			if (rest)
				*rest = {};
			return true;
		}
		line.remove_prefix(sp + 1);
	}
	if (rest)
		*rest = line;
	else if (!line.empty())
		return false;
	return true;
}

std::string clean(std::string_view text)
{
	std::string s(text);
	for (char &c : s)
		if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
			c = ' ';
	return s;
}

} // namespace

std::string base64_encode(std::string_view data)
{
	std::string out;
	out.reserve((data.size() + 2) / 3 * 4);
	size_t i = 0;
	for (; i + 3 <= data.size(); i += 3) {
		uint32_t v = uint32_t(uint8_t(data[i])) << 16 | uint32_t(uint8_t(data[i + 1])) << 8 |
			     uint8_t(data[i + 2]);
		out += kB64[v >> 18];
		out += kB64[(v >> 12) & 63];
		out += kB64[(v >> 6) & 63];
		out += kB64[v & 63];
	}
	if (size_t left = data.size() - i) {
		uint32_t v = uint32_t(uint8_t(data[i])) << 16;
		if (left == 2)
			v |= uint32_t(uint8_t(data[i + 1])) << 8;
		out += kB64[v >> 18];
		out += kB64[(v >> 12) & 63];
		out += left == 2 ? kB64[(v >> 6) & 63] : '=';
		out += '=';
	}
	return out;
}

Result<std::string> base64_decode(std::string_view text)
{
	if (text.size() % 4)
		return fail(EINVAL, "base64 of length " + std::to_string(text.size()));
	std::string out;
	out.reserve(text.size() / 4 * 3);
	for (size_t i = 0; i < text.size(); i += 4) {
		const bool last = i + 4 == text.size();
		int v[4];
		int pad = 0;
		for (int j = 0; j < 4; j++) {
			char c = text[i + j];
			if (c == '=' && last && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			v[j] = b64_value(c);
			if (v[j] < 0 || pad)
				return fail(EINVAL, "not base64");
		}
		uint32_t w = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 |
			     uint32_t(v[3]);
		// Canonical only: the bits under the padding are zero.
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return fail(EINVAL, "not base64");
		out += char(w >> 16);
		if (pad < 2)
			out += char((w >> 8) & 0xff);
		if (pad < 1)
			out += char(w & 0xff);
	}
	return out;
}

Result<LeaseMsg> parse_lease_msg(std::string_view line)
{
	auto bad = [&] {
		return fail(EPROTO, "amber-lease: malformed line '" + clean(line.substr(0, 200)) + "'");
	};
	const size_t sp = line.find(' ');
	const std::string_view word = line.substr(0, sp);
	const std::string_view args = sp == std::string_view::npos ? "" : line.substr(sp + 1);
	std::vector<std::string_view> f;
	std::string_view rest;
	LeaseMsg m;
	if (word == "acquired") {
		m.kind = LeaseMsg::Acquired;
		if (!split(args, 4, f, nullptr) || !parse_int(f[0], m.lease) ||
		    !parse_int(f[1], m.ttl_s) || !parse_int(f[2], m.send_ns) ||
		    !parse_int(f[3], m.revision) || m.ttl_s <= 0 || m.revision <= 0)
			return bad();
	} else if (word == "busy") {
		m.kind = LeaseMsg::Busy;
		if (!split(args, 1, f, &rest) || !parse_int(f[0], m.revision) || m.revision < 0)
			return bad();
		auto v = base64_decode(rest);
		if (!v)
			return bad();
		m.text = std::move(*v);
	} else if (word == "renewed") {
		m.kind = LeaseMsg::Renewed;
		if (!split(args, 3, f, nullptr) || !parse_int(f[0], m.lease) ||
		    !parse_int(f[1], m.send_ns) || !parse_int(f[2], m.ttl_s) || m.ttl_s <= 0)
			return bad();
	} else if (word == "released") {
		m.kind = LeaseMsg::Released;
		if (!split(args, 1, f, nullptr) || !parse_int(f[0], m.lease))
			return bad();
	} else if (word == "lost") {
		m.kind = LeaseMsg::Lost;
		if (!split(args, 1, f, &rest) || !parse_int(f[0], m.lease))
			return bad();
		m.text = clean(rest);
	} else if (word == "error" || word == "note") {
		m.kind = word == "error" ? LeaseMsg::Error : LeaseMsg::Note;
		m.text = clean(args);
	} else {
		return bad();
	}
	return m;
}

std::string format_lease_msg(const LeaseMsg &m)
{
	auto n = [](auto v) { return std::to_string(v); };
	switch (m.kind) {
	case LeaseMsg::Acquired:
		return "acquired " + n(m.lease) + " " + n(m.ttl_s) + " " + n(m.send_ns) + " " +
		       n(m.revision) + "\n";
	case LeaseMsg::Busy:
		return "busy " + n(m.revision) + " " + base64_encode(m.text) + "\n";
	case LeaseMsg::Error:
		return "error " + clean(m.text) + "\n";
	case LeaseMsg::Released:
		return "released " + n(m.lease) + "\n";
	case LeaseMsg::Renewed:
		return "renewed " + n(m.lease) + " " + n(m.send_ns) + " " + n(m.ttl_s) + "\n";
	case LeaseMsg::Lost:
		return "lost " + n(m.lease) + " " + clean(m.text) + "\n";
	case LeaseMsg::Note:
		break;
	}
	return "note " + clean(m.text) + "\n";
}

double lease_margin_s(int64_t ttl_s)
{
	return 0.1 * double(ttl_s) + 0.1;
}

double lease_valid_until(uint64_t send_ns, int64_t ttl_s)
{
	return double(send_ns) / 1e9 + double(ttl_s) - lease_margin_s(ttl_s);
}

uint64_t lease_renew_period_ns(int64_t ttl_s)
{
	return uint64_t(ttl_s) * 1000000000 / 4;
}

} // namespace amber
