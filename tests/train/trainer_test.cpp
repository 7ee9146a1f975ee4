#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <torch/torch.h>

#include "powertrain/data/load.h"
#include "powertrain/energy/tracker.h"
#include "powertrain/error.h"
#include "powertrain/models/model.h"
#include "powertrain/run/environment.h"
#include "powertrain/train/device.h"
#include "powertrain/train/optimizer.h"
#include "powertrain/train/trainer.h"
#include "temp_dir.h"

namespace pt = powertrain::train;
namespace prun = powertrain::run;
namespace pm = powertrain::models;
namespace pe = powertrain::energy;
namespace pd = powertrain::data;
using powertrain::ConfigError;
using powertrain::DataError;

namespace {

// One energy counter that grows at 50 W with wall time, and one power channel
// that reads a constant 5 W (integrated by the tracker).
class ClockMeter final : public pe::Meter {
 public:
  ClockMeter() {
    pe::ChannelInfo cpu;
    cpu.id = "fake:cpu";
    cpu.source = "fake";
    cpu.device = "cpu0";
    cpu.component = pe::Component::cpu;
    cpu.method = pe::Method::counter;
    cpu.cumulative = true;
    pe::ChannelInfo dram = cpu;
    dram.id = "fake:dram";
    dram.device = "dram0";
    dram.component = pe::Component::dram;
    dram.method = pe::Method::sampled;
    dram.cumulative = false;
    channels_ = {cpu, dram};
  }
  std::string source() const override { return "fake"; }
  const std::vector<pe::ChannelInfo>& channels() const override { return channels_; }
  void read(std::vector<pe::ChannelSample>& out) override {
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    out.assign(2, pe::ChannelSample{});
    out[0].energy_j = 50.0 * t;
    out[1].power_w = 5.0;
  }

