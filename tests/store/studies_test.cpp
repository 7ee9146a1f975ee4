// The studies aggregate: studies, their trials, overviews and the results table.
#include "powertrain/store/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "powertrain/error.h"
#include "powertrain/store/json.h"
#include "samples.h"
#include "store_fixture.h"

namespace powertrain::store {
namespace {

using powertrain::testing::converged_summary;
using powertrain::testing::expect_config_eq;
using powertrain::testing::sample_config;
using powertrain::testing::sample_environment;
using powertrain::testing::trial_spec;
using ::testing::HasSubstr;

class StoreStudies : public powertrain::testing::StoreFixture {};

TEST_F(StoreStudies, Studies) {
  auto env = sample_environment();
  auto id = store.create_study("grid-a", "grid", "[grid]\nlr = [0.1, 0.01]", env);
  store.create_study("pre", "pretrain", "", {});
  auto s = store.find_study("grid-a");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->id, id);
  EXPECT_EQ(s->kind, "grid");
  EXPECT_EQ(s->spec, "[grid]\nlr = [0.1, 0.01]");
  EXPECT_EQ(environment_json(s->environment), environment_json(env));
  EXPECT_EQ(s->created_at.size(), 24u) << s->created_at;  // 2024-01-02T03:04:05.678Z
  EXPECT_EQ(s->created_at.back(), 'Z');
  EXPECT_EQ(store.study(id).name, "grid-a");
  EXPECT_FALSE(store.find_study("nope"));
  EXPECT_THROW(store.study(999), StoreError);

  try {
    store.create_study("grid-a", "grid", "", {});
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("create study 'grid-a': a study of that name exists already"));
  }
  auto all = store.list_studies();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].study.name, "grid-a");
  EXPECT_EQ(all[1].study.kind, "pretrain");
  EXPECT_EQ(all[0].trials.total, 0);
}

TEST_F(StoreStudies, TrialUpsertIsUniqueByKey) {
  auto study = store.create_study("g", "grid", "", {});
  auto other = store.create_study("h", "grid", "", {});
  auto spec = trial_spec(trial_key(sample_config(0.1)), sample_config(0.1), "", 3);
  auto a = store.upsert_trial(study, spec);
  spec.step = 9;  // a second upsert leaves the row as it was
  auto b = store.upsert_trial(study, spec);
  EXPECT_EQ(a, b);
  EXPECT_EQ(store.trials_of(study).size(), 1u);
  EXPECT_EQ(store.trial(a).step, 3);
  EXPECT_NE(store.upsert_trial(other, spec), a);  // keys are per study

  auto t = store.find_trial(study, spec.key);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->id, a);
  EXPECT_EQ(t->status, TrialStatus::pending);
  EXPECT_EQ(t->attempts, 0);
  EXPECT_FALSE(t->run_id);
  expect_config_eq(t->config, sample_config(0.1));
  EXPECT_FALSE(store.find_trial(study, "other"));
  EXPECT_THROW(store.upsert_trial(999, spec), StoreError);
  EXPECT_THROW(store.trial(999), StoreError);
}

TEST_F(StoreStudies, StudyOverviewCounts) {
  auto study = store.create_study("g", "grid", "", {});
  for (int i = 0; i < 5; ++i) store.upsert_trial(study, trial_spec("k" + std::to_string(i)));
  auto trials = store.trials_of(study);
  store.start_trial(trials[0].id, {}, {});
  store.complete_trial(trials[0].id, converged_summary());
  store.start_trial(trials[1].id, {}, {});
  auto s = converged_summary();
  s.status = run::RunStatus::max_epochs;
  s.energy_j = 100.0;
  store.complete_trial(trials[1].id, s);
  store.start_trial(trials[2].id, {}, {});
  store.mark_trial_failed(trials[3].id, "bad data");

  auto all = store.list_studies();
  ASSERT_EQ(all.size(), 1u);
  const auto& n = all[0].trials;
  EXPECT_EQ(n.total, 5);
  EXPECT_EQ(n.converged, 1);
  EXPECT_EQ(n.max_epochs, 1);
  EXPECT_EQ(n.running, 1);
  EXPECT_EQ(n.failed, 1);
  EXPECT_EQ(n.pending, 1);
  EXPECT_EQ(n.done(), 2);
  EXPECT_DOUBLE_EQ(all[0].energy_j, 6100.25 + 100.0);
}

TEST_F(StoreStudies, QueryAndResultsTable) {
  auto study = store.create_study("g", "grid", "", {});
  auto t = store.upsert_trial(study, trial_spec("k", sample_config(0.1, 32)));
  store.upsert_trial(study, trial_spec("later", {}, "", 1));
  store.start_trial(t, sample_config(0.1, 32), sample_environment());
  store.complete_trial(t, converged_summary());

  auto table = store.results_table(study);
  ASSERT_EQ(table.rows.size(), 2u);
  const auto& row = table.rows[0];
  EXPECT_EQ(std::get<std::string>(row[table.column("study")].value), "g");
  EXPECT_EQ(std::get<std::string>(row[table.column("status")].value), "converged");
  EXPECT_EQ(std::get<double>(row[table.column("learning_rate")].value), 0.1);
  EXPECT_EQ(std::get<std::int64_t>(row[table.column("batch_size")].value), 32);
  EXPECT_EQ(std::get<double>(row[table.column("energy_j")].value), 6100.25);
  EXPECT_EQ(std::get<std::string>(row[table.column("host")].value), "node-7");
  // The pending trial has no run: its run columns are NULL.
  EXPECT_TRUE(std::holds_alternative<std::monostate>(table.rows[1][table.column("energy_j")].value));
  EXPECT_EQ(to_text(table.rows[1][table.column("energy_j")].value), "");
  EXPECT_EQ(to_text(row[table.column("learning_rate")].value), "0.1");
  EXPECT_THROW(table.column("nope"), Error);

  auto q = store.query("SELECT name, ? AS p, NULL AS n, 1.5 AS r FROM studies WHERE kind = ?",
                       {std::int64_t{7}, std::string("grid")});
  std::vector<std::string> names;
  for (const auto& c : q.columns) names.push_back(c.name);
  ASSERT_EQ(names, (std::vector<std::string>{"name", "p", "n", "r"}));
  ASSERT_EQ(q.rows.size(), 1u);
  EXPECT_EQ(std::get<std::int64_t>(q.rows[0][1].value), 7);

  EXPECT_THROW(store.query("DELETE FROM studies"), StoreError);
  EXPECT_THROW(store.query("BEGIN"), StoreError);
  EXPECT_THROW(store.query("PRAGMA foreign_keys = OFF"), StoreError);
  EXPECT_THROW(store.query("SELECT 1; SELECT 2"), StoreError);
  EXPECT_THROW(store.query("SELECT ?"), StoreError);  // missing parameter
  EXPECT_THROW(store.query("SELECT * FROM nowhere"), StoreError);
  EXPECT_EQ(store.list_studies().size(), 1u);
}

}  // namespace
}  // namespace powertrain::store
