// SPDX-License-Identifier: GPL-2.0
#include "netlink/netlink.h"
#include "common/io.h"

#include <cstdlib>
#include <cstring>
#include <ctime>

#include <linux/amber.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <netlink/errno.h>
#include <netlink/genl/ctrl.h>

namespace amber {

namespace {

using MallocPtr = std::unique_ptr<unsigned char, decltype(&free)>;

// libnl returns negative NLE_* codes: map the common ones back to errno.
int nle_errno(int nle)
{
	switch (nle < 0 ? -nle : nle) {
	case NLE_NOMEM:
		return ENOMEM;
	case NLE_AGAIN:
		return EAGAIN;
	case NLE_PERM:
		return EPERM;
	case NLE_NOACCESS:
		return EACCES;
	case NLE_OBJ_NOTFOUND:
		return ENOENT;
	case NLE_MSGSIZE:
		return EMSGSIZE;
	case NLE_INTR:
		return EINTR;
	case NLE_BAD_SOCK:
		return EBADF;
	default:
		return EIO;
	}
}

Error nl_error(int nle, const std::string &what)
{
	return Error{nle_errno(nle), what + ": " + nl_geterror(nle)};
}

// The facts of enum amber_err_attr packed in an extack cookie. A cookie
// that is not an attribute stream, or an attribute of the wrong size, is
// ignored: nothing to act on beyond errno.
void parse_err_cookie(ByteView cookie, Error &out)
{
	auto attrs = parse_attrs(cookie);
	if (!attrs)
		return;
	for (const Attr &a : *attrs) {
		if (a.type == AMBER_ERR_RETRY) {
			out.retry = true;
		} else if (a.type == AMBER_ERR_PAGES_FILES) {
			if (auto v = a.u32())
				out.pages_files = *v;
		}
	}
}

} // namespace

Result<void> parse_nlmsgerr(ByteView msg)
{
	struct nlmsghdr hdr;
	struct nlmsgerr e;

	if (msg.size() < NLMSG_HDRLEN + sizeof(e))
		return fail(EPROTO, "netlink: truncated error message");
	memcpy(&hdr, msg.data(), sizeof(hdr));
	memcpy(&e, msg.data() + NLMSG_HDRLEN, sizeof(e));
	if (hdr.nlmsg_len > msg.size() || hdr.nlmsg_len < NLMSG_HDRLEN + sizeof(e))
		return fail(EPROTO, "netlink: malformed error message");

	std::string text;
	uint32_t miss_type = 0;
	bool have_miss = false;
	Error facts;
	if (hdr.nlmsg_flags & NLM_F_ACK_TLVS) {
		size_t off = NLMSG_HDRLEN + sizeof(e);
		// Without NLM_F_CAPPED the whole request follows nlmsgerr.
		if (!(hdr.nlmsg_flags & NLM_F_CAPPED) &&
		    e.msg.nlmsg_len >= NLMSG_HDRLEN)
			off += NLMSG_ALIGN(e.msg.nlmsg_len) - NLMSG_HDRLEN;
		if (off <= hdr.nlmsg_len) {
			auto tlvs = parse_attrs(msg.subspan(off, hdr.nlmsg_len - off));
			if (tlvs) {
				if (const Attr *m = find_attr(*tlvs, NLMSGERR_ATTR_MSG))
					text = m->str();
				if (const Attr *m = find_attr(*tlvs,
							      NLMSGERR_ATTR_MISS_TYPE)) {
					if (auto v = m->u32()) {
						miss_type = *v;
						have_miss = true;
					}
				}
				if (const Attr *c = find_attr(*tlvs, NLMSGERR_ATTR_COOKIE))
					parse_err_cookie(c->data, facts);
			}
		}
	}
	if (e.error == 0)
		return {};
	if (have_miss)
		text += (text.empty() ? "" : " ") + std::string("(attribute ") +
			std::to_string(miss_type) + ")";
	facts.err = -e.error;
	facts.msg = std::move(text);
	return tl::unexpected(std::move(facts));
}

Result<NetlinkClient> NetlinkClient::connect()
{
	NetlinkClient c;
	c.sk_.reset(nl_socket_alloc());
	if (!c.sk_)
		return fail(ENOMEM, "netlink: cannot allocate socket");
	int err = genl_connect(c.sk_.get());
	if (err < 0)
		return tl::unexpected(nl_error(err, "netlink: connect"));

	int one = 1;
	int fd = nl_socket_get_fd(c.sk_.get());
	if (setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one)) < 0)
		return fail_errno("netlink: NETLINK_EXT_ACK");
	// Errors need not echo the (possibly large) request.
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	nl_socket_enable_msg_peek(c.sk_.get());
	nl_socket_set_buffer_size(c.sk_.get(), 1 << 20, 1 << 20);
	// SO_RCVBUF is capped by net.core.rmem_max (~208 KiB): a reply for a process with
	// thousands of VMAs and fds, followed by its ACK, would overflow it (ENOBUFS).
	// Callers are root anyway (CAP_CHECKPOINT_RESTORE), so force the size; an
	// unprivileged caller keeps the capped buffer and gets the kernel's EPERM first.
	// A CHECKPOINT asks for more (checkpoint/take_checkpoint.cc).
	(void)c.set_rcvbuf(8 << 20);

	err = genl_ctrl_resolve(c.sk_.get(), AMBER_FAMILY_NAME);
	if (err == -NLE_OBJ_NOTFOUND)
		return fail(ENOENT, "amber.ko is not loaded");
	if (err < 0)
		return tl::unexpected(nl_error(err, "netlink: resolving family " AMBER_FAMILY_NAME));
	c.family_ = err;
	return c;
}

