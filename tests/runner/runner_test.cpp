// End-to-end studies on tiny synthetic data, in process: grid, pretraining,
// multitask, resuming after a stop, a dead process and a changed spec.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>

#include "powertrain/error.h"
#include "powertrain/store/store.h"
#include "powertrain/study/analysis.h"
#include "powertrain/runner/runner.h"
#include "powertrain/study/spec.h"
#include "powertrain/study/tables.h"
#include "temp_dir.h"

namespace ps = powertrain::study;
namespace pr = powertrain::runner;
namespace pst = powertrain::store;
using pst::TrialStatus;

namespace {

// A few hundred 16x16 images of 4 classes; an epoch takes a fraction of a second.
const std::string kTinyData = R"(
[workload]
dataset = "synthetic-images"
[workload.data]
train_samples = 192
eval_samples = 64
image_size = 16
num_classes = 4
[training]
max_epochs = 2
patience = 1
threads = 1
)";

pr::RunOptions quiet() {
  pr::RunOptions o;
  o.log = nullptr;
  return o;
}

/// Every trial of the study has a result, keys are unique, and each trial's run
/// holds exactly its epochs, numbered 1..N.
void expect_complete(const pst::Store& store, std::int64_t study_id, std::size_t trials) {
  const auto results = store.results_of(study_id);
  ASSERT_EQ(results.size(), trials);
  std::set<std::string> keys;
  for (const auto& r : results) {
    keys.insert(r.trial.key);
    EXPECT_TRUE(pst::is_done(r.trial.status)) << r.trial.key << ": " << pst::to_string(r.trial.status) << " " << r.trial.message;
    ASSERT_TRUE(r.run.has_value());
    const auto epochs = store.epochs_of(r.run->id);
    EXPECT_EQ(static_cast<int>(epochs.size()), r.run->summary.epochs);
    for (std::size_t i = 0; i < epochs.size(); ++i) EXPECT_EQ(epochs[i].epoch, static_cast<int>(i) + 1);
  }
  EXPECT_EQ(keys.size(), trials);
}

std::string grid_spec(const std::string& name, const std::string& grid = "batch_sizes = [32, 64]\nlearning_rates = [0.01, 0.05]\n") {
  return "name = \"" + name + "\"\n" + kTinyData + "[grid]\n" + grid;
}

}  // namespace

TEST(Runner, GridStudyRunsEveryConfigurationAndResumesWithNothingToDo) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db", {.durability = pst::Durability::normal});
  const auto spec = ps::parse_spec(grid_spec("grid"), "grid.toml", "grid");
  const auto r = pr::run_study(spec, store, quiet());
  EXPECT_TRUE(r.created);
  EXPECT_EQ(r.planned, 4);
  EXPECT_EQ(r.completed + r.diverged, 4);
  EXPECT_EQ(r.failed, 0);
  EXPECT_FALSE(r.stopped);
  expect_complete(store, r.study_id, 4);

  const auto outcomes = ps::outcomes_of(store.results_of(r.study_id));
  for (const auto& o : outcomes) {
    EXPECT_GT(o.energy_j, 0.0);
    EXPECT_GT(o.duration_s, 0.0);
    EXPECT_FALSE(std::isnan(o.metric));
  }
  const auto g = ps::analyze_grid(outcomes);
  EXPECT_EQ(g.configs.size(), 4u);
  EXPECT_TRUE(g.best.has_value());
  EXPECT_EQ(ps::study_tables(store.study(r.study_id), outcomes).size(), 5u);

  const auto runs_before = store.list_runs().size();
  const auto again = pr::run_study(spec, store, quiet());
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.skipped, 4);
  EXPECT_EQ(again.completed, 0);
  EXPECT_EQ(store.list_runs().size(), runs_before) << "a finished study trains nothing again";
}

TEST(Runner, StopFlagInterruptsTheRunningTrialAndTheNextRunFinishesIt) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db", {.durability = pst::Durability::normal});
  const auto spec = ps::parse_spec(grid_spec("stop"), "stop.toml", "grid");
  std::atomic<bool> stop{false};
  int started = 0;
  auto o = quiet();
  o.stop = &stop;
  o.on_trial_start = [&](const ps::PlannedTrial&, std::int64_t) {
    if (++started == 2) stop = true;  // the second trial is stopped at its first batch
  };
  const auto r = pr::run_study(spec, store, o);
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.completed + r.diverged, 1);
  const auto trials = store.trials_of(r.study_id);
  ASSERT_EQ(trials.size(), 4u);
  EXPECT_TRUE(pst::is_done(trials[0].status));
  EXPECT_EQ(trials[1].status, TrialStatus::interrupted);
  EXPECT_EQ(trials[2].status, TrialStatus::pending);

  const auto again = pr::run_study(spec, store, quiet());
  EXPECT_EQ(again.skipped, 1);
  EXPECT_EQ(again.completed + again.diverged, 3);
  expect_complete(store, r.study_id, 4);
  const auto t1 = store.trial(trials[1].id);
  EXPECT_EQ(t1.attempts, 2);
  EXPECT_EQ(store.trial(trials[0].id).attempts, 1) << "a finished trial is never run twice";
}

