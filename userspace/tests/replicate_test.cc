// SPDX-License-Identifier: GPL-2.0
// The replication stream: frames (stream.h), and a Replicator talking to
// `amber backup`'s receiver over loopback TCP (sender.h, backup.h), with
// hand-built checkpoints. Takeover needs amber.ko: the guest tests do it.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <climits>
#include <map>
#include <csignal>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/io.h"
#include "fixtures.h"
#include "image/store.h"
#include "replicate/backup.h"
#include "replicate/sender.h"
#include "replicate/stream.h"
#include "run/policy.h"

namespace amber {
namespace {

using testing::TempDir;

Bytes attrs(std::initializer_list<std::pair<uint16_t, uint32_t>> u32s)
{
	AttrWriter w;
	for (auto [t, v] : u32s)
		w.put_u32(t, v);
	return w.take();
}

Result<std::optional<Frame>> one_frame(ByteView bytes)
{
	FrameReader r;
	r.feed(bytes);
	return r.next();
}

TEST(Stream, FrameRoundTripsByteByByte)
{
	const Bytes payload = attrs({{kStreamNumber, 7}});
	const Bytes f = encode_frame(FrameType::Begin, payload);
	ASSERT_EQ(kFrameHeaderSize + payload.size(), f.size());
	FrameReader r;
	for (size_t i = 0; i < f.size(); i++) {
		auto got = r.next();
		ASSERT_TRUE(got) << got.error().str();
		EXPECT_FALSE(*got) << "a frame before all its bytes, at byte " << i;
		r.feed(ByteView(f.data() + i, 1));
	}
	auto got = r.next();
	ASSERT_TRUE(got && *got);
	EXPECT_EQ(FrameType::Begin, (*got)->type);
	EXPECT_EQ(payload, (*got)->payload);
	EXPECT_EQ(0u, r.buffered());
}

TEST(Stream, DamagedFramesAreRefusedByName)
{
	const Bytes good = encode_frame(FrameType::End, attrs({{kStreamNumber, 3}}));
	struct Case {
		size_t at;
		uint8_t xor_with;
		const char *says;
	} cases[] = {
		{0, 0x01, "bad frame magic"},
		{8, 0x02, "stream version 3"},
		{12, 0x40, "unknown frame type"},
		{kFrameHeaderSize + 4, 0x01, "END frame: checksum mismatch"},
		{24, 0x80, "checksum mismatch"},
	};
	for (const Case &c : cases) {
		Bytes b = good;
		b[c.at] ^= c.xor_with;
		auto r = one_frame(b);
		ASSERT_FALSE(r) << "byte " << c.at;
		EXPECT_NE(std::string::npos, r.error().str().find(c.says)) << r.error().str();
	}
}

TEST(Stream, OversizedLengthIsRefusedBeforeItArrives)
{
	Bytes b = encode_frame(FrameType::Data, {});
	// length = kMaxFramePayload + 1, and no payload: refused from the
	// header alone, nothing allocated for it.
	const uint64_t len = kMaxFramePayload + 1;
	for (int i = 0; i < 8; i++)
		b[16 + i] = uint8_t(len >> (8 * i));
	auto r = one_frame(b);
	ASSERT_FALSE(r);
	EXPECT_EQ(EMSGSIZE, r.error().err);
}

TEST(Stream, PathsStayInsideTheCheckpoint)
{
	for (const char *ok : {"meta.img", "pages.img.zst", "proc/123/meta.img", "ghost-3"})
		EXPECT_TRUE(valid_stream_path(ok)) << ok;
	for (const char *bad : {"", "/etc/passwd", "../x", "proc/../../x", "proc//x", ".tmp",
				"a/b/c/d/e", "x/", "a b", "proc/./x", "latest\n"})
		EXPECT_FALSE(valid_stream_path(bad)) << bad;
}

TEST(Stream, Arrays)
{
	EXPECT_EQ((std::vector<uint32_t>{1, 2, 0xffffffff}),
		  *parse_u32_array(u32_array({1, 2, 0xffffffff})));
	EXPECT_EQ((std::vector<uint64_t>{5, uint64_t(1) << 40}),
		  *parse_u64_array(u64_array({5, uint64_t(1) << 40})));
	const uint8_t three[3] = {1, 2, 3};
	EXPECT_FALSE(parse_u32_array(ByteView(three, 3)));
	EXPECT_FALSE(parse_u64_array(ByteView(three, 3)));
}

TEST(Stream, HostPort)
{
	EXPECT_EQ(AF_INET, parse_host_port("10.77.0.2:7000")->family);
	EXPECT_EQ(AF_INET6, parse_host_port("[::1]:7000")->family);
	for (const char *bad : {"10.77.0.2", "10.77.0.2:0", "10.77.0.2:65536", "host:7000",
				"[::1:7000", ":7000", "10.77.0.2:x"})
		EXPECT_FALSE(parse_host_port(bad)) << bad;
}

// ---- a backup receiving over loopback -----------------------------------

class Replication : public ::testing::Test {
protected:
	void SetUp() override
	{
		char real[PATH_MAX];
		ASSERT_NE(nullptr, realpath(backup_.path().c_str(), real));
		job_ = real;
		conf_.argv = {"/bin/true"};
		conf_.cwd = "/";
		conf_.stdout_path = job_ + "/stdout";
		conf_.stderr_path = job_ + "/stderr";
		conf_.interval_s = 1;
		port_ = 20000 + getpid() % 20000;
		addr_ = "127.0.0.1:" + std::to_string(port_);
	}
	void TearDown() override
	{
		if (child_ > 0) {
			kill(child_, SIGKILL);
			waitpid(child_, nullptr, 0);
		}
	}

