#pragma once
// How a run reports: the trainer calls an observer; the CLI's observers write
// the store and print progress. The trainer knows neither.
#include <cstdint>
#include <vector>

#include "powertrain/run/records.h"

namespace powertrain::run {

/// Progress inside an epoch's training phase.
struct BatchProgress {
  int epoch = 0;                ///< 1-based
  std::int64_t step = 0;        ///< batches done in this epoch
  std::int64_t steps = 0;       ///< batches per epoch
  std::int64_t samples = 0;     ///< training samples done in this epoch
  double running_loss = 0.0;    ///< mean training loss over this epoch so far
};

/// Receives a run's records as they happen. Every method has an empty default.
/// Exceptions thrown by an observer end the run and reach the caller of the trainer.
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  /// Once, before the first epoch.
  virtual void on_start(const RunConfig& /*config*/, const Environment& /*environment*/) {}
  /// Every `TrainOptions::progress_every` training batches (outside epoch ends).
  virtual void on_batch(const BatchProgress& /*progress*/) {}
  /// After each finished epoch (an epoch cut short by an interrupt or divergence is not reported).
  virtual void on_epoch(const EpochRecord& /*epoch*/) {}
  /// Once, with the final summary (also for diverged, interrupted and failed runs).
  virtual void on_end(const RunSummary& /*summary*/) {}
};

/// Keeps everything it is told (tests, in-process studies).
class RecordingObserver : public RunObserver {
 public:
  void on_start(const RunConfig& config, const Environment& environment) override {
    this->config = config;
    this->environment = environment;
    started = true;
  }
  void on_batch(const BatchProgress& progress) override { batches.push_back(progress); }
  void on_epoch(const EpochRecord& epoch) override { epochs.push_back(epoch); }
  void on_end(const RunSummary& summary) override {
    this->summary = summary;
    ended = true;
  }

  bool started = false, ended = false;
  RunConfig config;
  Environment environment;
  std::vector<BatchProgress> batches;
  std::vector<EpochRecord> epochs;
  RunSummary summary;
};

}  // namespace powertrain::run
