// Merging the per-node records of a run over several nodes.
#include "powertrain/run/nodes.h"

#include <map>

#include <gtest/gtest.h>

#include "powertrain/error.h"

namespace powertrain::run {
namespace {

NodeWindow window(int node, double duration_s, double energy_j, std::string method) {
  NodeWindow w;
  w.node = node;
  w.host = "host" + std::to_string(node);
  w.duration_s = duration_s;
  w.energy_j = energy_j;
  w.machine_energy_j = 2 * energy_j;
  w.train_energy_j = 0.75 * energy_j;
  w.eval_energy_j = 0.25 * energy_j;
  w.method = std::move(method);
  return w;
}

TEST(MergeNodeWindows, SumsEnergyTakesTheLongestDurationAndJoinsMethods) {
  const auto m = merge_node_windows({window(1, 12.5, 300.0, "counter+estimated"), window(0, 10.0, 200.0, "counter")}, 2);
  EXPECT_DOUBLE_EQ(m.energy_j, 500.0);
  EXPECT_DOUBLE_EQ(m.machine_energy_j, 1000.0);
  EXPECT_DOUBLE_EQ(m.train_energy_j, 375.0);
  EXPECT_DOUBLE_EQ(m.eval_energy_j, 125.0);
  EXPECT_DOUBLE_EQ(m.duration_s, 12.5);
  // The estimate of node 1 shows in the label: the run is not all counters.
  EXPECT_EQ(m.method, "counter+estimated");
  EXPECT_FALSE(m.partial);
  EXPECT_DOUBLE_EQ(m.covered_s, 12.5);
  EXPECT_TRUE(m.missing.empty());
  ASSERT_EQ(m.per_node.size(), 2u);  // kept, in rank order
  EXPECT_EQ(m.per_node[0].node, 0);
  EXPECT_DOUBLE_EQ(m.per_node[0].energy_j, 200.0);
  EXPECT_EQ(m.per_node[1].host, "host1");
  EXPECT_DOUBLE_EQ(m.per_node[1].energy_j, 300.0);
}

TEST(MergeNodeWindows, TheWeakestMethodOfAnyNodeIsInTheLabel) {
  EXPECT_EQ(merge_node_windows({window(0, 1, 1, "counter"), window(1, 1, 1, "sampled")}, 2).method, "counter+sampled");
  EXPECT_EQ(merge_node_windows({window(0, 1, 1, "estimated"), window(1, 1, 1, "counter")}, 2).method,
            "counter+estimated");
  EXPECT_EQ(merge_node_windows({window(0, 1, 1, "counter"), window(1, 1, 1, "counter")}, 2).method, "counter");
}

TEST(MergeNodeWindows, AMissingNodeMakesTheWindowPartialWithNothingCoveredByAll) {
  const auto m = merge_node_windows({window(0, 10.0, 200.0, "counter"), window(2, 9.0, 100.0, "counter")}, 3);
  EXPECT_TRUE(m.partial);
  EXPECT_EQ(m.missing, std::vector<int>{1});
  EXPECT_DOUBLE_EQ(m.energy_j, 300.0);  // what was measured is kept
  EXPECT_DOUBLE_EQ(m.duration_s, 10.0);
  EXPECT_DOUBLE_EQ(m.covered_s, 0.0);
  EXPECT_EQ(m.method, "counter, partial");
}

TEST(MergeNodeWindows, ANodeCutShortCoversOnlyItsSeconds) {
  auto cut = window(1, 4.0, 80.0, "counter");
  cut.partial = true;
  cut.covered_s = 4.0;
  const auto m = merge_node_windows({window(0, 10.0, 200.0, "counter"), cut}, 2);
  EXPECT_TRUE(m.partial);
  EXPECT_TRUE(m.missing.empty());
  EXPECT_DOUBLE_EQ(m.covered_s, 4.0);
  EXPECT_DOUBLE_EQ(m.energy_j, 280.0);
  EXPECT_EQ(m.method, "counter, partial");
}

TEST(MergeNodeWindows, APartialChannelOfANodeMakesTheWindowPartial) {
  const auto m = merge_node_windows({window(0, 10.0, 1.0, "counter, partial"), window(1, 10.0, 1.0, "counter")}, 2);
  EXPECT_TRUE(m.partial);
  EXPECT_EQ(m.method, "counter, partial");
}

TEST(MergeNodeWindows, OneNodeIsTheNodesOwnRecord) {
  const auto m = merge_node_windows({window(0, 3.0, 30.0, "counter+estimated")}, 1);
  EXPECT_DOUBLE_EQ(m.energy_j, 30.0);
  EXPECT_DOUBLE_EQ(m.duration_s, 3.0);
  EXPECT_EQ(m.method, "counter+estimated");
  EXPECT_FALSE(m.partial);
}

TEST(MergeNodeWindows, RefusesBadRanks) {
  EXPECT_THROW(merge_node_windows({window(2, 1, 1, "counter")}, 2), ConfigError);
  EXPECT_THROW(merge_node_windows({window(-1, 1, 1, "counter")}, 2), ConfigError);
  EXPECT_THROW(merge_node_windows({window(1, 1, 1, "counter"), window(1, 1, 1, "counter")}, 2), ConfigError);
  EXPECT_THROW(merge_node_windows({}, 0), ConfigError);
}

EpochRecord epoch(int n, double duration_s, double energy_j) {
  EpochRecord e;
  e.epoch = n;
  e.duration_s = duration_s;
  e.energy_j = energy_j;
  e.machine_energy_j = energy_j;
  e.train_energy_j = energy_j;
  e.method = "counter";
  return e;
}

NodeRun node_run(int node, std::vector<EpochRecord> epochs, double extra_s = 0.0, double extra_j = 0.0) {
  NodeRun r;
  r.node = node;
  r.host = "host" + std::to_string(node);
  r.epochs = std::move(epochs);
  for (const auto& e : r.epochs) {
    r.summary.duration_s += e.duration_s;
    r.summary.energy_j += e.energy_j;
    r.summary.machine_energy_j += e.machine_energy_j;
  }
  r.summary.duration_s += extra_s;
  r.summary.energy_j += extra_j;
  r.summary.machine_energy_j += extra_j;
  r.summary.epochs = static_cast<int>(r.epochs.size());
  r.summary.method = "counter";
  return r;
}

TEST(MergeNodeRuns, MergedTotalsAreTheSumOfTheNodesOwnRecords) {
  const auto m = merge_node_runs(
      {node_run(0, {epoch(1, 5, 50), epoch(2, 5, 60)}), node_run(1, {epoch(1, 6, 40), epoch(2, 4, 45)})}, 2);
  ASSERT_EQ(m.epochs.size(), 2u);
  EXPECT_DOUBLE_EQ(m.epochs[0].energy_j, 90.0);
  EXPECT_DOUBLE_EQ(m.epochs[0].duration_s, 6.0);
  EXPECT_DOUBLE_EQ(m.epochs[1].energy_j, 105.0);
  EXPECT_DOUBLE_EQ(m.epochs[1].duration_s, 5.0);
  EXPECT_DOUBLE_EQ(m.run.energy_j, 195.0);
  EXPECT_DOUBLE_EQ(m.run.duration_s, 10.0);
  EXPECT_FALSE(m.run.partial);
  EXPECT_EQ(m.epochs[1].epoch, 2);
}

TEST(MergeNodeRuns, ANodeKilledMidRunGivesPartialWindowsAndLosesNothing) {
  // Node 1 finished epoch 1, was stopped 2 s into epoch 2 (its totals hold
  // them), and has no record of epoch 3; its file was never finished.
  auto dead = node_run(1, {epoch(1, 5, 40)}, 2.0, 15.0);
  dead.complete = false;
  const auto m = merge_node_runs({node_run(0, {epoch(1, 5, 50), epoch(2, 5, 60), epoch(3, 5, 70)}), dead}, 2);
  ASSERT_EQ(m.epochs.size(), 3u);
  EXPECT_FALSE(m.epochs[0].partial);
  EXPECT_DOUBLE_EQ(m.epochs[0].energy_j, 90.0);
  EXPECT_TRUE(m.epochs[1].partial);
  EXPECT_DOUBLE_EQ(m.epochs[1].covered_s, 2.0);
  EXPECT_DOUBLE_EQ(m.epochs[1].energy_j, 75.0);
  EXPECT_TRUE(m.epochs[1].missing.empty());
  EXPECT_TRUE(m.epochs[2].partial);
  EXPECT_EQ(m.epochs[2].missing, std::vector<int>{1});
  EXPECT_DOUBLE_EQ(m.epochs[2].energy_j, 70.0);
  EXPECT_DOUBLE_EQ(m.epochs[2].covered_s, 0.0);
  // Nothing lost: the run's total is every joule either node recorded.
  EXPECT_DOUBLE_EQ(m.run.energy_j, 180.0 + 55.0);
  EXPECT_TRUE(m.run.partial);
  EXPECT_DOUBLE_EQ(m.run.covered_s, 7.0);
  EXPECT_EQ(m.run.method, "counter, partial");
}

TEST(MergeNodeRuns, AMissingNodeIsMissingEverywhere) {
  const auto m = merge_node_runs({node_run(0, {epoch(1, 5, 50)})}, 2);
  EXPECT_TRUE(m.epochs[0].partial);
  EXPECT_EQ(m.epochs[0].missing, std::vector<int>{1});
  EXPECT_TRUE(m.run.partial);
  EXPECT_EQ(m.run.missing, std::vector<int>{1});
  EXPECT_DOUBLE_EQ(m.run.energy_j, 50.0);
}

TEST(MergeNodeRuns, NeedsThePrimary) {
  EXPECT_THROW(merge_node_runs({node_run(1, {epoch(1, 5, 50)})}, 2), ConfigError);
}

TEST(NodeEpochWindows, ACutShortEpochFollowsTheLastOne) {
  const auto w = node_epoch_windows(node_run(1, {epoch(1, 5, 40)}, 3.0, 12.0));
  ASSERT_EQ(w.size(), 2u);
  EXPECT_FALSE(w.at(1).partial);
  EXPECT_TRUE(w.at(2).partial);
  EXPECT_DOUBLE_EQ(w.at(2).covered_s, 3.0);
  EXPECT_DOUBLE_EQ(w.at(2).energy_j, 12.0);
  EXPECT_EQ(node_epoch_windows(node_run(1, {epoch(1, 5, 40)})).size(), 1u);
}

TEST(ParseMethods, ReadsLabels) {
  const auto m = parse_methods("counter+estimated, partial");
  EXPECT_TRUE(m.counter);
  EXPECT_FALSE(m.sampled);
  EXPECT_TRUE(m.estimated);
  EXPECT_TRUE(m.partial);
  EXPECT_FALSE(parse_methods("counter").partial);
}

// Issue 26: the merged label keeps how each node's share was attributed.
TEST(ParseMethods, KeepsTheAttributionWording) {
  const auto m = parse_methods("estimated, partial, attributed by CPU-time share, memory share and GPU processes, "
                               "GPU not measured");
  EXPECT_TRUE(m.estimated);
  EXPECT_TRUE(m.partial);
  EXPECT_EQ(m.attributed_by, (std::vector<std::string>{"CPU-time share", "memory share", "GPU processes"}));
  EXPECT_TRUE(m.gpu_not_measured);
  EXPECT_EQ(method_label(m), "estimated, partial, attributed by CPU-time share, memory share and GPU processes, "
                             "GPU not measured");
  EXPECT_EQ(method_label(parse_methods("counter")), "counter");
}

TEST(MergeNodeWindows, TheLabelKeepsEveryNodesAttribution) {
  NodeWindow a;
  a.node = 0;
  a.duration_s = 2;
  a.energy_j = 10;
  a.method = "estimated, attributed by CPU-time share and memory share";
  NodeWindow b = a;
  b.node = 1;
  b.method = "counter, attributed by CPU-time share and GPU processes";
  const auto m = merge_node_windows({a, b}, 2);
  EXPECT_EQ(m.method, "counter+estimated, attributed by CPU-time share, memory share and GPU processes");
  const auto partial = merge_node_windows({a}, 2);
  EXPECT_EQ(partial.method, "estimated, partial, attributed by CPU-time share and memory share");
}

std::function<std::optional<std::string>(const std::string&)> env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    const auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(NodeRole, FlagsWinAndAreChecked) {
  const auto r = node_role(1, 2, env_of({}));
  EXPECT_EQ(r.rank, 1);
  EXPECT_EQ(r.nodes, 2);
  EXPECT_FALSE(r.primary());
  EXPECT_THROW(node_role(2, 2, env_of({})), ConfigError);
  EXPECT_THROW(node_role(1, -1, env_of({})), ConfigError);
  EXPECT_THROW(node_role(-1, 2, env_of({})), ConfigError);
  EXPECT_THROW(node_role(0, 0, env_of({})), ConfigError);
  EXPECT_EQ(node_role(-1, -1, env_of({})).nodes, 1);
}

TEST(NodeRole, FromAnSrunStep) {
  const auto r = node_role(-1, -1,
                           env_of({{"SLURM_STEP_ID", "0"}, {"SLURM_NODEID", "1"}, {"SLURM_NNODES", "4"},
                                   {"SLURM_STEP_NUM_NODES", "2"}, {"SLURM_STEP_NUM_TASKS", "2"}}));
  EXPECT_EQ(r.rank, 1);
  EXPECT_EQ(r.nodes, 2);  // the step's nodes, not the allocation's
  EXPECT_TRUE(r.from_slurm);
  // A batch script in an allocation (no step) is one node.
  EXPECT_EQ(node_role(-1, -1, env_of({{"SLURM_NODEID", "0"}, {"SLURM_NNODES", "2"}})).nodes, 1);
  // Several tasks per node would measure a node once per task.
  EXPECT_THROW(node_role(-1, -1,
                         env_of({{"SLURM_STEP_ID", "0"}, {"SLURM_NODEID", "0"}, {"SLURM_STEP_NUM_NODES", "2"},
                                 {"SLURM_STEP_NUM_TASKS", "4"}})),
               ConfigError);
  EXPECT_THROW(node_role(-1, -1, env_of({{"SLURM_STEP_ID", "0"}, {"SLURM_NODEID", "x"}, {"SLURM_NNODES", "2"}})),
               ConfigError);
  EXPECT_THROW(node_role(-1, -1,
                         env_of({{"SLURM_STEP_ID", "0"}, {"SLURM_NODEID", "0"}, {"SLURM_STEP_NUM_NODES", "1"},
                                 {"SLURM_STEP_NUM_TASKS", "2"}})),
               ConfigError);
  // One task on one node: a run on one node.
  EXPECT_EQ(node_role(-1, -1,
                      env_of({{"SLURM_STEP_ID", "0"}, {"SLURM_NODEID", "0"}, {"SLURM_STEP_NUM_NODES", "1"},
                              {"SLURM_STEP_NUM_TASKS", "1"}}))
                .nodes,
            1);
}

}  // namespace
}  // namespace powertrain::run
