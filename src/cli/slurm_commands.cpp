// Studies on a Slurm cluster, the parts that train nothing: `collect` takes
// the tasks' result files in; `status` shows a study's trials with their
// Slurm job and node (and a search's rungs). Submitting and the array tasks
// are in slurm_submit.cpp and slurm_search.cpp. See docs/cluster.md.
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "slurm_search.h"
#include "powertrain/table/print.h"
#include "powertrain/error.h"
#include "powertrain/io/output.h"
#include "powertrain/io/text.h"
#include "powertrain/search/asynchronous.h"
#include "powertrain/search/search.h"
#include "powertrain/slurm/nodes.h"
#include "powertrain/slurm/slurm.h"
#include "powertrain/store/store.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/spec.h"
#include "powertrain/study/tables.h"

namespace powertrain::cli {
namespace fs = std::filesystem;

void print_collect(const slurm::CollectResult& c, bool quiet) {
  // A file that cannot be taken in is said even when quiet: results would be missing silently.
  if (c.unreadable)
    fmt::print(stderr, "{} result file{} not taken in ({}); the others were\n", c.unreadable,
               c.unreadable == 1 ? "" : "s", io::printable(c.unreadable_note.substr(0, c.unreadable_note.find('\n'))));
  if (quiet || (c.imported == 0 && c.duplicates == 0)) return;
  fmt::print(stderr, "took in {} result file{}{}{}\n", c.imported, c.imported == 1 ? "" : "s",
             c.interrupted ? fmt::format(" ({} of tasks that died: their trials are interrupted)", c.interrupted) : "",
             c.duplicates ? fmt::format("; {} of trials that had a result already (kept as they were)", c.duplicates)
                          : "");
}

LiveState live_state(const store::Store& store, std::int64_t study_id) {
  LiveState s;
  const auto tasks = store.slurm_tasks_of(study_id);
  std::set<std::string> jobs;
  for (const auto& t : tasks) {
    jobs.insert(t.job_id);
    s.job_of_trial[t.trial_id] = fmt::format("{}_{}", t.job_id, t.array_index);
  }
  if (jobs.empty()) return s;
  const auto live = slurm::live_tasks({jobs.begin(), jobs.end()});
  if (!live) throw IoError("squeue failed: cannot tell which of the study's trials Slurm still holds");
  for (const auto& t : tasks) {
    const auto it = live->find(fmt::format("{}_{}", t.job_id, t.array_index));
    if (it != live->end()) s.by_trial[t.trial_id] = it->second;
  }
  return s;
}

void print_node_merge(std::int64_t run_id, const slurm::NodeMergeResult& m, bool quiet) {
  for (const auto& why : m.unreadable) fmt::print(stderr, "run {}: a node's file not taken in: {}\n", run_id, why);
  const auto ranks = [](const std::vector<int>& v) {
    std::string out;
    for (const int k : v) out += (out.empty() ? "" : ", ") + std::to_string(k);
    return out;
  };
  if (!m.missing.empty() || !m.unfinished.empty())
    fmt::print(stderr, "run {}: {}{}{}; its windows are partial until `powertrain collect` takes the nodes' files in\n",
               run_id, m.missing.empty() ? "" : "no record of node " + ranks(m.missing),
               !m.missing.empty() && !m.unfinished.empty() ? ", " : "",
               m.unfinished.empty() ? "" : "node " + ranks(m.unfinished) + " never finished its record (taken in as it was)");
  if (quiet || !m.run) return;
  for (const auto& n : m.run->run.per_node)
    fmt::print(stderr, "  node {} {}: {:.1f} J over {:.1f} s ({}{})\n", n.node, n.host, n.energy_j, n.duration_s,
               n.method.empty() ? "its record not finished" : n.method, n.partial ? ", partial" : "");
  fmt::print(stderr, "  all {} nodes: {:.1f} J, {:.1f} s (the longest node's), {}\n", m.run->nodes,
             m.run->run.energy_j, m.run->run.duration_s, m.run->run.method);
}

namespace {

std::string segment_key(const study::StudySpec& spec, const search::Observed& ob) {
  const auto R = search::rungs(spec.search);
  const int k = ob.rung;
  return study::segment_trial(spec, {ob.setup, k, k == 0 ? 1 : R[static_cast<std::size_t>(k - 1)] + 1,
                                     R[static_cast<std::size_t>(k)]})
      .spec.key;
}

bool segment_ended(search::SegmentState s) {
  using S = search::SegmentState;
  return s != S::none && s != S::pending && s != S::running;
}

}  // namespace

// A search's records, with segments Slurm holds (queued or running) as
// running, and those this call gave up on as failed.
std::vector<search::Observed> observe_with_slurm(const store::Store& store, std::int64_t study_id,
                                                 const study::StudySpec& spec, const LiveState* live,
                                                 const std::set<std::string>& given_up) {
  auto observed = study::observe_search(store, study_id, spec);
  for (auto& ob : observed) {
    if (ob.rung < 0 || segment_ended(ob.state)) continue;
    const auto key = segment_key(spec, ob);
    if (given_up.count(key)) {
      ob.state = search::SegmentState::failed;
      continue;
    }
    if (!live) continue;
    if (const auto t = store.find_trial(study_id, key); t && live->by_trial.count(t->id))
      ob.state = search::SegmentState::running;
  }
  return observed;
}

void print_search_rungs(const store::Store& store, const store::Study& s, const LiveState* live,
                        nlohmann::json* json) {
  if (s.kind != "search") return;
  study::StudySpec spec;
  try {
    spec = study::parse_spec(s.spec, fmt::format("<stored spec of study '{}'>", s.name), "search");
  } catch (const ConfigError&) {
    return;
  }
  spec.name = s.name;
  const auto observed = observe_with_slurm(store, s.id, spec, live, {});
  table::Table t;
  t.name = "rungs";
  t.title = fmt::format("Search '{}': rungs", io::printable(s.name));
  t.columns = {{"rung", "rung", 0},         {"end_epoch", "to epoch", 0}, {"setups", "setups", 0},
               {"finished", "finished", 0}, {"running", "running", 0},    {"waiting", "waiting", 0},
               {"promoted", "promoted", 0}};
  auto integer = [](std::int64_t v) { return table::Cell{store::Value(v), store::Value(std::monostate{})}; };
  for (const auto& r : search::rung_summary(spec.search, observed))
    t.rows.push_back({integer(r.rung + 1), integer(r.end_epoch), integer(r.setups), integer(r.finished),
                      integer(r.running), integer(r.waiting), integer(r.promoted)});
  const auto sampled = study::search_setups(spec);
  t.notes.push_back(fmt::format("{} setups sampled; running: queued or running in Slurm, or running here", sampled.size()));
  table::print_console(stdout, t);
  if (json) (*json)["rungs"] = table::to_json(t);
}

void collect_before_reading(const std::string& db, bool quiet) {
  std::error_code ec;
  if (!fs::exists(db, ec)) return;
  try {
    for (const auto& c : slurm::collect_all(db)) print_collect(c, quiet);
    for (const auto& [run_id, m] : slurm::collect_nodes_of(db)) print_node_merge(run_id, m, quiet);
  } catch (const StoreError&) {
    // Read-only or busy: what is shown is what the database holds.
  }
}

namespace {

struct StatusArgs {
  std::string db;
  std::string study;
  std::string json_file;
};

int run_status(const StatusArgs& a) {
  if (!fs::exists(a.db)) throw ConfigError(fmt::format("{}: no such database", a.db));
  collect_before_reading(a.db, false);
  auto store = store::Store::open_readonly(a.db);
  nlohmann::json doc = {{"database", a.db}, {"studies", nlohmann::json::array()}};
  bool found = false;
  for (const auto& ov : store.list_studies()) {
    const auto& s = ov.study;
    if (!a.study.empty() && s.name != a.study) continue;
    found = true;
    std::optional<LiveState> live;
    std::string live_note;
    try {
      live = live_state(store, s.id);
    } catch (const IoError& e) {
      live_note = e.what();
    }
    std::map<std::int64_t, std::string> node_of;
    for (const auto& i : store.imports_of(s.id))
      if (i.outcome == store::ImportOutcome::imported) node_of[i.trial_id] = i.node;

    table::Table t;
    t.name = "status";
    t.title = fmt::format("Study '{}' ({}): trials", io::printable(s.name), s.kind);
    t.columns = {{"trial", "trial", 0},   {"phase", "phase", 0},      {"batch_size", "batch", 0},
                 {"learning_rate", "lr", 0}, {"seed", "seed", 0},   {"status", "status", 0},
                 {"slurm_job", "job", 0},   {"slurm_state", "slurm", 0}, {"node", "node", 0}};
    std::map<std::string, int> by_state;
    auto text = [](const std::string& v) { return table::Cell{store::Value(v), store::Value(std::monostate{})}; };
    auto integer = [](std::int64_t v) { return table::Cell{store::Value(v), store::Value(std::monostate{})}; };
    for (const auto& tr : store.trials_of(s.id)) {
      std::string job, state, node;
      const bool held = live && live->by_trial.count(tr.id) > 0;
      if (live && live->job_of_trial.count(tr.id)) job = live->job_of_trial.at(tr.id);
      if (held) {
        const auto& lt = live->by_trial.at(tr.id);
        state = lt.state + (lt.reason.empty() ? "" : " (" + lt.reason + ")");
        node = lt.node;
      } else if (!job.empty()) {
        state = "ended";
      }
      if (node.empty() && node_of.count(tr.id)) node = node_of.at(tr.id);
      const std::string status(store::to_string(tr.status));
      std::string bucket = status;
      if (held && !store::is_done(tr.status))
        bucket = live->by_trial.at(tr.id).state == "PENDING" ? "queued in Slurm" : "running in Slurm";
      ++by_state[bucket];
      t.rows.push_back({integer(tr.id), text(tr.phase), integer(tr.config.batch_size),
                        table::Cell{table::real(tr.config.learning_rate), store::Value(std::monostate{})},
                        integer(static_cast<std::int64_t>(tr.config.seed)), text(status), text(job), text(state),
                        text(node)});
    }
    std::string counts;
    for (const auto& [k, n] : by_state) counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", n, k);
    t.notes.push_back(counts);
    if (!live_note.empty()) t.notes.push_back(live_note);
    table::print_console(stdout, t);
    auto js = table::to_json(t);
    js["study"] = s.name;
    print_search_rungs(store, s, live ? &*live : nullptr, &js);
    doc["studies"].push_back(std::move(js));
  }
  if (!found && !a.study.empty()) throw ConfigError(fmt::format("{}: no study named '{}'", a.db, a.study));
  if (!a.json_file.empty())
    io::write_output(a.json_file, doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                     io::OutputRule{"status document", {}, 0, true});
  return 0;
}

}  // namespace

void add_slurm_commands(CLI::App& app, Context& ctx) {
  {
    auto db = std::make_shared<std::string>();
    auto* cmd =
        app.add_subcommand("collect", "Take the result files of a study's Slurm tasks into its database (idempotent)");
    cmd->add_option("DB", *db, "Results database")->required();
    cmd->callback([&ctx, db] {
      if (!fs::exists(*db)) throw ConfigError(fmt::format("{}: no such database", *db));
      int imported = 0, running = 0;
      for (const auto& c : slurm::collect_all(*db)) {
        print_collect(c, false);
        imported += c.imported;
        running += c.running;
        if (!c.sacct_note.empty()) fmt::print(stderr, "the cluster's own energy figures: none ({})\n", c.sacct_note);
      }
      // Runs over several nodes whose late nodes' files have come.
      for (const auto& [run_id, m] : slurm::collect_nodes_of(*db)) print_node_merge(run_id, m, false);
      fmt::print(stderr, "{}: {} result file{} taken in, {} still being written\n", *db, imported,
                 imported == 1 ? "" : "s", running);
      ctx.exit_code = 0;
    });
  }
  {
    auto a = std::make_shared<StatusArgs>();
    auto* cmd = app.add_subcommand("status", "A study's trials by state, with the Slurm job and node of each");
    cmd->add_option("DB", a->db, "Results database")->required();
    cmd->add_option("--study", a->study, "Only this study");
    cmd->add_option("--json", a->json_file, "Also write the tables to FILE as JSON");
    cmd->callback([&ctx, a] { ctx.exit_code = run_status(*a); });
  }
}

}  // namespace powertrain::cli
