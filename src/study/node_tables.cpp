// The per-node table of a study (powertrain/study/node_tables.h).
#include "powertrain/study/node_tables.h"

#include <string>

#include <fmt/format.h>

namespace powertrain::study {
namespace {

struct NodeRow {
  std::int64_t trial_id = 0;
  std::string node;  ///< the rank, or "all" for the merge
  run::NodeWindow w;
  int nodes = 1;
};

Cell text(const std::string& v) { return Cell{store::Value(v), store::Value(std::monostate{})}; }
Cell number(double v) { return Cell{real(v), store::Value(std::monostate{})}; }

}  // namespace

std::optional<table::Table> node_table(const std::vector<store::TrialResult>& results,
                                      const std::function<run::MergedRun(std::int64_t run_id)>& merge_of) {
  std::vector<NodeRow> rows;
  int runs = 0;
  bool partial = false;
  for (const auto& r : results) {
    if (!r.run) continue;
    const auto m = merge_of(r.run->id);
    if (m.nodes < 2 || m.run.per_node.empty()) continue;
    ++runs;
    for (const auto& n : m.run.per_node) rows.push_back({r.trial.id, std::to_string(n.node), n, m.nodes});
    for (const int k : m.run.missing) {
      run::NodeWindow none;
      none.node = k;
      none.method = "no record";
      none.partial = true;
      rows.push_back({r.trial.id, std::to_string(k), none, m.nodes});
    }
    run::NodeWindow all;
    all.duration_s = m.run.duration_s;
    all.energy_j = m.run.energy_j;
    all.machine_energy_j = m.run.machine_energy_j;
    all.method = m.run.method;
    all.partial = m.run.partial;
    all.covered_s = m.run.covered_s;
    partial = partial || m.run.partial;
    rows.push_back({r.trial.id, "all", all, m.nodes});
  }
  if (rows.empty()) return std::nullopt;
  const std::vector<Field<NodeRow>> fields = {
      {{"trial", "trial", 0}, [](const NodeRow& r) { return Cell{store::Value(r.trial_id), store::Value(std::monostate{})}; }},
      {{"node", "node", 0}, [](const NodeRow& r) { return text(r.node); }},
      {{"host", "host", 0}, [](const NodeRow& r) { return text(r.w.host); }},
      {{"duration_s", "s", 3}, [](const NodeRow& r) { return number(r.w.duration_s); }},
      {{"energy_j", "J", 4}, [](const NodeRow& r) { return number(r.w.energy_j); }},
      {{"machine_energy_j", "machine J", 4}, [](const NodeRow& r) { return number(r.w.machine_energy_j); }},
      {{"partial", "partial", 0},
       [](const NodeRow& r) { return Cell{store::Value(std::int64_t{r.w.partial ? 1 : 0}), store::Value(std::monostate{})}; }},
      {{"covered_s", "covered s", 3},
       [](const NodeRow& r) { return r.w.partial ? number(r.w.covered_s) : number(r.w.duration_s); }},
      {{"method", "method", 0}, [](const NodeRow& r) { return text(r.w.method); }},
  };
  auto t = make_table(kNodeTableName, "Trials over several nodes: each node's own record, and all of them merged",
                      fields, rows);
  t.notes.push_back(fmt::format(
      "{} trial{} over several nodes: table {} has each node's own record (printed with --trials, always in CSV "
      "and JSON); its row 'all' is the trial's: energy summed over the nodes, the longest node's seconds",
      runs, runs == 1 ? "" : "s", kNodeTableName));
  if (partial)
    t.notes.push_back("partial: a node has no record of part of the run (it failed, or its meter was stopped); "
                      "'covered s' is what every node measured");
  return t;
}

}  // namespace powertrain::study
