// The pretraining study's section: cumulative energy over reuses and break-even points.
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

namespace {

// Cumulative energy over reuses with the break-even points.
Block pretrain_cumulative(const study::PretrainAnalysis& a, const std::string& prefix, const std::string& est) {
  CumulativeInput in;
  in.name = prefix + "-cumulative";
  in.title = "Cumulative energy against number of reuses";
  in.y_label = fmt::format("cumulative energy (J){}", est);
  in.x_label = "tasks trained (recycles of the pretrained encoder)";
  const double scratch = a.finetune.scratch_energy_j;
  double max_n = std::max<double>(5.0, static_cast<double>(a.steps.size()));
  CostLine sc{"from scratch, every task", 0.0, scratch, {}};
  CostLine ft{"pretrain once + fine-tune", a.finetune.pretrain_energy_j, a.finetune.reuse_energy_j, {}};
  CostLine fr{"pretrain once + frozen encoder", a.frozen.pretrain_energy_j, a.frozen.reuse_energy_j, {}};
  // Measured cumulative energies of the steps in order.
  double cs = 0.0, cf = a.pretrain.energy_j.mean, cz = a.pretrain.energy_j.mean;
  if (std::isfinite(cf)) {
    ft.measured.emplace_back(0.0, cf);
    fr.measured.emplace_back(0.0, cz);
  }
  for (std::size_t i = 0; i < a.steps.size(); ++i) {
    const auto& st = a.steps[i];
    const double x = static_cast<double>(i + 1);
    if (st.scratch.energy_j.n > 0 && std::isfinite(cs)) sc.measured.emplace_back(x, cs += st.scratch.energy_j.mean);
    if (st.finetune.energy_j.n > 0 && std::isfinite(cf)) ft.measured.emplace_back(x, cf += st.finetune.energy_j.mean);
    if (st.frozen.energy_j.n > 0 && std::isfinite(cz)) fr.measured.emplace_back(x, cz += st.frozen.energy_j.mean);
  }
  for (const auto* be : {&a.finetune, &a.frozen}) {
    if (!be->pays_off()) continue;
    max_n = std::max(max_n, std::ceil(*be->reuses * 1.6));
    in.marks.push_back({*be->reuses, *be->reuses * be->scratch_energy_j,
                        fmt::format("{}: {} reuses", be->variant == study::kPhaseFrozen ? "frozen" : "fine-tune",
                                    format_number(*be->reuses, 3))});
  }
  in.max_uses = max_n;
  in.lines = {sc, ft, fr};
  in.caption =
      "Lines: pretraining energy plus the mean energy per task of each way to train it, against training every task "
      "from scratch; dots: cumulative energies measured step by step. The break-even point is where a reuse line "
      "crosses the from-scratch line.";
  return Block::of(cumulative_figure(in));
}

// Break-even: reuses after which the pretraining is paid back.
table::Table pretrain_break_even(const study::PretrainAnalysis& a, const std::string& prefix, const EnergyUnit& unit) {
  table::Table t;
  t.name = prefix + "-break-even";
  t.title = "Break-even: reuses after which the pretraining is paid back";
  t.columns = table::headed({"reuse", fmt::format("pretraining ({})", unit.name), fmt::format("per task from scratch ({})", unit.name),
              fmt::format("per task reused ({})", unit.name), fmt::format("saving per reuse ({})", unit.name),
              "break-even reuses N*", "tasks needed"});
  for (const auto* be : {&a.finetune, &a.frozen}) {
    t.rows.push_back({be->variant, Cell::number(format_number(be->pretrain_energy_j / unit.joules)),
                      Cell::number(format_number(be->scratch_energy_j / unit.joules)),
                      Cell::number(format_number(be->reuse_energy_j / unit.joules)),
                      Cell::number(format_number(be->saving_per_reuse_j / unit.joules)),
                      Cell::number(be->reuses ? format_number(*be->reuses, 3) : "never"),
                      Cell::number(be->reuses_needed ? std::to_string(*be->reuses_needed) : "never",
                                   be->pays_off() ? "best" : "")});
  }
  return t;
}

}  // namespace

