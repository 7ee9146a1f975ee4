// End-to-end tests of `powertrain sweep`, `study` and `results`: the binary in a
// child process, killed with SIGKILL at random points, stopped with SIGINT,
// resumed, and its tables exported.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "powertrain/store/store.h"
#include "run_cli.h"
#include "temp_dir.h"

namespace pst = powertrain::store;
using powertrain::testing::read_file;
using powertrain::testing::run_powertrain;
using powertrain::testing::TempDir;
using powertrain::testing::write_file;

namespace {

// 2 seeds x 2 x 2 configurations of tiny synthetic images, 3 epochs each at most.
const char* kSpec = R"(name = "kill-grid"
seeds = [0, 1]
[workload]
dataset = "synthetic-images"
[workload.data]
train_samples = 256
eval_samples = 64
image_size = 16
num_classes = 4
[training]
max_epochs = 3
patience = 2
threads = 1
[grid]
batch_sizes = [16, 64]
learning_rates = [0.01, 0.05]
)";


int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct Snapshot {
  std::map<std::string, std::int64_t> done_run;  // key -> run id of trials with a result
  std::size_t trials = 0;
};

/// Reads the study and checks what must hold after any kill: unique keys, and
/// every stored epoch of every run whole and numbered 1..N.
Snapshot check_db(const std::filesystem::path& db) {
  Snapshot s;
  if (!std::filesystem::exists(db)) return s;
  auto store = pst::Store::open_readonly(db);
  const auto study = store.find_study("kill-grid");
  if (!study) return s;
  const auto results = store.results_of(study->id);
  std::set<std::string> keys;
  for (const auto& r : results) {
    EXPECT_TRUE(keys.insert(r.trial.key).second) << "duplicate trial " << r.trial.key;
    if (!r.run) continue;
    const auto epochs = store.epochs_of(r.run->id);
    for (std::size_t i = 0; i < epochs.size(); ++i) EXPECT_EQ(epochs[i].epoch, static_cast<int>(i) + 1);
    EXPECT_EQ(static_cast<int>(epochs.size()), r.run->summary.epochs) << "run totals match its epochs";
    if (pst::is_done(r.trial.status)) {
      EXPECT_GE(r.run->summary.epochs, 1);
      s.done_run[r.trial.key] = r.run->id;
    }
  }
  s.trials = results.size();
  return s;
}

}  // namespace

TEST(StudyCli, SweepSurvivesKill9AtRandomPointsWithoutLossOrDuplicates) {
  if (powertrain::testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set";
  TempDir dir;
  write_file(dir / "spec.toml", kSpec);
  const auto db = (dir / "r.db").string();
  const std::vector<std::string> args{"sweep", (dir / "spec.toml").string(), "--db", db, "--quiet"};

  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> delay_ms(300, 2500);
  Snapshot before;
  for (int kill = 0; kill < 5; ++kill) {
    const pid_t pid = powertrain::testing::spawn_powertrain(args, dir / "child.out");
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    ::kill(pid, SIGKILL);
    const int code = wait_exit(pid);
    SCOPED_TRACE("kill " + std::to_string(kill) + ", exit " + std::to_string(code));
    const auto now = check_db(db);
    // Nothing completed is lost or redone: every done trial keeps its run.
    for (const auto& [key, run] : before.done_run) {
      ASSERT_TRUE(now.done_run.count(key)) << "lost " << key;
      EXPECT_EQ(now.done_run.at(key), run) << "re-ran " << key;
    }
    before = now;
    if (code == 0) break;  // finished before the kill
  }

  const auto r = run_powertrain(args);
  ASSERT_EQ(r.exit_code, 0) << r.err << read_file(dir / "child.out");
  const auto end = check_db(db);
  EXPECT_EQ(end.trials, 8u);
  EXPECT_EQ(end.done_run.size(), 8u) << "every trial has a result";
  for (const auto& [key, run] : before.done_run) EXPECT_EQ(end.done_run.at(key), run);
  EXPECT_NE(r.out.find("Configurations, cheapest first"), std::string::npos) << r.out;

  // A finished study runs nothing again.
  const auto again = run_powertrain(args);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("8 already done"), std::string::npos) << again.err;
}

