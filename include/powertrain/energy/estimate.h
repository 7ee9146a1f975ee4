#pragma once
// Estimate of CPU and memory power where no counter exists (VMs, containers).
// Always labeled Method::estimated.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "powertrain/energy/meter.h"

namespace powertrain::energy {

/// Linear model per logical CPU: W = idle_w + u * (full_w - idle_w), u in [0,1],
/// plus memory at memory_w_per_gb for the memory in use. Defaults are the
/// averages used by the Cloud Carbon Footprint methodology.
///
/// System scope estimates the whole machine: every CPU's idle power plus the
/// dynamic part for the utilization read from /proc/stat, and memory in use
/// (MemTotal - MemAvailable), or a confining cgroup's. Process scope charges only
/// the watched processes: each busy CPU-second at full_w_per_core and their
/// proportional memory.
struct EstimateModel {
  double cpu_idle_w_per_core = 0.74;
  double cpu_full_w_per_core = 3.5;
  double memory_w_per_gb = 0.375;
  /// Utilization from /proc/stat (whole system, default) or from the CPU time
  /// and proportional memory (PSS) of a set of processes (`process` mode).
  enum class Scope { system, process } scope = Scope::system;
};

/// Where the estimate reads CPU time and memory; replaceable in tests.
class UsageSource {
 public:
  virtual ~UsageSource() = default;
  virtual int logical_cpus() const = 0;
  /// Busy CPU seconds summed over all CPUs (system scope) or over the watched
  /// processes (process scope), since an arbitrary origin.
  virtual double cpu_busy_seconds() = 0;
  /// Memory in use, bytes.
  virtual double memory_used_bytes() = 0;
  /// What it covers when not the whole machine or the watched processes
  /// (e.g. "the cgroup /docker/abc"); empty by default.
  virtual std::string covers() const { return {}; }
  /// The process ids it covers as of its latest read (process tree, cgroup);
  /// empty for the machine.
  virtual std::vector<int> pids() { return {}; }
};

/// The machine's CPU time and memory in use, or, where this process is confined
/// to a cgroup v2 (a container, a CPU or memory limit), the cgroup's: its
/// cpu.stat, cpu.max (quota as CPUs) and memory.current, found through
/// PROC_ROOT/self/cgroup under SYSFS_ROOT/fs/cgroup. Otherwise /proc/stat
/// (busy = user + nice + system + irq + softirq; steal, time the hypervisor gave
/// to others, is left out) and /proc/meminfo.
std::unique_ptr<UsageSource> system_usage(const std::filesystem::path& proc_root,
                                          const std::filesystem::path& sysfs_root = "/sys");
/// CPU time (with the reaped children's of every process in the tree) and
/// proportional memory (PSS; RSS where it cannot be read) of `pid` and its
/// descendants, read from `proc_root`.
std::unique_ptr<UsageSource> process_usage(const std::filesystem::path& proc_root, int pid);

/// process_usage() of `pid` and of every process whose environment holds all
/// of `entries` ("KEY=VALUE", read from /proc/PID/environ: this user's
/// processes), each with its descendants; covers() says `label`. A Slurm job's
/// processes on a node whose Slurm keeps no cgroups: srun starts a step's tasks
/// under slurmstepd, outside the meter's process tree, with the job's
/// SLURM_JOB_ID and the node's SLURMD_NODENAME.
std::unique_ptr<UsageSource> environment_usage(const std::filesystem::path& proc_root, int pid,
                                               std::vector<std::string> entries, std::string label);

/// Meter with an estimated cpu channel and/or an estimated dram channel.
std::unique_ptr<Meter> make_estimate_meter(const EstimateModel& model,
                                           std::unique_ptr<UsageSource> usage, bool cpu,
                                           bool memory);

}  // namespace powertrain::energy
