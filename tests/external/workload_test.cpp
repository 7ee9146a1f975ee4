// The external workload against real child processes: a scripted Python
// program (programs/fake_trainer.py, no torch) that speaks the protocol.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "clock_meter.h"
#include "powertrain/error.h"
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

std::string fake_trainer() { return std::string(POWERTRAIN_TEST_SOURCE_DIR) + "/tests/external/programs/fake_trainer.py"; }

prun::RunConfig fake(const std::string& mode, std::vector<std::pair<std::string, std::string>> env = {}) {
  prun::RunConfig c;
  c.command.argv = {python(), fake_trainer(), mode};
  c.command.env = std::move(env);
  c.max_epochs = 6;
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
  std::string error;  // the workload's exception, as the session would record it
};

Result run(const prun::RunConfig& c, const px::CommandOptions& o = quick(), const std::atomic<bool>* stop = nullptr) {
  auto tracker = clock_tracker(20.0);
  prun::RecordingObserver obs;
  px::CommandWorkload w(c, o);
  Result r;
  prun::RunControl control(c, *tracker, obs, stop);
  try {
    w.run(control);
  } catch (const powertrain::WorkloadError& e) {
    r.error = e.what();
    control.fail(e.what());
  }
  r.summary = control.finish();
  r.epochs = obs.epochs;
  return r;
}

bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }

}  // namespace

TEST(CommandWorkload, RunsToConvergenceByTheRuleAndMeasuresEachEpoch) {
  // Metrics 0.5, 0.6, 0.7, 0.7, 0.7: no gain above 0.01 for 2 epochs after epoch 3.
  const auto r = run(fake("normal"));
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.summary.status, prun::RunStatus::converged) << r.summary.message;
  EXPECT_EQ(r.summary.epochs, 5);
  EXPECT_EQ(r.summary.best_epoch, 3);
  EXPECT_DOUBLE_EQ(r.summary.test_metric, 0.66);
  ASSERT_EQ(r.epochs.size(), 5u);
  for (const auto& e : r.epochs) {
    // The program sleeps 20 ms per training phase and 10 ms per evaluation;
    // boundaries land when the events arrive, so a loaded machine shifts them.
    EXPECT_GT(e.train_duration_s, 0.005);
    EXPECT_GT(e.eval_duration_s, 0.002);
    EXPECT_NEAR(e.train_duration_s + e.eval_duration_s, e.duration_s, 0.002);
    EXPECT_NEAR(e.energy_j, 20.0 * e.duration_s, 0.2);
    EXPECT_GT(e.samples_per_s, 0.0);
  }
}

TEST(CommandWorkload, MaxEpochsStopsTheProgram) {
  auto c = fake("normal", {{"FAKE_METRICS", "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8"}});
  c.max_epochs = 3;
  const auto r = run(c);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.summary.status, prun::RunStatus::max_epochs);
  EXPECT_EQ(r.summary.epochs, 3);
}

TEST(CommandWorkload, CrashFailsWithTheExitStatusAndStderr) {
  const auto r = run(fake("crash"));
  EXPECT_NE(r.error.find("exited with status 3"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("RuntimeError: out of memory in the fake trainer"), std::string::npos) << r.error;
  EXPECT_EQ(r.summary.status, prun::RunStatus::failed);
  EXPECT_EQ(r.epochs.size(), 1u);  // the epoch before the crash is kept
}

TEST(CommandWorkload, HangPastTheIdleTimeoutFails) {
  auto o = quick();
  o.idle_timeout_s = 0.5;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run(fake("hang"), o);
  EXPECT_NE(r.error.find("sent no event for 0.5 s"), std::string::npos) << r.error;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
}

TEST(CommandWorkload, RunPastTheTimeoutFails) {
  auto o = quick();
  o.timeout_s = 0.5;
  const auto r = run(fake("hang"), o);
  EXPECT_NE(r.error.find("ran past its timeout of 0.5 s"), std::string::npos) << r.error;
}

TEST(CommandWorkload, MalformedEventsFail) {
  for (const char* mode : {"malformed", "bad_protocol"}) {
    const auto r = run(fake(mode));
    EXPECT_NE(r.error.find("malformed event"), std::string::npos) << mode << ": " << r.error;
  }
  const auto r = run(fake("out_of_order"));
  EXPECT_NE(r.error.find("epoch 2 began after epoch 0"), std::string::npos) << r.error;
}

TEST(CommandWorkload, ProgramsThatEndWithoutWhatARunNeedsFail) {
  EXPECT_NE(run(fake("no_epoch")).error.find("exited without reporting an epoch"), std::string::npos);
  EXPECT_NE(run(fake("no_test")).error.find("exited without a test metric"), std::string::npos);
  EXPECT_NE(run(fake("exit_in_epoch")).error.find("exited inside epoch 2"), std::string::npos);
}

TEST(CommandWorkload, AProgramThatStopsOnItsOwnWithATestMetricCompletes) {
  const auto r = run(fake("own_limit"));
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.summary.epochs, 2);
  // Issue 24: epoch 2 of 6 without a stop reply is not max_epochs (which a
  // search reads as "paused at its rung, continue it").
  EXPECT_EQ(r.summary.status, prun::RunStatus::stopped);
  EXPECT_NE(r.summary.message.find("ended on its own after epoch 2 of 6"), std::string::npos) << r.summary.message;
}

