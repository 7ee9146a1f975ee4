// Sections of the grid, pretraining, multitask, search and train studies.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>

#include "powertrain/report/sections.h"
#include "powertrain/study/analysis.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/search_view.h"
#include "powertrain/study/tables.h"

namespace powertrain::report {

namespace {

using study::Stat;

// --- small formatting helpers ------------------------------------------------

std::string lr_text(double lr) { return fmt::format("{}", lr); }

std::string energy_text(double j, const EnergyUnit& u, int digits = 4) {
  if (!std::isfinite(j)) return "-";
  return format_number(j / u.joules, digits) + " " + u.name;
}

// "mean ± sd" (sd only with two values or more), scaled by `scale`.
std::string stat_text(const Stat& s, double scale = 1.0, int digits = 4) {
  if (s.n == 0 || !std::isfinite(s.mean)) return "-";
  std::string out = format_number(s.mean / scale, digits);
  if (s.n > 1 && std::isfinite(s.sd) && s.sd != 0.0) out += " ± " + format_number(s.sd / scale, 2);
  return out;
}

std::string pct_text(double p) { return std::isfinite(p) ? format_number(p, 3) + "%" : "-"; }

std::string grams_co2(double energy_j, const energy::CarbonOptions& c) {
  if (!std::isfinite(energy_j)) return "-";
  return format_number(energy::carbon_of(energy_j, c).emissions_kg * 1000.0, 3);
}

bool estimated_method(const std::string& m) { return m.find("estimated") != std::string::npos; }

Cell method_cell(const std::string& method) {
  Cell c(method.empty() ? "-" : method);
  if (estimated_method(method)) c.css_class = "estimate";
  return c;
}

// Methods of some runs, distinct, joined with " / ".
std::string methods_of(const std::vector<const RunData*>& runs) {
  std::vector<std::string> ms;
  for (const auto* r : runs) {
    const auto& m = r->run.summary.method;
    if (!m.empty() && std::find(ms.begin(), ms.end(), m) == ms.end()) ms.push_back(m);
  }
  std::string out;
  for (const auto& m : ms) out += (out.empty() ? "" : " / ") + m;
  return out;
}

std::string study_prefix(const StudyData& s) { return fmt::format("study{}", s.study.id); }

std::string section_id(const StudyData& s) { return fmt::format("study-{}", s.study.id); }

std::string estimate_suffix(bool estimated) { return estimated ? " (estimated)" : ""; }

// A command as one line: its arguments as written in the spec (placeholders kept).
std::string command_line(const run::Command& c) {
  std::string out;
  for (const auto& a : c.argv) {
    const bool plain = !a.empty() && a.find_first_of(" \"'") == std::string::npos;
    out += (out.empty() ? "" : " ") + (plain ? a : "'" + a + "'");
  }
  return out;
}

// A paragraph with the study's setting: dataset and model, or the user's
// program for a study of one (docs/external.md); trials by status.
std::string study_meta(const StudyData& s) {
  std::map<std::string, int> by_status;
  std::set<std::string> datasets, models, optimizers, devices, programs;
  for (const auto& t : s.trials) {
    ++by_status[std::string(store::to_string(t.trial.status))];
    optimizers.insert(t.trial.config.optimizer);
    devices.insert(t.trial.config.device);
    if (!t.trial.config.command.empty()) {
      programs.insert(command_line(t.trial.config.command));
      continue;
    }
    datasets.insert(t.trial.config.dataset);
    models.insert(t.trial.config.model);
  }
  const auto join = [](const std::set<std::string>& v) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
    return out.empty() ? std::string("-") : out;
  };
  std::string status;
  for (const auto& [k, n] : by_status) status += fmt::format("{}{} {}", status.empty() ? "" : ", ", n, k);
  std::string what;
  if (!programs.empty()) what = fmt::format("Program {}", join(programs));
  if (!datasets.empty() || programs.empty())
    what += fmt::format("{}Dataset {} · model {}", what.empty() ? "" : " · ", join(datasets), join(models));
  return "<p class=\"meta\">" +
         html_escape(fmt::format("{} · optimizer {} · device {} · {} trials ({}) · created {}", what,
                                 join(optimizers), join(devices), s.trials.size(), status.empty() ? "none" : status,
                                 format_time(s.study.created_at))) +
         "</p>";
}

Block recommendation(const std::string& text) {
  return Block::markup("<div class=\"recommendation\"><span class=\"label\">Recommendation</span>" + html_escape(text) +
                       "</div>");
}

Block paragraph(const std::string& text) { return Block::markup("<p>" + html_escape(text) + "</p>"); }

// Timeline figures of a study's runs: the highlighted one inline, the others
// in a collapsed block (up to a limit) and all of them in figures/.
void add_timelines(BuiltSection& out, const std::vector<const RunData*>& runs, const RunData* highlight,
                   const std::string& highlight_why, const std::string& prefix, const SectionContext& ctx) {
  std::vector<Figure> others;
  bool any = false;
  for (const auto* r : runs) {
    auto f = timeline_figure(*r, fmt::format("{}-run{}-power", prefix, r->run.id), ctx.max_timeline_points);
    if (!f) continue;
    any = true;
    if (r == highlight) {
      f->title = fmt::format("Power of run {} over time ({})", r->run.id, highlight_why);
      out.section.blocks.push_back(Block::of(std::move(*f)));
    } else {
      others.push_back(std::move(*f));
    }
  }
  if (!any) out.section.blocks.push_back(paragraph("No run has a power timeline yet."));
  if (others.empty()) return;
  const std::size_t inline_n = std::min(others.size(), ctx.max_inline_timelines);
  if (inline_n > 0) {
    out.section.blocks.push_back(Block::details(html_escape(fmt::format(
        "Power timelines of {} other run{}", inline_n, inline_n == 1 ? "" : "s"))));
    for (std::size_t i = 0; i < inline_n; ++i) out.section.blocks.push_back(Block::of(others[i]));
    out.section.blocks.push_back(Block::end_details());
  }
  if (others.size() > inline_n) {
    out.section.blocks.push_back(paragraph(fmt::format(
        "{} more power timelines are in the figures folder next to this page ({}-run<ID>-power.svg).",
        others.size() - inline_n, prefix)));
    for (std::size_t i = inline_n; i < others.size(); ++i) out.extra_figures.push_back(std::move(others[i]));
  }
}

// Others' share of the CPU time while a trial ran: "62% (busy)" when material.
std::string others_cpu_text(const study::TrialOutcome& o) {
  if (!o.cpu) return "-";
  return fmt::format("{:.0f}%{}", 100 * o.cpu->others_share(), o.interfered() ? " (busy)" : "");
}

// Every trial of a study, one row each (collapsed in the page, CSV in full).
HtmlTable trials_table(const StudyData& s, const std::vector<study::TrialOutcome>& outcomes) {
  HtmlTable t;
  t.name = study_prefix(s) + "-trials";
  t.caption = "Every trial (latest attempt)";
  t.header = {"trial", "phase", "step", "task", "batch size", "learning rate", "seed", "status", "epochs",
              "energy (J)", "time (s)", "metric", "method", "others' CPU", "message"};
  for (std::size_t i = 0; i < s.trials.size() && i < outcomes.size(); ++i) {
    const auto& tr = s.trials[i];
    const auto& o = outcomes[i];
    const bool has_run = tr.run.has_value();
    t.rows.push_back({Cell::number(std::to_string(tr.trial.id)), tr.trial.phase.empty() ? "-" : tr.trial.phase,
                      Cell::number(std::to_string(tr.trial.step)), tr.trial.task.empty() ? "-" : tr.trial.task,
                      Cell::number(std::to_string(o.batch_size)), Cell::number(lr_text(o.learning_rate)),
                      Cell::number(std::to_string(o.seed)), std::string(store::to_string(o.status)),
                      Cell::number(has_run ? std::to_string(o.epochs) : "-"),
                      Cell::number(has_run ? format_number(o.energy_j) : "-"),
                      Cell::number(has_run ? format_number(o.duration_s) : "-"), Cell::number(format_number(o.metric)),
                      method_cell(has_run ? tr.run->summary.method : ""), others_cpu_text(o), o.message});
  }
  return t;
}

// A study table as it appears in the page (its CSV beside it under `name`).
HtmlTable html_of(const study::ResultTable& r, const std::string& name) {
  HtmlTable t;
  t.name = name;
  t.caption = r.title;
  for (const auto& col : r.columns) t.header.push_back(col.header);
  for (const auto& row : r.rows) {
    std::vector<Cell> cells;
    for (std::size_t i = 0; i < row.size(); ++i) {
      Cell cell(study::cell_text(row[i], r.columns[i]));
      cell.numeric = std::holds_alternative<double>(row[i].value) || std::holds_alternative<std::int64_t>(row[i].value);
      cells.push_back(std::move(cell));
    }
    t.rows.push_back(std::move(cells));
  }
  return t;
}

// The outcomes of a study's trials with their runs' epochs.
std::vector<study::TrialOutcome> outcomes_with_epochs(const StudyData& s) {
  auto outcomes = study::outcomes_of(s.trials);
  study::attach_epochs(outcomes, s.trials, [&](std::int64_t id) {
    const auto it = s.runs.find(id);
    return it == s.runs.end() ? std::vector<run::EpochRecord>{} : it->second.epochs;
  });
  return outcomes;
}

// The "every trial" block of a section, after a note when some trials ran on a busy machine.
void add_trials(Section& sec, const StudyData& s, const std::vector<study::TrialOutcome>& outcomes) {
  // What qualifies the trials' numbers: busy machines, quiet waits, shared nodes.
  for (const auto& note : study::trials_table(outcomes).notes) sec.blocks.push_back(paragraph(note));
  sec.blocks.push_back(Block::details("Every trial"));
  sec.blocks.push_back(Block::of(trials_table(s, outcomes)));
  sec.blocks.push_back(Block::end_details());
  // The cluster's own energy accounting beside powertrain's, where it has one.
  if (const auto c = study::cluster_energy_table(outcomes)) {
    HtmlTable t;
    t.name = study_prefix(s) + "-cluster-energy";
    t.caption = c->title;
    for (const auto& col : c->columns) t.header.push_back(col.header);
    for (const auto& row : c->rows) {
      std::vector<Cell> cells;
      for (std::size_t i = 0; i < row.size(); ++i) {
        Cell cell(study::cell_text(row[i], c->columns[i]));
        cell.numeric = std::holds_alternative<double>(row[i].value) || std::holds_alternative<std::int64_t>(row[i].value);
        cells.push_back(std::move(cell));
      }
      t.rows.push_back(std::move(cells));
    }
    sec.blocks.push_back(Block::of(std::move(t)));
    for (const auto& note : c->notes) sec.blocks.push_back(paragraph(note));
  }
}

// The cheapest usable run among the trials that `pick` accepts.
const RunData* cheapest_run(const StudyData& s, const std::vector<study::TrialOutcome>& outcomes,
                            const std::function<bool(const study::TrialOutcome&)>& pick) {
  const RunData* best = nullptr;
  double best_e = INFINITY;
  for (std::size_t i = 0; i < s.trials.size() && i < outcomes.size(); ++i) {
    if (!outcomes[i].usable() || !pick(outcomes[i])) continue;
    const RunData* r = run_of(s, s.trials[i]);
    if (r && outcomes[i].energy_j < best_e) {
      best = r;
      best_e = outcomes[i].energy_j;
    }
  }
  return best;
}

std::string config_name(const study::ConfigSummary& c) {
  return fmt::format("batch size {} with learning rate {}", c.batch_size, lr_text(c.learning_rate));
}

}  // namespace

