#pragma once
// `powertrain measure`'s engine: runs any command under the meters and
// returns what it used. The command runs in the foreground (external::Child,
// not contained: powertrain's own input, output and process group), held until
// the meters run so that its first instruction is measured; signals sent to
// powertrain itself are passed on to it. When it reports its epochs (the
// protocol of docs/external.md) each one is a window of the measurement. A
// command over several nodes has one measure per node: node 0 gathers the
// others' reports from a shared folder (docs/measurement.md). No torch.
//
//   measure::Options o;  o.command = {"python3", "train.py"};
//   measure::validate(o);                  // before anything starts
//   const auto r = measure::run(o);        // r.measurement.energy_j ...
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/energy/measurement.h"
#include "powertrain/energy/registry.h"
#include "powertrain/energy/tracker.h"

namespace powertrain::measure {

struct Options {
  std::vector<std::string> command;  ///< the program (found on PATH unless it names a path) and its arguments
  int interval_ms = 100;             ///< sampling interval (10 to 60000)
  double pue = 1.0;
  std::optional<double> intensity_g_per_kwh;  ///< grid carbon intensity; unset: `region` in the carbon table
  std::string region = "WORLD";
  std::string carbon_table;                   ///< CSV to use instead of the bundled table; empty: bundled
  double idle_s = 0.0;                        ///< idle baseline measured first (0 to 3600 s)
  std::string gpus;                           ///< NVML indices "0,1"; empty: CUDA_VISIBLE_DEVICES or all
  std::string scope = "system";               ///< what the CPU estimate covers: system or process
  std::optional<double> cpu_idle_w, cpu_full_w, memory_w_per_gb;  ///< the estimate's model; unset: its defaults
  std::string project_name = "powertrain";
  std::string experiment_id;
  std::vector<std::string> disable;           ///< energy sources to skip
  // A command over several nodes: one measure per node.
  int node_rank = -1;                         ///< this node's rank; -1: from Slurm, else a single node
  int nodes = -1;
  std::string nodes_dir;                      ///< folder every node sees, one per command
  double nodes_wait_s = 120.0;                ///< how long node 0 waits for the others' reports
};

/// What the engine reaches outside itself; an empty function is the real one.
struct Hooks {
  /// Opens the meters (energy::probe_sources).
  std::function<energy::Probe(const energy::ProbeOptions&)> probe;
  /// An environment variable's value, nullopt when unset (std::getenv): Slurm's, for the node's role.
  std::function<std::optional<std::string>(const std::string&)> env;
};

struct Result {
  energy::Measurement measurement;
  /// The meters' channels and power samples over the idle baseline and the
  /// command (a timeline's columns and rows; origin measurement.window.start_ns).
  std::vector<energy::ChannelInfo> channels;
  std::vector<energy::TimelineSample> timeline;
  int node_rank = 0;  ///< of a command over several nodes
  int nodes = 1;
  /// A node other than 0 of a command over several nodes: its report went to
  /// node 0 through the nodes' folder, which reports them all.
  bool secondary = false;
};

/// Throws ConfigError for a setting out of range and for an energy source
/// that does not exist. Starts and writes nothing.
void validate(const Options& o);

/// Validates, then runs the command to its exit and measures it. Throws
/// ConfigError before it starts (no command, not found, a node setting), Error
/// when it cannot be started or a signal ends the idle baseline (the command
/// then never ran). The command's own failure is its exit code in the result.
Result run(const Options& o, const Hooks& hooks = {});

}  // namespace powertrain::measure
