#include "powertrain/energy/estimate.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "powertrain/error.h"

namespace powertrain::energy {
namespace {

double steady_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class SystemUsage final : public UsageSource {
 public:
  explicit SystemUsage(std::filesystem::path proc) : proc_(std::move(proc)) {
    std::ifstream in(proc_ / "stat");
    if (!in) throw SourceError("cannot read " + (proc_ / "stat").string());
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("cpu", 0) == 0 && line.size() > 3 && std::isdigit(static_cast<unsigned char>(line[3])))
        ++cpus_;
    if (cpus_ == 0) cpus_ = 1;
    ticks_per_s_ = static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  int logical_cpus() const override { return cpus_; }

  double cpu_busy_seconds() override {
    std::ifstream in(proc_ / "stat");
    std::string label;
    // user nice system idle iowait irq softirq steal (guest time is already in
    // user). Steal is time the hypervisor ran someone else: not our load.
    double v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (!(in >> label) || label != "cpu") throw SourceError("unexpected format of " + (proc_ / "stat").string());
    for (double& x : v) in >> x;
    const double busy_ticks = v[0] + v[1] + v[2] + v[5] + v[6];
    return busy_ticks / ticks_per_s_;
  }

  double memory_used_bytes() override {
    std::ifstream in(proc_ / "meminfo");
    std::string key;
    double value_kb = 0, total_kb = -1, available_kb = -1;
    std::string unit;
    while (in >> key >> value_kb) {
      std::getline(in, unit);
      if (key == "MemTotal:") total_kb = value_kb;
      if (key == "MemAvailable:") available_kb = value_kb;
    }
    if (total_kb < 0 || available_kb < 0) return 0.0;
    return (total_kb - available_kb) * 1024.0;
  }

 private:
  std::filesystem::path proc_;
  int cpus_ = 0;
  double ticks_per_s_ = 100.0;
};

/// The first whitespace-separated word of a small file, or "".
std::string first_word(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string w;
  in >> w;
  return w;
}

/// The value of `key` in a "key value" file (cpu.stat, memory.stat), or nullopt.
std::optional<double> keyed_value(const std::filesystem::path& path, std::string_view key) {
  std::ifstream in(path);
  std::string k;
  double v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return std::nullopt;
}

/// CPUs in a cpuset list such as "0-3,8,10-11" (0 when empty or unreadable).
int cpuset_count(const std::string& list) {
  int n = 0;
  std::istringstream in(list);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (part.empty()) continue;
    const auto dash = part.find('-');
    try {
      n += dash == std::string::npos ? 1 : std::stoi(part.substr(dash + 1)) - std::stoi(part.substr(0, dash)) + 1;
    } catch (const std::exception&) {
      return 0;
    }
  }
  return n;
}

// A cgroup v2 that confines this process: its CPU time (cpu.stat usage_usec),
// its CPUs (the cpu.max quota, or its cpuset) and its memory in use
// (memory.current less the page cache it could drop, inactive_file).
class CgroupUsage final : public UsageSource {
 public:
  CgroupUsage(std::filesystem::path dir, std::string path, int cpus)
      : dir_(std::move(dir)), path_(std::move(path)), cpus_(std::max(1, cpus)) {}
  int logical_cpus() const override { return cpus_; }
  std::string covers() const override { return "cgroup " + path_; }
  double cpu_busy_seconds() override {
    const auto usec = keyed_value(dir_ / "cpu.stat", "usage_usec");
    if (!usec) throw SourceError("cannot read usage_usec from " + (dir_ / "cpu.stat").string());
    return *usec * 1e-6;
  }
  double memory_used_bytes() override {
    std::ifstream in(dir_ / "memory.current");
    double current = 0;
    if (!(in >> current)) return 0.0;
    const double inactive_file = keyed_value(dir_ / "memory.stat", "inactive_file").value_or(0.0);
    return std::max(0.0, current - inactive_file);
  }

