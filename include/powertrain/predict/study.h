#pragma once
// Forecasts that use what a study knows: the other runs of the same study
// (finished and running) as a prior for a run with few epochs, a backtest on
// the study's finished runs that picks the method with the lowest median
// error (the linear rule among them), and 80% intervals widened or narrowed
// by a conformal factor from that backtest. Pure logic over plain structs: the
// session and `results` gather the study's runs from the store. No torch.
//
//   std::vector<PeerRun> peers = ...;          // the study's other runs
//   StudyForecaster f(config, {config.batch_size, ""}, peers, finished);
//   Prediction p = f.predict(seen);            // after each epoch of the run
//   // p.method: "study prior", "curve-ensemble", "linear", ... and how it was chosen
//
// The study prior (predict_prior): every peer's curve, shifted to meet the
// run's own last validation metric, continues the run; each continuation goes
// through the run's convergence rule from its state after the epochs seen, so
// it stops where the rule would. Peers whose curve was near the run's so far
// weigh more. The energy of an epoch to come is the run's own level (its
// epochs after the first) shrunk towards that of the peers with its batch size
// (the peers' epoch-1 over later-epoch ratio corrects a run that has seen only
// its first epoch); the run's own epochs weigh in as they come.
#include <array>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/predict/predict.h"

namespace powertrain::predict {

/// What makes two runs' epochs cost alike: the batch size and the part of the
/// study they belong to (e.g. "finetune/task-a": a frozen encoder's epoch is
/// cheaper than pretraining's). The energy per epoch of peers with the same
/// traits informs a run's; their curves inform it whatever their traits.
struct RunTraits {
  std::int64_t batch_size = 0;  ///< 0: unknown (matches no peer)
  std::string group;
  bool operator==(const RunTraits&) const = default;
};

/// Another run of the same study.
struct PeerRun {
  std::vector<CurvePoint> epochs;  ///< epochs 1..m in order
  RunTraits traits;
  bool finished = false;           ///< ended (converged, max epochs, diverged); false: still running
};

/// Where a peer's curve takes over from the run's.
enum class Alignment {
  /// Its epoch n continues the run's epoch n (the run has trained as long as the peer had).
  epoch,
  /// Its epoch whose metric is nearest the run's last continues the run (the
  /// run has got as far as the peer had): a slow run follows a peer's curve
  /// from where the peer was at that level, however many epochs the peer took.
  level,
};

/// The study prior after the epochs `seen` (at least one) of a run with this
/// rule and batch size. Method "study prior" ("study prior by level" with
/// Alignment::level); "stopped" when the rule has stopped the run; nullopt
/// when no peer gives a continuation (none finished and none running long
/// enough). Deterministic.
std::optional<Prediction> predict_prior(const std::vector<CurvePoint>& seen, const RuleSettings& rule,
                                        const RunTraits& traits, const std::vector<PeerRun>& peers,
                                        Alignment alignment = Alignment::epoch);

/// The earliest stop the rule allows: no epoch to come improves on the best by
/// more than min_delta, so the rule stops the run once its patience runs out
/// (max_epochs without early stopping). The energy of the epochs to come is the
/// prior's (the run's own level shrunk towards its peers'). Method "earliest
/// stop" ("stopped" when the rule has stopped the run); the intervals are the
/// point itself (the backtest calibrates them). Where the metric is noisy
/// around a plateau, as on small validation sets, the rule mostly stops there.
Prediction predict_earliest(const std::vector<CurvePoint>& seen, const RuleSettings& rule, const RunTraits& traits,
                            const std::vector<PeerRun>& peers);

/// The forecast methods a backtest compares.
enum class Method {
  curve,    ///< the curve forecast: the study prior below kMinCurveEpochs epochs (the bound without peers), the curve ensemble from there
  prior,    ///< the study prior at every epoch (the curve forecast where no peer continues the run)
  level,    ///< the study prior with its peers aligned by level (Alignment::level), else as `prior`
  earliest, ///< the earliest stop the rule allows (predict_earliest)
  linear,   ///< CarbonTracker's rule (predict_linear)
};
inline constexpr Method kMethods[] = {Method::curve, Method::prior, Method::level, Method::earliest, Method::linear};
inline constexpr std::size_t kMethodCount = std::size(kMethods);
std::string to_string(Method m);

/// A forecast by one method, its interval as the method gives it (not calibrated).
Prediction predict_with(Method m, const std::vector<CurvePoint>& seen, const RuleSettings& rule,
                        const RunTraits& traits, const std::vector<PeerRun>& peers);

/// A finished run of the study, for the backtest.
struct BacktestRun {
  std::vector<CurvePoint> epochs;  ///< epochs 1..n: the whole run
  RuleSettings rule;
  RunTraits traits;
  double energy_j = 0.0;           ///< its total energy
};

/// Backtest points per run: the forecasts after these shares of its epochs
/// (rounded, at least 1, fewer than all), the points `results` reports.
inline constexpr double kBacktestShares[] = {0.25, 0.5};
/// Finished runs a backtest needs before it chooses a method and calibrates.
inline constexpr int kMinBacktestRuns = 3;

/// How each method did on a study's finished runs, and the choice.
struct Backtest {
  int runs = 0;                      ///< finished runs of at least 2 epochs that were replayed
  int points = 0;                    ///< forecasts compared per method
  /// Each method's median |predicted - actual| / actual of the total energy,
  /// indexed by Method (median_ape[static_cast<std::size_t>(Method::linear)]).
  std::array<double, kMethodCount> median_ape{};
  double ape(Method m) const { return median_ape[static_cast<std::size_t>(m)]; }
  Method chosen = Method::curve;     ///< lowest median error; on a tie the linear rule, then in kMethods' order
  /// The chosen method's residuals (actual - median) / (median - energy
  /// spent), in units of the energy it said was still to come, at the
  /// backtest's 10th and 90th percentiles (split-conformal ranks): the
  /// calibrated 80% interval is median + [low, high] x that energy. low <= 0
  /// <= high (the interval holds its median); 0 when uncalibrated.
  double residual_low = 0.0;
  double residual_high = 0.0;
  bool calibrated = false;           ///< at least kMinBacktestRuns runs: chosen and calibrated
};

/// Replays every run's forecast after kBacktestShares of its epochs with each
/// method, the run's peers being the other runs given (leave one out), and
/// chooses. Runs of fewer than 2 epochs or without a positive energy are left
/// out, and so is run `leave_out` when set (the backtest a run's own forecast
/// would have had). `cache`, when given, keeps the curve ensemble's forecasts
/// (run index, epochs seen), which do not depend on the peers, between calls
/// over the same runs.
struct CurveCache {
  std::map<std::pair<std::size_t, int>, Prediction> at;
};
Backtest backtest(const std::vector<BacktestRun>& runs, std::optional<std::size_t> leave_out = std::nullopt,
                  CurveCache* cache = nullptr);

/// The backtest's median errors in words, e.g. "curve 20.1%, study prior
/// 15.3%, ..., linear rule 46%", for the notes of `results`.
std::string describe_errors(const Backtest& bt);
/// What the method labels of the forecasts mean, for the notes of `results`.
std::string method_glossary();

/// Peers of a run from the backtest runs (all finished), leaving out `self`.
std::vector<PeerRun> peers_of(const std::vector<BacktestRun>& runs, std::optional<std::size_t> self);

/// The chosen method's forecast with its energy interval calibrated by the
/// backtest: median + [residual_low, residual_high] x the energy it predicts is
/// still to come, the low end never below the energy already spent. The method label says how it was chosen, e.g. "study prior,
/// by backtest of 12 runs"; without a calibrated backtest the curve forecast,
/// labelled as predict_with gives it.
Prediction predict_in_study(const std::vector<CurvePoint>& seen, const RuleSettings& rule, const RunTraits& traits,
                            const std::vector<PeerRun>& peers, const Backtest& bt);

/// The run session's forecaster inside a study: the study's other runs and
/// their backtest are fixed when the run starts; each epoch of the run then
/// gets predict_in_study.
class StudyForecaster {
 public:
  /// peers: the study's other runs; finished: those of them for the backtest.
  StudyForecaster(const run::RunConfig& config, RunTraits traits, std::vector<PeerRun> peers,
                  const std::vector<BacktestRun>& finished);
  std::optional<run::EpochForecast> after(const run::EpochRecord& epoch);
  void add(const run::EpochRecord& epoch) { seen_.push_back({epoch.epoch, epoch.val_metric, epoch.energy_j}); }
  const Backtest& backtest() const { return backtest_; }

 private:
  RuleSettings rule_;
  RunTraits traits_;
  std::vector<PeerRun> peers_;
  Backtest backtest_;
  std::vector<CurvePoint> seen_;
};

}  // namespace powertrain::predict
