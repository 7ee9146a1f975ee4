// A measured run that continues a paused one (SessionOptions::prior_epochs):
// the workload begins after the earlier segments' epochs, the rule and the
// forecasts see the whole curve, the store gets this segment's epochs.
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

class ScriptedWorkload final : public prun::Workload {
 public:
  explicit ScriptedWorkload(std::function<void(prun::RunControl&)> body) : body_(std::move(body)) {}
  void run(prun::RunControl& control) override { body_(control); }
  int threads() const override { return 1; }
  std::string framework() const override { return "scripted"; }

 private:
  std::function<void(prun::RunControl&)> body_;
};

// Trains from control.first_epoch() with these validation metrics, until a verdict stops it.
ScriptedWorkload curve(std::vector<double> metrics, int* first_seen = nullptr) {
  return ScriptedWorkload([metrics, first_seen](prun::RunControl& c) {
    if (first_seen) *first_seen = c.first_epoch();
    for (int e = c.first_epoch(); c.status() == prun::RunStatus::running; ++e) {
      c.begin_epoch(e);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      c.begin_eval();
      prun::EpochMetrics m;
      m.val_metric = metrics.at(static_cast<std::size_t>(e - 1));
      if (c.end_epoch(m).stop) break;
    }
  });
}

prun::RunConfig config(int max_epochs) {
  prun::RunConfig c;
  c.max_epochs = max_epochs;
  c.patience = 2;
  c.min_delta = 0.0;
  return c;
}

ps::SessionOptions quiet() {
  ps::SessionOptions o;
  o.log = nullptr;
  o.interval = std::chrono::milliseconds(10);
  return o;
}

}  // namespace

TEST(RunSessionResume, ASecondSegmentContinuesTheFirst) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir.path() / "r.db");
  const std::vector<double> metrics = {0.3, 0.5, 0.4, 0.45, 0.9};

  auto first_w = curve(metrics);
  ps::RunSession first_session(store, quiet());
  const auto first = first_session.run(config(2), first_w);
  ASSERT_EQ(first.summary.status, prun::RunStatus::max_epochs);
  const auto prior = store.epochs_of(first.run_id);
  ASSERT_EQ(prior.size(), 2u);

  int first_epoch = 0;
  auto second_w = curve(metrics, &first_epoch);
  auto o = quiet();
  o.prior_epochs = prior;
  ps::RunSession second_session(store, o);
  const auto second = second_session.run(config(10), second_w);
  EXPECT_EQ(first_epoch, 3);
  // Patience carried over: epochs 3 and 4 gained nothing on epoch 2.
  EXPECT_EQ(second.summary.status, prun::RunStatus::converged) << second.summary.message;
  EXPECT_EQ(second.summary.epochs, 4);
  EXPECT_EQ(second.summary.best_epoch, 2);
  EXPECT_DOUBLE_EQ(second.summary.best_val_metric, 0.5);

  const auto stored = store.epochs_of(second.run_id);
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].epoch, 3);
  EXPECT_EQ(stored[1].epoch, 4);
  // The forecast after epoch 4 knows the rule stopped the whole run there, and
  // its energy to the stop counts the first segment's epochs too.
  ASSERT_TRUE(stored[1].forecast);
  EXPECT_EQ(stored[1].forecast->method, "stopped");
  EXPECT_DOUBLE_EQ(stored[1].forecast->stop_epoch, 4.0);
  double whole_j = 0.0;
  for (const auto& e : prior) whole_j += e.energy_j;
  for (const auto& e : stored) whole_j += e.energy_j;
  EXPECT_NEAR(stored[1].forecast->energy_j, whole_j, 1e-6 * whole_j + 1e-9);
}

TEST(RunSessionResume, PriorEpochsOutOfOrderFailTheRun) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir.path() / "r.db");
  prun::EpochRecord e;
  e.epoch = 2;
  e.val_metric = 0.5;
  auto o = quiet();
  o.prior_epochs = {e};
  bool ran = false;
  ScriptedWorkload w([&](prun::RunControl&) { ran = true; });
  ps::RunSession session(store, o);
  const auto out = session.run(config(4), w);
  EXPECT_FALSE(ran);
  EXPECT_EQ(out.summary.status, prun::RunStatus::failed);
  EXPECT_NE(out.summary.message.find("numbered"), std::string::npos) << out.summary.message;
}
