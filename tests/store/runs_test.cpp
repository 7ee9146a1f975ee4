// The runs aggregate: runs, epochs with their channels, CPU time, forecasts and timelines.
#include "powertrain/store/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

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
using powertrain::testing::sample_epoch;
using ::testing::HasSubstr;

class StoreRuns : public powertrain::testing::StoreFixture {};

TEST_F(StoreRuns, RunEpochsChannelsSummaryRoundTrip) {
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

TEST_F(StoreRuns, RunErrors) {
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

// Issue 13, interference: each epoch's CPU time beside the machine's, the
// run's total while it runs and when it ends, and the wait for a quiet machine.
TEST_F(StoreRuns, CpuTimeOfEpochsAndRunsRoundTrips) {
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

TEST_F(StoreRuns, AnEpochWithoutCpuTimeLeavesTheRunsUnknown) {
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

// Issue 15: the forecast made after an epoch is stored with it.
TEST_F(StoreRuns, EpochForecastsRoundTrip) {
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

TEST_F(StoreRuns, Timeline) {
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
  EXPECT_EQ(std::get<std::int64_t>(view.rows[0][0].value), 19);
  EXPECT_DOUBLE_EQ(std::get<double>(view.rows[0][1].value), 0.9);

  energy::TimelineSample bad;
  bad.power_w = {1.0};
  EXPECT_THROW(store.add_timeline(run, channels, {bad}, 0), StoreError);
  EXPECT_THROW(store.add_timeline(999, channels, samples, 0), StoreError);
  EXPECT_TRUE(store.timeline_of(999).empty());
}

}  // namespace
}  // namespace powertrain::store
