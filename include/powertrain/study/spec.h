#pragma once
// Study specifications: TOML files that name a study's workload, what it
// sweeps, its seeds, its convergence rule and how trials are run. No torch.
//
//   StudySpec s = load_spec("examples/grid-quick.toml", "grid");
//
// docs/studies.md documents every key with its default. An unknown key, a
// value of the wrong type or out of range, and a TOML syntax error are each a
// ConfigError whose message starts with "<file>:<line>:".
#include <any>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "powertrain/error.h"
#include "powertrain/store/records.h"
#include "powertrain/run/records.h"
#include "powertrain/search/search.h"

namespace powertrain::study {

/// The default grid: 32x in batch size and 1000x in learning rate (SGD with
/// momentum 0.9): small batches and high rates risk divergence, large batches
/// and low rates run into the epoch limit, which is the spread the paper measures.
inline const std::vector<std::int64_t> kDefaultBatchSizes{16, 64, 256, 512};
inline const std::vector<double> kDefaultLearningRates{1e-4, 1e-3, 1e-2, 1e-1};

/// What the pretraining study trains on: the source task of the pretraining, or
/// one downstream task (a recycling step).
struct TaskSource {
  /// Label in tables; default: "classes 0,1,2" / "tasks a,b" / "step N".
  std::string name;
  /// Single-label data: keep only these classes (indices or class names) and
  /// renumber them 0..k-1. Empty: every class.
  std::vector<std::string> classes;
  /// Multi-label data (or derived binary tasks of single-label data, see
  /// data/multitask.h): comma-separated tasks. Empty: the dataset's own labels.
  std::string tasks;
  /// Data options that differ from the workload's (e.g. other PAMAP2 subjects).
  std::vector<std::pair<std::string, std::string>> data;
};

/// How trials are run; may change between runs of a study (not part of any key).
/// How a study's trials go to a Slurm cluster ([execution.slurm]; docs/cluster.md).
struct SlurmSettings {
  int gpus_per_trial = 0;            ///< --gres=gpu:N per array task (0: none asked for)
  int cpus_per_trial = 0;            ///< --cpus-per-task (0: Slurm's default)
  std::string memory;                ///< --mem, e.g. "16G" (empty: Slurm's default)
  std::string time_limit;            ///< --time, e.g. "02:00:00" (empty: the partition's)
  bool exclusive = false;            ///< --exclusive: whole nodes, so node-wide energy is the trial's alone
  int trials_per_task = 1;           ///< trials one array task runs, one after the other (short trials)
  std::vector<std::string> options;  ///< further sbatch options, e.g. ["--partition=gpu"]
  std::string dir;                   ///< shared folder for job files, results and logs; empty: "<db>.slurm/<name>"
};

struct Execution {
  /// Idle seconds before every trial (after the first), so that compared trials
  /// start from a similar temperature.
  double cooldown_s = 0.0;
  /// Seconds of load before every trial, so that compared trials start warm.
  double warmup_s = 0.0;
  /// "auto" (the trial's device), "cpu" (energy::burn on the trial's threads)
  /// or "device" (matrix products on the trial's device).
  std::string warmup_load = "auto";
  /// Energy sampling interval in ms (10 to 60000).
  int interval_ms = 100;
  /// Where checkpoints (pretrained encoders) go. Empty: "<db>.artifacts/<study name>".
  std::string artifacts_dir;
  /// A command's limits (external::CommandOptions): the whole run, the
  /// longest silence between events, the time after the stop reply. 0: none.
  double timeout_s = 0.0;
  double idle_timeout_s = 0.0;
  double grace_s = 60.0;
  /// Largest plan accepted: a spec that plans more trials is refused before
  /// anything is written (a typo in a list should not plan a million trials).
  std::int64_t max_trials = 10000;
  /// Before every trial: wait up to quiet_wait_s for other processes to use
  /// at most quiet_cpus CPUs (0: do not wait). Energy counters are
  /// machine-wide; a trial that starts on a busy machine anyway is flagged.
  double quiet_wait_s = 0.0;
  double quiet_cpus = 0.5;
  SlurmSettings slurm;
};

struct StudySpec {
  std::string name;            ///< unique in a database; default: the file's stem
  /// A registered study kind (powertrain/study/kind.h): "grid", "pretrain",
  /// "multitask", "search", or one registered elsewhere.
  std::string kind = "grid";
  std::string description;
  std::string source;          ///< the file it came from ("<string>" for text)
  std::string text;            ///< the TOML as given (stored with the study)

  /// Workload and training: every RunConfig field but seed, batch_size and
  /// learning_rate of a grid (swept), init_encoder / freeze_encoder /
  /// checkpoint (set per trial).
  run::RunConfig base;
  /// Seed of the data layer's random choices (subsets, validation split,
  /// synthetic data): one dataset for every trial; seeds vary the training.
  std::uint64_t data_seed = 0;
  /// Training seeds (repeats); every configuration is trained once per seed.
  std::vector<std::uint64_t> seeds{0};

  // The setups of a grid, and of a search (a grid spec given to `powertrain
  // search` searches these lists): the two kinds share them. Every other kind
  // keeps its own table's settings in kind_settings.
  std::vector<std::int64_t> batch_sizes = kDefaultBatchSizes;
  std::vector<double> learning_rates = kDefaultLearningRates;
  /// Without a target metric, the setups whose mean metric is within this of
  /// the top one qualify, and the cheapest of them is chosen (grid.metric_tolerance).
  double metric_tolerance = 0.01;

  // search ([search]; a grid spec run through `powertrain search` searches its lists)
  search::Space search_space;
  /// Strategy and budget; rule and metric_tolerance are copied from [training] and the tolerance.
  search::Settings search;

  /// The settings of a kind's own table as its parser keeps them (pretrain:
  /// PretrainSettings, multitask: MultitaskSettings, or a registered kind's
  /// own type); read them with settings_of<T>().
  std::any kind_settings;

  Execution execution;
};

/// A kind's own settings (StudySpec::kind_settings); ConfigError when the spec
/// holds none of that type (a spec of another kind).
template <typename T>
const T& settings_of(const StudySpec& spec) {
  if (const T* t = std::any_cast<T>(&spec.kind_settings)) return *t;
  throw ConfigError("the study '" + spec.name + "' of kind '" + spec.kind + "' does not hold these settings");
}

/// Parses a study specification. `source` names it in messages. `expected`:
/// the kind the command runs; a spec without `kind` gets it, one with another
/// kind is a ConfigError. Throws ConfigError (see the file comment).
StudySpec parse_spec(std::string_view text, std::string_view source,
                     const std::optional<std::string>& expected = std::nullopt);
/// Reads and parses a file; its stem is the default name. Throws IoError when
/// unreadable, ConfigError as parse_spec.
StudySpec load_spec(const std::filesystem::path& path, const std::optional<std::string>& expected = std::nullopt);

/// One documented key of the specification format (docs and `--help`).
struct SpecKey {
  std::string key;          ///< dotted path, e.g. "training.max_epochs"
  std::string type;         ///< "string", "integer", "float", "boolean", "array of integers", ...
  std::string default_value;
  std::string meaning;
};
/// How many trials the spec plans, computed without planning them.
std::int64_t planned_trial_count(const StudySpec& spec);

/// Every key the format accepts, in documentation order.
const std::vector<SpecKey>& spec_keys();

}  // namespace powertrain::study
