#include "powertrain/store/measurements.h"

#include <fmt/format.h>

#include "db.h"
#include "powertrain/error.h"

namespace powertrain::store {
using sql::Transaction;

std::int64_t Measurements::add_measurement(const MeasurementRecord& m) {
  const std::string purpose = fmt::format("add measurement {}", m.uuid);
  db().require_writable(purpose);
  auto& conn = db().conn;
  Transaction tx(conn, purpose);
  auto q = conn.cached(
      "INSERT INTO measurements (uuid, started_at, command, exit_code, duration_s, energy_j, "
      "avg_power_w, peak_power_w, energy_above_idle_j, emissions_kg, method, host, report) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      purpose);
  q.bind(1, m.uuid).bind(2, m.started_at).bind(3, m.command).bind(4, m.exit_code);
  q.bind(5, m.duration_s).bind(6, m.energy_j).bind(7, m.avg_power_w).bind(8, m.peak_power_w);
  q.bind(9, m.energy_above_idle_j).bind(10, m.emissions_kg).bind(11, m.method).bind(12, m.host);
  q.bind(13, m.report_json.empty() ? std::string("{}") : m.report_json);
  q.run();
  auto id = sqlite3_last_insert_rowid(conn.get());
  tx.commit();
  return id;
}

std::vector<MeasurementRecord> Measurements::list_measurements() const {
  auto q = db().conn.cached(
      "SELECT id, uuid, started_at, command, exit_code, duration_s, energy_j, avg_power_w, "
      "peak_power_w, energy_above_idle_j, emissions_kg, method, host, report "
      "FROM measurements ORDER BY id",
      "list measurements");
  std::vector<MeasurementRecord> out;
  while (q.step()) {
    MeasurementRecord m;
    m.id = q.int64(0);
    m.uuid = q.text(1);
    m.started_at = q.text(2);
    m.command = q.text(3);
    m.exit_code = q.int32(4);
    m.duration_s = q.real(5);
    m.energy_j = q.real(6);
    m.avg_power_w = q.real(7);
    m.peak_power_w = q.real(8);
    m.energy_above_idle_j = q.opt_real(9);
    m.emissions_kg = q.opt_real(10);
    m.method = q.text(11);
    m.host = q.text(12);
    m.report_json = q.text(13);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace powertrain::store