// --- grid ---------------------------------------------------------------------------

BuiltSection grid_section(const StudyData& s, const SectionContext& ctx) {
  BuiltSection out;
  auto& sec = out.section;
  sec.id = section_id(s);
  sec.title = s.study.name;
  sec.kind = "grid study";
  const auto outcomes = outcomes_with_epochs(s);
  const auto [tolerance, target] = study::grid_objective(s.study);
  const auto g = study::analyze_grid(outcomes, tolerance, target);
  const auto runs = runs_of(s);
  const bool estimated = has_estimates(runs);
  const std::string est = estimate_suffix(estimated);
  const std::string prefix = study_prefix(s);
  sec.blocks.push_back(Block::markup(study_meta(s)));

  double max_e = 0.0;
  for (const auto& c : g.configs)
    if (c.ranked()) max_e = std::max(max_e, c.energy_j.mean);
  const EnergyUnit unit = energy_unit_for(max_e);

  // Recommendation: the cheapest setup that reached the target (or, without
  // one, came within the tolerance of the top metric), compared only with
  // setups of that quality; not the cheapest alone, which may have stopped
  // early at a poor metric.
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
    sec.blocks.push_back(recommendation(text));
  } else if (g.best && g.target_metric && g.ranking.size() > 1) {
    sec.blocks.push_back(recommendation(fmt::format(
        "No setup reached the target metric {} in every seed: there is nothing to recommend at that quality. Lower the "
        "target, or train longer (training.max_epochs).",
        format_number(*g.target_metric))));
  } else if (g.best) {
    const auto& b = g.configs[*g.best];
    sec.blocks.push_back(recommendation(fmt::format(
        "Only one setup converged so far: {}, with {}{} at a final metric of {}. Run more of the grid to compare.",
        config_name(b), energy_text(b.energy_j.mean, unit), est, format_number(b.metric.mean))));
  } else {
    sec.blocks.push_back(paragraph("No configuration has a usable result yet (every result diverged, failed or is unfinished)."));
  }
  {
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
    sec.blocks.push_back(paragraph(text));
  }

  // Heatmaps over batch size x learning rate.
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
  double max_epoch_e = 0.0;
  for (const auto& c : g.configs)
    if (c.energy_per_epoch_j.n > 0) max_epoch_e = std::max(max_epoch_e, c.energy_per_epoch_j.mean);
  const EnergyUnit epoch_unit = energy_unit_for(max_epoch_e);
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

  // Energy against final metric with the Pareto front.
  {
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
    sec.blocks.push_back(Block::of(pareto_figure(in)));
  }

  // Ranking table.
  {
    HtmlTable t;
    t.name = prefix + "-configurations";
    t.caption = "Setups ranked by energy to convergence (mean ± sample sd over seeds)";
    t.header = {"rank", "batch size", "learning rate", "results / trials", fmt::format("energy / epoch ({})", epoch_unit.name),
                "epochs", fmt::format("energy to convergence ({})", unit.name), "time (s)", "final metric", "CO2e (g)",
                "notes", "method"};
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
    sec.blocks.push_back(Block::of(std::move(t)));
  }

  // How each factor moves energy per epoch and epochs.
  {
    HtmlTable t;
    t.name = prefix + "-factor-effects";
    t.caption = "Effect of each factor: means over the setups at each level";
    t.header = {"factor", "level", "setups", fmt::format("energy per epoch ({})", epoch_unit.name), "epochs to convergence",
                fmt::format("energy to convergence ({})", unit.name)};
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
    sec.blocks.push_back(Block::of(std::move(t)));
  }

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

