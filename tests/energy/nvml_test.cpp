// The NVML source against the fake NVML library (tests/fake_nvml), loaded
// through the same dlopen path as the real one. The script format is described
// at the top of tests/fake_nvml/fake_nvml.cpp.
#include <dlfcn.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "powertrain/energy/measurement.h"
#include "powertrain/energy/registry.h"
#include "powertrain/energy/tracker.h"
#include "powertrain/error.h"
#include "scoped_env.h"
#include "temp_dir.h"

namespace powertrain::energy {
namespace {

using ::testing::HasSubstr;

using powertrain::testing::ScopedEnv;

/// "first,first+1,...": `n` process ids.
std::string pid_list(unsigned first, unsigned n) {
  std::string s;
  for (unsigned i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string(first + i);
  return s;
}

class NvmlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The machine running the tests may have either set.
    cuda_visible_.unset();
    device_order_.unset();
    library_env_.unset();
  }

  /// Writes the fake's script and points the fake at it.
  void script(const std::string& text) {
    powertrain::testing::write_file(dir_ / "nvml.txt", text);
    script_env_.set((dir_ / "nvml.txt").string());
  }

  /// Opens the source on the fake library with `text` as its script. Like NVML,
  /// the fake keeps its state while any session is open: a test that opens again
  /// with another script first destroys the meter it holds.
  std::unique_ptr<Meter> open(const std::string& text, ProbeOptions options = {},
                              const char* library = FAKE_NVML_PATH) {
    script(text);
    options.nvml_library = library;
    return open_nvml(options, status_);
  }

  static std::vector<ChannelSample> read(Meter& meter) {
    std::vector<ChannelSample> samples;
    meter.read(samples);
    EXPECT_EQ(samples.size(), meter.channels().size());
    return samples;
  }

  static std::vector<std::string> ids(const Meter& meter) {
    std::vector<std::string> out;
    for (const auto& ch : meter.channels()) out.push_back(ch.id);
    return out;
  }

  /// A tracker over the meter, sampling every 10 ms.
  static std::unique_ptr<Tracker> track(std::unique_ptr<Meter> meter, int interval_ms = 10) {
    std::vector<std::unique_ptr<Meter>> meters;
    meters.push_back(std::move(meter));
    TrackerOptions options;
    options.interval = std::chrono::milliseconds(interval_ms);
    return std::make_unique<Tracker>(std::move(meters), options);
  }

  /// A /proc whose self/ns/pid names the host's PID namespace (4026531836, the
  /// kernel's PROC_PID_INIT_INO) or, in a container, another one.
  std::filesystem::path fake_proc(bool host) {
    const auto proc = dir_ / (host ? "proc-host" : "proc-container");
    std::filesystem::create_directories(proc / "self/ns");
    std::filesystem::create_symlink(host ? "pid:[4026531836]" : "pid:[4026532719]", proc / "self/ns/pid");
    return proc;
  }

  /// Runs the command's stand-in (this test) for `seconds` under a tracker of
  /// the fake's GPUs and decides, as measure does, which GPUs it used.
  Measurement measure_gpu_use(const std::string& script_text, bool host, double seconds = 0.15,
                              int interval_ms = 10) {
    auto meter = open(script_text);
    EXPECT_NE(meter, nullptr) << status_.reason;
    Measurement m;
    if (!meter) return m;
    auto tracker = track(std::move(meter), interval_ms);
    tracker->start();
    tracker->begin("run");
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    m.window = tracker->end("run");
    tracker->stop();
    const std::set<std::uint32_t> tree{static_cast<std::uint32_t>(getpid())};
    decide_gpu_use(m, tracker->gpu_process_log(), tree, in_host_pid_namespace(fake_proc(host)));
    attribute(m);
    return m;
  }

  void expect_unavailable() {
    EXPECT_EQ(status_.source, "nvml");
    EXPECT_FALSE(status_.description.empty());
    EXPECT_FALSE(status_.available);
    EXPECT_FALSE(status_.reason.empty());
    EXPECT_FALSE(status_.fix.empty());
  }

