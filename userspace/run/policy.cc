// SPDX-License-Identifier: GPL-2.0
// The pure parts of `amber run` (run/policy.h) and parse_duration(),
// daly_interval() (run.h).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>

#include <linux/amber.h>

#include <fmt/format.h>

#include "run/policy.h"

namespace amber {

// ---- durations and Daly -------------------------------------------------

Result<double> parse_duration(std::string_view s)
{
	auto bad = [&] {
		return fail(0, "invalid duration '" + std::string(s) +
				       "' (examples: 30s, 2m, 1h, 500ms, 1.5s, 45)");
	};
	size_t i = 0, digits = 0;
	bool dot = false;
	for (; i < s.size(); i++) {
		if (s[i] >= '0' && s[i] <= '9')
			digits++;
		else if (s[i] == '.' && !dot)
			dot = true;
		else
			break;
	}
	if (!digits)
		return bad();
	std::string num(s.substr(0, i));
	std::string_view unit = s.substr(i);
	double mult;
	if (unit.empty() || unit == "s")
		mult = 1;
	else if (unit == "ms")
		mult = 1e-3;
	else if (unit == "m")
		mult = 60;
	else if (unit == "h")
		mult = 3600;
	else
		return bad();
	char *end = nullptr;
	double v = strtod(num.c_str(), &end);
	if (end != num.c_str() + num.size() || !std::isfinite(v))
		return bad();
	v *= mult;
	if (!(v > 0) || !std::isfinite(v))
		return fail(0, "invalid duration '" + std::string(s) + "': must be more than 0");
	return v;
}

double daly_interval(double c_s, double mtbf_s)
{
	if (!(c_s > 0) || !(mtbf_s > 0))
		return 0;
	if (c_s >= 2 * mtbf_s)
		return mtbf_s;
	// J. T. Daly, "A higher order estimate of the optimum checkpoint
	// interval for restart dumps", FGCS 22 (2006), eq. 37.
	const double r = c_s / (2 * mtbf_s);
	return std::sqrt(2 * c_s * mtbf_s) * (1 + std::sqrt(r) / 3 + r / 9) - c_s;
}

// ---- log lines ------------------------------------------------------------

std::string quote_value(std::string_view s)
{
	std::string out = "\"";
	for (unsigned char ch : s) {
		switch (ch) {
		case '\\': out += "\\\\"; break;
		case '"': out += "\\\""; break;
		case '\n': out += "\\n"; break;
		case '\r': out += "\\r"; break;
		case '\t': out += "\\t"; break;
		default:
			if (ch < 0x20 || ch == 0x7f) {
				out += fmt::format("\\x{:02x}", ch);
			} else {
				out += char(ch);
			}
		}
	}
	return out + "\"";
}

Result<std::string> unquote_value(std::string_view s)
{
	if (s.size() < 2 || s.front() != '"' || s.back() != '"')
		return fail(0, "not a quoted string");
	std::string out;
	for (size_t i = 1; i + 1 < s.size(); i++) {
		char ch = s[i];
		if (ch == '"')
			return fail(0, "unescaped '\"' inside a quoted string");
		if (ch != '\\') {
			out += ch;
			continue;
		}
		if (++i + 1 >= s.size())
			return fail(0, "quoted string ends with '\\'");
		switch (s[i]) {
		case '\\': out += '\\'; break;
		case '"': out += '"'; break;
		case 'n': out += '\n'; break;
		case 'r': out += '\r'; break;
		case 't': out += '\t'; break;
		case 'x': {
			unsigned v = 0;
			if (i + 3 >= s.size())
				return fail(0, "short \\x escape");
			auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
			if (r.ec != std::errc() || r.ptr != s.data() + i + 3)
				return fail(0, "bad \\x escape");
			out += char(v);
			i += 2;
			break;
		}
		default:
			return fail(0, std::string("unknown escape '\\") + s[i] + "'");
		}
	}
	return out;
}

LogField field(std::string key, std::string value)
{
	return LogField{std::move(key), std::move(value), false};
}

LogField field(std::string key, uint64_t value)
{
	return LogField{std::move(key), std::to_string(value), false};
}

LogField quoted_field(std::string key, std::string value)
{
	return LogField{std::move(key), std::move(value), true};
}

std::string format_event(std::string_view event, const std::vector<LogField> &fields)
{
	std::string s(event);
	for (const LogField &f : fields)
		s += " " + f.key + "=" + (f.quoted ? quote_value(f.value) : f.value);
	return s;
}

std::string iso8601_utc_ms(const struct timespec &ts)
{
	struct tm tm;
	time_t t = ts.tv_sec;
	gmtime_r(&t, &tm);
	return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
			   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			   long(ts.tv_nsec / 1000000));
}

std::string format_log_line(const struct timespec &ts, std::string_view event,
			    const std::vector<LogField> &fields)
{
	return iso8601_utc_ms(ts) + " " + format_event(event, fields) + "\n";
}

