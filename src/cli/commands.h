#pragma once
// Each subcommand registers itself on the app; its callback stores the exit code.
#include <algorithm>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "powertrain/energy/registry.h"
#include "powertrain/error.h"
#include "powertrain/slurm/nodes.h"
#include "powertrain/store/store.h"
#include "powertrain/study/spec.h"

namespace powertrain::cli {

/// Throws ConfigError for a --disable value that names no source (energy::check_source_names()).
inline void check_source_names(const std::vector<std::string>& disabled) { energy::check_source_names(disabled); }

/// An environment variable's value (nullopt: unset), for run::node_role.
inline std::optional<std::string> env_var(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

struct Context {
  int exit_code = 0;
};

/// The line --help starts with.
inline constexpr const char* kAbout = "powertrain: measure, explain and cut the energy of neural-network training";

/// Turns an error of a library (LibTorch's) into its exit code, having said it
/// in one line; nullopt: not one of that library's.
using ErrorTranslator = std::function<std::optional<int>(const std::exception&)>;
/// Parses the command line into `app` and runs the command chosen; returns the
/// exit code. Every error is one line on standard error (cli.cpp).
int run_app(CLI::App& app, Context& ctx, int argc, char** argv, const ErrorTranslator& translate = {});

// Commands that train nothing (linked into both executables).
void add_devices_command(CLI::App& app, Context& ctx);
void add_measure_command(CLI::App& app, Context& ctx);
void add_burn_command(CLI::App& app, Context& ctx);
void add_results_command(CLI::App& app, Context& ctx);
void add_report_command(CLI::App& app, Context& ctx);
/// `collect` and `status`.
void add_slurm_commands(CLI::App& app, Context& ctx);
// Commands that train (powertrain-train only; dispatch.h).
void add_train_command(CLI::App& app, Context& ctx);
/// `sweep`, `study` and `search`.
void add_study_commands(CLI::App& app, Context& ctx);
void add_slurm_task_command(CLI::App& app, Context& ctx);

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
/// What a merge of a run's nodes did, on stderr (slurm_commands.cpp); unreadable files
/// and missing nodes are said even when quiet.
void print_node_merge(std::int64_t run_id, const slurm::NodeMergeResult& m, bool quiet);
/// The tables of a study on standard output (results_command.cpp).
void print_study(std::FILE* out, const store::Store& store, const store::Study& study, bool with_trials);

}  // namespace powertrain::cli
