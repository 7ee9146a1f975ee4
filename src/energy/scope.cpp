#include "powertrain/energy/scope.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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

std::filesystem::path own_run_cgroup() {
  std::string why;
  const RunCgroup* cgroup = process_cgroup(why);
  return cgroup ? cgroup->dir() : std::filesystem::path();
}

bool launches_elsewhere(const std::string& program) {
  const auto slash = program.rfind('/');
  const std::string name = slash == std::string::npos ? program : program.substr(slash + 1);
  for (const char* l : {"docker", "podman", "nerdctl", "srun", "apptainer", "singularity", "enroot", "kubectl",
                        "mpirun", "mpiexec", "ssh", "pdsh"})
    if (name == l) return true;
  return false;
}

std::vector<std::string> unmeasured_gpus(const std::string& sysfs_root, bool nvml_gpus) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  std::error_code ec;
  std::vector<fs::path> cards;
  for (const auto& e : fs::directory_iterator(fs::path(sysfs_root) / "class/drm", ec)) {
    const auto name = e.path().filename().string();
    if (name.starts_with("card") && name.find('-') == std::string::npos) cards.push_back(e.path());
  }
  std::sort(cards.begin(), cards.end());
  const auto text = [](const fs::path& p) {
    std::ifstream in(p);
    std::string s;
    in >> s;
    return s;
  };
  for (const auto& card : cards) {
    const std::string vendor = text(card / "device/vendor"), cls = text(card / "device/class");
    const std::string name = card.filename().string();
    if (vendor == "0x1002")
      out.push_back(fmt::format("an AMD GPU ({}), which no source here measures", name));
    else if (vendor == "0x8086" && cls.starts_with("0x0380"))
      out.push_back(fmt::format("an Intel discrete GPU ({}), which no source here measures", name));
    else if (vendor == "0x10de" && !nvml_gpus)
      out.push_back(fmt::format("an NVIDIA GPU ({}) that NVML does not measure (no driver library, or a vGPU "
                                "without power readings)",
                                name));
  }
  return out;
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
  bool nvml_gpus = false;
  for (const auto& c : tracker.channels()) nvml_gpus = nvml_gpus || c.component == Component::gpu;
  auto unmeasured = unmeasured_gpus(o.sysfs_root, nvml_gpus);
  if (o.uses_gpu && !o.cuda_devices.empty() && !nvml_gpus && unmeasured.empty())
    unmeasured.push_back("the GPU it trains on, which no energy source here measures");
  if (!unmeasured.empty() && o.uses_gpu) {
    std::string list;
    for (const auto& u : unmeasured) list += (list.empty() ? "" : "; ") + u;
    scope.unmeasured_gpu = "GPU energy is missing from every figure: the machine has " + list;
    line += "; GPU not measured";
  }
  tracker.attribute_to(std::move(scope));
  return line;
}

std::string attribute_run(Tracker& tracker, int pid, int threads, int cuda_ordinal) {
  RunScopeOptions o;
  o.pid = pid;
  o.threads = threads;
  if (cuda_ordinal >= 0) o.cuda_devices.push_back(cuda_ordinal);
  o.uses_gpu = cuda_ordinal >= 0;
  return attribute_run(tracker, o);
}

}  // namespace powertrain::energy
