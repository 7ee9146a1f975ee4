#include "powertrain/energy/cgroup.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::energy {

namespace fs = std::filesystem;

namespace {

std::optional<double> keyed(const fs::path& file, std::string_view key) {
  std::ifstream in(file);
  std::string k;
  double v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return std::nullopt;
}

std::optional<double> number(const fs::path& file) {
  std::ifstream in(file);
  double v = 0;
  if (in >> v) return v;
  return std::nullopt;
}

class CgroupRunUsage final : public UsageSource {
 public:
  CgroupRunUsage(fs::path dir, int version, std::string label, fs::path memory_dir, int cpus)
      : dir_(std::move(dir)), memory_dir_(std::move(memory_dir)), version_(version), label_(std::move(label)) {
    cpus_ = cpus > 0 ? cpus : static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  }
  int logical_cpus() const override { return cpus_; }
  std::string covers() const override { return label_; }
  double cpu_busy_seconds() override {
    if (version_ == 2) {
      const auto usec = keyed(dir_ / "cpu.stat", "usage_usec");
      if (!usec) throw SourceError("cannot read usage_usec from " + (dir_ / "cpu.stat").string());
      return *usec * 1e-6;
    }
    const auto ns = number(dir_ / "cpuacct.usage");
    if (!ns) throw SourceError("cannot read " + (dir_ / "cpuacct.usage").string());
    return *ns * 1e-9;
  }
  void memory_from(std::unique_ptr<UsageSource> fallback) { memory_fallback_ = std::move(fallback); }
  double memory_used_bytes() override {
    // A cgroup without the memory controller (v1 cpuacct alone, or a hybrid
    // machine's unified tree with no controllers) has no memory figure: the
    // processes' PSS then.
    if (memory_fallback_ &&
        (version_ == 1 ? memory_dir_.empty() : !fs::exists(dir_ / "memory.current")))
      return memory_fallback_->memory_used_bytes();
    if (version_ == 2) {
      const auto current = number(dir_ / "memory.current");
      if (!current) throw SourceError("cannot read " + (dir_ / "memory.current").string());
      return std::max(0.0, *current - keyed(dir_ / "memory.stat", "inactive_file").value_or(0.0));
    }
    if (memory_dir_.empty()) throw SourceError("the run's cgroup has no memory controller");
    const auto usage = number(memory_dir_ / "memory.usage_in_bytes");
    if (!usage) throw SourceError("cannot read " + (memory_dir_ / "memory.usage_in_bytes").string());
    return std::max(0.0, *usage - keyed(memory_dir_ / "memory.stat", "total_inactive_file").value_or(0.0));
  }
  std::vector<int> pids() override {
    // Its own processes and those of the cgroups below it (a Slurm job's
    // cgroup holds its processes in its steps').
    std::vector<int> out;
    auto add = [&](const fs::path& procs) {
      std::ifstream in(procs);
      for (int p; in >> p;) out.push_back(p);
    };
    add(dir_ / "cgroup.procs");
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec))
      if (it->path().filename() == "cgroup.procs" && it->path().parent_path() != dir_) add(it->path());
    return out;
  }

 private:
  fs::path dir_, memory_dir_;
  int version_;
  std::string label_;
  int cpus_ = 1;
  std::unique_ptr<UsageSource> memory_fallback_;
};

struct CgroupLine {
  std::string controllers;  // empty: the unified (v2) hierarchy
  std::string path;
};