 private:
  std::vector<pe::ChannelInfo> channels_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

std::unique_ptr<pe::Tracker> make_tracker() {
  std::vector<std::unique_ptr<pe::Meter>> meters;
  meters.push_back(std::make_unique<ClockMeter>());
  return std::make_unique<pe::Tracker>(std::move(meters));
}

// Images [N, 1, 8, 8]: each class is a fixed random +-1 template plus noise.
pd::Split blob_split(std::int64_t n, std::int64_t classes, const torch::Tensor& templates, std::uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  pd::Split s;
  s.y = torch::randint(0, classes, {n}, g, torch::kLong);
  s.x = templates.index_select(0, s.y) + 0.8 * torch::randn({n, 1, 8, 8}, g, torch::kFloat);
  return s;
}

pd::Dataset blobs(std::int64_t n_train = 320, std::int64_t classes = 2, std::uint64_t seed = 7) {
  auto g = at::detail::createCPUGenerator(seed);
  const auto templates = torch::randint(0, 2, {classes, 1, 8, 8}, g, torch::kFloat) * 2 - 1;
  pd::Dataset ds;
  ds.name = "blobs";
  ds.synthetic = true;
  for (std::int64_t c = 0; c < classes; ++c) ds.labels.push_back("c" + std::to_string(c));
  ds.train = blob_split(n_train, classes, templates, seed + 1);
  ds.val = blob_split(128, classes, templates, seed + 2);
  ds.test = blob_split(128, classes, templates, seed + 3);
  return ds;
}

// Sensor windows [N, 3, 32]: class c is a sine of its own frequency per channel,
// at a random phase and amplitude, plus noise ("activities").
pd::Split activity_split(std::int64_t n, std::int64_t classes, std::uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  pd::Split s;
  s.y = torch::randint(0, classes, {n}, g, torch::kLong);
  const auto t = torch::arange(32, torch::kFloat).view({1, 1, 32});
  const auto ch = torch::arange(3, torch::kFloat).view({1, 3, 1});
  const auto freq = (s.y.to(torch::kFloat).view({n, 1, 1}) + 1.0) * 0.12 * (1.0 + 0.3 * ch);
  const auto phase = torch::rand({n, 3, 1}, g, torch::kFloat) * 6.283;
  const auto amp = 0.7 + 0.6 * torch::rand({n, 1, 1}, g, torch::kFloat);
  s.x = amp * torch::sin(freq * t + phase) + 0.3 * torch::randn({n, 3, 32}, g, torch::kFloat);
  return s;
}

pd::Dataset activities(std::int64_t classes = 4) {
  pd::Dataset ds;
  ds.name = "activities";
  ds.synthetic = true;
  ds.modality = pd::Dataset::Modality::sensor;
  for (std::int64_t c = 0; c < classes; ++c) ds.labels.push_back("a" + std::to_string(c));
  ds.train = activity_split(480, classes, 11);
  ds.val = activity_split(160, classes, 12);
  ds.test = activity_split(160, classes, 13);
  return ds;
}

// Multi-label images: task k is "template k is present".
pd::Split tasks_split(std::int64_t n, const torch::Tensor& templates, std::uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  const auto k = templates.size(0);
  pd::Split s;
  s.y = torch::randint(0, 2, {n, k}, g, torch::kFloat);
  s.x = torch::einsum("nk,kchw->nchw", {s.y, templates}) + 0.5 * torch::randn({n, 1, 8, 8}, g, torch::kFloat);
  return s;
}

pd::Dataset multitask(std::int64_t k = 3) {
  auto g = at::detail::createCPUGenerator(3);
  const auto templates = torch::randint(0, 2, {k, 1, 8, 8}, g, torch::kFloat) * 2 - 1;
  pd::Dataset ds;
  ds.name = "multitask";
  ds.synthetic = true;
  ds.label_kind = pd::LabelKind::multi_label;
  for (std::int64_t i = 0; i < k; ++i) ds.labels.push_back("t" + std::to_string(i));
  ds.train = tasks_split(384, templates, 21);
  ds.val = tasks_split(128, templates, 22);
  ds.test = tasks_split(128, templates, 23);
  return ds;
}

prun::RunConfig small_config(const std::string& model = "image-cnn") {
  prun::RunConfig c;
  c.dataset = "synthetic";
  c.model = model;
  c.optimizer = "adam";
  c.learning_rate = 3e-3;
  c.batch_size = 32;
  c.max_epochs = 8;
  c.patience = 3;
  c.min_delta = 1e-3;
  c.seed = 1;
  c.threads = 1;  // tests share a loaded machine: no OpenMP barriers on oversubscribed cores
  return c;
}

pt::TrainOptions small_options() {
  pt::TrainOptions o;
  o.model.width = 8;
  o.model.depth = 2;
  o.model.dropout = 0.0;
  o.progress_every = 4;
  return o;
}

// Stops the run from inside a callback, as a signal handler would.
class Stopper : public prun::RecordingObserver {
 public:
  Stopper(std::atomic<bool>& flag, int after_batches, int after_epochs)
      : flag_(flag), after_batches_(after_batches), after_epochs_(after_epochs) {}
  void on_batch(const prun::BatchProgress& p) override {
    prun::RecordingObserver::on_batch(p);
    if (after_batches_ > 0 && static_cast<int>(batches.size()) >= after_batches_) flag_ = true;
  }
  void on_epoch(const prun::EpochRecord& e) override {
    prun::RecordingObserver::on_epoch(e);
    if (after_epochs_ > 0 && static_cast<int>(epochs.size()) >= after_epochs_) flag_ = true;
  }

 private:
  std::atomic<bool>& flag_;
  int after_batches_, after_epochs_;
};

}  // namespace

// ---- small pieces ------------------------------------------------------------

TEST(RunStatus, NamesRoundTrip) {
  for (auto s : {prun::RunStatus::running, prun::RunStatus::converged, prun::RunStatus::max_epochs,
                 prun::RunStatus::diverged, prun::RunStatus::interrupted, prun::RunStatus::failed})
    EXPECT_EQ(prun::run_status_from_string(prun::to_string(s)), s);
  EXPECT_EQ(prun::to_string(prun::RunStatus::max_epochs), "max_epochs");
  EXPECT_THROW(prun::run_status_from_string("done"), ConfigError);
}

TEST(TrainerSetup, EncoderCheckpointPath) {
  EXPECT_EQ(powertrain::run::encoder_checkpoint_path("/a/run.pt"), std::filesystem::path("/a/run.encoder.pt"));
  EXPECT_EQ(powertrain::run::encoder_checkpoint_path("/a/run"), std::filesystem::path("/a/run.encoder.pt"));
}

TEST(TrainerSetup, Threads) {
  EXPECT_EQ(pt::configure_threads(1), 1);
  EXPECT_EQ(pt::configure_threads(0), prun::available_cpus());
  EXPECT_THROW(pt::configure_threads(-1), ConfigError);
  pt::configure_threads(2);
}

TEST(TrainerSetup, Environment) {
  auto tracker = make_tracker();
  const auto env = prun::collect_environment("cpu", 2, tracker.get(), pt::torch_version());
  EXPECT_FALSE(env.host.empty());
  EXPECT_FALSE(env.os.empty());
  EXPECT_EQ(env.torch_version, fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH));
  EXPECT_FALSE(env.commit.empty());
  EXPECT_GE(env.cpu_count, 1);
  EXPECT_EQ(env.threads, 2);
  EXPECT_TRUE(env.gpu.empty());
  EXPECT_EQ(env.sampling, "interval 100 ms");
}

