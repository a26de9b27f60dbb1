// SPDX-License-Identifier: GPL-2.0
// Frames of the replication stream (stream.h).
#include "replicate/stream.h"

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/io.h"

namespace amber {

namespace {

void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = uint8_t(v >> (8 * i));
}

void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = uint8_t(v >> (8 * i));
}

uint32_t le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

// Offsets in the 32-byte header.
constexpr size_t kOffVersion = 8, kOffType = 12, kOffLength = 16, kOffHash = 24;

uint64_t frame_hash(const uint8_t *hdr, ByteView payload)
{
	uint8_t h[kFrameHeaderSize];
	memcpy(h, hdr, sizeof(h));
	put_le64(h + kOffHash, 0);
	XXH64_state_t *st = XXH64_createState();
	XXH64_reset(st, 0);
	XXH64_update(st, h, sizeof(h));
	if (!payload.empty())
		XXH64_update(st, payload.data(), payload.size());
	const uint64_t v = XXH64_digest(st);
	XXH64_freeState(st);
	return v;
}

} // namespace

const char *frame_type_name(FrameType t)
{
	switch (t) {
	case FrameType::Hello: return "HELLO";
	case FrameType::State: return "STATE";
	case FrameType::Begin: return "BEGIN";
	case FrameType::File: return "FILE";
	case FrameType::Data: return "DATA";
	case FrameType::Output: return "OUTPUT";
	case FrameType::End: return "END";
	case FrameType::Ack: return "ACK";
	case FrameType::Nack: return "NACK";
	case FrameType::Heartbeat: return "HEARTBEAT";
	case FrameType::Bye: return "BYE";
	}
	return "?";
}

Bytes encode_frame(FrameType type, ByteView payload)
{
	Bytes out(kFrameHeaderSize + payload.size());
	uint8_t *h = out.data();
	memcpy(h, kStreamMagic, sizeof(kStreamMagic));
	put_le32(h + kOffVersion, kStreamVersion);
	put_le32(h + kOffType, uint32_t(type));
	put_le64(h + kOffLength, payload.size());
	if (!payload.empty())
		memcpy(h + kFrameHeaderSize, payload.data(), payload.size());
	put_le64(h + kOffHash, frame_hash(h, payload));
	return out;
}

Result<uint64_t> check_frame_header(ByteView hdr)
{
	if (hdr.size() < kFrameHeaderSize)
		return fail(EBADMSG, "frame header truncated");
	if (memcmp(hdr.data(), kStreamMagic, sizeof(kStreamMagic)))
		return fail(EBADMSG, "bad frame magic (not an amber replication stream)");
	const uint32_t version = le32(hdr.data() + kOffVersion);
	if (version != kStreamVersion)
		return fail(EPROTONOSUPPORT, "stream version " + std::to_string(version) +
						     " (this amber speaks " +
						     std::to_string(kStreamVersion) + ")");
	const uint32_t type = le32(hdr.data() + kOffType);
	if (type < uint32_t(FrameType::Hello) || type > uint32_t(FrameType::Max))
		return fail(EBADMSG, "unknown frame type " + std::to_string(type));
	const uint64_t len = le64(hdr.data() + kOffLength);
	if (len > kMaxFramePayload)
		return fail(EMSGSIZE, std::string(frame_type_name(FrameType(type))) + " frame of " +
					      std::to_string(len) + " bytes (at most " +
					      std::to_string(kMaxFramePayload) + ")");
	return len;
}

void FrameReader::feed(ByteView bytes)
{
	if (pos_ && pos_ == buf_.size()) {
		buf_.clear();
		pos_ = 0;
	}
	buf_.insert(buf_.end(), bytes.begin(), bytes.end());
}

Result<bool> FrameReader::fill(int fd)
{
	uint8_t tmp[64 * 1024];
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n > 0) {
			feed(ByteView(tmp, size_t(n)));
			return true;
		}
		if (n == 0)
			return false;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return true;
		return fail_errno("receive");
	}
}

