// RunControl::resume: a run that continues a paused one (a segment of a setup)
// must judge its epochs as the whole run would have.
#include <gtest/gtest.h>

#include <vector>

#include "clock_meter.h"
#include "powertrain/error.h"
#include "powertrain/run/control.h"

namespace prun = powertrain::run;
using powertrain::testing::clock_tracker;

namespace {

prun::RunConfig config(int max_epochs = 10, int patience = 2) {
  prun::RunConfig c;
  c.max_epochs = max_epochs;
  c.patience = patience;
  c.min_delta = 0.0;
  return c;
}

prun::EpochMetrics metric(double m) {
  prun::EpochMetrics e;
  e.val_metric = m;
  e.val_loss = 1.0 - m;
  e.train_loss = 1.0;
  e.samples = 100;
  return e;
}

// Epochs 1..n of an earlier segment with these validation metrics.
std::vector<prun::EpochRecord> prior(const std::vector<double>& metrics) {
  std::vector<prun::EpochRecord> out;
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    prun::EpochRecord r;
    r.epoch = static_cast<int>(i) + 1;
    r.val_metric = metrics[i];
    r.val_loss = 1.0 - metrics[i];
    r.train_loss = 1.0;
    r.energy_j = 100.0;
    out.push_back(r);
  }
  return out;
}

struct Outcome {
  std::vector<prun::EpochVerdict> verdicts;  // of the epochs this run trained
  prun::RunSummary summary;
};

// Runs the epochs with these metrics (from control.first_epoch()) until a
// stopping verdict.
Outcome train(prun::RunControl& control, const std::vector<double>& metrics) {
  Outcome o;
  for (double m : metrics) {
    if (control.status() != prun::RunStatus::running) break;
    control.begin_epoch(control.epochs_done() + 1);
    o.verdicts.push_back(control.end_epoch(metric(m)));
    if (o.verdicts.back().stop) break;
  }
  o.summary = control.finish();
  return o;
}

}  // namespace

TEST(RunControlResume, ContinuedEpochsGetTheVerdictsOfTheWholeRun) {
  const std::vector<double> curve = {0.5, 0.7, 0.6, 0.65, 0.9};
  auto tracker = clock_tracker();
  prun::RecordingObserver whole_obs;
  prun::RunControl whole(config(10, 2), *tracker, whole_obs);
  whole.start({});
  const auto w = train(whole, curve);

  prun::RecordingObserver obs;
  prun::RunControl control(config(10, 2), *tracker, obs);
  control.start({});
  EXPECT_EQ(control.first_epoch(), 1);
  control.resume(prior({0.5, 0.7}));
  EXPECT_EQ(control.first_epoch(), 3);
  EXPECT_EQ(control.epochs_done(), 2);
  EXPECT_EQ(control.status(), prun::RunStatus::running);
  EXPECT_THROW(control.begin_epoch(1), powertrain::WorkloadError);
  const auto c = train(control, {0.6, 0.65, 0.9});

  // Patience carried over: epochs 3 and 4 without a gain on epoch 2 stop it.
  ASSERT_EQ(c.verdicts.size(), 2u);
  ASSERT_EQ(w.verdicts.size(), 4u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(c.verdicts[i].best, w.verdicts[i + 2].best);
    EXPECT_EQ(c.verdicts[i].stop, w.verdicts[i + 2].stop);
    EXPECT_EQ(c.verdicts[i].status, w.verdicts[i + 2].status);
  }
  EXPECT_EQ(c.summary.status, prun::RunStatus::converged);
  EXPECT_EQ(c.summary.status, w.summary.status);
  EXPECT_EQ(c.summary.epochs, 4);
  EXPECT_EQ(c.summary.best_epoch, 2);  // an epoch of the earlier segment
  EXPECT_DOUBLE_EQ(c.summary.best_val_metric, 0.7);
  // Only this segment's epochs are recorded, numbered in the whole run.
  ASSERT_EQ(obs.epochs.size(), 2u);
  EXPECT_EQ(obs.epochs[0].epoch, 3);
  EXPECT_EQ(obs.epochs[1].epoch, 4);
}

