// End-to-end on a real Slurm: a single-node cluster from Debian's slurm-wlm
// and munge (tests/support/slurm/slurm-cluster), started and stopped here. A
// quick sweep through `--slurm --wait` gives the trials and tables of the
// same sweep run locally; a pretraining study's downstream trials wait for
// their encoder; an array task cancelled with scancel and resubmitted loses
// nothing and duplicates nothing; `collect` twice changes nothing.
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "powertrain/store/store.h"
#include "fake_program.h"
#include "run_cli.h"
#include "temp_dir.h"

namespace {

namespace pst = powertrain::store;
namespace fs = std::filesystem;
using powertrain::testing::run_powertrain;
using powertrain::testing::run_program;
using powertrain::testing::TempDir;
using powertrain::testing::read_file;
using powertrain::testing::write_file;

const std::string kSource = POWERTRAIN_TEST_SOURCE_DIR;
using powertrain::testing::toml_list;
std::string python() { return powertrain::testing::test_python(); }
std::string fake() { return powertrain::testing::fake_trainer(); }

// One cluster for the suite: starting one takes a few seconds.
class SlurmCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const auto r = run_program(kSource + "/tests/support/slurm/slurm-cluster", {"start", (dir_->path() / "cluster").string()});
    if (r.exit_code == 77) {
      skip_ = r.err.substr(0, r.err.find('\n'));
      return;
    }
    if (r.exit_code != 0) {
      failure_ = "could not start a test Slurm: " + r.err;
      return;
    }
    ::setenv("SLURM_CONF", (dir_->path() / "cluster" / "etc" / "slurm.conf").c_str(), 1);
  }
  static void TearDownTestSuite() {
    if (dir_ && skip_.empty())
      (void)run_program(kSource + "/tests/support/slurm/slurm-cluster", {"stop", (dir_->path() / "cluster").string()});
    ::unsetenv("SLURM_CONF");
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << "no Slurm here: " << skip_;
    ASSERT_TRUE(failure_.empty()) << failure_;
  }

  static inline TempDir* dir_ = nullptr;
  static inline std::string skip_, failure_;
};

const char* kGrid = R"(name = "sg"
seeds = [0]
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

// Trial key -> (status, epochs, metric) of a study.
std::map<std::string, std::tuple<std::string, int, double>> outcome(const std::string& db, const std::string& study) {
  auto store = pst::Store::open_readonly(db);
  std::map<std::string, std::tuple<std::string, int, double>> m;
  for (const auto& r : store.results_of(store.find_study(study)->id))
    m[r.trial.key] = {std::string(pst::to_string(r.trial.status)), r.run ? r.run->summary.epochs : -1,
                      r.run ? r.run->summary.test_metric : -1.0};
  return m;
}

// The tables `results --json` writes: names and columns of each, rows per
// table (the Pareto front's rows depend on the energies measured: not counted).
std::vector<std::tuple<std::string, std::vector<std::string>, std::size_t>> table_shapes(const fs::path& json) {
  std::ifstream in(json);
  const auto doc = nlohmann::json::parse(in);
  std::vector<std::tuple<std::string, std::vector<std::string>, std::size_t>> out;
  for (const auto& [name, t] : doc["studies"][0]["tables"].items())
    out.emplace_back(name, t["columns"].get<std::vector<std::string>>(), name == "grid_pareto" ? 0 : t["rows"].size());
  return out;
}

