// Issue 13, interference: CPU time of the machine beside the measured process
// tree's in every window, and the wait for a quiet machine. Fakes whose CPU
// time grows with a clock, as /proc/stat does; one test on the real /proc.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>

#include "clock_meter.h"
#include "powertrain/energy/estimate.h"
#include "powertrain/energy/quiet.h"
#include "powertrain/energy/tracker.h"
#include "powertrain/error.h"

namespace {

using namespace powertrain::energy;
using powertrain::testing::ClockMeter;

double steady_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Busy CPU time that grows at `cpus` CPUs of wall time (the steady clock).
class WallUsage final : public UsageSource {
 public:
  explicit WallUsage(double cpus, bool fail = false) : cpus_(cpus), fail_(fail), t0_(steady_s()) {}
  int logical_cpus() const override { return 8; }
  double cpu_busy_seconds() override {
    if (fail_) throw std::runtime_error("/proc/stat: permission denied");
    return cpus_ * (steady_s() - t0_);
  }
  double memory_used_bytes() override { return 0; }

 private:
  double cpus_;
  bool fail_;
  double t0_;
};

std::unique_ptr<Tracker> tracker_with(double machine_cpus, double measured_cpus, bool fail = false) {
  std::vector<std::unique_ptr<Meter>> meters;
  meters.push_back(std::make_unique<ClockMeter>(50.0));
  auto t = std::make_unique<Tracker>(std::move(meters), TrackerOptions{std::chrono::milliseconds(10)});
  t->account_cpu(std::make_unique<WallUsage>(machine_cpus, fail), std::make_unique<WallUsage>(measured_cpus));
  t->start();
  return t;
}

TEST(Interference, WindowsCarryTheMachinesCpuTimeBesideTheMeasuredTrees) {
  auto t = tracker_with(8.0, 1.0);  // others use 7 CPUs
  t->begin("epoch-1");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto w = t->end("epoch-1");
  ASSERT_TRUE(w.cpu.has_value());
  EXPECT_NEAR(w.cpu->machine_s, 8.0 * w.duration_s, 0.05);
  EXPECT_NEAR(w.cpu->measured_s, 1.0 * w.duration_s, 0.02);
  EXPECT_NEAR(w.cpu->others_share(), 7.0 / 8.0, 0.02);
  EXPECT_TRUE(w.cpu->material());
}

TEST(Interference, AQuietMachineIsNotFlagged) {
  auto t = tracker_with(1.05, 1.0);  // others use 5%
  t->begin("run");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto w = t->end("run");
  ASSERT_TRUE(w.cpu.has_value());
  EXPECT_LT(w.cpu->others_share(), 0.1);
  EXPECT_FALSE(w.cpu->material());
}

TEST(Interference, AnUnreadableSourceLeavesTheShareUnknown) {
  auto t = tracker_with(8.0, 1.0, /*fail=*/true);
  t->begin("run");
  const auto w = t->end("run");
  EXPECT_FALSE(w.cpu.has_value());
  EXPECT_GE(w.energy_j, 0.0);  // the energy is unaffected
}

TEST(Interference, WithoutAccountingWindowsHaveNoCpuTime) {
  std::vector<std::unique_ptr<Meter>> meters;
  meters.push_back(std::make_unique<ClockMeter>(50.0));
  Tracker t(std::move(meters));
  t.begin("run");
  EXPECT_FALSE(t.end("run").cpu.has_value());
}

TEST(Interference, MaterialNeedsBothAShareAndAFullCpuSecond) {
  EXPECT_FALSE(material_interference(0.9, 1.0));    // 90% but under 1 CPU-s
  EXPECT_FALSE(material_interference(5.0, 100.0));  // 5 CPU-s but 5%
  EXPECT_TRUE(material_interference(10.0, 100.0));
  EXPECT_FALSE(material_interference(1.0, 0.0));
}

// The real /proc: a thread of this process burns a CPU while the "measured"
// tree is a sleeping child, so the burn is others' time.
TEST(Interference, RealProcCountsAnotherProcessesWorkAsOthers) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  std::unique_ptr<UsageSource> machine, measured;
  try {
    machine = system_usage("/proc", "/sys");
    measured = process_usage("/proc", child);
  } catch (const std::exception& e) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    GTEST_SKIP() << "cannot read this machine's CPU time: " << e.what();
  }
  std::vector<std::unique_ptr<Meter>> meters;
  meters.push_back(std::make_unique<ClockMeter>(50.0));
  Tracker t(std::move(meters));
  t.account_cpu(std::move(machine), std::move(measured));
  t.begin("run");
  std::atomic<bool> done{false};
  std::thread burner([&] {
    volatile double x = 0;
    const double until = steady_s() + 1.5;
    while (steady_s() < until) x = x + 1.0;
    done = true;
  });
  burner.join();
  const auto w = t.end("run");
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_TRUE(w.cpu.has_value());
  EXPECT_LT(w.cpu->measured_s, 0.2);   // the child slept
  EXPECT_GE(w.cpu->others_s(), 1.0);   // the burner's 1.5 s (less what a busy machine took from it)
  EXPECT_TRUE(w.cpu->material());
}

