// The accuracy of the predicted energy to stop on synthetic runs with a known
// truth (synthetic.h): after half of each run's epochs, predict_curve's median
// absolute percentage error, the coverage of its 80% intervals, and the
// comparison with CarbonTracker's linear rule. Also evaluate() itself.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "powertrain/predict/predict.h"
#include "synthetic.h"

namespace powertrain::predict {
namespace {

// 40 runs of each shape: four of the fitted families and a two-phase curve
// none of them has. (Fewer make the measured coverage of an 80% interval too
// noisy to hold against 75%: its standard error is 0.03 for 200 runs.)
std::vector<RecordedRun> synthetic_runs() {
  std::vector<RecordedRun> runs;
  for (int shape = 0; shape < 5; ++shape)
    for (int i = 0; i < 40; ++i)
      runs.push_back(testing::synthetic_run(static_cast<testing::Shape>(shape), 1000 * shape + i).run);
  return runs;
}

TEST(Accuracy, CurveEnsemblePredictsTheEnergyToStopOfSyntheticRuns) {
  const Evaluation e = evaluate(synthetic_runs(), 1);
  RecordProperty("curve_median_ape_25", std::to_string(e.curve.median_ape_25));
  RecordProperty("curve_median_ape_50", std::to_string(e.curve.median_ape_50));
  RecordProperty("curve_coverage_25", std::to_string(e.curve.coverage_25));
  RecordProperty("curve_coverage_50", std::to_string(e.curve.coverage_50));
  RecordProperty("linear_median_ape_50", std::to_string(e.linear.median_ape_50));
  std::printf("curve:  MdAPE %.3f (25%%) %.3f (50%%), 80%% interval coverage %.2f (25%%) %.2f (50%%)\n",
              e.curve.median_ape_25, e.curve.median_ape_50, e.curve.coverage_25, e.curve.coverage_50);
  std::printf("linear: MdAPE %.3f (25%%) %.3f (50%%), coverage %.2f (25%%) %.2f (50%%)\n", e.linear.median_ape_25,
              e.linear.median_ape_50, e.linear.coverage_25, e.linear.coverage_50);
  EXPECT_EQ(e.curve.runs, 200);
  EXPECT_EQ(e.linear.runs, 200);
  // After half of the epochs.
  EXPECT_LE(e.curve.median_ape_50, 0.15);
  EXPECT_GE(e.curve.coverage_50, 0.75);
  EXPECT_LT(e.curve.median_ape_50, 0.5 * e.linear.median_ape_50);
  // After a quarter: rougher, still far ahead of the linear rule.
  EXPECT_LE(e.curve.median_ape_25, 0.25);
  EXPECT_GE(e.curve.coverage_25, 0.7);
  EXPECT_LT(e.curve.median_ape_25, 0.5 * e.linear.median_ape_25);
}

TEST(Accuracy, CurveEnsembleBeatsTheLinearRuleOnEveryShape) {
  for (int shape = 0; shape < 5; ++shape) {
    std::vector<RecordedRun> runs;
    for (int i = 0; i < 8; ++i)
      runs.push_back(testing::synthetic_run(static_cast<testing::Shape>(shape), 7000 + 100 * shape + i).run);
    const Evaluation e = evaluate(runs, 2);
    EXPECT_LT(e.curve.median_ape_50, e.linear.median_ape_50) << "shape " << shape;
    EXPECT_LE(e.curve.median_ape_50, 0.25) << "shape " << shape;
  }
}

TEST(Evaluate, ScoresKnownPredictions) {
  // Runs at a constant 100 J per epoch that stop at max_epochs: the linear
  // rule is exact, and so is the curve ensemble without early stopping.
  std::vector<RecordedRun> runs;
  for (int r = 0; r < 3; ++r) {
    RecordedRun run;
    run.rule = {40, 0, 1e-3, {}};
    for (int e = 1; e <= 40; ++e) run.epochs.push_back({e, 0.9 - 0.5 * std::exp(-e / (5.0 + r)), 100.0});
    run.stop_epoch = 40;
    run.energy_j = 4000.0;
    runs.push_back(run);
  }
  RecordedRun tiny;  // too short to evaluate
  tiny.rule = {1, 0, 1e-3, {}};
  tiny.epochs = {{1, 0.5, 100.0}};
  tiny.stop_epoch = 1;
  tiny.energy_j = 100.0;
  runs.push_back(tiny);
  const Evaluation e = evaluate(runs);
  EXPECT_EQ(e.curve.runs, 3);
  EXPECT_NEAR(e.linear.median_ape_25, 0.0, 1e-12);
  EXPECT_NEAR(e.linear.median_ape_50, 0.0, 1e-12);
  EXPECT_EQ(e.linear.coverage_50, 1.0);
  EXPECT_NEAR(e.curve.median_ape_50, 0.0, 1e-9);
  EXPECT_EQ(e.curve.coverage_50, 1.0);
}

TEST(Evaluate, NoRunsGiveNaN) {
  const Evaluation e = evaluate({});
  EXPECT_EQ(e.curve.runs, 0);
  EXPECT_TRUE(std::isnan(e.curve.median_ape_50));
  EXPECT_TRUE(std::isnan(e.curve.coverage_50));
}

}  // namespace
}  // namespace powertrain::predict
