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
#include "powertrain/energy/registry.h"
#include "powertrain/error.h"

namespace powertrain::energy {
namespace {

constexpr std::string_view kSource = "nvml";
constexpr std::string_view kDescription =
    "NVIDIA GPU energy through NVML: the energy counter where the GPU has one (Volta and newer), "
    "else sampled power";
constexpr std::string_view kDefaultLibraries[] = {"libnvidia-ml.so.1", "libnvidia-ml.so"};
constexpr std::string_view kLibraryEnv = "POWERTRAIN_NVML_LIBRARY";

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

std::string code_name(nvml::Return rc) {
  for (const auto& entry : nvml::kReturnNames)
    if (entry.code == rc) return (rc == nvml::kSuccess ? "NVML_" : "NVML_ERROR_") + std::string(entry.name);
  return fmt::format("NVML error {}", rc);
}

/// How to get past an NVML error, for the status shown to the user.
std::string fix_for(nvml::Return rc) {
  switch (rc) {
    case nvml::kDriverNotLoaded:
      return "load the NVIDIA kernel module (`nvidia-smi` must work); in a container, start it with GPU "
             "access (e.g. docker run --gpus all)";
    case nvml::kNoPermission:
      return "give this user read and write access to /dev/nvidiactl and /dev/nvidia* (usually through the "
             "video group), or run in a container started with GPU access";
    case nvml::kLibRmVersionMismatch:
      return "the NVML library and the loaded kernel module come from different driver versions: reboot "
             "(or reload the nvidia module) after the driver upgrade";
    case nvml::kGpuIsLost:
      return "the GPU stopped answering: check `nvidia-smi` and the kernel log (Xid errors); a GPU reset or "
             "a reboot is usually needed";
    default:
      return "check that `nvidia-smi` works";
  }
}

/// The dlopen'ed library and the functions taken from it. Destruction shuts
/// NVML down (when it was initialized) and closes the library, in that order.
class Library {
 public:
  Library(void* handle, std::string path) : handle_(handle), path_(std::move(path)) {}
  ~Library() {
    if (initialized && shutdown != nullptr) shutdown();
    dlclose(handle_);
  }
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;

  const std::string& path() const { return path_; }

  /// The first of `names` the library exports, or nullptr.
  template <class Fn>
  Fn symbol(std::initializer_list<const char*> names) const {
    for (const char* name : names)
      if (void* p = dlsym(handle_, name)) return reinterpret_cast<Fn>(p);
    return nullptr;
  }

  /// "Insufficient Permissions (NVML_ERROR_NO_PERMISSION)".
  std::string describe(nvml::Return rc) const {
    const char* text = error_string != nullptr ? error_string(rc) : nullptr;
    if (text == nullptr || *text == '\0') return code_name(rc);
    return fmt::format("{} ({})", text, code_name(rc));
  }

  bool initialized = false;

  // The SDK header maps each unversioned name to its newest versioned export,
  // so the versioned names come first; the unversioned ones serve old drivers.
  nvml::InitFn init = nullptr;
  nvml::ShutdownFn shutdown = nullptr;
  nvml::ErrorStringFn error_string = nullptr;
  nvml::DeviceGetCountFn get_count = nullptr;
  nvml::DeviceGetHandleByIndexFn get_handle = nullptr;
  // Optional: each may be missing from an old driver.
  nvml::DeviceGetStringFn get_name = nullptr;
  nvml::DeviceGetStringFn get_uuid = nullptr;
  nvml::DeviceGetTotalEnergyConsumptionFn get_energy = nullptr;
  nvml::DeviceGetUintFn get_power = nullptr;
  nvml::DeviceGetUintFn get_power_limit = nullptr;
  nvml::DeviceGetUtilizationRatesFn get_utilization = nullptr;
  nvml::DeviceGetMemoryInfoFn get_memory = nullptr;
  nvml::DeviceGetClockInfoFn get_clock = nullptr;
  nvml::DeviceGetTemperatureFn get_temperature = nullptr;
  nvml::DeviceGetMaxMigDeviceCountFn get_max_mig_count = nullptr;
  nvml::DeviceGetMigDeviceHandleByIndexFn get_mig_handle = nullptr;
  nvml::DeviceGetFieldValuesFn get_field_values = nullptr;
  // At most one of these is set: the v1 function fills a shorter struct.
  nvml::DeviceGetProcessesV2Fn get_processes_v2 = nullptr;
  nvml::DeviceGetProcessesV1Fn get_processes_v1 = nullptr;
  // Optional: split a shared GPU by process, and a MIG instance by slices.
  nvml::DeviceGetProcessUtilizationFn get_process_utilization = nullptr;
  nvml::DeviceGetAttributesFn get_attributes = nullptr;

