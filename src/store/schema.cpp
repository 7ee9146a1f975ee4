#include "schema.h"

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/store/store.h"

namespace powertrain::store::schema {
namespace {

// Times are ISO 8601 UTC text with milliseconds: readable in the sqlite3 shell
// and sortable as text. REAL columns hold NULL where the value is NaN or
// unknown (SQLite stores NaN as NULL anyway).
#define PT_NOW "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"

// Version 1: studies, trials, runs, epochs and their energy per channel.
constexpr std::string_view kV1 = R"sql(
CREATE TABLE studies (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  kind        TEXT NOT NULL CHECK (kind IN ('grid', 'pretrain', 'multitask', 'train')),
  spec        TEXT NOT NULL DEFAULT '',
  environment TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(environment)),
  created_at  TEXT NOT NULL DEFAULT )sql" PT_NOW R"sql(
);

CREATE TABLE runs (
  id                 INTEGER PRIMARY KEY,
  config             TEXT NOT NULL CHECK (json_valid(config)),
  dataset            TEXT NOT NULL,
  model              TEXT NOT NULL,
  optimizer          TEXT NOT NULL,
  learning_rate      REAL,
  batch_size         INTEGER NOT NULL,
  seed               INTEGER NOT NULL,
  device             TEXT NOT NULL,
  host               TEXT NOT NULL DEFAULT '',
  environment        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(environment)),
  status             TEXT NOT NULL DEFAULT 'running' CHECK (status IN
                       ('running', 'converged', 'max_epochs', 'diverged', 'interrupted', 'failed')),
  epochs             INTEGER NOT NULL DEFAULT 0,
  best_epoch         INTEGER NOT NULL DEFAULT 0,
  duration_s         REAL DEFAULT 0,
  energy_j           REAL DEFAULT 0,
  energy_to_target_j REAL,
  time_to_target_s   REAL,
  best_val_metric    REAL,
  test_metric        REAL,
  test_task_metrics  TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(test_task_metrics)),
  method             TEXT NOT NULL DEFAULT '',
  message            TEXT NOT NULL DEFAULT '',
  started_at         TEXT NOT NULL DEFAULT )sql" PT_NOW R"sql(,
  finished_at        TEXT
);

CREATE TABLE trials (
  id          INTEGER PRIMARY KEY,
  study_id    INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
  key         TEXT NOT NULL,
  phase       TEXT NOT NULL DEFAULT '',
  step        INTEGER NOT NULL DEFAULT 0,
  task        TEXT NOT NULL DEFAULT '',
  config      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
  status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                ('pending', 'running', 'converged', 'max_epochs', 'diverged', 'interrupted', 'failed')),
  run_id      INTEGER REFERENCES runs(id) ON DELETE SET NULL,
  attempts    INTEGER NOT NULL DEFAULT 0,
  started_at  TEXT,
  finished_at TEXT,
  message     TEXT NOT NULL DEFAULT '',
  UNIQUE (study_id, key)
);
CREATE INDEX trials_by_status ON trials (study_id, status);
CREATE INDEX trials_by_run ON trials (run_id);

CREATE TABLE epochs (
  run_id           INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  epoch            INTEGER NOT NULL CHECK (epoch >= 1),
  duration_s       REAL,
  train_duration_s REAL,
  eval_duration_s  REAL,
  energy_j         REAL,
  train_energy_j   REAL,
  eval_energy_j    REAL,
  method           TEXT NOT NULL DEFAULT '',
  samples_per_s    REAL,
  train_loss       REAL,
  val_loss         REAL,
  val_metric       REAL,
  val_task_metrics TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(val_task_metrics)),
  PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;

CREATE TABLE epoch_channels (
  run_id       INTEGER NOT NULL,
  epoch        INTEGER NOT NULL,
  channel_id   TEXT NOT NULL,
  ord          INTEGER NOT NULL,
  device       TEXT NOT NULL DEFAULT '',
  component    TEXT NOT NULL CHECK (component IN ('gpu', 'cpu', 'dram', 'psys', 'board')),
  method       TEXT NOT NULL CHECK (method IN ('counter', 'sampled', 'estimated')),
  in_total     INTEGER NOT NULL CHECK (in_total IN (0, 1)),
  energy_j     REAL,
  avg_power_w  REAL,
  peak_power_w REAL,
  PRIMARY KEY (run_id, epoch, channel_id),
  FOREIGN KEY (run_id, epoch) REFERENCES epochs (run_id, epoch) ON DELETE CASCADE
) WITHOUT ROWID;
)sql";

