#pragma once
// The claims aggregate: which process runs a trial. A trial is claimed
// (start_trial, or claim_trial with an owner and a lease), its run is begun in
// the same transaction, and the trial ends with its run's status. Any number
// of processes may work on one study: a claim's run id is the token of every
// later write. Part of a Store (store.h).
#include <cstdint>
#include <string>
#include <string_view>

#include "powertrain/run/records.h"
#include "powertrain/store/aggregate.h"
#include "powertrain/store/records.h"

namespace powertrain::store {

/// Trial claims and leases. Every method throws StoreError with one line.
class Claims : protected Aggregate {
 public:
  /// Claims a trial: in one transaction, begins a run, links it to the trial,
  /// marks the trial running and counts the attempt. Returns the run id.
  /// Throws StoreError if the trial is running (another process has it) or
  /// done (is_done): a trial's result is never produced twice. Failed and
  /// interrupted trials may be started again.
  std::int64_t start_trial(std::int64_t trial_id, const run::RunConfig& config,
                           const run::Environment& environment);
  /// In one transaction: finish_run() of the trial's run and the trial status
  /// that summary.status gives. Throws StoreError if the trial is not running.
  void complete_trial(std::int64_t trial_id, const run::RunSummary& summary);
  /// Marks a trial failed (an error stopped it, e.g. missing data), and its
  /// run too if it is still running.
  void mark_trial_failed(std::int64_t trial_id, std::string_view message);
  /// Marks a trial interrupted (e.g. Ctrl-C), and its run too if still running.
  void mark_trial_interrupted(std::int64_t trial_id, std::string_view message);
  /// Marks every running trial of the study whose holder is gone, and its
  /// run if still running, interrupted: trials started without a claim
  /// (start_trial), claims whose lease ran out by `now_s`, and claims of a
  /// process of this host that has died (owner_is_gone). A trial another
  /// live process holds is left alone. Returns how many trials it reset.
  /// Their attempts were counted when they started.
  int reset_interrupted(std::int64_t study_id, double now_s = wall_clock_s());

  // --- claims: any number of processes working on one study -----------------

  enum class ClaimOutcome {
    claimed,  ///< the trial is ours: run_id is its new run
    busy,     ///< another live process holds it
    done,     ///< it has a result already
  };
  struct Claim {
    ClaimOutcome outcome = ClaimOutcome::busy;
    std::int64_t run_id = 0;     ///< claimed: the token of every later write
    std::string taken_from;      ///< claimed from a holder that was gone (its owner), else empty
  };
  /// Claims a trial for `owner` (this_process_owner()) until now_s + lease_s,
  /// in one transaction: done trials are not claimed; a running trial is
  /// claimed only when its holder is gone (lease expired, or owner_is_gone),
  /// and its run is then marked interrupted. A claim begins a new run (the
  /// token), links it to the trial and counts the attempt.
  Claim claim_trial(std::int64_t trial_id, const run::RunConfig& config, const run::Environment& environment,
                    std::string_view owner, double lease_s, double now_s = wall_clock_s());
  /// Extends the claim of run `run_id` on the trial to now_s + lease_s.
  /// False when the trial is not ours any more (taken over or ended).
  bool renew_claim(std::int64_t trial_id, std::int64_t run_id, double lease_s, double now_s = wall_clock_s());
  /// Like complete_trial, for a claim: finishes run `run_id` (ours) with the
  /// summary and, only if the trial still is ours, sets the trial's status.
  /// Returns whether it was.
  bool complete_claimed_trial(std::int64_t trial_id, std::int64_t run_id, const run::RunSummary& summary);

  /// Seconds since the Unix epoch (the clock of leases).
  static double wall_clock_s();
  /// "<host> <pid> <start time>" of this process: the owner of its claims.
  static std::string this_process_owner();
  /// True only when `owner` names a process of this host that no longer
  /// runs (a process of another host is never known to be gone).
  static bool owner_is_gone(std::string_view owner);

 protected:
  explicit Claims(detail::Db* db) : Aggregate(db) {}

 private:
  void end_trial(std::int64_t trial_id, TrialStatus status, std::string_view message);
};

}  // namespace powertrain::store
