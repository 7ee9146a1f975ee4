#pragma once
// The results store: one SQLite database (WAL mode) that keeps studies,
// trials, runs, epochs with their energy per channel, power timelines and
// measured commands. See docs/store.md for the schema and the guarantees.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "powertrain/energy/tracker.h"
#include "powertrain/energy/types.h"
#include "powertrain/run/nodes.h"
#include "powertrain/store/records.h"
#include "powertrain/store/table.h"
#include "powertrain/run/records.h"

namespace powertrain::store {

/// Schema version this build writes (PRAGMA user_version).
inline constexpr int kSchemaVersion = 9;
/// PRAGMA application_id of a powertrain database ("PWTR").
inline constexpr std::int32_t kApplicationId = 0x50575452;

/// When a committed transaction is safe.
enum class Durability {
  /// synchronous=FULL: the WAL is synced at every commit; a commit survives a
  /// power loss. The default: the store commits about once per epoch.
  full,
  /// synchronous=NORMAL: a commit survives the process being killed but the
  /// latest ones may roll back on a power loss (the database stays consistent).
  normal,
};

struct OpenOptions {
  /// How long a statement waits for another process's lock before it fails.
  std::chrono::milliseconds busy_timeout{30000};
  Durability durability = Durability::full;
  /// Upgrade the schema only up to this version (tests of migrations);
  /// kSchemaVersion for normal use. Read-write opens only.
  int schema_version = kSchemaVersion;
  /// WAL (the default) needs shared memory on one host: readers on other hosts
  /// must not open the file while it is written. false: a rollback journal, for
  /// a file on a network file system that one process writes at a time (the
  /// result file of a Slurm task).
  bool wal = true;
};

/// One run of a result file (another powertrain database) taken into this one.
struct ImportRequest {
  std::filesystem::path source_db;  ///< the result file
  std::string source;               ///< unique name of the file (imports.source); a second import is a no-op
  std::int64_t source_run_id = 0;   ///< the run in the source file
  std::int64_t trial_id = 0;        ///< the trial of this database it is an attempt of
  /// The run was left running by a task that is gone: it is taken in as
  /// interrupted with this message (empty: as it is).
  std::string interrupted_message;
  std::string slurm_job;            ///< e.g. "1234_5" (runs.slurm_job)
  std::string node;
};

enum class ImportOutcome {
  imported,   ///< the run and its epochs, channels and timeline are here now; the trial took its status
  duplicate,  ///< the trial had a result already: nothing was copied (recorded, so it stays that way)
  already,    ///< this source was taken in before: nothing changed
};

/// A connection to a results database. Move-only; not thread-safe: give each
/// thread (and each process, after fork) its own Store. Any number of Stores,
/// in any processes, may use one database at a time: readers never wait, and a
/// writer waits up to busy_timeout for another writer.
///
/// Every method throws StoreError with one line: "<path>: <what it was
/// doing>: <SQLite's message>".
class Store {
 public:
  /// Opens the database at `path`, creating it if missing, and upgrades its
  /// schema in one transaction. Throws StoreError if the directory is missing,
  /// the file is not a powertrain database, or its schema is newer than this
  /// build's.
  static Store open(const std::filesystem::path& path, const OpenOptions& options = {});
  /// Opens an existing database for reading only (reports). Throws StoreError
  /// if it is missing, not a powertrain database, or at another schema version.
  static Store open_readonly(const std::filesystem::path& path, const OpenOptions& options = {});

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  const std::filesystem::path& path() const;
  bool read_only() const;
  /// The file keeps a write-ahead log (OpenOptions::wal), rather than a rollback journal.
  bool wal() const;
  /// The database's PRAGMA user_version.
  int schema_version() const;

  // --- studies -------------------------------------------------------------

  /// Adds a study; throws StoreError if one has that name already.
  std::int64_t create_study(std::string_view name, std::string_view kind, std::string_view spec,
                            const run::Environment& environment);
  std::optional<Study> find_study(std::string_view name) const;
  /// Throws StoreError if there is no study `study_id`.
  Study study(std::int64_t study_id) const;
  /// Every study with its trial counts, oldest first.
  std::vector<StudyOverview> list_studies() const;

  // --- trials --------------------------------------------------------------

  /// Returns the id of the trial with spec.key in the study, adding it as
  /// pending if there is none. An existing trial is returned unchanged, so a
  /// resumed study finds its trials and never duplicates one.
  std::int64_t upsert_trial(std::int64_t study_id, const TrialSpec& spec);
  std::optional<Trial> find_trial(std::int64_t study_id, std::string_view key) const;
  /// Throws StoreError if there is no trial `trial_id`.
  Trial trial(std::int64_t trial_id) const;
  /// Trials of a study ordered by step, then by when they were added.
  std::vector<Trial> trials_of(std::int64_t study_id) const;
  /// trials_of() joined with each trial's latest run.
  std::vector<TrialResult> results_of(std::int64_t study_id) const;