	// `amber backup` in a child process, listening once this returns.
	void start_backup()
	{
		fflush(nullptr);
		child_ = fork();
		ASSERT_GE(child_, 0);
		if (child_ == 0) {
			BackupOptions o;
			o.dir = job_;
			o.listen = addr_;
			o.takeover_after_s = 3600;
			auto r = run_backup(o);
			if (!r)
				fprintf(stderr, "backup: %s\n", r.error().str().c_str());
			_exit(r ? *r : 99);
		}
		for (int i = 0; i < 200; i++) {
			if (connect_raw(false))
				return;
			usleep(10000);
		}
		FAIL() << "the backup does not listen on " << addr_;
	}
	UniqueFd connect_raw(bool keep = true)
	{
		UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
		sockaddr_in a = {};
		a.sin_family = AF_INET;
		a.sin_port = htons(uint16_t(port_));
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)))
			return UniqueFd();
		if (!keep)
			return UniqueFd(dup(fd.get()));
		return fd;
	}
	int wait_backup()
	{
		int st = 0;
		for (int i = 0; i < 1000; i++) {
			if (waitpid(child_, &st, WNOHANG) == child_) {
				child_ = -1;
				return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			}
			usleep(10000);
		}
		return -1;
	}
	Bytes hello() const
	{
		const std::string conf = format_run_conf(conf_);
		AttrWriter w;
		w.put_string(kStreamJob, job_);
		w.put_string(kStreamHost, "test");
		w.put_binary(kStreamConf,
			     ByteView(reinterpret_cast<const uint8_t *>(conf.data()), conf.size()));
		return w.take();
	}
	// The next frame from fd that is not a heartbeat (5 s at most).
	static std::optional<Frame> answer(int fd, FrameReader &r)
	{
		for (int i = 0; i < 500; i++) {
			auto f = r.next();
			if (!f)
				return std::nullopt;
			if (*f && (*f)->type != FrameType::Heartbeat)
				return std::move(**f);
			if (*f)
				continue;
			struct pollfd p = {fd, POLLIN, 0};
			if (poll(&p, 1, 10) > 0) {
				auto more = r.fill(fd);
				if (!more || !*more)
					return std::nullopt;
			}
		}
		return std::nullopt;
	}

	TempDir primary_, backup_;
	std::string job_, addr_;
	RunConf conf_;
	int port_ = 0;
	pid_t child_ = -1;
};

