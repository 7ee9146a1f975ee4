#pragma once
// Runs a study: every planned trial that has no result yet, each trained to
// convergence and measured (a session::RunSession of the built-in trainer or
// of the spec's command), each a row of the results store. No torch in this
// header.
//
//   auto store = store::Store::open("results.db");
//   RunOptions o;  o.stop = &stop_flag;
//   StudyRun r = run_study(load_spec("grid.toml", "grid"), store, o);
//
// Resuming: the study is found by name. Its stored specification must plan the
// same trials (plan_fingerprint); otherwise ConfigError (choose another name).
// Trials left running by a process that died are reset to interrupted; trials
// with a result are skipped; pending, interrupted and failed ones run.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "powertrain/store/store.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/spec.h"

namespace powertrain::runner {

using study::PlannedTrial;
using study::StudySpec;

/// Datasets loaded by earlier run_study calls, kept for later ones (a search
/// runs one segment per call). Opaque; see RunOptions::data_cache.
class DataCache;

struct RunOptions {
  /// The database's path (artifacts go beside it unless the spec says where).
  /// Empty: store.path().
  std::filesystem::path db;
  /// Polled between batches and between trials. When it turns true the
  /// running trial ends interrupted and run_study returns with stopped set.
  const std::atomic<bool>* stop = nullptr;
  /// Progress lines (one per trial, and per epoch on a terminal); null: quiet.
  std::FILE* log = stderr;
  bool terminal = false;  ///< live progress line on `log`
  /// Run at most this many trials, then stop as if stopped (tests); < 0: all.
  int max_trials = -1;
  /// Called before each trial starts (after it is claimed in the store),
  /// with the id of the run its claim began.
  std::function<void(const PlannedTrial&, std::int64_t run_id)> on_trial_start;
  /// Energy sources to skip (energy::ProbeOptions::disabled), e.g. {"nvml"}.
  std::vector<std::string> disabled_sources;
  /// Only these trials (canonical keys) run; the rest of the plan is stored
  /// but left alone. Empty: every trial.
  std::set<std::string> only_keys;
  /// Plan and store the study and its trials (checking data and commands as
  /// for a run), then return without running any.
  bool plan_only = false;
  /// A pretraining study's downstream trial starts from the encoder file when
  /// it exists, even where this store has no result for its pretraining (a
  /// Slurm task: the pretraining ran in another task, its result is elsewhere).
  bool encoder_from_file = false;
  /// Recorded with every run (run::Environment::placement).
  std::string placement;
  /// Run these trials instead of the spec's plan (a search's segments, which
  /// are planned as results come in). The study must exist or is created;
  /// the stored spec must have the same fingerprint as `spec`.
  std::optional<std::vector<PlannedTrial>> plan;
  /// Asked after every epoch of every trial run (session::SessionOptions::stop_rule).
  std::function<std::optional<std::string>(const run::EpochRecord&)> stop_rule;
  /// A search segment's earlier segments' epochs by their trial keys, for a
  /// store that lacks those segments (a Slurm task writes a result file of its
  /// own; the study's database handed them in through the job file).
  std::map<std::string, std::vector<run::EpochRecord>> earlier_epochs;
  /// Shared between calls so that data is loaded once (null: this call's own).
  std::shared_ptr<DataCache> data_cache;
};

struct StudyRun {
  std::int64_t study_id = 0;
  bool created = false;  ///< the study was new
  int planned = 0;       ///< trials in the plan
  int skipped = 0;       ///< had a result already
  int reset = 0;         ///< found running (a process died) and reset to interrupted
  int completed = 0;     ///< run now and ended converged or max_epochs
  int diverged = 0;      ///< run now and diverged (recorded as a result)
  int failed = 0;        ///< run now and failed (recorded; run again next time)
  int busy = 0;          ///< held by another live process to the end (not run here)
  bool stopped = false;  ///< the stop flag (or max_trials) ended it early; the trial in flight is interrupted
};

/// Creates the study or finds it, plans its trials, upserts them and runs
/// every one without a result. Datasets are loaded once per distinct data
/// setting (outer loop); each trial gets a fresh Trainer. A trial that throws
/// or fails is recorded failed and the study goes on; a diverged trial is a
/// result. Throws ConfigError for a spec that cannot run (before anything is
/// written when the data or model settings are invalid), StoreError for
/// database errors.
StudyRun run_study(const StudySpec& spec, store::Store& store, const RunOptions& options = {});

/// A search (search/search.h) run to its end, its budget or a stop.
struct SearchRun {
  std::int64_t study_id = 0;
  bool created = false;
  int segments = 0;         ///< segments run now
  int failed = 0;           ///< of them, failed
  bool stopped = false;     ///< the stop flag (or max_trials) ended it early
  bool waiting = false;     ///< segments another process runs are still out
  search::Decision decision;   ///< the search's state at the end
  std::vector<search::Setup> setups;  ///< the sampled setups (decision.verdicts follow them)
  double spent_j = 0.0;     ///< the search's energy, every attempt
};

/// Zeus's rule inside a search segment (RunOptions::stop_rule): asked after
/// every epoch past the setup's earlier ones (`prior`), against the best
/// measured energy to the target when the segment starts (`best_j`; inf: none).
std::function<std::optional<std::string>(const run::EpochRecord&)> segment_stop_rule(
    const StudySpec& spec, std::vector<predict::CurvePoint> prior, double best_j);

/// Runs a search: decides from the store what to train next (one segment of
/// one setup), runs it through run_study, and decides again, until the
/// search is finished. Resumable: the state is the store's, so a search
/// killed at any point goes on where its records end. max_trials counts segments.
SearchRun run_search(const StudySpec& spec, store::Store& store, const RunOptions& options = {});

}  // namespace powertrain::runner