Result<NetlinkClient> connect_module()
{
	auto nl = NetlinkClient::connect();
	if (!nl && nl.error().err == ENOENT)
		return fail(0, nl.error().msg + " (insmod kmod/amber.ko)");
	return nl;
}

Result<void> release(NetlinkClient &nl, uint32_t pid, uint32_t action, int timeout_ms)
{
	AttrWriter w;
	w.put_u32(AMBER_A_PID, pid);
	w.put_u32(AMBER_A_ACTION, action);
	auto r = nl.transact(AMBER_CMD_RELEASE, w.view(), timeout_ms);
	if (!r)
		return tl::unexpected(r.error());
	return {};
}

int NetlinkClient::fd() const
{
	return nl_socket_get_fd(sk_.get());
}

Result<Request> NetlinkClient::make_request(uint8_t cmd, ByteView attrs)
{
	Request r;
	r.cmd = cmd;
	r.seq = nl_socket_use_seq(sk_.get());
	r.msg.reset(nlmsg_alloc_size(NLMSG_HDRLEN + GENL_HDRLEN + attrs.size() + 64));
	if (!r.msg)
		return fail(ENOMEM, "netlink: cannot allocate message");
	if (!genlmsg_put(r.msg.get(), nl_socket_get_local_port(sk_.get()), r.seq,
			 family_, 0, NLM_F_REQUEST | NLM_F_ACK, cmd,
			 AMBER_FAMILY_VERSION))
		return fail(EMSGSIZE, "netlink: cannot build message header");
	if (!attrs.empty() &&
	    nlmsg_append(r.msg.get(), const_cast<uint8_t *>(attrs.data()),
			 attrs.size(), NLA_ALIGNTO) < 0)
		return fail(EMSGSIZE, "netlink: request too large");
	return r;
}

Result<void> NetlinkClient::send(const Request &req)
{
	int err = nl_send(sk_.get(), req.msg.get());
	if (err < 0)
		return tl::unexpected(nl_error(err, "netlink: send"));
	return {};
}

