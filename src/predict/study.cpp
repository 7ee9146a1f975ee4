#include "powertrain/predict/study.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/run/convergence.h"

namespace powertrain::predict {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// How many of the run's own epochs the peers' energy level counts as.
constexpr double kPeerEnergyWeight = 1.0;
constexpr double kTail = 0.1;  // each side of the 80% interval

bool usable_energy(double e) { return std::isfinite(e) && e >= 0.0; }

double median(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// The weighted quantile q of (value, weight) pairs: the smallest value whose
// cumulative weight reaches q of the total.
double weighted_quantile(std::vector<std::pair<double, double>> vw, double q) {
  if (vw.empty()) return kNaN;
  std::sort(vw.begin(), vw.end());
  double total = 0.0;
  for (const auto& [v, w] : vw) total += w;
  double cum = 0.0;
  for (const auto& [v, w] : vw) {
    cum += w;
    if (cum >= q * total * (1.0 - 1e-12)) return v;
  }
  return vw.back().first;
}

Interval weighted_interval(const std::vector<std::pair<double, double>>& vw) {
  return {weighted_quantile(vw, 0.1), weighted_quantile(vw, 0.5), weighted_quantile(vw, 0.9)};
}

// The energy level of the run's epochs to come (J per epoch).
double energy_level(const std::vector<CurvePoint>& seen, const RunTraits& traits, const std::vector<PeerRun>& peers) {
  // The peers' epoch-1 energy against their later epochs' (warm-up), and their level by batch size.
  std::vector<double> ratios, same_batch;
  for (const auto& p : peers) {
    std::vector<double> later;
    for (std::size_t i = 1; i < p.epochs.size(); ++i)
      if (usable_energy(p.epochs[i].energy_j)) later.push_back(p.epochs[i].energy_j);
    const double first = p.epochs.empty() ? kNaN : p.epochs[0].energy_j;
    if (!later.empty() && usable_energy(first) && first > 0.0) ratios.push_back(median(later) / first);
    if (traits.batch_size > 0 && p.traits == traits) {
      if (!later.empty()) same_batch.push_back(median(later));
      else if (usable_energy(first)) same_batch.push_back(first);
    }
  }
  const double warm = ratios.empty() ? 1.0 : median(ratios);
  double own = kNaN, own_count = 0.0;
  std::vector<double> own_later;
  for (std::size_t i = 1; i < seen.size(); ++i)
    if (usable_energy(seen[i].energy_j)) own_later.push_back(seen[i].energy_j);
  if (!own_later.empty()) {
    own = median(own_later);
    own_count = static_cast<double>(own_later.size());
  } else if (!seen.empty() && usable_energy(seen[0].energy_j)) {
    own = seen[0].energy_j * warm;
    own_count = 1.0;
  }
  const double peer = same_batch.empty() ? kNaN : median(same_batch);
  if (std::isnan(own)) return peer;
  if (std::isnan(peer)) return own;
  return (own_count * own + kPeerEnergyWeight * peer) / (own_count + kPeerEnergyWeight);
}

double seen_energy(const std::vector<CurvePoint>& seen, double level) {
  double sum = 0.0;
  for (const auto& p : seen) sum += usable_energy(p.energy_j) ? p.energy_j : level;
  return sum;
}

// The energy a forecast says is still to come, the unit of its calibration
// (at least a thousandth of the total: a run predicted to stop now).
double to_come(const Interval& e, double spent) {
  return std::max(e.mid - spent, 1e-3 * std::abs(e.mid) + 1e-12);
}

double spent_of(const std::vector<CurvePoint>& seen) {
  double sum = 0.0;
  for (const auto& p : seen)
    if (usable_energy(p.energy_j)) sum += p.energy_j;
  return sum;
}

}  // namespace

std::string to_string(Method m) {
  switch (m) {
    case Method::curve: return "curve";
    case Method::prior: return "study prior";
    case Method::level: return "study prior by level";
    case Method::earliest: return "earliest stop";
    case Method::linear: return "linear";
  }
  return "?";
}

namespace {
// Where a peer's curve takes over: the index (0-based) of the peer epoch that
// stands for the run's last epoch, or -1 when the peer has no finite metric there.
int anchor_of(const std::vector<CurvePoint>& seen, const PeerRun& peer, Alignment alignment) {
  const int n = static_cast<int>(seen.size()), m = static_cast<int>(peer.epochs.size());
  if (alignment == Alignment::epoch) {
    const int i = std::min(n, m) - 1;
    return std::isfinite(peer.epochs[static_cast<std::size_t>(i)].val_metric) ? i : -1;
  }
  const double last = seen.back().val_metric;
  int best = -1;
  for (int i = 0; i < m; ++i) {
    const double v = peer.epochs[static_cast<std::size_t>(i)].val_metric;
    if (std::isfinite(v) &&
        (best < 0 || std::abs(v - last) < std::abs(peer.epochs[static_cast<std::size_t>(best)].val_metric - last)))
      best = i;
  }
  return best;
}
}  // namespace

std::optional<Prediction> predict_prior(const std::vector<CurvePoint>& seen, const RuleSettings& rule,
                                        const RunTraits& traits, const std::vector<PeerRun>& peers,
                                        Alignment alignment) {
  if (seen.empty()) return std::nullopt;
  // predict_linear checks the epochs and settings, and reports a run the rule has stopped.
  const Prediction linear = predict_linear(seen, rule);
  if (linear.method == "stopped") return linear;
  const int n = static_cast<int>(seen.size());
  run::ConvergenceRule base(rule_config(rule));
  int reached = 0;
  for (const auto& p : seen)
    if (base.observe(p.epoch, p.val_metric, kNaN).reached_target) reached = p.epoch;
  const double last = seen.back().val_metric;

  struct Draw {
    int stop = 0, target = 0;
    double distance = 0.0;
  };
  std::vector<Draw> draws;
  for (const auto& peer : peers) {
    const int m = static_cast<int>(peer.epochs.size());
    if (m == 0) continue;
    const int common = std::min(n, m);
    const int at = anchor_of(seen, peer, alignment);  // the peer's epoch at + 1 stands for the run's epoch n
    if (at < 0) continue;
    const double anchor = peer.epochs[static_cast<std::size_t>(at)].val_metric;
    double ss = 0.0;
    int count = 0;
    for (int i = 0; i < common; ++i) {
      const double a = seen[static_cast<std::size_t>(i)].val_metric, b = peer.epochs[static_cast<std::size_t>(i)].val_metric;
      if (std::isfinite(a) && std::isfinite(b)) {
        ss += (a - b) * (a - b);
        ++count;
      }
    }
    // The peer's last finite metric: where a finished peer's curve stays.
    double end = anchor;
    for (int i = m; i-- > at + 1;)
      if (std::isfinite(peer.epochs[static_cast<std::size_t>(i)].val_metric)) {
        end = peer.epochs[static_cast<std::size_t>(i)].val_metric;
        break;
      }
    run::ConvergenceRule r = base;
    Draw d;
    d.distance = count ? std::sqrt(ss / count) : 0.0;
    bool censored = false;
    for (int e = n + 1; e <= rule.max_epochs; ++e) {
      double metric;
      const int pe = e + (at + 1 - n);  // the peer's epoch that stands for epoch e
      if (pe <= m) {
        const double v = peer.epochs[static_cast<std::size_t>(pe - 1)].val_metric;
        metric = std::isfinite(v) ? last + (v - anchor) : v;
      } else if (peer.finished) {
        metric = last + (end - anchor);
      } else {
        censored = true;  // a running peer that has not got this far: it says nothing of this future
        break;
      }
      const auto v = r.observe(e, metric, kNaN);
      if (v.reached_target && d.target == 0) d.target = e;
      if (v.stop) {
        d.stop = e;
        break;
      }
    }
    if (censored) continue;
    if (d.stop == 0) d.stop = rule.max_epochs;
    draws.push_back(d);
  }
  if (draws.empty()) return std::nullopt;

  // Peers whose curve so far was near the run's weigh more: a Gaussian kernel
  // with the median distance as its width.
  std::vector<double> distances;
  for (const auto& d : draws) distances.push_back(d.distance);
  const double h = std::max(median(distances), 1e-2 * std::max(1.0, std::abs(last)));
  const double level = energy_level(seen, traits, peers);
  const double spent = seen_energy(seen, level);
  std::vector<std::pair<double, double>> stops, energies, target_epochs, target_energies;
  double total_weight = 0.0, target_weight = 0.0;
  for (const auto& d : draws) {
    const double w = std::exp(-0.5 * (d.distance / h) * (d.distance / h)) + 1e-12;
    total_weight += w;
    stops.emplace_back(d.stop, w);
    energies.emplace_back(spent + (d.stop - n) * level, w);
    if (d.target > 0) {
      target_weight += w;
      target_epochs.emplace_back(d.target, w);
      target_energies.emplace_back(spent + (d.target - n) * level, w);
    }
  }
  Prediction p;
  p.epochs_seen = n;
  p.method = alignment == Alignment::level ? "study prior by level" : "study prior";
  p.draws = static_cast<int>(draws.size());
  p.stop_epoch = weighted_interval(stops);
  p.energy_to_stop_j = weighted_interval(energies);
  if (reached > 0) {
    p.target_epoch = linear.target_epoch;
    p.energy_to_target_j = linear.energy_to_target_j;
    p.p_reach_target = 1.0;
  } else if (rule.target_metric) {
    p.p_reach_target = target_weight / total_weight;
    if (!target_epochs.empty()) {
      p.target_epoch = weighted_interval(target_epochs);
      p.energy_to_target_j = weighted_interval(target_energies);
    }
  }
  return p;
}

Prediction predict_earliest(const std::vector<CurvePoint>& seen, const RuleSettings& rule, const RunTraits& traits,
                            const std::vector<PeerRun>& peers) {
  // predict_linear checks the epochs and settings, and reports a run the rule has stopped.
  Prediction p = predict_linear(seen, rule);
  if (p.method == "stopped") return p;
  const int n = static_cast<int>(seen.size());
  run::ConvergenceRule r(rule_config(rule));
  double lowest = std::numeric_limits<double>::infinity();
  for (const auto& c : seen) {
    r.observe(c.epoch, c.val_metric, kNaN);
    if (std::isfinite(c.val_metric)) lowest = std::min(lowest, c.val_metric);
  }
  // Epochs to come at the lowest metric seen: no gain, no target reached.
  int stop = rule.max_epochs;
  for (int e = n + 1; e <= rule.max_epochs; ++e)
    if (r.observe(e, std::isfinite(lowest) ? lowest : 0.0, kNaN).stop) {
      stop = e;
      break;
    }
  const double level = energy_level(seen, traits, peers);
  const double energy = seen_energy(seen, level) + (stop - n) * level;
  p.method = "earliest stop";
  p.stop_epoch = {static_cast<double>(stop), static_cast<double>(stop), static_cast<double>(stop)};
  p.energy_to_stop_j = {energy, energy, energy};
  return p;  // the target fields as predict_linear has them: known once reached, else unknown
}

Prediction predict_with(Method m, const std::vector<CurvePoint>& seen, const RuleSettings& rule,
                        const RunTraits& traits, const std::vector<PeerRun>& peers) {
  switch (m) {
    case Method::linear: return predict_linear(seen, rule);
    case Method::prior:
      if (auto p = predict_prior(seen, rule, traits, peers)) return *p;
      return predict_curve(seen, rule, 0);
    case Method::level:
      if (auto p = predict_prior(seen, rule, traits, peers, Alignment::level)) return *p;
      return predict_curve(seen, rule, 0);
    case Method::earliest: return predict_earliest(seen, rule, traits, peers);
    case Method::curve:
      if (static_cast<int>(seen.size()) < kMinCurveEpochs)
        if (auto p = predict_prior(seen, rule, traits, peers)) return *p;
      return predict_curve(seen, rule, 0);
  }
  return predict_curve(seen, rule, 0);
}

std::vector<PeerRun> peers_of(const std::vector<BacktestRun>& runs, std::optional<std::size_t> self) {
  std::vector<PeerRun> out;
  for (std::size_t i = 0; i < runs.size(); ++i)
    if (!self || i != *self) out.push_back({runs[i].epochs, runs[i].traits, true});
  return out;
}

namespace {
int seen_after(double share, int epochs) {
  return std::clamp(static_cast<int>(std::lround(share * epochs)), 1, epochs - 1);
}
// The outcome against the forecast, in units of the energy it said was still to come.
double residual(const Prediction& p, double actual, double spent) {
  return (actual - p.energy_to_stop_j.mid) / to_come(p.energy_to_stop_j, spent);
}
}  // namespace

Backtest backtest(const std::vector<BacktestRun>& runs, std::optional<std::size_t> leave_out, CurveCache* cache) {
  Backtest bt;
  std::array<std::vector<double>, kMethodCount> ape, scores;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (leave_out && i == *leave_out) continue;
    const auto& run = runs[i];
    const int n = static_cast<int>(run.epochs.size());
    if (n < 2 || !(run.energy_j > 0.0) || !std::isfinite(run.energy_j)) continue;
    ++bt.runs;
    std::vector<PeerRun> peers;
    for (std::size_t j = 0; j < runs.size(); ++j)
      if (j != i && !(leave_out && j == *leave_out)) peers.push_back({runs[j].epochs, runs[j].traits, true});
    for (double share : kBacktestShares) {
      const int k = seen_after(share, n);
      const std::vector<CurvePoint> seen(run.epochs.begin(), run.epochs.begin() + k);
      const double spent = spent_of(seen);
      for (Method m : kMethods) {
        Prediction p;
        const bool cacheable = m == Method::curve && k >= kMinCurveEpochs;
        if (cacheable && cache && cache->at.contains({i, k})) {
          p = cache->at.at({i, k});
        } else {
          p = predict_with(m, seen, run.rule, run.traits, peers);
          if (cacheable && cache) cache->at[{i, k}] = p;
        }
        const auto idx = static_cast<std::size_t>(m);
        ape[idx].push_back(std::abs(p.energy_to_stop_j.mid - run.energy_j) / run.energy_j);
        scores[idx].push_back(residual(p, run.energy_j, spent));
      }
      ++bt.points;
    }
  }
  if (bt.points == 0) return bt;
  for (std::size_t m = 0; m < kMethodCount; ++m) bt.median_ape[m] = median(ape[m]);
  // The lowest median error; the simple rule wins a tie, then the first in kMethods.
  bt.chosen = Method::linear;
  for (Method m : kMethods)
    if (bt.ape(m) < bt.ape(bt.chosen)) bt.chosen = m;
  bt.calibrated = bt.runs >= kMinBacktestRuns;
  if (bt.calibrated) {
    // Split conformal, each side: the floor((N + 1) 0.1)-th smallest and the
    // ceil((N + 1) 0.9)-th smallest of the N residuals (clamped to 1..N).
    auto s = scores[static_cast<std::size_t>(bt.chosen)];
    std::sort(s.begin(), s.end());
    const double n1 = static_cast<double>(s.size() + 1);
    const auto lo = std::clamp<std::size_t>(static_cast<std::size_t>(std::floor(n1 * kTail)), 1, s.size());
    const auto hi = std::clamp<std::size_t>(static_cast<std::size_t>(std::ceil(n1 * (1.0 - kTail))), 1, s.size());
    // The interval holds its median (low <= mid <= high, as every
    // Interval): a method biased to one side gets the other end at the median.
    bt.residual_low = std::min(s[lo - 1], 0.0);
    bt.residual_high = std::max(s[hi - 1], 0.0);
  }
  return bt;
}

