#include "powertrain/predict/predict.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numbers>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/predict/curves.h"
#include "powertrain/run/convergence.h"

namespace powertrain::predict {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Settings of the ensemble, chosen on the synthetic runs of
// tests/predict/synthetic.h (accuracy_test.cpp measures them).
constexpr double kHeadroom = 5.0;       // the asymptote at most this many observed ranges beyond the curve seen
constexpr double kWeightPower = 0.5;    // fit weight of epoch i of n: (i / n)^kWeightPower
constexpr double kTemper = 3.0;         // family weights exp(-AIC / (2 kTemper)), see below
constexpr double kMinFamilyWeight = 1e-3;
constexpr int kRefits = 20;             // bootstrap refits per family
constexpr int kMaxDraws = 400;
constexpr int kMinDraws = 50;
constexpr double kStepBudget = 2e6;     // simulated epochs per call at most: fewer draws for long horizons
constexpr int kRecentEnergyEpochs = 10; // epochs whose energies give the level of future epochs
constexpr double kSigmaFloor = 1e-6;    // observation noise at least, in units of the observed range

// splitmix64 with Box-Muller normal deviates: the same draws for a seed on
// every standard library (std::normal_distribution's are not specified).
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL) {}
  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * std::numbers::pi * u2);
    has_spare_ = true;
    return r * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  std::uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

void check_seen(const std::vector<CurvePoint>& seen, const RuleSettings& rule) {
  for (std::size_t i = 0; i < seen.size(); ++i) {
    if (seen[i].epoch != static_cast<int>(i) + 1)
      throw ConfigError(fmt::format("prediction: point {} is epoch {}, expected epochs 1, 2, ... in order", i + 1,
                                    seen[i].epoch));
  }
  if (rule.target_metric && !std::isfinite(*rule.target_metric))
    throw ConfigError(fmt::format("prediction: the target metric must be finite, got {}", *rule.target_metric));
}

// The quantile q of sorted values (linear interpolation between order statistics).
double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return kNaN;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto i = static_cast<std::size_t>(pos);
  if (i + 1 >= sorted.size()) return sorted.back();
  return sorted[i] + (pos - static_cast<double>(i)) * (sorted[i + 1] - sorted[i]);
}

// The median and 80% interval of the values; NaN when one is NaN (no energy measured).
Interval interval_of(std::vector<double> values) {
  if (std::any_of(values.begin(), values.end(), [](double v) { return std::isnan(v); })) return {kNaN, kNaN, kNaN};
  std::sort(values.begin(), values.end());
  return {quantile(values, 0.1), quantile(values, 0.5), quantile(values, 0.9)};
}

Interval exact(double v) { return {v, v, v}; }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return quantile(v, 0.5);
}

// Energy of future epochs: the median of the recent epochs (the first left out
// once three are seen: warm-up, caches, compilation), its spread from their
// median absolute deviation.
struct EnergyModel {
  double level = kNaN;     // J per future epoch
  double level_se = 0.0;   // standard error of the level
  double epoch_sd = 0.0;   // spread of one epoch's energy around the level
  std::vector<double> cumulative;  // energy of epochs 1..i, for i = 1..n (gaps filled with the level)

  explicit EnergyModel(const std::vector<CurvePoint>& seen) {
    const std::size_t n = seen.size();
    std::vector<double> recent;
    for (std::size_t i = n; i-- > 0 && static_cast<int>(recent.size()) < kRecentEnergyEpochs;) {
      if (i == 0 && n >= 3) break;
      if (std::isfinite(seen[i].energy_j) && seen[i].energy_j >= 0.0) recent.push_back(seen[i].energy_j);
    }
    if (recent.empty() && n > 0 && std::isfinite(seen[0].energy_j) && seen[0].energy_j >= 0.0)
      recent.push_back(seen[0].energy_j);
    if (!recent.empty()) {
      level = median(recent);
      std::vector<double> dev;
      for (double e : recent) dev.push_back(std::abs(e - level));
      epoch_sd = 1.4826 * median(dev);
      level_se = epoch_sd / std::sqrt(static_cast<double>(recent.size()));
    }
    double sum = 0.0;
    for (const auto& p : seen) {
      sum += (std::isfinite(p.energy_j) && p.energy_j >= 0.0) ? p.energy_j : level;
      cumulative.push_back(sum);
    }
  }
  double seen_total() const { return cumulative.empty() ? 0.0 : cumulative.back(); }
  // Energy to epoch `epoch` (> n) for a draw's level and noise.
  double to_epoch(int epoch, double draw_level, double noise) const {
    const double k = static_cast<double>(epoch) - static_cast<double>(cumulative.size());
    return seen_total() + std::max(0.0, k * draw_level + epoch_sd * std::sqrt(k) * noise);
  }
  double exact_to(int epoch) const { return cumulative[static_cast<std::size_t>(epoch) - 1]; }
};

