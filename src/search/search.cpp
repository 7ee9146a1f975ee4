// Successive halving ranked by energy to the target, with Zeus's beta rule;
// see search.h. Every decision is a function of the setups' curves truncated
// at the rung it concerns, so a later epoch never changes an earlier rung's
// verdict: a search that resumes from its records decides what it decided.
#include "powertrain/search/asynchronous.h"
#include "powertrain/search/search.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <unordered_set>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::search {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// A uniform double in [0, 1) from 53 bits: the same on every standard library
/// (std::uniform_real_distribution is not specified bit for bit).
double unit(std::mt19937_64& g) { return static_cast<double>(g() >> 11) * 0x1.0p-53; }
std::size_t below(std::mt19937_64& g, std::size_t n) {
  return static_cast<std::size_t>(unit(g) * static_cast<double>(n)) % n;
}

/// The double nearest to v's three-significant-digit decimal, so that it
/// prints as that decimal ("0.00424", not 0.004240000000000001).
double round3(double v) {
  if (!(v > 0.0)) return v;
  return std::stod(fmt::format("{:.3g}", v));
}

bool ended(SegmentState st) {
  return st == SegmentState::paused || st == SegmentState::converged || st == SegmentState::max_epochs ||
         st == SegmentState::diverged || st == SegmentState::failed || st == SegmentState::stopped;
}
bool complete(SegmentState st) {
  return st == SegmentState::converged || st == SegmentState::max_epochs || st == SegmentState::diverged ||
         st == SegmentState::failed || st == SegmentState::stopped;
}

std::vector<double> energies_filled(const std::vector<predict::CurvePoint>& epochs) {
  double sum = 0.0;
  int n = 0;
  for (const auto& e : epochs)
    if (std::isfinite(e.energy_j)) sum += e.energy_j, ++n;
  const double mean = n > 0 ? sum / n : 0.0;
  std::vector<double> out;
  for (const auto& e : epochs) out.push_back(std::isfinite(e.energy_j) ? e.energy_j : mean);
  return out;
}

std::vector<predict::CurvePoint> truncated(const std::vector<predict::CurvePoint>& epochs, int last_epoch) {
  std::vector<predict::CurvePoint> out;
  for (const auto& e : epochs)
    if (e.epoch <= last_epoch) out.push_back(e);
  return out;
}

std::string joules(double j) {
  if (!std::isfinite(j)) return "unknown";
  if (j >= 1e6) return fmt::format("{:.2f} MJ", j / 1e6);
  if (j >= 1e4) return fmt::format("{:.1f} kJ", j / 1e3);
  return fmt::format("{:.0f} J", j);
}

}  // namespace

std::string label(const Setup& s) {
  auto out = fmt::format("bs={} lr={:g}", s.batch_size, s.learning_rate);
  if (s.threads > 0) out += fmt::format(" threads={}", s.threads);
  return out;
}

std::int64_t Space::size() const {
  if (!finite()) return 0;
  const auto t = std::max<std::size_t>(threads.size(), 1);
  return static_cast<std::int64_t>(batch_sizes.size() * learning_rates.size() * t);
}