  powertrain::testing::TempDir dir_;
  ScopedEnv cuda_visible_{"CUDA_VISIBLE_DEVICES"};
  ScopedEnv device_order_{"CUDA_DEVICE_ORDER"};
  ScopedEnv library_env_{"POWERTRAIN_NVML_LIBRARY"};
  ScopedEnv script_env_{"FAKE_NVML_SCRIPT"};
  SourceStatus status_;
};

// --- Loading and initialization ---------------------------------------------

TEST_F(NvmlTest, MissingLibraryIsUnavailableWithReasonAndFix) {
  ProbeOptions options;
  options.nvml_library = (dir_ / "libnvidia-ml.so.1").string();
  EXPECT_EQ(open_nvml(options, status_), nullptr);
  expect_unavailable();
  EXPECT_THAT(status_.reason, HasSubstr(options.nvml_library));
}

TEST_F(NvmlTest, DefaultLibraryIsTheDrivers) {
  if (void* real = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL); real == nullptr) {
    EXPECT_EQ(open_nvml({}, status_), nullptr);
    expect_unavailable();
    EXPECT_EQ(status_.reason, "libnvidia-ml.so.1 not found (no NVIDIA driver installed)");
    EXPECT_THAT(status_.fix, HasSubstr("install the NVIDIA driver"));
    return;
  } else {
    dlclose(real);
  }
  // A real driver: whatever it offers must read sanely.
  auto meter = open_nvml({}, status_);
  if (!meter) GTEST_SKIP() << "real NVML present but unavailable: " << status_.reason;
  auto first = read(*meter);
  auto second = read(*meter);
  for (std::size_t i = 0; i < meter->channels().size(); ++i) {
    const ChannelInfo& ch = meter->channels()[i];
    EXPECT_EQ(ch.component, Component::gpu);
    if (ch.cumulative) {
      EXPECT_GE(second[i].energy_j, first[i].energy_j) << ch.id;
    } else {
      EXPECT_GE(second[i].power_w, 0.0) << ch.id;
    }
    std::cout << ch.id << " " << ch.device << " " << to_string(ch.method) << " energy_j=" << second[i].energy_j
              << " power_w=" << second[i].power_w << " limit_w=" << second[i].gpu.power_limit_w
              << " util=" << second[i].gpu.utilization_pct << " sm_mhz=" << second[i].gpu.sm_clock_mhz
              << " temp_c=" << second[i].gpu.temperature_c << " mem_used=" << second[i].gpu.memory_used_bytes
              << " pids=" << (meter->lists_processes() ? meter->processes(i).size() : 0) << "\n";
  }
}

TEST_F(NvmlTest, EnvironmentVariableNamesTheLibrary) {
  script("gpu 0 energy_mj=0\n");
  library_env_.set(FAKE_NVML_PATH);
  EXPECT_NE(open_nvml({}, status_), nullptr);
  EXPECT_TRUE(status_.available) << status_.reason;

  library_env_.set((dir_ / "missing.so").string());
  EXPECT_EQ(open_nvml({}, status_), nullptr);
  expect_unavailable();
  EXPECT_THAT(status_.reason, HasSubstr("POWERTRAIN_NVML_LIBRARY"));
}

TEST_F(NvmlTest, DriverNotLoaded) {
  EXPECT_EQ(open("init DRIVER_NOT_LOADED\ngpu 0 energy_mj=0\n"), nullptr);
  expect_unavailable();
  EXPECT_EQ(status_.reason, "nvmlInit failed: Driver Not Loaded (NVML_ERROR_DRIVER_NOT_LOADED)");
  EXPECT_THAT(status_.fix, HasSubstr("kernel module"));
}

TEST_F(NvmlTest, InitWithoutPermission) {
  EXPECT_EQ(open("init NO_PERMISSION\n"), nullptr);
  expect_unavailable();
  EXPECT_EQ(status_.reason, "nvmlInit failed: Insufficient Permissions (NVML_ERROR_NO_PERMISSION)");
  EXPECT_THAT(status_.fix, HasSubstr("/dev/nvidia"));
}

TEST_F(NvmlTest, NoGpus) {
  EXPECT_EQ(open("# a driver that sees no GPU\n"), nullptr);
  expect_unavailable();
  EXPECT_THAT(status_.reason, HasSubstr("no GPUs"));
}

