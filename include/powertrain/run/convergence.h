#pragma once
// The convergence rule of a run, applied to the validation metrics a workload
// reports after each epoch: the same rule for the built-in trainer and for the
// user's own program. Pure logic, no measurement.
//
//   ConvergenceRule rule(config);
//   auto v = rule.observe(epoch, val_metric, val_loss);   // after each epoch
//   if (v.best) keep_weights();  if (v.stop) break;
#include <optional>
#include <string>

#include "powertrain/run/records.h"

namespace powertrain::run {

/// Limits on the training loss; a run whose loss breaks one has diverged.
struct LossLimits {
  double max_loss = 1e4;          ///< absolute ceiling
  double max_loss_growth = 100.0; ///< times the first loss reading of the run
};

/// What the rule says after an epoch.
struct EpochVerdict {
  bool best = false;  ///< strictly the highest validation metric so far: keep this model
  bool stop = false;  ///< the run ends after this epoch
  /// converged, max_epochs or diverged when stop; running otherwise.
  RunStatus status = RunStatus::running;
  std::string reason;  ///< why it stops (empty when it goes on)
  bool reached_target = false;  ///< the first epoch at or above config.target_metric
};

class ConvergenceRule {
 public:
  /// Validates max_epochs >= 1, patience >= 0, min_delta >= 0 and the limits
  /// (ConfigError otherwise).
  explicit ConvergenceRule(const RunConfig& config, LossLimits limits = {});

  /// Early stopping: patience epochs without a validation-metric gain of more
  /// than min_delta (converged); the epoch limit (max_epochs); a validation
  /// loss or metric that is not finite (diverged). `val_loss` may be NaN when
  /// the workload does not report one; it is then not checked.
  EpochVerdict observe(int epoch, double val_metric, double val_loss);

  /// Divergence check of a mean training loss (after some batches, or of an
  /// epoch): the reason when it diverged, nullopt otherwise. The first call
  /// fixes the reference of the growth limit.
  std::optional<std::string> check_loss(double loss);

  int best_epoch() const { return best_epoch_; }
  double best_metric() const { return best_metric_; }

 private:
  int max_epochs_;
  int patience_;
  double min_delta_;
  std::optional<double> target_;
  bool stop_at_target_ = false;
  LossLimits limits_;
  std::optional<double> first_loss_;
  double best_metric_;
  double best_for_stopping_;
  int best_epoch_ = 0;
  int bad_epochs_ = 0;
  bool target_reached_ = false;
};

}  // namespace powertrain::run