void validate(const Settings& s, const Space& space) {
  if (s.strategy != "halving" && s.strategy != "random")
    throw ConfigError(fmt::format("search.strategy must be \"halving\" or \"random\", not \"{}\"", s.strategy));
  if (s.setups < 1) throw ConfigError("search.setups must be at least 1");
  if (s.budget_j && !(*s.budget_j > 0.0 && std::isfinite(*s.budget_j)))
    throw ConfigError("search.budget_j must be a positive number of joules");
  if (s.min_epochs < 1) throw ConfigError("search.min_epochs must be at least 1");
  if (s.min_epochs > s.rule.max_epochs)
    throw ConfigError(fmt::format("search.min_epochs ({}) is more than training.max_epochs ({})", s.min_epochs,
                                  s.rule.max_epochs));
  if (!(s.eta > 1.0) || !std::isfinite(s.eta)) throw ConfigError("search.eta must be greater than 1");
  if (!(s.beta >= 1.0) || !std::isfinite(s.beta)) throw ConfigError("search.beta must be at least 1");
  if (!(s.energy_tie >= 0.0) || s.energy_tie > 1.0) throw ConfigError("search.energy_tie must be between 0 and 1");
  // An eta so close to 1 that a rung keeps every setup: each setup trains to
  // the end in a segment per rung, more segments than the grid has trials.
  if (s.strategy == "halving" && s.setups > 1 && s.min_epochs < s.rule.max_epochs &&
      std::ceil(static_cast<double>(s.setups) / s.eta - 1e-9) >= static_cast<double>(s.setups))
    throw ConfigError(fmt::format(
        "search.eta = {} keeps all {} setups at every rung: the search would train every setup to the end in more "
        "segments than the grid has trials; use an eta of 2 or more (4 is usual)",
        s.eta, s.setups));
  if (space.batch_sizes.empty()) throw ConfigError("the search space has no batch size");
  if (!space.finite() && !(space.lr_min > 0.0 && space.lr_max > space.lr_min && std::isfinite(space.lr_max)))
    throw ConfigError("the search's learning-rate range needs 0 < min < max");
}

std::vector<int> rungs(const Settings& s) {
  const int last = s.rule.max_epochs;
  if (s.strategy == "random") return {last};
  std::vector<int> out;
  int r = std::max(1, s.min_epochs);
  while (r < last) {
    out.push_back(r);
    r = std::max(r + 1, static_cast<int>(std::ceil(r * s.eta - 1e-9)));
  }
  out.push_back(last);
  return out;
}

namespace {

// The three-significant-digit decimals of decade 10^e (100e-2 .. 999e-2
// times 10^e) that lie in [lo, hi], as doubles (what round3 gives).
std::vector<double> decade_rates(int e, double lo, double hi) {
  std::vector<double> out;
  for (int m = 100; m <= 999; ++m) {
    const auto text = fmt::format("{}e{}", m, e - 2);
    const double v = std::strtod(text.c_str(), nullptr);  // out of a double's range: inf or 0, outside [lo, hi]
    if (v >= lo && v <= hi) out.push_back(v);
  }
  return out;
}

// The decades a range's rates can lie in, one more on each side: log10 of a
// double may land a hair on either side of a power of ten.
std::pair<int, int> decades(const Space& space) {
  return {static_cast<int>(std::floor(std::log10(space.lr_min))) - 1,
          static_cast<int>(std::floor(std::log10(space.lr_max))) + 1};
}

// The learning rates a range can yield: the three-significant-digit decimals
// inside it, and its ends (a draw that rounds outside is clamped to them), in
// increasing order.
std::vector<double> range_rates(const Space& space) {
  std::set<double> rates{space.lr_min, space.lr_max};
  const auto [first, last] = decades(space);
  for (int e = first; e <= last; ++e)
    for (double v : decade_rates(e, space.lr_min, space.lr_max)) rates.insert(v);
  return {rates.begin(), rates.end()};
}

// Their number, without listing the decades well inside the range (900 each).
std::int64_t range_rate_count(const Space& space) {
  const auto [first, last] = decades(space);
  if (last - first < 6) return static_cast<std::int64_t>(range_rates(space).size());
  std::set<double> ends{space.lr_min, space.lr_max};
  for (int e : {first, first + 1, first + 2, last - 2, last - 1, last})
    for (double v : decade_rates(e, space.lr_min, space.lr_max)) ends.insert(v);
  return static_cast<std::int64_t>(ends.size()) + std::int64_t{900} * (last - first - 5);
}

struct SetupHash {
  std::size_t operator()(const Setup& x) const {
    const auto h = std::hash<std::int64_t>()(x.batch_size) * 1000003u ^ std::hash<double>()(x.learning_rate);
    return h * 31u ^ std::hash<int>()(x.threads);
  }
};

}  // namespace

std::int64_t capacity(const Space& space) {
  if (space.finite()) return space.size();
  if (space.batch_sizes.empty() || !(space.lr_min > 0.0 && space.lr_max > space.lr_min && std::isfinite(space.lr_max)))
    return 0;
  const auto t = static_cast<std::int64_t>(std::max<std::size_t>(space.threads.size(), 1));
  return range_rate_count(space) * static_cast<std::int64_t>(space.batch_sizes.size()) * t;
}