TEST_F(NvmlTest, ShutsNvmlDownOnEveryPath) {
  // Holding our own reference keeps the fake's state alive between opens.
  void* fake = dlopen(FAKE_NVML_PATH, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(fake, nullptr) << dlerror();
  auto sessions = reinterpret_cast<int (*)()>(dlsym(fake, "fake_nvml_sessions"));
  ASSERT_NE(sessions, nullptr);

  auto meter = open("gpu 0 energy_mj=0\n");
  ASSERT_NE(meter, nullptr);
  EXPECT_EQ(sessions(), 1);
  meter.reset();
  EXPECT_EQ(sessions(), 0);

  EXPECT_EQ(open(""), nullptr);  // no GPUs: fails after nvmlInit succeeded
  EXPECT_EQ(sessions(), 0);
  dlclose(fake);
}

// --- Counter and sampled GPUs -------------------------------------------------

TEST_F(NvmlTest, CounterGpuReportsJoulesSinceOpen) {
  // Opening reads the counter once (1000 mJ): energy counts from there.
  auto meter = open("gpu 0 name=NVIDIA_H100 uuid=GPU-aaaa energy_mj=1000,1500,2500 power_mw=250000,260000\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_TRUE(status_.available);
  EXPECT_TRUE(status_.reason.empty());
  EXPECT_EQ(meter->source(), "nvml");
  ASSERT_EQ(meter->channels().size(), 1u);
  EXPECT_EQ(status_.channels.size(), 1u);

  const ChannelInfo& ch = meter->channels()[0];
  EXPECT_EQ(ch.id, "nvml:gpu0");
  EXPECT_EQ(ch.source, "nvml");
  EXPECT_EQ(ch.device, "gpu0 NVIDIA H100");
  EXPECT_EQ(ch.component, Component::gpu);
  EXPECT_EQ(ch.method, Method::counter);
  EXPECT_TRUE(ch.cumulative);
  EXPECT_TRUE(ch.in_total);
  EXPECT_DOUBLE_EQ(ch.update_period_s, 0.1);
  EXPECT_EQ(ch.gpu_index, 0);

  auto s = read(*meter);
  EXPECT_DOUBLE_EQ(s[0].energy_j, 0.5);
  EXPECT_DOUBLE_EQ(s[0].power_w, 250.0);
  s = read(*meter);
  EXPECT_DOUBLE_EQ(s[0].energy_j, 1.5);
  EXPECT_DOUBLE_EQ(s[0].power_w, 260.0);
  s = read(*meter);  // the fake repeats its last values
  EXPECT_DOUBLE_EQ(s[0].energy_j, 1.5);
}

TEST_F(NvmlTest, CounterThatStartsAgainStaysMonotonic) {
  // 5000 at open, then the driver's counter restarts from zero after 6000.
  auto meter = open("gpu 0 energy_mj=5000,6000,100,300\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_DOUBLE_EQ(read(*meter)[0].energy_j, 1.0);
  EXPECT_DOUBLE_EQ(read(*meter)[0].energy_j, 1.1);
  EXPECT_DOUBLE_EQ(read(*meter)[0].energy_j, 1.3);
}

TEST_F(NvmlTest, GpuWithoutCounterIsSampled) {
  // Opening checks the power once (100 W).
  auto meter = open("gpu 0 name=Tesla_P100 energy_mj=NOT_SUPPORTED power_mw=100000,120000,130500\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  const ChannelInfo& ch = meter->channels()[0];
  EXPECT_EQ(ch.device, "gpu0 Tesla P100");
  EXPECT_EQ(ch.method, Method::sampled);
  EXPECT_FALSE(ch.cumulative);
  EXPECT_DOUBLE_EQ(ch.update_period_s, 1.0);

  auto s = read(*meter);
  EXPECT_TRUE(std::isnan(s[0].energy_j));
  EXPECT_DOUBLE_EQ(s[0].power_w, 120.0);
  EXPECT_DOUBLE_EQ(read(*meter)[0].power_w, 130.5);
}

TEST_F(NvmlTest, MixedGpus) {
  auto meter = open(
      "gpu 0 name=NVIDIA_A100 energy_mj=0,2000 power_mw=300000\n"
      "gpu 1 name=Tesla_K80 power_mw=90000,95000\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), (std::vector<std::string>{"nvml:gpu0", "nvml:gpu1"}));
  EXPECT_EQ(meter->channels()[0].method, Method::counter);
  EXPECT_EQ(meter->channels()[1].method, Method::sampled);
  EXPECT_EQ(meter->channels()[1].gpu_index, 1);
  EXPECT_EQ(meter->channels()[1].device, "gpu1 Tesla K80");

  auto s = read(*meter);
  EXPECT_DOUBLE_EQ(s[0].energy_j, 2.0);
  EXPECT_DOUBLE_EQ(s[0].power_w, 300.0);
  EXPECT_TRUE(std::isnan(s[1].energy_j));
  EXPECT_DOUBLE_EQ(s[1].power_w, 95.0);
}

TEST_F(NvmlTest, GpuThatReportsNothingIsLeftOut) {
  auto meter = open(
      "gpu 0 energy_mj=0\n"
      "gpu 1 name=Quadro_P400 energy_mj=NOT_SUPPORTED power_mw=NOT_SUPPORTED\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), std::vector<std::string>{"nvml:gpu0"});
  EXPECT_THAT(status_.description, HasSubstr("gpu1 Quadro P400"));

  meter.reset();
  EXPECT_EQ(open("gpu 0 name=Quadro_P400 power_mw=NOT_SUPPORTED\n"), nullptr);
  expect_unavailable();
  EXPECT_THAT(status_.reason, HasSubstr("neither energy nor power"));
}

TEST_F(NvmlTest, GpuWithoutPermissionIsLeftOut) {
  auto meter = open("gpu 0 handle=NO_PERMISSION\ngpu 1 energy_mj=0\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), std::vector<std::string>{"nvml:gpu1"});

  meter.reset();
  EXPECT_EQ(open("gpu 0 handle=NO_PERMISSION\n"), nullptr);
  expect_unavailable();
  EXPECT_THAT(status_.reason, HasSubstr("gpu0"));
  EXPECT_THAT(status_.reason, HasSubstr("NVML_ERROR_NO_PERMISSION"));
  EXPECT_THAT(status_.fix, HasSubstr("/dev/nvidia"));
}

TEST_F(NvmlTest, BoundaryReadTakesOnlyTheCounter) {
  // Window boundaries read energy alone: the fake's power and utilization
  // sequences do not advance, so the next full read sees their second values.
  auto meter = open("gpu 0 energy_mj=0,1000,3000 power_mw=100000,200000 util=10,20\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_TRUE(meter->read_at_boundaries());
  std::vector<ChannelSample> s;
  meter->read_energy(s);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_DOUBLE_EQ(s[0].energy_j, 1.0);
  EXPECT_TRUE(std::isnan(s[0].power_w));
  EXPECT_TRUE(std::isnan(s[0].gpu.utilization_pct));
  s = read(*meter);
  EXPECT_DOUBLE_EQ(s[0].energy_j, 3.0);
  EXPECT_DOUBLE_EQ(s[0].gpu.utilization_pct, 10.0);

  meter.reset();
  meter = open("gpu 0 energy_mj=NOT_SUPPORTED power_mw=100000\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_FALSE(meter->read_at_boundaries());  // sampled power is held at boundaries
}

// --- Telemetry ----------------------------------------------------------------

TEST_F(NvmlTest, Telemetry) {
  auto meter = open(
      "gpu 0 energy_mj=0 power_mw=300000 limit_mw=700000 util=50,75 sm_mhz=1980 temp=40 mem_used=1000\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  auto s = read(*meter);
  EXPECT_DOUBLE_EQ(s[0].gpu.power_limit_w, 700.0);
  EXPECT_DOUBLE_EQ(s[0].gpu.utilization_pct, 50.0);
  EXPECT_DOUBLE_EQ(s[0].gpu.sm_clock_mhz, 1980.0);
  EXPECT_DOUBLE_EQ(s[0].gpu.temperature_c, 40.0);
  EXPECT_DOUBLE_EQ(s[0].gpu.memory_used_bytes, 1000.0);
  EXPECT_DOUBLE_EQ(read(*meter)[0].gpu.utilization_pct, 75.0);
}

TEST_F(NvmlTest, TelemetryIsNaNWhenUnavailable) {
  // Power and the limit are left out of the script: NOT_SUPPORTED. A counter
  // GPU needs neither, so they read as NaN rather than failing the read.
  auto meter = open("gpu 0 energy_mj=0 util=NOT_SUPPORTED,50 temp=TIMEOUT,45\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  auto s = read(*meter);
  EXPECT_DOUBLE_EQ(s[0].energy_j, 0.0);
  EXPECT_TRUE(std::isnan(s[0].power_w));
  EXPECT_TRUE(std::isnan(s[0].gpu.power_limit_w));
  EXPECT_TRUE(std::isnan(s[0].gpu.utilization_pct));
  EXPECT_TRUE(std::isnan(s[0].gpu.sm_clock_mhz));
  EXPECT_TRUE(std::isnan(s[0].gpu.temperature_c));
  EXPECT_TRUE(std::isnan(s[0].gpu.memory_used_bytes));

  s = read(*meter);
  // NOT_SUPPORTED is final: the GPU is not asked again. A timeout is not.
  EXPECT_TRUE(std::isnan(s[0].gpu.utilization_pct));
  EXPECT_DOUBLE_EQ(s[0].gpu.temperature_c, 45.0);
}

// --- Device selection ---------------------------------------------------------

constexpr const char* kThreeGpus =
    "gpu 0 uuid=GPU-aaaa1111 energy_mj=0\n"
    "gpu 1 uuid=GPU-bbbb2222 energy_mj=0\n"
    "gpu 2 uuid=GPU-bbbb3333 energy_mj=0\n";

TEST_F(NvmlTest, AllGpusByDefault) {
  auto meter = open(kThreeGpus);
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), (std::vector<std::string>{"nvml:gpu0", "nvml:gpu1", "nvml:gpu2"}));
}

TEST_F(NvmlTest, CudaVisibleDevicesByIndex) {
  cuda_visible_.set("2, 0");
  auto meter = open(kThreeGpus);
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), (std::vector<std::string>{"nvml:gpu2", "nvml:gpu0"}));
  EXPECT_EQ(meter->channels()[0].gpu_index, 2);
}

TEST_F(NvmlTest, CudaVisibleDevicesByUuidPrefix) {
  cuda_visible_.set("GPU-bbbb3,GPU-aaaa1111");
  auto meter = open(kThreeGpus);
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), (std::vector<std::string>{"nvml:gpu2", "nvml:gpu0"}));
}

TEST_F(NvmlTest, CudaVisibleDevicesEmptySelectsNoGpu) {
  cuda_visible_.set("");
  EXPECT_EQ(open(kThreeGpus), nullptr);
  expect_unavailable();
  EXPECT_THAT(status_.reason, HasSubstr("CUDA_VISIBLE_DEVICES"));

  cuda_visible_.set("-1");
  EXPECT_EQ(open(kThreeGpus), nullptr);
  expect_unavailable();
}

TEST_F(NvmlTest, CudaVisibleDevicesStopsAtTheFirstInvalidEntry) {
  cuda_visible_.set("1,7,0");
  auto meter = open(kThreeGpus);
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), std::vector<std::string>{"nvml:gpu1"});
  EXPECT_THAT(status_.description, HasSubstr("'7'"));

  // A prefix that fits two GPUs names neither.
  cuda_visible_.set("GPU-bbbb");
  EXPECT_EQ(open(kThreeGpus), nullptr);
  expect_unavailable();
}

TEST_F(NvmlTest, CudaVisibleDevicesMigInstanceSelectsItsGpu) {
  const std::string script =
      "gpu 0 uuid=GPU-aaaa1111 energy_mj=0\n"
      "gpu 1 uuid=GPU-bbbb2222 energy_mj=0 mig=MIG-1111,MIG-2222\n";
  cuda_visible_.set("MIG-2222");
  auto meter = open(script);
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), std::vector<std::string>{"nvml:gpu1"});

  // The older form names the parent GPU inside the MIG id.
  meter.reset();
  cuda_visible_.set("MIG-GPU-aaaa1111/1/0");
  meter = open(script);
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), std::vector<std::string>{"nvml:gpu0"});
}

