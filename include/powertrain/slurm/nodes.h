#pragma once
// The files of a run over several nodes (docs/cluster.md, "Several nodes").
// Every node runs one powertrain with one meter. Node 0, the primary, records
// the run in the database; each other node (a secondary) records its own
// windows and epochs in a node file of its own in a folder every node sees,
// and the primary (or a later `collect`) merges them into the run:
//
//   <dir>/primary                here the primary claimed the folder
//   <dir>/node-<k>.partial.db    while node k runs (a small powertrain database)
//   <dir>/node-<k>.db            once its run ended (renamed in one step)
//
// A folder serves one run: a second primary or a second node k is refused.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "powertrain/run/nodes.h"
#include "powertrain/store/store.h"

namespace powertrain::slurm {

/// The folder of a run over nodes started by srun without --nodes-dir:
/// "<db>.nodes/job<SLURM_JOB_ID>.step<SLURM_STEP_ID>" beside the database.
std::filesystem::path default_nodes_dir(const std::filesystem::path& db,
                                        const std::function<std::optional<std::string>(const std::string&)>& env);

/// node-<k>.db (`measure`'s nodes: ext ".json")
std::filesystem::path node_file(const std::filesystem::path& dir, int rank, const std::string& ext = ".db");
/// node-<k>.partial.db
std::filesystem::path node_partial(const std::filesystem::path& dir, int rank, const std::string& ext = ".db");

/// The primary claims the folder (creates it and <dir>/primary, exclusively).
/// Throws ConfigError when another run's primary has claimed it, or the
/// folder is a link or not a folder.
void claim_primary(const std::filesystem::path& dir);
/// Secondary k claims its node file: creates the folder when needed and
/// node-<k>.partial.db exclusively (never through a link). Returns its path.
/// Throws ConfigError when node k's file is there already (another run's, or
/// a second powertrain given the same rank).
std::filesystem::path claim_node_file(const std::filesystem::path& dir, int rank, const std::string& ext = ".db");
/// Renames a secondary's finished file to node-<k>.db in one step.
void finish_node_file(const std::filesystem::path& dir, int rank, const std::string& ext = ".db");
/// Whether a node file is there (a link counts: it is there, and refused when read).
bool node_file_exists(const std::filesystem::path& file);
/// The text of a small node file (measure's JSON reports): a regular file,
/// never through a link, at most max_bytes. Throws ConfigError saying why not.
std::string read_node_text(const std::filesystem::path& file, std::uintmax_t max_bytes = 16u << 20);

/// One node's record from its file, read through a private copy
/// (ResultCopy: links and non-regular files refused) and checked like a
/// Slurm result file. The file holds one run. Throws ConfigError or
/// StoreError naming the file when it cannot be used.
run::NodeRun read_node_file(const std::filesystem::path& file, int rank, bool complete);

/// What a merge did.
struct NodeMergeResult {
  std::vector<int> merged;      ///< ranks whose finished file came in now
  std::vector<int> unfinished;  ///< ranks taken in from a file their node never finished
  std::vector<int> missing;     ///< ranks with no file
  std::vector<std::string> unreadable;  ///< "<file>: why"
  std::optional<run::MergedRun> run;    ///< the run's merge after it
};

/// The primary at the end of its run: waits up to wait_s for every other
/// node's finished file (returning early when `stop` turns true), takes in
/// what there is, and merges. A node whose finished file has not come by
/// then is taken in from its unfinished file if there is one (its epochs so
/// far) or counted missing; `collect` takes its finished file in later.
NodeMergeResult merge_nodes(store::Runs& runs, std::int64_t run_id, double wait_s,
                            const std::atomic<bool>* stop = nullptr);

/// `collect`: every run of the database waiting for a node whose finished
/// file has come since (late nodes). Unfinished files are not taken in here
/// (merge_nodes did, when the run ended). One result per run that changed.
std::vector<std::pair<std::int64_t, NodeMergeResult>> collect_nodes(store::Runs& runs);

/// collect_nodes on the database at `db`, opened for writing only when a run
/// waits for a node.
std::vector<std::pair<std::int64_t, NodeMergeResult>> collect_nodes_of(const std::filesystem::path& db);

}  // namespace powertrain::slurm
