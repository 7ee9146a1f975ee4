#pragma once
// Trains one model on one dataset, epoch by epoch, inside measurement windows.
//
//   Trainer trainer(config, dataset);          // validates, seeds, builds model + optimizer
//   session.run(config, trainer);              // a workload of a measured run (session/session.h)
//   RunSummary s = trainer.run(tracker, observer, &stop_flag);  // or on a caller's tracker
//
// The built-in workload: it reports each epoch to a run::RunControl, which
// opens the windows "epoch-N", "train-N" and "eval-N" and applies the
// convergence rule (run/convergence.h: early stopping, max_epochs,
// divergence). The stop flag ends it interrupted, a torch error failed. The
// best model by validation metric is restored at the end, evaluated on the
// test split and written to config.checkpoint (plus its encoder to
// run::encoder_checkpoint_path()).
//
// Segments (a run paused and continued, e.g. by successive halving): a run
// that ends by reaching max_epochs writes its state to config.save_state
// (weights, optimizer state, random generators, the best epoch's weights);
// a later Trainer with config.resume_from = that file, driven by a RunControl
// that was given the earlier epochs (RunControl::resume), trains from the
// next epoch on exactly as the whole run would have.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "powertrain/data/dataset.h"
#include "powertrain/energy/tracker.h"
#include "powertrain/models/model.h"
#include "powertrain/train/device.h"
#include "powertrain/run/observer.h"
#include "powertrain/run/workload.h"
#include "powertrain/train/optimizer.h"
#include "powertrain/run/records.h"

namespace powertrain::train {

/// Knobs of the trainer that do not define the experiment (RunConfig does).
struct TrainOptions {
  /// Architecture of the model config.model names.
  models::ModelOptions model;
  /// On the CPU, run the encoder channels-last (see EncoderImpl::set_channels_last):
  /// 1.3 to 1.7 times the throughput of the default layout, the same results.
  bool channels_last_on_cpu = true;
  /// Batch size of validation and test passes; 0: max(batch_size, 1024).
  std::int64_t eval_batch_size = 0;
  /// Training batches between on_batch calls. Each call reads the running loss
  /// (one device synchronization on a GPU) and checks it for divergence.
  int progress_every = 50;
  /// Divergence: the mean training loss is NaN or infinite, exceeds max_loss,
  /// or exceeds max_loss_growth times the first loss reading of the run (the
  /// mean over its first progress_every batches, or its first epoch if shorter).
  run::LossLimits loss_limits;
  /// Prefix of the window names, so that several trainers can share a tracker.
  std::string window_prefix;
};

/// The model's input spec for a dataset: sample shape from train.x, classes
/// from labels (or the largest label + 1), tasks from y's second dimension.
models::InputSpec input_spec(const data::Dataset& dataset);

/// Sets LibTorch's intra-op threads (0: every CPU this process may use) and,
/// once per process, its inter-op threads to the same number. Returns the
/// thread count in effect.
int configure_threads(int threads);


class Trainer final : public run::Workload {
 public:
  /// Validates the config, sets threads and seed, builds the model for the
  /// dataset (loading config.init_encoder and freezing the encoder if asked),
  /// moves it and the dataset's tensors to the device once, and builds the
  /// optimizer. The dataset is used as given: config.subset and config.tasks
  /// are applied by the data loader, not here. Throws ConfigError for invalid
  /// settings, DataError for an unusable dataset (no training or validation
  /// samples, x and y of different lengths), IoError for an unreadable
  /// init_encoder or resume_from, ConfigError for a resume_from state that
  /// does not fit this model or optimizer.
  Trainer(run::RunConfig config, const data::Dataset& dataset, TrainOptions options = {});
  ~Trainer() override;
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Trains until a stop condition; see the file comment. `stop` (may be null)
  /// is polled between batches. Torch errors during training end the run with
  /// status failed; exceptions from the observer or the tracker propagate
  /// (after every window this run opened has been closed). Call once per
  /// Trainer: a second call would continue from the first one's state. A
  /// Trainer with config.resume_from needs run(control) on a RunControl that
  /// was given the earlier epochs (RunControl::resume).
  run::RunSummary run(energy::Tracker& tracker, run::RunObserver& observer, const std::atomic<bool>* stop = nullptr);

  // run::Workload. Trains from control.first_epoch(); throws WorkloadError
  // when that does not follow the epochs of the resume_from state (or the
  // control continues a run without one), before anything is trained.
  void run(run::RunControl& control) override;
  int threads() const override { return threads_; }
  std::string framework() const override;  ///< the LibTorch version, "2.15.0"
  run::LossLimits loss_limits() const override { return options_.loss_limits; }

  /// The model (after run(): with the best epoch's weights restored).
  models::Model& model() { return model_; }
  const run::RunConfig& config() const { return config_; }
  const torch::Device& device() const { return device_; }

  /// Mean loss and metric of the current model over a split (inference mode;
  /// the split is copied to the device if it is not there). Throws DataError
  /// for an empty split.
  struct Evaluation {
    double loss = 0.0;
    double metric = 0.0;               ///< accuracy, or mean accuracy over tasks
    std::vector<double> task_metrics;  ///< multi label: accuracy of each task
  };
  Evaluation evaluate(const data::Split& split);

 private:
  struct State;
  // The run's state after `epochs` epochs (RunConfig::save_state); IoError
  // when it cannot be written.
  void save_state(const std::filesystem::path& path, int epochs);
  // Reads a state save_state wrote (RunConfig::resume_from) into the model,
  // the optimizer and State.
  void load_state(const std::filesystem::path& path);
  run::RunConfig config_;
  TrainOptions options_;
  torch::Device device_{torch::kCPU};
  int threads_ = 1;
  models::Model model_{nullptr};
  std::unique_ptr<State> state_;
};

/// Trainer(config, dataset, options).run(tracker, observer, stop).
run::RunSummary train_run(const run::RunConfig& config, const data::Dataset& dataset, energy::Tracker& tracker,
                          run::RunObserver& observer, const std::atomic<bool>* stop = nullptr,
                     const TrainOptions& options = {});

}  // namespace powertrain::train