 private:
  std::filesystem::path dir_;
  std::string path_;
  int cpus_;
};

/// The cgroup v2 this process is confined to, if any, as a usage source. A
/// cgroup confines when it limits CPU or memory, or when it is the root of a
/// cgroup namespace other than the host's (a container: it shows as "/" but,
/// unlike the host's root cgroup, has memory.current). A login session's
/// cgroup on the host does neither: there the machine is what counts.
std::unique_ptr<UsageSource> confining_cgroup(const std::filesystem::path& proc_root,
                                              const std::filesystem::path& sysfs_root, int host_cpus) {
  std::ifstream in(proc_root / "self/cgroup");
  std::string line, path;
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  if (path.empty() || path.front() != '/') return nullptr;  // cgroup v1 only, or none
  const std::filesystem::path dir = sysfs_root / "fs/cgroup" / path.substr(1);
  std::error_code ec;
  if (!std::filesystem::exists(dir / "cpu.stat", ec)) return nullptr;
  const std::string quota = first_word(dir / "cpu.max");
  const std::string memory_max = first_word(dir / "memory.max");
  const bool cpu_limited = !quota.empty() && quota != "max";
  const bool memory_limited = !memory_max.empty() && memory_max != "max";
  const bool namespace_root = path == "/" && std::filesystem::exists(dir / "memory.current", ec);
  if (!cpu_limited && !memory_limited && !namespace_root) return nullptr;
  int cpus = host_cpus;
  if (const int in_set = cpuset_count(first_word(dir / "cpuset.cpus.effective")); in_set > 0)
    cpus = std::min(cpus, in_set);
  if (cpu_limited) {
    std::ifstream max(dir / "cpu.max");
    double q = 0, period = 0;
    std::string q_text;
    if (max >> q_text >> period && period > 0) {
      try {
        q = std::stod(q_text);
        cpus = std::min(cpus, std::max(1, static_cast<int>(std::ceil(q / period))));
      } catch (const std::exception&) {
      }
    }
  }
  return std::make_unique<CgroupUsage>(dir, path, cpus);
}

// CPU time and memory of a process tree. Each process counts its own CPU time
// and its children's that it has reaped (cutime/cstime): a process that exits
// is reaped by its parent, so its time moves from its own fields to its
// parent's, and the sum over the live tree stays whole, for grandchildren (a
// DataLoader's workers) too. A process that leaves the tree otherwise (adopted
// by init when its parent died first) keeps the time it had. Memory is the
// proportional set size (PSS), which splits the pages forked workers share
// instead of counting them once per worker as RSS does; RSS where
// smaps_rollup cannot be read.
class ProcessUsage final : public UsageSource {
 public:
  // `with_environment` ("KEY=VALUE" entries, may be empty): processes whose
  // environment holds them all are roots too, each with its descendants.
  ProcessUsage(std::filesystem::path proc, int pid, std::vector<std::string> with_environment = {},
               std::string label = {})
      : proc_(std::move(proc)), root_(pid), environment_(std::move(with_environment)), label_(std::move(label)) {
    cpus_ = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
    ticks_per_s_ = static_cast<double>(sysconf(_SC_CLK_TCK));
    page_bytes_ = static_cast<double>(sysconf(_SC_PAGESIZE));
  }
  int logical_cpus() const override { return static_cast<int>(cpus_); }

  double cpu_busy_seconds() override {
    scan(false);
    // A guard against reads that race a reap (the parent's stat read just
    // before it took the child's time, the child's just after it was gone).
    last_busy_s_ = std::max(last_busy_s_, busy_s_);
    return last_busy_s_;
  }
  double memory_used_bytes() override {
    scan(true);
    return memory_bytes_;
  }
  std::string covers() const override { return label_; }
  std::vector<int> pids() override {
    std::vector<int> out;
    out.reserve(members_.size());
    for (const auto& [pid, m] : members_) out.push_back(pid);
    return out;
  }

 private:
  struct Stat {
    int ppid = 0;
    double ticks = 0;  // utime + stime
    double child_ticks = 0;  // cutime + cstime: children it reaped
    double rss_pages = 0;
  };
  struct Member {
    int ppid = 0;
    double ticks = 0;  // own and reaped children's
  };

