#pragma once
// Sets a tracker up to charge its windows to one run (energy/attribution.h):
// the one place that decides where a run's CPU time comes from (its Slurm
// cgroup, a cgroup powertrain makes for itself, else its process tree), which
// CPUs are reserved for it and which GPUs are its. `powertrain train`, the
// studies, the search and `measure` all go through it.
#include <filesystem>
#include <string>
#include <vector>

#include "powertrain/energy/tracker.h"

namespace powertrain::energy {

struct RunScopeOptions {
  int pid = 0;                    ///< root of the run's process tree (powertrain itself)
  int threads = 0;                ///< the run's thread count (0: unknown, all CPUs)
  std::vector<int> cuda_devices;  ///< CUDA ordinals the run is told to use (--device cuda:N)
  std::vector<int> nvml_gpus;     ///< NVML indices the user names (measure --gpus)
  /// Try a cgroup of powertrain's own (off with POWERTRAIN_NO_CGROUP=1).
  bool own_cgroup = true;
  /// The command starts its work outside its own process tree (docker, srun):
  /// a GPU without the run's processes is then of unknown use, not another's.
  bool launches_elsewhere = false;
  /// Split GPUs by their processes (RunScope::attribute_gpus).
  bool attribute_gpus = true;
  /// The run may use a GPU (--device cuda; any command under measure): GPUs
  /// no source covers are said in every figure (RunShare::unmeasured_gpu),
  /// and with cuda_devices set, a missing GPU channel too.
  bool uses_gpu = false;
  /// Where to look for GPUs no source covers (DRM cards).
  std::string sysfs_root = "/sys";
};

/// GPUs in SYSFS_ROOT/class/drm that no energy source here covers: AMD cards
/// (vendor 0x1002), Intel discrete ones (0x8086, display class 0x0380), and
/// NVIDIA ones when NVML measures none (`nvml_gpus` false: a vGPU without
/// power readings, a missing driver library). One phrase each.
std::vector<std::string> unmeasured_gpus(const std::string& sysfs_root, bool nvml_gpus);

/// Moves powertrain into its own cgroup now (where allowed), so that children
/// forked afterwards start inside it; attribute_run() does it too, but a
/// command forked before that would be outside. Idempotent. `powertrain
/// train`, whose run is powertrain itself, goes this way.
void enter_run_cgroup();

/// For a run that is a command powertrain only watches (`measure`): makes the
/// run's cgroup (where allowed) without moving powertrain into it, and returns
/// its folder, for the command to be started inside it
/// (external::ChildSpec::cgroup). Empty where there is none to start it in:
/// none can be made, or a cgroup v1 one (powertrain then moves into it, as
/// enter_run_cgroup(), so that a fork lands there), or powertrain is in it
/// already.
std::filesystem::path command_run_cgroup();

/// The command could not be started inside command_run_cgroup() (`why`: the
/// kernel refused clone3 into it): moves powertrain into it instead, so that
/// an ordinary fork lands there, and the attribution line says why. Where
/// even that is refused the run has no cgroup (its process tree then).
void command_cgroup_refused(const std::string& why);

/// The folder of the cgroup powertrain made for itself and everything it
/// starts (RunCgroup), or empty where it made none or is not in it (a cgroup
/// made for a command started inside it). Only this run's processes are in
/// it, so killing all of them is safe once powertrain is gone.
std::filesystem::path own_run_cgroup();

/// Whether a command is a launcher whose work runs outside its process tree
/// (docker, podman, srun, apptainer, singularity, enroot, kubectl...).
bool launches_elsewhere(const std::string& program);

/// Calls tracker.attribute_to with the run's scope; returns one line saying how
/// the run is told apart from the machine (stored with the run, printed by
/// measure): e.g. "CPU time from the process tree (no cgroup: cannot create
/// /sys/fs/cgroup/...: Permission denied); 1 of 2 CPUs reserved (threads)".
/// Throws SourceError when not even the machine's CPU time can be read.
std::string attribute_run(Tracker& tracker, const RunScopeOptions& options);
/// Short form for a run of this process.
std::string attribute_run(Tracker& tracker, int pid, int threads, int cuda_ordinal);

}  // namespace powertrain::energy
