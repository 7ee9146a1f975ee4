// Schema migrations: an older database is upgraded in place, in one transaction.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "powertrain/error.h"
#include "powertrain/store/store.h"
#include "samples.h"
#include "temp_dir.h"

namespace powertrain::store {
namespace {

using powertrain::testing::RawDb;
using powertrain::testing::sample_config;
using powertrain::testing::sample_environment;
using powertrain::testing::sample_epoch;
using powertrain::testing::TempDir;
using powertrain::testing::trial_spec;

struct V1Data {
  std::int64_t study = 0, trial = 0, run = 0;
};

// A version-1 database with a study, a completed trial and its epochs,
// written with version 1's columns only (today's Store writes today's).
V1Data make_v1(const std::filesystem::path& path) {
  {
    auto store = Store::open(path, {.schema_version = 1});
    EXPECT_EQ(store.schema_version(), 1);
  }
  RawDb raw(path);
  raw.exec(
      "INSERT INTO studies (id, name, kind, spec) VALUES (1, 'grid-v1', 'grid', 'spec v1');"
      "INSERT INTO runs (id, config, dataset, model, optimizer, learning_rate, batch_size, seed, device, status, "
      "  epochs, energy_j, finished_at) VALUES (1, '{}', 'synthetic-images', 'image-cnn', 'sgd', 0.01, 64, 0, "
      "  'cpu', 'converged', 2, 3000.0, '2024-01-01T00:00:00.000Z');"
      "INSERT INTO trials (id, study_id, key, config, status, run_id, attempts) VALUES (1, 1, 'k1', '{}', "
      "  'converged', 1, 1);");
  for (int e = 1; e <= 2; ++e) {
    raw.exec("INSERT INTO epochs (run_id, epoch, duration_s, energy_j, method) VALUES (1, " + std::to_string(e) +
             ", 10.0, 1500.0, 'counter')");
    for (int c = 0; c < 3; ++c)
      raw.exec("INSERT INTO epoch_channels (run_id, epoch, channel_id, ord, component, method, in_total, energy_j) "
               "VALUES (1, " + std::to_string(e) + ", 'ch" + std::to_string(c) + "', " + std::to_string(c) +
               ", 'gpu', 'counter', 1, 500.0)");
  }
  return V1Data{1, 1, 1};
}

TEST(StoreMigration, VersionOneHasNoVersionTwoTables) {
  TempDir dir;
  make_v1(dir / "r.db");
  RawDb raw(dir / "r.db");
  EXPECT_EQ(raw.integer("PRAGMA user_version"), 1);
  EXPECT_EQ(raw.integer("SELECT count(*) FROM sqlite_schema WHERE name IN ('timeline', 'measurements')"), 0);
  EXPECT_EQ(raw.integer("SELECT count(*) FROM epochs"), 2);
}

TEST(StoreMigration, UpgradesInPlaceWithoutDataLoss) {
  TempDir dir;
  auto path = dir / "r.db";
  auto d = make_v1(path);

  auto store = Store::open(path);
  EXPECT_EQ(store.schema_version(), kSchemaVersion);
  auto study = store.find_study("grid-v1");
  ASSERT_TRUE(study);
  EXPECT_EQ(study->id, d.study);
  EXPECT_EQ(study->spec, "spec v1");
  auto trial = store.trial(d.trial);
  EXPECT_EQ(trial.status, TrialStatus::converged);
  EXPECT_EQ(trial.run_id, d.run);
  EXPECT_EQ(store.run(d.run).summary.energy_j, 3000.0);
  auto epochs = store.epochs_of(d.run);
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_EQ(epochs[1].channels.size(), 3u);

  // Version-2 features work on the upgraded database, on the old rows too.
  energy::TimelineSample sample;
  sample.t_ns = 1'000'000;
  sample.power_w = {5.0};
  store.add_timeline(d.run, std::vector<std::string>{"gpu0"}, {sample}, 0);
  EXPECT_EQ(store.timeline_of(d.run).size(), 1u);
  auto table = store.results_table(d.study);
  ASSERT_EQ(table.rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(table.rows[0][table.column("status")].value), "converged");
}

TEST(StoreMigration, FailingStepLeavesDatabaseAsItWas) {
  TempDir dir;
  auto path = dir / "r.db";
  auto d = make_v1(path);
  {
    // A table in the way of version 2's second statement.
    RawDb raw(path);
    raw.exec("CREATE TABLE timeline_channels (x INTEGER)");
  }
  try {
    Store::open(path);
    FAIL() << "no StoreError";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("upgrade schema to version 2"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("timeline_channels already exists"));
  }
  RawDb raw(path);
  EXPECT_EQ(raw.integer("PRAGMA user_version"), 1);
  // measurements, created before the failing statement, was rolled back.
  EXPECT_EQ(raw.integer("SELECT count(*) FROM sqlite_schema WHERE name = 'measurements'"), 0);
  EXPECT_EQ(raw.integer("SELECT count(*) FROM epochs WHERE run_id = " + std::to_string(d.run)), 2);

  raw.exec("DROP TABLE timeline_channels");
  EXPECT_EQ(Store::open(path).schema_version(), kSchemaVersion);
}

TEST(StoreMigration, OpeningCurrentDatabaseChangesNothing) {
  TempDir dir;
  auto path = dir / "r.db";
  Store::open(path);
  RawDb raw(path);
  auto schema = raw.text("SELECT group_concat(sql, ';') FROM sqlite_schema");
  Store::open(path);
  EXPECT_EQ(raw.text("SELECT group_concat(sql, ';') FROM sqlite_schema"), schema);
  EXPECT_EQ(raw.integer("PRAGMA user_version"), kSchemaVersion);
}

}  // namespace
}  // namespace powertrain::store