  void resolve() {
    init = symbol<nvml::InitFn>({"nvmlInit_v2", "nvmlInit"});
    shutdown = symbol<nvml::ShutdownFn>({"nvmlShutdown"});
    error_string = symbol<nvml::ErrorStringFn>({"nvmlErrorString"});
    get_count = symbol<nvml::DeviceGetCountFn>({"nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"});
    get_handle =
        symbol<nvml::DeviceGetHandleByIndexFn>({"nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"});
    get_name = symbol<nvml::DeviceGetStringFn>({"nvmlDeviceGetName"});
    get_uuid = symbol<nvml::DeviceGetStringFn>({"nvmlDeviceGetUUID"});
    get_energy = symbol<nvml::DeviceGetTotalEnergyConsumptionFn>({"nvmlDeviceGetTotalEnergyConsumption"});
    get_power = symbol<nvml::DeviceGetUintFn>({"nvmlDeviceGetPowerUsage"});
    // The enforced limit is what the GPU obeys (it folds in every limiter);
    // drivers older than 2013 only have the management limit.
    get_power_limit =
        symbol<nvml::DeviceGetUintFn>({"nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit"});
    get_utilization = symbol<nvml::DeviceGetUtilizationRatesFn>({"nvmlDeviceGetUtilizationRates"});
    get_memory = symbol<nvml::DeviceGetMemoryInfoFn>({"nvmlDeviceGetMemoryInfo"});
    get_clock = symbol<nvml::DeviceGetClockInfoFn>({"nvmlDeviceGetClockInfo"});
    get_temperature = symbol<nvml::DeviceGetTemperatureFn>({"nvmlDeviceGetTemperature"});
    get_max_mig_count = symbol<nvml::DeviceGetMaxMigDeviceCountFn>({"nvmlDeviceGetMaxMigDeviceCount"});
    get_mig_handle = symbol<nvml::DeviceGetMigDeviceHandleByIndexFn>({"nvmlDeviceGetMigDeviceHandleByIndex"});
    get_field_values = symbol<nvml::DeviceGetFieldValuesFn>({"nvmlDeviceGetFieldValues"});
    get_processes_v2 = symbol<nvml::DeviceGetProcessesV2Fn>(
        {"nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2"});
    if (get_processes_v2 == nullptr)
      get_processes_v1 = symbol<nvml::DeviceGetProcessesV1Fn>({"nvmlDeviceGetComputeRunningProcesses"});
    get_process_utilization = symbol<nvml::DeviceGetProcessUtilizationFn>({"nvmlDeviceGetProcessUtilization"});
    get_attributes = symbol<nvml::DeviceGetAttributesFn>({"nvmlDeviceGetAttributes_v2", "nvmlDeviceGetAttributes"});
  }

