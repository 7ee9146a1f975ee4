// RAPL through the perf `power` PMU: a second path to the same counters, for
// machines where powercap's energy_uj is root-only but perf events are allowed.
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "powertrain/energy/registry.h"
#include "powertrain/error.h"
#include "sysfs.h"

namespace powertrain::energy {

namespace fs = std::filesystem;

namespace {

// Same registers as powercap, so the same refresh period.
constexpr double kRaplUpdatePeriodS = 0.001;

// A socket and the CPU its package-scope events are opened on.
struct Package {
  int cpu = 0;
  std::string device;  // "package-0"
};

// How each power PMU event maps onto the RAPL channel naming (see rapl.cpp
// for why each is or is not counted in totals). energy-gpu is the PP1 domain
// that powercap calls "uncore".
struct EventRole {
  const char* event;
  const char* suffix;  // appended to the package device; psys stands alone
  Component component;
  bool in_total;
};
constexpr EventRole kRoles[] = {
    {"energy-pkg", "", Component::cpu, true},
    {"energy-ram", ":dram", Component::dram, true},
    {"energy-cores", ":core", Component::cpu, false},
    {"energy-gpu", ":uncore", Component::cpu, false},
    {"energy-psys", "", Component::psys, false},
};

std::optional<int> read_int(const fs::path& path) {
  auto v = sysfs::read_i64(path);
  if (!v || *v < 0 || *v > 1'000'000) return std::nullopt;
  return static_cast<int>(*v);
}

// One CPU per package: the PMU's own cpumask names exactly those; without it,
// the first CPU of each physical_package_id; without topology, CPU 0.
std::vector<Package> find_packages(const fs::path& sysfs_root, const fs::path& pmu_dir) {
  const fs::path cpu_dir = sysfs_root / "devices/system/cpu";
  std::vector<int> cpus;
  sysfs::ReadResult mask = sysfs::read_text(pmu_dir / "cpumask");
  if (mask.ok()) {
    if (auto list = sysfs::parse_cpu_list(mask.text)) cpus = *list;
  }
  if (cpus.empty()) {
    std::set<int> seen_packages;
    for (const std::string& name : sysfs::list_dirs(cpu_dir)) {
      if (name.size() <= 3 || name.rfind("cpu", 0) != 0) continue;
      auto cpu = sysfs::parse_u64(name.substr(3));
      if (!cpu) continue;
      auto package = read_int(cpu_dir / name / "topology/physical_package_id");
      if (package && seen_packages.insert(*package).second) cpus.push_back(static_cast<int>(*cpu));
    }
  }
  if (cpus.empty()) cpus.push_back(0);

  std::vector<Package> packages;
  std::set<std::string> names;
  for (std::size_t i = 0; i < cpus.size(); ++i) {
    const fs::path topology = cpu_dir / ("cpu" + std::to_string(cpus[i])) / "topology";
    auto package_id = read_int(topology / "physical_package_id");
    std::string device = "package-" + std::to_string(package_id.value_or(static_cast<int>(i)));
    // Multi-die parts list one CPU per die in the cpumask.
    if (names.count(device) != 0) {
      auto die_id = read_int(topology / "die_id");
      device += "-die-" + std::to_string(die_id.value_or(static_cast<int>(i)));
    }
    names.insert(device);
    packages.push_back(Package{cpus[i], device});
  }
  return packages;
}

int open_counter(std::uint32_t type, std::uint64_t config, int cpu) {
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.size = sizeof attr;
  attr.type = type;
  attr.config = config;
  // The power PMU counts system-wide only: pid -1 and a CPU of the package.
  long fd = ::syscall(SYS_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
  return static_cast<int>(fd);
}

class PerfPowerMeter final : public Meter {
 public:
  struct Counter {
    int fd = -1;
    double scale_j = 1.0;  // joules per count
  };

  PerfPowerMeter(std::vector<ChannelInfo> channels, std::vector<Counter> counters)
      : channels_(std::move(channels)), counters_(std::move(counters)) {}
  ~PerfPowerMeter() override {
    for (const Counter& c : counters_) ::close(c.fd);
  }
  PerfPowerMeter(const PerfPowerMeter&) = delete;
  PerfPowerMeter& operator=(const PerfPowerMeter&) = delete;

  std::string source() const override { return "perf"; }
  const std::vector<ChannelInfo>& channels() const override { return channels_; }

  void read(std::vector<ChannelSample>& out) override {
    out.assign(channels_.size(), ChannelSample{});
    for (std::size_t i = 0; i < counters_.size(); ++i) {
      // The kernel extends the 32-bit hardware counter to 64 bits: no wraparound here.
      std::uint64_t count = 0;
      ssize_t n = ::read(counters_[i].fd, &count, sizeof count);
      if (n != static_cast<ssize_t>(sizeof count)) {
        throw SourceError("perf: cannot read " + channels_[i].id + ": " +
                          (n < 0 ? sysfs::errno_text(errno) : std::string("short read")));
      }
      out[i].energy_j = static_cast<double>(count) * counters_[i].scale_j;
    }
  }

 private:
  std::vector<ChannelInfo> channels_;
  std::vector<Counter> counters_;
};

}  // namespace

std::unique_ptr<Meter> open_perf_power(const ProbeOptions& options, SourceStatus& status) {
  status = SourceStatus{};
  status.source = "perf";
  status.description =
      "CPU package and DRAM energy counters (RAPL, perf power PMU); covers the CPUs and "
      "memory only, not the motherboard, fans, NIC or power-supply losses";
  const fs::path pmu_dir = options.sysfs_root / "bus/event_source/devices/power";

  std::error_code ec;
  if (!fs::is_directory(pmu_dir, ec)) {
    status.set_unavailable("no perf power PMU (" + pmu_dir.string() +
                                 " is missing: virtual machine, container, CPU without RAPL, "
                                 "or a kernel without RAPL perf events)");
    return nullptr;
  }
  int error = 0;
  auto type = sysfs::read_u64(pmu_dir / "type", &error);
  if (!type || *type > UINT32_MAX) {
    status.set_unavailable("cannot read the perf power PMU type from " +
                                 (pmu_dir / "type").string() + ": " + sysfs::errno_text(error));
    return nullptr;
  }

  std::vector<sysfs::PerfCounterPlan> plan = sysfs::plan_perf_counters(options.sysfs_root, pmu_dir);
  std::optional<int> paranoid;
  if (auto v = sysfs::read_i64(options.proc_root / "sys/kernel/perf_event_paranoid")) {
    paranoid = static_cast<int>(*v);
  }

  std::vector<ChannelInfo> channels;
  std::vector<PerfPowerMeter::Counter> counters;
  for (const sysfs::PerfCounterPlan& p : plan) {
    int fd = open_counter(static_cast<std::uint32_t>(*type), p.config, p.cpu);
    if (fd < 0) {
      // Usually every counter fails alike (permissions), so one reason is enough.
      int open_error = errno;
      for (const auto& c : counters) ::close(c.fd);
      sysfs::Diagnosis d = sysfs::diagnose_perf_open_error(p.event, p.cpu, open_error, paranoid);
      status.set_unavailable(d.reason, d.fix);
      return nullptr;
    }
    counters.push_back({fd, p.scale_j});
    channels.push_back(p.info);
  }
  if (channels.empty()) {
    status.set_unavailable("the perf power PMU at " + pmu_dir.string() +
                                 " lists no usable energy event (energy-pkg, energy-ram, "
                                 "energy-cores, energy-gpu, energy-psys with unit Joules)");
    return nullptr;
  }

  status.available = true;
  status.channels = channels;
  return std::make_unique<PerfPowerMeter>(std::move(channels), std::move(counters));
}

namespace sysfs {

std::vector<PerfCounterPlan> plan_perf_counters(const fs::path& sysfs_root,
                                                const fs::path& pmu_dir) {
  std::map<std::string, PerfEvent> events;
  for (PerfEvent& e : read_perf_events(pmu_dir)) events.emplace(e.name, e);
  std::vector<Package> packages = find_packages(sysfs_root, pmu_dir);

  std::vector<PerfCounterPlan> plan;
  for (std::size_t p = 0; p < packages.size(); ++p) {
    for (const EventRole& role : kRoles) {
      auto it = events.find(role.event);
      if (it == events.end()) continue;
      const bool psys = role.component == Component::psys;
      // psys is one platform-wide domain, not one per socket.
      if (psys && p > 0) continue;
      PerfCounterPlan counter;
      counter.event = role.event;
      counter.cpu = packages[p].cpu;
      counter.config = it->second.config;
      counter.scale_j = it->second.scale;
      ChannelInfo& info = counter.info;
      info.source = "perf";
      info.device = psys ? std::string("psys") : packages[p].device + role.suffix;
      info.id = "perf:" + info.device;
      info.component = role.component;
      info.method = Method::counter;
      info.cumulative = true;
      info.in_total = role.in_total;
      info.update_period_s = kRaplUpdatePeriodS;
      plan.push_back(std::move(counter));
    }
  }
  return plan;
}

}  // namespace sysfs

}  // namespace powertrain::energy