TEST_F(SlurmCli, SweepThroughSlurmGivesTheTrialsAndTablesOfALocalRun) {
  TempDir dir;
  write_file(dir / "spec.toml", kGrid);
  const auto local = (dir / "local.db").string();
  const auto cluster = (dir / "cluster.db").string();
  auto r = run_powertrain({"sweep", (dir / "spec.toml").string(), "--db", local, "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_powertrain({"sweep", (dir / "spec.toml").string(), "--db", cluster, "--slurm", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.err.find("submitted job"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("4/4 trials done"), std::string::npos) << r.err;

  // Same trials, same outcomes: the training is deterministic on one thread.
  const auto a = outcome(local, "sg"), b = outcome(cluster, "sg");
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a, b);
  ASSERT_EQ(run_powertrain({"results", local, "--json", (dir / "l.json").string()}).exit_code, 0);
  ASSERT_EQ(run_powertrain({"results", cluster, "--json", (dir / "c.json").string()}).exit_code, 0);
  EXPECT_EQ(table_shapes(dir / "l.json"), table_shapes(dir / "c.json"));

  // Each run came from its own task, on this node.
  auto store = pst::Store::open_readonly(cluster);
  std::set<std::string> jobs;
  for (const auto& run : store.list_runs()) {
    const auto [job, energy] = store.cluster_energy_of(run.id);
    EXPECT_FALSE(job.empty());
    jobs.insert(job);
    EXPECT_FALSE(energy.has_value()) << "this test cluster accounts no energy";
    EXPECT_EQ(run.environment.placement.rfind("Slurm job " + job + " on ", 0), 0u) << run.environment.placement;
    EXPECT_NE(run.environment.placement.find("shared with other jobs"), std::string::npos);
  }
  const auto res = run_powertrain({"results", cluster});
  EXPECT_NE(res.out.find("4 trials ran on Slurm nodes shared with other jobs"), std::string::npos) << res.out;
  EXPECT_EQ(jobs.size(), 4u);
  const auto st = run_powertrain({"status", cluster});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  EXPECT_NE(st.out.find("4 max_epochs"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("_3"), std::string::npos) << st.out;  // the job of the fourth task

  // Again: nothing to submit, nothing changes.
  r = run_powertrain({"sweep", (dir / "spec.toml").string(), "--db", cluster, "--slurm"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("nothing to submit (4 trials done"), std::string::npos) << r.err;
}

TEST_F(SlurmCli, PretrainingDownstreamTrialsWaitForTheirEncoder) {
  TempDir dir;
  write_file(dir / "pre.toml", "name = \"sp\"\nkind = \"pretrain\"\n[workload]\ncommand = " +
                                   toml_list({python(), fake(), "normal"}) +
                                   "\nenv = { FAKE_EPOCH_S = \"0.3\" }\n[training]\nmax_epochs = 3\npatience = 1\n"
                                   "[pretrain]\nsource = { tasks = [\"a\"] }\n"
                                   "steps = [{ tasks = [\"b\"] }]\nvariants = [\"scratch\", \"finetune\", \"frozen\"]\n");
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"study", "pretrain", (dir / "pre.toml").string(), "--db", db, "--slurm", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.err.find("1 pretraining trial"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("after job"), std::string::npos) << r.err;

  auto store = pst::Store::open_readonly(db);
  const auto results = store.results_of(store.find_study("sp")->id);
  ASSERT_EQ(results.size(), 4u);
  std::string pretrain_finished;
  for (const auto& t : results)
    if (t.trial.phase == "pretrain") pretrain_finished = t.run->finished_at;
  ASSERT_FALSE(pretrain_finished.empty());
  int with_encoder = 0;
  for (const auto& t : results) {
    ASSERT_TRUE(t.run) << t.trial.key;
    EXPECT_TRUE(pst::is_done(t.trial.status)) << t.trial.key << ": " << t.trial.message;
    if (t.trial.phase == "pretrain") continue;
    EXPECT_GE(t.run->started_at, pretrain_finished) << "downstream trial " << t.trial.key << " began before its encoder";
    if (!t.run->config.init_encoder.empty()) {
      ++with_encoder;
      EXPECT_TRUE(fs::exists(t.run->config.init_encoder));
    }
  }
  EXPECT_EQ(with_encoder, 2);
}

// Counts of every table that matters, to compare a database before and after.
std::string fingerprint(const std::string& db) {
  auto store = pst::Store::open_readonly(db);
  std::ostringstream s;
  for (const char* t : {"runs", "epochs", "epoch_channels", "timeline", "imports", "trials"})
    s << t << "=" << std::get<std::int64_t>(store.query(std::string("SELECT count(*) FROM ") + t).rows[0][0].value) << " ";
  const auto attempts = store.query("SELECT group_concat(status || ':' || attempts, ',') FROM trials").rows[0][0].value;
  s << std::get<std::string>(attempts);
  return s.str();
}

TEST_F(SlurmCli, ACancelledTaskLosesNothingAndItsResubmissionDuplicatesNothing) {
  TempDir dir;
  write_file(dir / "grid.toml", "name = \"sc\"\n[workload]\ncommand = " + toml_list({python(), fake(), "normal"}) +
                                    "\nenv = { FAKE_EPOCH_S = \"0.8\", FAKE_METRICS = \"0.5,0.6,0.7,0.8,0.9,0.95\" }\n"
                                    "[training]\nmax_epochs = 6\npatience = 2\nmin_delta = 0.01\n"
                                    "[grid]\nbatch_sizes = [16, 32]\nlearning_rates = [0.1]\n");
  const auto db = (dir / "r.db").string();
  auto r = run_powertrain({"sweep", (dir / "grid.toml").string(), "--db", db, "--slurm"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string job = r.out.substr(0, r.out.find_first_of(" \n"));
  ASSERT_FALSE(job.empty()) << r.out;

  // Cancel task 0 once it has finished two epochs.
  const auto results = fs::path(db + ".slurm") / "sc" / "results";
  bool two_epochs = false;
  for (int i = 0; i < 300 && !two_epochs; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (const auto& e : fs::directory_iterator(results)) {
      const auto name = e.path().filename().string();
      if (name.find("-" + job + "_0-") == std::string::npos || name.find(".partial.db") == std::string::npos) continue;
      try {
        auto s = pst::Store::open_readonly(e.path());
        for (const auto& run : s.list_runs()) two_epochs = two_epochs || s.epochs_of(run.id).size() >= 2;
      } catch (const std::exception&) {
      }
    }
  }
  ASSERT_TRUE(two_epochs) << "task 0 did not get through two epochs";
  ASSERT_EQ(run_program("/usr/bin/env", {"scancel", job + "_0"}).exit_code, 0);

  // Wait for the whole job to leave the queue (task 1 runs to its end).
  for (int i = 0; i < 600; ++i) {
    const auto q = run_program("/usr/bin/env", {"squeue", "-h", "-j", job});
    if (q.exit_code != 0 || q.out.find_first_not_of(" \n") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(run_powertrain({"collect", db}).exit_code, 0);
  {
    auto store = pst::Store::open_readonly(db);
    const auto trials = store.results_of(store.find_study("sc")->id);
    ASSERT_EQ(trials.size(), 2u);
    const auto& cancelled = trials[0];
    EXPECT_EQ(cancelled.trial.status, pst::TrialStatus::interrupted) << cancelled.trial.message;
    ASSERT_TRUE(cancelled.run);
    EXPECT_GE(store.epochs_of(cancelled.run->id).size(), 2u) << "its epochs are kept";
    EXPECT_TRUE(pst::is_done(trials[1].trial.status));
  }

  // collect again: nothing changes.
  const auto before = fingerprint(db);
  ASSERT_EQ(run_powertrain({"collect", db}).exit_code, 0);
  EXPECT_EQ(fingerprint(db), before);

  // Resubmitted: only the cancelled trial goes out, and finishes.
  r = run_powertrain({"sweep", (dir / "grid.toml").string(), "--db", db, "--slurm", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.err.find(": 1 trial"), std::string::npos) << r.err;
  auto store = pst::Store::open_readonly(db);
  const auto trials = store.results_of(store.find_study("sc")->id);
  ASSERT_EQ(trials.size(), 2u);
  for (const auto& t : trials) EXPECT_TRUE(pst::is_done(t.trial.status)) << t.trial.key;
  EXPECT_EQ(trials[0].trial.attempts, 2);
  EXPECT_EQ(trials[1].trial.attempts, 1);
  EXPECT_EQ(store.list_runs().size(), 3u) << "the interrupted run, and one finished run per trial";
  const auto after = fingerprint(db);
  ASSERT_EQ(run_powertrain({"collect", db}).exit_code, 0);
  EXPECT_EQ(fingerprint(db), after);
}

// Issue 26: a study whose command srun starts as two ranks: the array task
// gets the tasks in its allocation, rank 0 talks to powertrain, and both
// ranks stop at the same epoch.
TEST_F(SlurmCli, ATrialSrunStartsAsTwoRanksAgreesOnEveryEpoch) {
  TempDir dir;
  write_file(dir / "ranks.py", R"(
import os, sys
sys.path.insert(0, os.environ["PT_PACKAGE"])
import powertrain as pt
last = 0
for n in pt.epochs():
    last = n
    pt.report(0.5 + 0.01 * n)
pt.test(0.5)
with open(os.path.join(os.environ["PT_OUT"], f"rank-{os.environ['SLURM_PROCID']}"), "w") as f:
    f.write(str(last))
)");
  write_file(dir / "spec.toml", "name = \"sr\"\n[workload]\ncommand = " +
                                    toml_list({python(), (dir / "ranks.py").string()}) +
                                    "\nnproc_per_node = 2\nlauncher = \"srun\"\n"
                                    "env = { PT_PACKAGE = \"" + std::string(POWERTRAIN_TEST_SOURCE_DIR) +
                                    "/python\", PT_OUT = \"" + dir.path().string() + "\" }\n"
                                    "[training]\nmax_epochs = 3\npatience = 5\n"
                                    "[grid]\nbatch_sizes = [32]\nlearning_rates = [0.01]\n");
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"sweep", (dir / "spec.toml").string(), "--db", db, "--slurm", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const auto o = outcome(db, "sr");
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(std::get<0>(o.begin()->second), "max_epochs");
  EXPECT_EQ(std::get<1>(o.begin()->second), 3);
  EXPECT_EQ(read_file(dir / "rank-0"), "3");
  EXPECT_EQ(read_file(dir / "rank-1"), "3");
}

TEST_F(SlurmCli, BadSlurmInputIsOneLine) {
  TempDir dir;
  write_file(dir / "spec.toml", std::string(kGrid) + "[execution.slurm]\nmemory = \"16 G\"\n");
  auto r = run_powertrain({"sweep", (dir / "spec.toml").string(), "--db", (dir / "r.db").string(), "--slurm"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'execution.slurm.memory' must be one word"), std::string::npos) << r.err;
  write_file(dir / "spec.toml", kGrid);
  r = run_powertrain({"sweep", (dir / "spec.toml").string(), "--db", (dir / "r.db").string(), "--slurm",
                      "--slurm-opt=--partition=nosuchpartition"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("sbatch refused the job"), std::string::npos) << r.err;
  r = run_powertrain({"sweep", (dir / "spec.toml").string(), "--db", (dir / "r.db").string(), "--wait"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--wait and --slurm-opt go with --slurm"), std::string::npos) << r.err;
}

// Issue 24: `sweep --slurm --wait` stopped by a signal exited 130 without
// saying that the jobs go on (with --quiet, not a word). Slurm's client
// commands are stand-ins here: what is tested is powertrain's own exit.
TEST(SlurmWaitCli, ASignalWhileWaitingSaysTheJobsGoOnEvenWhenQuiet) {
  TempDir dir;
  const auto bin = dir / "bin";
  write_file(bin / "sbatch", "#!/bin/sh\necho 4242\n");
  write_file(bin / "squeue", "#!/bin/sh\necho '4242_0|PENDING|(null)|Priority'\necho '4242_1|PENDING|(null)|Priority'\n");
  for (const char* tool : {"sbatch", "squeue"})
    fs::permissions(bin / tool, fs::perms::owner_all, fs::perm_options::replace);
  write_file(dir / "grid.toml", "name = \"waiting\"\nkind = \"grid\"\n[workload]\ncommand = " +
                                    toml_list({python(), fake(), "normal"}) +
                                    "\n[training]\nmax_epochs = 3\n[grid]\nbatch_sizes = [16, 32]\nlearning_rates = [0.1]\n");
  const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", (bin.string() + ":" + old_path).c_str(), 1);
  const pid_t pt = powertrain::testing::spawn_powertrain(
      {"sweep", (dir / "grid.toml").string(), "--db", (dir / "r.db").string(), "--slurm", "--wait", "--quiet"},
      dir / "out");
  ::setenv("PATH", old_path.c_str(), 1);
  // Waiting: the job file is written once it submitted.
  for (int i = 0; i < 400 && !fs::exists(dir / "r.db.slurm" / "waiting" / "jobs"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ::kill(pt, SIGINT);
  int st = 0;
  ::waitpid(pt, &st, 0);
  std::ifstream in(dir / "out");
  const std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(st)) << err;
  EXPECT_EQ(WEXITSTATUS(st), 130) << err;
  EXPECT_NE(err.find("go on (4242)"), std::string::npos) << err;
  EXPECT_NE(err.find("scancel 4242"), std::string::npos) << err;
}

// --- search --slurm: asynchronous successive halving on the cluster ------------

// 4 setups of tiny images, rungs ending at epochs 1, 2 and 4 (eta 2).
const char* kSearch = R"(name = "ss"
kind = "search"
[workload]
dataset = "synthetic-images"
[workload.data]
train_samples = 256
eval_samples = 64
image_size = 16
num_classes = 4
[training]
max_epochs = 4
patience = 2
min_delta = 0.0
threads = 1
target_metric = TARGET
[search]
batch_sizes = [16, 64]
learning_rates = [0.003, 0.05]
min_epochs = 1
eta = 2
)";

std::string search_spec(const std::string& target, int train_samples = 256, const std::string& eta = "2") {
  std::string text = kSearch;
  text.replace(text.find("eta = 2"), 7, "eta = " + eta);
  if (target.empty()) text.erase(text.find("target_metric = TARGET\n"), 23);  // ranked by metric
  else text.replace(text.find("TARGET"), 6, target);
  text.replace(text.find("train_samples = 256"), 19, "train_samples = " + std::to_string(train_samples));
  return text;
}

// What must hold of a search's segments in the study's database: one trial
// per segment, each with exactly one finished run whose epochs are numbered
// from where its setup's earlier segment ended, each epoch once; every
// result file taken in once. Returns the number of segments.
int check_search_segments(const std::string& db, const std::string& study) {
  auto store = pst::Store::open_readonly(db);
  const auto s = store.find_study(study);
  if (!s) {
    ADD_FAILURE() << "no study " << study;
    return 0;
  }
  std::set<std::string> keys;
  int segments = 0;
  for (const auto& r : store.results_of(s->id)) {
    ++segments;
    EXPECT_TRUE(keys.insert(r.trial.key).second) << "segment twice: " << r.trial.key;
    EXPECT_TRUE(pst::is_done(r.trial.status)) << r.trial.key << ": " << r.trial.message;
    EXPECT_NE(r.trial.status, pst::TrialStatus::failed) << r.trial.message;
    if (!r.run) {
      ADD_FAILURE() << "no run: " << r.trial.key;
      continue;
    }
    const auto epochs = store.epochs_of(r.run->id);
    EXPECT_FALSE(epochs.empty()) << r.trial.key;
    for (std::size_t i = 1; i < epochs.size(); ++i) EXPECT_EQ(epochs[i].epoch, epochs[i - 1].epoch + 1) << r.trial.key;
    if (epochs.empty()) continue;
    if (r.trial.step > 0) {
      EXPECT_GT(epochs.front().epoch, 1) << "continued, not restarted";
    } else {
      EXPECT_EQ(epochs.front().epoch, 1);
    }
  }
  // Finished runs: one per segment; the other runs are interrupted attempts.
  const auto finished = std::get<std::int64_t>(
      store.query("SELECT count(*) FROM runs WHERE trial_id IN (SELECT id FROM trials WHERE study_id = ?) AND "
                  "status NOT IN ('interrupted', 'running')",
                  {s->id})
          .rows[0][0].value);
  EXPECT_EQ(finished, segments);
  const auto imported = std::get<std::int64_t>(
      store.query("SELECT count(*) FROM imports WHERE outcome = 'imported' AND trial_id IN (SELECT id FROM trials "
                  "WHERE study_id = ?)",
                  {s->id})
          .rows[0][0].value);
  EXPECT_EQ(imported, std::get<std::int64_t>(store.query("SELECT count(*) FROM runs WHERE trial_id IN (SELECT id FROM "
                                                         "trials WHERE study_id = ?)",
                                                         {s->id})
                                                 .rows[0][0].value))
      << "every run came from one result file, taken in once";
  return segments;
}

// The chosen setup in a search's output: "bs=.. lr=.." on the choice's row.
std::string choice_of(const std::string& out) {
  const auto at = out.find("chosen setup");
  if (at == std::string::npos) return "";
  const auto bs = out.find("bs=", at);
  if (bs == std::string::npos) return "";
  auto end = out.find_first_of("\n|", bs);
  auto text = out.substr(bs, end == std::string::npos ? std::string::npos : end - bs);
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

TEST_F(SlurmCli, SearchThroughSlurmChoosesAsTheLocalSearchAndRecordsEverySegmentOnce) {
  TempDir dir;
  write_file(dir / "search.toml", search_spec("0.9"));
  const auto local = (dir / "local.db").string();
  const auto cluster = (dir / "cluster.db").string();
  auto r = run_powertrain({"search", (dir / "search.toml").string(), "--db", local, "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto local_choice = choice_of(r.out);
  ASSERT_FALSE(local_choice.empty()) << r.out;

  r = run_powertrain({"search", (dir / "search.toml").string(), "--db", cluster, "--slurm", "--wait", "--slots", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.err.find("submitted job"), std::string::npos) << r.err;
  EXPECT_EQ(choice_of(r.out), local_choice) << r.out;
  const int segments = check_search_segments(cluster, "ss");
  EXPECT_GE(segments, 5) << "4 first segments and at least one continued";

  // Each segment ran in its own array task.
  {
    auto store = pst::Store::open_readonly(cluster);
    for (const auto& run : store.list_runs())
      EXPECT_EQ(run.environment.placement.rfind("Slurm job ", 0), 0u) << run.environment.placement;
  }
  // status shows the rungs.
  const auto st = run_powertrain({"status", cluster});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  EXPECT_NE(st.out.find("Search 'ss': rungs"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("promoted"), std::string::npos) << st.out;

  // Finished: again, nothing goes out and nothing changes.
  const auto before = fingerprint(cluster);
  r = run_powertrain({"search", (dir / "search.toml").string(), "--db", cluster, "--slurm"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("0 segments sent to Slurm now"), std::string::npos) << r.err;
  EXPECT_EQ(fingerprint(cluster), before);
}

// Without --wait: each call submits what may start and returns; calls again
// drive the search to the same end.
TEST_F(SlurmCli, SearchThroughSlurmAdvancesWithEachCallWithoutWait) {
  TempDir dir;
  write_file(dir / "search.toml", search_spec("0.9"));
  const auto db = (dir / "r.db").string();
  auto r = run_powertrain({"search", (dir / "search.toml").string(), "--db", db, "--slurm", "--slots", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("4 segments"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not finished"), std::string::npos) << r.err;
  bool finished = false;
  for (int i = 0; i < 120 && !finished; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    r = run_powertrain({"search", (dir / "search.toml").string(), "--db", db, "--slurm", "--quiet"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    finished = r.out.find("(chosen)") != std::string::npos;
  }
  EXPECT_TRUE(finished);
  check_search_segments(db, "ss");
}

// A segment that continues a setup is cancelled (scancel) mid-segment: the
// search sends it again, it continues from the state the setup's earlier
// segment saved, and it is recorded once, with the cancelled attempt kept as
// interrupted.
TEST_F(SlurmCli, ASegmentCancelledMidwayIsRunAgainFromItsSavedStateWithoutDuplicateOrLoss) {
  TempDir dir;
  // More images, rungs ending at epochs 1 and 4: the continued segment
  // (epochs 2-4) takes a few seconds. No target: no segment ends early at it.
  write_file(dir / "search.toml", search_spec("", 3000, "4"));
  const auto db = (dir / "r.db").string();
  const pid_t pt = powertrain::testing::spawn_powertrain(
      {"search", (dir / "search.toml").string(), "--db", db, "--slurm", "--wait", "--slots", "4"},
      (dir / "out").string());
  const auto results = fs::path(db + ".slurm") / "ss" / "results";
  std::string cancelled;  // "<job>_<task>"
  for (int i = 0; i < 1200 && cancelled.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::error_code ec;
    if (!fs::is_directory(results, ec)) continue;
    for (const auto& e : fs::directory_iterator(results, ec)) {
      const auto name = e.path().filename().string();
      if (name.find(".partial.db") == std::string::npos) continue;
      try {
        auto s = pst::Store::open_readonly(e.path());
        const auto n = s.query("SELECT count(*) FROM epochs e JOIN runs r ON r.id = e.run_id JOIN trials t ON "
                               "t.run_id = r.id WHERE t.step > 0")
                           .rows[0][0].value;
        if (std::get<std::int64_t>(n) > 0) {
          // trial-<id>-<job>_<task>-r<n>.partial.db
          const auto a = name.find('-', 6) + 1;
          cancelled = name.substr(a, name.rfind("-r") - a);
        }
      } catch (const std::exception&) {
      }
      if (!cancelled.empty()) break;
    }
  }
  if (cancelled.empty()) {
    ::kill(pt, SIGINT);
    ::waitpid(pt, nullptr, 0);
    std::ifstream in(dir / "out");
    FAIL() << "no continued segment got through an epoch:\n" << std::string((std::istreambuf_iterator<char>(in)), {});
  }
  ASSERT_EQ(run_program("/usr/bin/env", {"scancel", cancelled}).exit_code, 0);
  int st = 0;
  ::waitpid(pt, &st, 0);
  std::ifstream in(dir / "out");
  const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(st)) << out;
  EXPECT_EQ(WEXITSTATUS(st), 0) << out;
  EXPECT_NE(out.find("The search's choice"), std::string::npos) << out;

  check_search_segments(db, "ss");
  auto store = pst::Store::open_readonly(db);
  const auto runs = store.query(
      "SELECT t.key, t.attempts, t.step, r.status FROM runs r JOIN trials t ON t.id = r.trial_id WHERE r.slurm_job = ?",
      {cancelled});
  ASSERT_EQ(runs.rows.size(), 1u) << "the cancelled task's run, taken in once";
  EXPECT_EQ(std::get<std::string>(runs.rows[0][3].value), "interrupted");
  EXPECT_EQ(std::get<std::int64_t>(runs.rows[0][1].value), 2) << "cancelled once, run again once";
  const auto key = std::get<std::string>(runs.rows[0][0].value);
  const auto trial = store.find_trial(store.find_study("ss")->id, key);
  ASSERT_TRUE(trial && trial->run_id);
  EXPECT_TRUE(pst::is_done(trial->status));
  const auto epochs = store.epochs_of(*trial->run_id);
  ASSERT_FALSE(epochs.empty());
  EXPECT_EQ(epochs.front().epoch, 2) << "continued from the saved state of epoch 1";
}

}  // namespace