std::optional<std::string> smaller_than_asked(const Space& space, const Settings& s) {
  const auto n = capacity(space);
  if (n <= 0 || n >= s.setups) return std::nullopt;
  return fmt::format("the search space holds only {} setups, fewer than the {} asked (search.setups): all {} are "
                     "searched",
                     n, s.setups, n);
}

std::vector<Setup> sample_setups(const Space& space, const Settings& s) {
  std::mt19937_64 g(s.seed);
  std::vector<Setup> out;
  const std::vector<int> threads = space.threads.empty() ? std::vector<int>{0} : space.threads;
  // A range that cannot yield well over the setups asked: its every setup,
  // shuffled by the seed, rather than draws that mostly repeat.
  const auto cap = space.finite() ? 0 : capacity(space);
  if (cap > 0 && cap < 2 * static_cast<std::int64_t>(s.setups)) {
    for (auto b : space.batch_sizes)
      for (auto lr : range_rates(space))
        for (auto t : threads) out.push_back({b, lr, t});
    for (std::size_t i = out.size(); i > 1; --i) std::swap(out[i - 1], out[below(g, i)]);
    if (static_cast<std::int64_t>(out.size()) > s.setups) out.resize(static_cast<std::size_t>(s.setups));
    return out;
  }
  if (space.finite()) {
    for (auto b : space.batch_sizes)
      for (auto lr : space.learning_rates)
        for (auto t : threads) out.push_back({b, lr, t});
    // Fisher-Yates with the portable draw above.
    for (std::size_t i = out.size(); i > 1; --i) std::swap(out[i - 1], out[below(g, i)]);
    if (static_cast<std::int64_t>(out.size()) > s.setups) out.resize(static_cast<std::size_t>(s.setups));
    return out;
  }
  // Draws until `setups` distinct ones (the space holds at least twice as
  // many: about 1.4 draws each at worst), in the order drawn.
  const double lo = std::log(space.lr_min), hi = std::log(space.lr_max);
  std::unordered_set<Setup, SetupHash> seen;
  std::int64_t attempts = 0;
  while (static_cast<int>(out.size()) < s.setups && attempts < std::int64_t{s.setups} * 100) {
    ++attempts;
    Setup x;
    x.batch_size = space.batch_sizes[below(g, space.batch_sizes.size())];
    x.learning_rate = std::clamp(round3(std::exp(lo + unit(g) * (hi - lo))), space.lr_min, space.lr_max);
    x.threads = threads[below(g, threads.size())];
    if (seen.insert(x).second) out.push_back(x);
  }
  return out;
}

Standing standing(const Settings& s, const std::vector<predict::CurvePoint>& epochs) {
  Standing st;
  const auto energy = energies_filled(epochs);
  st.spent_j = std::accumulate(energy.begin(), energy.end(), 0.0);
  st.best_metric = -kInf;
  for (const auto& e : epochs)
    if (std::isfinite(e.val_metric)) st.best_metric = std::max(st.best_metric, e.val_metric);
  if (!std::isfinite(st.best_metric)) st.best_metric = 0.0;
  const auto& target = s.rule.target_metric;
  if (!target) {
    st.basis = "metric";
    st.cost_j = st.spent_j;
    return st;
  }
  double cumulative = 0.0;
  for (std::size_t i = 0; i < epochs.size(); ++i) {
    cumulative += energy[i];
    if (std::isfinite(epochs[i].val_metric) && epochs[i].val_metric >= *target) {
      st.basis = "reached";
      st.target_epoch = epochs[i].epoch;
      st.cost_j = cumulative;
      return st;
    }
  }
  st.basis = "unlikely";
  st.cost_j = kInf;
  const int n = static_cast<int>(epochs.size());
  if (n == 0 || !std::isfinite(epochs.back().val_metric)) return st;
  if (n >= predict::kMinCurveEpochs) {
    const auto p = predict::predict_curve(epochs, s.rule, 0);
    if (p.energy_to_target_j && p.p_reach_target >= 0.5 && std::isfinite(p.energy_to_target_j->mid)) {
      st.basis = "predicted";
      st.cost_j = p.energy_to_target_j->mid;
    }
    return st;
  }
  // Too few epochs for the curves: the metric's gain per epoch so far (from
  // zero before the first epoch), continued in a straight line.
  const double first = n == 1 ? 0.0 : epochs.front().val_metric;
  const double gain = (st.best_metric - first) / static_cast<double>(n == 1 ? 1 : n - 1);
  if (!(gain > 0.0)) return st;
  const double needed = static_cast<double>(n) + (*target - st.best_metric) / gain;
  if (needed > static_cast<double>(s.rule.max_epochs)) return st;
  st.basis = "predicted";
  st.cost_j = st.spent_j / n * needed;
  return st;
}

