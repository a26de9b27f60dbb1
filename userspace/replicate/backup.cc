// SPDX-License-Identifier: GPL-2.0
// amber backup (backup.h): receives checkpoints, stores them, acknowledges
// them once durable, and takes the job over when the primary falls silent.
#include "replicate/backup.h"

#include <arpa/inet.h>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/io.h"
#include "image/image.h"
#include "image/store.h"
#include "replicate/stream.h"
#include "run/policy.h"

namespace amber {

namespace fs = std::filesystem;

Result<SockAddr> parse_host_port(const std::string &s)
{
	std::string host, port;
	if (!s.empty() && s[0] == '[') {
		const size_t close = s.find("]:");
		if (close == std::string::npos)
			return fail(EINVAL, "'" + s + "': expected [ADDR]:PORT");
		host = s.substr(1, close - 1);
		port = s.substr(close + 2);
	} else {
		const size_t colon = s.rfind(':');
		if (colon == std::string::npos)
			return fail(EINVAL, "'" + s + "': expected ADDR:PORT");
		host = s.substr(0, colon);
		port = s.substr(colon + 1);
	}
	char *end = nullptr;
	errno = 0;
	const unsigned long p = strtoul(port.c_str(), &end, 10);
	if (port.empty() || *end || errno || p == 0 || p > 65535)
		return fail(EINVAL, "'" + s + "': bad port '" + port + "'");
	SockAddr a;
	sockaddr_in v4 = {};
	sockaddr_in6 v6 = {};
	if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
		v4.sin_family = AF_INET;
		v4.sin_port = htons(uint16_t(p));
		memcpy(a.storage, &v4, sizeof(v4));
		a.len = sizeof(v4);
		a.family = AF_INET;
	} else if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
		v6.sin6_family = AF_INET6;
		v6.sin6_port = htons(uint16_t(p));
		memcpy(a.storage, &v6, sizeof(v6));
		a.len = sizeof(v6);
		a.family = AF_INET6;
	} else {
		return fail(EINVAL, "'" + s + "': '" + host + "' is not a numeric IPv4 or IPv6 address");
	}
	return a;
}

namespace {

// The backup never holds more than this in one file of a checkpoint.
constexpr uint64_t kMaxFileSize = uint64_t(1) << 40;

class Receiver {
public:
	explicit Receiver(const BackupOptions &o) : o_(o), store_(o.dir) {}
	Result<int> run();

private:
	// What serve() ended with.
	enum class End { Bye, Takeover };

	std::string file(const char *name) const { return o_.dir + "/" + name; }
	void event(const char *name, const std::vector<LogField> &fields);
	Result<void> open_listener();
	void accept_conn();
	void drop_conn(const std::string &why);
	Result<End> serve();
	// One frame from the primary; an error ends the connection.
	Result<void> on_frame(const Frame &f);
	Result<void> on_hello(const std::vector<Attr> &a);
	Result<void> on_begin(const std::vector<Attr> &a);
	Result<void> on_file(const std::vector<Attr> &a);
	Result<void> on_output(const std::vector<Attr> &a);
	Result<void> on_data(ByteView d);
	Result<void> on_end(const std::vector<Attr> &a);
	Result<void> verify_pending(uint32_t number);
	Result<void> send(FrameType t, ByteView payload);
	Result<bool> takeover_allowed();

	BackupOptions o_;
	Store store_;
	UniqueFd lock_, log_, listen_, conn_;
	FrameReader reader_;
	std::string peer_;

	bool hello_ = false;
	bool heard_ = false;		// a primary spoke in this life
	double last_rx_ = 0;
	std::optional<int> bye_status_;

	std::optional<PendingCheckpoint> pending_;
	UniqueFd file_;			// the file being received
	std::string file_path_;
	uint64_t file_left_ = 0;
	int out_index_ = -1;		// the output being received
	uint64_t out_off_ = 0, out_left_ = 0;

	RunConf conf_;
	std::vector<std::string> out_paths_;
	std::vector<UniqueFd> outputs_;
	std::optional<Lease> lease_;
	bool warned_no_lease_ = false;
};

void Receiver::event(const char *name, const std::vector<LogField> &fields)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (log_)
		(void)write_all(log_.get(), format_log_line(ts, name, fields));
	if (o_.verbose)
		fprintf(stderr, "amber backup: %s\n", format_event(name, fields).c_str());
}

