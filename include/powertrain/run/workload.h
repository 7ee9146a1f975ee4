#pragma once
// A workload: what trains during a measured run. The built-in trainer
// (train::Trainer) and the user's own program (external::CommandWorkload) are
// the two kinds; the run session (session/session.h) measures either the same way.
#include <string>

#include "powertrain/run/control.h"

namespace powertrain::run {

class Workload {
 public:
  virtual ~Workload() = default;
  /// CPU threads the workload trains with (recorded with the run).
  virtual int threads() const = 0;
  /// What trains, for the run's environment: "LibTorch 2.15.0", "external: python3 train.py".
  virtual std::string framework() const = 0;
  /// Trained on generated data (progress lines say so).
  virtual bool synthetic_data() const { return false; }
  /// The training-loss limits of the divergence check.
  virtual LossLimits loss_limits() const { return {}; }
  /// Trains through `control` until the rule, the stop flag or an error ends
  /// it: begin_epoch / begin_eval / end_epoch for each epoch, set_test at the
  /// end; interrupt / diverge / fail for other ends. May throw: the session
  /// then records the run failed with the exception's message (a StoreError
  /// propagates). Called once.
  virtual void run(RunControl& control) = 0;
};

}  // namespace powertrain::run
