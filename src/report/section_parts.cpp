// What the study sections share: see section_parts.h.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>

#include "powertrain/study/plan.h"
#include "powertrain/study/search_view.h"
#include "section_parts.h"

namespace powertrain::report::detail {


// --- small formatting helpers ------------------------------------------------

std::string lr_text(double lr) { return fmt::format("{}", lr); }

std::string energy_text(double j, const EnergyUnit& u, int digits) {
  if (!std::isfinite(j)) return "-";
  return format_number(j / u.joules, digits) + " " + u.name;
}

// "mean ± sd" (sd only with two values or more), scaled by `scale`.
std::string stat_text(const Stat& s, double scale, int digits) {
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
  if (estimated_method(method)) c.mark = "estimate";
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
table::Table trials_table(const StudyData& s, const std::vector<study::TrialOutcome>& outcomes) {
  table::Table t;
  t.name = study_prefix(s) + "-trials";
  t.title = "Every trial (latest attempt)";
  t.columns = table::headed({"trial", "phase", "step", "task", "batch size", "learning rate", "seed", "status", "epochs",
              "energy (J)", "time (s)", "metric", "method", "others' CPU", "message"});
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

// A study table as it appears in the page: the same table (its cells shown as
// on the console), its CSV beside the page under `name`.
table::Table html_of(const table::Table& r, const std::string& name) {
  table::Table t = r;
  t.name = name;
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
    sec.blocks.push_back(Block::of(html_of(*c, study_prefix(s) + "-cluster-energy")));
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

}  // namespace powertrain::report::detail
