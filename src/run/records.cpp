// RunStatus names, data option keys and the thread limit (declared in powertrain/run/records.h).
#include <string>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/run/environment.h"
#include "powertrain/run/records.h"

namespace powertrain::run {

std::string_view to_string(RunStatus s) {
  switch (s) {
    case RunStatus::running: return "running";
    case RunStatus::converged: return "converged";
    case RunStatus::max_epochs: return "max_epochs";
    case RunStatus::diverged: return "diverged";
    case RunStatus::interrupted: return "interrupted";
    case RunStatus::failed: return "failed";
    case RunStatus::stopped: return "stopped";
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
  if (s == "stopped") return RunStatus::stopped;
  throw ConfigError("unknown run status '" + std::string(s) +
                    "' (expected running, converged, max_epochs, diverged, interrupted, failed or stopped)");
}

const std::vector<std::string>& data_option_keys() {
  static const std::vector<std::string> keys{
      "max_samples", "val_fraction", "normalize", "image_size",    "cache_dir",     "use_cache",
      "center_crop", "channels",     "window",    "stride",        "downsample",    "max_fill",
      "train_subjects", "val_subjects", "test_subjects", "activities", "num_classes", "train_samples",
      "eval_samples", "input_channels", "length", "noise"};
  return keys;
}

std::filesystem::path encoder_checkpoint_path(const std::filesystem::path& checkpoint) {
  if (checkpoint.extension() == ".pt") {
    auto p = checkpoint;
    return p.replace_extension(".encoder.pt");
  }
  return checkpoint.string() + ".encoder.pt";
}


int max_threads() { return kThreadsPerCpu * available_cpus(); }

}  // namespace powertrain::run
