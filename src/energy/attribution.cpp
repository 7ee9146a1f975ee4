#include "powertrain/energy/attribution.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "powertrain/energy/tracker.h"

namespace powertrain::energy {

std::string_view to_string(GpuClaim c) {
  switch (c) {
    case GpuClaim::run: return "run";
    case GpuClaim::other: return "other";
    case GpuClaim::unknown: return "unknown";
  }
  return "unknown";
}

namespace {

std::string percent(double share) { return fmt::format("{:.0f}%", share * 100.0); }

// The run's share of a CPU-like channel (CPUs, a board rail): idle power by
// the CPUs the run holds, the rest by the share of busy CPU time.
//
// Idle power is per CPU-second of capacity. The run holds the CPU-seconds it
// ran, and those of its reserved CPUs that it left unused, as far as the
// machine really had idle capacity: a reservation that is only a thread count
// does not keep others off, and when they fill the machine nothing was idle.
// So a run that neighbours slow down (the same work over a longer window) is
// not charged more idle power, and a Slurm allocation it does not use is
// charged whole.
struct Held {
  double of_machine = 0.0;      ///< CPU-seconds held over the machine's capacity
  double of_reservation = 1.0;  ///< CPU-seconds held over the reserved ones (at most 1)
};

Held held_cpus(const RunShare& s, double duration_s) {
  const double cpus = std::max(1, s.machine_cpus);
  const double capacity_s = cpus * duration_s;
  const double run_s = std::min(s.run_cpu_s.value_or(0.0), capacity_s);
  const double idle_capacity_s = std::max(0.0, capacity_s - s.machine_cpu_s.value_or(0.0));
  const double reserved_s = std::clamp(s.reserved_cpus, 0.0, cpus) * duration_s;
  const double held_s = run_s + std::min(std::max(0.0, reserved_s - run_s), idle_capacity_s);
  Held h;
  h.of_machine = capacity_s > 0 ? std::clamp(held_s / capacity_s, 0.0, 1.0) : 0.0;
  h.of_reservation = reserved_s > 0 ? std::clamp(held_s / reserved_s, 0.0, 1.0) : 1.0;
  return h;
}

void attribute_cpu(ChannelEnergy& ce, const ChannelInfo& info, const RunShare& s, double duration_s,
                   double cpu_share) {
  const double machine = ce.machine_energy_j;
  if (std::isfinite(info.idle_power_w) && info.idle_power_w >= 0) {
    const double idle_j = std::min(machine, info.idle_power_w * duration_s);
    const double cpus = std::max(1, s.machine_cpus);
    const double held = held_cpus(s, duration_s).of_machine;
    ce.energy_j = idle_j * held + (machine - idle_j) * cpu_share;
    ce.attribution = fmt::format("CPU-time share {} + idle power of {:.3g} of {} CPUs held ({:g} reserved: {})",
                                 percent(cpu_share), held * cpus, s.machine_cpus,
                                 std::min<double>(s.reserved_cpus, s.machine_cpus), s.reserved_basis);
  } else {
    ce.energy_j = machine * cpu_share;
    ce.attribution = fmt::format("CPU-time share {} (idle power unknown)", percent(cpu_share));
  }
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += i + 1 == parts.size() ? " and " : ", ";
    out += parts[i];
  }
  return out;
}

void add_note(WindowResult& w, std::string note) {
  if (note.empty() || std::find(w.notes.begin(), w.notes.end(), note) != w.notes.end()) return;
  w.notes.push_back(std::move(note));
}


}  // namespace

