// Forecasts inside a study (predict/study.h): the prior from the study's other
// runs, the backtest's choice against the linear rule, calibrated intervals.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "powertrain/predict/study.h"

namespace pp = powertrain::predict;

namespace {

pp::RuleSettings rule(int max_epochs = 20, int patience = 2, double min_delta = 0.01) {
  pp::RuleSettings r;
  r.max_epochs = max_epochs;
  r.patience = patience;
  r.min_delta = min_delta;
  return r;
}

// A run whose metric rises by `gain` for `rising` epochs and then stays, each
// epoch costing `energy_j` (the first one `first_j` when given).
std::vector<pp::CurvePoint> run(int epochs, double start, double gain, int rising, double energy_j,
                                double first_j = -1.0) {
  std::vector<pp::CurvePoint> out;
  double m = start;
  for (int e = 1; e <= epochs; ++e) {
    if (e > 1 && e <= rising) m += gain;
    out.push_back({e, m, e == 1 && first_j >= 0 ? first_j : energy_j});
  }
  return out;
}

// The epochs up to where the rule stops a curve (the whole run as recorded).
std::vector<pp::CurvePoint> until_stop(std::vector<pp::CurvePoint> c, const pp::RuleSettings& r) {
  std::vector<double> m;
  for (const auto& p : c) m.push_back(p.val_metric);
  const auto o = pp::replay_rule(m, r);
  if (o.stop_epoch > 0) c.resize(static_cast<std::size_t>(o.stop_epoch));
  return c;
}

std::vector<pp::CurvePoint> first(const std::vector<pp::CurvePoint>& c, int n) { return {c.begin(), c.begin() + n}; }

}  // namespace

// Peers that rose for 4 epochs and then stopped improving: the rule (patience
// 2) stops them at epoch 6. A run after 2 epochs of such a curve gets that
// stop from the prior; without it the forecast is the bound half way to
// max_epochs (13), which the backtest would have to live with.
TEST(StudyPrior, ARunAfterTwoEpochsStopsWhereItsPeersStopped) {
  const auto r = rule();
  std::vector<pp::PeerRun> peers;
  for (int i = 0; i < 5; ++i)
    peers.push_back({until_stop(run(20, 0.5 + 0.01 * i, 0.1, 4, 10.0), r), {64, "/"}, true});
  ASSERT_EQ(peers[0].epochs.size(), 6u);
  const auto seen = first(run(20, 0.52, 0.1, 4, 10.0), 2);
  const auto p = pp::predict_prior(seen, r, {64, "/"}, peers);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->method, "study prior");
  EXPECT_DOUBLE_EQ(p->stop_epoch.mid, 6.0);
  EXPECT_NEAR(p->energy_to_stop_j.mid, 60.0, 1e-9);
  const auto bound = pp::predict_curve(seen, r);
  EXPECT_EQ(bound.method, "too few epochs");
  EXPECT_GT(std::abs(bound.energy_to_stop_j.mid - 60.0), 40.0);
}

// Peers whose curve so far was near the run's decide: two peers far from it
// that ran on to max_epochs have next to no weight.
TEST(StudyPrior, PeersWithCurvesNearTheRunsWeighMore) {
  const auto r = rule();
  std::vector<pp::PeerRun> peers;
  for (int i = 0; i < 3; ++i) peers.push_back({until_stop(run(20, 0.50, 0.1, 4, 10.0), r), {64, "/"}, true});
  for (int i = 0; i < 2; ++i) peers.push_back({until_stop(run(20, 0.10, 0.02, 20, 10.0), r), {64, "/"}, true});
  ASSERT_EQ(peers[3].epochs.size(), 20u);
  const auto p = pp::predict_prior(first(run(20, 0.5, 0.1, 4, 10.0), 2), r, {64, "/"}, peers);
  ASSERT_TRUE(p);
  EXPECT_DOUBLE_EQ(p->stop_epoch.mid, 6.0);
  EXPECT_DOUBLE_EQ(p->stop_epoch.high, 6.0);
  // Alone, they would say epoch 20.
  const std::vector<pp::PeerRun> far(peers.begin() + 3, peers.end());
  EXPECT_DOUBLE_EQ(pp::predict_prior(first(run(20, 0.5, 0.1, 4, 10.0), 2), r, {64, "/"}, far)->stop_epoch.mid, 20.0);
}

