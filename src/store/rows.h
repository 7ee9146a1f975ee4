#pragma once
// Rows in and out (internal to src/store): the column lists of the records
// several aggregates read, each next to its reader so that they cannot drift
// apart, and the conversions of stored text to the records' enums and JSON.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "powertrain/energy/types.h"
#include "powertrain/run/records.h"
#include "powertrain/store/records.h"
#include "powertrain/store/table.h"
#include "sqlite.h"

namespace powertrain::store::rows {

/// Parses stored JSON; throws StoreError naming `what`.
nlohmann::json parse_json(const std::string& text, std::string_view what);
/// Throw StoreError for a value this build does not know.
run::RunStatus run_status_of(const std::string& s);
TrialStatus trial_status_of(const std::string& s);
energy::Component component_of(const std::string& s);
energy::Method method_of(const std::string& s);

/// Two columns, machine then measured CPU-seconds; unset when either is NULL.
std::optional<energy::WindowCpu> read_cpu(const sql::Query& q, int c);
std::optional<double> machine_s(const std::optional<energy::WindowCpu>& c);
std::optional<double> measured_s(const std::optional<energy::WindowCpu>& c);

/// studies s: kStudyN columns from column c.
inline constexpr const char* kStudyCols = "s.id, s.name, s.kind, s.spec, s.environment, s.created_at";
inline constexpr int kStudyN = 6;
Study read_study(const sql::Query& q, int c);

/// trials t: kTrialN columns from column c.
inline constexpr const char* kTrialCols =
    "t.id, t.study_id, t.key, t.phase, t.step, t.task, t.config, t.status, t.run_id, t.attempts, "
    "t.started_at, t.finished_at, t.message";
inline constexpr int kTrialN = 13;
Trial read_trial(const sql::Query& q, int c);

/// runs r: kRunN columns from column c.
inline constexpr const char* kRunCols =
    "r.id, r.config, r.environment, r.status, r.epochs, r.best_epoch, r.duration_s, r.energy_j, "
    "r.energy_to_target_j, r.time_to_target_s, r.best_val_metric, r.test_metric, r.method, "
    "r.message, r.started_at, r.finished_at, r.test_task_metrics, r.cpu_machine_s, r.cpu_measured_s, "
    "r.quiet_wait_s, r.slurm_job, r.cluster_energy_j, r.machine_energy_j";
inline constexpr int kRunN = 23;
RunRecord read_run(const sql::Query& q, int c);

/// Runs one read-only statement with `?` parameters (Store::query). Throws
/// StoreError for a statement that would write, or the wrong number of parameters.
table::Table select(sql::Connection& conn, std::string_view sql_text, const std::vector<Value>& params);

}  // namespace powertrain::store::rows