// Version 2: measured commands, the power timeline, and views for reports.
// measurements comes first on purpose: a test checks that a step failing half
// way leaves none of it behind.
constexpr std::string_view kV2 = R"sql(
CREATE TABLE measurements (
  id                  INTEGER PRIMARY KEY,
  uuid                TEXT NOT NULL UNIQUE,
  started_at          TEXT NOT NULL,
  command             TEXT NOT NULL DEFAULT '',
  exit_code           INTEGER NOT NULL DEFAULT 0,
  duration_s          REAL,
  energy_j            REAL,
  avg_power_w         REAL,
  peak_power_w        REAL,
  energy_above_idle_j REAL,
  emissions_kg        REAL,
  method              TEXT NOT NULL DEFAULT '',
  host                TEXT NOT NULL DEFAULT '',
  report              TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(report))
);

CREATE TABLE timeline_channels (
  run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  channel    INTEGER NOT NULL,
  channel_id TEXT NOT NULL,
  PRIMARY KEY (run_id, channel),
  UNIQUE (run_id, channel_id)
) WITHOUT ROWID;

CREATE TABLE timeline (
  run_id  INTEGER NOT NULL,
  channel INTEGER NOT NULL,
  t_ms    INTEGER NOT NULL,
  power_w REAL NOT NULL,
  PRIMARY KEY (run_id, channel, t_ms),
  FOREIGN KEY (run_id, channel) REFERENCES timeline_channels (run_id, channel) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE VIEW timeline_w AS
SELECT t.run_id, c.channel_id, t.t_ms / 1000.0 AS t_s, t.power_w
FROM timeline t JOIN timeline_channels c ON c.run_id = t.run_id AND c.channel = t.channel;

CREATE VIEW trial_results AS
SELECT s.id AS study_id, s.name AS study, s.kind AS study_kind,
       t.id AS trial_id, t.key, t.phase, t.step, t.task, t.status, t.attempts, t.run_id,
       r.dataset, r.model, r.optimizer, r.learning_rate, r.batch_size, r.seed, r.device, r.host,
       r.status AS run_status, r.epochs, r.best_epoch, r.duration_s, r.energy_j,
       r.energy_to_target_j, r.time_to_target_s, r.best_val_metric, r.test_metric, r.test_task_metrics, r.method,
       t.message, t.started_at, t.finished_at
FROM trials t
JOIN studies s ON s.id = t.study_id
LEFT JOIN runs r ON r.id = t.run_id;
)sql";

// Version 3: who holds a running trial, and until when (Store::claim_trial).
constexpr std::string_view kV3 = R"sql(
ALTER TABLE trials ADD COLUMN owner TEXT;
ALTER TABLE trials ADD COLUMN lease_until REAL;
)sql";

// Version 4: CPU time of the machine beside the run's, per epoch and per run,
// and how long a trial waited for a quiet machine.
constexpr std::string_view kV4 = R"sql(
ALTER TABLE epochs ADD COLUMN cpu_machine_s REAL;
ALTER TABLE epochs ADD COLUMN cpu_measured_s REAL;
ALTER TABLE runs ADD COLUMN cpu_machine_s REAL;
ALTER TABLE runs ADD COLUMN cpu_measured_s REAL;
ALTER TABLE runs ADD COLUMN quiet_wait_s REAL;
)sql";

// Version 5: studies on a cluster. Trials submitted to Slurm (one row per
// submission of a trial), the per-task result files taken into this database
// (one row per file: taking one in twice changes nothing), and the energy the
// cluster's own accounting gives for a run.
constexpr std::string_view kV5 = R"sql(
CREATE TABLE slurm_tasks (
  trial_id     INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
  job_id       TEXT NOT NULL,
  array_index  INTEGER NOT NULL,
  submitted_at TEXT NOT NULL DEFAULT )sql" PT_NOW R"sql(,
  PRIMARY KEY (job_id, array_index, trial_id)
) WITHOUT ROWID;
CREATE INDEX slurm_tasks_by_trial ON slurm_tasks (trial_id);

