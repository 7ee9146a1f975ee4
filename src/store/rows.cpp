#include "rows.h"

#include <algorithm>
#include <cctype>
#include <type_traits>
#include <variant>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/store/json.h"

namespace powertrain::store::rows {
using nlohmann::json;
using sql::Query;

json parse_json(const std::string& text, std::string_view what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw StoreError(fmt::format("stored {} is not valid JSON: {}", what, e.what()));
  }
}

namespace {
template <typename Enum, typename Parse>
Enum parse_stored(const std::string& text, std::string_view what, Parse parse) {
  try {
    return parse(text);
  } catch (const ConfigError&) {
    throw StoreError(fmt::format("stored {} '{}' is not one this powertrain knows", what, text));
  }
}
}  // namespace

run::RunStatus run_status_of(const std::string& s) {
  return parse_stored<run::RunStatus>(s, "run status", run::run_status_from_string);
}

TrialStatus trial_status_of(const std::string& s) {
  return parse_stored<TrialStatus>(s, "trial status", trial_status_from_string);
}

energy::Component component_of(const std::string& s) {
  using energy::Component;
  for (Component c : {Component::gpu, Component::cpu, Component::dram, Component::psys, Component::board}) {
    if (energy::to_string(c) == s) return c;
  }
  throw StoreError(fmt::format("stored component '{}' is not one this powertrain knows", s));
}

energy::Method method_of(const std::string& s) {
  return parse_stored<energy::Method>(s, "measurement method", energy::method_from_string);
}

std::optional<energy::WindowCpu> read_cpu(const Query& q, int c) {
  const auto machine = q.opt_real(c), measured = q.opt_real(c + 1);
  if (!machine || !measured) return std::nullopt;
  return energy::WindowCpu{*machine, *measured};
}
std::optional<double> machine_s(const std::optional<energy::WindowCpu>& c) {
  return c ? std::optional(c->machine_s) : std::nullopt;
}
std::optional<double> measured_s(const std::optional<energy::WindowCpu>& c) {
  return c ? std::optional(c->measured_s) : std::nullopt;
}

Study read_study(const Query& q, int c) {
  Study s;
  s.id = q.int64(c);
  s.name = q.text(c + 1);
  s.kind = q.text(c + 2);
  s.spec = q.text(c + 3);
  s.environment = environment_from_json(parse_json(q.text(c + 4), "study environment"));
  s.created_at = q.text(c + 5);
  return s;
}

Trial read_trial(const Query& q, int c) {
  Trial t;
  t.id = q.int64(c);
  t.study_id = q.int64(c + 1);
  t.key = q.text(c + 2);
  t.phase = q.text(c + 3);
  t.step = q.int32(c + 4);
  t.task = q.text(c + 5);
  t.config = config_from_json(parse_json(q.text(c + 6), "trial configuration"));
  t.status = trial_status_of(q.text(c + 7));
  t.run_id = q.opt_int64(c + 8);
  t.attempts = q.int32(c + 9);
  t.started_at = q.text(c + 10);
  t.finished_at = q.text(c + 11);
  t.message = q.text(c + 12);
  return t;
}

RunRecord read_run(const Query& q, int c) {
  RunRecord r;
  r.id = q.int64(c);
  r.config = config_from_json(parse_json(q.text(c + 1), "run configuration"));
  r.environment = environment_from_json(parse_json(q.text(c + 2), "run environment"));
  auto& s = r.summary;
  s.status = run_status_of(q.text(c + 3));
  s.epochs = q.int32(c + 4);
  s.best_epoch = q.int32(c + 5);
  s.duration_s = q.real(c + 6);
  s.energy_j = q.real(c + 7);
  s.energy_to_target_j = q.opt_real(c + 8);
  s.time_to_target_s = q.opt_real(c + 9);
  s.best_val_metric = q.real(c + 10);
  s.test_metric = q.real(c + 11);
  s.method = q.text(c + 12);
  s.message = q.text(c + 13);
  r.started_at = q.text(c + 14);
  r.finished_at = q.text(c + 15);
  s.test_task_metrics = metrics_from_json(parse_json(q.text(c + 16), "test metrics per task"));
  s.cpu = read_cpu(q, c + 17);
  s.quiet_wait_s = q.opt_real(c + 19);
  r.slurm_job = q.is_null(c + 20) ? "" : q.text(c + 20);
  r.cluster_energy_j = q.opt_real(c + 21);
  s.machine_energy_j = q.opt_real(c + 22).value_or(s.energy_j);
  return r;
}

namespace {

// The statement's first word: transaction control and PRAGMAs count as
// read-only to SQLite but would change the connection.
std::string first_word(std::string_view sql_text) {
  std::string first;
  for (char ch : sql_text.substr(std::min(sql_text.find_first_not_of(" \t\r\n("), sql_text.size()))) {
    if (!std::isalpha(static_cast<unsigned char>(ch))) break;
    first += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return first;
}

}  // namespace

table::Table select(sql::Connection& conn, std::string_view sql_text, const std::vector<Value>& params) {
  static constexpr std::string_view kPurpose = "query";
  sql::StmtHandle owner;
  auto q = conn.once(sql_text, kPurpose, owner);
  const std::string first = first_word(sql_text);
  if ((first != "SELECT" && first != "WITH" && first != "VALUES") || !sqlite3_stmt_readonly(q.get())) {
    conn.fail(kPurpose, "only SELECT statements are allowed");
  }
  int expected = sqlite3_bind_parameter_count(q.get());
  if (static_cast<std::size_t>(expected) != params.size()) {
    conn.fail(kPurpose, fmt::format("the statement has {} parameters, {} given", expected, params.size()));
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    int idx = static_cast<int>(i) + 1;
    std::visit([&](const auto& v) {
      using T = std::decay_t<decltype(v)>;
      if constexpr (std::is_same_v<T, std::monostate>) q.bind(idx, nullptr);
      else q.bind(idx, v);
    }, params[i]);
  }
  table::Table t;
  int n = sqlite3_column_count(q.get());
  for (int c = 0; c < n; ++c) {
    const std::string name = sqlite3_column_name(q.get(), c);
    t.columns.push_back(table::Column{name, name, 0, false});
  }
  while (q.step()) {
    std::vector<table::Cell> row;
    row.reserve(static_cast<std::size_t>(n));
    for (int c = 0; c < n; ++c) {
      switch (sqlite3_column_type(q.get(), c)) {
        case SQLITE_NULL: row.emplace_back(std::monostate{}); break;
        case SQLITE_INTEGER: row.emplace_back(q.int64(c)); break;
        case SQLITE_FLOAT: row.emplace_back(q.real(c)); break;
        default: row.emplace_back(q.text(c)); break;
      }
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

}  // namespace powertrain::store::rows
