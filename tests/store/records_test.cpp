// Names of the stored enums and the JSON of configurations and environments.
#include "powertrain/store/records.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "powertrain/error.h"
#include "powertrain/store/json.h"
#include "samples.h"

namespace powertrain::store {
namespace {

using powertrain::testing::expect_config_eq;
using powertrain::testing::sample_config;
using powertrain::testing::sample_environment;

TEST(RunStatusNames, RoundTrip) {
  for (auto s : {run::RunStatus::running, run::RunStatus::converged, run::RunStatus::max_epochs,
                 run::RunStatus::diverged, run::RunStatus::interrupted, run::RunStatus::failed}) {
    EXPECT_EQ(run::run_status_from_string(run::to_string(s)), s);
  }
  EXPECT_EQ(run::to_string(run::RunStatus::max_epochs), "max_epochs");
  EXPECT_THROW(run::run_status_from_string("done"), ConfigError);
}

TEST(TrialStatusNames, RoundTripAndDone) {
  for (auto s : {TrialStatus::pending, TrialStatus::running, TrialStatus::converged, TrialStatus::max_epochs,
                 TrialStatus::diverged, TrialStatus::interrupted, TrialStatus::failed}) {
    EXPECT_EQ(trial_status_from_string(to_string(s)), s);
  }
  EXPECT_THROW(trial_status_from_string("completed"), ConfigError);
  EXPECT_TRUE(is_done(TrialStatus::diverged));
  EXPECT_TRUE(is_done(TrialStatus::max_epochs));
  EXPECT_FALSE(is_done(TrialStatus::interrupted));
  EXPECT_FALSE(is_done(TrialStatus::failed));
  EXPECT_EQ(trial_status(run::RunStatus::diverged), TrialStatus::diverged);
}

TEST(StoreJson, ConfigAndEnvironmentRoundTrip) {
  auto c = sample_config(0.123456789012345, 256, 18446744073709551615ull);
  c.freeze_encoder = true;
  c.init_encoder = "enc.pt";
  auto back = config_from_json(config_json(c));
  expect_config_eq(back, c);
  EXPECT_EQ(back.seed, 18446744073709551615ull);
  EXPECT_EQ(back.learning_rate, 0.123456789012345);
  EXPECT_EQ(back.data_options, c.data_options);  // order kept
  c.target_metric.reset();
  EXPECT_FALSE(config_from_json(config_json(c)).target_metric);

  auto e = sample_environment();
  EXPECT_EQ(environment_json(environment_from_json(environment_json(e))), environment_json(e));
  // Older documents lacking keys read with defaults; wrong types are errors.
  EXPECT_EQ(config_from_json(nlohmann::json{{"batch_size", 32}}).model, run::RunConfig{}.model);
  EXPECT_THROW(config_from_json(nlohmann::json{{"batch_size", "many"}}), StoreError);
}

TEST(StoreJson, TrialKeyIsCanonical) {
  auto a = sample_config(0.1, 64, 1);
  auto b = a;
  b.data_dir = "/elsewhere";
  b.checkpoint = "/tmp/x.pt";
  EXPECT_EQ(trial_key(a), trial_key(b));
  b.seed = 2;
  EXPECT_NE(trial_key(a), trial_key(b));
  EXPECT_EQ(trial_key(a).find("data_dir"), std::string::npos);
  EXPECT_NE(trial_key(a).find("\"seed\":1"), std::string::npos);
  auto c = a;
  std::swap(c.data_options[0], c.data_options[1]);
  EXPECT_EQ(trial_key(a), trial_key(c));  // option order does not matter
  c.data_options[0].second = "64";
  EXPECT_NE(trial_key(a), trial_key(c));
}

}  // namespace
}  // namespace powertrain::store
