// SPDX-License-Identifier: GPL-2.0
// amber bench overhead: the pure parts (bench.h): overhead, the interval
// list, the CSV of the contract, the table, the gnuplot script (run through
// gnuplot when it is installed) and CRIU's stats-dump reader.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"

using namespace amber;

namespace {

BenchRow row(const char *tool, double interval_s, double wall_s, std::vector<double> stopped,
	     uint64_t bytes, uint32_t failed = 0)
{
	BenchRow r;
	r.tool = tool;
	r.interval_s = interval_s;
	r.wall_s = wall_s;
	r.stopped_ms = std::move(stopped);
	r.bytes = bytes;
	r.failed = failed;
	return r;
}

BenchRow baseline(double wall_s)
{
	return row("none", 0, wall_s, {}, 0);
}

bool contains(const std::string &s, const std::string &what)
{
	return s.find(what) != std::string::npos;
}

// Protobuf varint.
void varint(std::vector<uint8_t> &b, uint64_t v)
{
	do {
		uint8_t c = v & 0x7f;
		v >>= 7;
		b.push_back(c | (v ? 0x80 : 0));
	} while (v);
}

void le32(std::vector<uint8_t> &b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b.push_back(uint8_t(v >> (8 * i)));
}

// A stats-dump image as CRIU 3.17 writes it: IMG_SERVICE, STATS, then one
// entry: size, StatsEntry { dump = DumpStatsEntry { ... } }.
std::vector<uint8_t> stats_image(const std::vector<uint8_t> &dump_fields, bool magic_ok = true)
{
	std::vector<uint8_t> entry = {0x0a};
	varint(entry, dump_fields.size());
	entry.insert(entry.end(), dump_fields.begin(), dump_fields.end());
	std::vector<uint8_t> f;
	le32(f, 0x55105940);
	le32(f, magic_ok ? 0x57093306 : 0x57093307);
	le32(f, entry.size());
	f.insert(f.end(), entry.begin(), entry.end());
	return f;
}

std::vector<uint8_t> dump_fields(uint32_t freezing, uint32_t frozen, uint64_t written)
{
	std::vector<uint8_t> d;
	d.push_back(1 << 3);
	varint(d, freezing);
	d.push_back(2 << 3);
	varint(d, frozen);
	d.push_back(3 << 3);		// memdump_time
	varint(d, 777);
	d.push_back(5 << 3);		// pages_scanned (uint64)
	varint(d, 131072);
	d.push_back(7 << 3);
	varint(d, written);
	return d;
}

} // namespace

TEST(BenchOverhead, Percent)
{
	EXPECT_NEAR(1.0876, overhead_pct(61.9, 61.234), 1e-4);
	EXPECT_NEAR(-10.0, overhead_pct(90, 100), 1e-9);
	EXPECT_EQ(0.0, overhead_pct(61.9, 0));
}

TEST(BenchOverhead, MeanMax)
{
	EXPECT_FALSE(mean_max({}).has_value());
	auto m = mean_max({1, 6, 2});
	ASSERT_TRUE(m.has_value());
	EXPECT_DOUBLE_EQ(3.0, m->mean);
	EXPECT_DOUBLE_EQ(6.0, m->max);
}

TEST(BenchOverhead, FormatSeconds)
{
	EXPECT_EQ("5", format_seconds(5));
	EXPECT_EQ("30", format_seconds(30));
	EXPECT_EQ("0.5", format_seconds(0.5));
	EXPECT_EQ("1.25", format_seconds(1.25));
	EXPECT_EQ("0.001", format_seconds(0.001));
	EXPECT_EQ("120", format_seconds(120));
}

TEST(BenchOverhead, IntervalList)
{
	auto d = parse_interval_list("1s,2s,5s,10s,30s");
	ASSERT_TRUE(d.has_value()) << d.error().str();
	EXPECT_EQ((std::vector<double>{1, 2, 5, 10, 30}), *d);

	d = parse_interval_list("500ms,1.5s,2m,45");
	ASSERT_TRUE(d.has_value()) << d.error().str();
	EXPECT_EQ((std::vector<double>{0.5, 1.5, 120, 45}), *d);

	// The given order is kept.
	d = parse_interval_list("30s,1s");
	ASSERT_TRUE(d.has_value()) << d.error().str();
	EXPECT_EQ((std::vector<double>{30, 1}), *d);
}

TEST(BenchOverhead, IntervalListErrors)
{
	for (const char *bad : {"", "1s,", ",1s", "1s,,2s", "1s,x", "0s", "-1s", "5s,5s", "5s,5000ms"}) {
		auto d = parse_interval_list(bad);
		EXPECT_FALSE(d.has_value()) << "\"" << bad << "\" was accepted";
		if (!d.has_value()) {
			EXPECT_TRUE(contains(d.error().str(), "--intervals")) << d.error().str();
		}
	}
	auto d = parse_interval_list("1s,1s");
	ASSERT_FALSE(d.has_value());
	EXPECT_TRUE(contains(d.error().str(), "given twice")) << d.error().str();
}

