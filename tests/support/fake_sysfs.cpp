#include "fake_sysfs.h"

#include <stdexcept>

namespace powertrain::testing {

namespace fs = std::filesystem;

void FakeSysfs::write(const std::string& rel, const std::string& content) const {
  write_file(root() / rel, content + "\n");
}

fs::path FakeSysfs::add_rapl_zone(const std::string& zone, const std::string& name,
                                  std::uint64_t energy_uj, std::uint64_t max_energy_range_uj,
                                  bool symlink) const {
  fs::path dir;
  if (symlink) {
    // intel-rapl:0:1 nests in intel-rapl:0, as in the kernel's device tree.
    fs::path real = root() / "devices/virtual/powercap/intel-rapl";
    std::size_t second_colon = zone.find(':', zone.find(':') + 1);
    if (second_colon != std::string::npos) real /= zone.substr(0, second_colon);
    dir = real / zone;
    fs::create_directories(dir);
    fs::path link = root() / "class/powercap" / zone;
    fs::create_directories(link.parent_path());
    if (!fs::exists(fs::symlink_status(link))) fs::create_directory_symlink(dir, link);
  } else {
    dir = root() / "class/powercap" / zone;
    fs::create_directories(dir);
  }
  write_file(dir / "name", name + "\n");
  write_file(dir / "energy_uj", std::to_string(energy_uj) + "\n");
  write_file(dir / "max_energy_range_uj", std::to_string(max_energy_range_uj) + "\n");
  return dir;
}

void FakeSysfs::set_rapl_energy(const std::string& zone, std::uint64_t energy_uj) const {
  write_file(rapl_energy_file(zone), std::to_string(energy_uj) + "\n");
}

fs::path FakeSysfs::rapl_energy_file(const std::string& zone) const {
  return root() / "class/powercap" / zone / "energy_uj";
}

fs::path FakeSysfs::add_perf_power_pmu(const std::string& type,
                                       const std::vector<PerfEventSpec>& events,
                                       const std::string& cpumask) const {
  fs::path pmu = root() / "bus/event_source/devices/power";
  write_file(pmu / "type", type + "\n");
  if (!cpumask.empty()) write_file(pmu / "cpumask", cpumask + "\n");
  fs::create_directories(pmu / "events");
  for (const PerfEventSpec& e : events) {
    write_file(pmu / "events" / e.name, e.event + "\n");
    write_file(pmu / "events" / (e.name + ".scale"), e.scale + "\n");
    write_file(pmu / "events" / (e.name + ".unit"), e.unit + "\n");
  }
  return pmu;
}

void FakeSysfs::add_cpu(int cpu, int package) const {
  write("devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/physical_package_id",
        std::to_string(package));
}

void FakeSysfs::set_perf_event_paranoid(int value) const {
  write_file(proc_root() / "sys/kernel/perf_event_paranoid", std::to_string(value) + "\n");
}

fs::path FakeSysfs::add_ina3221_hwmon(const std::string& device, const std::string& hwmon,
                                      const std::vector<HwmonChannel>& channels) const {
  fs::path dir = root() / "bus/i2c/drivers/ina3221" / device / "hwmon" / hwmon;
  fs::create_directories(dir);
  for (const HwmonChannel& c : channels) {
    const std::string n = std::to_string(c.index);
    if (!c.label.empty()) write_file(dir / ("in" + n + "_label"), c.label + "\n");
    write_file(dir / ("in" + n + "_input"), std::to_string(c.voltage_mv) + "\n");
    write_file(dir / ("curr" + n + "_input"), std::to_string(c.current_ma) + "\n");
  }
  return dir;
}

fs::path FakeSysfs::add_ina3221_iio(const std::string& device, const std::string& iio_device,
                                    const std::vector<IioChannel>& channels) const {
  fs::path dir = root() / "bus/i2c/drivers/ina3221x" / device / iio_device;
  fs::create_directories(dir);
  for (const IioChannel& c : channels) {
    const std::string n = std::to_string(c.index);
    write_file(dir / ("rail_name_" + n), c.label + "\n");
    if (c.power_mw >= 0)
      write_file(dir / ("in_power" + n + "_input"), std::to_string(c.power_mw) + "\n");
    write_file(dir / ("in_voltage" + n + "_input"), std::to_string(c.voltage_mv) + "\n");
    write_file(dir / ("in_current" + n + "_input"), std::to_string(c.current_ma) + "\n");
  }
  return dir;
}

}  // namespace powertrain::testing
