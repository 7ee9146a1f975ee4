#include "powertrain/energy/carbon.h"

#include <gtest/gtest.h>

#include "powertrain/error.h"
#include "temp_dir.h"

namespace powertrain::energy {
namespace {

TEST(Carbon, BundledTableHasSourceAndWorld) {
  auto t = CarbonTable::bundled();
  EXPECT_NE(t.provenance().find("Ember"), std::string::npos);
  EXPECT_NE(t.provenance().find("2023"), std::string::npos);
  auto w = t.find("world");
  ASSERT_TRUE(w.has_value());
  EXPECT_GT(w->intensity_g_per_kwh, 100);
  EXPECT_TRUE(t.find("Germany").has_value());
  EXPECT_TRUE(t.find("deu").has_value());
  EXPECT_FALSE(t.find("Atlantis").has_value());
}

TEST(Carbon, EmissionsAreEnergyTimesPueTimesIntensity) {
  CarbonOptions o;
  o.intensity_g_per_kwh = 400;
  o.pue = 1.5;
  auto c = carbon_of(3.6e6, o);  // 1 kWh
  EXPECT_DOUBLE_EQ(c.energy_kwh, 1.0);
  EXPECT_DOUBLE_EQ(c.emissions_kg, 0.6);
  EXPECT_EQ(c.intensity_source, "user value");
}

TEST(Carbon, RegionFromTable) {
  CarbonOptions o;
  o.region = "FRA";
  auto c = carbon_of(3.6e6, o);
  EXPECT_GT(c.intensity_g_per_kwh, 0);
  EXPECT_NE(c.intensity_source.find("France"), std::string::npos);
}

TEST(Carbon, MalformedTableNamesFileAndLine) {
  powertrain::testing::TempDir dir;
  powertrain::testing::write_file(dir / "t.csv", "# mine\ncode,name,gco2e_per_kwh\nXYZ,Somewhere,12\nBAD,Broken,lots\n");
  try {
    CarbonTable::load(dir / "t.csv");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("t.csv:4"), std::string::npos) << e.what();
  }
  powertrain::testing::write_file(dir / "h.csv", "a,b\n");
  EXPECT_THROW(CarbonTable::load(dir / "h.csv"), ConfigError);
  EXPECT_THROW(CarbonTable::load(dir / "missing.csv"), IoError);
}

TEST(Carbon, ValidateRejectsBadOptions) {
  CarbonOptions o;
  o.pue = 0.9;
  EXPECT_THROW(validate(o), ConfigError);
  o.pue = 1.2;
  o.region = "Atlantis";
  EXPECT_THROW(validate(o), ConfigError);
  o.region = "WORLD";
  o.intensity_g_per_kwh = -1;
  EXPECT_THROW(validate(o), ConfigError);
  o.intensity_g_per_kwh = 300;
  EXPECT_NO_THROW(validate(o));
}

}  // namespace
}  // namespace powertrain::energy
