#pragma once
// Study kinds as descriptors. Each kind lives in one file under src/study/
// (grid_kind.cpp, pretrain_kind.cpp, multitask_kind.cpp, search_kind.cpp) and
// is listed once in kinds.cpp; the spec parser, the planner and the tables
// look a kind up by its name (the text the store keeps) and call its
// functions, never naming a kind themselves. A new kind is one file and a
// register_study_kind() call (tests/study/kind_registry_test.cpp shows one).
// No torch.
//
//   const auto& k = study_kind("grid");
//   auto trials = k.plan(spec);
#include <any>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "powertrain/store/records.h"
#include "powertrain/study/analysis.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/spec.h"
#include "powertrain/study/tables.h"

namespace powertrain::study {

namespace detail {
class Parser;  // powertrain/study/spec_reader.h
class Table;
}  // namespace detail

/// What a kind's parser is handed: the spec's top-level table (take the
/// kind's own tables from it) and the spec parsed so far ([workload],
/// [training] and the seeds are read before; [execution] after).
struct KindParse {
  const detail::Parser& parser;
  detail::Table& top;
  StudySpec& spec;
};

struct StudyKindInfo {
  std::string name;  ///< "grid": the spec's `kind`, the store's text, `powertrain study <name>`
  std::string help;  ///< one line for `powertrain study --help`
  /// `powertrain study <name>` runs it (a search has its own command).
  bool study_command = true;
  /// Top-level tables of the spec the kind reads; the tables of other kinds are refused.
  std::vector<std::string> tables;
  /// Non-empty: the kind chooses training.batch_size and training.learning_rate
  /// itself; this says how, when a spec sets them in [training].
  std::string chooses_setup;
  /// Another kind whose command also runs specs of this kind (a grid spec given
  /// to `powertrain search` searches its lists); empty: none.
  std::string also_runs_as;
  /// The study's forecasts are judged in the prediction table (not for a
  /// search, whose segments are parts of runs).
  bool judges_forecasts = true;

  /// Reads the kind's own tables, before [execution].
  std::function<void(KindParse&)> parse;
  /// After [execution] and the max_trials check: tables read last (may be empty).
  std::function<void(KindParse&)> finish;
  /// A spec of kind `also_runs_as` given to this kind's command: turns it into
  /// a spec of this kind (may be empty).
  std::function<void(KindParse&)> adopt;
  /// How many trials the spec plans, without planning them.
  std::function<std::int64_t(const StudySpec&)> planned_count;
  /// Every trial in the order it runs (empty for a kind that proposes its
  /// trials as results come in).
  std::function<std::vector<PlannedTrial>(const StudySpec&)> plan;
  /// What the study trains, for comparing a spec with the stored one; empty:
  /// the kind and its plan's keys.
  std::function<std::string(const StudySpec&)> fingerprint;
  /// The kind's result tables from the stored study and its trial outcomes
  /// (after the trials table every study has).
  std::function<std::vector<table::Table>(const store::Study&, const std::vector<TrialOutcome>&)> tables_of;
};

/// The kind of that name; ConfigError naming the known kinds otherwise.
const StudyKindInfo& study_kind(std::string_view name);
/// The kind of that name, nullptr when none is registered.
const StudyKindInfo* find_study_kind(std::string_view name);
/// Every registered kind, the built-in ones first, in registration order.
std::vector<const StudyKindInfo*> study_kinds();
/// "grid, pretrain, multitask or search": the registered kinds for messages.
std::string study_kind_names();
/// Adds a kind (a test's, or one outside the built-in four). Throws
/// std::invalid_argument when the name is taken or empty, or a required
/// function (parse, planned_count, plan, tables_of) is missing.
void register_study_kind(StudyKindInfo kind);
/// Removes a kind registered with register_study_kind() (a test's, when it
/// ends); false when none has that name. Pointers to it are then dangling.
bool unregister_study_kind(std::string_view name);

/// [pretrain]: the source task the encoder is pretrained on, the downstream
/// tasks that reuse it (one per recycling step), and how each is trained.
struct PretrainSettings {
  TaskSource source;
  std::vector<TaskSource> steps;
  /// Which of scratch, finetune, frozen each step trains (default: all three).
  std::vector<std::string> variants{"scratch", "finetune", "frozen"};
};

/// [multitask]: the tasks (CelebA attributes, or see data/multitask.h).
struct MultitaskSettings {
  std::vector<std::string> tasks;
};

// The built-in kinds, each defined in its own file.
StudyKindInfo grid_kind();
StudyKindInfo pretrain_kind();
StudyKindInfo multitask_kind();
StudyKindInfo search_kind();

}  // namespace powertrain::study
