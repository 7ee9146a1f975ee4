// Pure analyses of the grid, pretraining and multitask studies (no torch, no database).
#include "powertrain/study/analysis.h"
#include "powertrain/study/spec.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <tuple>

#include <fmt/format.h>

namespace powertrain::study {
namespace {

double mean_of(const std::vector<double>& v) {
  double sum = 0.0;
  int n = 0;
  for (double x : v) {
    if (std::isnan(x)) continue;
    sum += x;
    ++n;
  }
  return n > 0 ? sum / n : kNaN;
}

double ratio_max_min(const std::vector<double>& v) {
  double lo = kNaN, hi = kNaN;
  for (double x : v) {
    if (std::isnan(x)) continue;
    if (std::isnan(lo) || x < lo) lo = x;
    if (std::isnan(hi) || x > hi) hi = x;
  }
  if (std::isnan(lo) || !(lo > 0.0)) return kNaN;
  return hi / lo;
}

std::vector<std::string> split_tasks(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty() || !out.empty()) out.push_back(cur);
  return out;
}

}  // namespace

Stat describe(const std::vector<double>& values) {
  Stat s;
  double sum = 0.0;
  for (double x : values) {
    if (std::isnan(x)) continue;
    ++s.n;
    sum += x;
    if (s.n == 1 || x < s.min) s.min = x;
    if (s.n == 1 || x > s.max) s.max = x;
  }
  if (s.n == 0) return s;
  s.mean = sum / s.n;
  if (s.n == 1) {
    s.sd = 0.0;
    return s;
  }
  double ss = 0.0;
  for (double x : values) {
    if (std::isnan(x)) continue;
    ss += (x - s.mean) * (x - s.mean);
  }
  s.sd = std::sqrt(ss / (s.n - 1));
  return s;
}

// --- outcomes ------------------------------------------------------------------

std::string task_metrics_message(const std::vector<double>& task_metrics) {
  std::string out = "task_metrics=[";
  for (std::size_t i = 0; i < task_metrics.size(); ++i) {
    if (i) out += ',';
    out += std::isnan(task_metrics[i]) ? std::string("nan") : fmt::format("{}", task_metrics[i]);
  }
  return out + "]";
}

std::vector<double> parse_task_metrics_message(const std::string& message) {
  static const std::string prefix = "task_metrics=[";
  if (message.rfind(prefix, 0) != 0 || message.back() != ']') return {};
  const std::string body = message.substr(prefix.size(), message.size() - prefix.size() - 1);
  std::vector<double> out;
  if (body.empty()) return out;
  for (const auto& part : split_tasks(body)) {
    if (part == "nan") {
      out.push_back(kNaN);
      continue;
    }
    try {
      std::size_t used = 0;
      out.push_back(std::stod(part, &used));
      if (used != part.size()) return {};
    } catch (const std::exception&) {
      return {};
    }
  }
  return out;
}

TrialOutcome outcome_of(const store::TrialResult& r) {
  TrialOutcome o;
  o.key = r.trial.key;
  o.phase = r.trial.phase;
  o.step = r.trial.step;
  o.task = r.trial.task;
  o.batch_size = r.trial.config.batch_size;
  o.learning_rate = r.trial.config.learning_rate;
  o.seed = r.trial.config.seed;
  o.status = r.trial.status;
  o.message = r.trial.message;
  if (r.run) {
    const auto& s = r.run->summary;
    o.epochs = s.epochs;
    o.energy_j = s.energy_j;
    o.machine_energy_j = s.machine_energy_j;
    o.duration_s = s.duration_s;
    o.metric = std::isnan(s.test_metric) ? s.best_val_metric : s.test_metric;
    o.task_metrics = s.test_task_metrics;
    o.cpu = s.cpu;
    o.quiet_wait_s = s.quiet_wait_s;
    o.energy_to_target_j = s.energy_to_target_j;
    o.placement = r.run->environment.placement;
    o.slurm_job = r.run->slurm_job;
    o.cluster_energy_j = r.run->cluster_energy_j;
    o.config = r.run->config;
  }
  if (o.task_metrics.empty()) o.task_metrics = parse_task_metrics_message(o.message);
  return o;
}

