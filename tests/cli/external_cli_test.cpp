// End-to-end: `powertrain train` and the three studies on the user's own
// training program: a scripted one without torch (tests/external/programs),
// kill -9 during an external trial, and the example PyTorch script.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
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
using powertrain::testing::count_lines;
using powertrain::testing::run_powertrain;
using powertrain::testing::run_program;
using powertrain::testing::TempDir;
using powertrain::testing::write_file;

using powertrain::testing::toml_list;
std::string python() { return powertrain::testing::test_python(); }
std::string fake() { return powertrain::testing::fake_trainer(); }
const std::string kSource = POWERTRAIN_TEST_SOURCE_DIR;

std::string read_all(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }


TEST(ExternalCli, TrainRunsAProgramEpochByEpochUnderTheRule) {
  TempDir dir;
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"train", "--db", db, "--quiet", "--max-epochs", "8", "--patience", "2",
                                 "--min-delta", "0.01", "--batch-size", "32", "--", python(), fake(), "normal"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("converged after 5 epochs"), std::string::npos) << r.out;
  auto store = pst::Store::open_readonly(db);
  const auto runs = store.list_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(store.epochs_of(runs[0].id).size(), 5u);
  EXPECT_EQ(runs[0].config.command.argv.back(), "normal");
  EXPECT_EQ(runs[0].environment.torch_version.rfind("external: ", 0), 0u);
  EXPECT_DOUBLE_EQ(runs[0].summary.test_metric, 0.66);
  // Issue 15: after each epoch, where the run is heading, stored with it
  // (and shown: see ABusyMachineIsFlaggedAndTheQuietWaitIsRecorded).
  for (const auto& e : store.epochs_of(runs[0].id)) {
    ASSERT_TRUE(e.forecast.has_value()) << "epoch " << e.epoch;
    EXPECT_LE(e.forecast->energy_low_j, e.forecast->energy_j);
    EXPECT_LE(e.forecast->energy_j, e.forecast->energy_high_j);
    EXPECT_GE(e.forecast->stop_epoch, e.epoch);
  }
  EXPECT_EQ(store.epochs_of(runs[0].id).back().forecast->method, "stopped");
}

TEST(ExternalCli, ACrashIsOneLineAndTheRunKeepsTheProgramsStderr) {
  TempDir dir;
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"train", "--db", db, "--quiet", "--", python(), fake(), "crash"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("exited with status 3"), std::string::npos) << r.err;
  auto store = pst::Store::open_readonly(db);
  const auto runs = store.list_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].summary.status, powertrain::run::RunStatus::failed);
  EXPECT_NE(runs[0].summary.message.find("RuntimeError: out of memory in the fake trainer"), std::string::npos);
  EXPECT_EQ(store.epochs_of(runs[0].id).size(), 1u);
}