std::string shell_join(const std::vector<std::string> &argv)
{
	auto safe = [](char c) {
		return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		       strchr("_@%+=:,./-", c);
	};
	std::string out;
	for (const std::string &a : argv) {
		if (!out.empty())
			out += ' ';
		if (!a.empty() && std::all_of(a.begin(), a.end(), safe)) {
			out += a;
			continue;
		}
		out += '\'';
		for (char c : a)
			out += c == '\'' ? std::string("'\\''") : std::string(1, c);
		out += '\'';
	}
	return out;
}

std::string format_ms(double ms)
{
	return fmt::format("{:.3f}", ms);
}

// ---- run.conf and run.state -----------------------------------------------

namespace {

std::string num(double v)
{
	return fmt::format("{:.17g}", v);
}

// key=value lines; values may be quoted. Calls f(line_no, key, value)
// with the value unquoted.
template <typename F>
Result<void> parse_lines(std::string_view text, F f)
{
	size_t line_no = 0;
	while (!text.empty()) {
		size_t nl = text.find('\n');
		std::string_view line = text.substr(0, nl);
		text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
		line_no++;
		if (line.empty() || line[0] == '#')
			continue;
		const std::string where = "line " + std::to_string(line_no) + ": ";
		size_t eq = line.find('=');
		if (eq == std::string_view::npos || eq == 0)
			return fail(0, where + "not key=value");
		std::string key(line.substr(0, eq));
		std::string_view raw = line.substr(eq + 1);
		std::string value;
		if (!raw.empty() && raw[0] == '"') {
			auto v = unquote_value(raw);
			if (!v)
				return wrap(v.error(), where + key + ": ");
			value = std::move(*v);
		} else {
			value = raw;
		}
		if (auto r = f(key, value); !r)
			return wrap(r.error(), where);
	}
	return {};
}

template <typename T>
Result<T> parse_uint(const std::string &key, const std::string &v)
{
	T out{};
	auto r = std::from_chars(v.data(), v.data() + v.size(), out, 10);
	if (v.empty() || r.ec != std::errc() || r.ptr != v.data() + v.size())
		return fail(0, key + ": not a number: '" + v + "'");
	return out;
}

Result<double> parse_seconds(const std::string &key, const std::string &v)
{
	char *end = nullptr;
	double d = strtod(v.c_str(), &end);
	if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(d) || d < 0)
		return fail(0, key + ": not a number of seconds: '" + v + "'");
	return d;
}

constexpr const char *kConfVersion = "1";

} // namespace

std::string format_run_conf(const RunConf &c)
{
	std::string s = "# amber run: written at the first start, read by amber run --resume\n";
	s += std::string("version=") + kConfVersion + "\n";
	for (const std::string &a : c.argv)
		s += "arg=" + quote_value(a) + "\n";
	s += "cwd=" + quote_value(c.cwd) + "\n";
	s += "stdout=" + quote_value(c.stdout_path) + "\n";
	s += "stdout_base=" + std::to_string(c.stdout_base) + "\n";
	s += "stderr=" + quote_value(c.stderr_path) + "\n";
	s += "stderr_base=" + std::to_string(c.stderr_base) + "\n";
	if (!c.commit_stdout.empty())
		s += "commit_stdout=" + quote_value(c.commit_stdout) + "\n";
	if (!c.commit_stderr.empty())
		s += "commit_stderr=" + quote_value(c.commit_stderr) + "\n";
	if (!c.commit_stdout.empty()) {
		s += "commit_stdout_base=" + std::to_string(c.commit_stdout_base) + "\n";
		s += "commit_stderr_base=" + std::to_string(c.commit_stderr_base) + "\n";
	}
	s += "interval=" + (c.interval_s ? num(*c.interval_s) : std::string("auto")) + "\n";
	s += "mtbf=" + num(c.mtbf_s) + "\n";
	s += "keep=" + std::to_string(c.keep) + "\n";
	s += "max_restarts=" + std::to_string(c.max_restarts) + "\n";
	return s;
}

