#pragma once
// Where a training run is heading, predicted after each of its epochs from the
// validation metrics and epoch energies seen so far: the epoch at which the
// run's convergence rule (run::ConvergenceRule) will stop it, the run's energy
// to that epoch, and the epoch and energy at which it reaches a target
// validation metric, each as a median with an 80% interval. No torch.
//
//   std::vector<CurvePoint> seen = ...;   // epochs 1..n of a running run
//   Prediction p = predict_curve(seen, rule_settings(config));
//   fmt::print("stops at epoch {:.0f} [{:.0f}, {:.0f}], {:.0f} J\n", p.stop_epoch.mid,
//              p.stop_epoch.low, p.stop_epoch.high, p.energy_to_stop_j.mid);
//
// predict_curve extrapolates the validation-metric curve in the manner of
// Domhan, Springenberg and Hutter (IJCAI 2015): a weighted ensemble of
// parametric learning-curve families (curves.h) fitted to the curve so far,
// sampled with parameter and observation noise; each sampled future is run
// through the convergence rule itself, continuing from the rule's state after
// the epochs seen. predict_linear is the baseline of CarbonTracker (Anthony,
// Kanding, Selvan 2020): the mean epoch energy times max_epochs.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/run/records.h"

namespace powertrain::predict {

/// One finished epoch of a run.
struct CurvePoint {
  int epoch = 0;            ///< 1-based; a run's points are epochs 1, 2, ..., n in order
  double val_metric = 0.0;  ///< higher is better; not finite: the rule stops the run there (diverged)
  double energy_j = 0.0;    ///< this epoch's energy; NaN: not measured (estimated from the others)
};

/// A predicted quantity: the median of the ensemble and its 80% interval.
struct Interval {
  double low = 0.0;   ///< 10th percentile
  double mid = 0.0;   ///< median
  double high = 0.0;  ///< 90th percentile
};

/// The prediction after `epochs_seen` epochs.
struct Prediction {
  int epochs_seen = 0;
  /// The epoch after which the convergence rule stops the run (epochs_seen <
  /// it <= max_epochs while the run goes on; the stopping epoch, degenerate,
  /// once it has stopped).
  Interval stop_epoch;
  /// The run's total energy up to and including the stop epoch: the energy
  /// of the epochs seen plus the predicted remainder.
  Interval energy_to_stop_j;
  /// The first epoch whose validation metric is at or above the target, and
  /// the run's energy up to it, over the sampled futures that reach the target
  /// before the run stops. Unset without a target or when none reaches it.
  std::optional<Interval> target_epoch;
  std::optional<Interval> energy_to_target_j;
  /// The share of sampled futures in which the run reaches the target before
  /// it stops: 1 once reached, 0 without a target; NaN while the target is
  /// not reached from the methods that do not model the metric (linear, too
  /// few epochs).
  double p_reach_target = 0.0;
  int draws = 0;  ///< sampled futures behind the intervals (0: none, the intervals are exact or a bound)
  /// How it was predicted: "curve-ensemble", "linear", "stopped" (the rule has
  /// already stopped the run within the epochs seen: exact), or the fallback
  /// "too few epochs" (fewer than kMinCurveEpochs seen: the interval runs from
  /// the earliest stop the rule allows to max_epochs, mid half way, and is a
  /// bound rather than an 80% interval). Energies are NaN when no epoch seen
  /// has a finite energy.
  std::string method;
};

/// The convergence rule's settings (those of run::RunConfig).
struct RuleSettings {
  int max_epochs = 20;
  int patience = 3;
  double min_delta = 1e-3;
  std::optional<double> target_metric;
  bool stop_at_target = false;  ///< run::RunConfig::stop_at_target
};

/// The rule settings of a run's config.
RuleSettings rule_settings(const run::RunConfig& config);
/// A run config that carries these settings (the rest default), for
/// run::ConvergenceRule.
run::RunConfig rule_config(const RuleSettings& rule);

/// Epochs predict_curve needs before it fits curves. On the synthetic runs
/// of the tests, fewer give confidently wrong intervals (3 or 4 epochs: the
/// truth inside the 80% interval in under 5% of runs; 6: about 75%).
inline constexpr int kMinCurveEpochs = 6;

/// Learning-curve extrapolation (see above). `seen` holds epochs 1..n in order
/// (ConfigError otherwise, and for settings run::ConvergenceRule refuses).
/// Deterministic for a given seed. Milliseconds: 5.8 ms with 10 epochs seen,
/// 8.4 ms with 100, on the 2-core development machine (bench/bench_predict).
Prediction predict_curve(const std::vector<CurvePoint>& seen, const RuleSettings& rule, std::uint64_t seed = 0);

/// CarbonTracker's rule: the run goes to max_epochs, each epoch costing the
/// mean energy of those seen; intervals degenerate. A run the rule has already
/// stopped is reported as predict_curve does ("stopped").
Prediction predict_linear(const std::vector<CurvePoint>& seen, const RuleSettings& rule);

/// The epoch after which run::ConvergenceRule with these settings stops a run
/// with these validation metrics (metrics[i] is epoch i + 1), and the first
/// epoch at or above the target; 0 for either when it does not happen within
/// the metrics given.
struct RuleOutcome {
  int stop_epoch = 0;
  int target_epoch = 0;
};
RuleOutcome replay_rule(const std::vector<double>& metrics, const RuleSettings& rule);

/// The prediction as a run records it with an epoch.
run::EpochForecast to_forecast(const Prediction& p);

/// Follows a run epoch by epoch: each finished epoch's record in, the
/// forecast of predict_curve (seed 0) over the epochs so far out. What the run
/// session attaches to every epoch, and what `train` and the studies show.
class Forecaster {
 public:
  explicit Forecaster(const run::RunConfig& config);
  /// Adds the epoch (epochs in order, from 1) and predicts; nullopt when the
  /// run's settings cannot be predicted (they are checked when the run starts).
  std::optional<run::EpochForecast> after(const run::EpochRecord& epoch);
  /// Adds the epoch without predicting: an epoch of an earlier segment of a
  /// continued run, so that the forecasts after this segment's epochs see the
  /// whole curve.
  void add(const run::EpochRecord& epoch) { seen_.push_back({epoch.epoch, epoch.val_metric, epoch.energy_j}); }

 private:
  RuleSettings rule_;
  std::vector<CurvePoint> seen_;
};

/// A complete recorded run, for evaluate().
struct RecordedRun {
  std::vector<CurvePoint> epochs;  ///< epochs 1..stop_epoch (more are ignored)
  RuleSettings rule;
  int stop_epoch = 0;              ///< the epoch at which the run stopped
  double energy_j = 0.0;           ///< its total energy up to that epoch
};

/// How well a method predicted the total energy of recorded runs, after 25%
/// and after 50% of each run's epochs (rounded, at least 1, fewer than all).
struct Accuracy {
  double median_ape_25 = 0.0;  ///< median of |predicted mid - actual| / actual
  double median_ape_50 = 0.0;
  double coverage_25 = 0.0;    ///< share of runs whose actual energy lies in [low, high]
  double coverage_50 = 0.0;
  int runs = 0;                ///< runs evaluated (those of at least 2 epochs and positive energy)
};

struct Evaluation {
  Accuracy curve;   ///< predict_curve
  Accuracy linear;  ///< predict_linear
};

/// Replays each run's first epochs through both methods (predict_curve with
/// `seed`) and compares the predicted energy to stop with the actual one.
Evaluation evaluate(const std::vector<RecordedRun>& runs, std::uint64_t seed = 0);

}  // namespace powertrain::predict
