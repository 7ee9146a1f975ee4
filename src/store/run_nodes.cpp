// The runs aggregate's runs over several nodes (docs/cluster.md, "Several
// nodes"): each node's rows, and the merge of them into the run's figures.
#include "powertrain/store/runs.h"

#include <map>
#include <optional>

#include <fmt/format.h>

#include "db.h"
#include "powertrain/error.h"
#include "rows.h"
#include "run_rows.h"

namespace powertrain::store {
using rows::kRunCols;
using sql::Transaction;

void Runs::set_run_nodes(std::int64_t run_id, int nodes, const std::string& nodes_dir) {
  const std::string purpose = fmt::format("record the nodes of run {}", run_id);
  db().require_writable(purpose);
  if (nodes < 1) db().conn.fail(purpose, fmt::format("a run spans at least 1 node, not {}", nodes));
  Transaction tx(db().conn, purpose);
  auto q = db().conn.cached("UPDATE runs SET nodes = ?, nodes_dir = ? WHERE id = ?", purpose);
  q.bind(1, nodes).bind(2, nodes_dir).bind(3, run_id);
  q.run();
  if (sqlite3_changes(db().conn.get()) == 0) db().conn.fail(purpose, "no such run");
  tx.commit();
}

Runs::RunNodes Runs::run_nodes(std::int64_t run_id) const {
  const std::string purpose = fmt::format("read the nodes of run {}", run_id);
  auto& conn = db().conn;
  Transaction snapshot(conn, purpose, Transaction::Mode::read);
  RunNodes out;
  {
    auto q = conn.cached("SELECT nodes, nodes_dir FROM runs WHERE id = ?", purpose);
    q.bind(1, run_id);
    if (!q.step()) conn.fail(purpose, "no such run");
    out.nodes = q.is_null(0) ? 1 : q.int32(0);
    out.dir = q.is_null(1) ? "" : q.text(1);
  }
  auto q = conn.cached("SELECT node, complete FROM run_nodes WHERE run_id = ? ORDER BY node", purpose);
  q.bind(1, run_id);
  while (q.step()) (q.int64(1) != 0 ? out.complete : out.unfinished).push_back(q.int32(0));
  return out;
}

std::vector<std::int64_t> Runs::runs_awaiting_nodes() const {
  auto q = db().conn.cached(
      "SELECT id FROM runs r WHERE nodes > 1 AND nodes_dir IS NOT NULL AND status <> 'running' AND "
      "(SELECT count(*) FROM run_nodes n WHERE n.run_id = r.id AND n.complete = 1) < nodes ORDER BY id",
      "list runs waiting for their nodes");
  std::vector<std::int64_t> out;
  while (q.step()) out.push_back(q.int64(0));
  return out;
}

namespace {

// The per-node rows of a run with each node's whole epochs.
std::vector<run::NodeRun> read_node_runs(sql::Connection& conn, const sql::Transaction&, std::int64_t run_id,
                                         const std::string& purpose) {
  std::vector<run::NodeRun> out;
  std::map<int, std::size_t> index;
  {
    auto q = conn.cached(
        "SELECT node, host, source, complete, status, epochs, duration_s, energy_j, machine_energy_j, method, "
        "message FROM run_nodes WHERE run_id = ? ORDER BY node",
        purpose);
    q.bind(1, run_id);
    while (q.step()) {
      run::NodeRun n;
      n.node = q.int32(0);
      n.host = q.text(1);
      n.source = q.text(2);
      n.complete = q.int64(3) != 0;
      n.summary.status = rows::run_status_of(q.text(4));
      n.summary.epochs = q.int32(5);
      n.summary.duration_s = q.opt_real(6).value_or(0.0);
      n.summary.energy_j = q.opt_real(7).value_or(0.0);
      n.summary.machine_energy_j = q.opt_real(8).value_or(0.0);
      n.summary.method = q.text(9);
      n.summary.message = q.text(10);
      index[n.node] = out.size();
      out.push_back(std::move(n));
    }
  }
  // The nodes' whole epochs (a cut-short one follows from the totals).
  auto q = conn.cached(
      "SELECT node, epoch, duration_s, train_duration_s, eval_duration_s, energy_j, machine_energy_j, "
      "train_energy_j, eval_energy_j, method FROM epoch_nodes WHERE run_id = ? AND covered_s IS NULL "
      "ORDER BY node, epoch",
      purpose);
  q.bind(1, run_id);
  while (q.step()) {
    const auto it = index.find(q.int32(0));
    if (it == index.end()) continue;
    run::EpochRecord e;
    e.epoch = q.int32(1);
    e.duration_s = q.opt_real(2).value_or(0.0);
    e.train_duration_s = q.opt_real(3).value_or(0.0);
    e.eval_duration_s = q.opt_real(4).value_or(0.0);
    e.energy_j = q.opt_real(5).value_or(0.0);
    e.machine_energy_j = q.opt_real(6).value_or(0.0);
    e.train_energy_j = q.opt_real(7).value_or(0.0);
    e.eval_energy_j = q.opt_real(8).value_or(0.0);
    e.method = q.text(9);
    out[it->second].epochs.push_back(std::move(e));
  }
  return out;
}

// One node's own record into run_nodes and epoch_nodes; a secondary's
// channels into epoch_channels as "node<k>/<id>", for the epochs the run has.
void insert_node(sql::Connection& conn, const sql::Transaction&, std::int64_t run_id, const run::NodeRun& n,
                 bool channels, const std::string& purpose) {
  {
    auto q = conn.cached(
        "INSERT INTO run_nodes (run_id, node, host, source, complete, status, epochs, duration_s, energy_j, "
        "machine_energy_j, method, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        purpose);
    q.bind(1, run_id).bind(2, n.node).bind(3, n.host).bind(4, n.source).bind(5, n.complete ? 1 : 0);
    q.bind(6, run::to_string(n.summary.status)).bind(7, static_cast<int>(n.epochs.size()));
    q.bind(8, n.summary.duration_s).bind(9, n.summary.energy_j).bind(10, n.summary.machine_energy_j);
    q.bind(11, n.summary.method).bind(12, n.summary.message);
    q.run();
  }
  std::map<int, const run::EpochRecord*> by_epoch;
  for (const auto& e : n.epochs) by_epoch[e.epoch] = &e;
  for (const auto& [epoch, w] : run::node_epoch_windows(n)) {
    auto q = conn.cached(
        "INSERT INTO epoch_nodes (run_id, epoch, node, duration_s, train_duration_s, eval_duration_s, energy_j, "
        "machine_energy_j, train_energy_j, eval_energy_j, method, covered_s) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        purpose);
    const auto it = by_epoch.find(epoch);
    const run::EpochRecord* e = w.partial || it == by_epoch.end() ? nullptr : it->second;
    q.bind(1, run_id).bind(2, epoch).bind(3, n.node).bind(4, w.duration_s);
    q.bind(5, e ? std::optional(e->train_duration_s) : std::nullopt);
    q.bind(6, e ? std::optional(e->eval_duration_s) : std::nullopt);
    q.bind(7, w.energy_j).bind(8, w.machine_energy_j).bind(9, w.train_energy_j).bind(10, w.eval_energy_j);
    q.bind(11, w.method).bind(12, w.partial ? std::optional(w.covered_s) : std::nullopt);
    q.run();
  }
  if (!channels) return;
  for (const auto& e : n.epochs) {
    {
      auto q = conn.cached("SELECT 1 FROM epochs WHERE run_id = ? AND epoch = ?", purpose);
      q.bind(1, run_id).bind(2, e.epoch);
      if (!q.step()) continue;  // an epoch the run did not record: in the totals only
    }
    for (std::size_t i = 0; i < e.channels.size(); ++i) {
      const auto& ch = e.channels[i];
      auto q = conn.cached(
          "INSERT INTO epoch_channels (run_id, epoch, channel_id, ord, device, component, method, "
          "in_total, energy_j, avg_power_w, peak_power_w, machine_energy_j) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          purpose);
      q.bind(1, run_id).bind(2, e.epoch).bind(3, fmt::format("node{}/{}", n.node, ch.channel_id));
      q.bind(4, static_cast<std::int64_t>(n.node) * 100000 + static_cast<std::int64_t>(i));
      q.bind(5, fmt::format("node {}{}: {}", n.node, n.host.empty() ? "" : " (" + n.host + ")", ch.device));
      q.bind(6, energy::to_string(ch.component)).bind(7, energy::to_string(ch.method));
      q.bind(8, ch.in_total ? 1 : 0).bind(9, ch.energy_j).bind(10, ch.avg_power_w);
      q.bind(11, ch.peak_power_w).bind(12, ch.machine_energy_j);
      q.run();
    }
  }
}

}  // namespace

run::MergedRun Runs::record_nodes(std::int64_t run_id, const std::vector<run::NodeRun>& nodes) {
  const std::string purpose = fmt::format("merge the nodes of run {}", run_id);
  db().require_writable(purpose);
  auto& conn = db().conn;
  Transaction tx(conn, purpose);
  RunRecord record;
  int expected = 1;
  {
    auto q = conn.cached(fmt::format("SELECT {}, r.nodes FROM runs r WHERE r.id = ?", kRunCols), purpose);
    q.bind(1, run_id);
    if (!q.step()) conn.fail(purpose, "no such run");
    record = rows::read_run(q, 0);
    expected = q.is_null(23) ? 1 : q.int32(23);
  }
  if (expected < 2) conn.fail(purpose, "it is not a run over several nodes");
  bool have_primary = false;
  {
    auto q = conn.cached("SELECT 1 FROM run_nodes WHERE run_id = ? AND node = 0", purpose);
    q.bind(1, run_id);
    have_primary = q.step();
  }
  if (!have_primary) {
    // Node 0's own record, as the run stands before its first merge.
    run::NodeRun primary;
    primary.node = 0;
    primary.host = record.environment.host;
    primary.complete = record.summary.status != run::RunStatus::running;
    primary.summary = record.summary;
    primary.epochs = run_rows::read_epochs(conn, tx, run_id, purpose);
    insert_node(conn, tx, run_id, primary, false, purpose);
  }
  for (const auto& n : nodes) {
    if (n.node < 1 || n.node >= expected)
      conn.fail(purpose, fmt::format("node {} is not a secondary of a run over {} nodes", n.node, expected));
    for (const char* sql_text : {"DELETE FROM epoch_nodes WHERE run_id = ? AND node = ?",
                                 "DELETE FROM run_nodes WHERE run_id = ? AND node = ?"}) {
      auto q = conn.cached(sql_text, purpose);
      q.bind(1, run_id).bind(2, n.node);
      q.run();
    }
    {
      auto q = conn.cached("DELETE FROM epoch_channels WHERE run_id = ? AND channel_id LIKE ?", purpose);
      q.bind(1, run_id).bind(2, fmt::format("node{}/%", n.node));
      q.run();
    }
    insert_node(conn, tx, run_id, n, true, purpose);
  }

  const auto merged = run::merge_node_runs(read_node_runs(conn, tx, run_id, purpose), expected);
  for (const auto& m : merged.epochs) {
    auto q = conn.cached(
        "UPDATE epochs SET duration_s = ?, energy_j = ?, machine_energy_j = ?, train_energy_j = ?, "
        "eval_energy_j = ?, method = ?, covered_s = ? WHERE run_id = ? AND epoch = ?",
        purpose);
    q.bind(1, m.duration_s).bind(2, m.energy_j).bind(3, m.machine_energy_j).bind(4, m.train_energy_j);
    q.bind(5, m.eval_energy_j).bind(6, m.method).bind(7, m.partial ? std::optional(m.covered_s) : std::nullopt);
    q.bind(8, run_id).bind(9, m.epoch);
    q.run();
  }
  // Energy to the target: every node's energy up to the epoch that reached it.
  std::optional<double> to_target;
  if (record.summary.energy_to_target_j && record.config.target_metric) {
    double sum = 0.0;
    for (const auto& e : run_rows::read_epochs(conn, tx, run_id, purpose)) {
      sum += e.energy_j;
      if (e.val_metric >= *record.config.target_metric) {
        to_target = sum;
        break;
      }
    }
  }
  {
    auto q = conn.cached(
        "UPDATE runs SET duration_s = ?, energy_j = ?, machine_energy_j = ?, method = ?, "
        "energy_to_target_j = coalesce(?, energy_to_target_j) WHERE id = ?",
        purpose);
    q.bind(1, merged.run.duration_s).bind(2, merged.run.energy_j).bind(3, merged.run.machine_energy_j);
    q.bind(4, merged.run.method).bind(5, to_target).bind(6, run_id);
    q.run();
  }
  tx.commit();
  return merged;
}

run::MergedRun Runs::node_merge_of(std::int64_t run_id) const {
  const std::string purpose = fmt::format("read the nodes of run {}", run_id);
  auto& conn = db().conn;
  Transaction snapshot(conn, purpose, Transaction::Mode::read);
  int expected = 1;
  {
    auto q = conn.cached("SELECT nodes FROM runs WHERE id = ?", purpose);
    q.bind(1, run_id);
    if (!q.step()) conn.fail(purpose, "no such run");
    expected = q.is_null(0) ? 1 : q.int32(0);
  }
  const auto runs = read_node_runs(conn, snapshot, run_id, purpose);
  if (runs.empty()) {
    run::MergedRun none;
    none.nodes = expected;
    return none;
  }
  return run::merge_node_runs(runs, expected);
}

}  // namespace powertrain::store
