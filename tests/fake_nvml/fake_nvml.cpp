// A scripted stand-in for libnvidia-ml.so: it exports the NVML functions that
// powertrain uses (declared in src/energy/nvml_api.h) and answers them from a
// text file named by the environment variable FAKE_NVML_SCRIPT, read at nvmlInit.
//
// Script format, one directive per line ('#' starts a comment):
//
//   init DRIVER_NOT_LOADED        what nvmlInit returns (default SUCCESS)
//   gpu 0 key=value ...           one GPU; indices count 0, 1, 2... in order
//
// GPU keys:
//   name=NVIDIA_H100              nvmlDeviceGetName ('_' reads as a space)
//   uuid=GPU-aaaa                 nvmlDeviceGetUUID (default GPU-fake-<index>)
//   handle=NO_PERMISSION          what nvmlDeviceGetHandleByIndex returns
//   energy_mj=1000,1500           nvmlDeviceGetTotalEnergyConsumption
//   power_mw=250000               nvmlDeviceGetPowerUsage
//   limit_mw=700000               the power limit
//   util=50  sm_mhz=1980  temp=40  mem_used=1000
//   pids=123,456/123,456,789      nvmlDeviceGetComputeRunningProcesses
//   pids_file=/tmp/gpu0.pids      ... read from this file at every call (pids
//                                 separated by commas, spaces or newlines; no
//                                 file: none), as processes appear on a real
//                                 GPU when they create their context
//   mig=MIG-1111,MIG-2222         UUIDs of the GPU's MIG instances
//   mig_slices=1,2                their GPU instances' slices (default 1 each;
//                                 nvmlDeviceGetAttributes_v2 of the MIG device)
//   mig_slots=7                   nvmlDeviceGetMaxMigDeviceCount (default: the
//                                 instances plus one empty slot)
//   putil=123:60,456:20/123:50    nvmlDeviceGetProcessUtilization: per call,
//                                 one '/'-separated set of pid:sm_percent
//                                 samples (the last repeats); NOT_SUPPORTED
//                                 as a set answers that; absent: NOT_SUPPORTED
//
// Time-driven keys, for GPUs that behave like real ones over wall time (the
// clock starts at the first nvmlInit):
//   watts=100,400 step_ms=300     the GPU draws 100 W, then 400 W from 0.3 s on
//                                 (each entry lasts step_ms, the last one holds;
//                                 before the clock started, the first one)
//   refresh_ms=100                the energy counter moves in steps, once per
//                                 refresh period, as NVIDIA's does (default 100)
//   instant=1                     nvmlDeviceGetFieldValues answers
//                                 NVML_FI_DEV_POWER_INSTANT (default: NOT_SUPPORTED)
//   counter=0                     no energy counter (NOT_SUPPORTED), as before Volta
//   lost_ms=200                   from 0.2 s on the GPU has fallen off the bus:
//                                 every call on it returns GPU_IS_LOST
// With `watts`, the energy counter is the profile's integral at the last
// refresh (plus 10^6 mJ since "driver load"), nvmlDeviceGetPowerUsage is its
// one-second trailing average (as on Ampere and newer) and the instant field
// is the power now; scripted energy_mj / power_mw entries are then ignored.
//
// A reading is a comma list whose entries are numbers or NVML return codes
// (NOT_SUPPORTED, GPU_IS_LOST...): each call takes the next entry and the last
// one repeats, so `power_mw=100000,GPU_IS_LOST` fails from the second call on.
// A reading the script leaves out answers NOT_SUPPORTED. `pids` walks
// '/'-separated sets the same way, one set per call, including calls that end
// in INSUFFICIENT_SIZE: consecutive sets of growing size imitate processes that
// start between the size query and the next call.
//
// Built twice: fake_nvml exports the current, versioned names; fake_nvml_legacy
// (FAKE_NVML_LEGACY) imitates an old driver: unversioned names, the 16-byte
// process struct, the management limit only, and no energy counter or MIG.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "nvml_api.h"

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

namespace nvml = powertrain::energy::nvml;

struct Reading {
  nvml::Return rc = nvml::kNotSupported;
  unsigned long long value = 0;
};