void attach_epochs(std::vector<TrialOutcome>& outcomes, const std::vector<store::TrialResult>& results,
                   const std::function<std::vector<run::EpochRecord>(std::int64_t run_id)>& epochs_of) {
  for (std::size_t i = 0; i < outcomes.size() && i < results.size(); ++i)
    if (results[i].run) outcomes[i].epoch_records = epochs_of(results[i].run->id);
}

std::vector<TrialOutcome> outcomes_of(const std::vector<store::TrialResult>& results) {
  std::vector<TrialOutcome> out;
  out.reserve(results.size());
  for (const auto& r : results) out.push_back(outcome_of(r));
  return out;
}

// --- grid ----------------------------------------------------------------------

std::vector<ConfigSummary> summarize_configs(const std::vector<TrialOutcome>& trials) {
  std::map<std::pair<std::int64_t, double>, std::vector<const TrialOutcome*>> groups;
  for (const auto& t : trials) groups[{t.batch_size, t.learning_rate}].push_back(&t);
  std::vector<ConfigSummary> out;
  for (const auto& [k, group] : groups) {
    ConfigSummary c;
    c.batch_size = k.first;
    c.learning_rate = k.second;
    std::vector<double> epe, epochs, energy, time, metric, to_target;
    for (const auto* t : group) {
      ++c.trials;
      switch (t->status) {
        case store::TrialStatus::converged: ++c.converged; break;
        case store::TrialStatus::max_epochs: ++c.max_epochs; break;
        case store::TrialStatus::diverged: ++c.diverged; break;
        case store::TrialStatus::failed: ++c.failed; break;
        default: ++c.unfinished; break;
      }
      if (!t->has_result()) continue;
      ++c.results;
      if (t->epochs > 0) epe.push_back(t->energy_per_epoch_j());
      if (t->diverged()) continue;
      epochs.push_back(t->epochs);
      energy.push_back(t->energy_j);
      time.push_back(t->duration_s);
      metric.push_back(t->metric);
      if (t->energy_to_target_j) to_target.push_back(*t->energy_to_target_j);
    }
    c.reached = static_cast<int>(to_target.size());
    c.energy_to_target_j = describe(to_target);
    c.energy_per_epoch_j = describe(epe);
    c.epochs = describe(epochs);
    c.energy_j = describe(energy);
    c.duration_s = describe(time);
    c.metric = describe(metric);
    out.push_back(c);
  }
  return out;
}

std::vector<std::size_t> rank_configs(const std::vector<ConfigSummary>& configs) {
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < configs.size(); ++i)
    if (configs[i].ranked()) idx.push_back(i);
  // NaN metrics sort last among ties: compare -metric with NaN mapped to +inf.
  auto neg_metric = [](const ConfigSummary& c) {
    return std::isnan(c.metric.mean) ? std::numeric_limits<double>::infinity() : -c.metric.mean;
  };
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    const auto& x = configs[a];
    const auto& y = configs[b];
    return std::make_tuple(x.energy_j.mean, neg_metric(x), x.duration_s.mean, x.batch_size, x.learning_rate) <
           std::make_tuple(y.energy_j.mean, neg_metric(y), y.duration_s.mean, y.batch_size, y.learning_rate);
  });
  return idx;
}

std::vector<std::size_t> pareto_front(const std::vector<ConfigSummary>& configs) {
  std::vector<std::size_t> front;
  for (std::size_t i : rank_configs(configs)) {
    const auto& c = configs[i];
    if (std::isnan(c.metric.mean)) continue;
    bool dominated = false;
    for (std::size_t j = 0; j < configs.size() && !dominated; ++j) {
      if (j == i || !configs[j].ranked() || std::isnan(configs[j].metric.mean)) continue;
      const auto& d = configs[j];
      const bool no_worse = d.energy_j.mean <= c.energy_j.mean && d.metric.mean >= c.metric.mean;
      const bool better = d.energy_j.mean < c.energy_j.mean || d.metric.mean > c.metric.mean;
      dominated = no_worse && better;
    }
    if (!dominated) front.push_back(i);
  }
  return front;
}