EpochRule::EpochRule(const Settings& s, std::vector<predict::CurvePoint> prior, double best_j)
    : settings_(s), curve_(std::move(prior)), best_j_(best_j) {}

void EpochRule::add(const predict::CurvePoint& epoch) { curve_.push_back(epoch); }

std::optional<std::string> EpochRule::after(const predict::CurvePoint& epoch) {
  add(epoch);
  if (!settings_.rule.target_metric || !std::isfinite(best_j_)) return std::nullopt;
  const auto st = standing(settings_, curve_);
  if (st.basis == "predicted" && st.cost_j > settings_.beta * best_j_)
    return fmt::format("stopped after epoch {}: predicted {} to the target, over {:g} x the best ({})", epoch.epoch,
                       joules(st.cost_j), settings_.beta, joules(best_j_));
  if (st.basis == "unlikely" && static_cast<int>(curve_.size()) >= predict::kMinCurveEpochs)
    return fmt::format("stopped after epoch {}: not expected to reach the target, while another did ({})",
                       epoch.epoch, joules(best_j_));
  return std::nullopt;
}

double best_measured_j(const Settings& s, const std::vector<Observed>& observed) {
  double best = kInf;
  if (!s.rule.target_metric) return best;
  for (const auto& o : observed) {
    const auto st = standing(s, o.epochs);
    if (st.basis == "reached") best = std::min(best, st.cost_j);
  }
  return best;
}

namespace {

/// The order of a rung: cheaper (predicted or measured) energy to the target
/// first; without a target, the higher best metric first.
struct Rank {
  int group = 0;  // 0: reached or predicted; 1: not expected to reach; 2: diverged or failed
  double cost = 0.0;
  double metric = 0.0;
  std::size_t index = 0;
  bool operator<(const Rank& o) const {
    if (group != o.group) return group < o.group;
    if (cost != o.cost) return cost < o.cost;
    if (metric != o.metric) return metric > o.metric;
    return index < o.index;
  }
};

}  // namespace

namespace {

// Successive halving, synchronous (decide) or asynchronous (decide_asynchronous).
// One rule for both: a rung's finished members are ranked on their curves cut
// at the rung's end, and the top 1/eta of them go on unless Zeus's rule or the
// target says otherwise. Synchronous: a rung is ranked once all its members
// are in, and keeps ceil(members / eta). Asynchronous (ASHA): a rung is ranked
// whenever a result comes in, and a finished member goes on when it ranks in
// the top floor(finished / eta); once the rung and every rung before it are
// complete, in the top ceil(members / eta), the synchronous rule. A promotion
// is never taken back: a setup that has a segment at a later rung stays
// promoted.
// One pass over the rungs, as decide_rungs() makes it: the setups' states and
// reasons, the segments to run next and the choice are built up step by step.
class RungWalk {
 public:
  RungWalk(const Settings& s, const std::vector<Setup>& sampled, const std::vector<Observed>& observed,
           double spent_j, bool asynchronous)
      : s_(s),
        sampled_(sampled),
        asynchronous_(asynchronous),
        with_target_(s.rule.target_metric.has_value()),
        budget_left_(!s.budget_j || spent_j < *s.budget_j),
        rungs_(rungs(s)),
        obs_(sampled.size()),
        state_(sampled.size()),
        reason_(sampled.size()),
        next_of_rung_(rungs_.size()) {
    for (std::size_t i = 0; i < sampled.size(); ++i) obs_[i].setup = sampled[i];
    for (const auto& o : observed) {
      auto it = std::find(sampled.begin(), sampled.end(), o.setup);
      if (it != sampled.end()) obs_[static_cast<std::size_t>(it - sampled.begin())] = o;
    }
  }