TEST(TrainerSetup, RejectsBadConfig) {
  const auto ds = blobs();
  auto c = small_config();
  c.optimizer = "lbfgs";
  EXPECT_THROW(pt::Trainer(c, ds, small_options()), ConfigError);
  c = small_config();
  c.batch_size = 0;
  EXPECT_THROW(pt::Trainer(c, ds, small_options()), ConfigError);
  c = small_config();
  c.learning_rate = -1;
  EXPECT_THROW(pt::Trainer(c, ds, small_options()), ConfigError);
  c = small_config();
  c.model = "sensor-cnn";  // images are rank 3
  EXPECT_THROW(pt::Trainer(c, ds, small_options()), ConfigError);
  auto no_val = blobs();
  no_val.val = {};
  EXPECT_THROW(pt::Trainer(small_config(), no_val, small_options()), DataError);
  c = small_config();
  c.init_encoder = "/nonexistent/encoder.pt";
  EXPECT_THROW(pt::Trainer(c, ds, small_options()), powertrain::IoError);
}

// ---- flat optimizers ---------------------------------------------------------

namespace {

// Trains two identical models for a few steps, one with torch::optim and one
// with the flat optimizer; returns the largest parameter difference.
template <typename MakeTorch, typename MakeFlat>
double max_difference(MakeTorch make_torch, MakeFlat make_flat) {
  torch::manual_seed(5);
  auto a = pm::make_model("image-cnn", {{1, 8, 8}, false, 3}, {8, 16, 2, 3, 0.0, 4, false});
  torch::manual_seed(5);
  auto b = pm::make_model("image-cnn", {{1, 8, 8}, false, 3}, {8, 16, 2, 3, 0.0, 4, false});
  auto ref = make_torch(a->parameters());
  auto flat = make_flat(b->trainable_parameters());
  const auto x = torch::randn({16, 1, 8, 8});
  const auto y = torch::randint(0, 3, {16});
  for (int i = 0; i < 6; ++i) {
    ref->zero_grad();
    torch::cross_entropy_loss(a->forward(x), y).backward();
    ref->step();
    flat->zero_grad();
    torch::cross_entropy_loss(b->forward(x), y).backward();
    flat->step();
  }
  double worst = 0.0;
  const auto pa = a->parameters();
  const auto pb = b->parameters();
  for (std::size_t i = 0; i < pa.size(); ++i)
    worst = std::max(worst, (pa[i] - pb[i]).abs().max().item<double>());
  return worst;
}

}  // namespace

TEST(FlatOptimizer, SgdMatchesTorch) {
  const double d = max_difference(
      [](std::vector<torch::Tensor> p) {
        return std::make_unique<torch::optim::SGD>(p, torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(1e-3));
      },
      [](std::vector<torch::Tensor> p) { return std::make_unique<pt::FlatSgd>(p, pt::SgdOptions{0.05, 0.9, 1e-3}); });
  EXPECT_LT(d, 1e-5);
}

TEST(FlatOptimizer, PlainSgdAndNesterovMatchTorch) {
  EXPECT_LT(max_difference(
                [](std::vector<torch::Tensor> p) {
                  return std::make_unique<torch::optim::SGD>(p, torch::optim::SGDOptions(0.1));
                },
                [](std::vector<torch::Tensor> p) { return std::make_unique<pt::FlatSgd>(p, pt::SgdOptions{0.1, 0.0}); }),
            1e-5);
  EXPECT_LT(max_difference(
                [](std::vector<torch::Tensor> p) {
                  return std::make_unique<torch::optim::SGD>(p, torch::optim::SGDOptions(0.05).momentum(0.8).nesterov(true));
                },
                [](std::vector<torch::Tensor> p) {
                  return std::make_unique<pt::FlatSgd>(p, pt::SgdOptions{0.05, 0.8, 0.0, true});
                }),
            1e-5);
}

