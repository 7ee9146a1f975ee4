#pragma once
// Ctrl-C, SIGTERM and SIGHUP as a stop request: the running epoch ends, the run is
// recorded interrupted, and the command exits. A second signal kills at once
// (the default action is restored after the first).
#include <atomic>

namespace powertrain::session {

class StopOnSignals {
 public:
  /// Installs handlers for SIGINT, SIGTERM and SIGHUP; restores the previous ones on destruction.
  StopOnSignals();
  ~StopOnSignals();
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;
  /// Turns true at the first signal.
  const std::atomic<bool>* flag() const;
  /// The signal received (0: none).
  int signal() const;
};

}  // namespace powertrain::session
