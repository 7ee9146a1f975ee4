#pragma once
// The events a training program sends powertrain and the reply it gets: JSON
// objects, one per line (protocol version 1, docs/external.md). Pure parsing.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "powertrain/run/control.h"

namespace powertrain::external {

inline constexpr int kProtocolVersion = 1;
/// Longest accepted line, in bytes.
inline constexpr std::size_t kMaxLineBytes = 64 * 1024;
/// Most training samples an epoch_end may report (2^50: more than any epoch trains).
inline constexpr std::int64_t kMaxEpochSamples = std::int64_t{1} << 50;

enum class EventKind { hello, epoch_start, phase, progress, epoch_end, test, checkpoint, end };

struct Event {
  EventKind kind = EventKind::hello;
  int epoch = 0;                     ///< epoch_start, epoch_end
  bool eval_phase = false;           ///< phase: "eval" (true) or "train"
  run::BatchProgress progress;       ///< progress: step, steps, running_loss
  bool has_loss = false;             ///< progress: a loss was sent (a NaN one counts)
  run::EpochMetrics metrics;         ///< epoch_end
  double test_metric = 0.0;          ///< test
  std::vector<double> test_task_metrics;
  std::string path, checkpoint_kind; ///< checkpoint
  std::string framework;             ///< hello
  /// The sender's CLOCK_MONOTONIC time of the event in ns, when it sent one
  /// ("mono_ns"): powertrain then measures how late the boundary was taken.
  std::optional<std::int64_t> mono_ns;
};

/// Parses one line. Throws WorkloadError("malformed event ...") for anything
/// but a JSON object with a known "event" and fields of the right types.
Event parse_event(std::string_view line);

/// The one-line reply to an epoch_end (without the newline).
std::string epoch_reply(int epoch, const run::EpochVerdict& verdict);

}  // namespace powertrain::external