// training.nesterov / --nesterov (RunConfig::nesterov) reaches the optimizer the trainer makes.
TEST(FlatOptimizer, MakeOptimizerTakesNesterov) {
  auto torch_nesterov = [](std::vector<torch::Tensor> p) {
    return std::make_unique<torch::optim::SGD>(p, torch::optim::SGDOptions(0.05).momentum(0.8).nesterov(true));
  };
  EXPECT_LT(max_difference(torch_nesterov,
                           [](std::vector<torch::Tensor> p) { return pt::make_optimizer("sgd", p, 0.05, 0.8, 0.0, true); }),
            1e-5);
  // Without it, the same momentum is another update.
  EXPECT_GT(max_difference(torch_nesterov,
                           [](std::vector<torch::Tensor> p) { return pt::make_optimizer("sgd", p, 0.05, 0.8, 0.0); }),
            1e-4);
}

TEST(FlatOptimizer, AdamMatchesTorch) {
  const double d = max_difference(
      [](std::vector<torch::Tensor> p) {
        return std::make_unique<torch::optim::Adam>(p, torch::optim::AdamOptions(1e-2).weight_decay(1e-3));
      },
      [](std::vector<torch::Tensor> p) {
        return std::make_unique<pt::FlatAdam>(p, pt::AdamOptions{1e-2, 0.9, 0.999, 1e-8, 1e-3});
      });
  EXPECT_LT(d, 1e-5);
}

TEST(FlatOptimizer, ParametersLiveInTheFlatBuffer) {
  auto m = pm::make_model("sensor-cnn", {{2, 16}, false, 3});
  auto opt = pt::make_optimizer("sgd", m->trainable_parameters(), 0.1, 0.9, 0.0);
  EXPECT_EQ(opt->numel(), pm::parameter_count(*m));
  const auto* lo = opt->flat_params().data_ptr<float>();
  for (const auto& p : m->parameters()) {
    const auto* d = p.data_ptr<float>();
    EXPECT_TRUE(d >= lo && d + p.numel() <= lo + opt->numel());
    EXPECT_EQ(p.grad().data_ptr<float>() - opt->flat_grads().data_ptr<float>(), d - lo);
  }
  EXPECT_THROW(pt::make_optimizer("sgd", {}, 0.1, 0.9, 0.0), ConfigError);
  EXPECT_THROW(pt::make_optimizer("sgd", m->trainable_parameters(), 0.1, 1.0, 0.0), ConfigError);
}

