#pragma once
// The run's own energy on a shared machine: what the meters read over a window
// (the machine's figure) split into the part the run is charged for. Pure
// functions over plain structs; the tracker applies them at every window end.
//
// CPUs (and board rails, which feed them): idle power is charged by the CPUs
// reserved for the run, the rest by the run's share of the machine's busy CPU
// time. Memory: by the run's share of the memory in use. GPUs: a GPU the run's
// processes used (or that its --device names) is charged, split by per-process
// utilization when foreign processes share it, or by its MIG slices; a GPU
// used only by others is reported apart and never added; a GPU nobody can
// place is kept whole with a note.
#include <optional>
#include <string>
#include <vector>

#include "powertrain/energy/types.h"

namespace powertrain::energy {

struct WindowResult;
struct WindowCpu;

/// Whose a GPU channel is over a window.
enum class GpuClaim {
  run,      ///< the run's processes used it, or the run was told to use it
  other,    ///< its process lists were read and held only processes outside the run
  unknown,  ///< no process list could tell (not NVML, no permission, other PID namespace)
};
std::string_view to_string(GpuClaim c);

/// What the tracker knows of one GPU channel at a window's end.
struct GpuAttribution {
  GpuClaim claim = GpuClaim::unknown;
  /// Part of the GPU's energy that is the run's (1: the whole GPU).
  double share = 1.0;
  /// How the share was found ("" for a whole GPU): "per-process utilization",
  /// "MIG slices 2/7".
  std::string basis;
  /// Why the claim or the share is as it is, said in the window's notes (e.g.
  /// "gpu0 is shared with 2 other processes; the driver gives no per-process
  /// utilization: charged whole").
  std::string note;
};

/// The run's claim on the machine over a window.
struct RunShare {
  /// CPUs of the machine as the CPU time source counts them (a confining
  /// cgroup's quota inside a container).
  int machine_cpus = 1;
  /// CPUs reserved for the run (a Slurm allocation, a cgroup quota, a cpuset,
  /// else its thread count); at most machine_cpus.
  double reserved_cpus = 1.0;
  std::string reserved_basis = "threads";  ///< "Slurm allocation", "cgroup quota", "cpuset", "threads", "whole machine"
  /// Busy CPU time of the machine and of the run over the window (unset: it
  /// could not be read; the CPU channels are then charged whole).
  std::optional<double> machine_cpu_s, run_cpu_s;
  /// Where the run's CPU time came from: "process tree" or "cgroup /x/y".
  std::string cpu_basis = "process tree";
  /// The run's memory in use over the machine's (unset: unknown; memory is then
  /// charged by the CPU-time share).
  std::optional<double> memory_share;
  /// Per channel of the window (index-aligned; ignored for non-GPU channels).
  std::vector<GpuAttribution> gpus;
  /// A GPU the run uses that no energy source covers (an AMD or Intel GPU, a
  /// vGPU without power readings): said in the method ("GPU not measured")
  /// and the notes. Empty: none.
  std::string unmeasured_gpu;
};

/// Splits `w` (what the meters read, every channel's energy_j the machine's)
/// into the run's own: each channel's machine_energy_j keeps the reading and
/// its energy_j becomes the run's share; energy_j, components and avg power are
/// recomputed from them, machine_energy_j keeps the reading's total, method
/// gains ", attributed by ..." and notes say what could not be split.
/// `channels` are the tracker's, index-aligned with w.channels.
void attribute_window(WindowResult& w, const std::vector<ChannelInfo>& channels, const RunShare& share);

/// The CPUs reserved for this process as (count, basis): SLURM_CPUS_ON_NODE in
/// a Slurm job, else a cgroup CPU quota (v2 cpu.max, v1 cfs_quota_us) or the
/// affinity mask when they allow fewer CPUs than the machine has, else
/// `threads` (when > 0), else the whole machine. Never more than machine_cpus.
struct Reservation {
  double cpus = 1.0;
  std::string basis;
};
Reservation reserved_cpus(int machine_cpus, int threads, const std::string& proc_root = "/proc",
                          const std::string& sysfs_root = "/sys");

}  // namespace powertrain::energy
