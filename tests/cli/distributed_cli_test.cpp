// Issue 26, end to end: a distributed program (torchrun, gloo on the CPU) under
// `powertrain train --` and in a grid study, and several ranks of a program
// without torch.distributed agreeing through powertrain's socket folder.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>

#include <fmt/format.h>
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
using powertrain::testing::toml_list;
using powertrain::testing::write_file;

std::string python() { return powertrain::testing::test_python(); }
const std::string kDdpScript = std::string(POWERTRAIN_TEST_SOURCE_DIR) + "/examples/ddp-pytorch/train.py";

bool has_torch() { return run_program(python(), {"-c", "import torch.distributed"}).exit_code == 0; }

// "rank R of W: last epoch E" of every rank, from the program's output.
std::map<int, int> last_epochs(const std::string& output) {
  std::map<int, int> out;
  static const std::regex line(R"(rank (\d+) of \d+: last epoch (\d+))");
  for (std::sregex_iterator it(output.begin(), output.end(), line), end; it != end; ++it)
    out[std::stoi((*it)[1])] = std::stoi((*it)[2]);
  return out;
}

// Each epoch once, numbered 1..n, with energy; one CPU channel (the node's, once).
void expect_epochs_once(const pst::Store& store, std::int64_t run_id, int n) {
  const auto epochs = store.epochs_of(run_id);
  ASSERT_EQ(static_cast<int>(epochs.size()), n);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(epochs[static_cast<std::size_t>(i)].epoch, i + 1);
    EXPECT_GT(epochs[static_cast<std::size_t>(i)].energy_j, 0.0);
    int cpu_channels = 0;
    for (const auto& c : epochs[static_cast<std::size_t>(i)].channels)
      cpu_channels += c.component == powertrain::energy::Component::cpu ? 1 : 0;
    EXPECT_EQ(cpu_channels, 1) << "the node's CPU counted once, not once per rank";
  }
}

TEST(DistributedCli, TorchrunRanksStopTogetherAndEveryEpochIsRecordedOnce) {
  if (!has_torch()) GTEST_SKIP() << python() << " has no torch.distributed (scripts/setup installs it)";
  TempDir dir;
  ASSERT_EQ(powertrain::testing::write_tiny_fashion_mnist(dir.path().string()).exit_code, 0);
  const auto db = (dir / "r.db").string();
  // The issue's report: torchrun named by the user, every rank calling the package.
  // Patience 1 with a large min_delta stops the run at epoch 2 of the script's 10.
  const auto torchrun = (fs::path(python()).parent_path() / "torchrun").string();
  std::vector<std::string> args{"train", "--db", db, "--max-epochs", "10", "--patience", "1", "--min-delta", "0.9",
                                "--idle-timeout", "120", "--env", "OMP_NUM_THREADS=1", "--"};
  if (fs::exists(torchrun)) args.insert(args.end(), {torchrun});
  else args.insert(args.end(), {python(), "-m", "torch.distributed.run"});
  args.insert(args.end(), {"--standalone", "--nproc_per_node", "2", kDdpScript, "--data-dir", dir.path().string(),
                           "--max-samples", "200", "--max-epochs", "10", "--threads", "1"});
  const auto r = run_powertrain(args);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(last_epochs(r.out + r.err), (std::map<int, int>{{0, 2}, {1, 2}})) << r.err;
  auto store = pst::Store::open_readonly(db);
  const auto runs = store.list_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].summary.epochs, 2);
  expect_epochs_once(store, runs[0].id, 2);
}

TEST(DistributedCli, AGridStudyStartsEachTrialThroughTorchrun) {
  if (!has_torch()) GTEST_SKIP() << python() << " has no torch.distributed (scripts/setup installs it)";
  TempDir dir;
  ASSERT_EQ(powertrain::testing::write_tiny_fashion_mnist(dir.path().string()).exit_code, 0);
  write_file(dir / "grid.toml",
             "name = \"ddp-grid\"\nkind = \"grid\"\n[workload]\ncommand = " +
                 toml_list({"{python}", kDdpScript, "--batch-size", "{batch_size}", "--lr", "{learning_rate}",
                            "--seed", "{seed}", "--max-epochs", "{max_epochs}", "--threads", "1", "--data-dir",
                            dir.path().string(), "--max-samples", "200"}) +
                 "\nnproc_per_node = 2\nenv = { OMP_NUM_THREADS = \"1\" }\n"
                 "[training]\nmax_epochs = 3\npatience = 1\nmin_delta = 0.9\n"
                 "[grid]\nbatch_sizes = [32]\nlearning_rates = [0.01, 0.05]\n"
                 "[execution]\nidle_timeout_s = 120\n");
  const auto db = (dir / "r.db").string();
  const auto r = run_program("/usr/bin/env", {"POWERTRAIN_PYTHON=" + python(), powertrain::testing::powertrain_binary(),
                                              "sweep", (dir / "grid.toml").string(), "--db", db, "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto store = pst::Store::open_readonly(db);
  const auto results = store.results_of(store.find_study("ddp-grid")->id);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& t : results) {
    ASSERT_TRUE(t.run);
    EXPECT_TRUE(pst::is_done(t.trial.status)) << t.trial.message;
    EXPECT_EQ(t.run->config.command.nproc_per_node, 2);
    EXPECT_EQ(t.run->summary.epochs, 2);  // patience 1, min_delta 0.9: the rule's stop, for both ranks
    expect_epochs_once(store, t.run->id, 2);
    EXPECT_GT(t.run->summary.test_metric, 0.0);
  }
}

// Ranks without torch.distributed share rank 0's decision through files in
// powertrain's socket folder, which powertrain removes with the folder.
TEST(DistributedCli, RanksWithoutTorchDistributedAgreeThroughTheSocketFolder) {
  TempDir dir;
  const std::string program = R"(
import os, subprocess, sys
if "RANK" not in os.environ:  # the launcher: three ranks of this same program
    procs = [subprocess.Popen([sys.executable, __file__], env={**os.environ, "RANK": str(r), "WORLD_SIZE": "3",
                                                               "LOCAL_RANK": str(r)}) for r in range(3)]
    sys.exit(max(p.wait() for p in procs))
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else os.environ["PT_PACKAGE"])
import powertrain as pt
last = 0
for n in pt.epochs(20):
    last = n
    pt.report(0.5 + 0.01 * n)
pt.test(0.5)
print(f"rank {os.environ['RANK']} of 3: last epoch {last}", flush=True)
open(os.path.join(os.environ["PT_OUT"], "socket-folder"), "w").write(os.path.dirname(os.environ["POWERTRAIN_SOCKET"]))
)";
  write_file(dir / "ranks.py", program);
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"train", "--db", db, "--max-epochs", "4", "--env",
                                 "PT_PACKAGE=" + std::string(POWERTRAIN_TEST_SOURCE_DIR) + "/python", "--env",
                                 "PT_OUT=" + dir.path().string(), "--", python(), (dir / "ranks.py").string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(last_epochs(r.out + r.err), (std::map<int, int>{{0, 4}, {1, 4}, {2, 4}})) << r.err;
  auto store = pst::Store::open_readonly(db);
  const auto runs = store.list_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(store.epochs_of(runs[0].id).size(), 4u);
  const auto folder = powertrain::testing::read_file(dir / "socket-folder");
  ASSERT_FALSE(folder.empty());
  EXPECT_FALSE(fs::exists(folder)) << "the socket folder and the ranks' decision files are removed";
}

