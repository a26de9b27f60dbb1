// SPDX-License-Identifier: GPL-2.0
// amber run: the supervisor (run.h).
//
// One loop waits on the program's pidfd, a signalfd for the stop signals and
// the time of the next checkpoint. Checkpoints and restores go through the
// same code as `amber checkpoint` (checkpoint/take_checkpoint.cc) and `amber restore`
// (restore/restore.cc), in this process: a restored program is our child,
// like the original one. The pure parts (log format, run.conf, output cuts,
// auto interval) are in run/policy.cc.
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <linux/close_range.h>
#include <dirent.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "checkpoint/checkpoint.h"
#include "common/io.h"
#include "common/names.h"
#include "netlink/netlink.h"
#include "restore/restore.h"
#include "run/run.h"
#include "run/policy.h"
#include "image/store.h"
#include "checkpoint/take_checkpoint.h"
#include "replicate/sender.h"

namespace amber {

namespace {

namespace fs = std::filesystem;

constexpr int kRestoreTimeoutS = 60;
constexpr uint32_t kCheckpointTimeoutMs = 60000;
// How long --resume waits for a killed orphan to be reaped by its parent,
// and the supervisor for what is left of a tree to die once killed.
constexpr double kReapTimeoutS = 10;
// When the program exits, as seen by a thread that waits for nothing else:
// the supervisor itself may be writing a checkpoint at that moment, and the
// run's wall time must not include the rest of that write.
class ExitClock {
public:
	ExitClock() = default;
	ExitClock(const ExitClock &) = delete;
	ExitClock &operator=(const ExitClock &) = delete;
	~ExitClock() { stop(); }

	// Watches a pidfd (duplicated: the caller keeps its own).
	void start(int pidfd)
	{
		stop();
		at_ = 0;
		pidfd_.reset(fcntl(pidfd, F_DUPFD_CLOEXEC, 3));
		cancel_.reset(eventfd(0, EFD_CLOEXEC));
		if (!pidfd_ || !cancel_)
			return;
		thread_ = std::thread([this] {
			// Stop signals are the supervisor's signalfd's.
			sigset_t all;
			sigfillset(&all);
			pthread_sigmask(SIG_BLOCK, &all, nullptr);
			struct pollfd p[2] = {{pidfd_.get(), POLLIN, 0}, {cancel_.get(), POLLIN, 0}};
			while (poll(p, 2, -1) < 0 && errno == EINTR)
				;
			if (p[0].revents)
				at_ = now_s();
		});
	}

	// Ends the thread; at() is final afterwards.
	void stop()
	{
		if (thread_.joinable()) {
			uint64_t one = 1;
			if (write(cancel_.get(), &one, sizeof(one)) < 0) {
				// eventfd writes of 1 do not fail; join anyway
			}
			thread_.join();
		}
		pidfd_.reset();
		cancel_.reset();
	}

	// CLOCK_MONOTONIC seconds of the exit, 0 if not seen.
	double at() const { return at_; }

private:
	UniqueFd pidfd_, cancel_;
	std::thread thread_;
	double at_ = 0;
};

std::optional<std::string> proc_stat(pid_t pid)
{
	auto s = read_file("/proc/" + std::to_string(pid) + "/stat");
	if (!s)
		return std::nullopt;
	return *s;
}

std::optional<uint64_t> proc_start_ticks(pid_t pid)
{
	auto s = proc_stat(pid);
	return s ? parse_stat_start_ticks(*s) : std::nullopt;
}

// Field 4 (ppid) of /proc/PID/stat.
std::optional<pid_t> proc_parent(pid_t pid)
{
	auto s = proc_stat(pid);
	if (!s)
		return std::nullopt;
	size_t p = s->rfind(')');
	if (p == std::string::npos)
		return std::nullopt;
	char state;
	int ppid;
	if (sscanf(s->c_str() + p + 1, " %c %d", &state, &ppid) != 2)
		return std::nullopt;
	return ppid;
}

// Children of pid, from /proc/PID/task/*/children (each thread's own).
std::vector<pid_t> proc_children(pid_t pid)
{
	std::vector<pid_t> out;
	const std::string dir = "/proc/" + std::to_string(pid) + "/task";
	DIR *d = opendir(dir.c_str());
	if (!d)
		return out;
	while (struct dirent *e = readdir(d)) {
		if (e->d_name[0] == '.')
			continue;
		auto s = read_file(dir + "/" + e->d_name + "/children");
		if (!s)
			continue;
		std::istringstream in(*s);
		pid_t c;
		while (in >> c)
			if (std::find(out.begin(), out.end(), c) == out.end())
				out.push_back(c);
	}
	closedir(d);
	return out;
}

// Every descendant of pid, parents before their children.
std::vector<pid_t> proc_descendants(pid_t pid)
{
	std::vector<pid_t> out;
	std::vector<pid_t> todo = {pid};
	while (!todo.empty() && out.size() < 1000000) {
		pid_t p = todo.back();
		todo.pop_back();
		for (pid_t c : proc_children(p)) {
			if (std::find(out.begin(), out.end(), c) != out.end())
				continue;
			out.push_back(c);
			todo.push_back(c);
		}
	}
	return out;
}

std::string boot_id()
{
	auto s = read_file("/proc/sys/kernel/random/boot_id");
	if (!s)
		return "";
	while (!s->empty() && (s->back() == '\n' || s->back() == ' '))
		s->pop_back();
	return *s;
}

std::string absolute_path(const std::string &p)
{
	std::error_code ec;
	fs::path a = fs::absolute(p, ec);
	return ec ? p : a.lexically_normal().string();
}

// SIGINT, SIGTERM and SIGHUP blocked and read from a signalfd while the
// supervisor runs; the old mask comes back at the end.
class StopSignals {
public:
	StopSignals()
	{
		sigemptyset(&set_);
		// SIGCHLD: orphans of the tree reparented to the supervisor
		// (a child subreaper) must be reaped as they die.
		for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD})
			sigaddset(&set_, s);
		sigprocmask(SIG_BLOCK, &set_, &old_);
	}
	StopSignals(const StopSignals &) = delete;
	StopSignals &operator=(const StopSignals &) = delete;
	~StopSignals()
	{
		fd_.reset();
		sigprocmask(SIG_SETMASK, &old_, nullptr);
	}