// --- pretraining ------------------------------------------------------------------

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

  // Cumulative energy over reuses with the break-even points.
  {
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
    sec.blocks.push_back(Block::of(cumulative_figure(in)));
  }

  // Per-step table.
  {
    HtmlTable t;
    t.name = prefix + "-steps";
    t.caption = "Pretraining and each recycling step (mean ± sample sd over seeds)";
    t.header = {"step", "task", "variant", "results", "diverged", "missing", fmt::format("energy ({})", unit.name), "epochs",
                "time (s)", "metric", "saving vs scratch", "CO2e (g)"};
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
  {
    HtmlTable t;
    t.name = prefix + "-break-even";
    t.caption = "Break-even: reuses after which the pretraining is paid back";
    t.header = {"reuse", fmt::format("pretraining ({})", unit.name), fmt::format("per task from scratch ({})", unit.name),
                fmt::format("per task reused ({})", unit.name), fmt::format("saving per reuse ({})", unit.name),
                "break-even reuses N*", "tasks needed"};
    for (const auto* be : {&a.finetune, &a.frozen}) {
      t.rows.push_back({be->variant, Cell::number(format_number(be->pretrain_energy_j / unit.joules)),
                        Cell::number(format_number(be->scratch_energy_j / unit.joules)),
                        Cell::number(format_number(be->reuse_energy_j / unit.joules)),
                        Cell::number(format_number(be->saving_per_reuse_j / unit.joules)),
                        Cell::number(be->reuses ? format_number(*be->reuses, 3) : "never"),
                        Cell::number(be->reuses_needed ? std::to_string(*be->reuses_needed) : "never",
                                     be->pays_off() ? "best" : "")});
    }
    sec.blocks.push_back(Block::of(std::move(t)));
  }
  add_trials(sec, s, outcomes);

  const RunData* highlight =
      cheapest_run(s, outcomes, [](const study::TrialOutcome& o) { return o.phase == study::kPhasePretrain; });
  sec.blocks.push_back(Block::markup("<h3>Power over time</h3>"));
  add_timelines(out, runs, highlight, "the pretraining", prefix, ctx);
  return out;
}

