// The multitask study: one model per task against one shared model with a
// head per task; its tables compare their energy and per-task metrics.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "powertrain/study/kind.h"
#include "powertrain/study/spec_reader.h"

namespace powertrain::study {
namespace {

using detail::join;
using detail::Parser;
using detail::read_task_source;
using detail::require_unique;
using detail::Table;

void parse_multitask(KindParse& k) {
  const Parser& p = k.parser;
  auto& top = k.top;
  auto& spec = k.spec;
  const auto& c = spec.base;
  const auto* mt = top.table("multitask");
  if (!mt) p.fail(nullptr, "a multitask study needs a [multitask] table with 'tasks'");
  Table t(p, *mt, "multitask");
  auto tasks = t.strings("tasks");
  const auto* n = t.take("tasks");
  if (!tasks || tasks->size() < 2) p.fail(n ? n : mt, "'multitask.tasks' needs at least two tasks");
  require_unique(p, n, "multitask.tasks", *tasks);
  for (const auto& task : *tasks)
    if (task.empty() || task.find(',') != std::string::npos) p.fail(n, fmt::format("'multitask.tasks': bad task '{}'", task));
  spec.kind_settings = MultitaskSettings{*tasks};
  t.finish({});
  if (!c.tasks.empty()) p.fail(nullptr, "a multitask study sets its tasks in multitask.tasks, not workload.tasks");
}

std::vector<PlannedTrial> plan_multitask(const StudySpec& s) {
  const auto& tasks = settings_of<MultitaskSettings>(s).tasks;
  std::vector<PlannedTrial> plan;
  for (auto seed : s.seeds) {
    for (const auto& task : tasks) {
      auto c = s.base;
      c.seed = seed;
      c.tasks = task;
      plan.push_back(make_trial(s, c, kPhaseSingle, 0, task, {}, fmt::format("single {} seed={}", task, seed)));
    }
    auto c = s.base;
    c.seed = seed;
    c.tasks = join(tasks, ",");
    plan.push_back(make_trial(s, c, kPhaseMulti, 0, c.tasks, {}, fmt::format("shared model seed={}", seed)));
  }
  return plan;
}

}  // namespace

StudyKindInfo multitask_kind() {
  StudyKindInfo k;
  k.name = "multitask";
  k.help = "K single-task models vs one shared model with K heads";
  k.tables = {"multitask"};
  k.parse = parse_multitask;
  k.planned_count = [](const StudySpec& s) {
    return static_cast<std::int64_t>(s.seeds.size()) * (static_cast<std::int64_t>(settings_of<MultitaskSettings>(s).tasks.size()) + 1);
  };
  k.plan = plan_multitask;
  k.tables_of = [](const store::Study&, const std::vector<TrialOutcome>& trials) {
    return multitask_tables(analyze_multitask(trials));
  };
  return k;
}

}  // namespace powertrain::study
