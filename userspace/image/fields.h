// SPDX-License-Identifier: GPL-2.0
// Attribute tables: which attribute of a nest or section fills which field
// of its struct, walked by both the parser and the encoder, so that a new
// field is one line of its table. Attributes with more to them than a value
// (nests, lists, checked sizes) are handled next to the table by the
// parser that uses it (see image/sections.cc).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "common/attr.h"
#include "common/result.h"

namespace amber {

// One attribute: its type, the member it fills (u32, u64, NUL-terminated
// string, flag, or binary payload) and, for encoding, whether it is left
// out when zero / empty.
template <typename S>
struct Field {
	using Member = std::variant<uint32_t S::*, uint64_t S::*, std::string S::*, bool S::*,
				    Bytes S::*>;
	uint16_t type;
	Member member;
	bool omit_empty = false;
};

template <typename S>
using FieldTable = std::span<const Field<S>>;

namespace detail {

inline Result<void> read_value(const Attr &a, uint32_t &v)
{
	v = AMBER_TRY(a.u32());
	return {};
}
inline Result<void> read_value(const Attr &a, uint64_t &v)
{
	v = AMBER_TRY(a.u64());
	return {};
}
inline Result<void> read_value(const Attr &a, std::string &v)
{
	v = a.str();
	return {};
}
inline Result<void> read_value(const Attr &, bool &v)
{
	v = true;
	return {};
}
inline Result<void> read_value(const Attr &a, Bytes &v)
{
	v = a.bytes();
	return {};
}

inline void write_value(AttrWriter &w, uint16_t type, uint32_t v, bool omit)
{
	if (v || !omit)
		w.put_u32(type, v);
}
inline void write_value(AttrWriter &w, uint16_t type, uint64_t v, bool omit)
{
	if (v || !omit)
		w.put_u64(type, v);
}
inline void write_value(AttrWriter &w, uint16_t type, const std::string &v, bool omit)
{
	if (!v.empty() || !omit)
		w.put_string(type, v);
}
inline void write_value(AttrWriter &w, uint16_t type, bool v, bool)
{
	if (v)
		w.put_flag(type);
}
inline void write_value(AttrWriter &w, uint16_t type, const Bytes &v, bool omit)
{
	if (!v.empty() || !omit)
		w.put_binary(type, v);
}

} // namespace detail

// Fills the member of s that the table has for a's type: true, false when
// the table has no such type, an error when the payload does not fit.
template <typename S>
Result<bool> read_field(FieldTable<S> table, const Attr &a, S &s)
{
	for (const Field<S> &f : table) {
		if (f.type != a.type)
			continue;
		AMBER_TRY(std::visit([&](auto m) { return detail::read_value(a, s.*m); },
				     f.member));
		return true;
	}
	return false;
}

// Appends every field of s in table order.
template <typename S>
void write_fields(AttrWriter &w, FieldTable<S> table, const S &s)
{
	for (const Field<S> &f : table)
		std::visit([&](auto m) { detail::write_value(w, f.type, s.*m, f.omit_empty); },
			   f.member);
}

} // namespace amber
