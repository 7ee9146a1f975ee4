// What a measurement charges to the command: GPUs it did not use, the idle
// baseline and the peak (issue 13, defects 1 and 5).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <time.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "powertrain/energy/measurement.h"
#include "temp_dir.h"

namespace powertrain::energy {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

ChannelEnergy gpu(std::string id, double energy_j, double duration_s) {
  ChannelEnergy c;
  c.channel_id = c.device = std::move(id);
  c.component = Component::gpu;
  c.method = Method::counter;
  c.energy_j = energy_j;
  c.avg_power_w = energy_j / duration_s;
  c.covered_s = duration_s;
  return c;
}

WindowResult window(std::vector<ChannelEnergy> channels, double duration_s, double peak_w) {
  WindowResult w;
  w.duration_s = duration_s;
  w.start_ns = 1'000'000'000;
  w.end_ns = w.start_ns + static_cast<std::int64_t>(duration_s * 1e9);
  w.channels = std::move(channels);
  for (const auto& c : w.channels) w.energy_j += c.energy_j;
  w.avg_power_w = w.energy_j / duration_s;
  w.peak_power_w = peak_w;
  w.method = "counter";
  return w;
}

TimelineSample sample(std::int64_t t_ns, std::vector<double> power_w) {
  TimelineSample s;
  s.t_ns = t_ns;
  s.power_w = std::move(power_w);
  s.gpu.resize(s.power_w.size());
  return s;
}

// An 8-GPU node idles at 50 W per GPU; the command runs on gpu0 only, at 150 W
// for 10 s. Above idle it used 100 W x 10 s, not 1500 J - 8 x 50 W x 10 s < 0.
TEST(Attribution, IdleBaselineLeavesOutGpusTheCommandDidNotUse) {
  Measurement m;
  std::vector<ChannelEnergy> run, idle;
  for (int i = 0; i < 8; ++i) {
    run.push_back(gpu("nvml:gpu" + std::to_string(i), i == 0 ? 1500.0 : 500.0, 10.0));
    idle.push_back(gpu("nvml:gpu" + std::to_string(i), 250.0, 5.0));
  }
  m.window = window(run, 10.0, 500.0);
  m.idle = window(idle, 5.0, 400.0);
  m.gpu_use.assign(8, GpuUse::unused);
  m.gpu_use[0] = GpuUse::used;
  attribute(m);
  EXPECT_DOUBLE_EQ(m.energy_j, 1500.0);
  EXPECT_DOUBLE_EQ(m.excluded_gpu_energy_j, 3500.0);
  ASSERT_TRUE(m.idle_power_w.has_value());
  EXPECT_DOUBLE_EQ(*m.idle_power_w, 50.0);
  ASSERT_TRUE(m.energy_above_idle_j.has_value());
  EXPECT_DOUBLE_EQ(*m.energy_above_idle_j, 1000.0);
  EXPECT_THAT(to_text(m), HasSubstr("energy above idle 1000.000 J"));
  EXPECT_DOUBLE_EQ(to_json(m)["energy_above_idle_j"].get<double>(), 1000.0);
}

TEST(Attribution, PeakLeavesOutGpusTheCommandDidNotUse) {
  // gpu1 (not used) peaks at 300 W while gpu0 draws 100-150 W.
  Measurement m;
  m.window = window({gpu("nvml:gpu0", 1200.0, 10.0), gpu("nvml:gpu1", 2000.0, 10.0)}, 10.0, 420.0);
  m.gpu_use = {GpuUse::used, GpuUse::unused};
  const std::int64_t t0 = m.window.start_ns;
  const std::vector<TimelineSample> timeline = {
      sample(t0 - 500'000'000, {400.0, 400.0}),  // before the window: not counted
      sample(t0 + 1'000'000'000, {100.0, 300.0}), sample(t0 + 2'000'000'000, {150.0, 120.0}),
      sample(t0 + 3'000'000'000, {120.0, 100.0})};
  attribute(m, timeline);
  EXPECT_DOUBLE_EQ(m.peak_power_w, 150.0);
  EXPECT_DOUBLE_EQ(to_json(m)["peak_power_w"].get<double>(), 150.0);

  // Nothing left out: the tracker's own peak, which includes boundary readings.
  m.gpu_use = {GpuUse::used, GpuUse::used};
  attribute(m, timeline);
  EXPECT_DOUBLE_EQ(m.peak_power_w, 420.0);
}

TEST(Attribution, APeakNoSampleResolvedIsNeverBelowTheAverage) {
  // A 45 ms command under a 100 ms sampler: the tracker saw 2 W at its last
  // sample, but 0.3 J in 45 ms is 6.7 W on average.
  Measurement m;
  m.window = window({gpu("nvml:gpu0", 0.3, 0.045)}, 0.045, 2.0);
  m.gpu_use = {GpuUse::used};
  attribute(m, {});
  EXPECT_NEAR(m.peak_power_w, 0.3 / 0.045, 1e-9);
  EXPECT_THAT(to_text(m), HasSubstr("peak power is not resolved"));
  // A resolved peak above the average is left as it is.
  m.window = window({gpu("nvml:gpu0", 3.0, 1.0)}, 1.0, 9.0);
  attribute(m, {});
  EXPECT_DOUBLE_EQ(m.peak_power_w, 9.0);
}

TEST(Attribution, HostPidNamespaceIsReadFromProc) {
  powertrain::testing::TempDir dir;
  std::filesystem::create_directories(dir / "host/self/ns");
  std::filesystem::create_symlink("pid:[4026531836]", dir / "host/self/ns/pid");
  std::filesystem::create_directories(dir / "container/self/ns");
  std::filesystem::create_symlink("pid:[4026532719]", dir / "container/self/ns/pid");
  EXPECT_TRUE(in_host_pid_namespace(dir / "host"));
  EXPECT_FALSE(in_host_pid_namespace(dir / "container"));
  EXPECT_FALSE(in_host_pid_namespace(dir / "missing"));
}

TEST(Attribution, UnknownGpuUseIsExplainedInTheReport) {
  Measurement m;
  m.window = window({gpu("nvml:gpu0", 100.0, 1.0)}, 1.0, 100.0);
  std::vector<GpuProcessLog> log(1);
  log[0].supported = true;
  log[0].failures = 3;
  log[0].error = "nvml: listing the processes on gpu0 failed: Insufficient Permissions";
  decide_gpu_use(m, log, {42}, true);
  attribute(m);
  ASSERT_EQ(m.gpu_use.size(), 1u);
  EXPECT_EQ(m.gpu_use[0], GpuUse::unknown);
  EXPECT_DOUBLE_EQ(m.energy_j, 100.0);
  EXPECT_THAT(to_text(m), HasSubstr("Insufficient Permissions"));
  const auto j = to_json(m);
  EXPECT_TRUE(j["channels"][0]["used_by_command"].is_null());
  EXPECT_THAT(j["channels"][0]["use_note"].get<std::string>(), HasSubstr("Insufficient Permissions"));
}

// Issue 13, interference: the counters are machine-wide, so CPU time other
// processes spent during the run is flagged beside the command's.
TEST(Attribution, OtherProcessesCpuTimeIsFlagged) {
  const CpuSnapshot begin{100.0, 5.0, 1.0};
  const CpuShare busy = cpu_share(begin, CpuSnapshot{130.0, 15.0, 1.5});
  EXPECT_DOUBLE_EQ(busy.machine_s, 30.0);
  EXPECT_DOUBLE_EQ(busy.command_s, 10.0);
  EXPECT_DOUBLE_EQ(busy.others_s, 19.5);
  EXPECT_NEAR(busy.others_share, 0.65, 1e-12);
  EXPECT_TRUE(busy.material);
  const CpuShare quiet = cpu_share(begin, CpuSnapshot{111.0, 15.0, 1.5});
  EXPECT_FALSE(quiet.material);

  Measurement m;
  m.window = window({gpu("nvml:gpu0", 100.0, 10.0)}, 10.0, 100.0);
  attribute(m);
  m.cpu = busy;
  EXPECT_THAT(to_text(m), HasSubstr("other processes used 19.5 CPU-s (65%)"));
  EXPECT_TRUE(to_json(m)["cpu_time"]["interference"].get<bool>());
  m.cpu = quiet;
  EXPECT_THAT(to_text(m), Not(HasSubstr("other processes used")));
}

TEST(Attribution, CpuSnapshotCountsTheCommandOnceWaitedFor) {
  powertrain::testing::TempDir dir;
  powertrain::testing::write_file(dir / "stat", "cpu  100 0 50 1000 0 0 0 0 0 0\ncpu0 100 0 50 1000 0 0 0 0 0 0\n");
  powertrain::testing::write_file(dir / "meminfo", "MemTotal: 1000 kB\nMemAvailable: 500 kB\n");
  auto machine = system_usage(dir.path(), dir / "no-sys");
  const CpuSnapshot begin = cpu_snapshot(*machine);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // 0.3 s of its own CPU time, however long a loaded machine takes to give it.
    volatile unsigned long spin = 0;
    timespec used{};
    do {
      for (int i = 0; i < 100000; ++i) spin = spin + 1;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
    } while (used.tv_sec == 0 && used.tv_nsec < 300'000'000);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  const CpuSnapshot end = cpu_snapshot(*machine);
  EXPECT_GT(end.command_s - begin.command_s, 0.1);
}

}  // namespace
}  // namespace powertrain::energy