double saving_percent(double best, double worst) {
  if (!std::isfinite(best) || !std::isfinite(worst) || !(worst > 0.0)) return kNaN;
  return (worst - best) / worst * 100.0;
}

namespace {

template <typename LevelOf>
FactorEffect factor_effect(const std::string& factor, const std::vector<ConfigSummary>& configs, LevelOf level_of) {
  FactorEffect f;
  f.factor = factor;
  std::map<double, std::vector<const ConfigSummary*>> by_level;
  for (const auto& c : configs) by_level[level_of(c)].push_back(&c);
  std::vector<double> epe_levels, epochs_levels;
  for (const auto& [level, group] : by_level) {
    LevelEffect e;
    e.level = level;
    std::vector<double> epe, epochs, energy;
    for (const auto* c : group) {
      if (c->energy_per_epoch_j.n > 0) {
        epe.push_back(c->energy_per_epoch_j.mean);
        ++e.configs;
      }
      if (c->ranked()) {
        epochs.push_back(c->epochs.mean);
        energy.push_back(c->energy_j.mean);
      }
    }
    e.energy_per_epoch_j = mean_of(epe);
    e.epochs = mean_of(epochs);
    e.energy_j = mean_of(energy);
    epe_levels.push_back(e.energy_per_epoch_j);
    epochs_levels.push_back(e.epochs);
    f.levels.push_back(e);
  }
  f.energy_per_epoch_ratio = ratio_max_min(epe_levels);
  f.epochs_ratio = ratio_max_min(epochs_levels);
  return f;
}

}  // namespace

FactorEffect batch_size_effect(const std::vector<ConfigSummary>& configs) {
  return factor_effect("batch_size", configs, [](const ConfigSummary& c) { return static_cast<double>(c.batch_size); });
}

FactorEffect learning_rate_effect(const std::vector<ConfigSummary>& configs) {
  return factor_effect("learning_rate", configs, [](const ConfigSummary& c) { return c.learning_rate; });
}

namespace {

double top_metric_of(const std::vector<ConfigSummary>& configs, const std::vector<std::size_t>& ranking) {
  double top = kNaN;
  for (auto i : ranking) {
    const double m = configs[i].metric.mean;
    if (std::isfinite(m) && !(m <= top)) top = m;
  }
  return top;
}

}  // namespace

std::optional<std::size_t> recommend_config(const std::vector<ConfigSummary>& configs,
                                            const std::vector<std::size_t>& ranking, double metric_tolerance) {
  if (ranking.empty()) return std::nullopt;
  const double top = top_metric_of(configs, ranking);
  if (!std::isfinite(top)) return ranking.front();
  for (auto i : ranking)  // cheapest first
    if (std::isfinite(configs[i].metric.mean) && configs[i].metric.mean >= top - metric_tolerance) return i;
  return ranking.front();  // not reached: the top one qualifies
}

double GridAnalysis::objective_j(std::size_t i) const {
  return target_metric ? configs[i].energy_to_target_j.mean : configs[i].energy_j.mean;
}

std::pair<double, std::optional<double>> grid_objective(const store::Study& study, std::string* problem) {
  try {
    const auto spec = parse_spec(study.spec, "<stored spec>", study.kind);
    return {spec.metric_tolerance, spec.base.target_metric};
  } catch (const std::exception& e) {
    if (problem)
      *problem = fmt::format("The stored specification no longer reads ({}): the default metric tolerance ({}) "
                             "and no target metric were used.",
                             e.what(), kDefaultMetricTolerance);
    return {kDefaultMetricTolerance, std::nullopt};
  }
}

