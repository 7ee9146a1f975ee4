// NVML's library: loading it and the device lookups nvml.cpp opens its meter
// with (see nvml_library.h).
#include "nvml_library.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "powertrain/energy/types.h"

namespace powertrain::energy::nvml_support {
namespace {

constexpr std::string_view kDefaultLibraries[] = {"libnvidia-ml.so.1", "libnvidia-ml.so"};
constexpr std::string_view kLibraryEnv = "POWERTRAIN_NVML_LIBRARY";

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

}  // namespace

std::string code_name(nvml::Return rc) {
  for (const auto& entry : nvml::kReturnNames)
    if (entry.code == rc) return (rc == nvml::kSuccess ? "NVML_" : "NVML_ERROR_") + std::string(entry.name);
  return fmt::format("NVML error {}", rc);
}

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

std::string device_string(nvml::DeviceGetStringFn fn, nvml::Device device, unsigned buffer_size) {
  if (fn == nullptr) return {};
  std::string buffer(buffer_size, '\0');
  if (fn(device, buffer.data(), buffer_size) != nvml::kSuccess) return {};
  buffer.resize(std::min(buffer.find('\0'), buffer.size()));
  return buffer;
}

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

}  // namespace powertrain::energy::nvml_support
