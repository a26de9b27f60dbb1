// SPDX-License-Identifier: GPL-2.0
// The replication stream between `amber run --replicate` (the primary) and
// `amber backup` (the backup), over one TCP connection.
//
// The stream carries the image format itself: a checkpoint is sent as its
// files (meta.img, pages.img or pages.img.zst, proc/PID/...), byte for byte
// as they lie in the primary's store, and the backup verifies them with the
// same code that verifies a store before it publishes them. Around them,
// every frame is
//
//   struct frame_hdr { char magic[8] "AMBERSTR"; u32 version; u32 type;
//                      u64 length; u64 xxh64; }   (little endian, 32 bytes)
//
// followed by length bytes of payload; xxh64 covers the header (with the
// field 0) and the payload. A control frame's payload is netlink
// attributes (enum StreamAttr), as the meta file's sections are; a Data
// frame's payload is a piece of the file being sent. length is at most
// kMaxFramePayload: a reader never allocates more for one frame, and a
// frame that is malformed (magic, version, length, checksum, attributes)
// ends the connection with a message; nothing of it reaches the store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/attr.h"
#include "common/result.h"

namespace amber {

inline constexpr char kStreamMagic[8] = {'A', 'M', 'B', 'E', 'R', 'S', 'T', 'R'};
inline constexpr uint32_t kStreamVersion = 1;
inline constexpr size_t kFrameHeaderSize = 32;
// One Data frame carries at most kDataChunk bytes; control frames are small.
inline constexpr uint64_t kDataChunk = uint64_t(1) << 20;
inline constexpr uint64_t kMaxFramePayload = kDataChunk + 4096;

enum class FrameType : uint32_t {
	Hello = 1,	// P->B: JOB, HOST, CONF
	State,		// B->P: NUMBERS (complete checkpoints), OUTPUT sizes
	Begin,		// P->B: NUMBER: a checkpoint's files follow
	File,		// P->B: PATH, SIZE, then Data frames with SIZE bytes
	Data,		// P->B: raw bytes of the current file
	Output,		// P->B: INDEX, OFFSET, then Data frames: output file bytes
	End,		// P->B: NUMBER: all its files sent; verify, publish, ack
	Ack,		// B->P: NUMBER is durable in the backup's store
	Nack,		// B->P: NUMBER, MESSAGE: refused (the backup drops it)
	Heartbeat,	// both ways: SEQ, TIME_NS (sender's CLOCK_MONOTONIC)
	Bye,		// P->B: STATUS: the job ended by itself; no takeover
	Max = Bye,
};

const char *frame_type_name(FrameType t);

enum StreamAttr : uint16_t {
	kStreamJob = 1,		// string: the primary's DIR (absolute)
	kStreamHost,		// string: the sender's host name
	kStreamConf,		// binary: DIR/run.conf
	kStreamNumber,		// u32
	kStreamNumbers,		// binary: u32 array
	kStreamPath,		// string: a file inside DIR/N
	kStreamSize,		// u64
	kStreamIndex,		// u32: output file (0 stdout, 1 stderr)
	kStreamOffset,		// u64
	kStreamMessage,		// string
	kStreamSeq,		// u64
	kStreamTimeNs,		// u64
	kStreamStatus,		// u32
	kStreamOutputSizes,	// binary: u64 array, one per output file
};

struct Frame {
	FrameType type = FrameType::Heartbeat;
	Bytes payload;
};

// Header + payload, ready to send.
Bytes encode_frame(FrameType type, ByteView payload);

// Checks one frame header: magic, version, type, length bound. Returns the
// payload length.
Result<uint64_t> check_frame_header(ByteView hdr);

// Reassembles frames from bytes as they arrive (feed()), checking each one
// completely (header, bound, checksum) before handing it out.
class FrameReader {
public:
	// Reads what fd has without blocking (O_NONBLOCK or after poll()):
	// ok(true) when it read something, ok(false) at EOF; EAGAIN is ok(true)
	// with nothing read.
	Result<bool> fill(int fd);
	void feed(ByteView bytes);
	// The next complete frame, nullopt if it has not all arrived yet;
	// an error for a malformed one (the stream cannot go on after it).
	Result<std::optional<Frame>> next();
	size_t buffered() const { return buf_.size() - pos_; }

private:
	Bytes buf_;
	size_t pos_ = 0;
};

// A path of a checkpoint's file as the stream names it: relative, at most
// 4 components of [A-Za-z0-9._-], none "." or ".." or starting with ".".
bool valid_stream_path(const std::string &p);

// A u32 array attribute's values (kStreamNumbers); EBADMSG if its length
// is not a multiple of 4.
Result<std::vector<uint32_t>> parse_u32_array(ByteView data);
Result<std::vector<uint64_t>> parse_u64_array(ByteView data);
Bytes u32_array(const std::vector<uint32_t> &v);
Bytes u64_array(const std::vector<uint64_t> &v);

// Writes a whole frame to a blocking socket, or fails after timeout_s
// without progress (the peer stopped reading). Errors "send: ...".
Result<void> send_frame(int fd, FrameType type, ByteView payload, double timeout_s);

} // namespace amber
