// Cost of one forecast (predict::predict_curve), the work the run session
// does after every epoch, by epochs seen; the linear rule beside it.
//   build/bench/bench_predict --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "powertrain/predict/predict.h"

namespace {

using namespace powertrain::predict;

// A noisy power-law learning curve of `n` epochs, 100 J each (with noise).
std::vector<CurvePoint> curve(int n) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 0.004);
  std::vector<CurvePoint> v;
  for (int e = 1; e <= n; ++e) v.push_back({e, 0.95 - 0.6 * std::pow(e, -0.5) + noise(rng), 100.0 + 5 * noise(rng)});
  return v;
}

void BM_PredictCurve(benchmark::State& state) {
  const auto seen = curve(static_cast<int>(state.range(0)));
  const RuleSettings rule{200, 150, 1e-3, 0.9};  // the run goes on: every future is simulated
  for (auto _ : state) benchmark::DoNotOptimize(predict_curve(seen, rule, 0).energy_to_stop_j.mid);
}
BENCHMARK(BM_PredictCurve)->Arg(10)->Arg(50)->Arg(100)->Unit(benchmark::kMillisecond);

void BM_PredictLinear(benchmark::State& state) {
  const auto seen = curve(static_cast<int>(state.range(0)));
  const RuleSettings rule{200, 150, 1e-3, 0.9};
  for (auto _ : state) benchmark::DoNotOptimize(predict_linear(seen, rule).energy_to_stop_j.mid);
}
BENCHMARK(BM_PredictLinear)->Arg(100)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