  bool read_stat(int pid, Stat& st) const {
    std::ifstream in(proc_ / std::to_string(pid) / "stat");
    std::string line;
    if (!std::getline(in, line)) return false;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos || close + 2 > line.size()) return false;
    std::istringstream rest(line.substr(close + 2));
    std::vector<std::string> f;
    std::string tok;
    while (rest >> tok) f.push_back(tok);
    // f[0] is field 3 (state); utime is field 14, rss field 24.
    if (f.size() < 22) return false;
    try {
      st.ppid = std::stoi(f[1]);
      st.ticks = std::stod(f[11]) + std::stod(f[12]);
      st.child_ticks = std::stod(f[13]) + std::stod(f[14]);
      st.rss_pages = std::stod(f[21]);
    } catch (const std::exception&) {
      return false;
    }
    return true;
  }

  // PSS in bytes from smaps_rollup (Linux 4.14+), or nullopt.
  std::optional<double> read_pss_bytes(int pid) const {
    std::ifstream in(proc_ / std::to_string(pid) / "smaps_rollup");
    std::string key;
    while (in >> key) {
      if (key == "Pss:") {
        double kb = 0;
        if (in >> kb) return kb * 1024.0;
        return std::nullopt;
      }
      in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
    return std::nullopt;
  }

  // Whether /proc/PID/environ holds every entry of `environment_` (unreadable: no).
  bool has_environment(int pid) const {
    std::ifstream in(proc_ / std::to_string(pid) / "environ", std::ios::binary);
    std::size_t found = 0;
    for (std::string entry; std::getline(in, entry, '\0');)
      found += std::count(environment_.begin(), environment_.end(), entry) > 0 ? 1 : 0;
    return found == environment_.size();
  }

  // The roots of this scan: the process, and those whose environment holds
  // `environment_`. Each process's environment is read once (it is fixed at
  // exec); a pid that left /proc is forgotten, so a reused one is read again.
  std::vector<int> roots() {
    std::vector<int> out{root_};
    if (environment_.empty()) return out;
    std::unordered_map<int, bool> seen;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(proc_, ec)) {
      const auto name = entry.path().filename().string();
      if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
      const int pid = std::stoi(name);
      const auto known = environment_checked_.find(pid);
      const bool match = known != environment_checked_.end() ? known->second : has_environment(pid);
      seen[pid] = match;
      if (match && pid != root_) out.push_back(pid);
    }
    environment_checked_ = std::move(seen);
    return out;
  }

  // The children of `pid` from /proc/PID/task/*/children (one file per
  // thread); false when the kernel does not offer those files.
  bool list_children(int pid, std::vector<int>& out) const {
    std::error_code ec;
    const auto tasks = proc_ / std::to_string(pid) / "task";
    std::filesystem::directory_iterator it(tasks, ec);
    // No task folder: a process that is gone has no children; one that is
    // there without it (an old kernel, a fake /proc) cannot say.
    if (ec) return !std::filesystem::exists(proc_ / std::to_string(pid));
    bool any = false;
    for (const auto& t : it) {
      std::ifstream in(t.path() / "children");
      if (!in) continue;
      any = true;
      for (int c; in >> c;) out.push_back(c);
    }
    return any;
  }

