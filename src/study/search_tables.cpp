// A search's tables: what became of every setup it sampled, and its choice.
// The search's state is decided again from the stored segments (the same
// search::decide the runner uses), so the tables say what the search did.
#include <cmath>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "powertrain/error.h"
#include "powertrain/search/asynchronous.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/search_view.h"
#include "powertrain/study/spec.h"
#include "powertrain/study/tables.h"

namespace powertrain::study {

std::optional<SearchView> search_view(const store::Study& study, const std::vector<TrialOutcome>& trials) {
  if (study.kind != "search") return std::nullopt;
  StudySpec spec;
  try {
    spec = parse_spec(study.spec, fmt::format("<stored spec of study '{}'>", study.name), "search");
  } catch (const ConfigError&) {
    return std::nullopt;
  }
  std::map<std::string, const TrialOutcome*> by_key;
  for (const auto& t : trials) by_key[t.key] = &t;
  SearchView v;
  v.settings = spec.search;
  v.setups = search_setups(spec);
  const auto observed = observe_search(spec, [&](const std::string& key) -> std::optional<SegmentRecord> {
    auto it = by_key.find(key);
    if (it == by_key.end()) return std::nullopt;
    return SegmentRecord{it->second->status, it->second->epoch_records, it->second->message};
  });
  for (const auto& t : trials)
    if (t.phase == kPhaseSearch) {
      v.segment_energy_j += t.energy_j;
      ++v.segments;
    }
  // Segments that Slurm ran were decided asynchronously (ASHA): their records
  // are read by the same rule, so that early promotions read as such.
  bool on_slurm = false;
  for (const auto& t : trials) on_slurm = on_slurm || (t.phase == kPhaseSearch && !t.slurm_job.empty());
  v.decision = on_slurm ? search::decide_asynchronous(spec.search, v.setups, observed, v.segment_energy_j)
                        : search::decide(spec.search, v.setups, observed, v.segment_energy_j);
  v.curves = observed;
  v.space_note = search::smaller_than_asked(spec.search_space, spec.search).value_or("");
  return v;
}

SearchCounts search_counts(const SearchView& v) {
  SearchCounts n;
  n.sampled = static_cast<int>(v.setups.size());
  for (const auto& verdict : v.decision.verdicts) {
    for (const auto& o : v.curves)
      if (o.setup == verdict.setup) {
        if (o.rung >= 0) ++n.started;
        if (o.rung > 0) ++n.continued;
      }
    if (verdict.state == "stopped") ++n.stopped;
    if (verdict.state == "failed") ++n.failed;
  }
  return n;
}

namespace {

struct SetupRow {
  const search::Verdict* v = nullptr;
  int epochs = 0;
  bool chosen = false;
};

std::string basis_text(const search::Standing& s) {
  if (s.basis == "reached") return "measured";
  if (s.basis == "predicted") return "predicted";
  if (s.basis == "unlikely") return "not expected";
  return "";
}

}  // namespace

std::vector<table::Table> search_tables(const SearchView& v) {
  std::vector<table::Table> out;
  const bool with_target = v.settings.rule.target_metric.has_value();
  std::vector<SetupRow> rows;
  for (std::size_t i = 0; i < v.decision.verdicts.size(); ++i) {
    const auto& verdict = v.decision.verdicts[i];
    SetupRow r;
    r.v = &verdict;
    for (const auto& o : v.curves)
      if (o.setup == verdict.setup) r.epochs = static_cast<int>(o.epochs.size());
    r.chosen = v.decision.chosen && *v.decision.chosen == i;
    rows.push_back(r);
  }
  std::vector<Field<SetupRow>> fields{
      {{"batch_size", "batch", 0}, [](const SetupRow& r) { return Cell{store::Value(r.v->setup.batch_size), {}}; }},
      {{"learning_rate", "lr", 0}, [](const SetupRow& r) { return Cell{real(r.v->setup.learning_rate), {}}; }},
      {{"state", "state", 0}, [](const SetupRow& r) { return Cell{store::Value(r.v->state + (r.chosen ? " (chosen)" : "")), {}}; }},
      {{"epochs", "epochs", 0}, [](const SetupRow& r) { return Cell{store::Value(static_cast<std::int64_t>(r.epochs)), {}}; }},
      {{"energy_j", "energy J", 3}, [](const SetupRow& r) { return Cell{real(r.v->standing.spent_j), {}}; }},
      {{"best_val_metric", "best val", 3}, [](const SetupRow& r) { return Cell{real(r.v->standing.best_metric), {}}; }},
  };
  if (with_target) {
    fields.push_back({{"energy_to_target_j", "to target J", 3},
                      [](const SetupRow& r) { return Cell{real(r.v->standing.cost_j), {}}; }});
    fields.push_back({{"energy_to_target_basis", "basis", 0},
                      [](const SetupRow& r) { return Cell{store::Value(basis_text(r.v->standing)), {}}; }});
  }
  fields.push_back({{"why", "why", 0}, [](const SetupRow& r) { return Cell{store::Value(r.v->reason), {}}; }});
  bool any_threads = false;
  for (const auto& r : rows) any_threads = any_threads || r.v->setup.threads > 0;
  if (any_threads)
    fields.insert(fields.begin() + 2, {{"threads", "threads", 0}, [](const SetupRow& r) {
                                         return Cell{store::Value(static_cast<std::int64_t>(r.v->setup.threads)), {}};
                                       }});
  auto setups = make_table("search_setups", "Setups of the search", fields, rows);
  const auto n = search_counts(v);
  setups.notes.push_back(fmt::format(
      "{} of {} setups started, {} continued past their first rung, {} stopped early; rungs end at epochs {}.",
      n.started, n.sampled, n.continued, n.stopped, fmt::format("{}", fmt::join(search::rungs(v.settings), ", "))));
  if (!v.space_note.empty()) setups.notes.push_back(v.space_note + ".");
  if (with_target)
    setups.notes.push_back(
        "to target: measured once a setup reached the target; before, predicted from its curve (the curve ensemble "
        "from 6 epochs, a straight line before) — a prediction, not a measurement.");
  out.push_back(std::move(setups));

  // The choice, one vertical row.
  struct Choice {
    const SearchView* v;
  };
  const search::Verdict* chosen = v.decision.chosen ? &v.decision.verdicts[*v.decision.chosen] : nullptr;
  std::vector<Field<Choice>> cf{
      {{"chosen", "chosen setup", 0},
       [chosen](const Choice&) { return Cell{store::Value(chosen ? search::label(chosen->setup) : "none yet"), {}}; }},
      {{"chosen_energy_to_target_j", with_target ? "its energy to the target J" : "its energy to convergence J", 3},
       [chosen](const Choice&) { return Cell{chosen ? real(chosen->standing.cost_j) : store::Value(), {}}; }},
      {{"chosen_best_val_metric", "its best validation metric", 3},
       [chosen](const Choice&) { return Cell{chosen ? real(chosen->standing.best_metric) : store::Value(), {}}; }},
      {{"search_energy_j", "search energy J (its segments' latest runs)", 3},
       [](const Choice& c) { return Cell{real(c.v->segment_energy_j), {}}; }},
      {{"segments", "segments", 0},
       [](const Choice& c) { return Cell{store::Value(static_cast<std::int64_t>(c.v->segments)), {}}; }},
      {{"state", "state", 0}, [](const Choice& c) {
         return Cell{store::Value(c.v->decision.finished ? (c.v->decision.budget_spent ? "finished: budget spent" : "finished")
                                                         : "in progress"),
                     {}};
       }},
      // A choice among fewer setups than were sampled says so (issue 25).
      {{"failed_setups", "setups that failed", 0}, [n](const Choice&) {
         return Cell{store::Value(n.failed == 0 ? std::string("none")
                                                : fmt::format("{} of {}: the choice is among the others", n.failed,
                                                              n.sampled)),
                     {}};
       }},
  };
  auto choice = make_table("search_choice", "The search's choice", cf, std::vector<Choice>{{&v}});
  choice.vertical = true;
  if (n.failed > 0)
    choice.notes.push_back(fmt::format(
        "{} of the {} setups failed (the setups' table says why), so they could not be chosen: the choice may not "
        "be the best of the space.",
        n.failed, n.sampled));
  out.push_back(std::move(choice));
  return out;
}

}  // namespace powertrain::study
