// SPDX-License-Identifier: GPL-2.0
// amber bench overhead [--intervals 1s,2s,5s,10s,30s] [--csv] [--plot FILE.png]
//                      [--compare-criu] [--work-dir DIR] [--keep K] -- CMD ARGS...
//
// What periodic checkpoints cost a program: CMD runs once with no
// checkpoints, once per interval under `amber run` (run_supervised(), never
// restarting it) and, with --compare-criu, once per interval under
// `criu dump --leave-running --track-mem`; then a second baseline run. Each
// run's wall time is taken from fork to the program's exit. Every run has a
// fresh directory under the work directory, deleted after the run (kept when
// the bench fails, for its logs). Progress goes to stderr; stdout gets the
// table, or with --csv the CSV alone.
#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "bench/bench.h"
#include "common/io.h"
#include "cli/commands.h"
#include "run/run.h"

namespace amber {

namespace {

namespace fs = std::filesystem;

struct BenchOptions {
	std::string intervals = "1s,2s,5s,10s,30s";
	bool csv = false;
	std::string plot;		// PNG path, "" for none
	bool compare_criu = false;
	std::string work_dir;		// "": $TMPDIR or /tmp
	uint32_t keep = 2;
	std::vector<std::string> argv;
};

void note(const std::string &s)
{
	fprintf(stderr, "amber bench: %s\n", s.c_str());
}

std::string describe_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return "exited with status " + std::to_string(WEXITSTATUS(wstatus));
	if (WIFSIGNALED(wstatus)) {
		const int sig = WTERMSIG(wstatus);
		const char *abbrev = sig > 0 && sig < SIGRTMIN ? sigabbrev_np(sig) : nullptr;
		return "was killed by " +
		       (abbrev ? "SIG" + std::string(abbrev) : "signal " + std::to_string(sig));
	}
	return "ended with wait status " + std::to_string(wstatus);
}

// A child process and a pidfd that becomes readable when it has exited.
struct Child {
	pid_t pid = -1;
	UniqueFd pidfd;
	double start_s = 0;	// just before fork()
};

struct Spawn {
	std::vector<std::string> argv;
	std::string stdout_path;	// "": our stderr
	std::string stderr_path;	// "": our stderr
	bool append = false;		// O_APPEND instead of O_TRUNC
	bool new_session = false;	// setsid(): CRIU dumps session leaders only
};

// In the child: open path onto fd, or dup our stderr when path is "".
bool redirect(const std::string &path, int fd, bool append)
{
	int f = path.empty()
			? dup(STDERR_FILENO)
			: open(path.c_str(),
			       O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
	if (f < 0 || dup2(f, fd) < 0)
		return false;
	if (f != fd)
		close(f);
	return true;
}

// In the child: sends errno and what failed through the pipe, exits 127.
[[noreturn]] void child_fail(int fd, const char *step)
{
	char msg[sizeof(int) + 256] = {};
	const int e = errno;
	memcpy(msg, &e, sizeof(e));
	const size_t n = std::min(strlen(step), sizeof(msg) - sizeof(e) - 1);
	memcpy(msg + sizeof(e), step, n);
	(void)!write(fd, msg, sizeof(e) + n);	// one write: one read gets it all
	_exit(127);
}

// Starts s.argv with stdin /dev/null and only fds 0-2 (as amber run does).
// An exec failure comes back as an error through a close-on-exec pipe.
Result<Child> spawn(const Spawn &s)
{
	auto [rd, wr] = AMBER_TRY(make_pipe());
	std::vector<char *> args;
	for (const std::string &a : s.argv)
		args.push_back(const_cast<char *>(a.c_str()));
	args.push_back(nullptr);

	Child c;
	const pid_t parent = getpid();
	c.start_s = now_s();
	c.pid = fork();
	if (c.pid < 0)
		return fail_errno("fork");
	if (c.pid == 0) {
		const int w = wr.get();
		if (s.new_session && setsid() < 0)
			child_fail(w, "setsid");
		// Nothing is left running if the bench dies.
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			child_fail(w, "prctl(PR_SET_PDEATHSIG)");
		if (getppid() != parent)
			_exit(127);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, STDIN_FILENO) < 0)
			child_fail(w, "/dev/null");
		if (!redirect(s.stdout_path, STDOUT_FILENO, s.append))
			child_fail(w, s.stdout_path.c_str());
		if (!redirect(s.stderr_path, STDERR_FILENO, s.append))
			child_fail(w, s.stderr_path.c_str());
		if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
			child_fail(w, "close_range");
		execvp(args[0], args.data());
		child_fail(w, args[0]);
	}
	wr.reset();
	char buf[512] = {};
	ssize_t n;
	do
		n = read(rd.get(), buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	if (n >= ssize_t(sizeof(int))) {
		int e;
		memcpy(&e, buf, sizeof(e));
		waitpid(c.pid, nullptr, 0);
		const std::string step(buf + sizeof(int));
		return fail(e, "cannot start " + s.argv[0] + (step == s.argv[0] ? "" : ": " + step));
	}
	c.pidfd.reset(pidfd_open(c.pid));
	if (!c.pidfd) {
		Error e{errno, "pidfd_open " + std::to_string(c.pid)};
		kill(c.pid, SIGKILL);
		waitpid(c.pid, nullptr, 0);
		return tl::unexpected(e);
	}
	return c;
}

// Waits up to timeout_s (< 0: forever) for c to exit; true if it has.
bool wait_exit(const Child &c, double timeout_s)
{
	for (;;) {
		struct pollfd pfd = {c.pidfd.get(), POLLIN, 0};
		const double t0 = now_s();
		int ms = timeout_s < 0 ? -1 : int(std::ceil(timeout_s * 1000));
		int r = poll(&pfd, 1, ms);
		if (r > 0)
			return true;
		if (r == 0)
			return false;
		if (errno != EINTR)
			return false;
		if (timeout_s >= 0)
			timeout_s = std::max(0.0, timeout_s - (now_s() - t0));
	}
}

int reap(const Child &c)
{
	int st = 0;
	while (waitpid(c.pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

Result<void> make_dir(const std::string &d)
{
	if (mkdir(d.c_str(), 0700) < 0)
		return fail_errno("cannot create " + d);
	return {};
}

void remove_dir(const std::string &d)
{
	std::error_code ec;
	fs::remove_all(d, ec);
	if (ec)
		note("cannot remove " + d + ": " + ec.message());
}

std::string cmd_line(const std::vector<std::string> &argv)
{
	std::string s;
	for (const std::string &a : argv)
		s += (s.empty() ? "" : " ") + a;
	return s;
}

std::string run_name(const char *tool, double interval_s)
{
	return std::string(tool) + " every " + format_seconds(interval_s) + " s";
}

// The program's end as the bench sees it: an error unless it exited 0.
Result<void> check_status(const std::string &run, const std::vector<std::string> &argv,
			  int wstatus, const std::string &dir)
{
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
		return {};
	return fail(0, run + ": " + argv[0] + " " + describe_status(wstatus) + " (output in " +
			       dir + ")");
}

Result<double> run_baseline(const BenchOptions &o, const std::string &dir, const std::string &run)
{
	AMBER_TRY(make_dir(dir));
	Child c = AMBER_TRY(spawn({o.argv, dir + "/stdout", dir + "/stderr", false, false}));
	wait_exit(c, -1);
	const double wall = now_s() - c.start_s;
	AMBER_TRY(check_status(run, o.argv, reap(c), dir));
	return wall;
}

std::string fmt_rate(double bytes_per_s)
{
	return fmt::format("{:.2f} MiB/s", bytes_per_s / 1048576.0);
}

std::string summary(const BenchRow &r, double baseline_s)
{
	std::string s = fmt::format("{:.3f} s ({:+.2f} % on baseline run 1), {} checkpoints, {} failed",
					r.wall_s, overhead_pct(r.wall_s, baseline_s),
					r.stopped_ms.size(), r.failed);
	if (auto m = mean_max(r.stopped_ms))
		s += fmt::format(", stopped mean {:.1f} ms, max {:.1f} ms", m->mean, m->max);
	return s + fmt::format(", {:.1f} MiB written", r.bytes / 1048576.0);
}

Result<BenchRow> run_amber(const BenchOptions &o, const std::string &dir, double interval_s,
			   double baseline_s)
{
	const std::string run = run_name("amber", interval_s);
	AMBER_TRY(make_dir(dir));
	RunOptions ro;
	ro.dir = dir;
	ro.argv = o.argv;
	ro.interval_s = interval_s;
	ro.keep = o.keep;
	ro.lazy_keep = true;	// as measured in Documentation/benchmarks.md
	ro.restart = false;
	ro.progress = false;
	ro.verbose = false;
	// wall_s ends when the program exited, even if the supervisor was
	// then still writing a checkpoint.
	auto st = run_supervised(ro);
	if (!st)
		return wrap(st.error(), run + ": ");
	if (st->exit_status != 0)
		return fail(0, run + ": " + o.argv[0] + " ended with status " +
				       std::to_string(st->exit_status) + " (output and run.log in " +
				       dir + ")");
	BenchRow r;
	r.tool = "amber";
	r.interval_s = interval_s;
	r.wall_s = st->wall_s;
	r.failed = st->failed_checkpoints;
	for (const RunCheckpoint &c : st->checkpoints) {
		r.stopped_ms.push_back(c.stopped_ms);
		r.bytes += c.bytes;
	}
	std::string s = run + ": " + summary(r, baseline_s);
	if (auto b = incremental_rate(st->checkpoints, interval_s))
		s += "; incremental checkpoints saved " + fmt_rate(*b);
	note(s);
	return r;
}

// Bytes of the image files in a CRIU dump directory (not its logs, not the
// parent symlink).
uint64_t image_bytes(const std::string &dir)
{
	uint64_t sum = 0;
	std::error_code ec;
	for (const auto &e : fs::directory_iterator(dir, ec)) {
		if (!e.is_regular_file(ec) || e.path().extension() == ".log")
			continue;
		sum += e.file_size(ec);
	}
	return sum;
}

// The last lines of a log, for a failure message.
std::string log_tail(const std::string &path, size_t lines)
{
	std::ifstream in(path);
	std::vector<std::string> v;
	for (std::string l; std::getline(in, l);) {
		v.push_back(l);
		if (v.size() > lines)
			v.erase(v.begin());
	}
	std::string s;
	for (const std::string &l : v)
		s += "\n    " + l;
	return s.empty() ? " (" + path + " is empty)" : s;
}

Result<CriuDumpStats> read_criu_stats(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	if (!in)
		return fail_errno("cannot open " + path);
	std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
	auto st = parse_criu_stats(b);
	if (!st)
		return wrap(st.error(), path + ": ");
	return st;
}

// One CRIU dump, as the driver saw it.
struct CriuDump {
	uint32_t n = 0;
	bool ok = false;
	bool incremental = false;	// --prev-images-dir given
	double total_ms = 0;		// criu's run time
};

// CMD in its own session, `criu dump --leave-running --track-mem` into
// DIR/1, DIR/2, ... every interval (from the end of one dump to the start of
// the next), each on the previous successful one (--prev-images-dir) unless
// the previous dump failed: then the next is full again, as CRIU may have
// reset the dirty bits. The program's exit time is taken when it happens,
// even during a dump. The frozen times are read from the stats-dump images
// after the program ended.
Result<BenchRow> run_criu(const BenchOptions &o, const std::string &dir, double interval_s,
			  double baseline_s)
{
	const std::string run = run_name("criu", interval_s);
	AMBER_TRY(make_dir(dir));
	Child prog = AMBER_TRY(spawn({o.argv, dir + "/stdout", dir + "/stderr", false, true}));
	const std::string pid = std::to_string(prog.pid);
	std::vector<CriuDump> dumps;
	uint32_t parent = 0;		// last good dump, 0: none
	double end_s = 0;		// the program's exit
	double next_s = prog.start_s + interval_s;
	while (!end_s) {
		if (wait_exit(prog, std::max(0.0, next_s - now_s()))) {
			end_s = now_s();
			break;
		}
		CriuDump d;
		d.n = dumps.size() + 1;
		const std::string ddir = dir + "/" + std::to_string(d.n);
		if (auto m = make_dir(ddir); !m) {
			kill(prog.pid, SIGKILL);
			reap(prog);
			return wrap(m.error(), run + ": ");
		}
		Spawn s;
		s.argv = {"criu", "dump", "-t", pid, "-D", ddir, "--leave-running", "--track-mem",
			  "-o", "dump.log", "-v1"};
		if (parent) {
			s.argv.push_back("--prev-images-dir");
			s.argv.push_back("../" + std::to_string(parent));
			d.incremental = true;
		}
		s.stdout_path = s.stderr_path = dir + "/criu.out";
		s.append = true;
		const double t0 = now_s();
		auto criu = spawn(s);
		if (!criu) {
			kill(prog.pid, SIGKILL);
			reap(prog);
			return wrap(criu.error(), run + ": ");
		}
		// Wait for criu, noting the program's exit if it happens meanwhile.
		for (;;) {
			struct pollfd p[2] = {{criu->pidfd.get(), POLLIN, 0},
					      {prog.pidfd.get(), POLLIN, 0}};
			if (poll(p, end_s ? 1 : 2, -1) < 0 && errno != EINTR)
				break;
			if (!end_s && (p[1].revents & POLLIN))
				end_s = now_s();
			if (p[0].revents & POLLIN)
				break;
		}
		const int st = reap(*criu);
		const double t1 = now_s();
		d.total_ms = (t1 - t0) * 1000;
		d.ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
		if (!end_s && wait_exit(prog, 0))
			end_s = now_s();
		if (d.ok) {
			parent = d.n;
		} else if (end_s) {
			// The program ended during the dump: not a failure of CRIU's.
			remove_dir(ddir);
			break;
		} else {
			note(run + ": criu dump " + std::to_string(d.n) + " " + describe_status(st) +
			     "; the next dump is a full one. " + ddir + "/dump.log:" +
			     log_tail(ddir + "/dump.log", 5));
			parent = 0;
		}
		dumps.push_back(d);
		next_s = t1 + interval_s;
	}
	const int st = reap(prog);
	AMBER_TRY(check_status(run, o.argv, st, dir));

	BenchRow r;
	r.tool = "criu";
	r.interval_s = interval_s;
	r.wall_s = end_s - prog.start_s;
	std::vector<RunCheckpoint> cps;	// for incremental_rate()
	for (const CriuDump &d : dumps) {
		if (!d.ok) {
			r.failed++;
			continue;
		}
		const std::string ddir = dir + "/" + std::to_string(d.n);
		CriuDumpStats cs = AMBER_TRY(read_criu_stats(ddir + "/stats-dump"));
		RunCheckpoint c;
		c.number = d.n;
		c.incremental = d.incremental;
		c.stopped_ms = cs.frozen_time_us / 1000.0;
		c.total_ms = d.total_ms;
		c.bytes = image_bytes(ddir);
		r.stopped_ms.push_back(c.stopped_ms);
		r.bytes += c.bytes;
		cps.push_back(c);
	}
	std::string s = run + ": " + summary(r, baseline_s);
	if (!cps.empty()) {
		double sum = 0, max = 0;
		for (const RunCheckpoint &c : cps) {
			sum += c.total_ms;
			max = std::max(max, c.total_ms);
		}
		s += fmt::format("; criu dump took {:.0f} ms on average, {:.0f} ms at most",
				 sum / cps.size(), max);
	}
	if (auto b = incremental_rate(cps, interval_s))
		s += "; incremental dumps saved " + fmt_rate(*b);
	note(s);
	return r;
}

Result<void> write_file(const std::string &path, const std::string &text)
{
	std::ofstream out(path, std::ios::trunc);
	out << text;
	out.close();
	if (!out)
		return fail_errno("cannot write " + path);
	return {};
}

Result<void> plot(const std::string &work, const BenchRow &baseline,
		  const std::vector<BenchRow> &rows, const std::string &png,
		  const std::vector<std::string> &argv)
{
	const std::string t = fmt::format(" (no checkpoints: {:.1f} s)", baseline.wall_s);
	std::string cmd = cmd_line(argv);
	if (cmd.size() > 80)
		cmd = cmd.substr(0, 77) + "...";
	const std::string script = work + "/plot.gp";
	AMBER_TRY(write_file(script, gnuplot_script(baseline, rows, png, cmd + t)));
	Child c = AMBER_TRY(spawn({{"gnuplot", script}, "", "", false, false}));
	wait_exit(c, -1);
	const int st = reap(c);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return fail(0, "gnuplot " + script + " " + describe_status(st));
	struct stat sb;
	if (stat(png.c_str(), &sb) < 0 || sb.st_size == 0)
		return fail(0, "gnuplot wrote no " + png);
	return {};
}

Result<std::string> make_work_dir(const BenchOptions &o)
{
	std::string base = o.work_dir;
	if (base.empty()) {
		const char *t = getenv("TMPDIR");
		base = t && *t ? t : "/tmp";
	} else if (mkdir(base.c_str(), 0700) < 0 && errno != EEXIST) {
		return fail_errno("cannot create " + base);
	}
	std::string tmpl = base + "/amber-bench.XXXXXX";
	if (!mkdtemp(tmpl.data()))
		return fail_errno("cannot create a directory in " + base);
	return tmpl;
}

Result<void> do_bench(const BenchOptions &o, const std::vector<double> &intervals,
		      const std::string &work)
{
	note("work directory " + work + "; command: " + cmd_line(o.argv));

	const double b1 = AMBER_TRY(run_baseline(o, work + "/baseline-1", "baseline run 1"));
	note(fmt::format("baseline run 1 (no checkpoints): {:.3f} s", b1));
	remove_dir(work + "/baseline-1");

	// amber and CRIU alternate, interval by interval, so that a slow drift
	// of the machine's speed affects both alike.
	std::vector<BenchRow> amber_rows, criu_rows;
	for (double iv : intervals) {
		const std::string tag = format_seconds(iv) + "s";
		amber_rows.push_back(AMBER_TRY(run_amber(o, work + "/amber-" + tag, iv, b1)));
		remove_dir(work + "/amber-" + tag);
		if (!o.compare_criu)
			continue;
		criu_rows.push_back(AMBER_TRY(run_criu(o, work + "/criu-" + tag, iv, b1)));
		remove_dir(work + "/criu-" + tag);
	}

	const double b2 = AMBER_TRY(run_baseline(o, work + "/baseline-2", "baseline run 2"));
	remove_dir(work + "/baseline-2");
	BenchRow baseline;
	baseline.tool = "none";
	baseline.wall_s = (b1 + b2) / 2;
	note(fmt::format("baseline runs: {:.3f} s before, {:.3f} s after, mean {:.3f} s (they "
			 "differ by {:.2f} %)",
			 b1, b2, baseline.wall_s, 100.0 * std::abs(b2 - b1) / baseline.wall_s));

	std::vector<BenchRow> rows = amber_rows;
	rows.insert(rows.end(), criu_rows.begin(), criu_rows.end());
	const std::string table = format_table(baseline, rows);
	if (o.csv) {
		fputs(table.c_str(), stderr);
		fputs(format_csv(baseline, rows).c_str(), stdout);
	} else {
		fputs(table.c_str(), stdout);
	}
	fflush(stdout);
	if (!o.plot.empty()) {
		AMBER_TRY(plot(work, baseline, rows, o.plot, o.argv));
		note("plot written to " + o.plot);
	}
	return {};
}

void run_bench(const BenchOptions &o)
{
	auto intervals = parse_interval_list(o.intervals);
	if (!intervals) {
		report_error("bench overhead", intervals.error());
		return;
	}
	auto work = make_work_dir(o);
	if (!work) {
		report_error("bench overhead", work.error());
		return;
	}
	if (auto r = do_bench(o, *intervals, *work); !r) {
		report_error("bench overhead", r.error());
		note("kept " + *work + " for inspection");
		return;
	}
	remove_dir(*work);
}

} // namespace

void setup_bench(CLI::App &app)
{
	CLI::App *bench = app.add_subcommand("bench", "Measure what checkpointing costs");
	bench->require_subcommand(1);

	auto opt = std::make_shared<BenchOptions>();
	CLI::App *sub = bench->add_subcommand(
		"overhead", "Run CMD without checkpoints and under `amber run` at each interval "
			    "(and CRIU with --compare-criu); report the slowdown");
	sub->add_option("--intervals", opt->intervals,
			"Comma-separated checkpoint intervals, e.g. 500ms,2s,1m")
		->capture_default_str();
	sub->add_flag("--csv", opt->csv, "Print CSV on stdout (the table goes to stderr)");
	sub->add_option("--plot", opt->plot,
			"Draw overhead against interval into this PNG file (gnuplot)");
	sub->add_flag("--compare-criu", opt->compare_criu,
		      "Also run each interval under `criu dump --leave-running --track-mem`");
	sub->add_option("--work-dir", opt->work_dir,
			"Where run directories and images go (default: $TMPDIR or /tmp); "
			"a fresh directory is made inside it and removed afterwards");
	sub->add_option("--keep", opt->keep, "Checkpoints amber run keeps (its --keep)")
		->capture_default_str()
		->check(CLI::Range(1u, 1000000u));
	sub->add_option("cmd", opt->argv, "The program and its arguments (after --)")->required();
	sub->callback([opt] { run_bench(*opt); });
}

} // namespace amber
