#pragma once
// Each subcommand registers itself on the app; its callback stores the exit code.
#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "powertrain/error.h"
#include "powertrain/slurm/slurm.h"
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
/// `search --slurm`: asynchronous successive halving whose segments go out as
/// array tasks as slots free up (slurm_search.cpp); the exit code.
int submit_search(const study::StudySpec& spec, const std::string& db, const SlurmSubmit& o, int slots);

/// Trials of a study that Slurm still holds: queued or running tasks of its submissions.
struct LiveState {
  std::map<std::int64_t, slurm::LiveTask> by_trial;  ///< trial -> its live task
  std::map<std::int64_t, std::string> job_of_trial;  ///< trial -> latest submission "<job>_<index>"
};
/// From squeue; IoError when squeue fails.
LiveState live_state(const store::Store& store, std::int64_t study_id);
/// One job array of `trials` (grouped by trials_per_task), after `after_ok` when set.
struct Submitted {
  std::string job_id;
  int trials = 0;
};
Submitted submit_array(store::Store& store, const study::StudySpec& spec, const std::filesystem::path& db,
                       const std::filesystem::path& folder, const std::vector<slurm::TaskTrial>& trials,
                       const SlurmSubmit& o, const std::optional<std::string>& after_ok, const std::string& tag);
/// What a collect() took in, on standard error (slurm_commands.cpp).
void print_collect(const slurm::CollectResult& c, bool quiet);
/// Search studies in `status`: where each rung stands (slurm_search.cpp).
void print_search_rungs(const store::Store& store, const store::Study& study, const LiveState* live,
                        nlohmann::json* json);

/// Takes in the result files of Slurm tasks before a command reads `db`
/// (nothing when no study was submitted, or the database cannot be written).
void collect_before_reading(const std::string& db, bool quiet);
/// The tables of a study on standard output (study_commands.cpp).
void print_study(std::FILE* out, const store::Store& store, const store::Study& study, bool with_trials);

}  // namespace powertrain::cli
