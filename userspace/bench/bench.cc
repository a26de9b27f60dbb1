// SPDX-License-Identifier: GPL-2.0
// amber bench overhead: rows, formatting, the plot script and CRIU's
// stats-dump reader (no I/O here; see bench.h).
#include "bench/bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace amber {

namespace {

std::string mib(uint64_t bytes)
{
	return fmt::format("{:.1f} MiB", bytes / 1048576.0);
}

// A gnuplot single-quoted string: only '' needs escaping.
std::string gp_quote(const std::string &s)
{
	std::string q = "'";
	for (char c : s) {
		if (c == '\'')
			q += '\'';
		if (c != '\n')
			q += c;
	}
	return q + "'";
}

// Datablock name for a tool: letters and digits only.
std::string gp_block(const std::string &tool)
{
	std::string b = "$";
	for (char c : tool)
		b += isalnum(static_cast<unsigned char>(c)) ? c : '_';
	return b;
}

// Protobuf wire format: base-128 varint.
bool read_varint(std::span<const uint8_t> b, size_t *pos, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*pos >= b.size())
			return false;
		uint8_t c = b[(*pos)++];
		*v |= uint64_t(c & 0x7f) << shift;
		if (!(c & 0x80))
			return true;
	}
	return false;
}

// Skips one field of the given wire type; false if it runs past the end.
bool skip_field(std::span<const uint8_t> b, size_t *pos, unsigned wire)
{
	uint64_t v;
	switch (wire) {
	case 0:
		return read_varint(b, pos, &v);
	case 1:
		*pos += 8;
		return *pos <= b.size();
	case 2:
		if (!read_varint(b, pos, &v) || v > b.size() - *pos)
			return false;
		*pos += v;
		return true;
	case 5:
		*pos += 4;
		return *pos <= b.size();
	default:
		return false;
	}
}

uint32_t le32(const uint8_t *p)
{
	return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// criu/include/magic.h
constexpr uint32_t kImgServiceMagic = 0x55105940;
constexpr uint32_t kStatsMagic = 0x57093306;

} // namespace

double overhead_pct(double wall_s, double baseline_s)
{
	if (!(baseline_s > 0))
		return 0;
	return 100.0 * (wall_s - baseline_s) / baseline_s;
}

std::optional<MeanMax> mean_max(const std::vector<double> &v)
{
	if (v.empty())
		return std::nullopt;
	MeanMax m;
	double sum = 0;
	m.max = v.front();
	for (double x : v) {
		sum += x;
		m.max = std::max(m.max, x);
	}
	m.mean = sum / v.size();
	return m;
}

Result<std::vector<double>> parse_interval_list(std::string_view s)
{
	std::vector<double> out;
	size_t start = 0;
	for (;;) {
		size_t comma = s.find(',', start);
		std::string_view item = s.substr(start, comma == s.npos ? s.npos : comma - start);
		if (item.empty())
			return fail(0, "--intervals \"" + std::string(s) +
						    "\": empty element (expected e.g. 1s,2s,5s)");
		auto d = parse_duration(item);
		if (!d)
			return wrap(d.error(), "--intervals: ");
		if (std::find(out.begin(), out.end(), *d) != out.end())
			return fail(0, "--intervals: " + std::string(item) + " is given twice");
		out.push_back(*d);
		if (comma == s.npos)
			return out;
		start = comma + 1;
	}
}

std::string format_seconds(double s)
{
	std::string t = fmt::format("{:.6f}", s);
	if (t.find('.') != t.npos) {
		while (t.back() == '0')
			t.pop_back();
		if (t.back() == '.')
			t.pop_back();
	}
	return t;
}

std::string format_csv(const BenchRow &baseline, const std::vector<BenchRow> &rows)
{
	std::string s = "tool,interval_s,wall_s,overhead_pct,checkpoints,stopped_mean_ms,"
			"stopped_max_ms,bytes_written\n";
	auto row = [&](const BenchRow &r, bool is_baseline) {
		s += r.tool + ",";
		s += is_baseline ? "" : format_seconds(r.interval_s);
		s += fmt::format(",{:.3f},{:.2f},{},", r.wall_s,
				 is_baseline ? 0.0 : overhead_pct(r.wall_s, baseline.wall_s),
				 r.stopped_ms.size());
		if (auto m = mean_max(r.stopped_ms))
			s += fmt::format("{:.1f},{:.1f}", m->mean, m->max);
		else
			s += ",";
		s += fmt::format(",{}\n", r.bytes);
	};
	row(baseline, true);
	for (const BenchRow &r : rows)
		row(r, false);
	return s;
}

std::string format_table(const BenchRow &baseline, const std::vector<BenchRow> &rows)
{
	constexpr const char *f = "{:<6} {:>9} {:>10} {:>10} {:>12} {:>7} {:>13} {:>13} {:>12}\n";
	std::string s = fmt::format(f, "tool", "interval", "wall", "overhead", "checkpoints",
				    "failed", "stopped mean", "stopped max", "written");
	auto row = [&](const BenchRow &r, bool is_baseline) {
		const auto m = mean_max(r.stopped_ms);
		s += fmt::format(
			f, r.tool, is_baseline ? "-" : format_seconds(r.interval_s) + " s",
			fmt::format("{:.3f} s", r.wall_s),
			fmt::format("{:.2f} %", is_baseline ? 0.0 : overhead_pct(r.wall_s, baseline.wall_s)),
			r.stopped_ms.size(), is_baseline ? "-" : std::to_string(r.failed),
			m ? fmt::format("{:.1f} ms", m->mean) : "-",
			m ? fmt::format("{:.1f} ms", m->max) : "-", mib(r.bytes));
	};
	row(baseline, true);
	for (const BenchRow &r : rows)
		row(r, false);
	return s;
}

