// NVIDIA GPU energy through NVML, loaded with dlopen (see nvml_api.h).
//
// The energy counter (Volta and newer) is the reference: over a window much
// longer than its ~100 ms update period it is the best figure NVML offers,
// though on A100/H100 it is built from power sampled only part of the time.
// GPUs without it fall back to power readings that the Tracker integrates:
// the instantaneous power field where the driver has it, else the power
// reading, a one-second average on recent GPUs. Every channel says which
// method it uses.
#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nvml_api.h"
#include "nvml_library.h"
#include "powertrain/energy/registry.h"
#include "powertrain/error.h"

namespace powertrain::energy {
namespace {

using namespace nvml_support;

constexpr std::string_view kSource = "nvml";
constexpr std::string_view kDescription =
    "NVIDIA GPU energy through NVML: the energy counter where the GPU has one (Volta and newer), "
    "else sampled power";

// The counter refreshes about every 100 ms.
constexpr double kCounterUpdatePeriod_s = 0.1;
// nvmlDeviceGetPowerUsage is a one-second moving average on Ampere and newer
// (GA100 excepted) and instantaneous on older GPUs. Most GPUs without the
// counter predate Volta, but not all do, and telling architectures apart needs
// more of the API: declare the longer period so short windows are flagged.
constexpr double kPowerUpdatePeriod_s = 1.0;
// NVML_FI_DEV_POWER_INSTANT (recent drivers only): its refresh rate is not
// documented; short windows are flagged as for the counter.
constexpr double kInstantPowerUpdatePeriod_s = 0.1;

// Process lists are usually short; the buffer grows when a GPU runs more.
constexpr unsigned kInitialProcessCapacity = 8;
// Processes can start between NVML's size report and the next call, so the
// list is asked for again a few times before giving up.
constexpr int kProcessListAttempts = 6;

/// One measured GPU.
struct Gpu {
  unsigned index = 0;
  nvml::Device handle = nullptr;
  bool counter = false;
  bool instant = false;  // NVML_FI_DEV_POWER_INSTANT answers: power is read from it
  unsigned long long last_energy_mj = 0;   // raw counter value at the last read
  unsigned long long total_energy_mj = 0;  // energy since open, carried across counter resets
  // Telemetry a GPU answers NOT_SUPPORTED for is not asked again: each call is a
  // driver round trip, and the sampler may tick every 10 ms.
  bool limit_supported = true;
  bool utilization_supported = true;
  bool clock_supported = true;
  bool temperature_supported = true;
  bool memory_supported = true;
  unsigned process_capacity = kInitialProcessCapacity;
  // Process utilization samples are asked for after the last one seen.
  unsigned long long last_sample_us = 0;
  bool process_utilization_supported = true;
  // Fell off the bus (GPU_IS_LOST): not asked again, its error kept.
  bool lost = false;
  std::string error;  // why its latest read failed (empty: it did not)
};

/// Calls an optional telemetry function; false when it is missing, unsupported or failed.
template <class Fn, class... Args>
bool query_optional(bool& supported, Fn fn, Args... args) {
  if (!supported || fn == nullptr) return false;
  const nvml::Return rc = fn(args...);
  if (rc == nvml::kNotSupported) supported = false;
  return rc == nvml::kSuccess;
}

class NvmlMeter final : public Meter {
 public:
  NvmlMeter(std::unique_ptr<Library> lib, std::vector<Gpu> gpus, std::vector<ChannelInfo> channels)
      : lib_(std::move(lib)), gpus_(std::move(gpus)), channels_(std::move(channels)) {}

  std::string source() const override { return std::string(kSource); }
  const std::vector<ChannelInfo>& channels() const override { return channels_; }

  void read(std::vector<ChannelSample>& out) override { read_gpus(out, true); }

  // Counters are read at window boundaries (with the power of any power-only
  // GPU in the same meter); a meter of power-only GPUs is left to the sampler.
  bool read_at_boundaries() const override {
    return std::any_of(gpus_.begin(), gpus_.end(), [](const Gpu& g) { return g.counter; });
  }
  // At a boundary only the energy counter matters: power and telemetry are
  // driver round trips the sampler takes anyway.
  void read_energy(std::vector<ChannelSample>& out) override { read_gpus(out, false); }

  bool lists_processes() const override {
    return lib_->get_processes_v2 != nullptr || lib_->get_processes_v1 != nullptr;
  }

