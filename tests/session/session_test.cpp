// The measured run against the real store and this machine's energy sources
// (here: the labeled estimate), with scripted workloads.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "powertrain/error.h"
#include "powertrain/session/session.h"
#include "powertrain/store/store.h"
#include "temp_dir.h"

namespace ps = powertrain::session;
namespace prun = powertrain::run;
namespace pst = powertrain::store;

namespace {

// A workload made of a function, as the tests need it.
class ScriptedWorkload final : public prun::Workload {
 public:
  explicit ScriptedWorkload(std::function<void(prun::RunControl&)> body) : body_(std::move(body)) {}
  void run(prun::RunControl& control) override { body_(control); }
  int threads() const override { return 1; }
  std::string framework() const override { return "scripted"; }

 private:
  std::function<void(prun::RunControl&)> body_;
};

prun::RunConfig config(int max_epochs = 3) {
  prun::RunConfig c;
  c.max_epochs = max_epochs;
  c.patience = 0;
  return c;
}

void epochs(prun::RunControl& c, int n, double seconds = 0.02) {
  for (int e = 1; e <= n; ++e) {
    c.begin_epoch(e);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    c.begin_eval();
    prun::EpochMetrics m;
    m.val_metric = 0.1 * e;
    if (c.end_epoch(m).stop) break;
  }
  c.set_test(0.5);
}

ps::SessionOptions quiet() {
  ps::SessionOptions o;
  o.log = nullptr;
  o.interval = std::chrono::milliseconds(10);
  return o;
}

}  // namespace

TEST(RunSession, RecordsARunWithItsEpochsSummaryEnvironmentAndTimeline) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir.path() / "r.db");
  ScriptedWorkload w([](prun::RunControl& c) { epochs(c, 3); });
  std::int64_t started = 0;
  auto o = quiet();
  o.on_run_start = [&](std::int64_t id) { started = id; };
  ps::RunSession session(store, o);
  const auto out = session.run(config(), w);
  EXPECT_EQ(started, out.run_id);
  EXPECT_EQ(out.summary.status, prun::RunStatus::max_epochs);
  const auto rec = store.run(out.run_id);
  EXPECT_EQ(rec.summary.status, prun::RunStatus::max_epochs);
  EXPECT_EQ(rec.summary.epochs, 3);
  EXPECT_DOUBLE_EQ(rec.summary.test_metric, 0.5);
  EXPECT_EQ(rec.environment.torch_version, "scripted");
  const auto stored = store.epochs_of(out.run_id);
  ASSERT_EQ(stored.size(), 3u);
  double sum = 0.0;
  for (const auto& e : stored) sum += e.energy_j;
  EXPECT_NEAR(sum, rec.summary.energy_j, 1e-6 + 0.05 * rec.summary.energy_j);
  // No counter here: every joule is the estimate's, and says so.
  EXPECT_NE(rec.summary.method.find("estimated"), std::string::npos) << rec.summary.method;
  EXPECT_FALSE(store.timeline_of(out.run_id).empty());
}

TEST(RunSession, AWorkloadExceptionFailsTheRunAndKeepsWhatWasMeasured) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir.path() / "r.db");
  ScriptedWorkload w([](prun::RunControl& c) {
    epochs(c, 1);
    c.begin_epoch(2);
    throw powertrain::WorkloadError("`train.py` exited with status 3; its last stderr lines:\nboom");
  });
  ps::RunSession session(store, quiet());
  const auto out = session.run(config(5), w);
  EXPECT_EQ(out.summary.status, prun::RunStatus::failed);
  const auto rec = store.run(out.run_id);
  EXPECT_EQ(rec.summary.status, prun::RunStatus::failed);
  EXPECT_NE(rec.summary.message.find("boom"), std::string::npos);
  EXPECT_EQ(store.epochs_of(out.run_id).size(), 1u);
  EXPECT_GT(rec.summary.energy_j, store.epochs_of(out.run_id)[0].energy_j);  // the cut epoch counts too
}