std::string gnuplot_script(const BenchRow &baseline, const std::vector<BenchRow> &rows,
			   const std::string &png_path, const std::string &title)
{
	std::vector<std::string> tools;
	std::vector<double> xs;
	for (const BenchRow &r : rows) {
		if (std::find(tools.begin(), tools.end(), r.tool) == tools.end())
			tools.push_back(r.tool);
		if (std::find(xs.begin(), xs.end(), r.interval_s) == xs.end())
			xs.push_back(r.interval_s);
	}
	std::sort(xs.begin(), xs.end());

	std::string s = "# amber bench overhead: overhead against checkpoint interval\n";
	s += "set terminal pngcairo size 960,600 font ',11'\n";
	s += "set output " + gp_quote(png_path) + "\n";
	s += "set title " + gp_quote(title) + " noenhanced\n";
	s += "set xlabel 'checkpoint interval (s, log scale)'\n";
	s += "set ylabel 'overhead vs. no checkpoints (%)'\n";
	s += "set logscale x\n";
	if (!xs.empty()) {
		s += fmt::format("set xrange [{:g}:{:g}]\n", xs.front() / 1.5, xs.back() * 1.5);
		s += "set xtics (";
		for (size_t i = 0; i < xs.size(); i++) {
			const std::string x = format_seconds(xs[i]);
			s += (i ? ", " : "") + gp_quote(x) + " " + x;
		}
		s += ")\n";
	}
	s += "set grid\nset xzeroaxis lt -1\nset key top right\n";
	for (const std::string &t : tools) {
		s += gp_block(t) + " << EOD\n";
		for (const BenchRow &r : rows)
			if (r.tool == t)
				s += format_seconds(r.interval_s) +
				     fmt::format(" {:.3f}\n", overhead_pct(r.wall_s, baseline.wall_s));
		s += "EOD\n";
	}
	if (tools.empty())
		return s;
	s += "plot ";
	for (size_t i = 0; i < tools.size(); i++)
		s += fmt::format("{}{} using 1:2 with linespoints lw 2 pt {} ps 1.5 title {}",
				 i ? ", \\\n     " : "", gp_block(tools[i]), 7 + 2 * i,
				 gp_quote(tools[i]));
	return s + "\n";
}

std::optional<double> incremental_rate(const std::vector<RunCheckpoint> &c, double interval_s)
{
	double bytes = 0, seconds = 0;
	for (size_t i = 1; i < c.size(); i++) {
		if (!c[i].incremental)
			continue;
		bytes += c[i].bytes;
		seconds += interval_s + c[i - 1].total_ms / 1000.0;
	}
	if (!(seconds > 0))
		return std::nullopt;
	return bytes / seconds;
}

Result<CriuDumpStats> parse_criu_stats(std::span<const uint8_t> b)
{
	if (b.size() < 12)
		return fail(0, "stats-dump: " + std::to_string(b.size()) +
					    " bytes, too short for a CRIU image");
	if (le32(b.data()) != kImgServiceMagic || le32(b.data() + 4) != kStatsMagic)
		return fail(0, fmt::format("stats-dump: magic {:08x} {:08x}, expected {:08x} {:08x} (STATS)",
					le32(b.data()), le32(b.data() + 4), kImgServiceMagic,
					kStatsMagic));
	const uint32_t size = le32(b.data() + 8);
	if (size > b.size() - 12)
		return fail(0, "stats-dump: entry of " + std::to_string(size) +
					    " bytes, the file holds " + std::to_string(b.size() - 12));
	const auto entry = b.subspan(12, size);

	// StatsEntry { optional DumpStatsEntry dump = 1; ... }
	std::optional<std::span<const uint8_t>> dump;
	for (size_t pos = 0; pos < entry.size();) {
		uint64_t key, len;
		if (!read_varint(entry, &pos, &key))
			return fail(0, "stats-dump: truncated entry");
		if (key == (1 << 3 | 2)) {
			if (!read_varint(entry, &pos, &len) || len > entry.size() - pos)
				return fail(0, "stats-dump: truncated dump stats");
			dump = entry.subspan(pos, len);
			pos += len;
		} else if (!skip_field(entry, &pos, key & 7)) {
			return fail(0, "stats-dump: truncated entry");
		}
	}
	if (!dump)
		return fail(0, "stats-dump: no dump statistics (a restore's stats file?)");

	CriuDumpStats st;
	bool frozen = false;
	for (size_t pos = 0; pos < dump->size();) {
		uint64_t key, v;
		if (!read_varint(*dump, &pos, &key))
			return fail(0, "stats-dump: truncated dump stats");
		if ((key & 7) != 0) {
			if (!skip_field(*dump, &pos, key & 7))
				return fail(0, "stats-dump: truncated dump stats");
			continue;
		}
		if (!read_varint(*dump, &pos, &v))
			return fail(0, "stats-dump: truncated dump stats");
		switch (key >> 3) {
		case 1:
			st.freezing_time_us = uint32_t(v);
			break;
		case 2:
			st.frozen_time_us = uint32_t(v);
			frozen = true;
			break;
		case 7:
			st.pages_written = v;
			break;
		}
	}
	if (!frozen)
		return fail(0, "stats-dump: no frozen_time");
	return st;
}

} // namespace amber