struct PidSet {
  nvml::Return rc = nvml::kSuccess;
  std::vector<unsigned> pids;
};

struct UtilSet {
  nvml::Return rc = nvml::kSuccess;
  std::vector<std::pair<unsigned, unsigned>> samples;  // pid, SM percent
};

/// Steps answered one per call; the last one repeats.
template <class T>
struct Steps {
  std::vector<T> steps;
  std::size_t next = 0;
  T take() {
    if (steps.empty()) return T{};
    const T& t = steps[std::min(next, steps.size() - 1)];
    ++next;
    return t;
  }
};

struct FakeDevice {
  bool mig = false;
  std::string name;
  std::string uuid;
  nvml::Return handle_rc = nvml::kSuccess;
  Steps<Reading> energy_mj, power_mw, limit_mw, util, sm_mhz, temp, mem_used;
  Steps<PidSet> pids;
  std::string pids_file;  // non-empty: the process list is this file's, now
  Steps<UtilSet> putil;
  bool putil_scripted = false;
  std::vector<std::unique_ptr<FakeDevice>> migs;
  unsigned slices = 1;    // a MIG device: its GPU instance's slices
  unsigned mig_slots = 0;  // 0: instances + 1
  // Time-driven behaviour (empty watts: scripted call by call).
  std::vector<double> watts;
  double step_s = 1.0;
  double refresh_s = 0.1;
  bool instant = false;
  bool counter = true;
  double lost_s = -1.0;  // < 0: never lost
};

struct State {
  int sessions = 0;  // nvmlInit calls not yet matched by nvmlShutdown
  nvml::Return init_rc = nvml::kSuccess;
  std::vector<std::unique_ptr<FakeDevice>> gpus;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
};

State& state() {
  static State s;
  return s;
}

/// Seconds since the script was loaded.
double clock_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - state().t0).count();
}

/// The profile's power at `t` seconds.
[[maybe_unused]] double watts_at(const FakeDevice& gpu, double t) {
  if (t < 0) return gpu.watts.front();
  const auto k = static_cast<std::size_t>(t / gpu.step_s);
  return gpu.watts[std::min(k, gpu.watts.size() - 1)];
}

/// The profile's energy from 0 to `t` seconds (negative before 0).
double joules_until(const FakeDevice& gpu, double t) {
  if (t <= 0) return gpu.watts.front() * t;
  double e = 0.0;
  for (std::size_t k = 0; k < gpu.watts.size(); ++k) {
    const double begin = static_cast<double>(k) * gpu.step_s;
    if (t <= begin) break;
    const double end = k + 1 == gpu.watts.size() ? t : std::min(t, begin + gpu.step_s);
    e += gpu.watts[k] * (end - begin);
  }
  return e;
}

/// What a time-driven GPU answers for `member` now (energy in mJ, power in mW).
nvml::Return clocked(const FakeDevice& gpu, Steps<Reading> FakeDevice::*member, unsigned long long& out) {
  const double t = clock_s();
  if (member == &FakeDevice::energy_mj) {
    if (!gpu.counter) return nvml::kNotSupported;
    const double refreshed = std::floor(t / gpu.refresh_s) * gpu.refresh_s;
    out = static_cast<unsigned long long>(std::llround(1e6 + 1000.0 * joules_until(gpu, refreshed)));
    return nvml::kSuccess;
  }
  // nvmlDeviceGetPowerUsage: a one-second trailing average.
  out = static_cast<unsigned long long>(std::llround(1000.0 * (joules_until(gpu, t) - joules_until(gpu, t - 1.0))));
  return nvml::kSuccess;
}

nvml::Return code_from_name(std::string_view name) {
  for (const auto& entry : nvml::kReturnNames)
    if (entry.name == name) return entry.code;
  throw std::runtime_error("unknown NVML return code '" + std::string(name) + "'");
}

std::vector<std::string_view> split(std::string_view s, char separator) {
  std::vector<std::string_view> parts;
  for (;;) {
    const std::size_t at = s.find(separator);
    parts.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return parts;
    s.remove_prefix(at + 1);
  }
}

bool is_number(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

unsigned long long number(std::string_view s) {
  unsigned long long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) throw std::runtime_error("bad number '" + std::string(s) + "'");
  return v;
}

