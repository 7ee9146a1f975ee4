#include <gtest/gtest.h>

#include <thread>

#include "clock_meter.h"
#include "powertrain/error.h"
#include "powertrain/run/control.h"

namespace prun = powertrain::run;
using powertrain::testing::clock_tracker;

namespace {

prun::RunConfig config(int max_epochs = 5, int patience = 2) {
  prun::RunConfig c;
  c.max_epochs = max_epochs;
  c.patience = patience;
  c.min_delta = 0.0;
  return c;
}

void busy(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

prun::EpochMetrics metric(double m) {
  prun::EpochMetrics e;
  e.val_metric = m;
  e.val_loss = 1.0 - m;
  e.train_loss = 1.0;
  e.samples = 100;
  return e;
}

}  // namespace

TEST(RunControl, MeasuresEpochsAndPhasesOnTheTracker) {
  auto tracker = clock_tracker(50.0);
  prun::RecordingObserver obs;
  prun::RunControl control(config(), *tracker, obs);
  control.start({});
  control.begin_epoch(1);
  busy(0.05);
  control.begin_eval();
  busy(0.03);
  const auto v = control.end_epoch(metric(0.5));
  EXPECT_TRUE(v.best);
  EXPECT_FALSE(v.stop);
  ASSERT_EQ(obs.epochs.size(), 1u);
  const auto& e = obs.epochs[0];
  EXPECT_EQ(e.epoch, 1);
  // 50 W over the phases' durations: the counter grows with time.
  EXPECT_NEAR(e.train_energy_j, 50.0 * e.train_duration_s, 0.5);
  EXPECT_NEAR(e.eval_energy_j, 50.0 * e.eval_duration_s, 0.5);
  EXPECT_NEAR(e.energy_j, e.train_energy_j + e.eval_energy_j, 0.2);
  EXPECT_GE(e.train_duration_s, 0.045);
  EXPECT_GT(e.samples_per_s, 0.0);
  EXPECT_EQ(e.method, "counter");
  const auto s = control.finish();
  EXPECT_EQ(s.status, prun::RunStatus::max_epochs);  // the workload ended without a verdict
  EXPECT_EQ(s.epochs, 1);
  EXPECT_TRUE(obs.ended);
}

TEST(RunControl, EpochsWithoutEvalPhaseCountAsTraining) {
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  prun::RunControl control(config(), *tracker, obs);
  control.begin_epoch(1);
  busy(0.02);
  (void)control.end_epoch(metric(0.5));
  EXPECT_DOUBLE_EQ(obs.epochs[0].eval_duration_s, 0.0);
  EXPECT_GT(obs.epochs[0].train_duration_s, 0.0);
}

TEST(RunControl, AppliesTheRuleAndRecordsTheBestEpoch) {
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  prun::RunControl control(config(10, 2), *tracker, obs);
  const double metrics[] = {0.5, 0.7, 0.6, 0.65};
  prun::EpochVerdict v;
  for (int e = 1; e <= 4; ++e) {
    control.begin_epoch(e);
    v = control.end_epoch(metric(metrics[e - 1]));
  }
  EXPECT_TRUE(v.stop);
  const auto s = control.finish();
  EXPECT_EQ(s.status, prun::RunStatus::converged);
  EXPECT_EQ(s.best_epoch, 2);
  EXPECT_DOUBLE_EQ(s.best_val_metric, 0.7);
  EXPECT_EQ(s.epochs, 4);
}

TEST(RunControl, RejectsEpochsOutOfOrder) {
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  prun::RunControl control(config(), *tracker, obs);
  EXPECT_THROW(control.begin_epoch(2), powertrain::WorkloadError);
  control.begin_epoch(1);
  EXPECT_THROW(control.begin_epoch(2), powertrain::WorkloadError);  // 1 is still open
  (void)control.end_epoch(metric(0.1));
  EXPECT_THROW(control.end_epoch(metric(0.1)), powertrain::WorkloadError);
  EXPECT_THROW(control.begin_epoch(1), powertrain::WorkloadError);
}

TEST(RunControl, AnInterruptedEpochCountsInEnergyButIsNotRecorded) {
  auto tracker = clock_tracker(100.0);
  prun::RecordingObserver obs;
  prun::RunControl control(config(), *tracker, obs);
  control.begin_epoch(1);
  busy(0.05);
  control.interrupt("stopped");
  const auto s = control.finish();
  EXPECT_EQ(s.status, prun::RunStatus::interrupted);
  EXPECT_EQ(s.epochs, 0);
  EXPECT_TRUE(obs.epochs.empty());
  EXPECT_GT(s.energy_j, 4.0);  // 100 W over >= 50 ms
  EXPECT_FALSE(control.epoch_open());
}

TEST(RunControl, FailureOverridesAVerdictAndClosesWindows) {
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  {
    prun::RunControl control(config(1, 0), *tracker, obs);
    control.begin_epoch(1);
    EXPECT_TRUE(control.end_epoch(metric(0.5)).stop);
    control.fail("the checkpoint could not be written");
    EXPECT_EQ(control.finish().status, prun::RunStatus::failed);
    // A second run on the same tracker: the first one left no window open.
    prun::RunControl again(config(), *tracker, obs);
    again.begin_epoch(1);
  }
  // Destroyed with epoch 1 open: its windows were closed, the names are free.
  tracker->begin("epoch-1");
  (void)tracker->end("epoch-1");
}

TEST(RunControl, DivergingLossInProgressIsReported) {
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  prun::RunControl control(config(), *tracker, obs, nullptr, prun::LossLimits{10.0, 100.0});
  control.begin_epoch(1);
  EXPECT_FALSE(control.batch({1, 1, 10, 10, 2.0}));
  EXPECT_TRUE(control.batch({1, 2, 10, 20, 50.0}));
  EXPECT_EQ(obs.batches.size(), 1u);  // the diverging one is not shown as progress
}

TEST(RunControl, StopFlagIsVisible) {
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  std::atomic<bool> stop{false};
  prun::RunControl control(config(), *tracker, obs, &stop);
  EXPECT_FALSE(control.stop_requested());
  stop = true;
  EXPECT_TRUE(control.stop_requested());
}

TEST(RunControl, AStopRuleEndsTheRunStoppedWithItsReasonAndEpochsKept) {
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  prun::RunControl control(config(10, 5), *tracker, obs);
  std::vector<int> asked;
  control.stop_when([&](const prun::EpochRecord& r) -> std::optional<std::string> {
    asked.push_back(r.epoch);
    if (r.epoch == 3) return std::string("too dear");
    return std::nullopt;
  });
  prun::EpochVerdict v;
  for (int e = 1; e <= 3; ++e) {
    control.begin_epoch(e);
    v = control.end_epoch(metric(0.1 * e));
  }
  EXPECT_TRUE(v.stop);
  EXPECT_EQ(v.status, prun::RunStatus::stopped);
  const auto s = control.finish();
  EXPECT_EQ(s.status, prun::RunStatus::stopped);
  EXPECT_EQ(s.message, "too dear");
  EXPECT_EQ(s.epochs, 3);
  EXPECT_EQ(obs.epochs.size(), 3u);
  EXPECT_EQ(asked, (std::vector<int>{1, 2, 3}));
}

TEST(RunControl, TheConvergenceRuleStopsFirstAndTheStopRuleIsNotAsked) {
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  prun::RunControl control(config(2, 5), *tracker, obs);
  int asked = 0;
  control.stop_when([&](const prun::EpochRecord&) -> std::optional<std::string> {
    ++asked;
    return std::string("always");
  });
  control.begin_epoch(1);
  EXPECT_EQ(control.end_epoch(metric(0.5)).status, prun::RunStatus::stopped);
  EXPECT_EQ(asked, 1);
  prun::RunControl limited(config(1, 5), *tracker, obs);
  limited.stop_when([&](const prun::EpochRecord&) -> std::optional<std::string> {
    ++asked;
    return std::string("always");
  });
  limited.begin_epoch(1);
  EXPECT_EQ(limited.end_epoch(metric(0.5)).status, prun::RunStatus::max_epochs);
  EXPECT_EQ(asked, 1) << "the epoch limit ended it; the stop rule was not asked";
}

// A secondary node of a run over several nodes records its epochs but never
// ends the run by its own rule: not at the epoch limit, not when patience is
// spent, not on a diverging or non-finite loss (the primary decides).
TEST(RunControl, AFollowerRecordsEpochsButNeverStops) {
  auto tracker = clock_tracker(50.0);
  prun::RecordingObserver obs;
  prun::RunControl control(config(2, 1), *tracker, obs);
  control.follow_primary();
  control.start({});
  for (int e = 1; e <= 4; ++e) {
    control.begin_epoch(e);
    prun::BatchProgress p;
    p.running_loss = e == 3 ? 1e9 : 1.0;
    EXPECT_FALSE(control.batch(p).has_value()) << "epoch " << e;
    auto m = metric(0.5);
    if (e == 4) m.val_metric = std::nan("");
    const auto v = control.end_epoch(m);
    EXPECT_FALSE(v.stop) << "epoch " << e;
  }
  EXPECT_EQ(control.status(), prun::RunStatus::running);
  EXPECT_EQ(obs.epochs.size(), 4u);
  // Without follow_primary the same run stops at its limit of 2 epochs.
  prun::RecordingObserver obs2;
  prun::RunControl leader(config(2, 1), *tracker, obs2, nullptr, {}, "l-");
  leader.start({});
  leader.begin_epoch(1);
  (void)leader.end_epoch(metric(0.5));
  leader.begin_epoch(2);
  EXPECT_TRUE(leader.end_epoch(metric(0.5)).stop);
}
