#pragma once
// NVML's library as nvml.cpp uses it: loading it, its functions, and the
// device lookups the meter is opened with (CUDA_VISIBLE_DEVICES, MIG
// instances, power fields). Internal to the energy layer.
#include <dlfcn.h>
#include <fmt/format.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "nvml_api.h"
#include "powertrain/energy/registry.h"

namespace powertrain::energy::nvml_support {

/// "NVML_ERROR_NO_PERMISSION" for a return code.
std::string code_name(nvml::Return rc);

/// How to get past an NVML error, for the status shown to the user.
std::string fix_for(nvml::Return rc);

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

/// The NVML library the options, $POWERTRAIN_NVML_LIBRARY or the default names
/// pick, opened; nullptr and `why` filled when it cannot be loaded.
std::unique_ptr<Library> load_library(const ProbeOptions& options, Unavailable& why);

/// A string property (name, UUID); empty when the function is missing or fails.
std::string device_string(nvml::DeviceGetStringFn fn, nvml::Device device, unsigned buffer_size);

/// How CUDA_VISIBLE_DEVICES named the GPUs it selects.
struct VisibleKinds {
  bool by_index = false;       ///< some entry is an index (its meaning depends on CUDA_DEVICE_ORDER)
  std::vector<unsigned> mig;   ///< GPUs selected through one of their MIG instances
  std::vector<std::string> mig_entries;  ///< the MIG-<uuid> entries that selected them
};

/// The GPUs CUDA_VISIBLE_DEVICES selects, read the way CUDA reads it: a comma
/// list of indices or GPU-/MIG- UUID prefixes, where the first entry that names
/// no GPU ends the list (so "" and "-1" select none). Indices are taken as NVML
/// indices here; the caller checks that CUDA numbers the GPUs the same way
/// (`kinds.by_index`). UUIDs are exact in any order. A MIG instance selects its
/// whole GPU: NVML measures energy per physical GPU only. `note` tells about
/// ignored entries.
std::vector<unsigned> parse_visible_devices(std::string_view value, const Library& lib, unsigned count,
                                            std::string& note, VisibleKinds& kinds);

/// Whether CUDA numbers the GPUs as NVML does: in PCI bus order when
/// CUDA_DEVICE_ORDER=PCI_BUS_ID; fastest first otherwise, which agrees with bus
/// order only when every GPU is the same model (ties keep bus order). GPUs whose
/// names cannot be read count as different.
bool cuda_order_is_nvml_order(const Library& lib, unsigned count);

/// How many MIG instances the GPU is split into (0: not in MIG mode, or unknown).
unsigned mig_instances(const Library& lib, nvml::Device device);

/// The share of a GPU's slices that the MIG instances CUDA_VISIBLE_DEVICES
/// names hold (their gpuInstanceSliceCount over the GPU's MIG slots), or NaN
/// when the driver cannot tell.
double named_mig_share(const Library& lib, nvml::Device device, const std::vector<std::string>& entries);

/// A power field (mW) read with nvmlDeviceGetFieldValues, in watts; NaN and
/// `rc` set when it cannot be read.
double field_power_w(const Library& lib, nvml::Device device, unsigned field, nvml::Return& rc);

}  // namespace powertrain::energy::nvml_support