TEST(ExternalCli, BadCommandsAreOneLineAndRecordNothing) {
  TempDir dir;
  const auto db = dir / "r.db";
  auto r = run_powertrain({"train", "--db", db.string(), "--", python(), fake(), "{batchsize}"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("unknown placeholder {batchsize}"), std::string::npos) << r.err;
  r = run_powertrain({"train", "--db", db.string(), "--data", "max_samples=3", "--", python(), fake()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--data is for the built-in trainer"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(db));
}

// A grid of the scripted program, killed with -9 while a trial runs: the
// program and its grandchild go with it, and the resumed study completes
// every trial once, keeping the interrupted run's epochs.
TEST(ExternalCli, Kill9DuringAnExternalTrialLeavesNoProcessAndResumes) {
  TempDir dir;
  const auto pids = dir / "pids";
  write_file(dir / "grid.toml", "name = \"ext-grid\"\nkind = \"grid\"\n[workload]\ncommand = " +
                                    toml_list({python(), fake(), "normal"}) +
                                    "\nenv = { FAKE_EPOCH_S = \"0.15\", FAKE_PID_FILE = \"" + pids.string() +
                                    "\" }\n[training]\nmax_epochs = 6\npatience = 2\nmin_delta = 0.01\n"
                                    "[grid]\nbatch_sizes = [16, 32]\nlearning_rates = [0.1]\n");
  const auto db = (dir / "r.db").string();
  const std::vector<std::string> args{"sweep", (dir / "grid.toml").string(), "--db", db, "--quiet"};
  const pid_t pt = powertrain::testing::spawn_powertrain(args, dir / "out");
  // Kill once the first trial's program is up and has finished an epoch or two.
  for (int i = 0; i < 400 && !fs::exists(pids); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ASSERT_TRUE(fs::exists(pids)) << read_all(dir / "out");
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  ::kill(pt, SIGKILL);
  ::waitpid(pt, nullptr, 0);
  pid_t program = 0, grandchild = 0;
  std::ifstream(pids) >> program >> grandchild;
  for (int i = 0; i < 150 && (alive(program) || alive(grandchild)); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(alive(program)) << "the program outlived powertrain";
  EXPECT_FALSE(alive(grandchild)) << "the program's grandchild outlived powertrain";

  const auto r = run_powertrain(args);
  ASSERT_EQ(r.exit_code, 0) << r.err << read_all(dir / "out");
  auto store = pst::Store::open_readonly(db);
  const auto study = store.find_study("ext-grid");
  ASSERT_TRUE(study);
  const auto results = store.results_of(study->id);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& t : results) {
    EXPECT_TRUE(pst::is_done(t.trial.status));
    ASSERT_TRUE(t.run);
    EXPECT_EQ(static_cast<int>(store.epochs_of(t.run->id).size()), t.run->summary.epochs);
  }
  int interrupted = 0;
  for (const auto& run : store.list_runs()) {
    if (run.summary.status == powertrain::run::RunStatus::interrupted) {
      ++interrupted;
      EXPECT_GE(store.epochs_of(run.id).size(), 1u) << "the interrupted run keeps its epochs";
    }
  }
  EXPECT_EQ(interrupted, 1);
  EXPECT_EQ(store.list_runs().size(), 3u) << "one interrupted run and one run per trial";
}

TEST(ExternalCli, PretrainingStudyPassesTheEncoderBetweenTrials) {
  TempDir dir;
  write_file(dir / "pre.toml", "name = \"ext-pre\"\nkind = \"pretrain\"\n[workload]\ncommand = " +
                                   toml_list({python(), fake(), "normal"}) +
                                   "\n[training]\nmax_epochs = 3\npatience = 1\n"
                                   "[pretrain]\nsource = { tasks = [\"a\"] }\n"
                                   "steps = [{ tasks = [\"b\"] }]\nvariants = [\"scratch\", \"frozen\"]\n");
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"study", "pretrain", (dir / "pre.toml").string(), "--db", db, "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto store = pst::Store::open_readonly(db);
  const auto results = store.results_of(store.find_study("ext-pre")->id);
  ASSERT_EQ(results.size(), 3u);
  int with_encoder = 0;
  for (const auto& t : results) {
    ASSERT_TRUE(t.run) << t.trial.key;
    EXPECT_TRUE(pst::is_done(t.trial.status)) << t.trial.message;
    if (!t.run->config.init_encoder.empty()) {
      ++with_encoder;
      EXPECT_TRUE(t.run->config.freeze_encoder);
      EXPECT_TRUE(fs::exists(t.run->config.init_encoder));
    }
  }
  EXPECT_EQ(with_encoder, 1);
}

TEST(ExternalCli, MultitaskStudyRunsTheSharedAndTheSeparateModels) {
  TempDir dir;
  write_file(dir / "mt.toml", "name = \"ext-mt\"\nkind = \"multitask\"\n[workload]\ncommand = " +
                                  toml_list({python(), fake(), "normal", "--tasks", "{tasks}"}) +
                                  "\n[training]\nmax_epochs = 3\npatience = 1\n"
                                  "[multitask]\ntasks = [\"a\", \"b\"]\n");
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"study", "multitask", (dir / "mt.toml").string(), "--db", db, "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto store = pst::Store::open_readonly(db);
  const auto results = store.results_of(store.find_study("ext-mt")->id);
  std::set<std::string> tasks;
  for (const auto& t : results) {
    ASSERT_TRUE(t.run);
    tasks.insert(t.run->config.tasks);
  }
  EXPECT_EQ(tasks, (std::set<std::string>{"a,b", "a", "b"}));
  // The same tables as a built-in study.
  const auto res = run_powertrain({"results", db, "--study", "ext-mt"});
  EXPECT_EQ(res.exit_code, 0) << res.err;
}

}  // namespace

namespace {

TEST(ExternalCli, MeasureBreaksTheEnergyDownByTheEpochsTheCommandReports) {
  TempDir dir;
  const auto out = dir / "m.json";
  const auto r = run_powertrain({"measure", "--json", "-o", out.string(), "--", python(), fake(), "own_limit"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(read_all(out));
  ASSERT_EQ(j["epochs"].size(), 2u) << j.dump();
  double sum = 0.0;
  for (const auto& e : j["epochs"]) {
    EXPECT_GT(e["energy_j"].get<double>(), 0.0);
    EXPECT_GT(e["duration_s"].get<double>(), 0.015);
    sum += e["energy_j"].get<double>();
  }
  EXPECT_LT(sum, j["energy_j"].get<double>());  // the epochs are part of the whole command
  EXPECT_DOUBLE_EQ(j["epochs"][1]["val_metric"].get<double>(), 0.6);
  // A command that does not speak the protocol gets no breakdown.
  const auto plain = run_powertrain({"measure", "--json", "-o", out.string(), "--", "true"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_TRUE(nlohmann::json::parse(read_all(out))["epochs"].empty());
}

}  // namespace

namespace {

// The example PyTorch script (examples/fashion-mnist-pytorch/train.py) as the
// workload of a quick grid, on tiny generated Fashion-MNIST files: per-epoch
// energy, the rule applied by powertrain, the same tables and report.
TEST(ExternalCli, QuickGridOfTheExamplePyTorchScript) {
  if (run_program(python(), {"-c", "import torch"}).exit_code != 0)
    GTEST_SKIP() << python() << " has no torch (scripts/setup installs it)";
  TempDir dir;
  const auto gen = powertrain::testing::write_tiny_fashion_mnist(dir.path().string());
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const std::string script = kSource + "/examples/fashion-mnist-pytorch/train.py";
  write_file(dir / "grid.toml", "name = \"torch-grid\"\nkind = \"grid\"\n[workload]\ncommand = " +
                                    toml_list({"{python}", script, "--batch-size", "{batch_size}", "--lr",
                                               "{learning_rate}", "--seed", "{seed}", "--max-epochs",
                                               "{max_epochs}", "--threads", "1", "--data-dir",
                                               dir.path().string()}) +
                                    "\nenv = { OMP_NUM_THREADS = \"1\" }\n"
                                    "[training]\nmax_epochs = 3\npatience = 1\nmin_delta = 0.0\n"
                                    "[grid]\nbatch_sizes = [32]\nlearning_rates = [0.01, 0.05]\n");
  const auto db = (dir / "r.db").string();
  const auto r = run_program("/usr/bin/env", {"POWERTRAIN_PYTHON=" + python(), powertrain::testing::powertrain_binary(),
                                              "sweep", (dir / "grid.toml").string(), "--db", db, "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto store = pst::Store::open_readonly(db);
  const auto results = store.results_of(store.find_study("torch-grid")->id);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& t : results) {
    ASSERT_TRUE(t.run);
    EXPECT_TRUE(pst::is_done(t.trial.status)) << t.trial.message;
    const auto epochs = store.epochs_of(t.run->id);
    ASSERT_GE(epochs.size(), 1u);
    for (const auto& e : epochs) {
      EXPECT_GT(e.energy_j, 0.0);
      EXPECT_GT(e.eval_duration_s, 0.0);
      EXPECT_GT(e.samples_per_s, 0.0);
    }
    EXPECT_GT(t.run->summary.test_metric, 0.0);
    EXPECT_LE(t.run->summary.test_metric, 1.0);
    EXPECT_NE(t.run->environment.torch_version.find("external: "), std::string::npos);
  }
  const auto rep = run_powertrain({"report", db, "--out", (dir / "report").string(), "--study", "torch-grid"});
  EXPECT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_TRUE(fs::exists(dir / "report" / "report.html"));
}

// Issue 13, interference: a trial that runs while a process outside
// powertrain's tree burns a CPU is flagged in the store, in `results` and in
// the run's last line; a spec that asks to wait for a quiet machine waits,
// says so, and records the wait. The program sleeps through its epochs, so
// nearly all of the machine's CPU time is others'.
TEST(ExternalCli, ABusyMachineIsFlaggedAndTheQuietWaitIsRecorded) {
  TempDir dir;
  write_file(dir / "grid.toml", "name = \"busy\"\nkind = \"grid\"\n[workload]\ncommand = " +
                                    toml_list({python(), fake(), "normal"}) +
                                    "\nenv = { FAKE_EPOCH_S = \"1.0\", FAKE_METRICS = \"0.5,0.6,0.6,0.6\" }\n"
                                    "[training]\nmax_epochs = 4\npatience = 1\nmin_delta = 0.01\n"
                                    "[grid]\nbatch_sizes = [16]\nlearning_rates = [0.1]\n"
                                    "[execution]\nquiet_wait_s = 2.5\nquiet_cpus = 0.5\n");
  const pid_t burner = powertrain::testing::spawn_program("/bin/sh", {"-c", "while :; do :; done"},
                                                          (dir / "burner.log").string());
  ASSERT_GT(burner, 0);
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"sweep", (dir / "grid.toml").string(), "--db", db});
  ::kill(burner, SIGKILL);
  ::waitpid(burner, nullptr, 0);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto log = r.out + r.err;
  EXPECT_NE(log.find("waiting for a quiet machine: other processes use"), std::string::npos) << log;
  EXPECT_NE(log.find("the machine did not get quiet in 2 s"), std::string::npos) << log;
  EXPECT_NE(log.find("busy machine: other processes used"), std::string::npos) << log;
  EXPECT_NE(log.find("predicted: "), std::string::npos) << log;  // issue 15: the forecast after an epoch

  auto store = pst::Store::open_readonly(db);
  const auto runs = store.list_runs();
  ASSERT_EQ(runs.size(), 1u);
  const auto& s = runs[0].summary;
  ASSERT_TRUE(s.cpu.has_value());
  EXPECT_GE(s.cpu->others_s(), 1.0);
  EXPECT_TRUE(s.cpu->material());
  ASSERT_TRUE(s.quiet_wait_s.has_value());
  EXPECT_NEAR(*s.quiet_wait_s, 2.5, 0.01);
  for (const auto& e : store.epochs_of(runs[0].id)) EXPECT_TRUE(e.cpu.has_value()) << "epoch " << e.epoch;

  const auto res = run_powertrain({"results", db, "--study", "busy"});
  ASSERT_EQ(res.exit_code, 0) << res.err;
  EXPECT_NE(res.out.find("busy: 1 trial ran while other processes used at least 10%"), std::string::npos) << res.out;
  EXPECT_NE(res.out.find("1 trial waited 2.5 s in all for a quiet machine"), std::string::npos) << res.out;
}

}  // namespace

namespace {

// Dead: gone, or a zombie that only waits for its new parent to reap it.
bool dead(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] == 'Z';
}

// Runs `train` over a program that starts a child through `child_start`
// (Python lines run in the forked child), writes the child's pid and sleeps;
// kills powertrain with SIGKILL once the child runs. Returns the child's pid,
// whether it was in a cgroup powertrain made ("/powertrain-"), and whether it
// died within five seconds of powertrain (it is killed here if not).
struct Escape {
  pid_t child = 0;
  bool own_cgroup = false;
  bool died = false;
};
Escape kill9_beside_an_escaped_child(const TempDir& dir, const std::string& child_start) {
  write_file(dir / "escaper.py", "import os, sys, time\npid = os.fork()\nif pid == 0:\n" + child_start +
                                     "with open(sys.argv[1], \"w\") as f:\n    f.write(str(pid))\ntime.sleep(1000)\n");
  const auto pid_file = dir / "sleeper";
  const pid_t pt = powertrain::testing::spawn_powertrain(
      {"train", "--db", (dir / "r.db").string(), "--quiet", "--", python(), (dir / "escaper.py").string(),
       pid_file.string()},
      dir / "out");
  for (int i = 0; i < 400 && !fs::exists(pid_file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Escape e;
  std::ifstream(pid_file) >> e.child;
  if (e.child <= 0 || dead(e.child)) {
    ::kill(pt, SIGKILL);
    ::waitpid(pt, nullptr, 0);
    return e;
  }
  e.own_cgroup = read_all(fs::path("/proc") / std::to_string(e.child) / "cgroup").find("/powertrain-") !=
                 std::string::npos;
  ::kill(pt, SIGKILL);
  ::waitpid(pt, nullptr, 0);
  for (int i = 0; i < 250 && !dead(e.child); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  e.died = dead(e.child);
  if (!e.died) ::kill(e.child, SIGKILL);
  return e;
}

}  // namespace

// Issue 24: a process the program put in a session of its own (setsid) used
// to outlive a kill -9 of powertrain: the guardian killed only the group.
TEST(ExternalCli, WhatTheProgramStartedInANewSessionDiesWithPowertrainKilled9) {
  TempDir dir;
  const auto e = kill9_beside_an_escaped_child(dir, "    os.setsid()\n    os.execvp(\"sleep\", [\"sleep\", \"1000\"])\n");
  ASSERT_GT(e.child, 0) << read_all(dir / "out");
  EXPECT_TRUE(e.died) << "the program's setsid'd child outlived powertrain";
}

// Issue 24, item 10: a process that left the group AND dropped its
// environment (no token) outlived a kill -9 of powertrain. Where powertrain
// made a cgroup of its own, the guardian kills everything left in it.
TEST(ExternalCli, WhatLeftTheGroupAndItsEnvironmentDiesWithPowertrainKilled9) {
  TempDir dir;
  const auto e = kill9_beside_an_escaped_child(
      dir, "    os.setsid()\n    os.execve(\"/bin/sleep\", [\"sleep\", \"1000\"], {})\n");
  ASSERT_GT(e.child, 0) << read_all(dir / "out");
  if (!e.own_cgroup) GTEST_SKIP() << "powertrain could make no cgroup of its own here (read-only cgroup tree)";
  EXPECT_TRUE(e.died) << "the program's setsid'd child without environment outlived powertrain";
}

// Issue 24: the console's one line said "its last stderr lines:" and showed
// none of them (with --quiet the program's stderr was never shown at all).
TEST(ExternalCli, TheFailureLineShowsTheProgramsLastStderrLine) {
  TempDir dir;
  const auto r = run_powertrain({"train", "--db", (dir / "r.db").string(), "--quiet", "--", python(), fake(), "crash"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("RuntimeError: out of memory in the fake trainer"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("lines:"), std::string::npos) << r.err;
}

// Issue 24: a metric of 1e308 printed as 309 digits.
TEST(ExternalCli, AHugeMetricPrintsInScientificNotation) {
  TempDir dir;
  write_file(dir / "huge.py", R"(import json, os, socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["POWERTRAIN_SOCKET"])
r = s.makefile("r")
s.sendall(b'{"event":"epoch_start","epoch":1}\n{"event":"epoch_end","epoch":1,"val_metric":1e308}\n')
r.readline()
s.sendall(b'{"event":"test","metric":1e308}\n')
)");
  const auto r = run_powertrain({"train", "--db", (dir / "r.db").string(), "--max-epochs", "1", "--", python(),
                                 (dir / "huge.py").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("test metric 1.0000e+308"), std::string::npos) << r.out;
  for (const auto* text : {&r.out, &r.err}) {
    std::istringstream lines(*text);
    for (std::string line; std::getline(lines, line);) EXPECT_LT(line.size(), 250u) << line;
  }
}
