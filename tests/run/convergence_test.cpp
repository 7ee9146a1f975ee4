#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "powertrain/error.h"
#include "powertrain/run/convergence.h"

namespace prun = powertrain::run;

namespace {

prun::RunConfig rule_config(int max_epochs, int patience, double min_delta) {
  prun::RunConfig c;
  c.max_epochs = max_epochs;
  c.patience = patience;
  c.min_delta = min_delta;
  return c;
}

}  // namespace

TEST(ConvergenceRule, RejectsInvalidSettings) {
  EXPECT_THROW(prun::ConvergenceRule(rule_config(0, 1, 0.0)), powertrain::ConfigError);
  EXPECT_THROW(prun::ConvergenceRule(rule_config(3, -1, 0.0)), powertrain::ConfigError);
  EXPECT_THROW(prun::ConvergenceRule(rule_config(3, 1, -0.1)), powertrain::ConfigError);
  EXPECT_THROW(prun::ConvergenceRule(rule_config(3, 1, std::nan(""))), powertrain::ConfigError);
}

TEST(ConvergenceRule, StopsAfterPatienceEpochsWithoutAGainAboveMinDelta) {
  prun::ConvergenceRule rule(rule_config(20, 2, 0.01));
  EXPECT_FALSE(rule.observe(1, 0.50, 1.0).stop);
  EXPECT_FALSE(rule.observe(2, 0.60, 0.9).stop);
  auto v = rule.observe(3, 0.605, 0.9);  // a gain, but not above min_delta
  EXPECT_FALSE(v.stop);
  EXPECT_TRUE(v.best);                    // still the best model so far
  v = rule.observe(4, 0.58, 0.9);
  EXPECT_TRUE(v.stop);
  EXPECT_EQ(v.status, prun::RunStatus::converged);
  EXPECT_NE(v.reason.find("2 epochs"), std::string::npos) << v.reason;
  EXPECT_EQ(rule.best_epoch(), 3);
  EXPECT_DOUBLE_EQ(rule.best_metric(), 0.605);
}

TEST(ConvergenceRule, PatienceZeroRunsToTheEpochLimit) {
  prun::ConvergenceRule rule(rule_config(3, 0, 0.0));
  EXPECT_FALSE(rule.observe(1, 0.5, 1.0).stop);
  EXPECT_FALSE(rule.observe(2, 0.4, 1.0).stop);
  const auto v = rule.observe(3, 0.3, 1.0);
  EXPECT_TRUE(v.stop);
  EXPECT_EQ(v.status, prun::RunStatus::max_epochs);
}

TEST(ConvergenceRule, ConvergenceOnTheLastEpochWinsOverTheLimit) {
  prun::ConvergenceRule rule(rule_config(2, 1, 0.0));
  (void)rule.observe(1, 0.5, 1.0);
  EXPECT_EQ(rule.observe(2, 0.5, 1.0).status, prun::RunStatus::converged);
}

TEST(ConvergenceRule, BestIsStrictlyHigher) {
  prun::ConvergenceRule rule(rule_config(10, 0, 0.0));
  EXPECT_TRUE(rule.observe(1, 0.5, 1.0).best);
  EXPECT_FALSE(rule.observe(2, 0.5, 1.0).best);
  EXPECT_TRUE(rule.observe(3, 0.51, 1.0).best);
}

TEST(ConvergenceRule, NonFiniteValidationLossOrMetricDiverges) {
  prun::ConvergenceRule a(rule_config(10, 3, 0.0));
  auto v = a.observe(1, 0.2, std::numeric_limits<double>::infinity());
  EXPECT_TRUE(v.stop);
  EXPECT_EQ(v.status, prun::RunStatus::diverged);
  prun::ConvergenceRule b(rule_config(10, 3, 0.0));
  EXPECT_EQ(b.observe(1, std::nan(""), 1.0).status, prun::RunStatus::diverged);
  // A loss that is not reported (NaN) is not a divergence.
  prun::ConvergenceRule c(rule_config(10, 3, 0.0));
  EXPECT_FALSE(c.observe(1, 0.3, std::nan("")).stop);
}

TEST(ConvergenceRule, TargetIsReachedOnce) {
  auto cfg = rule_config(10, 0, 0.0);
  cfg.target_metric = 0.8;
  prun::ConvergenceRule rule(cfg);
  EXPECT_FALSE(rule.observe(1, 0.7, 1.0).reached_target);
  EXPECT_TRUE(rule.observe(2, 0.8, 1.0).reached_target);
  EXPECT_FALSE(rule.observe(3, 0.9, 1.0).reached_target);
}

TEST(ConvergenceRule, TrainingLossLimits) {
  prun::ConvergenceRule rule(rule_config(10, 0, 0.0), prun::LossLimits{100.0, 10.0});
  EXPECT_FALSE(rule.check_loss(2.0));  // the first reading is the reference
  EXPECT_FALSE(rule.check_loss(19.0));
  EXPECT_TRUE(rule.check_loss(21.0));  // more than 10 x 2.0
  EXPECT_TRUE(rule.check_loss(std::nan("")));
  prun::ConvergenceRule abs(rule_config(10, 0, 0.0), prun::LossLimits{100.0, 1e9});
  EXPECT_TRUE(abs.check_loss(101.0));
}

namespace powertrain::run {
namespace {

TEST(ConvergenceRule, StopAtTargetEndsTheRunAtTheFirstEpochThatReachesIt) {
  RunConfig c;
  c.max_epochs = 10;
  c.patience = 5;
  c.target_metric = 0.8;
  c.stop_at_target = true;
  ConvergenceRule rule(c);
  EXPECT_FALSE(rule.observe(1, 0.5, 1.0).stop);
  const auto v = rule.observe(2, 0.85, 0.5);
  EXPECT_TRUE(v.stop);
  EXPECT_TRUE(v.reached_target);
  EXPECT_TRUE(v.best);
  EXPECT_EQ(v.status, RunStatus::converged);
  EXPECT_NE(v.reason.find("reached the target"), std::string::npos);
  // Without it the run goes on past the target.
  c.stop_at_target = false;
  ConvergenceRule on(c);
  (void)on.observe(1, 0.5, 1.0);
  EXPECT_FALSE(on.observe(2, 0.85, 0.5).stop);
}

}  // namespace
}  // namespace powertrain::run
