// `powertrain sweep`, `powertrain study pretrain|multitask|grid` and
// `powertrain search`: the paper's studies, resumable (powertrain-train only:
// they train; their tables are printed by results_command.cpp).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "dispatch.h"
#include "slurm_search.h"
#include "powertrain/error.h"
#include "powertrain/io/output.h"
#include "powertrain/io/text.h"
#include "powertrain/store/store.h"
#include "powertrain/study/analysis.h"
#include "powertrain/study/kind.h"
#include "powertrain/runner/runner.h"
#include "powertrain/search/search.h"
#include "powertrain/session/signals.h"
#include "powertrain/study/spec.h"
#include "powertrain/study/node_tables.h"
#include "powertrain/study/tables.h"

namespace powertrain::cli {
namespace {

struct StudyArgs {
  std::string spec;
  std::string db = "powertrain.db";
  std::string name;
  bool quiet = false;
  std::vector<std::string> disable;
  bool slurm = false;
  std::vector<std::string> slurm_opts;
  bool wait = false;
  int slots = 4;            ///< search --slurm: segments in Slurm at once
  bool slots_given = false;
};

int run_study_command(StudyArgs& a, const std::string& kind) {
  check_source_names(a.disable);
  auto spec = study::load_spec(a.spec, kind);
  if (!a.name.empty()) spec.name = a.name;
  if (!a.slurm && (a.wait || !a.slurm_opts.empty())) throw ConfigError("--wait and --slurm-opt go with --slurm");
  if (a.slurm) return submit_study(spec, a.db, SlurmSubmit{a.slurm_opts, a.wait, a.quiet, a.disable});
  // Trials a cluster ran for this study count as done here too.
  collect_before_reading(a.db, a.quiet);
  auto store = store::Store::open(a.db);

  session::StopOnSignals signals;
  runner::RunOptions o;
  o.db = a.db;
  o.stop = signals.flag();
  o.log = a.quiet ? nullptr : stderr;
  o.terminal = !a.quiet && ::isatty(STDERR_FILENO) != 0;
  o.disabled_sources = a.disable;
  const auto r = runner::run_study(spec, store, o);

  fmt::print(stderr,
             "study '{}' in {}: {} trials planned, {} already done, {} completed, {} diverged, {} failed{}{}{}\n",
             io::printable(spec.name), a.db, r.planned, r.skipped, r.completed, r.diverged, r.failed,
             r.reset ? fmt::format(", {} left running by a dead process were run again", r.reset) : "",
             r.busy ? fmt::format(", {} running in other processes", r.busy) : "",
             r.stopped ? "; stopped: run the same command again to resume" : "");
  if (r.stopped) return 130;
  print_study(stdout, store, store.study(r.study_id), false);
  return r.failed > 0 ? 1 : 0;
}

// `powertrain search SPEC`: a search spec, or a grid spec whose lists are searched.
int run_search_command(StudyArgs& a) {
  check_source_names(a.disable);
  auto spec = study::load_spec(a.spec, "search");
  if (!a.name.empty()) spec.name = a.name;
  if (!a.slurm && (a.wait || !a.slurm_opts.empty())) throw ConfigError("--wait and --slurm-opt go with --slurm");
  if (a.slots_given && !a.slurm) throw ConfigError("--slots goes with --slurm");
  if (a.slurm) return submit_search(spec, a.db, SlurmSubmit{a.slurm_opts, a.wait, a.quiet, a.disable}, a.slots);
  collect_before_reading(a.db, a.quiet);
  auto store = store::Store::open(a.db);
  if (const auto note = search::smaller_than_asked(spec.search_space, spec.search); note && !a.quiet)
    fmt::print(stderr, "search '{}': {}\n", io::printable(spec.name), *note);

  session::StopOnSignals signals;
  runner::RunOptions o;
  o.db = a.db;
  o.stop = signals.flag();
  o.log = a.quiet ? nullptr : stderr;
  o.terminal = !a.quiet && ::isatty(STDERR_FILENO) != 0;
  o.disabled_sources = a.disable;
  const auto r = runner::run_search(spec, store, o);
  fmt::print(stderr, "search '{}' in {}: {} segments run now{}{}{}\n", io::printable(spec.name), a.db, r.segments,
             r.failed ? fmt::format(", {} failed (they run again when the same command runs again)", r.failed) : "",
             r.waiting ? "; segments of the current rung run elsewhere: run the same command again later" : "",
             r.stopped ? "; stopped: run the same command again to resume" : "");
  if (r.stopped) return 130;
  print_study(stdout, store, store.study(r.study_id), false);
  // Not finished is never 0: a failed segment (1) or segments that another
  // process still runs (75, "try again later").
  if (r.failed > 0) return 1;
  if (r.waiting) return 75;
  return 0;
}

void add_run_options(CLI::App* cmd, const std::shared_ptr<StudyArgs>& a) {
  cmd->add_option("SPEC", a->spec, "Study specification (TOML; see docs/studies.md)")->required();
  cmd->add_option("--db", a->db, "Results database (SQLite); running again resumes the study")->capture_default_str();
  cmd->add_option("--name", a->name, "Study name (default: the spec's name, else the file's stem)");
  cmd->add_option("--disable", a->disable, "Energy source to skip (repeatable), e.g. nvml")->allow_extra_args(false);
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  cmd->add_flag("--slurm", a->slurm, "Submit the pending trials to Slurm as a job array instead (docs/cluster.md)");
  cmd->add_option("--slurm-opt", a->slurm_opts, "Further sbatch option (repeatable), e.g. --slurm-opt=--partition=gpu")
      ->allow_extra_args(false);
  cmd->add_flag("--wait", a->wait, "With --slurm: wait for the tasks, taking their results in as they come");
}

}  // namespace

void add_study_commands(CLI::App& app, Context& ctx) {
  {
    auto a = std::make_shared<StudyArgs>();
    auto* cmd = app.add_subcommand("sweep", training_help("sweep"));
    add_run_options(cmd, a);
    cmd->callback([&ctx, a] { ctx.exit_code = run_study_command(*a, "grid"); });
  }
  {
    auto* study = app.add_subcommand("study", training_help("study"));
    study->require_subcommand(1);
    for (const auto* kind : study::study_kinds()) {
      if (!kind->study_command) continue;
      auto a = std::make_shared<StudyArgs>();
      auto* cmd = study->add_subcommand(kind->name, kind->help);
      add_run_options(cmd, a);
      cmd->callback([&ctx, a, name = kind->name] { ctx.exit_code = run_study_command(*a, name); });
    }
  }
  {
    auto a = std::make_shared<StudyArgs>();
    auto* cmd = app.add_subcommand("search", training_help("search"));
    add_run_options(cmd, a);
    cmd->add_option_function<int>(
           "--slots",
           [a](int n) {
             a->slots = n;
             a->slots_given = true;
           },
           "With --slurm: segments queued or running in Slurm at once (default 4)")
        ->type_name("N");
    cmd->callback([&ctx, a] { ctx.exit_code = run_search_command(*a); });
  }
}

}  // namespace powertrain::cli