std::vector<CgroupLine> read_self_cgroup(const fs::path& proc_root) {
  std::vector<CgroupLine> out;
  std::ifstream in(proc_root / "self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const auto a = line.find(':');
    const auto b = line.find(':', a == std::string::npos ? a : a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    out.push_back({line.substr(a + 1, b - a - 1), line.substr(b + 1)});
  }
  return out;
}

bool has_controller(const std::string& list, std::string_view name) {
  std::stringstream ss(list);
  for (std::string c; std::getline(ss, c, ',');)
    if (c == name) return true;
  return false;
}

fs::path under(const fs::path& root, const std::string& path) {
  return path.size() > 1 ? root / path.substr(1) : root;
}

// The unified hierarchy's mount: fs/cgroup (pure v2) or fs/cgroup/unified (hybrid).
std::optional<fs::path> unified_root(const fs::path& sysfs) {
  for (const auto& r : {sysfs / "fs/cgroup", sysfs / "fs/cgroup/unified"})
    if (fs::exists(r / "cgroup.procs") && fs::exists(r / "cgroup.controllers")) return r;
  // A hybrid unified mount has no cgroup.controllers when no controller is bound to it.
  if (fs::exists(sysfs / "fs/cgroup/unified/cgroup.procs")) return sysfs / "fs/cgroup/unified";
  return std::nullopt;
}

std::optional<fs::path> v1_root(const fs::path& sysfs, std::string_view controller) {
  for (const auto& name : {std::string(controller), std::string("cpu,cpuacct"), std::string("cpuacct,cpu")}) {
    const auto r = sysfs / "fs/cgroup" / name;
    if (fs::exists(r / "cgroup.procs") && (controller != "cpuacct" || fs::exists(r / "cpuacct.usage"))) return r;
  }
  return std::nullopt;
}

bool write_pid(const fs::path& procs, pid_t pid) {
  std::ofstream out(procs);
  out << pid << '\n';
  out.flush();
  return static_cast<bool>(out);
}

bool is_slurm(const std::string& path) {
  return path.find("slurm") != std::string::npos && path.find("job_") != std::string::npos;
}

std::string slurm_label(const std::string& path) {
  const auto j = path.find("job_");
  std::string id = path.substr(j + 4);
  id = id.substr(0, id.find('/'));
  const auto s = path.find("step_");
  if (s != std::string::npos) {
    std::string step = path.substr(s + 5);
    return fmt::format("the cgroup of Slurm job {} step {}", id, step.substr(0, step.find('/')));
  }
  return fmt::format("the cgroup of Slurm job {}", id);
}

// Removes empty powertrain-<pid> cgroups left by processes that are gone.
void remove_stale(const fs::path& parent) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const auto name = e.path().filename().string();
    if (!name.starts_with("powertrain-")) continue;
    const int pid = std::atoi(name.c_str() + 11);
    if (pid > 0 && (::kill(pid, 0) == 0 || errno != ESRCH)) continue;
    std::ifstream procs(e.path() / "cgroup.procs");
    int any = 0;
    if (procs >> any) continue;  // not empty: something still runs in it
    fs::remove(e.path(), ec);
  }
}

}  // namespace

std::unique_ptr<UsageSource> cgroup_usage(const fs::path& dir, int version, std::string label,
                                          const fs::path& memory_dir, int logical_cpus) {
  return std::make_unique<CgroupRunUsage>(dir, version, std::move(label), memory_dir, logical_cpus);
}

// ".../job_41/step_0/user/task_0" -> ".../job_41": every step of the job on this node.
std::string job_level(const std::string& path) {
  const auto j = path.find("job_");
  const auto end = path.find('/', j);
  return end == std::string::npos ? path : path.substr(0, end);
}

std::unique_ptr<UsageSource> slurm_cgroup(const fs::path& proc_root, const fs::path& sysfs_root) {
  auto lines = read_self_cgroup(proc_root);
  if (const char* scope = std::getenv("POWERTRAIN_SLURM_CGROUP"); scope && std::string_view(scope) == "job")
    for (auto& l : lines)
      if (is_slurm(l.path)) l.path = job_level(l.path);
  std::optional<fs::path> memory_dir;
  for (const auto& l : lines)
    if (has_controller(l.controllers, "memory") && is_slurm(l.path))
      if (auto r = v1_root(sysfs_root, "memory")) memory_dir = under(*r, l.path);
  for (const auto& l : lines) {
    if (!is_slurm(l.path)) continue;
    if (l.controllers.empty()) {
      if (auto r = unified_root(sysfs_root); r && fs::exists(under(*r, l.path) / "cpu.stat"))
        return cgroup_usage(under(*r, l.path), 2, slurm_label(l.path));
    } else if (has_controller(l.controllers, "cpuacct")) {
      if (auto r = v1_root(sysfs_root, "cpuacct"); r && fs::exists(under(*r, l.path) / "cpuacct.usage"))
        return cgroup_usage(under(*r, l.path), 1, slurm_label(l.path), memory_dir.value_or(fs::path{}));
    }
  }
  return nullptr;
}