// --- multitask ----------------------------------------------------------------------

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
    HtmlTable t;
    t.name = prefix + "-tasks";
    t.caption = "Each task: its own model against its head on the shared model (mean ± sample sd over seeds)";
    t.header = {"task", "results", fmt::format("energy ({})", unit.name), "epochs", "time (s)", "metric (single)",
                "metric (multitask)", "metric change", "CO2e (g)"};
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
    HtmlTable t;
    t.name = prefix + "-comparison";
    t.caption = "Totals: the single-task models together against the shared model";
    t.header = {"approach", fmt::format("energy ({})", unit.name), "epochs", "time (s)", "mean metric", "CO2e (g)", "saving"};
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

// --- search -------------------------------------------------------------------------

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

// --- plain runs ----------------------------------------------------------------------------

namespace {

HtmlTable runs_table(const std::string& name, const std::string& caption, const std::vector<const RunData*>& runs,
                     const energy::CarbonOptions& carbon) {
  HtmlTable t;
  t.name = name;
  t.caption = caption;
  t.header = {"run", "dataset", "model", "batch size", "learning rate", "status", "epochs", "energy (J)", "time (s)",
              "best val metric", "test metric", "CO2e (g)", "method", "started"};
  for (const auto* r : runs) {
    const auto& s = r->run.summary;
    t.rows.push_back({Cell::number(std::to_string(r->run.id)), r->run.config.dataset, r->run.config.model,
                      Cell::number(std::to_string(r->run.config.batch_size)), Cell::number(lr_text(r->run.config.learning_rate)),
                      std::string(run::to_string(s.status)), Cell::number(std::to_string(s.epochs)),
                      Cell::number(format_number(s.energy_j)), Cell::number(format_number(s.duration_s)),
                      Cell::number(format_number(s.best_val_metric)), Cell::number(format_number(s.test_metric)),
                      Cell::number(grams_co2(s.energy_j, carbon)), method_cell(s.method), Cell(format_time(r->run.started_at)).with_class("nowrap")});
  }
  return t;
}

}  // namespace

