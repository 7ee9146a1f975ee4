#pragma once
// The measured run: one object that every command uses to run a workload
// (the built-in trainer or the user's own program) epoch by epoch under the
// energy meters, apply the convergence rule, write the store and honour stop
// requests. `powertrain train`, the study runner and `measure`'s epoch
// breakdown all go through it.
//
//   session::SessionOptions o;  o.stop = &stop_flag;  o.label = "run";
//   session::RunSession s(store, o);
//   auto r = s.run(config, workload);                 // powertrain train
//   auto r = s.run_trial(trial_id, config, workload); // one trial of a study
//
// Failure handling is the same for both: an exception from the workload (a
// crash of the user's program, a torch error, a protocol violation) ends the
// run failed with its message, and the energy and epochs measured so far are
// kept; a StoreError propagates (the store cannot record anything more).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/energy/quiet.h"
#include "powertrain/energy/tracker.h"
#include "powertrain/run/observer.h"
#include "powertrain/run/workload.h"
#include "powertrain/store/store.h"

namespace powertrain::session {

/// Writes every finished epoch to the store, one transaction each.
class StoreObserver final : public run::RunObserver {
 public:
  StoreObserver(store::Runs& runs, std::int64_t run_id) : runs_(runs), run_id_(run_id) {}
  void on_epoch(const run::EpochRecord& epoch) override { runs_.add_epoch(run_id_, epoch); }

 private:
  store::Runs& runs_;
  std::int64_t run_id_;
};

/// Stores the part of the tracker's timeline between start_ns and end_ns as the
/// run's power timeline (times relative to start_ns).
void save_timeline(store::Runs& runs, std::int64_t run_id, const energy::Tracker& tracker, std::int64_t start_ns,
                   std::int64_t end_ns);

struct SessionOptions {
  /// Energy sampling interval (10 ms to 60 s).
  std::chrono::milliseconds interval{100};
  /// Energy sources to skip (energy::ProbeOptions::disabled), e.g. {"nvml"}.
  std::vector<std::string> disabled_sources;
  /// Polled by the workload; when it turns true the run ends interrupted.
  const std::atomic<bool>* stop = nullptr;
  /// Progress lines; null: quiet.
  std::FILE* log = stderr;
  bool terminal = false;  ///< a live progress line on `log`
  std::string label;  ///< starts every progress line; empty: "run <id>"
  /// Called once the run is in the store, before the workload starts.
  std::function<void(std::int64_t run_id)> on_run_start;
  /// Further observers of the run (e.g. tests, a JSON stream), after the store's.
  std::vector<run::RunObserver*> observers;
  /// Trials: who claims them (store::Store::this_process_owner() when empty)
  /// and for how long; the claim is renewed every lease_s / 3 while the trial
  /// runs, on a connection of its own.
  std::string owner;
  double lease_s = 30.0;
  /// Seconds the run waited for a quiet machine before it was started
  /// (wait_for_quiet_machine), recorded with it; unset: it did not wait.
  std::optional<double> quiet_wait_s;
  /// Recorded as the run's Environment::placement (a Slurm task's node).
  std::string placement;
  /// A run that continues a paused one (RunConfig::resume_from): the epochs
  /// 1..k its earlier segments recorded (from the store). They go to
  /// run::RunControl::resume, so the workload begins with epoch k + 1 and the
  /// convergence rule judges the whole curve, and to the forecaster. Empty: a
  /// run from epoch 1.
  std::vector<run::EpochRecord> prior_epochs;
  /// Put before the run's message in the store (e.g. why a continued segment
  /// started again from epoch 1); empty: none.
  std::string note;
  /// A secondary node of a run over several nodes (run::RunControl::
  /// follow_primary): epochs recorded, never ended by this node's rule.
  bool follow_primary = false;
  /// run::RunControl::stop_when: asked after every epoch (a search's Zeus rule).
  std::function<std::optional<std::string>(const run::EpochRecord&)> stop_rule;
};

/// Waits up to rule.max_wait_s for other processes to leave the CPUs
/// (energy::wait_for_quiet over the machine's CPU time less this process
/// tree's), saying on `log` when it waits and when it gives up. Returns the
/// seconds waited (0 when it cannot read the CPU time: it says so and goes on).
double wait_for_quiet_machine(const energy::QuietRule& rule, std::FILE* log, const std::atomic<bool>* stop);

struct RunOutcome {
  bool ran = false;        ///< false: the trial was done or another live process held it
  std::int64_t run_id = 0;
  run::RunSummary summary;
  /// Trials: the trial still was ours at the end, so its status is this run's.
  /// False when another process took it over meanwhile (a lease that ran out
  /// while this process was stalled): the run then ended interrupted.
  bool kept_trial = true;
};

class RunSession {
 public:
  RunSession(store::Store& store, SessionOptions options);

  /// A run outside any study (store::Store::begin_run ... finish_run).
  RunOutcome run(const run::RunConfig& config, run::Workload& workload);
  /// One trial of a study, under a claim (Store::claim_trial ...
  /// complete_claimed_trial): any number of processes may run one study; a
  /// trial another live process holds, or one that is done, is not run
  /// (ran = false). The workload is not started then.
  RunOutcome run_trial(std::int64_t trial_id, const run::RunConfig& config, run::Workload& workload);

 private:
  // begin: the run id, or 0 when there is nothing to run. lost: set (from
  // another thread) when the claim is lost.
  RunOutcome measure(const run::RunConfig& config, run::Workload& workload,
                     const std::function<std::int64_t(const run::Environment&)>& begin,
                     const std::function<void(RunOutcome&)>& end, std::int64_t trial_id);
  store::Store& store_;
  SessionOptions options_;
};

}  // namespace powertrain::session
