#include "powertrain/store/records.h"

#include <string>

#include "powertrain/error.h"

namespace powertrain::store {

std::string_view to_string(TrialStatus s) {
  switch (s) {
    case TrialStatus::pending: return "pending";
    case TrialStatus::running: return "running";
    case TrialStatus::converged: return "converged";
    case TrialStatus::max_epochs: return "max_epochs";
    case TrialStatus::diverged: return "diverged";
    case TrialStatus::interrupted: return "interrupted";
    case TrialStatus::failed: return "failed";
    case TrialStatus::stopped: return "stopped";
  }
  return "unknown";
}

TrialStatus trial_status_from_string(std::string_view s) {
  if (s == "pending") return TrialStatus::pending;
  if (s == "running") return TrialStatus::running;
  if (s == "converged") return TrialStatus::converged;
  if (s == "max_epochs") return TrialStatus::max_epochs;
  if (s == "diverged") return TrialStatus::diverged;
  if (s == "interrupted") return TrialStatus::interrupted;
  if (s == "failed") return TrialStatus::failed;
  if (s == "stopped") return TrialStatus::stopped;
  throw ConfigError("unknown trial status '" + std::string(s) +
                    "' (expected pending, running, converged, max_epochs, diverged, interrupted, "
                    "failed or stopped)");
}

TrialStatus trial_status(run::RunStatus s) {
  switch (s) {
    case run::RunStatus::running: return TrialStatus::running;
    case run::RunStatus::converged: return TrialStatus::converged;
    case run::RunStatus::max_epochs: return TrialStatus::max_epochs;
    case run::RunStatus::diverged: return TrialStatus::diverged;
    case run::RunStatus::interrupted: return TrialStatus::interrupted;
    case run::RunStatus::failed: return TrialStatus::failed;
    case run::RunStatus::stopped: return TrialStatus::stopped;
  }
  return TrialStatus::failed;
}

bool is_done(TrialStatus s) {
  return s == TrialStatus::converged || s == TrialStatus::max_epochs || s == TrialStatus::diverged ||
         s == TrialStatus::stopped;
}

}  // namespace powertrain::store