BuiltSection runs_study_section(const StudyData& s, const SectionContext& ctx) {
  BuiltSection out;
  auto& sec = out.section;
  sec.id = section_id(s);
  sec.title = s.study.name;
  sec.kind = fmt::format("{} study", store::to_string(s.study.kind));
  sec.blocks.push_back(Block::markup(study_meta(s)));
  const auto runs = runs_of(s);
  sec.blocks.push_back(Block::of(runs_table(study_prefix(s) + "-runs", "Runs of the study", runs, ctx.carbon)));
  sec.blocks.push_back(Block::markup("<h3>Power over time</h3>"));
  add_timelines(out, runs, runs.empty() ? nullptr : runs.front(), "the first run", study_prefix(s), ctx);
  return out;
}

BuiltSection other_runs_section(const std::vector<RunData>& runs, const SectionContext& ctx) {
  BuiltSection out;
  auto& sec = out.section;
  sec.id = "runs";
  sec.title = "Runs outside studies";
  sec.kind = "runs";
  std::vector<const RunData*> ptrs;
  for (const auto& r : runs) ptrs.push_back(&r);
  sec.blocks.push_back(paragraph(
      "Runs of powertrain train, and earlier attempts of study trials (a trial keeps only its latest run)."));
  sec.blocks.push_back(Block::of(runs_table("runs", "Runs", ptrs, ctx.carbon)));
  sec.blocks.push_back(Block::markup("<h3>Power over time</h3>"));
  add_timelines(out, ptrs, ptrs.empty() ? nullptr : ptrs.back(), "the latest run", "runs", ctx);
  return out;
}

std::vector<HtmlTable> tables_of(const Section& s) {
  std::vector<HtmlTable> out;
  for (const auto& b : s.blocks)
    if (b.kind == Block::Kind::table) out.push_back(b.table);
  return out;
}

std::vector<Figure> figures_of(const Section& s) {
  std::vector<Figure> out;
  for (const auto& b : s.blocks)
    if (b.kind == Block::Kind::figure) out.push_back(b.figure);
  return out;
}

}  // namespace powertrain::report