TEST(RunSession, AStopRequestEndsTheRunInterrupted) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir.path() / "r.db");
  std::atomic<bool> stop{false};
  ScriptedWorkload w([&](prun::RunControl& c) {
    epochs(c, 1);
    stop = true;
    if (c.stop_requested()) c.interrupt("interrupted before epoch 2");
  });
  auto o = quiet();
  o.stop = &stop;
  ps::RunSession session(store, o);
  const auto out = session.run(config(), w);
  EXPECT_EQ(store.run(out.run_id).summary.status, prun::RunStatus::interrupted);
}

TEST(RunSession, TrialsAreCompletedInTheStudy) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir.path() / "r.db");
  const auto study = store.create_study("s", "grid", "name = \"s\"", {});
  pst::TrialSpec spec;
  spec.key = "k1";
  spec.config = config();
  const auto trial = store.upsert_trial(study, spec);
  ScriptedWorkload w([](prun::RunControl& c) { epochs(c, 2); });
  ps::RunSession session(store, quiet());
  const auto out = session.run_trial(trial, config(2), w);
  EXPECT_EQ(store.trial(trial).status, pst::TrialStatus::max_epochs);
  EXPECT_EQ(store.run(out.run_id).summary.epochs, 2);
}

TEST(RunSession, InvalidIntervalIsAConfigError) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir.path() / "r.db");
  auto o = quiet();
  o.interval = std::chrono::milliseconds(1);
  EXPECT_THROW(ps::RunSession(store, o), powertrain::ConfigError);
}

namespace {

// Epochs whose metric rises for 3 epochs and then stays: the rule (patience 2)
// stops the run after epoch 5.
void plateau(prun::RunControl& c) {
  const double metrics[] = {0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7};
  for (int e = 1; e <= 8; ++e) {
    c.begin_epoch(e);
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
    c.begin_eval();
    prun::EpochMetrics m;
    m.val_metric = metrics[e - 1];
    if (c.end_epoch(m).stop) break;
  }
  c.set_test(0.5);
}

prun::RunConfig early_stopping() {
  prun::RunConfig c;
  c.max_epochs = 20;
  c.patience = 2;
  c.min_delta = 0.01;
  return c;
}

}  // namespace

// Issue 28: a trial of a study whose other trials have finished is forecast
// from them from its first epoch on (the study prior, chosen by the study's
// backtest), not with the "too few epochs" bound.
TEST(RunSession, ATrialAfterItsFirstEpochsGetsTheStudyPriorFromTheFinishedTrials) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir.path() / "r.db");
  const auto study = store.create_study("s", "grid", "name = \"s\"", {});
  std::vector<std::int64_t> trials;
  for (int i = 0; i < 4; ++i) {
    pst::TrialSpec spec;
    spec.key = "k" + std::to_string(i);
    spec.config = early_stopping();
    trials.push_back(store.upsert_trial(study, spec));
  }
  ps::RunSession session(store, quiet());
  // The first trial has no peers: its early forecasts are the bound.
  ScriptedWorkload w([](prun::RunControl& c) { plateau(c); });
  const auto first = session.run_trial(trials[0], early_stopping(), w);
  EXPECT_EQ(store.epochs_of(first.run_id)[1].forecast->method, "too few epochs");
  for (int i = 1; i < 3; ++i) session.run_trial(trials[static_cast<std::size_t>(i)], early_stopping(), w);
  const auto last = session.run_trial(trials[3], early_stopping(), w);
  const auto stored = store.epochs_of(last.run_id);
  ASSERT_EQ(stored.size(), 5u);
  for (int seen : {1, 2}) {
    const auto& f = stored[static_cast<std::size_t>(seen - 1)].forecast;
    ASSERT_TRUE(f);
    EXPECT_EQ(f->method, "study prior, by backtest of 3 runs") << "after epoch " << seen;
    EXPECT_DOUBLE_EQ(f->stop_epoch, 5.0) << "after epoch " << seen;
  }
}
