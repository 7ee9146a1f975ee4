// RAPL energy counters through the powercap sysfs interface (Intel, and AMD Zen
// since about kernel 5.11, which reuses the intel-rapl zone names).
#include <algorithm>
#include <cerrno>
#include <cstdint>
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

constexpr const char* kZonePrefix = "intel-rapl:";
// RAPL refreshes its energy status registers about every millisecond.
constexpr double kRaplUpdatePeriodS = 0.001;

struct Zone {
  std::string dir_name;    // "intel-rapl:0:1"
  std::vector<int> index;  // {0, 1}
  fs::path dir;
  std::string name;  // contents of `name`: "package-0", "dram", "psys", ...
};

// "intel-rapl:0" -> {0}, "intel-rapl:0:1" -> {0, 1}. "intel-rapl-mmio:0" is not
// accepted on purpose: on recent Intel client CPUs it is a second interface to
// the package domain the MSR zones already report, and counting it would
// double the package energy.
std::optional<std::vector<int>> parse_zone_index(const std::string& dir_name) {
  if (dir_name.rfind(kZonePrefix, 0) != 0) return std::nullopt;
  std::vector<int> index;
  std::string rest = dir_name.substr(std::string(kZonePrefix).size());
  std::size_t start = 0;
  while (true) {
    std::size_t colon = rest.find(':', start);
    auto n = sysfs::parse_u64(rest.substr(start, colon - start));
    if (!n || *n > 1'000'000) return std::nullopt;
    index.push_back(static_cast<int>(*n));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (index.size() > 2) return std::nullopt;
  return index;
}

// Real sysfs lists every zone flat under class/powercap (as symlinks) and also
// nests subzones inside their parent; either layout alone is accepted.
std::vector<Zone> find_zones(const fs::path& powercap_dir) {
  std::map<std::string, Zone> by_name;
  auto add = [&](const fs::path& parent, const std::string& dir_name) {
    if (by_name.count(dir_name) != 0) return;
    auto index = parse_zone_index(dir_name);
    if (!index) return;
    Zone zone{dir_name, *index, parent / dir_name, {}};
    sysfs::ReadResult name = sysfs::read_text(zone.dir / "name");
    if (!name.ok() || name.text.empty()) return;
    zone.name = name.text;
    by_name.emplace(dir_name, std::move(zone));
  };
  for (const std::string& entry : sysfs::list_dirs(powercap_dir)) add(powercap_dir, entry);
  std::vector<fs::path> top_dirs;
  for (const auto& [dir_name, zone] : by_name) {
    if (zone.index.size() == 1) top_dirs.push_back(zone.dir);
  }
  for (const fs::path& top : top_dirs) {
    for (const std::string& entry : sysfs::list_dirs(top)) add(top, entry);
  }
  std::vector<Zone> zones;
  for (auto& [dir_name, zone] : by_name) zones.push_back(std::move(zone));
  std::sort(zones.begin(), zones.end(),
            [](const Zone& a, const Zone& b) { return a.index < b.index; });
  return zones;
}

// What a zone's energy belongs to and whether it counts in totals.
// Package zones count. DRAM counts too: on Intel the DRAM domain is not part
// of the package domain. Core and uncore (integrated GPU) are inside the
// package, and psys covers package and DRAM, so they would double count.
// Zone names this code does not know are kept but not counted.
ChannelInfo describe_zone(const Zone& zone, const std::string& parent_device) {
  ChannelInfo info;
  info.source = "rapl";
  info.method = Method::counter;
  info.cumulative = true;
  info.update_period_s = kRaplUpdatePeriodS;
  if (zone.index.size() == 1) {
    info.device = zone.name;
    if (zone.name.rfind("package", 0) == 0) {
      info.component = Component::cpu;
      info.in_total = true;
    } else if (zone.name == "psys") {
      info.component = Component::psys;
      info.in_total = false;
    } else {
      info.component = Component::cpu;
      info.in_total = false;
    }
  } else {
    info.device = parent_device + ":" + zone.name;
    if (zone.name == "dram") {
      info.component = Component::dram;
      info.in_total = true;
    } else {
      info.component = Component::cpu;
      info.in_total = false;
    }
  }
  info.id = "rapl:" + info.device;
  return info;
}

class RaplMeter final : public Meter {
 public:
  struct Counter {
    sysfs::OpenFile energy_uj;  // kept open: one pread per reading
    std::uint64_t max_range_uj = 0;  // 0 when max_energy_range_uj is unreadable
    std::uint64_t last_uj = 0;
    std::uint64_t total_uj = 0;  // extended across wraparounds since open
  };

  RaplMeter(std::vector<ChannelInfo> channels, std::vector<Counter> counters)
      : channels_(std::move(channels)), counters_(std::move(counters)) {}

  std::string source() const override { return "rapl"; }
  const std::vector<ChannelInfo>& channels() const override { return channels_; }

  void read(std::vector<ChannelSample>& out) override {
    out.assign(channels_.size(), ChannelSample{});
    for (std::size_t i = 0; i < counters_.size(); ++i) {
      Counter& c = counters_[i];
      int error = 0;
      auto cur_uj = c.energy_uj.read_u64(&error);
      if (!cur_uj) {
        throw SourceError("rapl: cannot read " + c.energy_uj.path().string() + ": " +
                          sysfs::errno_text(error));
      }
      c.total_uj += sysfs::rapl_delta_uj(c.last_uj, *cur_uj, c.max_range_uj);
      c.last_uj = *cur_uj;
      out[i].energy_j = static_cast<double>(c.total_uj) * 1e-6;
    }
  }

 private:
  std::vector<ChannelInfo> channels_;
  std::vector<Counter> counters_;
};

}  // namespace