CREATE TABLE imports (
  source      TEXT PRIMARY KEY,
  trial_id    INTEGER REFERENCES trials(id) ON DELETE CASCADE,
  run_id      INTEGER REFERENCES runs(id) ON DELETE SET NULL,
  outcome     TEXT NOT NULL CHECK (outcome IN ('imported', 'duplicate')),
  node        TEXT NOT NULL DEFAULT '',
  imported_at TEXT NOT NULL DEFAULT )sql" PT_NOW R"sql(
);

ALTER TABLE runs ADD COLUMN slurm_job TEXT;
ALTER TABLE runs ADD COLUMN cluster_energy_j REAL;
)sql";

// Version 6: where each run was heading after each epoch (predict::Forecaster).
constexpr std::string_view kV6 = R"sql(
ALTER TABLE epochs ADD COLUMN forecast_method TEXT;
ALTER TABLE epochs ADD COLUMN forecast_stop_epoch_low REAL;
ALTER TABLE epochs ADD COLUMN forecast_stop_epoch REAL;
ALTER TABLE epochs ADD COLUMN forecast_stop_epoch_high REAL;
ALTER TABLE epochs ADD COLUMN forecast_energy_low_j REAL;
ALTER TABLE epochs ADD COLUMN forecast_energy_j REAL;
ALTER TABLE epochs ADD COLUMN forecast_energy_high_j REAL;
ALTER TABLE epochs ADD COLUMN forecast_target_energy_j REAL;
ALTER TABLE epochs ADD COLUMN forecast_p_reach_target REAL;
)sql";

// Version 7: a study may be a search (powertrain search), and a run or trial
// may be stopped (by the search's rule). SQLite cannot alter
// a CHECK constraint; widening one leaves every stored row valid, which is
// the case where editing the table's definition in place is safe (SQLite's
// "ALTER TABLE", section "making other kinds of table schema changes"). The
// schema cookie is then bumped by migrate() so every connection rereads it.
constexpr std::string_view kV7 = R"sql(
-- Every attempt of a trial, not only its latest (trials.run_id): a search's
-- own energy counts the attempts that were interrupted.
ALTER TABLE runs ADD COLUMN trial_id INTEGER REFERENCES trials(id) ON DELETE SET NULL;
UPDATE runs SET trial_id = (SELECT id FROM trials WHERE trials.run_id = runs.id);
CREATE INDEX runs_by_trial ON runs (trial_id);

-- Last: the definitions edited in place (ALTER TABLE above must not run after
-- them in this transaction, since it would splice into text it did not parse).
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql, '''multitask'', ''train'')', '''multitask'', ''train'', ''search'')')
 WHERE type = 'table' AND name = 'studies';
UPDATE sqlite_schema SET sql = replace(sql, '''interrupted'', ''failed'')', '''interrupted'', ''failed'', ''stopped'')')
 WHERE type = 'table' AND name IN ('runs', 'trials');
)sql";  // migrate() bumps the schema cookie, then turns writable_schema off (SQLite's documented order)

// The run's own energy beside the machine's: energy_j holds the run's share
// from now on; machine_energy_j what the meters read. Rows before 8 were the
// machine's, so they get it in both.
constexpr std::string_view kV8 = R"sql(
ALTER TABLE epochs ADD COLUMN machine_energy_j REAL;
ALTER TABLE runs ADD COLUMN machine_energy_j REAL;
ALTER TABLE epoch_channels ADD COLUMN machine_energy_j REAL;
UPDATE epochs SET machine_energy_j = energy_j;
UPDATE runs SET machine_energy_j = energy_j;
UPDATE epoch_channels SET machine_energy_j = energy_j;
)sql";

// Version 9: runs over several nodes (docs/cluster.md, "Several nodes"). Each
// node's own record is kept (run_nodes, epoch_nodes); epochs and runs hold the
// merge: energy summed, the longest duration, every node's methods.
constexpr std::string_view kV9 = R"sql(
ALTER TABLE runs ADD COLUMN nodes INTEGER;
ALTER TABLE runs ADD COLUMN nodes_dir TEXT;
ALTER TABLE epochs ADD COLUMN covered_s REAL;