std::unique_ptr<RunCgroup> RunCgroup::create(std::string& why_not, const fs::path& proc_root,
                                             const fs::path& sysfs_root, bool enter) {
  const auto lines = read_self_cgroup(proc_root);
  if (lines.empty()) {
    why_not = "cannot read " + (proc_root / "self/cgroup").string();
    return nullptr;
  }
  const pid_t self = ::getpid();
  const std::string name = fmt::format("powertrain-{}", self);
  std::string last_error = "no cgroup hierarchy with CPU accounting is mounted";
  const auto try_in = [&](const fs::path& parent, int version) -> std::unique_ptr<RunCgroup> {
    remove_stale(parent);
    const fs::path dir = parent / name;
    std::error_code ec;
    fs::create_directory(dir, ec);
    if (ec) {
      last_error = fmt::format("cannot create {}: {}", dir.string(), ec.message());
      return nullptr;
    }
    // Moving a process takes the kernel's cgroup lock for writing, which waits
    // for an RCU grace period (about 10 ms): a run whose command is started
    // inside the cgroup does without it.
    if (enter && !write_pid(dir / "cgroup.procs", self)) {
      last_error = fmt::format("cannot move powertrain into {}", dir.string());
      fs::remove(dir, ec);
      return nullptr;
    }
    return std::unique_ptr<RunCgroup>(new RunCgroup(dir, parent, version, enter));
  };
  for (const auto& l : lines) {
    if (!l.controllers.empty()) continue;
    if (auto r = unified_root(sysfs_root)) {
      const fs::path parent = under(*r, l.path);
      // Only a leaf may hold processes where controllers are enabled below it.
      std::ifstream sub(parent / "cgroup.subtree_control");
      std::string enabled;
      std::getline(sub, enabled);
      if (enabled.empty() && fs::exists(parent / "cgroup.procs"))
        if (auto g = try_in(parent, 2)) return g;
    }
  }
  for (const auto& l : lines) {
    if (!has_controller(l.controllers, "cpuacct")) continue;
    if (auto r = v1_root(sysfs_root, "cpuacct"))
      if (auto g = try_in(under(*r, l.path), 1)) return g;
  }
  why_not = last_error;
  return nullptr;
}

bool RunCgroup::enter(std::string& why_not) {
  if (entered_) return true;
  if (!write_pid(dir_ / "cgroup.procs", ::getpid())) {
    why_not = fmt::format("cannot move powertrain into {}", dir_.string());
    return false;
  }
  entered_ = true;
  return true;
}

RunCgroup::~RunCgroup() {
  // Back to where it was, so that the cgroup is empty and can go. Children
  // still in it (a program that outlived the run) keep it alive; the next
  // create() removes it once they are gone.
  if (entered_) (void)write_pid(parent_ / "cgroup.procs", ::getpid());
  std::error_code ec;
  fs::remove(dir_, ec);
}

std::string RunCgroup::label() const {
  const std::string name = dir_.filename().string();
  if (entered_) return "powertrain's own cgroup " + name;
  return fmt::format("the cgroup {} the command was started in (powertrain outside it)", name);
}

std::unique_ptr<UsageSource> RunCgroup::usage() const { return cgroup_usage(dir_, version_, label()); }

std::unique_ptr<UsageSource> run_usage(int pid, const RunCgroup* scope, const fs::path& proc_root,
                                       const fs::path& sysfs_root) {
  if (auto s = slurm_cgroup(proc_root, sysfs_root)) return s;
  // A meter of a Slurm trial over several nodes where Slurm keeps no cgroups
  // (proctrack/linuxproc): the program's tasks on this node are the job's
  // processes that srun started beside the meter, found by their SLURM_JOB_ID
  // and this node's SLURMD_NODENAME (several slurmd may share a host).
  const char* whole_job = std::getenv("POWERTRAIN_SLURM_CGROUP");
  const char* job = std::getenv("SLURM_JOB_ID");
  if (whole_job && std::string_view(whole_job) == "job" && job && *job) {
    std::vector<std::string> entries{std::string("SLURM_JOB_ID=") + job};
    if (const char* node = std::getenv("SLURMD_NODENAME"); node && *node)
      entries.push_back(std::string("SLURMD_NODENAME=") + node);
    return environment_usage(proc_root, pid, std::move(entries),
                             fmt::format("the processes of Slurm job {} on this node (by SLURM_JOB_ID; no Slurm "
                                         "cgroup)",
                                         job));
  }
  if (scope != nullptr) {
    auto u = std::make_unique<CgroupRunUsage>(scope->dir(), scope->version(), scope->label(), fs::path{}, 0);
    u->memory_from(process_usage(proc_root, pid));
    return u;
  }
  return process_usage(proc_root, pid);
}

}  // namespace powertrain::energy