  std::vector<std::uint32_t> processes(std::size_t index) override {
    if (index >= gpus_.size()) return {};
    if (gpus_[index].lost) throw SourceError(gpus_[index].error);
    if (lib_->get_processes_v2 != nullptr) return list_processes<nvml::ProcessInfoV2>(lib_->get_processes_v2, gpus_[index]);
    if (lib_->get_processes_v1 != nullptr) return list_processes<nvml::ProcessInfoV1>(lib_->get_processes_v1, gpus_[index]);
    return {};
  }

  std::string channel_error(std::size_t index) const override {
    return index < gpus_.size() ? gpus_[index].error : std::string();
  }

  bool process_utilization(std::size_t index, std::vector<ProcessUtilization>& out) override {
    out.clear();
    if (index >= gpus_.size() || lib_->get_process_utilization == nullptr) return false;
    Gpu& gpu = gpus_[index];
    if (gpu.lost || !gpu.process_utilization_supported) return false;
    unsigned count = 0;
    nvml::Return rc = lib_->get_process_utilization(gpu.handle, nullptr, &count, gpu.last_sample_us);
    if (rc == nvml::kNotFound) return true;  // no new samples: nothing ran since the last call
    if (rc == nvml::kNotSupported || rc == nvml::kNoPermission) {
      gpu.process_utilization_supported = false;
      return false;
    }
    if (rc != nvml::kInsufficientSize && rc != nvml::kSuccess) return false;
    std::vector<nvml::ProcessUtilizationSample> samples(std::max(1u, count) + 4);
    count = static_cast<unsigned>(samples.size());
    rc = lib_->get_process_utilization(gpu.handle, samples.data(), &count, gpu.last_sample_us);
    if (rc == nvml::kNotFound) return true;
    if (rc != nvml::kSuccess) return false;
    for (unsigned k = 0; k < count && k < samples.size(); ++k) {
      const auto& s = samples[k];
      gpu.last_sample_us = std::max(gpu.last_sample_us, s.timestamp_us);
      out.push_back({s.pid, static_cast<double>(s.sm_util)});
    }
    return true;
  }

 private:
  // Each GPU fails alone: one that falls off the bus (GPU_IS_LOST) or stops
  // answering reads NaN with its reason in channel_error(), and the others
  // are still measured. A lost GPU is not asked again.
  void read_gpus(std::vector<ChannelSample>& out, bool full) {
    out.assign(gpus_.size(), ChannelSample{});
    for (std::size_t i = 0; i < gpus_.size(); ++i) {
      Gpu& gpu = gpus_[i];
      ChannelSample& sample = out[i];
      if (gpu.lost) continue;
      gpu.error.clear();
      auto fail = [&](std::string_view what, nvml::Return rc) {
        gpu.error = fmt::format("nvml: reading the {} of gpu{} failed: {}", what, gpu.index, lib_->describe(rc));
        if (rc == nvml::kGpuIsLost) {
          gpu.lost = true;
          gpu.error += "; it is not read again (check `nvidia-smi` and the kernel log for Xid errors)";
        }
        sample = ChannelSample{};
      };
      if (gpu.counter) {
        unsigned long long energy_mj = 0;
        const nvml::Return rc = lib_->get_energy(gpu.handle, &energy_mj);
        if (rc != nvml::kSuccess) {
          fail("energy counter", rc);
          continue;
        }
        // The counter starts at zero when the driver loads; a smaller value means
        // it started again, and everything it counted since then is new energy.
        gpu.total_energy_mj += energy_mj >= gpu.last_energy_mj ? energy_mj - gpu.last_energy_mj : energy_mj;
        gpu.last_energy_mj = energy_mj;
        sample.energy_j = static_cast<double>(gpu.total_energy_mj) / 1000.0;
        if (!full) continue;
      }

      nvml::Return rc = nvml::kFunctionNotFound;
      const double power_w = read_power(gpu, rc);
      if (!std::isnan(power_w)) {
        sample.power_w = power_w;
      } else if (!gpu.counter) {
        fail("power", rc);
        continue;
      } else if (rc == nvml::kGpuIsLost) {
        fail("power", rc);  // the counter answered a moment ago; the GPU is gone now
        continue;
      }
      if (full) read_telemetry(gpu, sample.gpu);
    }
  }

  /// The GPU's power in watts (NaN when it cannot be read; `rc` says why):
  /// the instantaneous field where the driver has it, else
  /// nvmlDeviceGetPowerUsage (a one-second average on Ampere and newer).
  double read_power(Gpu& gpu, nvml::Return& rc) {
    if (gpu.instant) {
      const double w = field_power_w(*lib_, gpu.handle, nvml::kFieldPowerInstant, rc);
      if (!std::isnan(w) || rc == nvml::kGpuIsLost) return w;
    }
    unsigned power_mw = 0;
    rc = lib_->get_power != nullptr ? lib_->get_power(gpu.handle, &power_mw) : nvml::kFunctionNotFound;
    return rc == nvml::kSuccess ? power_mw / 1000.0 : kNaN;
  }

