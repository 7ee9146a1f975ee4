#pragma once
// What `search --slurm` (slurm_search.cpp) shares with the study commands'
// Slurm submission (slurm_submit.cpp) and with `status` (slurm_commands.cpp).
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "powertrain/search/search.h"
#include "powertrain/slurm/slurm.h"
#include "powertrain/store/store.h"
#include "powertrain/study/spec.h"

namespace powertrain::cli {

/// `search --slurm`: asynchronous successive halving whose segments go out as
/// array tasks as slots free up (slurm_search.cpp); the exit code.
int submit_search(const study::StudySpec& spec, const std::string& db, const SlurmSubmit& o, int slots);

/// Trials of a study that Slurm still holds: queued or running tasks of its submissions.
struct LiveState {
  std::map<std::int64_t, slurm::LiveTask> by_trial;  ///< trial -> its live task
  std::map<std::int64_t, std::string> job_of_trial;  ///< trial -> latest submission "<job>_<index>"
};
/// From squeue; IoError when squeue fails.
LiveState live_state(const store::Store& store, std::int64_t study_id);
/// One job array of `trials` (grouped by trials_per_task), after `after_ok` when set.
struct Submitted {
  std::string job_id;
  int trials = 0;
};
Submitted submit_array(store::Store& store, const study::StudySpec& spec, const std::filesystem::path& db,
                       const std::filesystem::path& folder, const std::vector<slurm::TaskTrial>& trials,
                       const SlurmSubmit& o, const std::optional<std::string>& after_ok, const std::string& tag);
/// A search's records, with segments Slurm holds (queued or running) as
/// running, and those in `given_up` (their trial keys) as failed (slurm_commands.cpp).
std::vector<search::Observed> observe_with_slurm(const store::Store& store, std::int64_t study_id,
                                                 const study::StudySpec& spec, const LiveState* live,
                                                 const std::set<std::string>& given_up);
/// What a collect() took in, on standard error (slurm_commands.cpp).
void print_collect(const slurm::CollectResult& c, bool quiet);
/// Search studies in `status`: where each rung stands (slurm_commands.cpp).
void print_search_rungs(const store::Store& store, const store::Study& study, const LiveState* live,
                        nlohmann::json* json);

}  // namespace powertrain::cli
