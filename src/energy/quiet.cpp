#include "powertrain/energy/quiet.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::energy {

void validate(const QuietRule& rule) {
  constexpr double kWeek_s = 7 * 24 * 3600.0;
  if (!std::isfinite(rule.max_wait_s) || rule.max_wait_s < 0 || rule.max_wait_s > kWeek_s)
    throw ConfigError(fmt::format("quiet wait {} s is out of range (0 to {} s)", rule.max_wait_s, kWeek_s));
  if (!std::isfinite(rule.max_busy_cpus) || rule.max_busy_cpus < 0)
    throw ConfigError(fmt::format("quiet CPUs {} is out of range (0 or more)", rule.max_busy_cpus));
  if (!std::isfinite(rule.check_s) || rule.check_s < 0.1 || rule.check_s > 60)
    throw ConfigError(fmt::format("quiet check {} s is out of range (0.1 to 60 s)", rule.check_s));
}

QuietResult wait_for_quiet(UsageSource& machine, UsageSource& measured, const QuietRule& rule,
                           const std::function<void(double)>& sleep_s, const std::function<bool()>& stop,
                           const std::function<void(const QuietResult&)>& on_busy) {
  validate(rule);
  QuietResult r;
  if (rule.max_wait_s <= 0) {
    r.quiet = true;
    return r;
  }
  for (;;) {
    if (stop && stop()) {
      r.stopped = true;
      return r;
    }
    const double window_s = std::min(rule.check_s, std::max(0.1, rule.max_wait_s - r.waited_s));
    const double m0 = machine.cpu_busy_seconds(), p0 = measured.cpu_busy_seconds();
    sleep_s(window_s);
    const double p1 = measured.cpu_busy_seconds(), m1 = machine.cpu_busy_seconds();
    r.waited_s += window_s;
    ++r.checks;
    r.others_busy_cpus = std::max(0.0, (m1 - m0) - (p1 - p0)) / window_s;
    r.quiet = r.others_busy_cpus <= rule.max_busy_cpus;
    if (r.quiet || r.waited_s >= rule.max_wait_s - 1e-9) return r;
    if (on_busy) on_busy(r);
  }
}

}  // namespace powertrain::energy