TEST(FlatOptimizer, ChannelsLastWeightsKeepTheirLayoutAndMatchTorch) {
  // The trainer lays conv weights out channels-last on the CPU before the
  // optimizer takes them: the flat buffer's slices keep that layout, and
  // training still matches torch.optim on the default layout.
  torch::manual_seed(6);
  auto a = pm::make_model("image-cnn", {{2, 8, 8}, false, 3}, {8, 16, 2, 3, 0.0, 0, false});
  torch::manual_seed(6);
  auto b = pm::make_model("image-cnn", {{2, 8, 8}, false, 3}, {8, 16, 2, 3, 0.0, 0, false});
  b->encoder->set_channels_last(true);
  torch::optim::SGD ref(a->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  auto flat = pt::make_optimizer("sgd", b->trainable_parameters(), 0.05, 0.9, 0.0);
  int conv_weights = 0;
  for (const auto& p : b->encoder->named_parameters()) {
    if (p.value().dim() != 4) continue;
    ++conv_weights;
    EXPECT_TRUE(p.value().is_contiguous(at::MemoryFormat::ChannelsLast)) << p.key();
    EXPECT_TRUE(p.value().grad().is_contiguous(at::MemoryFormat::ChannelsLast)) << p.key();
  }
  EXPECT_EQ(conv_weights, 2);
  const auto x = torch::randn({6, 2, 8, 8});
  const auto y = torch::randint(0, 3, {6});
  for (int i = 0; i < 5; ++i) {
    ref.zero_grad();
    torch::cross_entropy_loss(a->forward(x), y).backward();
    ref.step();
    flat->zero_grad();
    torch::cross_entropy_loss(b->forward(x), y).backward();
    flat->step();
  }
  auto pa = a->named_parameters();
  for (const auto& p : b->named_parameters())
    EXPECT_LT((p.value() - pa[p.key()]).abs().max().item<double>(), 1e-4) << p.key();
}

// ---- training ----------------------------------------------------------------

TEST(Trainer, LearnsSeparableImages) {
  auto tracker = make_tracker();
  prun::RecordingObserver obs;
  const auto s = pt::train_run(small_config(), blobs(), *tracker, obs, nullptr, small_options());
  EXPECT_TRUE(s.status == prun::RunStatus::converged || s.status == prun::RunStatus::max_epochs) << s.message;
  EXPECT_TRUE(obs.started);
  EXPECT_TRUE(obs.ended);
  EXPECT_EQ(static_cast<int>(obs.epochs.size()), s.epochs);
  EXPECT_GE(s.best_val_metric, 0.95);
  EXPECT_GE(s.test_metric, 0.95);
  EXPECT_GE(s.best_epoch, 1);
  EXPECT_EQ(obs.epochs[s.best_epoch - 1].val_metric, s.best_val_metric);
  EXPECT_LT(obs.epochs.back().train_loss, obs.epochs.front().train_loss);
  EXPECT_TRUE(obs.epochs.front().val_task_metrics.empty());
  EXPECT_EQ(obs.environment.threads, 1);
  // 320 samples / 32 = 10 batches: progress at 4 and 8 each epoch.
  ASSERT_GE(obs.batches.size(), 2u);
  EXPECT_EQ(obs.batches[0].step, 4);
  EXPECT_EQ(obs.batches[0].steps, 10);
  EXPECT_EQ(obs.batches[0].samples, 128);
  EXPECT_GT(obs.batches[0].running_loss, 0.0);
}

TEST(Trainer, SensorCnnLearnsActivities) {
  auto tracker = make_tracker();
  prun::RecordingObserver obs;
  auto c = small_config("sensor-cnn");
  c.max_epochs = 12;
  auto o = small_options();
  o.model.width = 16;
  const auto s = pt::train_run(c, activities(), *tracker, obs, nullptr, o);
  EXPECT_NE(s.status, prun::RunStatus::diverged) << s.message;
  EXPECT_GE(s.test_metric, 0.95);
}

TEST(Trainer, MultiLabelTasks) {
  auto tracker = make_tracker();
  prun::RecordingObserver obs;
  auto o = small_options();
  o.model.head_hidden = 8;
  const auto s = pt::train_run(small_config(), multitask(3), *tracker, obs, nullptr, o);
  EXPECT_NE(s.status, prun::RunStatus::diverged) << s.message;
  ASSERT_EQ(s.test_task_metrics.size(), 3u);
  double mean = 0;
  for (double m : s.test_task_metrics) mean += m / 3;
  EXPECT_NEAR(mean, s.test_metric, 1e-9);
  EXPECT_GE(s.test_metric, 0.9);
  ASSERT_EQ(obs.epochs.back().val_task_metrics.size(), 3u);
}

TEST(Trainer, SgdLearnsToo) {
  auto tracker = make_tracker();
  prun::RecordingObserver obs;
  auto c = small_config();
  c.optimizer = "sgd";
  c.learning_rate = 0.05;
  c.weight_decay = 1e-4;
  const auto s = pt::train_run(c, blobs(), *tracker, obs, nullptr, small_options());
  EXPECT_GE(s.test_metric, 0.95) << s.message;
}

TEST(Trainer, EarlyStoppingBeforeMaxEpochs) {
  auto tracker = make_tracker();
  prun::RecordingObserver obs;
  auto c = small_config();
  c.max_epochs = 20;
  c.patience = 2;
  c.min_delta = 0.5;  // no epoch after the first can gain that much
  const auto s = pt::train_run(c, blobs(), *tracker, obs, nullptr, small_options());
  EXPECT_EQ(s.status, prun::RunStatus::converged);
  EXPECT_EQ(s.epochs, 3);
  EXPECT_EQ(obs.epochs.size(), 3u);
  EXPECT_FALSE(s.message.empty());
}

TEST(Trainer, MaxEpochsWithoutPatience) {
  auto tracker = make_tracker();
  prun::RecordingObserver obs;
  auto c = small_config();
  c.max_epochs = 2;
  c.patience = 0;
  const auto s = pt::train_run(c, blobs(), *tracker, obs, nullptr, small_options());
  EXPECT_EQ(s.status, prun::RunStatus::max_epochs);
  EXPECT_EQ(s.epochs, 2);
}

TEST(Trainer, TargetMetricGivesEnergyToTarget) {
  auto tracker = make_tracker();
  prun::RecordingObserver obs;
  auto c = small_config();
  c.target_metric = 0.9;
  const auto s = pt::train_run(c, blobs(), *tracker, obs, nullptr, small_options());
  ASSERT_TRUE(s.energy_to_target_j.has_value());
  ASSERT_TRUE(s.time_to_target_s.has_value());
  // The cumulative energy up to the first epoch that reached the target.
  int first = 0;
  double energy = 0, time = 0;
  for (const auto& e : obs.epochs) {
    energy += e.energy_j;
    time += e.duration_s;
    if (e.val_metric >= 0.9) {
      first = e.epoch;
      break;
    }
  }
  ASSERT_GT(first, 0);
  EXPECT_NEAR(*s.energy_to_target_j, energy, 1e-9);
  EXPECT_NEAR(*s.time_to_target_s, time, 1e-9);
  EXPECT_GT(*s.energy_to_target_j, 0.0);
  EXPECT_LE(*s.energy_to_target_j, s.energy_j + 1e-9);

  prun::RecordingObserver obs2;
  c.target_metric = 1.5;  // unreachable
  c.max_epochs = 2;
  const auto s2 = pt::train_run(c, blobs(), *tracker, obs2, nullptr, small_options());
  EXPECT_FALSE(s2.energy_to_target_j.has_value());
  EXPECT_FALSE(s2.time_to_target_s.has_value());
}

TEST(Trainer, HugeLearningRateDiverges) {
  auto tracker = make_tracker();
  prun::RecordingObserver obs;
  auto c = small_config();
  c.optimizer = "sgd";
  c.learning_rate = 1e5;  // the largest rates are refused up front (run::kMaxLearningRate)
  prun::RunSummary s;
  ASSERT_NO_THROW(s = pt::train_run(c, blobs(), *tracker, obs, nullptr, small_options()));
  EXPECT_EQ(s.status, prun::RunStatus::diverged);
  EXPECT_NE(s.message.find("diverged"), std::string::npos) << s.message;
  EXPECT_TRUE(obs.ended);
  EXPECT_EQ(obs.summary.status, prun::RunStatus::diverged);
  EXPECT_GT(s.duration_s, 0.0);  // the energy spent before stopping is counted
  // Every window was closed.
  EXPECT_NO_THROW(tracker->begin("epoch-1"));
  tracker->end("epoch-1");
}

TEST(Trainer, StopFlagInterruptsMidEpoch) {
  auto tracker = make_tracker();
  std::atomic<bool> flag{false};
  Stopper obs(flag, /*after_batches=*/1, 0);
  const auto s = pt::train_run(small_config(), blobs(), *tracker, obs, &flag, small_options());
  EXPECT_EQ(s.status, prun::RunStatus::interrupted);
  EXPECT_TRUE(obs.epochs.empty());  // the epoch in flight is not reported
  EXPECT_EQ(s.epochs, 0);
  EXPECT_TRUE(obs.ended);
  EXPECT_TRUE(std::isnan(s.test_metric));
  EXPECT_NO_THROW(tracker->begin("train-1"));
  tracker->end("train-1");
}

TEST(Trainer, StopFlagBetweenEpochs) {
  auto tracker = make_tracker();
  std::atomic<bool> flag{false};
  Stopper obs(flag, 0, /*after_epochs=*/2);
  auto c = small_config();
  c.patience = 0;
  const auto s = pt::train_run(c, blobs(), *tracker, obs, &flag, small_options());
  EXPECT_EQ(s.status, prun::RunStatus::interrupted);
  EXPECT_EQ(obs.epochs.size(), 2u);
  EXPECT_EQ(s.epochs, 2);
}

TEST(Trainer, EpochRecordsNestWindows) {
  auto tracker = make_tracker();
  prun::RecordingObserver obs;
  auto c = small_config();
  c.max_epochs = 3;
  c.patience = 0;
  const auto s = pt::train_run(c, blobs(), *tracker, obs, nullptr, small_options());
  ASSERT_EQ(obs.epochs.size(), 3u);
  double total = 0, time = 0;
  for (const auto& e : obs.epochs) {
    EXPECT_GT(e.duration_s, 0.0);
    EXPECT_GT(e.train_duration_s, 0.0);
    EXPECT_GT(e.eval_duration_s, 0.0);
    EXPECT_LE(e.train_duration_s + e.eval_duration_s, e.duration_s + 1e-9);
    EXPECT_GT(e.energy_j, 0.0);
    EXPECT_GT(e.train_energy_j, 0.0);
    EXPECT_GT(e.eval_energy_j, 0.0);
    EXPECT_LE(e.train_energy_j, e.energy_j + 1e-9);
    EXPECT_LE(e.eval_energy_j, e.energy_j + 1e-9);
    EXPECT_LE(e.train_energy_j + e.eval_energy_j, e.energy_j + 1e-9);
    EXPECT_EQ(e.method, "counter+sampled");
    ASSERT_EQ(e.channels.size(), 2u);
    EXPECT_EQ(e.channels[0].channel_id, "fake:cpu");
    EXPECT_EQ(e.channels[1].channel_id, "fake:dram");
    EXPECT_NEAR(e.channels[0].energy_j + e.channels[1].energy_j, e.energy_j, 1e-9);
    EXPECT_NEAR(e.channels[0].avg_power_w, 50.0, 5.0);
    EXPECT_GT(e.samples_per_s, 0.0);
    EXPECT_TRUE(std::isfinite(e.val_loss));
    total += e.energy_j;
    time += e.duration_s;
  }
  EXPECT_NEAR(s.energy_j, total, 1e-9);
  EXPECT_NEAR(s.duration_s, time, 1e-9);
  EXPECT_EQ(s.method, "counter+sampled");
}

TEST(Trainer, WindowPrefix) {
  auto tracker = make_tracker();
  prun::RecordingObserver obs;
  auto c = small_config();
  c.max_epochs = 1;
  auto o = small_options();
  o.window_prefix = "a/";
  tracker->begin("epoch-1");  // someone else's window of the same base name
  const auto s = pt::train_run(c, blobs(), *tracker, obs, nullptr, o);
  tracker->end("epoch-1");
  EXPECT_EQ(s.epochs, 1);
}

TEST(Trainer, SameSeedSameRun) {
  auto tracker = make_tracker();
  auto c = small_config();
  c.max_epochs = 3;
  c.patience = 0;
  auto o = small_options();
  o.model.dropout = 0.3;  // exercises the global generator too
  const auto ds = blobs();
  prun::RecordingObserver a, b, d;
  pt::Trainer ta(c, ds, o);
  ta.run(*tracker, a);
  pt::Trainer tb(c, ds, o);
  tb.run(*tracker, b);
  ASSERT_EQ(a.epochs.size(), b.epochs.size());
  for (std::size_t i = 0; i < a.epochs.size(); ++i) {
    EXPECT_EQ(a.epochs[i].train_loss, b.epochs[i].train_loss);
    EXPECT_EQ(a.epochs[i].val_loss, b.epochs[i].val_loss);
    EXPECT_EQ(a.epochs[i].val_metric, b.epochs[i].val_metric);
  }
  const auto pa = ta.model()->parameters();
  const auto pb = tb.model()->parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));

  c.seed = 2;
  pt::Trainer td(c, ds, o);
  td.run(*tracker, d);
  EXPECT_NE(a.epochs[0].train_loss, d.epochs[0].train_loss);
}

