// SPDX-License-Identifier: GPL-2.0
// The Replicator (sender.h): the primary's replication thread.
#include "replicate/sender.h"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <filesystem>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/io.h"
#include "replicate/backup.h"

namespace amber {

namespace fs = std::filesystem;

namespace {

// Longest wait for the backup's verdict on one checkpoint (it verifies and
// fsyncs all of it first).
constexpr double kAckTimeoutS = 120;
constexpr double kConnectTimeoutS = 1.0;
constexpr double kReconnectS = 0.5;

Result<ReplicaLink> open_link(const Store &store, uint32_t number)
{
	ReplicaLink l;
	l.number = number;
	const std::string base = store.path(number);
	std::error_code ec;
	for (const auto &e : fs::recursive_directory_iterator(base, ec)) {
		std::error_code fec;
		if (!e.is_regular_file(fec))
			continue;
		ReplicaFile f;
		f.path = fs::relative(e.path(), base, fec).string();
		if (fec || !valid_stream_path(f.path))
			return fail(EINVAL, "checkpoint " + std::to_string(number) +
						    ": cannot replicate file " + e.path().string());
		f.fd = AMBER_TRY(open_file(e.path().string(), O_RDONLY));
		struct stat st;
		if (fstat(f.fd.get(), &st))
			return fail_errno("stat " + e.path().string());
		f.size = uint64_t(st.st_size);
		l.bytes += f.size;
		l.files.push_back(std::move(f));
	}
	if (ec)
		return fail(ec.value(), base);
	// meta.img last: the backup sees every file of a process before its
	// meta names them (not needed for correctness, END is; tidier logs).
	std::stable_sort(l.files.begin(), l.files.end(), [](const auto &a, const auto &b) {
		return a.path.size() > b.path.size();
	});
	return l;
}

} // namespace

Result<ReplicaSnapshot> snapshot_checkpoint(const Store &store, uint32_t number)
{
	ReplicaSnapshot s;
	s.number = number;
	s.published_at = now_s();
	auto chains = AMBER_TRY(store.process_chains(number));
	for (uint32_t k : needed_numbers(chains))
		s.links.push_back(AMBER_TRY(open_link(store, k)));
	if (s.links.empty() || s.links.back().number != number)
		return fail(EINVAL, "checkpoint " + std::to_string(number) + ": chain without it");
	return s;
}

std::vector<size_t> links_to_send(const ReplicaSnapshot &s, const std::set<uint32_t> &have)
{
	std::vector<size_t> out;
	for (size_t i = 0; i < s.links.size(); i++)
		if (!have.count(s.links[i].number))
			out.push_back(i);
	return out;
}

Replicator::Replicator(std::string addr, std::string job_dir, std::string conf,
		       std::vector<std::string> outputs)
	: addr_(std::move(addr)), job_dir_(std::move(job_dir)), conf_(std::move(conf)),
	  output_paths_(std::move(outputs))
{
}

Replicator::~Replicator()
{
	{
		std::lock_guard<std::mutex> g(mu_);
		stop_ = true;
	}
	cv_.notify_all();
	if (thread_.joinable())
		thread_.join();
}

Result<void> Replicator::start()
{
	AMBER_TRY(parse_host_port(addr_));
	for (const std::string &p : output_paths_)
		outputs_.push_back(AMBER_TRY(open_file(p, O_RDONLY)));
	wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	if (!wake_)
		return fail_errno("eventfd");
	thread_ = std::thread([this] { loop(); });
	return {};
}

void Replicator::offer(ReplicaSnapshot s)
{
	{
		std::lock_guard<std::mutex> g(mu_);
		next_ = std::make_shared<ReplicaSnapshot>(std::move(s));
	}
	cv_.notify_all();
}

bool Replicator::finish(int status, double timeout_s)
{
	{
		std::lock_guard<std::mutex> g(mu_);
		bye_ = status;
	}
	cv_.notify_all();
	{
		// The thread stops by itself once the goodbye is out (or the
		// backup is unreachable); past the timeout it is told to.
		std::unique_lock<std::mutex> g(mu_);
		cv_.wait_for(g, std::chrono::duration<double>(timeout_s), [this] { return stop_; });
		stop_ = true;
	}
	cv_.notify_all();
	if (thread_.joinable())
		thread_.join();
	return bye_done_.load();
}

std::vector<ReplicaEvent> Replicator::take_events()
{
	uint64_t v;
	(void)!read(wake_.get(), &v, sizeof(v));
	std::lock_guard<std::mutex> g(mu_);
	return std::move(events_);
}

void Replicator::stop_self()
{
	{
		std::lock_guard<std::mutex> g(mu_);
		stop_ = true;
	}
	cv_.notify_all();
}

void Replicator::post(std::string name, std::vector<LogField> fields)
{
	{
		std::lock_guard<std::mutex> g(mu_);
		events_.push_back({std::move(name), std::move(fields)});
	}
	uint64_t one = 1;
	(void)!write(wake_.get(), &one, sizeof(one));
}

Result<void> Replicator::send(FrameType t, ByteView payload)
{
	AMBER_TRY(send_frame(conn_.get(), t, payload, kBackupSilenceS));
	last_tx_ = now_s();
	return {};
}

void Replicator::drop(const std::string &why)
{
	if (conn_)
		post("replica-lost", {field("addr", addr_), quoted_field("why", why)});
	conn_.reset();
	reader_ = FrameReader();
	have_.clear();
}

Result<void> Replicator::heartbeat_if_due()
{
	const double now = now_s();
	if (now - last_tx_ < kHeartbeatS)
		return {};
	AttrWriter w;
	w.put_u64(kStreamSeq, ++seq_);
	w.put_u64(kStreamTimeNs, now_ns());
	return send(FrameType::Heartbeat, w.view());
}

Result<std::optional<Frame>> Replicator::poll_backup(double timeout_s)
{
	for (;;) {
		auto f = AMBER_TRY(reader_.next());
		if (f) {
			last_rx_ = now_s();
			if (f->type == FrameType::Heartbeat)
				continue;
			return f;
		}
		struct pollfd p = {conn_.get(), POLLIN, 0};
		int r = poll(&p, 1, int(timeout_s * 1000));
		if (r < 0 && errno != EINTR)
			return fail_errno("poll");
		if (r <= 0) {
			if (now_s() - last_rx_ > kBackupSilenceS)
				return fail(ETIMEDOUT, "the backup has been silent for " +
							       std::to_string(int(kBackupSilenceS)) + " s");
			return std::optional<Frame>();
		}
		if (!AMBER_TRY(reader_.fill(conn_.get())))
			return fail(ECONNRESET, "the backup closed the connection");
		timeout_s = 0;
	}
}

// The next frame other than a heartbeat, sending heartbeats meanwhile.
Result<Frame> Replicator::await_frame(double timeout_s)
{
	const double deadline = now_s() + timeout_s;
	for (;;) {
		AMBER_TRY(heartbeat_if_due());
		auto f = AMBER_TRY(poll_backup(kHeartbeatS));
		if (f)
			return std::move(*f);
		if (now_s() > deadline)
			return fail(ETIMEDOUT, "no answer from the backup in " +
						       std::to_string(int(timeout_s)) + " s");
	}
}

Result<void> Replicator::connect_backup()
{
	last_try_ = now_s();
	SockAddr a = AMBER_TRY(parse_host_port(addr_));
	UniqueFd c(socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
	if (!c)
		return fail_errno("socket");
	if (connect(c.get(), reinterpret_cast<sockaddr *>(a.storage), a.len) && errno != EINPROGRESS)
		return fail_errno("connect " + addr_);
	struct pollfd p = {c.get(), POLLOUT, 0};
	if (poll(&p, 1, int(kConnectTimeoutS * 1000)) <= 0)
		return fail(ETIMEDOUT, "connect " + addr_ + ": timed out");
	int err = 0;
	socklen_t len = sizeof(err);
	getsockopt(c.get(), SOL_SOCKET, SO_ERROR, &err, &len);
	if (err)
		return fail(err, "connect " + addr_);
	int one = 1;
	setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	unsigned int user_timeout_ms = unsigned(kBackupSilenceS * 1000);
	setsockopt(c.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
		   sizeof(user_timeout_ms));
	conn_ = std::move(c);
	reader_ = FrameReader();
	last_rx_ = now_s();

	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	AttrWriter w;
	w.put_string(kStreamJob, job_dir_);
	w.put_string(kStreamHost, host);
	w.put_binary(kStreamConf, ByteView(reinterpret_cast<const uint8_t *>(conf_.data()),
					   conf_.size()));
	AMBER_TRY(send(FrameType::Hello, w.view()));
	Frame f = AMBER_TRY(await_frame(kBackupSilenceS));
	if (f.type != FrameType::State)
		return fail(EPROTO, std::string("the backup answered HELLO with ") +
					    frame_type_name(f.type));
	auto attrs = AMBER_TRY(parse_attrs(f.payload));
	const Attr *nums = find_attr(attrs, kStreamNumbers);
	const Attr *sizes = find_attr(attrs, kStreamOutputSizes);
	if (!nums || !sizes)
		return fail(EPROTO, "STATE without NUMBERS or OUTPUT_SIZES");
	auto have = AMBER_TRY(parse_u32_array(nums->data));
	have_ = std::set<uint32_t>(have.begin(), have.end());
	backup_sizes_ = AMBER_TRY(parse_u64_array(sizes->data));
	backup_sizes_.resize(outputs_.size(), 0);
	post("replica-connected", {field("addr", addr_),
				   field("checkpoints", uint64_t(have_.size())),
				   field("newest", have_.empty() ? 0 : uint64_t(*have_.rbegin()))});
	lost_logged_ = false;
	return {};
}

Result<void> Replicator::send_outputs(const ReplicaSnapshot &s)
{
	for (size_t i = 0; i < outputs_.size() && i < s.output_sizes.size(); i++) {
		const uint64_t want = s.output_sizes[i];
		const uint64_t from = std::min(backup_sizes_[i], want);
		if (backup_sizes_[i] == want)
			continue;
		AttrWriter w;
		w.put_u32(kStreamIndex, uint32_t(i));
		w.put_u64(kStreamOffset, from);
		w.put_u64(kStreamSize, want - from);
		AMBER_TRY(send(FrameType::Output, w.view()));
		Bytes buf;
		for (uint64_t off = from; off < want;) {
			buf.resize(size_t(std::min(kDataChunk, want - off)));
			AMBER_TRY(pread_full(outputs_[i].get(), buf.data(), buf.size(), off));
			AMBER_TRY(send(FrameType::Data, buf));
			off += buf.size();
		}
		backup_sizes_[i] = want;
	}
	return {};
}

Result<void> Replicator::send_link(const ReplicaLink &l, const ReplicaSnapshot &s, bool outputs)
{
	AttrWriter b;
	b.put_u32(kStreamNumber, l.number);
	AMBER_TRY(send(FrameType::Begin, b.view()));
	Bytes buf;
	for (const ReplicaFile &f : l.files) {
		AttrWriter w;
		w.put_string(kStreamPath, f.path);
		w.put_u64(kStreamSize, f.size);
		AMBER_TRY(send(FrameType::File, w.view()));
		for (uint64_t off = 0; off < f.size;) {
			buf.resize(size_t(std::min(kDataChunk, f.size - off)));
			auto r = pread_full(f.fd.get(), buf.data(), buf.size(), off);
			if (!r)
				return wrap(r.error(), f.path + ": ");
			AMBER_TRY(send(FrameType::Data, buf));
			off += buf.size();
			// Answers (heartbeat echoes) must not fill our buffer.
			if (reader_.buffered() == 0)
				AMBER_TRY(poll_backup(0));
		}
	}
	if (outputs)
		AMBER_TRY(send_outputs(s));
	AMBER_TRY(send(FrameType::End, b.view()));
	Frame f = AMBER_TRY(await_frame(kAckTimeoutS));
	auto attrs = AMBER_TRY(parse_attrs(f.payload));
	const Attr *n = find_attr(attrs, kStreamNumber);
	const uint32_t number = n ? AMBER_TRY(n->u32()) : 0;
	if (f.type == FrameType::Nack) {
		const Attr *m = find_attr(attrs, kStreamMessage);
		return fail(EPROTO, "the backup refused checkpoint " + std::to_string(l.number) +
					    ": " + (m ? m->str() : std::string("?")));
	}
	if (f.type != FrameType::Ack || number != l.number)
		return fail(EPROTO, std::string("the backup answered checkpoint ") +
					    std::to_string(l.number) + " with " +
					    frame_type_name(f.type) + " " + std::to_string(number));
	have_.insert(l.number);
	return {};
}

Result<void> Replicator::replicate(const std::shared_ptr<ReplicaSnapshot> &s)
{
	const double t0 = now_s();
	uint64_t bytes = 0;
	const std::vector<size_t> todo = links_to_send(*s, have_);
	for (size_t i : todo) {
		const ReplicaLink &l = s->links[i];
		AMBER_TRY(send_link(l, *s, l.number == s->number));
		bytes += l.bytes;
	}
	if (todo.empty())
		return {};
	acked_.store(s->number);
	const double now = now_s();
	post("replicated", {field("n", s->number), field("links", uint64_t(todo.size())),
			    field("bytes", bytes), field("send_ms", format_ms((now - t0) * 1e3)),
			    field("lag_ms", format_ms((now - s->published_at) * 1e3))});
	return {};
}

void Replicator::loop()
{
	std::shared_ptr<ReplicaSnapshot> sent;
	for (;;) {
		std::shared_ptr<ReplicaSnapshot> snap;
		std::optional<int> bye;
		{
			std::unique_lock<std::mutex> g(mu_);
			if (stop_)
				return;
			snap = next_;
			bye = bye_;
		}
		if (!conn_) {
			const double wait = last_try_ + kReconnectS - now_s();
			if (wait > 0) {
				std::unique_lock<std::mutex> g(mu_);
				cv_.wait_for(g, std::chrono::duration<double>(wait));
				continue;
			}
			if (auto c = connect_backup(); !c) {
				if (!lost_logged_)
					post("replica-unreachable", {field("addr", addr_),
								     quoted_field("error", c.error().str())});
				lost_logged_ = true;
				conn_.reset();
				if (bye)
					return stop_self();
				continue;
			}
		}
		Result<void> r;
		if (snap && snap != sent) {
			r = replicate(snap);
			if (r)
				sent = snap;
		} else if (bye) {
			// The job's whole output first: the backup's copy of it
			// is complete when the job ended here.
			ReplicaSnapshot last;
			for (const UniqueFd &fd : outputs_) {
				struct stat st;
				last.output_sizes.push_back(fstat(fd.get(), &st) ? 0 : uint64_t(st.st_size));
			}
			r = send_outputs(last);
			AttrWriter w;
			w.put_u32(kStreamStatus, uint32_t(*bye));
			if (r)
				r = send(FrameType::Bye, w.view());
			// The backup closes the connection once it has it all
			// (outputs fsynced).
			for (double end = now_s() + kBackupSilenceS; r && now_s() < end;) {
				struct pollfd p = {conn_.get(), POLLIN, 0};
				if (poll(&p, 1, 100) > 0) {
					auto more = reader_.fill(conn_.get());
					if (!more || !*more)
						break;
				}
			}
			if (r) {
				bye_done_.store(true);
				post("replica-bye", {field("status", uint64_t(*bye))});
				return stop_self();
			}
		} else {
			r = heartbeat_if_due();
			if (r) {
				auto f = poll_backup(kHeartbeatS);
				if (!f)
					r = tl::unexpected(f.error());
				else if (*f)
					r = fail(EPROTO, std::string("unexpected ") +
								 frame_type_name((*f)->type) +
								 " from the backup");
			}
		}
		if (!r) {
			drop(r.error().str());
			// A refused or failed checkpoint is offered again on
			// reconnection only if no newer one came meanwhile.
			sent.reset();
		}
	}
}

} // namespace amber
