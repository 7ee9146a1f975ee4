// The grid study's section: recommendation, heatmaps, Pareto front, ranking, factor effects, timelines.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>

#include "powertrain/study/plan.h"
#include "powertrain/study/search_view.h"
#include "section_parts.h"

namespace powertrain::report {

using namespace detail;

// --- grid ---------------------------------------------------------------------------

namespace {

// What the parts of a grid study's section read: the analysis and how energy is shown.
struct GridView {
  const StudyData& s;
  const SectionContext& ctx;
  const std::vector<study::TrialOutcome>& outcomes;
  const study::GridAnalysis& g;
  EnergyUnit unit;        ///< energies to convergence
  EnergyUnit epoch_unit;  ///< energies per epoch
  std::string est;        ///< " (estimated)" when some energy was estimated
  std::string prefix;     ///< file name prefix of the study's figures and tables
};

// Recommendation: the cheapest setup that reached the target (or, without
// one, came within the tolerance of the top metric), compared only with
// setups of that quality; not the cheapest alone, which may have stopped
// early at a poor metric.
Block grid_recommendation(const GridView& v) {
  const auto& g = v.g;
  const auto& unit = v.unit;
  const auto& est = v.est;
  const std::string objective = g.target_metric ? "energy to reach the target" : "energy to converge";
  if (g.recommended && g.ranking.size() > 1) {
    const auto& r = g.configs[*g.recommended];
    const auto& w = g.configs[*g.costliest_qualifying];
    std::string text;
    if (g.target_metric)
      text = fmt::format("Use {}: the setup that reached the target metric {} for the least energy. ", config_name(r),
                         format_number(*g.target_metric));
    else if (std::isfinite(g.top_metric))
      text = fmt::format("Use {}: the cheapest setup whose final metric ({}) is within {} of the best one ({}). ",
                         config_name(r), format_number(r.metric.mean), format_number(g.metric_tolerance),
                         format_number(g.top_metric));
    else
      text = fmt::format("Use {}: the cheapest setup. ", config_name(r));
    if (*g.recommended != *g.costliest_qualifying)
      text += fmt::format("Among the {} setups of that quality, it used {} less {} than the costliest ({}): {} against {}{}.",
                          g.qualifying.size(), pct_text(g.saving_pct), objective, config_name(w),
                          energy_text(g.objective_j(*g.recommended), unit),
                          energy_text(g.objective_j(*g.costliest_qualifying), unit), est);
    else
      text += fmt::format("No other setup reached that quality ({}{}).", energy_text(g.objective_j(*g.recommended), unit), est);
    if (g.best && std::find(g.qualifying.begin(), g.qualifying.end(), *g.best) == g.qualifying.end()) {
      const auto& b = g.configs[*g.best];
      text += fmt::format(" The cheapest setup overall, {}, used {} ({}x less) but reached only {}.", config_name(b),
                          energy_text(b.energy_j.mean, unit), format_number(r.energy_j.mean / b.energy_j.mean, 3),
                          format_number(b.metric.mean));
    }
    return recommendation(text);
  } else if (g.best && g.target_metric && g.ranking.size() > 1) {
    return recommendation(fmt::format(
        "No setup reached the target metric {} in every seed: there is nothing to recommend at that quality. Lower the "
        "target, or train longer (training.max_epochs).",
        format_number(*g.target_metric)));
  } else if (g.best) {
    const auto& b = g.configs[*g.best];
    return recommendation(fmt::format(
        "Only one setup converged so far: {}, with {}{} at a final metric of {}. Run more of the grid to compare.",
        config_name(b), energy_text(b.energy_j.mean, unit), est, format_number(b.metric.mean)));
  } else {
    return paragraph("No configuration has a usable result yet (every result diverged, failed or is unfinished).");
  }
}

// The trials' outcome in one paragraph: results, spread across factors, epoch limits.
Block grid_summary(const study::GridAnalysis& g) {
  std::string text = fmt::format(
      "{} trials, {} with a result ({} diverged), {} failed, {} unfinished.", g.trials, g.results, g.diverged, g.failed,
      g.unfinished);
  if (std::isfinite(g.batch_size.energy_per_epoch_ratio) && std::isfinite(g.learning_rate.energy_per_epoch_ratio) &&
      std::isfinite(g.batch_size.epochs_ratio) && std::isfinite(g.learning_rate.epochs_ratio)) {
    text += fmt::format(
        " Energy per epoch varies {}x across batch sizes and {}x across learning rates; epochs to convergence vary {}x "
        "across batch sizes and {}x across learning rates (largest over smallest mean level).",
        format_number(g.batch_size.energy_per_epoch_ratio, 3), format_number(g.learning_rate.energy_per_epoch_ratio, 3),
        format_number(g.batch_size.epochs_ratio, 3), format_number(g.learning_rate.epochs_ratio, 3));
  }
  int at_limit = 0;
  for (const auto& c : g.configs) at_limit += c.max_epochs;
  if (at_limit > 0) {
    text += fmt::format(" {} run{} stopped at the epoch limit without converging: energies marked ≥ are lower bounds.",
                        at_limit, at_limit == 1 ? "" : "s");
  }
  return paragraph(text);
}

// Heatmaps over batch size x learning rate: energy per epoch, epochs and energy to convergence.
void add_grid_heatmaps(Section& sec, const GridView& v) {
  const auto& g = v.g;
  const auto& unit = v.unit;
  const auto& epoch_unit = v.epoch_unit;
  const auto& est = v.est;
  const auto& prefix = v.prefix;
  std::vector<std::int64_t> batches;
  std::vector<double> lrs;
  for (const auto& c : g.configs) {
    if (std::find(batches.begin(), batches.end(), c.batch_size) == batches.end()) batches.push_back(c.batch_size);
    if (std::find(lrs.begin(), lrs.end(), c.learning_rate) == lrs.end()) lrs.push_back(c.learning_rate);
  }
  std::sort(batches.begin(), batches.end());
  std::sort(lrs.begin(), lrs.end());
  const auto xi = [&](std::int64_t b) { return static_cast<std::size_t>(std::find(batches.begin(), batches.end(), b) - batches.begin()); };
  const auto yi = [&](double lr) { return static_cast<std::size_t>(std::find(lrs.begin(), lrs.end(), lr) - lrs.begin()); };
  const auto note_of = [](const study::ConfigSummary& c) -> std::string {
    if (c.results > 0 && c.diverged == c.results) return "diverged";
    if (c.failed > 0 && c.results == 0) return "failed";
    if (c.unfinished > 0) return "unfinished";
    return "no result";
  };
  const auto heatmap = [&](const std::string& suffix, const std::string& title, const std::string& value_label,
                           const std::string& caption, const std::function<std::optional<double>(const study::ConfigSummary&)>& value,
                           const std::function<std::string(const study::ConfigSummary&, double)>& text) {
    HeatmapInput in;
    in.name = prefix + "-" + suffix;
    in.title = title;
    in.caption = caption;
    in.x_label = "batch size (samples per step)";
    in.y_label = "learning rate (log-spaced categories)";
    in.value_label = value_label;
    for (auto b : batches) in.x_labels.push_back(std::to_string(b));
    for (auto lr : lrs) in.y_labels.push_back(lr_text(lr));
    std::set<std::pair<std::size_t, std::size_t>> seen;
    for (const auto& c : g.configs) {
      HeatCell cell;
      cell.x = xi(c.batch_size);
      cell.y = yi(c.learning_rate);
      seen.insert({cell.x, cell.y});
      if (auto v = value(c)) {
        cell.value = *v;
        cell.text = text(c, *v);
      } else {
        cell.note = note_of(c);
      }
      in.cells.push_back(cell);
    }
    for (std::size_t x = 0; x < batches.size(); ++x)
      for (std::size_t y = 0; y < lrs.size(); ++y)
        if (!seen.count({x, y})) in.cells.push_back(HeatCell{x, y, std::nullopt, "", "not in study"});
    if (g.recommended)
      in.highlight = std::make_pair(xi(g.configs[*g.recommended].batch_size), yi(g.configs[*g.recommended].learning_rate));
    sec.blocks.push_back(Block::of(heatmap_figure(in)));
  };
  const std::string frame = g.recommended ? " The framed cell is the recommended setup." : "";
  heatmap("energy-per-epoch", "Energy per epoch", fmt::format("energy per epoch ({}){}", epoch_unit.name, est),
          "Mean energy of one epoch (training and validation) over seeds; diverged runs count here, since what an epoch "
          "costs does not depend on the loss." + frame,
          [&](const study::ConfigSummary& c) -> std::optional<double> {
            return c.energy_per_epoch_j.n > 0 ? std::optional<double>(c.energy_per_epoch_j.mean / epoch_unit.joules)
                                              : std::nullopt;
          },
          [](const study::ConfigSummary&, double v) { return format_number(v, 3); });
  heatmap("epochs", "Epochs to convergence", "epochs to convergence (epochs)",
          "Mean number of epochs until early stopping, over the seeds that did not diverge; ≥ marks runs that hit the "
          "epoch limit." + frame,
          [](const study::ConfigSummary& c) -> std::optional<double> {
            return c.ranked() ? std::optional<double>(c.epochs.mean) : std::nullopt;
          },
          [](const study::ConfigSummary& c, double v) { return (c.max_epochs > 0 ? "≥ " : "") + format_number(v, 3); });
  heatmap("energy-to-convergence", "Total energy to convergence", fmt::format("energy to convergence ({}){}", unit.name, est),
          "Mean total energy of a run until early stopping, over the seeds that did not diverge; the lightest cell is the "
          "cheapest setup." + frame,
          [&](const study::ConfigSummary& c) -> std::optional<double> {
            return c.ranked() ? std::optional<double>(c.energy_j.mean / unit.joules) : std::nullopt;
          },
          [](const study::ConfigSummary& c, double v) { return (c.max_epochs > 0 ? "≥ " : "") + format_number(v, 3); });
}

// Energy against final metric with the Pareto front.
Block grid_pareto(const GridView& v) {
  const auto& g = v.g;
  const auto& est = v.est;
  const auto& prefix = v.prefix;
  ParetoInput in;
  in.name = prefix + "-pareto";
  in.title = "Energy to convergence against final metric";
  in.energy_label = fmt::format("energy to convergence (J){}", est);
  in.metric_label = "final metric (test accuracy, fraction)";
  std::set<std::size_t> front(g.pareto.begin(), g.pareto.end());
  double lo = INFINITY, hi = 0.0;
  for (auto i : g.ranking) {
    const auto& c = g.configs[i];
    in.points.push_back({c.energy_j.mean, c.metric.mean,
                         fmt::format("bs {}, lr {}", c.batch_size, lr_text(c.learning_rate)), front.count(i) > 0});
    if (c.energy_j.mean > 0) lo = std::min(lo, c.energy_j.mean);
    hi = std::max(hi, c.energy_j.mean);
  }
  in.log_energy = std::isfinite(lo) && hi / lo > 30.0;
  in.caption = fmt::format(
      "Each point is one batch size x learning rate setup (mean over seeds that did not diverge). The Pareto front "
      "({} setup{}) holds the setups that no other beats on both energy and metric.{}",
      g.pareto.size(), g.pareto.size() == 1 ? "" : "s", in.log_energy ? " Energy axis logarithmic." : "");
  return Block::of(pareto_figure(in));
}

// The setups ranked by energy to convergence, then those without a rank.
table::Table grid_ranking(const GridView& v) {
  const auto& g = v.g;
  const auto& s = v.s;
  const auto& outcomes = v.outcomes;
  const auto& unit = v.unit;
  const auto& epoch_unit = v.epoch_unit;
  const auto& prefix = v.prefix;
  const auto& ctx = v.ctx;
  table::Table t;
  t.name = prefix + "-configurations";
  t.title = "Setups ranked by energy to convergence (mean ± sample sd over seeds)";
  t.columns = table::headed({"rank", "batch size", "learning rate", "results / trials", fmt::format("energy / epoch ({})", epoch_unit.name),
              "epochs", fmt::format("energy to convergence ({})", unit.name), "time (s)", "final metric", "CO2e (g)",
              "notes", "method"});
  std::set<std::size_t> front(g.pareto.begin(), g.pareto.end());
  std::vector<std::size_t> order = g.ranking;
  order.insert(order.end(), g.unranked.begin(), g.unranked.end());
  for (std::size_t k = 0; k < order.size(); ++k) {
    const auto i = order[k];
    const auto& c = g.configs[i];
    const bool ranked = k < g.ranking.size();
    const std::string cls = g.best && i == *g.best ? "best" : (g.worst && i == *g.worst ? "worst" : "");
    std::vector<const RunData*> cr;
    for (std::size_t j = 0; j < s.trials.size() && j < outcomes.size(); ++j)
      if (outcomes[j].batch_size == c.batch_size && outcomes[j].learning_rate == c.learning_rate)
        if (const auto* r = run_of(s, s.trials[j])) cr.push_back(r);
    const std::string bound = c.max_epochs > 0 ? "≥ " : "";
    std::vector<std::string> notes;
    if (g.recommended && i == *g.recommended) notes.push_back("recommended");
    if (g.best && i == *g.best) notes.push_back("cheapest");
    if (g.worst && i == *g.worst) notes.push_back("worst");
    if (front.count(i)) notes.push_back("Pareto front");
    if (c.diverged) notes.push_back(fmt::format("{} diverged", c.diverged));
    if (c.max_epochs) notes.push_back(fmt::format("{} at epoch limit", c.max_epochs));
    if (c.failed) notes.push_back(fmt::format("{} failed", c.failed));
    if (c.unfinished) notes.push_back(fmt::format("{} unfinished", c.unfinished));
    std::string note;
    for (const auto& n : notes) note += (note.empty() ? "" : ", ") + n;
    t.rows.push_back({Cell::number(ranked ? std::to_string(k + 1) : "-", cls), Cell::number(std::to_string(c.batch_size), cls),
                      Cell::number(lr_text(c.learning_rate), cls), Cell::number(fmt::format("{} / {}", c.results, c.trials)),
                      Cell::number(stat_text(c.energy_per_epoch_j, epoch_unit.joules)),
                      Cell::number(ranked ? bound + stat_text(c.epochs) : "-"),
                      Cell::number(ranked ? bound + stat_text(c.energy_j, unit.joules) : "-", cls),
                      Cell::number(stat_text(c.duration_s)), Cell::number(stat_text(c.metric)),
                      Cell::number(ranked ? grams_co2(c.energy_j.mean, ctx.carbon) : "-"), note, method_cell(methods_of(cr))});
  }
  return t;
}

// How each factor moves energy per epoch and epochs.
table::Table grid_factor_effects(const GridView& v) {
  const auto& g = v.g;
  const auto& unit = v.unit;
  const auto& epoch_unit = v.epoch_unit;
  table::Table t;
  t.name = v.prefix + "-factor-effects";
  t.title = "Effect of each factor: means over the setups at each level";
  t.columns = table::headed({"factor", "level", "setups", fmt::format("energy per epoch ({})", epoch_unit.name), "epochs to convergence",
              fmt::format("energy to convergence ({})", unit.name)});
  for (const auto* fe : {&g.batch_size, &g.learning_rate}) {
    const bool bs = fe->factor == "batch_size";
    for (const auto& l : fe->levels) {
      t.rows.push_back({bs ? "batch size" : "learning rate",
                        Cell::number(bs ? fmt::format("{}", static_cast<std::int64_t>(l.level)) : lr_text(l.level)),
                        Cell::number(std::to_string(l.configs)),
                        Cell::number(format_number(l.energy_per_epoch_j / epoch_unit.joules)),
                        Cell::number(format_number(l.epochs)), Cell::number(format_number(l.energy_j / unit.joules))});
    }
    t.rows.push_back({Cell(bs ? "batch size: max / min" : "learning rate: max / min"), Cell(""), Cell(""),
                      Cell::number(format_number(fe->energy_per_epoch_ratio, 3) + "x"),
                      Cell::number(format_number(fe->epochs_ratio, 3) + "x"), Cell("")});
  }
  return t;
}

}  // namespace

BuiltSection grid_section(const StudyData& s, const SectionContext& ctx) {
  BuiltSection out;
  auto& sec = out.section;
  sec.id = section_id(s);
  sec.title = s.study.name;
  sec.kind = "grid study";
  const auto outcomes = outcomes_with_epochs(s);
  std::string problem;
  const auto [tolerance, target] = study::grid_objective(s.study, &problem);
  const auto g = study::analyze_grid(outcomes, tolerance, target);
  const auto runs = runs_of(s);
  const bool estimated = has_estimates(runs);
  const std::string est = estimate_suffix(estimated);
  const std::string prefix = study_prefix(s);
  sec.blocks.push_back(Block::markup(study_meta(s)));
  if (!problem.empty()) sec.blocks.push_back(paragraph(problem));

  double max_e = 0.0;
  for (const auto& c : g.configs)
    if (c.ranked()) max_e = std::max(max_e, c.energy_j.mean);
  const EnergyUnit unit = energy_unit_for(max_e);

  double max_epoch_e = 0.0;
  for (const auto& c : g.configs)
    if (c.energy_per_epoch_j.n > 0) max_epoch_e = std::max(max_epoch_e, c.energy_per_epoch_j.mean);
  const EnergyUnit epoch_unit = energy_unit_for(max_epoch_e);
  const GridView v{s, ctx, outcomes, g, unit, epoch_unit, est, prefix};
  sec.blocks.push_back(grid_recommendation(v));
  sec.blocks.push_back(grid_summary(g));
  add_grid_heatmaps(sec, v);
  sec.blocks.push_back(grid_pareto(v));
  sec.blocks.push_back(Block::of(grid_ranking(v)));
  sec.blocks.push_back(Block::of(grid_factor_effects(v)));

  add_trials(sec, s, outcomes);

  const RunData* highlight = nullptr;
  if (g.recommended) {
    const auto& b = g.configs[*g.recommended];
    highlight = cheapest_run(s, outcomes, [&](const study::TrialOutcome& o) {
      return o.batch_size == b.batch_size && o.learning_rate == b.learning_rate;
    });
  }
  sec.blocks.push_back(Block::markup("<h3>Power over time</h3>"));
  add_timelines(out, runs, highlight, "a run of the recommended setup", prefix, ctx);
  return out;
}

}  // namespace powertrain::report