TEST(CommandWorkload, IgnoringTheStopReplyEndsInSigtermThenSigkill) {
  auto o = quick();
  o.grace_s = 0.3;
  o.kill_after_s = 0.3;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run(fake("ignore_stop"), o);
  EXPECT_NE(r.error.find("sent no test metric within the grace period"), std::string::npos) << r.error;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
}

TEST(CommandWorkload, DivergingLossInProgressStopsTheProgram) {
  const auto r = run(fake("diverge"));
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.summary.status, prun::RunStatus::diverged);
  EXPECT_NE(r.summary.message.find("the training loss became nan"), std::string::npos) << r.summary.message;
}

TEST(CommandWorkload, ProgramThatCannotStartFailsWithTheReason) {
  auto c = fake("normal");
  c.command.argv = {"/nonexistent/trainer"};
  EXPECT_NE(run(c).error.find("cannot run /nonexistent/trainer"), std::string::npos);
  c = fake("normal");
  c.command.workdir = "/nonexistent/folder";
  EXPECT_NE(run(c).error.find("cannot enter the working directory"), std::string::npos);
}

TEST(CommandWorkload, StopRequestInterruptsAndLeavesNoProcessBehind) {
  powertrain::testing::TempDir dir;
  const auto pid_file = (dir.path() / "pids").string();
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    // Once the program and its grandchild are up, ask the run to stop.
    for (int i = 0; i < 400 && !std::ifstream(pid_file).good(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop = true;
  });
  const auto r = run(fake("orphan", {{"FAKE_PID_FILE", pid_file}}), quick(), &stop);
  stopper.join();
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.summary.status, prun::RunStatus::interrupted);
  EXPECT_EQ(r.summary.epochs, 1);
  pid_t program = 0, grandchild = 0;
  std::ifstream(pid_file) >> program >> grandchild;
  ASSERT_GT(grandchild, 0);
  // The whole process group went: the program and its grandchild.
  for (int i = 0; i < 100 && (alive(program) || alive(grandchild)); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(alive(grandchild));
}

TEST(CommandWorkload, TimestampedBoundariesGiveTheirLatency) {
  px::CommandWorkload w(fake("normal"), quick());
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  prun::RunControl control(fake("normal"), *tracker, obs);
  w.run(control);
  EXPECT_EQ(w.reported_framework(), "fake 1.0");
  ASSERT_EQ(w.latency().us.size(), 10u);  // 5 epochs, a start and an end each
  for (double us : w.latency().us) {
    EXPECT_GT(us, 0.0);
    EXPECT_LT(us, 5e6);
  }
}

TEST(CommandWorkload, InvalidOptionsAreConfigErrors) {
  px::CommandOptions o;
  o.grace_s = -1;
  EXPECT_THROW(px::CommandWorkload(fake("normal"), o), powertrain::ConfigError);
  auto c = fake("normal");
  c.command.argv = {"python3", "{nope}"};
  EXPECT_THROW(px::CommandWorkload(c, quick()), powertrain::ConfigError);
}
