// SPDX-License-Identifier: GPL-2.0
#include "common/attr.h"

#include <cstring>

#include <linux/netlink.h>

namespace amber {

namespace {

constexpr size_t kHdr = NLA_HDRLEN;

size_t align4(size_t n)
{
	return (n + NLA_ALIGNTO - 1) & ~size_t(NLA_ALIGNTO - 1);
}

} // namespace

namespace {

template <typename T>
Result<T> fixed(const Attr &a)
{
	if (a.data.size() != sizeof(T))
		return fail(EINVAL, "attribute " + std::to_string(a.type) + ": expected " +
					    std::to_string(sizeof(T)) + " bytes, got " +
					    std::to_string(a.data.size()));
	T v;
	memcpy(&v, a.data.data(), sizeof(v));
	return v;
}

} // namespace

Result<uint32_t> Attr::u32() const
{
	return fixed<uint32_t>(*this);
}

Result<uint64_t> Attr::u64() const
{
	return fixed<uint64_t>(*this);
}

std::string Attr::str() const
{
	const char *p = reinterpret_cast<const char *>(data.data());
	size_t n = strnlen(p, data.size());
	return std::string(p, n);
}

Result<std::vector<Attr>> parse_attrs(ByteView buf)
{
	std::vector<Attr> out;
	size_t off = 0;

	while (buf.size() - off >= kHdr) {
		struct nlattr nla;
		memcpy(&nla, buf.data() + off, sizeof(nla));
		if (nla.nla_len < kHdr || nla.nla_len > buf.size() - off)
			return fail(EINVAL, "malformed attribute at offset " +
					    std::to_string(off));
		Attr a;
		a.type = nla.nla_type & NLA_TYPE_MASK;
		a.nested = nla.nla_type & NLA_F_NESTED;
		a.raw = buf.subspan(off, nla.nla_len);
		a.data = buf.subspan(off + kHdr, nla.nla_len - kHdr);
		out.push_back(a);
		off += align4(nla.nla_len);
		if (off > buf.size())
			off = buf.size();
	}
	if (off != buf.size() && buf.size() - off >= NLA_ALIGNTO)
		return fail(EINVAL, "malformed attribute stream: " +
				    std::to_string(buf.size() - off) +
				    " trailing bytes");
	return out;
}

const Attr *find_attr(const std::vector<Attr> &attrs, uint16_t type)
{
	for (const Attr &a : attrs)
		if (a.type == type)
			return &a;
	return nullptr;
}

void AttrWriter::put(uint16_t type, const void *data, size_t len)
{
	struct nlattr nla = {};
	if (kHdr + len > 0xffff)
		too_big_ = true;
	nla.nla_len = uint16_t(kHdr + len);
	nla.nla_type = type;
	size_t off = buf_.size();
	buf_.resize(off + align4(kHdr + len), 0);
	memcpy(buf_.data() + off, &nla, sizeof(nla));
	if (len)
		memcpy(buf_.data() + off + kHdr, data, len);
}

void AttrWriter::put_u32(uint16_t type, uint32_t v)
{
	put(type, &v, sizeof(v));
}

void AttrWriter::put_u64(uint16_t type, uint64_t v)
{
	put(type, &v, sizeof(v));
}

void AttrWriter::put_string(uint16_t type, std::string_view s)
{
	std::string tmp(s);
	put(type, tmp.c_str(), tmp.size() + 1);
}

void AttrWriter::put_flag(uint16_t type)
{
	put(type, nullptr, 0);
}

void AttrWriter::put_binary(uint16_t type, ByteView data)
{
	put(type, data.data(), data.size());
}

void AttrWriter::put_raw(ByteView attrs)
{
	buf_.insert(buf_.end(), attrs.begin(), attrs.end());
	buf_.resize(align4(buf_.size()), 0);
}

size_t AttrWriter::begin_nest(uint16_t type)
{
	size_t off = buf_.size();
	put(type | NLA_F_NESTED, nullptr, 0);
	return off;
}

void AttrWriter::end_nest(size_t token)
{
	struct nlattr nla;
	memcpy(&nla, buf_.data() + token, sizeof(nla));
	if (buf_.size() - token > 0xffff)
		too_big_ = true;
	nla.nla_len = uint16_t(buf_.size() - token);
	memcpy(buf_.data() + token, &nla, sizeof(nla));
}

} // namespace amber
