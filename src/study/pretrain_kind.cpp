// The pretraining study: an encoder pretrained on a source task, then reused
// (fine-tuned or frozen) on downstream tasks against training each from
// scratch; its tables say when the pretraining pays for itself.
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

void parse_pretrain(KindParse& k) {
  const Parser& p = k.parser;
  auto& top = k.top;
  auto& spec = k.spec;
  const auto& c = spec.base;
  const auto* pt = top.table("pretrain");
  if (!pt) p.fail(nullptr, "a pretrain study needs a [pretrain] table with 'source' and 'steps'");
  Table t(p, *pt, "pretrain");
  if (const auto* s = t.take("source")) spec.pretrain_source = read_task_source(p, *s, "pretrain.source");
  if (spec.pretrain_source.name.empty()) spec.pretrain_source.name = "source";
  const auto* steps = t.array("steps");
  if (!steps || steps->empty()) p.fail(steps ? static_cast<const toml::node*>(steps) : pt, "'pretrain.steps' needs at least one downstream task");
  int i = 0;
  for (const auto& s : *steps) {
    ++i;
    auto src = read_task_source(p, s, fmt::format("pretrain.steps[{}]", i - 1));
    if (src.name.empty()) src.name = fmt::format("step {}", i);
    spec.downstream.push_back(std::move(src));
  }
  if (auto v = t.strings("variants")) {
    const auto* n = t.take("variants");
    if (v->empty()) p.fail(n, "'pretrain.variants' must not be empty");
    for (const auto& x : *v)
      if (x != "scratch" && x != "finetune" && x != "frozen")
        p.fail(n, fmt::format("'pretrain.variants': unknown variant '{}' (scratch, finetune, frozen)", x));
    require_unique(p, n, "pretrain.variants", *v);
    spec.variants.clear();
    for (const char* x : {"scratch", "finetune", "frozen"})  // canonical order
      if (std::find(v->begin(), v->end(), x) != v->end()) spec.variants.push_back(x);
  }
  t.finish({});

// A command gets its trial's labels as {tasks}; class filters and data
// overrides are applied by the built-in trainer's data layer only.
if (!c.command.empty()) {
  std::vector<const TaskSource*> sources{&spec.pretrain_source};
  for (const auto& d : spec.downstream) sources.push_back(&d);
  for (const auto* src : sources)
    if (!src->classes.empty() || !src->data.empty())
      p.fail(nullptr, fmt::format("task '{}': a command gets its task as {{tasks}}; use tasks = [...] (classes "
                                  "and data overrides are for the built-in trainer)", src->name));
}
}

std::vector<PlannedTrial> plan_pretrain(const StudySpec& s) {
  std::vector<PlannedTrial> plan;
  for (auto seed : s.seeds) {
    auto c = s.base;
    c.seed = seed;
    c.data_options = merged_data(s.base, s.pretrain_source);
    if (!s.pretrain_source.tasks.empty()) c.tasks = s.pretrain_source.tasks;
    const int pretrain_index = static_cast<int>(plan.size());
    plan.push_back(make_trial(s, c, kPhasePretrain, 0, s.pretrain_source.name, s.pretrain_source.classes,
                              fmt::format("pretrain seed={}", seed)));
    for (std::size_t i = 0; i < s.downstream.size(); ++i) {
      const auto& d = s.downstream[i];
      const int step = static_cast<int>(i) + 1;
      for (const auto& variant : s.variants) {
        auto dc = s.base;
        dc.seed = seed;
        dc.data_options = merged_data(s.base, d);
        if (!d.tasks.empty()) dc.tasks = d.tasks;
        const bool reuse = variant != kPhaseScratch;
        dc.freeze_encoder = variant == kPhaseFrozen;
        // Marks the key as "from the pretrained encoder"; the runner puts the real path here.
        if (reuse) dc.init_encoder = "pretrained";
        auto t = make_trial(s, dc, variant, step, d.name, d.classes,
                            fmt::format("step {} {} seed={}", step, variant, seed));
        if (reuse) t.encoder_from = pretrain_index;
        t.spec.config.init_encoder.clear();
        plan.push_back(std::move(t));
      }
    }
  }
  return plan;
}

}  // namespace

StudyKindInfo pretrain_kind() {
  StudyKindInfo k;
  k.name = "pretrain";
  k.help = "Pretrain an encoder, then reuse it (fine-tuned or frozen) vs training from scratch";
  k.tables = {"pretrain"};
  k.parse = parse_pretrain;
  k.planned_count = [](const StudySpec& s) {
    return static_cast<std::int64_t>(s.seeds.size()) *
           (1 + static_cast<std::int64_t>(s.downstream.size()) * static_cast<std::int64_t>(s.variants.size()));
  };
  k.plan = plan_pretrain;
  k.tables_of = [](const store::Study&, const std::vector<TrialOutcome>& trials) {
    return pretrain_tables(analyze_pretrain(trials));
  };
  return k;
}

}  // namespace powertrain::study
