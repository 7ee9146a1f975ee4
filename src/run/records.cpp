// RunStatus names and the limits of a run's settings (declared in powertrain/run/records.h).
#include <cmath>
#include <limits>
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

void validate(const RunConfig& c) {
  auto in = [](double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; };
  if (!(in(c.learning_rate, 0.0, kMaxLearningRate) && c.learning_rate > 0.0))
    throw ConfigError(fmt::format("learning rate must be positive and at most {}, got {}", kMaxLearningRate, c.learning_rate));
  if (!(in(c.momentum, 0.0, 1.0) && c.momentum < 1.0))
    throw ConfigError(fmt::format("momentum must be in [0, 1), got {}", c.momentum));
  if (!in(c.weight_decay, 0.0, std::numeric_limits<double>::max()))
    throw ConfigError(fmt::format("weight decay must be a finite number >= 0, got {}", c.weight_decay));
  if (c.batch_size < 1 || c.batch_size > kMaxBatchSize)
    throw ConfigError(fmt::format("batch size must be between 1 and {}, got {}", kMaxBatchSize, c.batch_size));
  if (c.max_epochs < 1 || c.max_epochs > kMaxEpochs)
    throw ConfigError(fmt::format("max epochs must be between 1 and {}, got {}", kMaxEpochs, c.max_epochs));
  if (c.patience < 0) throw ConfigError(fmt::format("patience must be >= 0 (0: no early stopping), got {}", c.patience));
  if (!in(c.min_delta, 0.0, std::numeric_limits<double>::max()))
    throw ConfigError(fmt::format("min_delta must be a finite number >= 0, got {}", c.min_delta));
  if (c.target_metric && !std::isfinite(*c.target_metric))
    throw ConfigError(fmt::format("target metric must be a finite number, got {}", *c.target_metric));
  if (c.seed > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    throw ConfigError(fmt::format("seed must be between 0 and {}, got {} (a negative or too large number?)",
                                  std::numeric_limits<std::int64_t>::max(), c.seed));
  if (c.threads < 0 || c.threads > max_threads())
    throw ConfigError(fmt::format("threads must be between 0 (all CPUs) and {} ({} per available CPU), got {}",
                                  max_threads(), kThreadsPerCpu, c.threads));
  if (!(in(c.subset, 0.0, 1.0) && c.subset > 0.0))
    throw ConfigError(fmt::format("subset must be in (0, 1], got {}", c.subset));
}

}  // namespace powertrain::run