	Result<void> open()
	{
		fd_.reset(signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
		if (!fd_)
			return fail_errno("signalfd");
		return {};
	}
	int fd() const { return fd_.get(); }
	const sigset_t &old_mask() const { return old_; }

	// The next pending stop signal, 0 if none.
	int next()
	{
		struct signalfd_siginfo si;
		for (;;) {
			ssize_t n = read(fd_.get(), &si, sizeof(si));
			if (n == ssize_t(sizeof(si)))
				return int(si.ssi_signo);
			if (n < 0 && errno == EINTR)
				continue;
			return 0;
		}
	}

private:
	sigset_t set_, old_;
	UniqueFd fd_;
};

// Every process below the supervisor (the job's tree, restored or not, and
// its orphans: we are their subreaper) but `spare` (the lease's helper),
// SIGKILLed.
void kill_descendants(pid_t spare)
{
	for (int round = 0; round < 3; round++) {
		std::vector<pid_t> all = proc_descendants(getpid());
		std::erase(all, spare);
		if (all.empty())
			return;
		for (pid_t p : all)
			kill(p, SIGKILL);
	}
}

// Watches the lease from its own thread: once valid_until() passes without
// a renewal (or etcd says it is gone), every process below the supervisor
// is SIGKILLed at once, whatever the supervisor's own thread is busy with
// (a checkpoint can take longer than the lease's TTL). See design.md,
// "Replication lease".
class LeaseGuard {
public:
	LeaseGuard() = default;
	LeaseGuard(const LeaseGuard &) = delete;
	LeaseGuard &operator=(const LeaseGuard &) = delete;
	~LeaseGuard()
	{
		if (thread_.joinable()) {
			uint64_t one = 1;
			(void)!write(stop_.get(), &one, sizeof(one));
			thread_.join();
		}
		if (lease_)
			lease_->release();
	}

