#pragma once
// The one interface every energy source implements.
#include <cstdint>
#include <string>
#include <vector>

#include "powertrain/energy/types.h"

namespace powertrain::energy {

/// An energy source opened on this machine: a fixed list of channels that can
/// be read together. Implementations are not required to be thread-safe; the
/// Tracker serializes calls.
class Meter {
 public:
  virtual ~Meter() = default;

  /// Source name, e.g. "nvml".
  virtual std::string source() const = 0;

  /// The channels this meter reads, fixed for its lifetime.
  virtual const std::vector<ChannelInfo>& channels() const = 0;

  /// Reads every channel once into `out` (resized to channels().size(), same
  /// order). Cumulative channels must return a monotonically non-decreasing
  /// energy_j: wraparound is resolved by the meter. A channel that failed on
  /// its own (one GPU of several fell off the bus) reads NaN, and
  /// channel_error() says why; a failure of the whole source throws SourceError.
  virtual void read(std::vector<ChannelSample>& out) = 0;

  /// Why channel `index` read NaN at the latest read (empty: it did not fail,
  /// or the meter cannot tell).
  virtual std::string channel_error(std::size_t /*index*/) const { return {}; }

  /// Whether measurement-window boundaries read this meter. true (the default)
  /// for hardware energy counters, whose value at a boundary is cheap and true to the counter's step;
  /// false for sampled power and models, which the tracker extrapolates from
  /// their last sample at a boundary, so that a boundary costs no file or driver
  /// reads for them. Applies while the tracker's sampler runs; a tracker without
  /// its sampler reads every meter at every boundary.
  virtual bool read_at_boundaries() const { return true; }

  /// The read used at window boundaries: only energy_j of cumulative channels
  /// has to be filled; power and telemetry may stay NaN. Default: read().
  virtual void read_energy(std::vector<ChannelSample>& out) { read(out); }

  /// Process ids that currently run on the GPU of channel `index`, when the
  /// source can tell (NVML's process list), as the driver reports them (host
  /// ids, even inside a container). Throws SourceError when the list cannot be
  /// read (no permission, not supported): that is not an empty list.
  /// Default: the source cannot tell.
  virtual bool lists_processes() const { return false; }
  virtual std::vector<std::uint32_t> processes(std::size_t /*index*/) { return {}; }

  /// Per-process utilization of the GPU of channel `index` that the driver
  /// sampled since the previous call (NVML's process utilization samples):
  /// false when the source cannot tell (no such call, not supported), which
  /// leaves a shared GPU unsplit. Host process ids, as processes().
  struct ProcessUtilization {
    std::uint32_t pid = 0;
    double sm_pct = 0.0;  ///< share of the sample period a kernel of the process ran on the SMs
  };
  virtual bool process_utilization(std::size_t /*index*/, std::vector<ProcessUtilization>& /*out*/) { return false; }
};

}  // namespace powertrain::energy
