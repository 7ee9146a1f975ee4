#pragma once
// The runs aggregate: runs, their epochs with energy per channel, their power
// timelines (the measured windows), and runs over several nodes with each
// node's rows. Part of a Store (store.h).
#include <cstdint>
#include <string>
#include <vector>

#include "powertrain/energy/tracker.h"
#include "powertrain/energy/types.h"
#include "powertrain/run/nodes.h"
#include "powertrain/run/records.h"
#include "powertrain/store/aggregate.h"
#include "powertrain/store/records.h"

namespace powertrain::store {

/// Runs and what they measured. Every method throws StoreError with one line.
class Runs : protected Aggregate {
 public:
  /// Begins a run outside any study (status running). Returns its id.
  std::int64_t begin_run(const run::RunConfig& config, const run::Environment& environment);
  /// Stores one finished epoch, its channels, and the run's totals so far in
  /// one transaction: after a crash an epoch is there whole or not at all.
  /// Throws StoreError if the epoch is already stored or two channels share an id.
  void add_epoch(std::int64_t run_id, const run::EpochRecord& epoch);
  /// Stores the run's summary. Throws StoreError if summary.status is running
  /// or the run is finished already.
  void finish_run(std::int64_t run_id, const run::RunSummary& summary);
  /// Throws StoreError if there is no run `run_id`.
  RunRecord run(std::int64_t run_id) const;
  /// Every run, oldest first.
  std::vector<RunRecord> list_runs() const;
  /// Epochs of a run in order, each with its channels in the order stored.
  std::vector<run::EpochRecord> epochs_of(std::int64_t run_id) const;

  // --- timeline ------------------------------------------------------------

  /// Appends power samples to a run's timeline in one transaction.
  /// `channel_ids` names the entries of each sample's power_w (index-aligned).
  /// Times are kept as whole milliseconds since `origin_ns` (steady clock, e.g.
  /// the run window's start_ns). NaN powers are skipped; a sample at a time
  /// already stored for a channel replaces it. Throws StoreError if a sample
  /// has more or fewer powers than channels.
  void add_timeline(std::int64_t run_id, const std::vector<std::string>& channel_ids,
                    const std::vector<energy::TimelineSample>& samples, std::int64_t origin_ns);
  /// Same, naming channels by Tracker::channels().
  void add_timeline(std::int64_t run_id, const std::vector<energy::ChannelInfo>& channels,
                    const std::vector<energy::TimelineSample>& samples, std::int64_t origin_ns);
  /// One series per channel, in the order channels were first stored.
  std::vector<TimelineSeries> timeline_of(std::int64_t run_id) const;

  // --- runs over several nodes (docs/cluster.md, "Several nodes") ----------

  /// Records that run `run_id` spans `nodes` nodes whose other nodes leave
  /// their records (node files) in `nodes_dir`.
  void set_run_nodes(std::int64_t run_id, int nodes, const std::string& nodes_dir);
  struct RunNodes {
    int nodes = 1;
    std::string dir;             ///< where the other nodes' files come
    std::vector<int> complete;   ///< ranks whose whole record is merged
    std::vector<int> unfinished; ///< ranks merged from a file their node never finished
  };
  /// What the run's nodes are and which of them are merged.
  RunNodes run_nodes(std::int64_t run_id) const;
  /// Runs over several nodes that still lack a node's whole record, oldest first.
  std::vector<std::int64_t> runs_awaiting_nodes() const;
  /// Takes the records of some nodes of run `run_id` in (NodeRun::node is the
  /// rank, 1 or more; a node taken in before is replaced: a finished file
  /// after an unfinished one) and writes the run's merge in one transaction:
  /// the per-node rows (run_nodes, epoch_nodes; node 0's from the run as it
  /// stood before its first merge), the other nodes' channels as
  /// "node<k>/<channel>", and the epochs' and the run's merged figures
  /// (run::merge_node_runs). Returns the merge. Throws StoreError when the run
  /// is not one over several nodes or a rank is out of range.
  run::MergedRun record_nodes(std::int64_t run_id, const std::vector<run::NodeRun>& nodes);
  /// The merged record of a run over several nodes as stored, with its per-node rows.
  run::MergedRun node_merge_of(std::int64_t run_id) const;

 protected:
  explicit Runs(detail::Db* db) : Aggregate(db) {}
};

}  // namespace powertrain::store
