// predict::fit_curve and the learning-curve families: analytic gradients,
// recovery of known parameters, bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "powertrain/predict/curves.h"
#include "synthetic.h"

namespace powertrain::predict {
namespace {

struct Points {
  std::vector<double> x, y;
};

Points sample(Family f, const std::vector<double>& p, int n, double noise = 0.0, std::uint64_t seed = 1) {
  testing::Draw d(seed);
  Points pts;
  for (int e = 1; e <= n; ++e) {
    pts.x.push_back(e);
    pts.y.push_back(curve_value(f, p, e) + noise * d.normal());
  }
  return pts;
}

TEST(Curves, ParameterCountsAndNames) {
  EXPECT_EQ(parameter_count(Family::flat), 1);
  EXPECT_EQ(parameter_count(Family::ilog2), 2);
  EXPECT_EQ(parameter_count(Family::exp3), 3);
  EXPECT_EQ(parameter_count(Family::pow3), 3);
  EXPECT_EQ(parameter_count(Family::pow4), 4);
  EXPECT_EQ(parameter_count(Family::mmf), 4);
  EXPECT_EQ(parameter_count(Family::janoschek), 4);
  EXPECT_EQ(to_string(Family::janoschek), "janoschek");
  for (Family f : kFamilies) EXPECT_LE(parameter_count(f), kMaxCurveParams);
}

TEST(Curves, GradientsMatchFiniteDifferences) {
  const std::vector<std::vector<double>> params = {
      {0.9},                      // flat
      {0.95, 0.4},                // ilog2
      {0.9, 0.6, 0.15},           // exp3
      {0.92, 0.5, 0.7},           // pow3
      {0.92, 0.5, 0.8, 2.5},      // pow4
      {0.9, 0.1, 0.2, 1.4},       // mmf
      {0.88, 0.15, 0.12, 0.9},    // janoschek
  };
  for (std::size_t fi = 0; fi < kFamilies.size(); ++fi) {
    const Family f = kFamilies[fi];
    const int k = parameter_count(f);
    ASSERT_EQ(static_cast<int>(params[fi].size()), k);
    for (double x : {1.0, 2.5, 7.0, 40.0}) {
      std::vector<double> grad(k);
      const double value = curve_gradient(f, params[fi], x, grad);
      EXPECT_NEAR(value, curve_value(f, params[fi], x), 1e-14) << to_string(f);
      for (int j = 0; j < k; ++j) {
        const double h = 1e-6 * std::max(1.0, std::abs(params[fi][j]));
        auto up = params[fi], down = params[fi];
        up[j] += h;
        down[j] -= h;
        const double numeric = (curve_value(f, up, x) - curve_value(f, down, x)) / (2 * h);
        EXPECT_NEAR(grad[j], numeric, 1e-6 * std::max(1.0, std::abs(numeric)))
            << to_string(f) << " parameter " << j << " at x=" << x;
      }
    }
  }
}

TEST(Curves, GradientsStayFiniteFarOut) {
  // (kappa x)^delta overflows: the derivatives must not become inf * 0.
  std::vector<double> grad(4);
  for (Family f : {Family::mmf, Family::janoschek}) {
    const std::vector<double> p = {0.9, 0.1, 10.0, 10.0};
    curve_gradient(f, p, 1e5, grad);
    for (double g : grad) EXPECT_TRUE(std::isfinite(g)) << to_string(f);
  }
}

TEST(Curves, RecoversExp3FromANoiseFreeCurve) {
  const std::vector<double> truth = {0.91, 0.55, 0.12};
  const Points pts = sample(Family::exp3, truth, 40);
  const CurveFit fit = fit_curve(Family::exp3, pts.x, pts.y, {}, {0.0, 1.0});
  ASSERT_TRUE(fit.ok);
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(fit.params[j], truth[j], 1e-6) << j;
  EXPECT_LT(fit.rss, 1e-12);
  EXPECT_LT(fit.iterations, 100);
}

TEST(Curves, RecoversExp3AndPow3FromNoisyCurves) {
  {
    const std::vector<double> truth = {0.88, 0.6, 0.1};
    const Points pts = sample(Family::exp3, truth, 60, 0.004, 7);
    const CurveFit fit = fit_curve(Family::exp3, pts.x, pts.y, {}, {0.0, 1.0});
    ASSERT_TRUE(fit.ok);
    EXPECT_NEAR(fit.params[0], 0.88, 0.005);
    EXPECT_NEAR(fit.params[1], 0.6, 0.05);
    EXPECT_NEAR(fit.params[2], 0.1, 0.01);
    EXPECT_NEAR(fit.sigma, 0.004, 0.0015);
  }
  {
    const std::vector<double> truth = {0.93, 0.55, 0.6};
    const Points pts = sample(Family::pow3, truth, 60, 0.003, 11);
    const CurveFit fit = fit_curve(Family::pow3, pts.x, pts.y, {}, {0.0, 1.0});
    ASSERT_TRUE(fit.ok);
    EXPECT_NEAR(fit.params[0], 0.93, 0.02);
    EXPECT_NEAR(fit.params[1], 0.55, 0.03);
    EXPECT_NEAR(fit.params[2], 0.6, 0.08);
  }
}

TEST(Curves, FourParameterFamiliesExtrapolateTheirOwnCurves) {
  // Their parameters trade off against each other; what matters is the curve
  // they continue, fitted on 30 epochs and read at 90.
  const std::vector<std::pair<Family, std::vector<double>>> cases = {
      {Family::pow4, {0.9, 0.8, 1.2, 3.0}},
      {Family::mmf, {0.9, 0.2, 0.15, 1.5}},
      {Family::janoschek, {0.9, 0.2, 0.08, 0.9}},
  };
  for (const auto& [f, truth] : cases) {
    const Points pts = sample(f, truth, 30);
    const CurveFit fit = fit_curve(f, pts.x, pts.y, {}, {0.0, 1.0});
    ASSERT_TRUE(fit.ok) << to_string(f);
    EXPECT_NEAR(curve_value(f, fit.params, 90.0), curve_value(f, truth, 90.0), 0.01) << to_string(f);
  }
}

TEST(Curves, WeightsFavourTheLaterEpochs) {
  // A curve whose first epochs are off (warm-up): weighted towards the later
  // epochs, the fit follows those.
  const std::vector<double> truth = {0.9, 0.5, 0.1};
  Points pts = sample(Family::exp3, truth, 40);
  pts.y[0] -= 0.2;
  pts.y[1] -= 0.1;
  std::vector<double> w;
  for (int i = 0; i < 40; ++i) w.push_back(i < 2 ? 1e-6 : 1.0);
  const CurveFit weighted = fit_curve(Family::exp3, pts.x, pts.y, w, {0.0, 1.0});
  const CurveFit plain = fit_curve(Family::exp3, pts.x, pts.y, {}, {0.0, 1.0});
  EXPECT_NEAR(weighted.params[0], 0.9, 1e-3);
  EXPECT_GT(std::abs(plain.params[0] - 0.9), std::abs(weighted.params[0] - 0.9));
}

TEST(Curves, KeepsTheAsymptoteWithinItsBounds) {
  const Points pts = sample(Family::exp3, {0.95, 0.6, 0.05}, 20);
  const CurveFit fit = fit_curve(Family::exp3, pts.x, pts.y, {}, {0.0, 0.7});
  ASSERT_TRUE(fit.ok);
  EXPECT_LE(fit.params[0], 0.7);
  EXPECT_NEAR(fit.params[0], 0.7, 1e-9);  // the data want more
  EXPECT_GE(fit.params[2], 1e-4);
}

TEST(Curves, FallingCurvesFitWithANegativeAmplitude) {
  const Points pts = sample(Family::exp3, {0.5, -0.3, 0.2}, 25);
  const CurveFit fit = fit_curve(Family::exp3, pts.x, pts.y, {}, {0.0, 1.0});
  ASSERT_TRUE(fit.ok);
  EXPECT_NEAR(fit.params[0], 0.5, 1e-6);
  EXPECT_NEAR(fit.params[1], -0.3, 1e-5);
}

TEST(Curves, RefusesTooFewOrNonFinitePoints) {
  const std::vector<double> x = {1, 2, 3}, y = {0.1, 0.2, 0.25};
  EXPECT_FALSE(fit_curve(Family::mmf, x, y, {}, {0.0, 1.0}).ok);  // 4 parameters, 3 points
  EXPECT_TRUE(fit_curve(Family::exp3, x, y, {}, {0.0, 1.0}).ok);
  const std::vector<double> bad = {0.1, std::nan(""), 0.25};
  EXPECT_FALSE(fit_curve(Family::exp3, x, bad, {}, {0.0, 1.0}).ok);
  const std::vector<double> zero_weight = {1.0, 0.0, 1.0};
  EXPECT_FALSE(fit_curve(Family::exp3, x, y, zero_weight, {0.0, 1.0}).ok);
  EXPECT_FALSE(fit_curve(Family::exp3, x, y, {}, {1.0, 0.0}).ok);  // empty bounds
}

TEST(Curves, RefitsFromAGivenStart) {
  const std::vector<double> truth = {0.9, 0.55, 0.12};
  const Points pts = sample(Family::exp3, truth, 30, 0.002, 3);
  const CurveFit first = fit_curve(Family::exp3, pts.x, pts.y, {}, {0.0, 1.0});
  const CurveFit again = fit_curve(Family::exp3, pts.x, pts.y, {}, {0.0, 1.0}, first.params);
  ASSERT_TRUE(again.ok);
  EXPECT_LE(again.iterations, 2);
  EXPECT_NEAR(again.rss, first.rss, 1e-12);
}

}  // namespace
}  // namespace powertrain::predict