TEST(Trainer, CheckpointThenFrozenEncoder) {
  powertrain::testing::TempDir dir;
  auto tracker = make_tracker();
  const auto ds = blobs();
  auto c = small_config();
  c.max_epochs = 3;
  c.checkpoint = (dir / "pre/run.pt").string();
  prun::RecordingObserver first;
  pt::Trainer pre(c, ds, small_options());
  const auto s1 = pre.run(*tracker, first);
  ASSERT_NE(s1.status, prun::RunStatus::failed) << s1.message;
  ASSERT_TRUE(std::filesystem::exists(dir / "pre/run.pt"));
  ASSERT_TRUE(std::filesystem::exists(dir / "pre/run.encoder.pt"));

  // The saved model is the best epoch's: evaluating it gives the test metric.
  auto reloaded = pm::make_model("image-cnn", pt::input_spec(ds), small_options().model);
  pm::load_model(*reloaded, dir / "pre/run.pt");
  for (const auto& p : reloaded->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), pre.model()->named_parameters()[p.key()])) << p.key();
  EXPECT_NEAR(pre.evaluate(ds.test).metric, s1.test_metric, 1e-12);

  // Reuse the encoder frozen, new heads trained with SGD.
  auto c2 = small_config();
  c2.max_epochs = 2;
  c2.optimizer = "sgd";
  c2.learning_rate = 0.05;
  c2.seed = 9;
  c2.init_encoder = (dir / "pre/run.encoder.pt").string();
  c2.freeze_encoder = true;
  pt::Trainer fine(c2, ds, small_options());
  EXPECT_TRUE(fine.model()->encoder_frozen());
  prun::RecordingObserver second;
  const auto s2 = fine.run(*tracker, second);
  EXPECT_NE(s2.status, prun::RunStatus::failed) << s2.message;
  const auto enc_after = fine.model()->encoder->named_parameters();
  for (const auto& p : reloaded->encoder->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), enc_after[p.key()])) << p.key();
  const auto buf_after = fine.model()->encoder->named_buffers();
  for (const auto& b : reloaded->encoder->named_buffers())
    EXPECT_TRUE(torch::equal(b.value(), buf_after[b.key()])) << b.key();
  EXPECT_GE(s2.test_metric, 0.9);
}

