#pragma once
// The analyses of the paper's three studies, as pure functions over plain
// structs: no torch, no database. The study engine, `powertrain results` and
// the reports all call these.
//
//   auto outcomes = study::outcomes_of(store.results_of(study_id));
//   study::GridAnalysis g = study::analyze_grid(outcomes);
//   g.configs[*g.best], g.saving_pct, g.pareto, g.batch_size.levels ...
//
// Rules shared by every analysis (docs/studies.md explains why):
//  - A trial counts when it has a result (store::is_done: converged,
//    max_epochs, diverged). Pending, running, interrupted and failed trials are
//    counted but contribute no numbers.
//  - Diverged runs are counted per configuration and left out of every
//    "to convergence" number (epochs, total energy, time, metric), because
//    their energy is that of a run cut short, not of a trained model. Their
//    energy per epoch still counts: what an epoch costs does not depend on
//    whether the loss explodes.
//  - max_epochs runs count as results: their total energy is a lower bound of
//    the energy to convergence (the column `max_epochs` says how many).
//  - Spreads are sample standard deviations over seeds (0 for one seed, NaN
//    for none).
#include <cmath>
#include <cstdint>
#include <limits>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/store/records.h"

namespace powertrain::study {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Phases (store::TrialSpec::phase) of the studies' trials.
inline constexpr const char* kPhasePretrain = "pretrain";  ///< pretraining: the encoder's source task
inline constexpr const char* kPhaseScratch = "scratch";    ///< downstream task from random weights
inline constexpr const char* kPhaseFinetune = "finetune";  ///< downstream task from the pretrained encoder, trained
inline constexpr const char* kPhaseFrozen = "frozen";      ///< downstream task from the pretrained encoder, fixed
inline constexpr const char* kPhaseSingle = "single";      ///< multitask study: one model for one task
inline constexpr const char* kPhaseMulti = "multi";        ///< multitask study: one shared model for every task

/// Mean and spread of a sample. NaN values are skipped.
struct Stat {
  int n = 0;           ///< values counted
  double mean = kNaN;  ///< NaN when n == 0
  double sd = kNaN;    ///< sample standard deviation (n - 1); 0 when n == 1, NaN when n == 0
  double min = kNaN;
  double max = kNaN;
};
Stat describe(const std::vector<double>& values);

/// What every analysis reads of one trial (one configuration + seed).
struct TrialOutcome {
  std::string key;     ///< the trial's canonical key
  std::string phase;   ///< "" in a grid; kPhase* otherwise
  int step = 0;        ///< pretraining: recycling step (0 = pretraining itself)
  std::string task;    ///< multitask: the task, or the comma-separated tasks of the shared model
  std::int64_t batch_size = 0;
  double learning_rate = 0.0;
  std::uint64_t seed = 0;
  store::TrialStatus status = store::TrialStatus::pending;
  int epochs = 0;
  double energy_j = 0.0;     ///< whole run (to convergence, or to the epoch limit), the run's own
  double machine_energy_j = 0.0;  ///< what the meters read over the run (others' work included)
  double duration_s = 0.0;   ///< wall-clock training time
  double metric = kNaN;      ///< test metric of the best model; the best validation metric when there is no test metric
  std::vector<double> task_metrics;  ///< multi-label runs: test metric per task, in the order of `task`
  std::string message;       ///< why it diverged or failed
  /// CPU time of the machine beside the run's (unset: not recorded).
  std::optional<energy::WindowCpu> cpu;
  std::optional<double> quiet_wait_s;  ///< seconds it waited for a quiet machine first
  std::optional<double> energy_to_target_j;  ///< energy until the validation metric first reached the target
  std::string placement;     ///< where a scheduler put it (run::Environment::placement)
  std::string slurm_job;     ///< "<job>_<task>" when a Slurm task ran it
  std::optional<double> cluster_energy_j;  ///< the cluster's own accounting of that task
  /// The run's epochs as the prediction sees them (attach_epochs; empty until then).
  std::vector<run::EpochRecord> epoch_records;
  run::RunConfig config;  ///< the run's settings (its convergence rule)

