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

/// A cgroup powertrain made for a run ("powertrain-<pid>" beside its own
/// cgroup: cgroup v2 where the unified tree is writable, else v1 cpuacct).
/// Entered (the default), it holds this process and so everything it starts,
/// setsid or not; the destructor moves the process back. Made without entering
/// it (`enter` false), it holds what is started inside it (a command cloned
/// into it, external::ChildSpec::cgroup) and not powertrain. The destructor
/// removes the cgroup; one left behind (a kill -9, or processes that outlived
/// the run) is removed by the next create() once it is empty and its
/// powertrain is gone.
class RunCgroup {
 public:
  /// nullptr (and `why_not` set) where no cgroup can be made: no writable
  /// tree, no permission.
  static std::unique_ptr<RunCgroup> create(std::string& why_not, const std::filesystem::path& proc_root = "/proc",
                                           const std::filesystem::path& sysfs_root = "/sys", bool enter = true);
  ~RunCgroup();
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;
  /// Moves this process into the cgroup (one made without entering it);
  /// false, with `why_not`, when that is refused. Nothing once entered.
  bool enter(std::string& why_not);
  bool entered() const { return entered_; }
  /// A usage source over the cgroup (valid while this object lives).
  std::unique_ptr<UsageSource> usage() const;
  /// What the cgroup holds, for the attribution line: "powertrain's own
  /// cgroup powertrain-42" (entered), else "the cgroup powertrain-42 the
  /// command was started in (powertrain outside it)".
  std::string label() const;
  const std::filesystem::path& dir() const { return dir_; }
  int version() const { return version_; }

 private:
  RunCgroup(std::filesystem::path dir, std::filesystem::path parent, int version, bool entered)
      : dir_(std::move(dir)), parent_(std::move(parent)), version_(version), entered_(entered) {}
  std::filesystem::path dir_, parent_;
  int version_;
  bool entered_;
};

/// The run's CPU time and memory: its Slurm cgroup, else `scope` (a
/// RunCgroup's, may be null; memory from the process tree of `pid` where the
/// cgroup has none), else the process tree of `pid`.
std::unique_ptr<UsageSource> run_usage(int pid, const RunCgroup* scope, const std::filesystem::path& proc_root = "/proc",
                                       const std::filesystem::path& sysfs_root = "/sys");

}  // namespace powertrain::energy