TEST(Trainer, TorchErrorFailsTheRun) {
  auto tracker = make_tracker();
  auto ds = blobs();
  ds.train.y[3] = 7;  // out of range for 2 classes: cross entropy throws
  prun::RecordingObserver obs;
  prun::RunSummary s;
  ASSERT_NO_THROW(s = pt::train_run(small_config(), ds, *tracker, obs, nullptr, small_options()));
  EXPECT_EQ(s.status, prun::RunStatus::failed);
  EXPECT_FALSE(s.message.empty());
  EXPECT_TRUE(obs.ended);
  EXPECT_NO_THROW(tracker->begin("epoch-1"));
  tracker->end("epoch-1");
}

// ---- acceptance (slow: minutes on 2 cores) -----------------------------------
// Run with --gtest_also_run_disabled_tests --gtest_filter='*FashionMnist*'
// (POWERTRAIN_TEST_THREADS=n to pin the thread count).

namespace {
class EpochPrinter : public prun::RecordingObserver {
 public:
  void on_epoch(const prun::EpochRecord& e) override {
    prun::RecordingObserver::on_epoch(e);
    std::fprintf(stderr, "epoch %d: %.1f s, %.0f samples/s, train loss %.4f, val loss %.4f, val acc %.4f\n", e.epoch,
                 e.duration_s, e.samples_per_s, e.train_loss, e.val_loss, e.val_metric);
  }
};
}  // namespace

