#pragma once
// Builds fake /sys trees in a temporary directory, laid out like the kernel's,
// for the sysfs-based energy sources (RAPL powercap, perf power PMU, INA3221).
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace powertrain::testing {

class FakeSysfs {
 public:
  /// The fake /sys (pass as ProbeOptions::sysfs_root).
  const std::filesystem::path& root() const { return dir_.path(); }
  /// A fake /proc next to it (pass as ProbeOptions::proc_root).
  std::filesystem::path proc_root() const { return dir_ / "proc"; }

  /// Writes root()/rel, creating folders.
  void write(const std::string& rel, const std::string& content) const;

  // ------------------------------------------------------------ RAPL powercap

  /// A powercap zone such as "intel-rapl:0" or "intel-rapl:0:1", with its
  /// name, energy_uj and max_energy_range_uj. As in the kernel, the zone's
  /// folder lives under devices/virtual/powercap/intel-rapl/ (subzones nested
  /// in their parent) and class/powercap/<zone> is a symlink to it, unless
  /// `symlink` is false: then class/powercap/<zone> is a plain folder.
  /// Returns the zone folder.
  std::filesystem::path add_rapl_zone(const std::string& zone, const std::string& name,
                                      std::uint64_t energy_uj, std::uint64_t max_energy_range_uj,
                                      bool symlink = true) const;
  /// Rewrites a zone's energy_uj.
  void set_rapl_energy(const std::string& zone, std::uint64_t energy_uj) const;
  /// class/powercap/<zone>/energy_uj.
  std::filesystem::path rapl_energy_file(const std::string& zone) const;

  // ------------------------------------------------------------ perf power PMU

  struct PerfEventSpec {
    std::string name;   ///< "energy-pkg"
    std::string event;  ///< "event=0x02"
    std::string scale = "2.3283064365386962890625e-10";
    std::string unit = "Joules";
  };
  /// bus/event_source/devices/power with `type` and the events (and cpumask
  /// when not empty). Returns the PMU folder.
  std::filesystem::path add_perf_power_pmu(const std::string& type,
                                           const std::vector<PerfEventSpec>& events,
                                           const std::string& cpumask = "") const;
  /// devices/system/cpu/cpuN/topology/physical_package_id.
  void add_cpu(int cpu, int package) const;
  /// proc/sys/kernel/perf_event_paranoid.
  void set_perf_event_paranoid(int value) const;

  // ------------------------------------------------------------ INA3221 rails

  struct HwmonChannel {
    int index;          ///< N of inN_*/currN_* (1..3; 7 is the shunt sum)
    std::string label;  ///< empty: no inN_label file
    std::int64_t voltage_mv;
    std::int64_t current_ma;
  };
  /// bus/i2c/drivers/ina3221/<device>/hwmon/<hwmon>/ with the channels.
  /// Returns the hwmon folder.
  std::filesystem::path add_ina3221_hwmon(const std::string& device, const std::string& hwmon,
                                          const std::vector<HwmonChannel>& channels) const;

  struct IioChannel {
    int index;  ///< N of rail_name_N, in_powerN_input, ...
    std::string label;
    std::int64_t power_mw;  ///< negative: no in_powerN_input file
    std::int64_t voltage_mv;
    std::int64_t current_ma;
  };
  /// bus/i2c/drivers/ina3221x/<device>/<iio_device>/ with the channels.
  std::filesystem::path add_ina3221_iio(const std::string& device, const std::string& iio_device,
                                        const std::vector<IioChannel>& channels) const;

 private:
  TempDir dir_;
};

}  // namespace powertrain::testing
