// Which GPUs are the run's, on the fake NVML (tests/fake_nvml): a server of 8
// GPUs and a run on one, a GPU shared with a foreign process, a MIG instance,
// a run in a container (other PID namespace), a command that launches its work
// elsewhere, and a GPU the run names without having used it yet.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "powertrain/energy/registry.h"
#include "powertrain/energy/tracker.h"
#include "scoped_env.h"
#include "temp_dir.h"
#include <fmt/format.h>

namespace powertrain::energy {
namespace {

using powertrain::testing::ScopedEnv;

using ::testing::HasSubstr;

// CPU time that grows with wall time, like a real counter: the machine at
// `machine_cpus` busy CPUs, the run at `run_cpus`; the run is this process.
class ClockUsage final : public UsageSource {
 public:
  ClockUsage(double busy_cpus, bool run) : busy_cpus_(busy_cpus), run_(run) {}
  int logical_cpus() const override { return 16; }
  double cpu_busy_seconds() override {
    return busy_cpus_ * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
  double memory_used_bytes() override { return run_ ? 1e9 : 8e9; }
  std::vector<int> pids() override { return run_ ? std::vector<int>{static_cast<int>(::getpid())} : std::vector<int>{}; }

 private:
  double busy_cpus_;
  bool run_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

class GpuShare : public ::testing::Test {
 protected:
  void SetUp() override {
    visible_.unset();
    order_.unset();
  }

  // Every GPU draws `watts` W; `keys[i]` are further keys of GPU i.
  std::string script(int gpus, const std::vector<std::string>& keys, int watts = 100) {
    std::string s;
    for (int i = 0; i < gpus; ++i)
      s += fmt::format("gpu {} name=NVIDIA_H100 watts={} refresh_ms=10 {}\n", i, watts,
                       i < static_cast<int>(keys.size()) ? keys[i] : "");
    return s;
  }

  // Runs one window of `seconds` over the fake's GPUs, charged to this process.
  WindowResult run(const std::string& text, RunScope scope, double seconds = 0.3) {
    powertrain::testing::write_file(dir_ / "nvml.txt", text);
    script_.set((dir_ / "nvml.txt").string());
    ProbeOptions o;
    o.nvml_library = FAKE_NVML_PATH;
    SourceStatus status;
    auto meter = open_nvml(o, status);
    EXPECT_NE(meter, nullptr) << status.reason;
    if (!meter) return {};
    std::vector<std::unique_ptr<Meter>> meters;
    meters.push_back(std::move(meter));
    TrackerOptions t;
    t.interval = std::chrono::milliseconds(10);
    Tracker tracker(std::move(meters), t);
    scope.machine = std::make_unique<ClockUsage>(4.0, false);
    scope.run = std::make_unique<ClockUsage>(1.0, true);
    scope.reserved = {1.0, "threads"};
    tracker.attribute_to(std::move(scope));
    tracker.start();
    tracker.begin("run");
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    auto w = tracker.end("run");
    tracker.stop();
    return w;
  }

  static double energy_of(const WindowResult& w, const std::string& id) {
    for (const auto& c : w.channels)
      if (c.channel_id == id) return c.energy_j;
    ADD_FAILURE() << "no channel " << id;
    return 0.0;
  }
  static const ChannelEnergy& channel(const WindowResult& w, const std::string& id) {
    for (const auto& c : w.channels)
      if (c.channel_id == id) return c;
    throw std::runtime_error("no channel " + id);
  }

  const std::string self_ = std::to_string(::getpid());
  powertrain::testing::TempDir dir_;
  ScopedEnv script_{"FAKE_NVML_SCRIPT"}, visible_{"CUDA_VISIBLE_DEVICES"}, order_{"CUDA_DEVICE_ORDER"};
};

TEST_F(GpuShare, EightGpusAndARunOnOneCountsOne) {
  std::vector<std::string> keys(8, "pids=4000001");  // someone else's training on every GPU...
  keys[3] = "pids=" + self_;                          // ...and ours on gpu3
  keys[5] = "pids=";                                  // an idle one
  RunScope scope;
  const auto w = run(script(8, keys), std::move(scope));
  const double gpu3 = energy_of(w, "nvml:gpu3");
  EXPECT_NEAR(gpu3, 30.0, 6.0);  // 100 W for 0.3 s
  for (int i = 0; i < 8; ++i) {
    if (i == 3) continue;
    EXPECT_EQ(energy_of(w, fmt::format("nvml:gpu{}", i)), 0.0) << "gpu" << i;
    EXPECT_EQ(channel(w, fmt::format("nvml:gpu{}", i)).attribution, "not the run's GPU");
    EXPECT_GT(channel(w, fmt::format("nvml:gpu{}", i)).machine_energy_j, 20.0);
  }
  EXPECT_NEAR(w.energy_j, gpu3, 1e-9);
  EXPECT_GT(w.machine_energy_j, 7 * gpu3);
  EXPECT_THAT(w.method, HasSubstr("attributed by GPU processes"));
}

TEST_F(GpuShare, AGpuSharedWithAForeignProcessIsSplitByItsUtilization) {
  RunScope scope;
  const auto w = run(script(1, {"pids=" + self_ + ",4000002 putil=" + self_ + ":60,4000002:20"}), std::move(scope));
  const auto& c = channel(w, "nvml:gpu0");
  EXPECT_NEAR(c.energy_j / c.machine_energy_j, 0.75, 1e-6);
  EXPECT_EQ(c.attribution, "per-process utilization 75%");
}

TEST_F(GpuShare, ASharedGpuWithoutPerProcessUtilizationIsChargedWholeWithANote) {
  RunScope scope;
  const auto w = run(script(1, {"pids=" + self_ + ",4000002"}), std::move(scope));
  const auto& c = channel(w, "nvml:gpu0");
  EXPECT_DOUBLE_EQ(c.energy_j, c.machine_energy_j);
  EXPECT_THAT(w.notes, ::testing::Contains(HasSubstr("shared with 1 process(es) outside the run")));
}

TEST_F(GpuShare, AMigInstanceIsChargedItsSlicesOfTheGpu) {
  visible_.set("MIG-2222");
  RunScope scope;
  scope.cuda_devices = {0};
  const auto w = run(script(1, {"mig=MIG-1111,MIG-2222 mig_slices=3,2 mig_slots=7 pids=" + self_}), std::move(scope));
  const auto& c = channel(w, "nvml:gpu0");
  EXPECT_NEAR(c.energy_j / c.machine_energy_j, 2.0 / 7.0, 1e-6);
  EXPECT_THAT(c.attribution, HasSubstr("MIG slices"));
  EXPECT_THAT(w.notes, ::testing::Contains(HasSubstr("MIG instance")));
}

TEST_F(GpuShare, InAContainerAGpuWithoutOurIdsIsOfUnknownUseAndKept) {
  RunScope scope;
  scope.host_pids = false;  // NVML's ids are the host's, ours are the container's
  const auto w = run(script(2, {"pids=4000001", "pids=4000002"}), std::move(scope));
  EXPECT_DOUBLE_EQ(channel(w, "nvml:gpu0").energy_j, channel(w, "nvml:gpu0").machine_energy_j);
  EXPECT_DOUBLE_EQ(channel(w, "nvml:gpu1").energy_j, channel(w, "nvml:gpu1").machine_energy_j);
  EXPECT_THAT(w.notes, ::testing::Contains(HasSubstr("PID namespace")));
}

TEST_F(GpuShare, ALauncherCommandsGpusAreKeptAsUnknownNotDropped) {
  RunScope scope;
  scope.launches_elsewhere = true;  // measure -- docker run ...: the container's processes are not ours
  const auto w = run(script(1, {"pids=4000003"}), std::move(scope));
  EXPECT_DOUBLE_EQ(channel(w, "nvml:gpu0").energy_j, channel(w, "nvml:gpu0").machine_energy_j);
  EXPECT_THAT(w.notes, ::testing::Contains(HasSubstr("--gpus")));
}

TEST_F(GpuShare, AGpuTheRunNamesIsItsBeforeItsProcessShowsUp) {
  RunScope scope;
  scope.cuda_devices = {1};  // --device cuda:1
  const auto w = run(script(2, {"pids=", "pids="}), std::move(scope));
  EXPECT_EQ(channel(w, "nvml:gpu0").energy_j, 0.0);
  EXPECT_GT(channel(w, "nvml:gpu1").energy_j, 20.0);
}

TEST_F(GpuShare, AnUnreadableProcessListLeavesTheGpuInWithItsReason) {
  RunScope scope;
  const auto w = run(script(1, {"pids=NO_PERMISSION"}), std::move(scope));
  EXPECT_DOUBLE_EQ(channel(w, "nvml:gpu0").energy_j, channel(w, "nvml:gpu0").machine_energy_j);
  EXPECT_THAT(w.notes, ::testing::Contains(HasSubstr("could not be read")));
}

}  // namespace
}  // namespace powertrain::energy
