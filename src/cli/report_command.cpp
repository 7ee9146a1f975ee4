// `powertrain report DB --out DIR [--study NAME]`: figures, tables and one
// self-contained HTML page for the studies of a results database.
#include <cstdio>

#include <fmt/format.h>

#include "commands.h"
#include "powertrain/report/report.h"

namespace powertrain::cli {
namespace {

struct ReportArgs {
  std::string db;
  std::string out;
  std::string study;
  double pue = 1.0;
  std::string region = "WORLD";
  std::optional<double> intensity;
  std::string carbon_table;
  bool force = false;
};

int run_report(const ReportArgs& a) {
  collect_before_reading(a.db, false);  // Slurm tasks' result files, when the database can take them
  report::ReportOptions o;
  o.db = a.db;
  o.out_dir = a.out;
  if (!a.study.empty()) o.study = a.study;
  o.carbon.pue = a.pue;
  o.carbon.region = a.region;
  o.carbon.intensity_g_per_kwh = a.intensity;
  if (!a.carbon_table.empty()) o.carbon.table = a.carbon_table;
  o.force = a.force;
  const auto r = report::write_report(o);
  for (const auto& w : r.warnings) std::fprintf(stderr, "powertrain: %s\n", w.c_str());
  if (r.gnuplot_found) {
    std::fprintf(stderr, "powertrain: %d of %d figures drawn, %zu files written to %s\n", r.figures_drawn,
                 r.figures_planned, r.files.size(), a.out.c_str());
  }
  // Last line of stdout: the page, for scripts (`xdg-open "$(powertrain report ...)"`).
  std::fprintf(stdout, "%s\n", r.html.c_str());
  return 0;
}

}  // namespace

void add_report_command(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<ReportArgs>();
  auto* cmd = app.add_subcommand(
      "report", "Figures (gnuplot), tables and one self-contained HTML page for the studies of a results database");
  cmd->add_option("db", a->db, "Results database (SQLite), opened read-only")->required();
  cmd->add_option("-o,--out", a->out, "Output directory (created if missing, in an existing parent; files of the same name are replaced)")
      ->required();
  cmd->add_flag("--force", a->force, "Replace an OUT/report.html that is not a previous powertrain report");
  cmd->add_option("--study", a->study, "Report only this study (default: every study and the runs outside studies)");
  cmd->add_option("--pue", a->pue, "Power usage effectiveness applied to emissions")->capture_default_str();
  cmd->add_option("--region", a->region, "Grid region for the carbon intensity (code or name in the table)")
      ->capture_default_str();
  cmd->add_option("--carbon-intensity", a->intensity, "Carbon intensity in gCO2e/kWh (overrides --region)");
  cmd->add_option("--carbon-table", a->carbon_table, "CSV table of regions (code,name,gco2e_per_kwh) instead of the bundled one");
  cmd->footer(
      "gnuplot is found through $POWERTRAIN_GNUPLOT or $PATH; without it the tables and the page are still written.\n"
      "Prints the path of report.html on the last line of stdout.");
  cmd->callback([&ctx, a] { ctx.exit_code = run_report(*a); });
}

}  // namespace powertrain::cli