Result<void> Receiver::open_listener()
{
	SockAddr a = AMBER_TRY(parse_host_port(o_.listen));
	listen_.reset(socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
	if (!listen_)
		return fail_errno("socket");
	int one = 1;
	setsockopt(listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(listen_.get(), reinterpret_cast<sockaddr *>(a.storage), a.len))
		return fail_errno("cannot listen on " + o_.listen);
	if (listen(listen_.get(), 4))
		return fail_errno("listen " + o_.listen);
	return {};
}

// A new primary connection replaces the old one (a primary that restarted,
// or whose old connection is half dead).
void Receiver::accept_conn()
{
	sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	UniqueFd c(accept4(listen_.get(), reinterpret_cast<sockaddr *>(&ss), &len,
			   SOCK_CLOEXEC | SOCK_NONBLOCK));
	if (!c)
		return;
	if (conn_)
		drop_conn("a new connection replaces it");
	char host[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;
	if (ss.ss_family == AF_INET) {
		auto *in = reinterpret_cast<sockaddr_in *>(&ss);
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		auto *in = reinterpret_cast<sockaddr_in6 *>(&ss);
		inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof(host));
		port = ntohs(in->sin6_port);
	}
	int one = 1;
	setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	unsigned int user_timeout_ms = 5000;
	setsockopt(c.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
		   sizeof(user_timeout_ms));
	conn_ = std::move(c);
	peer_ = std::string(host) + ":" + std::to_string(port);
	reader_ = FrameReader();
	hello_ = false;
	event("connected", {field("peer", peer_)});
}

void Receiver::drop_conn(const std::string &why)
{
	event("disconnected", {field("peer", peer_), quoted_field("why", why)});
	conn_.reset();
	reader_ = FrameReader();
	hello_ = false;
	// A checkpoint not ended is not stored (its .tmp goes).
	if (pending_)
		event("dropped", {field("n", pending_->number())});
	pending_.reset();
	file_.reset();
	out_index_ = -1;
}

Result<void> Receiver::send(FrameType t, ByteView payload)
{
	return send_frame(conn_.get(), t, payload, 5.0);
}

Result<void> Receiver::on_hello(const std::vector<Attr> &a)
{
	const Attr *job = find_attr(a, kStreamJob);
	const Attr *conf = find_attr(a, kStreamConf);
	if (!job || !conf)
		return fail(EBADMSG, "HELLO without JOB or CONF");
	char real[PATH_MAX];
	if (!realpath(o_.dir.c_str(), real))
		return fail_errno("realpath " + o_.dir);
	if (job->str() != real)
		return fail(EINVAL, "the primary's DIR is " + job->str() + ", this backup's " +
					    real + ": they must be the same path (images name "
					    "the output files by path)");
	const std::string text(conf->data.begin(), conf->data.end());
	auto c = parse_run_conf(text);
	if (!c)
		return wrap(c.error(), "HELLO: run.conf: ");
	conf_ = std::move(*c);
	AMBER_TRY(write_file_atomic(file("run.conf"), text, true));
	// The output files, as the primary's run.conf names them (one file
	// when stdout and stderr are the same).
	outputs_.clear();
	out_paths_.clear();
	for (const std::string &p : {conf_.stdout_path, conf_.stderr_path}) {
		if (std::find(out_paths_.begin(), out_paths_.end(), p) != out_paths_.end())
			continue;
		UniqueFd fd(open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
		if (!fd)
			return fail_errno("cannot open output " + p);
		out_paths_.push_back(p);
		outputs_.push_back(std::move(fd));
	}
	hello_ = true;
	const Attr *host = find_attr(a, kStreamHost);
	event("hello", {field("peer", peer_), quoted_field("host", host ? host->str() : "")});

	std::vector<uint32_t> have = AMBER_TRY(store_.list());
	std::vector<uint64_t> sizes;
	for (const UniqueFd &fd : outputs_) {
		struct stat st;
		if (fstat(fd.get(), &st))
			return fail_errno("stat output");
		sizes.push_back(uint64_t(st.st_size));
	}
	AttrWriter w;
	w.put_binary(kStreamNumbers, u32_array(have));
	w.put_binary(kStreamOutputSizes, u64_array(sizes));
	return send(FrameType::State, w.view());
}

Result<void> Receiver::on_begin(const std::vector<Attr> &a)
{
	const Attr *n = find_attr(a, kStreamNumber);
	if (!n)
		return fail(EBADMSG, "BEGIN without NUMBER");
	const uint32_t number = AMBER_TRY(n->u32());
	if (number == 0)
		return fail(EBADMSG, "BEGIN of checkpoint 0");
	if (pending_)
		return fail(EBADMSG, "BEGIN " + std::to_string(number) + " inside checkpoint " +
					     std::to_string(pending_->number()));
	pending_.emplace(AMBER_TRY(store_.begin_at(number)));
	return {};
}

Result<void> Receiver::on_file(const std::vector<Attr> &a)
{
	const Attr *p = find_attr(a, kStreamPath);
	const Attr *s = find_attr(a, kStreamSize);
	if (!p || !s)
		return fail(EBADMSG, "FILE without PATH or SIZE");
	if (!pending_)
		return fail(EBADMSG, "FILE outside a checkpoint");
	if (file_ || out_index_ >= 0)
		return fail(EBADMSG, "FILE before the previous one was complete");
	const std::string path = p->str();
	if (!valid_stream_path(path))
		return fail(EBADMSG, "FILE: bad path '" + path + "'");
	const uint64_t size = AMBER_TRY(s->u64());
	if (size > kMaxFileSize)
		return fail(EFBIG, "FILE " + path + ": " + std::to_string(size) + " bytes");
	// Its directories inside the checkpoint (proc/PID/...).
	size_t slash = 0;
	while ((slash = path.find('/', slash + 1)) != std::string::npos) {
		const std::string d = pending_->tmp_path(path.substr(0, slash).c_str());
		if (mkdir(d.c_str(), 0700) && errno != EEXIST)
			return fail_errno("mkdir " + d);
	}
	file_path_ = pending_->tmp_path(path.c_str());
	file_.reset(open(file_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (!file_)
		return fail_errno("cannot create " + file_path_);
	file_left_ = size;
	if (!size)
		file_.reset();
	return {};
}

Result<void> Receiver::on_output(const std::vector<Attr> &a)
{
	const Attr *i = find_attr(a, kStreamIndex);
	const Attr *off = find_attr(a, kStreamOffset);
	const Attr *s = find_attr(a, kStreamSize);
	if (!i || !off || !s)
		return fail(EBADMSG, "OUTPUT without INDEX, OFFSET or SIZE");
	if (file_ || out_index_ >= 0)
		return fail(EBADMSG, "OUTPUT before the previous file was complete");
	const uint32_t index = AMBER_TRY(i->u32());
	if (index >= outputs_.size())
		return fail(EBADMSG, "OUTPUT " + std::to_string(index) + " of " +
					     std::to_string(outputs_.size()) + " output files");
	const uint64_t offset = AMBER_TRY(off->u64());
	const uint64_t size = AMBER_TRY(s->u64());
	struct stat st;
	if (fstat(outputs_[index].get(), &st))
		return fail_errno("stat " + out_paths_[index]);
	if (offset > uint64_t(st.st_size) || size > kMaxFileSize)
		return fail(EBADMSG, "OUTPUT " + out_paths_[index] + " at " + std::to_string(offset) +
					     ": the file has " + std::to_string(st.st_size) +
					     " bytes (no holes)");
	// The file is the primary's up to offset + size: longer here when the
	// primary cut its output back (it restored an older checkpoint).
	if (offset + size < uint64_t(st.st_size) &&
	    ftruncate(outputs_[index].get(), off_t(offset + size)))
		return fail_errno("truncate " + out_paths_[index]);
	if (size) {
		out_index_ = int(index);
		out_off_ = offset;
		out_left_ = size;
	}
	return {};
}

Result<void> Receiver::on_data(ByteView d)
{
	if (file_) {
		if (d.size() > file_left_)
			return fail(EBADMSG, "DATA past the end of " + file_path_);
		AMBER_TRY(write_all(file_.get(), d, file_path_));
		file_left_ -= d.size();
		if (!file_left_)
			file_.reset();
		return {};
	}
	if (out_index_ >= 0) {
		const std::string &path = out_paths_[size_t(out_index_)];
		if (d.size() > out_left_)
			return fail(EBADMSG, "DATA past the end of the output of " + path);
		AMBER_TRY(pwrite_full(outputs_[size_t(out_index_)].get(), d.data(), d.size(),
				      out_off_));
		out_off_ += d.size();
		out_left_ -= d.size();
		if (!out_left_)
			out_index_ = -1;
		return {};
	}
	return fail(EBADMSG, "DATA outside a file");
}

// Every process image of the pending checkpoint verified as a restore
// would read it, and its parent present in the store.
Result<void> Receiver::verify_pending(uint32_t number)
{
	const std::string root_dir = pending_->tmp_dir();
	Checkpoint root = AMBER_TRY(load_checkpoint_dir(root_dir, number));
	const uint32_t root_pid = root.info.pid;
	std::vector<std::pair<uint32_t, Checkpoint>> images;
	images.emplace_back(root_pid, std::move(root));
	for (uint32_t pid : image_pids(images[0].second)) {
		if (pid == root_pid)
			continue;
		const std::string d = process_dir(root_dir, pid, root_pid);
		auto c = load_checkpoint_dir(d, number);
		if (!c)
			return wrap(c.error(), process_prefix(pid, root_pid));
		if (c->info.pid != pid)
			return fail(EBADMSG, process_prefix(pid, root_pid) + "meta.img is pid " +
						     std::to_string(c->info.pid));
		images.emplace_back(pid, std::move(*c));
	}
	for (const auto &[pid, c] : images) {
		if (!c.info.parent)
			continue;
		const std::string parent_meta =
			store_.process_path(c.info.parent, pid, root_pid) + "/" + kMetaFile;
		if (c.info.parent >= number || access(parent_meta.c_str(), F_OK))
			return fail(ENOENT, process_prefix(pid, root_pid) + "parent checkpoint " +
						    std::to_string(c.info.parent) +
						    " is not in this backup");
	}
	return {};
}

Result<void> Receiver::on_end(const std::vector<Attr> &a)
{
	const Attr *n = find_attr(a, kStreamNumber);
	if (!n)
		return fail(EBADMSG, "END without NUMBER");
	const uint32_t number = AMBER_TRY(n->u32());
	if (!pending_ || pending_->number() != number)
		return fail(EBADMSG, "END " + std::to_string(number) + " of no BEGIN");
	if (file_ || out_index_ >= 0)
		return fail(EBADMSG, "END " + std::to_string(number) + " before its last file");
	const double t0 = now_s();
	auto v = verify_pending(number);
	if (!v) {
		const std::string msg = "checkpoint " + std::to_string(number) + ": " + v.error().str();
		event("refused", {field("n", number), quoted_field("error", msg)});
		pending_.reset();
		AttrWriter w;
		w.put_u32(kStreamNumber, number);
		w.put_string(kStreamMessage, msg);
		return send(FrameType::Nack, w.view());
	}
	for (size_t i = 0; i < outputs_.size(); i++)
		if (fsync(outputs_[i].get()))
			return fail_errno("fsync " + out_paths_[i]);
	AMBER_TRY(store_.publish(*pending_));
	event("stored", {field("n", number), field("ms", format_ms((now_s() - t0) * 1e3))});
	AttrWriter w;
	w.put_u32(kStreamNumber, number);
	AMBER_TRY(send(FrameType::Ack, w.view()));
	// Retention after the answer: it is not what makes N safe. Lazy, as
	// the primary's chains grow link by link and a compaction rewrites
	// all the memory.
	auto r = store_.retain(o_.keep, *pending_, kLazyRetainPolicy);
	if (!r)
		event("retain-failed", {quoted_field("error", r.error().str())});
	pending_.reset();
	return {};
}

Result<void> Receiver::on_frame(const Frame &f)
{
	if (f.type == FrameType::Data)
		return on_data(f.payload);
	auto attrs = parse_attrs(f.payload);
	if (!attrs)
		return wrap(attrs.error(), std::string(frame_type_name(f.type)) + ": ");
	if (f.type != FrameType::Hello && f.type != FrameType::Heartbeat && !hello_)
		return fail(EBADMSG, std::string(frame_type_name(f.type)) + " before HELLO");
	switch (f.type) {
	case FrameType::Hello:
		return on_hello(*attrs);
	case FrameType::Begin:
		return on_begin(*attrs);
	case FrameType::File:
		return on_file(*attrs);
	case FrameType::Output:
		return on_output(*attrs);
	case FrameType::End:
		return on_end(*attrs);
	case FrameType::Heartbeat:
		// Echoed: the primary knows we are alive.
		return send(FrameType::Heartbeat, f.payload);
	case FrameType::Bye: {
		const Attr *s = find_attr(*attrs, kStreamStatus);
		if (file_ || out_index_ >= 0 || pending_)
			return fail(EBADMSG, "BYE inside a checkpoint or output");
		for (size_t i = 0; i < outputs_.size(); i++)
			if (fsync(outputs_[i].get()))
				return fail_errno("fsync " + out_paths_[i]);
		bye_status_ = s ? int(AMBER_TRY(s->u32()) & 0xff) : 0;
		return {};
	}
	default:
		return fail(EBADMSG, std::string("unexpected ") + frame_type_name(f.type) +
					     " frame from the primary");
	}
}

// Whether the job may start here now: the lease is ours (or there is none).
Result<bool> Receiver::takeover_allowed()
{
	if (o_.lease.endpoint.empty()) {
		if (!warned_no_lease_)
			fprintf(stderr, "amber backup: no --etcd: taking over without a lease "
					"(nothing prevents two copies if the primary lives)\n");
		warned_no_lease_ = true;
		return true;
	}
	if (!lease_)
		lease_.emplace(AMBER_TRY(Lease::start(o_.lease)));
	auto got = lease_->try_acquire();
	if (!got) {
		event("lease-error", {quoted_field("error", got.error().str())});
		return false;
	}
	if (!*got)
		event("lease-busy", {quoted_field("holder", lease_->holder())});
	return *got;
}

Result<Receiver::End> Receiver::serve()
{
	double next_try = 0;
	for (;;) {
		const double now = now_s();
		const bool silent = heard_ && now - last_rx_ >= o_.takeover_after_s;
		if (silent && now >= next_try) {
			auto have = store_.list();
			if (have && !have->empty()) {
				if (AMBER_TRY(takeover_allowed()))
					return End::Takeover;
				next_try = now + 0.1;
			}
		}
		struct pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {conn_.get(), POLLIN, 0}};
		double wait = 1.0;
		if (heard_)
			wait = std::max(0.0, std::min(wait, silent ? next_try - now
							   : last_rx_ + o_.takeover_after_s - now));
		int r = poll(fds, conn_ ? 2 : 1, int(wait * 1000) + 1);
		if (r < 0 && errno != EINTR)
			return fail_errno("poll");
		if (r <= 0)
			continue;
		if (fds[0].revents)
			accept_conn();
		if (!conn_ || !fds[1].revents)
			continue;
		auto more = reader_.fill(conn_.get());
		if (!more) {
			drop_conn(more.error().str());
			continue;
		}
		for (;;) {
			auto f = reader_.next();
			if (!f) {
				drop_conn(f.error().str());
				break;
			}
			if (!*f)
				break;
			last_rx_ = now_s();
			heard_ = true;
			if (auto h = on_frame(**f); !h) {
				event("stream-error", {quoted_field("error", h.error().str())});
				fprintf(stderr, "amber backup: %s: %s\n", peer_.c_str(),
					h.error().str().c_str());
				drop_conn(h.error().str());
				break;
			}
			if (bye_status_)
				return End::Bye;
		}
		if (conn_ && !*more)
			drop_conn("the primary closed the connection");
	}
}

Result<int> Receiver::run()
{
	std::error_code ec;
	fs::create_directories(o_.dir, ec);
	if (ec)
		return fail(ec.value(), "cannot create " + o_.dir);
	const std::string lock = file("backup.lock");
	lock_.reset(open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
	if (!lock_)
		return fail_errno("cannot open " + lock);
	if (flock(lock_.get(), LOCK_EX | LOCK_NB))
		return fail(EBUSY, o_.dir + " is served by another amber backup");
	log_.reset(open(file("backup.log").c_str(),
			O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
	if (!log_)
		return fail_errno("cannot open " + file("backup.log"));
	AMBER_TRY(open_listener());
	event("listen", {field("addr", o_.listen)});

	const End how = AMBER_TRY(serve());
	listen_.reset();
	if (how == End::Bye) {
		event("job-ended", {field("status", uint64_t(*bye_status_))});
		RunState st;
		st.ended = "exit " + std::to_string(*bye_status_) + " on the primary";
		AMBER_TRY(write_file_atomic(file("run.state"), format_run_state(st), true));
		return *bye_status_;
	}
	const double silent_ms = (now_s() - last_rx_) * 1e3;
	event("takeover", {field("silent_ms", format_ms(silent_ms))});
	conn_.reset();
	RunOptions r = o_.run;
	r.dir = o_.dir;
	r.resume = true;
	if (lease_)
		r.lease = std::make_shared<Lease>(std::move(*lease_));
	lock_.reset();
	auto supervise = [&r]() -> int {
		auto stats = run_supervised(r);
		if (!stats) {
			fprintf(stderr, "amber backup: %s\n", stats.error().str().c_str());
			return 1;
		}
		return stats->exit_status;
	};
	// The job dies with its supervisor (run.h); without a lease there is
	// nothing to protect against.
	return r.lease ? run_with_lifeline(supervise) : supervise();
}

} // namespace

Result<int> run_backup(const BackupOptions &o)
{
	if (o.dir.empty())
		return fail(0, "no directory (-D DIR)");
	Receiver r(o);
	return r.run();
}

} // namespace amber
