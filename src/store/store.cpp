#include "powertrain/store/store.h"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <limits>
#include <map>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "powertrain/error.h"
#include "powertrain/store/json.h"
#include "schema.h"
#include "sqlite.h"

namespace powertrain::store {
namespace fs = std::filesystem;
using nlohmann::json;
using sql::Query;
using sql::Transaction;

#define PT_NOW "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

namespace {

// --- values in and out of rows ---------------------------------------------

json parse_json(const std::string& text, std::string_view what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw StoreError(fmt::format("stored {} is not valid JSON: {}", what, e.what()));
  }
}

template <typename Enum, typename Parse>
Enum parse_stored(const std::string& text, std::string_view what, Parse parse) {
  try {
    return parse(text);
  } catch (const ConfigError&) {
    throw StoreError(fmt::format("stored {} '{}' is not one this powertrain knows", what, text));
  }
}

energy::Component component_from_text(const std::string& s) {
  using energy::Component;
  for (Component c : {Component::gpu, Component::cpu, Component::dram, Component::psys,
                      Component::board}) {
    if (energy::to_string(c) == s) return c;
  }
  throw StoreError(fmt::format("stored component '{}' is not one this powertrain knows", s));
}

run::RunStatus run_status_of(const std::string& s) {
  return parse_stored<run::RunStatus>(s, "run status", run::run_status_from_string);
}

TrialStatus trial_status_of(const std::string& s) {
  return parse_stored<TrialStatus>(s, "trial status", trial_status_from_string);
}

// Column lists and readers kept side by side so they cannot drift apart.
constexpr const char* kStudyCols = "s.id, s.name, s.kind, s.spec, s.environment, s.created_at";
constexpr int kStudyN = 6;

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

constexpr const char* kTrialCols =
    "t.id, t.study_id, t.key, t.phase, t.step, t.task, t.config, t.status, t.run_id, t.attempts, "
    "t.started_at, t.finished_at, t.message";
constexpr int kTrialN = 13;

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

constexpr const char* kRunCols =
    "r.id, r.config, r.environment, r.status, r.epochs, r.best_epoch, r.duration_s, r.energy_j, "
    "r.energy_to_target_j, r.time_to_target_s, r.best_val_metric, r.test_metric, r.method, "
    "r.message, r.started_at, r.finished_at, r.test_task_metrics, r.cpu_machine_s, r.cpu_measured_s, "
    "r.quiet_wait_s, r.slurm_job, r.cluster_energy_j, r.machine_energy_j";

// Two columns, machine then measured CPU-seconds; unset when either is NULL.
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

// --- opening ------------------------------------------------------------------

struct Header {
  std::int64_t application_id = 0;
  std::int64_t user_version = 0;
  std::int64_t objects = 0;  // tables, indexes, views, triggers
};

// Reads the header fields that tell a powertrain database from anything else.
// The first read of a file is where SQLite finds out it is not a database.
Header read_header(sql::Connection& conn) {
  static constexpr std::string_view kSql =
      "SELECT (SELECT application_id FROM pragma_application_id), "
      "(SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_schema)";
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(conn.get(), kSql.data(), static_cast<int>(kSql.size()), &raw, nullptr);
  sql::StmtHandle stmt(raw);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(raw);
    if (rc == SQLITE_ROW) {
      return {sqlite3_column_int64(raw, 0), sqlite3_column_int64(raw, 1),
              sqlite3_column_int64(raw, 2)};
    }
  }
  if ((rc & 0xff) == SQLITE_NOTADB) {
    throw StoreError(fmt::format("{}: not a powertrain database (not an SQLite file)", conn.label()));
  }
  conn.fail("read database header");
}

// true: an empty database that open() may initialize.
bool identify(sql::Connection& conn, const Header& h) {
  if (h.application_id == kApplicationId) return false;
  if (h.application_id == 0 && h.user_version == 0 && h.objects == 0) return true;
  if (h.application_id != 0) {
    throw StoreError(fmt::format("{}: not a powertrain database (application_id {:#010x})",
                                 conn.label(), static_cast<std::uint32_t>(h.application_id)));
  }
  throw StoreError(
      fmt::format("{}: not a powertrain database (an SQLite database of something else)", conn.label()));
}

void set_busy_timeout(sql::Connection& conn, const OpenOptions& options) {
  auto ms = options.busy_timeout.count();
  if (ms < 0 || ms > std::numeric_limits<int>::max()) conn.fail("open", "busy timeout out of range");
  if (sqlite3_busy_timeout(conn.get(), static_cast<int>(ms)) != SQLITE_OK) conn.fail("set busy timeout");
}

constexpr int kOpenFlags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;

