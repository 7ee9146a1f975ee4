#pragma once
// Sampler and measurement windows over a set of meters.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <condition_variable>
#include <deque>
#include <vector>

#include <optional>

#include "powertrain/energy/attribution.h"
#include "powertrain/energy/estimate.h"
#include "powertrain/energy/meter.h"

namespace powertrain::energy {

/// Energy of one channel over a window.
struct ChannelEnergy {
  std::string channel_id;
  std::string device;
  Component component = Component::cpu;
  Method method = Method::estimated;
  bool in_total = true;
  double energy_j = 0.0;
  double avg_power_w = 0.0;
  double peak_power_w = 0.0;  ///< highest power seen between samples in the window
  /// The source failed for part of the window (a GPU fell off the bus): energy_j
  /// covers only covered_s seconds of it and is not extrapolated past its last
  /// reading (sampled power: by at most ten intervals, at least 2 s).
  bool partial = false;
  double covered_s = 0.0;  ///< seconds of the window the energy covers
  std::string error;       ///< why it is partial (the source's error)
  /// What the meter read over the window; energy_j is the run's part of it
  /// (energy/attribution.h), equal to this where nothing was attributed.
  double machine_energy_j = 0.0;
  /// How energy_j was split from machine_energy_j ("" when it was not): e.g.
  /// "CPU-time share 48% + idle of 1 of 2 CPUs", "not the run's GPU".
  std::string attribution;
};

/// "counter", or "counter, partial" for a channel that covers only part of its window.
std::string method_label(const ChannelEnergy& c);

/// Energy of one component (sum of its in-total channels) over a window.
struct ComponentEnergy {
  Component component = Component::cpu;
  /// "counter", "sampled", "estimated" or e.g. "counter+estimated"; with
  /// ", partial" appended when a channel of it covers only part of the window.
  std::string method;
  double energy_j = 0.0;
  double avg_power_w = 0.0;
};

/// Other processes used a material share of the CPUs over a window: at least
/// 10% of the machine's busy CPU time and at least 1 CPU-second. Counters are
/// machine-wide, so their work is charged to the measured run.
inline constexpr double kMaterialOthersShare = 0.10;
inline constexpr double kMaterialOthersCpuS = 1.0;
bool material_interference(double others_cpu_s, double machine_cpu_s);

/// CPU time over a window: the machine's (or its cgroup's, see system_usage)
/// beside the measured processes' (powertrain and everything it started).
struct WindowCpu {
  double machine_s = 0.0;   ///< busy CPU-seconds of the machine (steal left out)
  double measured_s = 0.0;  ///< CPU-seconds of the measured process tree
  double others_s() const;      ///< machine - measured, at least 0
  double others_share() const;  ///< others_s / machine_s (0 when the machine was idle)
  bool material() const { return material_interference(others_s(), machine_s); }
};

/// What a measurement window returns.
struct WindowResult {
  std::string name;
  std::int64_t start_ns = 0;  ///< steady clock
  std::int64_t end_ns = 0;
  double duration_s = 0.0;
  std::vector<ChannelEnergy> channels;
  std::vector<ComponentEnergy> components;
  double energy_j = 0.0;      ///< the run's own: sum of its in-total channels' energy_j
  /// What the meters read: the in-total channels' machine_energy_j, GPUs that
  /// are not the run's included (the machine's figure, kept beside energy_j).
  double machine_energy_j = 0.0;
  /// How energy_j was attributed ("" when the tracker does not attribute):
  /// "attributed by CPU-time share", "attributed by CPU-time share and GPU processes".
  std::string attribution;
  double avg_power_w = 0.0;
  double peak_power_w = 0.0;  ///< peak of the summed in-total power between samples
  /// Methods of the in-total channels, e.g. "counter+estimated"; ", partial"
  /// appended when one of them covers only part of the window (see notes).
  std::string method;
  std::vector<std::string> notes;  ///< e.g. a window shorter than a source's update period
  /// Set when the tracker accounts CPU time (Tracker::account_cpu) and both
  /// sources could be read at the window's edges.
  std::optional<WindowCpu> cpu;
  double energy_j_of(Component c) const;
};

/// One row of the timeline: power per channel (index-aligned with channels()).
struct TimelineSample {
  std::int64_t t_ns = 0;
  std::vector<double> power_w;
  std::vector<GpuTelemetry> gpu;  ///< per channel (NaN for non-GPU channels)
};

struct TrackerOptions {
  /// Sampling interval; 10 ms to 60 s.
  std::chrono::milliseconds interval{100};
  /// Timeline capacity. When full, every other sample is dropped and the
  /// timeline keeps going at half the resolution (energy sums are unaffected).
  std::size_t max_timeline_samples = 100000;
};

/// Throws ConfigError if options are out of range.
void validate(const TrackerOptions& options);

/// What the sampler learned about the processes on one GPU channel.
struct GpuProcessLog {
  bool supported = false;           ///< the channel's source lists processes (NVML)
  std::vector<std::uint32_t> pids;  ///< every process id seen, as the driver reports them
  std::uint64_t lists = 0;          ///< process lists read successfully
  std::uint64_t failures = 0;       ///< process lists that could not be read
  std::string error;                ///< the first failure
};

/// What the tracker needs to charge windows to one run (attribute_to): the
/// machine's and the run's CPU time and memory, the CPUs reserved for it, the
/// GPUs it names, and whether NVML's process ids are comparable with ours.
struct RunScope {
  std::unique_ptr<UsageSource> machine;  ///< system_usage()
  std::unique_ptr<UsageSource> run;      ///< the run's process tree or cgroup
  Reservation reserved;                  ///< reserved_cpus()
  /// GPUs the run is told to use, the run's whatever their process lists say:
  /// NVML indices (measure --gpus) and CUDA ordinals (--device cuda:N), the
  /// latter counted over the tracker's GPU channels, which follow
  /// CUDA_VISIBLE_DEVICES.
  std::vector<int> gpus;
  std::vector<int> cuda_devices;
  /// NVML's process ids are this machine's (in_host_pid_namespace()): a GPU
  /// whose lists hold none of the run's is then another's; otherwise unknown.
  bool host_pids = true;
  /// The run launches its work outside its own processes (docker, srun): a GPU
  /// that shows none of them is of unknown use rather than another's.
  bool launches_elsewhere = false;
  /// A GPU of the run's that no source measures (RunShare::unmeasured_gpu).
  std::string unmeasured_gpu;
  /// Split GPU channels by claim (false: GPUs stay as read, e.g. for measure,
  /// which decides GPU use from the command's tree itself).
  bool attribute_gpus = true;
  /// Read the run's and the machine's memory at window ends (PSS of a process
  /// tree costs milliseconds); false: memory is charged by the CPU-time share.
  bool memory = true;
};

/// Reads a set of meters on one background thread and answers measurement
/// windows. Window boundaries read the energy counters (their value there, to the counter's step). Sampled and
/// estimated channels are not read there: windows see an energy that grows at
/// their latest sampled power and catches up with each new sample over the
/// next interval (continuous and never decreasing), so that a boundary costs no
/// more than the counter reads.
class Tracker {
 public:
  explicit Tracker(std::vector<std::unique_ptr<Meter>> meters, TrackerOptions options = {});
  ~Tracker();
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  /// Starts the sampling thread (takes a first reading). Idempotent.
  void start();
  /// Stops the sampling thread after a last reading. Idempotent.
  void stop();