  Decision run() {
    // Setups taking part in rung k: every sampled one in rung 0, then those promoted.
    std::vector<std::size_t> members(sampled_.size());
    std::iota(members.begin(), members.end(), std::size_t{0});
    for (std::size_t k = 0; k < rungs_.size() && !members.empty(); ++k) {
      auto in = gather(k, members);
      if (!asynchronous_ && (!in.waiting.empty() || busy_)) {
        if (budget_left_) {
          if (s_.strategy == "random" && !in.waiting.empty()) in.waiting.resize(1);
          d_.next = std::move(in.waiting);
        } else {
          hold(in.waiting, k);
        }
        break;
      }
      const bool rung_complete = complete_before_ && in.waiting.empty() && !in.running_here;
      if (asynchronous_ && !in.waiting.empty()) {
        if (budget_left_) next_of_rung_[k] = std::move(in.waiting);
        else hold(in.waiting, k);
      }
      complete_before_ = rung_complete;
      members = promote(k, members.size(), in.finished, rung_complete);
    }
    // Asynchronous: the deepest rung's segments first (ASHA promotes before it starts new setups).
    if (asynchronous_)
      for (auto k = rungs_.size(); k-- > 0;)
        for (auto& seg : next_of_rung_[k]) d_.next.push_back(std::move(seg));
    say_how_each_ended();
    choose();
    d_.finished = d_.next.empty() && !busy_;
    return std::move(d_);
  }

 private:
  struct RungInput {
    std::vector<Segment> waiting;      // segments not yet run
    std::vector<std::size_t> finished;  // members whose segment of this rung has ended
    bool running_here = false;
  };

  // 1. Is the rung in? Segments not yet run go out (random: one at a time).
  RungInput gather(std::size_t k, const std::vector<std::size_t>& members) {
    const int rung = static_cast<int>(k);
    const int rung_end = rungs_[k];
    const int rung_start = k == 0 ? 1 : rungs_[k - 1] + 1;
    RungInput in;
    for (auto i : members) {
      const auto& o = obs_[i];
      if (o.rung > rung || (o.rung == rung && ended(o.state))) {
        in.finished.push_back(i);
        continue;
      }
      if (o.rung == rung && o.state == SegmentState::running) {
        busy_ = true;
        in.running_here = true;
        state_[i] = "running";
        continue;
      }
      // Not planned yet, or planned and waiting (pending, interrupted).
      if (o.rung == rung && o.state == SegmentState::pending) busy_ = true;
      in.waiting.push_back({sampled_[i], rung, rung_start, rung_end});
      const bool here = o.rung == rung;
      // (Asynchronous: a setup promoted just now says so until its segment goes out.)
      if (!(asynchronous_ && !here && k > 0))
        state_[i] = !here ? "not started" : o.failed_before ? "failed" : "waiting";
      // Interrupted or failed before: why, while it waits to run again.
      if (here && !o.message.empty())
        reason_[i] = o.failed_before ? o.message + " (it runs again when the search runs again)" : o.message;
    }
    return in;
  }

  // Segments that cannot go out because the energy budget is spent.
  void hold(std::vector<Segment>& segments, std::size_t k) {
    d_.budget_spent = true;
    for (auto& seg : segments) {
      const auto i = static_cast<std::size_t>(std::find(sampled_.begin(), sampled_.end(), seg.setup) - sampled_.begin());
      if (obs_[i].rung < static_cast<int>(k)) state_[i] = "not started";
      reason_[i] = "the energy budget was spent";
    }
  }

