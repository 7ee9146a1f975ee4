// `powertrain sweep`, `powertrain study pretrain|multitask|grid` and
// `powertrain results`: the paper's studies, resumable, and their tables.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <optional>
#include <set>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "commands.h"
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

// How the energy of a study's runs was obtained: the distinct methods of its
// runs ("estimated", "counter+estimated", ...), joined; empty before any run.
std::string energy_methods(const std::vector<store::TrialResult>& results) {
  std::set<std::string> methods;
  for (const auto& r : results)
    if (r.run && !r.run->summary.method.empty()) methods.insert(r.run->summary.method);
  return fmt::format("{}", fmt::join(methods, ", "));
}

// The heading of one study, with the method behind every energy figure under it.
void print_heading(std::FILE* out, const store::Study& study, const std::string& methods) {
  fmt::print(out, "\n== study '{}' ({}), created {}{}{}\n", io::printable(study.name), study.kind,
             study.created_at, study.environment.host.empty() ? "" : " on ", io::printable(study.environment.host));
  if (methods.empty()) return;
  fmt::print(out, "energy method of its runs: {}{}\n", methods,
             methods == "estimated" ? " (no energy counter covered them: every joule below is a model estimate)" : "");
}

// The per-trial table only when asked for; its notes (busy machines, quiet
// waits) always, since they qualify every number above them.
void print_study_table(std::FILE* out, const study::ResultTable& t, bool with_trials) {
  if ((t.name != "trials" && t.name != study::kNodeTableName) || with_trials) {
    study::print_table(out, t);
    return;
  }
  if (!t.notes.empty()) fmt::print(out, "\n");
  for (const auto& n : t.notes) fmt::print(out, "{}\n", n);
}

}  // namespace

void print_study(std::FILE* out, const store::Store& store, const store::Study& study, bool with_trials) {
  const auto results = store.results_of(study.id);
  auto outcomes = study::outcomes_of(results);
  study::attach_epochs(outcomes, results, [&](std::int64_t id) { return store.epochs_of(id); });
  print_heading(out, study, energy_methods(results));
  for (const auto& t : study::study_tables(study, outcomes)) print_study_table(out, t, with_trials);
}

namespace {

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

struct ResultsArgs {
  std::string db;
  std::string study;
  std::string csv_dir;
  std::string json_file;
  bool trials = false;
  bool force = false;
};

// A previous `results --json` document.
io::OutputRule results_json_rule(bool force) {
  return io::OutputRule{"powertrain results document",
                        [](std::string_view head) { return head.rfind("{\n  \"database\": ", 0) == 0; }, 4096, force};
}

int run_results(const ResultsArgs& a) {
  if (!a.json_file.empty()) io::check_output(a.json_file, results_json_rule(a.force));
  collect_before_reading(a.db, false);
  auto store = store::Store::open_readonly(a.db);
  std::vector<store::Study> studies;
  for (const auto& ov : store.list_studies())
    if (a.study.empty() || ov.study.name == a.study) studies.push_back(ov.study);
  if (studies.empty()) {
    if (!a.study.empty()) throw ConfigError(fmt::format("{}: no study named '{}'", a.db, a.study));
    fmt::print("{}: no studies yet\n", a.db);
  }
  nlohmann::json doc = {{"database", a.db}, {"studies", nlohmann::json::array()}};
  for (const auto& s : studies) {
    const auto results = store.results_of(s.id);
    auto outcomes = study::outcomes_of(results);
    study::attach_epochs(outcomes, results, [&](std::int64_t id) { return store.epochs_of(id); });
    auto tables = study::study_tables(s, outcomes);
    if (auto nodes = study::node_table(results, [&](std::int64_t id) { return store.node_merge_of(id); }))
      tables.push_back(std::move(*nodes));  // trials over several nodes: each node's own record
    const std::string methods = energy_methods(results);
    print_heading(stdout, s, methods);
    for (const auto& t : tables) print_study_table(stdout, t, a.trials);
    // The name as a file name: no '/', no "..": nothing lands outside DIR.
    if (!a.csv_dir.empty()) study::write_csv_files(a.csv_dir, io::safe_file_name(s.name) + "_", tables, a.force);
    nlohmann::json js = {{"name", s.name},
                         {"kind", s.kind},
                         {"created_at", s.created_at},
                         {"host", s.environment.host},
                         {"energy_method", methods},
                         {"spec", s.spec},
                         {"tables", nlohmann::json::object()}};
    for (const auto& t : tables) js["tables"][t.name] = study::to_json(t);
    doc["studies"].push_back(std::move(js));
  }
  // Text in the store may predate its UTF-8 checks: what is not valid is replaced, never fatal.
  if (!a.json_file.empty())
    io::write_output(a.json_file, doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                     results_json_rule(a.force));
  return 0;
}

}  // namespace

void add_study_commands(CLI::App& app, Context& ctx) {
  {
    auto a = std::make_shared<StudyArgs>();
    auto* cmd = app.add_subcommand("sweep", "Grid study: batch sizes x learning rates, each trained to convergence and measured");
    add_run_options(cmd, a);
    cmd->callback([&ctx, a] { ctx.exit_code = run_study_command(*a, "grid"); });
  }
  {
    auto* study = app.add_subcommand("study", "Run one of the paper's studies (resumable; see docs/studies.md)");
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
    auto* cmd = app.add_subcommand(
        "search", "Search for the setup with the least energy to the target without training the whole grid (docs/search.md)");
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
  {
    auto a = std::make_shared<ResultsArgs>();
    auto* cmd = app.add_subcommand("results", "Print the studies of a results database as tables; export CSV and JSON");
    cmd->add_option("DB", a->db, "Results database")->required();
    cmd->add_option("--study", a->study, "Only this study");
    cmd->add_option("--csv", a->csv_dir, "Write every table as DIR/<study>_<table>.csv (names unsafe as file names are mapped)");
    cmd->add_option("--json", a->json_file, "Write every table of every study to FILE as JSON ('-': standard output)");
    cmd->add_flag("--trials", a->trials, "Print the per-trial table too (always in CSV and JSON)");
    cmd->add_flag("--force", a->force, "Replace --json and --csv files that are not previous exports of results");
    cmd->callback([&ctx, a] { ctx.exit_code = run_results(*a); });
  }
}

}  // namespace powertrain::cli
