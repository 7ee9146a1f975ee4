#pragma once
// The part of the NVML C API that powertrain uses, declared here so the build
// needs no NVML SDK and the binary runs where no NVIDIA driver exists: the
// library is dlopen'ed at run time. Layouts follow nvml.h; the fake NVML used by
// the tests (tests/fake_nvml) implements the same declarations.
#include <cstddef>
#include <string_view>

namespace powertrain::energy::nvml {

/// nvmlReturn_t.
using Return = int;
inline constexpr Return kSuccess = 0;
inline constexpr Return kUninitialized = 1;
inline constexpr Return kInvalidArgument = 2;
inline constexpr Return kNotSupported = 3;
inline constexpr Return kNoPermission = 4;
inline constexpr Return kNotFound = 6;
inline constexpr Return kInsufficientSize = 7;
inline constexpr Return kDriverNotLoaded = 9;
inline constexpr Return kTimeout = 10;
inline constexpr Return kLibraryNotFound = 12;
inline constexpr Return kFunctionNotFound = 13;
inline constexpr Return kGpuIsLost = 15;
inline constexpr Return kLibRmVersionMismatch = 18;
inline constexpr Return kNoData = 21;
inline constexpr Return kUnknown = 999;

/// NVML's names for its return codes, without the NVML_ERROR_ prefix.
struct ReturnName {
  Return code;
  std::string_view name;
};
inline constexpr ReturnName kReturnNames[] = {
    {kSuccess, "SUCCESS"},
    {kUninitialized, "UNINITIALIZED"},
    {kInvalidArgument, "INVALID_ARGUMENT"},
    {kNotSupported, "NOT_SUPPORTED"},
    {kNoPermission, "NO_PERMISSION"},
    {5, "ALREADY_INITIALIZED"},
    {kNotFound, "NOT_FOUND"},
    {kInsufficientSize, "INSUFFICIENT_SIZE"},
    {8, "INSUFFICIENT_POWER"},
    {kDriverNotLoaded, "DRIVER_NOT_LOADED"},
    {kTimeout, "TIMEOUT"},
    {11, "IRQ_ISSUE"},
    {kLibraryNotFound, "LIBRARY_NOT_FOUND"},
    {kFunctionNotFound, "FUNCTION_NOT_FOUND"},
    {14, "CORRUPTED_INFOROM"},
    {kGpuIsLost, "GPU_IS_LOST"},
    {16, "RESET_REQUIRED"},
    {17, "OPERATING_SYSTEM"},
    {kLibRmVersionMismatch, "LIB_RM_VERSION_MISMATCH"},
    {19, "IN_USE"},
    {20, "MEMORY"},
    {kNoData, "NO_DATA"},
    {kUnknown, "UNKNOWN"},
};

/// nvmlDevice_t: an opaque handle.
using Device = struct nvmlDevice_st*;

/// nvmlClockType_t value of the streaming-multiprocessor clock.
inline constexpr int kClockSm = 1;
/// nvmlTemperatureSensors_t value of the GPU die sensor.
inline constexpr int kTemperatureGpu = 0;
/// NVML_DEVICE_NAME_V2_BUFFER_SIZE and NVML_DEVICE_UUID_V2_BUFFER_SIZE.
inline constexpr unsigned kNameBufferSize = 96;
inline constexpr unsigned kUuidBufferSize = 96;

/// nvmlUtilization_t: percent of time over the driver's last sample period.
struct Utilization {
  unsigned gpu;
  unsigned memory;
};

/// nvmlMemory_t (version 1), bytes.
struct Memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

/// nvmlProcessInfo_v1_t: filled by the unversioned nvmlDeviceGetComputeRunningProcesses.
struct ProcessInfoV1 {
  unsigned pid;
  unsigned long long used_gpu_memory_bytes;
};

/// nvmlProcessInfo_t (nvmlProcessInfo_v2_t): filled by the _v2 and _v3 functions.
struct ProcessInfoV2 {
  unsigned pid;
  unsigned long long used_gpu_memory_bytes;
  unsigned gpu_instance_id;
  unsigned compute_instance_id;
};

/// nvmlFieldValue_t: one value asked for with nvmlDeviceGetFieldValues.
struct FieldValue {
  unsigned field_id;
  unsigned scope_id;  ///< for power fields: 0 the GPU, 1 the module
  long long timestamp_us;
  long long latency_us;
  int value_type;   ///< nvmlValueType_t: DOUBLE=0, UINT=1, ULONG=2, ULL=3, SLL=4, SINT=5, USHORT=6
  int nvml_return;  ///< the result for this value alone
  union {
    double d;
    unsigned ui;
    unsigned long ul;
    unsigned long long ull;
    long long sll;
    int si;
    unsigned short us;
  } value;
};
inline constexpr unsigned kFieldPowerAverage = 185;  ///< NVML_FI_DEV_POWER_AVERAGE, mW
inline constexpr unsigned kFieldPowerInstant = 186;  ///< NVML_FI_DEV_POWER_INSTANT, mW
inline constexpr int kValueDouble = 0, kValueUint = 1, kValueUlong = 2, kValueUll = 3, kValueSll = 4,
                     kValueSint = 5, kValueUshort = 6;

/// nvmlProcessUtilizationSample_t: one process's utilization over one of the
/// driver's sample periods (nvmlDeviceGetProcessUtilization).
struct ProcessUtilizationSample {
  unsigned pid;
  unsigned long long timestamp_us;  ///< CPU timestamp of the sample, microseconds
  unsigned sm_util;   ///< percent of the period a kernel of the process ran
  unsigned mem_util;
  unsigned enc_util;
  unsigned dec_util;
};

/// nvmlDeviceAttributes_t (nvmlDeviceGetAttributes_v2): of a MIG device, the
/// slices of its GPU instance.
struct DeviceAttributes {
  unsigned multiprocessor_count;
  unsigned shared_copy_engine_count;
  unsigned shared_decoder_count;
  unsigned shared_encoder_count;
  unsigned shared_jpeg_count;
  unsigned shared_ofa_count;
  unsigned gpu_instance_slice_count;
  unsigned compute_instance_slice_count;
  unsigned long long memory_size_mb;
};

// The driver writes arrays of these, so a wrong size corrupts every entry after the first.
static_assert(sizeof(ProcessUtilizationSample) == 32);
static_assert(sizeof(DeviceAttributes) == 40);
static_assert(sizeof(ProcessInfoV1) == 16);
static_assert(sizeof(ProcessInfoV2) == 24);
static_assert(sizeof(Memory) == 24);
static_assert(sizeof(Utilization) == 8);
static_assert(sizeof(FieldValue) == 40);

// Function types, named after the NVML function without the nvml prefix.
using InitFn = Return (*)();
using ShutdownFn = Return (*)();
using ErrorStringFn = const char* (*)(Return);
using DeviceGetCountFn = Return (*)(unsigned* count);
using DeviceGetHandleByIndexFn = Return (*)(unsigned index, Device* device);
using DeviceGetStringFn = Return (*)(Device device, char* buffer, unsigned length);  // name, UUID
using DeviceGetTotalEnergyConsumptionFn = Return (*)(Device device, unsigned long long* energy_mj);
using DeviceGetUintFn = Return (*)(Device device, unsigned* value);  // power mW, limits mW
using DeviceGetUtilizationRatesFn = Return (*)(Device device, Utilization* utilization);
using DeviceGetMemoryInfoFn = Return (*)(Device device, Memory* memory);
using DeviceGetClockInfoFn = Return (*)(Device device, int clock_type, unsigned* clock_mhz);
using DeviceGetTemperatureFn = Return (*)(Device device, int sensor, unsigned* temperature_c);
using DeviceGetMaxMigDeviceCountFn = Return (*)(Device device, unsigned* count);
using DeviceGetMigDeviceHandleByIndexFn = Return (*)(Device device, unsigned index, Device* mig_device);
using DeviceGetProcessesV1Fn = Return (*)(Device device, unsigned* count, ProcessInfoV1* infos);
using DeviceGetFieldValuesFn = Return (*)(Device device, int count, FieldValue* values);
using DeviceGetProcessesV2Fn = Return (*)(Device device, unsigned* count, ProcessInfoV2* infos);
using DeviceGetProcessUtilizationFn = Return (*)(Device device, ProcessUtilizationSample* samples, unsigned* count,
                                                 unsigned long long last_seen_timestamp_us);
using DeviceGetAttributesFn = Return (*)(Device device, DeviceAttributes* attributes);

}  // namespace powertrain::energy::nvml
