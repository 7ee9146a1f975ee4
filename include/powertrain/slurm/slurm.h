#pragma once
// Studies on a Slurm cluster (docs/cluster.md). A study's pending trials go
// out as one job array (sbatch); each array task runs its trial through the
// normal run session on its node and writes its own result file, a small
// powertrain database, in the study's shared folder. Only the process that
// submitted (or `collect`, `results`, `report`, a resumed run) writes the
// study's database: it takes the result files in, each exactly once. No torch.
//
//   <folder>/jobs/submit-<n>.json    which trials each array task runs
//   <folder>/results/trial-<id>-<job>_<task>-r<restart>.partial.db   while it runs
//   <folder>/results/trial-<id>-<job>_<task>-r<restart>.db           once it ended
//   <folder>/logs/<job>_<task>.out
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "powertrain/search/search.h"
#include "powertrain/store/store.h"
#include "powertrain/study/spec.h"

namespace powertrain::slurm {

/// The shared folder of a study: spec.execution.slurm.dir, else
/// "<db>.slurm/<name>" (the name as io::safe_file_name makes it).
std::filesystem::path study_folder(const study::StudySpec& spec, const std::filesystem::path& db);
/// The same for a stored study (its stored specification says where).
std::filesystem::path study_folder(const store::Study& study, const std::filesystem::path& db);

/// A search's segment run by an array task (docs/search.md, "On a Slurm
/// cluster"): which rung of which setup, and what the task's own result file
/// lacks, the earlier segments' epochs (its run continues them) and the best
/// measured energy to the target when it went out (Zeus's rule inside it).
struct SegmentJob {
  search::Segment segment;
  std::map<std::string, std::vector<run::EpochRecord>> earlier_epochs;  ///< by the earlier segments' trial keys
  std::optional<double> best_j;  ///< none: no setup had reached the target
};
nlohmann::json segment_to_json(const SegmentJob& s);
/// Throws nlohmann::json::exception on a malformed document.
SegmentJob segment_from_json(const nlohmann::json& j);

/// One trial of an array task.
struct TaskTrial {
  std::int64_t trial_id = 0;  ///< in the study's database
  std::string key;            ///< canonical key (the same in the task's result file)
  std::string label;
  std::string phase;          ///< e.g. "pretrain": a task whose pretraining diverged fails its dependents
  std::optional<SegmentJob> segment;  ///< a search's segment (the study is a search)
};

/// A submission: what each array task runs. Written before sbatch, read by the tasks.
struct JobFile {
  std::string study;        ///< the study's name
  std::string kind = "grid";
  std::string spec_text;    ///< the specification as stored with the study
  std::string spec_source;  ///< its file (relative command folders are taken from it)
  std::string db;           ///< the study's database (artifacts go beside it)
  std::string folder;       ///< the shared folder
  std::vector<std::string> disabled_sources;
  bool exclusive = false;   ///< whole nodes (--exclusive): node-wide energy is the trial's alone
  /// Nodes each trial spans, one meter on each (docs/cluster.md, "Trials over
  /// several nodes"): > 1 when the job script starts `slurm-task --node-meter`
  /// on the other nodes of the allocation beside node 0's `slurm-task`.
  int trial_nodes = 1;
  std::vector<std::vector<TaskTrial>> tasks;  ///< per array index
};
nlohmann::json to_json(const JobFile& j);
/// Throws ConfigError with one line on a malformed document.
JobFile job_from_json(const nlohmann::json& j);
void write_job_file(const std::filesystem::path& path, const JobFile& j);
JobFile read_job_file(const std::filesystem::path& path);

/// Groups trials into array tasks of at most `per_task` trials each.
std::vector<std::vector<TaskTrial>> group_tasks(const std::vector<TaskTrial>& trials, int per_task);

/// sbatch's arguments (without "sbatch") for an array of `tasks` tasks running
/// `script`: --parsable, --array, the job name, output files in `logs`,
/// resources from `s`, --dependency=afterok:<after_ok> (with
/// --kill-on-invalid-dep=yes) when set, then s.options and `extra` (the
/// command line's --slurm-opt), which may override what comes before.
std::vector<std::string> sbatch_args(const study::SlurmSettings& s, const std::vector<std::string>& extra, int tasks,
                                     const std::string& job_name, const std::filesystem::path& logs,
                                     const std::optional<std::string>& after_ok, const std::filesystem::path& script);
/// The job id in `sbatch --parsable` output ("123" or "123;cluster"); ConfigError when there is none.
std::string parse_job_id(const std::string& sbatch_out);

/// A command's exit status and output (stdout and stderr kept apart).
struct ToolResult {
  int exit_code = 0;
  std::string out, err;
  bool started = true;  ///< false: the program could not be run (not installed)
};
/// Runs argv[0] (found on PATH) with argv, stdin from /dev/null, and waits.
ToolResult run_tool(const std::vector<std::string>& argv);

/// A task of a job as squeue shows it.
struct LiveTask {
  std::string state;  ///< PENDING, RUNNING, COMPLETING, ...
  std::string node;   ///< empty while pending
  std::string reason; ///< why it is pending (e.g. Dependency)
};
/// Parses `squeue -h -r -o "%i|%T|%N|%r"` lines: "<job>_<task>" -> task.
std::map<std::string, LiveTask> parse_squeue(const std::string& out);
/// The tasks of `job_ids` Slurm still knows as queued or running; empty when
/// there is no Slurm client here; nullopt when squeue fails.
std::optional<std::map<std::string, LiveTask>> live_tasks(const std::vector<std::string>& job_ids);

/// Energy in joules from `sacct -n -P -X -o ConsumedEnergyRaw` output: the
/// first non-empty line; nullopt when empty, 0 with no energy plugin
/// ("0"), or not a number.
std::optional<double> parse_consumed_energy(const std::string& sacct_out);

/// Result file names of one array task's trial.
std::string result_stem(std::int64_t trial_id, const std::string& job_task, int restart);
inline constexpr const char* kPartialSuffix = ".partial.db";

/// A private copy of one result file (and of its journal, when one lies
/// beside it), for reading. Result folders are shared on a cluster, so what
/// lies there may have been planted: the file is never followed through a
/// link, never opened when it is not a regular file (a FIFO would block), and
/// never written; SQLite only ever sees the copy, which a reader may recover
/// (a hot journal) without touching the original. The copy goes with this
/// object. Throws ConfigError saying why a file is not read (a link, not a
/// regular file, empty, not an SQLite file, too large), IoError when it
/// cannot be copied.
class ResultCopy {
 public:
  explicit ResultCopy(const std::filesystem::path& file);
  ~ResultCopy();
  ResultCopy(const ResultCopy&) = delete;
  ResultCopy& operator=(const ResultCopy&) = delete;
  /// The copy's path.
  const std::filesystem::path& path() const { return copy_; }

