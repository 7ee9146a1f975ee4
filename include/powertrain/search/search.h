#pragma once
// The search for an efficient setup without paying for the whole grid: a
// multi-fidelity strategy in the family of successive halving (Jamieson and
// Talwalkar 2016; Li et al., Hyperband and ASHA), ranked by energy to the
// target rather than by accuracy, with the early-stop rule of Zeus (You,
// Chung, Chowdhury 2023): a setup whose predicted energy to the target is
// more than beta times the best one measured is stopped. No torch, no store:
// the state of a search is what its setups did so far (Observed), handed in
// by the caller after every segment, so that a search resumes from its
// records alone.
//
//   auto setups = sample_setups(space, settings);           // the candidates, fixed by the seed
//   for (;;) {
//     Decision d = decide(settings, setups, observed_from_store(), spent_j);
//     if (d.finished) break;
//     run(d.next.front());                                   // one segment, then decide again
//   }
//
// A segment trains one setup from epoch from_epoch to to_epoch (a rung's
// epoch budget), continuing the state the previous segment of that setup
// saved. Rungs: min_epochs, min_epochs * eta, ... up to max_epochs.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/predict/predict.h"

namespace powertrain::search {

/// One point of the search space.
struct Setup {
  std::int64_t batch_size = 0;
  double learning_rate = 0.0;
  int threads = 0;  ///< 0: the spec's own
  friend bool operator==(const Setup&, const Setup&) = default;
};
/// "bs=64 lr=0.01" (and " threads=2" when set).
std::string label(const Setup& s);

/// What is searched over. Batch sizes and threads are lists (a range of batch
/// sizes is expanded to its powers of two by the spec); learning rates are a
/// list or, when the list is empty, a log-uniform range.
struct Space {
  std::vector<std::int64_t> batch_sizes;
  std::vector<double> learning_rates;
  double lr_min = 0.0, lr_max = 0.0;  ///< log-uniform range, used when learning_rates is empty
  std::vector<int> threads;           ///< empty: the spec's threads
  /// Every dimension is a list: the space is a grid of size() setups.
  bool finite() const { return !learning_rates.empty(); }
  std::int64_t size() const;  ///< setups of a finite space
};

/// How a search spends its budget ([search] in a spec; docs/search.md).
struct Settings {
  /// "halving": successive halving over rungs of epochs (the multi-fidelity
  /// search); "random": setups in random order, each trained to its end (the
  /// baseline at the same budget).
  std::string strategy = "halving";
  int setups = 16;                  ///< setups sampled: the budget in trials
  std::optional<double> budget_j;   ///< no segment starts once the search spent this much
  int min_epochs = 1;               ///< epochs of the first rung
  double eta = 4.0;                 ///< each rung keeps the best 1/eta of the setups it had (ASHA's choice)
  double beta = 2.0;                ///< Zeus: stop a setup predicted to cost more than beta x the best
  std::uint64_t seed = 0;           ///< which setups are sampled, and in what order
  /// The convergence rule of every setup (training.*): max_epochs is the last rung.
  predict::RuleSettings rule;
  /// Without a target: the setups within this of the best metric qualify.
  double metric_tolerance = 0.01;
  /// The choice: energies within this fraction of the least one are a tie
  /// (the noise of one measurement on a shared machine), decided by the work
  /// done (fewer epochs to the target), then the metric, which are the same
  /// in every run of a deterministic training.
  double energy_tie = 0.05;
};

/// Throws ConfigError (one line, naming the key) for settings out of range.
void validate(const Settings& s, const Space& space);

/// The rungs' epoch budgets: min_epochs, min_epochs*eta (rounded up, at
/// least one more), ..., ending at rule.max_epochs. "random": {max_epochs}.
std::vector<int> rungs(const Settings& s);

/// The setups a search considers, in the order it starts them: a finite space
/// shuffled by the seed (its first `setups`), or `setups` draws from a range
/// (learning rates log-uniform, rounded to three significant digits; batch
/// sizes and threads uniform over their lists), duplicates drawn again.
/// Deterministic for a seed on every platform.
/// A range that holds fewer than twice `setups` distinct setups is taken
/// whole, shuffled by the seed, and cut to `setups`. Linear in the setups.
std::vector<Setup> sample_setups(const Space& space, const Settings& s);

/// How many distinct setups the space holds (a range: its
/// three-significant-digit rates, and its ends, times the lists); 0 for a
/// space validate() refuses.
std::int64_t capacity(const Space& space);

/// A note when the space holds fewer setups than `s.setups` asks for.
std::optional<std::string> smaller_than_asked(const Space& space, const Settings& s);

/// Where a setup's latest segment stands.
enum class SegmentState {
  none,         ///< no segment planned yet
  pending,      ///< planned, not run (or interrupted, failed: to be run again)
  running,
  paused,       ///< ran to its rung's last epoch; can be continued
  converged,    ///< the convergence rule stopped it (early stopping): it is complete
  max_epochs,   ///< it ran to training.max_epochs: complete
  diverged,
  failed,       ///< failed in the current call (lost to it); a stored failed segment is pending: it runs again
  stopped,      ///< stopped inside its segment by Zeus's rule (EpochRule): complete, not continued
};

/// What a setup did so far: every epoch of its segments in order (1..n) and
/// the state of its latest segment.
struct Observed {
  Setup setup;
  int rung = -1;  ///< index of its latest planned segment's rung (-1: none)
  SegmentState state = SegmentState::none;
  std::vector<predict::CurvePoint> epochs;
  std::string message;  ///< why its latest segment ended (a stopped one: the rule's reason)
  /// Its latest segment failed in an earlier call and is pending again: it
  /// runs again, and until it has a result the setup cannot be chosen.
  bool failed_before = false;
};

/// How a setup is judged now.
struct Standing {
  /// reached (the target, measured), predicted (energy to target
  /// extrapolated), unlikely (not expected to reach it within max_epochs),
  /// or, without a target: metric (ranked by its best validation metric).
  std::string basis;
  double cost_j = 0.0;      ///< energy to the target, measured or predicted (inf: not expected)
  double best_metric = 0.0; ///< best validation metric so far
  int target_epoch = 0;     ///< first epoch at or above the target (0: not yet)
  double spent_j = 0.0;     ///< energy of its epochs so far
};
/// How far a setup is judged to be from the target, from its curve so far:
/// measured once reached; with at least predict::kMinCurveEpochs epochs, the
/// curve ensemble's median energy to the target when at least half its
/// futures reach it; with fewer, the last epochs' metric gain extrapolated
/// linearly (the curves have nothing to fit yet).
Standing standing(const Settings& s, const std::vector<predict::CurvePoint>& epochs);

/// Zeus's rule inside a segment, after every epoch: a setup whose predicted
/// energy to the target is more than beta times the best measured one
/// (best_j, fixed when the segment starts) is stopped there; so is one the
/// curve ensemble (6 epochs or more) does not expect to reach the target at
/// all. Inactive without a target or before any setup reached it.
class EpochRule {
 public:
  EpochRule(const Settings& s, std::vector<predict::CurvePoint> prior, double best_j);
  /// The reason to stop after this epoch, or nullopt.
  std::optional<std::string> after(const predict::CurvePoint& epoch);
  /// Records an epoch the rule is not asked about (the run ends there anyway).
  void add(const predict::CurvePoint& epoch);