TEST_F(Replication, ChainThenDeltaThenGoodbye)
{
	using testing::RunSpec;
	using testing::pg;
	const std::string p = primary_.path();
	testing::write_link(p, 1, 0, {RunSpec{pg(0), 8}});
	testing::write_link(p, 2, 1, {RunSpec{pg(0), 2, true}, RunSpec{pg(2), 1}, RunSpec{pg(3), 5, true}});
	testing::set_latest(p, 2);
	// The primary's outputs: what the job wrote up to the checkpoint.
	const std::string out = p + "/stdout", err = p + "/stderr";
	testing::spit(out, Bytes{'h', 'e', 'l', 'l', 'o', '\n'});
	testing::spit(err, Bytes{});
	start_backup();

	Replicator r(addr_, job_, format_run_conf(conf_), {out, err});
	ASSERT_TRUE(r.start());
	Store ps(p);
	auto snap = snapshot_checkpoint(ps, 2);
	ASSERT_TRUE(snap) << snap.error().str();
	ASSERT_EQ(2u, snap->links.size());
	snap->output_sizes = {6, 0};
	r.offer(std::move(*snap));
	for (int i = 0; i < 500 && r.acked() != 2; i++)
		usleep(10000);
	ASSERT_EQ(2u, r.acked());

	// A delta on top: only checkpoint 3 goes (the backup has 1 and 2).
	testing::write_link(p, 3, 2, {RunSpec{pg(0), 1}, RunSpec{pg(1), 7, true}});
	testing::set_latest(p, 3);
	testing::spit(out, Bytes{'h', 'e', 'l', 'l', 'o', '\n', 'b', 'y', 'e', '\n'});
	auto s3 = snapshot_checkpoint(ps, 3);
	ASSERT_TRUE(s3);
	s3->output_sizes = {10, 0};
	r.offer(std::move(*s3));
	for (int i = 0; i < 500 && r.acked() != 3; i++)
		usleep(10000);
	ASSERT_EQ(3u, r.acked());
	r.finish(5, 5.0);
	EXPECT_EQ(5, wait_backup());

	std::vector<std::string> sent;
	for (const ReplicaEvent &e : r.take_events())
		if (e.name == "replicated")
			for (const LogField &f : e.fields)
				if (f.key == "links")
					sent.push_back(f.value);
	EXPECT_EQ((std::vector<std::string>{"2", "1"}), sent);

	// Every link is the primary's, byte for byte (the backup's lazy
	// retention keeps a chain this short), and 3 restores.
	Store bs(backup_.path());
	EXPECT_EQ((std::vector<uint32_t>{1, 2, 3}), *bs.list());
	EXPECT_EQ(3u, *bs.latest());
	auto v = bs.verify(3);
	EXPECT_TRUE(v) << v.error().str();
	for (uint32_t n : {1u, 2u, 3u})
		for (const char *f : {"meta.img", "pages.img"})
			EXPECT_EQ(testing::slurp(ps.path(n) + "/" + f),
				  testing::slurp(bs.path(n) + "/" + f))
				<< n << "/" << f;
	auto chain = bs.load_chain(3);
	ASSERT_TRUE(chain) << chain.error().str();
	auto mine = ps.load_chain(3);
	ASSERT_TRUE(mine);
	// Every page of 3, read through each store's chain, is the same.
	auto memory = [](const std::vector<Checkpoint> &links) {
		auto src = resolve_chain(testing::ptrs(links));
		EXPECT_TRUE(src) << src.error().str();
		std::map<uint64_t, Bytes> pages;
		for (const PageSource &ps : src.value_or(std::vector<PageSource>{})) {
			UniqueFd fd(open(links[ps.link].pages_path.c_str(), O_RDONLY | O_CLOEXEC));
			for (uint64_t i = 0; i < ps.nr_pages; i++) {
				Bytes b(testing::kPs);
				EXPECT_TRUE(pread_full(fd.get(), b.data(), b.size(),
						       ps.offset + i * testing::kPs));
				pages[ps.addr + i * testing::kPs] = std::move(b);
			}
		}
		return pages;
	};
	const auto theirs = memory(*chain), ours = memory(*mine);
	EXPECT_EQ(8u, ours.size());
	EXPECT_TRUE(theirs == ours);
	EXPECT_EQ(testing::slurp(out), testing::slurp(conf_.stdout_path));
	auto st = read_file(job_ + "/run.state");
	ASSERT_TRUE(st);
	EXPECT_NE(std::string::npos, st->find("exit 5 on the primary")) << *st;
}

