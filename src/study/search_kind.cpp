// The search: a multi-fidelity search (successive halving, or random whole
// runs) for the setup with the least energy to the target, its segments
// proposed as results come in (segment_trial) rather than planned up front.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "powertrain/study/kind.h"
#include "powertrain/study/spec_reader.h"

#include "powertrain/study/search_view.h"

namespace powertrain::study {
namespace detail {

/// The space of a search from its [search] table: lists, or ranges.
void read_search_space(const Parser& p, Table& t, search::Space& space) {
  if (t.has("batch_sizes") && t.has("batch_size_range"))
    p.fail(t.take("batch_size_range"), "give either 'search.batch_sizes' or 'search.batch_size_range', not both");
  if (t.has("learning_rates") && t.has("learning_rate_range"))
    p.fail(t.take("learning_rate_range"), "give either 'search.learning_rates' or 'search.learning_rate_range', not both");
  if (auto v = t.integers("batch_sizes")) {
    const auto* n = t.take("batch_sizes");
    if (v->empty()) p.fail(n, "'search.batch_sizes' must not be empty");
    for (auto b : *v)
      if (b < 1 || b > run::kMaxBatchSize) p.fail(n, fmt::format("'search.batch_sizes' must be between 1 and {}", run::kMaxBatchSize));
    require_unique(p, n, "search.batch_sizes", *v);
    space.batch_sizes = *v;
  }
  if (auto v = t.integers("batch_size_range")) {  // [low, high]: the powers of two between
    const auto* n = t.take("batch_size_range");
    if (v->size() != 2 || (*v)[0] < 1 || (*v)[1] < (*v)[0] || (*v)[1] > run::kMaxBatchSize)
      p.fail(n, fmt::format("'search.batch_size_range' must be [low, high] with 1 <= low <= high <= {}", run::kMaxBatchSize));
    space.batch_sizes.clear();
    for (std::int64_t b = 1; b <= (*v)[1]; b *= 2)
      if (b >= (*v)[0]) space.batch_sizes.push_back(b);
    if (space.batch_sizes.empty()) p.fail(n, "'search.batch_size_range' holds no power of two");
  }
  if (auto v = t.numbers("learning_rates")) {
    const auto* n = t.take("learning_rates");
    if (v->empty()) p.fail(n, "'search.learning_rates' must not be empty");
    for (auto lr : *v)
      if (!(lr > 0.0 && lr <= run::kMaxLearningRate))
        p.fail(n, fmt::format("'search.learning_rates' must be positive and at most {}", run::kMaxLearningRate));
    require_unique(p, n, "search.learning_rates", *v);
    space.learning_rates = *v;
  }
  if (auto v = t.numbers("learning_rate_range")) {  // [low, high], log-uniform
    const auto* n = t.take("learning_rate_range");
    if (v->size() != 2 || !((*v)[0] > 0.0) || !((*v)[1] > (*v)[0]) || (*v)[1] > run::kMaxLearningRate)
      p.fail(n, fmt::format("'search.learning_rate_range' must be [low, high] with 0 < low < high <= {}", run::kMaxLearningRate));
    space.learning_rates.clear();
    space.lr_min = (*v)[0];
    space.lr_max = (*v)[1];
  }
  if (auto v = t.integers("threads")) {
    const auto* n = t.take("threads");
    if (v->empty()) p.fail(n, "'search.threads' must not be empty");
    for (auto x : *v)
      if (x < 1 || x > run::max_threads())
        p.fail(n, fmt::format("'search.threads' must be between 1 and {} ({} per available CPU)", run::max_threads(), run::kThreadsPerCpu));
    require_unique(p, n, "search.threads", *v);
    space.threads.assign(v->begin(), v->end());
  }
}

void read_search_table(KindParse& kp, bool own) {
  const Parser& p = kp.parser;
  auto& top = kp.top;
  auto& spec = kp.spec;
  const auto& c = spec.base;
  if (!own) {
    spec.search_space.batch_sizes = spec.batch_sizes;
    spec.search_space.learning_rates = spec.learning_rates;
  }
  auto& s = spec.search;
  if (const auto* st = top.table("search")) {
    Table t(p, *st, "search");
    if (!own)
      for (const char* k : {"batch_sizes", "batch_size_range", "learning_rates", "learning_rate_range", "threads"})
        if (t.has(k))
          p.fail(t.take(k), fmt::format("'search.{}': a grid spec's search space is its [grid] lists; "
                                        "give kind = \"search\" to search another space", k));
    read_search_space(p, t, spec.search_space);
    if (auto v = t.string("strategy")) {
      if (*v != "halving" && *v != "random")
        p.fail(t.take("strategy"), fmt::format("'search.strategy' must be halving or random, got '{}'", *v));
      s.strategy = *v;
    }
    if (auto v = t.integer("setups")) {
      if (*v < 1 || *v > 100000) p.fail(t.take("setups"), "'search.setups' must be between 1 and 100000");
      s.setups = static_cast<int>(*v);
    }
    if (auto v = t.number("budget_j")) {
      if (!(*v > 0.0) || !std::isfinite(*v)) p.fail(t.take("budget_j"), "'search.budget_j' must be a positive number of joules");
      s.budget_j = *v;
    }
    if (auto v = t.integer("min_epochs")) {
      if (*v < 1 || *v > c.max_epochs)
        p.fail(t.take("min_epochs"), fmt::format("'search.min_epochs' must be between 1 and training.max_epochs ({})", c.max_epochs));
      s.min_epochs = static_cast<int>(*v);
    }
    if (auto v = t.number("eta")) {
      if (!(*v > 1.0) || *v > 1000) p.fail(t.take("eta"), "'search.eta' must be more than 1 (each rung keeps 1/eta of the setups)");
      s.eta = *v;
    }
    if (auto v = t.number("beta")) {
      if (!(*v >= 1.0) || !std::isfinite(*v)) p.fail(t.take("beta"), "'search.beta' must be at least 1");
      s.beta = *v;
    }
    if (auto v = t.number("energy_tie")) {
      if (!(*v >= 0.0) || *v > 1.0) p.fail(t.take("energy_tie"), "'search.energy_tie' must be between 0 and 1");
      s.energy_tie = *v;
    }
    if (auto v = t.integer("seed")) {
      if (*v < 0) p.fail(t.take("seed"), "'search.seed' must not be negative");
      s.seed = static_cast<std::uint64_t>(*v);
    }
    if (auto v = t.number("metric_tolerance")) {
      if (!(*v >= 0.0) || *v > 1e9) p.fail(t.take("metric_tolerance"), "'search.metric_tolerance' must be 0 or more");
      spec.metric_tolerance = *v;
    }
    t.finish({});
  } else if (own) {
    p.fail(nullptr, "a search needs a [search] table with its space (batch_sizes, learning_rates or learning_rate_range)");
  }
  if (own && spec.search_space.batch_sizes.empty())
    p.fail(nullptr, "'search.batch_sizes' (or batch_size_range) is missing");
  if (own && !spec.search_space.finite() && !(spec.search_space.lr_max > 0.0))
    p.fail(nullptr, "'search.learning_rates' (or learning_rate_range) is missing");
  if (own && spec.seeds.size() > 1)
    p.fail(top.take("seeds"), "a search trains each setup once: give one seed");
  // Segments stop at the target (study::segment_trial): the rule the search predicts with does too.
  s.rule = {c.max_epochs, c.patience, c.min_delta, c.target_metric, c.target_metric.has_value()};
  s.metric_tolerance = spec.metric_tolerance;
  if (spec.search_space.finite()) s.setups = static_cast<int>(std::min<std::int64_t>(s.setups, spec.search_space.size()));
}

}  // namespace detail

StudyKindInfo search_kind() {
  StudyKindInfo k;
  k.name = "search";
  k.help = "Search for the setup with the least energy to the target without training the whole grid";
  k.study_command = false;  // `powertrain search`
  k.tables = {"search"};
  k.chooses_setup = "a search chooses them: set search.learning_rates and search.batch_sizes";
  k.judges_forecasts = false;  // its segments are parts of runs: the setups' table judges them
  k.parse = [](KindParse&) {};
  k.finish = [](KindParse& kp) { detail::read_search_table(kp, true); };
  // A grid spec given to `powertrain search`: its lists are the space.
  k.adopt = [](KindParse& kp) {
    auto& spec = kp.spec;
    spec.kind = "search";
    spec.name += "-search";  // beside the grid study in one database
    if (spec.seeds.size() > 1)
      kp.parser.fail(nullptr, "a search trains each setup once: the grid's seeds list must hold one seed");
  };
  k.planned_count = [](const StudySpec& s) {  // at most one segment per setup and rung
    return static_cast<std::int64_t>(s.search.setups) * static_cast<std::int64_t>(search::rungs(s.search).size());
  };
  k.plan = [](const StudySpec&) { return std::vector<PlannedTrial>{}; };
  k.fingerprint = search_fingerprint;
  k.tables_of = [](const store::Study& study, const std::vector<TrialOutcome>& trials) {
    std::vector<table::Table> out;
    if (auto v = search_view(study, trials)) out = search_tables(*v);
    return out;
  };
  return k;
}

}  // namespace powertrain::study
