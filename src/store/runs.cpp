#include "powertrain/store/runs.h"

#include <cmath>
#include <map>

#include <fmt/format.h>

#include "db.h"
#include "powertrain/error.h"
#include "powertrain/store/json.h"
#include "rows.h"
#include "run_rows.h"

namespace powertrain::store {
using rows::kRunCols;
using rows::machine_s;
using rows::measured_s;
using sql::Transaction;

// --- inside a transaction of the caller's (run_rows.h) ------------------------

namespace run_rows {

std::int64_t insert(sql::Connection& conn, const sql::Transaction&, const run::RunConfig& c,
                    const run::Environment& e) {
  static constexpr std::string_view kPurpose = "begin run";
  auto q = conn.cached(
      "INSERT INTO runs (config, dataset, model, optimizer, learning_rate, batch_size, seed, device, "
      "host, environment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      kPurpose);
  q.bind(1, config_json(c).dump()).bind(2, c.dataset).bind(3, c.model).bind(4, c.optimizer);
  // Seeds above 2^63 - 1 show as negative in the seed column; config keeps them exact.
  q.bind(5, c.learning_rate).bind(6, c.batch_size).bind(7, static_cast<std::int64_t>(c.seed));
  q.bind(8, c.device).bind(9, e.host).bind(10, environment_json(e).dump());
  q.run();
  return sqlite3_last_insert_rowid(conn.get());
}

void link_to_trial(sql::Connection& conn, const sql::Transaction&, std::int64_t run_id, std::int64_t trial_id,
                   const std::string& purpose) {
  auto q = conn.cached("UPDATE runs SET trial_id = ? WHERE id = ?", purpose);
  q.bind(1, trial_id).bind(2, run_id);
  q.run();
}

void end(sql::Connection& conn, const sql::Transaction&, std::int64_t run_id, std::string_view status,
         std::string_view message, const std::string& purpose) {
  auto q = conn.cached("UPDATE runs SET status = ?, message = ?, finished_at = " PT_NOW
                       " WHERE id = ? AND status = 'running'",
                       purpose);
  q.bind(1, status).bind(2, message).bind(3, run_id);
  q.run();
}

void interrupt(sql::Connection& conn, const sql::Transaction&, std::int64_t run_id, std::string_view message,
               const std::string& purpose) {
  auto q = conn.cached("UPDATE runs SET status = 'interrupted', message = ? WHERE id = ? AND status = 'running'",
                       purpose);
  q.bind(1, message).bind(2, run_id);
  q.run();
}

void reopen_interrupted(sql::Connection& conn, const sql::Transaction&, std::int64_t run_id,
                        const std::string& purpose) {
  auto q = conn.cached(
      "UPDATE runs SET status = 'running' WHERE id = ? AND status = 'interrupted' AND finished_at IS NULL", purpose);
  q.bind(1, run_id);
  q.run();
}

void finish(sql::Connection& conn, const sql::Transaction&, std::int64_t run_id, const run::RunSummary& s) {
  const std::string purpose = fmt::format("finish run {}", run_id);
  if (s.status == run::RunStatus::running) {
    conn.fail(purpose, "the summary's status is still 'running'");
  }
  {
    auto q = conn.cached("SELECT status FROM runs WHERE id = ?", purpose);
    q.bind(1, run_id);
    if (!q.step()) conn.fail(purpose, "no such run");
    if (q.text(0) != "running") conn.fail(purpose, fmt::format("it is finished already ({})", q.text(0)));
  }
  auto q = conn.cached(
      "UPDATE runs SET status = ?, epochs = ?, best_epoch = ?, duration_s = ?, energy_j = ?, "
      "energy_to_target_j = ?, time_to_target_s = ?, best_val_metric = ?, test_metric = ?, "
      "method = ?, message = ?, test_task_metrics = ?, cpu_machine_s = ?, cpu_measured_s = ?, "
      "quiet_wait_s = coalesce(?, quiet_wait_s), machine_energy_j = ?17, finished_at = " PT_NOW " WHERE id = ?16",
      purpose);
  q.bind(1, run::to_string(s.status)).bind(2, s.epochs).bind(3, s.best_epoch);
  q.bind(4, s.duration_s).bind(5, s.energy_j).bind(6, s.energy_to_target_j);
  q.bind(7, s.time_to_target_s).bind(8, s.best_val_metric).bind(9, s.test_metric);
  q.bind(10, s.method).bind(11, s.message).bind(12, metrics_json(s.test_task_metrics).dump());
  q.bind(13, machine_s(s.cpu)).bind(14, measured_s(s.cpu)).bind(15, s.quiet_wait_s);
  q.bind(16, run_id).bind(17, s.machine_energy_j);
  q.run();
}

std::vector<run::EpochRecord> read_epochs(sql::Connection& conn, const sql::Transaction&, std::int64_t run_id,
                                          const std::string& purpose) {
  std::vector<run::EpochRecord> out;
  std::map<int, std::size_t> index;
  {
    auto q = conn.cached(
        "SELECT epoch, duration_s, train_duration_s, eval_duration_s, energy_j, train_energy_j, "
        "eval_energy_j, method, samples_per_s, train_loss, val_loss, val_metric, val_task_metrics, "
        "cpu_machine_s, cpu_measured_s, forecast_method, forecast_stop_epoch_low, forecast_stop_epoch, "
        "forecast_stop_epoch_high, forecast_energy_low_j, forecast_energy_j, forecast_energy_high_j, "
        "forecast_target_energy_j, forecast_p_reach_target, machine_energy_j FROM epochs WHERE run_id = ? "
        "ORDER BY epoch",
        purpose);
    q.bind(1, run_id);
    while (q.step()) {
      run::EpochRecord e;
      e.epoch = q.int32(0);
      e.duration_s = q.real(1);
      e.train_duration_s = q.real(2);
      e.eval_duration_s = q.real(3);
      e.energy_j = q.real(4);
      e.train_energy_j = q.real(5);
      e.eval_energy_j = q.real(6);
      e.method = q.text(7);
      e.samples_per_s = q.real(8);
      e.train_loss = q.real(9);
      e.val_loss = q.real(10);
      e.val_metric = q.real(11);
      e.val_task_metrics = metrics_from_json(rows::parse_json(q.text(12), "validation metrics per task"));
      e.cpu = rows::read_cpu(q, 13);
      if (!q.is_null(15)) {
        run::EpochForecast f;
        f.method = q.text(15);
        f.stop_epoch_low = q.real(16);
        f.stop_epoch = q.real(17);
        f.stop_epoch_high = q.real(18);
        f.energy_low_j = q.real(19);
        f.energy_j = q.real(20);
        f.energy_high_j = q.real(21);
        f.target_energy_j = q.opt_real(22);
        f.p_reach_target = q.real(23);
        e.forecast = f;
      }
      e.machine_energy_j = q.opt_real(24).value_or(e.energy_j);
      index[e.epoch] = out.size();
      out.push_back(std::move(e));
    }
  }
  auto q = conn.cached(
      "SELECT epoch, channel_id, device, component, method, in_total, energy_j, avg_power_w, "
      "peak_power_w, machine_energy_j FROM epoch_channels WHERE run_id = ? ORDER BY epoch, ord",
      purpose);
  q.bind(1, run_id);
  while (q.step()) {
    auto it = index.find(q.int32(0));
    if (it == index.end()) continue;  // foreign keys make this impossible
    energy::ChannelEnergy ch;
    ch.channel_id = q.text(1);
    ch.device = q.text(2);
    ch.component = rows::component_of(q.text(3));
    ch.method = rows::method_of(q.text(4));
    ch.in_total = q.int64(5) != 0;
    ch.energy_j = q.real(6);
    ch.avg_power_w = q.real(7);
    ch.peak_power_w = q.real(8);
    ch.machine_energy_j = q.opt_real(9).value_or(ch.energy_j);
    out[it->second].channels.push_back(std::move(ch));
  }
  return out;
}

}  // namespace run_rows

// --- runs ----------------------------------------------------------------------

std::int64_t Runs::begin_run(const run::RunConfig& config, const run::Environment& environment) {
  db().require_writable("begin run");
  Transaction tx(db().conn, "begin run");
  auto id = run_rows::insert(db().conn, tx, config, environment);
  tx.commit();
  return id;
}

void Runs::add_epoch(std::int64_t run_id, const run::EpochRecord& e) {
  const std::string purpose = fmt::format("add epoch {} of run {}", e.epoch, run_id);
  db().require_writable(purpose);
  auto& conn = db().conn;
  Transaction tx(conn, purpose);
  {
    auto q = conn.cached(
        "INSERT INTO epochs (run_id, epoch, duration_s, train_duration_s, eval_duration_s, energy_j, "
        "train_energy_j, eval_energy_j, method, samples_per_s, train_loss, val_loss, val_metric, "
        "val_task_metrics, cpu_machine_s, cpu_measured_s, forecast_method, forecast_stop_epoch_low, "
        "forecast_stop_epoch, forecast_stop_epoch_high, forecast_energy_low_j, forecast_energy_j, "
        "forecast_energy_high_j, forecast_target_energy_j, forecast_p_reach_target, machine_energy_j) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        purpose);
    q.bind(1, run_id).bind(2, e.epoch).bind(3, e.duration_s).bind(4, e.train_duration_s);
    q.bind(5, e.eval_duration_s).bind(6, e.energy_j).bind(7, e.train_energy_j);
    q.bind(8, e.eval_energy_j).bind(9, e.method).bind(10, e.samples_per_s).bind(11, e.train_loss);
    q.bind(12, e.val_loss).bind(13, e.val_metric).bind(14, metrics_json(e.val_task_metrics).dump());
    q.bind(15, machine_s(e.cpu)).bind(16, measured_s(e.cpu));
    if (const auto& f = e.forecast) {
      q.bind(17, f->method).bind(18, f->stop_epoch_low).bind(19, f->stop_epoch).bind(20, f->stop_epoch_high);
      q.bind(21, f->energy_low_j).bind(22, f->energy_j).bind(23, f->energy_high_j).bind(24, f->target_energy_j);
      q.bind(25, f->p_reach_target);
    } else {
      for (int i = 17; i <= 25; ++i) q.bind(i, nullptr);
    }
    q.bind(26, e.machine_energy_j);
    q.run();
  }
  for (std::size_t i = 0; i < e.channels.size(); ++i) {
    const auto& ch = e.channels[i];
    auto q = conn.cached(
        "INSERT INTO epoch_channels (run_id, epoch, channel_id, ord, device, component, method, "
        "in_total, energy_j, avg_power_w, peak_power_w, machine_energy_j) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        purpose);
    q.bind(1, run_id).bind(2, e.epoch).bind(3, ch.channel_id).bind(4, static_cast<std::int64_t>(i));
    q.bind(5, ch.device).bind(6, energy::to_string(ch.component)).bind(7, energy::to_string(ch.method));
    q.bind(8, ch.in_total ? 1 : 0).bind(9, ch.energy_j).bind(10, ch.avg_power_w);
    q.bind(11, ch.peak_power_w).bind(12, ch.machine_energy_j);
    q.run();
  }
  {
    // Totals so far, so reports show runs in progress and runs whose process died.
    auto q = conn.cached(
        "UPDATE runs SET epochs = max(epochs, ?), duration_s = coalesce(duration_s, 0) + "
        "coalesce(?, 0), energy_j = coalesce(energy_j, 0) + coalesce(?, 0), "
        "machine_energy_j = coalesce(machine_energy_j, 0) + coalesce(?7, 0), "
        // CPU time adds up while every epoch's is known (NULL + x is NULL).
        "cpu_machine_s = CASE WHEN epochs = 0 THEN ?5 ELSE cpu_machine_s + ?5 END, "
        "cpu_measured_s = CASE WHEN epochs = 0 THEN ?6 ELSE cpu_measured_s + ?6 END "
        "WHERE id = ?4 AND status = 'running'",
        purpose);
    q.bind(1, e.epoch).bind(2, e.duration_s).bind(3, e.energy_j).bind(4, run_id);
    q.bind(5, machine_s(e.cpu)).bind(6, measured_s(e.cpu)).bind(7, e.machine_energy_j);
    q.run();
  }
  tx.commit();
}

void Runs::finish_run(std::int64_t run_id, const run::RunSummary& summary) {
  const std::string purpose = fmt::format("finish run {}", run_id);
  db().require_writable(purpose);
  Transaction tx(db().conn, purpose);
  run_rows::finish(db().conn, tx, run_id, summary);
  tx.commit();
}

RunRecord Runs::run(std::int64_t run_id) const {
  auto q = db().conn.cached(fmt::format("SELECT {} FROM runs r WHERE r.id = ?", kRunCols), "read run");
  q.bind(1, run_id);
  if (!q.step()) db().conn.fail("read run", fmt::format("no run {}", run_id));
  return rows::read_run(q, 0);
}

std::vector<RunRecord> Runs::list_runs() const {
  auto q = db().conn.cached(fmt::format("SELECT {} FROM runs r ORDER BY r.id", kRunCols), "list runs");
  std::vector<RunRecord> out;
  while (q.step()) out.push_back(rows::read_run(q, 0));
  return out;
}

std::vector<run::EpochRecord> Runs::epochs_of(std::int64_t run_id) const {
  const std::string purpose = fmt::format("read epochs of run {}", run_id);
  // One snapshot for both queries: a writer's next epoch shows in both or neither.
  Transaction snapshot(db().conn, purpose, Transaction::Mode::read);
  return run_rows::read_epochs(db().conn, snapshot, run_id, purpose);
}

// --- timeline ----------------------------------------------------------------------

void Runs::add_timeline(std::int64_t run_id, const std::vector<std::string>& channel_ids,
                        const std::vector<energy::TimelineSample>& samples, std::int64_t origin_ns) {
  const std::string purpose = fmt::format("add timeline of run {}", run_id);
  db().require_writable(purpose);
  auto& conn = db().conn;
  for (const auto& s : samples) {
    if (s.power_w.size() != channel_ids.size()) {
      conn.fail(purpose, fmt::format("a sample has {} powers for {} channels", s.power_w.size(),
                                     channel_ids.size()));
    }
  }
  Transaction tx(conn, purpose);
  // Channel numbers are per run, in the order channels first appear.
  std::vector<std::int64_t> number(channel_ids.size());
  for (std::size_t i = 0; i < channel_ids.size(); ++i) {
    auto find = conn.cached("SELECT channel FROM timeline_channels WHERE run_id = ? AND channel_id = ?",
                            purpose);
    find.bind(1, run_id).bind(2, channel_ids[i]);
    if (find.step()) {
      number[i] = find.int64(0);
      continue;
    }
    auto add = conn.cached(
        "INSERT INTO timeline_channels (run_id, channel, channel_id) VALUES (?1, "
        "(SELECT coalesce(max(channel) + 1, 0) FROM timeline_channels WHERE run_id = ?1), ?2) "
        "RETURNING channel",
        purpose);
    add.bind(1, run_id).bind(2, channel_ids[i]);
    add.require_row();
    number[i] = add.int64(0);
    add.run();
  }
  for (const auto& s : samples) {
    auto t_ms = static_cast<std::int64_t>(std::llround(static_cast<double>(s.t_ns - origin_ns) / 1e6));
    for (std::size_t i = 0; i < channel_ids.size(); ++i) {
      if (std::isnan(s.power_w[i])) continue;
      auto q = conn.cached(
          "INSERT OR REPLACE INTO timeline (run_id, channel, t_ms, power_w) VALUES (?, ?, ?, ?)",
          purpose);
      q.bind(1, run_id).bind(2, number[i]).bind(3, t_ms).bind(4, s.power_w[i]);
      q.run();
    }
  }
  tx.commit();
}

void Runs::add_timeline(std::int64_t run_id, const std::vector<energy::ChannelInfo>& channels,
                        const std::vector<energy::TimelineSample>& samples, std::int64_t origin_ns) {
  std::vector<std::string> ids;
  ids.reserve(channels.size());
  for (const auto& c : channels) ids.push_back(c.id);
  add_timeline(run_id, ids, samples, origin_ns);
}

std::vector<TimelineSeries> Runs::timeline_of(std::int64_t run_id) const {
  auto q = db().conn.cached(
      "SELECT c.channel, c.channel_id, t.t_ms, t.power_w FROM timeline_channels c "
      "LEFT JOIN timeline t ON t.run_id = c.run_id AND t.channel = c.channel "
      "WHERE c.run_id = ? ORDER BY c.channel, t.t_ms",
      "read timeline");
  q.bind(1, run_id);
  std::vector<TimelineSeries> out;
  std::int64_t current = -1;
  while (q.step()) {
    if (out.empty() || q.int64(0) != current) {
      current = q.int64(0);
      out.push_back({q.text(1), {}, {}});
    }
    if (q.is_null(2)) continue;  // a channel without samples
    out.back().t_s.push_back(static_cast<double>(q.int64(2)) / 1000.0);
    out.back().power_w.push_back(q.real(3));
  }
  return out;
}

}  // namespace powertrain::store