Result<void> NetlinkClient::wait(uint32_t seq, int timeout_ms, std::vector<Reply> &out)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

	for (;;) {
		int wait = -1;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return fail(ETIMEDOUT, "netlink: no answer from amber.ko");
			wait = int(left);
		}
		struct pollfd pfd = {fd(), POLLIN, 0};
		int n = poll(&pfd, 1, wait);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno("netlink: poll");
		}
		if (n == 0)
			continue;

		unsigned char *raw = nullptr;
		struct sockaddr_nl peer;
		errno = 0;
		int len = nl_recv(sk_.get(), &peer, &raw, nullptr);
		const int saved = errno;
		MallocPtr buf(raw, &free);
		if (len < 0) {
			// The kernel found the receive buffer full (netlink_overrun()):
			// the reply, or a part of it, is lost.
			if (saved == ENOBUFS)
				return fail(ENOBUFS, "netlink: a reply from amber.ko was dropped: the "
						     "receive buffer (" + std::to_string(rcvbuf()) +
						     " bytes) is too small for it (SO_RCVBUFFORCE "
						     "needs CAP_NET_ADMIN; without it "
						     "net.core.rmem_max caps the buffer)");
			return tl::unexpected(nl_error(len, "netlink: receive"));
		}
		if (len == 0)
			continue;

		auto *hdr = reinterpret_cast<struct nlmsghdr *>(buf.get());
		for (; nlmsg_ok(hdr, len); hdr = nlmsg_next(hdr, &len)) {
			if (hdr->nlmsg_seq != seq)
				continue;
			ByteView msg(reinterpret_cast<uint8_t *>(hdr), hdr->nlmsg_len);
			if (hdr->nlmsg_type == NLMSG_ERROR) {
				auto r = parse_nlmsgerr(msg);
				if (!r)
					return tl::unexpected(r.error());
				return {};
			}
			if (hdr->nlmsg_type == NLMSG_DONE ||
			    hdr->nlmsg_type == NLMSG_NOOP)
				continue;
			size_t off = NLMSG_HDRLEN + GENL_HDRLEN;
			if (hdr->nlmsg_len < off)
				return fail(EPROTO, "netlink: truncated reply");
			out.push_back(Reply{Bytes(msg.begin() + off, msg.end())});
		}
	}
}

Result<Reply> NetlinkClient::wait_ack(uint32_t seq, int timeout_ms)
{
	std::vector<Reply> replies;
	AMBER_TRY(wait(seq, timeout_ms, replies));
	if (replies.empty())
		return Reply{};
	return std::move(replies.back());
}

Result<std::vector<Reply>> NetlinkClient::wait_replies(uint32_t seq, int timeout_ms)
{
	std::vector<Reply> replies;
	AMBER_TRY(wait(seq, timeout_ms, replies));
	return replies;
}

Result<uint32_t> NetlinkClient::submit(uint8_t cmd, ByteView attrs)
{
	Request req = AMBER_TRY(make_request(cmd, attrs));
	AMBER_TRY(send(req));
	return req.seq;
}

Result<std::vector<Reply>> NetlinkClient::transact_multi(uint8_t cmd, ByteView attrs,
							 int timeout_ms)
{
	return wait_replies(AMBER_TRY(submit(cmd, attrs)), timeout_ms);
}

Result<void> NetlinkClient::drain_acks(std::map<uint32_t, Result<void>> &out)
{
	static thread_local std::vector<uint8_t> buf(1 << 16);
	for (;;) {
		ssize_t n = recv(fd(), buf.data(), buf.size(), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return {};
		if (n < 0)
			return fail_errno("netlink: recv");
		int len = int(n);
		for (auto *h = reinterpret_cast<struct nlmsghdr *>(buf.data()); NLMSG_OK(h, len);
		     h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type != NLMSG_ERROR)
				continue;
			out.emplace(h->nlmsg_seq,
				    parse_nlmsgerr(ByteView(reinterpret_cast<uint8_t *>(h),
							    h->nlmsg_len)));
		}
	}
}

Result<int> NetlinkClient::set_rcvbuf(int bytes)
{
	if (int64_t(rcvbuf()) >= 2 * int64_t(bytes))
		return rcvbuf();
	if (setsockopt(fd(), SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) < 0 &&
	    setsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) < 0)
		return fail_errno("netlink: SO_RCVBUF " + std::to_string(bytes));
	return rcvbuf();
}

int NetlinkClient::rcvbuf() const
{
	int v = 0;
	socklen_t len = sizeof(v);
	if (getsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &v, &len) < 0)
		return 0;
	return v;
}

Result<Reply> NetlinkClient::transact(uint8_t cmd, ByteView attrs, int timeout_ms)
{
	return wait_ack(AMBER_TRY(submit(cmd, attrs)), timeout_ms);
}

} // namespace amber
