// SPDX-License-Identifier: GPL-2.0
// amber bench overhead: the parts that do no I/O — result rows, overhead,
// the table, the CSV, the gnuplot script, the interval list, and the reader
// of CRIU's stats-dump image. cmd_bench.cc runs the programs.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "run/run.h"

namespace amber {

// One measured run: the baseline ("none"), or one tool at one interval.
struct BenchRow {
	std::string tool;		// "none", "amber", "criu"
	double interval_s = 0;		// unused for "none"
	double wall_s = 0;		// program start until it was reaped
	uint32_t failed = 0;		// checkpoints that failed (not in stopped_ms)
	std::vector<double> stopped_ms;	// one per successful checkpoint
	uint64_t bytes = 0;		// written by the successful checkpoints
};

// 100 * (wall - baseline) / baseline; 0 when baseline is not positive.
double overhead_pct(double wall_s, double baseline_s);

struct MeanMax {
	double mean = 0;
	double max = 0;
};

// Mean and maximum, nullopt for an empty list.
std::optional<MeanMax> mean_max(const std::vector<double> &v);

// "1s,2s,5s,10s,30s" -> {1, 2, 5, 10, 30} seconds, in the given order. Each
// element is a duration as parse_duration() reads it; empty elements and
// repeated intervals are errors.
Result<std::vector<double>> parse_interval_list(std::string_view s);

// An interval in seconds as the CSV and the table write it: "5", "0.5",
// "1.25" (shortest form, no trailing zeros).
std::string format_seconds(double s);

// The CSV of the contract: header, the baseline row, then rows in order.
//   tool,interval_s,wall_s,overhead_pct,checkpoints,stopped_mean_ms,stopped_max_ms,bytes_written
std::string format_csv(const BenchRow &baseline, const std::vector<BenchRow> &rows);

// The same numbers as a table for a terminal, with a "failed" column.
std::string format_table(const BenchRow &baseline, const std::vector<BenchRow> &rows);

// A gnuplot script that draws overhead % against interval (log scale), one
// curve per tool with its points marked, into png_path. The data travels in
// the script (datablocks), so the script is all gnuplot needs.
std::string gnuplot_script(const BenchRow &baseline, const std::vector<BenchRow> &rows,
			   const std::string &png_path, const std::string &title);

// The rate at which incremental checkpoints saved data, in bytes per second
// of the program's run: the bytes of every incremental checkpoint divided
// by the time each one covers (the interval plus the previous checkpoint's
// total time, since the next interval starts when a checkpoint ends).
// nullopt without incremental checkpoints.
std::optional<double> incremental_rate(const std::vector<RunCheckpoint> &c, double interval_s);

// CRIU's stats-dump image (criu/stats.c, images/stats.proto): the fields of
// its DumpStatsEntry that the bench reports.
struct CriuDumpStats {
	uint32_t freezing_time_us = 0;
	uint32_t frozen_time_us = 0;	// the program's pause
	uint64_t pages_written = 0;
};

// Parses the bytes of a stats-dump file: the IMG_SERVICE and STATS magics,
// then one entry (32-bit size, StatsEntry protobuf) whose "dump" field is
// read. Errors say what is wrong with the file.
Result<CriuDumpStats> parse_criu_stats(std::span<const uint8_t> file);

} // namespace amber
