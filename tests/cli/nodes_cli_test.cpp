// End-to-end: a run over two nodes, measured by two powertrain processes
// started as a cluster starts them (node ranks 0 and 1, one shared folder) on
// this host, each running the example PyTorch script: the merged record is the
// sum of the nodes' own records; a late node comes in with `collect`; a node
// killed mid-run leaves partial windows and loses nothing.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
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
using powertrain::testing::spawn_powertrain;
using powertrain::testing::TempDir;

std::string python() { return powertrain::testing::test_python(); }
const std::string kSource = POWERTRAIN_TEST_SOURCE_DIR;

bool has_torch() { return run_program(python(), {"-c", "import torch"}).exit_code == 0; }

// 300 training and 100 test images as IDX files.
void make_data(const fs::path& d) {
  const auto gen = powertrain::testing::write_tiny_fashion_mnist(d.string());
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
}

// `powertrain train` of node `rank` of 2 over the example script.
std::vector<std::string> node_args(const fs::path& dir, int rank, int max_epochs, const std::string& wait_s = "60") {
  return {"train", "--db", (dir / "r.db").string(), "--node-rank", std::to_string(rank), "--nodes", "2",
          "--nodes-dir", (dir / "nodes").string(), "--nodes-wait", wait_s, "--max-epochs", std::to_string(max_epochs),
          "--patience", "10", "--threads", "1", "--env", "OMP_NUM_THREADS=1", "--",
          python(), kSource + "/examples/fashion-mnist-pytorch/train.py", "--batch-size", "32", "--max-samples", "200",
          "--max-epochs", "{max_epochs}", "--threads", "1", "--data-dir", dir.string()};
}