TEST(BenchOverhead, CsvIsTheContractsFormat)
{
	std::vector<BenchRow> rows = {
		row("amber", 5, 61.9, {20.0, 42.4}, 123456789),
		row("amber", 0.5, 70.5, {1.0, 2.0, 3.0}, 1000, 2),
		row("criu", 5, 65.0, {100.0, 300.0}, 987654321),
		row("criu", 30, 62.0, {}, 0),
	};
	EXPECT_EQ("tool,interval_s,wall_s,overhead_pct,checkpoints,stopped_mean_ms,stopped_max_ms,"
		  "bytes_written\n"
		  "none,,61.234,0.00,0,,,0\n"
		  "amber,5,61.900,1.09,2,31.2,42.4,123456789\n"
		  "amber,0.5,70.500,15.13,3,2.0,3.0,1000\n"
		  "criu,5,65.000,6.15,2,200.0,300.0,987654321\n"
		  "criu,30,62.000,1.25,0,,,0\n",
		  format_csv(baseline(61.234), rows));
}

TEST(BenchOverhead, CsvBaselineOnly)
{
	EXPECT_EQ("tool,interval_s,wall_s,overhead_pct,checkpoints,stopped_mean_ms,stopped_max_ms,"
		  "bytes_written\nnone,,10.000,0.00,0,,,0\n",
		  format_csv(baseline(10), {}));
}

TEST(BenchOverhead, Table)
{
	const std::string t = format_table(
		baseline(61.234), {row("amber", 5, 61.9, {20.0, 42.4}, 3 * 1048576, 1),
				   row("criu", 5, 65.0, {}, 0)});
	std::vector<std::string> lines;
	for (size_t p = 0, q; (q = t.find('\n', p)) != std::string::npos; p = q + 1)
		lines.push_back(t.substr(p, q - p));
	ASSERT_EQ(4u, lines.size()) << t;
	for (const char *h : {"tool", "interval", "wall", "overhead", "checkpoints", "failed",
			      "stopped mean", "stopped max", "written"})
		EXPECT_TRUE(contains(lines[0], h)) << h;
	EXPECT_TRUE(contains(lines[1], "none")) << lines[1];
	EXPECT_TRUE(contains(lines[1], "61.234 s")) << lines[1];
	EXPECT_TRUE(contains(lines[1], "0.00 %")) << lines[1];
	EXPECT_TRUE(contains(lines[2], "amber")) << lines[2];
	EXPECT_TRUE(contains(lines[2], "5 s")) << lines[2];
	EXPECT_TRUE(contains(lines[2], "1.09 %")) << lines[2];
	EXPECT_TRUE(contains(lines[2], "31.2 ms")) << lines[2];
	EXPECT_TRUE(contains(lines[2], "42.4 ms")) << lines[2];
	EXPECT_TRUE(contains(lines[2], "3.0 MiB")) << lines[2];
	EXPECT_TRUE(contains(lines[3], "criu")) << lines[3];
	EXPECT_TRUE(contains(lines[3], "6.15 %")) << lines[3];
	// Columns line up: every line is as long as the header.
	for (const std::string &l : lines)
		EXPECT_EQ(lines[0].size(), l.size()) << l;
}

TEST(BenchOverhead, GnuplotScript)
{
	const std::string s = gnuplot_script(
		baseline(100), {row("amber", 1, 110, {}, 0), row("amber", 5, 101, {}, 0),
				row("criu", 1, 150, {}, 0), row("criu", 5, 120, {}, 0)},
		"/tmp/it's.png", "compute --mib 512");
	EXPECT_TRUE(contains(s, "set output '/tmp/it''s.png'\n")) << s;
	EXPECT_TRUE(contains(s, "set logscale x\n")) << s;
	EXPECT_TRUE(contains(s, "set title 'compute --mib 512' noenhanced\n")) << s;
	EXPECT_TRUE(contains(s, "set xtics ('1' 1, '5' 5)\n")) << s;
	EXPECT_TRUE(contains(s, "$amber << EOD\n1 10.000\n5 1.000\nEOD\n")) << s;
	EXPECT_TRUE(contains(s, "$criu << EOD\n1 50.000\n5 20.000\nEOD\n")) << s;
	EXPECT_TRUE(contains(s, "plot $amber using 1:2 with linespoints")) << s;
	EXPECT_TRUE(contains(s, "$criu using 1:2 with linespoints")) << s;
	EXPECT_TRUE(contains(s, "title 'amber'")) << s;
	EXPECT_TRUE(contains(s, "title 'criu'")) << s;
}

