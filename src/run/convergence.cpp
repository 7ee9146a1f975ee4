#include "powertrain/run/convergence.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::run {

ConvergenceRule::ConvergenceRule(const RunConfig& c, LossLimits limits)
    : max_epochs_(c.max_epochs),
      patience_(c.patience),
      min_delta_(c.min_delta),
      target_(c.target_metric),
      stop_at_target_(c.stop_at_target),
      limits_(limits),
      best_metric_(-std::numeric_limits<double>::infinity()),
      best_for_stopping_(-std::numeric_limits<double>::infinity()) {
  if (c.max_epochs < 1) throw ConfigError(fmt::format("max epochs must be >= 1, got {}", c.max_epochs));
  if (c.patience < 0) throw ConfigError(fmt::format("patience must be >= 0 (0: no early stopping), got {}", c.patience));
  if (!(c.min_delta >= 0.0)) throw ConfigError(fmt::format("min_delta must be >= 0, got {}", c.min_delta));
  if (!(limits.max_loss > 0.0) || !(limits.max_loss_growth > 1.0))
    throw ConfigError("loss limits must be positive (and the growth limit above 1)");
}

EpochVerdict ConvergenceRule::observe(int epoch, double val_metric, double val_loss) {
  EpochVerdict v;
  if (!std::isfinite(val_metric)) {
    v.stop = true;
    v.status = RunStatus::diverged;
    v.reason = fmt::format("diverged in epoch {}: the validation metric became {}", epoch, val_metric);
    return v;
  }
  if (val_metric > best_metric_) {  // the best model: strictly the highest metric
    best_metric_ = val_metric;
    best_epoch_ = epoch;
    v.best = true;
  }
  if (target_ && !target_reached_ && val_metric >= *target_) {
    target_reached_ = true;
    v.reached_target = true;
    if (stop_at_target_) {
      v.stop = true;
      v.status = RunStatus::converged;
      v.reason = fmt::format("reached the target {} in epoch {}", *target_, epoch);
      return v;
    }
  }
  if (std::isnan(val_loss) ? false : !std::isfinite(val_loss)) {
    v.stop = true;
    v.status = RunStatus::diverged;
    v.reason = fmt::format("diverged in epoch {}: the validation loss became {}", epoch, val_loss);
    return v;
  }
  if (val_metric - min_delta_ > best_for_stopping_) {  // improvement by more than min_delta
    best_for_stopping_ = val_metric;
    bad_epochs_ = 0;
  } else if (patience_ > 0 && ++bad_epochs_ >= patience_) {
    v.stop = true;
    v.status = RunStatus::converged;
    v.reason = fmt::format("no validation gain above {} for {} epochs", min_delta_, patience_);
    return v;
  }
  if (epoch >= max_epochs_) {
    v.stop = true;
    v.status = RunStatus::max_epochs;
    v.reason = fmt::format("reached the limit of {} epochs", max_epochs_);
  }
  return v;
}

std::optional<std::string> ConvergenceRule::check_loss(double loss) {
  std::optional<std::string> why;
  if (!std::isfinite(loss)) {
    why = fmt::format("the training loss became {}", loss);
  } else if (loss > limits_.max_loss) {
    why = fmt::format("the training loss {:.4g} exceeded {:.4g}", loss, limits_.max_loss);
  } else if (first_loss_ && *first_loss_ > 0.0 && loss > limits_.max_loss_growth * *first_loss_) {
    why = fmt::format("the training loss {:.4g} exceeded {:.4g} times its first value {:.4g}", loss,
                      limits_.max_loss_growth, *first_loss_);
  }
  if (!first_loss_) first_loss_ = loss;
  return why;
}

}  // namespace powertrain::run
