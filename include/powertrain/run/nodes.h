#pragma once
// A run that spans several nodes (torchrun over nodes, srun over nodes): one
// meter per node, each node's own record of the run, and the one record the
// run keeps, merged from them window by window. Pure logic over plain
// records: no files, no store (docs/cluster.md, "Several nodes").
//
//   auto merged = merge_node_runs({node0, node1}, 2);
//   merged.epochs[0].energy_j;   // both nodes' energy of epoch 1
//   merged.epochs[0].partial;    // a node was missing or cut short in it
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/run/records.h"

namespace powertrain::run {

/// One node's record of one window: an epoch, or the whole run.
struct NodeWindow {
  int node = 0;  ///< node rank; 0 is the primary
  std::string host;
  double duration_s = 0.0;
  double energy_j = 0.0;          ///< the run's own on this node
  double machine_energy_j = 0.0;  ///< what this node's meters read
  double train_energy_j = 0.0;
  double eval_energy_j = 0.0;
  std::string method;  ///< the node tracker's label, e.g. "counter+estimated"
  /// The node measured only covered_s seconds of the window: it died or was
  /// stopped inside it. Complete windows cover their duration_s.
  bool partial = false;
  double covered_s = 0.0;  ///< partial windows only
  /// The seconds of the window this node measured.
  double seconds_covered() const { return partial ? covered_s : duration_s; }
};

/// The run's record of one window, merged over its nodes.
struct MergedWindow {
  int epoch = 0;             ///< 0 for the whole run
  double duration_s = 0.0;   ///< the longest node's
  double energy_j = 0.0;     ///< summed over the nodes that have a record
  double machine_energy_j = 0.0;
  double train_energy_j = 0.0;
  double eval_energy_j = 0.0;
  /// Every node's methods joined as a window's channels are (join_methods):
  /// an estimate on one node shows in the label; ", partial" when partial.
  std::string method;
  /// A node has no record of the window, or covers only part of it.
  bool partial = false;
  /// Seconds of the window that every node measured: duration_s when
  /// complete, else the least any node covered (0 when one is missing).
  double covered_s = 0.0;
  int nodes = 1;              ///< the nodes the run spans
  std::vector<int> missing;   ///< ranks without any record of the window
  std::vector<NodeWindow> per_node;  ///< the records merged, by node rank
};

/// Merges the windows nodes recorded of one window of a run over `nodes`
/// nodes. Throws ConfigError for nodes < 1, a rank outside [0, nodes) or a
/// rank given twice.
MergedWindow merge_node_windows(std::vector<NodeWindow> windows, int nodes);

/// What a method label says ("counter+estimated, partial, attributed by
/// CPU-time share and memory share, GPU not measured"): the methods, partial,
/// how the run's share was attributed (the tracker's wording, e.g. "CPU-time
/// share"), and whether a GPU went unmeasured. Unknown words are ignored.
struct MethodSet {
  bool counter = false, sampled = false, estimated = false, partial = false;
  std::vector<std::string> attributed_by;  ///< in the tracker's order, each once
  bool gpu_not_measured = false;
};
MethodSet parse_methods(const std::string& label);
/// Adds another label's methods, attributions and GPU flag to `all` (not
/// its partial flag: a merge decides that).
void add_methods(MethodSet& all, const MethodSet& other);
/// The label of a MethodSet, worded as the tracker words a window's:
/// "counter+estimated, partial, attributed by CPU-time share and memory share".
std::string method_label(const MethodSet& m);

/// One node's own record of a whole run: what its meter recorded in its own
/// store (the primary's run, or a secondary's node file).
struct NodeRun {
  int node = 0;
  std::string host;
  std::string source;  ///< where it came from (a node file's name; empty for the primary)
  /// The node's record is whole: its run ended and its file was finished.
  /// false: the node died (a file left unfinished); its epochs are kept.
  bool complete = true;
  RunSummary summary;  ///< the node's own totals (its epochs and any cut-short one)
  std::vector<EpochRecord> epochs;
};

/// A node's windows by epoch: its epochs, and when its run ended inside an
/// epoch (interrupted, failed, or died), that epoch cut short: the seconds and
/// energy its totals hold beyond its epochs, marked partial.
std::map<int, NodeWindow> node_epoch_windows(const NodeRun& run);

/// The run's merged record.
struct MergedRun {
  int nodes = 1;
  /// One per epoch of the primary (node 0): the epochs the run recorded.
  /// A secondary's window of an epoch the primary did not finish counts in
  /// `run` only.
  std::vector<MergedWindow> epochs;
  MergedWindow run;  ///< the nodes' totals (epoch 0)
};

/// Merges the nodes' own records. Node 0 must be there (it holds the run);
/// a node without a record is missing from every window; a node whose record
/// is not complete is partial in the run's total. Throws ConfigError as
/// merge_node_windows does, or when node 0 is not given.
MergedRun merge_node_runs(const std::vector<NodeRun>& runs, int nodes);

/// Where a process of a run over several nodes stands.
struct NodeRole {
  int rank = 0;   ///< 0: the primary, which records the run and decides
  int nodes = 1;  ///< 1: a run on one node
  bool from_slurm = false;  ///< found from an srun step's variables
  bool primary() const { return rank == 0; }
};

/// The role from explicit flags (rank, nodes; -1 when not given) or else from
/// an srun step's environment (SLURM_STEP_ID with SLURM_NODEID and
/// SLURM_NNODES, one task per node: SLURM_STEP_NUM_TASKS equal to
/// SLURM_STEP_NUM_NODES when both are set). `env` answers a variable's value
/// (nullopt: unset). Throws ConfigError for a rank outside [0, nodes), one
/// flag without the other, or an srun step with several tasks on a node.
NodeRole node_role(int rank_flag, int nodes_flag,
                   const std::function<std::optional<std::string>(const std::string&)>& env);

}  // namespace powertrain::run
