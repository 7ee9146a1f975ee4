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
  /// energy_j: wraparound is resolved by the meter. Throws SourceError.
  virtual void read(std::vector<ChannelSample>& out) = 0;

  /// Process ids that currently run on the GPU of channel `index`, when the
  /// source can tell (NVML's process list). Default: the source cannot tell.
  virtual bool lists_processes() const { return false; }
  virtual std::vector<std::uint32_t> processes(std::size_t /*index*/) { return {}; }
};

}  // namespace powertrain::energy
