#pragma once
// The per-node table of a study whose trials ran over several nodes
// (docs/cluster.md, "Several nodes"): one row per node of every such trial,
// with what that node's own meter recorded, and a row "all" with the merged
// figures the trial's other tables use. No torch.
//
//   if (auto t = node_table(results, [&](auto id) { return store.node_merge_of(id); })) tables.push_back(*t);
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "powertrain/run/nodes.h"
#include "powertrain/store/records.h"
#include "powertrain/study/tables.h"

namespace powertrain::study {

/// The name of the table ("trial_nodes"): printed with the per-trial table.
inline constexpr const char* kNodeTableName = "trial_nodes";

/// The per-node table of a study's results; nullopt when no trial's run
/// spans several nodes. `merge_of` gives a run's merged record with its
/// per-node rows (store::Store::node_merge_of).
std::optional<table::Table> node_table(const std::vector<store::TrialResult>& results,
                                      const std::function<run::MergedRun(std::int64_t run_id)>& merge_of);

}  // namespace powertrain::study
