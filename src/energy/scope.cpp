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
// takes differences of its CPU time. Entered by powertrain (its run is
// itself), or not (its run is a command started inside it).
struct ProcessCgroup {
  std::mutex mu;
  std::unique_ptr<RunCgroup> cgroup;
  bool tried = false;
  std::string why_not;  ///< why there is none
  std::string moved;    ///< why powertrain moved into a cgroup made for a command
};

ProcessCgroup& process_state() {
  static ProcessCgroup state;
  return state;
}

// The cgroup, made on the first call (entered as `enter` says); the caller holds s.mu.
RunCgroup* made(ProcessCgroup& s, bool enter) {
  if (!s.tried) {
    s.tried = true;
    const char* off = std::getenv("POWERTRAIN_NO_CGROUP");
    if (off != nullptr && *off != '\0' && std::string_view(off) != "0")
      s.why_not = "POWERTRAIN_NO_CGROUP is set";
    else
      s.cgroup = RunCgroup::create(s.why_not, "/proc", "/sys", enter);
  }
  return s.cgroup.get();
}

const RunCgroup* process_cgroup(std::string& why_not, std::string* moved = nullptr) {
  auto& s = process_state();
  std::lock_guard lock(s.mu);
  const RunCgroup* cgroup = made(s, true);
  why_not = s.why_not;
  if (moved != nullptr) *moved = s.moved;
  return cgroup;
}

// Moves powertrain into a cgroup made without it (`why`: the reason, for the
// attribution line); drops the cgroup where that is refused.
void move_in(ProcessCgroup& s, const std::string& why) {
  std::string refused;
  if (s.cgroup->enter(refused)) {
    s.moved = why;
    return;
  }
  s.why_not = why.empty() ? refused : fmt::format("{}; {}", why, refused);
  s.cgroup.reset();
}

}  // namespace

void enter_run_cgroup() {
  auto& s = process_state();
  std::lock_guard lock(s.mu);
  if (RunCgroup* c = made(s, true); c != nullptr && !c->entered())
    move_in(s, "");
}

std::filesystem::path command_run_cgroup() {
  auto& s = process_state();
  std::lock_guard lock(s.mu);
  RunCgroup* c = made(s, false);
  if (c == nullptr || c->entered()) return {};
  if (c->version() != 2) {
    // clone3 starts a process inside a cgroup v2 only.
    move_in(s, "a command cannot be started inside a cgroup v1");
    return {};
  }
  return c->dir();
}

void command_cgroup_refused(const std::string& why) {
  auto& s = process_state();
  std::lock_guard lock(s.mu);
  if (s.cgroup && !s.cgroup->entered()) move_in(s, why);
}

std::filesystem::path own_run_cgroup() {
  std::string why;
  const RunCgroup* cgroup = process_cgroup(why);
  return cgroup && cgroup->entered() ? cgroup->dir() : std::filesystem::path();
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
  std::string why_not, moved;
  const RunCgroup* own = o.own_cgroup ? process_cgroup(why_not, &moved) : nullptr;
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
  // A cgroup made for a command that powertrain had to enter counts powertrain's own work too: said, with why.
  if (own != nullptr && !moved.empty() && covers == own->label())
    line += fmt::format(" (powertrain moved into it: {})", moved);
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
