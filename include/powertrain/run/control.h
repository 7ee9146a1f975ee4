#pragma once
// What a workload drives while it trains: the epoch and phase windows on the
// tracker, the convergence rule, the observers, and the run's summary. One
// object per run; the built-in trainer and the user's own program (through
// the protocol of docs/external.md) both report through it, so their epochs
// are measured, judged and recorded the same way.
//
//   RunControl control(config, tracker, observer, &stop_flag);
//   control.start(environment);
//   for (int e = 1; ; ++e) {
//     if (control.stop_requested()) { control.interrupt("..."); break; }
//     control.begin_epoch(e);   ... train ...
//     control.begin_eval();     ... validate ...
//     auto v = control.end_epoch({.val_metric = m, .val_loss = l});
//     if (v.stop) break;
//   }
//   control.set_test(test_metric);
//   RunSummary s = control.finish();
//
// A run that continues a paused one (a segment of a setup, RunConfig::
// resume_from) calls resume(prior epochs) after start() and begins with epoch
// first_epoch(); its epochs, best epoch and target count in the numbering of
// the whole setup, its energy and time are its own.
//
// Window names: "<prefix>epoch-N" with nested "<prefix>train-N" and
// "<prefix>eval-N". Every window it opened is closed when it is destroyed.
#include <atomic>
#include <functional>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/energy/tracker.h"
#include "powertrain/run/convergence.h"
#include "powertrain/run/observer.h"
#include "powertrain/run/records.h"

namespace powertrain::run {

/// What a workload measured in one epoch.
struct EpochMetrics {
  double val_metric = std::nan("");  ///< higher is better
  double val_loss = std::nan("");    ///< NaN: not reported
  double train_loss = std::nan("");  ///< NaN: not reported
  std::optional<std::int64_t> samples;  ///< training samples of the epoch (throughput)
  std::vector<double> val_task_metrics;
};

class RunControl {
 public:
  RunControl(RunConfig config, energy::Tracker& tracker, RunObserver& observer,
             const std::atomic<bool>* stop = nullptr, LossLimits limits = {}, std::string window_prefix = {});
  ~RunControl();
  RunControl(const RunControl&) = delete;
  RunControl& operator=(const RunControl&) = delete;

  const RunConfig& config() const { return config_; }
  /// The run's id in the results store (0: not stored), for the workload.
  std::int64_t run_id() const { return run_id_; }
  void set_run_id(std::int64_t id) { run_id_ = id; }
  energy::Tracker& tracker() { return tracker_; }
  /// The stop flag turned true (Ctrl-C, SIGTERM, a study stopping), or the
  /// second flag given to also_stop_on (e.g. the run's claim was lost).
  bool stop_requested() const {
    return (stop_ && stop_->load(std::memory_order_relaxed)) || (also_ && also_->load(std::memory_order_relaxed));
  }
  void also_stop_on(const std::atomic<bool>* flag) { also_ = flag; }
  /// Called with each finished epoch's record before the observers see it
  /// (the run session fills EpochRecord::forecast there).
  void annotate_epochs(std::function<void(EpochRecord&)> annotate) { annotate_ = std::move(annotate); }
  /// Asked after each epoch the convergence rule lets go on: a reason ends
  /// the run stopped (RunStatus::stopped) after it, e.g. a search's setup
  /// whose predicted energy to the target is too high.
  void stop_when(std::function<std::optional<std::string>(const EpochRecord&)> rule) { stop_rule_ = std::move(rule); }
  /// A secondary node of a run over several nodes: its epochs are measured
  /// and recorded, but its own rule never ends the run (no stop, no
  /// divergence from its losses): the primary node decides for every rank.
  void follow_primary() { follower_ = true; }
  bool follower() const { return follower_; }