Steps<Reading> parse_readings(std::string_view list) {
  Steps<Reading> r;
  for (std::string_view item : split(list, ','))
    r.steps.push_back(is_number(item) ? Reading{nvml::kSuccess, number(item)} : Reading{code_from_name(item), 0});
  return r;
}

Steps<PidSet> parse_pids(std::string_view sets) {
  Steps<PidSet> p;
  for (std::string_view set : split(sets, '/')) {
    PidSet s;
    if (!set.empty() && !is_number(split(set, ',')[0])) {
      s.rc = code_from_name(set);
    } else if (!set.empty()) {
      for (std::string_view pid : split(set, ',')) s.pids.push_back(static_cast<unsigned>(number(pid)));
    }
    p.steps.push_back(std::move(s));
  }
  return p;
}

std::unique_ptr<FakeDevice> parse_gpu(std::istringstream& words, std::size_t expected_index) {
  std::size_t index = 0;
  if (!(words >> index) || index != expected_index)
    throw std::runtime_error("gpu lines must be numbered 0, 1, 2... in order");
  auto gpu = std::make_unique<FakeDevice>();
  gpu->name = "Fake GPU";
  gpu->uuid = "GPU-fake-" + std::to_string(index);
  std::string word;
  while (words >> word) {
    const std::size_t eq = word.find('=');
    if (eq == std::string::npos) throw std::runtime_error("expected key=value, got '" + word + "'");
    const std::string key = word.substr(0, eq);
    const std::string_view value = std::string_view(word).substr(eq + 1);
    if (key == "name") {
      gpu->name = std::string(value);
      for (char& c : gpu->name)
        if (c == '_') c = ' ';
    } else if (key == "uuid") {
      gpu->uuid = std::string(value);
    } else if (key == "handle") {
      gpu->handle_rc = code_from_name(value);
    } else if (key == "energy_mj") {
      gpu->energy_mj = parse_readings(value);
    } else if (key == "power_mw") {
      gpu->power_mw = parse_readings(value);
    } else if (key == "limit_mw") {
      gpu->limit_mw = parse_readings(value);
    } else if (key == "util") {
      gpu->util = parse_readings(value);
    } else if (key == "sm_mhz") {
      gpu->sm_mhz = parse_readings(value);
    } else if (key == "temp") {
      gpu->temp = parse_readings(value);
    } else if (key == "mem_used") {
      gpu->mem_used = parse_readings(value);
    } else if (key == "pids") {
      gpu->pids = parse_pids(value);
    } else if (key == "pids_file") {
      gpu->pids_file = std::string(value);
    } else if (key == "watts") {
      for (std::string_view w : split(value, ',')) gpu->watts.push_back(static_cast<double>(number(w)));
    } else if (key == "step_ms") {
      gpu->step_s = static_cast<double>(number(value)) / 1000.0;
    } else if (key == "refresh_ms") {
      gpu->refresh_s = static_cast<double>(number(value)) / 1000.0;
    } else if (key == "counter") {
      gpu->counter = number(value) != 0;
    } else if (key == "instant") {
      gpu->instant = number(value) != 0;
    } else if (key == "lost_ms") {
      gpu->lost_s = static_cast<double>(number(value)) / 1000.0;
    } else if (key == "mig_slices") {
      std::size_t k = 0;
      for (std::string_view n : split(value, ','))
        if (k < gpu->migs.size()) gpu->migs[k++]->slices = static_cast<unsigned>(number(n));
    } else if (key == "mig_slots") {
      gpu->mig_slots = static_cast<unsigned>(number(value));
    } else if (key == "putil") {
      gpu->putil_scripted = true;
      for (std::string_view set : split(value, '/')) {
        UtilSet u;
        if (!set.empty() && set.find(':') == std::string_view::npos) {
          u.rc = code_from_name(set);
        } else {
          for (std::string_view item : split(set, ',')) {
            const auto colon = item.find(':');
            u.samples.emplace_back(static_cast<unsigned>(number(item.substr(0, colon))),
                                   static_cast<unsigned>(number(item.substr(colon + 1))));
          }
        }
        gpu->putil.steps.push_back(std::move(u));
      }
    } else if (key == "mig") {
      for (std::string_view uuid : split(value, ',')) {
        auto mig = std::make_unique<FakeDevice>();
        mig->mig = true;
        mig->uuid = std::string(uuid);
        gpu->migs.push_back(std::move(mig));
      }
    } else {
      throw std::runtime_error("unknown gpu key '" + key + "'");
    }
  }
  return gpu;
}

