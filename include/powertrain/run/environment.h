#pragma once
// Where a run runs: host, OS, CPU, GPU, framework, build commit. No torch.
#include <string>

#include "powertrain/energy/tracker.h"
#include "powertrain/run/records.h"

namespace powertrain::run {

/// Describes this machine and build. `device` ("cpu", "cuda", "cuda:1") picks
/// the GPU named from the tracker's GPU channels (empty for cpu, or when no
/// meter names it); `threads` is the intra-op thread count in use;
/// `framework` what trains ("2.15.0" for LibTorch, "external: ..." for a
/// program). `tracker` may be null (no GPU name, no sampling description).
Environment collect_environment(const std::string& device, int threads, const energy::Tracker* tracker,
                                std::string framework);

/// Model name of the first CPU in /proc/cpuinfo ("" when unknown).
std::string cpu_model_name();
/// CPUs this process may run on (sched_getaffinity), at least 1.
int available_cpus();

}  // namespace powertrain::run
