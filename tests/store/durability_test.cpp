// Atomicity, durability and concurrency: one transaction per epoch, a killed
// writer, readers next to a writer, two writers.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "powertrain/error.h"
#include "powertrain/store/store.h"
#include "samples.h"
#include "temp_dir.h"

namespace powertrain::store {
namespace {

using powertrain::testing::RawDb;
using powertrain::testing::sample_config;
using powertrain::testing::sample_epoch;
using powertrain::testing::TempDir;
using powertrain::testing::environment_on;
using powertrain::testing::trial_spec;
using namespace std::chrono_literals;

// Every stored epoch of `run` must be whole: numbered 1..n, with `channels`
// channels carrying the values sample_epoch() wrote. Returns n.
int check_whole_epochs(const Store& store, std::int64_t run, int channels) {
  auto epochs = store.epochs_of(run);
  for (std::size_t i = 0; i < epochs.size(); ++i) {
    const auto& e = epochs[i];
    EXPECT_EQ(e.epoch, static_cast<int>(i) + 1);
    EXPECT_EQ(e.energy_j, sample_epoch(e.epoch, channels).energy_j);
    EXPECT_EQ(e.channels.size(), static_cast<std::size_t>(channels)) << "epoch " << e.epoch;
    for (const auto& ch : e.channels) EXPECT_GE(ch.energy_j, 100.0 * e.epoch);
  }
  return static_cast<int>(epochs.size());
}

TEST(StoreAtomicity, FailedEpochLeavesNothingBehind) {
  TempDir dir;
  auto store = Store::open(dir / "r.db", {.durability = Durability::normal});
  auto run = store.begin_run(sample_config(), {});
  store.add_epoch(run, sample_epoch(1));

  // Two channels with one id: the second channel row violates the primary key
  // after the epoch row and the first channel row went in.
  auto bad = sample_epoch(2, 4);
  bad.channels[3].channel_id = bad.channels[1].channel_id;
  try {
    store.add_epoch(run, bad);
    FAIL() << "no StoreError";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("add epoch 2 of run"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("UNIQUE constraint failed: epoch_channels"));
  }
  EXPECT_EQ(check_whole_epochs(store, run, 3), 1);
  RawDb raw(dir / "r.db");
  EXPECT_EQ(raw.integer("SELECT count(*) FROM epoch_channels WHERE epoch = 2"), 0);
  EXPECT_EQ(store.run(run).summary.epochs, 1);         // totals rolled back too
  EXPECT_EQ(store.run(run).summary.energy_j, 1000.0);

  store.add_epoch(run, sample_epoch(2));  // the same epoch goes in once fixed
  EXPECT_EQ(check_whole_epochs(store, run, 3), 2);
}

TEST(StoreConcurrency, ReaderSeesOnlyCommittedEpochsAndNeverWaits) {
  TempDir dir;
  auto path = dir / "r.db";
  auto writer = Store::open(path);
  auto run = writer.begin_run(sample_config(), {});
  auto reader = Store::open_readonly(path, {.busy_timeout = 5s});

  // Another process holds the write lock in the middle of an epoch.
  RawDb raw(path);
  raw.exec("BEGIN IMMEDIATE");
  raw.exec("INSERT INTO epochs (run_id, epoch) VALUES (" + std::to_string(run) + ", 1)");
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(reader.epochs_of(run).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);  // WAL: readers do not wait for writers

  // A second writer waits for the lock, up to its busy timeout.
  auto impatient = Store::open(path, {.busy_timeout = 100ms});
  try {
    impatient.add_epoch(run, sample_epoch(2));
    FAIL() << "no StoreError";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("add epoch 2 of run"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("locked"));
  }
  std::thread release([&] {
    std::this_thread::sleep_for(150ms);
    raw.exec("COMMIT");
  });
  writer.add_epoch(run, sample_epoch(2));  // waits for the commit, then goes in
  release.join();
  auto epochs = reader.epochs_of(run);
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_TRUE(epochs[0].channels.empty());
  EXPECT_EQ(epochs[1].channels.size(), 3u);
}

TEST(StoreConcurrency, ReaderThreadWhileWriterWrites) {
  TempDir dir;
  auto path = dir / "r.db";
  constexpr int kEpochs = 150;
  constexpr int kChannels = 8;
  std::int64_t run = 0;
  {
    auto s = Store::open(path);
    run = s.begin_run(sample_config(), {});
  }
  std::atomic<bool> done{false};
  std::thread writer([&] {
    auto store = Store::open(path, {.durability = Durability::normal});
    for (int e = 1; e <= kEpochs; ++e) store.add_epoch(run, sample_epoch(e, kChannels));
    done = true;
  });
  auto reader = Store::open_readonly(path);
  int last = 0, reads = 0, partial_views = 0;
  while (!done || reads == 0) {
    int n = check_whole_epochs(reader, run, kChannels);
    EXPECT_GE(n, last);
    if (n > 0 && n < kEpochs) ++partial_views;
    last = n;
    ++reads;
    if (::testing::Test::HasFailure()) break;
  }
  writer.join();
  EXPECT_EQ(check_whole_epochs(reader, run, kChannels), kEpochs);
  EXPECT_EQ(reader.run(run).summary.epochs, kEpochs);
  RecordProperty("reads_while_writing", partial_views);
}

TEST(StoreConcurrency, TwoWritersClaimEachTrialOnce) {
  TempDir dir;
  auto path = dir / "r.db";
  constexpr int kTrials = 30;
  std::int64_t study = 0;
  {
    auto s = Store::open(path);
    study = s.create_study("shared", "grid", "", {});
  }
  auto engine = [&](int worker, std::atomic<int>& ran) {
    auto store = Store::open(path, {.durability = Durability::normal});
    for (int i = 0; i < kTrials; ++i) {
      auto id = store.upsert_trial(study, trial_spec("k" + std::to_string(i), sample_config()));
      std::int64_t run = 0;
      try {
        run = store.start_trial(id, sample_config(), environment_on("w" + std::to_string(worker)));
      } catch (const StoreError&) {
        continue;  // the other worker has it, or has done it
      }
      store.add_epoch(run, sample_epoch(1, 2));
      run::RunSummary s;
      s.status = run::RunStatus::max_epochs;
      s.epochs = 1;
      store.complete_trial(id, s);
      ++ran;
    }
  };
  std::atomic<int> ran_a{0}, ran_b{0};
  std::thread a(engine, 0, std::ref(ran_a));
  std::thread b(engine, 1, std::ref(ran_b));
  a.join();
  b.join();
  EXPECT_EQ(ran_a + ran_b, kTrials);
  auto store = Store::open_readonly(path);
  auto trials = store.trials_of(study);
  ASSERT_EQ(trials.size(), static_cast<std::size_t>(kTrials));
  for (const auto& t : trials) {
    EXPECT_EQ(t.status, TrialStatus::max_epochs);
    EXPECT_EQ(t.attempts, 1);
  }
  EXPECT_EQ(store.list_runs().size(), static_cast<std::size_t>(kTrials));
}

// A study process killed with SIGKILL while it writes epochs: every committed
// epoch is whole, none is partial, and resuming finds the one trial it had.
TEST(StoreDurability, KilledWriterLosesAtMostTheEpochInFlight) {
  TempDir dir;
  auto path = dir / "r.db";
  constexpr int kChannels = 16;
  const std::string key = "lr=0.1,batch=64,seed=1";

  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Child: a study engine that writes epochs until it is killed. It never
      // returns into the test framework.
      close(fds[0]);
      try {
        auto store = Store::open(path);  // durability full, as in real use
        auto found = store.find_study("grid");
        auto study = found ? found->id : store.create_study("grid", "grid", "", {});
        store.reset_interrupted(study);
        auto trial = store.upsert_trial(study, trial_spec(key, sample_config()));
        auto run = store.start_trial(trial, sample_config(), {});
        for (int e = 1;; ++e) {
          store.add_epoch(run, sample_epoch(e, kChannels));
          char c = 'e';
          if (write(fds[1], &c, 1) != 1) _exit(3);
        }
      } catch (...) {
        _exit(2);
      }
    }
    close(fds[1]);
    // Let it commit a few epochs, then kill it wherever it is.
    int committed = 0;
    while (committed < 3 + round) {
      pollfd p{fds[0], POLLIN, 0};
      ASSERT_EQ(poll(&p, 1, 5000), 1) << "child wrote nothing";
      char c;
      ASSERT_EQ(read(fds[0], &c, 1), 1) << "child ended early";
      ++committed;
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited with " << WEXITSTATUS(wstatus);
    close(fds[0]);

    auto store = Store::open(path);
    auto study = store.find_study("grid");
    ASSERT_TRUE(study);
    auto trials = store.trials_of(study->id);
    ASSERT_EQ(trials.size(), 1u);  // never duplicated
    EXPECT_EQ(trials[0].status, TrialStatus::running);
    EXPECT_EQ(trials[0].attempts, round + 1);
    ASSERT_TRUE(trials[0].run_id);
    auto run = *trials[0].run_id;
    int n = check_whole_epochs(store, run, kChannels);
    EXPECT_GE(n, committed);  // every epoch it reported committed is there
    RawDb raw(path);
    EXPECT_EQ(raw.integer("SELECT count(*) FROM epoch_channels WHERE run_id = " + std::to_string(run)),
              n * kChannels);
    EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
    EXPECT_EQ(raw.text("PRAGMA foreign_key_check"), "");
    EXPECT_EQ(store.run(run).summary.epochs, n);  // totals committed with their epochs

    EXPECT_EQ(store.reset_interrupted(study->id), 1);
    EXPECT_EQ(store.upsert_trial(study->id, trial_spec(key)), trials[0].id);
    EXPECT_EQ(store.trial(trials[0].id).status, TrialStatus::interrupted);
  }
}

}  // namespace
}  // namespace powertrain::store
