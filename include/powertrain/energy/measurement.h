#pragma once
// The report of one measured command: `powertrain measure`, and its output formats.
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "powertrain/energy/carbon.h"
#include "powertrain/energy/estimate.h"
#include "powertrain/energy/host.h"
#include "powertrain/energy/registry.h"
#include "powertrain/energy/tracker.h"
#include "powertrain/io/output.h"

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

/// CPU time at one moment: of the machine (or of the cgroup powertrain is
/// confined to, as the system estimate reads it), of the measured command's
/// processes that powertrain has waited for, and of powertrain itself.
struct CpuSnapshot {
  double machine_busy_s = 0.0;  ///< busy CPU-seconds (steal left out)
  double command_s = 0.0;       ///< user+system of reaped children (RUSAGE_CHILDREN)
  double powertrain_s = 0.0;    ///< user+system of powertrain (RUSAGE_SELF): the meters, the protocol
};

/// Reads `machine` (system_usage()) and this process's rusage.
CpuSnapshot cpu_snapshot(UsageSource& machine);

/// Who used the CPUs over a window: energy counters are machine-wide, so CPU
/// time of other processes is charged to the command.
struct CpuShare {
  double machine_s = 0.0;
  double command_s = 0.0;
  double powertrain_s = 0.0;
  double others_s = 0.0;      ///< machine - command - powertrain (>= 0)
  double others_share = 0.0;  ///< others_s / machine_s
  /// Others used a material share: at least 10% of the machine's busy time and
  /// at least 1 CPU-second.
  bool material = false;
};
/// Between two snapshots, `begin` taken before the command started and `end`
/// after it was waited for.
CpuShare cpu_share(const CpuSnapshot& begin, const CpuSnapshot& end);

/// One node of a command that spans several nodes (one `measure` per node,
/// docs/measurement.md "Several nodes"): what that node's meter read.
struct NodeEnergy {
  int node = 0;
  std::string host;
  bool reported = true;  ///< false: no report came from the node (missing)
  int exit_code = 0;
  double duration_s = 0.0;
  double energy_j = 0.0;          ///< the command's own on that node
  double machine_energy_j = 0.0;  ///< what that node's meters read
  std::string method;
};

/// The nodes of a measured command and their total: energy summed, the
/// longest node's duration, every node's methods ("..., partial" when a node
/// is missing). One row for a launcher (torchrun) on one node.
struct NodesEnergy {
  int nodes = 1;
  std::vector<NodeEnergy> per_node;  ///< by rank; missing nodes have reported = false
  double duration_s = 0.0;
  double energy_j = 0.0;
  double machine_energy_j = 0.0;
  std::string method;
  bool partial = false;
  double emissions_kg = 0.0;  ///< of energy_j, with the report's carbon settings
};

struct Measurement {
  std::string run_id;                 ///< a random UUID
  std::string timestamp_utc;          ///< ISO 8601, when the command started
  std::vector<std::string> command;
  int exit_code = 0;
  WindowResult window;                ///< every channel over the whole command
  std::vector<GpuUse> gpu_use;        ///< per channel of `window` (unknown for non-GPU channels)
  /// Per channel of `window`: why a GPU's use is unknown (empty otherwise).
  std::vector<std::string> gpu_use_why;
  /// Energy of the command: in-total channels, leaving out GPUs it did not use.
  double energy_j = 0.0;
  double excluded_gpu_energy_j = 0.0;  ///< energy of GPUs the command did not use
  /// Peak of the summed power of the channels in energy_j (GPUs the command did
  /// not use left out), between samples.
  double peak_power_w = 0.0;
  std::string method;                 ///< methods behind energy_j, e.g. "estimated, attributed by CPU-time share"
  /// What the meters read over the command, every channel in total (the
  /// machine's figure beside energy_j, which is the command's own).
  double machine_energy_j = 0.0;
  /// How the command was told apart from the machine (energy::attribute_run).
  std::string attribution;
  Carbon carbon;
  std::optional<WindowResult> idle;   ///< baseline measured before the command
  /// Idle power of the channels in energy_j (GPUs the command did not use left
  /// out), and energy_j less that power over the command's duration.
  std::optional<double> idle_power_w;
  std::optional<double> energy_above_idle_j;
  double interval_s = 0.1;
  std::string estimate_scope;         ///< "system" or "process" (when an estimate was used)
  std::vector<SourceStatus> sources;
  HostInfo host;
  std::string project_name = "powertrain";
  std::string experiment_id;
  std::string region_code, region_name;
  /// CPU time of the command beside the machine's over the run (unset when it
  /// could not be read); a material share of others is noted in reports.
  std::optional<CpuShare> cpu;
  std::vector<EpochEnergy> epochs;  ///< empty unless the command reported epochs
  std::string epochs_note;          ///< why the epoch breakdown stopped early (a malformed event), if it did
  /// Per node and in total (a command over several nodes, or a launcher such
  /// as torchrun on this one); unset: not shown. The figures above are this
  /// node's.
  std::optional<NodesEnergy> nodes;
};

