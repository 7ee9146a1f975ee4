// End-to-end: several `powertrain sweep` processes on one database, some
// killed with -9 at random points and started again. Each trial gets exactly
// one result, a live trial is never taken from its process, and every process
// writes only its own runs.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <thread>

#include "fake_program.h"
#include "powertrain/store/store.h"
#include "run_cli.h"
#include "temp_dir.h"

namespace {

namespace pst = powertrain::store;
namespace fs = std::filesystem;
using powertrain::testing::TempDir;
using powertrain::testing::write_file;

std::string python() { return powertrain::testing::test_python(); }


TEST(ConcurrentSweeps, ThreeProcessesWithRandomKillsRunEachTrialOnce) {
  TempDir dir;
  const std::string fake = powertrain::testing::fake_trainer();
  write_file(dir / "grid.toml", "name = \"shared\"\nkind = \"grid\"\n[workload]\ncommand = [\"" + python() +
                                    "\", \"" + fake +
                                    "\", \"normal\"]\nenv = { FAKE_EPOCH_S = \"0.06\" }\n"
                                    "[training]\nmax_epochs = 6\npatience = 2\nmin_delta = 0.01\n"
                                    "[grid]\nbatch_sizes = [8, 16, 32, 64]\nlearning_rates = [0.1, 0.01, 0.001]\n");
  const auto db = (dir / "r.db").string();
  const std::vector<std::string> args{"sweep", (dir / "grid.toml").string(), "--db", db, "--quiet"};
  const auto log = dir / "sweeps.log";

  std::mt19937 rng(20261130);
  std::vector<pid_t> live;
  for (int i = 0; i < 3; ++i) live.push_back(powertrain::testing::spawn_powertrain(args, log));
  // Six random kill -9s, each followed by a fresh process, while the others work on.
  for (int k = 0; k < 6; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(200, 900)(rng)));
    const auto idx = std::uniform_int_distribution<std::size_t>(0, live.size() - 1)(rng);
    ::kill(live[idx], SIGKILL);
    ::waitpid(live[idx], nullptr, 0);
    live[idx] = powertrain::testing::spawn_powertrain(args, log);
  }
  for (pid_t p : live) {
    int status = 0;
    ::waitpid(p, &status, 0);
    EXPECT_TRUE(WIFEXITED(status)) << "a sweep ended by a signal";
  }
  // One more pass finishes whatever the kills left (a process that started
  // while another held the last trials may have finished before them).
  const auto last = powertrain::testing::run_powertrain(args);
  ASSERT_EQ(last.exit_code, 0) << last.err;

  auto store = pst::Store::open_readonly(db);
  const auto study = store.find_study("shared");
  ASSERT_TRUE(study);
  const auto trials = store.results_of(study->id);
  ASSERT_EQ(trials.size(), 12u);
  // Runs by configuration (batch size, learning rate): one result each.
  std::map<std::pair<std::int64_t, double>, std::int64_t> result_run;
  for (const auto& t : trials) {
    ASSERT_TRUE(pst::is_done(t.trial.status)) << t.trial.key << " " << pst::to_string(t.trial.status);
    ASSERT_TRUE(t.run);
    result_run[{t.run->config.batch_size, t.run->config.learning_rate}] = t.run->id;
  }
  std::map<std::pair<std::int64_t, double>, int> done_runs;
  for (const auto& run : store.list_runs()) {
    const auto epochs = store.epochs_of(run.id);
    // Every run holds its own epochs, numbered 1..N, and (when it ended) the
    // summary of exactly those epochs: no process wrote another's run.
    for (std::size_t i = 0; i < epochs.size(); ++i) EXPECT_EQ(epochs[i].epoch, static_cast<int>(i) + 1);
    EXPECT_EQ(static_cast<int>(epochs.size()), run.summary.epochs) << "run " << run.id;
    const auto key = std::make_pair(run.config.batch_size, run.config.learning_rate);
    const bool done = run.summary.status == powertrain::run::RunStatus::converged ||
                      run.summary.status == powertrain::run::RunStatus::max_epochs;
    if (done) {
      ++done_runs[key];
      EXPECT_EQ(result_run[key], run.id) << "a finished run that is not its trial's result";
      double sum = 0.0;
      for (const auto& e : epochs) sum += e.energy_j;
      EXPECT_NEAR(run.summary.energy_j, sum, 1e-6 + 1e-9 * sum) << "run " << run.id;
    } else {
      EXPECT_EQ(run.summary.status, powertrain::run::RunStatus::interrupted) << "run " << run.id;
    }
  }
  for (const auto& [key, n] : done_runs) EXPECT_EQ(n, 1) << "batch " << key.first << " lr " << key.second;
  EXPECT_EQ(done_runs.size(), 12u);
}

}  // namespace
