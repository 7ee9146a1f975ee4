#pragma once
// The imports aggregate: what `powertrain collect` takes in from the result
// files of Slurm tasks (other powertrain databases), the tasks a study was
// submitted as, and the cluster's own energy accounting. Part of a Store (store.h).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "powertrain/store/aggregate.h"

namespace powertrain::store {

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

/// One row of `imports`: a result file taken in (or found a duplicate).
struct ImportRecord {
  std::string source;
  std::int64_t trial_id = 0;
  std::optional<std::int64_t> run_id;  ///< the run it became here; none for a duplicate
  ImportOutcome outcome = ImportOutcome::imported;
  std::string node;                    ///< the node that ran it; "" when unknown
  std::string imported_at;             ///< ISO 8601 UTC
};

/// Result files, Slurm tasks and cluster energy. Every method throws
/// StoreError with one line.
class Imports : protected Aggregate {
 public:
  /// Takes one run of another powertrain database into this one, in one
  /// transaction: the run with its epochs, epoch channels and timeline (new
  /// ids), the trial's status, run and attempts, and a row in `imports` named
  /// request.source. A source taken in before changes nothing (already); a
  /// trial that has a result already keeps it (duplicate). Throws StoreError
  /// when the file cannot be read or has another schema version.
  ImportOutcome import_run(const ImportRequest& request);
  /// Whether `source` was taken in (imports).
  bool imported(std::string_view source) const;
  /// Every import of the study's trials, in the order they were taken in.
  std::vector<ImportRecord> imports_of(std::int64_t study_id) const;

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

 protected:
  explicit Imports(detail::Db* db) : Aggregate(db) {}
};

}  // namespace powertrain::store
