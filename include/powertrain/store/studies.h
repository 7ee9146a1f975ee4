#pragma once
// The studies aggregate: studies and their trials (what a study plans), read
// with their latest runs for results. Part of a Store (store.h).
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "powertrain/run/records.h"
#include "powertrain/store/aggregate.h"
#include "powertrain/store/records.h"
#include "powertrain/store/table.h"

namespace powertrain::store {

/// Studies and their trials. Every method throws StoreError with one line:
/// "<path>: <what it was doing>: <SQLite's message>".
class Studies : protected Aggregate {
 public:
  // --- studies -------------------------------------------------------------

  /// Adds a study; throws StoreError if one has that name already.
  std::int64_t create_study(std::string_view name, std::string_view kind, std::string_view spec,
                            const run::Environment& environment);
  std::optional<Study> find_study(std::string_view name) const;
  /// Throws StoreError if there is no study `study_id`.
  Study study(std::int64_t study_id) const;
  /// Every study with its trial counts, oldest first.
  std::vector<StudyOverview> list_studies() const;
  /// Energy of every run of the study's trials, every attempt (interrupted
  /// and failed ones too; a run that never finished counts its stored epochs).
  double energy_of_study(std::int64_t study_id) const;

  // --- trials --------------------------------------------------------------

  /// Returns the id of the trial with spec.key in the study, adding it as
  /// pending if there is none. An existing trial is returned unchanged, so a
  /// resumed study finds its trials and never duplicates one.
  std::int64_t upsert_trial(std::int64_t study_id, const TrialSpec& spec);
  std::optional<Trial> find_trial(std::int64_t study_id, std::string_view key) const;
  /// Throws StoreError if there is no trial `trial_id`.
  Trial trial(std::int64_t trial_id) const;
  /// Trials of a study ordered by step, then by when they were added.
  std::vector<Trial> trials_of(std::int64_t study_id) const;
  /// trials_of() joined with each trial's latest run.
  std::vector<TrialResult> results_of(std::int64_t study_id) const;
  /// The trial_results view for one study: trial, configuration and summary
  /// columns of each trial (see docs/store.md), ordered by step and trial id.
  table::Table results_table(std::int64_t study_id) const;

 protected:
  explicit Studies(detail::Db* db) : Aggregate(db) {}
};

}  // namespace powertrain::store