TEST(Runner, TrialsLeftRunningByADeadProcessAreRunAgain) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db", {.durability = pst::Durability::normal});
  const auto spec = ps::parse_spec(grid_spec("dead", "batch_sizes = [32]\nlearning_rates = [0.01, 0.05]\n"), "d.toml", "grid");
  auto o = quiet();
  o.max_trials = 0;  // create the study and its trials, run none
  const auto r0 = pr::run_study(spec, store, o);
  EXPECT_TRUE(r0.stopped);
  // A process claims the first trial and dies.
  const auto trials = store.trials_of(r0.study_id);
  ASSERT_EQ(trials.size(), 2u);
  store.start_trial(trials[0].id, trials[0].config, {});
  const auto r = pr::run_study(spec, store, quiet());
  EXPECT_EQ(r.reset, 1);
  EXPECT_EQ(r.completed + r.diverged, 2);
  expect_complete(store, r.study_id, 2);
  EXPECT_EQ(store.trial(trials[0].id).attempts, 2);
}

TEST(Runner, AnotherExperimentUnderTheSameNameIsRefused) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db", {.durability = pst::Durability::normal});
  auto o = quiet();
  o.max_trials = 0;
  pr::run_study(ps::parse_spec(grid_spec("same", "batch_sizes = [32]\nlearning_rates = [0.01]\n"), "a.toml", "grid"), store, o);
  // Comments and execution settings may change...
  EXPECT_NO_THROW(pr::run_study(
      ps::parse_spec("# note\n" + grid_spec("same", "batch_sizes = [32]\nlearning_rates = [1e-2]\n") + "[execution]\ncooldown_s = 0\n",
                     "b.toml", "grid"),
      store, o));
  // ...the trials may not.
  try {
    pr::run_study(ps::parse_spec(grid_spec("same", "batch_sizes = [32, 64]\nlearning_rates = [0.01]\n"), "c.toml", "grid"),
                  store, o);
    FAIL() << "expected ConfigError";
  } catch (const powertrain::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("study 'same'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("another name"), std::string::npos) << e.what();
  }
}

TEST(Runner, BadDataSettingsFailBeforeAnythingIsWritten) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db", {.durability = pst::Durability::normal});
  auto spec = ps::parse_spec(grid_spec("bad"), "bad.toml", "grid");
  spec.base.model = "no-such-model";
  EXPECT_THROW(pr::run_study(spec, store, quiet()), powertrain::ConfigError);
  EXPECT_TRUE(store.list_studies().empty());
}

TEST(Runner, PretrainStudyReusesTheEncoderAndComputesBreakEven) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db", {.durability = pst::Durability::normal});
  const auto spec = ps::parse_spec("name = \"pre\"\nkind = \"pretrain\"\n" + kTinyData + R"(
batch_size = 32
learning_rate = 0.05
[pretrain]
source = { classes = [0, 1] }
steps = [ { classes = [2, 3] } ]
)",
                                   "pre.toml", "pretrain");
  const auto r = pr::run_study(spec, store, quiet());
  EXPECT_EQ(r.failed, 0);
  expect_complete(store, r.study_id, 4);
  EXPECT_TRUE(std::filesystem::exists(dir / "r.db.artifacts/pre/pretrain-seed0.encoder.pt"));
  const auto results = store.results_of(r.study_id);
  for (const auto& t : results) {
    if (t.trial.phase == "finetune" || t.trial.phase == "frozen") {
      EXPECT_NE(t.run->config.init_encoder.find("pretrain-seed0.encoder.pt"), std::string::npos);
      EXPECT_EQ(t.run->config.freeze_encoder, t.trial.phase == "frozen");
    }
  }
  const auto a = ps::analyze_pretrain(ps::outcomes_of(results));
  EXPECT_EQ(a.pretrain.results, 1);
  ASSERT_EQ(a.steps.size(), 1u);
  EXPECT_EQ(a.steps[0].scratch.results, 1);
  EXPECT_EQ(a.steps[0].finetune.results, 1);
  EXPECT_EQ(a.steps[0].frozen.results, 1);
  EXPECT_FALSE(std::isnan(a.steps[0].finetune_saving_pct));
  EXPECT_GT(a.pretrain.energy_j.mean, 0.0);
  // Either it pays off after N* reuses or it never does; both are reported.
  if (a.finetune.pays_off()) {
    EXPECT_GE(*a.finetune.reuses, 0.0);
  }
  EXPECT_EQ(ps::pretrain_tables(a)[1].rows.size(), 2u);
}