 private:
  Settings settings_;
  std::vector<predict::CurvePoint> curve_;
  double best_j_;
};

/// The least measured energy to the target among `observed` (inf: none yet).
double best_measured_j(const Settings& s, const std::vector<Observed>& observed);

/// One segment to run: the setup's epochs from_epoch..to_epoch.
struct Segment {
  Setup setup;
  int rung = 0;
  int from_epoch = 1;
  int to_epoch = 1;
};

/// What became of a setup, for the output.
struct Verdict {
  Setup setup;
  std::string state;   ///< running, waiting, continued, stopped, reached target, converged, max epochs, diverged, failed
  std::string reason;  ///< why it was stopped, or how it ended
  Standing standing;
};

struct Decision {
  /// Segments that may run now, in order (the whole next rung once the
  /// previous one is in). Empty with finished false: wait for running ones.
  std::vector<Segment> next;
  bool finished = false;      ///< nothing more to run
  bool budget_spent = false;  ///< budget_j stopped it
  std::vector<Verdict> verdicts;  ///< one per sampled setup, in sample order
  /// Index (into the sampled setups) of the chosen setup: with a target, the
  /// one with the least measured energy to it; without, the cheapest to
  /// convergence within metric_tolerance of the best complete one. Setups
  /// within Settings::energy_tie of that energy are tied: the one that reached
  /// the target in the fewest epochs, then the best metric, then the least
  /// energy is chosen.
  std::optional<std::size_t> chosen;
};

/// The next step of the search from what its setups did so far. `observed`
/// holds an entry per sampled setup that has a segment (others count as not
/// started); `spent_j` is the search's energy so far (every segment, failed
/// and interrupted attempts included).
Decision decide(const Settings& s, const std::vector<Setup>& sampled, const std::vector<Observed>& observed,
                double spent_j);

/// A setup's whole recorded run (a grid's trial), for replays.
struct RecordedSetup {
  Setup setup;
  std::vector<predict::CurvePoint> epochs;  ///< 1..n as the run recorded them
  SegmentState end = SegmentState::converged;  ///< converged, max_epochs, diverged or failed
};

/// A search replayed on recorded runs: a segment reveals the recorded epochs
/// (the continued runs are the same runs), its energy is theirs.
struct Replay {
  Decision last;
  double spent_j = 0.0;
  int segments = 0;
  int setups_started = 0, setups_continued = 0;
};
Replay replay(const Settings& s, const Space& space, const std::vector<RecordedSetup>& runs);

}  // namespace powertrain::search