std::string describe_errors(const Backtest& bt) {
  std::string out;
  for (Method m : kMethods)
    out += fmt::format("{}{} {:.3g}%", out.empty() ? "" : ", ", m == Method::linear ? "linear rule" : to_string(m),
                       100.0 * bt.ape(m));
  return out;
}

std::string method_glossary() {
  return "'study prior' continues the run with the other runs' curves (each from the same epoch; 'by level': each "
         "from where it was at the run's level) and their energy per epoch; 'earliest stop' assumes no further gain, "
         "so the rule stops the run when its patience runs out; 'too few epochs' is a bound (from the earliest stop "
         "the rule allows to max_epochs) where nothing else is known";
}

Prediction predict_in_study(const std::vector<CurvePoint>& seen, const RuleSettings& rule, const RunTraits& traits,
                            const std::vector<PeerRun>& peers, const Backtest& bt) {
  if (!bt.calibrated) return predict_with(Method::curve, seen, rule, traits, peers);
  Prediction p = predict_with(bt.chosen, seen, rule, traits, peers);
  if (p.method == "stopped") return p;
  const double spent = spent_of(seen);
  auto& e = p.energy_to_stop_j;
  const double rest = to_come(e, spent);
  e.low = std::max(spent, e.mid + bt.residual_low * rest);
  e.high = e.mid + bt.residual_high * rest;
  // A method that gives the stop as a point (the earliest stop, the linear
  // rule) gets the stop interval of the calibrated energy at its own energy
  // per epoch to come, within the epochs the rule allows.
  auto& s = p.stop_epoch;
  const int n = static_cast<int>(seen.size());
  if (s.low == s.high && s.mid > n) {
    const double per_epoch = (e.mid - spent) / (s.mid - n);
    if (per_epoch > 0.0) {
      s.low = std::clamp(std::floor(n + (e.low - spent) / per_epoch), n + 1.0, s.mid);
      s.high = std::clamp(std::ceil(n + (e.high - spent) / per_epoch), s.mid, static_cast<double>(rule.max_epochs));
    }
  }
  p.method = fmt::format("{}, by backtest of {} runs", p.method, bt.runs);
  return p;
}

StudyForecaster::StudyForecaster(const run::RunConfig& config, RunTraits traits, std::vector<PeerRun> peers,
                                 const std::vector<BacktestRun>& finished)
    : rule_(rule_settings(config)), traits_(std::move(traits)), peers_(std::move(peers)) {
  try {
    backtest_ = predict::backtest(finished);
  } catch (const std::exception&) {
    backtest_ = {};  // runs whose settings the rule refuses: no backtest, the curve forecast
  }
}

std::optional<run::EpochForecast> StudyForecaster::after(const run::EpochRecord& e) {
  seen_.push_back({e.epoch, e.val_metric, e.energy_j});
  try {
    return to_forecast(predict_in_study(seen_, rule_, traits_, peers_, backtest_));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace powertrain::predict