  void read_telemetry(Gpu& gpu, GpuTelemetry& t) {
    unsigned limit_mw = 0;
    if (query_optional(gpu.limit_supported, lib_->get_power_limit, gpu.handle, &limit_mw))
      t.power_limit_w = limit_mw / 1000.0;
    nvml::Utilization utilization{};
    if (query_optional(gpu.utilization_supported, lib_->get_utilization, gpu.handle, &utilization))
      t.utilization_pct = utilization.gpu;
    unsigned sm_mhz = 0;
    if (query_optional(gpu.clock_supported, lib_->get_clock, gpu.handle, nvml::kClockSm, &sm_mhz))
      t.sm_clock_mhz = sm_mhz;
    unsigned temperature_c = 0;
    if (query_optional(gpu.temperature_supported, lib_->get_temperature, gpu.handle, nvml::kTemperatureGpu,
                       &temperature_c))
      t.temperature_c = temperature_c;
    nvml::Memory memory{};
    if (query_optional(gpu.memory_supported, lib_->get_memory, gpu.handle, &memory))
      t.memory_used_bytes = static_cast<double>(memory.used);
  }

  template <class Info, class Fn>
  std::vector<std::uint32_t> list_processes(Fn fn, Gpu& gpu) {
    std::vector<Info> infos;
    for (int attempt = 0; attempt < kProcessListAttempts; ++attempt) {
      infos.resize(gpu.process_capacity);
      unsigned count = gpu.process_capacity;
      const nvml::Return rc = fn(gpu.handle, &count, infos.data());
      if (rc == nvml::kSuccess) {
        std::vector<std::uint32_t> pids;
        pids.reserve(count);
        for (unsigned k = 0; k < count && k < infos.size(); ++k) pids.push_back(infos[k].pid);
        return pids;
      }
      // NOT_SUPPORTED (a vGPU, some MIG setups) and NO_PERMISSION (a MIG
      // parent GPU for a non-root user) say nothing about who uses the GPU:
      // they are failures, not an empty list.
      if (rc != nvml::kInsufficientSize)
        throw SourceError(
            fmt::format("nvml: listing the processes on gpu{} failed: {}", gpu.index, lib_->describe(rc)));
      // `count` now holds what NVML needs; doubling too absorbs processes that
      // start before the next call. The capacity is kept for later calls.
      gpu.process_capacity = std::max(count, gpu.process_capacity * 2);
    }
    throw SourceError(fmt::format("nvml: the process list of gpu{} kept outgrowing a buffer of {} entries",
                                  gpu.index, gpu.process_capacity));
  }

  std::unique_ptr<Library> lib_;  // destroyed last: NVML shuts down, then the library closes
  std::vector<Gpu> gpus_;
  std::vector<ChannelInfo> channels_;
};

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += separator;
    out += p;
  }
  return out;
}

}  // namespace

