// The per-node table of trials over several nodes (issue 26).
#include <gtest/gtest.h>

#include "powertrain/study/node_tables.h"

namespace powertrain::study {
namespace {

run::NodeRun node(int k, double energy_j, double duration_s, bool complete = true) {
  run::NodeRun n;
  n.node = k;
  n.host = "h" + std::to_string(k);
  n.complete = complete;
  n.summary.energy_j = energy_j;
  n.summary.machine_energy_j = 2 * energy_j;
  n.summary.duration_s = duration_s;
  n.summary.method = "estimated, attributed by CPU-time share";
  run::EpochRecord e;
  e.epoch = 1;
  e.energy_j = energy_j;
  e.machine_energy_j = 2 * energy_j;
  e.duration_s = duration_s;
  e.method = n.summary.method;
  n.epochs = {e};
  return n;
}

std::vector<store::TrialResult> two_trials() {
  std::vector<store::TrialResult> out(2);
  out[0].trial.id = 7;
  out[0].run = store::RunRecord{};
  out[0].run->id = 70;
  out[1].trial.id = 8;
  out[1].run = store::RunRecord{};
  out[1].run->id = 80;  // one node
  return out;
}

TEST(NodeTable, OneRowPerNodeAndTheirMergeWhoseEnergyIsTheirSum) {
  const auto t = node_table(two_trials(), [](std::int64_t id) {
    if (id != 70) return run::MergedRun{};
    return run::merge_node_runs({node(0, 10.0, 4.0), node(1, 6.5, 5.0)}, 2);
  });
  ASSERT_TRUE(t);
  EXPECT_EQ(t->name, "trial_nodes");
  ASSERT_EQ(t->rows.size(), 3u);  // node 0, node 1, all; trial 8 ran on one node
  const auto col = [&](const std::string& name) {
    for (std::size_t i = 0; i < t->columns.size(); ++i)
      if (t->columns[i].name == name) return i;
    ADD_FAILURE() << name;
    return std::size_t{0};
  };
  const auto energy = [&](std::size_t row) { return std::get<double>(t->rows[row][col("energy_j")].value); };
  EXPECT_EQ(std::get<std::string>(t->rows[2][col("node")].value), "all");
  EXPECT_DOUBLE_EQ(energy(2), energy(0) + energy(1));
  EXPECT_DOUBLE_EQ(energy(2), 16.5);
  EXPECT_DOUBLE_EQ(std::get<double>(t->rows[2][col("duration_s")].value), 5.0);
  EXPECT_EQ(std::get<std::string>(t->rows[1][col("host")].value), "h1");
  EXPECT_EQ(std::get<std::string>(t->rows[2][col("method")].value), "estimated, attributed by CPU-time share");
}

TEST(NodeTable, AMissingNodeIsARowAndMakesTheMergePartial) {
  const auto t = node_table(two_trials(), [](std::int64_t id) {
    if (id != 70) return run::MergedRun{};
    return run::merge_node_runs({node(0, 10.0, 4.0)}, 2);
  });
  ASSERT_TRUE(t);
  ASSERT_EQ(t->rows.size(), 3u);
  EXPECT_EQ(std::get<std::string>(t->rows[1].back().value), "no record");
  EXPECT_NE(std::get<std::string>(t->rows[2].back().value).find("partial"), std::string::npos);
  EXPECT_EQ(t->notes.size(), 2u);
}

TEST(NodeTable, NoneWithoutRunsOverSeveralNodes) {
  EXPECT_FALSE(node_table(two_trials(), [](std::int64_t) { return run::MergedRun{}; }));
}

}  // namespace
}  // namespace powertrain::study
