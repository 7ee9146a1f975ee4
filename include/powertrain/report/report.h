#pragma once
// `powertrain report`: figures (gnuplot), tables (CSV) and one self-contained
// HTML page for the studies of a results database. See docs/reports.md.
//
//   report::ReportOptions o;
//   o.db = "results.db";
//   o.out_dir = "report";
//   auto r = report::write_report(o);   // r.html == "report/report.html"
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/energy/carbon.h"
#include "powertrain/report/data.h"
#include "powertrain/report/gnuplot.h"
#include "powertrain/report/page.h"

namespace powertrain::report {

struct ReportOptions {
  std::filesystem::path db;
  std::filesystem::path out_dir;
  std::optional<std::string> study;  ///< none: every study, and the runs outside studies
  /// PUE and grid intensity for emissions. The store keeps neither for
  /// training runs, so these are the report's assumptions (default PUE 1.0,
  /// the bundled table's WORLD average) and the page says so.
  energy::CarbonOptions carbon;
  /// Where gnuplot is; none: find_gnuplot() ($POWERTRAIN_GNUPLOT, then $PATH).
  std::optional<GnuplotLocation> gnuplot;
  std::size_t max_timeline_points = 1500;  ///< per channel, per timeline figure
  /// Power timelines inlined in the page per study (every run's figure is written
  /// to figures/ whatever this is).
  std::size_t max_inline_timelines = 40;
  /// Replace an OUT/report.html that is not a previous powertrain report.
  bool force = false;
};

struct ReportResult {
  std::filesystem::path html;                ///< OUT/report.html
  std::vector<std::filesystem::path> files;  ///< every file written, report.html last
  int figures_drawn = 0;                     ///< figures rendered (each as .svg and .png)
  int figures_planned = 0;
  bool gnuplot_found = false;
  /// One line each, for stderr: gnuplot missing, a figure gnuplot failed on.
  std::vector<std::string> warnings;
};

/// Reads the database (read-only), draws the figures, writes
///   OUT/report.html       the page (figures inlined; opens offline)
///   OUT/figures/NAME.svg, NAME.png, NAME.gp and its data files
///   OUT/tables/NAME.csv
/// through a staging directory (see StagedDir), and returns what it wrote.
/// Without gnuplot it writes the tables and the page with a note in place of
/// each figure, and says so in `warnings`. A figure gnuplot fails on becomes a
/// warning and a note too. Throws StoreError (missing database, not a
/// powertrain database), ConfigError (unknown study, bad carbon options) or
/// IoError (output not writable; OUT/report.html there and not a previous
/// report, without `force`; a file to replace that is a link, a special file
/// or a database), each before anything is left in OUT.
ReportResult write_report(const ReportOptions& options);

/// The page and the figures it refers to, without drawing or writing
/// anything: the pure part of write_report(). `generated_at` goes in the subtitle.
struct BuiltReport {
  Page page;
  std::vector<Figure> figures;   ///< every figure, inlined or not
  std::vector<table::Table> tables; ///< every table written as CSV
};
BuiltReport build_report(const ReportData& data, const ReportOptions& options, const std::string& generated_at);

}  // namespace powertrain::report