  /// Called before each window boundary is read, e.g. to synchronize a GPU so
  /// that queued work lands in the window that issued it.
  void set_sync_hook(std::function<void()> hook);

  /// Accounts the CPU time of `machine` (system_usage) and of `measured`
  /// (process_usage of the measured tree) over every window opened after this
  /// call: WindowResult::cpu. A source that fails to read leaves cpu unset.
  void account_cpu(std::unique_ptr<UsageSource> machine, std::unique_ptr<UsageSource> measured);
  /// As account_cpu, and every window closed afterwards is charged to the run
  /// (attribute_window): its energy_j is the run's own, machine_energy_j what
  /// the meters read. Without this call windows are the machine's.
  void attribute_to(RunScope scope);
  /// Per GPU channel, whose it is so far (what the next window end would say).
  std::vector<GpuAttribution> gpu_claims() const;

  /// Opens a window. Names must be unique among open windows; windows may nest
  /// and overlap. Throws ConfigError on a duplicate open name.
  void begin(std::string name);
  /// Closes a window and returns its result. Throws ConfigError if not open.
  WindowResult end(std::string_view name);

  /// Every channel of every meter, in reading order.
  const std::vector<ChannelInfo>& channels() const { return channels_; }
  /// A copy of the timeline so far.
  std::vector<TimelineSample> timeline() const;
  /// Interval actually used between timeline samples (grows when decimated).
  std::chrono::milliseconds timeline_interval() const;
  /// Number of readings taken (sampler ticks plus window boundaries).
  std::uint64_t readings() const;
  /// Process ids seen on each GPU channel so far (empty lists for non-GPU
  /// channels); filled only if some meter lists processes.
  std::vector<std::vector<std::uint32_t>> gpu_processes() const;
  /// Per channel (empty logs for non-GPU channels): the process ids seen, and
  /// how many process lists were read or failed.
  std::vector<GpuProcessLog> gpu_process_log() const;
  /// First error a meter raised while sampling (empty if none).
  std::string sampling_error() const;