  // 2. Ranks the rung's finished members on their curves up to its end
  // (synchronous: all of them); `at` receives each one's standing.
  std::vector<Rank> rank(std::size_t k, const std::vector<std::size_t>& finished, std::vector<Standing>& at,
                         double& best_reached) const {
    std::vector<Rank> ranks;
    for (auto i : finished) {
      at[i] = standing(s_, truncated(obs_[i].epochs, rungs_[k]));
      const bool lost = (complete(obs_[i].state) && obs_[i].rung == static_cast<int>(k) &&
                         (obs_[i].state == SegmentState::diverged || obs_[i].state == SegmentState::failed));
      Rank r;
      r.index = i;
      r.metric = at[i].best_metric;
      if (lost) {
        r.group = 2;
      } else if (with_target_) {
        r.group = std::isfinite(at[i].cost_j) ? 0 : 1;
        r.cost = std::isfinite(at[i].cost_j) ? at[i].cost_j : 0.0;
        if (at[i].basis == "reached") best_reached = std::min(best_reached, at[i].cost_j);
      } else {
        r.cost = 0.0;  // by metric
      }
      ranks.push_back(r);
    }
    std::sort(ranks.begin(), ranks.end());
    return ranks;
  }

  // 3. The top of the ranking goes on, unless Zeus's rule or the target says
  // otherwise; returns the members of the next rung.
  std::vector<std::size_t> promote(std::size_t k, std::size_t member_count, const std::vector<std::size_t>& finished,
                                   bool rung_complete) {
    const int rung = static_cast<int>(k);
    const int rung_end = rungs_[k];
    std::vector<Standing> at(sampled_.size());
    double best_reached = kInf;
    const auto ranks = rank(k, finished, at, best_reached);
    const bool last_rung = k + 1 == rungs_.size();
    const auto keep =
        rung_complete ? static_cast<std::size_t>(std::ceil(static_cast<double>(member_count) / s_.eta - 1e-9))
                      : static_cast<std::size_t>(std::floor(static_cast<double>(finished.size()) / s_.eta + 1e-9));
    std::vector<std::size_t> promoted;
    for (std::size_t pos = 0; pos < ranks.size(); ++pos) {
      const auto i = ranks[pos].index;
      const auto& o = obs_[i];
      if (o.rung != rung && o.rung <= rung) continue;
      // Ended in this rung (or earlier, for a setup that stopped itself).
      const bool paused_here = o.rung == rung ? o.state == SegmentState::paused : true;
      if (with_target_ && at[i].basis == "reached") {
        state_[i] = "reached target";
        reason_[i] = fmt::format("at epoch {} with {}", at[i].target_epoch, joules(at[i].cost_j));
        continue;  // its energy to the target is measured: nothing more to learn
      }
      if (!paused_here) continue;  // converged, diverged, ...: said below
      if (last_rung) continue;
      const auto rank_text = rung_complete
                                 ? fmt::format("rank {} of {} after epoch {}", pos + 1, member_count, rung_end)
                                 : fmt::format("rank {} of the {} of {} finished after epoch {}", pos + 1,
                                               finished.size(), member_count, rung_end);
      if (asynchronous_ && o.rung > rung) {  // promoted earlier: it stays so
        state_[i] = "continued";
        reason_[i] = rank_text;
        promoted.push_back(i);
        continue;
      }
      if (pos >= keep) {
        state_[i] = rung_complete ? "stopped" : "paused";
        reason_[i] = rung_complete ? rank_text : rank_text + "; waiting for more results of its rung";
        continue;
      }
      if (with_target_ && std::isfinite(best_reached) && !(at[i].cost_j <= s_.beta * best_reached)) {
        state_[i] = "stopped";
        reason_[i] = std::isfinite(at[i].cost_j)
                         ? fmt::format("predicted {} to the target after epoch {}, over {:g} x the best ({})",
                                       joules(at[i].cost_j), rung_end, s_.beta, joules(best_reached))
                         : fmt::format("not expected to reach the target after epoch {}, while another did ({})",
                                       rung_end, joules(best_reached));
        continue;
      }
      state_[i] = "continued";
      reason_[i] = rank_text;
      promoted.push_back(i);
    }
    std::sort(promoted.begin(), promoted.end());
    return promoted;
  }

