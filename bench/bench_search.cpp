// How well a search does against the grid it would replace (docs/search.md):
// regret (the grid's measured energy to the target of the setup the search
// chose, over the grid's best, minus one) and the search's energy as a share
// of the grid's, for
//   - searches that ran (--search NAME, and random searches --random NAME:
//     studies in the same database), and
//   - searches replayed on the grid's recorded epochs (--seeds N): successive
//     halving with the spec's settings and each seed, and random search given
//     the energy that seed's halving spent.
// A replay shows what the search decides on these very curves; a search that
// ran measured its own epochs (the same training, other energy noise).
//
//   build/bench/bench_search --db grid.db --grid grid-quick --spec examples/grid-quick.toml --seeds 10
//       --search grid-quick-search-s0 --search grid-quick-search-s1   (one command line)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/search/search.h"
#include "powertrain/store/store.h"
#include "powertrain/study/analysis.h"
#include "powertrain/study/search_view.h"
#include "powertrain/study/spec.h"

namespace pt = powertrain;
namespace {

struct Grid {
  std::vector<pt::search::RecordedSetup> runs;
  std::map<std::pair<std::int64_t, double>, double> cost_j;  // measured energy to the target, reached setups only
  double best_j = INFINITY;
  std::string best;
  double total_j = 0.0;
};

Grid load_grid(const pt::store::Store& store, const std::string& name, const pt::search::Settings& s) {
  const auto study = store.find_study(name);
  if (!study) throw pt::ConfigError(fmt::format("no study named '{}'", name));
  Grid g;
  for (const auto& r : store.results_of(study->id)) {
    if (!r.run) continue;
    pt::search::RecordedSetup rec;
    rec.setup = {r.run->config.batch_size, r.run->config.learning_rate, 0};
    for (const auto& e : store.epochs_of(r.run->id)) rec.epochs.push_back({e.epoch, e.val_metric, e.energy_j});
    using TS = pt::store::TrialStatus;
    rec.end = r.trial.status == TS::converged    ? pt::search::SegmentState::converged
              : r.trial.status == TS::max_epochs ? pt::search::SegmentState::max_epochs
              : r.trial.status == TS::diverged   ? pt::search::SegmentState::diverged
                                                 : pt::search::SegmentState::failed;
    for (const auto& e : rec.epochs) g.total_j += std::isfinite(e.energy_j) ? e.energy_j : 0.0;
    const auto st = pt::search::standing(s, rec.epochs);
    if (st.basis == "reached") {
      g.cost_j[{rec.setup.batch_size, rec.setup.learning_rate}] = st.cost_j;
      if (st.cost_j < g.best_j) g.best_j = st.cost_j, g.best = pt::search::label(rec.setup);
    }
    g.runs.push_back(std::move(rec));
  }
  return g;
}

struct Outcome {
  std::string what;
  std::string chosen;
  double regret = NAN;  // NaN: nothing chosen, or its grid run never reached the target
  double share = NAN;
};

Outcome judge(const Grid& g, const std::string& what, const std::optional<pt::search::Setup>& chosen, double spent_j) {
  Outcome o;
  o.what = what;
  o.share = spent_j / g.total_j;
  if (!chosen) {
    o.chosen = "none";
    return o;
  }
  o.chosen = pt::search::label(*chosen);
  auto it = g.cost_j.find({chosen->batch_size, chosen->learning_rate});
  if (it != g.cost_j.end()) o.regret = it->second / g.best_j - 1.0;
  return o;
}

double median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void summary(const std::string& what, const std::vector<Outcome>& rows) {
  std::vector<double> regret, share;
  int missed = 0;  // no setup reached the target within the search, or the one chosen never did in the grid
  for (const auto& r : rows) {
    if (std::isfinite(r.regret)) regret.push_back(r.regret);
    else ++missed;
    share.push_back(r.share);
  }
  const double worst = regret.empty() ? NAN : *std::max_element(regret.begin(), regret.end());
  fmt::print("| {} | {} | {:.1f}% | {:.1f}% | {} | {:.1f}% | {:.1f}% |\n", what, rows.size(), 100 * median(regret),
             100 * worst, missed, 100 * median(share), 100 * *std::max_element(share.begin(), share.end()));
}

}  // namespace