// The rule after the epochs seen: where it stopped (0: it goes on) and where
// the target was reached (0: not yet).
struct Replay {
  run::ConvergenceRule rule;
  int stop_epoch = 0;
  int target_epoch = 0;
};

Replay replay(const std::vector<CurvePoint>& seen, const RuleSettings& settings) {
  Replay r{run::ConvergenceRule(rule_config(settings))};
  for (const auto& p : seen) {
    const auto v = r.rule.observe(p.epoch, p.val_metric, kNaN);
    if (v.reached_target) r.target_epoch = p.epoch;
    if (v.stop) {
      r.stop_epoch = p.epoch;
      break;
    }
  }
  return r;
}

Prediction stopped(const Replay& r, const EnergyModel& energy, int n) {
  Prediction p;
  p.epochs_seen = n;
  p.method = "stopped";
  p.stop_epoch = exact(r.stop_epoch);
  p.energy_to_stop_j = exact(energy.exact_to(r.stop_epoch));
  if (r.target_epoch > 0) {
    p.target_epoch = exact(r.target_epoch);
    p.energy_to_target_j = exact(energy.exact_to(r.target_epoch));
    p.p_reach_target = 1.0;
  }
  return p;
}

// Fills the target fields of a prediction that does not model the metric.
void known_target(Prediction& p, const Replay& r, const EnergyModel& energy, const RuleSettings& settings) {
  if (r.target_epoch > 0) {
    p.target_epoch = exact(r.target_epoch);
    p.energy_to_target_j = exact(energy.exact_to(r.target_epoch));
    p.p_reach_target = 1.0;
  } else {
    p.p_reach_target = settings.target_metric ? kNaN : 0.0;
  }
}

// Too few epochs to fit a curve: from the earliest stop the rule allows (no
// further gain) to max_epochs.
Prediction too_few(const Replay& r, const EnergyModel& energy, const RuleSettings& settings, int n) {
  run::ConvergenceRule rule = r.rule;
  int earliest = settings.max_epochs;
  for (int e = n + 1; e <= settings.max_epochs; ++e) {
    if (rule.observe(e, std::numeric_limits<double>::lowest(), kNaN).stop) {
      earliest = e;
      break;
    }
  }
  const int latest = settings.max_epochs;
  Prediction p;
  p.epochs_seen = n;
  p.method = "too few epochs";
  const double mid = 0.5 * (earliest + latest);
  p.stop_epoch = {static_cast<double>(earliest), mid, static_cast<double>(latest)};
  // The energy of the epochs to come is uncertain too, even where the rule
  // leaves one possible stop: 10th and 90th percentiles of k more epochs, each
  // at the level with its spread, and the level with its standard error.
  const auto spread = [&](int k) {
    return 1.2816 * std::sqrt(k * energy.epoch_sd * energy.epoch_sd + double(k) * k * energy.level_se * energy.level_se);
  };
  const int k_low = earliest - n, k_high = latest - n;
  p.energy_to_stop_j = {energy.seen_total() + std::max(0.0, k_low * energy.level - spread(k_low)),
                        energy.seen_total() + (mid - n) * energy.level,
                        energy.seen_total() + k_high * energy.level + spread(k_high)};
  known_target(p, r, energy, settings);
  return p;
}

// One family of the ensemble, ready to draw from.
struct Member {
  CurveFit fit;
  double weight = 0.0;
  double sigma = 0.0;  // observation noise, normalized units
  std::vector<std::array<double, kMaxCurveParams>> params;  // bootstrap refits (the fit itself when none)
};

}  // namespace

RuleSettings rule_settings(const run::RunConfig& config) {
  return {config.max_epochs, config.patience, config.min_delta, config.target_metric, config.stop_at_target};
}