/// Whether this process runs in the machine's initial PID namespace, read from
/// PROC_ROOT/self/ns/pid. Only there are the process ids NVML reports (the
/// host's: the driver does not translate PID namespaces) comparable with ours.
/// false inside a container, and when the link cannot be read.
bool in_host_pid_namespace(const std::filesystem::path& proc_root = "/proc");

/// Fills m.gpu_use and m.gpu_use_why for the channels of m.window from what the
/// sampler saw of each GPU's processes (`log`, per channel) and the command's
/// process tree. A GPU is `unused` only when its process lists were read and
/// held none of the tree's ids while those ids are comparable (`host_pids`);
/// otherwise, unless a listed id is the tree's, its use is `unknown` and its
/// energy stays in the total.
void decide_gpu_use(Measurement& m, const std::vector<GpuProcessLog>& log, const std::set<std::uint32_t>& tree,
                    bool host_pids);

/// After decide_gpu_use: GPUs the user named (measure --gpus, NVML indices)
/// are the command's whatever their lists say; and for a command that starts
/// its work outside its process tree (`launches_elsewhere`: docker, srun) a
/// GPU without the command's processes is of unknown use, kept with a note,
/// never left out as unused.
void name_gpus(Measurement& m, const std::vector<unsigned>& named, const std::vector<ChannelInfo>& channels,
               bool launches_elsewhere);

/// Fills energy_j, excluded_gpu_energy_j, method, peak_power_w and (with an
/// idle window) idle_power_w and energy_above_idle_j from window, idle and
/// gpu_use. `timeline` (the tracker's) gives the peak when GPUs are left out.
void attribute(Measurement& m, const std::vector<TimelineSample>& timeline = {});

/// Human-readable report: a few lines and a table.
std::string to_text(const Measurement& m);
/// Machine-readable report.
nlohmann::json to_json(const Measurement& m);

/// Columns of CodeCarbon's emissions.csv, then powertrain_method.
const std::vector<std::string>& codecarbon_columns();
/// One CSV row (no newline) for `m` in codecarbon_columns() order.
std::string codecarbon_row(const Measurement& m);
/// The header line of that CSV (the columns joined, no newline).
std::string codecarbon_header();
/// Appends the row to `path` (io::append_csv): the header first when the file
/// is new or empty; a file that does not start with this header, holds binary
/// data or ends without a newline is refused. Throws IoError.
void append_codecarbon_csv(const std::filesystem::path& path, const Measurement& m);

/// What may be replaced by measure's report (-o: a previous report, text or
/// JSON) and timeline (a previous timeline); anything else only with `force`.
io::OutputRule report_output_rule(bool force);
io::OutputRule timeline_output_rule(bool force);

/// Writes the timeline as wide CSV (t_s, then power and GPU telemetry per
/// channel) with io::write_output (timeline_output_rule). Throws IoError.
void write_timeline_csv(const std::filesystem::path& path, const std::vector<ChannelInfo>& channels,
                        const std::vector<TimelineSample>& timeline, std::int64_t origin_ns, bool force = false);

}  // namespace powertrain::energy
