// Segments: a run trained for some epochs, paused with its state written
// (RunConfig::save_state) and continued by another Trainer (resume_from) must
// train as the whole run would have, epoch for epoch.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "clock_meter.h"
#include "powertrain/error.h"
#include "powertrain/run/control.h"
#include "powertrain/train/trainer.h"
#include "temp_dir.h"

namespace pt = powertrain::train;
namespace prun = powertrain::run;
namespace pd = powertrain::data;
using powertrain::testing::clock_tracker;
using powertrain::testing::TempDir;

namespace {

// Images [N, 1, 8, 8]: each class is a fixed random +-1 template plus noise.
pd::Split blob_split(std::int64_t n, const torch::Tensor& templates, std::uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  pd::Split s;
  s.y = torch::randint(0, templates.size(0), {n}, g, torch::kLong);
  s.x = templates.index_select(0, s.y) + 1.5 * torch::randn({n, 1, 8, 8}, g, torch::kFloat);
  return s;
}

pd::Dataset blobs() {
  auto g = at::detail::createCPUGenerator(5);
  const auto templates = torch::randint(0, 2, {3, 1, 8, 8}, g, torch::kFloat) * 2 - 1;
  pd::Dataset ds;
  ds.name = "blobs";
  ds.synthetic = true;
  ds.labels = {"a", "b", "c"};
  ds.train = blob_split(200, templates, 6);
  ds.val = blob_split(96, templates, 7);
  ds.test = blob_split(96, templates, 8);
  return ds;
}

prun::RunConfig config(const std::string& optimizer, int max_epochs) {
  prun::RunConfig c;
  c.dataset = "synthetic";
  c.model = "image-cnn";
  c.optimizer = optimizer;
  c.learning_rate = optimizer == "adam" ? 3e-3 : 0.03;
  c.momentum = 0.9;
  c.weight_decay = 1e-4;
  c.batch_size = 32;  // 200 samples: a short last batch every epoch
  c.max_epochs = max_epochs;
  c.patience = 0;  // every epoch runs: the segments end at their max_epochs
  c.seed = 3;
  c.threads = 1;  // one thread: the same sums in the same order, run after run
  return c;
}

pt::TrainOptions options() {
  pt::TrainOptions o;
  o.model.width = 8;
  o.model.depth = 2;
  o.model.dropout = 0.25;  // draws from the default CPU generator: its state must carry over
  o.progress_every = 2;
  return o;
}

struct Segment {
  std::vector<prun::EpochRecord> epochs;  // those this segment trained
  prun::RunSummary summary;
  std::vector<torch::Tensor> weights;  // after the run: the best epoch's
};

// One run (or segment) of `c` on a RunControl continued from `prior`.
Segment train(const prun::RunConfig& c, const pd::Dataset& ds, const std::vector<prun::EpochRecord>& prior = {}) {
  pt::Trainer trainer(c, ds, options());
  auto tracker = clock_tracker();
  prun::RecordingObserver obs;
  prun::RunControl control(c, *tracker, obs, nullptr, options().loss_limits);
  control.start({});
  if (!prior.empty()) control.resume(prior);
  trainer.run(control);
  Segment s;
  s.summary = control.finish();
  s.epochs = obs.epochs;
  for (const auto& p : trainer.model()->parameters()) s.weights.push_back(p.detach().clone());
  return s;
}

void expect_same_epoch(const prun::EpochRecord& a, const prun::EpochRecord& b) {
  SCOPED_TRACE(::testing::Message() << "epoch " << a.epoch);
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_NEAR(a.val_metric, b.val_metric, 1e-6);
  EXPECT_NEAR(a.val_loss, b.val_loss, 1e-6);
  EXPECT_NEAR(a.train_loss, b.train_loss, 1e-6);
}

class Segments : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(Segments, TwoSegmentsTrainAsTheWholeRun) {
  const auto ds = blobs();
  TempDir dir;
  const auto state = dir / "segments" / "setup.state";

  const auto whole = train(config(GetParam(), 4), ds);
  ASSERT_EQ(whole.summary.status, prun::RunStatus::max_epochs) << whole.summary.message;
  ASSERT_EQ(whole.epochs.size(), 4u);