TEST(Acceptance, DISABLED_FashionMnistDefaultModelReaches90Percent) {
  pd::DatasetOptions d;
  d.name = "fashion-mnist";
  const auto ds = pd::load_dataset(d);
  prun::RunConfig c;
  c.model = "image-cnn";
  c.optimizer = "adam";
  c.learning_rate = 1e-3;
  c.batch_size = 128;
  c.max_epochs = 5;  // 3 epochs gave 90.3 % test (91.4 % val) on a loaded 2-core machine
  c.patience = 2;
  c.threads = std::getenv("POWERTRAIN_TEST_THREADS") ? std::atoi(std::getenv("POWERTRAIN_TEST_THREADS")) : 0;
  auto tracker = make_tracker();
  EpochPrinter obs;
  const auto s = pt::train_run(c, ds, *tracker, obs);
  std::fprintf(stderr, "test accuracy %.4f after %d epochs (%.0f s)\n", s.test_metric, s.epochs, s.duration_s);
  EXPECT_GE(s.test_metric, 0.90);
}

TEST(Trainer, SensorCnnLearnsTheSyntheticSensorsDataset) {
  pd::DatasetOptions d;
  d.name = "synthetic-sensors";
  d.train_samples = 1200;
  d.eval_samples = 300;
  d.seed = 4;
  const auto ds = pd::load_dataset(d);
  auto c = small_config("sensor-cnn");
  c.max_epochs = 15;
  auto o = small_options();
  o.model.width = 16;
  o.progress_every = 50;
  auto tracker = make_tracker();
  prun::RecordingObserver obs;
  const auto s = pt::train_run(c, ds, *tracker, obs, nullptr, o);
  std::fprintf(stderr, "synthetic-sensors: test %.4f after %d epochs, status %s\n", s.test_metric, s.epochs,
               std::string(prun::to_string(s.status)).c_str());
  EXPECT_GE(s.test_metric, 0.95);
}