std::string journal_advice(const fs::path& path) {
  return fmt::format(
      "it holds the journal of a write that never finished ({}-journal), which only a user who may write the "
      "database and its folder can roll back: run `powertrain collect {}` as such a user (or give this user write "
      "access), then read it again",
      path.string(), path.string());
}

// A database this user may not write (opened immutable, which ignores
// journals) whose rollback journal is there and not empty: what it holds may
// be half a transaction. Said rather than read.
void refuse_unrecoverable_journal(const fs::path& path) {
  const std::string file = path.string();
  std::string dir = path.parent_path().string();
  if (dir.empty()) dir = ".";
  if (::access(file.c_str(), W_OK) == 0 && ::access(dir.c_str(), W_OK) == 0) return;
  std::error_code ec;
  const auto journal = fs::path(file + "-journal");
  if (fs::is_regular_file(journal, ec) && fs::file_size(journal, ec) > 0 && !ec)
    throw StoreError(fmt::format("{}: cannot be read as it is: {}", file, journal_advice(path)));
}

// Rolls a hot journal back through a writable connection of its own (SQLite
// does it on the first read of a connection that may write).
void roll_back_hot_journal(const fs::path& path, const OpenOptions& options) {
  const std::string label = path.string();
  try {
    sql::Connection conn(label, SQLITE_OPEN_READWRITE | kOpenFlags, label);
    set_busy_timeout(conn, options);
    (void)read_header(conn);
  } catch (const StoreError& e) {
    throw StoreError(fmt::format("{}: cannot be read as it is: {} ({})", label, journal_advice(path), e.what()));
  }
}

}  // namespace

struct Store::Impl {
  Impl(const fs::path& p, bool ro, int flags)
      : path(p), read_only(ro), conn(p.string(), flags, p.string()) {}
  fs::path path;
  bool read_only;
  sql::Connection conn;

  void require_writable(std::string_view purpose) const {
    if (read_only) conn.fail(purpose, "the database was opened read-only");
  }

  std::int64_t insert_run(const run::RunConfig& c, const run::Environment& e);
  void link_run(std::int64_t run_id, std::int64_t trial_id, const std::string& purpose) {
    auto q = conn.cached("UPDATE runs SET trial_id = ? WHERE id = ?", purpose);
    q.bind(1, trial_id).bind(2, run_id);
    q.run();
  }
  void finish_run_locked(std::int64_t run_id, const run::RunSummary& s);
  // Inside a transaction of the caller's.
  std::vector<run::EpochRecord> read_epochs(std::int64_t run_id, const std::string& purpose);
  std::vector<run::NodeRun> read_node_runs(std::int64_t run_id, const std::string& purpose);
  void end_trial(std::int64_t trial_id, TrialStatus status, std::string_view message);
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

Store Store::open(const fs::path& path, const OpenOptions& options) {
  const std::string label = path.string();
  if (label.empty()) throw StoreError("results database: the path is empty");
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw StoreError(fmt::format("{}: cannot create the database: directory {} does not exist",
                                 label, dir.string()));
  }
  if (fs::is_directory(path, ec)) {
    throw StoreError(fmt::format("{}: is a directory, not a powertrain database", label));
  }
  auto impl = std::make_unique<Impl>(path, false, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | kOpenFlags);
  auto& conn = impl->conn;
  if (sqlite3_db_readonly(conn.get(), "main") == 1) {
    conn.fail("open", "cannot write the file (permissions?); reports can open it read-only");
  }
  set_busy_timeout(conn, options);
  Header h = read_header(conn);
  identify(conn, h);
  // Refuse a newer schema before changing anything in the file.
  schema::check_version(conn, static_cast<int>(h.user_version), false);

  // WAL: readers never block the writer and see only committed transactions;
  // the setting is stored in the file, so read-only opens get it too.
  // A result file on a network file system takes a rollback journal instead.
  const char* journal = options.wal ? "wal" : "delete";
  if (conn.scalar_text("PRAGMA journal_mode", "read journal mode") != journal) {
    std::string mode = conn.scalar_text(fmt::format("PRAGMA journal_mode = {}", journal), "set the journal mode");
    if (mode != journal) conn.fail("set the journal mode", fmt::format("journal mode stays '{}'", mode));
  }
  conn.exec(options.durability == Durability::full ? "PRAGMA synchronous = FULL"
                                                   : "PRAGMA synchronous = NORMAL",
            "set durability");
  conn.exec("PRAGMA foreign_keys = ON", "enable foreign keys");
  schema::migrate(conn, options.schema_version);
  return Store(std::move(impl));
}

