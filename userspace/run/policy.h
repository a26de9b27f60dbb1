// SPDX-License-Identifier: GPL-2.0
// The pure parts of `amber run` (run.cc): the log line format, run.conf and
// the state file, how far output files are cut back on restore, and the
// automatic interval. No I/O here, so the unit tests exercise all of it.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "image/image.h"
#include "common/result.h"
#include "run/run.h"

namespace amber {

// ---- DIR/run.log ------------------------------------------------------

// A string as a log or run.conf value: in double quotes, with \\, \",
// \n, \r, \t and \xHH (other control bytes) escaped. Other bytes as they are.
std::string quote_value(std::string_view s);
// The inverse of quote_value(); the whole of s must be one quoted value.
Result<std::string> unquote_value(std::string_view s);

struct LogField {
	std::string key;
	std::string value;
	bool quoted = false;	// strings: quote_value(value)
};

LogField field(std::string key, std::string value);	// unquoted (numbers, names)
LogField field(std::string key, uint64_t value);
LogField quoted_field(std::string key, std::string value);

// "event k=v k2="v 2"" (no time stamp, no newline).
std::string format_event(std::string_view event, const std::vector<LogField> &fields);
// "2026-11-23T22:40:00.123Z" (UTC, milliseconds) of a CLOCK_REALTIME time.
std::string iso8601_utc_ms(const struct timespec &ts);
// One line of run.log: time stamp, a space, the event, a newline.
std::string format_log_line(const struct timespec &ts, std::string_view event,
			    const std::vector<LogField> &fields);

// argv as a shell would take it back: words of safe characters as they
// are, anything else in single quotes ('' for an empty word).
std::string shell_join(const std::vector<std::string> &argv);
// "%.3f" of milliseconds, for stopped_ms=, total_ms=, ms=.
std::string format_ms(double ms);

// ---- DIR/run.conf -----------------------------------------------------

// What --resume needs to run the program again, written at the first start.
struct RunConf {
	std::vector<std::string> argv;
	std::string cwd;			// CMD's working directory
	std::string stdout_path;		// absolute
	std::string stderr_path;		// absolute
	uint64_t stdout_base = 0;		// size before the first start:
	uint64_t stderr_base = 0;		// a fresh start cuts back to it
	// --output-commit: the user's files; stdout_path and stderr_path are
	// then the staging files the program writes (DIR/stdout.uncommitted,
	// DIR/stderr.uncommitted), copied to these once covered by an
	// acknowledged checkpoint. "": no commit.
	std::string commit_stdout;
	std::string commit_stderr;
	uint64_t commit_stdout_base = 0;	// their sizes at the first start
	uint64_t commit_stderr_base = 0;
	std::optional<double> interval_s;	// nullopt: auto
	double mtbf_s = 0;
	uint32_t keep = 2;
	uint32_t max_restarts = 10;
};

// "key=value" lines (strings quoted, one arg= line per argument, in order).
std::string format_run_conf(const RunConf &c);
// Errors name the line: "line 3: unknown key 'x'".
Result<RunConf> parse_run_conf(std::string_view text);

// ---- DIR/run.state ----------------------------------------------------

// Which process DIR/pid names, so that --resume recognizes it, and whether
// the run is over.
struct RunState {
	uint32_t pid = 0;
	uint64_t start_ticks = 0;	// /proc/PID/stat field 22
	std::string boot_id;		// /proc/sys/kernel/random/boot_id
	std::string ended;		// "" while not over, "exit S" once the program exited
};

std::string format_run_state(const RunState &s);
Result<RunState> parse_run_state(std::string_view text);

// ---- output files -----------------------------------------------------

// The size checkpoint `number` recorded for the file whose real path is
// `real_path`: the largest size of the regular-file fds with that path;
// nullopt when no fd of the checkpoint refers to it.
std::optional<uint64_t> recorded_size(const std::vector<FdInfo> &fds, const std::string &real_path);

// One output file that amber run manages.
struct OutputSize {
	std::string path;	// as shown in messages
	std::string real_path;	// what the checkpoint's fds are matched with
	uint64_t size = 0;	// now
};

// Sizes to cut each output file back to before restoring checkpoint
// `number` (nullopt: leave it). An output file shorter than recorded makes
// the checkpoint unusable: "checkpoint 3: /r/stdout is 10 bytes, shorter
// than the 20 bytes the checkpoint recorded".
Result<std::vector<std::optional<uint64_t>>> plan_output_cuts(
	uint32_t number, const std::vector<FdInfo> &fds, const std::vector<OutputSize> &files);

// ---- failed checkpoints -----------------------------------------------

// A checkpoint refused for a passing reason (EAGAIN: a member of the tree
// exec'd or was in vfork, or the tree kept changing; EBUSY; EINTR) is tried
// again soon: after 10 ms, doubling, at most 1 s, kCheckpointQuickRetries
// times in a row. The delay in seconds before the next attempt after
// `retries` such retries in a row; nullopt: the failure counts (logged
// checkpoint-failed, next attempt at the interval).
inline constexpr uint32_t kCheckpointQuickRetries = 12;
std::optional<double> checkpoint_retry_delay(int err, uint32_t retries);

// The same for a tree checkpoint: the fds of every process image (root
// first). A file's recorded size is the largest any process's fd recorded:
// all of them saw the file at the same instant (one consistent cut), so
// they agree unless one wrote past the others' view, which is the size.
Result<std::vector<std::optional<uint64_t>>> plan_tree_output_cuts(
	uint32_t number, const std::vector<std::vector<FdInfo>> &process_fds,
	const std::vector<OutputSize> &files);

// ---- --interval auto --------------------------------------------------

// C is the checkpoint's cost to the program: an EWMA (alpha 0.5) of the
// stopped time the kernel reports. The interval is daly_interval(C, MTBF),
// at least kMinInterval and at least twice the last checkpoint's total time
// (so the supervisor is not checkpointing all the time). Before any
// measurement: min(MTBF / 10, 30 s), at least kMinInterval.
class AutoInterval {
public:
	static constexpr double kMinInterval = 1.0;
	static constexpr double kAlpha = 0.5;
	static constexpr double kFirstCap = 30.0;

	explicit AutoInterval(double mtbf_s) : mtbf_s_(mtbf_s) {}

	double first() const;
	// After a checkpoint (seconds): the next interval.
	double next(double stopped_s, double total_s);
	double cost_s() const { return cost_s_; }
	double mtbf_s() const { return mtbf_s_; }

private:
	double mtbf_s_;
	double cost_s_ = 0;
	bool measured_ = false;
};

} // namespace amber