BuiltSection pretrain_section(const StudyData& s, const SectionContext& ctx) {
  BuiltSection out;
  auto& sec = out.section;
  sec.id = section_id(s);
  sec.title = s.study.name;
  sec.kind = "pretraining study";
  const auto outcomes = outcomes_with_epochs(s);
  const auto a = study::analyze_pretrain(outcomes);
  const auto runs = runs_of(s);
  const bool estimated = has_estimates(runs);
  const std::string est = estimate_suffix(estimated);
  const std::string prefix = study_prefix(s);
  sec.blocks.push_back(Block::markup(study_meta(s)));

  double max_e = a.pretrain.energy_j.mean;
  for (const auto& st : a.steps)
    for (const auto* v : {&st.scratch, &st.finetune, &st.frozen})
      if (v->energy_j.n > 0) max_e = std::max(max_e, v->energy_j.mean);
  const EnergyUnit unit = energy_unit_for(std::isfinite(max_e) ? max_e : 0.0);

  // Recommendation: the reuse that pays back soonest.
  {
    std::string text;
    const auto describe = [&](const study::BreakEven& be, const char* what) {
      if (!std::isfinite(be.pretrain_energy_j) || !std::isfinite(be.scratch_energy_j) || !std::isfinite(be.reuse_energy_j)) {
        return fmt::format("There are no results yet to compare {} with training from scratch.", what);
      }
      if (!be.pays_off()) {
        return fmt::format("With a {} encoder a task used {} against {} from scratch: reuse saves nothing, so the "
                           "pretraining ({}) never pays back.",
                           what, energy_text(be.reuse_energy_j, unit), energy_text(be.scratch_energy_j, unit),
                           energy_text(be.pretrain_energy_j, unit));
      }
      return fmt::format(
          "With a {} encoder a task used {} against {} from scratch, saving {} per reuse: the pretraining ({}) pays "
          "back after {} reuses, i.e. from the {} task on.",
          what, energy_text(be.reuse_energy_j, unit), energy_text(be.scratch_energy_j, unit),
          energy_text(be.saving_per_reuse_j, unit), energy_text(be.pretrain_energy_j, unit), format_number(*be.reuses, 3),
          be.reuses_needed ? fmt::format("{}{}", *be.reuses_needed,
                                         *be.reuses_needed == 1 ? "st" : *be.reuses_needed == 2 ? "nd" : *be.reuses_needed == 3 ? "rd" : "th")
                           : std::string("-"));
    };
    text = describe(a.finetune, "fine-tuned") + " " + describe(a.frozen, "frozen");
    const study::BreakEven* pick = nullptr;
    for (const auto* be : {&a.finetune, &a.frozen})
      if (be->pays_off() && (!pick || *be->reuses < *pick->reuses)) pick = be;
    std::string lead;
    if (pick) {
      lead = fmt::format("Pretrain once and {} the encoder if it will serve at least {} task{}. ",
                         pick->variant == study::kPhaseFrozen ? "freeze" : "fine-tune",
                         pick->reuses_needed ? *pick->reuses_needed : 1,
                         pick->reuses_needed && *pick->reuses_needed == 1 ? "" : "s");
    } else if (std::isfinite(a.finetune.scratch_energy_j)) {
      lead = "Train each task from scratch: in this study reusing a pretrained encoder never saved energy. ";
    }
    if (!lead.empty() || !text.empty()) sec.blocks.push_back(recommendation(lead + text + (estimated ? " Energies are estimates." : "")));
  }

  sec.blocks.push_back(pretrain_cumulative(a, prefix, est));

  // Per-step table.
  {
    table::Table t;
    t.name = prefix + "-steps";
    t.title = "Pretraining and each recycling step (mean ± sample sd over seeds)";
    t.columns = table::headed({"step", "task", "variant", "results", "diverged", "missing", fmt::format("energy ({})", unit.name), "epochs",
                "time (s)", "metric", "saving vs scratch", "CO2e (g)"});
    const auto row = [&](const std::string& step, const std::string& task, const study::VariantSummary& v, double saving) {
      t.rows.push_back({Cell::number(step), task.empty() ? "-" : task, v.variant, Cell::number(std::to_string(v.results)),
                        Cell::number(std::to_string(v.diverged)), Cell::number(std::to_string(v.missing)),
                        Cell::number(stat_text(v.energy_j, unit.joules)), Cell::number(stat_text(v.epochs)),
                        Cell::number(stat_text(v.duration_s)), Cell::number(stat_text(v.metric)), Cell::number(pct_text(saving)),
                        Cell::number(v.energy_j.n > 0 ? grams_co2(v.energy_j.mean, ctx.carbon) : "-")});
    };
    row("0", "pretraining", a.pretrain, study::kNaN);
    for (const auto& st : a.steps) {
      const std::string step = std::to_string(st.step);
      row(step, st.task, st.scratch, study::kNaN);
      row(step, st.task, st.finetune, st.finetune_saving_pct);
      row(step, st.task, st.frozen, st.frozen_saving_pct);
    }
    sec.blocks.push_back(Block::of(std::move(t)));
  }
  sec.blocks.push_back(Block::of(pretrain_break_even(a, prefix, unit)));
  add_trials(sec, s, outcomes);

  const RunData* highlight =
      cheapest_run(s, outcomes, [](const study::TrialOutcome& o) { return o.phase == study::kPhasePretrain; });
  sec.blocks.push_back(Block::markup("<h3>Power over time</h3>"));
  add_timelines(out, runs, highlight, "the pretraining", prefix, ctx);
  return out;
}

}  // namespace powertrain::report