Store Store::open_readonly(const fs::path& path, const OpenOptions& options) {
  const std::string label = path.string();
  if (label.empty()) throw StoreError("results database: the path is empty");
  std::error_code ec;
  if (!fs::exists(path, ec)) throw StoreError(fmt::format("{}: no such database file", label));
  if (fs::is_directory(path, ec)) {
    throw StoreError(fmt::format("{}: is a directory, not a powertrain database", label));
  }
  refuse_unrecoverable_journal(path);
  auto impl = std::make_unique<Impl>(path, true, SQLITE_OPEN_READONLY | kOpenFlags);
  set_busy_timeout(impl->conn, options);
  Header h;
  try {
    h = read_header(impl->conn);
  } catch (const StoreError&) {
    // A write that never finished left its rollback journal: a reader cannot
    // roll it back, a writer can (what SQLite does on any writer's first read).
    if (sqlite3_extended_errcode(impl->conn.get()) != SQLITE_READONLY_ROLLBACK) throw;
    impl.reset();
    roll_back_hot_journal(path, options);
    impl = std::make_unique<Impl>(path, true, SQLITE_OPEN_READONLY | kOpenFlags);
    set_busy_timeout(impl->conn, options);
    h = read_header(impl->conn);
  }
  auto& conn = impl->conn;
  if (identify(conn, h)) {
    throw StoreError(fmt::format("{}: not a powertrain database (empty)", label));
  }
  schema::check_version(conn, static_cast<int>(h.user_version), true);
  return Store(std::move(impl));
}

const fs::path& Store::path() const { return impl_->path; }
bool Store::read_only() const { return impl_->read_only; }
bool Store::wal() const {
  return impl_->conn.scalar_text("PRAGMA journal_mode", "read the journal mode") == "wal";
}

int Store::schema_version() const {
  return static_cast<int>(impl_->conn.scalar_int("PRAGMA user_version", "read schema version"));
}

// --- studies -------------------------------------------------------------------