  /// Once, before the first epoch: tells the observers.
  void start(const Environment& environment);
  /// After start(), before the first begin_epoch, when the run continues a
  /// paused one: `prior` are the epochs 1..k its earlier segments recorded.
  /// Replays their validation metric and loss through the convergence rule
  /// (patience, best epoch and target carry over; the first finite training
  /// loss becomes the reference of the growth limit) without telling the
  /// observers, so that the next epoch is k + 1 and summary().epochs,
  /// best_epoch and best_val_metric count in the whole run's numbering. A
  /// target reached in `prior` is not claimed again (energy_to_target_j stays
  /// unset: it belongs to an earlier segment). When the replay already stops
  /// the run (patience spent, max_epochs reached), the status says so and the
  /// workload trains nothing. Throws WorkloadError for epochs not numbered
  /// 1..k in order, or when an epoch has begun already.
  void resume(const std::vector<EpochRecord>& prior);
  /// The number of the run's first epoch: 1, or 1 + the epochs given to resume().
  int first_epoch() const { return first_epoch_; }
  /// Opens epoch N (N = the last epoch + 1) and its training phase. Throws
  /// WorkloadError for an epoch out of order or while another is open.
  void begin_epoch(int epoch);
  /// Ends the training phase and opens the evaluation phase of the open epoch.
  void begin_eval();
  /// Progress inside the training phase (live display). Returns the reason
  /// when the running loss shows divergence, which the workload then ends with
  /// diverge().
  std::optional<std::string> batch(const BatchProgress& progress);
  /// Closes the open epoch, records it (observers: on_epoch) and applies the
  /// convergence rule; a stopping verdict sets the summary's status.
  EpochVerdict end_epoch(const EpochMetrics& metrics);
  /// Training loss check outside batch() (e.g. an epoch's mean loss); as batch().
  std::optional<std::string> check_loss(double loss) { return rule_.check_loss(loss); }

  /// Ends the run early. The open epoch (if any) is closed and counted in the
  /// run's energy and time, but not recorded as an epoch.
  void interrupt(std::string message);
  void diverge(std::string message);
  void fail(std::string message);
  /// The run reached its verdict but what must outlast it could not be kept
  /// (a segment's state on a full disk): interrupted, to be run again, not
  /// the setup's failure. Overrides a verdict, as fail() does.
  void lose(std::string message);
  /// The workload ended the run on its own before max_epochs without a
  /// verdict (an external program's own epoch limit): the run is stopped
  /// with `message`, not counted as having reached max_epochs.
  void end_early(std::string message);

  /// The final model's test metric (NaN: none).
  void set_test(double metric, std::vector<double> task_metrics = {});

  /// Closes what is open, sets max_epochs if no other end was set (every
  /// epoch ran), tells the observers (on_end) and returns the summary. Once.
  RunSummary finish();

  bool epoch_open() const { return epoch_ > 0 && open_epoch_; }
  /// The last epoch finished (counting resume()'s prior epochs).
  int epochs_done() const { return summary_.epochs; }
  const RunSummary& summary() const { return summary_; }
  /// Current status (running until a verdict or an end).
  RunStatus status() const { return summary_.status; }

 private:
  void end_open_epoch();  // closes windows of a cut-short epoch and counts them
  void count(const energy::WindowResult& w);
  void end_with(RunStatus status, std::string message);

  RunConfig config_;
  energy::Tracker& tracker_;
  RunObserver& observer_;
  std::function<void(EpochRecord&)> annotate_;
  std::function<std::optional<std::string>(const EpochRecord&)> stop_rule_;
  const std::atomic<bool>* stop_;
  const std::atomic<bool>* also_ = nullptr;
  ConvergenceRule rule_;
  std::string prefix_;
  RunSummary summary_;
  int epoch_ = 0;          // the epoch last begun
  int first_epoch_ = 1;    // after resume(): 1 + the prior epochs
  int counted_ = 0;        // epoch windows counted into the summary
  bool open_epoch_ = false;
  bool in_eval_ = false;
  std::optional<energy::WindowResult> train_result_;
  bool finished_ = false;
  bool follower_ = false;
  std::int64_t run_id_ = 0;
};

}  // namespace powertrain::run
