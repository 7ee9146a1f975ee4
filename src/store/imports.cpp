#include "powertrain/store/imports.h"

#include <fmt/format.h>

#include "db.h"
#include "powertrain/error.h"
#include "powertrain/store/records.h"
#include "powertrain/store/store.h"
#include "run_rows.h"

namespace powertrain::store {
using sql::Transaction;

namespace {
// Every column of runs but id, in schema order (version 5).
constexpr const char* kRunCopyCols =
    "config, dataset, model, optimizer, learning_rate, batch_size, seed, device, host, environment, status, epochs, "
    "best_epoch, duration_s, energy_j, energy_to_target_j, time_to_target_s, best_val_metric, test_metric, "
    "test_task_metrics, method, message, started_at, finished_at, cpu_machine_s, cpu_measured_s, quiet_wait_s, "
    "slurm_job, cluster_energy_j, machine_energy_j, nodes, nodes_dir";
constexpr const char* kEpochCopyCols =
    "epoch, duration_s, train_duration_s, eval_duration_s, energy_j, train_energy_j, eval_energy_j, method, "
    "samples_per_s, train_loss, val_loss, val_metric, val_task_metrics, cpu_machine_s, cpu_measured_s, "
    "forecast_method, forecast_stop_epoch_low, forecast_stop_epoch, forecast_stop_epoch_high, forecast_energy_low_j, "
    "forecast_energy_j, forecast_energy_high_j, forecast_target_energy_j, forecast_p_reach_target, machine_energy_j, "
    "covered_s";

// Detaches on every path.
struct Attached {
  sql::Connection& conn;
  ~Attached() {
    try {
      conn.exec("DETACH DATABASE src", "detach the result file");
    } catch (...) {
    }
  }
};
}  // namespace

ImportOutcome Imports::import_run(const ImportRequest& r) {
  const std::string purpose =
      fmt::format("take in run {} of {}", r.source_run_id, r.source.empty() ? r.source_db.string() : r.source);
  db().require_writable(purpose);
  auto& conn = db().conn;
  if (imported(r.source)) return ImportOutcome::already;
  {
    auto q = conn.cached("ATTACH DATABASE ? AS src", purpose);
    q.bind(1, r.source_db.string());
    q.run();
  }
  Attached attached{conn};
  const auto version = conn.scalar_int("PRAGMA src.user_version", purpose);
  if (version != kSchemaVersion)
    conn.fail(purpose, fmt::format("its schema version is {}, this powertrain's {}", version, kSchemaVersion));

  Transaction tx(conn, purpose);
  {
    auto q = conn.cached("SELECT 1 FROM imports WHERE source = ?", purpose);
    q.bind(1, r.source);
    if (q.step()) return ImportOutcome::already;  // another process took it in meanwhile
  }
  std::string trial_status;
  {
    auto q = conn.cached("SELECT status FROM trials WHERE id = ?", purpose);
    q.bind(1, r.trial_id);
    if (!q.step()) conn.fail(purpose, fmt::format("no trial {}", r.trial_id));
    trial_status = q.text(0);
  }
  {
    auto q = conn.cached("SELECT status FROM src.runs WHERE id = ?", purpose);
    q.bind(1, r.source_run_id);
    if (!q.step()) conn.fail(purpose, "the file has no such run");
  }
  if (is_done(trial_status_from_string(trial_status))) {
    auto q = conn.cached("INSERT INTO imports (source, trial_id, outcome, node) VALUES (?, ?, 'duplicate', ?)", purpose);
    q.bind(1, r.source).bind(2, r.trial_id).bind(3, r.node);
    q.run();
    tx.commit();
    return ImportOutcome::duplicate;
  }

  conn.exec(fmt::format("INSERT INTO runs ({0}) SELECT {0} FROM src.runs WHERE id = {1}", kRunCopyCols,
                        r.source_run_id),
            purpose);
  const std::int64_t run_id = sqlite3_last_insert_rowid(conn.get());
  {
    // A run its task left running (the task is gone) is interrupted; the
    // cluster's job id goes with the run.
    auto q = conn.cached(
        "UPDATE runs SET status = CASE WHEN status = 'running' AND ?1 <> '' THEN 'interrupted' ELSE status END, "
        "message = CASE WHEN status = 'running' AND ?1 <> '' THEN ?1 ELSE message END, "
        "slurm_job = nullif(?2, '') WHERE id = ?3",
        purpose);
    q.bind(1, r.interrupted_message).bind(2, r.slurm_job).bind(3, run_id);
    q.run();
  }
  conn.exec(fmt::format("INSERT INTO epochs (run_id, {0}) SELECT {1}, {0} FROM src.epochs WHERE run_id = {2}",
                        kEpochCopyCols, run_id, r.source_run_id),
            purpose);
  conn.exec(fmt::format("INSERT INTO epoch_channels (run_id, epoch, channel_id, ord, device, component, method, "
                        "in_total, energy_j, avg_power_w, peak_power_w, machine_energy_j) SELECT {0}, epoch, "
                        "channel_id, ord, device, component, method, in_total, energy_j, avg_power_w, peak_power_w, "
                        "machine_energy_j FROM src.epoch_channels "
                        "WHERE run_id = {1}",
                        run_id, r.source_run_id),
            purpose);
  conn.exec(fmt::format("INSERT INTO run_nodes (run_id, node, host, source, complete, status, epochs, duration_s, "
                        "energy_j, machine_energy_j, method, message) SELECT {0}, node, host, source, complete, status, "
                        "epochs, duration_s, energy_j, machine_energy_j, method, message FROM src.run_nodes "
                        "WHERE run_id = {1}",
                        run_id, r.source_run_id),
            purpose);
  conn.exec(fmt::format("INSERT INTO epoch_nodes (run_id, epoch, node, duration_s, train_duration_s, eval_duration_s, "
                        "energy_j, machine_energy_j, train_energy_j, eval_energy_j, method, covered_s) SELECT {0}, "
                        "epoch, node, duration_s, train_duration_s, eval_duration_s, energy_j, machine_energy_j, "
                        "train_energy_j, eval_energy_j, method, covered_s FROM src.epoch_nodes WHERE run_id = {1}",
                        run_id, r.source_run_id),
            purpose);
  conn.exec(fmt::format("INSERT INTO timeline_channels (run_id, channel, channel_id) SELECT {0}, channel, channel_id "
                        "FROM src.timeline_channels WHERE run_id = {1}",
                        run_id, r.source_run_id),
            purpose);
  conn.exec(fmt::format("INSERT INTO timeline (run_id, channel, t_ms, power_w) SELECT {0}, channel, t_ms, power_w "
                        "FROM src.timeline WHERE run_id = {1}",
                        run_id, r.source_run_id),
            purpose);
  {
    // The trial takes the run's status; a run still 'running' here has no
    // interrupted_message, i.e. the caller vouches it is a live task's: the
    // trial stays pending until its file is complete.
    auto q = conn.cached(
        "UPDATE trials SET status = CASE r.status WHEN 'running' THEN 'pending' ELSE r.status END, run_id = r.id, "
        "attempts = attempts + 1, started_at = r.started_at, finished_at = r.finished_at, message = r.message, "
        "owner = NULL, lease_until = NULL FROM (SELECT id, status, started_at, finished_at, message FROM runs "
        "WHERE id = ?1) AS r WHERE trials.id = ?2",
        purpose);
    q.bind(1, run_id).bind(2, r.trial_id);
    q.run();
  }
  run_rows::link_to_trial(conn, tx, run_id, r.trial_id, purpose);
  {
    auto q = conn.cached("INSERT INTO imports (source, trial_id, run_id, outcome, node) VALUES (?, ?, ?, 'imported', ?)",
                         purpose);
    q.bind(1, r.source).bind(2, r.trial_id).bind(3, run_id).bind(4, r.node);
    q.run();
  }
  tx.commit();
  return ImportOutcome::imported;
}

bool Imports::imported(std::string_view source) const {
  auto q = db().conn.cached("SELECT 1 FROM imports WHERE source = ?", "look up an imported result file");
  q.bind(1, source);
  return q.step();
}

std::vector<ImportRecord> Imports::imports_of(std::int64_t study_id) const {
  const std::string purpose = fmt::format("read the result files taken in for study {}", study_id);
  auto q = db().conn.cached(
      "SELECT source, trial_id, run_id, outcome, node, imported_at FROM imports "
      "WHERE trial_id IN (SELECT id FROM trials WHERE study_id = ?) ORDER BY imported_at",
      purpose);
  q.bind(1, study_id);
  std::vector<ImportRecord> out;
  while (q.step()) {
    ImportRecord i;
    i.source = q.text(0);
    i.trial_id = q.int64(1);
    i.run_id = q.opt_int64(2);
    const std::string outcome = q.text(3);
    if (outcome == "imported") i.outcome = ImportOutcome::imported;
    else if (outcome == "duplicate") i.outcome = ImportOutcome::duplicate;
    else db().conn.fail(purpose, fmt::format("stored import outcome '{}' is not one this powertrain knows", outcome));
    i.node = q.text(4);
    i.imported_at = q.text(5);
    out.push_back(std::move(i));
  }
  return out;
}

void Imports::add_slurm_task(std::int64_t trial_id, std::string_view job_id, int array_index) {
  const std::string purpose = fmt::format("record trial {} as Slurm task {}_{}", trial_id, job_id, array_index);
  db().require_writable(purpose);
  auto q = db().conn.cached(
      "INSERT OR IGNORE INTO slurm_tasks (trial_id, job_id, array_index) VALUES (?, ?, ?)", purpose);
  q.bind(1, trial_id).bind(2, job_id).bind(3, array_index);
  q.run();
}

std::vector<Imports::SlurmTask> Imports::slurm_tasks_of(std::int64_t study_id) const {
  auto q = db().conn.cached(
      "SELECT s.trial_id, s.job_id, s.array_index, s.submitted_at FROM slurm_tasks s JOIN trials t ON t.id = "
      "s.trial_id WHERE t.study_id = ? ORDER BY s.submitted_at, s.job_id, s.array_index",
      "read Slurm tasks");
  q.bind(1, study_id);
  std::vector<SlurmTask> out;
  while (q.step()) out.push_back({q.int64(0), q.text(1), q.int32(2), q.text(3)});
  return out;
}

void Imports::set_cluster_energy(std::int64_t run_id, double energy_j) {
  const std::string purpose = fmt::format("record the cluster's energy of run {}", run_id);
  db().require_writable(purpose);
  auto q = db().conn.cached("UPDATE runs SET cluster_energy_j = ? WHERE id = ?", purpose);
  q.bind(1, energy_j).bind(2, run_id);
  q.run();
}

std::pair<std::string, std::optional<double>> Imports::cluster_energy_of(std::int64_t run_id) const {
  auto q = db().conn.cached("SELECT coalesce(slurm_job, ''), cluster_energy_j FROM runs WHERE id = ?",
                            "read the cluster's energy of a run");
  q.bind(1, run_id);
  if (!q.step()) return {"", std::nullopt};
  return {q.text(0), q.opt_real(1)};
}

}  // namespace powertrain::store
