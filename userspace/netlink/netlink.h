// SPDX-License-Identifier: GPL-2.0
// A small generic netlink client for the amber family over libnl-genl-3.
//
// Requests carry NLM_F_ACK; the kernel's extack message (NETLINK_EXT_ACK)
// ends up in Error::msg. Sending and waiting are separate so that a request
// can be prepared and its sequence number known before fork(), sent by the
// child (the restore stub, which never returns on success) and its ACK read
// by the parent on the same, shared socket.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include "common/attr.h"
#include "common/result.h"

namespace amber {

using NlSockPtr = std::unique_ptr<nl_sock, decltype(&nl_socket_free)>;
using NlMsgPtr = std::unique_ptr<nl_msg, decltype(&nlmsg_free)>;

// A prepared request: a complete netlink message with its sequence number.
struct Request {
	NlMsgPtr msg{nullptr, &nlmsg_free};
	uint32_t seq = 0;
	uint8_t cmd = 0;
};

// The reply to a request: the attributes after the genetlink header (empty
// for commands that only ACK).
struct Reply {
	Bytes payload;
	Result<std::vector<Attr>> attrs() const { return parse_attrs(payload); }
};

class NetlinkClient {
public:
	// Opens and connects a generic netlink socket, enables extended ACKs,
	// message peeking (big replies) and resolves the "amber" family.
	// Error "amber.ko is not loaded" (ENOENT) when the family is missing.
	static Result<NetlinkClient> connect();

	int family() const { return family_; }
	int fd() const;
	nl_sock *sock() const { return sk_.get(); }

	// Builds a request for cmd with the given attribute payload, assigning
	// the next sequence number. NLM_F_REQUEST | NLM_F_ACK are set.
	Result<Request> make_request(uint8_t cmd, ByteView attrs);

	// Sends a prepared request without waiting for anything.
	Result<void> send(const Request &req);

	// Waits for the ACK or error of sequence number seq, collecting the
	// reply message with that sequence number if one comes first (the last
	// one, if several do). Messages with other sequence numbers are
	// dropped. timeout_ms < 0 waits forever; on timeout the error is
	// ETIMEDOUT. A kernel error is returned with its errno and extack
	// message. A reply the kernel could not queue because the receive
	// buffer was full fails with ENOBUFS, saying so.
	Result<Reply> wait_ack(uint32_t seq, int timeout_ms);

	// The same for a request answered by several messages before its ACK
	// (CHECKPOINT of a tree): all of them, in the order they came.
	Result<std::vector<Reply>> wait_replies(uint32_t seq, int timeout_ms);

	// Reads, without waiting, every ACK and error queued on the socket
	// (the requests a tree's stubs sent on it): sequence number -> outcome.
	// Other messages are dropped.
	Result<void> drain_acks(std::map<uint32_t, Result<void>> &out);

	// make_request + send: the request's sequence number.
	Result<uint32_t> submit(uint8_t cmd, ByteView attrs);
	// submit + wait_ack.
	Result<Reply> transact(uint8_t cmd, ByteView attrs, int timeout_ms = -1);
	// submit + wait_replies.
	Result<std::vector<Reply>> transact_multi(uint8_t cmd, ByteView attrs,
						  int timeout_ms = -1);

	// Sets the receive buffer to at least bytes (the kernel doubles the
	// value for its bookkeeping): SO_RCVBUFFORCE, or where that is not
	// permitted SO_RCVBUF, which net.core.rmem_max caps. A reply is sent
	// from within the request, before anything is read: everything must
	// fit at once. Returns the size the socket now has.
	Result<int> set_rcvbuf(int bytes);
	// The socket's receive buffer size (SO_RCVBUF), 0 if unknown.
	int rcvbuf() const;

private:
	NetlinkClient() = default;
	// wait_ack() and wait_replies(): every reply message goes to out.
	Result<void> wait(uint32_t seq, int timeout_ms, std::vector<Reply> &out);

	NlSockPtr sk_{nullptr, &nl_socket_free};
	int family_ = -1;
};

// NetlinkClient::connect() for a command that needs amber.ko: when the
// family is missing, "amber.ko is not loaded (insmod kmod/amber.ko)" with
// errno 0.
Result<NetlinkClient> connect_module();

// AMBER_CMD_RELEASE of pid (enum amber_release_action), waiting at most
// timeout_ms for the ACK.
Result<void> release(NetlinkClient &nl, uint32_t pid, uint32_t action, int timeout_ms);

// Parses one NLMSG_ERROR message (header included): returns 0 for an ACK,
// else the error with the extack message and the facts of the extack
// cookie (enum amber_err_attr: Error::retry, Error::pages_files). Exposed
// for the unit tests.
Result<void> parse_nlmsgerr(ByteView msg);

} // namespace amber
