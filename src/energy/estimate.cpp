#include "powertrain/energy/estimate.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
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
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    double v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (!(in >> label) || label != "cpu") throw SourceError("unexpected format of " + (proc_ / "stat").string());
    for (double& x : v) in >> x;
    const double busy_ticks = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
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

// CPU time and RSS of a process tree. Children that already exited and were
// waited for are included through the parent's cutime/cstime.
class ProcessUsage final : public UsageSource {
 public:
  ProcessUsage(std::filesystem::path proc, int pid) : proc_(std::move(proc)), root_(pid) {
    cpus_ = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
    ticks_per_s_ = static_cast<double>(sysconf(_SC_CLK_TCK));
    page_bytes_ = static_cast<double>(sysconf(_SC_PAGESIZE));
  }
  int logical_cpus() const override { return static_cast<int>(cpus_); }

  double cpu_busy_seconds() override {
    scan();
    // The tree shrinks as processes exit; keep the total monotonic.
    last_busy_s_ = std::max(last_busy_s_, busy_s_);
    return last_busy_s_;
  }
  double memory_used_bytes() override {
    scan();
    return rss_bytes_;
  }

 private:
  struct Stat {
    int ppid = 0;
    double ticks = 0;  // utime + stime
    double child_ticks = 0;
    double rss_pages = 0;
  };

  bool read_stat(int pid, Stat& st) const {
    std::ifstream in(proc_ / std::to_string(pid) / "stat");
    std::string line;
    if (!std::getline(in, line)) return false;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) return false;
    std::istringstream rest(line.substr(close + 2));
    std::vector<std::string> f;
    std::string tok;
    while (rest >> tok) f.push_back(tok);
    // f[0] is field 3 (state); utime is field 14, rss field 24.
    if (f.size() < 22) return false;
    st.ppid = std::stoi(f[1]);
    st.ticks = std::stod(f[11]) + std::stod(f[12]);
    st.child_ticks = std::stod(f[13]) + std::stod(f[14]);
    st.rss_pages = std::stod(f[21]);
    return true;
  }

  void scan() {
    const double now = steady_s();
    if (now - scanned_at_ < 0.005) return;  // one scan serves both reads of a tick
    scanned_at_ = now;
    std::unordered_map<int, Stat> all;
    std::unordered_map<int, std::vector<int>> children;
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
    double ticks = 0, rss = 0;
    std::vector<int> stack{root_};
    bool first = true;
    while (!stack.empty()) {
      const int pid = stack.back();
      stack.pop_back();
      auto it = all.find(pid);
      if (it == all.end()) continue;
      ticks += it->second.ticks;
      if (first) ticks += it->second.child_ticks;
      first = false;
      rss += it->second.rss_pages;
      for (int c : children[pid]) stack.push_back(c);
    }
    if (all.count(root_)) {
      busy_s_ = ticks / ticks_per_s_;
      rss_bytes_ = rss * page_bytes_;
    } else {
      rss_bytes_ = 0;  // the process is gone; its CPU time stays counted
    }
  }

  std::filesystem::path proc_;
  int root_;
  long cpus_ = 1;
  double ticks_per_s_ = 100, page_bytes_ = 4096;
  double scanned_at_ = -1, busy_s_ = 0, last_busy_s_ = 0, rss_bytes_ = 0;
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
      c.device = system ? "all CPUs (linear model)" : "CPU time of the command (linear model)";
      c.component = Component::cpu;
      c.method = Method::estimated;
      c.cumulative = true;
      channels_.push_back(c);
    }
    if (memory_) {
      ChannelInfo c;
      c.id = "estimate:memory";
      c.source = "estimate";
      c.device = system ? "memory in use (per-GB model)" : "resident memory of the command (per-GB model)";
      c.component = Component::dram;
      c.method = Method::estimated;
      c.cumulative = true;
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

std::unique_ptr<UsageSource> system_usage(const std::filesystem::path& proc_root) {
  return std::make_unique<SystemUsage>(proc_root);
}

std::unique_ptr<UsageSource> process_usage(const std::filesystem::path& proc_root, int pid) {
  return std::make_unique<ProcessUsage>(proc_root, pid);
}

std::unique_ptr<Meter> make_estimate_meter(const EstimateModel& model, std::unique_ptr<UsageSource> usage,
                                           bool cpu, bool memory) {
  if (model.cpu_idle_w_per_core < 0 || model.cpu_full_w_per_core < model.cpu_idle_w_per_core ||
      model.memory_w_per_gb < 0)
    throw ConfigError("estimate model needs 0 <= idle W per core <= full-load W per core and memory W per GB >= 0");
  return std::make_unique<EstimateMeter>(model, std::move(usage), cpu, memory);
}

}  // namespace powertrain::energy