GridAnalysis analyze_grid(const std::vector<TrialOutcome>& trials, double metric_tolerance,
                          std::optional<double> target_metric) {
  GridAnalysis g;
  g.target_metric = target_metric;
  g.configs = summarize_configs(trials);
  g.ranking = rank_configs(g.configs);
  g.metric_tolerance = metric_tolerance;
  g.top_metric = top_metric_of(g.configs, g.ranking);
  for (std::size_t i = 0; i < g.configs.size(); ++i)
    if (!g.configs[i].ranked()) g.unranked.push_back(i);
  if (!g.ranking.empty()) {
    g.best = g.ranking.front();
    g.worst = g.ranking.back();
  }
  // The objective: who qualifies, cheapest first by its energy.
  for (auto i : g.ranking) {
    const auto& c = g.configs[i];
    // "Reached in every seed": every seed has a result, none diverged, and each reached it.
    const bool ok = target_metric ? c.reached > 0 && c.reached == c.energy_j.n && c.diverged == 0 && c.failed == 0 &&
                                        c.unfinished == 0
                                  : !std::isfinite(g.top_metric) ||
                                        (std::isfinite(c.metric.mean) && c.metric.mean >= g.top_metric - metric_tolerance);
    if (ok) g.qualifying.push_back(i);
  }
  std::stable_sort(g.qualifying.begin(), g.qualifying.end(),
                   [&](std::size_t a, std::size_t b) { return g.objective_j(a) < g.objective_j(b); });
  if (!g.qualifying.empty()) {
    g.recommended = g.qualifying.front();
    g.costliest_qualifying = g.qualifying.back();
    const double best = g.objective_j(*g.recommended);
    const double worst = g.objective_j(*g.costliest_qualifying);
    g.saving_pct = saving_percent(best, worst);
    if (best > 0.0) g.worst_over_best = worst / best;
  }
  g.pareto = pareto_front(g.configs);
  g.batch_size = batch_size_effect(g.configs);
  g.learning_rate = learning_rate_effect(g.configs);
  for (const auto& c : g.configs) {
    g.trials += c.trials;
    g.results += c.results;
    g.diverged += c.diverged;
    g.failed += c.failed;
    g.unfinished += c.unfinished;
  }
  return g;
}

// --- pretraining -----------------------------------------------------------------

VariantSummary summarize_variant(const std::string& variant, const std::vector<TrialOutcome>& trials) {
  VariantSummary v;
  v.variant = variant;
  std::vector<double> energy, epochs, time, metric;
  for (const auto& t : trials) {
    if (t.phase != variant) continue;
    if (!t.has_result()) {
      ++v.missing;
      continue;
    }
    ++v.results;
    if (t.diverged()) {
      ++v.diverged;
      continue;
    }
    energy.push_back(t.energy_j);
    epochs.push_back(t.epochs);
    time.push_back(t.duration_s);
    metric.push_back(t.metric);
  }
  v.energy_j = describe(energy);
  v.epochs = describe(epochs);
  v.duration_s = describe(time);
  v.metric = describe(metric);
  return v;
}

std::optional<double> break_even_reuses(double pretrain_j, double scratch_j, double reuse_j) {
  if (!std::isfinite(pretrain_j) || !std::isfinite(scratch_j) || !std::isfinite(reuse_j)) return std::nullopt;
  const double saving = scratch_j - reuse_j;
  if (!(saving > 0.0)) return std::nullopt;
  return std::max(pretrain_j, 0.0) / saving;
}

BreakEven break_even(const std::string& variant, double pretrain_j, double scratch_j, double reuse_j) {
  BreakEven b;
  b.variant = variant;
  b.pretrain_energy_j = pretrain_j;
  b.scratch_energy_j = scratch_j;
  b.reuse_energy_j = reuse_j;
  b.saving_per_reuse_j = scratch_j - reuse_j;
  b.reuses = break_even_reuses(pretrain_j, scratch_j, reuse_j);
  if (b.reuses) b.reuses_needed = static_cast<long long>(std::ceil(*b.reuses - 1e-9));
  return b;
}