// The script is one gnuplot accepts and it writes a PNG.
TEST(BenchOverhead, GnuplotDrawsThePng)
{
	if (access("/usr/bin/gnuplot", X_OK) != 0)
		GTEST_SKIP() << "/usr/bin/gnuplot is not installed (scripts/setup.sh installs it)";
	char dir[] = "/tmp/bench-test.XXXXXX";
	ASSERT_NE(nullptr, mkdtemp(dir));
	const std::string png = std::string(dir) + "/o.png", gp = std::string(dir) + "/o.gp";
	FILE *f = fopen(gp.c_str(), "w");
	ASSERT_NE(nullptr, f);
	fputs(gnuplot_script(baseline(60), {row("amber", 1, 63, {}, 0), row("amber", 2, 61, {}, 0),
					    row("criu", 1, 70, {}, 0), row("criu", 2, 66, {}, 0)},
			     png, "test")
		      .c_str(),
	      f);
	fclose(f);
	const std::string cmd = "/usr/bin/gnuplot " + gp + " 2>&1";
	int st = system(cmd.c_str());
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << cmd;
	unsigned char magic[8] = {};
	f = fopen(png.c_str(), "rb");
	ASSERT_NE(nullptr, f) << png;
	EXPECT_EQ(8u, fread(magic, 1, 8, f));
	fclose(f);
	EXPECT_EQ(0, memcmp(magic, "\x89PNG\r\n\x1a\n", 8));
	unlink(png.c_str());
	unlink(gp.c_str());
	rmdir(dir);
}

TEST(BenchOverhead, IncrementalRate)
{
	std::vector<RunCheckpoint> c(3);
	c[0].bytes = 512u << 20;	// full: not counted
	c[0].total_ms = 2000;
	c[1].incremental = true;
	c[1].bytes = 10u << 20;
	c[1].total_ms = 500;
	c[2].incremental = true;
	c[2].bytes = 14u << 20;
	// (10 + 14) MiB over (5 + 2) + (5 + 0.5) s
	auto r = incremental_rate(c, 5);
	ASSERT_TRUE(r.has_value());
	EXPECT_NEAR(24.0 * 1048576 / 12.5, *r, 1e-6);

	EXPECT_FALSE(incremental_rate({c[0]}, 5).has_value());
	EXPECT_FALSE(incremental_rate({}, 5).has_value());
}

TEST(BenchOverhead, CriuStats)
{
	auto st = parse_criu_stats(stats_image(dump_fields(1234, 456789, 300000)));
	ASSERT_TRUE(st.has_value()) << st.error().str();
	EXPECT_EQ(1234u, st->freezing_time_us);
	EXPECT_EQ(456789u, st->frozen_time_us);
	EXPECT_EQ(300000u, st->pages_written);
}

// A stats-dump written by CRIU 3.17 (`criu dump --leave-running --track-mem`
// in the test VM); `crit show` printed freezing_time 6689, frozen_time
// 1044356, pages_written 16411 for it.
TEST(BenchOverhead, CriuStatsFromCriu317)
{
	const std::vector<uint8_t> f = {
		0x40, 0x59, 0x10, 0x55, 0x06, 0x33, 0x09, 0x57, 0x29, 0x00, 0x00, 0x00,
		0x0a, 0x27, 0x08, 0xa1, 0x34, 0x10, 0x84, 0xdf, 0x3f, 0x18, 0xbf, 0x8e,
		0x1b, 0x20, 0xd3, 0xa5, 0x0f, 0x28, 0xf5, 0xdc, 0x01, 0x30, 0x00, 0x38,
		0x9b, 0x80, 0x01, 0x40, 0x00, 0x48, 0x00, 0x50, 0x08, 0x58, 0x08, 0x60,
		0x00, 0x68, 0x00, 0x70, 0x00};
	auto st = parse_criu_stats(f);
	ASSERT_TRUE(st.has_value()) << st.error().str();
	EXPECT_EQ(6689u, st->freezing_time_us);
	EXPECT_EQ(1044356u, st->frozen_time_us);
	EXPECT_EQ(16411u, st->pages_written);
}

TEST(BenchOverhead, CriuStatsErrors)
{
	auto bad = [](const std::vector<uint8_t> &f, const char *what) {
		auto st = parse_criu_stats(f);
		ASSERT_FALSE(st.has_value()) << what;
		EXPECT_TRUE(contains(st.error().str(), "stats-dump")) << st.error().str();
	};
	bad({}, "empty");
	bad(stats_image(dump_fields(1, 2, 3), false), "wrong magic");
	auto f = stats_image(dump_fields(1, 2, 3));
	f.pop_back();
	bad(f, "truncated");
	// A frozen_time is required.
	std::vector<uint8_t> d = {1 << 3, 5};
	bad(stats_image(d), "no frozen_time");
	// A restore's stats (field 2) instead of the dump's.
	std::vector<uint8_t> r;
	le32(r, 0x55105940);
	le32(r, 0x57093306);
	le32(r, 4);
	r.insert(r.end(), {0x12, 0x02, 0x08, 0x01});
	bad(r, "restore stats");
}
