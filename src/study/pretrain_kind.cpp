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
  PretrainSettings ps;
  if (const auto* s = t.take("source")) ps.source = read_task_source(p, *s, "pretrain.source");
  if (ps.source.name.empty()) ps.source.name = "source";
  const auto* steps = t.array("steps");
  if (!steps || steps->empty()) p.fail(steps ? static_cast<const toml::node*>(steps) : pt, "'pretrain.steps' needs at least one downstream task");
  int i = 0;
  for (const auto& s : *steps) {
    ++i;
    auto src = read_task_source(p, s, fmt::format("pretrain.steps[{}]", i - 1));
    if (src.name.empty()) src.name = fmt::format("step {}", i);
    ps.steps.push_back(std::move(src));
  }
  if (auto v = t.strings("variants")) {
    const auto* n = t.take("variants");
    if (v->empty()) p.fail(n, "'pretrain.variants' must not be empty");
    for (const auto& x : *v)
      if (x != "scratch" && x != "finetune" && x != "frozen")
        p.fail(n, fmt::format("'pretrain.variants': unknown variant '{}' (scratch, finetune, frozen)", x));
    require_unique(p, n, "pretrain.variants", *v);
    ps.variants.clear();
    for (const char* x : {"scratch", "finetune", "frozen"})  // canonical order
      if (std::find(v->begin(), v->end(), x) != v->end()) ps.variants.push_back(x);
  }
  t.finish({});

// A command gets its trial's labels as {tasks}; class filters and data
// overrides are applied by the built-in trainer's data layer only.
if (!c.command.empty()) {
  std::vector<const TaskSource*> sources{&ps.source};
  for (const auto& d : ps.steps) sources.push_back(&d);
  for (const auto* src : sources)
    if (!src->classes.empty() || !src->data.empty())
      p.fail(nullptr, fmt::format("task '{}': a command gets its task as {{tasks}}; use tasks = [...] (classes "
                                  "and data overrides are for the built-in trainer)", src->name));
}
  spec.kind_settings = std::move(ps);
}

std::vector<PlannedTrial> plan_pretrain(const StudySpec& s) {
  const auto& ps = settings_of<PretrainSettings>(s);
  std::vector<PlannedTrial> plan;
  for (auto seed : s.seeds) {
    auto c = s.base;
    c.seed = seed;
    c.data_options = merged_data(s.base, ps.source);
    if (!ps.source.tasks.empty()) c.tasks = ps.source.tasks;
    const int pretrain_index = static_cast<int>(plan.size());
    plan.push_back(make_trial(s, c, kPhasePretrain, 0, ps.source.name, ps.source.classes,
                              fmt::format("pretrain seed={}", seed)));
    for (std::size_t i = 0; i < ps.steps.size(); ++i) {
      const auto& d = ps.steps[i];
      const int step = static_cast<int>(i) + 1;
      for (const auto& variant : ps.variants) {
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
    const auto& ps = settings_of<PretrainSettings>(s);
    return static_cast<std::int64_t>(s.seeds.size()) *
           (1 + static_cast<std::int64_t>(ps.steps.size()) * static_cast<std::int64_t>(ps.variants.size()));
  };
  k.plan = plan_pretrain;
  k.tables_of = [](const store::Study&, const std::vector<TrialOutcome>& trials) {
    return pretrain_tables(analyze_pretrain(trials));
  };
  return k;
}

}  // namespace powertrain::study