// Issue 13, defect 2: CUDA numbers GPUs fastest first unless
// CUDA_DEVICE_ORDER=PCI_BUS_ID; NVML numbers them in PCI bus order. On a node of
// mixed models an index in CUDA_VISIBLE_DEVICES cannot be mapped to NVML's.
TEST_F(NvmlTest, CudaVisibleDevicesIndexFollowsCudaDeviceOrder) {
  const std::string mixed =
      "gpu 0 name=Tesla_T4 uuid=GPU-t4t4 energy_mj=0\n"
      "gpu 1 name=NVIDIA_A100 uuid=GPU-a100 energy_mj=0\n";
  // Fastest first (the default): CUDA's 0 is probably the A100, NVML's 1. Not
  // guessed: both GPUs are measured, and every window says why.
  cuda_visible_.set("0");
  auto meter = open(mixed);
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), (std::vector<std::string>{"nvml:gpu0", "nvml:gpu1"}));
  EXPECT_THAT(status_.description, HasSubstr("CUDA_DEVICE_ORDER"));
  EXPECT_THAT(meter->channels()[0].note, HasSubstr("CUDA_DEVICE_ORDER=PCI_BUS_ID"));

  // In PCI bus order CUDA and NVML agree.
  meter.reset();
  device_order_.set("PCI_BUS_ID");
  meter = open(mixed);
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), std::vector<std::string>{"nvml:gpu0"});
  EXPECT_TRUE(meter->channels()[0].note.empty());

  // UUIDs are exact in either order.
  meter.reset();
  device_order_.set("FASTEST_FIRST");
  cuda_visible_.set("GPU-a100");
  meter = open(mixed);
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), std::vector<std::string>{"nvml:gpu1"});

  // Identical GPUs: fastest first ties break in bus order, so the orders agree.
  meter.reset();
  cuda_visible_.set("1");
  meter = open(kThreeGpus);
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), std::vector<std::string>{"nvml:gpu1"});
}

