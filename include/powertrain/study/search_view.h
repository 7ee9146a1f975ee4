#pragma once
// A stored search as its tables and report see it: the spec's settings, the
// sampled setups, what each did (curves) and the search's decision over them,
// decided again from the stored segments. No torch.
#include <optional>
#include <vector>

#include "powertrain/search/search.h"
#include "powertrain/store/records.h"
#include "powertrain/study/analysis.h"
#include "powertrain/table/table.h"

namespace powertrain::study {

struct SearchView {
  search::Settings settings;
  std::vector<search::Setup> setups;     ///< sampled, in order
  std::vector<search::Observed> curves;  ///< setups that have a segment, with their epochs
  search::Decision decision;
  double segment_energy_j = 0.0;  ///< energy of the segments' latest runs
  int segments = 0;               ///< segments planned
  std::string space_note;         ///< the space holds fewer setups than asked (empty: it does not)
};

/// The view of a search study from its trial outcomes (with attach_epochs
/// done); nullopt for another kind of study or a stored spec that no longer parses.
std::optional<SearchView> search_view(const store::Study& study, const std::vector<TrialOutcome>& trials);

/// How far a search got over its sampled setups.
struct SearchCounts {
  int sampled = 0;
  int started = 0;    ///< with a segment planned
  int continued = 0;  ///< past their first rung
  int stopped = 0;    ///< stopped early by the search (its verdict "stopped")
  int failed = 0;     ///< whose latest segment failed: they cannot be chosen
};
/// The counts the tables' note and the report's headline quote, counted once.
SearchCounts search_counts(const SearchView& view);

/// Its tables: every sampled setup (state, why, epochs, energy, energy to the
/// target and whether that is measured or predicted) and the choice.
std::vector<table::Table> search_tables(const SearchView& view);

}  // namespace powertrain::study
