#pragma once
// Observers for people and plumbing: progress lines, and a fan-out to several
// observers. (The one that writes the store is session::StoreObserver.)
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "powertrain/run/observer.h"

namespace powertrain::run {

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

}  // namespace powertrain::run
