#pragma once
// The user's own training program as a workload of a measured run: started
// with the run's settings, it reports its epochs over the protocol of
// docs/external.md, and powertrain opens and closes the windows, applies the
// convergence rule and tells it when to stop.
//
//   CommandWorkload w(config, options);      // config.command names the program
//   session.run(config, w);
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "powertrain/run/workload.h"

namespace powertrain::external {

struct CommandOptions {
  /// Whole run, in seconds (0: no limit).
  double timeout_s = 0.0;
  /// Longest time without any event from the program (0: no limit).
  double idle_timeout_s = 0.0;
  /// After a "stop" reply, seconds the program has to send its test metric and
  /// exit before it gets SIGTERM.
  double grace_s = 60.0;
  /// Seconds between SIGTERM and SIGKILL.
  double kill_after_s = 10.0;
  /// The program's stdout and stderr are copied here as they come (null: kept
  /// only for error messages).
  std::FILE* output = nullptr;
  /// Lines of the program's stderr quoted when a run fails.
  int stderr_lines = 20;
};

/// Validates CommandOptions (ConfigError for negative times).
void validate(const CommandOptions& options);

/// Delay between an event's sending (its "mono_ns") and the window boundary
/// powertrain took for it, over a run's epoch_start and epoch_end events.
struct BoundaryLatency {
  std::vector<double> us;  ///< one per timestamped boundary event
};

class CommandWorkload final : public run::Workload {
 public:
  /// Checks the command (placeholders, program given) and the options; throws ConfigError.
  CommandWorkload(run::RunConfig config, CommandOptions options = {});

  void run(run::RunControl& control) override;
  int threads() const override;
  std::string framework() const override;

  /// What the program said in its hello event (empty if none).
  const std::string& reported_framework() const { return hello_framework_; }
  const BoundaryLatency& latency() const { return latency_; }

 private:
  run::RunConfig config_;
  CommandOptions options_;
  std::string hello_framework_;
  BoundaryLatency latency_;
};

}  // namespace powertrain::external
