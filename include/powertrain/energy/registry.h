#pragma once
// Probes every energy source and keeps, for each unavailable one, why and how to fix it.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/energy/estimate.h"
#include "powertrain/energy/meter.h"

namespace powertrain::energy {

/// What probing found for one source.
struct SourceStatus {
  std::string source;       ///< "nvml", "rapl", "perf", "rails", "estimate"
  std::string description;  ///< what the source measures, one line
  bool available = false;
  std::string reason;       ///< why it is unavailable (empty when available)
  std::string fix;          ///< how to make it available (may be empty)
  std::vector<ChannelInfo> channels;

  /// Marks the source unavailable with why and how to fix it.
  void set_unavailable(std::string why, std::string how_to_fix = {}) {
    available = false;
    reason = std::move(why);
    fix = std::move(how_to_fix);
    channels.clear();
  }
};

/// Where and how to look. The roots exist so tests can point at fake trees.
struct ProbeOptions {
  std::filesystem::path sysfs_root = "/sys";
  std::filesystem::path proc_root = "/proc";
  /// NVML library to dlopen; empty: libnvidia-ml.so.1, then libnvidia-ml.so.
  /// The environment variable POWERTRAIN_NVML_LIBRARY overrides the default.
  std::string nvml_library;
  /// NVML indices of the GPUs to measure. Unset: CUDA_VISIBLE_DEVICES if set
  /// (indices or GPU-/MIG- UUIDs), else every GPU.
  std::optional<std::vector<unsigned>> gpu_indices;
  /// Estimate the CPU and memory where no counter covers them.
  bool estimate_missing = true;
  EstimateModel estimate;
  /// Process whose tree the estimate watches in process scope.
  int watched_pid = -1;
  /// Sources to skip entirely (by name), e.g. {"nvml"}.
  std::vector<std::string> disabled;
};

/// The sources ProbeOptions::disabled may name: nvml, rapl, perf, rails, estimate.
const std::vector<std::string>& source_names();
/// Throws ConfigError for a `--disable` value that names no source (a typo
/// would otherwise disable nothing, silently).
void check_source_names(const std::vector<std::string>& disabled);

/// Result of probing: a status for every source, and the meters that opened.
struct Probe {
  std::vector<SourceStatus> statuses;
  std::vector<std::unique_ptr<Meter>> meters;
};

/// Probes nvml, rapl (perf as the second path), rails and, where nothing
/// measured covers the CPU or memory, the estimate. Never throws for an
/// unavailable source; records the reason instead.
Probe probe_sources(const ProbeOptions& options);

// Each source's opener: returns nullptr and fills status.reason/fix when the
// source is unavailable. Declared here so the registry and tests share them.
std::unique_ptr<Meter> open_nvml(const ProbeOptions& options, SourceStatus& status);
std::unique_ptr<Meter> open_rapl(const ProbeOptions& options, SourceStatus& status);
std::unique_ptr<Meter> open_perf_power(const ProbeOptions& options, SourceStatus& status);
std::unique_ptr<Meter> open_rails(const ProbeOptions& options, SourceStatus& status);

}  // namespace powertrain::energy
