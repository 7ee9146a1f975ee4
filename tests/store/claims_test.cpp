// The claims aggregate: a trial's life cycle (start, complete, fail, interrupt,
// reset), and claims with owners, leases and tokens, so that several processes
// can work on one study (a fake clock, owners of this host and of another).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include "powertrain/error.h"
#include "powertrain/store/store.h"
#include "samples.h"
#include "store_fixture.h"

namespace powertrain::store {
namespace {

using powertrain::testing::converged_summary;
using powertrain::testing::sample_config;
using powertrain::testing::sample_environment;
using powertrain::testing::sample_epoch;
using powertrain::testing::trial_spec;
using ::testing::HasSubstr;

constexpr double kT0 = 1.0e9;  // a fixed "now" (seconds since the epoch)
const std::string kRemote = "another-host 4242 12345";  // a process no check can see

run::RunSummary converged() {
  run::RunSummary s;
  s.status = run::RunStatus::converged;
  s.epochs = 1;
  s.energy_j = 10.0;
  return s;
}

class StoreClaims : public powertrain::testing::StoreFixture {
 protected:
  std::int64_t study = store.create_study("s", "grid", "", {});
  std::int64_t trial = store.upsert_trial(study, trial_spec("a"));
};

TEST_F(StoreClaims, ALiveClaimIsNeitherTakenNorReset) {
  const auto first = store.claim_trial(trial, {}, {}, kRemote, 30.0, kT0);
  ASSERT_EQ(first.outcome, Store::ClaimOutcome::claimed);
  EXPECT_EQ(store.claim_trial(trial, {}, {}, Store::this_process_owner(), 30.0, kT0 + 10).outcome,
            Store::ClaimOutcome::busy);
  EXPECT_EQ(store.reset_interrupted(study, kT0 + 10), 0);
  EXPECT_EQ(store.trial(trial).status, TrialStatus::running);
  EXPECT_EQ(store.trial(trial).attempts, 1);
}

TEST_F(StoreClaims, AnExpiredLeaseIsTakenOverAndTheOldRunInterrupted) {
  const auto first = store.claim_trial(trial, {}, {}, kRemote, 30.0, kT0);
  store.add_epoch(first.run_id, sample_epoch(1));
  const auto second = store.claim_trial(trial, {}, {}, Store::this_process_owner(), 30.0, kT0 + 31);
  ASSERT_EQ(second.outcome, Store::ClaimOutcome::claimed);
  EXPECT_EQ(second.taken_from, kRemote);
  EXPECT_NE(second.run_id, first.run_id);
  const auto old = store.run(first.run_id);
  EXPECT_EQ(old.summary.status, run::RunStatus::interrupted);
  EXPECT_THAT(old.summary.message, HasSubstr("another took it over"));
  EXPECT_EQ(old.summary.epochs, 1);  // its epochs are kept
  EXPECT_EQ(store.trial(trial).attempts, 2);
  EXPECT_EQ(*store.trial(trial).run_id, second.run_id);
}

TEST_F(StoreClaims, RenewalKeepsAClaimAliveAndFailsOnceItIsTaken) {
  const auto first = store.claim_trial(trial, {}, {}, kRemote, 30.0, kT0);
  EXPECT_TRUE(store.renew_claim(trial, first.run_id, 30.0, kT0 + 25));
  EXPECT_EQ(store.claim_trial(trial, {}, {}, "x 1 1", 30.0, kT0 + 40).outcome, Store::ClaimOutcome::busy);
  const auto second = store.claim_trial(trial, {}, {}, "x 1 1", 30.0, kT0 + 56);
  ASSERT_EQ(second.outcome, Store::ClaimOutcome::claimed);
  EXPECT_FALSE(store.renew_claim(trial, first.run_id, 30.0, kT0 + 57));
  EXPECT_TRUE(store.renew_claim(trial, second.run_id, 30.0, kT0 + 57));
}

TEST_F(StoreClaims, ALateFinisherWritesOnlyItsOwnRun) {
  // The case of two sweeps on one database: the first process stalls, the
  // second takes the trial over, then the first finishes.
  const auto first = store.claim_trial(trial, {}, {}, kRemote, 30.0, kT0);
  store.add_epoch(first.run_id, sample_epoch(1));
  const auto second = store.claim_trial(trial, {}, {}, "x 1 1", 30.0, kT0 + 31);
  auto late = converged();
  late.energy_j = 999.0;
  EXPECT_FALSE(store.complete_claimed_trial(trial, first.run_id, late));
  EXPECT_EQ(store.trial(trial).status, TrialStatus::running);  // still the second's
  EXPECT_EQ(*store.trial(trial).run_id, second.run_id);
  EXPECT_EQ(store.run(second.run_id).summary.status, run::RunStatus::running);
  EXPECT_EQ(store.run(first.run_id).summary.energy_j, 999.0);  // its own run holds its own summary
  EXPECT_TRUE(store.complete_claimed_trial(trial, second.run_id, converged()));
  EXPECT_EQ(store.trial(trial).status, TrialStatus::converged);
  EXPECT_EQ(store.run(second.run_id).summary.energy_j, 10.0);
}

TEST_F(StoreClaims, DoneTrialsAreNotClaimed) {
  const auto c = store.claim_trial(trial, {}, {}, kRemote, 30.0, kT0);
  ASSERT_TRUE(store.complete_claimed_trial(trial, c.run_id, converged()));
  EXPECT_EQ(store.claim_trial(trial, {}, {}, kRemote, 30.0, kT0 + 100).outcome, Store::ClaimOutcome::done);
}

TEST_F(StoreClaims, ADeadProcessOfThisHostIsTakenOverAtOnce) {
  // A real process that has exited: its claim's lease still runs, but the
  // owner is gone, which this host can see.
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string dead = std::string(host) + " " + std::to_string(pid) + " 1";
  EXPECT_TRUE(Store::owner_is_gone(dead));
  EXPECT_FALSE(Store::owner_is_gone(Store::this_process_owner()));
  EXPECT_FALSE(Store::owner_is_gone(kRemote));
  (void)store.claim_trial(trial, {}, {}, dead, 3600.0, kT0);
  EXPECT_EQ(store.reset_interrupted(study, kT0 + 1), 1);
  EXPECT_EQ(store.trial(trial).status, TrialStatus::interrupted);
}

TEST_F(StoreClaims, AReusedPidIsNotTakenForItsOldOwner) {
  // This process's pid with another start time: the claim's owner is gone.
  const auto me = Store::this_process_owner();
  const auto pid_part = me.substr(0, me.rfind(' '));
  EXPECT_TRUE(Store::owner_is_gone(pid_part + " 1"));
}

// A store with no study yet.
class StoreTrialLife : public powertrain::testing::StoreFixture {};

TEST_F(StoreTrialLife, TrialLifeCycle) {
  auto study = store.create_study("pre", "pretrain", "", {});
  auto t1 = store.upsert_trial(study, trial_spec("scratch", sample_config(), "scratch", 0));
  auto t2 = store.upsert_trial(study, trial_spec("ft", sample_config(0.2), "finetune", 1, "smile"));
  auto t3 = store.upsert_trial(study, trial_spec("frozen", sample_config(0.3), "frozen", 1));

  auto r1 = store.start_trial(t1, sample_config(), sample_environment());
  EXPECT_THROW(store.start_trial(t1, sample_config(), {}), StoreError);  // already running
  auto trial = store.trial(t1);
  EXPECT_EQ(trial.status, TrialStatus::running);
  EXPECT_EQ(trial.run_id, r1);
  EXPECT_EQ(trial.attempts, 1);
  EXPECT_FALSE(trial.started_at.empty());
  store.add_epoch(r1, sample_epoch(1));
  store.complete_trial(t1, converged_summary());
  trial = store.trial(t1);
  EXPECT_EQ(trial.status, TrialStatus::converged);
  EXPECT_FALSE(trial.finished_at.empty());
  EXPECT_EQ(store.run(r1).summary.status, run::RunStatus::converged);
  EXPECT_THROW(store.complete_trial(t1, converged_summary()), StoreError);  // not running
  EXPECT_THROW(store.start_trial(t1, sample_config(), {}), StoreError);     // done: never twice

  auto r2 = store.start_trial(t2, sample_config(0.2), {});
  auto diverged = converged_summary();
  diverged.status = run::RunStatus::diverged;
  diverged.message = "loss is NaN at epoch 2";
  store.complete_trial(t2, diverged);
  EXPECT_EQ(store.trial(t2).status, TrialStatus::diverged);
  EXPECT_EQ(store.trial(t2).message, "loss is NaN at epoch 2");
  EXPECT_EQ(store.run(r2).summary.message, "loss is NaN at epoch 2");

  auto r3 = store.start_trial(t3, sample_config(0.3), {});
  store.mark_trial_interrupted(t3, "interrupted by the user");
  EXPECT_EQ(store.trial(t3).status, TrialStatus::interrupted);
  EXPECT_EQ(store.run(r3).summary.status, run::RunStatus::interrupted);
  // Retrying starts a new run and counts the attempt.
  auto r3b = store.start_trial(t3, sample_config(0.3), {});
  EXPECT_NE(r3b, r3);
  EXPECT_EQ(store.trial(t3).attempts, 2);
  EXPECT_EQ(store.trial(t3).run_id, r3b);
  store.mark_trial_failed(t3, "out of memory");
  EXPECT_EQ(store.trial(t3).status, TrialStatus::failed);
  EXPECT_EQ(store.run(r3b).summary.status, run::RunStatus::failed);
  EXPECT_EQ(store.run(r3b).summary.message, "out of memory");
  // Failing a trial whose run finished leaves the run alone.
  store.mark_trial_failed(t1, "report lost");
  EXPECT_EQ(store.run(r1).summary.status, run::RunStatus::converged);

  auto trials = store.trials_of(study);
  ASSERT_EQ(trials.size(), 3u);
  EXPECT_EQ(trials[0].key, "scratch");  // by step, then insertion
  EXPECT_EQ(trials[1].key, "ft");
  EXPECT_EQ(trials[1].task, "smile");
  EXPECT_EQ(trials[2].phase, "frozen");

  auto results = store.results_of(study);
  ASSERT_EQ(results.size(), 3u);
  ASSERT_TRUE(results[0].run);
  EXPECT_EQ(results[0].run->id, r1);
  EXPECT_EQ(results[0].run->summary.energy_j, 6100.25);
  EXPECT_EQ(results[2].run->id, r3b);
}

TEST_F(StoreTrialLife, ResetInterruptedMarksRunningTrials) {
  auto study = store.create_study("g", "grid", "", {});
  auto other = store.create_study("o", "grid", "", {});
  auto done = store.upsert_trial(study, trial_spec("done"));
  auto killed = store.upsert_trial(study, trial_spec("killed"));
  auto pending = store.upsert_trial(study, trial_spec("pending"));
  auto elsewhere = store.upsert_trial(other, trial_spec("killed"));
  store.start_trial(done, {}, {});
  store.complete_trial(done, converged_summary());
  auto run = store.start_trial(killed, {}, {});
  store.add_epoch(run, sample_epoch(1));
  store.start_trial(elsewhere, {}, {});

  EXPECT_EQ(store.reset_interrupted(study), 1);
  auto t = store.trial(killed);
  EXPECT_EQ(t.status, TrialStatus::interrupted);
  EXPECT_EQ(t.attempts, 1);
  EXPECT_THAT(t.message, HasSubstr("ended before it finished"));
  auto r = store.run(run);
  EXPECT_EQ(r.summary.status, run::RunStatus::interrupted);
  EXPECT_EQ(r.summary.epochs, 1);  // what it did before it died still counts
  EXPECT_EQ(r.summary.energy_j, 1000.0);
  EXPECT_EQ(store.trial(done).status, TrialStatus::converged);
  EXPECT_EQ(store.trial(pending).status, TrialStatus::pending);
  EXPECT_EQ(store.trial(elsewhere).status, TrialStatus::running);  // other studies untouched
  EXPECT_EQ(store.reset_interrupted(study), 0);

  store.start_trial(killed, {}, {});
  EXPECT_EQ(store.trial(killed).attempts, 2);
}

}  // namespace
}  // namespace powertrain::store