  auto first_config = config(GetParam(), 2);
  first_config.save_state = state.string();
  const auto first = train(first_config, ds);
  ASSERT_EQ(first.summary.status, prun::RunStatus::max_epochs) << first.summary.message;
  ASSERT_TRUE(std::filesystem::is_regular_file(state));
  EXPECT_FALSE(std::filesystem::exists(state.string() + ".tmp"));

  auto second_config = config(GetParam(), 4);
  second_config.resume_from = state.string();
  const auto second = train(second_config, ds, first.epochs);
  ASSERT_EQ(second.summary.status, prun::RunStatus::max_epochs) << second.summary.message;
  ASSERT_EQ(second.epochs.size(), 2u);
  EXPECT_EQ(second.epochs[0].epoch, 3);

  // Epoch for epoch the curve of the whole run...
  expect_same_epoch(first.epochs[0], whole.epochs[0]);
  expect_same_epoch(first.epochs[1], whole.epochs[1]);
  expect_same_epoch(second.epochs[0], whole.epochs[2]);
  expect_same_epoch(second.epochs[1], whole.epochs[3]);
  // ...its best epoch (possibly one of the first segment, whose weights came
  // with the state), the weights restored at the end and their test metric.
  EXPECT_EQ(second.summary.epochs, 4);
  EXPECT_EQ(second.summary.best_epoch, whole.summary.best_epoch);
  EXPECT_NEAR(second.summary.best_val_metric, whole.summary.best_val_metric, 1e-9);
  EXPECT_NEAR(second.summary.test_metric, whole.summary.test_metric, 1e-9);
  ASSERT_EQ(second.weights.size(), whole.weights.size());
  for (std::size_t i = 0; i < whole.weights.size(); ++i)
    EXPECT_TRUE(torch::allclose(second.weights[i], whole.weights[i], 1e-5, 1e-6)) << "parameter " << i;
}

INSTANTIATE_TEST_SUITE_P(Optimizers, Segments, ::testing::Values("sgd", "adam"));

TEST(SegmentState, AMissingOrForeignStateFileIsAnIoError) {
  const auto ds = blobs();
  TempDir dir;
  auto c = config("adam", 4);
  c.resume_from = (dir / "nowhere.state").string();
  try {
    pt::Trainer trainer(c, ds, options());
    FAIL() << "no error for a missing state file";
  } catch (const powertrain::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("nowhere.state"), std::string::npos) << e.what();
  }
  powertrain::testing::write_file(dir / "garbage.state", "not a torch archive");
  c.resume_from = (dir / "garbage.state").string();
  EXPECT_THROW(pt::Trainer(c, ds, options()), powertrain::IoError);
}

TEST(SegmentState, AStateOfAnotherOptimizerIsRefused) {
  const auto ds = blobs();
  TempDir dir;
  auto c = config("adam", 1);
  c.save_state = (dir / "adam.state").string();
  ASSERT_EQ(train(c, ds).summary.status, prun::RunStatus::max_epochs);
  auto sgd = config("sgd", 2);
  sgd.resume_from = c.save_state;
  EXPECT_THROW(pt::Trainer(sgd, ds, options()), powertrain::ConfigError);
}