// The energy of the epochs to come: after one epoch, the run's first epoch
// corrected by the peers' warm-up ratio, shrunk towards the peers with the
// same batch size and group; peers of another batch size do not count.
TEST(StudyPrior, EpochEnergyComesFromTheRunAndItsPeersOfTheSameBatchSize) {
  const auto r = rule(10, 0);  // no early stopping: every run goes to epoch 10
  std::vector<pp::PeerRun> peers{
      {run(10, 0.5, 0.01, 10, 10.0, 20.0), {64, "/"}, true},   // 10 J per epoch after a 20 J first
      {run(10, 0.5, 0.01, 10, 4.0, 8.0), {256, "/"}, true},    // another batch size
      {run(10, 0.5, 0.01, 10, 30.0, 60.0), {64, "frozen/"}, true},  // another part of the study
  };
  // One epoch of 24 J: own level 24 x 0.5 (the warm-up ratio) = 12, with the
  // one peer of its traits at 10: (12 + 10) / 2 = 11 J for each of 9 epochs.
  const auto p = pp::predict_prior(first(run(10, 0.5, 0.01, 10, 0, 24.0), 1), r, {64, "/"}, peers);
  ASSERT_TRUE(p);
  EXPECT_NEAR(p->energy_to_stop_j.mid, 24.0 + 9 * 11.0, 1e-9);
  // After three epochs its own two later epochs (14 J) count twice as much as the peer.
  auto seen = first(run(10, 0.5, 0.01, 10, 14.0, 24.0), 3);
  const auto q = pp::predict_prior(seen, r, {64, "/"}, peers);
  ASSERT_TRUE(q);
  EXPECT_NEAR(q->energy_to_stop_j.mid, 52.0 + 7 * (2 * 14.0 + 10.0) / 3.0, 1e-9);
}

// A running peer says nothing of epochs it has not reached; a prior without
// any continuation is none.
TEST(StudyPrior, RunningPeersThatHaveNotGotFurtherAreLeftOut) {
  const auto r = rule(20, 0);
  const std::vector<pp::PeerRun> running{{run(3, 0.5, 0.1, 3, 10.0), {64, "/"}, false}};
  EXPECT_FALSE(pp::predict_prior(first(run(20, 0.5, 0.1, 4, 10.0), 2), r, {64, "/"}, running));
  EXPECT_FALSE(pp::predict_prior(first(run(20, 0.5, 0.1, 4, 10.0), 2), r, {64, "/"}, {}));
}

namespace {

// A study of runs that stop at various epochs (the rule, patience 2), with
// epoch energies that vary by batch size and by `epoch_sd` from epoch to epoch
// (a machine whose load comes and goes); their curves rise for `rise_min` to
// `rise_max` epochs.
std::vector<pp::BacktestRun> early_stopping_study(int runs, std::uint64_t seed, double epoch_sd = 0.08,
                                                  int rise_min = 2, int rise_max = 9) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> rising(rise_min, rise_max);
  std::normal_distribution<double> noise(0.0, epoch_sd);
  const auto r = rule(20, 2);
  std::vector<pp::BacktestRun> out;
  for (int i = 0; i < runs; ++i) {
    const std::int64_t bs = i % 2 ? 64 : 256;
    const double level = bs == 64 ? 10.0 : 6.0;
    auto c = until_stop(run(20, 0.3 + 0.02 * (i % 5), 0.06, rising(rng), level), r);
    for (auto& p : c) p.energy_j = level * std::exp(noise(rng));
    pp::BacktestRun b{c, r, {bs, "/"}, 0.0};
    for (const auto& p : c) b.energy_j += p.energy_j;
    out.push_back(std::move(b));
  }
  return out;
}