// Usage that follows a fake clock: others busy at `busy_cpus` until `until_s`,
// then at `after_cpus`; the measured tree idle.
struct FakeClock {
  double t = 0;
};
class ScriptedUsage final : public UsageSource {
 public:
  ScriptedUsage(FakeClock& c, double busy_cpus, double until_s, double after_cpus)
      : c_(c), busy_(busy_cpus), until_(until_s), after_(after_cpus) {}
  int logical_cpus() const override { return 4; }
  double cpu_busy_seconds() override {
    return busy_ * std::min(c_.t, until_) + after_ * std::max(0.0, c_.t - until_);
  }
  double memory_used_bytes() override { return 0; }

 private:
  FakeClock& c_;
  double busy_, until_, after_;
};

TEST(QuietWait, WaitsUntilOthersLeaveTheCpus) {
  FakeClock clock;
  ScriptedUsage machine(clock, 2.0, 5.0, 0.2), measured(clock, 0.0, 0.0, 0.0);
  QuietRule rule;
  rule.max_wait_s = 60;
  int busy_calls = 0;
  const auto r = wait_for_quiet(machine, measured, rule, [&](double s) { clock.t += s; }, {},
                                [&](const QuietResult&) { ++busy_calls; });
  // [0,2] and [2,4] at 2 CPUs, [4,6] half busy (1.1 CPUs), [6,8] quiet at 0.2.
  EXPECT_TRUE(r.quiet);
  EXPECT_EQ(r.checks, 4);
  EXPECT_DOUBLE_EQ(r.waited_s, 8.0);
  EXPECT_NEAR(r.others_busy_cpus, 0.2, 1e-9);
  EXPECT_EQ(busy_calls, 3);
}

TEST(QuietWait, OwnWorkDoesNotCount) {
  FakeClock clock;
  ScriptedUsage machine(clock, 3.0, 1e9, 0.0), measured(clock, 2.8, 1e9, 0.0);  // the tree itself is busy
  QuietRule rule;
  rule.max_wait_s = 10;
  const auto r = wait_for_quiet(machine, measured, rule, [&](double s) { clock.t += s; });
  EXPECT_TRUE(r.quiet);
  EXPECT_EQ(r.checks, 1);
}

TEST(QuietWait, GivesUpAfterMaxWait) {
  FakeClock clock;
  ScriptedUsage machine(clock, 1.5, 1e9, 0.0), measured(clock, 0.0, 0.0, 0.0);
  QuietRule rule;
  rule.max_wait_s = 5;
  const auto r = wait_for_quiet(machine, measured, rule, [&](double s) { clock.t += s; });
  EXPECT_FALSE(r.quiet);
  EXPECT_FALSE(r.stopped);
  EXPECT_DOUBLE_EQ(r.waited_s, 5.0);  // 2 + 2 + 1
  EXPECT_NEAR(r.others_busy_cpus, 1.5, 1e-9);
}

TEST(QuietWait, StopsWhenAsked) {
  FakeClock clock;
  ScriptedUsage machine(clock, 4.0, 1e9, 0.0), measured(clock, 0.0, 0.0, 0.0);
  QuietRule rule;
  rule.max_wait_s = 3600;
  int checks = 0;
  const auto r = wait_for_quiet(machine, measured, rule, [&](double s) { clock.t += s; ++checks; },
                                [&] { return checks >= 2; });
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.checks, 2);
}

TEST(QuietWait, NoWaitIsQuietAtOnceAndBadRulesAreRefused) {
  FakeClock clock;
  ScriptedUsage machine(clock, 4.0, 1e9, 0.0), measured(clock, 0.0, 0.0, 0.0);
  const auto r = wait_for_quiet(machine, measured, QuietRule{}, [&](double) { FAIL() << "slept"; });
  EXPECT_TRUE(r.quiet);
  EXPECT_EQ(r.checks, 0);
  QuietRule bad;
  bad.max_wait_s = -1;
  EXPECT_THROW(validate(bad), powertrain::ConfigError);
  bad = QuietRule{};
  bad.max_busy_cpus = std::nan("");
  EXPECT_THROW(validate(bad), powertrain::ConfigError);
  bad = QuietRule{};
  bad.check_s = 0.0;
  EXPECT_THROW(validate(bad), powertrain::ConfigError);
}

}  // namespace
