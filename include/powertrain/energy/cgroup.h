#pragma once
// The cgroup that holds a run, as the source of its CPU time, memory and
// process ids: a Slurm job's or step's, or a scope powertrain makes for itself
// and everything it starts where the cgroup tree is writable. cgroup v1
// (cpuacct.usage, memory.usage_in_bytes, cgroup.procs) and v2 (cpu.stat
// usage_usec, memory.current, cgroup.procs).
#include <filesystem>
#include <memory>
#include <string>

#include "powertrain/energy/estimate.h"

namespace powertrain::energy {

/// One cgroup directory read as a usage source. `version` 1: dir is in the
/// cpuacct hierarchy (memory read from `memory_dir` when not empty); 2: the
/// unified hierarchy. `label` is what covers() says ("Slurm job 41 cgroup").
std::unique_ptr<UsageSource> cgroup_usage(const std::filesystem::path& dir, int version, std::string label,
                                          const std::filesystem::path& memory_dir = {}, int logical_cpus = 0);

/// The Slurm job or step cgroup this process runs in (a path holding
/// "slurm" and "job_" under the unified hierarchy or cpuacct), read from
/// PROC_ROOT/self/cgroup and SYSFS_ROOT/fs/cgroup; nullptr outside one.
/// With POWERTRAIN_SLURM_CGROUP=job in the environment: the job's cgroup on
/// this node, every step of it (a meter of a Slurm trial over several nodes,
/// whose program runs in a step srun started beside the meter's).
std::unique_ptr<UsageSource> slurm_cgroup(const std::filesystem::path& proc_root = "/proc",
                                          const std::filesystem::path& sysfs_root = "/sys");

/// A cgroup powertrain made for itself ("powertrain-<pid>" beside its own
/// cgroup: cgroup v2 where the unified tree is writable, else v1 cpuacct),
/// holding this process and so everything it starts, setsid or not. The
/// destructor moves the process back and removes the cgroup. A kill -9 leaves
/// an empty one behind, which the next create() removes.
class RunCgroup {
 public:
  /// nullptr (and `why_not` set) where no cgroup can be made: no writable
  /// tree, no permission.
  static std::unique_ptr<RunCgroup> create(std::string& why_not, const std::filesystem::path& proc_root = "/proc",
                                           const std::filesystem::path& sysfs_root = "/sys");
  ~RunCgroup();
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;
  /// A usage source over the cgroup (valid while this object lives).
  std::unique_ptr<UsageSource> usage() const;
  const std::filesystem::path& dir() const { return dir_; }
  int version() const { return version_; }

 private:
  RunCgroup(std::filesystem::path dir, std::filesystem::path parent, int version)
      : dir_(std::move(dir)), parent_(std::move(parent)), version_(version) {}
  std::filesystem::path dir_, parent_;
  int version_;
};

/// The run's CPU time and memory: its Slurm cgroup, else `scope` (a
/// RunCgroup's, may be null; memory from the process tree of `pid` where the
/// cgroup has none), else the process tree of `pid`.
std::unique_ptr<UsageSource> run_usage(int pid, const RunCgroup* scope, const std::filesystem::path& proc_root = "/proc",
                                       const std::filesystem::path& sysfs_root = "/sys");

}  // namespace powertrain::energy
