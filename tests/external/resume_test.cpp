// A user's program run in segments: the first writes its state at the epoch
// limit, the second is told where it is and where to go on
// (programs/segment_trainer.py, no torch).
#include <gtest/gtest.h>

#include <filesystem>

#include "clock_meter.h"
#include "powertrain/error.h"
#include "powertrain/external/command.h"
#include "powertrain/external/workload.h"
#include "temp_dir.h"

namespace px = powertrain::external;
namespace prun = powertrain::run;
using powertrain::testing::clock_tracker;

namespace {

std::string python() {
  const std::string p = POWERTRAIN_TEST_PYTHON;
  return p.empty() ? "python3" : p;
}

prun::RunConfig segment(int max_epochs) {
  prun::RunConfig c;
  c.command.argv = {python(), std::string(POWERTRAIN_TEST_SOURCE_DIR) + "/tests/external/programs/segment_trainer.py",
                    "{start_epoch}", "{resume_from}", "{save_state}"};
  c.max_epochs = max_epochs;
  c.patience = 2;
  c.min_delta = 0.01;
  return c;
}

px::CommandOptions quick() {
  px::CommandOptions o;
  o.grace_s = 5.0;
  o.kill_after_s = 1.0;
  o.idle_timeout_s = 20.0;
  return o;
}

struct Result {
  prun::RunSummary summary;
  std::vector<prun::EpochRecord> epochs;
  std::string error;
};

Result run(const prun::RunConfig& c, const std::vector<prun::EpochRecord>& prior = {}) {
  auto tracker = clock_tracker(20.0);
  prun::RecordingObserver obs;
  px::CommandWorkload w(c, quick());
  Result r;
  prun::RunControl control(c, *tracker, obs);
  control.start({});
  try {
    if (!prior.empty()) control.resume(prior);
    w.run(control);
  } catch (const powertrain::WorkloadError& e) {
    r.error = e.what();
    control.fail(e.what());
  }
  r.summary = control.finish();
  r.epochs = obs.epochs;
  return r;
}

std::string env_of(const std::vector<std::pair<std::string, std::string>>& env, const std::string& name) {
  std::string v = "<unset>";
  for (const auto& [k, val] : env)
    if (k == name) v = val;
  return v;
}

}  // namespace

TEST(CommandSegments, SegmentSettingsReachTheProgramOnlyWhenSet) {
  auto c = segment(4);
  auto env = px::program_environment(c);
  EXPECT_EQ(env_of(env, "POWERTRAIN_RESUME_FROM"), "<unset>");
  EXPECT_EQ(env_of(env, "POWERTRAIN_START_EPOCH"), "<unset>");
  EXPECT_EQ(env_of(env, "POWERTRAIN_SAVE_STATE"), "<unset>");
  EXPECT_EQ(px::expand_argv(c)[2], "1");  // {start_epoch}

  c.save_state = "/states/a.state";
  env = px::program_environment(c);
  EXPECT_EQ(env_of(env, "POWERTRAIN_SAVE_STATE"), "/states/a.state");
  EXPECT_EQ(env_of(env, "POWERTRAIN_RESUME_FROM"), "<unset>");

  c.resume_from = "/states/a.state";
  env = px::program_environment(c, 3);
  EXPECT_EQ(env_of(env, "POWERTRAIN_RESUME_FROM"), "/states/a.state");
  EXPECT_EQ(env_of(env, "POWERTRAIN_START_EPOCH"), "3");
  const auto argv = px::expand_argv(c, 3);
  EXPECT_EQ(argv[2], "3");
  EXPECT_EQ(argv[3], "/states/a.state");
  EXPECT_EQ(argv[4], "/states/a.state");
}

TEST(CommandSegments, ASecondSegmentContinuesWhereTheFirstPaused) {
  powertrain::testing::TempDir dir;
  const auto state = dir / "setup.state";
  auto first_c = segment(2);
  first_c.save_state = state.string();
  const auto first = run(first_c);
  ASSERT_TRUE(first.error.empty()) << first.error;
  EXPECT_EQ(first.summary.status, prun::RunStatus::max_epochs) << first.summary.message;
  ASSERT_EQ(first.epochs.size(), 2u);
  ASSERT_TRUE(std::filesystem::is_regular_file(state));

  auto second_c = segment(4);
  second_c.resume_from = state.string();
  const auto second = run(second_c, first.epochs);
  ASSERT_TRUE(second.error.empty()) << second.error;
  EXPECT_EQ(second.summary.status, prun::RunStatus::max_epochs) << second.summary.message;
  ASSERT_EQ(second.epochs.size(), 2u);
  EXPECT_EQ(second.epochs[0].epoch, 3);
  EXPECT_DOUBLE_EQ(second.epochs[0].val_metric, 0.7);
  EXPECT_EQ(second.summary.epochs, 4);
  EXPECT_EQ(second.summary.best_epoch, 4);
}

TEST(CommandSegments, AContinuedRunThatTheRuleAlreadyEndedStartsNoProgram) {
  prun::RunConfig c;
  c.command.argv = {"/nonexistent/program"};  // would fail if it were started
  c.max_epochs = 10;
  c.patience = 1;
  c.min_delta = 0.5;
  c.resume_from = "/states/a.state";
  std::vector<prun::EpochRecord> prior(2);
  prior[0].epoch = 1;
  prior[0].val_metric = 0.5;
  prior[1].epoch = 2;
  prior[1].val_metric = 0.6;  // no gain above 0.5: patience 1 spent
  const auto r = run(c, prior);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.summary.status, prun::RunStatus::converged);
  EXPECT_EQ(r.summary.epochs, 2);
}