namespace {

/// The GPUs to measure: the options' list, else CUDA_VISIBLE_DEVICES, else all.
struct Selection {
  std::vector<unsigned> gpus;
  VisibleKinds kinds;
  std::string order_note;  ///< on every channel when CUDA's indices could not be mapped
  std::vector<std::string> notes;
};

/// nullopt, with `why` filled, when the selection names no GPU or a bad index.
std::optional<Selection> select_gpus(const ProbeOptions& options, const Library& lib, unsigned count,
                                     Unavailable& why) {
  Selection sel;
  auto none = [&why](std::string reason, std::string fix) -> std::optional<Selection> {
    why.reason = std::move(reason);
    why.fix = std::move(fix);
    return std::nullopt;
  };
  if (options.gpu_indices) {
    for (unsigned i : *options.gpu_indices) {
      if (i >= count)
        return none(fmt::format("GPU index {} was requested, but NVML sees {} GPU{} (indices 0-{})", i, count,
                                count == 1 ? "" : "s", count - 1),
                    "choose GPU indices that `nvidia-smi -L` lists");
      if (std::find(sel.gpus.begin(), sel.gpus.end(), i) == sel.gpus.end()) sel.gpus.push_back(i);
    }
    if (sel.gpus.empty()) return none("no GPUs: the GPU list is empty", "list the GPUs to measure");
    return sel;
  }
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (visible == nullptr) {
    for (unsigned i = 0; i < count; ++i) sel.gpus.push_back(i);
    return sel;
  }
  std::string note;
  sel.gpus = parse_visible_devices(visible, lib, count, note, sel.kinds);
  if (sel.gpus.empty())
    return none(fmt::format("no GPUs: CUDA_VISIBLE_DEVICES='{}' selects none{}", visible,
                            note.empty() ? "" : " (" + note + ")"),
                "unset CUDA_VISIBLE_DEVICES, or list the GPUs the job uses (indices or UUIDs from `nvidia-smi -L`)");
  if (!note.empty()) sel.notes.push_back(std::move(note));
  if (sel.kinds.by_index && !cuda_order_is_nvml_order(lib, count)) {
    // Which GPU CUDA's index means is not known here: measure them all
    // rather than guess (measure then leaves out those the command did not
    // use, where their process lists tell).
    sel.order_note = fmt::format(
        "CUDA_VISIBLE_DEVICES='{}' names GPUs by index, but CUDA numbers GPUs fastest first unless "
        "CUDA_DEVICE_ORDER=PCI_BUS_ID while NVML numbers them in PCI bus order, and these GPUs are not all the "
        "same model: which GPU an index means cannot be told, so every GPU is measured; set "
        "CUDA_DEVICE_ORDER=PCI_BUS_ID or name the GPUs by UUID",
        visible);
    sel.notes.push_back(sel.order_note);
    sel.gpus.clear();
    for (unsigned i = 0; i < count; ++i) sel.gpus.push_back(i);
  }
  return sel;
}

/// What a MIG split means for a GPU's channel, if it is split.
std::optional<std::string> mig_note(const Library& lib, unsigned index, nvml::Device handle, const Selection& sel,
                                    double& mig_share) {
  const bool named_instance = std::find(sel.kinds.mig.begin(), sel.kinds.mig.end(), index) != sel.kinds.mig.end();
  if (named_instance) mig_share = named_mig_share(lib, handle, sel.kinds.mig_entries);
  if (!named_instance && mig_instances(lib, handle) == 0) return std::nullopt;
  return std::isfinite(mig_share)
             ? fmt::format("gpu{} is split into MIG instances and CUDA_VISIBLE_DEVICES names one of them: NVML "
                           "measures the whole GPU, so the run is charged {:.0f}% of it by its instance's slices "
                           "(apportioned, not measured; the whole GPU's figure is kept as the machine's)",
                           index, mig_share * 100.0)
             : fmt::format("gpu{} is split into MIG instances{}: NVML measures its energy and power for the whole "
                           "GPU, every instance together, so this energy includes the other instances' work and "
                           "idle power",
                           index, named_instance ? " and CUDA_VISIBLE_DEVICES names one of them" : "");
}

/// One GPU as a measured channel: false, with why in `skipped` (and a fix
/// once), when it can be read neither by energy nor by power.
bool open_gpu(const Library& lib, unsigned index, const Selection& sel, Gpu& gpu, ChannelInfo& ch,
              std::vector<std::string>& skipped, std::string& skipped_fix) {
  gpu.index = index;
  const nvml::Return handle_rc = lib.get_handle(index, &gpu.handle);
  if (handle_rc != nvml::kSuccess) {
    skipped.push_back(fmt::format("gpu{}: nvmlDeviceGetHandleByIndex failed: {}", index, lib.describe(handle_rc)));
    if (skipped_fix.empty()) skipped_fix = fix_for(handle_rc);
    return false;
  }
  std::string name = device_string(lib.get_name, gpu.handle, nvml::kNameBufferSize);
  if (name.empty()) name = "NVIDIA GPU";

  unsigned long long energy_mj = 0;
  const nvml::Return energy_rc =
      lib.get_energy != nullptr ? lib.get_energy(gpu.handle, &energy_mj) : nvml::kFunctionNotFound;
  unsigned power_mw = 0;
  const nvml::Return power_rc = energy_rc == nvml::kSuccess || lib.get_power == nullptr
                                    ? nvml::kFunctionNotFound
                                    : lib.get_power(gpu.handle, &power_mw);
  nvml::Return instant_rc = nvml::kFunctionNotFound;
  gpu.instant = !std::isnan(field_power_w(lib, gpu.handle, nvml::kFieldPowerInstant, instant_rc));
  std::vector<std::string> channel_notes;
  if (!sel.order_note.empty()) channel_notes.push_back(sel.order_note);
  double mig_share = kNaN;
  if (auto note = mig_note(lib, index, gpu.handle, sel, mig_share)) channel_notes.push_back(std::move(*note));
  ch.id = fmt::format("nvml:gpu{}", index);
  ch.source = std::string(kSource);
  ch.device = fmt::format("gpu{} {}", index, name);
  ch.component = Component::gpu;
  ch.gpu_index = static_cast<int>(index);
  ch.mig_share = mig_share;
  if (energy_rc == nvml::kSuccess) {
    gpu.counter = true;
    gpu.last_energy_mj = energy_mj;  // energy is counted from here
    ch.method = Method::counter;
    ch.cumulative = true;
    ch.update_period_s = kCounterUpdatePeriod_s;
    ch.instant_power = gpu.instant;  // peaks from the instantaneous reading
  } else if (gpu.instant || power_rc == nvml::kSuccess) {
    ch.method = Method::sampled;
    ch.cumulative = false;
    if (gpu.instant) {
      ch.update_period_s = kInstantPowerUpdatePeriod_s;
    } else {
      ch.update_period_s = kPowerUpdatePeriod_s;
      channel_notes.push_back(fmt::format(
          "gpu{} has no energy counter and no instantaneous power field: its energy integrates NVML's power "
          "reading, which is a one-second average on Ampere and newer GPUs (GA100 excepted), so energy moves "
          "up to a second late and windows of a few seconds or less are smeared",
          index));
    }
  } else {
    const nvml::Return cause = lib.get_power == nullptr ? energy_rc : power_rc;
    skipped.push_back(
        fmt::format("gpu{} {}: neither energy nor power can be read: {}", index, name, lib.describe(cause)));
    if (skipped_fix.empty())
      skipped_fix = cause == nvml::kNotSupported || cause == nvml::kFunctionNotFound
                        ? "this GPU reports no power; nothing can be measured on it"
                        : fix_for(cause);
    return false;
  }
  ch.note = join(channel_notes, "; ");
  return true;
}

}  // namespace

