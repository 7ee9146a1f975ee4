// Power rails of embedded boards (NVIDIA Jetson class) measured by INA3221
// monitors: voltage and current per rail, no energy counter, so the sampler
// integrates the power read here.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "powertrain/energy/registry.h"
#include "powertrain/error.h"
#include "sysfs.h"

namespace powertrain::energy {

namespace fs = std::filesystem;

namespace {

// Where one rail's power comes from: a power file (IIO, mW), or a voltage and
// a current file whose product is the power (hwmon, mV and mA).
struct RailFiles {
  std::string label;
  fs::path power_mw;
  fs::path voltage_mv;
  fs::path current_ma;
};

// Power in watts, or the errno of the first file that failed.
std::optional<double> read_power_w(const RailFiles& rail, int& error) {
  if (!rail.power_mw.empty()) {
    auto power_mw = sysfs::read_i64(rail.power_mw, &error);
    if (!power_mw) return std::nullopt;
    return static_cast<double>(*power_mw) * 1e-3;
  }
  auto voltage_mv = sysfs::read_i64(rail.voltage_mv, &error);
  if (!voltage_mv) return std::nullopt;
  auto current_ma = sysfs::read_i64(rail.current_ma, &error);
  if (!current_ma) return std::nullopt;
  // mV * mA = µW.
  return static_cast<double>(*voltage_mv) * static_cast<double>(*current_ma) * 1e-6;
}

bool file_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

// Files in `dir` named prefix<N>suffix, as N.
std::vector<int> numbered_files(const fs::path& dir, const std::string& prefix,
                                const std::string& suffix) {
  std::vector<int> numbers;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return numbers;
  for (const fs::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    auto n =
        sysfs::parse_u64(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
    if (n && *n < 1000) numbers.push_back(static_cast<int>(*n));
  }
  std::sort(numbers.begin(), numbers.end());
  return numbers;
}

// hwmon driver (newer kernels): …/ina3221/<i2c device>/hwmon/hwmonK/ with
// inN_label, inN_input (mV), currN_input (mA) for N = 1..3. in4..in6 are shunt
// voltages and in7 the shunt sum; none of them is a rail.
void find_hwmon_rails(const fs::path& driver_dir, std::vector<RailFiles>& rails) {
  for (const std::string& device : sysfs::list_dirs(driver_dir)) {
    const fs::path hwmon_parent = driver_dir / device / "hwmon";
    for (const std::string& hwmon : sysfs::list_dirs(hwmon_parent)) {
      if (hwmon.rfind("hwmon", 0) != 0) continue;
      const fs::path dir = hwmon_parent / hwmon;
      for (int n : numbered_files(dir, "in", "_label")) {
        if (n == 7) continue;
        const std::string N = std::to_string(n);
        RailFiles rail;
        rail.voltage_mv = dir / ("in" + N + "_input");
        rail.current_ma = dir / ("curr" + N + "_input");
        if (!file_exists(rail.voltage_mv) || !file_exists(rail.current_ma)) continue;
        // A disabled channel reads ENODATA; skip it instead of failing the source.
        if (sysfs::read_i64(dir / ("in" + N + "_enable")) == std::optional<std::int64_t>{0}) {
          continue;
        }
        sysfs::ReadResult label = sysfs::read_text(dir / ("in" + N + "_label"));
        if (!label.ok() || label.text.empty()) continue;
        rail.label = label.text;
        rails.push_back(std::move(rail));
      }
    }
  }
}

// IIO driver (older Jetson kernels): …/ina3221x/<i2c device>/iio:deviceK/ with
// rail_name_N, in_powerN_input (mW), in_currentN_input (mA), in_voltageN_input (mV).
void find_iio_rails(const fs::path& driver_dir, std::vector<RailFiles>& rails) {
  for (const std::string& device : sysfs::list_dirs(driver_dir)) {
    for (const std::string& iio : sysfs::list_dirs(driver_dir / device)) {
      if (iio.rfind("iio:device", 0) != 0) continue;
      const fs::path dir = driver_dir / device / iio;
      for (int n : numbered_files(dir, "rail_name_", "")) {
        const std::string N = std::to_string(n);
        sysfs::ReadResult label = sysfs::read_text(dir / ("rail_name_" + N));
        if (!label.ok() || label.text.empty()) continue;
        RailFiles rail;
        rail.label = label.text;
        if (file_exists(dir / ("in_power" + N + "_input"))) {
          rail.power_mw = dir / ("in_power" + N + "_input");
        } else {
          rail.voltage_mv = dir / ("in_voltage" + N + "_input");
          rail.current_ma = dir / ("in_current" + N + "_input");
          if (!file_exists(rail.voltage_mv) || !file_exists(rail.current_ma)) continue;
        }
        rails.push_back(std::move(rail));
      }
    }
  }
}

// Jetson modules whose INA3221 monitors have no rail for the module's input.
// Their rails measure the supply inputs of the module's regulators, so the
// ones marked in_total add up to the module's monitored power; rails that may
// be part of another are shown but not added. A module matches when every rail
// marked `required` is present.
struct RailRole {
  std::string_view label;
  Component component;
  bool in_total;
  bool required;
};
struct ModuleRails {
  std::string_view module;
  std::vector<RailRole> rails;
  std::string_view note;
};

const std::vector<ModuleRails>& module_tables() {
  static const std::vector<ModuleRails> tables = {
      {"Jetson AGX Orin",
       {{"VDD_GPU_SOC", Component::gpu, true, true},
        {"VDD_CPU_CV", Component::cpu, true, true},
        {"VIN_SYS_5V0", Component::board, true, true},
        {"VDDQ_VDD2_1V8AO", Component::dram, false, false}},
       "Jetson AGX Orin has no module input rail: its total is VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0; "
       "VDD_GPU_SOC counts as the GPU but holds the SoC core too, VDD_CPU_CV holds the CPU with the DLA/PVA "
       "accelerators, and VDDQ_VDD2_1V8AO (memory) is shown but not added, since whether VIN_SYS_5V0 feeds it is "
       "not documented; power drawn before these rails (the module's input stage) is not measured"},
      {"Jetson AGX Xavier",
       {{"GPU", Component::gpu, true, true},
        {"CPU", Component::cpu, true, true},
        {"SOC", Component::board, true, true},
        {"CV", Component::board, true, false},
        {"VDDRQ", Component::dram, true, false},
        {"SYS5V", Component::board, true, false}},
       "Jetson AGX Xavier has no module input rail: its total is the sum of the supply inputs it monitors (GPU, "
       "CPU, SOC, CV, VDDRQ, SYS5V); power drawn before them (the module's input stage) is not measured"},
  };
  return tables;
}

bool same_label(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

/// The module whose table the labels fit, if any.
const ModuleRails* match_module(const std::vector<std::string>& labels) {
  for (const ModuleRails& table : module_tables()) {
    bool all = true;
    for (const RailRole& role : table.rails) {
      if (!role.required) continue;
      all = all && std::any_of(labels.begin(), labels.end(),
                               [&](const std::string& l) { return same_label(l, role.label); });
    }
    if (all) return &table;
  }
  return nullptr;
}

class RailsMeter final : public Meter {
 public:
  RailsMeter(std::vector<ChannelInfo> channels, std::vector<RailFiles> rails)
      : channels_(std::move(channels)), rails_(std::move(rails)) {}

  std::string source() const override { return "rails"; }
  const std::vector<ChannelInfo>& channels() const override { return channels_; }
  // Sampled power: a boundary holds the last sample instead of reading the rails.
  bool read_at_boundaries() const override { return false; }

  void read(std::vector<ChannelSample>& out) override {
    out.assign(channels_.size(), ChannelSample{});
    for (std::size_t i = 0; i < rails_.size(); ++i) {
      int error = 0;
      auto power_w = read_power_w(rails_[i], error);
      if (!power_w) {
        throw SourceError("rails: cannot read " + channels_[i].id + ": " +
                          sysfs::errno_text(error));
      }
      out[i].power_w = *power_w;
    }
  }

 private:
  std::vector<ChannelInfo> channels_;
  std::vector<RailFiles> rails_;
};

}  // namespace

std::unique_ptr<Meter> open_rails(const ProbeOptions& options, SourceStatus& status) {
  status = SourceStatus{};
  status.source = "rails";
  status.description =
      "board power rails of INA3221 monitors (Jetson class), sampled and integrated";
  const fs::path drivers = options.sysfs_root / "bus/i2c/drivers";
  const fs::path hwmon_driver = drivers / "ina3221";
  const fs::path iio_driver = drivers / "ina3221x";

  std::vector<RailFiles> rails;
  find_hwmon_rails(hwmon_driver, rails);
  // A kernel has one driver or the other; the older one is only looked at when
  // the newer one gave nothing, so no rail is counted twice.
  if (rails.empty()) find_iio_rails(iio_driver, rails);

  if (rails.empty()) {
    std::error_code ec;
    if (fs::is_directory(hwmon_driver, ec) || fs::is_directory(iio_driver, ec)) {
      status.set_unavailable("an INA3221 driver is loaded but exposes no labeled rail under " +
                                   hwmon_driver.string() + " or " + iio_driver.string());
    } else {
      status.set_unavailable("no INA3221 power monitor (no ina3221 or ina3221x driver under " +
                                   drivers.string() + "): not a Jetson-class board");
    }
    return nullptr;
  }

  // Fail early, with the file named, rather than on the first sample.
  for (const RailFiles& rail : rails) {
    int error = 0;
    if (!read_power_w(rail, error)) {
      status.set_unavailable(
                       "cannot read INA3221 rail " + rail.label + ": " + sysfs::errno_text(error));
      return nullptr;
    }
  }

  std::vector<std::string> labels;
  for (const RailFiles& rail : rails) labels.push_back(rail.label);
  // Only the module's input rail counts: every other rail is a part of it.
  // A module without one (Jetson AGX Orin, AGX Xavier) adds up its rails by
  // its table instead.
  std::optional<std::size_t> total = sysfs::pick_total_rail(labels);
  const ModuleRails* module = total ? nullptr : match_module(labels);

  std::vector<ChannelInfo> channels;
  std::set<std::string> ids;
  for (std::size_t i = 0; i < rails.size(); ++i) {
    ChannelInfo info;
    info.source = "rails";
    info.device = rails[i].label;
    info.id = "rails:" + rails[i].label;
    // Two monitors may reuse a label; ids must stay unique.
    for (int k = 2; !ids.insert(info.id).second; ++k) {
      info.id = "rails:" + rails[i].label + "#" + std::to_string(k);
    }
    info.component = Component::board;
    info.method = Method::sampled;
    info.cumulative = false;
    info.in_total = total && *total == i;
    if (module) {
      for (const RailRole& role : module->rails) {
        if (!same_label(rails[i].label, role.label)) continue;
        info.component = role.component;
        info.in_total = role.in_total;
      }
      info.note = std::string(module->note);
    }
    // The INA3221 conversion time is small but configurable; not known here.
    info.update_period_s = 0.0;
    channels.push_back(std::move(info));
  }

  if (total) {
    status.description += "; module input: " + rails[*total].label +
                          " (the module's input, not the carrier board's: the carrier, its fans and its "
                          "peripherals are not measured)";
  } else if (module) {
    status.description += "; " + std::string(module->module) + ": " + std::string(module->note);
  } else {
    status.description +=
        "; no total input rail identified (looked for VDD_IN, POM_5V_IN, or a single rail "
        "with IN as a word of its name): rails are shown but not counted in totals";
  }
  status.available = true;
  status.channels = channels;
  return std::make_unique<RailsMeter>(std::move(channels), std::move(rails));
}

}  // namespace powertrain::energy