run::RunConfig rule_config(const RuleSettings& r) {
  run::RunConfig c;
  c.max_epochs = r.max_epochs;
  c.patience = r.patience;
  c.min_delta = r.min_delta;
  c.target_metric = r.target_metric;
  c.stop_at_target = r.stop_at_target;
  return c;
}

RuleOutcome replay_rule(const std::vector<double>& metrics, const RuleSettings& settings) {
  run::ConvergenceRule rule(rule_config(settings));
  RuleOutcome out;
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    const int epoch = static_cast<int>(i) + 1;
    const auto v = rule.observe(epoch, metrics[i], kNaN);
    if (v.reached_target) out.target_epoch = epoch;
    if (v.stop) {
      out.stop_epoch = epoch;
      break;
    }
  }
  return out;
}

Prediction predict_linear(const std::vector<CurvePoint>& seen, const RuleSettings& settings) {
  check_seen(seen, settings);
  const Replay r = replay(seen, settings);
  const EnergyModel energy(seen);
  const int n = static_cast<int>(seen.size());
  if (r.stop_epoch > 0) return stopped(r, energy, n);
  // CarbonTracker: the mean energy of the epochs seen, times the epochs of the run.
  double sum = 0.0;
  int count = 0;
  for (const auto& p : seen) {
    if (std::isfinite(p.energy_j) && p.energy_j >= 0.0) {
      sum += p.energy_j;
      ++count;
    }
  }
  Prediction p;
  p.epochs_seen = n;
  p.method = "linear";
  p.stop_epoch = exact(settings.max_epochs);
  p.energy_to_stop_j = exact(count > 0 ? sum / count * settings.max_epochs : kNaN);
  known_target(p, r, energy, settings);
  return p;
}

