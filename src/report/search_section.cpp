// The search's section: its choice, what finding it cost, every started setup's curve.
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

BuiltSection search_section(const StudyData& s, const SectionContext& ctx) {
  BuiltSection out;
  auto& sec = out.section;
  sec.id = section_id(s);
  sec.title = s.study.name;
  sec.kind = "search study";
  // The search's verdicts come from its segments' epochs (search::decide again).
  const auto outcomes = outcomes_with_epochs(s);
  const auto runs = runs_of(s);
  const bool estimated = has_estimates(runs);
  const std::string est = estimate_suffix(estimated);
  const std::string prefix = study_prefix(s);
  sec.blocks.push_back(Block::markup(study_meta(s)));
  const auto view = study::search_view(s.study, outcomes);
  if (!view) {
    sec.blocks.push_back(paragraph(
        "The stored specification of this search does not parse with this version of powertrain: its segments are "
        "listed below without the search's decision."));
    add_trials(sec, s, outcomes);
    return out;
  }
  const auto& d = view->decision;
  const auto target = view->settings.rule.target_metric;
  const auto n = study::search_counts(*view);
  const search::Verdict* chosen = d.chosen ? &d.verdicts[*d.chosen] : nullptr;
  double max_e = view->segment_energy_j;
  for (const auto& v : d.verdicts)
    if (std::isfinite(v.standing.spent_j)) max_e = std::max(max_e, v.standing.spent_j);
  const EnergyUnit unit = energy_unit_for(max_e);

  // Headline: the choice, what it cost measured, and what finding it cost.
  {
    const std::string spent = fmt::format(
        "The search used {}{} over its {} segment{} (each segment's latest run); it started {} of its {} setups, "
        "continued {} past their first rung and stopped {} early.",
        energy_text(view->segment_energy_j, unit), est, view->segments, view->segments == 1 ? "" : "s", n.started,
        n.sampled, n.continued, n.stopped);
    if (chosen) {
      const std::string what =
          // Chosen only once reached: its energy to the target is measured on
          // its curve, not predicted as for the setups still on their way.
          target ? fmt::format("it reached the target validation metric {} for the least energy: {}{} to the target, "
                               "measured when it reached it at epoch {} (not predicted); its best validation metric "
                               "is {}.",
                               format_number(*target), energy_text(chosen->standing.cost_j, unit), est,
                               chosen->standing.target_epoch, format_number(chosen->standing.best_metric))
                 : fmt::format("the cheapest setup to converge within {} of the best validation metric: {}{} to "
                               "convergence, measured; its best validation metric is {}.",
                               format_number(view->settings.metric_tolerance), energy_text(chosen->standing.cost_j, unit),
                               est, format_number(chosen->standing.best_metric));
      sec.blocks.push_back(recommendation(fmt::format("Use {}: {} {}{}", search::label(chosen->setup), what, spent,
                                                      d.finished ? "" : " The search is not finished: the choice may change.")));
    } else if (d.finished) {
      sec.blocks.push_back(recommendation(fmt::format(
          "{} {}",
          target ? fmt::format("No setup reached the target validation metric {}: there is nothing to choose. Lower the "
                               "target, or search longer (training.max_epochs).",
                               format_number(*target))
                 : std::string("No setup converged: there is nothing to choose."),
          spent)));
    } else {
      sec.blocks.push_back(paragraph(
          "The search is not finished (stopped, or its segments still run): no setup is chosen yet. Run the same "
          "powertrain search command again to go on. " + spent));
    }
  }

  // Every started setup's curve over all its segments: where the search cut it.
  {
    CurvesInput in;
    in.name = prefix + "-curves";
    in.title = "Validation metric against energy, per setup";
    in.x_label = fmt::format("cumulative energy (J){}", est);
    in.y_label = "validation metric (fraction)";
    in.target = target;
    for (const auto& o : view->curves) {
      CurveLine line;
      line.label = search::label(o.setup);
      // The epochs' energies as the search counts them: an epoch without a
      // measurement counts the mean of the others (search::standing).
      double sum = 0.0;
      int measured = 0;
      for (const auto& e : o.epochs)
        if (std::isfinite(e.energy_j)) sum += e.energy_j, ++measured;
      const double fill_j = measured > 0 ? sum / measured : 0.0;
      double cumulative_j = 0.0;
      for (const auto& e : o.epochs) {
        cumulative_j += std::isfinite(e.energy_j) ? e.energy_j : fill_j;
        line.points.emplace_back(cumulative_j, e.val_metric);
      }
      for (std::size_t i = 0; i < d.verdicts.size(); ++i)
        if (d.verdicts[i].setup == o.setup) {
          line.stopped = d.verdicts[i].state == "stopped";
          line.chosen = d.chosen && *d.chosen == i;
        }
      in.lines.push_back(std::move(line));
    }
    in.caption = fmt::format(
        "One line per setup the search started ({}), over all its segments: its validation metric after each epoch "
        "against the energy it had used by then. Dashed grey lines are setups the search stopped early (a cross where "
        "it stopped them){}{}.",
        n.started, chosen ? "; the thick line is the chosen setup" : "",
        target ? "; the dotted red line is the target metric" : "");
    sec.blocks.push_back(Block::of(curves_figure(in)));
  }

  // The search's own tables, as `powertrain results` prints them.
  for (const auto& t : study::search_tables(*view)) {
    std::string name = t.name;
    std::replace(name.begin(), name.end(), '_', '-');
    sec.blocks.push_back(Block::of(html_of(t, prefix + "-" + name)));
    for (const auto& note : t.notes) sec.blocks.push_back(paragraph(note));
  }
  add_trials(sec, s, outcomes);

  // The power of the chosen setup's last segment.
  const RunData* highlight = nullptr;
  if (chosen) {
    int step = -1;
    for (std::size_t i = 0; i < s.trials.size() && i < outcomes.size(); ++i) {
      const auto& o = outcomes[i];
      if (o.phase != study::kPhaseSearch || o.batch_size != chosen->setup.batch_size ||
          o.learning_rate != chosen->setup.learning_rate || o.step <= step)
        continue;
      if (chosen->setup.threads > 0 && o.config.threads != chosen->setup.threads) continue;
      if (const auto* r = run_of(s, s.trials[i])) {
        highlight = r;
        step = o.step;
      }
    }
  }
  sec.blocks.push_back(Block::markup("<h3>Power over time</h3>"));
  add_timelines(out, runs, highlight, "the chosen setup's last segment", prefix, ctx);
  return out;
}

}  // namespace powertrain::report