int main(int argc, char** argv) {
  std::string db, grid_name, spec_path;
  int seeds = 0;
  std::vector<std::string> searches, randoms;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw pt::ConfigError(a + " needs a value");
      return argv[++i];
    };
    if (a == "--db") db = next();
    else if (a == "--grid") grid_name = next();
    else if (a == "--spec") spec_path = next();
    else if (a == "--seeds") seeds = std::stoi(next());
    else if (a == "--search") searches.push_back(next());
    else if (a == "--random") randoms.push_back(next());
    else {
      fmt::print(stderr,
                 "usage: bench_search --db DB --grid NAME --spec SPEC [--seeds N] [--search NAME]... [--random NAME]...\n");
      return 2;
    }
  }
  try {
    const auto spec = pt::study::load_spec(spec_path, "search");
    auto store = pt::store::Store::open(db);
    const auto g = load_grid(store, grid_name, spec.search);
    fmt::print("grid '{}': {} setups, {:.0f} J in all; best energy to the target {:.1f} J ({})\n\n", grid_name,
               g.runs.size(), g.total_j, g.best_j, g.best);
    fmt::print("| search | chosen | regret | share of the grid's energy |\n|---|---|---|---|\n");
    std::vector<Outcome> ran, ran_random, halving, random;
    std::vector<std::pair<std::string, std::vector<Outcome>*>> studies;
    for (const auto& n : searches) studies.emplace_back(n, &ran);
    for (const auto& n : randoms) studies.emplace_back(n, &ran_random);
    for (const auto& [name, into] : studies) {
      const auto study = store.find_study(name);
      if (!study) throw pt::ConfigError(fmt::format("no study named '{}'", name));
      const auto results = store.results_of(study->id);
      auto outcomes = pt::study::outcomes_of(results);
      pt::study::attach_epochs(outcomes, results, [&](std::int64_t id) { return store.epochs_of(id); });
      const auto v = pt::study::search_view(*study, outcomes);
      if (!v) throw pt::ConfigError(fmt::format("'{}' is not a search", name));
      std::optional<pt::search::Setup> chosen;
      if (v->decision.chosen) chosen = v->setups[*v->decision.chosen];
      into->push_back(judge(g, "ran: " + name, chosen, store.energy_of_study(study->id)));
    }
    for (int seed = 0; seed < seeds; ++seed) {
      auto s = spec.search;
      s.seed = static_cast<std::uint64_t>(seed);
      const auto h = pt::search::replay(s, spec.search_space, g.runs);
      std::optional<pt::search::Setup> chosen;
      if (h.last.chosen) chosen = h.last.verdicts[*h.last.chosen].setup;
      halving.push_back(judge(g, fmt::format("replayed halving, seed {}", seed), chosen, h.spent_j));
      auto rs = s;
      rs.strategy = "random";
      rs.budget_j = h.spent_j;
      const auto r = pt::search::replay(rs, spec.search_space, g.runs);
      std::optional<pt::search::Setup> rchosen;
      if (r.last.chosen) rchosen = r.last.verdicts[*r.last.chosen].setup;
      random.push_back(judge(g, fmt::format("replayed random at that energy, seed {}", seed), rchosen, r.spent_j));
    }
    for (const auto* list : {&ran, &ran_random, &halving, &random})
      for (const auto& o : *list)
        fmt::print("| {} | {} | {} | {:.1f}% |\n", o.what, o.chosen,
                   std::isfinite(o.regret)  ? fmt::format("{:.1f}%", 100 * o.regret)
                   : o.chosen == "none"     ? std::string("no setup reached the target")
                                            : std::string("did not reach the target in the grid"),
                   100 * o.share);
    fmt::print("\n| strategy | searches | median regret | worst regret | no setup chosen that reached the target | "
               "median share | largest share |\n|---|---|---|---|---|---|---|\n");
    if (!ran.empty()) summary("halving, ran", ran);
    if (!ran_random.empty()) summary("random at the same energy, ran", ran_random);
    if (!halving.empty()) summary("halving, replayed", halving);
    if (!random.empty()) summary("random at the same energy, replayed", random);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_search: {}\n", e.what());
    return 1;
  }
  return 0;
}
