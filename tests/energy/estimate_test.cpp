#include "powertrain/energy/estimate.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "powertrain/error.h"
#include "temp_dir.h"

namespace powertrain::energy {
namespace {

using namespace std::chrono_literals;

class ScriptedUsage final : public UsageSource {
 public:
  ScriptedUsage(int cpus, std::shared_ptr<double> busy, double mem) : cpus_(cpus), busy_(busy), mem_(mem) {}
  int logical_cpus() const override { return cpus_; }
  double cpu_busy_seconds() override { return *busy_; }
  double memory_used_bytes() override { return mem_; }

 private:
  int cpus_;
  std::shared_ptr<double> busy_;
  double mem_;
};

TEST(Estimate, LinearModelPerCore) {
  auto busy = std::make_shared<double>(0.0);
  EstimateModel model;  // 0.74 W idle, 3.5 W full per core, 0.375 W/GB
  auto m = make_estimate_meter(model, std::make_unique<ScriptedUsage>(4, busy, 8e9), true, true);
  ASSERT_EQ(m->channels().size(), 2u);
  EXPECT_EQ(m->channels()[0].method, Method::estimated);
  EXPECT_EQ(m->channels()[1].component, Component::dram);
  std::vector<ChannelSample> s;
  m->read(s);
  EXPECT_DOUBLE_EQ(s[0].energy_j, 0.0);
  std::this_thread::sleep_for(100ms);
  // Pretend two of four cores were fully busy: u = 0.5.
  *busy += 2.0 * 0.1;
  m->read(s);
  // Power is 4*0.74 + 0.5*4*(3.5-0.74) = 8.48 W at the exact 0.1 s; the real
  // interval is a little longer, so utilization, and power, come out a bit lower.
  EXPECT_NEAR(s[0].power_w, 8.48, 0.6);
  EXPECT_GT(s[0].power_w, 4 * 0.74);
  EXPECT_NEAR(s[1].power_w, 8.0 * 0.375, 1e-9);
  EXPECT_GT(s[0].energy_j, 0.0);
}

TEST(Estimate, UtilizationIsClampedToAllCores) {
  auto busy = std::make_shared<double>(0.0);
  auto m = make_estimate_meter({}, std::make_unique<ScriptedUsage>(2, busy, 0), true, false);
  std::vector<ChannelSample> s;
  m->read(s);
  std::this_thread::sleep_for(20ms);
  *busy += 100.0;  // impossible: more than 2 cores' worth
  m->read(s);
  EXPECT_NEAR(s[0].power_w, 2 * 3.5, 1e-9);
}

TEST(Estimate, RejectsInconsistentModel) {
  EstimateModel model;
  model.cpu_full_w_per_core = 0.1;  // below idle
  auto busy = std::make_shared<double>(0.0);
  EXPECT_THROW(make_estimate_meter(model, std::make_unique<ScriptedUsage>(1, busy, 0), true, true), ConfigError);
}

TEST(Estimate, SystemUsageReadsFakeProc) {
  powertrain::testing::TempDir dir;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  powertrain::testing::write_file(dir / "stat",
                                  "cpu  100 0 50 1000 5 0 0 10 0 0\ncpu0 50 0 25 500 0 0 0 5 0 0\n"
                                  "cpu1 50 0 25 500 5 0 0 5 0 0\nintr 0\n");
  powertrain::testing::write_file(dir / "meminfo", "MemTotal:       16000000 kB\nMemFree: 1 kB\nMemAvailable:   12000000 kB\n");
  auto u = system_usage(dir.path());
  EXPECT_EQ(u->logical_cpus(), 2);
  EXPECT_DOUBLE_EQ(u->cpu_busy_seconds(), 160.0 / hz);  // user+system+steal, not idle/iowait
  EXPECT_DOUBLE_EQ(u->memory_used_bytes(), 4000000.0 * 1024);
}

TEST(Estimate, ProcessUsageSumsTheProcessTree) {
  powertrain::testing::TempDir dir;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  auto stat = [](int pid, int ppid, int utime, int stime, int cutime, int rss) {
    std::string s = std::to_string(pid) + " (a (weird) name) S " + std::to_string(ppid);
    for (int f = 5; f <= 13; ++f) s += " 0";
    s += " " + std::to_string(utime) + " " + std::to_string(stime) + " " + std::to_string(cutime) + " 0";
    for (int f = 18; f <= 23; ++f) s += " 0";
    s += " " + std::to_string(rss) + " 0 0\n";
    return s;
  };
  powertrain::testing::write_file(dir / "10/stat", stat(10, 1, 100, 20, 30, 100));
  powertrain::testing::write_file(dir / "11/stat", stat(11, 10, 40, 10, 0, 50));
  powertrain::testing::write_file(dir / "12/stat", stat(12, 11, 5, 5, 0, 10));
  powertrain::testing::write_file(dir / "13/stat", stat(13, 1, 999, 999, 0, 999));  // not in the tree
  auto u = process_usage(dir.path(), 10);
  EXPECT_DOUBLE_EQ(u->cpu_busy_seconds(), (120 + 30 + 50 + 10) / hz);
  EXPECT_DOUBLE_EQ(u->memory_used_bytes(), 160 * page);
}

}  // namespace
}  // namespace powertrain::energy
