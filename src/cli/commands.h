#pragma once
// Each subcommand registers itself on the app; its callback stores the exit code.
#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "powertrain/error.h"
#include "powertrain/slurm/nodes.h"
#include "powertrain/store/store.h"
#include "powertrain/study/spec.h"

namespace powertrain::cli {

/// The energy sources --disable may name (energy::probe_sources()).
inline const std::vector<std::string>& source_names() {
  static const std::vector<std::string> names{"nvml", "rapl", "perf", "rails", "estimate"};
  return names;
}

/// Throws ConfigError for a --disable value that names no source (a typo would
/// otherwise disable nothing, silently).
inline void check_source_names(const std::vector<std::string>& disabled) {
  const auto& known = source_names();
  for (const auto& d : disabled)
    if (std::find(known.begin(), known.end(), d) == known.end())
      throw ConfigError("--disable: no energy source named '" + d + "' (nvml, rapl, perf, rails or estimate)");
}

/// An environment variable's value (nullopt: unset), for run::node_role.
inline std::optional<std::string> env_var(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

struct Context {
  int exit_code = 0;
};

void add_devices_command(CLI::App& app, Context& ctx);
void add_measure_command(CLI::App& app, Context& ctx);
void add_burn_command(CLI::App& app, Context& ctx);
void add_train_command(CLI::App& app, Context& ctx);
void add_study_commands(CLI::App& app, Context& ctx);
void add_report_command(CLI::App& app, Context& ctx);
void add_slurm_commands(CLI::App& app, Context& ctx);

/// `--slurm` of the study commands.
struct SlurmSubmit {
  std::vector<std::string> options;  ///< --slurm-opt: further sbatch options
  bool wait = false;                 ///< wait for the tasks, taking results in as they come
  bool quiet = false;
  std::vector<std::string> disable;  ///< energy sources the tasks skip
};
/// Plans the study into `db` and submits its pending trials as Slurm job
/// arrays (slurm_commands.cpp); the exit code.
int submit_study(const study::StudySpec& spec, const std::string& db, const SlurmSubmit& o);
/// Takes in the result files of Slurm tasks before a command reads `db`
/// (nothing when no study was submitted, or the database cannot be written).
void collect_before_reading(const std::string& db, bool quiet);
/// What a merge of a run's nodes did, on stderr (train.cpp); unreadable files
/// and missing nodes are said even when quiet.
void print_node_merge(std::int64_t run_id, const slurm::NodeMergeResult& m, bool quiet);
/// The tables of a study on standard output (study_commands.cpp).
void print_study(std::FILE* out, const store::Store& store, const store::Study& study, bool with_trials);

}  // namespace powertrain::cli