#ifdef FAKE_NVML_PATH
// Four ranks on four GPUs of a five-GPU server (fake NVML: each rank's process
// appears on its GPU when it starts, as with a real CUDA context): every GPU a
// rank uses counts once, and the idle fifth GPU is reported apart, not charged.
TEST(DistributedCli, FourRanksOnFourGpusCountEachOnceAndTheIdleFifthApart) {
  std::error_code ec;
  if (fs::read_symlink("/proc/self/ns/pid", ec).string() != "pid:[4026531836]")
    GTEST_SKIP() << "NVML's host process ids do not compare with ours in this PID namespace";
  TempDir dir;
  std::string script;
  for (int i = 0; i < 4; ++i)
    script += fmt::format("gpu {} name=NVIDIA_H100 watts=300 refresh_ms=10 pids_file={}\n", i,
                          (dir / fmt::format("gpu{}.pids", i)).string());
  script += "gpu 4 name=NVIDIA_H100 watts=60 refresh_ms=10 pids=\n";
  write_file(dir / "nvml.txt", script);
  write_file(dir / "ranks.py", R"(
import os, subprocess, sys, time
if "RANK" not in os.environ:
    procs = [subprocess.Popen([sys.executable, __file__, sys.argv[1]], env={**os.environ, "RANK": str(r)})
             for r in range(4)]
    sys.exit(max(p.wait() for p in procs))
with open(os.path.join(sys.argv[1], f"gpu{os.environ['RANK']}.pids"), "w") as f:  # "cuda:RANK"
    f.write(str(os.getpid()))
time.sleep(1.0)
)");
  const auto json_path = (dir / "m.json").string();
  const auto r = run_program("/usr/bin/env", {"POWERTRAIN_NVML_LIBRARY=" + std::string(FAKE_NVML_PATH),
                                              "FAKE_NVML_SCRIPT=" + (dir / "nvml.txt").string(),
                                              powertrain::testing::powertrain_binary(), "measure", "--json", "-o",
                                              json_path, "--", python(), (dir / "ranks.py").string(),
                                              dir.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = nlohmann::json::parse(powertrain::testing::read_file(json_path));
  double ranks_gpu_j = 0.0, other_j = 0.0, idle_j = -1.0;
  int used = 0;
  for (const auto& c : doc["channels"]) {
    if (c["component"] != "gpu") {
      if (c["in_total"] == true) other_j += c["energy_j"].get<double>();
      continue;
    }
    if (c["id"] == "nvml:gpu4") {
      EXPECT_EQ(c["used_by_command"], false) << c.dump();
      idle_j = c["machine_energy_j"].get<double>();
      continue;
    }
    ++used;
    EXPECT_EQ(c["used_by_command"], true) << c.dump();
    // The run's share of each of its GPUs is the whole GPU, not a multiple of it.
    EXPECT_NEAR(c["energy_j"].get<double>(), c["machine_energy_j"].get<double>(), 1e-6) << c.dump();
    ranks_gpu_j += c["energy_j"].get<double>();
  }
  EXPECT_EQ(used, 4) << doc.dump();
  // The total holds each of the four GPUs once and the idle fifth not at all,
  // which is reported apart.
  EXPECT_NEAR(doc["energy_j"].get<double>(), other_j + ranks_gpu_j, 1e-6 * doc["energy_j"].get<double>()) << doc.dump();
  EXPECT_GT(idle_j, 0.0);
  EXPECT_NEAR(doc["excluded_gpu_energy_j"].get<double>(), idle_j, 1e-6) << doc.dump();
  // Four GPUs at 300 W for the command's duration, each once.
  const double seconds = doc["duration_s"].get<double>();
  EXPECT_NEAR(ranks_gpu_j, 4 * 300.0 * seconds, 0.25 * 4 * 300.0 * seconds) << doc.dump();
}
#endif

}  // namespace