  // Complete setups say how they ended.
  void say_how_each_ended() {
    for (std::size_t i = 0; i < sampled_.size(); ++i) {
      const auto& o = obs_[i];
      const auto st = standing(s_, o.epochs);
      d_.verdicts.push_back({sampled_[i], state_[i], reason_[i], st});
      auto& v = d_.verdicts.back();
      if (v.state.empty() || v.state == "continued") {
        switch (o.state) {
          case SegmentState::converged: v.state = "converged"; break;
          case SegmentState::max_epochs: v.state = "max epochs"; break;
          case SegmentState::diverged: v.state = "diverged"; break;
          case SegmentState::failed: v.state = "failed"; break;
          case SegmentState::stopped:
            // Continued, then stopped inside its segment by Zeus's rule: the rule's reason.
            if (v.reason.empty() || v.state == "continued") v.reason = o.message;
            v.state = "stopped";
            break;
          case SegmentState::paused: v.state = v.state.empty() ? "paused" : v.state; break;
          case SegmentState::running: v.state = "running"; break;
          case SegmentState::pending: v.state = "waiting"; break;
          case SegmentState::none: v.state = "not started"; break;
        }
      }
      if (with_target_ && o.state == SegmentState::converged && st.basis != "reached" && v.reason.empty())
        v.reason = "converged below the target";
    }
  }

  // The chosen setup: the least energy among those that reached the target
  // (without a target: among the complete ones within the tolerance of the
  // best metric); setups within energy_tie of it are tied, and the tie goes to
  // the fewest epochs to the target, then the best metric, then the least
  // energy, so that runs measured with different noise choose alike.
  void choose() {
    double best_metric = -kInf;
    if (!with_target_)
      for (std::size_t i = 0; i < sampled_.size(); ++i)
        if (obs_[i].state == SegmentState::converged || obs_[i].state == SegmentState::max_epochs)
          best_metric = std::max(best_metric, d_.verdicts[i].standing.best_metric);
    double best_cost = kInf;
    std::vector<std::size_t> qualified;
    for (std::size_t i = 0; i < sampled_.size(); ++i) {
      const auto& v = d_.verdicts[i];
      const auto& o = obs_[i];
      bool qualifies = false;
      if (with_target_) {
        qualifies = v.standing.basis == "reached";
      } else {
        qualifies = (o.state == SegmentState::converged || o.state == SegmentState::max_epochs) &&
                    v.standing.best_metric >= best_metric - s_.metric_tolerance;
      }
      if (qualifies) {
        qualified.push_back(i);
        best_cost = std::min(best_cost, v.standing.cost_j);
      }
    }
    const auto ahead = [&](std::size_t a, std::size_t b) {
      const auto& x = d_.verdicts[a].standing;
      const auto& y = d_.verdicts[b].standing;
      if (with_target_ && x.target_epoch != y.target_epoch) return x.target_epoch < y.target_epoch;
      if (x.best_metric != y.best_metric) return x.best_metric > y.best_metric;
      return x.cost_j < y.cost_j;
    };
    for (const auto i : qualified) {
      if (!(d_.verdicts[i].standing.cost_j <= best_cost * (1.0 + s_.energy_tie))) continue;
      if (!d_.chosen || ahead(i, *d_.chosen)) d_.chosen = i;
    }
  }

  const Settings& s_;
  const std::vector<Setup>& sampled_;
  const bool asynchronous_;
  const bool with_target_;
  const bool budget_left_;
  const std::vector<int> rungs_;
  std::vector<Observed> obs_;
  std::vector<std::string> state_, reason_;
  std::vector<std::vector<Segment>> next_of_rung_;  // asynchronous: segments that may run, per rung
  bool busy_ = false;            // a segment runs or waits
  bool complete_before_ = true;  // asynchronous: every earlier rung has all its results
  Decision d_;
};

Decision decide_rungs(const Settings& s, const std::vector<Setup>& sampled, const std::vector<Observed>& observed,
                      double spent_j, bool asynchronous) {
  return RungWalk(s, sampled, observed, spent_j, asynchronous).run();
}

}  // namespace