void interrupts_with(int sig);

TEST(StudyCli, SigintInterruptsTheRunningTrialWithExit130) { interrupts_with(SIGINT); }

// A closed terminal or ssh session stops a sweep as gracefully as Ctrl-C.
TEST(StudyCli, SighupInterruptsTheRunningTrialWithExit130) { interrupts_with(SIGHUP); }

void interrupts_with(int sig) {
  if (powertrain::testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set";
  TempDir dir;
  // Trials long enough (tens of seconds) that the signal lands inside one.
  std::string spec = kSpec;
  spec.replace(spec.find("train_samples = 256"), 19, "train_samples = 4000");
  spec.replace(spec.find("max_epochs = 3"), 14, "max_epochs = 50");
  spec.replace(spec.find("patience = 2"), 12, "patience = 50");
  write_file(dir / "spec.toml", spec);
  const auto db = dir / "r.db";
  const std::vector<std::string> args{"sweep", (dir / "spec.toml").string(), "--db", db.string(), "--quiet"};
  const pid_t pid = powertrain::testing::spawn_powertrain(args, dir / "child.out");
  // Wait until a trial is running.
  bool running = false;
  for (int i = 0; i < 300 && !running; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!std::filesystem::exists(db)) continue;
    try {
      auto store = pst::Store::open_readonly(db);
      if (auto s = store.find_study("kill-grid"))
        for (const auto& t : store.trials_of(s->id)) running = running || t.status == pst::TrialStatus::running;
    } catch (const std::exception&) {
    }
  }
  ASSERT_TRUE(running);
  ::kill(pid, sig);
  EXPECT_EQ(wait_exit(pid), 130) << read_file(dir / "child.out");
  auto store = pst::Store::open_readonly(db);
  const auto study = store.find_study("kill-grid");
  ASSERT_TRUE(study);
  int interrupted = 0;
  for (const auto& t : store.trials_of(study->id)) {
    EXPECT_NE(t.status, pst::TrialStatus::running);
    interrupted += t.status == pst::TrialStatus::interrupted;
  }
  EXPECT_EQ(interrupted, 1);
}

