#include "powertrain/energy/scope.h"

#include <cstdlib>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "powertrain/energy/cgroup.h"
#include "powertrain/energy/measurement.h"

namespace powertrain::energy {

namespace {

// One cgroup for the whole powertrain process, made at the first run and
// removed at exit: runs of one process follow each other, and every window
// takes differences of its CPU time.
const RunCgroup* process_cgroup(std::string& why_not) {
  static std::mutex mu;
  static std::unique_ptr<RunCgroup> cgroup;
  static bool tried = false;
  static std::string why;
  std::lock_guard lock(mu);
  if (!tried) {
    tried = true;
    const char* off = std::getenv("POWERTRAIN_NO_CGROUP");
    if (off != nullptr && *off != '\0' && std::string_view(off) != "0")
      why = "POWERTRAIN_NO_CGROUP is set";
    else
      cgroup = RunCgroup::create(why);
  }
  why_not = why;
  return cgroup.get();
}

}  // namespace

void enter_run_cgroup() {
  std::string why;
  (void)process_cgroup(why);
}

bool launches_elsewhere(const std::string& program) {
  const auto slash = program.rfind('/');
  const std::string name = slash == std::string::npos ? program : program.substr(slash + 1);
  for (const char* l : {"docker", "podman", "nerdctl", "srun", "apptainer", "singularity", "enroot", "kubectl",
                        "mpirun", "mpiexec", "ssh", "pdsh"})
    if (name == l) return true;
  return false;
}

std::string attribute_run(Tracker& tracker, const RunScopeOptions& o) {
  RunScope scope;
  scope.machine = system_usage("/proc", "/sys");
  const int machine_cpus = scope.machine->logical_cpus();
  std::string why_not;
  const RunCgroup* own = o.own_cgroup ? process_cgroup(why_not) : nullptr;
  if (!o.own_cgroup) why_not = "not asked for";
  scope.run = run_usage(o.pid, own, "/proc", "/sys");
  const std::string covers = scope.run->covers();
  scope.reserved = reserved_cpus(machine_cpus, o.threads);
  scope.cuda_devices = o.cuda_devices;
  scope.gpus = o.nvml_gpus;
  scope.host_pids = in_host_pid_namespace();
  scope.launches_elsewhere = o.launches_elsewhere;
  scope.attribute_gpus = o.attribute_gpus;
  std::string line = covers.empty() ? fmt::format("CPU time from the process tree (no cgroup: {})", why_not)
                                    : fmt::format("CPU time from {}", covers);
  line += fmt::format("; {:g} of {} CPUs reserved ({})", scope.reserved.cpus, machine_cpus, scope.reserved.basis);
  if (!scope.host_pids) line += "; GPU process ids not comparable (another PID namespace)";
  if (o.launches_elsewhere)
    line += "; the command launches work outside its process tree: GPUs without its processes are of unknown use";
  tracker.attribute_to(std::move(scope));
  return line;
}

std::string attribute_run(Tracker& tracker, int pid, int threads, int cuda_ordinal) {
  RunScopeOptions o;
  o.pid = pid;
  o.threads = threads;
  if (cuda_ordinal >= 0) o.cuda_devices.push_back(cuda_ordinal);
  return attribute_run(tracker, o);
}

}  // namespace powertrain::energy
