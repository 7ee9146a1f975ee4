#include "powertrain/store/studies.h"

#include <fmt/format.h>

#include "db.h"
#include "powertrain/error.h"
#include "powertrain/store/json.h"
#include "rows.h"

namespace powertrain::store {
using rows::kRunCols;
using rows::kStudyCols;
using rows::kStudyN;
using rows::kTrialCols;
using rows::kTrialN;
using sql::Transaction;

// --- studies -------------------------------------------------------------------

std::int64_t Studies::create_study(std::string_view name, std::string_view kind, std::string_view spec,
                                   const run::Environment& environment) {
  const std::string purpose = fmt::format("create study '{}'", name);
  db().require_writable(purpose);
  auto& conn = db().conn;
  Transaction tx(conn, purpose);
  {
    auto q = conn.cached("SELECT id FROM studies WHERE name = ?", purpose);
    q.bind(1, name);
    if (q.step()) conn.fail(purpose, fmt::format("a study of that name exists already (id {})", q.int64(0)));
  }
  auto q = conn.cached("INSERT INTO studies (name, kind, spec, environment) VALUES (?, ?, ?, ?)", purpose);
  q.bind(1, name).bind(2, kind).bind(3, spec).bind(4, environment_json(environment).dump());
  q.run();
  auto id = sqlite3_last_insert_rowid(conn.get());
  tx.commit();
  return id;
}

std::optional<Study> Studies::find_study(std::string_view name) const {
  auto q = db().conn.cached(fmt::format("SELECT {} FROM studies s WHERE s.name = ?", kStudyCols),
                            "find study");
  q.bind(1, name);
  if (!q.step()) return std::nullopt;
  return rows::read_study(q, 0);
}

Study Studies::study(std::int64_t study_id) const {
  auto q = db().conn.cached(fmt::format("SELECT {} FROM studies s WHERE s.id = ?", kStudyCols),
                            "read study");
  q.bind(1, study_id);
  if (!q.step()) db().conn.fail("read study", fmt::format("no study {}", study_id));
  return rows::read_study(q, 0);
}

std::vector<StudyOverview> Studies::list_studies() const {
  auto q = db().conn.cached(
      fmt::format("SELECT {}, count(t.id), "
                  "count(CASE WHEN t.status = 'pending' THEN 1 END), "
                  "count(CASE WHEN t.status = 'running' THEN 1 END), "
                  "count(CASE WHEN t.status = 'converged' THEN 1 END), "
                  "count(CASE WHEN t.status = 'max_epochs' THEN 1 END), "
                  "count(CASE WHEN t.status = 'diverged' THEN 1 END), "
                  "count(CASE WHEN t.status = 'interrupted' THEN 1 END), "
                  "count(CASE WHEN t.status = 'failed' THEN 1 END), "
                  "total(r.energy_j), total(r.duration_s) "
                  "FROM studies s LEFT JOIN trials t ON t.study_id = s.id "
                  "LEFT JOIN runs r ON r.id = t.run_id GROUP BY s.id ORDER BY s.id",
                  kStudyCols),
      "list studies");
  std::vector<StudyOverview> out;
  while (q.step()) {
    StudyOverview o;
    o.study = rows::read_study(q, 0);
    int c = kStudyN;
    auto& n = o.trials;
    n.total = q.int32(c++);
    n.pending = q.int32(c++);
    n.running = q.int32(c++);
    n.converged = q.int32(c++);
    n.max_epochs = q.int32(c++);
    n.diverged = q.int32(c++);
    n.interrupted = q.int32(c++);
    n.failed = q.int32(c++);
    o.energy_j = q.real(c++);
    o.duration_s = q.real(c++);
    out.push_back(std::move(o));
  }
  return out;
}

// --- trials ---------------------------------------------------------------------

std::int64_t Studies::upsert_trial(std::int64_t study_id, const TrialSpec& spec) {
  const std::string purpose = fmt::format("add trial to study {}", study_id);
  db().require_writable(purpose);
  auto& conn = db().conn;
  Transaction tx(conn, purpose);
  {
    auto q = conn.cached("SELECT 1 FROM studies WHERE id = ?", purpose);
    q.bind(1, study_id);
    if (!q.step()) conn.fail(purpose, "no such study");
  }
  {
    // An existing trial keeps its row as it is: its status is what a resumed
    // study needs to see.
    auto q = conn.cached(
        "INSERT INTO trials (study_id, key, phase, step, task, config) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (study_id, key) DO NOTHING",
        purpose);
    q.bind(1, study_id).bind(2, spec.key).bind(3, spec.phase).bind(4, spec.step).bind(5, spec.task);
    q.bind(6, config_json(spec.config).dump());
    q.run();
  }
  auto q = conn.cached("SELECT id FROM trials WHERE study_id = ? AND key = ?", purpose);
  q.bind(1, study_id).bind(2, spec.key);
  q.require_row();
  auto id = q.int64(0);
  tx.commit();
  return id;
}

std::optional<Trial> Studies::find_trial(std::int64_t study_id, std::string_view key) const {
  auto q = db().conn.cached(
      fmt::format("SELECT {} FROM trials t WHERE t.study_id = ? AND t.key = ?", kTrialCols), "find trial");
  q.bind(1, study_id).bind(2, key);
  if (!q.step()) return std::nullopt;
  return rows::read_trial(q, 0);
}

Trial Studies::trial(std::int64_t trial_id) const {
  auto q = db().conn.cached(fmt::format("SELECT {} FROM trials t WHERE t.id = ?", kTrialCols),
                            "read trial");
  q.bind(1, trial_id);
  if (!q.step()) db().conn.fail("read trial", fmt::format("no trial {}", trial_id));
  return rows::read_trial(q, 0);
}

std::vector<Trial> Studies::trials_of(std::int64_t study_id) const {
  auto q = db().conn.cached(
      fmt::format("SELECT {} FROM trials t WHERE t.study_id = ? ORDER BY t.step, t.id", kTrialCols),
      "list trials");
  q.bind(1, study_id);
  std::vector<Trial> out;
  while (q.step()) out.push_back(rows::read_trial(q, 0));
  return out;
}

std::vector<TrialResult> Studies::results_of(std::int64_t study_id) const {
  auto q = db().conn.cached(
      fmt::format("SELECT {}, {} FROM trials t LEFT JOIN runs r ON r.id = t.run_id "
                  "WHERE t.study_id = ? ORDER BY t.step, t.id",
                  kTrialCols, kRunCols),
      "list trial results");
  q.bind(1, study_id);
  std::vector<TrialResult> out;
  while (q.step()) {
    TrialResult r;
    r.trial = rows::read_trial(q, 0);
    if (!q.is_null(kTrialN)) r.run = rows::read_run(q, kTrialN);
    out.push_back(std::move(r));
  }
  return out;
}

double Studies::energy_of_study(std::int64_t study_id) const {
  const std::string purpose = fmt::format("read the energy of study {}", study_id);
  auto q = db().conn.cached(
      "SELECT COALESCE(SUM(CASE WHEN r.finished_at IS NULL OR r.energy_j IS NULL "
      "THEN (SELECT COALESCE(SUM(e.energy_j), 0) FROM epochs e WHERE e.run_id = r.id) ELSE r.energy_j END), 0) "
      "FROM runs r WHERE r.trial_id IN (SELECT id FROM trials WHERE study_id = ?1) "
      "OR r.id IN (SELECT run_id FROM trials WHERE study_id = ?1)",
      purpose);
  q.bind(1, study_id);
  if (!q.step()) return 0.0;
  return q.opt_real(0).value_or(0.0);
}

table::Table Studies::results_table(std::int64_t study_id) const {
  return rows::select(db().conn, "SELECT * FROM trial_results WHERE study_id = ? ORDER BY step, trial_id", {study_id});
}

}  // namespace powertrain::store
