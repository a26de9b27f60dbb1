// SPDX-License-Identifier: GPL-2.0
#include "common/names.h"

#include <csignal>
#include <cstring>

#include <sys/socket.h>

namespace amber {

std::string signal_name(int sig)
{
	if (sig >= SIGRTMIN && sig <= SIGRTMAX)
		return sig == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+" + std::to_string(sig - SIGRTMIN);
	if (const char *abbrev = sig > 0 ? sigabbrev_np(sig) : nullptr)
		return std::string("SIG") + abbrev;
	return "signal " + std::to_string(sig);
}

std::string family_name(uint32_t family)
{
	switch (family) {
	case AF_UNIX:
		return "AF_UNIX";
	case AF_INET:
		return "AF_INET";
	case AF_INET6:
		return "AF_INET6";
	case AF_NETLINK:
		return "AF_NETLINK";
	case AF_PACKET:
		return "AF_PACKET";
	case AF_VSOCK:
		return "AF_VSOCK";
	}
	return "family " + std::to_string(family);
}

std::string sock_type_name(uint32_t type)
{
	switch (type) {
	case SOCK_STREAM:
		return "SOCK_STREAM";
	case SOCK_DGRAM:
		return "SOCK_DGRAM";
	case SOCK_SEQPACKET:
		return "SOCK_SEQPACKET";
	case SOCK_RAW:
		return "SOCK_RAW";
	}
	return "type " + std::to_string(type);
}

} // namespace amber