namespace powertrain::store {
namespace {

TEST(StoreMigration, VersionSevenAcceptsSearchStudiesAndKeepsTheOthers) {
  powertrain::testing::TempDir dir;
  const auto path = dir / "r.db";
  {
    auto store = Store::open(path, {.schema_version = 6});
    store.create_study("old-grid", "grid", "spec", powertrain::testing::sample_environment());
  }
  {
    // Version 6 refuses the kind.
    powertrain::testing::RawDb raw(path);
    EXPECT_ANY_THROW(raw.exec("INSERT INTO studies (name, kind) VALUES ('s', 'search')"));
  }
  auto store = Store::open(path, {.schema_version = 7});
  EXPECT_EQ(store.schema_version(), 7);
  const auto id = store.create_study("a-search", "search", "spec", powertrain::testing::sample_environment());
  EXPECT_EQ(store.study(id).kind, "search");
  EXPECT_EQ(store.find_study("old-grid")->kind, "grid");
  // Another connection sees the widened definition; the check still refuses other kinds.
  powertrain::testing::RawDb raw(path);
  EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
  EXPECT_ANY_THROW(raw.exec("INSERT INTO studies (name, kind) VALUES ('x', 'nonsense')"));
  raw.exec("INSERT INTO studies (name, kind) VALUES ('raw-search', 'search')");
  // A run and a trial may be stopped (by a search's rule); other statuses are still refused.
  raw.exec("INSERT INTO trials (study_id, key, status) VALUES (" + std::to_string(id) + ", 'k', 'stopped')");
  raw.exec("INSERT INTO runs (config, dataset, model, optimizer, batch_size, seed, device, status) "
           "VALUES ('{}', 'd', 'm', 'sgd', 1, 0, 'cpu', 'stopped')");
  EXPECT_ANY_THROW(raw.exec("INSERT INTO runs (config, dataset, model, optimizer, batch_size, seed, device, status) "
                            "VALUES ('{}', 'd', 'm', 'sgd', 1, 0, 'cpu', 'paused')"));
}

}  // namespace
// Version 10: a kind registered by a new study kind file is stored without a
// schema change; an empty kind is still refused, and the rows stay as they were.
TEST(StoreMigration, VersionTenTakesAnyKindsName) {
  powertrain::testing::TempDir dir;
  const auto path = dir / "r.db";
  {
    auto store = Store::open(path, {.schema_version = 9});
    store.create_study("old-grid", "grid", "spec", powertrain::testing::sample_environment());
    EXPECT_ANY_THROW(store.create_study("new", "a-kind-of-its-own", "spec", {}));
  }
  auto store = Store::open(path);
  EXPECT_EQ(store.schema_version(), kSchemaVersion);
  const auto id = store.create_study("new", "a-kind-of-its-own", "spec", {});
  EXPECT_EQ(store.study(id).kind, "a-kind-of-its-own");
  EXPECT_EQ(store.find_study("old-grid")->kind, "grid");
  powertrain::testing::RawDb raw(path);
  EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
  EXPECT_ANY_THROW(raw.exec("INSERT INTO studies (name, kind) VALUES ('empty', '')"));
}

}  // namespace powertrain::store