void attribute_window(WindowResult& w, const std::vector<ChannelInfo>& channels, const RunShare& s) {
  std::optional<double> cpu_share;
  if (s.machine_cpu_s && s.run_cpu_s) {
    // A machine that did nothing measurable: the run's share of nothing busy is
    // all of its own busy time, i.e. the whole dynamic part (which is ~0).
    cpu_share = *s.machine_cpu_s > 0 ? std::clamp(*s.run_cpu_s / *s.machine_cpu_s, 0.0, 1.0) : 1.0;
  }
  bool by_cpu = false, by_memory = false, by_gpu = false;
  w.machine_energy_j = 0.0;
  for (std::size_t i = 0; i < w.channels.size(); ++i) {
    auto& ce = w.channels[i];
    ce.machine_energy_j = ce.energy_j;
    if (ce.in_total) w.machine_energy_j += ce.machine_energy_j;
    if (i >= channels.size()) continue;
    const auto& info = channels[i];
    if (info.run_scope) continue;
    switch (info.component) {
      case Component::cpu:
      case Component::psys:
      case Component::board:
        if (!cpu_share) {
          add_note(w, fmt::format("the CPU time of the machine or of the run could not be read: {} is charged whole",
                                  info.id));
          break;
        }
        attribute_cpu(ce, info, s, w.duration_s, *cpu_share);
        by_cpu = by_cpu || ce.in_total;
        break;
      case Component::dram:
        if (s.memory_share) {
          // Its share of the memory in use, over the time it held its CPUs:
          // time it waited for CPUs that others occupied is not charged to it,
          // so neighbours that slow it down do not make its memory cost more.
          const double m = std::clamp(*s.memory_share, 0.0, 1.0);
          const double held = cpu_share ? held_cpus(s, w.duration_s).of_reservation : 1.0;
          ce.energy_j = ce.machine_energy_j * m * held;
          ce.attribution = held < 1.0 ? fmt::format("memory share {} over {} of the window (its CPU time)",
                                                    percent(m), percent(held))
                                      : fmt::format("memory share {}", percent(m));
          by_memory = by_memory || ce.in_total;
        } else if (cpu_share) {
          ce.energy_j = ce.machine_energy_j * *cpu_share;
          ce.attribution = fmt::format("CPU-time share {} (memory share unknown)", percent(*cpu_share));
          by_cpu = by_cpu || ce.in_total;
        } else {
          add_note(w, fmt::format("the run's memory and CPU time could not be read: {} is charged whole", info.id));
        }
        break;
      case Component::gpu: {
        if (i >= s.gpus.size()) break;
        const auto& g = s.gpus[i];
        add_note(w, g.note);
        if (g.claim == GpuClaim::other) {
          ce.energy_j = 0.0;
          ce.attribution = "not the run's GPU";
          by_gpu = by_gpu || ce.in_total;
        } else if (g.claim == GpuClaim::run) {
          const double share = std::clamp(g.share, 0.0, 1.0);
          ce.energy_j = ce.machine_energy_j * share;
          ce.attribution = g.basis.empty() ? "the run's GPU" : fmt::format("{} {}", g.basis, percent(share));
          by_gpu = by_gpu || ce.in_total;
        } else {
          ce.attribution = "GPU of unknown use, charged whole";
        }
        break;
      }
    }
    ce.avg_power_w = w.duration_s > 0 ? ce.energy_j / w.duration_s : 0.0;
  }

  // Totals and components from the run's figures.
  w.energy_j = 0.0;
  bool any[3] = {false, false, false};
  bool any_partial = false;
  for (auto& comp : w.components) comp.energy_j = 0.0;
  for (const auto& ce : w.channels) {
    if (!ce.in_total) continue;
    w.energy_j += ce.energy_j;
    any[static_cast<int>(ce.method)] = true;
    any_partial = any_partial || ce.partial;
    for (auto& comp : w.components)
      if (comp.component == ce.component) comp.energy_j += ce.energy_j;
  }
  for (auto& comp : w.components) comp.avg_power_w = w.duration_s > 0 ? comp.energy_j / w.duration_s : 0.0;
  w.avg_power_w = w.duration_s > 0 ? w.energy_j / w.duration_s : 0.0;

  std::vector<std::string> by;
  if (by_cpu) by.push_back("CPU-time share");
  if (by_memory) by.push_back("memory share");
  if (by_gpu) by.push_back("GPU processes");
  w.attribution = by.empty() ? "" : "attributed by " + join(by);
  w.method = join_methods(any[0], any[1], any[2]) + (any_partial ? ", partial" : "");
  if (!w.attribution.empty()) w.method += ", " + w.attribution;
  if (!s.unmeasured_gpu.empty()) {
    w.method += ", GPU not measured";
    add_note(w, s.unmeasured_gpu);
  }
}

namespace {

std::optional<double> read_number(const std::filesystem::path& p) {
  std::ifstream in(p);
  double v = 0;
  if (in >> v) return v;
  return std::nullopt;
}

// The CPU quota of this process's cgroup, as CPUs: v2 cpu.max ("max 100000"
// is none), v1 cpu.cfs_quota_us / cpu.cfs_period_us (-1 is none).
std::optional<double> cgroup_quota_cpus(const std::filesystem::path& proc_root, const std::filesystem::path& sysfs) {
  std::ifstream in(proc_root / "self/cgroup");
  std::string line;
  std::optional<double> best;
  while (std::getline(in, line)) {
    // hierarchy-ID:controller-list:cgroup-path
    const auto a = line.find(':');
    const auto b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    const std::string rel = path.size() > 1 ? path.substr(1) : "";
    if (controllers.empty()) {
      for (const auto& root : {sysfs / "fs/cgroup", sysfs / "fs/cgroup/unified"}) {
        std::ifstream max(root / rel / "cpu.max");
        std::string quota, period;
        if (max >> quota >> period && quota != "max") {
          const double q = std::atof(quota.c_str()), p = std::atof(period.c_str());
          if (q > 0 && p > 0) best = std::min(best.value_or(q / p), q / p);
        }
      }
    } else if (("," + controllers + ",").find(",cpu,") != std::string::npos) {
      for (const auto& dir : {sysfs / "fs/cgroup/cpu" / rel, sysfs / "fs/cgroup/cpu,cpuacct" / rel}) {
        const auto q = read_number(dir / "cpu.cfs_quota_us");
        const auto p = read_number(dir / "cpu.cfs_period_us");
        if (q && p && *q > 0 && *p > 0) best = std::min(best.value_or(*q / *p), *q / *p);
      }
    }
  }
  return best;
}

}  // namespace

Reservation reserved_cpus(int machine_cpus, int threads, const std::string& proc_root, const std::string& sysfs_root) {
  machine_cpus = std::max(1, machine_cpus);
  const auto cap = [&](double v, std::string basis) {
    return Reservation{std::clamp(v, 0.0, static_cast<double>(machine_cpus)), std::move(basis)};
  };
  if (std::getenv("SLURM_JOB_ID") != nullptr)
    if (const char* n = std::getenv("SLURM_CPUS_ON_NODE"); n != nullptr && std::atof(n) > 0)
      return cap(std::atof(n), "Slurm allocation");
  if (const auto q = cgroup_quota_cpus(proc_root, sysfs_root); q && *q < machine_cpus) return cap(*q, "cgroup quota");
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && proc_root == "/proc") {
    const int n = CPU_COUNT(&set);
    if (n > 0 && n < machine_cpus) return cap(n, "cpuset");
  }
  if (threads > 0 && threads < machine_cpus) return cap(threads, "threads");
  return cap(machine_cpus, "whole machine");
}

}  // namespace powertrain::energy
