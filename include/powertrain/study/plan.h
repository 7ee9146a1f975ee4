#pragma once
// From a study specification to its list of trials, each with a canonical key.
// No torch: the plan is what a resumed study compares against the store.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/search/search.h"
#include "powertrain/store/records.h"
#include "powertrain/store/store.h"
#include "powertrain/study/spec.h"

namespace powertrain::study {

/// One trial of a study as planned.
struct PlannedTrial {
  /// key, phase, step, task and the RunConfig it trains (seed, batch size,
  /// learning rate, tasks, freeze_encoder set; init_encoder and checkpoint are
  /// filled in by the runner, which knows where artifacts go).
  store::TrialSpec spec;
  /// Single-label class filter (pretraining study); empty: every class.
  std::vector<std::string> classes;
  /// Human label, e.g. "bs=64 lr=0.01 seed=0" or "step 2 finetune seed=1".
  std::string label;
  /// Pretraining study: index in the plan of the pretraining trial whose
  /// encoder this trial starts from; -1: none.
  int encoder_from = -1;
  /// A search's segment: the keys of the setup's earlier segments, in order;
  /// it continues the state the last of them saved (empty: from scratch).
  std::vector<std::string> continues;
  /// A search's segment that ends before training.max_epochs saves its state
  /// so that a later segment can continue it.
  bool saves_state = false;
};

/// The phase of a search's segments.
inline constexpr const char* kPhaseSearch = "search";

/// Every trial of the study in the order it runs, as its kind plans them
/// (powertrain/study/kind.h). Grid: seeds (outer) x batch sizes x learning
/// rates. Pretrain: per seed the pretraining, then per step scratch, finetune,
/// frozen. Multitask: per seed one single-task model per task, then the shared
/// model. Search: none (segments are proposed as results come in).
std::vector<PlannedTrial> plan_trials(const StudySpec& spec);

/// A trial of the spec's study: its canonical key from the config and the
/// rest, phase, step, task and label set (for the kinds' planners).
PlannedTrial make_trial(const StudySpec& s, run::RunConfig config, const std::string& phase, int step,
                        const std::string& task, std::vector<std::string> classes, std::string label);
/// The workload's data options with a task source's overrides on top, sorted by key.
std::vector<std::pair<std::string, std::string>> merged_data(const run::RunConfig& base, const TaskSource& src);

/// The canonical key of a trial: compact JSON, keys sorted, of every field
/// that defines the experiment: the RunConfig's experiment fields (not where
/// files live: data_dir, checkpoint, init_encoder's path), the data options,
/// the data seed, the phase, step, task and class filter. Equal experiments
/// give equal keys whatever order or format the specification used.
std::string canonical_key(const run::RunConfig& config, std::uint64_t data_seed, const std::string& phase,
                          int step, const std::string& task, const std::vector<std::string>& classes);

/// A fingerprint of what a specification trains: its kind and the ordered keys
/// of its plan. Two specifications with equal fingerprints are the same
/// experiment (comments, layout and execution settings may differ).
std::string plan_fingerprint(const StudySpec& spec);

/// A search's candidates (search::sample_setups over the spec's space).
std::vector<search::Setup> search_setups(const StudySpec& spec);
/// The trial that trains one segment of a search: the setup's config with
/// max_epochs = the segment's last epoch, phase "search", step = its rung.
PlannedTrial segment_trial(const StudySpec& spec, const search::Segment& segment);
/// A segment's trial as the search sees it: its status and its latest run's epochs.
struct SegmentRecord {
  store::TrialStatus status = store::TrialStatus::pending;
  std::vector<run::EpochRecord> epochs;
  std::string message;  ///< why it ended (a stopped segment: the rule's reason)
};
/// What each setup of a search did so far, from its segments' records (a
/// failed or interrupted latest segment counts as failed or pending). `find`
/// gives a segment's record by trial key, nullopt when it was never planned.
std::vector<search::Observed> observe_search(
    const StudySpec& spec, const std::function<std::optional<SegmentRecord>(const std::string& key)>& find);
/// The same from the store.
std::vector<search::Observed> observe_search(const store::Store& store, std::int64_t study_id, const StudySpec& spec);
/// A search's fingerprint: its candidates' first segments, rungs, eta, beta
/// and strategy (not its energy budget, which may grow between runs).
std::string search_fingerprint(const StudySpec& spec);
/// The file a segment's state is saved to, under the study's artifacts.
std::filesystem::path segment_state_path(const std::filesystem::path& artifacts, const std::string& key);

/// Where the runner writes a study's checkpoints for a database at `db`:
/// "<artifacts_dir or <db>.artifacts>/<name>", the name as io::safe_file_name()
/// makes it, so that no study name leads outside that folder.
std::filesystem::path artifacts_dir(const StudySpec& spec, const std::filesystem::path& db);

}  // namespace powertrain::study
