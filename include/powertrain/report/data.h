#pragma once
// What a report reads from the results store, gathered once into plain structs
// so that figures, tables and the page are pure functions of it.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/energy/types.h"
#include "powertrain/store/records.h"
#include "powertrain/store/store.h"
#include "powertrain/run/records.h"

namespace powertrain::report {

/// One run with its epochs and power timeline.
struct RunData {
  store::RunRecord run;
  std::vector<run::EpochRecord> epochs;
  std::vector<store::TimelineSeries> timeline;
};

/// A study, its trials (each with its latest run) and those runs' details.
struct StudyData {
  store::Study study;
  std::vector<store::TrialResult> trials;
  std::map<std::int64_t, RunData> runs;  ///< by run id
};

/// Everything one report shows.
struct ReportData {
  std::string db_label;  ///< the database's path as given
  std::vector<StudyData> studies;
  /// Runs that are no trial's latest run (`powertrain train` runs, earlier
  /// attempts of trials); filled only for a report of the whole database.
  std::vector<RunData> other_runs;
};

/// Reads one study (by name) or, with no name, every study and the other runs.
/// Throws ConfigError for an unknown study name (listing the known ones) and
/// StoreError from the store.
ReportData load_report_data(const store::Store& store, const std::optional<std::string>& study);

/// How one component's energy was obtained (one method) across some runs.
struct ComponentMethod {
  energy::Component component = energy::Component::cpu;
  energy::Method method = energy::Method::estimated;
  std::vector<std::string> devices;   ///< distinct device names of its channels
  std::vector<std::string> channels;  ///< distinct channel ids
  bool in_total = false;              ///< some channel of it counts in totals
  std::vector<std::int64_t> runs;     ///< runs with such a channel, ascending
};

/// One entry per (component, method) seen in the epochs of `runs`, ordered by
/// component, then method, as first seen.
std::vector<ComponentMethod> component_methods(const std::vector<const RunData*>& runs);

/// true if any in-total energy of `runs` was estimated (run or epoch method
/// mentions "estimated", or an in-total channel is estimated).
bool has_estimates(const std::vector<const RunData*>& runs);

/// Pointers to every run of a study / a report, in run id order.
std::vector<const RunData*> runs_of(const StudyData& s);
std::vector<const RunData*> runs_of(const ReportData& d);

/// The run of a trial, if it has one with data loaded.
const RunData* run_of(const StudyData& s, const store::TrialResult& t);

}  // namespace powertrain::report