TEST_F(Replication, MalformedStreamNeverReachesTheStore)
{
	using testing::RunSpec;
	using testing::pg;
	start_backup();
	UniqueFd c = connect_raw();
	ASSERT_TRUE(c);
	FrameReader r;
	ASSERT_TRUE(send_frame(c.get(), FrameType::Hello, hello(), 5));
	auto st = answer(c.get(), r);
	ASSERT_TRUE(st);
	EXPECT_EQ(FrameType::State, st->type);

	// A checkpoint whose meta.img is damaged: refused (NACK, named), not
	// stored.
	const std::string p = primary_.path();
	testing::write_link(p, 1, 0, {RunSpec{pg(0), 4}});
	Bytes meta = testing::slurp(p + "/1/meta.img");
	meta[meta.size() / 2] ^= 0x10;
	const Bytes pages = testing::slurp(p + "/1/pages.img");
	auto file = [&](const char *path, const Bytes &data) {
		AttrWriter w;
		w.put_string(kStreamPath, path);
		w.put_u64(kStreamSize, data.size());
		ASSERT_TRUE(send_frame(c.get(), FrameType::File, w.view(), 5));
		ASSERT_TRUE(send_frame(c.get(), FrameType::Data, data, 5));
	};
	ASSERT_TRUE(send_frame(c.get(), FrameType::Begin, attrs({{kStreamNumber, 1}}), 5));
	file("pages.img", pages);
	file("meta.img", meta);
	ASSERT_TRUE(send_frame(c.get(), FrameType::End, attrs({{kStreamNumber, 1}}), 5));
	auto nack = answer(c.get(), r);
	ASSERT_TRUE(nack);
	ASSERT_EQ(FrameType::Nack, nack->type);
	auto a = parse_attrs(nack->payload);
	ASSERT_TRUE(a);
	const Attr *m = find_attr(*a, kStreamMessage);
	ASSERT_TRUE(m);
	EXPECT_NE(std::string::npos, m->str().find("checkpoint 1: meta.img")) << m->str();

	// An incremental checkpoint whose parent the backup lacks: refused.
	testing::write_link(p, 3, 2, {RunSpec{pg(0), 4, true}});
	ASSERT_TRUE(send_frame(c.get(), FrameType::Begin, attrs({{kStreamNumber, 3}}), 5));
	file("pages.img", testing::slurp(p + "/3/pages.img"));
	file("meta.img", testing::slurp(p + "/3/meta.img"));
	ASSERT_TRUE(send_frame(c.get(), FrameType::End, attrs({{kStreamNumber, 3}}), 5));
	nack = answer(c.get(), r);
	ASSERT_TRUE(nack);
	ASSERT_EQ(FrameType::Nack, nack->type);
	a = parse_attrs(nack->payload);
	EXPECT_NE(std::string::npos,
		  find_attr(*a, kStreamMessage)->str().find("parent checkpoint 2 is not in"));

	// A path out of the checkpoint, then garbage: the connection ends.
	ASSERT_TRUE(send_frame(c.get(), FrameType::Begin, attrs({{kStreamNumber, 4}}), 5));
	AttrWriter w;
	w.put_string(kStreamPath, "../../escaped");
	w.put_u64(kStreamSize, 1);
	ASSERT_TRUE(send_frame(c.get(), FrameType::File, w.view(), 5));
	EXPECT_FALSE(answer(c.get(), r)) << "the backup kept a connection that sent ../";
	UniqueFd g = connect_raw();
	const char junk[] = "GET / HTTP/1.0\r\n\r\n.................";
	ASSERT_EQ(ssize_t(sizeof(junk)), write(g.get(), junk, sizeof(junk)));
	FrameReader gr;
	EXPECT_FALSE(answer(g.get(), gr)) << "the backup kept a connection that sent junk";

	Store bs(backup_.path());
	EXPECT_TRUE(bs.list()->empty());
	EXPECT_NE(0, access((job_ + "/../escaped").c_str(), F_OK));
	EXPECT_NE(0, access((job_ + "/latest").c_str(), F_OK));

	// The backup still serves: a goodbye ends it.
	UniqueFd b = connect_raw();
	ASSERT_TRUE(send_frame(b.get(), FrameType::Hello, hello(), 5));
	ASSERT_TRUE(send_frame(b.get(), FrameType::Bye, attrs({{kStreamStatus, 0}}), 5));
	EXPECT_EQ(0, wait_backup());
}

TEST_F(Replication, RefusesAnotherDirectory)
{
	start_backup();
	UniqueFd c = connect_raw();
	AttrWriter w;
	const std::string conf = format_run_conf(conf_);
	w.put_string(kStreamJob, "/somewhere/else");
	w.put_binary(kStreamConf, ByteView(reinterpret_cast<const uint8_t *>(conf.data()), conf.size()));
	ASSERT_TRUE(send_frame(c.get(), FrameType::Hello, w.view(), 5));
	FrameReader r;
	EXPECT_FALSE(answer(c.get(), r));
	auto log = read_file(job_ + "/backup.log");
	ASSERT_TRUE(log);
	EXPECT_NE(std::string::npos, log->find("they must be the same path")) << *log;
	EXPECT_NE(0, access((job_ + "/run.conf").c_str(), F_OK));
}

} // namespace
} // namespace amber
