#pragma once
// Waiting for a quiet machine before a measured run: energy counters are
// machine-wide, so another process's work during a trial is charged to it.
#include <functional>
#include <string>

#include "powertrain/energy/estimate.h"

namespace powertrain::energy {

/// When the machine counts as quiet, and how long to wait for it.
struct QuietRule {
  double max_wait_s = 0.0;    ///< 0: do not wait
  double max_busy_cpus = 0.5; ///< other processes' CPU use (in CPUs) at or below which it is quiet
  double check_s = 2.0;       ///< length of one check
};

/// Throws ConfigError with one line when a value is out of range:
/// max_wait_s 0 to 1 week, max_busy_cpus >= 0, check_s 0.1 to 60.
void validate(const QuietRule& rule);

/// How the wait went.
struct QuietResult {
  bool quiet = false;          ///< the last check found the machine quiet
  double waited_s = 0.0;       ///< time spent checking
  double others_busy_cpus = 0.0;  ///< others' CPU use in the last check
  int checks = 0;
  bool stopped = false;        ///< `stop` said to give up
};

/// Checks windows of rule.check_s: the machine's busy CPU time (`machine`)
/// less that of the processes that will be measured (`measured`), per second
/// of the window, is the others' use. Returns at the first quiet window, or
/// when max_wait_s is spent (quiet false: the run goes ahead and its CPU
/// share is flagged), or when `stop` returns true. `sleep_s` sleeps (tests
/// advance a fake clock instead); `on_busy` is called after each busy check.
QuietResult wait_for_quiet(UsageSource& machine, UsageSource& measured, const QuietRule& rule,
                           const std::function<void(double)>& sleep_s, const std::function<bool()>& stop = {},
                           const std::function<void(const QuietResult&)>& on_busy = {});

}  // namespace powertrain::energy
