// `powertrain results`: the studies of a results database as tables, and
// their CSV and JSON exports. No study runs here (no LibTorch).
#include <cstdio>
#include <set>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "powertrain/table/print.h"
#include "powertrain/error.h"
#include "powertrain/io/output.h"
#include "powertrain/io/text.h"
#include "powertrain/store/store.h"
#include "powertrain/study/analysis.h"
#include "powertrain/study/node_tables.h"
#include "powertrain/study/tables.h"

namespace powertrain::cli {
namespace {

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
void print_study_table(std::FILE* out, const table::Table& t, bool with_trials) {
  if ((t.name != "trials" && t.name != study::kNodeTableName) || with_trials) {
    table::print_console(out, t);
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
    if (!a.csv_dir.empty()) table::write_csv_files(a.csv_dir, io::safe_file_name(s.name) + "_", tables, a.force);
    nlohmann::json js = {{"name", s.name},
                         {"kind", s.kind},
                         {"created_at", s.created_at},
                         {"host", s.environment.host},
                         {"energy_method", methods},
                         {"spec", s.spec},
                         {"tables", nlohmann::json::object()}};
    for (const auto& t : tables) js["tables"][t.name] = table::to_json(t);
    doc["studies"].push_back(std::move(js));
  }
  // Text in the store may predate its UTF-8 checks: what is not valid is replaced, never fatal.
  if (!a.json_file.empty())
    io::write_output(a.json_file, doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                     results_json_rule(a.force));
  return 0;
}

}  // namespace

void add_results_command(CLI::App& app, Context& ctx) {
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

}  // namespace powertrain::cli