  /// Claims a trial: in one transaction, begins a run, links it to the trial,
  /// marks the trial running and counts the attempt. Returns the run id.
  /// Throws StoreError if the trial is running (another process has it) or
  /// done (is_done): a trial's result is never produced twice. Failed and
  /// interrupted trials may be started again.
  std::int64_t start_trial(std::int64_t trial_id, const run::RunConfig& config,
                           const run::Environment& environment);
  /// In one transaction: finish_run() of the trial's run and the trial status
  /// that summary.status gives. Throws StoreError if the trial is not running.
  void complete_trial(std::int64_t trial_id, const run::RunSummary& summary);
  /// Marks a trial failed (an error stopped it, e.g. missing data), and its
  /// run too if it is still running.
  void mark_trial_failed(std::int64_t trial_id, std::string_view message);
  /// Marks a trial interrupted (e.g. Ctrl-C), and its run too if still running.
  void mark_trial_interrupted(std::int64_t trial_id, std::string_view message);
  /// Marks every running trial of the study whose holder is gone, and its
  /// run if still running, interrupted: trials started without a claim
  /// (start_trial), claims whose lease ran out by `now_s`, and claims of a
  /// process of this host that has died (owner_is_gone). A trial another
  /// live process holds is left alone. Returns how many trials it reset.
  /// Their attempts were counted when they started.
  int reset_interrupted(std::int64_t study_id, double now_s = wall_clock_s());

  // --- claims: any number of processes working on one study -----------------

  enum class ClaimOutcome {
    claimed,  ///< the trial is ours: run_id is its new run
    busy,     ///< another live process holds it
    done,     ///< it has a result already
  };
  struct Claim {
    ClaimOutcome outcome = ClaimOutcome::busy;
    std::int64_t run_id = 0;     ///< claimed: the token of every later write
    std::string taken_from;      ///< claimed from a holder that was gone (its owner), else empty
  };
  /// Claims a trial for `owner` (this_process_owner()) until now_s + lease_s,
  /// in one transaction: done trials are not claimed; a running trial is
  /// claimed only when its holder is gone (lease expired, or owner_is_gone),
  /// and its run is then marked interrupted. A claim begins a new run (the
  /// token), links it to the trial and counts the attempt.
  Claim claim_trial(std::int64_t trial_id, const run::RunConfig& config, const run::Environment& environment,
                    std::string_view owner, double lease_s, double now_s = wall_clock_s());
  /// Extends the claim of run `run_id` on the trial to now_s + lease_s.
  /// False when the trial is not ours any more (taken over or ended).
  bool renew_claim(std::int64_t trial_id, std::int64_t run_id, double lease_s, double now_s = wall_clock_s());
  /// Like complete_trial, for a claim: finishes run `run_id` (ours) with the
  /// summary and, only if the trial still is ours, sets the trial's status.
  /// Returns whether it was.
  bool complete_claimed_trial(std::int64_t trial_id, std::int64_t run_id, const run::RunSummary& summary);

  /// Seconds since the Unix epoch (the clock of leases).
  static double wall_clock_s();
  /// "<host> <pid> <start time>" of this process: the owner of its claims.
  static std::string this_process_owner();
  /// True only when `owner` names a process of this host that no longer
  /// runs (a process of another host is never known to be gone).
  static bool owner_is_gone(std::string_view owner);

  // --- runs ----------------------------------------------------------------

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
  /// Energy of every run of the study's trials, every attempt (interrupted
  /// and failed ones too; a run that never finished counts its stored epochs).
  double energy_of_study(std::int64_t study_id) const;
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

  // --- measured commands ---------------------------------------------------

  /// Stores a measured command; returns its id. Throws StoreError on a duplicate uuid.
  std::int64_t add_measurement(const MeasurementRecord& m);
  /// Every stored measurement, oldest first.
  std::vector<MeasurementRecord> list_measurements() const;

  // --- rows for reports ----------------------------------------------------

  /// Runs one read-only SQL statement with `?` parameters and returns its rows.
  /// Throws StoreError for a statement that would write.
  Table query(std::string_view sql, const std::vector<Value>& params = {}) const;
  // --- result files of other processes (Slurm tasks) ----------------------

  /// Takes one run of another powertrain database into this one, in one
  /// transaction: the run with its epochs, epoch channels and timeline (new
  /// ids), the trial's status, run and attempts, and a row in `imports` named
  /// request.source. A source taken in before changes nothing (already); a
  /// trial that has a result already keeps it (duplicate). Throws StoreError
  /// when the file cannot be read or has another schema version.
  ImportOutcome import_run(const ImportRequest& request);
  /// Whether `source` was taken in (imports).
  bool imported(std::string_view source) const;
  /// Records that a trial was submitted as task `array_index` of Slurm job `job_id`.
  void add_slurm_task(std::int64_t trial_id, std::string_view job_id, int array_index);
  struct SlurmTask {
    std::int64_t trial_id = 0;
    std::string job_id;
    int array_index = 0;
    std::string submitted_at;
  };
  /// Every submission of the study's trials, oldest first.
  std::vector<SlurmTask> slurm_tasks_of(std::int64_t study_id) const;
  /// The cluster's energy for a run (sacct ConsumedEnergy), kept beside powertrain's.
  void set_cluster_energy(std::int64_t run_id, double energy_j);
  /// The Slurm job of a run and the cluster's energy for it (unset when none).
  std::pair<std::string, std::optional<double>> cluster_energy_of(std::int64_t run_id) const;

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

  /// The trial_results view for one study: trial, configuration and summary
  /// columns of each trial (see docs/store.md), ordered by step and trial id.
  Table results_table(std::int64_t study_id) const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace powertrain::store
