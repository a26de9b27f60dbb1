// SPDX-License-Identifier: GPL-2.0
// The replication lease, amber's side (lease.h): spawns build/amber-lease
// and follows its reports.
#include "replicate/lease.h"

#include <climits>
#include <csignal>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "common/io.h"

extern char **environ;

namespace amber {

namespace {

constexpr int kAcquireWaitMs = 10000;	// the helper bounds each request to 2 s
constexpr int kReleaseWaitMs = 2000;	// a renewal in flight, then the revoke
constexpr int kExitWaitMs = 1000;

unsigned bit(LeaseMsg::Kind k)
{
	return 1u << k;
}

Result<std::string> helper_path(const LeaseConfig &c)
{
	std::string path = c.helper;
	if (path.empty())
		if (const char *env = getenv("AMBER_LEASE_HELPER"); env && *env)
			path = env;
	if (path.empty()) {
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0)
			return fail_errno("readlink /proc/self/exe");
		std::string exe(self, size_t(n));
		path = exe.substr(0, exe.rfind('/') + 1) + "amber-lease";
	}
	if (access(path.c_str(), X_OK))
		return fail_errno("the lease helper " + path);
	return path;
}

std::string describe_status(int st)
{
	if (WIFEXITED(st))
		return "exited with status " + std::to_string(WEXITSTATUS(st));
	if (WIFSIGNALED(st))
		return std::string("killed by ") + strsignal(WTERMSIG(st));
	return "ended";
}

} // namespace

Result<Lease> Lease::start(const LeaseConfig &c)
{
	if (c.endpoint.empty() || c.key.empty())
		return fail(EINVAL, "the lease needs an etcd endpoint and a key");
	if (c.ttl_s < 1 || c.ttl_s > 3600)
		return fail(EINVAL, "lease TTL " + std::to_string(c.ttl_s) + " s is not within 1..3600");
	const std::string path = AMBER_TRY(helper_path(c));

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return fail_errno("socketpair");
	UniqueFd ours(sv[0]), theirs(sv[1]);
	if (fcntl(ours.get(), F_SETFL, O_NONBLOCK))
		return fail_errno("fcntl O_NONBLOCK");

	const std::string ttl = std::to_string(c.ttl_s);
	std::vector<const char *> argv = {path.c_str(), "--endpoint", c.endpoint.c_str(),
					  "--key",	c.key.c_str(),	"--holder",
					  c.holder.c_str(), "--ttl", ttl.c_str(), nullptr};

	// Its socket on stdin and stdout, nothing else open; its own process
	// group (a ^C for amber is amber's to handle: it kills the job, then
	// releases); no signal blocked nor ignored.
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_adddup2(&fa, theirs.get(), 0);
	posix_spawn_file_actions_adddup2(&fa, theirs.get(), 1);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM})
		sigaddset(&dfl, s);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
						POSIX_SPAWN_SETPGROUP);
	pid_t pid;
	int err = posix_spawn(&pid, path.c_str(), &fa, &attr, const_cast<char **>(argv.data()),
			      environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (err)
		return fail(err, "cannot start " + path);

	Lease l;
	l.pid_ = pid;
	l.sock_ = std::move(ours);
	l.self_ = c.holder;
	return l;
}

Lease::Lease(Lease &&o) noexcept
	: pid_(std::exchange(o.pid_, -1)), sock_(std::move(o.sock_)), in_(std::move(o.in_)),
	  held_(std::exchange(o.held_, false)), valid_until_(std::exchange(o.valid_until_, 0)),
	  lease_id_(o.lease_id_), ttl_s_(o.ttl_s_), revision_(o.revision_),
	  holder_(std::move(o.holder_)), self_(std::move(o.self_)), note_(std::move(o.note_)),
	  exit_(std::move(o.exit_))
{
}

Lease &Lease::operator=(Lease &&o) noexcept
{
	if (this != &o) {
		this->~Lease();
		new (this) Lease(std::move(o));
	}
	return *this;
}

Lease::~Lease()
{
	release();
	stop();
}

bool Lease::held() const
{
	return held_ && now_s() < valid_until_;
}

Result<void> Lease::send(const char *cmd)
{
	if (!sock_)
		return fail(EPIPE, "amber-lease " + (exit_.empty() ? "is not running" : exit_));
	std::string line = std::string(cmd) + "\n";
	size_t off = 0;
	while (off < line.size()) {
		ssize_t n = ::send(sock_.get(), line.data() + off, line.size() - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			pollfd p{sock_.get(), POLLOUT, 0};
			if (poll(&p, 1, kExitWaitMs) <= 0)
				return fail(ETIMEDOUT, "amber-lease does not read its input");
			continue;
		}
		if (n < 0) {
			Error e(errno, "write to amber-lease");
			helper_gone();
			return tl::unexpected(e);
		}
		off += size_t(n);
	}
	return {};
}

