#pragma once
// Synthetic training runs with a known truth for the prediction tests: a
// validation-accuracy curve from one of the learning-curve families plus
// Gaussian noise, epoch energies around a level (the first epoch dearer), and
// the run cut where run::ConvergenceRule stops it. Deterministic for a seed
// (std::mt19937_64 is specified exactly; the deviates are computed here).
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "powertrain/predict/predict.h"

namespace powertrain::predict::testing {

class Draw {
 public:
  explicit Draw(std::uint64_t seed) : gen_(seed) {}
  double uniform(double lo, double hi) { return lo + (hi - lo) * (static_cast<double>(gen_() >> 11) * 0x1.0p-53); }
  double normal() {
    double u1 = uniform(0.0, 1.0);
    while (u1 <= 0.0) u1 = uniform(0.0, 1.0);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * uniform(0.0, 1.0));
  }
  int pick(int n) { return static_cast<int>(gen_() % static_cast<std::uint64_t>(n)); }

 private:
  std::mt19937_64 gen_;
};

/// The shape of a synthetic accuracy curve.
enum class Shape { exp3, pow3, mmf, janoschek, two_phase };

struct SyntheticRun {
  RecordedRun run;
  Shape shape = Shape::exp3;
  std::vector<double> truth;  ///< the noise-free metric of epochs 1..max_epochs
  double sigma = 0.0;         ///< standard deviation of the metric's noise
};

/// The noise-free accuracy at epoch x: from y0 (at x = 0) towards the
/// asymptote c with time scale tau (epochs) and shape parameter s. pow3 here
/// is a shifted power law (the family pow4 of curves.h).
inline double synthetic_metric(Shape shape, double x, double y0, double c, double tau, double s) {
  switch (shape) {
    case Shape::exp3: return c - (c - y0) * std::exp(-x / tau);
    case Shape::pow3: return c - (c - y0) * std::pow(1.0 + x / tau, -s);
    case Shape::mmf: return c - (c - y0) / (1.0 + std::pow(x / tau, s));
    case Shape::janoschek: return c - (c - y0) * std::exp(-std::pow(x / tau, s));
    case Shape::two_phase:  // a fast and a slow phase (share s, 4 times slower): no fitted family has it
      return c - (c - y0) * ((1.0 - s) * std::exp(-x / tau) + s * std::exp(-x / (4.0 * tau)));
  }
  return 0.0;
}

/// One synthetic run of `shape`, stopped by the rule (max_epochs 100,
/// patience 5, min_delta 1e-3 unless given).
inline SyntheticRun synthetic_run(Shape shape, std::uint64_t seed, RuleSettings rule = {100, 5, 1e-3, {}}) {
  Draw d(seed * 7919 + 17);
  const double y0 = d.uniform(0.1, 0.5);
  const double c = d.uniform(0.75, 0.97);
  const double tau = d.uniform(3.0, 20.0);
  double s = 1.0;
  switch (shape) {
    case Shape::exp3: break;
    case Shape::pow3: s = d.uniform(0.7, 2.0); break;
    case Shape::mmf: s = d.uniform(1.0, 2.5); break;
    case Shape::janoschek: s = d.uniform(0.7, 1.5); break;
    case Shape::two_phase: s = d.uniform(0.15, 0.4); break;
  }
  const double sigma = d.uniform(0.002, 0.008);
  const double level_j = d.uniform(200.0, 2000.0);
  SyntheticRun out;
  out.shape = shape;
  out.sigma = sigma;
  out.run.rule = rule;
  std::vector<double> metrics;
  for (int e = 1; e <= rule.max_epochs; ++e) {
    const double truth = synthetic_metric(shape, e, y0, c, tau, s);
    out.truth.push_back(truth);
    const double metric = std::min(1.0, truth + sigma * d.normal());
    const double energy = level_j * (e == 1 ? 1.3 : 1.0) * (1.0 + 0.03 * d.normal());
    out.run.epochs.push_back({e, metric, energy});
    metrics.push_back(metric);
  }
  const RuleOutcome outcome = replay_rule(metrics, rule);
  out.run.stop_epoch = outcome.stop_epoch;
  out.run.epochs.resize(static_cast<std::size_t>(outcome.stop_epoch));
  for (const auto& p : out.run.epochs) out.run.energy_j += p.energy_j;
  return out;
}

}  // namespace powertrain::predict::testing