CREATE TABLE run_nodes (
  run_id           INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  node             INTEGER NOT NULL CHECK (node >= 0),
  host             TEXT NOT NULL DEFAULT '',
  source           TEXT NOT NULL DEFAULT '',
  complete         INTEGER NOT NULL CHECK (complete IN (0, 1)),
  status           TEXT NOT NULL DEFAULT '',
  epochs           INTEGER NOT NULL DEFAULT 0,
  duration_s       REAL,
  energy_j         REAL,
  machine_energy_j REAL,
  method           TEXT NOT NULL DEFAULT '',
  message          TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, node)
) WITHOUT ROWID;

CREATE TABLE epoch_nodes (
  run_id           INTEGER NOT NULL,
  epoch            INTEGER NOT NULL CHECK (epoch >= 1),
  node             INTEGER NOT NULL CHECK (node >= 0),
  duration_s       REAL,
  train_duration_s REAL,
  eval_duration_s  REAL,
  energy_j         REAL,
  machine_energy_j REAL,
  train_energy_j   REAL,
  eval_energy_j    REAL,
  method           TEXT NOT NULL DEFAULT '',
  covered_s        REAL,
  PRIMARY KEY (run_id, epoch, node),
  FOREIGN KEY (run_id, node) REFERENCES run_nodes (run_id, node) ON DELETE CASCADE
) WITHOUT ROWID;
)sql";

// A study's kind is the name of a registered kind (study/kind.h): any new kind,
// not a list fixed in the schema. Only widens, so edited in place as in 7.
constexpr std::string_view kV10 = R"sql(
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, 'CHECK (kind IN (''grid'', ''pretrain'', ''multitask'', ''train'', ''search''))',
                     'CHECK (kind <> '''')')
 WHERE type = 'table' AND name = 'studies';
)sql";

#undef PT_NOW

constexpr Migration kMigrations[] = {
    {1, "studies, trials, runs, epochs, epoch_channels", kV1},
    {2, "measurements, timeline, views trial_results and timeline_w", kV2},
    {3, "trial owners and leases", kV3},
    {4, "CPU time of the machine beside the run's", kV4},
    {5, "Slurm tasks, imported result files, the cluster's energy", kV5},
    {6, "forecasts per epoch", kV6},
    {7, "studies of kind search, status stopped; runs know their trial", kV7, true},
    {8, "the run's own energy beside the machine's", kV8},
    {9, "runs over several nodes: per-node records", kV9},
    {10, "a study's kind is any registered kind's name", kV10, true},
};
static_assert(std::size(kMigrations) == kSchemaVersion, "one migration per schema version");

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }

void check_version(sql::Connection& conn, int version, bool read_only) {
  if (version > kSchemaVersion) {
    throw StoreError(fmt::format(
        "{}: database schema version {} is newer than this powertrain's ({}); use a newer powertrain",
        conn.label(), version, kSchemaVersion));
  }
  if (read_only && version != kSchemaVersion) {
    throw StoreError(fmt::format(
        "{}: database schema version {} is older than this powertrain's ({}); "
        "open it once for writing (e.g. run a study on it) to upgrade it",
        conn.label(), version, kSchemaVersion));
  }
}

void migrate(sql::Connection& conn, int target) {
  if (target < 1 || target > kSchemaVersion) {
    conn.fail("migrate", fmt::format("no schema version {}", target));
  }
  // The common case, a database at the current version, takes no write lock:
  // opening does not wait for another process's transaction.
  int current = static_cast<int>(conn.scalar_int("PRAGMA user_version", "read schema version"));
  check_version(conn, current, false);
  if (current >= target) return;

  sql::Transaction tx(conn, "upgrade schema");
  int version = static_cast<int>(conn.scalar_int("PRAGMA user_version", "read schema version"));
  check_version(conn, version, false);
  if (version >= target) return;  // nothing to do; the destructor ends the transaction
  for (const Migration& m : kMigrations) {
    if (m.version <= version || m.version > target) continue;
    conn.exec(m.sql, fmt::format("upgrade schema to version {} ({})", m.version, m.description));
    if (m.edits_schema) {
      const auto cookie = conn.scalar_int("PRAGMA schema_version", "read the schema cookie");
      conn.exec(fmt::format("PRAGMA schema_version = {}; PRAGMA writable_schema = OFF;", cookie + 1),
                "reload the edited schema");
    }
  }
  // Header fields, written in the same transaction as the tables.
  conn.exec(fmt::format("PRAGMA application_id = {}; PRAGMA user_version = {};",
                        kApplicationId, target),
            "set schema version");
  tx.commit();
}

}  // namespace powertrain::store::schema
