#pragma once
// Plain records the results store keeps besides the training records of
// powertrain/run/records.h: studies, their trials, measured commands.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "powertrain/run/records.h"

namespace powertrain::store {

/// Where a trial stands. The terminal values mirror run::RunStatus.
enum class TrialStatus {
  pending,      ///< not started yet
  running,      ///< claimed by a process (or by one that died: see Store::reset_interrupted)
  converged,    ///< finished: early stopping
  max_epochs,   ///< finished: epoch limit reached
  diverged,     ///< finished: the loss became NaN or exploded (a result, not an error)
  interrupted,  ///< stopped before the end (Ctrl-C, or the process died); to be run again
  failed,       ///< an error stopped it; message says which
  stopped,      ///< (schema 7) ended on purpose by a search (Zeus's rule): a result, its epochs kept
};
std::string_view to_string(TrialStatus s);
/// Parses the names above; throws ConfigError otherwise.
TrialStatus trial_status_from_string(std::string_view s);
/// The trial status a run's final status gives; running stays running.
TrialStatus trial_status(run::RunStatus s);
/// true for converged, max_epochs and diverged: the trial has its result and a
/// resumed study does not run it again.
bool is_done(TrialStatus s);

/// A study as stored.
struct Study {
  std::int64_t id = 0;
  std::string name;             ///< unique in a database
  std::string kind = "grid";  ///< the study kind's name (powertrain/study/kind.h), as text
  std::string spec;             ///< the study's specification text, as given
  run::Environment environment;  ///< where the study was created
  std::string created_at;       ///< ISO 8601 UTC, e.g. "2024-01-02T03:04:05.678Z"
};

/// How many trials of a study are in each status.
struct TrialCounts {
  int total = 0;
  int pending = 0;
  int running = 0;
  int converged = 0;
  int max_epochs = 0;
  int diverged = 0;
  int interrupted = 0;
  int failed = 0;
  int done() const { return converged + max_epochs + diverged; }
};

/// One row of Store::list_studies().
struct StudyOverview {
  Study study;
  TrialCounts trials;
  double energy_j = 0.0;    ///< sum over the latest run of each trial (runs in progress: so far)
  double duration_s = 0.0;  ///< same, wall-clock training time
};

/// What identifies a trial in its study and what it trains. The study engine
/// makes the key; trial_key() is a ready-made canonical one.
struct TrialSpec {
  std::string key;    ///< unique in the study: canonical configuration + seed
  std::string phase;  ///< pretraining/multitask role: "pretrain", "scratch", "finetune", "frozen"; "" in a grid
  int step = 0;       ///< position in the study's order (e.g. index of the pretraining fraction)
  std::string task;   ///< multitask: the task (label subset) it trains; "" otherwise
  run::RunConfig config;
};

/// A trial as stored.
struct Trial {
  std::int64_t id = 0;
  std::int64_t study_id = 0;
  std::string key;
  std::string phase;
  int step = 0;
  std::string task;
  run::RunConfig config;
  TrialStatus status = TrialStatus::pending;
  std::optional<std::int64_t> run_id;  ///< latest run (attempt); none before the first start
  int attempts = 0;         ///< times the trial was started (Store::start_trial)
  std::string started_at;   ///< ISO 8601 UTC of the latest start; "" if never started
  std::string finished_at;  ///< ISO 8601 UTC; "" while pending/running or when the process died
  std::string message;      ///< why it failed, diverged or was interrupted
};

/// A run as stored: its configuration, where it ran, and its summary. While a
/// run is in progress, summary.status is running and summary.epochs,
/// energy_j and duration_s add up the epochs stored so far.
struct RunRecord {
  std::int64_t id = 0;
  run::RunConfig config;
  run::Environment environment;
  run::RunSummary summary;
  std::string started_at;   ///< ISO 8601 UTC
  std::string finished_at;  ///< ISO 8601 UTC; "" while running or when the process died
  std::string slurm_job;    ///< "<job>_<task>" of the Slurm task that ran it; "" when none
  std::optional<double> cluster_energy_j;  ///< the cluster's own accounting (sacct ConsumedEnergy), when it has one
};

/// A trial joined with its latest run (none before its first start).
struct TrialResult {
  Trial trial;
  std::optional<RunRecord> run;
};

/// Power of one channel over a run, for the power timeline figure.
struct TimelineSeries {
  std::string channel_id;
  std::vector<double> t_s;      ///< seconds since the run's origin (millisecond resolution)
  std::vector<double> power_w;  ///< index-aligned with t_s
};

/// A measured command (`powertrain measure`), if one wants to keep it.
struct MeasurementRecord {
  std::int64_t id = 0;         ///< assigned by the store
  std::string uuid;            ///< the measurement's run id; unique in a database
  std::string started_at;      ///< ISO 8601 UTC
  std::string command;         ///< the command line, space-joined
  int exit_code = 0;
  double duration_s = 0.0;
  double energy_j = 0.0;
  double avg_power_w = 0.0;
  double peak_power_w = 0.0;
  std::optional<double> energy_above_idle_j;
  std::optional<double> emissions_kg;  ///< CO2-equivalent, when a carbon intensity was known
  std::string method;          ///< e.g. "counter+estimated"
  std::string host;
  std::string report_json = "{}";  ///< the full machine-readable report
};

}  // namespace powertrain::store