  // Memory (PSS) only when asked for: reading smaps_rollup of a large process
  // costs milliseconds, too much for the CPU time read at window boundaries.
  void scan(bool memory) {
    const double now = steady_s();
    // One scan serves both reads of a tick (and a boundary's nested windows).
    if (now - scanned_at_ < 0.005 && (!memory || memory_scanned_)) return;
    scanned_at_ = now;
    memory_scanned_ = memory;
    std::unordered_map<int, Stat> all;
    std::unordered_map<int, std::vector<int>> children;
    // Fast: walk down from the root through the children files (a few reads
    // for a few processes). Else, or when a file is missing: every process in /proc.
    bool walked = use_children_files_;
    const std::vector<int> start = roots();
    if (walked) {
      std::vector<int> stack = start;
      while (!stack.empty() && walked) {
        const int pid = stack.back();
        stack.pop_back();
        Stat st;
        if (all.count(pid) || !read_stat(pid, st)) continue;
        all[pid] = st;
        std::vector<int> kids;
        if (!list_children(pid, kids)) walked = false;
        for (int c : kids) {
          children[pid].push_back(c);
          stack.push_back(c);
        }
      }
      if (!walked) {
        use_children_files_ = false;
        all.clear();
        children.clear();
      } else {
        // Members of the last scan that left the tree: alive elsewhere, or gone.
        for (const auto& [pid, was] : members_) {
          Stat st;
          if (!all.count(pid) && read_stat(pid, st)) all[pid] = st;
        }
      }
    }
    if (!walked) {
      std::error_code ec;
      for (const auto& entry : std::filesystem::directory_iterator(proc_, ec)) {
        const auto name = entry.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        Stat st;
        const int pid = std::stoi(name);
        if (!read_stat(pid, st)) continue;
        all[pid] = st;
        children[st.ppid].push_back(pid);
      }
    }
    std::unordered_map<int, Member> members;
    double ticks = 0, memory_bytes = 0;
    std::vector<int> stack = start;
    while (!stack.empty()) {
      const int pid = stack.back();
      stack.pop_back();
      auto it = all.find(pid);
      if (it == all.end() || members.count(pid)) continue;
      const Stat& st = it->second;
      members[pid] = Member{st.ppid, st.ticks + st.child_ticks};
      ticks += st.ticks + st.child_ticks;
      if (memory) memory_bytes += read_pss_bytes(pid).value_or(st.rss_pages * page_bytes_);
      for (int c : children[pid]) stack.push_back(c);
    }
    // Processes that left the tree since the last scan. One gone from /proc
    // whose parent is still in the tree was reaped by it: its time is in the
    // parent's cutime now. Any other took its time with it: keep that.
    for (const auto& [pid, was] : members_) {
      if (members.count(pid)) continue;
      const bool reaped_in_tree = !all.count(pid) && members.count(was.ppid);
      if (!reaped_in_tree) departed_ticks_ += was.ticks;
    }
    members_ = std::move(members);
    busy_s_ = (ticks + departed_ticks_) / ticks_per_s_;
    if (memory) memory_bytes_ = memory_bytes;  // 0 once the whole tree is gone
  }

  std::filesystem::path proc_;
  int root_;
  std::vector<std::string> environment_;  // "KEY=VALUE": their holders are roots too (empty: none)
  std::string label_;        // covers()
  std::unordered_map<int, bool> environment_checked_;  // pid -> holds environment_
  long cpus_ = 1;
  double ticks_per_s_ = 100, page_bytes_ = 4096;
  double scanned_at_ = -1, busy_s_ = 0, last_busy_s_ = 0, memory_bytes_ = 0;
  bool memory_scanned_ = false;
  bool use_children_files_ = true;  // until a kernel (or a fake /proc) shows it has none
  std::unordered_map<int, Member> members_;  // the tree at the last scan
  double departed_ticks_ = 0;                // time of processes that left it unreaped
};

class EstimateMeter final : public Meter {
 public:
  EstimateMeter(const EstimateModel& model, std::unique_ptr<UsageSource> usage, bool cpu, bool memory)
      : model_(model), usage_(std::move(usage)), cpu_(cpu), memory_(memory) {
    const bool system = model_.scope == EstimateModel::Scope::system;
    if (cpu_) {
      ChannelInfo c;
      c.id = "estimate:cpu";
      c.source = "estimate";
      const std::string covers = usage_->covers();
      c.device = !covers.empty() ? "CPUs of the " + covers + " (linear model)"
                 : system        ? "all CPUs (linear model)"
                                 : "CPU time of the command (linear model)";
      c.component = Component::cpu;
      c.method = Method::estimated;
      c.cumulative = true;
      // The model's idle power of the CPUs it covers; the process scope
      // charges the watched processes only, so it needs no attribution.
      if (system) c.idle_power_w = usage_->logical_cpus() * model_.cpu_idle_w_per_core;
      c.run_scope = !system;
      channels_.push_back(c);
    }
    if (memory_) {
      ChannelInfo c;
      c.id = "estimate:memory";
      c.source = "estimate";
      const std::string covers = usage_->covers();
      c.device = !covers.empty() ? "memory of the " + covers + " (per-GB model)"
                 : system        ? "memory in use (per-GB model)"
                                 : "proportional memory of the command (per-GB model)";
      c.component = Component::dram;
      c.method = Method::estimated;
      c.cumulative = true;
      c.run_scope = !system;
      channels_.push_back(c);
    }
  }

