// Result tables of the studies (printed by table/print.h).
#include "powertrain/study/tables.h"

#include "powertrain/study/kind.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/io/text.h"
#include "powertrain/io/csv.h"
#include "powertrain/io/output.h"
#include "powertrain/predict/predict.h"
#include "powertrain/predict/study.h"
#include "powertrain/table/print.h"

namespace powertrain::study {

Cell stat_cell(const Stat& s) {
  // One value has no spread: the sd cell stays empty (NULL) rather than 0.
  return {real(s.mean), s.n >= 2 ? real(s.sd) : store::Value(std::monostate{})};
}

namespace {

using store::Value;

Value text(std::string s) { return Value(std::move(s)); }
Value integer(std::int64_t v) { return Value(v); }
Value opt_real(const std::optional<double>& v) { return v ? real(*v) : Value(std::monostate{}); }

Cell cell(Value v) { return {std::move(v), std::monostate{}}; }

Column col(std::string name, std::string header, int digits = 3, bool sd = false) {
  return Column{std::move(name), std::move(header), digits, sd};
}

std::string fmt_level(double v) { return fmt::format("{:g}", v); }

// --- field lists --------------------------------------------------------------------

const std::vector<Field<TrialOutcome>>& trial_fields() {
  static const std::vector<Field<TrialOutcome>> f = {
      {col("phase", "phase"), [](const TrialOutcome& t) { return cell(text(t.phase)); }},
      {col("step", "step"), [](const TrialOutcome& t) { return cell(integer(t.step)); }},
      {col("task", "task"), [](const TrialOutcome& t) { return cell(text(t.task)); }},
      {col("batch_size", "batch"), [](const TrialOutcome& t) { return cell(integer(t.batch_size)); }},
      {col("learning_rate", "lr", 0), [](const TrialOutcome& t) { return cell(real(t.learning_rate)); }},
      {col("seed", "seed"), [](const TrialOutcome& t) { return cell(integer(static_cast<std::int64_t>(t.seed))); }},
      {col("status", "status"), [](const TrialOutcome& t) { return cell(text(std::string(store::to_string(t.status)))); }},
      {col("epochs", "epochs"), [](const TrialOutcome& t) { return cell(integer(t.epochs)); }},
      {col("energy_j", "energy J"), [](const TrialOutcome& t) { return cell(real(t.energy_j)); }},
      {col("energy_per_epoch_j", "J/epoch"), [](const TrialOutcome& t) { return cell(real(t.energy_per_epoch_j())); }},
      {col("machine_energy_j", "machine J"), [](const TrialOutcome& t) { return cell(real(t.machine_energy_j)); }},
      {col("duration_s", "time s"), [](const TrialOutcome& t) { return cell(real(t.duration_s)); }},
      {col("metric", "metric", 4), [](const TrialOutcome& t) { return cell(real(t.metric)); }},
      {col("others_cpu_pct", "others CPU%", 2),
       [](const TrialOutcome& t) { return cell(t.cpu ? real(100.0 * t.cpu->others_share()) : Value(std::monostate{})); }},
      {col("interference", "busy"), [](const TrialOutcome& t) { return cell(text(t.interfered() ? "yes" : "")); }},
      {col("message", "message"), [](const TrialOutcome& t) { return cell(text(t.message)); }},
  };
  return f;
}

struct RankedConfig {
  int rank = 0;  // 0: unranked
  const ConfigSummary* c = nullptr;
  double vs_best = kNaN;
  bool pareto = false;
};

const std::vector<Field<RankedConfig>>& config_fields() {
  static const std::vector<Field<RankedConfig>> f = {
      {col("rank", "rank"), [](const RankedConfig& r) { return cell(r.rank ? integer(r.rank) : Value(std::monostate{})); }},
      {col("batch_size", "batch"), [](const RankedConfig& r) { return cell(integer(r.c->batch_size)); }},
      {col("learning_rate", "lr", 0), [](const RankedConfig& r) { return cell(real(r.c->learning_rate)); }},
      {col("results", "runs"), [](const RankedConfig& r) { return cell(integer(r.c->results)); }},
      {col("energy_per_epoch_j", "J/epoch", 3, true), [](const RankedConfig& r) { return stat_cell(r.c->energy_per_epoch_j); }},
      {col("epochs", "epochs", 3, true), [](const RankedConfig& r) { return stat_cell(r.c->epochs); }},
      {col("energy_j", "energy J", 3, true), [](const RankedConfig& r) { return stat_cell(r.c->energy_j); }},
      {col("duration_s", "time s", 3, true), [](const RankedConfig& r) { return stat_cell(r.c->duration_s); }},
      {col("metric", "metric", 4, true), [](const RankedConfig& r) { return stat_cell(r.c->metric); }},
      {col("energy_vs_best", "x best"), [](const RankedConfig& r) { return cell(real(r.vs_best)); }},
      {col("pareto", "pareto"), [](const RankedConfig& r) { return cell(text(r.pareto ? "yes" : "")); }},
      {col("converged", "conv"), [](const RankedConfig& r) { return cell(integer(r.c->converged)); }},
      {col("max_epochs", "max_ep"), [](const RankedConfig& r) { return cell(integer(r.c->max_epochs)); }},
      {col("diverged", "diverged"), [](const RankedConfig& r) { return cell(integer(r.c->diverged)); }},
      {col("failed", "failed"), [](const RankedConfig& r) { return cell(integer(r.c->failed)); }},
      {col("unfinished", "unfinished"), [](const RankedConfig& r) { return cell(integer(r.c->unfinished)); }},
  };
  return f;
}

struct EffectRow {
  const FactorEffect* f = nullptr;
  const LevelEffect* l = nullptr;
};

const std::vector<Field<EffectRow>>& effect_fields() {
  static const std::vector<Field<EffectRow>> f = {
      {col("factor", "factor"), [](const EffectRow& r) { return cell(text(r.f->factor)); }},
      {col("level", "level", 0), [](const EffectRow& r) { return cell(real(r.l->level)); }},
      {col("configs", "configs"), [](const EffectRow& r) { return cell(integer(r.l->configs)); }},
      {col("energy_per_epoch_j", "J/epoch"), [](const EffectRow& r) { return cell(real(r.l->energy_per_epoch_j)); }},
      {col("epochs", "epochs"), [](const EffectRow& r) { return cell(real(r.l->epochs)); }},
      {col("energy_j", "energy J"), [](const EffectRow& r) { return cell(real(r.l->energy_j)); }},
  };
  return f;
}

const std::vector<Field<GridAnalysis>>& grid_summary_fields() {
  auto cfg = [](const GridAnalysis& g, const std::optional<std::size_t>& i) -> const ConfigSummary* {
    return i ? &g.configs[*i] : nullptr;
  };
  using Pick = std::optional<std::size_t> GridAnalysis::*;
  auto bs = [cfg](Pick pick) {
    return [cfg, pick](const GridAnalysis& g) {
      const auto* c = cfg(g, g.*pick);
      return cell(c ? integer(c->batch_size) : Value(std::monostate{}));
    };
  };
  auto lr = [cfg](Pick pick) {
    return [cfg, pick](const GridAnalysis& g) {
      const auto* c = cfg(g, g.*pick);
      return cell(c ? real(c->learning_rate) : Value(std::monostate{}));
    };
  };
  auto energy = [cfg](Pick pick) {
    return [cfg, pick](const GridAnalysis& g) {
      const auto* c = cfg(g, g.*pick);
      return c ? stat_cell(c->energy_j) : cell(std::monostate{});
    };
  };
  auto metric = [cfg](Pick pick) {
    return [cfg, pick](const GridAnalysis& g) {
      const auto* c = cfg(g, g.*pick);
      return c ? stat_cell(c->metric) : cell(std::monostate{});
    };
  };
  static const std::vector<Field<GridAnalysis>> f = {
      {col("recommended_batch_size", "recommended batch size"), bs(&GridAnalysis::recommended)},
      {col("recommended_learning_rate", "recommended learning rate", 0), lr(&GridAnalysis::recommended)},
      {col("recommended_energy_j", "recommended energy J", 3, true), energy(&GridAnalysis::recommended)},
      {col("recommended_metric", "recommended metric", 4, true), metric(&GridAnalysis::recommended)},
      {col("top_metric", "top metric"), [](const GridAnalysis& g) { return cell(real(g.top_metric)); }},
      {col("metric_tolerance", "metric tolerance"), [](const GridAnalysis& g) { return cell(real(g.metric_tolerance)); }},
      {col("target_metric", "target metric"),
       [](const GridAnalysis& g) { return cell(g.target_metric ? real(*g.target_metric) : Value(std::monostate{})); }},
      {col("recommended_energy_to_target_j", "recommended energy to target J"),
       [](const GridAnalysis& g) {
         return cell(g.target_metric && g.recommended ? real(g.objective_j(*g.recommended)) : Value(std::monostate{}));
       }},
      {col("qualifying", "setups of that quality"),
       [](const GridAnalysis& g) { return cell(integer(static_cast<std::int64_t>(g.qualifying.size()))); }},
      {col("costliest_qualifying_batch_size", "costliest of them: batch size"), bs(&GridAnalysis::costliest_qualifying)},
      {col("costliest_qualifying_learning_rate", "costliest of them: learning rate", 0), lr(&GridAnalysis::costliest_qualifying)},
      {col("saving_pct", "saving of recommended over costliest of them %"),
       [](const GridAnalysis& g) { return cell(real(g.saving_pct)); }},
      {col("worst_over_best", "costliest of them / recommended"),
       [](const GridAnalysis& g) { return cell(real(g.worst_over_best)); }},
      {col("best_batch_size", "cheapest (any metric) batch size"), bs(&GridAnalysis::best)},
      {col("best_learning_rate", "cheapest (any metric) learning rate", 0), lr(&GridAnalysis::best)},
      {col("best_energy_j", "cheapest (any metric) energy J", 3, true), energy(&GridAnalysis::best)},
      {col("best_metric", "cheapest (any metric) metric", 4, true), metric(&GridAnalysis::best)},
      {col("worst_batch_size", "costliest (any metric) batch size"), bs(&GridAnalysis::worst)},
      {col("worst_learning_rate", "costliest (any metric) learning rate", 0), lr(&GridAnalysis::worst)},
      {col("worst_energy_j", "costliest (any metric) energy J", 3, true), energy(&GridAnalysis::worst)},
      {col("batch_size_energy_per_epoch_ratio", "batch size: J/epoch max/min"),
       [](const GridAnalysis& g) { return cell(real(g.batch_size.energy_per_epoch_ratio)); }},
      {col("batch_size_epochs_ratio", "batch size: epochs max/min"),
       [](const GridAnalysis& g) { return cell(real(g.batch_size.epochs_ratio)); }},
      {col("learning_rate_energy_per_epoch_ratio", "learning rate: J/epoch max/min"),
       [](const GridAnalysis& g) { return cell(real(g.learning_rate.energy_per_epoch_ratio)); }},
      {col("learning_rate_epochs_ratio", "learning rate: epochs max/min"),
       [](const GridAnalysis& g) { return cell(real(g.learning_rate.epochs_ratio)); }},
      {col("trials", "trials"), [](const GridAnalysis& g) { return cell(integer(g.trials)); }},
      {col("results", "results"), [](const GridAnalysis& g) { return cell(integer(g.results)); }},
      {col("diverged", "diverged runs"), [](const GridAnalysis& g) { return cell(integer(g.diverged)); }},
      {col("failed", "failed runs"), [](const GridAnalysis& g) { return cell(integer(g.failed)); }},
      {col("unfinished", "unfinished"), [](const GridAnalysis& g) { return cell(integer(g.unfinished)); }},
  };
  return f;
}

struct StepRow {
  int step = 0;
  std::string task;
  const VariantSummary* v = nullptr;
  double saving_pct = kNaN;
};

const std::vector<Field<StepRow>>& step_fields() {
  static const std::vector<Field<StepRow>> f = {
      {col("step", "step"), [](const StepRow& r) { return cell(integer(r.step)); }},
      {col("task", "task"), [](const StepRow& r) { return cell(text(r.task)); }},
      {col("variant", "variant"), [](const StepRow& r) { return cell(text(r.v->variant)); }},
      {col("results", "runs"), [](const StepRow& r) { return cell(integer(r.v->results)); }},
      {col("diverged", "diverged"), [](const StepRow& r) { return cell(integer(r.v->diverged)); }},
      {col("energy_j", "energy J", 3, true), [](const StepRow& r) { return stat_cell(r.v->energy_j); }},
      {col("epochs", "epochs", 3, true), [](const StepRow& r) { return stat_cell(r.v->epochs); }},
      {col("duration_s", "time s", 3, true), [](const StepRow& r) { return stat_cell(r.v->duration_s); }},
      {col("metric", "metric", 4, true), [](const StepRow& r) { return stat_cell(r.v->metric); }},
      {col("saving_vs_scratch_pct", "saving %"), [](const StepRow& r) { return cell(real(r.saving_pct)); }},
  };
  return f;
}

const std::vector<Field<BreakEven>>& break_even_fields() {
  static const std::vector<Field<BreakEven>> f = {
      {col("variant", "variant"), [](const BreakEven& b) { return cell(text(b.variant)); }},
      {col("pretrain_energy_j", "pretrain J"), [](const BreakEven& b) { return cell(real(b.pretrain_energy_j)); }},
      {col("scratch_energy_j", "scratch J/step"), [](const BreakEven& b) { return cell(real(b.scratch_energy_j)); }},
      {col("reuse_energy_j", "reuse J/step"), [](const BreakEven& b) { return cell(real(b.reuse_energy_j)); }},
      {col("saving_per_reuse_j", "saved J/reuse"), [](const BreakEven& b) { return cell(real(b.saving_per_reuse_j)); }},
      {col("break_even_reuses", "N*"), [](const BreakEven& b) { return cell(opt_real(b.reuses)); }},
      {col("reuses_needed", "reuses needed"),
       [](const BreakEven& b) { return cell(b.reuses_needed ? integer(*b.reuses_needed) : Value(std::monostate{})); }},
      {col("verdict", "verdict"), [](const BreakEven& b) {
         if (std::isnan(b.pretrain_energy_j) || std::isnan(b.scratch_energy_j) || std::isnan(b.reuse_energy_j))
           return cell(text("no data yet"));
         if (!b.pays_off()) return cell(text("never pays off: reuse saves no energy"));
         return cell(text(fmt::format("pays off after {} reuse{}", *b.reuses_needed, *b.reuses_needed == 1 ? "" : "s")));
       }},
  };
  return f;
}

const std::vector<Field<TaskComparison>>& task_fields() {
  static const std::vector<Field<TaskComparison>> f = {
      {col("task", "task"), [](const TaskComparison& c) { return cell(text(c.task)); }},
      {col("single_results", "runs"), [](const TaskComparison& c) { return cell(integer(c.single.results)); }},
      {col("single_energy_j", "single J", 3, true), [](const TaskComparison& c) { return stat_cell(c.single.energy_j); }},
      {col("single_epochs", "single epochs", 3, true), [](const TaskComparison& c) { return stat_cell(c.single.epochs); }},
      {col("single_duration_s", "single s", 3, true), [](const TaskComparison& c) { return stat_cell(c.single.duration_s); }},
      {col("single_metric", "single metric", 4, true), [](const TaskComparison& c) { return stat_cell(c.single.metric); }},
      {col("multi_metric", "shared metric", 4, true), [](const TaskComparison& c) { return stat_cell(c.multi_metric); }},
      {col("metric_delta", "shared - single", 3), [](const TaskComparison& c) { return cell(real(c.metric_delta)); }},
  };
  return f;
}

const std::vector<Field<MultitaskAnalysis>>& multitask_total_fields() {
  static const std::vector<Field<MultitaskAnalysis>> f = {
      {col("tasks", "tasks"), [](const MultitaskAnalysis& a) { return cell(integer(static_cast<std::int64_t>(a.tasks.size()))); }},
      {col("single_energy_j", "single-task models J (sum)"), [](const MultitaskAnalysis& a) { return cell(real(a.single_energy_j)); }},
      {col("multi_energy_j", "shared model J", 3, true), [](const MultitaskAnalysis& a) { return stat_cell(a.multi.energy_j); }},
      {col("saving_pct", "saving of shared over single %"), [](const MultitaskAnalysis& a) { return cell(real(a.saving_pct)); }},
      {col("single_epochs", "single-task epochs (sum)"), [](const MultitaskAnalysis& a) { return cell(real(a.single_epochs)); }},
      {col("multi_epochs", "shared model epochs", 3, true), [](const MultitaskAnalysis& a) { return stat_cell(a.multi.epochs); }},
      {col("single_duration_s", "single-task time s (sum)"), [](const MultitaskAnalysis& a) { return cell(real(a.single_duration_s)); }},
      {col("multi_duration_s", "shared model time s", 3, true), [](const MultitaskAnalysis& a) { return stat_cell(a.multi.duration_s); }},
      {col("single_mean_metric", "single-task metric (mean)", 4), [](const MultitaskAnalysis& a) { return cell(real(a.single_mean_metric)); }},
      {col("multi_mean_metric", "shared model metric (mean)", 4), [](const MultitaskAnalysis& a) { return cell(real(a.multi_mean_metric)); }},
      {col("multi_results", "shared model runs"), [](const MultitaskAnalysis& a) { return cell(integer(a.multi.results)); }},
      {col("multi_diverged", "shared model diverged"), [](const MultitaskAnalysis& a) { return cell(integer(a.multi.diverged)); }},
  };
  return f;
}

}  // namespace

table::Table trials_table(const std::vector<TrialOutcome>& trials) {
  auto t = make_table("trials", "Trials", trial_fields(), trials);
  if (auto n = interference_count(trials))
    t.notes.push_back(interference_note(n));
  std::size_t waited = 0;
  double waited_s = 0;
  for (const auto& o : trials)
    if (o.quiet_wait_s && *o.quiet_wait_s > 0) ++waited, waited_s += *o.quiet_wait_s;
  const auto shared = static_cast<std::size_t>(std::count_if(trials.begin(), trials.end(), [](const TrialOutcome& o) {
    return o.placement.find("shared with other jobs") != std::string::npos;
  }));
  if (shared)
    t.notes.push_back(fmt::format(
        "{} trial{} ran on Slurm nodes shared with other jobs: node-wide energy (RAPL, the CPU estimate) includes "
        "their work; GPU energy is per device and {}. Use execution.slurm.exclusive for whole nodes.",
        shared, shared == 1 ? "" : "s", shared == 1 ? "its own" : "their own"));
  if (waited)
    t.notes.push_back(fmt::format("{} trial{} waited {:.1f} s in all for a quiet machine before {} began.", waited,
                                  waited == 1 ? "" : "s", waited_s, waited == 1 ? "it" : "they"));
  return t;
}

std::size_t interference_count(const std::vector<TrialOutcome>& trials) {
  return static_cast<std::size_t>(
      std::count_if(trials.begin(), trials.end(), [](const TrialOutcome& o) { return o.interfered(); }));
}

std::string interference_note(std::size_t n) {
  return fmt::format(
      "busy: {} trial{} ran while other processes used at least {:.0f}% of the machine's busy CPU time (and at "
      "least {:.0f} CPU-s). Energy counters are machine-wide: the energy column is the run's own share (idle "
      "power by its reserved CPUs, the rest by its CPU time; GPUs by their processes) and \"machine J\" what the "
      "meters read. The share is an attribution, not a separate measurement: to measure {} alone, rerun {} on a "
      "quiet machine, or set execution.quiet_wait_s to wait for one.",
      n, n == 1 ? "" : "s", 100 * energy::kMaterialOthersShare, energy::kMaterialOthersCpuS, n == 1 ? "it" : "them",
      n == 1 ? "it" : "them");
}

std::vector<table::Table> grid_tables(const GridAnalysis& g) {
  std::vector<table::Table> out;
  std::vector<RankedConfig> rows;
  const double best = g.best ? g.configs[*g.best].energy_j.mean : kNaN;
  auto row_of = [&](std::size_t i, int rank) {
    RankedConfig r;
    r.rank = rank;
    r.c = &g.configs[i];
    if (rank && best > 0.0) r.vs_best = g.configs[i].energy_j.mean / best;
    r.pareto = std::find(g.pareto.begin(), g.pareto.end(), i) != g.pareto.end();
    return r;
  };
  int rank = 0;
  for (auto i : g.ranking) rows.push_back(row_of(i, ++rank));
  for (auto i : g.unranked) rows.push_back(row_of(i, 0));
  auto configs = make_table("grid_configs", "Configurations, cheapest first (total energy to convergence)", config_fields(), rows);
  configs.notes.push_back(
      "mean ± sd over seeds; J/epoch counts every run, the other columns leave diverged runs out; "
      "ties in energy go to the higher metric, then the shorter time.");
  if (!g.unranked.empty())
    configs.notes.push_back("rank '-': no usable run (every seed diverged, failed or is unfinished).");
  out.push_back(std::move(configs));

  std::vector<RankedConfig> front;
  for (auto i : g.pareto) front.push_back(row_of(i, static_cast<int>(std::find(g.ranking.begin(), g.ranking.end(), i) - g.ranking.begin()) + 1));
  out.push_back(make_table("grid_pareto", "Pareto front: energy to convergence vs metric", config_fields(), front));

  std::vector<EffectRow> effects;
  for (const auto* f : {&g.batch_size, &g.learning_rate})
    for (const auto& l : f->levels) effects.push_back({f, &l});
  auto eff = make_table("grid_effects", "Effects: each level averaged over the other factor", effect_fields(), effects);
  // A ratio needs two levels with results; without them it is said, not printed as "nanx".
  auto times = [](double r) { return std::isfinite(r) ? table::real_text(r, 3) + "x" : std::string("by an unknown factor"); };
  eff.notes.push_back(fmt::format(
      "batch size moves energy per epoch {} and epochs {}; learning rate moves energy per epoch {} and epochs {} "
      "(max/min over levels{}).",
      times(g.batch_size.energy_per_epoch_ratio), times(g.batch_size.epochs_ratio),
      times(g.learning_rate.energy_per_epoch_ratio), times(g.learning_rate.epochs_ratio),
      std::isfinite(g.batch_size.energy_per_epoch_ratio) && std::isfinite(g.learning_rate.epochs_ratio)
          ? ""
          : "; unknown where fewer than two levels have a result"));
  out.push_back(std::move(eff));

  auto summary = make_table("grid_summary", "Summary", grid_summary_fields(), std::vector<GridAnalysis>{g});
  summary.vertical = true;
  if (g.recommended) {
    const auto& r = g.configs[*g.recommended];
    const auto& w = g.configs[*g.costliest_qualifying];
    const std::string quality =
        g.target_metric ? fmt::format("reached the target metric {} (in every seed)", table::real_text(*g.target_metric, 4))
                        : fmt::format("came within {} of the top metric {}", table::real_text(g.metric_tolerance, 3),
                                      table::real_text(g.top_metric, 4));
    summary.notes.push_back(fmt::format(
        "recommended: batch {}, lr {}: of the {} setup{} that {}, the cheapest by energy to {}: {} J at a metric of {}{}.",
        r.batch_size, fmt_level(r.learning_rate), g.qualifying.size(), g.qualifying.size() == 1 ? "" : "s", quality,
        g.target_metric ? "the target" : "convergence", table::real_text(g.objective_j(*g.recommended), 3),
        table::real_text(r.metric.mean, 4),
        g.qualifying.size() > 1
            ? fmt::format(", {}% less than the costliest of them (batch {}, lr {})", table::real_text(g.saving_pct, 3),
                          w.batch_size, fmt_level(w.learning_rate))
            : ""));
  } else if (g.target_metric && !g.ranking.empty()) {
    summary.notes.push_back(fmt::format(
        "no setup reached the target metric {} in every seed: nothing to recommend, and no saving to quote.",
        table::real_text(*g.target_metric, 4)));
  }
  if (g.best && g.recommended &&
      std::find(g.qualifying.begin(), g.qualifying.end(), *g.best) == g.qualifying.end()) {
    const auto& b = g.configs[*g.best];
    summary.notes.push_back(fmt::format(
        "the cheapest setup of any quality (batch {}, lr {}, {} J) stopped at a metric of {}: it is not compared.",
        b.batch_size, fmt_level(b.learning_rate), table::real_text(b.energy_j.mean, 3), table::real_text(b.metric.mean, 4)));
  }
  out.push_back(std::move(summary));
  return out;
}

std::vector<table::Table> pretrain_tables(const PretrainAnalysis& a) {
  std::vector<StepRow> rows;
  rows.push_back({0, "pretraining", &a.pretrain, kNaN});
  for (const auto& s : a.steps) {
    rows.push_back({s.step, s.task, &s.scratch, kNaN});
    rows.push_back({s.step, s.task, &s.finetune, s.finetune_saving_pct});
    rows.push_back({s.step, s.task, &s.frozen, s.frozen_saving_pct});
  }
  // Variants a study did not train have no trials: leave their rows out.
  std::vector<StepRow> kept;
  for (const auto& r : rows)
    if (r.v->results + r.v->missing > 0) kept.push_back(r);
  std::vector<table::Table> out;
  auto steps = make_table("pretrain_steps", "Recycling steps: scratch vs pretrained encoder", step_fields(), kept);
  steps.notes.push_back("saving %: energy saved over training the same step from scratch (negative: costs more).");
  out.push_back(std::move(steps));
  std::vector<BreakEven> be;
  for (const auto* b : {&a.finetune, &a.frozen})
    if (!std::isnan(b->reuse_energy_j) || a.steps.empty()) be.push_back(*b);
  auto t = make_table("pretrain_break_even", "Break-even: reuses that pay for the pretraining", break_even_fields(), be);
  t.notes.push_back("N* = E_pretrain / (E_scratch - E_reuse) over the mean per-step energies; never pays off when reuse saves nothing.");
  out.push_back(std::move(t));
  return out;
}

std::vector<table::Table> multitask_tables(const MultitaskAnalysis& a) {
  std::vector<table::Table> out;
  auto tasks = make_table("multitask_tasks", "Tasks: one model each vs one shared model", task_fields(), a.tasks);
  tasks.notes.push_back("metric: test accuracy of each task (the shared model's per-task accuracy from its heads).");
  out.push_back(std::move(tasks));
  auto totals = make_table("multitask_totals", "Totals: K single-task models vs one shared model", multitask_total_fields(),
                           std::vector<MultitaskAnalysis>{a});
  totals.vertical = true;
  out.push_back(std::move(totals));
  return out;
}

std::vector<table::Table> study_tables(const store::Study& study, const std::vector<TrialOutcome>& trials) {
  std::vector<table::Table> out;
  out.push_back(trials_table(trials));
  // A kind no longer registered (a database from another build) keeps the tables every study has.
  const auto* kind = find_study_kind(study.kind);
  std::vector<table::Table> more;
  if (kind) more = kind->tables_of(study, trials);
  for (auto& t : more) out.push_back(std::move(t));
  // A search's segments are parts of runs: their forecasts are judged in the setups' table.
  if (!kind || kind->judges_forecasts)
    if (auto p = prediction_table(trials)) out.push_back(std::move(*p));
  if (auto c = cluster_energy_table(trials)) out.push_back(std::move(*c));
  return out;
}

namespace {
struct PredictionRow {
  const TrialOutcome* t = nullptr;
  int at25 = 0, at50 = 0;
  run::EpochForecast f25, f50;
};

predict::BacktestRun recorded(const TrialOutcome& t) {
  predict::BacktestRun r;
  for (const auto& e : t.epoch_records) r.epochs.push_back({e.epoch, e.val_metric, e.energy_j});
  r.rule = predict::rule_settings(t.config);
  r.traits = {t.batch_size, t.phase + "/" + t.task};
  for (const auto& e : t.epoch_records) r.energy_j += e.energy_j;
  return r;
}

double ape_pct(double predicted, double actual) { return 100.0 * std::abs(predicted - actual) / actual; }

double median_of(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}
}  // namespace

std::optional<table::Table> prediction_table(const std::vector<TrialOutcome>& trials) {
  std::vector<PredictionRow> rows;
  std::vector<predict::BacktestRun> runs;
  for (const auto& t : trials) {
    const int n = static_cast<int>(t.epoch_records.size());
    if (!t.usable() || n < 2 || !(t.energy_j > 0)) continue;
    bool in_order = true;
    for (int i = 0; i < n; ++i) in_order = in_order && t.epoch_records[static_cast<std::size_t>(i)].epoch == i + 1;
    if (!in_order) continue;
    auto r = recorded(t);
    try {
      predict::predict_linear({r.epochs.begin(), r.epochs.begin() + 1}, r.rule);
    } catch (const std::exception&) {
      continue;  // settings the rule refuses: nothing to predict
    }
    PredictionRow row;
    row.t = &t;
    row.at25 = std::clamp(static_cast<int>(std::lround(0.25 * n)), 1, n - 1);
    row.at50 = std::clamp(static_cast<int>(std::lround(0.5 * n)), 1, n - 1);
    rows.push_back(row);
    runs.push_back(std::move(r));
  }
  if (rows.empty()) return std::nullopt;
  // The forecast after `seen` epochs: as recorded with the run, else as the
  // run session makes it, with the study's other finished runs as its peers
  // and their backtest (leave one out: the run's own outcome is not used).
  predict::CurveCache cache;
  int recomputed = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto& row = rows[i];
    const auto& records = row.t->epoch_records;
    std::optional<predict::Backtest> bt;
    auto forecast = [&](int seen) -> run::EpochForecast {
      if (const auto& f = records[static_cast<std::size_t>(seen - 1)].forecast) return *f;
      ++recomputed;
      if (!bt) bt = predict::backtest(runs, i, &cache);
      const std::vector<predict::CurvePoint> part(runs[i].epochs.begin(), runs[i].epochs.begin() + seen);
      return predict::to_forecast(
          predict::predict_in_study(part, runs[i].rule, runs[i].traits, predict::peers_of(runs, i), *bt));
    };
    row.f25 = forecast(row.at25);
    row.f50 = forecast(row.at50);
  }
  auto in = [](const run::EpochForecast& f, double v) { return f.energy_low_j <= v && v <= f.energy_high_j; };
  static const std::vector<Field<PredictionRow>> fields = {
      {col("phase", "phase"), [](const PredictionRow& r) { return cell(text(r.t->phase)); }},
      {col("task", "task"), [](const PredictionRow& r) { return cell(text(r.t->task)); }},
      {col("batch_size", "batch"), [](const PredictionRow& r) { return cell(integer(r.t->batch_size)); }},
      {col("learning_rate", "lr", 0), [](const PredictionRow& r) { return cell(real(r.t->learning_rate)); }},
      {col("seed", "seed"), [](const PredictionRow& r) { return cell(integer(static_cast<std::int64_t>(r.t->seed))); }},
      {col("epochs", "epochs"), [](const PredictionRow& r) { return cell(integer(r.t->epochs)); }},
      {col("energy_j", "energy J"), [](const PredictionRow& r) { return cell(real(r.t->energy_j)); }},
      {col("seen_25", "seen"), [](const PredictionRow& r) { return cell(integer(r.at25)); }},
      {col("predicted_25_j", "predicted J"), [](const PredictionRow& r) { return cell(real(r.f25.energy_j)); }},
      {col("predicted_25_low_j", "low"), [](const PredictionRow& r) { return cell(real(r.f25.energy_low_j)); }},
      {col("predicted_25_high_j", "high"), [](const PredictionRow& r) { return cell(real(r.f25.energy_high_j)); }},
      {col("error_25_pct", "err %", 2), [](const PredictionRow& r) { return cell(real(ape_pct(r.f25.energy_j, r.t->energy_j))); }},
      {col("method_25", "method"), [](const PredictionRow& r) { return cell(text(r.f25.method)); }},
      {col("seen_50", "seen"), [](const PredictionRow& r) { return cell(integer(r.at50)); }},
      {col("predicted_50_j", "predicted J"), [](const PredictionRow& r) { return cell(real(r.f50.energy_j)); }},
      {col("predicted_50_low_j", "low"), [](const PredictionRow& r) { return cell(real(r.f50.energy_low_j)); }},
      {col("predicted_50_high_j", "high"), [](const PredictionRow& r) { return cell(real(r.f50.energy_high_j)); }},
      {col("error_50_pct", "err %", 2), [](const PredictionRow& r) { return cell(real(ape_pct(r.f50.energy_j, r.t->energy_j))); }},
      {col("method_50", "method"), [](const PredictionRow& r) { return cell(text(r.f50.method)); }},
  };
  auto t = make_table("predictions", "Predicted energy to convergence after 25% and 50% of each run's epochs", fields, rows);
  int held25 = 0, held50 = 0;
  std::vector<double> err25, err50, lin25, lin50;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    held25 += in(r.f25, r.t->energy_j);
    held50 += in(r.f50, r.t->energy_j);
    err25.push_back(ape_pct(r.f25.energy_j, r.t->energy_j));
    err50.push_back(ape_pct(r.f50.energy_j, r.t->energy_j));
    for (int seen : {r.at25, r.at50}) {
      const auto l = predict::predict_linear({runs[i].epochs.begin(), runs[i].epochs.begin() + seen}, runs[i].rule);
      (seen == r.at25 ? lin25 : lin50).push_back(ape_pct(l.energy_to_stop_j.mid, r.t->energy_j));
    }
  }
  const std::size_t stored = 2 * rows.size() - static_cast<std::size_t>(recomputed);
  t.notes.push_back(fmt::format(
      "{} finished runs. The forecasts shown ({} recorded with the runs, {} recomputed as the run would make them "
      "knowing the study's other finished runs): median error {}% after 25% of the epochs, {}% after 50%; the 80% "
      "interval held the outcome in {}/{} and {}/{} runs. CarbonTracker's linear rule (mean epoch energy x max "
      "epochs): median error {}% and {}%.",
      rows.size(), stored, recomputed, table::real_text(median_of(err25), 3), table::real_text(median_of(err50), 3), held25,
      rows.size(), held50, rows.size(), table::real_text(median_of(lin25), 3), table::real_text(median_of(lin50), 3)));
  const auto bt = predict::backtest(runs, std::nullopt, &cache);
  if (bt.calibrated)
    t.notes.push_back(fmt::format(
        "Backtest on the {} finished runs (each forecast after 25% and 50% of a run from the other runs): median error "
        "{}; a run of this study now gets the {} forecast, its 80% interval "
        "the median plus {}% to {}% of the energy it predicts is still to come (split conformal on these residuals).",
        bt.runs, predict::describe_errors(bt), predict::to_string(bt.chosen), table::real_text(100 * bt.residual_low, 3),
        table::real_text(100 * bt.residual_high, 3)));
  t.notes.push_back(fmt::format(
      "Methods: {}; ', by backtest of N runs' marks the method the study's backtest chose (at least {} finished runs).",
      predict::method_glossary(), predict::kMinBacktestRuns));
  return t;
}