PretrainAnalysis analyze_pretrain(const std::vector<TrialOutcome>& trials) {
  PretrainAnalysis a;
  a.pretrain = summarize_variant(kPhasePretrain, trials);
  std::map<int, std::vector<TrialOutcome>> by_step;
  std::map<int, std::string> task_of;
  for (const auto& t : trials) {
    if (t.phase == kPhasePretrain) continue;
    by_step[t.step].push_back(t);
    if (task_of[t.step].empty()) task_of[t.step] = t.task;
  }
  std::vector<double> scratch, finetune, frozen;
  for (const auto& [step, group] : by_step) {
    RecyclingStep s;
    s.step = step;
    s.task = task_of[step];
    s.scratch = summarize_variant(kPhaseScratch, group);
    s.finetune = summarize_variant(kPhaseFinetune, group);
    s.frozen = summarize_variant(kPhaseFrozen, group);
    s.finetune_saving_pct = saving_percent(s.finetune.energy_j.mean, s.scratch.energy_j.mean);
    s.frozen_saving_pct = saving_percent(s.frozen.energy_j.mean, s.scratch.energy_j.mean);
    scratch.push_back(s.scratch.energy_j.mean);
    finetune.push_back(s.finetune.energy_j.mean);
    frozen.push_back(s.frozen.energy_j.mean);
    a.steps.push_back(std::move(s));
  }
  a.finetune = break_even(kPhaseFinetune, a.pretrain.energy_j.mean, mean_of(scratch), mean_of(finetune));
  a.frozen = break_even(kPhaseFrozen, a.pretrain.energy_j.mean, mean_of(scratch), mean_of(frozen));
  return a;
}

// --- multitask ------------------------------------------------------------------------

MultitaskAnalysis analyze_multitask(const std::vector<TrialOutcome>& trials) {
  MultitaskAnalysis a;
  a.multi = summarize_variant(kPhaseMulti, trials);
  // Task order: the shared model's, then single-task models it does not name.
  std::vector<std::string> order;
  for (const auto& t : trials)
    if (t.phase == kPhaseMulti && order.empty()) order = split_tasks(t.task);
  for (const auto& t : trials)
    if (t.phase == kPhaseSingle && std::find(order.begin(), order.end(), t.task) == order.end())
      order.push_back(t.task);

  std::vector<double> single_energy, single_epochs, single_time, single_metric, multi_metric;
  bool single_complete = true;
  for (std::size_t k = 0; k < order.size(); ++k) {
    TaskComparison c;
    c.task = order[k];
    std::vector<TrialOutcome> mine;
    for (const auto& t : trials)
      if (t.phase == kPhaseSingle && t.task == c.task) mine.push_back(t);
    c.single = summarize_variant(kPhaseSingle, mine);
    std::vector<double> m;
    for (const auto& t : trials) {
      if (t.phase != kPhaseMulti || !t.usable()) continue;
      const auto names = split_tasks(t.task);
      const auto it = std::find(names.begin(), names.end(), c.task);
      const auto i = static_cast<std::size_t>(it - names.begin());
      if (it != names.end() && i < t.task_metrics.size()) m.push_back(t.task_metrics[i]);
    }
    c.multi_metric = describe(m);
    c.metric_delta = c.multi_metric.mean - c.single.metric.mean;
    if (c.single.energy_j.n == 0) single_complete = false;
    single_energy.push_back(c.single.energy_j.mean);
    single_epochs.push_back(c.single.epochs.mean);
    single_time.push_back(c.single.duration_s.mean);
    single_metric.push_back(c.single.metric.mean);
    multi_metric.push_back(c.multi_metric.mean);
    a.tasks.push_back(std::move(c));
  }
  // Sums over tasks are only meaningful when every task has a single-task result.
  if (single_complete && !order.empty()) {
    a.single_energy_j = std::accumulate(single_energy.begin(), single_energy.end(), 0.0);
    a.single_epochs = std::accumulate(single_epochs.begin(), single_epochs.end(), 0.0);
    a.single_duration_s = std::accumulate(single_time.begin(), single_time.end(), 0.0);
  }
  a.single_mean_metric = mean_of(single_metric);
  a.multi_mean_metric = mean_of(multi_metric);
  a.multi_energy_j = a.multi.energy_j.mean;
  a.multi_epochs = a.multi.epochs.mean;
  a.multi_duration_s = a.multi.duration_s.mean;
  a.saving_pct = saving_percent(a.multi_energy_j, a.single_energy_j);
  return a;
}

}  // namespace powertrain::study
