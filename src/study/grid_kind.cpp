// The grid study: batch sizes x learning rates, each setup trained to
// convergence (or to its epoch limit) once per seed; its tables rank the
// setups by energy among those of the best quality.
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

void parse_grid(KindParse& k) {
  const Parser& p = k.parser;
  auto& top = k.top;
  auto& spec = k.spec;
  if (const auto* g = top.table("grid")) {
    Table t(p, *g, "grid");
    if (auto v = t.integers("batch_sizes")) {
      const auto* n = t.take("batch_sizes");
      if (v->empty()) p.fail(n, "'grid.batch_sizes' must not be empty");
      for (auto b : *v)
        if (b < 1 || b > run::kMaxBatchSize)
          p.fail(n, fmt::format("'grid.batch_sizes' must be between 1 and {}", run::kMaxBatchSize));
      require_unique(p, n, "grid.batch_sizes", *v);
      spec.batch_sizes = *v;
    }
    if (auto v = t.numbers("learning_rates")) {
      const auto* n = t.take("learning_rates");
      if (v->empty()) p.fail(n, "'grid.learning_rates' must not be empty");
      for (auto lr : *v)
        if (!(lr > 0.0 && lr <= run::kMaxLearningRate))
          p.fail(n, fmt::format("'grid.learning_rates' must be positive and at most {}", run::kMaxLearningRate));
      require_unique(p, n, "grid.learning_rates", *v);
      spec.learning_rates = *v;
    }
    if (auto v = t.number("metric_tolerance")) {
      if (!(*v >= 0.0) || *v > 1e9)
        p.fail(t.take("metric_tolerance"), "'grid.metric_tolerance' must be 0 or more");
      spec.metric_tolerance = *v;
    }
    t.finish({});
  }
}

std::vector<PlannedTrial> plan_grid(const StudySpec& s) {
  std::vector<PlannedTrial> plan;
  for (auto seed : s.seeds)
    for (auto bs : s.batch_sizes)
      for (auto lr : s.learning_rates) {
        auto c = s.base;
        c.seed = seed;
        c.batch_size = bs;
        c.learning_rate = lr;
        plan.push_back(make_trial(s, c, "", 0, "", {}, fmt::format("bs={} lr={:g} seed={}", bs, lr, seed)));
      }
  return plan;
}

}  // namespace

StudyKindInfo grid_kind() {
  StudyKindInfo k;
  k.name = "grid";
  k.help = "Batch sizes x learning rates (same as `powertrain sweep`)";
  k.tables = {"grid", "search"};  // [search]: the budget of `powertrain search` over the grid's lists
  k.chooses_setup = "a grid study sweeps them: set grid.learning_rates and grid.batch_sizes";
  k.also_runs_as = "search";
  k.parse = parse_grid;
  k.finish = [](KindParse& kp) { detail::read_search_table(kp, false); };
  k.planned_count = [](const StudySpec& s) {
    return static_cast<std::int64_t>(s.seeds.size()) * static_cast<std::int64_t>(s.batch_sizes.size()) *
           static_cast<std::int64_t>(s.learning_rates.size());
  };
  k.plan = plan_grid;
  k.tables_of = [](const store::Study& study, const std::vector<TrialOutcome>& trials) {
    std::string problem;
    const auto [tolerance, target] = grid_objective(study, &problem);
    auto tables = grid_tables(analyze_grid(trials, tolerance, target));
    if (!problem.empty() && !tables.empty()) tables.front().notes.push_back(problem);
    return tables;
  };
  return k;
}

}  // namespace powertrain::study
