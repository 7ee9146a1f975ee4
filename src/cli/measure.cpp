// `powertrain measure [options] -- COMMAND [ARGS...]`: runs any command under the
// meters (measure::run, the engine) and reports its energy.
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "powertrain/energy/measurement.h"
#include "powertrain/io/output.h"
#include "powertrain/measure/measure.h"

namespace powertrain::cli {
namespace {

struct MeasureArgs {
  measure::Options options;
  bool json = false;
  std::string output;
  std::string csv;
  std::string timeline;
  bool force = false;
};

int run_measure(const MeasureArgs& a) {
  // Check everything before the command starts: a bad option must not cost a run.
  measure::validate(a.options);
  if (!a.output.empty()) io::check_output(a.output, energy::report_output_rule(a.force));
  if (!a.timeline.empty()) io::check_output(a.timeline, energy::timeline_output_rule(a.force));
  if (!a.csv.empty()) io::check_csv_append(a.csv, energy::codecarbon_header());
  const auto r = measure::run(a.options);
  const auto& m = r.measurement;
  if (r.secondary) {
    fmt::print(stderr, "powertrain: node {} of {}: `{}` exited with {} after {:.3f} s, {:.3f} J ({}); node 0 reports "
                       "all nodes\n",
               r.node_rank, r.nodes, a.options.command.front(), m.exit_code, m.window.duration_s, m.energy_j, m.method);
    return m.exit_code;
  }
  const std::string report = a.json ? energy::to_json(m).dump(2) + "\n" : energy::to_text(m);
  if (!a.output.empty()) io::write_output(a.output, report, energy::report_output_rule(a.force));
  else std::fputs(report.c_str(), stderr);
  if (!a.csv.empty()) energy::append_codecarbon_csv(a.csv, m);
  if (!a.timeline.empty()) energy::write_timeline_csv(a.timeline, r.channels, r.timeline, m.window.start_ns, a.force);
  return m.exit_code;
}

}  // namespace

void add_measure_command(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<MeasureArgs>();
  auto& o = a->options;
  auto* cmd = app.add_subcommand("measure", "Run a command and report the energy it used: powertrain measure [OPTIONS] -- COMMAND [ARGS...]");
  cmd->add_option("--interval", o.interval_ms, "Sampling interval in ms (10 to 60000)")->capture_default_str();
  cmd->add_flag("--json", a->json, "Report as JSON instead of text");
  cmd->add_option("-o,--output", a->output, "Write the report to FILE instead of standard error ('-': standard output)");
  cmd->add_option("--csv", a->csv, "Append a row in CodeCarbon's emissions.csv columns to FILE");
  cmd->add_option("--timeline", a->timeline, "Write the power samples to FILE (CSV)");
  cmd->add_flag("--force", a->force, "Replace -o and --timeline files that are not previous reports of measure");
  cmd->add_option("--pue", o.pue, "Power usage effectiveness of the facility (>= 1)")->capture_default_str();
  cmd->add_option("--carbon-intensity", o.intensity_g_per_kwh, "Grid carbon intensity in gCO2e/kWh (overrides --region)");
  cmd->add_option("--region", o.region, "Region code or name in the carbon table")->capture_default_str();
  cmd->add_option("--carbon-table", o.carbon_table, "CSV table code,name,gco2e_per_kwh to use instead of the bundled one");
  cmd->add_option("--idle", o.idle_s, "Measure idle power for this many seconds first, and report energy above idle");
  cmd->add_option("--gpus", o.gpus, "NVML indices of the GPUs to measure, e.g. 0,1 (default: CUDA_VISIBLE_DEVICES or all)");
  cmd->add_option("--estimate-scope", o.scope, "What the CPU estimate covers where nothing is measured: system or process")
      ->capture_default_str();
  cmd->add_option("--cpu-idle-w", o.cpu_idle_w, "Estimate: idle watts per logical CPU (default 0.74)");
  cmd->add_option("--cpu-full-w", o.cpu_full_w, "Estimate: full-load watts per logical CPU (default 3.5)");
  cmd->add_option("--memory-w-per-gb", o.memory_w_per_gb, "Estimate: watts per GB of memory in use (default 0.375)");
  cmd->add_option("--project-name", o.project_name, "project_name column of the CSV")->capture_default_str();
  cmd->add_option("--experiment-id", o.experiment_id, "experiment_id column of the CSV");
  cmd->add_option("--disable", o.disable, "Energy source to skip (nvml, rapl, perf, rails, estimate); repeatable");
  cmd->add_option("--node-rank", o.node_rank,
                  "This node's rank of a command over several nodes (0 reports them all); with --nodes");
  cmd->add_option("--nodes", o.nodes, "Nodes the command spans, one measure on each (inside srun: found alone)");
  cmd->add_option("--nodes-dir", o.nodes_dir,
                  "Folder every node sees, one per command, for the other nodes' reports "
                  "(inside srun: powertrain-measure.nodes/job<id>.step<id>)");
  cmd->add_option("--nodes-wait", o.nodes_wait_s, "Seconds node 0 waits for the other nodes' reports")
      ->capture_default_str();
  cmd->add_option("command", o.command, "The command to run, after --")->required();
  cmd->callback([&ctx, a] { ctx.exit_code = run_measure(*a); });
}

}  // namespace powertrain::cli