std::int64_t Store::create_study(std::string_view name, std::string_view kind, std::string_view spec,
                                 const run::Environment& environment) {
  const std::string purpose = fmt::format("create study '{}'", name);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
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

std::optional<Study> Store::find_study(std::string_view name) const {
  auto q = impl_->conn.cached(fmt::format("SELECT {} FROM studies s WHERE s.name = ?", kStudyCols),
                              "find study");
  q.bind(1, name);
  if (!q.step()) return std::nullopt;
  return read_study(q, 0);
}

Study Store::study(std::int64_t study_id) const {
  auto q = impl_->conn.cached(fmt::format("SELECT {} FROM studies s WHERE s.id = ?", kStudyCols),
                              "read study");
  q.bind(1, study_id);
  if (!q.step()) impl_->conn.fail("read study", fmt::format("no study {}", study_id));
  return read_study(q, 0);
}

std::vector<StudyOverview> Store::list_studies() const {
  auto q = impl_->conn.cached(
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
    o.study = read_study(q, 0);
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

std::int64_t Store::upsert_trial(std::int64_t study_id, const TrialSpec& spec) {
  const std::string purpose = fmt::format("add trial to study {}", study_id);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
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

std::optional<Trial> Store::find_trial(std::int64_t study_id, std::string_view key) const {
  auto q = impl_->conn.cached(
      fmt::format("SELECT {} FROM trials t WHERE t.study_id = ? AND t.key = ?", kTrialCols), "find trial");
  q.bind(1, study_id).bind(2, key);
  if (!q.step()) return std::nullopt;
  return read_trial(q, 0);
}

Trial Store::trial(std::int64_t trial_id) const {
  auto q = impl_->conn.cached(fmt::format("SELECT {} FROM trials t WHERE t.id = ?", kTrialCols),
                              "read trial");
  q.bind(1, trial_id);
  if (!q.step()) impl_->conn.fail("read trial", fmt::format("no trial {}", trial_id));
  return read_trial(q, 0);
}

std::vector<Trial> Store::trials_of(std::int64_t study_id) const {
  auto q = impl_->conn.cached(
      fmt::format("SELECT {} FROM trials t WHERE t.study_id = ? ORDER BY t.step, t.id", kTrialCols),
      "list trials");
  q.bind(1, study_id);
  std::vector<Trial> out;
  while (q.step()) out.push_back(read_trial(q, 0));
  return out;
}

std::vector<TrialResult> Store::results_of(std::int64_t study_id) const {
  auto q = impl_->conn.cached(
      fmt::format("SELECT {}, {} FROM trials t LEFT JOIN runs r ON r.id = t.run_id "
                  "WHERE t.study_id = ? ORDER BY t.step, t.id",
                  kTrialCols, kRunCols),
      "list trial results");
  q.bind(1, study_id);
  std::vector<TrialResult> out;
  while (q.step()) {
    TrialResult r;
    r.trial = read_trial(q, 0);
    if (!q.is_null(kTrialN)) r.run = read_run(q, kTrialN);
    out.push_back(std::move(r));
  }
  return out;
}

std::int64_t Store::start_trial(std::int64_t trial_id, const run::RunConfig& config,
                                const run::Environment& environment) {
  const std::string purpose = fmt::format("start trial {}", trial_id);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
  Transaction tx(conn, purpose);
  {
    auto q = conn.cached("SELECT status FROM trials WHERE id = ?", purpose);
    q.bind(1, trial_id);
    if (!q.step()) conn.fail(purpose, "no such trial");
    auto status = trial_status_of(q.text(0));
    if (status == TrialStatus::running) conn.fail(purpose, "it is running already (in another process?)");
    if (is_done(status)) conn.fail(purpose, fmt::format("it is done already ({})", to_string(status)));
  }
  std::int64_t run_id = impl_->insert_run(config, environment);
  auto q = conn.cached(
      "UPDATE trials SET status = 'running', run_id = ?, attempts = attempts + 1, "
      "started_at = " PT_NOW ", finished_at = NULL, message = '' WHERE id = ?",
      purpose);
  q.bind(1, run_id).bind(2, trial_id);
  q.run();
  impl_->link_run(run_id, trial_id, purpose);
  tx.commit();
  return run_id;
}

void Store::complete_trial(std::int64_t trial_id, const run::RunSummary& summary) {
  const std::string purpose = fmt::format("complete trial {}", trial_id);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
  if (summary.status == run::RunStatus::running) {
    conn.fail(purpose, "the summary's status is still 'running'");
  }
  Transaction tx(conn, purpose);
  std::int64_t run_id = 0;
  {
    auto q = conn.cached("SELECT status, run_id FROM trials WHERE id = ?", purpose);
    q.bind(1, trial_id);
    if (!q.step()) conn.fail(purpose, "no such trial");
    if (q.text(0) != "running" || q.is_null(1)) {
      conn.fail(purpose, fmt::format("it is not running (status {})", q.text(0)));
    }
    run_id = q.int64(1);
  }
  impl_->finish_run_locked(run_id, summary);
  auto q = conn.cached("UPDATE trials SET status = ?, message = ?, finished_at = " PT_NOW " WHERE id = ?",
                       purpose);
  q.bind(1, to_string(trial_status(summary.status))).bind(2, summary.message).bind(3, trial_id);
  q.run();
  tx.commit();
}

void Store::Impl::end_trial(std::int64_t trial_id, TrialStatus status, std::string_view message) {
  const std::string purpose = fmt::format("mark trial {} {}", trial_id, to_string(status));
  require_writable(purpose);
  Transaction tx(conn, purpose);
  std::optional<std::int64_t> run_id;
  {
    auto q = conn.cached("SELECT run_id FROM trials WHERE id = ?", purpose);
    q.bind(1, trial_id);
    if (!q.step()) conn.fail(purpose, "no such trial");
    run_id = q.opt_int64(0);
  }
  if (run_id) {
    auto q = conn.cached("UPDATE runs SET status = ?, message = ?, finished_at = " PT_NOW
                         " WHERE id = ? AND status = 'running'",
                         purpose);
    q.bind(1, to_string(status)).bind(2, message).bind(3, *run_id);
    q.run();
  }
  auto q = conn.cached("UPDATE trials SET status = ?, message = ?, finished_at = " PT_NOW " WHERE id = ?",
                       purpose);
  q.bind(1, to_string(status)).bind(2, message).bind(3, trial_id);
  q.run();
  tx.commit();
}

void Store::mark_trial_failed(std::int64_t trial_id, std::string_view message) {
  impl_->end_trial(trial_id, TrialStatus::failed, message);
}

void Store::mark_trial_interrupted(std::int64_t trial_id, std::string_view message) {
  impl_->end_trial(trial_id, TrialStatus::interrupted, message);
}

int Store::reset_interrupted(std::int64_t study_id, double now_s) {
  const std::string purpose = fmt::format("reset interrupted trials of study {}", study_id);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
  static constexpr std::string_view kMessage = "the process running it ended before it finished";
  Transaction tx(conn, purpose);
  // The running trials whose holder is gone.
  std::vector<std::pair<std::int64_t, std::optional<std::int64_t>>> gone;
  {
    auto q = conn.cached("SELECT id, run_id, owner, lease_until FROM trials WHERE study_id = ? AND status = 'running'",
                         purpose);
    q.bind(1, study_id);
    while (q.step()) {
      const bool unclaimed = q.is_null(2);
      const bool expired = !q.is_null(3) && q.real(3) < now_s;
      if (unclaimed || expired || owner_is_gone(q.text(2))) gone.emplace_back(q.int64(0), q.opt_int64(1));
    }
  }
  for (const auto& [trial_id, run_id] : gone) {
    if (run_id) {
      // finished_at stays NULL: nobody saw when the process died.
      auto q = conn.cached("UPDATE runs SET status = 'interrupted', message = ? WHERE id = ? AND status = 'running'",
                           purpose);
      q.bind(1, kMessage).bind(2, *run_id);
      q.run();
    }
    auto q = conn.cached(
        "UPDATE trials SET status = 'interrupted', message = ?, finished_at = NULL, owner = NULL, lease_until = NULL "
        "WHERE id = ?",
        purpose);
    q.bind(1, kMessage).bind(2, trial_id);
    q.run();
  }
  tx.commit();
  return static_cast<int>(gone.size());
}

Store::Claim Store::claim_trial(std::int64_t trial_id, const run::RunConfig& config,
                                const run::Environment& environment, std::string_view owner, double lease_s,
                                double now_s) {
  const std::string purpose = fmt::format("claim trial {}", trial_id);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
  Transaction tx(conn, purpose);  // BEGIN IMMEDIATE: one claimer at a time
  Claim c;
  {
    auto q = conn.cached("SELECT status, run_id, owner, lease_until FROM trials WHERE id = ?", purpose);
    q.bind(1, trial_id);
    if (!q.step()) conn.fail(purpose, "no such trial");
    const auto status = trial_status_of(q.text(0));
    if (is_done(status)) {
      c.outcome = ClaimOutcome::done;
      return c;
    }
    if (status == TrialStatus::running) {
      const std::string holder = q.is_null(2) ? "" : q.text(2);
      const bool expired = !q.is_null(3) && q.real(3) < now_s;
      const bool gone = q.is_null(2) || expired || owner_is_gone(holder);
      if (!gone) return c;  // busy
      c.taken_from = holder.empty() ? "a process that left no claim" : holder;
      if (auto old_run = q.opt_int64(1)) {
        auto u = conn.cached("UPDATE runs SET status = 'interrupted', message = ? WHERE id = ? AND status = 'running'",
                             purpose);
        u.bind(1, fmt::format("its process ({}) stopped holding the trial; another took it over", c.taken_from))
            .bind(2, *old_run);
        u.run();
      }
    }
  }
  c.run_id = impl_->insert_run(config, environment);
  auto q = conn.cached(
      "UPDATE trials SET status = 'running', run_id = ?, attempts = attempts + 1, started_at = " PT_NOW
      ", finished_at = NULL, message = '', owner = ?, lease_until = ? WHERE id = ?",
      purpose);
  q.bind(1, c.run_id).bind(2, owner).bind(3, now_s + lease_s).bind(4, trial_id);
  q.run();
  impl_->link_run(c.run_id, trial_id, purpose);
  tx.commit();
  c.outcome = ClaimOutcome::claimed;
  return c;
}

bool Store::renew_claim(std::int64_t trial_id, std::int64_t run_id, double lease_s, double now_s) {
  const std::string purpose = fmt::format("renew the claim on trial {}", trial_id);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
  Transaction tx(conn, purpose);
  auto q = conn.cached("UPDATE trials SET lease_until = ? WHERE id = ? AND run_id = ? AND status = 'running'", purpose);
  q.bind(1, now_s + lease_s).bind(2, trial_id).bind(3, run_id);
  q.run();
  const bool ours = sqlite3_changes(conn.get()) == 1;
  tx.commit();
  return ours;
}

bool Store::complete_claimed_trial(std::int64_t trial_id, std::int64_t run_id, const run::RunSummary& summary) {
  const std::string purpose = fmt::format("complete trial {} (run {})", trial_id, run_id);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
  if (summary.status == run::RunStatus::running) conn.fail(purpose, "the summary's status is still 'running'");
  Transaction tx(conn, purpose);
  bool ours = false;
  {
    auto q = conn.cached("SELECT status, run_id FROM trials WHERE id = ?", purpose);
    q.bind(1, trial_id);
    if (!q.step()) conn.fail(purpose, "no such trial");
    ours = q.text(0) == "running" && !q.is_null(1) && q.int64(1) == run_id;
  }
  // Our run is ours whatever happened to the trial: it gets the true summary,
  // also when another process took the trial over meanwhile (it then stays
  // apart from the trial's result).
  {
    auto q = conn.cached("UPDATE runs SET status = 'running' WHERE id = ? AND status = 'interrupted' AND finished_at IS NULL",
                         purpose);
    q.bind(1, run_id);
    q.run();
  }
  impl_->finish_run_locked(run_id, summary);
  if (ours) {
    auto q = conn.cached(
        "UPDATE trials SET status = ?, message = ?, finished_at = " PT_NOW ", owner = NULL, lease_until = NULL "
        "WHERE id = ?",
        purpose);
    q.bind(1, to_string(trial_status(summary.status))).bind(2, summary.message).bind(3, trial_id);
    q.run();
  }
  tx.commit();
  return ours;
}

double Store::wall_clock_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

// Field 22 of /proc/PID/stat (start time in clock ticks since boot): with the
// pid, it names a process uniquely on one host across pid reuse.
std::string start_time_of(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return "";
  const auto close = line.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return "";
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i)
    if (i == 22) return field;
  return "";
}

}  // namespace

std::string Store::this_process_owner() {
  const long pid = static_cast<long>(::getpid());
  return fmt::format("{} {} {}", host_name(), pid, start_time_of(pid));
}

bool Store::owner_is_gone(std::string_view owner) {
  std::istringstream in{std::string(owner)};
  std::string host, start;
  long pid = 0;
  if (!(in >> host >> pid) || pid <= 0 || host != host_name()) return false;
  in >> start;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
  const auto now_start = start_time_of(pid);
  return !start.empty() && !now_start.empty() && now_start != start;  // the pid was reused
}

// --- runs ------------------------------------------------------------------------

std::int64_t Store::Impl::insert_run(const run::RunConfig& c, const run::Environment& e) {
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

std::int64_t Store::begin_run(const run::RunConfig& config, const run::Environment& environment) {
  impl_->require_writable("begin run");
  Transaction tx(impl_->conn, "begin run");
  auto id = impl_->insert_run(config, environment);
  tx.commit();
  return id;
}

void Store::add_epoch(std::int64_t run_id, const run::EpochRecord& e) {
  const std::string purpose = fmt::format("add epoch {} of run {}", e.epoch, run_id);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
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

void Store::Impl::finish_run_locked(std::int64_t run_id, const run::RunSummary& s) {
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

void Store::finish_run(std::int64_t run_id, const run::RunSummary& summary) {
  const std::string purpose = fmt::format("finish run {}", run_id);
  impl_->require_writable(purpose);
  Transaction tx(impl_->conn, purpose);
  impl_->finish_run_locked(run_id, summary);
  tx.commit();
}

RunRecord Store::run(std::int64_t run_id) const {
  auto q = impl_->conn.cached(fmt::format("SELECT {} FROM runs r WHERE r.id = ?", kRunCols), "read run");
  q.bind(1, run_id);
  if (!q.step()) impl_->conn.fail("read run", fmt::format("no run {}", run_id));
  return read_run(q, 0);
}

std::vector<RunRecord> Store::list_runs() const {
  auto q = impl_->conn.cached(fmt::format("SELECT {} FROM runs r ORDER BY r.id", kRunCols), "list runs");
  std::vector<RunRecord> out;
  while (q.step()) out.push_back(read_run(q, 0));
  return out;
}

double Store::energy_of_study(std::int64_t study_id) const {
  const std::string purpose = fmt::format("read the energy of study {}", study_id);
  auto q = impl_->conn.cached(
      "SELECT COALESCE(SUM(CASE WHEN r.finished_at IS NULL OR r.energy_j IS NULL "
      "THEN (SELECT COALESCE(SUM(e.energy_j), 0) FROM epochs e WHERE e.run_id = r.id) ELSE r.energy_j END), 0) "
      "FROM runs r WHERE r.trial_id IN (SELECT id FROM trials WHERE study_id = ?1) "
      "OR r.id IN (SELECT run_id FROM trials WHERE study_id = ?1)",
      purpose);
  q.bind(1, study_id);
  if (!q.step()) return 0.0;
  return q.opt_real(0).value_or(0.0);
}

std::vector<run::EpochRecord> Store::epochs_of(std::int64_t run_id) const {
  const std::string purpose = fmt::format("read epochs of run {}", run_id);
  // One snapshot for both queries: a writer's next epoch shows in both or neither.
  Transaction snapshot(impl_->conn, purpose, Transaction::Mode::read);
  return impl_->read_epochs(run_id, purpose);
}

std::vector<run::EpochRecord> Store::Impl::read_epochs(std::int64_t run_id, const std::string& purpose) {
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
      e.val_task_metrics = metrics_from_json(parse_json(q.text(12), "validation metrics per task"));
      e.cpu = read_cpu(q, 13);
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
    ch.component = component_from_text(q.text(3));
    ch.method = parse_stored<energy::Method>(q.text(4), "measurement method", energy::method_from_string);
    ch.in_total = q.int64(5) != 0;
    ch.energy_j = q.real(6);
    ch.avg_power_w = q.real(7);
    ch.peak_power_w = q.real(8);
    ch.machine_energy_j = q.opt_real(9).value_or(ch.energy_j);
    out[it->second].channels.push_back(std::move(ch));
  }
  return out;
}

// --- timeline ----------------------------------------------------------------------

void Store::add_timeline(std::int64_t run_id, const std::vector<std::string>& channel_ids,
                         const std::vector<energy::TimelineSample>& samples, std::int64_t origin_ns) {
  const std::string purpose = fmt::format("add timeline of run {}", run_id);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
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

void Store::add_timeline(std::int64_t run_id, const std::vector<energy::ChannelInfo>& channels,
                         const std::vector<energy::TimelineSample>& samples, std::int64_t origin_ns) {
  std::vector<std::string> ids;
  ids.reserve(channels.size());
  for (const auto& c : channels) ids.push_back(c.id);
  add_timeline(run_id, ids, samples, origin_ns);
}

std::vector<TimelineSeries> Store::timeline_of(std::int64_t run_id) const {
  auto q = impl_->conn.cached(
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

// --- measured commands ----------------------------------------------------------------

std::int64_t Store::add_measurement(const MeasurementRecord& m) {
  const std::string purpose = fmt::format("add measurement {}", m.uuid);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
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

std::vector<MeasurementRecord> Store::list_measurements() const {
  auto q = impl_->conn.cached(
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

// --- rows for reports -------------------------------------------------------------------

Table Store::query(std::string_view sql_text, const std::vector<Value>& params) const {
  static constexpr std::string_view kPurpose = "query";
  auto& conn = impl_->conn;
  sql::StmtHandle owner;
  auto q = conn.once(sql_text, kPurpose, owner);
  // Transaction control and PRAGMAs count as read-only to SQLite but would
  // change this connection, so only queries proper are allowed.
  std::string first;
  for (char ch : sql_text.substr(std::min(sql_text.find_first_not_of(" \t\r\n("), sql_text.size()))) {
    if (!std::isalpha(static_cast<unsigned char>(ch))) break;
    first += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
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
  Table t;
  int n = sqlite3_column_count(q.get());
  for (int c = 0; c < n; ++c) t.columns.emplace_back(sqlite3_column_name(q.get(), c));
  while (q.step()) {
    std::vector<Value> row;
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

Table Store::results_table(std::int64_t study_id) const {
  return query("SELECT * FROM trial_results WHERE study_id = ? ORDER BY step, trial_id", {study_id});
}

// --- result files of other processes (Slurm tasks) ---------------------------

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

ImportOutcome Store::import_run(const ImportRequest& r) {
  const std::string purpose =
      fmt::format("take in run {} of {}", r.source_run_id, r.source.empty() ? r.source_db.string() : r.source);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
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
  impl_->link_run(run_id, r.trial_id, purpose);
  {
    auto q = conn.cached("INSERT INTO imports (source, trial_id, run_id, outcome, node) VALUES (?, ?, ?, 'imported', ?)",
                         purpose);
    q.bind(1, r.source).bind(2, r.trial_id).bind(3, run_id).bind(4, r.node);
    q.run();
  }
  tx.commit();
  return ImportOutcome::imported;
}

bool Store::imported(std::string_view source) const {
  auto q = impl_->conn.cached("SELECT 1 FROM imports WHERE source = ?", "look up an imported result file");
  q.bind(1, source);
  return q.step();
}

void Store::add_slurm_task(std::int64_t trial_id, std::string_view job_id, int array_index) {
  const std::string purpose = fmt::format("record trial {} as Slurm task {}_{}", trial_id, job_id, array_index);
  impl_->require_writable(purpose);
  auto q = impl_->conn.cached(
      "INSERT OR IGNORE INTO slurm_tasks (trial_id, job_id, array_index) VALUES (?, ?, ?)", purpose);
  q.bind(1, trial_id).bind(2, job_id).bind(3, array_index);
  q.run();
}

std::vector<Store::SlurmTask> Store::slurm_tasks_of(std::int64_t study_id) const {
  auto q = impl_->conn.cached(
      "SELECT s.trial_id, s.job_id, s.array_index, s.submitted_at FROM slurm_tasks s JOIN trials t ON t.id = "
      "s.trial_id WHERE t.study_id = ? ORDER BY s.submitted_at, s.job_id, s.array_index",
      "read Slurm tasks");
  q.bind(1, study_id);
  std::vector<SlurmTask> out;
  while (q.step()) out.push_back({q.int64(0), q.text(1), q.int32(2), q.text(3)});
  return out;
}

void Store::set_cluster_energy(std::int64_t run_id, double energy_j) {
  const std::string purpose = fmt::format("record the cluster's energy of run {}", run_id);
  impl_->require_writable(purpose);
  auto q = impl_->conn.cached("UPDATE runs SET cluster_energy_j = ? WHERE id = ?", purpose);
  q.bind(1, energy_j).bind(2, run_id);
  q.run();
}

std::pair<std::string, std::optional<double>> Store::cluster_energy_of(std::int64_t run_id) const {
  auto q = impl_->conn.cached("SELECT coalesce(slurm_job, ''), cluster_energy_j FROM runs WHERE id = ?",
                              "read the cluster's energy of a run");
  q.bind(1, run_id);
  if (!q.step()) return {"", std::nullopt};
  return {q.text(0), q.opt_real(1)};
}

// --- runs over several nodes -------------------------------------------------

void Store::set_run_nodes(std::int64_t run_id, int nodes, const std::string& nodes_dir) {
  const std::string purpose = fmt::format("record the nodes of run {}", run_id);
  impl_->require_writable(purpose);
  if (nodes < 1) impl_->conn.fail(purpose, fmt::format("a run spans at least 1 node, not {}", nodes));
  Transaction tx(impl_->conn, purpose);
  auto q = impl_->conn.cached("UPDATE runs SET nodes = ?, nodes_dir = ? WHERE id = ?", purpose);
  q.bind(1, nodes).bind(2, nodes_dir).bind(3, run_id);
  q.run();
  if (sqlite3_changes(impl_->conn.get()) == 0) impl_->conn.fail(purpose, "no such run");
  tx.commit();
}

Store::RunNodes Store::run_nodes(std::int64_t run_id) const {
  const std::string purpose = fmt::format("read the nodes of run {}", run_id);
  auto& conn = impl_->conn;
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

std::vector<std::int64_t> Store::runs_awaiting_nodes() const {
  auto q = impl_->conn.cached(
      "SELECT id FROM runs r WHERE nodes > 1 AND nodes_dir IS NOT NULL AND status <> 'running' AND "
      "(SELECT count(*) FROM run_nodes n WHERE n.run_id = r.id AND n.complete = 1) < nodes ORDER BY id",
      "list runs waiting for their nodes");
  std::vector<std::int64_t> out;
  while (q.step()) out.push_back(q.int64(0));
  return out;
}

std::vector<run::NodeRun> Store::Impl::read_node_runs(std::int64_t run_id, const std::string& purpose) {
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
      n.summary.status = run_status_of(q.text(4));
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

namespace {

// One node's own record into run_nodes and epoch_nodes; a secondary's
// channels into epoch_channels as "node<k>/<id>", for the epochs the run has.
void insert_node(sql::Connection& conn, std::int64_t run_id, const run::NodeRun& n, bool channels,
                 const std::string& purpose) {
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

run::MergedRun Store::record_nodes(std::int64_t run_id, const std::vector<run::NodeRun>& nodes) {
  const std::string purpose = fmt::format("merge the nodes of run {}", run_id);
  impl_->require_writable(purpose);
  auto& conn = impl_->conn;
  Transaction tx(conn, purpose);
  RunRecord record;
  int expected = 1;
  {
    auto q = conn.cached(fmt::format("SELECT {}, r.nodes FROM runs r WHERE r.id = ?", kRunCols), purpose);
    q.bind(1, run_id);
    if (!q.step()) conn.fail(purpose, "no such run");
    record = read_run(q, 0);
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
    primary.epochs = impl_->read_epochs(run_id, purpose);
    insert_node(conn, run_id, primary, false, purpose);
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
    insert_node(conn, run_id, n, true, purpose);
  }

  const auto merged = run::merge_node_runs(impl_->read_node_runs(run_id, purpose), expected);
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
    for (const auto& e : impl_->read_epochs(run_id, purpose)) {
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

run::MergedRun Store::node_merge_of(std::int64_t run_id) const {
  const std::string purpose = fmt::format("read the nodes of run {}", run_id);
  auto& conn = impl_->conn;
  Transaction snapshot(conn, purpose, Transaction::Mode::read);
  int expected = 1;
  {
    auto q = conn.cached("SELECT nodes FROM runs WHERE id = ?", purpose);
    q.bind(1, run_id);
    if (!q.step()) conn.fail(purpose, "no such run");
    expected = q.is_null(0) ? 1 : q.int32(0);
  }
  const auto runs = impl_->read_node_runs(run_id, purpose);
  if (runs.empty()) {
    run::MergedRun none;
    none.nodes = expected;
    return none;
  }
  return run::merge_node_runs(runs, expected);
}

}  // namespace powertrain::store