Result<RunConf> parse_run_conf(std::string_view text)
{
	RunConf c;
	bool version = false;
	AMBER_TRY(parse_lines(text, [&](const std::string &k, const std::string &v) -> Result<void> {
		if (k == "version") {
			if (v != kConfVersion)
				return fail(0, "version " + v + " (this amber reads " +
							    kConfVersion + ")");
			version = true;
		} else if (k == "arg") {
			c.argv.push_back(v);
		} else if (k == "cwd") {
			c.cwd = v;
		} else if (k == "stdout") {
			c.stdout_path = v;
		} else if (k == "stderr") {
			c.stderr_path = v;
		} else if (k == "commit_stdout") {
			c.commit_stdout = v;
		} else if (k == "commit_stderr") {
			c.commit_stderr = v;
		} else if (k == "commit_stdout_base") {
			c.commit_stdout_base = AMBER_TRY(parse_uint<uint64_t>(k, v));
		} else if (k == "commit_stderr_base") {
			c.commit_stderr_base = AMBER_TRY(parse_uint<uint64_t>(k, v));
		} else if (k == "stdout_base") {
			c.stdout_base = AMBER_TRY(parse_uint<uint64_t>(k, v));
		} else if (k == "stderr_base") {
			c.stderr_base = AMBER_TRY(parse_uint<uint64_t>(k, v));
		} else if (k == "interval") {
			if (v == "auto")
				c.interval_s.reset();
			else
				c.interval_s = AMBER_TRY(parse_seconds(k, v));
		} else if (k == "mtbf") {
			c.mtbf_s = AMBER_TRY(parse_seconds(k, v));
		} else if (k == "keep") {
			c.keep = AMBER_TRY(parse_uint<uint32_t>(k, v));
		} else if (k == "max_restarts") {
			c.max_restarts = AMBER_TRY(parse_uint<uint32_t>(k, v));
		} else {
			return fail(0, "unknown key '" + k + "'");
		}
		return {};
	}));
	if (!version)
		return fail(0, "no version= line");
	if (c.argv.empty())
		return fail(0, "no arg= line (the command)");
	if (c.cwd.empty() || c.stdout_path.empty() || c.stderr_path.empty())
		return fail(0, "cwd=, stdout= and stderr= are required");
	if (c.commit_stdout.empty() != c.commit_stderr.empty())
		return fail(0, "commit_stdout= and commit_stderr= go together");
	if (c.interval_s && !(*c.interval_s > 0))
		return fail(0, "interval must be more than 0");
	if (!c.interval_s && !(c.mtbf_s > 0))
		return fail(0, "interval=auto needs mtbf > 0");
	if (!c.keep)
		return fail(0, "keep must be at least 1");
	return c;
}

std::string format_run_state(const RunState &s)
{
	std::string out = "pid=" + std::to_string(s.pid) + "\n";
	out += "start_ticks=" + std::to_string(s.start_ticks) + "\n";
	out += "boot_id=" + quote_value(s.boot_id) + "\n";
	if (!s.ended.empty())
		out += "ended=" + quote_value(s.ended) + "\n";
	return out;
}

Result<RunState> parse_run_state(std::string_view text)
{
	RunState s;
	AMBER_TRY(parse_lines(text, [&](const std::string &k, const std::string &v) -> Result<void> {
		if (k == "pid")
			s.pid = AMBER_TRY(parse_uint<uint32_t>(k, v));
		else if (k == "start_ticks")
			s.start_ticks = AMBER_TRY(parse_uint<uint64_t>(k, v));
		else if (k == "boot_id")
			s.boot_id = v;
		else if (k == "ended")
			s.ended = v;
		else
			return fail(0, "unknown key '" + k + "'");
		return {};
	}));
	return s;
}

// ---- output files -----------------------------------------------------------

std::optional<uint64_t> recorded_size(const std::vector<FdInfo> &fds, const std::string &real_path)
{
	std::optional<uint64_t> size;
	for (const FdInfo &f : fds)
		if (f.type == AMBER_FD_REG && f.path == real_path)
			size = std::max(size.value_or(0), f.size);
	return size;
}

Result<std::vector<std::optional<uint64_t>>> plan_output_cuts(
	uint32_t number, const std::vector<FdInfo> &fds, const std::vector<OutputSize> &files)
{
	std::vector<std::optional<uint64_t>> cuts;
	for (const OutputSize &f : files) {
		auto rec = recorded_size(fds, f.real_path);
		if (rec && f.size < *rec)
			return fail(0, "checkpoint " + std::to_string(number) + ": " + f.path +
					       " is " + std::to_string(f.size) +
					       " bytes, shorter than the " + std::to_string(*rec) +
					       " bytes the checkpoint recorded");
		cuts.push_back(rec);
	}
	return cuts;
}

// ---- --interval auto --------------------------------------------------------

double AutoInterval::first() const
{
	return std::max(kMinInterval, std::min(mtbf_s_ / 10, kFirstCap));
}

double AutoInterval::next(double stopped_s, double total_s)
{
	cost_s_ = measured_ ? kAlpha * stopped_s + (1 - kAlpha) * cost_s_ : stopped_s;
	measured_ = true;
	return std::max({daly_interval(cost_s_, mtbf_s_), kMinInterval, 2 * total_s});
}

std::optional<double> checkpoint_retry_delay(int err, uint32_t retries)
{
	if ((err != EAGAIN && err != EBUSY && err != EINTR) || retries >= kCheckpointQuickRetries)
		return std::nullopt;
	return std::min(0.01 * double(uint64_t(1) << std::min(retries, 20u)), 1.0);
}

Result<std::vector<std::optional<uint64_t>>> plan_tree_output_cuts(
	uint32_t number, const std::vector<std::vector<FdInfo>> &process_fds,
	const std::vector<OutputSize> &files)
{
	std::vector<FdInfo> all;
	for (const auto &fds : process_fds)
		all.insert(all.end(), fds.begin(), fds.end());
	return plan_output_cuts(number, all, files);
}

} // namespace amber