	Result<void> start(std::shared_ptr<Lease> lease)
	{
		lease_ = std::move(lease);
		lost_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
		stop_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
		if (!lost_fd_ || !stop_)
			return fail_errno("eventfd");
		thread_ = std::thread([this] { loop(); });
		return {};
	}
	bool on() const { return bool(lease_); }
	// The helper process (our child, not the job's), 0 without a lease.
	pid_t helper() const { return lease_ ? lease_->helper_pid() : 0; }
	// Readable once the lease is lost.
	int fd() const { return lost_fd_.get(); }
	bool lost() const { return lost_.load(); }
	double lost_late_ms() const { return late_ms_; }

private:
	void loop()
	{
		for (;;) {
			const double until = lease_->valid_until();
			const double now = now_s();
			if (!lease_->held() || now >= until) {
				// Lost first: the supervisor, seeing its job die,
				// must not bring it back.
				late_ms_ = (now - until) * 1e3;
				lost_.store(true);
				kill_descendants(lease_->helper_pid());
				uint64_t one = 1;
				(void)!write(lost_fd_.get(), &one, sizeof(one));
				return;
			}
			struct pollfd fds[2] = {{lease_->fd(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
			int n = poll(fds, 2, int((until - now) * 1000) + 1);
			if (n > 0 && fds[1].revents)
				return;
			if (n > 0 && fds[0].revents)
				(void)lease_->update();
		}
	}

	std::shared_ptr<Lease> lease_;
	std::thread thread_;
	UniqueFd lost_fd_, stop_;
	std::atomic<bool> lost_{false};
	double late_ms_ = 0;
};

// The one-line display on a terminal, redrawn at most once a second.
class Progress {
public:
	explicit Progress(bool on) : on_(on) {}
	~Progress() { clear(); }

	void clear()
	{
		if (shown_) {
			fputs("\r\033[K", stderr);
			fflush(stderr);
			shown_ = false;
		}
	}
	bool due(double now) const { return on_ && now - last_ >= 1.0; }
	void draw(const std::string &line, double now)
	{
		fprintf(stderr, "\r\033[K%s", line.c_str());
		fflush(stderr);
		shown_ = true;
		last_ = now;
	}
	bool on() const { return on_; }

private:
	bool on_;
	bool shown_ = false;
	double last_ = -1e9;
};

// An output file of the program, held open by the supervisor to fsync it
// and cut it back.
struct Output {
	std::string path;	// absolute, as in run.conf
	std::string real_path;
	UniqueFd fd;
	bool managed = false;	// a regular file: fsync'ed, cut back
	uint64_t base = 0;	// size before the first start
};

std::string uptime(double s)
{
	uint64_t t = uint64_t(s);
	return fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
}

class Supervisor {
public:
	explicit Supervisor(const RunOptions &o)
		: o_(o), store_(o.dir), progress_(o.progress && isatty(STDERR_FILENO))
	{
	}
	Result<RunStats> run();

private:
	enum class Next { Continue, Done };

	std::string file(const char *name) const { return o_.dir + "/" + name; }
	Result<void> lock_dir();
	Result<void> setup_conf();
	Result<void> open_outputs();
	void event(const char *name, const std::vector<LogField> &fields);
	void warn(const std::string &msg);

	Result<void> spawn();
	void set_pid(pid_t pid, UniqueFd pidfd);
	void end(const std::string &how);
	Result<void> sync_outputs();
	Result<void> cut_outputs(uint32_t number, const std::vector<std::vector<FdInfo>> &fds);

	void checkpoint();
	void record(const CheckpointSummary &s);
	void reap_orphans();
	Result<size_t> kill_remains();
	Result<void> kill_orphaned_tree(pid_t root, int root_pidfd,
					std::vector<std::pair<pid_t, UniqueFd>> procs, bool checkpointed);
	Result<RestoredProcess> restore(uint32_t number);
	Result<void> recover();
	Result<void> fresh_start();
	Result<void> resume();
	Result<void> wait_pid_free(pid_t pid, int pidfd);
	Result<Next> on_death();
	void on_stop_signals();
	void draw_progress(double now);
	Result<void> take_lease();
	Result<void> start_replicator();
	void replicate(uint32_t number);
	void on_replica_events();
	void on_lease_lost();
	// The run ends with status: tells the backup (no takeover) unless the
	// lease was lost (the backup must take over then).
	void finish_replication(int status);
	// Lazy with --lazy-keep, and with --replicate: a backup that fell
	// behind then gets the deltas it lacks, which eager compaction would
	// have folded into a full checkpoint under a new number.
	RetainPolicy retain_policy() const
	{
		return o_.lazy_keep || !o_.replicate.empty() ? kLazyRetainPolicy : RetainPolicy{};
	}
	// --output-commit (commits_: one per staging file).
	Result<void> open_commits();
	// The fds of every process image of checkpoint number (root first):
	// how each recorded the output files.
	Result<std::vector<std::vector<FdInfo>>> tree_fds(uint32_t number) const;
	// What checkpoint number covers of each staging file (its cut).
	Result<std::vector<uint64_t>> covered(uint32_t number);
	void commit_to(const std::vector<uint64_t> &sizes, const char *why);
	void commit_acked();

	RunOptions o_;
	RunConf conf_;
	Store store_;
	Progress progress_;
	StopSignals signals_;
	UniqueFd lock_, log_;
	std::vector<Output> outputs_;
	std::string boot_id_ = boot_id();

	pid_t pid_ = -1;
	UniqueFd pidfd_;
	ExitClock exit_clock_;
	bool stopping_ = false;
	double started_ = 0;		// first start of the program
	double next_ckpt_ = 0;
	double interval_ = 30;
	std::optional<AutoInterval> auto_;
	uint32_t quick_retries_ = 0;	// transient checkpoint failures in a row
	std::string logged_interval_;
	bool log_failed_ = false;
	RunStats stats_;
	LeaseGuard lease_;
	bool lease_reported_ = false;
	std::unique_ptr<Replicator> replicator_;
	std::vector<std::string> replica_outputs_;	// run.conf's, deduplicated
	std::vector<uint64_t> replica_sizes_;		// at the last checkpoint
	struct Commit {
		std::string staging, dest;
		uint64_t dest_base = 0;
		UniqueFd in, out;
		uint64_t done = 0;	// bytes of staging copied to dest
	};
	std::vector<Commit> commits_;
	// Checkpoints taken, not yet acknowledged: what each covers.
	std::map<uint32_t, std::vector<uint64_t>> uncommitted_;
};

Result<void> Supervisor::lock_dir()
{
	// Missing parents are created too, as `amber checkpoint -D` does.
	std::error_code ec;
	fs::create_directories(o_.dir, ec);
	if (ec)
		return fail(ec.value(), "cannot create " + o_.dir);
	const std::string path = file("run.lock");
	lock_.reset(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
	if (!lock_)
		return fail_errno("cannot open " + path);
	if (flock(lock_.get(), LOCK_EX | LOCK_NB)) {
		if (errno != EWOULDBLOCK)
			return fail_errno("flock " + path);
		auto who = read_file(path);
		std::string pid = who ? who->substr(0, who->find('\n')) : "";
		return fail(0, o_.dir + " is supervised by pid " + (pid.empty() ? "?" : pid));
	}
	std::string me = std::to_string(getpid()) + "\n";
	if (ftruncate(lock_.get(), 0) || pwrite(lock_.get(), me.data(), me.size(), 0) < 0)
		return fail_errno("write " + path);
	return {};
}

Result<void> Supervisor::setup_conf()
{
	const std::string path = file("run.conf");
	if (o_.resume) {
		auto text = read_file(path);
		if (!text && text.error().err == ENOENT)
			return fail(0, path + " is missing: nothing to resume (start with amber run -D " +
					       o_.dir + " -- CMD)");
		if (!text)
			return tl::unexpected(text.error());
		auto c = parse_run_conf(*text);
		if (!c)
			return wrap(c.error(), path + ": ");
		conf_ = std::move(*c);
		if (o_.interval_given)
			conf_.interval_s = o_.interval_s;
		if (o_.mtbf_given)
			conf_.mtbf_s = o_.mtbf_s;
		if (o_.keep_given)
			conf_.keep = o_.keep;
		if (o_.max_restarts_given)
			conf_.max_restarts = o_.max_restarts;
		if (!conf_.interval_s && !(conf_.mtbf_s > 0))
			return fail(0, "--interval auto needs --mtbf");
		return {};
	}

	if (access(path.c_str(), F_OK) == 0) {
		auto text = read_file(file("run.state"));
		auto state = text ? parse_run_state(*text) : Result<RunState>(RunState{});
		if (state && !state->ended.empty())
			return fail(0, o_.dir + " holds a finished run (" + state->ended +
					       "): use another DIR");
		return fail(0, o_.dir + " already holds a run (run.conf): use --resume, or another DIR");
	}
	auto list = store_.list();
	if (list && !list->empty())
		return fail(0, o_.dir + " already holds checkpoints: use --resume, or another DIR");
	if (o_.argv.empty())
		return fail(0, "no command to run");
	if (!o_.interval_s && !(o_.mtbf_s > 0))
		return fail(0, "--interval auto needs --mtbf");
	if (!o_.keep)
		return fail(0, "--keep must be at least 1");

	conf_.argv = o_.argv;
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		return fail_errno("getcwd");
	conf_.cwd = cwd;
	conf_.stdout_path = absolute_path(o_.stdout_path.empty() ? file("stdout") : o_.stdout_path);
	conf_.stderr_path = absolute_path(o_.stderr_path.empty() ? file("stderr") : o_.stderr_path);
	struct stat st;
	if (stat(conf_.stdout_path.c_str(), &st) == 0 && S_ISREG(st.st_mode))
		conf_.stdout_base = uint64_t(st.st_size);
	if (stat(conf_.stderr_path.c_str(), &st) == 0 && S_ISREG(st.st_mode))
		conf_.stderr_base = uint64_t(st.st_size);
	if (o_.output_commit) {
		// The user's files get committed output only; the program
		// writes staging files, new (one when both are one file).
		conf_.commit_stdout = conf_.stdout_path;
		conf_.commit_stderr = conf_.stderr_path;
		conf_.commit_stdout_base = conf_.stdout_base;
		conf_.commit_stderr_base = conf_.stderr_base;
		const bool one = conf_.stdout_path == conf_.stderr_path;
		conf_.stdout_path = absolute_path(file("stdout.uncommitted"));
		conf_.stderr_path = one ? conf_.stdout_path
					: absolute_path(file("stderr.uncommitted"));
		for (const std::string &p : {conf_.stdout_path, conf_.stderr_path})
			if (unlink(p.c_str()) && errno != ENOENT)
				return fail_errno("cannot remove " + p);
		conf_.stdout_base = conf_.stderr_base = 0;
	}
	conf_.interval_s = o_.interval_s;
	conf_.mtbf_s = o_.mtbf_s;
	conf_.keep = o_.keep;
	conf_.max_restarts = o_.max_restarts;
	return write_file_atomic(path, format_run_conf(conf_), true);
}

Result<void> Supervisor::open_outputs()
{
	const std::pair<const std::string *, uint64_t> files[] = {
		{&conf_.stdout_path, conf_.stdout_base},
		{&conf_.stderr_path, conf_.stderr_base},
	};
	for (const auto &[path, base] : files) {
		UniqueFd fd(open(path->c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
		if (!fd)
			return fail_errno("cannot open " + *path);
		struct stat st;
		if (fstat(fd.get(), &st))
			return fail_errno("stat " + *path);
		char real[PATH_MAX];
		if (!realpath(path->c_str(), real))
			return fail_errno("realpath " + *path);
		bool dup = false;
		for (const Output &o : outputs_)
			dup |= o.real_path == real;
		if (dup)
			continue;
		Output out;
		out.path = *path;
		out.real_path = real;
		out.fd = std::move(fd);
		out.managed = S_ISREG(st.st_mode);
		out.base = base;
		outputs_.push_back(std::move(out));
	}
	return {};
}

void Supervisor::warn(const std::string &msg)
{
	progress_.clear();
	fprintf(stderr, "amber run: %s\n", msg.c_str());
}

void Supervisor::event(const char *name, const std::vector<LogField> &fields)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (log_) {
		auto w = write_all(log_.get(), format_log_line(ts, name, fields), file("run.log"));
		if (!w && !log_failed_) {
			log_failed_ = true;
			warn(w.error().str());
		}
	}
	if (o_.verbose) {
		progress_.clear();
		fprintf(stderr, "amber run: %s\n", format_event(name, fields).c_str());
	}
}

// fork + exec of the command: stdin /dev/null, stdout and stderr appended to
// the output files, fds 3 and up closed, our process group and session.
Result<void> Supervisor::spawn()
{
	// Above 2, so that the dup2()s below cannot clobber one another.
	auto open_high = [](const std::string &path, int flags) -> Result<UniqueFd> {
		UniqueFd fd(open(path.c_str(), flags | O_CLOEXEC, 0644));
		if (!fd)
			return fail_errno("cannot open " + path);
		UniqueFd high(fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
		if (!high)
			return fail_errno("dup " + path);
		return high;
	};
	UniqueFd in = AMBER_TRY(open_high("/dev/null", O_RDONLY));
	const int wflags = O_WRONLY | O_CREAT | O_APPEND;
	UniqueFd out = AMBER_TRY(open_high(conf_.stdout_path, wflags));
	UniqueFd err = AMBER_TRY(open_high(conf_.stderr_path, wflags));
	auto [rd, wr] = AMBER_TRY(make_pipe());

	std::vector<char *> argv;
	for (const std::string &a : conf_.argv)
		argv.push_back(const_cast<char *>(a.c_str()));
	argv.push_back(nullptr);

	fflush(nullptr);
	pid_t pid = fork();
	if (pid < 0)
		return fail_errno("fork");
	if (pid == 0) {
		// Only async-signal-safe calls from here on.
		int report[2] = {0, 0};
		sigprocmask(SIG_SETMASK, &signals_.old_mask(), nullptr);
		if (chdir(conf_.cwd.c_str()))
			report[0] = 1;
		else if (dup2(in.get(), 0) < 0 || dup2(out.get(), 1) < 0 || dup2(err.get(), 2) < 0)
			report[0] = 2;
		if (!report[0]) {
			syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
			execvp(argv[0], argv.data());
			report[0] = 3;
		}
		report[1] = errno;
		(void)!write(wr.get(), report, sizeof(report));
		_exit(127);
	}
	wr.reset();
	int report[2];
	ssize_t n;
	while ((n = read(rd.get(), report, sizeof(report))) < 0 && errno == EINTR)
		;
	if (n == ssize_t(sizeof(report))) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		const std::string what = report[0] == 1   ? "cannot change to " + conf_.cwd
					 : report[0] == 2 ? std::string("cannot set up stdio")
							  : "cannot run '" + conf_.argv[0] + "'";
		return fail(report[1], what);
	}
	UniqueFd pidfd(pidfd_open(pid));
	if (!pidfd) {
		Error e{errno, "pidfd_open " + std::to_string(pid)};
		kill(pid, SIGKILL);
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return tl::unexpected(e);
	}
	set_pid(pid, std::move(pidfd));
	return {};
}

// The program is pid now: DIR/run.state, then DIR/pid.
void Supervisor::set_pid(pid_t pid, UniqueFd pidfd)
{
	pid_ = pid;
	pidfd_ = std::move(pidfd);
	if (!started_)
		started_ = now_s();
	exit_clock_.start(pidfd_.get());
	RunState st;
	st.pid = uint32_t(pid);
	st.start_ticks = proc_start_ticks(pid).value_or(0);
	st.boot_id = boot_id_;
	if (auto w = write_file_atomic(file("run.state"), format_run_state(st), false); !w)
		warn(w.error().str());
	if (auto w = write_file_atomic(file("pid"), std::to_string(pid) + "\n", false); !w)
		warn(w.error().str());
}

// The program exited by itself: the run is over, --resume refuses to bring
// it back.
void Supervisor::end(const std::string &how)
{
	RunState st;
	st.pid = uint32_t(pid_);
	st.boot_id = boot_id_;
	st.ended = how;
	if (auto w = write_file_atomic(file("run.state"), format_run_state(st), true); !w)
		warn(w.error().str());
}

Result<void> Supervisor::sync_outputs()
{
	for (const Output &o : outputs_)
		if (o.managed && fsync(o.fd.get()))
			return fail_errno("fsync " + o.path);
	return {};
}

// Cuts each output file back to the size checkpoint `number` recorded (fds:
// of each process image).
Result<void> Supervisor::cut_outputs(uint32_t number,
				     const std::vector<std::vector<FdInfo>> &fds)
{
	std::vector<OutputSize> sizes;
	std::vector<const Output *> managed;
	for (const Output &o : outputs_) {
		if (!o.managed)
			continue;
		struct stat st;
		if (fstat(o.fd.get(), &st))
			return fail_errno("stat " + o.path);
		sizes.push_back(OutputSize{o.path, o.real_path, uint64_t(st.st_size)});
		managed.push_back(&o);
	}
	auto cuts = AMBER_TRY(plan_tree_output_cuts(number, fds, sizes));
	for (size_t i = 0; i < cuts.size(); i++)
		if (cuts[i] && *cuts[i] != sizes[i].size && ftruncate(managed[i]->fd.get(), off_t(*cuts[i])))
			return fail_errno("truncate " + managed[i]->path + " to " +
					  std::to_string(*cuts[i]) + " bytes");
	return {};
}

void Supervisor::record(const CheckpointSummary &s)
{
	RunCheckpoint rc;
	rc.number = s.number;
	rc.incremental = s.incremental();
	rc.stopped_ms = s.stopped_ns / 1e6;
	rc.total_ms = s.total_ns / 1e6;
	rc.bytes = s.bytes + s.compacted_bytes;
	stats_.checkpoints.push_back(rc);
	std::vector<LogField> f = {field("n", s.number),
				   field("kind", rc.incremental ? "incremental" : "full"),
				   field("stopped_ms", format_ms(rc.stopped_ms)),
				   field("total_ms", format_ms(rc.total_ms)), field("bytes", rc.bytes),
				   field("compacted_bytes", s.compacted_bytes)};
	f.push_back(field("processes", s.processes));
	f.push_back(field("threads", s.threads));
	if (s.zombies)
		f.push_back(field("zombies", s.zombies));
	event("checkpoint", f);
	if (s.late_error)
		event("retain-failed", {quoted_field("error", s.late_error->str())});
}

void Supervisor::checkpoint()
{
	CheckpointRequest req;
	req.pid = uint32_t(pid_);
	req.dir = o_.dir;
	req.tree = true;	// always the whole tree the supervisor started
	req.keep = conf_.keep;
	req.retain_policy = retain_policy();
	req.timeout_ms = kCheckpointTimeoutMs;
	req.ghost_limit = o_.ghost_limit;
	req.compress_level = o_.compress_level;
	req.before_publish = [this]() -> Result<void> {
		AMBER_TRY(sync_outputs());
		replica_sizes_.clear();
		for (const std::string &p : replica_outputs_) {
			struct stat st;
			if (stat(p.c_str(), &st))
				return fail_errno("stat " + p);
			replica_sizes_.push_back(uint64_t(st.st_size));
		}
		return {};
	};
	auto s = take_checkpoint(req);
	if (s && !commits_.empty()) {
		// Without a backup the checkpoint itself is the safe copy.
		if (auto c = covered(s->number); !c)
			event("commit-failed", {field("n", s->number),
						quoted_field("error", c.error().str())});
		else if (replicator_)
			uncommitted_[s->number] = std::move(*c);
		else
			commit_to(*c, "checkpoint");
	}
	if (s)
		replicate(s->number);
	std::optional<double> delay;
	if (!s)
		delay = checkpoint_retry_delay(s.error().err, quick_retries_);
	if (delay) {
		// A member exec'd or was in vfork (make, shells): soon again.
		quick_retries_++;
		event("checkpoint-retry", {field("in_ms", format_ms(*delay * 1e3)),
					   field("attempt", quick_retries_),
					   quoted_field("error", s.error().str())});
		next_ckpt_ = now_s() + *delay;
		return;
	}
	quick_retries_ = 0;
	if (!s) {
		stats_.failed_checkpoints++;
		event("checkpoint-failed", {quoted_field("error", s.error().str())});
	} else {
		record(*s);
		if (auto_) {
			interval_ = auto_->next(s->stopped_ns / 1e9, s->total_ns / 1e9);
			const std::string buf = fmt::format("{:.3f}", interval_);
			if (logged_interval_ != buf) {
				logged_interval_ = buf;
				const std::string mtbf = fmt::format("{:g}", auto_->mtbf_s());
				event("interval", {field("s", buf),
						   field("cost_ms", format_ms(auto_->cost_s() * 1e3)),
						   field("mtbf_s", mtbf)});
			}
		}
	}
	next_ckpt_ = now_s() + interval_;
}

Result<void> Supervisor::take_lease()
{
	std::shared_ptr<Lease> lease = o_.lease;
	if (!lease) {
		LeaseConfig c = o_.lease_config;
		lease = std::make_shared<Lease>(AMBER_TRY(Lease::start(c)));
		if (!AMBER_TRY(lease->try_acquire()))
			return fail(EBUSY, "the job's lease " + c.key + " is held by " +
						   lease->holder() + ": it runs there");
	}
	event("lease", {quoted_field("key", o_.lease_config.key),
			field("valid_ms", format_ms((lease->valid_until() - now_s()) * 1e3))});
	return lease_.start(std::move(lease));
}

Result<void> Supervisor::start_replicator()
{
	for (const Output &o : outputs_)
		if (!o.managed)
			return fail(EINVAL, "--replicate: output " + o.path +
						    " is not a regular file (the backup keeps a copy)");
	for (const std::string &p : {conf_.stdout_path, conf_.stderr_path})
		if (std::find(replica_outputs_.begin(), replica_outputs_.end(), p) ==
		    replica_outputs_.end())
			replica_outputs_.push_back(p);
	char real[PATH_MAX];
	if (!realpath(o_.dir.c_str(), real))
		return fail_errno("realpath " + o_.dir);
	std::string conf = AMBER_TRY(read_file(file("run.conf")));
	replicator_ = std::make_unique<Replicator>(o_.replicate, real, std::move(conf),
						   replica_outputs_);
	AMBER_TRY(replicator_->start());
	event("replicate", {field("addr", o_.replicate)});
	return {};
}

// Checkpoint number was published: the replication thread sends it.
void Supervisor::replicate(uint32_t number)
{
	if (!replicator_)
		return;
	auto snap = snapshot_checkpoint(store_, number);
	if (!snap) {
		event("replicate-failed", {field("n", number), quoted_field("error", snap.error().str())});
		return;
	}
	snap->output_sizes = replica_sizes_;
	replicator_->offer(std::move(*snap));
}

void Supervisor::on_replica_events()
{
	for (const ReplicaEvent &e : replicator_->take_events())
		event(e.name.c_str(), e.fields);
	commit_acked();
}

void Supervisor::on_lease_lost()
{
	if (lease_reported_)
		return;
	lease_reported_ = true;
	event("lease-lost", {field("late_ms", format_ms(lease_.lost_late_ms()))});
	warn("the job's lease ran out: the job was killed (the backup takes it over)");
	stopping_ = true;
}

void Supervisor::finish_replication(int status)
{
	// The whole output is the user's once the backup knows the job
	// ended (or never had a checkpoint to take it over with); otherwise
	// the backup takes over and writes the rest itself.
	bool told = !replicator_;
	if (replicator_) {
		if (!lease_.lost())
			told = replicator_->finish(status, 10.0);
		on_replica_events();
		told |= replicator_->acked() == 0 && !lease_.lost();
		replicator_.reset();
	}
	if (told && !commits_.empty()) {
		std::vector<uint64_t> all;
		for (const Commit &c : commits_) {
			struct stat st;
			all.push_back(fstat(c.in.get(), &st) ? 0 : uint64_t(st.st_size));
		}
		commit_to(all, "end");
	}
}

Result<void> Supervisor::open_commits()
{
	const std::pair<std::string, std::pair<std::string, uint64_t>> files[] = {
		{conf_.stdout_path, {conf_.commit_stdout, conf_.commit_stdout_base}},
		{conf_.stderr_path, {conf_.commit_stderr, conf_.commit_stderr_base}},
	};
	for (const auto &[staging, dest] : files) {
		if (std::any_of(commits_.begin(), commits_.end(),
				[&](const Commit &c) { return c.staging == staging; }))
			continue;
		Commit c;
		c.staging = staging;
		c.dest = dest.first;
		c.dest_base = dest.second;
		c.in = AMBER_TRY(open_file(staging, O_RDONLY | O_CREAT));
		c.out = AMBER_TRY(open_file(c.dest, O_WRONLY | O_CREAT));
		struct stat st;
		if (fstat(c.out.get(), &st))
			return fail_errno("stat " + c.dest);
		// What an earlier supervisor (or the primary, on a shared
		// file) committed already.
		c.done = uint64_t(st.st_size) > c.dest_base ? uint64_t(st.st_size) - c.dest_base : 0;
		commits_.push_back(std::move(c));
	}
	return {};
}

Result<std::vector<std::vector<FdInfo>>> Supervisor::tree_fds(uint32_t number) const
{
	Checkpoint meta = AMBER_TRY(store_.load_meta(number));
	std::vector<std::vector<FdInfo>> fds = {meta.fds};
	for (uint32_t pid : image_pids(meta)) {
		if (pid == meta.info.pid)
			continue;
		Checkpoint m = AMBER_TRY(store_.load_meta(number, pid, meta.info.pid));
		fds.push_back(std::move(m.fds));
	}
	return fds;
}

Result<std::vector<uint64_t>> Supervisor::covered(uint32_t number)
{
	const auto fds = AMBER_TRY(tree_fds(number));
	std::vector<OutputSize> sizes;
	for (const Commit &c : commits_) {
		struct stat st;
		if (fstat(c.in.get(), &st))
			return fail_errno("stat " + c.staging);
		char real[PATH_MAX];
		if (!realpath(c.staging.c_str(), real))
			return fail_errno("realpath " + c.staging);
		sizes.push_back(OutputSize{c.staging, real, uint64_t(st.st_size)});
	}
	auto cuts = AMBER_TRY(plan_tree_output_cuts(number, fds, sizes));
	std::vector<uint64_t> out;
	for (size_t i = 0; i < cuts.size(); i++)
		out.push_back(cuts[i] ? *cuts[i] : sizes[i].size);
	return out;
}

// Copies each staging file up to sizes[i] to its destination (fsynced).
void Supervisor::commit_to(const std::vector<uint64_t> &sizes, const char *why)
{
	std::vector<uint8_t> buf(1 << 20);
	for (size_t i = 0; i < commits_.size() && i < sizes.size(); i++) {
		Commit &c = commits_[i];
		if (sizes[i] <= c.done)
			continue;
		Result<void> r;
		for (uint64_t off = c.done; r && off < sizes[i];) {
			const size_t n = size_t(std::min<uint64_t>(buf.size(), sizes[i] - off));
			r = pread_full(c.in.get(), buf.data(), n, off);
			if (r)
				r = pwrite_full(c.out.get(), buf.data(), n, c.dest_base + off);
			off += n;
		}
		if (r && fsync(c.out.get()))
			r = fail_errno("fsync " + c.dest);
		if (!r) {
			event("commit-failed", {quoted_field("file", c.dest),
						quoted_field("error", r.error().str())});
			continue;
		}
		event("commit", {quoted_field("file", c.dest), field("bytes", sizes[i] - c.done),
				 field("size", c.dest_base + sizes[i]), field("why", why)});
		c.done = sizes[i];
	}
}

// The newest acknowledged checkpoint's output is the user's now.
void Supervisor::commit_acked()
{
	if (commits_.empty() || !replicator_)
		return;
	const uint32_t acked = replicator_->acked();
	auto upto = uncommitted_.upper_bound(acked);
	if (upto == uncommitted_.begin())
		return;
	commit_to(std::prev(upto)->second, "acknowledged");
	uncommitted_.erase(uncommitted_.begin(), upto);
}

Result<RestoredProcess> Supervisor::restore(uint32_t number)
{
	AMBER_TRY(cut_outputs(number, AMBER_TRY(tree_fds(number))));
	RestoreRequest req;
	req.dir = o_.dir;
	req.number = number;
	req.timeout_s = kRestoreTimeoutS;
	return restore_process(req);
}

// Brings the program back from the newest checkpoint that can be restored,
// or starts it again when there is none.
Result<void> Supervisor::recover()
{
	// Never without the lease: the job runs elsewhere then.
	if (lease_.lost())
		return fail(0, "the job's lease is lost: not restoring it here");
	auto list = store_.list();
	if (!list)
		return wrap(list.error(), o_.dir + ": ");
	if (list->empty())
		return fresh_start();
	std::string reasons;
	for (auto it = list->rbegin(); it != list->rend(); ++it) {
		const uint32_t n = *it;
		const double t0 = now_s();
		auto r = restore(n);
		if (r) {
			// (A takeover: what the primary's acknowledged checkpoint
			// covered is the user's.)
			if (!commits_.empty()) {
				if (auto c = covered(n))
					commit_to(*c, "restored");
			}
			set_pid(r->pid, std::move(r->pidfd));
			event("restore", {field("n", n), field("pid", uint64_t(pid_)),
					  field("ms", format_ms((now_s() - t0) * 1e3)),
					  field("restarts", stats_.restarts)});
			next_ckpt_ = now_s() + interval_;
			return {};
		}
		const std::string msg = r.error().str();
		event("restore-failed", {field("n", n), quoted_field("error", msg)});
		// Nothing of a failed attempt may hold a PID the next one needs.
		if (auto k = kill_remains(); !k)
			warn(k.error().str());
		const std::string tag = "checkpoint " + std::to_string(n) + ":";
		reasons += "\n  " + (msg.rfind(tag, 0) == 0 ? msg : tag + " " + msg);
	}
	return fail(0, "no checkpoint in " + o_.dir + " can be restored:" + reasons);
}

Result<void> Supervisor::fresh_start()
{
	for (const Output &o : outputs_) {
		struct stat st;
		if (o.managed && fstat(o.fd.get(), &st) == 0 && uint64_t(st.st_size) > o.base &&
		    ftruncate(o.fd.get(), off_t(o.base)))
			return fail_errno("truncate " + o.path);
	}
	AMBER_TRY(spawn());
	event("fresh-start", {field("pid", uint64_t(pid_)), field("restarts", stats_.restarts)});
	next_ckpt_ = now_s() + interval_;
	return {};
}

// Waits until pid, killed, has been reaped by its parent (not us).
Result<void> Supervisor::wait_pid_free(pid_t pid, int pidfd)
{
	const double deadline = now_s() + kReapTimeoutS;
	if (pidfd >= 0) {
		struct pollfd p = {pidfd, POLLIN, 0};
		while (poll(&p, 1, int(kReapTimeoutS * 1000)) < 0 && errno == EINTR)
			;
	}
	while (kill(pid, 0) == 0 || errno != ESRCH) {
		if (now_s() > deadline) {
			auto parent = proc_parent(pid);
			return fail(0, "pid " + std::to_string(pid) +
					       " is a zombie that its parent (pid " +
					       (parent ? std::to_string(*parent) : std::string("?")) +
					       ") does not reap: its PID cannot be restored");
		}
		usleep(10000);
	}
	return {};
}

// The old tree of --resume (not our children), as found before its last
// checkpoint (procs: its descendants with pidfds): all of it dies (the
// checkpoint's KILL did it already when it succeeded), and we wait until
// every PID of it, and every PID the newest checkpoint's tree holds, is free
// for the restore.
Result<void> Supervisor::kill_orphaned_tree(pid_t root, int root_pidfd,
					    std::vector<std::pair<pid_t, UniqueFd>> procs,
					    bool checkpointed)
{
	if (!checkpointed) {
		// Forked since we looked: killed too (the root first, so that
		// it forks no more).
		if (root_pidfd >= 0)
			pidfd_send_signal(root_pidfd, SIGKILL);
		for (pid_t p : proc_descendants(root))
			if (std::none_of(procs.begin(), procs.end(),
					 [&](const auto &q) { return q.first == p; }))
				procs.emplace_back(p, UniqueFd(pidfd_open(p)));
		for (auto &[p, fd] : procs)
			if (fd)
				pidfd_send_signal(fd.get(), SIGKILL);
	}
	AMBER_TRY(wait_pid_free(root, root_pidfd));
	for (auto &[p, fd] : procs)
		AMBER_TRY(wait_pid_free(p, fd.get()));
	if (auto meta = store_.load_meta(std::nullopt)) {
		for (const ProcInfo &p : meta->tree)
			if (pid_t(p.pid) != root)
				AMBER_TRY(wait_pid_free(pid_t(p.pid), -1));
	}
	return {};
}

// Reaps every child that has exited except the program's root, whose death
// on_death() handles: orphans of the tree, reparented to the supervisor
// (a child subreaper), must not stay zombies.
void Supervisor::reap_orphans()
{
	for (;;) {
		siginfo_t si = {};
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
			return;
		if (si.si_pid == pid_ && pidfd_) {
			// The root is first in line: the others one by one.
			for (pid_t c : proc_children(getpid())) {
				siginfo_t o = {};
				if (c != pid_)
					waitid(P_PID, id_t(c), &o, WEXITED | WNOHANG);
			}
			return;
		}
		siginfo_t done = {};
		if (waitid(P_PID, id_t(si.si_pid), &done, WEXITED | WNOHANG) < 0)
			return;
	}
}

// After the root died: SIGKILL every process left of its tree (all our
// children now, and their descendants) and reap them, until we have no
// child. Returns how many processes were killed.
Result<size_t> Supervisor::kill_remains()
{
	const double deadline = now_s() + kReapTimeoutS;
	std::vector<pid_t> killed;
	for (;;) {
		int st;
		pid_t r;
		while ((r = waitpid(-1, &st, WNOHANG)) > 0)
			;
		if (r < 0 && errno == ECHILD)
			return killed.size();
		std::vector<pid_t> kids = proc_children(getpid());
		std::erase(kids, lease_.helper());
		if (kids.empty() && lease_.helper())
			return killed.size();
		for (pid_t c : kids) {
			std::vector<pid_t> all = proc_descendants(c);
			all.insert(all.begin(), c);
			for (pid_t p : all) {
				kill(p, SIGKILL);
				if (std::find(killed.begin(), killed.end(), p) == killed.end())
					killed.push_back(p);
			}
		}
		if (now_s() > deadline) {
			std::string left;
			for (pid_t c : kids)
				left += " " + std::to_string(c);
			return fail(0, "processes left by the program do not die:" + left);
		}
		usleep(kids.empty() ? 1000 : 200);
	}
}

Result<void> Supervisor::resume()
{
	std::optional<RunState> st;
	if (auto text = read_file(file("run.state"))) {
		auto s = parse_run_state(*text);
		if (!s)
			warn(file("run.state") + ": " + s.error().str() + " (ignored)");
		else
			st = *s;
	}
	if (st && !st->ended.empty())
		return fail(0, o_.dir + ": the run is over (" + st->ended + "): nothing to resume");
	const pid_t old = st ? pid_t(st->pid) : 0;
	event("resume", {field("pid", uint64_t(old))});

	const bool same = old > 0 && st->start_ticks && st->boot_id == boot_id_ &&
			  proc_start_ticks(old) == st->start_ticks;
	if (same) {
		// The program outlived its supervisor: a last checkpoint of its
		// whole tree, held and killed (nothing runs after the image),
		// then restored as our child.
		UniqueFd pfd(pidfd_open(old));
		std::vector<std::pair<pid_t, UniqueFd>> procs;
		for (pid_t p : proc_descendants(old))
			procs.emplace_back(p, UniqueFd(pidfd_open(p)));
		CheckpointRequest req;
		req.pid = uint32_t(old);
		req.dir = o_.dir;
		req.tree = true;
		req.kill = true;
		req.keep = conf_.keep;
		req.retain_policy = retain_policy();
		req.timeout_ms = kCheckpointTimeoutMs;
		req.ghost_limit = o_.ghost_limit;
		req.compress_level = o_.compress_level;
		req.before_publish = [this] { return sync_outputs(); };
		auto s = take_checkpoint(req);
		for (uint32_t attempt = 0; !s; attempt++) {
			auto delay = checkpoint_retry_delay(s.error().err, attempt);
			if (!delay)
				break;
			event("checkpoint-retry", {field("in_ms", format_ms(*delay * 1e3)),
						   field("attempt", attempt + 1),
						   quoted_field("error", s.error().str())});
			usleep(useconds_t(*delay * 1e6));
			s = take_checkpoint(req);
		}
		if (s) {
			record(*s);
		} else {
			stats_.failed_checkpoints++;
			event("checkpoint-failed", {quoted_field("error", s.error().str())});
		}
		AMBER_TRY(kill_orphaned_tree(old, pfd.get(), std::move(procs), bool(s)));
	}
	return recover();
}

void Supervisor::on_stop_signals()
{
	while (int sig = signals_.next()) {
		if (sig == SIGCHLD) {
			reap_orphans();
			continue;
		}
		event("stop", {field("signal", signal_name(sig))});
		stopping_ = true;
		if (pidfd_)
			pidfd_send_signal(pidfd_.get(), sig);
	}
}

Result<Supervisor::Next> Supervisor::on_death()
{
	siginfo_t si = {};
	while (waitid(P_PIDFD, id_t(pidfd_.get()), &si, WEXITED) < 0)
		if (errno != EINTR)
			return fail_errno("waitid " + std::to_string(pid_));
	pidfd_.reset();
	// A stop signal sent to the whole process group (^C) arrives here
	// together with the program's death: it ends the run. So does the
	// lease's loss (the guard killed it): the job runs elsewhere now.
	on_stop_signals();
	if (lease_.lost())
		on_lease_lost();
	exit_clock_.stop();
	stats_.wall_s = (exit_clock_.at() ? exit_clock_.at() : now_s()) - started_;

	const uint64_t pid = uint64_t(pid_);
	if (si.si_code == CLD_EXITED) {
		event("exit", {field("pid", pid), field("status", uint64_t(si.si_status))});
		stats_.exit_status = si.si_status;
		end("exit " + std::to_string(si.si_status));
		finish_replication(si.si_status);
		return Next::Done;
	}
	const int sig = si.si_status;
	const std::string name = signal_name(sig);
	event("died", {field("pid", pid), field("signal", name)});
	// What is left of the tree dies with its root: before the tree comes
	// back, and when the run stops (--resume brings all of it back).
	auto killed = kill_remains();
	if (killed && *killed)
		event("killed-remains", {field("processes", uint64_t(*killed))});
	if (!killed)
		return tl::unexpected(killed.error());
	if (stopping_ || !o_.restart) {
		// Not the end of the run: --resume may carry on (a job stopped
		// at its time limit, resumed later).
		stats_.exit_status = 128 + sig;
		finish_replication(stats_.exit_status);
		return Next::Done;
	}
	if (stats_.restarts >= conf_.max_restarts) {
		event("give-up", {field("restarts", stats_.restarts),
				  field("max", conf_.max_restarts)});
		warn("pid " + std::to_string(pid) + " was killed by " + name + "; giving up after " +
		     std::to_string(stats_.restarts) + " restarts (--max-restarts " +
		     std::to_string(conf_.max_restarts) + ")");
		stats_.exit_status = 128 + sig;
		finish_replication(stats_.exit_status);
		return Next::Done;
	}
	stats_.restarts++;
	AMBER_TRY(recover());
	return Next::Continue;
}

void Supervisor::draw_progress(double now)
{
	if (!progress_.due(now))
		return;
	std::string pause = "-";
	if (!stats_.checkpoints.empty())
		pause = format_ms(stats_.checkpoints.back().stopped_ms) + " ms";
	progress_.draw(fmt::format("amber run: pid {}, up {}, {} checkpoints, last pause {}, {} restarts",
				   pid_, uptime(now - started_), stats_.checkpoints.size(), pause,
				   stats_.restarts),
		       now);
}

Result<RunStats> Supervisor::run()
{
	AMBER_TRY(lock_dir());
	// Orphans of the program's tree stay ours (not init's): they are
	// reaped here and killed before a restore.
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		return fail_errno("prctl(PR_SET_CHILD_SUBREAPER)");
	// Without amber.ko the program would run unprotected: refuse early.
	if (auto nl = connect_module(); !nl)
		return tl::unexpected(nl.error());
	AMBER_TRY(setup_conf());
	log_.reset(open(file("run.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
	if (!log_)
		return fail_errno("cannot open " + file("run.log"));
	AMBER_TRY(open_outputs());
	AMBER_TRY(signals_.open());
	// Nothing of the job runs before the lease is ours.
	if (o_.lease || !o_.lease_config.endpoint.empty())
		AMBER_TRY(take_lease());
	if (!o_.replicate.empty())
		AMBER_TRY(start_replicator());
	if (!conf_.commit_stdout.empty())
		AMBER_TRY(open_commits());

	if (conf_.interval_s) {
		interval_ = *conf_.interval_s;
	} else {
		auto_.emplace(conf_.mtbf_s);
		interval_ = auto_->first();
	}

	if (o_.resume) {
		AMBER_TRY(resume());
	} else {
		if (auto r = spawn(); !r) {
			// Nothing ran: DIR may be used again.
			unlink(file("run.conf").c_str());
			return tl::unexpected(r.error());
		}
		event("start", {field("pid", uint64_t(pid_)),
				quoted_field("argv", shell_join(conf_.argv))});
		next_ckpt_ = now_s() + interval_;
	}

	for (;;) {
		double now = now_s();
		if (!stopping_ && now >= next_ckpt_) {
			checkpoint();
			continue;
		}
		draw_progress(now);
		double wait_s = stopping_ ? 1.0 : next_ckpt_ - now;
		if (progress_.on())
			wait_s = std::min(wait_s, 1.0);
		struct pollfd fds[4] = {
			{pidfd_.get(), POLLIN, 0},
			{signals_.fd(), POLLIN, 0},
			{replicator_ ? replicator_->fd() : -1, POLLIN, 0},
			{lease_.on() ? lease_.fd() : -1, POLLIN, 0},
		};
		int n = poll(fds, 4, int(std::max(0.0, wait_s) * 1000) + 1);
		if (n < 0 && errno != EINTR)
			return fail_errno("poll");
		if (n <= 0)
			continue;
		if (fds[2].revents)
			on_replica_events();
		if (fds[3].revents) {
			uint64_t v;
			(void)!read(lease_.fd(), &v, sizeof(v));
			on_lease_lost();
		}
		if (fds[1].revents)
			on_stop_signals();
		if (fds[0].revents && AMBER_TRY(on_death()) == Next::Done)
			break;
	}
	progress_.clear();
	return stats_;
}

} // namespace

namespace {

volatile sig_atomic_t lifeline_child = 0;

void pass_on(int sig)
{
	if (lifeline_child > 0)
		kill(pid_t(lifeline_child), sig);
}

} // namespace

int run_with_lifeline(const std::function<int()> &body)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) {
		fprintf(stderr, "amber: prctl(PR_SET_CHILD_SUBREAPER): %s\n", strerror(errno));
		return 1;
	}
	fflush(nullptr);
	const pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "amber: fork: %s\n", strerror(errno));
		return 1;
	}
	if (child == 0) {
		prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
		const int status = body();
		fflush(nullptr);
		_exit(status);
	}
	lifeline_child = child;
	struct sigaction sa = {};
	sa.sa_handler = pass_on;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, nullptr);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	int st = 0;
	for (;;) {
		const pid_t r = waitpid(-1, &st, 0);
		if (r == child)
			break;
		if (r < 0 && errno != EINTR)
			return 1;
	}
	lifeline_child = 0;
	if (WIFEXITED(st) && !proc_children(getpid()).size())
		return WEXITSTATUS(st);
	// The supervisor is gone: nothing it started may run on.
	size_t killed = 0;
	for (int round = 0; round < 1000; round++) {
		std::vector<pid_t> left = proc_descendants(getpid());
		for (pid_t p : left)
			kill(p, SIGKILL);
		killed += left.size();
		int ignored;
		while (waitpid(-1, &ignored, WNOHANG) > 0)
			;
		if (left.empty())
			break;
		usleep(1000);
	}
	if (WIFSIGNALED(st)) {
		fprintf(stderr, "amber: the supervisor (pid %d) was killed by %s: its job was killed "
				"too (%zu processes), its lease ends\n",
			int(child), signal_name(WTERMSIG(st)).c_str(), killed);
		return 128 + WTERMSIG(st);
	}
	return WEXITSTATUS(st);
}

Result<RunStats> run_supervised(const RunOptions &o)
{
	if (o.dir.empty())
		return fail(0, "no directory (-D DIR)");
	Supervisor s(o);
	auto r = s.run();
	// amber bench runs other programs afterwards: orphans are init's again.
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
	return r;
}

} // namespace amber
