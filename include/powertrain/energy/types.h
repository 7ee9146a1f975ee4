#pragma once
// Plain types shared by every energy source, the sampler and the reports.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace powertrain::energy {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// How a number was obtained. Every energy figure carries one.
enum class Method {
  counter,    ///< read as a delta of a hardware energy counter
  sampled,    ///< power samples integrated over time (trapezoid rule)
  estimated,  ///< computed by a model from utilization; nothing was measured
};
std::string_view to_string(Method m);
/// Parses "counter" / "sampled" / "estimated"; throws ConfigError otherwise.
Method method_from_string(std::string_view s);
/// "counter", "counter+estimated", ...: the methods present, in that order.
std::string join_methods(bool counter, bool sampled, bool estimated);

/// What a channel's energy belongs to.
enum class Component {
  gpu,
  cpu,     ///< a CPU package (RAPL package-N) or an estimate of the CPUs
  dram,    ///< memory (RAPL dram, or an estimate)
  psys,    ///< RAPL platform domain (overlaps cpu and dram)
  board,   ///< an embedded board's input rail or one of its rails
};
std::string_view to_string(Component c);

/// One measurable quantity of a source, e.g. one GPU or one RAPL zone.
struct ChannelInfo {
  std::string id;           ///< unique within a run: "nvml:gpu0", "rapl:package-0:dram"
  std::string source;       ///< "nvml", "rapl", "perf", "rails", "estimate"
  std::string device;       ///< human-readable: "gpu0 NVIDIA H100", "package-0", "VDD_IN"
  Component component = Component::cpu;
  Method method = Method::estimated;
  /// true: the source returns a cumulative energy (energy_j); false: an
  /// instantaneous (or source-averaged) power that the sampler integrates.
  bool cumulative = false;
  /// Counted in run totals. false for parts that overlap another channel
  /// (RAPL core/uncore inside a package, psys, individual board rails).
  bool in_total = true;
  /// How often the source refreshes its value (0 when unknown). Windows shorter
  /// than this are flagged in results.
  double update_period_s = 0.0;
  /// Index of the GPU as NVML numbers it (-1 when not a GPU).
  int gpu_index = -1;
  /// Cumulative channels only: power_w of a reading is an instantaneous power
  /// (NVML's instant power field), so peaks and the timeline take it instead of
  /// the counter's change. false: power is the counter's change over at least
  /// ten of its update periods.
  bool instant_power = false;
  /// Something every window measured with this channel must say (e.g. a MIG
  /// instance measured through its whole GPU); empty when nothing.
  std::string note;
  /// Power the channel draws when the machine is idle (NaN: unknown), so that
  /// a run is charged idle power by the CPUs it holds (energy/attribution.h):
  /// the estimate's idle model over the CPUs it covers.
  double idle_power_w = kNaN;
  /// The channel measures only the run already (the process-scope estimate):
  /// attribution leaves it as read.
  bool run_scope = false;
  /// A MIG instance measured through its whole GPU: the instance's share of the
  /// GPU's slices (NaN when not a MIG instance, or the slices are unknown).
  double mig_share = kNaN;
};

/// Extra readings of a GPU kept in the timeline. NaN when not available.
struct GpuTelemetry {
  double power_limit_w = kNaN;
  double utilization_pct = kNaN;
  double sm_clock_mhz = kNaN;
  double temperature_c = kNaN;
  double memory_used_bytes = kNaN;
};

/// One reading of one channel.
struct ChannelSample {
  double energy_j = kNaN;  ///< cumulative energy since an arbitrary origin (cumulative channels)
  double power_w = kNaN;   ///< power at the time of the reading (NaN if the source has none)
  GpuTelemetry gpu;        ///< GPU channels only
};

}  // namespace powertrain::energy
