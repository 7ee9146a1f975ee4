// Searches on tiny synthetic data, in process: segments continue their
// setups' state, a stopped search resumes where its records end, and the
// result does not depend on where it was stopped.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "powertrain/error.h"
#include "powertrain/runner/runner.h"
#include "powertrain/store/store.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/search_view.h"
#include "powertrain/study/spec.h"
#include "powertrain/study/tables.h"
#include "temp_dir.h"

namespace ps = powertrain::study;
namespace pr = powertrain::runner;
namespace pst = powertrain::store;

namespace {

// 4 setups of tiny images; rungs at epochs 1, 2, 4.
const std::string kSearch = R"(
name = "tiny-search"
kind = "search"
[workload]
dataset = "synthetic-images"
[workload.data]
train_samples = 192
eval_samples = 64
image_size = 16
num_classes = 4
[training]
max_epochs = 4
patience = 2
min_delta = 0.0
target_metric = 0.99
threads = 1
[search]
batch_sizes = [16, 64]
learning_rates = [0.01, 0.1]
min_epochs = 1
eta = 2
)";

pr::RunOptions quiet() {
  pr::RunOptions o;
  o.log = nullptr;
  return o;
}

// What a finished search's trials hold: each segment's run numbers its epochs
// from where the earlier segment ended, and no segment ran twice.
void expect_segments_continue(const pst::Store& store, std::int64_t study_id) {
  for (const auto& r : store.results_of(study_id)) {
    ASSERT_TRUE(r.run.has_value()) << r.trial.key;
    EXPECT_EQ(r.trial.attempts, 1) << r.trial.key;
    const auto epochs = store.epochs_of(r.run->id);
    ASSERT_FALSE(epochs.empty());
    const auto& c = r.run->config;
    EXPECT_EQ(epochs.back().epoch, c.max_epochs) << "a segment that did not stop itself ends at its rung";
    if (r.trial.step == 0) {
      EXPECT_EQ(epochs.front().epoch, 1);
      EXPECT_TRUE(c.resume_from.empty());
    } else {
      EXPECT_GT(epochs.front().epoch, 1) << "continued, not restarted";
      EXPECT_FALSE(c.resume_from.empty());
    }
  }
}

TEST(SearchRunner, RunsRungsThatContinueTheirSetupsAndChooses) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db");
  const auto spec = ps::parse_spec(kSearch, "search.toml");
  const auto r = pr::run_search(spec, store, quiet());
  EXPECT_TRUE(r.decision.finished);
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.setups.size(), 4u);
  // Rung 0: 4 setups; rung 1: 2; rung 2: 1 (unless some stopped themselves).
  EXPECT_GE(r.segments, 5);
  EXPECT_LE(r.segments, 7);
  EXPECT_GT(r.spent_j, 0.0);
  expect_segments_continue(store, r.study_id);
  // The tables decide the same as the runner did.
  const auto study = store.study(r.study_id);
  auto outcomes = ps::outcomes_of(store.results_of(r.study_id));
  ps::attach_epochs(outcomes, store.results_of(r.study_id), [&](std::int64_t id) { return store.epochs_of(id); });
  const auto view = ps::search_view(study, outcomes);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->decision.chosen, r.decision.chosen);
  const auto tables = ps::study_tables(study, outcomes);
  bool has_setups = false;
  for (const auto& t : tables) has_setups = has_setups || t.name == "search_setups";
  EXPECT_TRUE(has_setups);
  // Run again: nothing to do.
  const auto again = pr::run_search(spec, store, quiet());
  EXPECT_EQ(again.segments, 0);
  EXPECT_TRUE(again.decision.finished);
}

TEST(SearchRunner, AStoppedSearchResumesToTheSameEnd) {
  powertrain::testing::TempDir dir;
  // Without a target the rungs rank by validation metric, which training on
  // one thread reproduces exactly; energies (the ranking with a target) differ
  // from run to run, so two searches would not be comparable.
  std::string text = kSearch;
  text.erase(text.find("target_metric = 0.99\n"), std::string("target_metric = 0.99\n").size());
  const auto spec = ps::parse_spec(text, "search.toml");
  ASSERT_FALSE(spec.base.target_metric.has_value());
  // Uninterrupted.
  auto whole_store = pst::Store::open(dir / "whole.db");
  const auto whole = pr::run_search(spec, whole_store, quiet());
  ASSERT_TRUE(whole.decision.finished);
  // Stopped after every segment, resumed each time by a new call (a new process would do the same).
  auto store = pst::Store::open(dir / "parts.db");
  int calls = 0, segments = 0;
  for (;; ++calls) {
    ASSERT_LT(calls, 20);
    auto o = quiet();
    o.max_trials = 1;
    const auto r = pr::run_search(spec, store, o);
    segments += r.segments;
    if (r.decision.finished) break;
    EXPECT_TRUE(r.stopped);
  }
  EXPECT_EQ(segments, whole.segments);
  const auto parts = pr::run_search(spec, store, quiet());
  ASSERT_EQ(parts.decision.verdicts.size(), whole.decision.verdicts.size());
  for (std::size_t i = 0; i < parts.decision.verdicts.size(); ++i) {
    EXPECT_EQ(parts.decision.verdicts[i].state, whole.decision.verdicts[i].state) << i;
    EXPECT_NEAR(parts.decision.verdicts[i].standing.best_metric, whole.decision.verdicts[i].standing.best_metric, 1e-6);
  }
  EXPECT_EQ(parts.decision.chosen, whole.decision.chosen);
  expect_segments_continue(store, parts.study_id);
}

