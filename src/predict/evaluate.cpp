#include <algorithm>
#include <cmath>

#include "powertrain/predict/predict.h"

namespace powertrain::predict {
namespace {

double median_of(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// The epochs seen after `share` of a run of `epochs`: rounded, at least 1,
// fewer than all.
int seen_after(double share, int epochs) {
  return std::clamp(static_cast<int>(std::lround(share * epochs)), 1, epochs - 1);
}

struct Tally {
  std::vector<double> ape;
  int covered = 0;
  void add(const Interval& predicted, double actual) {
    ape.push_back(std::abs(predicted.mid - actual) / actual);
    if (predicted.low <= actual && actual <= predicted.high) ++covered;
  }
};

}  // namespace

Evaluation evaluate(const std::vector<RecordedRun>& runs, std::uint64_t seed) {
  Tally curve25, curve50, linear25, linear50;
  int used = 0;
  for (const auto& run : runs) {
    const int epochs = std::min<int>(run.stop_epoch, static_cast<int>(run.epochs.size()));
    if (epochs < 2 || !(run.energy_j > 0.0) || !std::isfinite(run.energy_j)) continue;
    ++used;
    for (double share : {0.25, 0.5}) {
      const std::vector<CurvePoint> seen(run.epochs.begin(), run.epochs.begin() + seen_after(share, epochs));
      const Prediction c = predict_curve(seen, run.rule, seed);
      const Prediction l = predict_linear(seen, run.rule);
      (share < 0.4 ? curve25 : curve50).add(c.energy_to_stop_j, run.energy_j);
      (share < 0.4 ? linear25 : linear50).add(l.energy_to_stop_j, run.energy_j);
    }
  }
  auto accuracy = [used](const Tally& at25, const Tally& at50) {
    Accuracy a;
    a.runs = used;
    a.median_ape_25 = median_of(at25.ape);
    a.median_ape_50 = median_of(at50.ape);
    a.coverage_25 = used ? static_cast<double>(at25.covered) / used : std::nan("");
    a.coverage_50 = used ? static_cast<double>(at50.covered) / used : std::nan("");
    return a;
  };
  return {accuracy(curve25, curve50), accuracy(linear25, linear50)};
}

}  // namespace powertrain::predict

namespace powertrain::predict {

run::EpochForecast to_forecast(const Prediction& p) {
  run::EpochForecast f;
  f.method = p.method;
  f.stop_epoch_low = p.stop_epoch.low;
  f.stop_epoch = p.stop_epoch.mid;
  f.stop_epoch_high = p.stop_epoch.high;
  f.energy_low_j = p.energy_to_stop_j.low;
  f.energy_j = p.energy_to_stop_j.mid;
  f.energy_high_j = p.energy_to_stop_j.high;
  if (p.energy_to_target_j) f.target_energy_j = p.energy_to_target_j->mid;
  f.p_reach_target = p.p_reach_target;
  return f;
}

Forecaster::Forecaster(const run::RunConfig& config) : rule_(rule_settings(config)) {}

std::optional<run::EpochForecast> Forecaster::after(const run::EpochRecord& e) {
  seen_.push_back({e.epoch, e.val_metric, e.energy_j});
  try {
    return to_forecast(predict_curve(seen_, rule_, 0));
  } catch (const std::exception&) {
    return std::nullopt;  // e.g. epochs a workload numbered out of order: nothing to say
  }
}

}  // namespace powertrain::predict