int wait_exit(pid_t pid) {
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// The node's own record, read from its node file.
pst::RunRecord node_file_run(const fs::path& file) {
  auto s = pst::Store::open_readonly(file);
  const auto runs = s.list_runs();
  EXPECT_EQ(runs.size(), 1u);
  return runs.at(0);
}

TEST(NodesCli, TwoNodesAreMergedIntoOneRecordThatIsTheSumOfTheirOwn) {
  if (!has_torch()) GTEST_SKIP() << python() << " has no torch (scripts/setup installs it)";
  TempDir dir;
  make_data(dir.path());
  // Node 1 as srun would start it beside node 0: concurrently, same folder.
  const pid_t node1 = spawn_powertrain(node_args(dir.path(), 1, 2), (dir / "node1.log").string());
  const auto r = run_powertrain(node_args(dir.path(), 0, 2));
  const int node1_exit = wait_exit(node1);
  std::ifstream log(dir / "node1.log");
  std::stringstream node1_log;
  node1_log << log.rdbuf();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(node1_exit, 0) << node1_log.str();
  EXPECT_NE(r.out.find(", 2 nodes"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("all 2 nodes"), std::string::npos) << r.err;

  ASSERT_TRUE(fs::exists(dir / "nodes" / "node-1.db"));
  EXPECT_FALSE(fs::exists(dir / "nodes" / "node-1.partial.db"));
  const auto own1 = node_file_run(dir / "nodes" / "node-1.db");
  auto store = pst::Store::open_readonly(dir / "r.db");
  const auto runs = store.list_runs();
  ASSERT_EQ(runs.size(), 1u);  // one run, not one per node
  const auto& run = runs[0];
  const auto merged = store.node_merge_of(run.id);
  ASSERT_EQ(merged.nodes, 2);
  ASSERT_EQ(merged.run.per_node.size(), 2u);
  const auto& own0 = merged.run.per_node[0];
  EXPECT_GT(own0.energy_j, 0.0);
  EXPECT_GT(own1.summary.energy_j, 0.0);
  // The run's total is the sum of the nodes' own totals; its duration the longest.
  EXPECT_NEAR(run.summary.energy_j, own0.energy_j + own1.summary.energy_j, 1e-6);
  EXPECT_NEAR(run.summary.duration_s, std::max(own0.duration_s, own1.summary.duration_s), 1e-9);
  EXPECT_NEAR(merged.run.per_node[1].energy_j, own1.summary.energy_j, 1e-9);
  EXPECT_FALSE(merged.run.partial);
  EXPECT_EQ(run.summary.method.find("partial"), std::string::npos) << run.summary.method;

  // Epoch by epoch: each node's epoch once, summed; node 1's channels kept.
  const auto epochs = store.epochs_of(run.id);
  const auto epochs1 = pst::Store::open_readonly(dir / "nodes" / "node-1.db").epochs_of(own1.id);
  ASSERT_EQ(epochs.size(), 2u);
  ASSERT_EQ(epochs1.size(), 2u);
  ASSERT_EQ(merged.epochs.size(), 2u);
  for (std::size_t i = 0; i < epochs.size(); ++i) {
    const auto& m = merged.epochs[i];
    ASSERT_EQ(m.per_node.size(), 2u);
    EXPECT_NEAR(epochs[i].energy_j, m.per_node[0].energy_j + epochs1[i].energy_j, 1e-6);
    EXPECT_NEAR(epochs[i].duration_s, std::max(m.per_node[0].duration_s, epochs1[i].duration_s), 1e-9);
    double node1_channels = 0.0, all_channels = 0.0;
    for (const auto& ch : epochs[i].channels) {
      if (!ch.in_total) continue;
      all_channels += ch.energy_j;
      if (ch.channel_id.rfind("node1/", 0) == 0) node1_channels += ch.energy_j;
    }
    EXPECT_NEAR(node1_channels, epochs1[i].energy_j, 1e-6);
    EXPECT_NEAR(all_channels, epochs[i].energy_j, 1e-6);
  }
}

TEST(NodesCli, ALateNodeComesInWithCollectOnce) {
  if (!has_torch()) GTEST_SKIP() << python() << " has no torch (scripts/setup installs it)";
  TempDir dir;
  make_data(dir.path());
  // Node 0 does not wait: node 1 has not run yet.
  const auto r0 = run_powertrain(node_args(dir.path(), 0, 1, "0"));
  ASSERT_EQ(r0.exit_code, 0) << r0.err;
  EXPECT_NE(r0.err.find("no record of node 1"), std::string::npos) << r0.err;
  std::int64_t id = 0;
  double energy0 = 0.0;
  {
    auto store = pst::Store::open_readonly(dir / "r.db");
    const auto run = store.list_runs().at(0);
    id = run.id;
    energy0 = run.summary.energy_j;
    EXPECT_NE(run.summary.method.find("partial"), std::string::npos) << run.summary.method;
    const auto e = store.epochs_of(id).at(0);
    EXPECT_NE(e.method.find("partial"), std::string::npos);
  }
  const auto r1 = run_powertrain(node_args(dir.path(), 1, 1));
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  const auto own1 = node_file_run(dir / "nodes" / "node-1.db");
  const auto c = run_powertrain({"collect", (dir / "r.db").string()});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  auto store = pst::Store::open_readonly(dir / "r.db");
  const auto run = store.run(id);
  EXPECT_NEAR(run.summary.energy_j, energy0 + own1.summary.energy_j, 1e-6);
  EXPECT_EQ(run.summary.method.find("partial"), std::string::npos) << run.summary.method;
  EXPECT_EQ(store.epochs_of(id).at(0).method.find("partial"), std::string::npos);
  // Twice changes nothing.
  ASSERT_EQ(run_powertrain({"collect", (dir / "r.db").string()}).exit_code, 0);
  EXPECT_NEAR(pst::Store::open_readonly(dir / "r.db").run(id).summary.energy_j, run.summary.energy_j, 1e-9);
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t c;
  while (in >> c) out.push_back(c);
  return out;
}

TEST(NodesCli, ANodeKilledMidRunLeavesPartialWindowsAndLosesNothing) {
  if (!has_torch()) GTEST_SKIP() << python() << " has no torch (scripts/setup installs it)";
  TempDir dir;
  make_data(dir.path());
  // Node 1 dies (SIGKILL) once it has recorded its first epoch.
  const pid_t node1 = spawn_powertrain(node_args(dir.path(), 1, 3), (dir / "node1.log").string());
  const auto partial = dir / "nodes" / "node-1.partial.db";
  bool epoch1 = false;
  for (int i = 0; i < 600 && !epoch1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    try {
      auto s = pst::Store::open_readonly(partial);
      const auto runs = s.list_runs();
      epoch1 = !runs.empty() && !s.epochs_of(runs[0].id).empty();
    } catch (const std::exception&) {
    }
  }
  const auto program = children_of(node1);
  ::kill(node1, SIGKILL);
  for (const auto c : program) ::kill(c, SIGKILL);
  wait_exit(node1);
  ASSERT_TRUE(epoch1) << "node 1 recorded no epoch";
  const auto own1 = pst::Store::open_readonly(partial);
  const auto run1 = own1.list_runs().at(0);
  const auto epochs1 = own1.epochs_of(run1.id);
  ASSERT_EQ(epochs1.size(), 1u);

  const auto r = run_powertrain(node_args(dir.path(), 0, 2, "1"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("node 1 never finished its record"), std::string::npos) << r.err;
  auto store = pst::Store::open_readonly(dir / "r.db");
  const auto run = store.list_runs().at(0);
  const auto merged = store.node_merge_of(run.id);
  const auto epochs = store.epochs_of(run.id);
  ASSERT_EQ(epochs.size(), 2u);
  // Epoch 1: both nodes. Epoch 2: node 1 is missing, the window partial.
  EXPECT_EQ(epochs[0].method.find("partial"), std::string::npos) << epochs[0].method;
  EXPECT_NEAR(epochs[0].energy_j, merged.epochs[0].per_node[0].energy_j + epochs1[0].energy_j, 1e-6);
  EXPECT_NE(epochs[1].method.find("partial"), std::string::npos) << epochs[1].method;
  EXPECT_EQ(merged.epochs[1].missing, std::vector<int>{1});
  EXPECT_DOUBLE_EQ(merged.epochs[1].covered_s, 0.0);
  // Nothing lost: every joule either node recorded is in the run.
  EXPECT_NEAR(run.summary.energy_j, merged.run.per_node[0].energy_j + run1.summary.energy_j, 1e-6);
  EXPECT_NE(run.summary.method.find("partial"), std::string::npos);
  EXPECT_FALSE(store.run_nodes(run.id).unfinished.empty());
}

TEST(NodesCli, BadNodeSettingsAreOneLine) {
  TempDir dir;
  const auto db = (dir / "r.db").string();
  const auto nd = (dir / "nodes").string();
  const std::vector<std::string> program{"--", python(), "-c", "pass"};
  auto with = [&](std::vector<std::string> a) {
    a.insert(a.begin(), {"train", "--db", db, "--quiet"});
    a.insert(a.end(), program.begin(), program.end());
    return run_powertrain(a);
  };
  auto r = with({"--node-rank", "1", "--nodes", "2"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(powertrain::testing::count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--nodes-dir"), std::string::npos) << r.err;
  r = with({"--node-rank", "2", "--nodes", "2", "--nodes-dir", nd});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--node-rank must be between 0 and 1"), std::string::npos) << r.err;
  r = with({"--node-rank", "1", "--nodes-dir", nd});
  EXPECT_NE(r.err.find("go together"), std::string::npos) << r.err;
  r = with({"--nodes-dir", nd});
  EXPECT_NE(r.err.find("goes with a run over several nodes"), std::string::npos) << r.err;
  r = run_powertrain({"train", "--db", db, "--node-rank", "0", "--nodes", "2", "--nodes-dir", nd});
  EXPECT_NE(r.err.find("your own program"), std::string::npos) << r.err;
  // A folder serves one run: a second node 1 (or another run's) is refused
  // before anything runs.
  fs::create_directories(dir / "nodes");
  std::ofstream(dir / "nodes" / "node-1.db") << "x";
  r = with({"--node-rank", "1", "--nodes", "2", "--nodes-dir", nd});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("a folder of its own"), std::string::npos) << r.err;
  std::ofstream(dir / "nodes" / "primary") << "";
  r = with({"--node-rank", "0", "--nodes", "2", "--nodes-dir", nd});
  EXPECT_NE(r.err.find("a folder of its own"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(db));  // nothing recorded
  // A link planted as the folder is not followed.
  fs::create_symlink(dir / "nodes", dir / "link");
  r = with({"--node-rank", "1", "--nodes", "2", "--nodes-dir", (dir / "link").string()});
  EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
}

// A real allocation over two nodes: the test Slurm with two slurmd on this
// host (SLURM_CLUSTER_NODES=2); srun starts one powertrain per node, which
// find their ranks in the step, train the example script and merge; and one
// measure per node, reported by node 0.
TEST(NodesCli, AnSrunStepOverTwoNodesIsOneRunAndOneReport) {
  if (!has_torch()) GTEST_SKIP() << python() << " has no torch (scripts/setup installs it)";
  TempDir dir;
  const auto cluster = (dir / "c").string();
  const std::string script = kSource + "/tests/support/slurm/slurm-cluster";
  const auto up = run_program("/usr/bin/env", {"SLURM_CLUSTER_NODES=2", script, "start", cluster});
  if (up.exit_code == 77) GTEST_SKIP() << "no Slurm here: " << up.err.substr(0, up.err.find('\n'));
  ASSERT_EQ(up.exit_code, 0) << up.err;
  struct Stop {
    std::string script, cluster;
    ~Stop() { (void)run_program(script, {"stop", cluster}); }
  } stop{script, cluster};
  make_data(dir.path());
  const std::string conf = "SLURM_CONF=" + cluster + "/etc/slurm.conf";
  std::vector<std::string> args{conf, "srun", "--nodes", "2", "--ntasks-per-node", "1", "--time", "5",
                                powertrain::testing::powertrain_binary()};
  auto train = node_args(dir.path(), 0, 2);
  // Ranks, nodes and folder come from the step; the program is the DDP
  // example under torchrun over the two nodes (one rank each, gloo), which
  // shares rank 0's decision with node 1's rank through torch.distributed.
  train.erase(train.begin() + 3, train.begin() + 9);
  const auto dashes = std::find(train.begin(), train.end(), "--");
  train.erase(dashes + 1, train.end());
  const std::string port = std::to_string(20000 + ::getpid() % 20000);
  for (const std::string& a :
       {std::string("sh"), std::string("-c"),
        "exec \"$0\" -m torch.distributed.run --nnodes 2 --nproc_per_node 1 --node_rank \"$SLURM_NODEID\" "
        "--master_addr 127.0.0.1 --master_port " + port + " \"$@\"",
        python(), kSource + "/examples/ddp-pytorch/train.py", std::string("--batch-size"), std::string("32"),
        std::string("--max-samples"), std::string("200"), std::string("--max-epochs"), std::string("{max_epochs}"),
        std::string("--threads"), std::string("1"), std::string("--data-dir"), dir.path().string()})
    train.push_back(a);
  args.insert(args.end(), train.begin(), train.end());
  const auto r = run_program("/usr/bin/env", args, dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(", 2 nodes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("node 1 of 2 recorded"), std::string::npos) << r.out;
  auto store = pst::Store::open_readonly(dir / "r.db");
  const auto runs = store.list_runs();
  ASSERT_EQ(runs.size(), 1u);
  const auto nodes = store.run_nodes(runs[0].id);
  EXPECT_EQ(nodes.nodes, 2);
  EXPECT_EQ(nodes.complete, (std::vector<int>{0, 1}));
  EXPECT_NE(nodes.dir.find("r.db.nodes/job"), std::string::npos) << nodes.dir;
  const auto merged = store.node_merge_of(runs[0].id);
  ASSERT_EQ(merged.run.per_node.size(), 2u);
  EXPECT_NEAR(runs[0].summary.energy_j, merged.run.per_node[0].energy_j + merged.run.per_node[1].energy_j, 1e-6);
  EXPECT_EQ(store.epochs_of(runs[0].id).size(), 2u);

  const auto m = run_program("/usr/bin/env", {conf, "srun", "--nodes", "2", "--ntasks-per-node", "1", "--time", "5",
                                              powertrain::testing::powertrain_binary(), "measure", "--json", "-o",
                                              (dir / "all.json").string(), "--", "sleep", "0.3"},
                             dir.path().string());
  ASSERT_EQ(m.exit_code, 0) << m.err;
  std::ifstream in(dir / "all.json");
  const auto doc = nlohmann::json::parse(in);
  EXPECT_EQ(doc["nodes"]["nodes"], 2);
  ASSERT_EQ(doc["nodes"]["per_node"].size(), 2u);
  EXPECT_TRUE(doc["nodes"]["per_node"][1]["reported"].get<bool>());
  EXPECT_FALSE(doc["nodes"]["total"]["partial"].get<bool>());
  // Several tasks on a node would count the node twice: refused.
  const auto twice = run_program("/usr/bin/env", {conf, "srun", "--nodes", "1", "--ntasks", "2", "--time", "5",
                                                  powertrain::testing::powertrain_binary(), "measure", "--", "true"},
                                 dir.path().string());
  EXPECT_NE(twice.exit_code, 0);
  EXPECT_NE(twice.err.find("--ntasks-per-node 1"), std::string::npos) << twice.err;
}

// `measure` over two nodes: one measure per node, node 0 reports both and
// their total; a missing node makes the total partial.
TEST(NodesCli, MeasureReportsPerNodeAndInTotal) {
  TempDir dir;
  const auto nd = (dir / "nodes").string();
  const pid_t node1 = spawn_powertrain({"measure", "--node-rank", "1", "--nodes", "2", "--nodes-dir", nd, "--", "sleep",
                                        "0.3"},
                                       (dir / "node1.log").string());
  const auto report = (dir / "all.json").string();
  const auto r = run_powertrain({"measure", "--json", "-o", report, "--node-rank", "0", "--nodes", "2", "--nodes-dir",
                                 nd, "--nodes-wait", "60", "--", "sleep", "0.5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(wait_exit(node1), 0);
  std::ifstream in(report);
  const auto doc = nlohmann::json::parse(in);
  std::ifstream in1(dir / "nodes" / "node-1.json");
  const auto own1 = nlohmann::json::parse(in1);
  const auto& nodes = doc.at("nodes");
  EXPECT_EQ(nodes.at("nodes"), 2);
  ASSERT_EQ(nodes.at("per_node").size(), 2u);
  const auto& n0 = nodes["per_node"][0];
  const auto& n1 = nodes["per_node"][1];
  EXPECT_DOUBLE_EQ(n0["energy_j"].get<double>(), doc["energy_j"].get<double>());  // node 0's own figures
  EXPECT_DOUBLE_EQ(n1["energy_j"].get<double>(), own1["energy_j"].get<double>());
  EXPECT_NEAR(nodes["total"]["energy_j"].get<double>(),
              doc["energy_j"].get<double>() + own1["energy_j"].get<double>(), 1e-9);
  EXPECT_DOUBLE_EQ(nodes["total"]["duration_s"].get<double>(),
                   std::max(doc["duration_s"].get<double>(), own1["duration_s"].get<double>()));
  EXPECT_FALSE(nodes["total"]["partial"].get<bool>());
  EXPECT_GT(doc["duration_s"].get<double>(), own1["duration_s"].get<double>());

  // Node 1 never comes: its row says so and the total is partial (text report).
  const auto lone = run_powertrain({"measure", "--node-rank", "0", "--nodes", "2", "--nodes-dir",
                                    (dir / "lone").string(), "--nodes-wait", "0", "--", "true"});
  ASSERT_EQ(lone.exit_code, 0) << lone.err;
  EXPECT_NE(lone.err.find("no report from this node"), std::string::npos) << lone.err;
  EXPECT_NE(lone.err.find("partial"), std::string::npos) << lone.err;
  EXPECT_NE(lone.err.find("all 2 nodes"), std::string::npos) << lone.err;
}

// torchrun on one node: one meter, one node row.
TEST(NodesCli, MeasureOfTorchrunOnOneNodeIsOneNodeRow) {
  const auto torchrun = fs::path(python()).parent_path() / "torchrun";
  if (!fs::exists(torchrun)) GTEST_SKIP() << torchrun << " is missing (scripts/setup installs torch)";
  TempDir dir;
  const auto report = (dir / "m.json").string();
  const auto r = run_powertrain({"measure", "--json", "-o", report, "--", torchrun.string(), "--standalone",
                                 "--nproc_per_node", "2", "--no-python", "true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(report);
  const auto doc = nlohmann::json::parse(in);
  ASSERT_TRUE(doc.contains("nodes")) << doc.dump();
  EXPECT_EQ(doc["nodes"]["nodes"], 1);
  ASSERT_EQ(doc["nodes"]["per_node"].size(), 1u);
  EXPECT_DOUBLE_EQ(doc["nodes"]["total"]["energy_j"].get<double>(), doc["energy_j"].get<double>());
}

}  // namespace