// Issue 13, defect 9: a MIG instance is measured through its whole GPU's
// counter; every window that measures one says so.
TEST_F(NvmlTest, MigInstanceIsNotedInEveryWindow) {
  cuda_visible_.set("MIG-2222");
  auto meter = open(
      "gpu 0 uuid=GPU-aaaa1111 energy_mj=0\n"
      "gpu 1 uuid=GPU-bbbb2222 energy_mj=0,1000,2000 mig=MIG-1111,MIG-2222\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  ASSERT_EQ(ids(*meter), std::vector<std::string>{"nvml:gpu1"});
  EXPECT_THAT(meter->channels()[0].note, HasSubstr("MIG"));
  auto tracker = track(std::move(meter), 60000);
  tracker->begin("run");
  const auto r = tracker->end("run");
  bool noted = false;
  for (const auto& n : r.notes) noted = noted || n.find("whole GPU") != std::string::npos;
  EXPECT_TRUE(noted);

  // A GPU in MIG mode measured without naming an instance: the same note.
  tracker.reset();
  cuda_visible_.unset();
  meter = open("gpu 0 energy_mj=0 mig=MIG-1111\ngpu 1 energy_mj=0\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_THAT(meter->channels()[0].note, HasSubstr("MIG"));
  EXPECT_TRUE(meter->channels()[1].note.empty());
}

// Issue 13, defect 10: nvmlDeviceGetPowerUsage is a one-second average on
// Ampere and newer; where the driver offers NVML_FI_DEV_POWER_INSTANT it is used.
TEST_F(NvmlTest, InstantPowerIsUsedWhereTheDriverOffersIt) {
  // 100 W, then 400 W from 0.3 s. At 0.4 s the one-second average is 130 W.
  auto meter = open(
      "gpu 0 watts=100,400 step_ms=300 refresh_ms=10 instant=1\n"
      "gpu 1 watts=100,400 step_ms=300 refresh_ms=10 instant=1 counter=0\n"
      "gpu 2 watts=100,400 step_ms=300 refresh_ms=10 counter=0\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const auto s = read(*meter);
  EXPECT_TRUE(meter->channels()[0].instant_power);
  EXPECT_NEAR(s[0].power_w, 400.0, 1.0);
  EXPECT_EQ(meter->channels()[1].method, Method::sampled);
  EXPECT_NEAR(s[1].power_w, 400.0, 1.0);
  // Without the field: the average, and the channel says what it is.
  EXPECT_FALSE(meter->channels()[2].instant_power);
  EXPECT_NEAR(s[2].power_w, 130.0, 10.0);
  EXPECT_THAT(meter->channels()[2].note, HasSubstr("one-second average"));
  EXPECT_TRUE(meter->channels()[1].note.empty());
}

TEST_F(NvmlTest, InstantPowerGivesTheWindowPeak) {
  auto meter = open("gpu 0 watts=100,400 step_ms=300 refresh_ms=100 instant=1\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  auto tracker = track(std::move(meter));
  tracker->start();
  tracker->begin("run");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const auto r = tracker->end("run");
  tracker->stop();
  EXPECT_NEAR(r.channels[0].peak_power_w, 400.0, 1.0);
  EXPECT_NEAR(r.peak_power_w, 400.0, 1.0);
}

TEST_F(NvmlTest, ExplicitIndicesOverrideCudaVisibleDevices) {
  cuda_visible_.set("0");
  ProbeOptions options;
  options.gpu_indices = std::vector<unsigned>{1, 2};
  auto meter = open(kThreeGpus, options);
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(ids(*meter), (std::vector<std::string>{"nvml:gpu1", "nvml:gpu2"}));
}

TEST_F(NvmlTest, ExplicitIndexOutOfRange) {
  ProbeOptions options;
  options.gpu_indices = std::vector<unsigned>{0, 5};
  EXPECT_EQ(open(kThreeGpus, options), nullptr);
  expect_unavailable();
  EXPECT_THAT(status_.reason, HasSubstr("GPU index 5"));
}

// --- Processes ----------------------------------------------------------------

TEST_F(NvmlTest, ProcessList) {
  auto meter = open("gpu 0 energy_mj=0 pids=123,456\ngpu 1 energy_mj=0\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  ASSERT_TRUE(meter->lists_processes());
  EXPECT_EQ(meter->processes(0), (std::vector<std::uint32_t>{123, 456}));
  EXPECT_TRUE(meter->processes(1).empty());
}

TEST_F(NvmlTest, ProcessListRetriesWhileItGrows) {
  // The meter starts with room for 8. Each call takes the next set: 9 processes
  // (too many), then 17 (still too many for the grown buffer), then 17 fit.
  auto meter = open("gpu 0 energy_mj=0 pids=" + pid_list(100, 9) + "/" + pid_list(200, 17) + "/" +
                    pid_list(300, 17) + "\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  auto pids = meter->processes(0);
  ASSERT_EQ(pids.size(), 17u);
  EXPECT_EQ(pids.front(), 300u);
  EXPECT_EQ(pids.back(), 316u);
}

TEST_F(NvmlTest, ProcessListFailure) {
  auto meter = open("gpu 0 energy_mj=0 pids=NO_PERMISSION/GPU_IS_LOST\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_THROW(meter->processes(0), SourceError);
  EXPECT_THROW(meter->processes(0), SourceError);
}

// Issue 13, defect 1: a process list the driver does not offer is unknown, not
// an empty list (an empty list would read as "the command did not use it").
TEST_F(NvmlTest, ProcessListNotSupportedIsAFailureNotAnEmptyList) {
  auto meter = open("gpu 0 energy_mj=0 pids=NOT_SUPPORTED\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  try {
    meter->processes(0);
    FAIL() << "expected a SourceError";
  } catch (const SourceError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("Not Supported"));
  }
}

// --- Which GPUs the command used (issue 13, defect 1) ---------------------------

TEST_F(NvmlTest, GpuInAContainerIsKeptWhenItsHostPidsMatchNothing) {
  // Inside a container the driver lists host PIDs (48213), which never match
  // the command's PIDs there: the GPU's use is unknown and its energy counts.
  const Measurement m = measure_gpu_use("gpu 0 watts=100 refresh_ms=10 pids=48213\n", /*host=*/false);
  ASSERT_EQ(m.gpu_use.size(), 1u);
  EXPECT_EQ(m.gpu_use[0], GpuUse::unknown);
  EXPECT_THAT(m.gpu_use_why[0], HasSubstr("PID namespace"));
  EXPECT_GT(m.energy_j, 5.0);
  EXPECT_DOUBLE_EQ(m.excluded_gpu_energy_j, 0.0);
  EXPECT_THAT(to_text(m), HasSubstr("PID namespace"));
}

TEST_F(NvmlTest, GpuWhoseProcessListNeedsPrivilegesIsKept) {
  // A MIG parent GPU answers the process query only for root.
  const Measurement m = measure_gpu_use("gpu 0 watts=100 refresh_ms=10 pids=NO_PERMISSION\n", /*host=*/true);
  ASSERT_EQ(m.gpu_use.size(), 1u);
  EXPECT_EQ(m.gpu_use[0], GpuUse::unknown);
  EXPECT_THAT(m.gpu_use_why[0], HasSubstr("Insufficient Permissions"));
  EXPECT_GT(m.energy_j, 5.0);
}

TEST_F(NvmlTest, GpuWithoutProcessQueryIsKept) {
  const Measurement m = measure_gpu_use("gpu 0 watts=100 refresh_ms=10 pids=NOT_SUPPORTED\n", /*host=*/true);
  ASSERT_EQ(m.gpu_use.size(), 1u);
  EXPECT_EQ(m.gpu_use[0], GpuUse::unknown);
  EXPECT_GT(m.energy_j, 5.0);
}

TEST_F(NvmlTest, GpuIsKeptWhenNoProcessListWasReadWhileTheCommandRan) {
  // A command shorter than one sampling interval: no list was taken.
  const Measurement m = measure_gpu_use("gpu 0 watts=100 refresh_ms=10 pids=1\n", /*host=*/true, 0.05, 60000);
  ASSERT_EQ(m.gpu_use.size(), 1u);
  EXPECT_EQ(m.gpu_use[0], GpuUse::unknown);
  EXPECT_THAT(m.gpu_use_why[0], HasSubstr("no process list"));
}

TEST_F(NvmlTest, GpuUseOnTheHost) {
  // On the host the ids compare: ours means used, only others' means unused.
  const std::string ours = std::to_string(getpid());
  Measurement m = measure_gpu_use("gpu 0 watts=100 refresh_ms=10 pids=" + ours +
                                      "\ngpu 1 watts=50 refresh_ms=10 pids=2999999\n",
                                  /*host=*/true);
  ASSERT_EQ(m.gpu_use.size(), 2u);
  EXPECT_EQ(m.gpu_use[0], GpuUse::used);
  EXPECT_EQ(m.gpu_use[1], GpuUse::unused);
  EXPECT_GT(m.excluded_gpu_energy_j, 2.0);
  // In a container our own id in the list (a driver that translates) still counts.
  m = measure_gpu_use("gpu 0 watts=100 refresh_ms=10 pids=" + ours + "\n", /*host=*/false);
  EXPECT_EQ(m.gpu_use[0], GpuUse::used);
}

// --- Read failures ------------------------------------------------------------

// Issue 13, defect 3: one GPU that falls off the bus fails alone.
TEST_F(NvmlTest, LostGpuReadsNaNWithItsReasonAndTheOthersStillRead) {
  auto meter = open(
      "gpu 0 energy_mj=1000,2000,GPU_IS_LOST\n"
      "gpu 1 energy_mj=0,500,900\n"
      "gpu 2 power_mw=100000,120000,GPU_IS_LOST\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  auto s = read(*meter);
  EXPECT_DOUBLE_EQ(s[0].energy_j, 1.0);
  EXPECT_TRUE(meter->channel_error(0).empty());
  s = read(*meter);
  EXPECT_TRUE(std::isnan(s[0].energy_j));
  EXPECT_THAT(meter->channel_error(0), HasSubstr("gpu0"));
  EXPECT_THAT(meter->channel_error(0), HasSubstr("GPU is lost"));
  EXPECT_DOUBLE_EQ(s[1].energy_j, 0.9);
  EXPECT_TRUE(meter->channel_error(1).empty());
  EXPECT_TRUE(std::isnan(s[2].power_w));
  EXPECT_THAT(meter->channel_error(2), HasSubstr("GPU is lost"));
}

TEST_F(NvmlTest, LostGpuIsPartialInTheWindowAndNotExtrapolated) {
  // gpu0 draws 100 W and falls off the bus at 0.3 s; gpu1 draws 50 W throughout.
  auto meter = open("gpu 0 watts=100 refresh_ms=10 lost_ms=300\ngpu 1 watts=50 refresh_ms=10\n");
  ASSERT_NE(meter, nullptr) << status_.reason;
  auto tracker = track(std::move(meter));
  tracker->start();
  tracker->begin("run");
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const WindowResult r = tracker->end("run");
  tracker->stop();
  ASSERT_EQ(r.channels.size(), 2u);
  // At most 0.3 s of gpu0 were measured: 30 J, not 100 W over the 0.7 s window.
  EXPECT_LE(r.channels[0].energy_j, 31.0);
  EXPECT_GT(r.channels[0].energy_j, 20.0);
  EXPECT_TRUE(r.channels[0].partial);
  EXPECT_NEAR(r.channels[0].covered_s, 0.3, 0.06);
  EXPECT_EQ(method_label(r.channels[0]), "counter, partial");
  EXPECT_THAT(r.channels[0].error, HasSubstr("GPU is lost"));
  EXPECT_NEAR(r.channels[1].energy_j, 50.0 * r.duration_s, 1.5);
  EXPECT_FALSE(r.channels[1].partial);
  EXPECT_EQ(r.method, "counter, partial");
  bool noted = false;
  for (const auto& n : r.notes) noted = noted || n.find("nvml:gpu0") != std::string::npos;
  EXPECT_TRUE(noted);
}

// --- An old driver ------------------------------------------------------------

TEST_F(NvmlTest, OldDriverUsesUnversionedFunctions) {
  // The legacy fake exports no energy counter, only unversioned names and the
  // 16-byte process struct.
  auto meter = open("gpu 0 name=Tesla_K80 energy_mj=5000 power_mw=150000,149000 limit_mw=300000 pids=42,43\n", {},
                    FAKE_NVML_LEGACY_PATH);
  ASSERT_NE(meter, nullptr) << status_.reason;
  EXPECT_EQ(meter->channels()[0].method, Method::sampled);
  auto s = read(*meter);
  EXPECT_DOUBLE_EQ(s[0].power_w, 149.0);
  EXPECT_DOUBLE_EQ(s[0].gpu.power_limit_w, 300.0);
  ASSERT_TRUE(meter->lists_processes());
  EXPECT_EQ(meter->processes(0), (std::vector<std::uint32_t>{42, 43}));
}

}  // namespace
}  // namespace powertrain::energy
