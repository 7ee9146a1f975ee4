// predict::predict_curve and predict_linear: the rule they simulate (checked
// against run::ConvergenceRule itself), interval sanity, determinism, the
// fallbacks and the energy model.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <vector>

#include "powertrain/error.h"
#include "powertrain/predict/predict.h"
#include "powertrain/run/convergence.h"
#include "synthetic.h"

namespace powertrain::predict {
namespace {

std::vector<CurvePoint> curve(int n, const std::function<double(int)>& metric, double energy_j = 100.0) {
  std::vector<CurvePoint> points;
  for (int e = 1; e <= n; ++e) points.push_back({e, metric(e), energy_j});
  return points;
}

// The oracle: the run's own rule over a whole sequence.
int oracle_stop(const std::vector<double>& metrics, const RuleSettings& s, int* target = nullptr) {
  run::RunConfig c;
  c.max_epochs = s.max_epochs;
  c.patience = s.patience;
  c.min_delta = s.min_delta;
  c.target_metric = s.target_metric;
  run::ConvergenceRule rule(c);
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    const auto v = rule.observe(static_cast<int>(i) + 1, metrics[i], std::nan(""));
    if (target && v.reached_target) *target = static_cast<int>(i) + 1;
    if (v.stop) return static_cast<int>(i) + 1;
  }
  return 0;
}

void expect_ordered(const Interval& i, const char* what) {
  EXPECT_LE(i.low, i.mid) << what;
  EXPECT_LE(i.mid, i.high) << what;
}

TEST(ReplayRule, MatchesTheConvergenceRuleOnRandomSequences) {
  testing::Draw d(42);
  for (int trial = 0; trial < 300; ++trial) {
    const RuleSettings s{1 + d.pick(60), d.pick(8), d.pick(3) * 0.005,
                         d.pick(2) ? std::optional<double>(d.uniform(0.5, 0.9)) : std::nullopt};
    std::vector<double> metrics;
    double level = d.uniform(0.1, 0.5);
    for (int e = 0; e < 80; ++e) {
      level += d.uniform(-0.01, 0.03);
      metrics.push_back(d.pick(200) == 0 ? std::nan("") : level + 0.01 * d.normal());
    }
    int oracle_target = 0;
    const int oracle = oracle_stop(metrics, s, &oracle_target);
    const RuleOutcome out = replay_rule(metrics, s);
    ASSERT_EQ(out.stop_epoch, oracle) << "trial " << trial;
    ASSERT_EQ(out.target_epoch, oracle_target) << "trial " << trial;
  }
}

TEST(PredictCurve, ContinuesTheRuleFromItsStateAfterTheEpochsSeen) {
  // An exactly flat curve: the rule's best is epoch 1, and every later epoch
  // counts towards the patience, those seen included.
  const RuleSettings s{60, 20, 1e-3, {}};
  const Prediction p = predict_curve(curve(12, [](int) { return 0.5; }), s);
  EXPECT_EQ(p.method, "curve-ensemble");
  std::vector<double> whole(60, 0.5);
  const double oracle = oracle_stop(whole, s);
  ASSERT_EQ(oracle, 21);
  EXPECT_EQ(p.stop_epoch.low, oracle);
  EXPECT_EQ(p.stop_epoch.high, oracle);
  EXPECT_NEAR(p.energy_to_stop_j.mid, 21 * 100.0, 1e-9);
}

TEST(PredictCurve, ANoiseFreeCurveStopsWhereTheRuleStopsIt) {
  // Noise-free exponential saturation: one family fits exactly and takes the
  // ensemble; the predicted stop is the rule's stop on the true curve.
  const auto truth = [](int e) { return 0.92 - 0.5 * std::exp(-e / 7.0); };
  for (int patience : {2, 5}) {
    const RuleSettings s{80, patience, 2e-3, 0.85};
    std::vector<double> whole;
    for (int e = 1; e <= 80; ++e) whole.push_back(truth(e));
    int oracle_target = 0;
    const int oracle = oracle_stop(whole, s, &oracle_target);
    ASSERT_GT(oracle, 15);
    const Prediction p = predict_curve(curve(12, truth), s);
    EXPECT_NEAR(p.stop_epoch.mid, oracle, 1.0) << "patience " << patience;
    EXPECT_NEAR(p.stop_epoch.low, oracle, 1.0);
    EXPECT_NEAR(p.stop_epoch.high, oracle, 1.0);
    ASSERT_TRUE(p.target_epoch.has_value());
    EXPECT_NEAR(p.target_epoch->mid, oracle_target, 1.0);
    EXPECT_DOUBLE_EQ(p.p_reach_target, 1.0);
  }
}

TEST(PredictCurve, IntervalsAreOrderedAndWithinTheRun) {
  for (int shape = 0; shape < 5; ++shape) {
    for (int seed = 0; seed < 6; ++seed) {
      RuleSettings rule{100, 5, 1e-3, 0.85};
      const auto run = testing::synthetic_run(static_cast<testing::Shape>(shape), 500 + seed, rule);
      const int n = std::max(kMinCurveEpochs, run.run.stop_epoch / 3);
      if (n >= run.run.stop_epoch) continue;
      const std::vector<CurvePoint> seen(run.run.epochs.begin(), run.run.epochs.begin() + n);
      const Prediction p = predict_curve(seen, rule, 3);
      ASSERT_EQ(p.method, "curve-ensemble");
      EXPECT_EQ(p.epochs_seen, n);
      EXPECT_GT(p.draws, 0);
      expect_ordered(p.stop_epoch, "stop");
      expect_ordered(p.energy_to_stop_j, "energy");
      EXPECT_GT(p.stop_epoch.low, n);
      EXPECT_LE(p.stop_epoch.high, rule.max_epochs);
      double seen_j = 0.0;
      for (const auto& c : seen) seen_j += c.energy_j;
      EXPECT_GT(p.energy_to_stop_j.low, seen_j);
      EXPECT_GE(p.p_reach_target, 0.0);
      EXPECT_LE(p.p_reach_target, 1.0);
      if (p.target_epoch) {
        expect_ordered(*p.target_epoch, "target");
        expect_ordered(*p.energy_to_target_j, "target energy");
        EXPECT_GT(p.target_epoch->low, n);
        EXPECT_LE(p.target_epoch->high, rule.max_epochs);
        EXPECT_GT(p.energy_to_target_j->low, seen_j);
        EXPECT_GT(p.p_reach_target, 0.0);
      } else {
        EXPECT_EQ(p.p_reach_target, 0.0);
      }
    }
  }
}

TEST(PredictCurve, IsDeterministicForASeed) {
  const auto run = testing::synthetic_run(testing::Shape::mmf, 77);
  const std::vector<CurvePoint> seen(run.run.epochs.begin(), run.run.epochs.begin() + 15);
  const Prediction a = predict_curve(seen, run.run.rule, 5);
  const Prediction b = predict_curve(seen, run.run.rule, 5);
  EXPECT_EQ(a.stop_epoch.low, b.stop_epoch.low);
  EXPECT_EQ(a.stop_epoch.mid, b.stop_epoch.mid);
  EXPECT_EQ(a.stop_epoch.high, b.stop_epoch.high);
  EXPECT_EQ(a.energy_to_stop_j.mid, b.energy_to_stop_j.mid);
  EXPECT_EQ(a.energy_to_stop_j.high, b.energy_to_stop_j.high);
  // Another seed: other draws, about the same answer.
  const Prediction c = predict_curve(seen, run.run.rule, 6);
  EXPECT_NE(a.energy_to_stop_j.mid, c.energy_to_stop_j.mid);
  EXPECT_NEAR(a.energy_to_stop_j.mid, c.energy_to_stop_j.mid, 0.15 * a.energy_to_stop_j.mid);
}

TEST(PredictCurve, TooFewEpochsIsALabelledBound) {
  const RuleSettings s{50, 4, 1e-3, 0.9};
  for (int n = 0; n < kMinCurveEpochs; ++n) {
    const Prediction p = predict_curve(curve(n, [](int e) { return 0.3 + 0.1 * e; }), s);
    EXPECT_EQ(p.method, "too few epochs") << n;
    EXPECT_EQ(p.epochs_seen, n);
    EXPECT_EQ(p.draws, 0);
    EXPECT_EQ(p.stop_epoch.low, n + 4 + (n == 0 ? 1 : 0));  // no further gain: patience epochs on
    EXPECT_EQ(p.stop_epoch.high, 50);
    expect_ordered(p.stop_epoch, "stop");
    if (n > 0) {
      EXPECT_NEAR(p.energy_to_stop_j.high, 50 * 100.0, 1e-9);
      expect_ordered(p.energy_to_stop_j, "energy");
    } else {
      EXPECT_TRUE(std::isnan(p.energy_to_stop_j.mid));  // nothing measured yet
    }
    EXPECT_TRUE(std::isnan(p.p_reach_target));
    EXPECT_FALSE(p.target_epoch.has_value());
  }
}

// Where the rule leaves one possible stop, the bound still has the width of
// the epoch energies' noise: the energy of the epochs to come is not known.
TEST(PredictCurve, ABoundWithOneStopStillCarriesTheEnergyNoise) {
  const RuleSettings s{4, 2, 1e-3, std::nullopt};
  auto seen = curve(2, [](int e) { return 0.5 + 0.1 * e; });
  seen[0].energy_j = 90.0;
  seen[1].energy_j = 110.0;
  const Prediction p = predict_curve(seen, s);
  EXPECT_EQ(p.method, "too few epochs");
  EXPECT_EQ(p.stop_epoch.low, 4);
  EXPECT_EQ(p.stop_epoch.high, 4);
  EXPECT_NEAR(p.energy_to_stop_j.mid, 200.0 + 2 * 100.0, 1e-9);
  EXPECT_LT(p.energy_to_stop_j.low, p.energy_to_stop_j.mid - 1.0);
  EXPECT_GT(p.energy_to_stop_j.high, p.energy_to_stop_j.mid + 1.0);
}

TEST(PredictCurve, ARunTheRuleStoppedIsExact) {
  const RuleSettings s{50, 3, 1e-3, 0.6};
  std::vector<CurvePoint> seen = curve(12, [](int e) { return e < 4 ? 0.4 + 0.1 * e : 0.7; });
  seen[0].energy_j = 250.0;
  const Prediction p = predict_curve(seen, s);
  EXPECT_EQ(p.method, "stopped");
  EXPECT_EQ(p.stop_epoch.mid, 6);  // best at 3, three epochs without a gain
  EXPECT_EQ(p.stop_epoch.low, 6);
  EXPECT_NEAR(p.energy_to_stop_j.mid, 250.0 + 5 * 100.0, 1e-9);
  ASSERT_TRUE(p.target_epoch.has_value());
  EXPECT_EQ(p.target_epoch->mid, 2);
  EXPECT_NEAR(p.energy_to_target_j->mid, 350.0, 1e-9);
  EXPECT_EQ(p.p_reach_target, 1.0);
  // predict_linear says the same of a stopped run.
  const Prediction l = predict_linear(seen, s);
  EXPECT_EQ(l.method, "stopped");
  EXPECT_EQ(l.stop_epoch.mid, 6);
}

TEST(PredictCurve, ANonFiniteMetricStoppedTheRun) {
  const RuleSettings s{50, 5, 1e-3, {}};
  auto seen = curve(9, [](int e) { return 0.3 + 0.05 * e; });
  seen[6].val_metric = std::nan("");
  const Prediction p = predict_curve(seen, s);
  EXPECT_EQ(p.method, "stopped");
  EXPECT_EQ(p.stop_epoch.mid, 7);  // diverged there
  EXPECT_NEAR(p.energy_to_stop_j.mid, 700.0, 1e-9);
  EXPECT_FALSE(p.target_epoch.has_value());
  EXPECT_EQ(p.p_reach_target, 0.0);
}

TEST(PredictCurve, ATargetAlreadyReachedIsExact) {
  const RuleSettings s{80, 5, 1e-3, 0.7};
  testing::Draw d(9);
  const auto metric = [&](int e) { return 0.9 - 0.5 * std::exp(-e / 6.0) + 0.003 * d.normal(); };
  const Prediction p = predict_curve(curve(15, metric), s);
  ASSERT_EQ(p.method, "curve-ensemble");
  ASSERT_TRUE(p.target_epoch.has_value());
  EXPECT_EQ(p.target_epoch->low, p.target_epoch->high);
  EXPECT_LE(p.target_epoch->mid, 15);
  EXPECT_EQ(p.p_reach_target, 1.0);
}

TEST(PredictCurve, AnUnreachableTargetHasNoEpoch) {
  const RuleSettings s{80, 5, 1e-3, 0.99};
  testing::Draw d(4);
  const auto metric = [&](int e) { return 0.7 - 0.4 * std::exp(-e / 5.0) + 0.003 * d.normal(); };
  const Prediction p = predict_curve(curve(20, metric), s);
  EXPECT_LT(p.p_reach_target, 0.05);
}

TEST(PredictCurve, FlatNoisyAndFallingCurvesStopSoon) {
  testing::Draw d(5);
  const RuleSettings s{100, 10, 1e-3, {}};
  const Prediction flat = predict_curve(curve(8, [&](int) { return 0.6 + 0.005 * d.normal(); }), s);
  EXPECT_LE(flat.stop_epoch.high, 40);
  const Prediction falling = predict_curve(curve(8, [](int e) { return 0.9 - 0.02 * e; }), s);
  EXPECT_EQ(falling.stop_epoch.mid, 11);  // best at epoch 1, then 10 epochs of patience
  EXPECT_EQ(falling.stop_epoch.high, 11);
}

TEST(PredictCurve, AnyHigherIsBetterScaleWorks) {
  // The negated loss rises towards -0.3: same shape as an accuracy, other units.
  testing::Draw d(6);
  const auto neg_loss = [&](int e) { return -0.3 - 2.0 * std::exp(-e / 6.0) + 0.01 * d.normal(); };
  const RuleSettings s{100, 5, 1e-3, {}};
  const Prediction p = predict_curve(curve(14, neg_loss), s);
  EXPECT_EQ(p.method, "curve-ensemble");
  EXPECT_GT(p.stop_epoch.mid, 14);
  EXPECT_LT(p.stop_epoch.mid, 100);
}

TEST(PredictCurve, WithoutEarlyStoppingTheRunGoesToMaxEpochs) {
  const RuleSettings s{1000, 0, 1e-3, {}};
  std::vector<CurvePoint> seen = curve(10, [](int e) { return 0.9 - 0.5 * std::exp(-e / 5.0); });
  seen[0].energy_j = 400.0;  // warm-up
  seen[5].energy_j = std::nan("");  // not measured
  const Prediction p = predict_curve(seen, s);
  EXPECT_EQ(p.stop_epoch.low, 1000);
  EXPECT_EQ(p.stop_epoch.high, 1000);
  // The level of future epochs leaves the warm-up out; the gap is filled with it.
  EXPECT_NEAR(p.energy_to_stop_j.mid, 400.0 + 999 * 100.0, 1e-6);
}

TEST(PredictCurve, EnergyIntervalsFollowTheSpreadOfEpochEnergies) {
  testing::Draw d(8);
  const auto truth = [](int e) { return 0.92 - 0.5 * std::exp(-e / 7.0); };
  std::vector<CurvePoint> seen = curve(12, truth);
  for (auto& p : seen) p.energy_j = 100.0 * (1.0 + 0.1 * d.normal());
  const RuleSettings s{200, 0, 1e-3, {}};
  const Prediction p = predict_curve(seen, s);
  EXPECT_LT(p.energy_to_stop_j.low, p.energy_to_stop_j.mid);
  EXPECT_GT(p.energy_to_stop_j.high, p.energy_to_stop_j.mid);
  EXPECT_NEAR(p.energy_to_stop_j.mid, 200 * 100.0, 0.1 * 200 * 100.0);
}

TEST(PredictCurve, RefusesEpochsOutOfOrderAndInvalidSettings) {
  auto seen = curve(8, [](int e) { return 0.1 * e; });
  std::swap(seen[2], seen[3]);
  EXPECT_THROW(predict_curve(seen, {20, 3, 1e-3, {}}), ConfigError);
  EXPECT_THROW(predict_linear(seen, {20, 3, 1e-3, {}}), ConfigError);
  const auto ok = curve(8, [](int e) { return 0.1 * e; });
  EXPECT_THROW(predict_curve(ok, {0, 3, 1e-3, {}}), ConfigError);
  EXPECT_THROW(predict_curve(ok, {20, -1, 1e-3, {}}), ConfigError);
  EXPECT_THROW(predict_curve(ok, {20, 3, -1.0, {}}), ConfigError);
  EXPECT_THROW(predict_curve(ok, {20, 3, 1e-3, std::nan("")}), ConfigError);
}

TEST(PredictCurve, RuleSettingsComeFromARunConfig) {
  run::RunConfig c;
  c.max_epochs = 33;
  c.patience = 4;
  c.min_delta = 0.01;
  c.target_metric = 0.8;
  const RuleSettings s = rule_settings(c);
  EXPECT_EQ(s.max_epochs, 33);
  EXPECT_EQ(s.patience, 4);
  EXPECT_EQ(s.min_delta, 0.01);
  EXPECT_EQ(s.target_metric, 0.8);
}

TEST(PredictLinear, IsCarbonTrackersRule) {
  std::vector<CurvePoint> seen = curve(4, [](int e) { return 0.2 * e; });
  seen[0].energy_j = 200.0;
  seen[2].energy_j = std::nan("");
  const Prediction p = predict_linear(seen, {30, 3, 1e-3, 0.95});
  EXPECT_EQ(p.method, "linear");
  EXPECT_EQ(p.stop_epoch.low, 30);
  EXPECT_EQ(p.stop_epoch.high, 30);
  const double mean = (200.0 + 100.0 + 100.0) / 3;
  EXPECT_NEAR(p.energy_to_stop_j.low, mean * 30, 1e-9);
  EXPECT_NEAR(p.energy_to_stop_j.high, mean * 30, 1e-9);
  EXPECT_FALSE(p.target_epoch.has_value());
  EXPECT_TRUE(std::isnan(p.p_reach_target));
}

}  // namespace
}  // namespace powertrain::predict
