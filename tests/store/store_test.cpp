// The store's API: round trips of every record, trials and their life cycle, rows for reports.
#include "powertrain/store/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "powertrain/error.h"
#include "powertrain/store/json.h"
#include "samples.h"
#include "temp_dir.h"

namespace powertrain::store {
namespace {

using powertrain::testing::sample_config;
using powertrain::testing::sample_environment;
using powertrain::testing::sample_epoch;
using powertrain::testing::TempDir;
using powertrain::testing::trial_spec;
using ::testing::HasSubstr;

class StoreTest : public ::testing::Test {
 protected:
  TempDir dir;
  Store store = Store::open(dir / "results.db", {.durability = Durability::normal});
};

void expect_config_eq(const run::RunConfig& a, const run::RunConfig& b) {
  EXPECT_EQ(config_json(a), config_json(b));
}

run::RunSummary converged_summary() {
  run::RunSummary s;
  s.status = run::RunStatus::converged;
  s.epochs = 3;
  s.best_epoch = 2;
  s.duration_s = 36.5;
  s.energy_j = 6100.25;
  s.energy_to_target_j = 2000.0;
  s.time_to_target_s = 12.0;
  s.best_val_metric = 0.91;
  s.test_metric = 0.9;
  s.method = "counter+estimated";
  s.message = "";
  return s;
}

TEST(RunStatusNames, RoundTrip) {
  for (auto s : {run::RunStatus::running, run::RunStatus::converged, run::RunStatus::max_epochs,
                 run::RunStatus::diverged, run::RunStatus::interrupted, run::RunStatus::failed}) {
    EXPECT_EQ(run::run_status_from_string(run::to_string(s)), s);
  }
  EXPECT_EQ(run::to_string(run::RunStatus::max_epochs), "max_epochs");
  EXPECT_THROW(run::run_status_from_string("done"), ConfigError);
}

TEST(TrialStatusNames, RoundTripAndDone) {
  for (auto s : {TrialStatus::pending, TrialStatus::running, TrialStatus::converged, TrialStatus::max_epochs,
                 TrialStatus::diverged, TrialStatus::interrupted, TrialStatus::failed}) {
    EXPECT_EQ(trial_status_from_string(to_string(s)), s);
  }
  EXPECT_THROW(trial_status_from_string("completed"), ConfigError);
  EXPECT_TRUE(is_done(TrialStatus::diverged));
  EXPECT_TRUE(is_done(TrialStatus::max_epochs));
  EXPECT_FALSE(is_done(TrialStatus::interrupted));
  EXPECT_FALSE(is_done(TrialStatus::failed));
  EXPECT_EQ(trial_status(run::RunStatus::diverged), TrialStatus::diverged);
}

TEST(StoreJson, ConfigAndEnvironmentRoundTrip) {
  auto c = sample_config(0.123456789012345, 256, 18446744073709551615ull);
  c.freeze_encoder = true;
  c.init_encoder = "enc.pt";
  auto back = config_from_json(config_json(c));
  expect_config_eq(back, c);
  EXPECT_EQ(back.seed, 18446744073709551615ull);
  EXPECT_EQ(back.learning_rate, 0.123456789012345);
  EXPECT_EQ(back.data_options, c.data_options);  // order kept
  c.target_metric.reset();
  EXPECT_FALSE(config_from_json(config_json(c)).target_metric);

  auto e = sample_environment();
  EXPECT_EQ(environment_json(environment_from_json(environment_json(e))), environment_json(e));
  // Older documents lacking keys read with defaults; wrong types are errors.
  EXPECT_EQ(config_from_json(nlohmann::json{{"batch_size", 32}}).model, run::RunConfig{}.model);
  EXPECT_THROW(config_from_json(nlohmann::json{{"batch_size", "many"}}), StoreError);
}

TEST(StoreJson, TrialKeyIsCanonical) {
  auto a = sample_config(0.1, 64, 1);
  auto b = a;
  b.data_dir = "/elsewhere";
  b.checkpoint = "/tmp/x.pt";
  EXPECT_EQ(trial_key(a), trial_key(b));
  b.seed = 2;
  EXPECT_NE(trial_key(a), trial_key(b));
  EXPECT_EQ(trial_key(a).find("data_dir"), std::string::npos);
  EXPECT_NE(trial_key(a).find("\"seed\":1"), std::string::npos);
  auto c = a;
  std::swap(c.data_options[0], c.data_options[1]);
  EXPECT_EQ(trial_key(a), trial_key(c));  // option order does not matter
  c.data_options[0].second = "64";
  EXPECT_NE(trial_key(a), trial_key(c));
}

TEST_F(StoreTest, Studies) {
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

TEST_F(StoreTest, RunEpochsChannelsSummaryRoundTrip) {
  auto config = sample_config(0.05, 128, 7);
  auto env = sample_environment();
  auto run_id = store.begin_run(config, env);

  auto running = store.run(run_id);
  EXPECT_EQ(running.summary.status, run::RunStatus::running);
  EXPECT_TRUE(running.finished_at.empty());
  EXPECT_FALSE(running.started_at.empty());

  std::vector<run::EpochRecord> written;
  for (int e = 1; e <= 3; ++e) {
    written.push_back(sample_epoch(e, 4));
    if (e == 2) written.back().val_task_metrics = {0.9, std::nan(""), 0.75};
    store.add_epoch(run_id, written.back());
  }
  // A diverged epoch: NaN losses survive as NaN (SQLite keeps them as NULL).
  auto diverged = sample_epoch(4, 4);
  diverged.train_loss = std::nan("");
  diverged.val_loss = std::numeric_limits<double>::infinity();
  store.add_epoch(run_id, diverged);
  written.push_back(diverged);

  auto progress = store.run(run_id);
  EXPECT_EQ(progress.summary.epochs, 4);
  EXPECT_DOUBLE_EQ(progress.summary.energy_j, 1000.0 + 2000.0 + 3000.0 + 4000.0);
  EXPECT_DOUBLE_EQ(progress.summary.duration_s, 11.0 + 12.0 + 13.0 + 14.0);

  auto summary = converged_summary();
  summary.epochs = 4;
  summary.test_task_metrics = {0.8, 0.85};
  store.finish_run(run_id, summary);

  auto r = store.run(run_id);
  EXPECT_EQ(r.id, run_id);
  expect_config_eq(r.config, config);
  EXPECT_EQ(environment_json(r.environment), environment_json(env));
  EXPECT_EQ(r.summary.status, run::RunStatus::converged);
  EXPECT_EQ(r.summary.epochs, 4);
  EXPECT_EQ(r.summary.best_epoch, 2);
  EXPECT_EQ(r.summary.duration_s, 36.5);
  EXPECT_EQ(r.summary.energy_j, 6100.25);
  EXPECT_EQ(r.summary.energy_to_target_j, 2000.0);
  EXPECT_EQ(r.summary.time_to_target_s, 12.0);
  EXPECT_EQ(r.summary.best_val_metric, 0.91);
  EXPECT_EQ(r.summary.test_metric, 0.9);
  EXPECT_EQ(r.summary.method, "counter+estimated");
  EXPECT_EQ(r.summary.test_task_metrics, (std::vector<double>{0.8, 0.85}));
  EXPECT_FALSE(r.finished_at.empty());

  auto epochs = store.epochs_of(run_id);
  ASSERT_EQ(epochs.size(), written.size());
  for (std::size_t i = 0; i < epochs.size(); ++i) {
    const auto& a = epochs[i];
    const auto& b = written[i];
    EXPECT_EQ(a.epoch, b.epoch);
    EXPECT_EQ(a.duration_s, b.duration_s);
    EXPECT_EQ(a.train_duration_s, b.train_duration_s);
    EXPECT_EQ(a.eval_duration_s, b.eval_duration_s);
    EXPECT_EQ(a.energy_j, b.energy_j);
    EXPECT_EQ(a.train_energy_j, b.train_energy_j);
    EXPECT_EQ(a.eval_energy_j, b.eval_energy_j);
    EXPECT_EQ(a.method, b.method);
    EXPECT_EQ(a.samples_per_s, b.samples_per_s);
    if (std::isnan(b.train_loss)) {
      EXPECT_TRUE(std::isnan(a.train_loss));
    } else {
      EXPECT_EQ(a.train_loss, b.train_loss);
    }
    EXPECT_EQ(a.val_loss, b.val_loss);
    EXPECT_EQ(a.val_metric, b.val_metric);
    ASSERT_EQ(a.val_task_metrics.size(), b.val_task_metrics.size());
    for (std::size_t k = 0; k < a.val_task_metrics.size(); ++k) {
      if (std::isnan(b.val_task_metrics[k])) {
        EXPECT_TRUE(std::isnan(a.val_task_metrics[k]));
      } else {
        EXPECT_EQ(a.val_task_metrics[k], b.val_task_metrics[k]);
      }
    }
    ASSERT_EQ(a.channels.size(), b.channels.size());
    for (std::size_t c = 0; c < a.channels.size(); ++c) {
      EXPECT_EQ(a.channels[c].channel_id, b.channels[c].channel_id);
      EXPECT_EQ(a.channels[c].device, b.channels[c].device);
      EXPECT_EQ(a.channels[c].component, b.channels[c].component);
      EXPECT_EQ(a.channels[c].method, b.channels[c].method);
      EXPECT_EQ(a.channels[c].in_total, b.channels[c].in_total);
      EXPECT_EQ(a.channels[c].energy_j, b.channels[c].energy_j);
      EXPECT_EQ(a.channels[c].avg_power_w, b.channels[c].avg_power_w);
      EXPECT_EQ(a.channels[c].peak_power_w, b.channels[c].peak_power_w);
    }
  }
  EXPECT_TRUE(store.epochs_of(999).empty());
  ASSERT_EQ(store.list_runs().size(), 1u);
}

TEST_F(StoreTest, RunErrors) {
  auto run_id = store.begin_run(sample_config(), {});
  store.add_epoch(run_id, sample_epoch(1));
  try {
    store.add_epoch(run_id, sample_epoch(1));
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("add epoch 1 of run " + std::to_string(run_id) + ": UNIQUE constraint failed"));
  }
  EXPECT_THROW(store.add_epoch(999, sample_epoch(1)), StoreError);  // no such run
  EXPECT_THROW(store.add_epoch(run_id, sample_epoch(0)), StoreError);  // epochs are 1-based

  run::RunSummary still;
  EXPECT_THAT([&] {
    try { store.finish_run(run_id, still); } catch (const StoreError& e) { return std::string(e.what()); }
    return std::string();
  }(), HasSubstr("still 'running'"));
  store.finish_run(run_id, converged_summary());
  EXPECT_THROW(store.finish_run(run_id, converged_summary()), StoreError);
  EXPECT_THROW(store.finish_run(999, converged_summary()), StoreError);
  EXPECT_THROW(store.run(999), StoreError);
}

TEST_F(StoreTest, TrialUpsertIsUniqueByKey) {
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

TEST_F(StoreTest, TrialLifeCycle) {
  auto study = store.create_study("pre", "pretrain", "", {});
  auto t1 = store.upsert_trial(study, trial_spec("scratch", sample_config(), "scratch", 0));
  auto t2 = store.upsert_trial(study, trial_spec("ft", sample_config(0.2), "finetune", 1, "smile"));
  auto t3 = store.upsert_trial(study, trial_spec("frozen", sample_config(0.3), "frozen", 1));

  auto r1 = store.start_trial(t1, sample_config(), sample_environment());
  EXPECT_THROW(store.start_trial(t1, sample_config(), {}), StoreError);  // already running
  auto trial = store.trial(t1);
  EXPECT_EQ(trial.status, TrialStatus::running);
  EXPECT_EQ(trial.run_id, r1);
  EXPECT_EQ(trial.attempts, 1);
  EXPECT_FALSE(trial.started_at.empty());
  store.add_epoch(r1, sample_epoch(1));
  store.complete_trial(t1, converged_summary());
  trial = store.trial(t1);
  EXPECT_EQ(trial.status, TrialStatus::converged);
  EXPECT_FALSE(trial.finished_at.empty());
  EXPECT_EQ(store.run(r1).summary.status, run::RunStatus::converged);
  EXPECT_THROW(store.complete_trial(t1, converged_summary()), StoreError);  // not running
  EXPECT_THROW(store.start_trial(t1, sample_config(), {}), StoreError);     // done: never twice

  auto r2 = store.start_trial(t2, sample_config(0.2), {});
  auto diverged = converged_summary();
  diverged.status = run::RunStatus::diverged;
  diverged.message = "loss is NaN at epoch 2";
  store.complete_trial(t2, diverged);
  EXPECT_EQ(store.trial(t2).status, TrialStatus::diverged);
  EXPECT_EQ(store.trial(t2).message, "loss is NaN at epoch 2");
  EXPECT_EQ(store.run(r2).summary.message, "loss is NaN at epoch 2");

  auto r3 = store.start_trial(t3, sample_config(0.3), {});
  store.mark_trial_interrupted(t3, "interrupted by the user");
  EXPECT_EQ(store.trial(t3).status, TrialStatus::interrupted);
  EXPECT_EQ(store.run(r3).summary.status, run::RunStatus::interrupted);
  // Retrying starts a new run and counts the attempt.
  auto r3b = store.start_trial(t3, sample_config(0.3), {});
  EXPECT_NE(r3b, r3);
  EXPECT_EQ(store.trial(t3).attempts, 2);
  EXPECT_EQ(store.trial(t3).run_id, r3b);
  store.mark_trial_failed(t3, "out of memory");
  EXPECT_EQ(store.trial(t3).status, TrialStatus::failed);
  EXPECT_EQ(store.run(r3b).summary.status, run::RunStatus::failed);
  EXPECT_EQ(store.run(r3b).summary.message, "out of memory");
  // Failing a trial whose run finished leaves the run alone.
  store.mark_trial_failed(t1, "report lost");
  EXPECT_EQ(store.run(r1).summary.status, run::RunStatus::converged);

  auto trials = store.trials_of(study);
  ASSERT_EQ(trials.size(), 3u);
  EXPECT_EQ(trials[0].key, "scratch");  // by step, then insertion
  EXPECT_EQ(trials[1].key, "ft");
  EXPECT_EQ(trials[1].task, "smile");
  EXPECT_EQ(trials[2].phase, "frozen");

  auto results = store.results_of(study);
  ASSERT_EQ(results.size(), 3u);
  ASSERT_TRUE(results[0].run);
  EXPECT_EQ(results[0].run->id, r1);
  EXPECT_EQ(results[0].run->summary.energy_j, 6100.25);
  EXPECT_EQ(results[2].run->id, r3b);
}

TEST_F(StoreTest, ResetInterruptedMarksRunningTrials) {
  auto study = store.create_study("g", "grid", "", {});
  auto other = store.create_study("o", "grid", "", {});
  auto done = store.upsert_trial(study, trial_spec("done"));
  auto killed = store.upsert_trial(study, trial_spec("killed"));
  auto pending = store.upsert_trial(study, trial_spec("pending"));
  auto elsewhere = store.upsert_trial(other, trial_spec("killed"));
  store.start_trial(done, {}, {});
  store.complete_trial(done, converged_summary());
  auto run = store.start_trial(killed, {}, {});
  store.add_epoch(run, sample_epoch(1));
  store.start_trial(elsewhere, {}, {});

  EXPECT_EQ(store.reset_interrupted(study), 1);
  auto t = store.trial(killed);
  EXPECT_EQ(t.status, TrialStatus::interrupted);
  EXPECT_EQ(t.attempts, 1);
  EXPECT_THAT(t.message, HasSubstr("ended before it finished"));
  auto r = store.run(run);
  EXPECT_EQ(r.summary.status, run::RunStatus::interrupted);
  EXPECT_EQ(r.summary.epochs, 1);  // what it did before it died still counts
  EXPECT_EQ(r.summary.energy_j, 1000.0);
  EXPECT_EQ(store.trial(done).status, TrialStatus::converged);
  EXPECT_EQ(store.trial(pending).status, TrialStatus::pending);
  EXPECT_EQ(store.trial(elsewhere).status, TrialStatus::running);  // other studies untouched
  EXPECT_EQ(store.reset_interrupted(study), 0);

  store.start_trial(killed, {}, {});
  EXPECT_EQ(store.trial(killed).attempts, 2);
}

TEST_F(StoreTest, StudyOverviewCounts) {
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

TEST_F(StoreTest, Timeline) {
  auto run = store.begin_run({}, {});
  const std::int64_t origin = 5'000'000'000;
  std::vector<energy::TimelineSample> samples;
  for (int i = 0; i < 10; ++i) {
    energy::TimelineSample s;
    s.t_ns = origin + i * 100'000'000LL + 123;  // every 100 ms
    s.power_w = {100.0 + i, i == 3 ? std::nan("") : 20.0 + i};
    samples.push_back(s);
  }
  std::vector<energy::ChannelInfo> channels(2);
  channels[0].id = "nvml:gpu0";
  channels[1].id = "rapl:package-0";
  store.add_timeline(run, channels, {samples.begin(), samples.begin() + 5}, origin);
  // A later batch; channels listed in another order map to the same series.
  std::vector<energy::TimelineSample> rest(samples.begin() + 5, samples.end());
  for (auto& s : rest) std::swap(s.power_w[0], s.power_w[1]);
  store.add_timeline(run, std::vector<std::string>{"rapl:package-0", "nvml:gpu0"}, rest, origin);
  store.add_timeline(run, std::vector<std::string>{"rapl:package-0", "nvml:gpu0"}, rest, origin);  // idempotent

  auto series = store.timeline_of(run);
  ASSERT_EQ(series.size(), 2u);
  EXPECT_EQ(series[0].channel_id, "nvml:gpu0");
  ASSERT_EQ(series[0].t_s.size(), 10u);
  EXPECT_DOUBLE_EQ(series[0].t_s[7], 0.7);
  EXPECT_EQ(series[0].power_w[7], 107.0);
  EXPECT_EQ(series[1].channel_id, "rapl:package-0");
  EXPECT_EQ(series[1].t_s.size(), 9u);  // the NaN sample is left out
  EXPECT_EQ(series[1].power_w[8], 29.0);

  auto view = store.query("SELECT count(*), max(t_s) FROM timeline_w WHERE run_id = ?", {run});
  EXPECT_EQ(std::get<std::int64_t>(view.rows[0][0]), 19);
  EXPECT_DOUBLE_EQ(std::get<double>(view.rows[0][1]), 0.9);

  energy::TimelineSample bad;
  bad.power_w = {1.0};
  EXPECT_THROW(store.add_timeline(run, channels, {bad}, 0), StoreError);
  EXPECT_THROW(store.add_timeline(999, channels, samples, 0), StoreError);
  EXPECT_TRUE(store.timeline_of(999).empty());
}

TEST_F(StoreTest, Measurements) {
  MeasurementRecord m;
  m.uuid = "6f1c";
  m.started_at = "2024-01-02T03:04:05Z";
  m.command = "python train.py";
  m.exit_code = 3;
  m.duration_s = 12.5;
  m.energy_j = 999.0;
  m.avg_power_w = 79.92;
  m.peak_power_w = 150.0;
  m.emissions_kg = 0.0001;
  m.method = "counter";
  m.host = "node-7";
  m.report_json = R"({"energy_j": 999.0})";
  auto id = store.add_measurement(m);
  EXPECT_THROW(store.add_measurement(m), StoreError);  // duplicate uuid
  auto all = store.list_measurements();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].id, id);
  EXPECT_EQ(all[0].command, "python train.py");
  EXPECT_EQ(all[0].exit_code, 3);
  EXPECT_EQ(all[0].energy_j, 999.0);
  EXPECT_FALSE(all[0].energy_above_idle_j);
  EXPECT_EQ(all[0].emissions_kg, 0.0001);
  EXPECT_EQ(all[0].report_json, m.report_json);
  m.uuid = "other";
  m.report_json = "not json";
  EXPECT_THROW(store.add_measurement(m), StoreError);
}

TEST_F(StoreTest, QueryAndResultsTable) {
  auto study = store.create_study("g", "grid", "", {});
  auto t = store.upsert_trial(study, trial_spec("k", sample_config(0.1, 32)));
  store.upsert_trial(study, trial_spec("later", {}, "", 1));
  store.start_trial(t, sample_config(0.1, 32), sample_environment());
  store.complete_trial(t, converged_summary());

  auto table = store.results_table(study);
  ASSERT_EQ(table.rows.size(), 2u);
  const auto& row = table.rows[0];
  EXPECT_EQ(std::get<std::string>(row[table.column("study")]), "g");
  EXPECT_EQ(std::get<std::string>(row[table.column("status")]), "converged");
  EXPECT_EQ(std::get<double>(row[table.column("learning_rate")]), 0.1);
  EXPECT_EQ(std::get<std::int64_t>(row[table.column("batch_size")]), 32);
  EXPECT_EQ(std::get<double>(row[table.column("energy_j")]), 6100.25);
  EXPECT_EQ(std::get<std::string>(row[table.column("host")]), "node-7");
  // The pending trial has no run: its run columns are NULL.
  EXPECT_TRUE(std::holds_alternative<std::monostate>(table.rows[1][table.column("energy_j")]));
  EXPECT_EQ(to_text(table.rows[1][table.column("energy_j")]), "");
  EXPECT_EQ(to_text(row[table.column("learning_rate")]), "0.1");
  EXPECT_THROW(table.column("nope"), StoreError);

  auto q = store.query("SELECT name, ? AS p, NULL AS n, 1.5 AS r FROM studies WHERE kind = ?",
                       {std::int64_t{7}, std::string("grid")});
  ASSERT_EQ(q.columns, (std::vector<std::string>{"name", "p", "n", "r"}));
  ASSERT_EQ(q.rows.size(), 1u);
  EXPECT_EQ(std::get<std::int64_t>(q.rows[0][1]), 7);

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

namespace powertrain::store {
namespace {

// Issue 13, interference: each epoch's CPU time beside the machine's, the
// run's total while it runs and when it ends, and the wait for a quiet machine.
TEST_F(StoreTest, CpuTimeOfEpochsAndRunsRoundTrips) {
  auto run_id = store.begin_run(sample_config(), sample_environment());
  auto e1 = sample_epoch(1);
  e1.cpu = energy::WindowCpu{10.0, 4.0};
  auto e2 = sample_epoch(2);
  e2.cpu = energy::WindowCpu{6.0, 5.5};
  store.add_epoch(run_id, e1);
  store.add_epoch(run_id, e2);
  // While it runs, the totals so far.
  auto running = store.run(run_id).summary;
  ASSERT_TRUE(running.cpu.has_value());
  EXPECT_DOUBLE_EQ(running.cpu->machine_s, 16.0);
  EXPECT_DOUBLE_EQ(running.cpu->measured_s, 9.5);
  const auto epochs = store.epochs_of(run_id);
  ASSERT_EQ(epochs.size(), 2u);
  ASSERT_TRUE(epochs[0].cpu.has_value());
  EXPECT_DOUBLE_EQ(epochs[0].cpu->others_s(), 6.0);
  EXPECT_DOUBLE_EQ(epochs[1].cpu->measured_s, 5.5);

  run::RunSummary s = converged_summary();
  s.cpu = energy::WindowCpu{16.0, 9.5};
  s.quiet_wait_s = 4.0;
  store.finish_run(run_id, s);
  const auto done = store.run(run_id).summary;
  ASSERT_TRUE(done.cpu.has_value());
  EXPECT_NEAR(done.cpu->others_share(), 6.5 / 16.0, 1e-12);
  EXPECT_TRUE(done.cpu->material());
  EXPECT_EQ(done.quiet_wait_s, 4.0);
}

TEST_F(StoreTest, AnEpochWithoutCpuTimeLeavesTheRunsUnknown) {
  auto run_id = store.begin_run(sample_config(), sample_environment());
  auto e1 = sample_epoch(1);
  e1.cpu = energy::WindowCpu{10.0, 4.0};
  store.add_epoch(run_id, e1);
  store.add_epoch(run_id, sample_epoch(2));  // unreadable in epoch 2
  EXPECT_FALSE(store.run(run_id).summary.cpu.has_value());
  EXPECT_FALSE(store.epochs_of(run_id)[1].cpu.has_value());
  store.finish_run(run_id, converged_summary());
  const auto done = store.run(run_id).summary;
  EXPECT_FALSE(done.cpu.has_value());
  EXPECT_FALSE(done.quiet_wait_s.has_value());
}

}  // namespace
}  // namespace powertrain::store

namespace powertrain::store {
namespace {

// Issue 15: the forecast made after an epoch is stored with it.
TEST_F(StoreTest, EpochForecastsRoundTrip) {
  auto run_id = store.begin_run(sample_config(), sample_environment());
  auto e1 = sample_epoch(1);
  run::EpochForecast f;
  f.method = "curve-ensemble";
  f.stop_epoch_low = 7;
  f.stop_epoch = 9;
  f.stop_epoch_high = 12;
  f.energy_low_j = 250;
  f.energy_j = 310;
  f.energy_high_j = 420;
  f.target_energy_j = 280;
  f.p_reach_target = 0.75;
  e1.forecast = f;
  store.add_epoch(run_id, e1);
  store.add_epoch(run_id, sample_epoch(2));  // none after this one
  const auto epochs = store.epochs_of(run_id);
  ASSERT_EQ(epochs.size(), 2u);
  ASSERT_TRUE(epochs[0].forecast.has_value());
  const auto& g = *epochs[0].forecast;
  EXPECT_EQ(g.method, "curve-ensemble");
  EXPECT_EQ(g.stop_epoch_low, 7);
  EXPECT_EQ(g.stop_epoch, 9);
  EXPECT_EQ(g.stop_epoch_high, 12);
  EXPECT_EQ(g.energy_low_j, 250);
  EXPECT_EQ(g.energy_j, 310);
  EXPECT_EQ(g.energy_high_j, 420);
  EXPECT_EQ(g.target_energy_j, 280);
  EXPECT_EQ(g.p_reach_target, 0.75);
  EXPECT_FALSE(epochs[1].forecast.has_value());
}

}  // namespace
}  // namespace powertrain::store