/// Replaces the state with the script's; on a bad script, says why on stderr
/// and makes nvmlInit fail, so a typo in a test cannot pass unnoticed.
void load_script() {
  State& s = state();
  s.init_rc = nvml::kSuccess;
  s.gpus.clear();
  s.t0 = std::chrono::steady_clock::now();
  const char* path = std::getenv("FAKE_NVML_SCRIPT");
  if (path == nullptr) {
    std::fprintf(stderr, "fake_nvml: FAKE_NVML_SCRIPT is not set\n");
    s.init_rc = nvml::kUnknown;
    return;
  }
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "fake_nvml: cannot read %s\n", path);
    s.init_rc = nvml::kUnknown;
    return;
  }
  std::string line;
  int line_no = 0;
  try {
    while (std::getline(in, line)) {
      ++line_no;
      if (const std::size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
      std::istringstream words(line);
      std::string directive;
      if (!(words >> directive)) continue;
      if (directive == "init") {
        std::string code;
        words >> code;
        s.init_rc = code_from_name(code);
      } else if (directive == "gpu") {
        s.gpus.push_back(parse_gpu(words, s.gpus.size()));
      } else {
        throw std::runtime_error("unknown directive '" + directive + "'");
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fake_nvml: %s:%d: %s\n", path, line_no, e.what());
    s.gpus.clear();
    s.init_rc = nvml::kUnknown;
  }
}

FakeDevice* device(nvml::Device handle) { return reinterpret_cast<FakeDevice*>(handle); }

/// The GPU behind a handle, or the reason to refuse the call.
nvml::Return gpu_of(nvml::Device handle, FakeDevice*& gpu) {
  if (state().sessions == 0) return nvml::kUninitialized;
  if (handle == nullptr) return nvml::kInvalidArgument;
  gpu = device(handle);
  if (gpu->lost_s >= 0 && clock_s() >= gpu->lost_s) return nvml::kGpuIsLost;
  // MIG handles answer for their UUID only, enough for device selection.
  return gpu->mig ? nvml::kNotSupported : nvml::kSuccess;
}

template <class T>
nvml::Return answer(nvml::Device handle, Steps<Reading> FakeDevice::*member, T* out) {
  FakeDevice* gpu = nullptr;
  if (nvml::Return rc = gpu_of(handle, gpu); rc != nvml::kSuccess) return rc;
  if (out == nullptr) return nvml::kInvalidArgument;
  if (!gpu->watts.empty() && (member == &FakeDevice::energy_mj || member == &FakeDevice::power_mw)) {
    unsigned long long value = 0;
    const nvml::Return rc = clocked(*gpu, member, value);
    if (rc == nvml::kSuccess) *out = static_cast<T>(value);
    return rc;
  }
  const Reading r = (gpu->*member).take();
  if (r.rc == nvml::kSuccess) *out = static_cast<T>(r.value);
  return r.rc;
}

nvml::Return copy_string(const std::string& s, char* buffer, unsigned length) {
  if (buffer == nullptr) return nvml::kInvalidArgument;
  if (s.size() + 1 > length) return nvml::kInsufficientSize;
  std::memcpy(buffer, s.c_str(), s.size() + 1);
  return nvml::kSuccess;
}

template <class Info>
nvml::Return processes(nvml::Device handle, unsigned* count, Info* infos) {
  FakeDevice* gpu = nullptr;
  if (nvml::Return rc = gpu_of(handle, gpu); rc != nvml::kSuccess) return rc;
  if (count == nullptr) return nvml::kInvalidArgument;
  PidSet set = gpu->pids.take();
  if (!gpu->pids_file.empty()) {
    set = PidSet{};
    std::ifstream in(gpu->pids_file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (char& c : text)
      if (c == ',' || c == '\n') c = ' ';
    std::istringstream words(text);
    for (unsigned pid = 0; words >> pid;) set.pids.push_back(pid);
  }
  if (set.rc != nvml::kSuccess) return set.rc;
  const auto needed = static_cast<unsigned>(set.pids.size());
  // As NVML does: too small a buffer gets the needed size back.
  if (*count < needed) {
    *count = needed;
    return nvml::kInsufficientSize;
  }
  if (needed > 0 && infos == nullptr) return nvml::kInvalidArgument;
  for (unsigned i = 0; i < needed; ++i) {
    infos[i] = Info{};
    infos[i].pid = set.pids[i];
    infos[i].used_gpu_memory_bytes = 1ull << 30;
  }
  *count = needed;
  return nvml::kSuccess;
}

nvml::Return init() {
  State& s = state();
  if (s.sessions == 0) load_script();
  if (s.init_rc != nvml::kSuccess) return s.init_rc;
  ++s.sessions;
  return nvml::kSuccess;
}

nvml::Return get_count(unsigned* count) {
  if (state().sessions == 0) return nvml::kUninitialized;
  if (count == nullptr) return nvml::kInvalidArgument;
  *count = static_cast<unsigned>(state().gpus.size());
  return nvml::kSuccess;
}

nvml::Return get_handle(unsigned index, nvml::Device* handle) {
  State& s = state();
  if (s.sessions == 0) return nvml::kUninitialized;
  if (handle == nullptr || index >= s.gpus.size()) return nvml::kInvalidArgument;
  if (s.gpus[index]->handle_rc != nvml::kSuccess) return s.gpus[index]->handle_rc;
  *handle = reinterpret_cast<nvml::Device>(s.gpus[index].get());
  return nvml::kSuccess;
}

}  // namespace

// Test hook, not NVML: how many nvmlInit calls are still open. Tests dlopen this
// library themselves to check that the meter shuts NVML down.
FAKE_EXPORT int fake_nvml_sessions() { return state().sessions; }

FAKE_EXPORT nvml::Return nvmlShutdown() {
  State& s = state();
  if (s.sessions == 0) return nvml::kUninitialized;
  --s.sessions;
  return nvml::kSuccess;
}

FAKE_EXPORT const char* nvmlErrorString(nvml::Return rc) {
  // The driver's wording, so messages in tests read like real ones.
  switch (rc) {
    case nvml::kSuccess: return "Success";
    case nvml::kUninitialized: return "Uninitialized";
    case nvml::kInvalidArgument: return "Invalid Argument";
    case nvml::kNotSupported: return "Not Supported";
    case nvml::kNoPermission: return "Insufficient Permissions";
    case nvml::kNotFound: return "Not Found";
    case nvml::kInsufficientSize: return "Insufficient Size";
    case nvml::kDriverNotLoaded: return "Driver Not Loaded";
    case nvml::kTimeout: return "Timeout";
    case nvml::kGpuIsLost: return "GPU is lost";
    case nvml::kLibRmVersionMismatch: return "RM has detected an NVML/RM version mismatch.";
    case nvml::kNoData: return "No data";
    default: return "Unknown Error";
  }
}

FAKE_EXPORT nvml::Return nvmlDeviceGetName(nvml::Device handle, char* name, unsigned length) {
  FakeDevice* gpu = nullptr;
  if (nvml::Return rc = gpu_of(handle, gpu); rc != nvml::kSuccess) return rc;
  return copy_string(gpu->name, name, length);
}

FAKE_EXPORT nvml::Return nvmlDeviceGetUUID(nvml::Device handle, char* uuid, unsigned length) {
  if (state().sessions == 0) return nvml::kUninitialized;
  if (handle == nullptr) return nvml::kInvalidArgument;
  const FakeDevice* gpu = device(handle);
  if (gpu->lost_s >= 0 && clock_s() >= gpu->lost_s) return nvml::kGpuIsLost;
  return copy_string(gpu->uuid, uuid, length);
}

FAKE_EXPORT nvml::Return nvmlDeviceGetPowerUsage(nvml::Device handle, unsigned* power_mw) {
  return answer(handle, &FakeDevice::power_mw, power_mw);
}

FAKE_EXPORT nvml::Return nvmlDeviceGetUtilizationRates(nvml::Device handle, nvml::Utilization* utilization) {
  if (utilization == nullptr) return nvml::kInvalidArgument;
  unsigned gpu_pct = 0;
  const nvml::Return rc = answer(handle, &FakeDevice::util, &gpu_pct);
  if (rc == nvml::kSuccess) *utilization = nvml::Utilization{gpu_pct, gpu_pct / 2};
  return rc;
}

FAKE_EXPORT nvml::Return nvmlDeviceGetMemoryInfo(nvml::Device handle, nvml::Memory* memory) {
  if (memory == nullptr) return nvml::kInvalidArgument;
  unsigned long long used_bytes = 0;
  const nvml::Return rc = answer(handle, &FakeDevice::mem_used, &used_bytes);
  if (rc == nvml::kSuccess) {
    const unsigned long long total_bytes = std::max(used_bytes, 80ull << 30);
    *memory = nvml::Memory{total_bytes, total_bytes - used_bytes, used_bytes};
  }
  return rc;
}

FAKE_EXPORT nvml::Return nvmlDeviceGetClockInfo(nvml::Device handle, int clock_type, unsigned* clock_mhz) {
  if (clock_type != nvml::kClockSm) return nvml::kNotSupported;  // the fake scripts only the SM clock
  return answer(handle, &FakeDevice::sm_mhz, clock_mhz);
}

FAKE_EXPORT nvml::Return nvmlDeviceGetTemperature(nvml::Device handle, int sensor, unsigned* temperature_c) {
  if (sensor != nvml::kTemperatureGpu) return nvml::kInvalidArgument;
  return answer(handle, &FakeDevice::temp, temperature_c);
}

#ifndef FAKE_NVML_LEGACY

FAKE_EXPORT nvml::Return nvmlInit_v2() { return init(); }
FAKE_EXPORT nvml::Return nvmlDeviceGetCount_v2(unsigned* count) { return get_count(count); }
FAKE_EXPORT nvml::Return nvmlDeviceGetHandleByIndex_v2(unsigned index, nvml::Device* handle) {
  return get_handle(index, handle);
}

FAKE_EXPORT nvml::Return nvmlDeviceGetTotalEnergyConsumption(nvml::Device handle, unsigned long long* energy_mj) {
  return answer(handle, &FakeDevice::energy_mj, energy_mj);
}

FAKE_EXPORT nvml::Return nvmlDeviceGetEnforcedPowerLimit(nvml::Device handle, unsigned* limit_mw) {
  return answer(handle, &FakeDevice::limit_mw, limit_mw);
}

FAKE_EXPORT nvml::Return nvmlDeviceGetMaxMigDeviceCount(nvml::Device handle, unsigned* count) {
  FakeDevice* gpu = nullptr;
  if (nvml::Return rc = gpu_of(handle, gpu); rc != nvml::kSuccess) return rc;
  if (count == nullptr) return nvml::kInvalidArgument;
  if (gpu->migs.empty()) return nvml::kNotSupported;  // as on a GPU without MIG mode
  *count = gpu->mig_slots > 0 ? gpu->mig_slots : static_cast<unsigned>(gpu->migs.size()) + 1;  // one empty slot
  return nvml::kSuccess;
}

FAKE_EXPORT nvml::Return nvmlDeviceGetMigDeviceHandleByIndex(nvml::Device handle, unsigned index,
                                                             nvml::Device* mig) {
  FakeDevice* gpu = nullptr;
  if (nvml::Return rc = gpu_of(handle, gpu); rc != nvml::kSuccess) return rc;
  if (mig == nullptr) return nvml::kInvalidArgument;
  if (index >= gpu->migs.size()) return nvml::kNotFound;
  *mig = reinterpret_cast<nvml::Device>(gpu->migs[index].get());
  return nvml::kSuccess;
}

FAKE_EXPORT nvml::Return nvmlDeviceGetAttributes_v2(nvml::Device handle, nvml::DeviceAttributes* attributes) {
  if (state().sessions == 0) return nvml::kUninitialized;
  if (handle == nullptr || attributes == nullptr) return nvml::kInvalidArgument;
  const FakeDevice* dev = reinterpret_cast<const FakeDevice*>(handle);
  if (!dev->mig) return nvml::kNotSupported;
  *attributes = nvml::DeviceAttributes{};
  attributes->gpu_instance_slice_count = dev->slices;
  attributes->compute_instance_slice_count = dev->slices;
  return nvml::kSuccess;
}

// Each call is one sampling period's worth: the next scripted set, stamped now.
FAKE_EXPORT nvml::Return nvmlDeviceGetProcessUtilization(nvml::Device handle, nvml::ProcessUtilizationSample* samples,
                                                         unsigned* count, unsigned long long /*last_seen_us*/) {
  FakeDevice* gpu = nullptr;
  if (nvml::Return rc = gpu_of(handle, gpu); rc != nvml::kSuccess) return rc;
  if (count == nullptr) return nvml::kInvalidArgument;
  if (!gpu->putil_scripted) return nvml::kNotSupported;
  if (samples == nullptr) {  // the size query does not use up a set
    const auto& steps = gpu->putil.steps;
    const UtilSet& next = steps[std::min(gpu->putil.next, steps.size() - 1)];
    if (next.rc != nvml::kSuccess) return next.rc;
    *count = static_cast<unsigned>(next.samples.size());
    return next.samples.empty() ? nvml::kNotFound : nvml::kInsufficientSize;
  }
  const UtilSet set = gpu->putil.take();
  if (set.rc != nvml::kSuccess) return set.rc;
  if (set.samples.empty()) return nvml::kNotFound;
  if (*count < set.samples.size()) {
    *count = static_cast<unsigned>(set.samples.size());
    return nvml::kInsufficientSize;
  }
  const auto now_us = static_cast<unsigned long long>(clock_s() * 1e6) + 1;
  for (std::size_t i = 0; i < set.samples.size(); ++i)
    samples[i] = nvml::ProcessUtilizationSample{set.samples[i].first, now_us, set.samples[i].second, 0, 0, 0};
  *count = static_cast<unsigned>(set.samples.size());
  return nvml::kSuccess;
}

FAKE_EXPORT nvml::Return nvmlDeviceGetFieldValues(nvml::Device handle, int count, nvml::FieldValue* values) {
  FakeDevice* gpu = nullptr;
  if (nvml::Return rc = gpu_of(handle, gpu); rc != nvml::kSuccess) return rc;
  if (count < 0 || (count > 0 && values == nullptr)) return nvml::kInvalidArgument;
  const double t = clock_s();
  for (int i = 0; i < count; ++i) {
    nvml::FieldValue& v = values[i];
    v.timestamp_us = static_cast<long long>(t * 1e6);
    v.latency_us = 0;
    v.nvml_return = nvml::kNotSupported;
    if (gpu->watts.empty() || v.scope_id != 0) continue;
    if (v.field_id == nvml::kFieldPowerInstant && gpu->instant) {
      v.value_type = nvml::kValueUint;
      v.value.ui = static_cast<unsigned>(std::lround(1000.0 * watts_at(*gpu, t)));
      v.nvml_return = nvml::kSuccess;
    }
  }
  return nvml::kSuccess;
}

FAKE_EXPORT nvml::Return nvmlDeviceGetComputeRunningProcesses_v3(nvml::Device handle, unsigned* count,
                                                                 nvml::ProcessInfoV2* infos) {
  return processes(handle, count, infos);
}

#else  // an old driver

FAKE_EXPORT nvml::Return nvmlInit() { return init(); }
FAKE_EXPORT nvml::Return nvmlDeviceGetCount(unsigned* count) { return get_count(count); }
FAKE_EXPORT nvml::Return nvmlDeviceGetHandleByIndex(unsigned index, nvml::Device* handle) {
  return get_handle(index, handle);
}

FAKE_EXPORT nvml::Return nvmlDeviceGetPowerManagementLimit(nvml::Device handle, unsigned* limit_mw) {
  return answer(handle, &FakeDevice::limit_mw, limit_mw);
}

FAKE_EXPORT nvml::Return nvmlDeviceGetComputeRunningProcesses(nvml::Device handle, unsigned* count,
                                                              nvml::ProcessInfoV1* infos) {
  return processes(handle, count, infos);
}

#endif