TEST(SegmentState, TheEpochsMustFollowThoseOfTheState) {
  const auto ds = blobs();
  TempDir dir;
  auto c = config("sgd", 2);
  c.save_state = (dir / "two.state").string();
  const auto first = train(c, ds);
  ASSERT_EQ(first.epochs.size(), 2u);

  auto next = config("sgd", 4);
  next.resume_from = c.save_state;
  {
    // The control continues after epoch 1, the state holds 2.
    pt::Trainer trainer(next, ds, options());
    auto tracker = clock_tracker();
    prun::RecordingObserver obs;
    prun::RunControl control(next, *tracker, obs);
    control.resume({first.epochs[0]});
    try {
      trainer.run(control);
      FAIL() << "no error for a state of other epochs";
    } catch (const powertrain::WorkloadError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("holds 2 epochs"), std::string::npos) << what;
      EXPECT_NE(what.find("after epoch 1"), std::string::npos) << what;
    }
    EXPECT_TRUE(obs.epochs.empty());  // nothing trained
  }
  {
    // Continued without any prior epochs: the state's 2 would be lost.
    pt::Trainer trainer(next, ds, options());
    auto tracker = clock_tracker();
    prun::RecordingObserver obs;
    prun::RunControl control(next, *tracker, obs);
    EXPECT_THROW(trainer.run(control), powertrain::WorkloadError);
  }
  {
    // Prior epochs but no state to continue from.
    pt::Trainer trainer(config("sgd", 4), ds, options());
    auto tracker = clock_tracker();
    prun::RecordingObserver obs;
    prun::RunControl control(config("sgd", 4), *tracker, obs);
    control.resume(first.epochs);
    EXPECT_THROW(trainer.run(control), powertrain::WorkloadError);
  }
}

TEST(SegmentState, OnlyARunThatReachedMaxEpochsWritesItsState) {
  const auto ds = blobs();
  TempDir dir;
  {
    // Early stopping: no gain of 1.0 in accuracy is possible, patience 1.
    auto c = config("adam", 5);
    c.patience = 1;
    c.min_delta = 1.0;
    c.save_state = (dir / "converged.state").string();
    const auto s = train(c, ds);
    EXPECT_EQ(s.summary.status, prun::RunStatus::converged);
    EXPECT_FALSE(std::filesystem::exists(c.save_state));
  }
  {
    // Interrupted between epochs.
    auto c = config("adam", 5);
    c.save_state = (dir / "interrupted.state").string();
    pt::Trainer trainer(c, ds, options());
    auto tracker = clock_tracker();
    std::atomic<bool> stop{true};
    prun::RecordingObserver obs;
    prun::RunControl control(c, *tracker, obs, &stop);
    trainer.run(control);
    EXPECT_EQ(control.finish().status, prun::RunStatus::interrupted);
    EXPECT_FALSE(std::filesystem::exists(c.save_state));
  }
}

TEST(SegmentState, AContinuedRunWhoseEpochsAreAllDoneTrainsNothing) {
  const auto ds = blobs();
  TempDir dir;
  auto c = config("sgd", 2);
  c.save_state = (dir / "done.state").string();
  const auto first = train(c, ds);
  auto again = config("sgd", 2);
  again.resume_from = c.save_state;
  const auto second = train(again, ds, first.epochs);
  EXPECT_EQ(second.summary.status, prun::RunStatus::max_epochs);
  EXPECT_TRUE(second.epochs.empty());
  EXPECT_EQ(second.summary.epochs, 2);
  // The best model of the state, evaluated on the test split as at the first end.
  EXPECT_EQ(second.summary.best_epoch, first.summary.best_epoch);
  EXPECT_NEAR(second.summary.test_metric, first.summary.test_metric, 1e-9);
}

// Issue 24: a full disk while the state is written was an uncaught c10::Error
// from LibTorch's file writer (the process aborted, the trial stayed running,
// the .tmp file stayed). Now the run is interrupted (to be run again, the
// setup is not at fault) with one line, and the file goes.
TEST(SegmentState, AFullDiskInterruptsTheRunWithOneLineAndLeavesNoTemporaryFile) {
  const auto ds = blobs();
  TempDir dir;
  auto c = config("sgd", 1);
  c.save_state = (dir / "full.state").string();
  const auto tmp = std::filesystem::path(c.save_state + ".tmp");
  std::filesystem::create_symlink("/dev/full", tmp);  // every write: ENOSPC
  const auto s = train(c, ds);
  EXPECT_EQ(s.summary.status, prun::RunStatus::interrupted);
  EXPECT_NE(s.summary.message.find("No space left on device"), std::string::npos) << s.summary.message;
  EXPECT_EQ(s.summary.message.find('\n'), std::string::npos) << s.summary.message;
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(tmp)));
  EXPECT_FALSE(std::filesystem::exists(c.save_state));
}
