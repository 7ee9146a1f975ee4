// INA3221 board rails (Jetson class) against fake hwmon and IIO trees.
#include <cmath>
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../../src/energy/sysfs.h"
#include "fake_sysfs.h"
#include "powertrain/energy/registry.h"
#include "powertrain/error.h"

namespace powertrain::energy {
namespace {

using testing::FakeSysfs;
using ::testing::HasSubstr;

ProbeOptions options_for(const FakeSysfs& fake) {
  ProbeOptions options;
  options.sysfs_root = fake.root();
  options.proc_root = fake.proc_root();
  return options;
}

const ChannelInfo* find(const std::vector<ChannelInfo>& channels, const std::string& id) {
  for (const ChannelInfo& c : channels) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

double power_of(Meter& meter, const std::string& id) {
  std::vector<ChannelSample> out;
  meter.read(out);
  for (std::size_t i = 0; i < meter.channels().size(); ++i) {
    if (meter.channels()[i].id == id) return out[i].power_w;
  }
  ADD_FAILURE() << "no channel " << id;
  return kNaN;
}

TEST(RailsTest, MissingDriverIsUnavailableWithReason) {
  FakeSysfs fake;
  SourceStatus status;
  EXPECT_EQ(open_rails(options_for(fake), status), nullptr);
  EXPECT_EQ(status.source, "rails");
  EXPECT_FALSE(status.available);
  EXPECT_THAT(status.reason, HasSubstr("no INA3221 power monitor"));
  EXPECT_THAT(status.reason, HasSubstr("not a Jetson-class board"));
}

TEST(RailsTest, DriverWithoutLabeledRailsIsUnavailable) {
  FakeSysfs fake;
  // Channels without labels are not connected to a rail.
  fake.add_ina3221_hwmon("1-0040", "hwmon0", {{1, "", 5000, 100}});
  SourceStatus status;
  EXPECT_EQ(open_rails(options_for(fake), status), nullptr);
  EXPECT_THAT(status.reason, HasSubstr("exposes no labeled rail"));
}

TEST(RailsTest, HwmonPowerIsVoltageTimesCurrentAndVddInIsTheTotal) {
  FakeSysfs fake;
  // Jetson Orin Nano / Xavier NX labels.
  fake.add_ina3221_hwmon("1-0040", "hwmon1",
                         {{1, "VDD_IN", 5072, 1184},
                          {2, "VDD_CPU_GPU_CV", 5064, 320},
                          {3, "VDD_SOC", 5072, 288},
                          {7, "sum of shunt voltages", 40, 1800}});
  SourceStatus status;
  auto meter = open_rails(options_for(fake), status);
  ASSERT_NE(meter, nullptr) << status.reason;
  EXPECT_TRUE(status.available);
  EXPECT_EQ(meter->source(), "rails");
  ASSERT_EQ(meter->channels().size(), 3u);  // in7 (shunt sum) left out
  EXPECT_EQ(status.channels.size(), 3u);
  EXPECT_THAT(status.description, HasSubstr("module input: VDD_IN"));

  const ChannelInfo* in = find(meter->channels(), "rails:VDD_IN");
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->source, "rails");
  EXPECT_EQ(in->device, "VDD_IN");
  EXPECT_EQ(in->component, Component::board);
  EXPECT_EQ(in->method, Method::sampled);
  EXPECT_FALSE(in->cumulative);
  EXPECT_TRUE(in->in_total);
  EXPECT_EQ(in->update_period_s, 0.0);
  for (const char* id : {"rails:VDD_CPU_GPU_CV", "rails:VDD_SOC"}) {
    const ChannelInfo* rail = find(meter->channels(), id);
    ASSERT_NE(rail, nullptr) << id;
    EXPECT_FALSE(rail->in_total) << id;
    EXPECT_EQ(rail->component, Component::board) << id;
  }

  EXPECT_NEAR(power_of(*meter, "rails:VDD_IN"), 5.072 * 1.184, 1e-9);
  EXPECT_NEAR(power_of(*meter, "rails:VDD_SOC"), 5.072 * 0.288, 1e-9);
  // Samples follow the files.
  fake.write("bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/curr1_input", "2000");
  EXPECT_NEAR(power_of(*meter, "rails:VDD_IN"), 5.072 * 2.0, 1e-9);

  std::vector<ChannelSample> out;
  meter->read(out);
  for (const ChannelSample& s : out) EXPECT_TRUE(std::isnan(s.energy_j));
}

TEST(RailsTest, DisabledHwmonChannelIsSkipped) {
  FakeSysfs fake;
  auto dir = fake.add_ina3221_hwmon("1-0040", "hwmon0",
                                    {{1, "VDD_IN", 5000, 1000}, {2, "VDD_GPU", 5000, 500}});
  testing::write_file(dir / "in2_enable", "0\n");
  SourceStatus status;
  auto meter = open_rails(options_for(fake), status);
  ASSERT_NE(meter, nullptr) << status.reason;
  ASSERT_EQ(meter->channels().size(), 1u);
  EXPECT_EQ(meter->channels()[0].id, "rails:VDD_IN");
}

TEST(RailsTest, NanoPom5vInIsTheTotal) {
  FakeSysfs fake;
  fake.add_ina3221_hwmon(
      "6-0040", "hwmon2",
      {{1, "POM_5V_IN", 5000, 800}, {2, "POM_5V_GPU", 5000, 100}, {3, "POM_5V_CPU", 5000, 200}});
  SourceStatus status;
  auto meter = open_rails(options_for(fake), status);
  ASSERT_NE(meter, nullptr) << status.reason;
  const ChannelInfo* in = find(meter->channels(), "rails:POM_5V_IN");
  ASSERT_NE(in, nullptr);
  EXPECT_TRUE(in->in_total);
  int totals = 0;
  for (const ChannelInfo& c : meter->channels()) totals += c.in_total ? 1 : 0;
  EXPECT_EQ(totals, 1);
}

TEST(RailsTest, IioLayoutReadsPowerFilesAndFallsBackToVoltageTimesCurrent) {
  FakeSysfs fake;
  // Jetson TX2 style; rail 2 has no power file.
  fake.add_ina3221_iio("0-0041", "iio:device1",
                       {{0, "VDD_IN", 4200, 5000, 840},
                        {1, "VDD_SYS_CPU", 350, 5000, 70},
                        {2, "VDD_SYS_DDR", -1, 5000, 90}});
  SourceStatus status;
  auto meter = open_rails(options_for(fake), status);
  ASSERT_NE(meter, nullptr) << status.reason;
  ASSERT_EQ(meter->channels().size(), 3u);
  const ChannelInfo* in = find(meter->channels(), "rails:VDD_IN");
  ASSERT_NE(in, nullptr);
  EXPECT_TRUE(in->in_total);
  EXPECT_NEAR(power_of(*meter, "rails:VDD_IN"), 4.2, 1e-9);
  EXPECT_NEAR(power_of(*meter, "rails:VDD_SYS_CPU"), 0.35, 1e-9);
  EXPECT_NEAR(power_of(*meter, "rails:VDD_SYS_DDR"), 5.0 * 0.09, 1e-9);
}

TEST(RailsTest, WithoutTotalRailNothingCountsAndStatusSaysSo) {
  FakeSysfs fake;
  // A board this code does not know: no input rail, no module table.
  fake.add_ina3221_hwmon("1-0040", "hwmon0",
                         {{1, "RAIL_A", 1000, 2000}, {2, "RAIL_B", 1000, 1000}, {3, "RAIL_C", 1000, 500}});
  SourceStatus status;
  auto meter = open_rails(options_for(fake), status);
  ASSERT_NE(meter, nullptr) << status.reason;
  ASSERT_EQ(meter->channels().size(), 3u);
  for (const ChannelInfo& c : meter->channels()) EXPECT_FALSE(c.in_total) << c.id;
  EXPECT_THAT(status.description, HasSubstr("no total input rail identified"));
  EXPECT_NEAR(power_of(*meter, "rails:RAIL_A"), 2.0, 1e-9);
}

// Issue 13, defect 8: Jetson AGX Orin has no VDD_IN. Its rails add up by the
// module's table; the GPU rail counts as the GPU.
TEST(RailsTest, AgxOrinRailsCountWithoutAnInputRail) {
  FakeSysfs fake;
  fake.add_ina3221_hwmon("1-0040", "hwmon1",
                         {{1, "VDD_GPU_SOC", 5000, 4000}, {2, "VDD_CPU_CV", 5000, 1000}, {3, "VIN_SYS_5V0", 5000, 800}});
  fake.add_ina3221_hwmon("1-0041", "hwmon2", {{2, "VDDQ_VDD2_1V8AO", 5000, 200}});
  SourceStatus status;
  auto meter = open_rails(options_for(fake), status);
  ASSERT_NE(meter, nullptr) << status.reason;
  EXPECT_THAT(status.description, HasSubstr("Jetson AGX Orin"));
  const ChannelInfo* gpu = find(meter->channels(), "rails:VDD_GPU_SOC");
  const ChannelInfo* cpu = find(meter->channels(), "rails:VDD_CPU_CV");
  const ChannelInfo* sys = find(meter->channels(), "rails:VIN_SYS_5V0");
  const ChannelInfo* ddr = find(meter->channels(), "rails:VDDQ_VDD2_1V8AO");
  ASSERT_TRUE(gpu && cpu && sys && ddr);
  EXPECT_EQ(gpu->component, Component::gpu);
  EXPECT_TRUE(gpu->in_total);
  EXPECT_EQ(cpu->component, Component::cpu);
  EXPECT_TRUE(cpu->in_total);
  EXPECT_EQ(sys->component, Component::board);
  EXPECT_TRUE(sys->in_total);
  EXPECT_EQ(ddr->component, Component::dram);
  EXPECT_FALSE(ddr->in_total);  // not known whether it is part of VIN_SYS_5V0: shown, not added
  EXPECT_FALSE(gpu->note.empty());

  // The rails cover the module: no CPU or memory estimate is added beside them.
  ProbeOptions options = options_for(fake);
  options.disabled = {"nvml", "rapl", "perf"};
  const Probe probe = probe_sources(options);
  for (const auto& st : probe.statuses) {
    if (st.source == "estimate") {
      EXPECT_FALSE(st.available) << st.reason;
    }
  }
}

TEST(RailsTest, AgxXavierRailsCountWithoutAnInputRail) {
  FakeSysfs fake;
  fake.add_ina3221_hwmon("1-0040", "hwmon0",
                         {{1, "GPU", 1000, 2000}, {2, "CPU", 1000, 1000}, {3, "SOC", 1000, 500}});
  fake.add_ina3221_hwmon("1-0041", "hwmon1",
                         {{1, "CV", 1000, 100}, {2, "VDDRQ", 1000, 300}, {3, "SYS5V", 1000, 700}});
  SourceStatus status;
  auto meter = open_rails(options_for(fake), status);
  ASSERT_NE(meter, nullptr) << status.reason;
  EXPECT_THAT(status.description, HasSubstr("Jetson AGX Xavier"));
  ASSERT_EQ(meter->channels().size(), 6u);
  for (const ChannelInfo& c : meter->channels()) EXPECT_TRUE(c.in_total) << c.id;
  EXPECT_EQ(find(meter->channels(), "rails:GPU")->component, Component::gpu);
  EXPECT_EQ(find(meter->channels(), "rails:CPU")->component, Component::cpu);
  EXPECT_EQ(find(meter->channels(), "rails:VDDRQ")->component, Component::dram);
  EXPECT_EQ(find(meter->channels(), "rails:SOC")->component, Component::board);
}

TEST(RailsTest, TotalRailRule) {
  using sysfs::pick_total_rail;
  EXPECT_EQ(pick_total_rail({"VDD_CPU", "VDD_IN", "VDD_SOC"}), 1u);
  EXPECT_EQ(pick_total_rail({"POM_5V_GPU", "pom_5v_in"}), 1u);
  // Exact names win over the fallback.
  EXPECT_EQ(pick_total_rail({"SYS_IN", "VDD_IN"}), 1u);
  // Fallback: exactly one label with IN as a word.
  EXPECT_EQ(pick_total_rail({"VDD_GPU", "BOARD_5V_IN"}), 1u);
  EXPECT_EQ(pick_total_rail({"IN", "VDD_GPU"}), 0u);
  // IN inside a word is not a match (AGX Orin's VIN_SYS_5V0 is a system rail).
  EXPECT_EQ(pick_total_rail({"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"}), std::nullopt);
  // Two candidates: no guess.
  EXPECT_EQ(pick_total_rail({"A_IN", "B_IN"}), std::nullopt);
  EXPECT_EQ(pick_total_rail({}), std::nullopt);
}

TEST(RailsTest, DuplicateLabelsGetDistinctIds) {
  FakeSysfs fake;
  fake.add_ina3221_hwmon("1-0040", "hwmon0", {{1, "VDD_IN", 5000, 1000}, {2, "VDD_5V", 5000, 10}});
  fake.add_ina3221_hwmon("1-0041", "hwmon1", {{1, "VDD_5V", 5000, 20}});
  SourceStatus status;
  auto meter = open_rails(options_for(fake), status);
  ASSERT_NE(meter, nullptr) << status.reason;
  EXPECT_NE(find(meter->channels(), "rails:VDD_5V"), nullptr);
  EXPECT_NE(find(meter->channels(), "rails:VDD_5V#2"), nullptr);
}

TEST(RailsTest, RailThatDisappearsMakesReadThrow) {
  FakeSysfs fake;
  auto dir = fake.add_ina3221_hwmon("1-0040", "hwmon0", {{1, "VDD_IN", 5000, 1000}});
  SourceStatus status;
  auto meter = open_rails(options_for(fake), status);
  ASSERT_NE(meter, nullptr) << status.reason;
  std::filesystem::remove(dir / "curr1_input");
  std::vector<ChannelSample> out;
  EXPECT_THROW(meter->read(out), SourceError);
}

}  // namespace
}  // namespace powertrain::energy