std::optional<table::Table> cluster_energy_table(const std::vector<TrialOutcome>& trials) {
  std::vector<TrialOutcome> rows;
  for (const auto& o : trials)
    if (o.cluster_energy_j) rows.push_back(o);
  if (rows.empty()) return std::nullopt;
  static const std::vector<Field<TrialOutcome>> fields = {
      {col("phase", "phase"), [](const TrialOutcome& t) { return cell(text(t.phase)); }},
      {col("task", "task"), [](const TrialOutcome& t) { return cell(text(t.task)); }},
      {col("batch_size", "batch"), [](const TrialOutcome& t) { return cell(integer(t.batch_size)); }},
      {col("learning_rate", "lr", 0), [](const TrialOutcome& t) { return cell(real(t.learning_rate)); }},
      {col("seed", "seed"), [](const TrialOutcome& t) { return cell(integer(static_cast<std::int64_t>(t.seed))); }},
      {col("slurm_job", "job"), [](const TrialOutcome& t) { return cell(text(t.slurm_job)); }},
      {col("energy_j", "powertrain J"), [](const TrialOutcome& t) { return cell(real(t.energy_j)); }},
      {col("cluster_energy_j", "Slurm J"), [](const TrialOutcome& t) { return cell(real(*t.cluster_energy_j)); }},
      {col("cluster_over_powertrain", "Slurm / powertrain"),
       [](const TrialOutcome& t) { return cell(real(t.energy_j > 0 ? *t.cluster_energy_j / t.energy_j : kNaN)); }},
  };
  auto t = make_table("cluster_energy", "Energy: powertrain beside the cluster's own accounting (sacct)", fields, rows);
  t.notes.push_back(
      "Slurm's ConsumedEnergy covers the whole job step on the node's sensors (its acct_gather_energy plugin), start-up "
      "and data loading included, and other jobs on a shared node; powertrain's covers the run's epochs on the devices "
      "it measured. A ratio far from 1 says which of these dominates.");
  return t;
}

}  // namespace powertrain::study
