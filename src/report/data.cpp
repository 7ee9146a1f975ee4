#include "powertrain/report/data.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::report {

namespace {

RunData load_run(const store::Store& store, std::int64_t run_id) {
  RunData r;
  r.run = store.run(run_id);
  r.epochs = store.epochs_of(run_id);
  r.timeline = store.timeline_of(run_id);
  return r;
}

StudyData load_study(const store::Store& store, const store::Study& study) {
  StudyData s;
  s.study = study;
  s.trials = store.results_of(study.id);
  for (const auto& t : s.trials) {
    if (!t.run) continue;
    RunData r;
    r.run = *t.run;
    r.epochs = store.epochs_of(t.run->id);
    r.timeline = store.timeline_of(t.run->id);
    s.runs.emplace(t.run->id, std::move(r));
  }
  return s;
}

void add_unique(std::vector<std::string>& v, const std::string& s) {
  if (!s.empty() && std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

}  // namespace

ReportData load_report_data(const store::Store& store, const std::optional<std::string>& study) {
  ReportData d;
  d.db_label = store.path().string();
  if (study) {
    const auto found = store.find_study(*study);
    if (!found) {
      std::string known;
      for (const auto& o : store.list_studies()) known += (known.empty() ? "" : ", ") + o.study.name;
      throw ConfigError(fmt::format("{}: no study named '{}' ({})", d.db_label, *study,
                                    known.empty() ? "the database has no studies" : "studies: " + known));
    }
    d.studies.push_back(load_study(store, *found));
    return d;
  }
  std::set<std::int64_t> trial_runs;
  for (const auto& o : store.list_studies()) {
    d.studies.push_back(load_study(store, o.study));
    for (const auto& [id, r] : d.studies.back().runs) trial_runs.insert(id);
  }
  for (const auto& r : store.list_runs()) {
    if (trial_runs.count(r.id)) continue;
    d.other_runs.push_back(load_run(store, r.id));
  }
  return d;
}

std::vector<ComponentMethod> component_methods(const std::vector<const RunData*>& runs) {
  std::vector<ComponentMethod> out;
  for (const auto* r : runs) {
    for (const auto& e : r->epochs) {
      for (const auto& ch : e.channels) {
        auto it = std::find_if(out.begin(), out.end(),
                               [&](const auto& c) { return c.component == ch.component && c.method == ch.method; });
        if (it == out.end()) {
          out.push_back(ComponentMethod{ch.component, ch.method, {}, {}, false, {}});
          it = out.end() - 1;
        }
        add_unique(it->devices, ch.device);
        add_unique(it->channels, ch.channel_id);
        it->in_total = it->in_total || ch.in_total;
        if (std::find(it->runs.begin(), it->runs.end(), r->run.id) == it->runs.end()) it->runs.push_back(r->run.id);
      }
    }
  }
  for (auto& c : out) std::sort(c.runs.begin(), c.runs.end());
  // Group a component's methods together, keeping first-seen order otherwise.
  std::vector<ComponentMethod> grouped;
  for (const auto& c : out) {
    if (std::any_of(grouped.begin(), grouped.end(), [&](const auto& g) { return g.component == c.component; })) continue;
    for (const auto& d : out)
      if (d.component == c.component) grouped.push_back(d);
  }
  return grouped;
}

bool has_estimates(const std::vector<const RunData*>& runs) {
  for (const auto* r : runs) {
    if (r->run.summary.method.find("estimated") != std::string::npos) return true;
    for (const auto& e : r->epochs) {
      if (e.method.find("estimated") != std::string::npos) return true;
      for (const auto& ch : e.channels)
        if (ch.in_total && ch.method == energy::Method::estimated) return true;
    }
  }
  return false;
}

std::vector<const RunData*> runs_of(const StudyData& s) {
  std::vector<const RunData*> out;
  for (const auto& [id, r] : s.runs) out.push_back(&r);
  return out;
}

std::vector<const RunData*> runs_of(const ReportData& d) {
  std::vector<const RunData*> out;
  for (const auto& s : d.studies)
    for (const auto& [id, r] : s.runs) out.push_back(&r);
  for (const auto& r : d.other_runs) out.push_back(&r);
  std::sort(out.begin(), out.end(), [](const auto* a, const auto* b) { return a->run.id < b->run.id; });
  return out;
}

const RunData* run_of(const StudyData& s, const store::TrialResult& t) {
  if (!t.run) return nullptr;
  const auto it = s.runs.find(t.run->id);
  return it == s.runs.end() ? nullptr : &it->second;
}

}  // namespace powertrain::report
