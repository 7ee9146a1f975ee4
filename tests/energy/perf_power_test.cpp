// perf power PMU source: event parsing against fake trees, and honest reasons
// when the PMU is missing or the kernel refuses the counters.
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../../src/energy/sysfs.h"
#include "fake_sysfs.h"
#include "powertrain/energy/registry.h"

namespace powertrain::energy {
namespace {

using ::testing::AnyOf;
using testing::FakeSysfs;
using ::testing::HasSubstr;

// A type no kernel assigns: dynamic PMU types are small integers.
constexpr const char* kBogusType = "2147483000";
constexpr double kScale = 2.3283064365386962890625e-10;  // 2^-32 J

ProbeOptions options_for(const FakeSysfs& fake) {
  ProbeOptions options;
  options.sysfs_root = fake.root();
  options.proc_root = fake.proc_root();
  return options;
}

std::vector<FakeSysfs::PerfEventSpec> intel_events() {
  return {{"energy-cores", "event=0x01"},
          {"energy-pkg", "event=0x02"},
          {"energy-ram", "event=0x03"},
          {"energy-psys", "event=0x05"}};
}

TEST(PerfPowerTest, ParsesEventConfig) {
  EXPECT_EQ(sysfs::parse_perf_event_config("event=0x02"), 2u);
  EXPECT_EQ(sysfs::parse_perf_event_config("event=0x1f\n"), 0x1fu);
  EXPECT_EQ(sysfs::parse_perf_event_config("event=5"), 5u);
  EXPECT_EQ(sysfs::parse_perf_event_config("event=0x02,umask=0x01"), std::nullopt);
  EXPECT_EQ(sysfs::parse_perf_event_config("event=banana"), std::nullopt);
  EXPECT_EQ(sysfs::parse_perf_event_config("0x02"), std::nullopt);
  EXPECT_EQ(sysfs::parse_perf_event_config(""), std::nullopt);
}

TEST(PerfPowerTest, ReadsEventsWithScaleAndUnit) {
  FakeSysfs fake;
  auto events = intel_events();
  events.push_back({"energy-gpu", "event=0x04", "2.3283064365386962890625e-10", "Joules"});
  // Not energy events, or unusable ones: all left out.
  events.push_back({"energy-weird", "event=0x09", "1e-6", "Watts"});
  events.push_back({"energy-noscale", "event=0x0a", "not-a-number", "Joules"});
  events.push_back({"cycles", "event=0x3c"});
  auto pmu = fake.add_perf_power_pmu("27", events);

  auto parsed = sysfs::read_perf_events(pmu);
  ASSERT_EQ(parsed.size(), 5u);
  std::vector<std::string> names;
  for (const auto& e : parsed) names.push_back(e.name);
  EXPECT_THAT(names, ::testing::ElementsAre("energy-cores", "energy-gpu", "energy-pkg",
                                            "energy-psys", "energy-ram"));
  const sysfs::PerfEvent& pkg = parsed[2];
  EXPECT_EQ(pkg.config, 0x02u);
  EXPECT_DOUBLE_EQ(pkg.scale, kScale);
  EXPECT_DOUBLE_EQ(pkg.scale, std::ldexp(1.0, -32));
  EXPECT_EQ(pkg.unit, "Joules");
  EXPECT_EQ(parsed[4].config, 0x03u);  // energy-ram
}

TEST(PerfPowerTest, ParsesCpuLists) {
  EXPECT_EQ(sysfs::parse_cpu_list("0"), (std::vector<int>{0}));
  EXPECT_EQ(sysfs::parse_cpu_list("0,18\n"), (std::vector<int>{0, 18}));
  EXPECT_EQ(sysfs::parse_cpu_list("0-2,8"), (std::vector<int>{0, 1, 2, 8}));
  EXPECT_EQ(sysfs::parse_cpu_list("3-1"), std::nullopt);
  EXPECT_EQ(sysfs::parse_cpu_list("a"), std::nullopt);
}

std::vector<std::string> ids_and_cpus(const std::vector<sysfs::PerfCounterPlan>& plan) {
  std::vector<std::string> out;
  for (const auto& p : plan) out.push_back(p.info.id + "@cpu" + std::to_string(p.cpu));
  return out;
}

TEST(PerfPowerTest, PlansOneCounterPerEventAndSocketFromTopology) {
  FakeSysfs fake;
  auto pmu = fake.add_perf_power_pmu("27", intel_events());
  // Two sockets, CPUs interleaved as on many dual-socket servers.
  fake.add_cpu(0, 0);
  fake.add_cpu(1, 1);
  fake.add_cpu(2, 0);
  fake.add_cpu(3, 1);

  auto plan = sysfs::plan_perf_counters(fake.root(), pmu);
  EXPECT_THAT(
      ids_and_cpus(plan),
      ::testing::ElementsAre("perf:package-0@cpu0", "perf:package-0:dram@cpu0",
                             "perf:package-0:core@cpu0", "perf:psys@cpu0", "perf:package-1@cpu1",
                             "perf:package-1:dram@cpu1", "perf:package-1:core@cpu1"));
  for (const auto& p : plan) {
    EXPECT_EQ(p.info.source, "perf");
    EXPECT_EQ(p.info.method, Method::counter);
    EXPECT_TRUE(p.info.cumulative);
    EXPECT_DOUBLE_EQ(p.scale_j, kScale);
    if (p.info.id == "perf:package-1") {
      EXPECT_EQ(p.event, "energy-pkg");
      EXPECT_EQ(p.config, 0x02u);
      EXPECT_EQ(p.info.component, Component::cpu);
      EXPECT_TRUE(p.info.in_total);
    } else if (p.info.id == "perf:package-1:dram") {
      EXPECT_EQ(p.config, 0x03u);
      EXPECT_EQ(p.info.component, Component::dram);
      EXPECT_TRUE(p.info.in_total);
    } else if (p.info.id == "perf:package-0:core") {
      EXPECT_EQ(p.config, 0x01u);
      EXPECT_EQ(p.info.component, Component::cpu);
      EXPECT_FALSE(p.info.in_total);
    } else if (p.info.id == "perf:psys") {
      EXPECT_EQ(p.config, 0x05u);
      EXPECT_EQ(p.info.component, Component::psys);
      EXPECT_FALSE(p.info.in_total);
    }
  }
}

TEST(PerfPowerTest, PmuCpumaskChoosesTheCpus) {
  FakeSysfs fake;
  auto pmu = fake.add_perf_power_pmu("27", {{"energy-pkg", "event=0x02"}}, "0,18");
  fake.add_cpu(0, 0);
  fake.add_cpu(18, 1);
  auto plan = sysfs::plan_perf_counters(fake.root(), pmu);
  EXPECT_THAT(ids_and_cpus(plan),
              ::testing::ElementsAre("perf:package-0@cpu0", "perf:package-1@cpu18"));
}

TEST(PerfPowerTest, MultiDieCpumaskGetsDistinctIds) {
  FakeSysfs fake;
  auto pmu = fake.add_perf_power_pmu("27", {{"energy-pkg", "event=0x02"}}, "0,8");
  fake.add_cpu(0, 0);
  fake.add_cpu(8, 0);
  fake.write("devices/system/cpu/cpu8/topology/die_id", "1");
  auto plan = sysfs::plan_perf_counters(fake.root(), pmu);
  EXPECT_THAT(ids_and_cpus(plan),
              ::testing::ElementsAre("perf:package-0@cpu0", "perf:package-0-die-1@cpu8"));
}

TEST(PerfPowerTest, WithoutTopologyFallsBackToCpu0) {
  FakeSysfs fake;
  auto pmu = fake.add_perf_power_pmu("27", intel_events());
  auto plan = sysfs::plan_perf_counters(fake.root(), pmu);
  ASSERT_FALSE(plan.empty());
  for (const auto& p : plan) EXPECT_EQ(p.cpu, 0) << p.info.id;
  EXPECT_EQ(plan[0].info.id, "perf:package-0");
}

TEST(PerfPowerTest, MissingPmuIsUnavailableWithReason) {
  FakeSysfs fake;
  SourceStatus status;
  EXPECT_EQ(open_perf_power(options_for(fake), status), nullptr);
  EXPECT_EQ(status.source, "perf");
  EXPECT_FALSE(status.available);
  EXPECT_THAT(status.reason, HasSubstr("no perf power PMU"));
  EXPECT_THAT(status.reason, HasSubstr("bus/event_source/devices/power"));
  EXPECT_TRUE(status.channels.empty());
}

TEST(PerfPowerTest, PmuWithoutEnergyEventsIsUnavailable) {
  FakeSysfs fake;
  fake.add_perf_power_pmu(kBogusType, {{"cycles", "event=0x3c"}});
  SourceStatus status;
  EXPECT_EQ(open_perf_power(options_for(fake), status), nullptr);
  EXPECT_THAT(status.reason, HasSubstr("no usable energy event"));
}

TEST(PerfPowerTest, UnreadableTypeIsUnavailable) {
  FakeSysfs fake;
  fake.add_perf_power_pmu("not-a-number", intel_events());
  SourceStatus status;
  EXPECT_EQ(open_perf_power(options_for(fake), status), nullptr);
  EXPECT_THAT(status.reason, HasSubstr("cannot read the perf power PMU type"));
}

TEST(PerfPowerTest, FailedOpenGivesAnHonestReason) {
  // The kernel knows no PMU of this type, so perf_event_open must fail; the
  // errno depends on the machine (ENOENT, or EACCES/EPERM where perf events
  // are locked down), and the reason must name it.
  FakeSysfs fake;
  fake.add_perf_power_pmu(kBogusType, intel_events(), "0");
  fake.add_cpu(0, 0);
  fake.set_perf_event_paranoid(2);
  SourceStatus status;
  EXPECT_EQ(open_perf_power(options_for(fake), status), nullptr);
  EXPECT_FALSE(status.available);
  EXPECT_THAT(status.reason, HasSubstr("perf_event_open(power/energy-"));
  EXPECT_THAT(status.reason, HasSubstr("cpu 0"));
  EXPECT_THAT(status.reason,
              AnyOf(HasSubstr("ENOENT"), HasSubstr("EINVAL"), HasSubstr("EACCES"),
                    HasSubstr("EPERM"), HasSubstr("ENOSYS"), HasSubstr("EOPNOTSUPP")));
  if (status.reason.find("EACCES") != std::string::npos ||
      status.reason.find("EPERM") != std::string::npos) {
    EXPECT_THAT(status.reason, HasSubstr("perf_event_paranoid"));
    EXPECT_THAT(status.fix, HasSubstr("sudo sysctl kernel.perf_event_paranoid=0"));
  }
}

TEST(PerfPowerTest, PermissionDiagnosisNamesParanoidAndTheFix) {
  sysfs::Diagnosis d = sysfs::diagnose_perf_open_error("energy-pkg", 0, EACCES, 2);
  EXPECT_THAT(d.reason, HasSubstr("perf_event_open(power/energy-pkg, cpu 0) failed: EACCES"));
  EXPECT_THAT(d.reason, HasSubstr("kernel.perf_event_paranoid <= 0 (it is 2) or CAP_PERFMON"));
  EXPECT_THAT(d.fix, HasSubstr("sudo sysctl kernel.perf_event_paranoid=0"));
  EXPECT_THAT(d.fix, HasSubstr("CAP_PERFMON"));

  sysfs::Diagnosis unknown = sysfs::diagnose_perf_open_error("energy-pkg", 0, EPERM, std::nullopt);
  EXPECT_THAT(unknown.reason, HasSubstr("could not be read"));
  EXPECT_THAT(unknown.fix, HasSubstr("sudo sysctl kernel.perf_event_paranoid=0"));

  // Already permissive: something else (a container's seccomp profile) refuses.
  sysfs::Diagnosis blocked = sysfs::diagnose_perf_open_error("energy-pkg", 0, EPERM, -1);
  EXPECT_THAT(blocked.reason, HasSubstr("seccomp"));
  EXPECT_THAT(blocked.fix, ::testing::Not(HasSubstr("sysctl")));
}

TEST(PerfPowerTest, UnsupportedEventDiagnosis) {
  sysfs::Diagnosis d = sysfs::diagnose_perf_open_error("energy-ram", 8, ENOENT, 0);
  EXPECT_THAT(d.reason, HasSubstr("power/energy-ram, cpu 8"));
  EXPECT_THAT(d.reason, HasSubstr("ENOENT"));
  EXPECT_THAT(d.reason, HasSubstr("does not accept this event"));
  EXPECT_TRUE(d.fix.empty());
}

TEST(PerfPowerTest, RealPmuCountsMonotonically) {
  std::error_code ec;
  if (!std::filesystem::is_directory("/sys/bus/event_source/devices/power", ec)) {
    GTEST_SKIP() << "no perf power PMU on this machine (virtual machine, container, or CPU "
                    "without RAPL)";
  }
  SourceStatus status;
  auto meter = open_perf_power(ProbeOptions{}, status);
  if (!meter) GTEST_SKIP() << "perf power PMU present but not usable here: " << status.reason;
  ASSERT_FALSE(meter->channels().empty());
  EXPECT_NE(std::find_if(meter->channels().begin(), meter->channels().end(),
                         [](const ChannelInfo& c) { return c.id == "perf:package-0"; }),
            meter->channels().end());
  std::vector<ChannelSample> a, b;
  meter->read(a);
  ::usleep(20'000);
  meter->read(b);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_GE(b[i].energy_j, a[i].energy_j);
}

}  // namespace
}  // namespace powertrain::energy