Prediction predict_curve(const std::vector<CurvePoint>& seen, const RuleSettings& settings, std::uint64_t seed) {
  check_seen(seen, settings);
  const Replay r = replay(seen, settings);
  const EnergyModel energy(seen);
  const int n = static_cast<int>(seen.size());
  if (r.stop_epoch > 0) return stopped(r, energy, n);
  if (n < kMinCurveEpochs) return too_few(r, energy, settings, n);

  // The curve in normalized units: the epochs seen span [0, 1].
  std::vector<double> x(n), y(n), z(n), w(n);
  for (int i = 0; i < n; ++i) {
    x[i] = i + 1.0;
    y[i] = seen[i].val_metric;
  }
  const auto [lo_it, hi_it] = std::minmax_element(y.begin(), y.end());
  const double y_lo = *lo_it, y_hi = *hi_it;
  double scale = y_hi - y_lo;
  if (!(scale > 1e-12 * std::max(1.0, std::abs(y_hi)))) scale = 1e-3 * std::max(1.0, std::abs(y_hi));  // flat
  for (int i = 0; i < n; ++i) {
    z[i] = (y[i] - y_lo) / scale;
    w[i] = std::pow((i + 1.0) / n, kWeightPower);
  }
  // A metric that has stayed within [0, 1] (accuracy, a share) or [0, 100]
  // (a percentage) is taken to be bounded by it.
  std::optional<double> cap;
  if (y_lo >= 0.0 && y_hi <= 1.0) cap = 1.0;
  else if (y_lo >= 0.0 && y_hi <= 100.0) cap = 100.0;
  FitBounds bounds{-kHeadroom, (y_hi - y_lo) / scale + kHeadroom};
  if (cap) bounds.asymptote_high = std::min(bounds.asymptote_high, (*cap - y_lo) / scale);

  // Every family with two residual degrees of freedom, weighted by its AIC,
  // exp(-AIC / 2) tempered: the families fit the epochs seen about equally
  // well and differ in the tail they extrapolate, which the criterion cannot
  // judge; untempered, its parameter penalty hands the ensemble to the
  // fastest-saturating family and the predicted stop comes too early. (The
  // small-sample AICc is harsher still: flat and ilog2 win every short curve.)
  std::vector<Member> members;
  for (Family f : kFamilies) {
    const int k = parameter_count(f);
    if (n < k + 2) continue;
    Member m;
    m.fit = fit_curve(f, x, z, w, bounds);
    if (!m.fit.ok) continue;
    const double rss = std::max(m.fit.rss, n * kSigmaFloor * kSigmaFloor);
    m.weight = n * std::log(rss / n) + 2.0 * k;  // AIC
    m.sigma = std::max(m.fit.sigma, kSigmaFloor);
    members.push_back(std::move(m));
  }
  double best = std::numeric_limits<double>::infinity();
  for (const auto& m : members) best = std::min(best, m.weight);
  for (auto& m : members) m.weight = std::exp(-(m.weight - best) / (2.0 * kTemper));
  std::erase_if(members, [](const Member& m) { return m.weight < kMinFamilyWeight; });
  double total = 0.0;
  for (const auto& m : members) total += m.weight;
  for (auto& m : members) m.weight /= total;

  // Parameter uncertainty: refits of each family to its fitted curve plus
  // resampled residuals (a residual bootstrap). Unlike a Gaussian around the
  // fit, it keeps the long upper tail of an asymptote the data barely pin down.
  Random rng(seed);
  std::vector<double> resampled(n), residual(n);
  for (auto& m : members) {
    for (int i = 0; i < n; ++i) residual[i] = z[i] - curve_value(m.fit.family, m.fit.params, x[i]);
    for (int b = 0; b < kRefits; ++b) {
      for (int i = 0; i < n; ++i)
        resampled[i] = z[i] - residual[i] + residual[std::min<std::size_t>(rng.uniform() * n, n - 1)];
      const CurveFit refit = fit_curve(m.fit.family, x, resampled, w, bounds, m.fit.params);
      if (!refit.ok) continue;
      auto& t = m.params.emplace_back();
      std::copy(refit.params.begin(), refit.params.end(), t.begin());
    }
    if (m.params.empty()) std::copy(m.fit.params.begin(), m.fit.params.end(), m.params.emplace_back().begin());
  }

  // Sampled futures: a family by weight, one of its refits, noise as seen;
  // each epoch through the rule as it stands after the epochs seen.
  // Without early stopping and with no target to reach, every future ends at
  // max_epochs: only the energy varies.
  const bool simulate = settings.patience > 0 || (settings.target_metric && r.target_epoch == 0);
  const int horizon = simulate ? settings.max_epochs - n : 1;
  const int draws = std::clamp(static_cast<int>(kStepBudget / std::max(horizon, 1)), kMinDraws, kMaxDraws);
  std::vector<double> stops, energies, target_epochs, target_energies;
  stops.reserve(draws);
  energies.reserve(draws);
  for (int d = 0; d < draws; ++d) {
    double u = rng.uniform();
    std::size_t mi = 0;
    while (mi + 1 < members.size() && u >= members[mi].weight) u -= members[mi++].weight;
    const Member& m = members[mi];
    const auto& theta = m.params[std::min<std::size_t>(rng.uniform() * m.params.size(), m.params.size() - 1)];
    const std::span<const double> params(theta.data(), parameter_count(m.fit.family));
    run::ConvergenceRule rule = r.rule;
    int stop = settings.max_epochs, target = 0;
    for (int e = n + 1; simulate && e <= settings.max_epochs; ++e) {
      double metric = y_lo + scale * (curve_value(m.fit.family, params, e) + m.sigma * rng.normal());
      if (cap) metric = std::min(metric, *cap);
      if (!std::isfinite(metric)) metric = y_lo;  // an overflowing draw: no gain
      const auto v = rule.observe(e, metric, kNaN);
      if (v.reached_target) target = e;
      if (v.stop) {
        stop = e;
        break;
      }
      if (settings.patience == 0 && target > 0) break;  // it goes on to max_epochs
    }
    const double level = std::max(0.0, energy.level + energy.level_se * rng.normal());
    const double noise = rng.normal();
    stops.push_back(stop);
    energies.push_back(energy.to_epoch(stop, level, noise));
    if (target > 0) {
      target_epochs.push_back(target);
      target_energies.push_back(energy.to_epoch(target, level, noise));
    }
  }

  Prediction p;
  p.epochs_seen = n;
  p.method = "curve-ensemble";
  p.draws = draws;
  p.stop_epoch = interval_of(stops);
  p.energy_to_stop_j = interval_of(energies);
  if (r.target_epoch > 0) {
    known_target(p, r, energy, settings);
  } else if (settings.target_metric) {
    p.p_reach_target = static_cast<double>(target_epochs.size()) / draws;
    if (!target_epochs.empty()) {
      p.target_epoch = interval_of(target_epochs);
      p.energy_to_target_j = interval_of(target_energies);
    }
  }
  return p;
}

}  // namespace powertrain::predict