  bool has_result() const { return store::is_done(status); }
  bool diverged() const { return status == store::TrialStatus::diverged; }
  /// A result that is not diverged: counts in every "to convergence" number.
  bool usable() const { return has_result() && !diverged(); }
  /// energy_j / epochs; NaN without an epoch.
  double energy_per_epoch_j() const { return epochs > 0 ? energy_j / epochs : kNaN; }
  /// Other processes used a material share of the CPUs while it ran
  /// (energy::material_interference): its energy holds some of their work.
  bool interfered() const { return cpu && cpu->material(); }
};

/// The outcome of a stored trial and its latest run. The metric is the run's
/// test metric, or its best validation metric when the test metric is NaN.
/// Per-task test metrics come from the run's test_task_metrics; for runs stored
/// before that column existed, from the trial message (task_metrics_message()).
TrialOutcome outcome_of(const store::TrialResult& result);
std::vector<TrialOutcome> outcomes_of(const std::vector<store::TrialResult>& results);
/// Gives each outcome with a run the epochs of that run (`epochs_of(run_id)`),
/// for the tables that need them (the prediction table).
void attach_epochs(std::vector<TrialOutcome>& outcomes, const std::vector<store::TrialResult>& results,
                   const std::function<std::vector<run::EpochRecord>(std::int64_t run_id)>& epochs_of);

/// How studies written before schema version 2 kept a shared model's per-task
/// test metrics in the trial message: "task_metrics=[a,b,...]". Only read now.
std::string task_metrics_message(const std::vector<double>& task_metrics);
/// Inverse of task_metrics_message(); empty for any other message.
std::vector<double> parse_task_metrics_message(const std::string& message);

// --- grid study ---------------------------------------------------------------

/// One batch size x learning rate configuration over its seeds.
struct ConfigSummary {
  std::int64_t batch_size = 0;
  double learning_rate = 0.0;
  int trials = 0;       ///< trials of this configuration (all seeds, any status)
  int results = 0;      ///< with a result (converged + max_epochs + diverged)
  int converged = 0;
  int max_epochs = 0;   ///< stopped at the epoch limit (energy is a lower bound)
  int diverged = 0;
  int failed = 0;
  int unfinished = 0;   ///< pending, running or interrupted
  Stat energy_per_epoch_j;  ///< over every result with at least one epoch (diverged included)
  Stat epochs;              ///< epochs to convergence, over usable results
  Stat energy_j;            ///< total energy to convergence, over usable results
  Stat duration_s;          ///< training time, over usable results
  Stat metric;              ///< final metric, over usable results
  int reached = 0;          ///< usable results that reached the target metric
  Stat energy_to_target_j;  ///< over the results that reached it
  /// Has a usable result: takes part in ranking, best/worst and the Pareto front.
  bool ranked() const { return energy_j.n > 0; }
};

/// Configurations present in `trials` (phase ignored), ordered by batch size,
/// then learning rate.
std::vector<ConfigSummary> summarize_configs(const std::vector<TrialOutcome>& trials);

/// Indices of the ranked configurations, cheapest first by mean total energy
/// to convergence. Ties (equal mean energy) go to the higher mean metric, then
/// the shorter mean time, then the smaller batch size and learning rate, so
/// the order is total and deterministic. Unranked configurations are left out.
std::vector<std::size_t> rank_configs(const std::vector<ConfigSummary>& configs);

/// Indices of the ranked configurations on the Pareto front of mean total
/// energy (lower is better) against mean metric (higher is better): no other
/// configuration is at least as good in both and better in one. Ordered by
/// energy, cheapest first. Configurations with a NaN metric are left out.
std::vector<std::size_t> pareto_front(const std::vector<ConfigSummary>& configs);

/// The setup to recommend: among the ranked configurations, the cheapest (mean
/// total energy) whose mean metric is within `metric_tolerance` (absolute, in
/// the metric's own units) of the highest mean metric. The cheapest setup alone
/// can be one that stopped early at a poor metric; this one is not. When no
/// ranked configuration has a finite metric, the cheapest. nullopt when none is
/// ranked.
std::optional<std::size_t> recommend_config(const std::vector<ConfigSummary>& configs,
                                            const std::vector<std::size_t>& ranking, double metric_tolerance);

/// Default tolerance of recommend_config: one point of accuracy.
inline constexpr double kDefaultMetricTolerance = 0.01;

/// Saving of `best` over `worst` in percent: (worst - best) / worst * 100.
/// NaN when worst is not positive or either value is not finite.
double saving_percent(double best, double worst);

/// The mean of one measure at one level of a factor, over the configurations at
/// that level (each configuration weighs once, whatever its number of seeds).
struct LevelEffect {
  double level = 0.0;       ///< the batch size or learning rate
  int configs = 0;          ///< configurations at this level with an energy per epoch
  double energy_per_epoch_j = kNaN;  ///< mean over configurations of their mean energy per epoch
  double epochs = kNaN;     ///< mean over ranked configurations of their mean epochs to convergence
  double energy_j = kNaN;   ///< mean over ranked configurations of their mean total energy
};

/// How one factor moves energy per epoch and epochs to convergence. The paper's
/// finding is that batch size drives energy per epoch and learning rate drives
/// epochs: compare the two ratios of the two factors.
struct FactorEffect {
  std::string factor;       ///< "batch_size" or "learning_rate"
  std::vector<LevelEffect> levels;  ///< ascending level
  double energy_per_epoch_ratio = kNaN;  ///< max / min over levels of energy_per_epoch_j
  double epochs_ratio = kNaN;            ///< max / min over levels of epochs
};
FactorEffect batch_size_effect(const std::vector<ConfigSummary>& configs);
FactorEffect learning_rate_effect(const std::vector<ConfigSummary>& configs);

struct GridAnalysis {
  std::vector<ConfigSummary> configs;  ///< summarize_configs()
  std::vector<std::size_t> ranking;    ///< rank_configs(): indices into configs
  std::vector<std::size_t> unranked;   ///< configurations without a usable result (e.g. every seed diverged)
  std::optional<std::size_t> best;     ///< ranking.front()
  std::optional<std::size_t> worst;    ///< ranking.back()
  /// recommend_config(configs, ranking, metric_tolerance): cheapest near the top metric.
  std::optional<std::size_t> recommended;
  double metric_tolerance = kDefaultMetricTolerance;
  double top_metric = kNaN;            ///< highest mean metric of a ranked configuration
  /// The objective. With a target metric: the energy to reach it, and only
  /// setups whose every usable seed reached it qualify. Without: the energy to
  /// convergence, and setups within metric_tolerance of the top metric qualify.
  std::optional<double> target_metric;
  std::vector<std::size_t> qualifying;              ///< cheapest first by the objective
  std::optional<std::size_t> costliest_qualifying;  ///< qualifying.back()
  /// Saving of the recommended (cheapest qualifying) setup over the costliest
  /// qualifying one, by the objective: setups of the same quality compared.
  double saving_pct = kNaN;
  double worst_over_best = kNaN;       ///< costliest qualifying / recommended, by the objective
  /// The objective's energy of configuration i (energy to target, or to convergence).
  double objective_j(std::size_t i) const;
  std::vector<std::size_t> pareto;     ///< pareto_front()
  FactorEffect batch_size;             ///< batch_size_effect()
  FactorEffect learning_rate;          ///< learning_rate_effect()
  int trials = 0;
  int results = 0;
  int diverged = 0;
  int failed = 0;
  int unfinished = 0;
};
GridAnalysis analyze_grid(const std::vector<TrialOutcome>& trials,
                          double metric_tolerance = kDefaultMetricTolerance,
                          std::optional<double> target_metric = std::nullopt);
/// The objective a stored study asks for: its grid.metric_tolerance and
/// training.target_metric. When its spec cannot be read any more, the
/// defaults; `problem` (when given) then says so, for a note beside the tables.
std::pair<double, std::optional<double>> grid_objective(const store::Study& study, std::string* problem = nullptr);

// --- pretraining study ----------------------------------------------------------

/// One variant (pretrain, scratch, finetune, frozen, single, multi) of one step
/// or task over its seeds.
struct VariantSummary {
  std::string variant;   ///< the phase
  int results = 0;
  int diverged = 0;
  int missing = 0;       ///< trials without a result (pending, running, interrupted, failed)
  Stat energy_j;         ///< over usable results
  Stat epochs;
  Stat duration_s;
  Stat metric;
};
VariantSummary summarize_variant(const std::string& variant, const std::vector<TrialOutcome>& trials);

/// One recycling step: the downstream task trained three ways.
struct RecyclingStep {
  int step = 0;          ///< 1-based
  std::string task;      ///< what the downstream task is (e.g. its classes)
  VariantSummary scratch, finetune, frozen;
  double finetune_saving_pct = kNaN;  ///< saving_percent(finetune energy, scratch energy); negative: costs more
  double frozen_saving_pct = kNaN;
};

/// Break-even of one reuse variant: after how many reuses the pretraining's
/// energy is paid back by the energy each reuse saves over training from scratch.
struct BreakEven {
  std::string variant;            ///< "finetune" or "frozen"
  double pretrain_energy_j = kNaN;
  double scratch_energy_j = kNaN; ///< mean over steps of the mean energy from scratch
  double reuse_energy_j = kNaN;   ///< mean over steps of the mean energy of the variant
  double saving_per_reuse_j = kNaN;  ///< scratch - reuse
  std::optional<double> reuses;   ///< N* = pretrain / (scratch - reuse); none: never pays off
  /// Whole reuses needed: ceil(N*); 0 when pretraining cost nothing; none: never pays off.
  std::optional<long long> reuses_needed;
  bool pays_off() const { return reuses.has_value(); }
};

/// N* = pretrain_j / (scratch_j - reuse_j). Returns none when reuse saves
/// nothing (scratch_j - reuse_j <= 0) or an input is not finite: reuse never
/// pays the pretraining back. 0 when pretrain_j is 0 and reuse saves energy.
std::optional<double> break_even_reuses(double pretrain_j, double scratch_j, double reuse_j);
BreakEven break_even(const std::string& variant, double pretrain_j, double scratch_j, double reuse_j);

struct PretrainAnalysis {
  VariantSummary pretrain;          ///< the pretraining trials (phase "pretrain")
  std::vector<RecyclingStep> steps; ///< ascending step
  BreakEven finetune;               ///< over the mean per-step energies
  BreakEven frozen;
};
PretrainAnalysis analyze_pretrain(const std::vector<TrialOutcome>& trials);

// --- multitask study ---------------------------------------------------------------

/// One task: its own model against its head on the shared model.
struct TaskComparison {
  std::string task;
  VariantSummary single;   ///< the single-task model
  Stat multi_metric;       ///< this task's test metric in the shared model, over seeds
  double metric_delta = kNaN;  ///< multi_metric.mean - single.metric.mean
};

struct MultitaskAnalysis {
  std::vector<TaskComparison> tasks;  ///< in the order of the shared model's tasks
  VariantSummary multi;               ///< the shared model
  double single_energy_j = kNaN;      ///< sum over tasks of the mean single-task energy
  double multi_energy_j = kNaN;       ///< mean energy of the shared model
  double saving_pct = kNaN;           ///< saving_percent(multi_energy_j, single_energy_j)
  double single_epochs = kNaN;        ///< sum over tasks of mean epochs
  double multi_epochs = kNaN;
  double single_duration_s = kNaN;    ///< sum over tasks of mean time
  double multi_duration_s = kNaN;
  double single_mean_metric = kNaN;   ///< mean over tasks of the single-task metric
  double multi_mean_metric = kNaN;    ///< mean over tasks of the shared model's per-task metric
};
MultitaskAnalysis analyze_multitask(const std::vector<TrialOutcome>& trials);

}  // namespace powertrain::study
