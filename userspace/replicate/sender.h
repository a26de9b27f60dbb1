// SPDX-License-Identifier: GPL-2.0
// The primary's side of the replication stream (stream.h): `amber run
// --replicate ADDR:PORT` hands each published checkpoint to a Replicator,
// whose thread sends the backup what it lacks of it (the links of its chain
// the backup does not hold: a full checkpoint when the backup is new, then
// deltas), the output files up to the checkpoint, and heartbeats every
// kHeartbeatS; it reconnects when the backup is lost.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/attr.h"
#include "common/result.h"
#include "image/store.h"
#include "replicate/stream.h"
#include "run/policy.h"

namespace amber {

inline constexpr double kHeartbeatS = 0.1;
// Silence from the backup (its heartbeat echoes) that drops the connection.
inline constexpr double kBackupSilenceS = 5.0;

// One checkpoint's files, opened when it was published: retention may
// compact or delete DIR/N afterwards, the open files stay as they were.
struct ReplicaFile {
	std::string path;	// inside DIR/N
	UniqueFd fd;
	uint64_t size = 0;
};

struct ReplicaLink {
	uint32_t number = 0;
	std::vector<ReplicaFile> files;
	uint64_t bytes = 0;
};

// What one replication sends, at most: checkpoint `number` and every link
// its process chains need, ascending (number last), and the output files'
// sizes when it was taken.
struct ReplicaSnapshot {
	uint32_t number = 0;
	std::vector<ReplicaLink> links;
	std::vector<uint64_t> output_sizes;
	double published_at = 0;	// now_s()
};

// Opens the files of checkpoint number and of the links it needs.
Result<ReplicaSnapshot> snapshot_checkpoint(const Store &store, uint32_t number);

// The links of a snapshot the backup lacks (have: its complete numbers).
std::vector<size_t> links_to_send(const ReplicaSnapshot &s, const std::set<uint32_t> &have);

struct ReplicaEvent {
	std::string name;
	std::vector<LogField> fields;
};

class Replicator {
public:
	// addr: ADDR:PORT of `amber backup`; job_dir: DIR (absolute);
	// conf: DIR/run.conf; outputs: the output files (stdout, stderr) the
	// backup keeps up to each checkpoint.
	Replicator(std::string addr, std::string job_dir, std::string conf,
		   std::vector<std::string> outputs);
	Replicator(const Replicator &) = delete;
	Replicator &operator=(const Replicator &) = delete;
	~Replicator();

	Result<void> start();
	// The newest checkpoint, replacing one not yet sent.
	void offer(ReplicaSnapshot s);
	// The job ended with status: tells the backup (so that it does not
	// take over), waiting at most timeout_s for the newest checkpoint and
	// the goodbye to go out; then stops the thread. Whether the backup got
	// the goodbye (and all the output before it).
	bool finish(int status, double timeout_s);
	// Readable when events are waiting for take_events().
	int fd() const { return wake_.get(); }
	std::vector<ReplicaEvent> take_events();
	// The newest checkpoint the backup acknowledged (0: none yet).
	uint32_t acked() const { return acked_.load(); }

private:
	void loop();
	void post(std::string name, std::vector<LogField> fields);
	// The thread is done (finish() waits for this).
	void stop_self();
	Result<void> connect_backup();
	void drop(const std::string &why);
	Result<void> send(FrameType t, ByteView payload);
	// Reads what the backup sent; frames other than heartbeats are
	// returned (ACK, NACK, STATE), at most one at a time.
	Result<std::optional<Frame>> poll_backup(double timeout_s);
	Result<Frame> await_frame(double timeout_s);
	Result<void> heartbeat_if_due();
	Result<void> send_link(const ReplicaLink &l, const ReplicaSnapshot &s, bool outputs);
	Result<void> send_outputs(const ReplicaSnapshot &s);
	Result<void> replicate(const std::shared_ptr<ReplicaSnapshot> &s);

	std::string addr_, job_dir_, conf_;
	std::vector<std::string> output_paths_;
	std::vector<UniqueFd> outputs_;	// read-only
	UniqueFd wake_;			// eventfd

	std::mutex mu_;
	std::condition_variable cv_;
	std::shared_ptr<ReplicaSnapshot> next_;	// guarded by mu_
	std::vector<ReplicaEvent> events_;	// guarded by mu_
	bool stop_ = false;			// guarded by mu_
	std::optional<int> bye_;		// guarded by mu_
	std::thread thread_;
	std::atomic<uint32_t> acked_{0};
	std::atomic<bool> bye_done_{false};

	// The sender thread's own.
	UniqueFd conn_;
	FrameReader reader_;
	std::set<uint32_t> have_;
	std::vector<uint64_t> backup_sizes_;
	double last_tx_ = 0, last_rx_ = 0, last_try_ = -1e9;
	uint64_t seq_ = 0;
	bool lost_logged_ = false;
};

} // namespace amber
