// Runs over several nodes in the store (schema 9): per-node rows, the merged
// epochs and totals, replacing a node's record without duplicating it.
#include <gtest/gtest.h>

#include "powertrain/error.h"
#include "powertrain/store/store.h"
#include "samples.h"
#include "temp_dir.h"

namespace powertrain::store {
namespace {

using testing::sample_config;
using testing::sample_environment;
using testing::TempDir;

run::EpochRecord epoch(int n, double duration_s, double energy_j, std::string method = "counter") {
  run::EpochRecord e;
  e.epoch = n;
  e.duration_s = duration_s;
  e.train_duration_s = duration_s;
  e.energy_j = energy_j;
  e.machine_energy_j = energy_j;
  e.train_energy_j = energy_j;
  e.method = std::move(method);
  e.val_metric = 0.5 + 0.2 * n;
  energy::ChannelEnergy ch;
  ch.channel_id = "rapl:package-0";
  ch.device = "package-0";
  ch.method = energy::Method::counter;
  ch.energy_j = energy_j;
  ch.machine_energy_j = energy_j;
  e.channels.push_back(ch);
  return e;
}

run::RunSummary summary_of(const std::vector<run::EpochRecord>& epochs, run::RunStatus status, double extra_s = 0,
                           double extra_j = 0) {
  run::RunSummary s;
  s.status = status;
  s.epochs = static_cast<int>(epochs.size());
  for (const auto& e : epochs) {
    s.duration_s += e.duration_s;
    s.energy_j += e.energy_j;
    s.machine_energy_j += e.machine_energy_j;
  }
  s.duration_s += extra_s;
  s.energy_j += extra_j;
  s.machine_energy_j += extra_j;
  s.method = "counter";
  s.energy_to_target_j = epochs.empty() ? 0.0 : epochs[0].energy_j;  // reached in epoch 1 (0.7 >= 0.6)
  return s;
}

// A primary run of 2 epochs (100 J and 110 J) over 2 nodes.
std::int64_t primary_run(Store& store) {
  auto config = sample_config();
  config.target_metric = 0.6;
  const auto id = store.begin_run(config, sample_environment());
  store.set_run_nodes(id, 2, "/shared/nodes/job1");
  const std::vector<run::EpochRecord> epochs{epoch(1, 5.0, 100.0), epoch(2, 5.0, 110.0)};
  for (const auto& e : epochs) store.add_epoch(id, e);
  store.finish_run(id, summary_of(epochs, run::RunStatus::converged));
  return id;
}

run::NodeRun secondary(std::vector<run::EpochRecord> epochs, bool complete, double extra_s = 0, double extra_j = 0) {
  run::NodeRun n;
  n.node = 1;
  n.host = "gpu08";
  n.source = complete ? "node-1.db" : "node-1.partial.db";
  n.complete = complete;
  n.summary = summary_of(epochs, complete ? run::RunStatus::stopped : run::RunStatus::running, extra_s, extra_j);
  n.epochs = std::move(epochs);
  return n;
}

TEST(NodesStore, TheMergeIsStoredWithEachNodesRows) {
  TempDir dir;
  auto store = Store::open(dir / "r.db");
  const auto id = primary_run(store);
  EXPECT_EQ(store.run_nodes(id).nodes, 2);
  EXPECT_EQ(store.runs_awaiting_nodes(), std::vector<std::int64_t>{id});
  const auto m = store.record_nodes(id, {secondary({epoch(1, 6.0, 90.0, "estimated"), epoch(2, 4.0, 95.0)}, true)});
  EXPECT_TRUE(store.runs_awaiting_nodes().empty());

  const auto run = store.run(id);
  EXPECT_DOUBLE_EQ(run.summary.energy_j, 395.0);
  EXPECT_DOUBLE_EQ(run.summary.duration_s, 10.0);
  EXPECT_EQ(run.summary.method, "counter+estimated");
  EXPECT_EQ(run.summary.status, run::RunStatus::converged);  // the primary's
  EXPECT_DOUBLE_EQ(*run.summary.energy_to_target_j, 190.0);  // both nodes' epoch 1
  const auto epochs = store.epochs_of(id);
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_DOUBLE_EQ(epochs[0].energy_j, 190.0);
  EXPECT_DOUBLE_EQ(epochs[0].duration_s, 6.0);
  EXPECT_EQ(epochs[0].method, "counter+estimated");
  EXPECT_DOUBLE_EQ(epochs[1].energy_j, 205.0);
  ASSERT_EQ(epochs[0].channels.size(), 2u);
  EXPECT_EQ(epochs[0].channels[0].channel_id, "rapl:package-0");
  EXPECT_EQ(epochs[0].channels[1].channel_id, "node1/rapl:package-0");
  EXPECT_EQ(epochs[0].channels[1].device, "node 1 (gpu08): package-0");
  EXPECT_DOUBLE_EQ(epochs[0].channels[1].energy_j, 90.0);

  const auto stored = store.node_merge_of(id);
  ASSERT_EQ(stored.run.per_node.size(), 2u);
  EXPECT_DOUBLE_EQ(stored.run.per_node[0].energy_j, 210.0);  // node 0's own, as before the merge
  EXPECT_EQ(stored.run.per_node[0].host, "node-7");
  EXPECT_DOUBLE_EQ(stored.run.per_node[1].energy_j, 185.0);
  EXPECT_DOUBLE_EQ(stored.epochs[1].energy_j, m.epochs[1].energy_j);
}

TEST(NodesStore, AnUnfinishedNodeIsReplacedByItsFinishedRecordWithoutDuplicates) {
  TempDir dir;
  auto store = Store::open(dir / "r.db");
  const auto id = primary_run(store);
  // Node 1 died 2 s into epoch 2 (3 J): epoch 2 is partial, covered 2 s.
  store.record_nodes(id, {secondary({epoch(1, 6.0, 90.0)}, false, 2.0, 3.0)});
  auto epochs = store.epochs_of(id);
  EXPECT_DOUBLE_EQ(epochs[1].energy_j, 113.0);
  EXPECT_EQ(epochs[1].method, "counter, partial");
  EXPECT_DOUBLE_EQ(store.node_merge_of(id).epochs[1].covered_s, 2.0);
  EXPECT_EQ(store.run_nodes(id).unfinished, std::vector<int>{1});
  EXPECT_EQ(store.runs_awaiting_nodes(), std::vector<std::int64_t>{id});
  EXPECT_DOUBLE_EQ(store.run(id).summary.energy_j, 210.0 + 93.0);

  // Its whole record after all (a slow node): it replaces the first.
  for (int i = 0; i < 2; ++i)
    store.record_nodes(id, {secondary({epoch(1, 6.0, 90.0), epoch(2, 4.0, 95.0)}, true)});
  epochs = store.epochs_of(id);
  EXPECT_DOUBLE_EQ(epochs[1].energy_j, 205.0);
  EXPECT_EQ(epochs[1].method, "counter");
  EXPECT_EQ(epochs[1].channels.size(), 2u);
  EXPECT_DOUBLE_EQ(store.run(id).summary.energy_j, 395.0);
  EXPECT_EQ(store.run_nodes(id).complete, (std::vector<int>{0, 1}));
  EXPECT_TRUE(store.runs_awaiting_nodes().empty());
}

TEST(NodesStore, AMissingNodeMakesEveryWindowPartial) {
  TempDir dir;
  auto store = Store::open(dir / "r.db");
  const auto id = primary_run(store);
  const auto m = store.record_nodes(id, {});
  EXPECT_EQ(m.run.missing, std::vector<int>{1});
  for (const auto& e : store.epochs_of(id)) EXPECT_EQ(e.method, "counter, partial");
  EXPECT_DOUBLE_EQ(store.run(id).summary.energy_j, 210.0);
  EXPECT_EQ(store.run(id).summary.method, "counter, partial");
}

TEST(NodesStore, RefusesRunsOnOneNodeAndRanksOutOfRange) {
  TempDir dir;
  auto store = Store::open(dir / "r.db");
  const auto one = store.begin_run(sample_config(), sample_environment());
  EXPECT_THROW(store.record_nodes(one, {}), StoreError);
  const auto id = primary_run(store);
  auto n = secondary({epoch(1, 1, 1)}, true);
  n.node = 2;
  EXPECT_THROW(store.record_nodes(id, {n}), StoreError);
  n.node = 0;
  EXPECT_THROW(store.record_nodes(id, {n}), StoreError);
  EXPECT_THROW(store.set_run_nodes(id, 0, ""), StoreError);
}

}  // namespace
}  // namespace powertrain::store
