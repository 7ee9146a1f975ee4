#pragma once
// Where a run runs: host, OS, CPU, GPU, torch version, build commit.
#include <string>

#include "powertrain/energy/tracker.h"
#include "powertrain/train/records.h"

namespace powertrain::train {

/// Describes this machine and build. `device` ("cpu", "cuda", "cuda:1") picks
/// the GPU named from the tracker's GPU channels (empty for cpu, or when no
/// meter names it); `threads` is the intra-op thread count in use. `tracker`
/// may be null (no GPU name, no sampling description).
Environment collect_environment(const std::string& device, int threads, const energy::Tracker* tracker);

/// The LibTorch version compiled against, "2.15.0".
std::string torch_version();

/// Model name of the first CPU in /proc/cpuinfo ("" when unknown).
std::string cpu_model_name();
/// CPUs this process may run on (sched_getaffinity), at least 1.
int available_cpus();

}  // namespace powertrain::train