TEST(Runner, DivergedPretrainingIsAResultAndItsReusesFailWithoutStoppingTheStudy) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db", {.durability = pst::Durability::normal});
  const auto spec = ps::parse_spec("name = \"boom\"\nkind = \"pretrain\"\n" + kTinyData + R"(
batch_size = 32
learning_rate = 100000.0
[pretrain]
source = { classes = [0, 1] }
steps = [ { classes = [2, 3] } ]
)",
                                   "boom.toml", "pretrain");
  const auto r = pr::run_study(spec, store, quiet());
  EXPECT_FALSE(r.stopped);
  const auto trials = store.trials_of(r.study_id);
  ASSERT_EQ(trials.size(), 4u);
  EXPECT_EQ(trials[0].status, TrialStatus::diverged);
  EXPECT_TRUE(pst::is_done(trials[1].status)) << "scratch runs whatever the pretraining did";
  EXPECT_EQ(trials[2].status, TrialStatus::failed);
  EXPECT_NE(trials[2].message.find("no usable encoder"), std::string::npos) << trials[2].message;
  EXPECT_EQ(trials[3].status, TrialStatus::failed);
  EXPECT_EQ(r.failed, 2);
}

TEST(Runner, MultitaskStudyRecordsEveryTaskMetricOfTheSharedModel) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db", {.durability = pst::Durability::normal});
  const auto spec = ps::parse_spec("name = \"multi\"\nkind = \"multitask\"\n" + kTinyData + R"(
batch_size = 32
learning_rate = 0.05
[multitask]
tasks = ["class_0", "pair=1+2"]
)",
                                   "multi.toml", "multitask");
  const auto r = pr::run_study(spec, store, quiet());
  EXPECT_EQ(r.failed, 0);
  expect_complete(store, r.study_id, 3);
  const auto results = store.results_of(r.study_id);
  for (const auto& t : results) {
    if (t.trial.phase != ps::kPhaseMulti) continue;
    ASSERT_TRUE(t.run);
    EXPECT_EQ(t.run->summary.test_task_metrics.size(), 2u);  // in its own column,
    EXPECT_EQ(t.trial.message.find("task_metrics"), std::string::npos);  // not in the message
  }
  const auto a = ps::analyze_multitask(ps::outcomes_of(results));
  ASSERT_EQ(a.tasks.size(), 2u);
  EXPECT_EQ(a.tasks[0].task, "class_0");
  EXPECT_EQ(a.tasks[1].task, "pair=1+2");
  for (const auto& t : a.tasks) {
    EXPECT_EQ(t.single.results, 1);
    EXPECT_EQ(t.multi_metric.n, 1) << t.task;
    EXPECT_GE(t.multi_metric.mean, 0.0);
    EXPECT_LE(t.multi_metric.mean, 1.0);
  }
  EXPECT_GT(a.single_energy_j, 0.0);
  EXPECT_GT(a.multi_energy_j, 0.0);
  EXPECT_FALSE(std::isnan(a.saving_pct));
}

TEST(Runner, CooldownAndWarmupRunBeforeTrials) {
  powertrain::testing::TempDir dir;
  auto store = pst::Store::open(dir / "r.db", {.durability = pst::Durability::normal});
  const auto spec = ps::parse_spec(grid_spec("warm", "batch_sizes = [64]\nlearning_rates = [0.01, 0.05]\n") +
                                       "[execution]\ncooldown_s = 0.3\nwarmup_s = 0.3\nwarmup_load = \"cpu\"\n",
                                   "w.toml", "grid");
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = pr::run_study(spec, store, quiet());
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.completed + r.diverged, 2);
  // One cool-down (before the second trial) and two warm-ups, none of them measured.
  EXPECT_GE(elapsed, 0.3 + 2 * 0.3);
  double trained = 0.0;
  for (const auto& t : store.results_of(r.study_id)) trained += t.run->summary.duration_s;
  EXPECT_LT(trained, elapsed - 0.8);
}