TEST(RunControlResume, ANewBestEpochCountsInTheWholeRun) {
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  prun::RunControl control(config(4, 3), *tracker, obs);
  control.start({});
  control.resume(prior({0.5, 0.6}));
  const auto c = train(control, {0.8, 0.7});
  EXPECT_TRUE(c.verdicts[0].best);
  EXPECT_FALSE(c.verdicts[1].best);
  EXPECT_EQ(c.summary.status, prun::RunStatus::max_epochs);  // epoch 4 of 4
  EXPECT_EQ(c.summary.epochs, 4);
  EXPECT_EQ(c.summary.best_epoch, 3);
  EXPECT_DOUBLE_EQ(c.summary.best_val_metric, 0.8);
  // Energy and time are this segment's own: two epochs.
  EXPECT_GT(c.summary.duration_s, 0.0);
  EXPECT_LT(c.summary.energy_j, 100.0);
}

TEST(RunControlResume, PriorEpochsMustBeNumberedFromOneInOrder) {
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  auto gap = prior({0.5, 0.6, 0.7});
  gap[2].epoch = 4;
  {
    prun::RunControl control(config(), *tracker, obs);
    EXPECT_THROW(control.resume(gap), powertrain::WorkloadError);
  }
  auto late_start = prior({0.5});
  late_start[0].epoch = 2;
  {
    prun::RunControl control(config(), *tracker, obs);
    EXPECT_THROW(control.resume(late_start), powertrain::WorkloadError);
  }
  {
    prun::RunControl control(config(), *tracker, obs);
    control.begin_epoch(1);
    EXPECT_THROW(control.resume(prior({0.5})), powertrain::WorkloadError);  // an epoch has begun
  }
  {
    prun::RunControl control(config(), *tracker, obs);
    control.resume({});  // nothing before: a run from epoch 1
    EXPECT_EQ(control.first_epoch(), 1);
    control.begin_epoch(1);
  }
}

TEST(RunControlResume, ATargetReachedBeforeIsNotClaimedAgain) {
  auto c = config(10, 0);
  c.target_metric = 0.6;
  auto tracker = clock_tracker(50.0);
  prun::RecordingObserver obs;
  {
    prun::RunControl control(c, *tracker, obs);
    control.resume(prior({0.5, 0.7}));
    const auto o = train(control, {0.8});
    EXPECT_FALSE(o.verdicts[0].reached_target);
    EXPECT_FALSE(o.summary.energy_to_target_j);
    EXPECT_FALSE(o.summary.time_to_target_s);
  }
  {
    // Reached in this segment: its energy up to there (the caller adds the
    // earlier segments').
    prun::RunControl control(c, *tracker, obs);
    control.resume(prior({0.5, 0.55}));
    const auto o = train(control, {0.65});
    EXPECT_TRUE(o.verdicts[0].reached_target);
    ASSERT_TRUE(o.summary.energy_to_target_j);
    EXPECT_DOUBLE_EQ(*o.summary.energy_to_target_j, o.summary.energy_j);
  }
}

TEST(RunControlResume, APriorThatEndsTheRunLeavesNothingToTrain) {
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  {
    // Patience 2 spent by epochs 3 and 4.
    prun::RunControl control(config(10, 2), *tracker, obs);
    control.resume(prior({0.5, 0.7, 0.6, 0.65}));
    EXPECT_EQ(control.status(), prun::RunStatus::converged);
    EXPECT_THROW(control.begin_epoch(5), powertrain::WorkloadError);
    const auto s = control.finish();
    EXPECT_EQ(s.status, prun::RunStatus::converged);
    EXPECT_EQ(s.epochs, 4);
    EXPECT_EQ(s.best_epoch, 2);
    EXPECT_DOUBLE_EQ(s.energy_j, 0.0);
  }
  {
    prun::RunControl control(config(3, 0), *tracker, obs);
    control.resume(prior({0.5, 0.6, 0.7}));
    EXPECT_EQ(control.status(), prun::RunStatus::max_epochs);
    EXPECT_EQ(control.finish().epochs, 3);
  }
  EXPECT_TRUE(obs.epochs.empty());
}

TEST(RunControlResume, TheFirstPriorLossIsTheReferenceOfTheGrowthLimit) {
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  const prun::LossLimits limits{1e4, 10.0};
  {
    prun::RunControl control(config(), *tracker, obs, nullptr, limits);
    control.resume(prior({0.5}));  // train loss 1.0
    EXPECT_TRUE(control.check_loss(50.0));  // 50 times the first loss
  }
  {
    prun::RunControl control(config(), *tracker, obs, nullptr, limits);
    auto no_loss = prior({0.5});
    no_loss[0].train_loss = std::nan("");  // not reported: no reference
    control.resume(no_loss);
    EXPECT_FALSE(control.check_loss(50.0));
  }
}
