// RunStatus names (declared in powertrain/train/records.h). They live in the
// store layer because the store is the lowest layer that writes them, and the
// train layer links it.
#include <string>

#include "powertrain/error.h"
#include "powertrain/train/records.h"

namespace powertrain::train {

std::string_view to_string(RunStatus s) {
  switch (s) {
    case RunStatus::running: return "running";
    case RunStatus::converged: return "converged";
    case RunStatus::max_epochs: return "max_epochs";
    case RunStatus::diverged: return "diverged";
    case RunStatus::interrupted: return "interrupted";
    case RunStatus::failed: return "failed";
  }
  return "unknown";
}

RunStatus run_status_from_string(std::string_view s) {
  if (s == "running") return RunStatus::running;
  if (s == "converged") return RunStatus::converged;
  if (s == "max_epochs") return RunStatus::max_epochs;
  if (s == "diverged") return RunStatus::diverged;
  if (s == "interrupted") return RunStatus::interrupted;
  if (s == "failed") return RunStatus::failed;
  throw ConfigError("unknown run status '" + std::string(s) +
                    "' (expected running, converged, max_epochs, diverged, interrupted or failed)");
}

}  // namespace powertrain::train