 private:
  struct Open;
  // CPU-seconds of (machine, measured) now, or nullopt (no accounting, or a read failed).
  std::optional<std::pair<double, double>> cpu_now();
  // Both require mu_. A boundary reading skips meters that are not read at
  // boundaries while the sampler runs.
  void reading_locked(std::int64_t t_ns, bool boundary);
  double energy_at_locked(std::size_t channel, std::int64_t t_ns) const;     // what windows see
  double sampled_energy_locked(std::size_t channel, std::int64_t t_ns) const;  // last reading + held power (capped)
  // Power of a cumulative channel at a sampler reading (span of >= 10 update periods).
  double counter_power_locked(std::size_t channel, std::int64_t t_ns, double reading_w, std::int64_t interval_ns);
  // The slope the smooth energy of a channel grows at (0 for a failed counter).
  double slope_power_locked(std::size_t channel, std::int64_t t_ns) const;
  // Seconds (ns) of the run so far that the channel's energy does not cover: a
  // failed source, past what windows may extrapolate.
  std::int64_t uncovered_ns_locked(std::size_t channel, std::int64_t t_ns) const;
  // How long sampled power is held when its source stops: ten intervals, at least 2 s.
  std::int64_t hold_cap_ns() const;
  void run();

  std::vector<std::unique_ptr<Meter>> meters_;
  TrackerOptions options_;
  std::vector<ChannelInfo> channels_;
  std::function<void()> sync_hook_;
  // CPU accounting: read only by the thread that opens and closes windows.
  std::mutex cpu_mu_;
  std::unique_ptr<UsageSource> cpu_machine_, cpu_measured_;
  // Attribution (attribute_to): set once before windows open.
  bool attribute_ = false;
  Reservation reserved_;
  std::vector<int> named_gpus_, named_cuda_;
  bool host_pids_ = true;
  bool launches_elsewhere_ = false;
  bool attribute_gpus_ = true;
  std::string unmeasured_gpu_;
  bool memory_share_ = true;
  int machine_cpus_ = 1;
  // The run's memory over the machine's now (attribution with memory), or nullopt.
  std::optional<double> attribution_memory_share();
  std::string run_basis_;
  // Per GPU channel (guarded by mu_): the run's processes seen on it, foreign
  // ones seen, and per-process utilization summed (the run's, everyone's).
  struct GpuUse {
    bool run_seen = false;
    std::vector<std::uint32_t> foreign;
    double util_run = 0.0, util_all = 0.0;
    std::uint64_t util_samples = 0;
    std::uint64_t last_seen_us = 0;
  };
  std::vector<GpuUse> gpu_use_;
  std::vector<GpuAttribution> claims_locked(const std::vector<double>* util_run0,
                                            const std::vector<double>* util_all0) const;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool running_ = false;
  bool stop_requested_ = false;
  std::thread thread_;

  // State of the latest reading (guarded by mu_).
  std::vector<bool> boundary_read_;    // per meter: read at window boundaries
  std::vector<ChannelSample> scratch_; // last full reading (telemetry for the timeline)
  std::vector<ChannelSample> part_;    // one meter's reading, reused across readings
  std::vector<double> acc_energy_j_;   // energy per channel from start to its last reading
  std::vector<std::int64_t> read_t_ns_;  // time of each channel's last reading (-1: none)
  std::vector<double> last_energy_j_;  // last raw cumulative value (cumulative channels)
  std::vector<double> held_power_w_;   // last valid power (power channels) or power over
                                       // the last sampler interval (cumulative); NaN before any
  // Channels of meters that boundaries skip, once the sampler gave them a power:
  // the energy windows see is report_j_ at report_t_ns_ plus report_w_ since then.
  std::vector<bool> smooth_;
  std::vector<double> report_j_;
  std::vector<std::int64_t> report_t_ns_;
  std::vector<double> report_w_;
  std::vector<double> cur_power_w_;    // as held_power_w_, but NaN after a failed read
  std::vector<std::int64_t> failed_since_ns_;  // first failed read since the last good one (-1: none)
  std::vector<std::int64_t> lost_ns_;          // gaps of sampled power longer than the cap, summed
  std::vector<std::string> error_;             // the latest failure of each channel
  // Cumulative channels: (time, acc) of recent sampler readings, for power over a span.
  std::vector<std::deque<std::pair<std::int64_t, double>>> history_;
  std::int64_t last_t_ns_ = -1;
  std::uint64_t readings_ = 0;
  std::string sampling_error_;

  std::vector<TimelineSample> timeline_;
  std::size_t keep_every_ = 1;   // decimation factor of the timeline
  std::uint64_t tick_ = 0;
  std::vector<GpuProcessLog> gpu_log_;

  std::vector<std::unique_ptr<Open>> open_;
};

}  // namespace powertrain::energy