Result<std::optional<Frame>> FrameReader::next()
{
	const size_t avail = buf_.size() - pos_;
	if (avail < kFrameHeaderSize)
		return std::optional<Frame>();
	const uint8_t *h = buf_.data() + pos_;
	const uint64_t len = AMBER_TRY(check_frame_header(ByteView(h, kFrameHeaderSize)));
	if (avail - kFrameHeaderSize < len)
		return std::optional<Frame>();
	ByteView payload(h + kFrameHeaderSize, size_t(len));
	const FrameType type = FrameType(le32(h + kOffType));
	if (frame_hash(h, payload) != le64(h + kOffHash))
		return fail(EBADMSG, std::string(frame_type_name(type)) +
					     " frame: checksum mismatch");
	Frame f;
	f.type = type;
	f.payload.assign(payload.begin(), payload.end());
	pos_ += kFrameHeaderSize + size_t(len);
	// Keep the buffer from growing with what has been consumed.
	if (pos_ > (size_t(4) << 20) || pos_ == buf_.size()) {
		buf_.erase(buf_.begin(), buf_.begin() + ptrdiff_t(pos_));
		pos_ = 0;
	}
	return std::optional<Frame>(std::move(f));
}

bool valid_stream_path(const std::string &p)
{
	if (p.empty() || p.size() > 200 || p.front() == '/' || p.back() == '/')
		return false;
	int parts = 0;
	size_t start = 0;
	while (start <= p.size()) {
		size_t end = p.find('/', start);
		if (end == std::string::npos)
			end = p.size();
		const std::string part = p.substr(start, end - start);
		if (part.empty() || part[0] == '.' || ++parts > 4)
			return false;
		for (char c : part)
			if (!isalnum(uint8_t(c)) && c != '.' && c != '_' && c != '-')
				return false;
		start = end + 1;
	}
	return true;
}

Result<std::vector<uint32_t>> parse_u32_array(ByteView data)
{
	if (data.size() % 4)
		return fail(EBADMSG, "u32 array of " + std::to_string(data.size()) + " bytes");
	std::vector<uint32_t> v;
	for (size_t i = 0; i < data.size(); i += 4)
		v.push_back(le32(data.data() + i));
	return v;
}

Result<std::vector<uint64_t>> parse_u64_array(ByteView data)
{
	if (data.size() % 8)
		return fail(EBADMSG, "u64 array of " + std::to_string(data.size()) + " bytes");
	std::vector<uint64_t> v;
	for (size_t i = 0; i < data.size(); i += 8)
		v.push_back(le64(data.data() + i));
	return v;
}

Bytes u32_array(const std::vector<uint32_t> &v)
{
	Bytes b(v.size() * 4);
	for (size_t i = 0; i < v.size(); i++)
		put_le32(b.data() + 4 * i, v[i]);
	return b;
}

Bytes u64_array(const std::vector<uint64_t> &v)
{
	Bytes b(v.size() * 8);
	for (size_t i = 0; i < v.size(); i++)
		put_le64(b.data() + 8 * i, v[i]);
	return b;
}

Result<void> send_frame(int fd, FrameType type, ByteView payload, double timeout_s)
{
	const Bytes f = encode_frame(type, payload);
	size_t done = 0;
	while (done < f.size()) {
		ssize_t n = send(fd, f.data() + done, f.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			done += size_t(n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return fail_errno("send");
		struct pollfd p = {fd, POLLOUT, 0};
		int r = poll(&p, 1, int(timeout_s * 1000));
		if (r < 0 && errno != EINTR)
			return fail_errno("poll");
		if (r == 0)
			return fail(ETIMEDOUT, "send: the peer read nothing for " +
						       std::to_string(int(timeout_s)) + " s");
	}
	return {};
}

} // namespace amber
