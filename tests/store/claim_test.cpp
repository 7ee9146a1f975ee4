// Trial claims: owners, leases and tokens, so that several processes can work
// on one study (a fake clock, owners of this host and of another).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include "powertrain/store/store.h"
#include "samples.h"
#include "temp_dir.h"

namespace powertrain::store {
namespace {

using powertrain::testing::sample_epoch;
using powertrain::testing::TempDir;
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

class ClaimTest : public ::testing::Test {
 protected:
  TempDir dir;
  Store store = Store::open(dir / "r.db", {.durability = Durability::normal});
  std::int64_t study = store.create_study("s", "grid", "", {});
  std::int64_t trial = store.upsert_trial(study, trial_spec("a"));
};

TEST_F(ClaimTest, ALiveClaimIsNeitherTakenNorReset) {
  const auto first = store.claim_trial(trial, {}, {}, kRemote, 30.0, kT0);
  ASSERT_EQ(first.outcome, Store::ClaimOutcome::claimed);
  EXPECT_EQ(store.claim_trial(trial, {}, {}, Store::this_process_owner(), 30.0, kT0 + 10).outcome,
            Store::ClaimOutcome::busy);
  EXPECT_EQ(store.reset_interrupted(study, kT0 + 10), 0);
  EXPECT_EQ(store.trial(trial).status, TrialStatus::running);
  EXPECT_EQ(store.trial(trial).attempts, 1);
}

TEST_F(ClaimTest, AnExpiredLeaseIsTakenOverAndTheOldRunInterrupted) {
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

TEST_F(ClaimTest, RenewalKeepsAClaimAliveAndFailsOnceItIsTaken) {
  const auto first = store.claim_trial(trial, {}, {}, kRemote, 30.0, kT0);
  EXPECT_TRUE(store.renew_claim(trial, first.run_id, 30.0, kT0 + 25));
  EXPECT_EQ(store.claim_trial(trial, {}, {}, "x 1 1", 30.0, kT0 + 40).outcome, Store::ClaimOutcome::busy);
  const auto second = store.claim_trial(trial, {}, {}, "x 1 1", 30.0, kT0 + 56);
  ASSERT_EQ(second.outcome, Store::ClaimOutcome::claimed);
  EXPECT_FALSE(store.renew_claim(trial, first.run_id, 30.0, kT0 + 57));
  EXPECT_TRUE(store.renew_claim(trial, second.run_id, 30.0, kT0 + 57));
}

TEST_F(ClaimTest, ALateFinisherWritesOnlyItsOwnRun) {
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

TEST_F(ClaimTest, DoneTrialsAreNotClaimed) {
  const auto c = store.claim_trial(trial, {}, {}, kRemote, 30.0, kT0);
  ASSERT_TRUE(store.complete_claimed_trial(trial, c.run_id, converged()));
  EXPECT_EQ(store.claim_trial(trial, {}, {}, kRemote, 30.0, kT0 + 100).outcome, Store::ClaimOutcome::done);
}

TEST_F(ClaimTest, ADeadProcessOfThisHostIsTakenOverAtOnce) {
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

TEST_F(ClaimTest, AReusedPidIsNotTakenForItsOldOwner) {
  // This process's pid with another start time: the claim's owner is gone.
  const auto me = Store::this_process_owner();
  const auto pid_part = me.substr(0, me.rfind(' '));
  EXPECT_TRUE(Store::owner_is_gone(pid_part + " 1"));
}

}  // namespace
}  // namespace powertrain::store
