#pragma once
// Observers that the command line and the studies attach to a run: one that
// writes the results store, one that prints progress, and a fan-out.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "powertrain/energy/tracker.h"
#include "powertrain/store/store.h"
#include "powertrain/train/observer.h"

namespace powertrain::train {

/// Writes every finished epoch to the store, one transaction each. The run's
/// summary is written by the caller (Store::finish_run or Store::complete_trial),
/// which knows whether the run belongs to a trial.
class StoreObserver final : public RunObserver {
 public:
  StoreObserver(store::Store& store, std::int64_t run_id) : store_(store), run_id_(run_id) {}
  void on_epoch(const EpochRecord& epoch) override { store_.add_epoch(run_id_, epoch); }

 private:
  store::Store& store_;
  std::int64_t run_id_;
};

/// Progress for people. On a terminal: a live line (progress within the epoch,
/// loss, joules and watts so far) redrawn in place, and a line per finished
/// epoch. Otherwise: plain log lines, one per epoch and one at the end.
class ProgressPrinter final : public RunObserver {
 public:
  /// `label` starts every line, e.g. "bs=64 lr=0.01 seed=0".
  ProgressPrinter(std::FILE* out, bool terminal, std::string label);
  void on_start(const RunConfig& config, const Environment& environment) override;
  void on_batch(const BatchProgress& progress) override;
  void on_epoch(const EpochRecord& epoch) override;
  void on_end(const RunSummary& summary) override;

 private:
  std::FILE* out_;
  bool terminal_;
  std::string label_;
  int max_epochs_ = 0;
  double energy_j_ = 0.0;
  bool live_line_ = false;
};

/// Calls several observers in order.
class FanoutObserver final : public RunObserver {
 public:
  explicit FanoutObserver(std::vector<RunObserver*> observers) : observers_(std::move(observers)) {}
  void on_start(const RunConfig& c, const Environment& e) override {
    for (auto* o : observers_) o->on_start(c, e);
  }
  void on_batch(const BatchProgress& p) override {
    for (auto* o : observers_) o->on_batch(p);
  }
  void on_epoch(const EpochRecord& e) override {
    for (auto* o : observers_) o->on_epoch(e);
  }
  void on_end(const RunSummary& s) override {
    for (auto* o : observers_) o->on_end(s);
  }

 private:
  std::vector<RunObserver*> observers_;
};

/// Stores the part of the tracker's timeline between start_ns and end_ns as the
/// run's power timeline (times relative to start_ns).
void save_timeline(store::Store& store, std::int64_t run_id, const energy::Tracker& tracker, std::int64_t start_ns,
                   std::int64_t end_ns);

}  // namespace powertrain::train