void Lease::apply(const LeaseMsg &m)
{
	switch (m.kind) {
	case LeaseMsg::Renewed:
		if (held_ && m.lease == lease_id_) {
			valid_until_ = std::max(valid_until_, lease_valid_until(m.send_ns, m.ttl_s));
			ttl_s_ = m.ttl_s;
		}
		break;
	case LeaseMsg::Lost:
		if (held_ && m.lease == lease_id_) {
			held_ = false;
			valid_until_ = 0;
		}
		note_ = "lease " + std::to_string(m.lease) + " lost: " + m.text;
		break;
	case LeaseMsg::Note:
		note_ = m.text;
		break;
	default:
		break;
	}
}

Result<bool> Lease::pump(unsigned want, int timeout_ms, LeaseMsg *reply)
{
	const int64_t deadline = now_ms() + std::max(timeout_ms, 0);
	for (;;) {
		if (!sock_)
			return fail(EPIPE, "amber-lease " + (exit_.empty() ? "is not running" : exit_));
		char buf[4096];
		const ssize_t n = read(sock_.get(), buf, sizeof(buf));
		const int err = n < 0 ? errno : 0;
		if (n > 0)
			in_.append(buf, size_t(n));
		// The complete lines so far, up to a reply.
		size_t nl;
		while ((nl = in_.find('\n')) != std::string::npos) {
			auto m = parse_lease_msg(std::string_view(in_).substr(0, nl));
			in_.erase(0, nl + 1);
			if (!m) {
				note_ = m.error().msg;
			} else if (want & bit(m->kind)) {
				*reply = std::move(*m);
				return true;
			} else {
				apply(*m);
			}
		}
		if (in_.size() > 65536) {
			stop();
			return fail(EPROTO, "amber-lease: a line without end");
		}
		if (n == 0 || (n < 0 && err != EAGAIN && err != EINTR)) {
			helper_gone();
			return fail(n ? err : EPIPE, "amber-lease " + exit_);
		}
		if (n > 0 || err == EINTR)
			continue;
		// Nothing more to read now.
		const int64_t left = deadline - now_ms();
		if (timeout_ms < 0 || left <= 0)
			return false;
		pollfd p{sock_.get(), POLLIN, 0};
		if (poll(&p, 1, int(left)) < 0 && errno != EINTR)
			return fail_errno("poll");
	}
}

// The complete lines left after a reply: a later poll() would not tell of
// them, they were read already.
void Lease::drain()
{
	size_t nl;
	while ((nl = in_.find('\n')) != std::string::npos) {
		auto m = parse_lease_msg(std::string_view(in_).substr(0, nl));
		in_.erase(0, nl + 1);
		if (m)
			apply(*m);
		else
			note_ = m.error().msg;
	}
}

Result<void> Lease::update()
{
	LeaseMsg unused;
	AMBER_TRY(pump(0, -1, &unused));
	return {};
}

Result<bool> Lease::try_acquire()
{
	if (held())
		return true;
	// Lapsed without a report yet: the helper replaces the lease.
	held_ = false;
	valid_until_ = 0;
	AMBER_TRY(send("acquire"));
	LeaseMsg r;
	const bool got = AMBER_TRY(
		pump(bit(LeaseMsg::Acquired) | bit(LeaseMsg::Busy) | bit(LeaseMsg::Error),
		     kAcquireWaitMs, &r));
	if (!got) {
		// It might still acquire; without it, any lease it has runs out.
		stop();
		return fail(ETIMEDOUT, "amber-lease did not answer within " +
					       std::to_string(kAcquireWaitMs / 1000) + " s");
	}
	switch (r.kind) {
	case LeaseMsg::Acquired:
		held_ = true;
		lease_id_ = r.lease;
		ttl_s_ = r.ttl_s;
		revision_ = r.revision;
		valid_until_ = lease_valid_until(r.send_ns, r.ttl_s);
		holder_ = self_;
		drain();
		return true;
	case LeaseMsg::Busy:
		holder_ = std::move(r.text);
		revision_ = r.revision;
		drain();
		return false;
	default:
		drain();
		return fail(EIO, "amber-lease: " + r.text);
	}
}

void Lease::release()
{
	if (!held_ || !sock_) {
		held_ = false;
		valid_until_ = 0;
		return;
	}
	held_ = false;
	valid_until_ = 0;
	if (!send("release"))
		return;
	LeaseMsg r;
	auto got = pump(bit(LeaseMsg::Released), kReleaseWaitMs, &r);
	if (got && !*got)
		stop();	// not answering: the lease runs out by its TTL
	drain();
}

// The helper closed its end: reap it. What it reported stands: valid_until()
// advances no more.
void Lease::helper_gone()
{
	sock_.reset();
	stop();
}

// Closes its input (it exits at once, without revoking), waits a second,
// then kills it.
void Lease::stop()
{
	sock_.reset();
	if (pid_ < 0)
		return;
	int st = 0;
	pid_t r = 0;
	for (int i = 0; i < kExitWaitMs / 10; i++) {
		r = waitpid(pid_, &st, WNOHANG);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != 0)
			break;
		usleep(10000);
	}
	if (r == 0) {
		kill(pid_, SIGKILL);
		while ((r = waitpid(pid_, &st, 0)) < 0 && errno == EINTR)
			;
	}
	// ECHILD: someone else reaped it (a supervisor reaping all children).
	exit_ = r == pid_ ? describe_status(st) : "ended";
	pid_ = -1;
}

} // namespace amber