Decision decide(const Settings& s, const std::vector<Setup>& sampled, const std::vector<Observed>& observed,
                double spent_j) {
  return decide_rungs(s, sampled, observed, spent_j, false);
}

Decision decide_asynchronous(const Settings& s, const std::vector<Setup>& sampled,
                             const std::vector<Observed>& observed, double spent_j) {
  return decide_rungs(s, sampled, observed, spent_j, true);
}


std::vector<RungSummary> rung_summary(const Settings& s, const std::vector<Observed>& observed) {
  const auto R = rungs(s);
  std::vector<RungSummary> out;
  for (std::size_t k = 0; k < R.size(); ++k) {
    RungSummary r;
    r.rung = static_cast<int>(k);
    r.end_epoch = R[k];
    const int rung = static_cast<int>(k);
    for (const auto& o : observed) {
      if (o.rung < rung) continue;
      ++r.setups;
      if (o.rung > rung) {
        ++r.finished;
        ++r.promoted;
      } else if (ended(o.state)) {
        ++r.finished;
      } else if (o.state == SegmentState::running) {
        ++r.running;
      } else {
        ++r.waiting;
      }
    }
    out.push_back(r);
  }
  return out;
}

Replay replay(const Settings& s, const Space& space, const std::vector<RecordedSetup>& runs) {
  validate(s, space);
  const auto sampled = sample_setups(space, s);
  std::map<std::size_t, Observed> obs;  // by index into sampled
  std::map<std::size_t, const RecordedSetup*> source;
  for (std::size_t i = 0; i < sampled.size(); ++i) {
    auto it = std::find_if(runs.begin(), runs.end(), [&](const RecordedSetup& r) { return r.setup == sampled[i]; });
    if (it == runs.end()) throw ConfigError(fmt::format("no recorded run of {} to replay", label(sampled[i])));
    source[i] = &*it;
  }
  Replay out;
  for (int guard = 0; guard < 100000; ++guard) {
    std::vector<Observed> list;
    for (auto& [i, o] : obs) list.push_back(o);
    out.last = decide(s, sampled, list, out.spent_j);
    if (out.last.finished || out.last.next.empty()) break;
    const auto seg = out.last.next.front();
    const auto i = static_cast<std::size_t>(std::find(sampled.begin(), sampled.end(), seg.setup) - sampled.begin());
    const auto& rec = *source[i];
    auto& o = obs[i];
    if (o.rung < 0) ++out.setups_started;
    else ++out.setups_continued;
    o.setup = seg.setup;
    o.rung = seg.rung;
    const int n = static_cast<int>(rec.epochs.size());
    std::vector<Observed> before;
    for (auto& [j, other] : obs) before.push_back(other);
    EpochRule rule(s, o.epochs, best_measured_j(s, before));
    bool reached = false;  // a segment that stops at the target ends there
    std::optional<std::string> stop;
    for (const auto& e : rec.epochs)
      if (e.epoch >= seg.from_epoch && e.epoch <= seg.to_epoch && !reached && !stop) {
        o.epochs.push_back(e);
        if (std::isfinite(e.energy_j)) out.spent_j += e.energy_j;
        reached = s.rule.stop_at_target && s.rule.target_metric && e.val_metric >= *s.rule.target_metric;
        // The convergence rule first: an epoch that ends the run anyway is not "stopped".
        const bool ends_anyway = reached || e.epoch >= n || !std::isfinite(e.val_metric);
        if (!ends_anyway && e.epoch < seg.to_epoch) stop = rule.after(e);
        else rule.add(e);  // the run ends here anyway: the rule is not asked, as in a real run
      }
    if (stop) {
      o.state = SegmentState::stopped;
      o.message = *stop;
    } else if (reached) o.state = SegmentState::converged;
    else if (seg.to_epoch < n) o.state = SegmentState::paused;
    else if (seg.to_epoch == n && rec.end == SegmentState::max_epochs && n < s.rule.max_epochs)
      o.state = SegmentState::paused;  // the grid's own limit was this rung's end
    else o.state = rec.end;
    ++out.segments;
  }
  return out;
}

}  // namespace powertrain::search