std::unique_ptr<Meter> open_nvml(const ProbeOptions& options, SourceStatus& status) {
  status.source = std::string(kSource);
  status.description = std::string(kDescription);
  status.available = false;
  status.channels.clear();
  auto unavailable = [&status](std::string reason, std::string fix) -> std::unique_ptr<Meter> {
    status.reason = std::move(reason);
    status.fix = std::move(fix);
    return nullptr;
  };

  Unavailable why;
  std::unique_ptr<Library> lib = load_library(options, why);
  if (!lib) return unavailable(why.reason, why.fix);
  lib->resolve();
  if (lib->init == nullptr || lib->get_count == nullptr || lib->get_handle == nullptr)
    return unavailable(fmt::format("{} lacks nvmlInit, nvmlDeviceGetCount or nvmlDeviceGetHandleByIndex: "
                                   "not an NVML library, or a very old one",
                                   lib->path()),
                       "install a current NVIDIA driver");

  nvml::Return rc = lib->init();
  if (rc != nvml::kSuccess) return unavailable("nvmlInit failed: " + lib->describe(rc), fix_for(rc));
  lib->initialized = true;

  unsigned count = 0;
  rc = lib->get_count(&count);
  if (rc != nvml::kSuccess) return unavailable("nvmlDeviceGetCount failed: " + lib->describe(rc), fix_for(rc));
  if (count == 0) return unavailable("no GPUs: NVML found none", "check that `nvidia-smi -L` lists the GPUs");

  auto sel = select_gpus(options, *lib, count, why);
  if (!sel) return unavailable(why.reason, why.fix);

  // A GPU that cannot be measured is left out rather than failing the others;
  // the source is unavailable only when none is left.
  std::vector<Gpu> gpus;
  std::vector<ChannelInfo> channels;
  std::vector<std::string> skipped;
  std::string skipped_fix;
  for (unsigned index : sel->gpus) {
    Gpu gpu;
    ChannelInfo ch;
    if (!open_gpu(*lib, index, *sel, gpu, ch, skipped, skipped_fix)) continue;
    gpus.push_back(gpu);
    channels.push_back(std::move(ch));
  }
  if (gpus.empty()) return unavailable(join(skipped, "; "), skipped_fix);

  auto& notes = sel->notes;
  if (!skipped.empty()) notes.push_back("left out " + join(skipped, "; "));
  if (!notes.empty()) status.description += " (" + join(notes, "; ") + ")";
  status.channels = channels;
  status.available = true;
  status.reason.clear();
  status.fix.clear();
  return std::make_unique<NvmlMeter>(std::move(lib), std::move(gpus), std::move(channels));
}

}  // namespace powertrain::energy
