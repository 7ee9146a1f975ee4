// The imports aggregate: runs of result files (other powertrain databases)
// taken in once, duplicates kept apart, runs their task left running, files of
// another schema, Slurm tasks and the cluster's energy.
#include "powertrain/store/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "samples.h"
#include "store_fixture.h"

namespace powertrain::store {
namespace {

using powertrain::testing::converged_summary;
using powertrain::testing::environment_on;
using powertrain::testing::sample_config;
using powertrain::testing::sample_epoch;
using powertrain::testing::trial_spec;
using ::testing::HasSubstr;

class StoreImports : public powertrain::testing::StoreFixture {
 protected:
  std::int64_t study = store.create_study("s", "grid", "", {});
  std::int64_t trial = store.upsert_trial(study, trial_spec("a", sample_config()));

  // A result file as a Slurm task leaves it: one run of two epochs with a
  // timeline, finished unless `finish` is false. Returns the run's id there.
  std::int64_t result_file(const std::string& name, bool finish = true) {
    auto src = Store::open(dir / name, {.durability = Durability::normal, .wal = false});
    src.begin_run(sample_config(), environment_on("other"));  // ids differ from this database's
    const auto run = src.begin_run(sample_config(), environment_on("node-3"));
    src.add_epoch(run, sample_epoch(1));
    src.add_epoch(run, sample_epoch(2));
    std::vector<energy::TimelineSample> samples(2);
    samples[0].t_ns = 1'000'000'000;
    samples[0].power_w = {150.0};
    samples[1].t_ns = 2'000'000'000;
    samples[1].power_w = {160.0};
    src.add_timeline(run, std::vector<std::string>{"gpu0"}, samples, 0);
    if (finish) src.finish_run(run, converged_summary());
    return run;
  }
  ImportRequest request(const std::string& name, std::int64_t source_run) const {
    ImportRequest r;
    r.source_db = dir / name;
    r.source = name;
    r.source_run_id = source_run;
    r.trial_id = trial;
    r.slurm_job = "1234_5";
    r.node = "node-3";
    return r;
  }
};

TEST_F(StoreImports, ARunIsTakenInWholeAndOnlyOnce) {
  const auto source_run = result_file("task-5.db");
  EXPECT_FALSE(store.imported("task-5.db"));
  EXPECT_EQ(store.import_run(request("task-5.db", source_run)), ImportOutcome::imported);
  EXPECT_TRUE(store.imported("task-5.db"));

  const auto t = store.trial(trial);
  EXPECT_EQ(t.status, TrialStatus::converged);
  EXPECT_EQ(t.attempts, 1);
  ASSERT_TRUE(t.run_id);
  const auto run = store.run(*t.run_id);
  EXPECT_EQ(run.environment.host, "node-3");
  EXPECT_EQ(run.summary.energy_j, converged_summary().energy_j);
  EXPECT_EQ(run.slurm_job, "1234_5");
  const auto epochs = store.epochs_of(run.id);
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_EQ(epochs[1].energy_j, sample_epoch(2).energy_j);
  EXPECT_EQ(epochs[1].channels.size(), sample_epoch(2).channels.size());
  const auto timeline = store.timeline_of(run.id);
  ASSERT_EQ(timeline.size(), 1u);
  EXPECT_EQ(timeline[0].power_w, (std::vector<double>{150.0, 160.0}));
  ASSERT_EQ(store.results_of(study).at(0).run->id, run.id);

  const auto imports = store.imports_of(study);
  ASSERT_EQ(imports.size(), 1u);
  EXPECT_EQ(imports[0].source, "task-5.db");
  EXPECT_EQ(imports[0].trial_id, trial);
  EXPECT_EQ(imports[0].run_id, run.id);
  EXPECT_EQ(imports[0].outcome, ImportOutcome::imported);
  EXPECT_EQ(imports[0].node, "node-3");
  EXPECT_FALSE(imports[0].imported_at.empty());

  // The same file again changes nothing.
  EXPECT_EQ(store.import_run(request("task-5.db", source_run)), ImportOutcome::already);
  EXPECT_EQ(store.list_runs().size(), 1u);
  EXPECT_EQ(store.trial(trial).attempts, 1);
  EXPECT_EQ(store.imports_of(study).size(), 1u);
}

TEST_F(StoreImports, ATrialWithAResultKeepsIt) {
  store.import_run(request("task-1.db", result_file("task-1.db")));
  const auto kept = store.trial(trial).run_id;
  EXPECT_EQ(store.import_run(request("task-2.db", result_file("task-2.db"))), ImportOutcome::duplicate);
  EXPECT_EQ(store.trial(trial).run_id, kept);
  EXPECT_EQ(store.trial(trial).attempts, 1);
  EXPECT_EQ(store.list_runs().size(), 1u);
  const auto imports = store.imports_of(study);
  ASSERT_EQ(imports.size(), 2u);
  EXPECT_EQ(imports[1].source, "task-2.db");
  EXPECT_EQ(imports[1].outcome, ImportOutcome::duplicate);
  EXPECT_FALSE(imports[1].run_id);
  // Recorded: the duplicate stays one.
  EXPECT_EQ(store.import_run(request("task-2.db", 2)), ImportOutcome::already);
}

TEST_F(StoreImports, ARunItsTaskLeftRunningIsInterruptedOrWaitedFor) {
  const auto source_run = result_file("task-7.db", false);
  // A live task's file: the trial stays pending until the file is complete.
  auto live = request("task-7.db", source_run);
  live.source = "task-7.db (live)";
  EXPECT_EQ(store.import_run(live), ImportOutcome::imported);
  EXPECT_EQ(store.trial(trial).status, TrialStatus::pending);
  EXPECT_EQ(store.run(*store.trial(trial).run_id).summary.status, run::RunStatus::running);

  // A task that is gone: its run is taken in interrupted, with the reason.
  auto gone = request("task-7.db", source_run);
  gone.interrupted_message = "its Slurm task ended before the run did";
  EXPECT_EQ(store.import_run(gone), ImportOutcome::imported);
  const auto t = store.trial(trial);
  EXPECT_EQ(t.status, TrialStatus::interrupted);
  EXPECT_EQ(t.attempts, 2);
  const auto run = store.run(*t.run_id);
  EXPECT_EQ(run.summary.status, run::RunStatus::interrupted);
  EXPECT_EQ(run.summary.message, "its Slurm task ended before the run did");
  EXPECT_EQ(store.epochs_of(run.id).size(), 2u);
}

TEST_F(StoreImports, AFileOfAnotherSchemaOrWithoutTheRunIsRefused) {
  { auto old = Store::open(dir / "old.db", {.durability = Durability::normal, .schema_version = kSchemaVersion - 1}); }
  try {
    store.import_run(request("old.db", 1));
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(fmt::format("its schema version is {}", kSchemaVersion - 1)));
  }
  EXPECT_THROW(store.import_run(request("task-1.db", result_file("task-1.db") + 10)), StoreError);
  EXPECT_FALSE(store.imported("old.db"));
  EXPECT_FALSE(store.imported("task-1.db"));
  EXPECT_TRUE(store.list_runs().empty());
  EXPECT_EQ(store.trial(trial).status, TrialStatus::pending);
  // The file was detached: a later import works.
  EXPECT_EQ(store.import_run(request("task-1.db", 2)), ImportOutcome::imported);
}

TEST_F(StoreImports, SlurmTasksAndTheClustersEnergy) {
  const auto other = store.upsert_trial(study, trial_spec("b"));
  store.add_slurm_task(trial, "1234", 0);
  store.add_slurm_task(other, "1234", 1);
  store.add_slurm_task(trial, "1234", 0);  // recorded once
  const auto tasks = store.slurm_tasks_of(study);
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0].trial_id, trial);
  EXPECT_EQ(tasks[0].job_id, "1234");
  EXPECT_EQ(tasks[1].array_index, 1);
  EXPECT_FALSE(tasks[1].submitted_at.empty());
  EXPECT_TRUE(store.slurm_tasks_of(store.create_study("t", "grid", "", {})).empty());

  store.import_run(request("task-1.db", result_file("task-1.db")));
  const auto run = *store.trial(trial).run_id;
  EXPECT_EQ(store.cluster_energy_of(run), (std::pair<std::string, std::optional<double>>{"1234_5", std::nullopt}));
  store.set_cluster_energy(run, 7200.5);
  EXPECT_EQ(store.cluster_energy_of(run).second, 7200.5);
  EXPECT_EQ(store.run(run).cluster_energy_j, 7200.5);
  EXPECT_EQ(store.cluster_energy_of(run + 99).first, "");
}

TEST_F(StoreImports, AReadOnlyStoreTakesNothingIn) {
  const auto source_run = result_file("task-1.db");
  auto reader = Store::open_readonly(dir / "results.db");
  EXPECT_THROW(reader.import_run(request("task-1.db", source_run)), StoreError);
  EXPECT_THROW(reader.add_slurm_task(trial, "1", 0), StoreError);
  EXPECT_THROW(reader.set_cluster_energy(1, 1.0), StoreError);
  EXPECT_FALSE(store.imported("task-1.db"));
}

}  // namespace
}  // namespace powertrain::store