// A study where every run goes to max_epochs at a steady energy: the linear
// rule is exact there.
std::vector<pp::BacktestRun> steady_study(int runs) {
  const auto r = rule(8, 0);
  std::vector<pp::BacktestRun> out;
  for (int i = 0; i < runs; ++i) {
    pp::BacktestRun b{run(8, 0.4, 0.05, 8, 5.0 + i), r, {32, "/"}, 8 * (5.0 + i)};
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace

// Where the runs stop early, the linear rule (max_epochs x mean energy) is far
// off and the backtest picks a curve forecast; where every run goes to
// max_epochs, the linear rule is exact and wins.
TEST(StudyBacktest, ChoosesTheMethodWithTheLowerMedianError) {
  const auto early = pp::backtest(early_stopping_study(12, 1));
  EXPECT_EQ(early.runs, 12);
  EXPECT_EQ(early.points, 24);
  EXPECT_TRUE(early.calibrated);
  EXPECT_NE(early.chosen, pp::Method::linear);
  EXPECT_LT(std::min(early.ape(pp::Method::curve), early.ape(pp::Method::prior)), early.ape(pp::Method::linear));
  EXPECT_GT(early.ape(pp::Method::linear), 0.3);

  const auto steady = pp::backtest(steady_study(5));
  EXPECT_EQ(steady.chosen, pp::Method::linear);
  EXPECT_NEAR(steady.ape(pp::Method::linear), 0.0, 1e-12);
  // The forecast in that study is the linear rule's, labelled as chosen.
  const auto runs = steady_study(5);
  const auto p = pp::predict_in_study(first(runs[0].epochs, 2), runs[0].rule, runs[0].traits, pp::peers_of(runs, 0),
                                      steady);
  EXPECT_EQ(p.method, "linear, by backtest of 5 runs");
  EXPECT_NEAR(p.energy_to_stop_j.mid, 40.0, 1e-9);
}

// Too few finished runs: no choice, no calibration; the curve forecast with
// the prior, as it comes.
TEST(StudyBacktest, WithoutEnoughFinishedRunsTheCurveForecastIsUsedAsItIs) {
  const auto runs = early_stopping_study(2, 3);
  const auto bt = pp::backtest(runs);
  EXPECT_FALSE(bt.calibrated);
  EXPECT_DOUBLE_EQ(bt.residual_low, 0.0);
  EXPECT_DOUBLE_EQ(bt.residual_high, 0.0);
  const auto p = pp::predict_in_study(first(runs[0].epochs, 1), runs[0].rule, runs[0].traits, pp::peers_of(runs, 0),
                                      bt);
  EXPECT_EQ(p.method, "study prior");
}

// The 80% interval, scaled by the backtest's conformal factor, holds 70-90% of
// the outcomes of runs it did not see (each run's forecast from a backtest that
// leaves it out), on a machine whose load moves each epoch's energy by about
// 30%. The uncalibrated intervals of the prior, which know the spread of the
// stops (here narrow) but not that of the energy, hold far fewer.
TEST(StudyCalibration, ScaledIntervalsHoldEightyPercentOfOutcomes) {
  const auto runs = early_stopping_study(40, 7, 0.3, 4, 5);
  int held = 0, held_raw = 0, points = 0;
  pp::CurveCache cache;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto bt = pp::backtest(runs, i, &cache);
    ASSERT_TRUE(bt.calibrated);
    const int n = static_cast<int>(runs[i].epochs.size());
    for (double share : pp::kBacktestShares) {
      const int k = std::clamp(static_cast<int>(std::lround(share * n)), 1, n - 1);
      const auto seen = first(runs[i].epochs, k);
      const auto peers = pp::peers_of(runs, i);
      const auto p = pp::predict_in_study(seen, runs[i].rule, runs[i].traits, peers, bt);
      const auto raw = pp::predict_with(bt.chosen, seen, runs[i].rule, runs[i].traits, peers);
      const double actual = runs[i].energy_j;
      EXPECT_LE(p.energy_to_stop_j.low, p.energy_to_stop_j.mid);
      EXPECT_LE(p.energy_to_stop_j.mid, p.energy_to_stop_j.high);
      held += p.energy_to_stop_j.low <= actual && actual <= p.energy_to_stop_j.high;
      held_raw += raw.energy_to_stop_j.low <= actual && actual <= raw.energy_to_stop_j.high;
      ++points;
    }
  }
  const double coverage = static_cast<double>(held) / points;
  const double raw = static_cast<double>(held_raw) / points;
  EXPECT_GE(coverage, 0.7) << held << "/" << points;
  EXPECT_LE(coverage, 0.9) << held << "/" << points;
  EXPECT_LT(raw, 0.6) << "uncalibrated " << held_raw << "/" << points;
  std::printf("calibrated %d/%d, uncalibrated %d/%d\n", held, points, held_raw, points);
}

// The session's forecaster in a study: the prior with its label from the first epoch.
TEST(StudyForecaster, LabelsTheMethodTheBacktestChose) {
  const auto runs = early_stopping_study(6, 11);
  std::vector<pp::PeerRun> peers = pp::peers_of(runs, std::nullopt);
  powertrain::run::RunConfig config;
  config.max_epochs = 20;
  config.patience = 2;
  config.min_delta = 0.01;
  config.batch_size = 64;
  pp::StudyForecaster f(config, {64, "/"}, peers, runs);
  ASSERT_TRUE(f.backtest().calibrated);
  powertrain::run::EpochRecord e;
  e.epoch = 1;
  e.val_metric = 0.3;
  e.energy_j = 10.0;
  const auto forecast = f.after(e);
  ASSERT_TRUE(forecast);
  EXPECT_NE(forecast->method.find(", by backtest of 6 runs"), std::string::npos) << forecast->method;
  EXPECT_EQ(forecast->method.find("too few epochs"), std::string::npos) << forecast->method;
}

namespace {

// A curve whose gain per epoch shrinks by 0.6 each epoch: 0.9 - 0.5 x 0.6^t at
// "time" t. A run that starts `shift` epochs further along (a warm start, a
// faster setting) follows the same curve from there.
std::vector<pp::CurvePoint> shrinking(int epochs, int shift, double energy_j) {
  std::vector<pp::CurvePoint> out;
  for (int e = 1; e <= epochs; ++e) out.push_back({e, 0.9 - 0.5 * std::pow(0.6, e - 1 + shift), energy_j});
  return out;
}

double total(const std::vector<pp::CurvePoint>& c) {
  double s = 0.0;
  for (const auto& p : c) s += p.energy_j;
  return s;
}

}  // namespace

// Peers that started from scratch; the run starts 3 epochs further along the
// same curve, at 6 J per epoch like the peers of its batch size (those of
// batch size 512 cost 20 J). Aligned by level, each peer continues the run from
// the epoch where the peer was as good as the run is now: the stop and the
// energy are exact after 1 or 2 epochs. Aligned by epoch, the peers' early, large
// gains continue the run and it is predicted to go on longer; the linear rule
// (to max_epochs) is further off still.
TEST(StudyPrior, ByLevelARunFollowsItsPeersFromWhereTheyWereAsGoodAsItIs) {
  const auto r = rule(20, 2, 0.01);
  std::vector<pp::PeerRun> peers;
  for (int i = 0; i < 3; ++i) peers.push_back({until_stop(shrinking(20, 0, 6.0), r), {64, "/"}, true});
  for (int i = 0; i < 3; ++i) peers.push_back({until_stop(shrinking(20, 0, 20.0), r), {512, "/"}, true});
  const auto truth = until_stop(shrinking(20, 3, 6.0), r);
  const int stop = static_cast<int>(truth.size());
  ASSERT_LT(stop, static_cast<int>(peers[0].epochs.size()));  // it stops earlier than its peers
  for (int k : {1, 2}) {
    const auto level = pp::predict_prior(first(truth, k), r, {64, "/"}, peers, pp::Alignment::level);
    ASSERT_TRUE(level);
    EXPECT_EQ(level->method, "study prior by level");
    EXPECT_DOUBLE_EQ(level->stop_epoch.mid, stop) << "after " << k << " epochs";
    EXPECT_NEAR(level->energy_to_stop_j.mid, total(truth), 1e-9) << "after " << k << " epochs";
  }
  const auto seen = first(truth, 2);

  const auto by_epoch = pp::predict_prior(seen, r, {64, "/"}, peers);
  ASSERT_TRUE(by_epoch);
  EXPECT_GT(by_epoch->stop_epoch.mid, stop + 1.0);
  const auto linear = pp::predict_linear(seen, r);
  EXPECT_GT(linear.energy_to_stop_j.mid, 1.5 * total(truth));
  // predict_with and the method's name agree.
  EXPECT_EQ(pp::predict_with(pp::Method::level, seen, r, {64, "/"}, peers).method, "study prior by level");
  EXPECT_EQ(pp::to_string(pp::Method::level), "study prior by level");
}

// A peer whose curve never got as high as the run's stays at its end: no gain
// to come, the run stops when its patience runs out.
TEST(StudyPrior, ByLevelAPeerBelowTheRunGivesNoGain) {
  const auto r = rule(20, 2, 0.01);
  const std::vector<pp::PeerRun> peers{{until_stop(run(20, 0.2, 0.05, 4, 5.0), r), {64, "/"}, true}};
  const auto p = pp::predict_prior(first(run(20, 0.8, 0.1, 3, 5.0), 3), r, {64, "/"}, peers, pp::Alignment::level);
  ASSERT_TRUE(p);
  EXPECT_DOUBLE_EQ(p->stop_epoch.mid, 5.0);
}

// The earliest stop the rule allows: after an epoch without gain (patience 2)
// the next; after a gain, two more; without early stopping, max_epochs. The
// energy to come is the run's own level.
TEST(StudyEarliest, StopsWhenThePatienceRunsOut) {
  const auto r = rule(10, 2, 0.01);
  const std::vector<pp::CurvePoint> flat_last{{1, 0.5, 4.0}, {2, 0.6, 5.0}, {3, 0.65, 5.0}, {4, 0.655, 5.0}};
  auto p = pp::predict_earliest(flat_last, r, {64, "/"}, {});
  EXPECT_EQ(p.method, "earliest stop");
  EXPECT_DOUBLE_EQ(p.stop_epoch.mid, 5.0);
  EXPECT_NEAR(p.energy_to_stop_j.mid, 19.0 + 5.0, 1e-9);
  EXPECT_DOUBLE_EQ(p.energy_to_stop_j.low, p.energy_to_stop_j.high);

  const std::vector<pp::CurvePoint> gained(flat_last.begin(), flat_last.begin() + 3);
  p = pp::predict_earliest(gained, r, {64, "/"}, {});
  EXPECT_DOUBLE_EQ(p.stop_epoch.mid, 5.0);
  EXPECT_NEAR(p.energy_to_stop_j.mid, 14.0 + 2 * 5.0, 1e-9);

  p = pp::predict_earliest(gained, rule(10, 0, 0.01), {64, "/"}, {});
  EXPECT_DOUBLE_EQ(p.stop_epoch.mid, 10.0);

  // Stopped already (epoch 4 was the second without gain... with patience 1, the first).
  p = pp::predict_earliest(flat_last, rule(10, 1, 0.01), {64, "/"}, {});
  EXPECT_EQ(p.method, "stopped");
  EXPECT_DOUBLE_EQ(p.stop_epoch.mid, 4.0);
}

// The backtest compares all five methods and takes the lowest median error
// (the linear rule on a tie); its note names them all.
TEST(StudyBacktest, ChoosesTheLowestMedianErrorOfAllMethods) {
  for (std::uint64_t seed : {1u, 5u, 9u}) {
    const auto bt = pp::backtest(early_stopping_study(10, seed, 0.05));
    ASSERT_TRUE(bt.calibrated);
    for (pp::Method m : pp::kMethods) {
      EXPECT_LE(bt.ape(bt.chosen), bt.ape(m)) << pp::to_string(m);
      EXPECT_FALSE(std::isnan(bt.ape(m))) << pp::to_string(m);
    }
    if (bt.chosen != pp::Method::linear) {
      EXPECT_LT(bt.ape(bt.chosen), bt.ape(pp::Method::linear));
    }
    const auto words = pp::describe_errors(bt);
    for (const char* name : {"curve ", "study prior ", "study prior by level ", "earliest stop ", "linear rule "})
      EXPECT_NE(words.find(name), std::string::npos) << words;
  }
}

// Where the chosen method gives the stop as a point (the earliest stop), the
// study's forecast widens it with the calibrated energy interval: a run that
// may gain again may stop later.
TEST(StudyCalibration, APointStopGetsTheIntervalOfTheCalibratedEnergy) {
  const auto r = rule(20, 2, 0.01);
  pp::Backtest bt;
  bt.calibrated = true;
  bt.runs = 5;
  bt.chosen = pp::Method::earliest;
  bt.residual_low = -0.5;
  bt.residual_high = 2.0;
  // Gained in epoch 3: the earliest stop is epoch 5, 2 epochs of 5 J to come.
  const std::vector<pp::CurvePoint> seen{{1, 0.5, 5.0}, {2, 0.6, 5.0}, {3, 0.7, 5.0}};
  const auto p = pp::predict_in_study(seen, r, {64, "/"}, {}, bt);
  EXPECT_EQ(p.method, "earliest stop, by backtest of 5 runs");
  EXPECT_NEAR(p.energy_to_stop_j.mid, 25.0, 1e-9);
  EXPECT_NEAR(p.energy_to_stop_j.low, 20.0, 1e-9);   // 25 - 0.5 x 10
  EXPECT_NEAR(p.energy_to_stop_j.high, 45.0, 1e-9);  // 25 + 2 x 10
  EXPECT_DOUBLE_EQ(p.stop_epoch.mid, 5.0);
  EXPECT_DOUBLE_EQ(p.stop_epoch.low, 4.0);   // 3 + 5 J / 5 J
  EXPECT_DOUBLE_EQ(p.stop_epoch.high, 9.0);  // 3 + 30 J / 5 J
}