TEST(SearchRunner, AMissingStateFailsTheSegmentWithItsPath) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db");
  const auto spec = ps::parse_spec(kSearch, "search.toml");
  // The first rung, then the saved states disappear.
  auto o = quiet();
  o.max_trials = 4;
  (void)pr::run_search(spec, store, o);
  std::filesystem::remove_all(ps::artifacts_dir(spec, dir / "r.db") / "search");
  o.max_trials = 1;
  const auto r = pr::run_search(spec, store, o);
  EXPECT_EQ(r.failed, 1);
  bool said = false;
  for (const auto& t : store.trials_of(r.study_id))
    said = said || (t.status == pst::TrialStatus::failed && t.message.find("state.pt") != std::string::npos &&
                    t.message.find("missing") != std::string::npos);
  EXPECT_TRUE(said);
}

// Issue 24: a continued segment that failed (its state gone) was never run
// again: the search said "finished", chose nothing, and stayed so for good.
TEST(SearchRunner, AFailedSegmentRunsAgainWhenTheSearchRunsAgain) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db");
  const auto spec = ps::parse_spec(kSearch, "search.toml");
  auto o = quiet();
  o.max_trials = 4;  // the first rung
  (void)pr::run_search(spec, store, o);
  const auto states = ps::artifacts_dir(spec, dir / "r.db") / "search";
  std::filesystem::copy(states, dir / "kept", std::filesystem::copy_options::recursive);
  std::filesystem::remove_all(states);

  const auto failing = pr::run_search(spec, store, quiet());
  EXPECT_GE(failing.failed, 1);
  EXPECT_FALSE(failing.decision.finished) << "a search with a failed segment to run again is not finished";
  int failed = 0;
  for (const auto& t : store.trials_of(failing.study_id)) failed += t.status == pst::TrialStatus::failed;
  EXPECT_GE(failed, 1);

  // The states are back: the next call runs the failed segments again and finishes.
  std::filesystem::copy(dir / "kept", states, std::filesystem::copy_options::recursive);
  const auto again = pr::run_search(spec, store, quiet());
  EXPECT_EQ(again.failed, 0);
  EXPECT_GE(again.segments, failed);
  EXPECT_TRUE(again.decision.finished);
  for (const auto& t : store.trials_of(again.study_id)) EXPECT_NE(t.status, pst::TrialStatus::failed) << t.key;
}

// Issue 24: a state file is loaded only when it is the one its setup's
// earlier segment saved.
TEST(SearchRunner, AStateThatIsNotItsSetupsIsNotLoaded) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db");
  const auto spec = ps::parse_spec(kSearch, "search.toml");
  auto o = quiet();
  o.max_trials = 4;
  (void)pr::run_search(spec, store, o);
  const auto folder = ps::artifacts_dir(spec, dir / "r.db") / "search";
  std::vector<std::filesystem::path> states;
  for (const auto& e : std::filesystem::directory_iterator(folder))
    if (e.path().string().size() > 9 && e.path().string().ends_with(".state.pt")) states.push_back(e.path());
  ASSERT_EQ(states.size(), 4u);
  for (const auto& p : states) ASSERT_TRUE(std::filesystem::exists(p.string() + ".segment.json")) << p;

  // Every state replaced by the next setup's, with its record: another setup's.
  const auto swap_round = [&](const std::string& suffix) {
    std::filesystem::copy_file(states[0].string() + suffix, dir / "first");
    for (std::size_t i = 0; i + 1 < states.size(); ++i)
      std::filesystem::copy_file(states[i + 1].string() + suffix, states[i].string() + suffix,
                                 std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(dir / "first", states.back().string() + suffix,
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::remove(dir / "first");
  };
  swap_round("");
  swap_round(".segment.json");
  o.max_trials = 1;
  auto r = pr::run_search(spec, store, o);
  EXPECT_EQ(r.failed, 1);
  bool said = false;
  for (const auto& t : store.trials_of(r.study_id))
    said = said || (t.status == pst::TrialStatus::failed && t.message.find("another setup") != std::string::npos);
  EXPECT_TRUE(said);

  // Only the records put back: the states themselves are not those they record.
  swap_round(".segment.json");
  swap_round(".segment.json");
  swap_round(".segment.json");
  r = pr::run_search(spec, store, o);
  EXPECT_EQ(r.failed, 1);
  said = false;
  for (const auto& t : store.trials_of(r.study_id))
    said = said || (t.status == pst::TrialStatus::failed && t.message.find("changed after") != std::string::npos);
  EXPECT_TRUE(said);
}

TEST(SearchRunner, AChangedSpaceIsAnotherSearch) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db");
  auto o = quiet();
  o.max_trials = 1;
  (void)pr::run_search(ps::parse_spec(kSearch, "search.toml"), store, o);
  std::string changed = kSearch;
  changed.replace(changed.find("[16, 64]"), 8, "[16, 32]");
  EXPECT_THROW((void)pr::run_search(ps::parse_spec(changed, "search.toml"), store, o), powertrain::ConfigError);
  // A larger energy budget is the same search, continued.
  std::string budget = kSearch + "budget_j = 1e9\n";
  EXPECT_NO_THROW((void)pr::run_search(ps::parse_spec(budget, "search.toml"), store, o));
}

}  // namespace
