// SPDX-License-Identifier: GPL-2.0
// Netlink attribute streams (struct nlattr, 4-byte aligned) held in byte
// buffers: the payload of amber's netlink messages and of the meta file's
// attribute sections. Independent of libnl so the image code and the unit
// tests can use it without a socket. All input is treated as untrusted.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace amber {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

// One attribute inside a buffer (views, no ownership: keep the buffer alive).
struct Attr {
	uint16_t type = 0;	// without NLA_F_NESTED / NLA_F_NET_BYTEORDER
	bool nested = false;	// NLA_F_NESTED was set
	ByteView data;		// payload
	ByteView raw;		// header + payload (unpadded)

	Result<uint32_t> u32() const;
	Result<uint64_t> u64() const;
	// Payload up to the first NUL (strings need not be NUL-terminated).
	std::string str() const;
	Bytes bytes() const { return Bytes(data.begin(), data.end()); }
	Bytes raw_bytes() const { return Bytes(raw.begin(), raw.end()); }
};

// Splits a buffer into its attributes. Fails on a malformed stream
// (length below the header, running past the end). Trailing padding of
// fewer than 4 bytes is accepted.
Result<std::vector<Attr>> parse_attrs(ByteView buf);

// First attribute of a given type, or nullptr.
const Attr *find_attr(const std::vector<Attr> &attrs, uint16_t type);

// Appends attributes to a byte buffer, 4-byte aligned, nests flagged with
// NLA_F_NESTED as the kernel's strict validation requires.
class AttrWriter {
public:
	void put_u32(uint16_t type, uint32_t v);
	void put_u64(uint16_t type, uint64_t v);
	void put_string(uint16_t type, std::string_view s);	// NUL-terminated
	void put_flag(uint16_t type);
	void put_binary(uint16_t type, ByteView data);
	// Already encoded attributes (e.g. copied from an image), appended as is.
	void put_raw(ByteView attrs);

	// begin_nest() returns a token for end_nest().
	size_t begin_nest(uint16_t type);
	void end_nest(size_t token);

	// False if an attribute or nest outgrew nla_len (64 KiB).
	bool ok() const { return !too_big_; }
	const Bytes &bytes() const { return buf_; }
	Bytes take() { return std::move(buf_); }
	ByteView view() const { return buf_; }

private:
	void put(uint16_t type, const void *data, size_t len);
	Bytes buf_;
	bool too_big_ = false;
};

} // namespace amber