  std::string source() const override { return "estimate"; }
  const std::vector<ChannelInfo>& channels() const override { return channels_; }
  // A model of utilization: reading /proc at every window boundary would cost
  // more than the window itself, and a sub-interval utilization is noise.
  bool read_at_boundaries() const override { return false; }

  void read(std::vector<ChannelSample>& out) override {
    const double t = steady_s();
    const double busy_s = cpu_ ? usage_->cpu_busy_seconds() : 0.0;
    const double mem_bytes = memory_ ? usage_->memory_used_bytes() : 0.0;
    const double cores = usage_->logical_cpus();
    const bool system = model_.scope == EstimateModel::Scope::system;

    if (last_t_ >= 0 && t > last_t_) {
      const double dt = t - last_t_;
      const double busy_cores = std::max(0.0, busy_s - last_busy_s_) / dt;
      if (system) {
        const double u = std::clamp(busy_cores / cores, 0.0, 1.0);
        cpu_power_w_ = cores * (model_.cpu_idle_w_per_core +
                                u * (model_.cpu_full_w_per_core - model_.cpu_idle_w_per_core));
      } else {
        cpu_power_w_ = std::min(busy_cores, cores) * model_.cpu_full_w_per_core;
      }
      cpu_energy_j_ += cpu_power_w_ * dt;
      mem_power_w_ = mem_bytes / 1e9 * model_.memory_w_per_gb;
      mem_energy_j_ += mem_power_w_ * dt;
    } else {
      cpu_power_w_ = system ? cores * model_.cpu_idle_w_per_core : 0.0;
      mem_power_w_ = mem_bytes / 1e9 * model_.memory_w_per_gb;
    }
    last_t_ = t;
    last_busy_s_ = busy_s;

    out.assign(channels_.size(), ChannelSample{});
    std::size_t i = 0;
    if (cpu_) out[i++] = ChannelSample{cpu_energy_j_, cpu_power_w_, {}};
    if (memory_) out[i++] = ChannelSample{mem_energy_j_, mem_power_w_, {}};
  }

 private:
  EstimateModel model_;
  std::unique_ptr<UsageSource> usage_;
  bool cpu_, memory_;
  std::vector<ChannelInfo> channels_;
  double last_t_ = -1, last_busy_s_ = 0;
  double cpu_energy_j_ = 0, mem_energy_j_ = 0, cpu_power_w_ = 0, mem_power_w_ = 0;
};

}  // namespace

std::unique_ptr<UsageSource> system_usage(const std::filesystem::path& proc_root,
                                          const std::filesystem::path& sysfs_root) {
  auto host = std::make_unique<SystemUsage>(proc_root);
  if (auto cgroup = confining_cgroup(proc_root, sysfs_root, host->logical_cpus())) return cgroup;
  return host;
}

std::unique_ptr<UsageSource> process_usage(const std::filesystem::path& proc_root, int pid) {
  return std::make_unique<ProcessUsage>(proc_root, pid);
}

std::unique_ptr<UsageSource> environment_usage(const std::filesystem::path& proc_root, int pid,
                                               std::vector<std::string> entries, std::string label) {
  if (entries.empty()) throw ConfigError("environment_usage needs at least one KEY=VALUE entry");
  return std::make_unique<ProcessUsage>(proc_root, pid, std::move(entries), std::move(label));
}

std::unique_ptr<Meter> make_estimate_meter(const EstimateModel& model, std::unique_ptr<UsageSource> usage,
                                           bool cpu, bool memory) {
  if (model.cpu_idle_w_per_core < 0 || model.cpu_full_w_per_core < model.cpu_idle_w_per_core ||
      model.memory_w_per_gb < 0)
    throw ConfigError("estimate model needs 0 <= idle W per core <= full-load W per core and memory W per GB >= 0");
  return std::make_unique<EstimateMeter>(model, std::move(usage), cpu, memory);
}

}  // namespace powertrain::energy
