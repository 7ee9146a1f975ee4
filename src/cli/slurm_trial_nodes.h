#pragma once
// A Slurm study's trial over several nodes (docs/cluster.md, "Trials over
// several nodes"): the array task's job script runs `slurm-task` on node 0
// (the primary: it runs the trial, whose program srun starts on every node,
// and records it) and `slurm-task --node-meter` once on each other node of
// the allocation (a secondary: it meters its node and leaves its record in a
// node file). Per trial they meet in <study folder>/nodes/<result stem>/:
//
//   primary               node 0 claimed the folder (as for `train --nodes`)
//   socket-<node name>    where that node's meter listens (empty: node 0's,
//                         the program's POWERTRAIN_SOCKET); the program's
//                         ranks find theirs through POWERTRAIN_NODE_SOCKETS
//   node-<k>.partial.db   node k's record while it runs; node-<k>.db once ended
//   ended                 node 0's run of the trial is over (or it skipped it)
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>

#include "powertrain/slurm/nodes.h"
#include "powertrain/slurm/slurm.h"
#include "powertrain/store/store.h"

namespace powertrain::cli {

/// The name this node goes by: $SLURMD_NODENAME, else the host name (the
/// Python package looks its entry up by the same rule).
std::string this_node_name();

/// <study folder>/nodes/<stem>: the folder of one attempt at one trial.
std::filesystem::path trial_nodes_dir(const slurm::JobFile& job, const std::string& stem);

/// Seconds node 0 waits for the other nodes' meters before starting the
/// program and for their records after it: $POWERTRAIN_NODES_WAIT_S, else 120.
double trial_nodes_wait_s();

/// Node 0's side of one trial. The constructor claims the folder, says where
/// node 0's ranks talk (its socket entry), waits up to wait_s for the other
/// nodes' meters to say where theirs listen, and puts POWERTRAIN_NODE_SOCKETS
/// into this process's environment, which the program inherits. finish()
/// (or the destructor) says the run is over; finish() also merges the nodes'
/// records into the run in `store` (slurm::merge_nodes).
class PrimaryNodes {
 public:
  PrimaryNodes(std::filesystem::path dir, int nodes, double wait_s, const std::atomic<bool>* stop);
  ~PrimaryNodes();
  PrimaryNodes(const PrimaryNodes&) = delete;
  PrimaryNodes& operator=(const PrimaryNodes&) = delete;

  /// Records in `store` that run `run_id` spans the nodes (at its start).
  void on_run_start(store::Store& store, std::int64_t run_id) const;
  /// The run ended: the other meters may stop; their records come in.
  slurm::NodeMergeResult finish(store::Store& store, std::int64_t run_id);

 private:
  void end();
  std::filesystem::path dir_;
  int nodes_;
  double wait_s_;
  const std::atomic<bool>* stop_;
  bool ended_ = false;
};

/// Node 0 skips a trial (done by an earlier task): the other nodes skip it too.
void skip_trial_nodes(const std::filesystem::path& dir);

/// A secondary's side of the array task `index` of `job`: for each of its
/// trials, waits for node 0 to start or skip it, then meters this node into
/// its node file until the trial ends. The exit code (0, 130 when stopped).
/// `job_task` and `restart` name the result files as node 0 names them.
int run_node_meter_task(const slurm::JobFile& job, int index, const std::string& job_task, int restart, int rank,
                        const std::atomic<bool>* stop);

}  // namespace powertrain::cli
