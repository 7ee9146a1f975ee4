// The measurements aggregate: measured commands.
#include "powertrain/store/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "powertrain/error.h"
#include "powertrain/store/json.h"
#include "samples.h"
#include "store_fixture.h"

namespace powertrain::store {
namespace {


class StoreMeasurements : public powertrain::testing::StoreFixture {};

TEST_F(StoreMeasurements, Measurements) {
  MeasurementRecord m;
  m.uuid = "6f1c";
  m.started_at = "2024-01-02T03:04:05Z";
  m.command = "python train.py";
  m.exit_code = 3;
  m.duration_s = 12.5;
  m.energy_j = 999.0;
  m.avg_power_w = 79.92;
  m.peak_power_w = 150.0;
  m.emissions_kg = 0.0001;
  m.method = "counter";
  m.host = "node-7";
  m.report_json = R"({"energy_j": 999.0})";
  auto id = store.add_measurement(m);
  EXPECT_THROW(store.add_measurement(m), StoreError);  // duplicate uuid
  auto all = store.list_measurements();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].id, id);
  EXPECT_EQ(all[0].command, "python train.py");
  EXPECT_EQ(all[0].exit_code, 3);
  EXPECT_EQ(all[0].energy_j, 999.0);
  EXPECT_FALSE(all[0].energy_above_idle_j);
  EXPECT_EQ(all[0].emissions_kg, 0.0001);
  EXPECT_EQ(all[0].report_json, m.report_json);
  m.uuid = "other";
  m.report_json = "not json";
  EXPECT_THROW(store.add_measurement(m), StoreError);
}

}  // namespace
}  // namespace powertrain::store
