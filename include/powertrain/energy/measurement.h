#pragma once
// The report of one measured command: `powertrain measure`, and its output formats.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "powertrain/energy/carbon.h"
#include "powertrain/energy/host.h"
#include "powertrain/energy/registry.h"
#include "powertrain/energy/tracker.h"

namespace powertrain::energy {

/// Whether a GPU ran the measured command's processes.
enum class GpuUse { used, unused, unknown };

/// One epoch of the measured command, when it reported its epochs over the
/// protocol of docs/external.md (energy attributed as the whole command's).
struct EpochEnergy {
  int epoch = 0;
  double duration_s = 0.0;
  double energy_j = 0.0;
  double train_energy_j = 0.0;
  double eval_energy_j = 0.0;
  double val_metric = 0.0;  ///< as the command reported it (NaN: none)
  std::string method;
};

struct Measurement {
  std::string run_id;                 ///< a random UUID
  std::string timestamp_utc;          ///< ISO 8601, when the command started
  std::vector<std::string> command;
  int exit_code = 0;
  WindowResult window;                ///< every channel over the whole command
  std::vector<GpuUse> gpu_use;        ///< per channel of `window` (unknown for non-GPU channels)
  /// Energy of the command: in-total channels, leaving out GPUs it did not use.
  double energy_j = 0.0;
  double excluded_gpu_energy_j = 0.0;  ///< energy of GPUs the command did not use
  std::string method;                 ///< methods behind energy_j, e.g. "estimated"
  Carbon carbon;
  std::optional<WindowResult> idle;   ///< baseline measured before the command
  std::optional<double> energy_above_idle_j;
  double interval_s = 0.1;
  std::string estimate_scope;         ///< "system" or "process" (when an estimate was used)
  std::vector<SourceStatus> sources;
  HostInfo host;
  std::string project_name = "powertrain";
  std::string experiment_id;
  std::string region_code, region_name;
  std::vector<EpochEnergy> epochs;  ///< empty unless the command reported epochs
  std::string epochs_note;          ///< why the epoch breakdown stopped early (a malformed event), if it did
};

/// Fills energy_j, excluded_gpu_energy_j and method from window and gpu_use.
void attribute(Measurement& m);

/// Human-readable report: a few lines and a table.
std::string to_text(const Measurement& m);
/// Machine-readable report.
nlohmann::json to_json(const Measurement& m);

/// Columns of CodeCarbon's emissions.csv, then powertrain_method.
const std::vector<std::string>& codecarbon_columns();
/// One CSV row (no newline) for `m` in codecarbon_columns() order.
std::string codecarbon_row(const Measurement& m);
/// Appends the row to `path`, writing the header first when the file is new or
/// empty. One write call: a reader never sees half a row. Throws IoError.
void append_codecarbon_csv(const std::filesystem::path& path, const Measurement& m);

/// Writes the timeline as wide CSV (t_s, then power and GPU telemetry per
/// channel) through a temporary file renamed into place. Throws IoError.
void write_timeline_csv(const std::filesystem::path& path, const std::vector<ChannelInfo>& channels,
                        const std::vector<TimelineSample>& timeline, std::int64_t origin_ns);

/// Throws IoError with one line if `path` could not be created or appended to,
/// without creating or changing it.
void check_writable(const std::filesystem::path& path);

}  // namespace powertrain::energy
