// A segment's paths (RunConfig::resume_from, save_state) in the stored config:
// kept with the run, but not part of the experiment it belongs to.
#include <gtest/gtest.h>

#include "powertrain/store/json.h"
#include "samples.h"

namespace powertrain::store {
namespace {

using powertrain::testing::sample_config;

TEST(StoreJsonSegments, PathsRoundTripAndLeaveTheTrialKeyAlone) {
  auto whole = sample_config(0.1, 64, 1);
  auto segment = whole;
  segment.resume_from = "/states/setup-3.state";
  segment.save_state = "/states/setup-3.next.state";
  const auto back = config_from_json(config_json(segment));
  EXPECT_EQ(back.resume_from, segment.resume_from);
  EXPECT_EQ(back.save_state, segment.save_state);
  EXPECT_EQ(trial_key(segment), trial_key(whole));
  // A run that is no segment keeps the document it always had.
  EXPECT_FALSE(config_json(whole).contains("resume_from"));
  EXPECT_FALSE(config_json(whole).contains("save_state"));
}

}  // namespace
}  // namespace powertrain::store