std::unique_ptr<Meter> open_rapl(const ProbeOptions& options, SourceStatus& status) {
  status = SourceStatus{};
  status.source = "rapl";
  status.description =
      "CPU package and DRAM energy counters (RAPL, powercap sysfs); covers the CPUs and "
      "memory only, not the motherboard, fans, NIC or power-supply losses";
  const fs::path powercap_dir = options.sysfs_root / "class/powercap";

  std::vector<Zone> zones = find_zones(powercap_dir);
  if (zones.empty()) {
    status.set_unavailable(
                     "no RAPL powercap zones (virtual machine, container, or CPU without RAPL): "
                     "no intel-rapl:N under " +
                         powercap_dir.string(),
                     "on bare metal, load the driver: sudo modprobe intel_rapl_msr; a virtual "
                     "machine or container has none to load");
    return nullptr;
  }

  std::map<std::vector<int>, std::string> device_of_top;
  for (const Zone& z : zones) {
    if (z.index.size() == 1) device_of_top[z.index] = z.name;
  }

  std::vector<ChannelInfo> channels;
  std::vector<RaplMeter::Counter> counters;
  std::set<std::string> ids;
  std::vector<std::string> unreadable;
  std::optional<sysfs::Diagnosis> first_failure;
  bool permission_failure = false;
  for (const Zone& zone : zones) {
    RaplMeter::Counter counter;
    const fs::path energy_uj = zone.dir / "energy_uj";
    counter.energy_uj = sysfs::OpenFile(energy_uj);
    int error = 0;
    auto now_uj = counter.energy_uj.read_u64(&error);
    if (!now_uj) {
      bool permission = error == EACCES || error == EPERM;
      // Report the permission problem over any other: it is the common one and has a fix.
      if (!first_failure || (permission && !permission_failure)) {
        first_failure = sysfs::diagnose_rapl_read_error(energy_uj, error, powercap_dir);
      }
      permission_failure = permission_failure || permission;
      unreadable.push_back(zone.dir_name + " (" + zone.name + ")");
      continue;
    }
    counter.last_uj = *now_uj;
    counter.max_range_uj = sysfs::read_u64(zone.dir / "max_energy_range_uj").value_or(0);

    std::string parent_device = zone.name;
    if (zone.index.size() == 2) {
      auto it = device_of_top.find({zone.index[0]});
      parent_device =
          it != device_of_top.end() ? it->second : "zone-" + std::to_string(zone.index[0]);
    }
    ChannelInfo info = describe_zone(zone, parent_device);
    // Some multi-die parts name two zones alike; ids must stay unique.
    if (!ids.insert(info.id).second) {
      info.id += "@" + zone.dir_name;
      ids.insert(info.id);
    }
    channels.push_back(std::move(info));
    counters.push_back(std::move(counter));
  }

  if (channels.empty()) {
    status.set_unavailable(first_failure->reason, first_failure->fix);
    return nullptr;
  }
  if (!unreadable.empty()) {
    // Partly readable (e.g. only intel-rapl:0 was made readable): measure what
    // can be read, but say which zones are missing from the totals.
    std::string list;
    for (const std::string& z : unreadable) list += (list.empty() ? "" : ", ") + z;
    status.description +=
        "; NOT measured, unreadable zones: " + list + " — " + first_failure->reason;
    status.fix = first_failure->fix;
  }
  status.available = true;
  status.channels = channels;
  return std::make_unique<RaplMeter>(std::move(channels), std::move(counters));
}

}  // namespace powertrain::energy