 private:
  void* handle_;
  std::string path_;
};

/// Why probing stopped, for SourceStatus.
struct Unavailable {
  std::string reason;
  std::string fix;
};

std::unique_ptr<Library> load_library(const ProbeOptions& options, Unavailable& why) {
  std::string chosen = options.nvml_library;
  std::string_view chosen_by = "the options";
  if (chosen.empty()) {
    if (const char* env = std::getenv(std::string(kLibraryEnv).c_str()); env != nullptr && *env != '\0') {
      chosen = env;
      chosen_by = kLibraryEnv;
    }
  }

  // RTLD_LOCAL keeps NVML's symbols out of the global namespace, where they could
  // clash with a CUDA runtime loaded later.
  if (!chosen.empty()) {
    if (void* handle = dlopen(chosen.c_str(), RTLD_NOW | RTLD_LOCAL)) return std::make_unique<Library>(handle, chosen);
    const char* err = dlerror();
    why.reason = fmt::format("cannot load the NVML library {} named by {}: {}", chosen, chosen_by,
                             err != nullptr ? err : "unknown error");
    why.fix = fmt::format("point {} at the driver's libnvidia-ml.so.1, or unset it to use the default", chosen_by);
    return nullptr;
  }
  for (std::string_view name : kDefaultLibraries)
    if (void* handle = dlopen(std::string(name).c_str(), RTLD_NOW | RTLD_LOCAL))
      return std::make_unique<Library>(handle, std::string(name));
  why.reason = fmt::format("{} not found (no NVIDIA driver installed)", kDefaultLibraries[0]);
  why.fix = fmt::format(
      "install the NVIDIA driver; in a container, start it with the NVIDIA Container Toolkit (--gpus); or set "
      "{} to the library's path",
      kLibraryEnv);
  return nullptr;
}

/// A string property (name, UUID); empty when the function is missing or fails.
std::string device_string(nvml::DeviceGetStringFn fn, nvml::Device device, unsigned buffer_size) {
  if (fn == nullptr) return {};
  std::string buffer(buffer_size, '\0');
  if (fn(device, buffer.data(), buffer_size) != nvml::kSuccess) return {};
  buffer.resize(std::min(buffer.find('\0'), buffer.size()));
  return buffer;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// UUIDs of every GPU and of every MIG instance on it, indexed by NVML index.
struct Uuids {
  std::vector<std::string> gpu;
  std::vector<std::vector<std::string>> mig;
};

Uuids read_uuids(const Library& lib, unsigned count) {
  Uuids u;
  u.gpu.resize(count);
  u.mig.resize(count);
  for (unsigned i = 0; i < count; ++i) {
    nvml::Device device = nullptr;
    if (lib.get_handle(i, &device) != nvml::kSuccess) continue;
    u.gpu[i] = device_string(lib.get_uuid, device, nvml::kUuidBufferSize);
    unsigned slots = 0;
    if (lib.get_max_mig_count == nullptr || lib.get_mig_handle == nullptr ||
        lib.get_max_mig_count(device, &slots) != nvml::kSuccess)
      continue;
    for (unsigned k = 0; k < slots; ++k) {
      nvml::Device mig = nullptr;
      // Empty slots answer NOT_FOUND.
      if (lib.get_mig_handle(device, k, &mig) != nvml::kSuccess) continue;
      std::string uuid = device_string(lib.get_uuid, mig, nvml::kUuidBufferSize);
      if (!uuid.empty()) u.mig[i].push_back(std::move(uuid));
    }
  }
  return u;
}

/// The NVML index of the one GPU whose UUID (or one of whose MIG instances'
/// UUIDs) starts with `prefix`; nullopt when none or several match.
std::optional<unsigned> match_uuid(const Uuids& uuids, std::string_view prefix, bool mig) {
  std::optional<unsigned> found;
  for (unsigned i = 0; i < uuids.gpu.size(); ++i) {
    bool hit = false;
    if (mig) {
      for (const auto& u : uuids.mig[i]) hit = hit || std::string_view(u).starts_with(prefix);
    } else {
      hit = !uuids.gpu[i].empty() && std::string_view(uuids.gpu[i]).starts_with(prefix);
    }
    if (!hit) continue;
    if (found) return std::nullopt;  // ambiguous prefix
    found = i;
  }
  return found;
}

/// How CUDA_VISIBLE_DEVICES named the GPUs it selects.
struct VisibleKinds {
  bool by_index = false;       ///< some entry is an index (its meaning depends on CUDA_DEVICE_ORDER)
  std::vector<unsigned> mig;   ///< GPUs selected through one of their MIG instances
  std::vector<std::string> mig_entries;  ///< the MIG-<uuid> entries that selected them
};

/// The NVML index an entry of CUDA_VISIBLE_DEVICES names, if any.
std::optional<unsigned> visible_device(std::string_view entry, const Library& lib, unsigned count,
                                       std::optional<Uuids>& uuids, VisibleKinds& kinds) {
  if (!entry.empty() && std::all_of(entry.begin(), entry.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    kinds.by_index = true;
    unsigned i = 0;
    auto [end, ec] = std::from_chars(entry.data(), entry.data() + entry.size(), i);
    if (ec == std::errc() && end == entry.data() + entry.size() && i < count) return i;
    return std::nullopt;
  }
  if (!entry.starts_with("GPU-") && !entry.starts_with("MIG-")) return std::nullopt;
  if (!uuids) uuids = read_uuids(lib, count);  // only now: it costs a few calls per GPU
  // The pre-R470 MIG form names the parent GPU: MIG-GPU-<uuid>/<gi>/<ci>.
  const std::optional<unsigned> index =
      entry.starts_with("MIG-GPU-") ? match_uuid(*uuids, entry.substr(4, entry.find('/') - 4), false)
                                    : match_uuid(*uuids, entry, entry.starts_with("MIG-"));
  if (index && entry.starts_with("MIG-")) {
    kinds.mig.push_back(*index);
    if (!entry.starts_with("MIG-GPU-")) kinds.mig_entries.emplace_back(entry);
  }
  return index;
}

/// The GPUs CUDA_VISIBLE_DEVICES selects, read the way CUDA reads it: a comma
/// list of indices or GPU-/MIG- UUID prefixes, where the first entry that names
/// no GPU ends the list (so "" and "-1" select none). Indices are taken as NVML
/// indices here; the caller checks that CUDA numbers the GPUs the same way
/// (`kinds.by_index`). UUIDs are exact in any order. A MIG instance selects its
/// whole GPU: NVML measures energy per physical GPU only. `note` tells about
/// ignored entries.
std::vector<unsigned> parse_visible_devices(std::string_view value, const Library& lib, unsigned count,
                                            std::string& note, VisibleKinds& kinds) {
  std::optional<Uuids> uuids;
  std::vector<unsigned> selected;
  if (trim(value).empty()) return selected;
  for (std::string_view rest = value;;) {
    const std::size_t comma = rest.find(',');
    const std::string_view entry = trim(rest.substr(0, comma));
    const std::optional<unsigned> index = visible_device(entry, lib, count, uuids, kinds);
    if (!index) {
      note = fmt::format("CUDA_VISIBLE_DEVICES entry '{}' names no GPU here; it and the entries after it are "
                         "ignored, as CUDA does",
                         entry);
      break;
    }
    if (std::find(selected.begin(), selected.end(), *index) == selected.end()) selected.push_back(*index);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return selected;
}

/// Whether CUDA numbers the GPUs as NVML does: in PCI bus order when
/// CUDA_DEVICE_ORDER=PCI_BUS_ID; fastest first otherwise, which agrees with bus
/// order only when every GPU is the same model (ties keep bus order). GPUs whose
/// names cannot be read count as different.
bool cuda_order_is_nvml_order(const Library& lib, unsigned count) {
  if (const char* order = std::getenv("CUDA_DEVICE_ORDER"); order != nullptr && std::string_view(order) == "PCI_BUS_ID")
    return true;
  std::string first;
  for (unsigned i = 0; i < count; ++i) {
    nvml::Device device = nullptr;
    if (lib.get_handle(i, &device) != nvml::kSuccess) return false;
    const std::string name = device_string(lib.get_name, device, nvml::kNameBufferSize);
    if (name.empty()) return false;
    if (i == 0) first = name;
    else if (name != first) return false;
  }
  return true;
}

/// How many MIG instances the GPU is split into (0: not in MIG mode, or unknown).
unsigned mig_instances(const Library& lib, nvml::Device device) {
  unsigned slots = 0;
  if (lib.get_max_mig_count == nullptr || lib.get_mig_handle == nullptr ||
      lib.get_max_mig_count(device, &slots) != nvml::kSuccess)
    return 0;
  unsigned n = 0;
  for (unsigned k = 0; k < slots; ++k) {
    nvml::Device mig = nullptr;
    if (lib.get_mig_handle(device, k, &mig) == nvml::kSuccess) ++n;
  }
  return n;
}

/// The share of a GPU's slices that the MIG instances CUDA_VISIBLE_DEVICES
/// names hold (their gpuInstanceSliceCount over the GPU's MIG slots), or NaN
/// when the driver cannot tell.
double named_mig_share(const Library& lib, nvml::Device device, const std::vector<std::string>& entries) {
  unsigned slots = 0;
  if (lib.get_max_mig_count == nullptr || lib.get_mig_handle == nullptr || lib.get_attributes == nullptr ||
      lib.get_max_mig_count(device, &slots) != nvml::kSuccess || slots == 0)
    return kNaN;
  unsigned named = 0;
  for (unsigned k = 0; k < slots; ++k) {
    nvml::Device mig = nullptr;
    if (lib.get_mig_handle(device, k, &mig) != nvml::kSuccess) continue;
    const std::string uuid = device_string(lib.get_uuid, mig, nvml::kUuidBufferSize);
    const bool is_named = std::any_of(entries.begin(), entries.end(),
                                      [&](const std::string& e) { return !uuid.empty() && uuid.starts_with(e); });
    if (!is_named) continue;
    nvml::DeviceAttributes a{};
    if (lib.get_attributes(mig, &a) != nvml::kSuccess || a.gpu_instance_slice_count == 0) return kNaN;
    named += a.gpu_instance_slice_count;
  }
  if (named == 0) return kNaN;
  return std::min(1.0, static_cast<double>(named) / slots);
}

/// A power field (mW) read with nvmlDeviceGetFieldValues, in watts; NaN and
/// `rc` set when it cannot be read.
double field_power_w(const Library& lib, nvml::Device device, unsigned field, nvml::Return& rc) {
  if (lib.get_field_values == nullptr) {
    rc = nvml::kFunctionNotFound;
    return kNaN;
  }
  nvml::FieldValue v{};
  v.field_id = field;
  v.scope_id = 0;  // the GPU, not the whole module
  rc = lib.get_field_values(device, 1, &v);
  if (rc != nvml::kSuccess) return kNaN;
  rc = v.nvml_return;
  if (rc != nvml::kSuccess) return kNaN;
  double mw = kNaN;
  switch (v.value_type) {
    case nvml::kValueDouble: mw = v.value.d; break;
    case nvml::kValueUint: mw = v.value.ui; break;
    case nvml::kValueUlong: mw = static_cast<double>(v.value.ul); break;
    case nvml::kValueUll: mw = static_cast<double>(v.value.ull); break;
    case nvml::kValueSll: mw = static_cast<double>(v.value.sll); break;
    case nvml::kValueSint: mw = v.value.si; break;
    case nvml::kValueUshort: mw = v.value.us; break;
    default: rc = nvml::kUnknown; return kNaN;
  }
  return mw / 1000.0;
}

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

  std::vector<std::string> notes;
  std::vector<unsigned> selected;
  VisibleKinds kinds;
  std::string order_note;  // on every channel when CUDA's indices could not be mapped
  if (options.gpu_indices) {
    for (unsigned i : *options.gpu_indices) {
      if (i >= count)
        return unavailable(fmt::format("GPU index {} was requested, but NVML sees {} GPU{} (indices 0-{})", i, count,
                                       count == 1 ? "" : "s", count - 1),
                           "choose GPU indices that `nvidia-smi -L` lists");
      if (std::find(selected.begin(), selected.end(), i) == selected.end()) selected.push_back(i);
    }
    if (selected.empty()) return unavailable("no GPUs: the GPU list is empty", "list the GPUs to measure");
  } else if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible != nullptr) {
    std::string note;
    selected = parse_visible_devices(visible, *lib, count, note, kinds);
    if (selected.empty())
      return unavailable(fmt::format("no GPUs: CUDA_VISIBLE_DEVICES='{}' selects none{}", visible,
                                     note.empty() ? "" : " (" + note + ")"),
                         "unset CUDA_VISIBLE_DEVICES, or list the GPUs the job uses (indices or UUIDs from "
                         "`nvidia-smi -L`)");
    if (!note.empty()) notes.push_back(std::move(note));
    if (kinds.by_index && !cuda_order_is_nvml_order(*lib, count)) {
      // Which GPU CUDA's index means is not known here: measure them all
      // rather than guess (measure then leaves out those the command did not
      // use, where their process lists tell).
      order_note = fmt::format(
          "CUDA_VISIBLE_DEVICES='{}' names GPUs by index, but CUDA numbers GPUs fastest first unless "
          "CUDA_DEVICE_ORDER=PCI_BUS_ID while NVML numbers them in PCI bus order, and these GPUs are not all the "
          "same model: which GPU an index means cannot be told, so every GPU is measured; set "
          "CUDA_DEVICE_ORDER=PCI_BUS_ID or name the GPUs by UUID",
          visible);
      notes.push_back(order_note);
      selected.clear();
      for (unsigned i = 0; i < count; ++i) selected.push_back(i);
    }
  } else {
    for (unsigned i = 0; i < count; ++i) selected.push_back(i);
  }

  // A GPU that cannot be measured is left out rather than failing the others;
  // the source is unavailable only when none is left.
  std::vector<Gpu> gpus;
  std::vector<ChannelInfo> channels;
  std::vector<std::string> skipped;
  std::string skipped_fix;
  for (unsigned index : selected) {
    Gpu gpu;
    gpu.index = index;
    rc = lib->get_handle(index, &gpu.handle);
    if (rc != nvml::kSuccess) {
      skipped.push_back(fmt::format("gpu{}: nvmlDeviceGetHandleByIndex failed: {}", index, lib->describe(rc)));
      if (skipped_fix.empty()) skipped_fix = fix_for(rc);
      continue;
    }
    std::string name = device_string(lib->get_name, gpu.handle, nvml::kNameBufferSize);
    if (name.empty()) name = "NVIDIA GPU";

    unsigned long long energy_mj = 0;
    const nvml::Return energy_rc =
        lib->get_energy != nullptr ? lib->get_energy(gpu.handle, &energy_mj) : nvml::kFunctionNotFound;
    unsigned power_mw = 0;
    const nvml::Return power_rc = energy_rc == nvml::kSuccess || lib->get_power == nullptr
                                      ? nvml::kFunctionNotFound
                                      : lib->get_power(gpu.handle, &power_mw);
    nvml::Return instant_rc = nvml::kFunctionNotFound;
    gpu.instant = !std::isnan(field_power_w(*lib, gpu.handle, nvml::kFieldPowerInstant, instant_rc));
    std::vector<std::string> channel_notes;
    if (!order_note.empty()) channel_notes.push_back(order_note);
    const bool named_instance = std::find(kinds.mig.begin(), kinds.mig.end(), index) != kinds.mig.end();
    double mig_share = kNaN;
    if (named_instance) mig_share = named_mig_share(*lib, gpu.handle, kinds.mig_entries);
    if (named_instance || mig_instances(*lib, gpu.handle) > 0)
      channel_notes.push_back(
          std::isfinite(mig_share)
              ? fmt::format("gpu{} is split into MIG instances and CUDA_VISIBLE_DEVICES names one of them: NVML "
                            "measures the whole GPU, so the run is charged {:.0f}% of it by its instance's slices "
                            "(apportioned, not measured; the whole GPU's figure is kept as the machine's)",
                            index, mig_share * 100.0)
              : fmt::format("gpu{} is split into MIG instances{}: NVML measures its energy and power for the whole "
                            "GPU, every instance together, so this energy includes the other instances' work and "
                            "idle power",
                            index, named_instance ? " and CUDA_VISIBLE_DEVICES names one of them" : ""));
    ChannelInfo ch;
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
      const nvml::Return cause = lib->get_power == nullptr ? energy_rc : power_rc;
      skipped.push_back(fmt::format("gpu{} {}: neither energy nor power can be read: {}", index, name,
                                    lib->describe(cause)));
      if (skipped_fix.empty())
        skipped_fix = cause == nvml::kNotSupported || cause == nvml::kFunctionNotFound
                          ? "this GPU reports no power; nothing can be measured on it"
                          : fix_for(cause);
      continue;
    }
    ch.note = join(channel_notes, "; ");
    gpus.push_back(gpu);
    channels.push_back(std::move(ch));
  }
  if (gpus.empty()) return unavailable(join(skipped, "; "), skipped_fix);

  if (!skipped.empty()) notes.push_back("left out " + join(skipped, "; "));
  if (!notes.empty()) status.description += " (" + join(notes, "; ") + ")";
  status.channels = channels;
  status.available = true;
  status.reason.clear();
  status.fix.clear();
  return std::make_unique<NvmlMeter>(std::move(lib), std::move(gpus), std::move(channels));
}

}  // namespace powertrain::energy
