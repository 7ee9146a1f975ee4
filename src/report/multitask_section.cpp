// The multitask study's section: one shared model against one model per task.
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

BuiltSection multitask_section(const StudyData& s, const SectionContext& ctx) {
  BuiltSection out;
  auto& sec = out.section;
  sec.id = section_id(s);
  sec.title = s.study.name;
  sec.kind = "multitask study";
  const auto outcomes = outcomes_with_epochs(s);
  const auto m = study::analyze_multitask(outcomes);
  const auto runs = runs_of(s);
  const bool estimated = has_estimates(runs);
  const std::string est = estimate_suffix(estimated);
  const std::string prefix = study_prefix(s);
  sec.blocks.push_back(Block::markup(study_meta(s)));
  const EnergyUnit unit = energy_unit_for(std::max(std::isfinite(m.single_energy_j) ? m.single_energy_j : 0.0,
                                                   std::isfinite(m.multi_energy_j) ? m.multi_energy_j : 0.0));
  const std::size_t n = m.tasks.size();

  if (std::isfinite(m.saving_pct)) {
    const bool saves = m.saving_pct >= 0;
    sec.blocks.push_back(recommendation(fmt::format(
        "{}: one shared model for the {} tasks used {} {} energy than {} single-task models together ({} against {}), "
        "in {} against {} epochs, at a mean per-task metric of {} against {}.{}",
        saves ? "Train one multitask model" : "Train one model per task", n, pct_text(std::fabs(m.saving_pct)),
        saves ? "less" : "more", n, energy_text(m.multi_energy_j, unit), energy_text(m.single_energy_j, unit),
        format_number(m.multi_epochs, 3), format_number(m.single_epochs, 3), format_number(m.multi_mean_metric),
        format_number(m.single_mean_metric), estimated ? " Energies are estimates." : "")));
  } else {
    sec.blocks.push_back(paragraph("The shared model or a single-task model has no usable result yet: nothing to compare."));
  }

  std::vector<std::string> cats;
  for (const auto& t : m.tasks) cats.push_back(t.task);
  cats.push_back("all tasks");
  const auto opt = [](double v) { return std::isfinite(v) ? std::optional<double>(v) : std::nullopt; };
  {
    BarInput in;
    in.name = prefix + "-energy";
    in.title = "Energy: multitask model against single-task models";
    in.y_label = fmt::format("energy to convergence ({}){}", unit.name, est);
    BarSeries single{"single-task models", {}}, multi{"one multitask model", {}};
    for (const auto& t : m.tasks) {
      single.values.push_back(t.single.energy_j.n > 0 ? opt(t.single.energy_j.mean / unit.joules) : std::nullopt);
      multi.values.push_back(std::nullopt);
    }
    single.values.push_back(opt(m.single_energy_j / unit.joules));
    multi.values.push_back(opt(m.multi_energy_j / unit.joules));
    in.categories = cats;
    in.series = {single, multi};
    in.caption = "Mean energy of each single-task model, their sum (all tasks), and the one shared model that learns every task.";
    sec.blocks.push_back(Block::of(bar_figure(in)));
  }
  {
    BarInput in;
    in.name = prefix + "-epochs";
    in.title = "Epochs: multitask model against single-task models";
    in.y_label = "epochs to convergence (epochs)";
    BarSeries single{"single-task models", {}}, multi{"one multitask model", {}};
    for (const auto& t : m.tasks) {
      single.values.push_back(t.single.epochs.n > 0 ? opt(t.single.epochs.mean) : std::nullopt);
      multi.values.push_back(std::nullopt);
    }
    single.values.push_back(opt(m.single_epochs));
    multi.values.push_back(opt(m.multi_epochs));
    in.categories = cats;
    in.series = {single, multi};
    in.caption = "Mean epochs to convergence of each single-task model, their sum, and the shared model's.";
    sec.blocks.push_back(Block::of(bar_figure(in)));
  }
  {
    BarInput in;
    in.name = prefix + "-metric";
    in.title = "Metric per task";
    in.y_label = "test accuracy (fraction)";
    BarSeries single{"single-task model", {}}, multi{"multitask model, this task's head", {}};
    for (const auto& t : m.tasks) {
      single.values.push_back(t.single.metric.n > 0 ? opt(t.single.metric.mean) : std::nullopt);
      multi.values.push_back(t.multi_metric.n > 0 ? opt(t.multi_metric.mean) : std::nullopt);
    }
    in.categories.assign(cats.begin(), cats.end() - 1);
    in.series = {single, multi};
    in.caption = "What each task reaches on its own model and as one head of the shared model.";
    sec.blocks.push_back(Block::of(bar_figure(in)));
  }
  {
    table::Table t;
    t.name = prefix + "-tasks";
    t.title = "Each task: its own model against its head on the shared model (mean ± sample sd over seeds)";
    t.columns = table::headed({"task", "results", fmt::format("energy ({})", unit.name), "epochs", "time (s)", "metric (single)",
                "metric (multitask)", "metric change", "CO2e (g)"});
    for (const auto& tc : m.tasks) {
      t.rows.push_back({tc.task, Cell::number(std::to_string(tc.single.results)),
                        Cell::number(stat_text(tc.single.energy_j, unit.joules)), Cell::number(stat_text(tc.single.epochs)),
                        Cell::number(stat_text(tc.single.duration_s)), Cell::number(stat_text(tc.single.metric)),
                        Cell::number(stat_text(tc.multi_metric)), Cell::number(format_number(tc.metric_delta, 3)),
                        Cell::number(tc.single.energy_j.n > 0 ? grams_co2(tc.single.energy_j.mean, ctx.carbon) : "-")});
    }
    sec.blocks.push_back(Block::of(std::move(t)));
  }
  {
    table::Table t;
    t.name = prefix + "-comparison";
    t.title = "Totals: the single-task models together against the shared model";
    t.columns = table::headed({"approach", fmt::format("energy ({})", unit.name), "epochs", "time (s)", "mean metric", "CO2e (g)", "saving"});
    const bool multi_wins = std::isfinite(m.saving_pct) && m.saving_pct > 0;
    const bool single_wins = std::isfinite(m.saving_pct) && m.saving_pct < 0;
    t.rows.push_back({Cell(fmt::format("{} single-task models", n)),
                      Cell::number(format_number(m.single_energy_j / unit.joules), single_wins ? "best" : ""),
                      Cell::number(format_number(m.single_epochs)), Cell::number(format_number(m.single_duration_s)),
                      Cell::number(format_number(m.single_mean_metric)), Cell::number(grams_co2(m.single_energy_j, ctx.carbon)),
                      Cell::number("")});
    t.rows.push_back({Cell("one multitask model"), Cell::number(format_number(m.multi_energy_j / unit.joules), multi_wins ? "best" : ""),
                      Cell::number(format_number(m.multi_epochs)), Cell::number(format_number(m.multi_duration_s)),
                      Cell::number(format_number(m.multi_mean_metric)), Cell::number(grams_co2(m.multi_energy_j, ctx.carbon)),
                      Cell::number(pct_text(m.saving_pct))});
    sec.blocks.push_back(Block::of(std::move(t)));
  }
  add_trials(sec, s, outcomes);

  const RunData* highlight =
      cheapest_run(s, outcomes, [](const study::TrialOutcome& o) { return o.phase == study::kPhaseMulti; });
  sec.blocks.push_back(Block::markup("<h3>Power over time</h3>"));
  add_timelines(out, runs, highlight, "the multitask model", prefix, ctx);
  return out;
}

}  // namespace powertrain::report