TEST(StudyCli, ResultsPrintAndExportEveryTable) {
  if (powertrain::testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set";
  TempDir dir;
  write_file(dir / "multi.toml", R"(name = "mt"
kind = "multitask"
[workload]
dataset = "synthetic-images"
[workload.data]
train_samples = 128
eval_samples = 32
image_size = 16
num_classes = 4
[training]
max_epochs = 1
threads = 1
[multitask]
tasks = ["class_0", "class_1"]
)");
  const auto db = (dir / "r.db").string();
  const auto run = run_powertrain({"study", "multitask", (dir / "multi.toml").string(), "--db", db, "--quiet"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("Totals: K single-task models vs one shared model"), std::string::npos) << run.out;

  const auto r = run_powertrain({"results", db, "--csv", (dir / "csv").string(), "--json", (dir / "r.json").string(), "--trials"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("study 'mt' (multitask)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Trials"), std::string::npos);
  for (const char* t : {"trials", "multitask_tasks", "multitask_totals"})
    EXPECT_TRUE(std::filesystem::exists(dir / "csv" / (std::string("mt_") + t + ".csv"))) << t;
  const auto j = nlohmann::json::parse(read_file(dir / "r.json"));
  ASSERT_EQ(j["studies"].size(), 1u);
  EXPECT_EQ(j["studies"][0]["kind"], "multitask");
  // Every energy figure says how it was obtained (estimated on a machine without counters).
  const auto method = j["studies"][0]["energy_method"].get<std::string>();
  EXPECT_FALSE(method.empty());
  EXPECT_NE(r.out.find("energy method of its runs: " + method), std::string::npos) << r.out;
  EXPECT_EQ(j["studies"][0]["tables"]["trials"]["rows"].size(), 3u);
  EXPECT_EQ(j["studies"][0]["tables"]["multitask_tasks"]["rows"].size(), 2u);
  const auto csv = read_file(dir / "csv" / "mt_multitask_tasks.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "task,single_results,single_energy_j,single_energy_j_sd,single_epochs,single_epochs_sd,single_duration_s,"
            "single_duration_s_sd,single_metric,single_metric_sd,multi_metric,multi_metric_sd,metric_delta");

  const auto missing = run_powertrain({"results", db, "--study", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no study named 'nope'"), std::string::npos) << missing.err;
}

TEST(StudyCli, SpecErrorsGiveFileLineAndExit1BeforeAnythingIsWritten) {
  if (powertrain::testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set";
  TempDir dir;
  write_file(dir / "bad.toml", "name = \"x\"\n[training]\nmax_epochs = 2\nlearning_rat = 3\n");
  const auto r = run_powertrain({"sweep", (dir / "bad.toml").string(), "--db", (dir / "r.db").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.toml:4: unknown key 'training.learning_rat'"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "r.db"));
  const auto kind = run_powertrain({"study", "pretrain", (dir / "bad.toml").string()});
  EXPECT_EQ(kind.exit_code, 1);
}

// Issue 24: one run's message that is not valid UTF-8 (a quote cut inside a
// character, a program's Latin-1 stderr, stored by an earlier powertrain)
// made `results --json` fail for the whole database ("internal error", 70).
TEST(StudyCli, ResultsJsonSurvivesAMessageThatIsNotUtf8) {
  if (powertrain::testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set";
  TempDir dir;
  const auto db = (dir / "r.db").string();
  {
    auto store = powertrain::store::Store::open(db);
    const auto study = store.create_study("latin", "grid", "", {});
    powertrain::store::TrialSpec t;
    t.key = "only";
    const auto trial = store.upsert_trial(study, t);
    store.mark_trial_failed(trial, "`train.py` exited with status 3; its stderr ended with: caf\xe9 \xe2\x9c");
  }
  const auto r = run_powertrain({"results", db, "--json", (dir / "r.json").string(), "--trials"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(read_file(dir / "r.json"));
  EXPECT_NE(j.dump().find("caf\xef\xbf\xbd"), std::string::npos);
}

// Issue 28: in a sweep, a trial after its first epochs is forecast from the
// study's finished trials (the study prior), and `results` shows the label.
TEST(StudyCli, LaterTrialsOfASweepAreForecastFromTheFinishedOnes) {
  if (powertrain::testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set";
  TempDir dir;
  write_file(dir / "g.toml", R"(name = "prior-grid"
[workload]
dataset = "synthetic-images"
[workload.data]
train_samples = 128
eval_samples = 32
image_size = 16
num_classes = 4
[training]
max_epochs = 3
patience = 2
threads = 1
[grid]
batch_sizes = [32]
learning_rates = [0.01, 0.02, 0.03]
)");
  const auto db = (dir / "r.db").string();
  const auto run = run_powertrain({"sweep", (dir / "g.toml").string(), "--db", db, "--quiet"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto store = pst::Store::open_readonly(db);
  std::vector<std::vector<powertrain::run::EpochRecord>> runs;
  for (const auto& r : store.results_of(store.find_study("prior-grid")->id)) {
    ASSERT_TRUE(r.run);
    runs.push_back(store.epochs_of(r.run->id));
  }
  std::sort(runs.begin(), runs.end(), [&](const auto& a, const auto& b) { return a[0].forecast->method > b[0].forecast->method; });
  ASSERT_EQ(runs.size(), 3u);
  ASSERT_GE(runs[0].size(), 2u);
  EXPECT_EQ(runs[0][0].forecast->method, "too few epochs");  // the first trial: no other run yet
  int with_prior = 0;
  for (std::size_t i = 0; i < runs.size(); ++i)
    if (runs[i][0].forecast->method == "study prior") {
      ++with_prior;
      ASSERT_GE(runs[i].size(), 2u);
      EXPECT_EQ(runs[i][1].forecast->method, runs[i].size() == 2 ? "stopped" : "study prior");
    }
  EXPECT_EQ(with_prior, 2);
  const auto r = run_powertrain({"results", db});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("study prior"), std::string::npos) << r.out;
}
