// SPDX-License-Identifier: GPL-2.0
// The pure parts of `amber run`: durations, Daly's interval, the automatic
// interval policy, how far output files are cut back, log lines, run.conf
// and run.state.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <csignal>

#include <fcntl.h>
#include <linux/amber.h>

#include "run/run.h"
#include "run/policy.h"
#include "common/names.h"

using namespace amber;

namespace {

// ---- parse_duration ---------------------------------------------------------

TEST(RunDuration, Valid)
{
	const std::pair<const char *, double> cases[] = {
		{"30s", 30},	{"2m", 120},	  {"1h", 3600},	 {"500ms", 0.5}, {"1.5s", 1.5},
		{"45", 45},	{"0.25", 0.25},	  {"1.5m", 90},	 {"10ms", 0.01}, {"2h", 7200},
		{"007s", 7},	{"1.", 1},	  {".5s", 0.5},
	};
	for (const auto &[text, want] : cases) {
		auto d = parse_duration(text);
		ASSERT_TRUE(d) << text << ": " << d.error().str();
		EXPECT_DOUBLE_EQ(want, *d) << text;
	}
}

TEST(RunDuration, Invalid)
{
	for (const char *text : {"", "s", "ms", ".", "abc", "1x", "-1s", "+1s", "0", "0s", "0.0ms",
				 "1.2.3s", "1 s", " 1s", "1s ", "1e3", "inf", "nan", "30S", "1d",
				 "1sec", "1m30s"}) {
		auto d = parse_duration(text);
		EXPECT_FALSE(d) << "'" << text << "' parsed as " << (d ? *d : 0);
		if (!d) {
			EXPECT_NE(std::string::npos, d.error().msg.find(text)) << d.error().msg;
		}
	}
}

// ---- daly_interval ----------------------------------------------------------

TEST(RunDaly, HandComputedValues)
{
	// C = 30, M = 60: C/2M = 1/4, sqrt(2CM) = 60,
	// 60 * (1 + 1/6 + 1/36) - 30 = 71.6666... - 30.
	EXPECT_NEAR(41.666666666666667, daly_interval(30, 60), 1e-9);
	// C = 1, M = 3600: sqrt(7200) = 84.852813742,
	// * (1 + sqrt(1/7200)/3 + 1/64800) = 85.187456533, - 1.
	EXPECT_NEAR(84.187456533, daly_interval(1, 3600), 1e-6);
	// C = 0.2, M = 20: sqrt(8) = 2.828427125, * (1 + 0.1/3 + 0.01/9) - 0.2.
	EXPECT_NEAR(2.696665140, daly_interval(0.2, 20), 1e-6);
}

TEST(RunDaly, MtbfWhenTheCostIsTwiceTheMtbf)
{
	EXPECT_DOUBLE_EQ(60, daly_interval(120, 60));
	EXPECT_DOUBLE_EQ(60, daly_interval(1000, 60));
	// Just below: the formula, which is close to M there.
	EXPECT_GT(daly_interval(119.999, 60), 0);
}

TEST(RunDaly, YoungsLimitForSmallCosts)
{
	// Daly / sqrt(2CM) -> 1 as C/M -> 0 (Young's first-order estimate).
	for (double c : {1e-3, 1e-2, 0.1}) {
		const double m = 1e6;
		const double young = std::sqrt(2 * c * m);
		EXPECT_NEAR(1.0, daly_interval(c, m) / young, 1e-3) << c;
		EXPECT_LT(daly_interval(c, m), young) << c;	// the - C term dominates
	}
}

TEST(RunDaly, NoCostOrNoMtbfIsZero)
{
	EXPECT_EQ(0, daly_interval(0, 60));
	EXPECT_EQ(0, daly_interval(-1, 60));
	EXPECT_EQ(0, daly_interval(1, 0));
}

// ---- --interval auto --------------------------------------------------------

TEST(RunAuto, FirstIntervalIsATenthOfTheMtbfWithinOneAndThirtySeconds)
{
	EXPECT_DOUBLE_EQ(2, AutoInterval(20).first());
	EXPECT_DOUBLE_EQ(30, AutoInterval(3600).first());
	EXPECT_DOUBLE_EQ(30, AutoInterval(300).first());
	EXPECT_DOUBLE_EQ(1, AutoInterval(5).first());
	EXPECT_DOUBLE_EQ(1, AutoInterval(0.5).first());
}

TEST(RunAuto, CostIsAnEwmaOfTheStoppedTime)
{
	AutoInterval a(3600);
	double t = a.next(1.0, 0.1);	// first measurement: C = 1
	EXPECT_DOUBLE_EQ(1.0, a.cost_s());
	EXPECT_NEAR(84.187456533, t, 1e-6);
	t = a.next(3.0, 0.1);		// 0.5 * 3 + 0.5 * 1
	EXPECT_DOUBLE_EQ(2.0, a.cost_s());
	EXPECT_DOUBLE_EQ(daly_interval(2.0, 3600), t);
	a.next(0.0, 0.1);		// 0.5 * 0 + 0.5 * 2
	EXPECT_DOUBLE_EQ(1.0, a.cost_s());
}

TEST(RunAuto, AtLeastOneSecond)
{
	AutoInterval a(20);
	// daly(0.002, 20) = about 0.28 s.
	EXPECT_DOUBLE_EQ(1.0, a.next(0.002, 0.05));
}

TEST(RunAuto, AtLeastTwiceTheLastTotalTime)
{
	AutoInterval a(20);
	// daly(0.014, 20) = about 0.74 s; the last checkpoint took 1.024 s.
	EXPECT_DOUBLE_EQ(2.048, a.next(0.014, 1.024));
	// The clamp follows the last total time only.
	const double cost = 0.5 * 0.5 + 0.5 * a.cost_s();
	EXPECT_DOUBLE_EQ(daly_interval(cost, 20), a.next(0.5, 0.1));
}

// ---- output files -----------------------------------------------------------

FdInfo reg(uint32_t num, const std::string &path, uint64_t size)
{
	FdInfo f;
	f.num = num;
	f.type = AMBER_FD_REG;
	f.flags = O_WRONLY | O_APPEND;
	f.path = path;
	f.size = size;
	return f;
}

TEST(RunOutput, RecordedSizeIsTheLargestOfTheFdsOnThatFile)
{
	FdInfo null;
	null.num = 0;
	null.type = AMBER_FD_CHR;
	null.path = "/dev/null";
	std::vector<FdInfo> fds = {null, reg(1, "/r/stdout", 100), reg(2, "/r/stderr", 7),
				   reg(5, "/r/stdout", 140), reg(6, "/r/stdout.old", 999)};
	EXPECT_EQ(140u, recorded_size(fds, "/r/stdout"));
	EXPECT_EQ(7u, recorded_size(fds, "/r/stderr"));
	EXPECT_EQ(std::nullopt, recorded_size(fds, "/r/other"));
	// Only regular files count.
	EXPECT_EQ(std::nullopt, recorded_size(fds, "/dev/null"));
	EXPECT_EQ(std::nullopt, recorded_size({}, "/r/stdout"));
}

TEST(RunOutput, CutsBackToTheRecordedSizes)
{
	std::vector<FdInfo> fds = {reg(1, "/r/stdout", 100), reg(2, "/r/stderr", 0)};
	std::vector<OutputSize> files = {{"/r/stdout", "/r/stdout", 180},
					 {"/r/stderr", "/r/stderr", 0},
					 {"/r/extra", "/r/extra", 55}};
	auto cuts = plan_output_cuts(4, fds, files);
	ASSERT_TRUE(cuts) << cuts.error().str();
	ASSERT_EQ(3u, cuts->size());
	EXPECT_EQ(100u, (*cuts)[0]);
	EXPECT_EQ(0u, (*cuts)[1]);
	EXPECT_EQ(std::nullopt, (*cuts)[2]);	// no fd of the checkpoint: left alone
}

TEST(RunOutput, MatchesByRealPath)
{
	std::vector<FdInfo> fds = {reg(1, "/real/dir/stdout", 10)};
	auto cuts = plan_output_cuts(1, fds, {{"/link/stdout", "/real/dir/stdout", 20}});
	ASSERT_TRUE(cuts);
	EXPECT_EQ(10u, (*cuts)[0]);
}

TEST(RunOutput, ShorterThanRecordedRefusesTheCheckpoint)
{
	std::vector<FdInfo> fds = {reg(1, "/r/stdout", 100), reg(2, "/r/stderr", 30)};
	auto cuts = plan_output_cuts(3, fds, {{"/r/stdout", "/r/stdout", 100},
					      {"/r/stderr", "/r/stderr", 12}});
	ASSERT_FALSE(cuts);
	const std::string &m = cuts.error().msg;
	EXPECT_NE(std::string::npos, m.find("checkpoint 3")) << m;
	EXPECT_NE(std::string::npos, m.find("/r/stderr")) << m;
	EXPECT_NE(std::string::npos, m.find("12 bytes")) << m;
	EXPECT_NE(std::string::npos, m.find("30 bytes")) << m;
}

TEST(RunOutput, TreeCutsUseEveryProcessesFds)
{
	// The root has stdout at 100, a worker (its stdout inherited) wrote on
	// to 140, another only has stderr; stderr.old is no output file.
	std::vector<std::vector<FdInfo>> procs = {
		{reg(1, "/r/stdout", 100), reg(2, "/r/stderr", 0)},
		{reg(1, "/r/stdout", 140), reg(2, "/r/stderr", 0), reg(4, "/r/stderr.old", 9)},
		{reg(2, "/r/stderr", 25)},
		{},	// a process with no fds at all
	};
	std::vector<OutputSize> files = {{"/r/stdout", "/r/stdout", 200},
					 {"/r/stderr", "/r/stderr", 25},
					 {"/r/log", "/r/log", 3}};
	auto cuts = plan_tree_output_cuts(7, procs, files);
	ASSERT_TRUE(cuts) << cuts.error().str();
	ASSERT_EQ(3u, cuts->size());
	EXPECT_EQ(140u, (*cuts)[0]);
	EXPECT_EQ(25u, (*cuts)[1]);
	EXPECT_EQ(std::nullopt, (*cuts)[2]);
	// Only the root's fds: the worker's output past 100 bytes would stay.
	auto root_only = plan_tree_output_cuts(7, {procs[0]}, files);
	ASSERT_TRUE(root_only);
	EXPECT_EQ(100u, (*root_only)[0]);
	// A file shorter than what any process recorded refuses the checkpoint.
	files[1].size = 20;
	auto bad = plan_tree_output_cuts(7, procs, files);
	ASSERT_FALSE(bad);
	EXPECT_NE(std::string::npos, bad.error().msg.find("25 bytes")) << bad.error().msg;
}

// ---- failed checkpoints -----------------------------------------------------

TEST(RunRetry, TransientFailuresAreRetriedSoonWithBackoff)
{
	EXPECT_EQ(std::optional<double>(0.01), checkpoint_retry_delay(EAGAIN, 0));
	EXPECT_EQ(std::optional<double>(0.02), checkpoint_retry_delay(EAGAIN, 1));
	EXPECT_EQ(std::optional<double>(0.64), checkpoint_retry_delay(EBUSY, 6));
	EXPECT_EQ(std::optional<double>(1.0), checkpoint_retry_delay(EINTR, 7));
	EXPECT_EQ(std::optional<double>(1.0), checkpoint_retry_delay(EAGAIN, kCheckpointQuickRetries - 1));
	// Too many in a row: it counts as failed.
	EXPECT_EQ(std::nullopt, checkpoint_retry_delay(EAGAIN, kCheckpointQuickRetries));
	// Other errors are not retried soon.
	for (int e : {0, ENOENT, EPERM, ESRCH, EOPNOTSUPP, ENOSPC, EINVAL})
		EXPECT_EQ(std::nullopt, checkpoint_retry_delay(e, 0)) << e;
}

// ---- log lines --------------------------------------------------------------

TEST(RunLog, QuotesAndEscapes)
{
	EXPECT_EQ("\"\"", quote_value(""));
	EXPECT_EQ("\"a b\"", quote_value("a b"));
	EXPECT_EQ("\"say \\\"hi\\\" \\\\o/\"", quote_value("say \"hi\" \\o/"));
	EXPECT_EQ("\"l1\\nl2\\tx\\r\"", quote_value("l1\nl2\tx\r"));
	EXPECT_EQ("\"\\x01\\x7f\\x00\"", quote_value(std::string("\x01\x7f\0", 3)));
	EXPECT_EQ("\"caf\xc3\xa9\"", quote_value("caf\xc3\xa9"));	// UTF-8 as is
}

TEST(RunLog, UnquoteInvertsQuoteForEveryByte)
{
	std::string all;
	for (int c = 0; c < 256; c++)
		all += char(c);
	auto back = unquote_value(quote_value(all));
	ASSERT_TRUE(back) << back.error().str();
	EXPECT_EQ(all, *back);
	for (const char *bad : {"", "\"", "x", "\"a", "a\"", "\"a\"b\"", "\"\\\"", "\"\\q\"",
				"\"\\x4\"", "\"\\xzz\""})
		EXPECT_FALSE(unquote_value(bad)) << bad;
}

TEST(RunLog, EventLines)
{
	EXPECT_EQ("checkpoint n=3 kind=incremental stopped_ms=1.250 total_ms=20.000 bytes=4096",
		  format_event("checkpoint", {field("n", 3), field("kind", "incremental"),
					      field("stopped_ms", format_ms(1.25)),
					      field("total_ms", format_ms(20)),
					      field("bytes", uint64_t(4096))}));
	EXPECT_EQ("checkpoint-failed error=\"pid 7: No such process\"",
		  format_event("checkpoint-failed", {quoted_field("error", "pid 7: No such process")}));
	EXPECT_EQ("give-up", format_event("give-up", {}));

	struct timespec ts = {1700000000, 123456789};
	EXPECT_EQ("2023-11-14T22:13:20.123Z", iso8601_utc_ms(ts));
	EXPECT_EQ("1970-01-01T00:00:00.000Z", iso8601_utc_ms({0, 999999}));
	EXPECT_EQ("2023-11-14T22:13:20.123Z died pid=42 signal=SIGKILL\n",
		  format_log_line(ts, "died", {field("pid", 42), field("signal", "SIGKILL")}));
}

TEST(RunLog, ArgvAsAShellWouldReadIt)
{
	EXPECT_EQ("build/workloads/compute --mib 64 --marker=/tmp/m.1",
		  shell_join({"build/workloads/compute", "--mib", "64", "--marker=/tmp/m.1"}));
	EXPECT_EQ("sh -c 'exit 3' '' 'it'\\''s'", shell_join({"sh", "-c", "exit 3", "", "it's"}));
	EXPECT_EQ("argv=\"sh -c 'echo \\\"x\\\"'\"",
		  format_event("", {quoted_field("argv", shell_join({"sh", "-c", "echo \"x\""}))})
			  .substr(1));
}

TEST(RunLog, SignalNames)
{
	EXPECT_EQ("SIGKILL", signal_name(SIGKILL));
	EXPECT_EQ("SIGSEGV", signal_name(SIGSEGV));
	EXPECT_EQ("SIGTERM", signal_name(SIGTERM));
	EXPECT_EQ("SIGRTMIN", signal_name(SIGRTMIN));
	EXPECT_EQ("SIGRTMIN+3", signal_name(SIGRTMIN + 3));
	EXPECT_EQ("signal 0", signal_name(0));
	EXPECT_EQ("signal 200", signal_name(200));
}

// ---- run.conf and run.state -------------------------------------------------

TEST(RunConfFile, RoundTrip)
{
	RunConf c;
	c.argv = {"build/workloads/compute", "--mib", "64", "", "two words", "q\"uote\\",
		  "line\nbreak", "caf\xc3\xa9", "a=b"};
	c.cwd = "/work/main dir";
	c.stdout_path = "/tmp/r/stdout";
	c.stderr_path = "/tmp/r/err \"file\"";
	c.stdout_base = 123;
	c.stderr_base = 18446744073709551615ull;
	c.interval_s = 0.1;
	c.mtbf_s = 3600.5;
	c.keep = 3;
	c.max_restarts = 0;
	auto back = parse_run_conf(format_run_conf(c));
	ASSERT_TRUE(back) << back.error().str() << "\n" << format_run_conf(c);
	EXPECT_EQ(c.argv, back->argv);
	EXPECT_EQ(c.cwd, back->cwd);
	EXPECT_EQ(c.stdout_path, back->stdout_path);
	EXPECT_EQ(c.stderr_path, back->stderr_path);
	EXPECT_EQ(c.stdout_base, back->stdout_base);
	EXPECT_EQ(c.stderr_base, back->stderr_base);
	EXPECT_EQ(c.interval_s, back->interval_s);	// exact: %.17g
	EXPECT_EQ(c.mtbf_s, back->mtbf_s);
	EXPECT_EQ(c.keep, back->keep);
	EXPECT_EQ(c.max_restarts, back->max_restarts);

	c.interval_s.reset();	// auto
	back = parse_run_conf(format_run_conf(c));
	ASSERT_TRUE(back) << back.error().str();
	EXPECT_FALSE(back->interval_s);
	EXPECT_EQ(3600.5, back->mtbf_s);
	EXPECT_EQ("", back->commit_stdout);

	c.commit_stdout = "/shared/out \"1\"";
	c.commit_stderr = "/shared/err";
	c.commit_stdout_base = 7;
	c.commit_stderr_base = 9;
	back = parse_run_conf(format_run_conf(c));
	ASSERT_TRUE(back) << back.error().str();
	EXPECT_EQ(c.commit_stdout, back->commit_stdout);
	EXPECT_EQ(c.commit_stderr, back->commit_stderr);
	EXPECT_EQ(7u, back->commit_stdout_base);
	EXPECT_EQ(9u, back->commit_stderr_base);
}

TEST(RunConfFile, RejectsWhatItCannotUse)
{
	RunConf c;
	c.argv = {"prog"};
	c.cwd = "/";
	c.stdout_path = "/o";
	c.stderr_path = "/e";
	c.interval_s = 30;
	const std::string good = format_run_conf(c);
	ASSERT_TRUE(parse_run_conf(good));

	auto expect_error = [](const std::string &text, const std::string &part) {
		auto r = parse_run_conf(text);
		ASSERT_FALSE(r) << text;
		EXPECT_NE(std::string::npos, r.error().msg.find(part)) << r.error().msg;
	};
	expect_error(good + "colour=blue\n", "unknown key 'colour'");
	expect_error(good + "garbage\n", "not key=value");
	expect_error(good + "keep=two\n", "keep: not a number");
	expect_error(good + "keep=0\n", "keep must be at least 1");
	expect_error(good + "max_restarts=-1\n", "not a number");
	expect_error(good + "interval=-5\n", "interval");
	expect_error(good + "interval=auto\n", "needs mtbf");
	expect_error(good + "arg=\"unterminated\n", "arg");
	expect_error(good + "commit_stdout=\"/o2\"\n", "go together");
	expect_error("version=2\n", "version 2");
	std::string no_args = good;
	no_args.erase(no_args.find("arg="), no_args.find('\n', no_args.find("arg=")) -
						     no_args.find("arg=") + 1);
	expect_error(no_args, "no arg=");
	std::string no_version = good.substr(good.find("arg="));
	expect_error(no_version, "no version=");
	// Line numbers are named.
	expect_error(good + "x\n", "line " + std::to_string(std::count(good.begin(), good.end(),
								      '\n') + 1));
}

TEST(RunStateFile, RoundTrip)
{
	RunState s;
	s.pid = 4194303;
	s.start_ticks = 1234567;
	s.boot_id = "d1a0400b-d245-4068-9341-770be9286957";
	auto back = parse_run_state(format_run_state(s));
	ASSERT_TRUE(back) << back.error().str();
	EXPECT_EQ(s.pid, back->pid);
	EXPECT_EQ(s.start_ticks, back->start_ticks);
	EXPECT_EQ(s.boot_id, back->boot_id);
	EXPECT_EQ("", back->ended);

	s.ended = "signal SIGTERM";
	back = parse_run_state(format_run_state(s));
	ASSERT_TRUE(back);
	EXPECT_EQ("signal SIGTERM", back->ended);
	EXPECT_FALSE(parse_run_state("pid=abc\n"));
	EXPECT_FALSE(parse_run_state("what=1\n"));
}

} // namespace
