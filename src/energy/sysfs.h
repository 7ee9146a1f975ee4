#pragma once
// Private to the energy layer: reading small sysfs files, and the pure parts of
// the sysfs-based sources (RAPL powercap, perf power PMU, INA3221 rails) that
// tests call directly because a fake tree cannot reproduce them (root-only
// files, perf_event_open).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "powertrain/energy/types.h"

namespace powertrain::energy::sysfs {

/// Contents of a small file with trailing whitespace removed, or the errno of
/// the failed open/read in `error` (0 on success). sysfs reports every
/// attribute as 4096 bytes long, so the size is never trusted.
struct ReadResult {
  std::string text;
  int error = 0;
  bool ok() const { return error == 0; }
};
ReadResult read_text(const std::filesystem::path& path);

/// Parses a whole decimal (or, for hex, "0x"-prefixed) unsigned integer,
/// ignoring surrounding whitespace. nullopt on anything else.
std::optional<std::uint64_t> parse_u64(std::string_view text);
std::optional<std::int64_t> parse_i64(std::string_view text);
std::optional<double> parse_double(std::string_view text);

/// read_text + parse_u64; nullopt if either fails (errno in *error if given,
/// EINVAL for a malformed value).
std::optional<std::uint64_t> read_u64(const std::filesystem::path& path, int* error = nullptr);
std::optional<std::int64_t> read_i64(const std::filesystem::path& path, int* error = nullptr);

/// A sysfs attribute kept open and re-read from offset 0 with one pread per
/// reading, instead of open+read+close: window boundaries read counters this
/// way. sysfs regenerates an attribute's text on each read at offset 0; a
/// removed attribute (driver unloaded) then fails the read with ENODEV.
class OpenFile {
 public:
  OpenFile() = default;
  explicit OpenFile(const std::filesystem::path& path);  ///< check ok()/error()
  ~OpenFile();
  OpenFile(OpenFile&& other) noexcept;
  OpenFile& operator=(OpenFile&& other) noexcept;
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;

  bool ok() const { return fd_ >= 0; }
  int error() const { return error_; }  ///< errno of the failed open
  const std::filesystem::path& path() const { return path_; }
  /// The whole value parsed as read_u64 does; nullopt with errno in *error.
  std::optional<std::uint64_t> read_u64(int* error = nullptr) const;

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  int error_ = 0;
};

/// Names of the entries of `dir` that are directories, following symlinks
/// (sysfs class and bus folders are symlinks to the device tree). Sorted with
/// digit runs compared as numbers, so "hwmon10" follows "hwmon2". Empty if
/// `dir` does not exist.
std::vector<std::string> list_dirs(const std::filesystem::path& dir);

/// Natural order: digit runs compared by value.
bool natural_less(std::string_view a, std::string_view b);

/// "ENOENT (No such file or directory)"-style text for an errno value.
std::string errno_text(int error);

/// Parses a kernel CPU list ("0", "0,18", "0-3,8-11"). nullopt if malformed.
std::optional<std::vector<int>> parse_cpu_list(std::string_view text);

// ---------------------------------------------------------------- RAPL

/// Why a RAPL zone's energy_uj could not be read, and how to fix it.
struct Diagnosis {
  std::string reason;
  std::string fix;
};

/// Turns a failed read of `energy_uj` (errno `error`) under `powercap_dir`
/// into a user-facing reason and fix. EACCES/EPERM is the PLATYPUS
/// (CVE-2020-8694) root-only mode, and the fix names the exact commands.
Diagnosis diagnose_rapl_read_error(const std::filesystem::path& energy_uj, int error,
                                   const std::filesystem::path& powercap_dir);

/// Energy added to a counter that went from `prev_uj` to `cur_uj` and wraps
/// after `max_range_uj` (max_energy_range_uj, the largest value it holds; 0
/// when unknown): a wrap adds (max - prev) + 1 + cur.
std::uint64_t rapl_delta_uj(std::uint64_t prev_uj, std::uint64_t cur_uj,
                            std::uint64_t max_range_uj);

// ---------------------------------------------------------------- perf power PMU

/// One event of the perf power PMU, e.g. energy-pkg.
struct PerfEvent {
  std::string name;          ///< "energy-pkg"
  std::uint64_t config = 0;  ///< from "event=0x02"
  double scale = 1.0;        ///< joules per count (e.g. 2^-32) when unit is Joules
  std::string unit;          ///< "Joules"
};

/// Parses the text of events/<name> ("event=0x02"). Terms other than event=
/// (umask=, ...) would need the PMU's format/ folder to encode, and the power
/// PMU never uses them, so they make the event unusable: nullopt.
std::optional<std::uint64_t> parse_perf_event_config(std::string_view text);

/// Reads every energy-* event of a PMU folder (…/devices/power), with its
/// .scale and .unit files. Events whose config cannot be parsed or whose unit
/// is not Joules are left out. Sorted by name.
std::vector<PerfEvent> read_perf_events(const std::filesystem::path& pmu_dir);

/// One counter the perf source will open: its channel, and where and what.
struct PerfCounterPlan {
  ChannelInfo info;
  std::string event;         ///< "energy-pkg"
  int cpu = 0;               ///< a CPU of the package the event counts
  std::uint64_t config = 0;  ///< perf_event_attr.config
  double scale_j = 1.0;      ///< joules per count
};

/// Every counter to open for the PMU at `pmu_dir`: each energy event on one
/// CPU per package (from the PMU's cpumask, else the first CPU of each
/// physical_package_id under sysfs_root/devices/system/cpu, else CPU 0); psys
/// once. Channel ids "perf:package-0", "perf:package-0:dram", "perf:psys".
std::vector<PerfCounterPlan> plan_perf_counters(const std::filesystem::path& sysfs_root,
                                                const std::filesystem::path& pmu_dir);

/// Turns a failed perf_event_open (errno `error`) into a user-facing reason
/// and fix. `paranoid` is kernel.perf_event_paranoid if it could be read.
Diagnosis diagnose_perf_open_error(const std::string& event, int cpu, int error,
                                   std::optional<int> paranoid);

// ---------------------------------------------------------------- INA3221 rails

/// Whether a rail label names the board's total input. Exact names first
/// (VDD_IN, POM_5V_IN, case-insensitive); see pick_total_rail for the
/// fallback.
bool is_known_total_rail(std::string_view label);

/// Index of the board's total input rail among `labels`, or nullopt.
/// Rule: the first label that is_known_total_rail(); otherwise, if exactly one
/// label has "IN" as one of its '_'-separated words (e.g. "SYS_5V_IN"), that
/// one. "VIN_SYS_5V0" does not qualify: on Jetson AGX Orin it is a 5 V system
/// rail, not the board input, and substring matching would count it.
std::optional<std::size_t> pick_total_rail(const std::vector<std::string>& labels);

}  // namespace powertrain::energy::sysfs