 private:
  std::filesystem::path dir_, copy_;
};

/// Largest result file read (a run's records are far smaller).
inline constexpr std::uintmax_t kMaxResultBytes = std::uintmax_t{2} << 30;

/// Checks the records of run `run_id` in a result file before they come in:
/// energies, durations, powers and CPU times are non-negative finite numbers
/// (NaN: not known) of a plausible size, metrics are numbers, epoch numbers
/// are in range and distinct. Throws ConfigError naming the first value that
/// is not.
void check_result_run(const store::Store& src, std::int64_t run_id);

/// What collect() did.
struct CollectResult {
  int imported = 0;      ///< runs taken in now (finished, or interrupted)
  int interrupted = 0;   ///< of those, runs whose task died: taken in as interrupted
  int duplicates = 0;    ///< result files of trials that had a result already (nothing copied)
  int running = 0;       ///< result files still being written
  int cluster_energy = 0;  ///< runs the cluster's accounting gave an energy for now
  std::string sacct_note;  ///< why the cluster's energy is not there, when it is not
  int unreadable = 0;      ///< result files that could not be read (left where they are)
  std::string unreadable_note;  ///< the first of them and why
};

/// Takes every result file in `folder`/results into `store`'s study `study`,
/// each once (store::Store::import_run, keyed by the file's name). A partial
/// file nobody has written for `stale_s` seconds, whose task squeue does not
/// list any more, belongs to a task that died: its run is taken in as
/// interrupted, and its trial can be submitted again. A file that cannot be
/// read is counted and named, and the others still come in. The cluster's
/// energy is recorded for tasks that ran one trial and have ended. Runs taken in get the
/// cluster's energy where `sacct` accounts one. Safe to run any number of
/// times, by any number of processes.
/// Asks which tasks of some jobs are still queued or running (live_tasks by default; tests replace it).
using LiveQuery = std::function<std::optional<std::map<std::string, LiveTask>>(const std::vector<std::string>& job_ids)>;
CollectResult collect(store::Store& store, const store::Study& study, const std::filesystem::path& folder,
                      double stale_s = 120.0, bool ask_sacct = true, const LiveQuery& live_query = {});

/// collect() for every study of the database at `db` that has a shared folder
/// (a study submitted to Slurm); nothing when there is none. Opens the
/// database for writing only then.
std::vector<CollectResult> collect_all(const std::filesystem::path& db);

}  // namespace powertrain::slurm
