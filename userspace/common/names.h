// SPDX-License-Identifier: GPL-2.0
// Names of kernel objects for messages, one spelling everywhere.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace amber {

// "SIGTERM", "SIGRTMIN", "SIGRTMIN+3"; "signal 200" for a number that is
// no signal.
std::string signal_name(int sig);

// "pid 42".
inline std::string pid_name(uint32_t pid)
{
	return "pid " + std::to_string(pid);
}

// "AF_UNIX", ...; "family 99" for one without a name here.
std::string family_name(uint32_t family);

// "SOCK_STREAM", ...; "type 9" for one without a name here.
std::string sock_type_name(uint32_t type);

// 0x-prefixed lowercase hex: "0x7f0000001000".
inline std::string hex(uint64_t v)
{
	return fmt::format("{:#x}", v);
}

// A path the kernel reported as " (deleted)".
inline bool is_deleted(std::string_view path)
{
	return path.ends_with(" (deleted)");
}

} // namespace amber
