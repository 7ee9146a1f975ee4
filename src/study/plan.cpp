// Trial plans and canonical keys (no torch).
#include "powertrain/study/plan.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "powertrain/io/output.h"
#include "powertrain/store/json.h"
#include "powertrain/study/analysis.h"
#include "powertrain/study/kind.h"

namespace powertrain::study {

/// The workload's data options with a task source's overrides on top, sorted by key.
std::vector<std::pair<std::string, std::string>> merged_data(const run::RunConfig& base, const TaskSource& src) {
  auto out = base.data_options;
  for (const auto& [k, v] : src.data) {
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& kv) { return kv.first == k; });
    if (it != out.end()) it->second = v;
    else out.emplace_back(k, v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

PlannedTrial make_trial(const StudySpec& s, run::RunConfig config, const std::string& phase, int step,
                        const std::string& task, std::vector<std::string> classes, std::string label) {
  PlannedTrial t;
  std::sort(config.data_options.begin(), config.data_options.end());
  t.spec.key = canonical_key(config, s.data_seed, phase, step, task, classes);
  t.spec.phase = phase;
  t.spec.step = step;
  t.spec.task = task;
  t.spec.config = std::move(config);
  t.classes = std::move(classes);
  t.label = std::move(label);
  return t;
}

std::string canonical_key(const run::RunConfig& c, std::uint64_t data_seed, const std::string& phase, int step,
                          const std::string& task, const std::vector<std::string>& classes) {
  nlohmann::json data = nlohmann::json::object();
  for (const auto& [k, v] : c.data_options) data[k] = v;
  // The run settings that define the experiment (run/settings.h), as the
  // store's trial keys have them, with the trial's place in the study.
  nlohmann::json j = store::experiment_json(c);
  j.erase("data_options");
  j["data"] = data;
  // Whether the trial starts from the pretrained encoder, not where that lies.
  j["init_encoder"] = !c.init_encoder.empty();
  j["classes"] = classes;
  j["data_seed"] = data_seed;
  j["phase"] = phase;
  j["step"] = step;
  j["task"] = task;
  return j.dump();  // objects keep their keys sorted; doubles print shortest round-trip
}

std::vector<PlannedTrial> plan_trials(const StudySpec& s) { return study_kind(s.kind).plan(s); }

std::vector<search::Setup> search_setups(const StudySpec& spec) {
  search::validate(spec.search, spec.search_space);
  return search::sample_setups(spec.search_space, spec.search);
}

PlannedTrial segment_trial(const StudySpec& s, const search::Segment& seg) {
  auto c = s.base;
  c.seed = s.seeds.empty() ? 0 : s.seeds.front();
  c.batch_size = seg.setup.batch_size;
  c.learning_rate = seg.setup.learning_rate;
  if (seg.setup.threads > 0) c.threads = seg.setup.threads;
  c.max_epochs = seg.to_epoch;
  // Once a setup reaches the target its cost is measured: more epochs are waste.
  c.stop_at_target = c.target_metric.has_value();
  auto t = make_trial(s, c, kPhaseSearch, seg.rung, "", {},
                      seg.from_epoch == seg.to_epoch ? fmt::format("{} epoch {}", search::label(seg.setup), seg.to_epoch)
                                                     : fmt::format("{} epochs {}-{}", search::label(seg.setup),
                                                                   seg.from_epoch, seg.to_epoch));
  const auto R = search::rungs(s.search);
  for (int k = 0; k < seg.rung && k < static_cast<int>(R.size()); ++k) {
    search::Segment earlier = seg;
    earlier.rung = k;
    earlier.to_epoch = R[static_cast<std::size_t>(k)];
    t.continues.push_back(segment_trial(s, earlier).spec.key);
  }
  t.saves_state = seg.to_epoch < s.base.max_epochs;
  return t;
}

std::vector<search::Observed> observe_search(const store::Store& store, std::int64_t study_id, const StudySpec& s) {
  return observe_search(s, [&](const std::string& key) -> std::optional<SegmentRecord> {
    const auto trial = store.find_trial(study_id, key);
    if (!trial) return std::nullopt;
    SegmentRecord r;
    r.status = trial->status;
    r.message = trial->message;
    if (trial->run_id && store::is_done(trial->status)) r.epochs = store.epochs_of(*trial->run_id);
    return r;
  });
}

std::vector<search::Observed> observe_search(
    const StudySpec& s, const std::function<std::optional<SegmentRecord>(const std::string& key)>& find) {
  const auto R = search::rungs(s.search);
  std::vector<search::Observed> out;
  for (const auto& setup : search_setups(s)) {
    search::Observed o;
    o.setup = setup;
    std::vector<predict::CurvePoint> epochs;
    for (std::size_t k = 0; k < R.size(); ++k) {
      const int from = k == 0 ? 1 : R[k - 1] + 1;
      const auto trial = find(segment_trial(s, {setup, static_cast<int>(k), from, R[k]}).spec.key);
      if (!trial) break;
      o.rung = static_cast<int>(k);
      o.message = trial->message;
      o.failed_before = trial->status == store::TrialStatus::failed;
      using TS = store::TrialStatus;
      switch (trial->status) {
        // A failed segment runs again when the search runs again, as a failed
        // trial of any study does (the runner counts one that failed in its
        // own call as failed, so that the others go on).
        case TS::pending:
        case TS::interrupted:
        case TS::failed: o.state = search::SegmentState::pending; break;
        case TS::running: o.state = search::SegmentState::running; break;
        case TS::converged: o.state = search::SegmentState::converged; break;
        case TS::diverged: o.state = search::SegmentState::diverged; break;
        case TS::stopped: o.state = search::SegmentState::stopped; break;
        case TS::max_epochs:
          o.state = R[k] < s.base.max_epochs ? search::SegmentState::paused : search::SegmentState::max_epochs;
          break;
      }
      // A segment's epochs count once it has ended (a rerun starts it again).
      if (store::is_done(trial->status))
        for (const auto& e : trial->epochs)
          if (e.epoch >= from && e.epoch <= R[k]) epochs.push_back({e.epoch, e.val_metric, e.energy_j});
    }
    o.epochs = std::move(epochs);
    if (o.rung >= 0) out.push_back(std::move(o));
  }
  return out;
}

std::string search_fingerprint(const StudySpec& spec) {
  nlohmann::json j = {{"kind", "search"},
                      {"strategy", spec.search.strategy},
                      {"eta", spec.search.eta},
                      {"beta", spec.search.beta},
                      {"rungs", search::rungs(spec.search)},
                      {"setups", nlohmann::json::array()}};
  const int first_rung_end = search::rungs(spec.search).front();
  for (const auto& setup : search_setups(spec))
    j["setups"].push_back(segment_trial(spec, {setup, 0, 1, first_rung_end}).spec.key);
  return j.dump();
}

std::filesystem::path segment_state_path(const std::filesystem::path& artifacts, const std::string& key) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a: a short, stable file name per key
  for (unsigned char ch : key) h = (h ^ ch) * 1099511628211ull;
  return artifacts / "search" / fmt::format("{:016x}.state.pt", h);
}

std::string plan_fingerprint(const StudySpec& spec) {
  const auto& kind = study_kind(spec.kind);
  if (kind.fingerprint) return kind.fingerprint(spec);
  nlohmann::json j = {{"kind", spec.kind}, {"trials", nlohmann::json::array()}};
  for (const auto& t : plan_trials(spec)) j["trials"].push_back(t.spec.key);
  return j.dump();
}

std::filesystem::path artifacts_dir(const StudySpec& spec, const std::filesystem::path& db) {
  // The study's name as one safe path component: "../x" or "/abs" stay inside the folder.
  const std::string name = io::safe_file_name(spec.name);
  if (!spec.execution.artifacts_dir.empty()) return std::filesystem::path(spec.execution.artifacts_dir) / name;
  auto base = db;
  base += ".artifacts";
  return base / name;
}

}  // namespace powertrain::study
