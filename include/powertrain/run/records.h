#pragma once
// Plain records of a training run: what a workload (the built-in trainer or the
// user's own program) produces, the run session measures and the store keeps.
// The base layer below train, store and the run session; no torch.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "powertrain/energy/tracker.h"

namespace powertrain::run {

/// The user's own training program, run instead of the built-in trainer
/// (docs/external.md). Its arguments may hold placeholders such as
/// {batch_size}; see external/command.h.
struct Command {
  std::vector<std::string> argv;  ///< empty: the built-in trainer
  std::string workdir;            ///< empty: powertrain's working directory
  std::vector<std::pair<std::string, std::string>> env;  ///< added to the environment
  /// A distributed program: processes per node, started by `launcher`
  /// (0: the command is started as it is, one process or its own launcher).
  int nproc_per_node = 0;
  int nnodes = 1;                 ///< nodes the program spans (with nproc_per_node)
  std::string launcher;           ///< "torchrun" (the default with nproc_per_node) or "srun"
  bool empty() const { return argv.empty(); }
  bool distributed() const { return nproc_per_node > 0; }
};

/// Everything that defines a training run (one trial of a study).
struct RunConfig {
  std::string dataset = "fashion-mnist";  ///< fashion-mnist, celeba, pamap2, synthetic-images, synthetic-sensors
  std::string data_dir;                   ///< empty: the dataset's default location
  std::string model = "image-cnn";        ///< image-cnn, sensor-cnn
  std::string optimizer = "sgd";          ///< sgd (with momentum) or adam
  double learning_rate = 0.01;
  double momentum = 0.9;
  double weight_decay = 0.0;
  bool nesterov = false;         ///< SGD with Nesterov momentum
  std::int64_t batch_size = 64;
  int max_epochs = 20;
  int patience = 3;              ///< epochs without improvement before stopping
  double min_delta = 1e-3;       ///< smallest improvement of the validation metric that counts
  std::optional<double> target_metric;  ///< report time and energy to reach it
  /// End the run (converged) at the first epoch at or above target_metric:
  /// its energy to the target is then known and more epochs would not change
  /// it (a search's segments; MLPerf's time to train).
  bool stop_at_target = false;
  std::uint64_t seed = 0;
  int threads = 0;               ///< 0: all cores
  std::string device = "cpu";    ///< cpu or cuda[:N]
  double subset = 1.0;           ///< fraction of the training split used (quick runs)
  std::string checkpoint;        ///< where to save the best model (empty: none)
  std::string init_encoder;      ///< encoder checkpoint to start from (pretraining study)
  bool freeze_encoder = false;
  std::string tasks;             ///< label subset for multi-label data, comma-separated
  /// A state file written by an earlier segment of the same setup (its
  /// save_state): the run continues after the epochs it holds instead of
  /// starting afresh. A path, like checkpoint: not part of the experiment.
  std::string resume_from;
  /// Where to write the run's state when it ends by reaching max_epochs
  /// (status max_epochs), so that a later segment can continue it
  /// (resume_from). Empty: none. A path, not part of the experiment.
  std::string save_state;
  /// Further dataset options by name (see docs/data.md and
  /// train::dataset_options): e.g. {"max_samples", "2000"}, {"window", "128"}.
  std::vector<std::pair<std::string, std::string>> data_options;
  /// Set: the run trains with this program; dataset, model and the data
  /// settings above are then the program's business (it gets them as
  /// placeholders and environment variables).
  Command command;
};

/// Sane limits of a run's settings: beyond them a value is a typo or an
/// overflow (1e300, 99999999999999999999), refused before anything runs.
inline constexpr double kMaxLearningRate = 1e6;  // 1e5 diverges (on purpose in tests); 1e300 overflows float
inline constexpr std::int64_t kMaxBatchSize = std::int64_t{1} << 24;
inline constexpr int kMaxEpochs = 100000;
inline constexpr int kThreadsPerCpu = 4;  ///< threads: at most this many per available CPU

/// The most threads a run may ask for here: kThreadsPerCpu per available CPU.
int max_threads();

/// Throws ConfigError with one line, naming the setting, when a setting of
/// `c` is out of its range (the ranges are those of the table of run
/// settings, run/settings.h): e.g. "patience must be between 0 (no early
/// stopping) and 100000, got -1". Defined in settings.cpp.
void validate(const RunConfig& c);

/// Where a run was heading after an epoch (predict::predict_curve): the epoch
/// its convergence rule will stop it at and its energy to that epoch, each a
/// median with an 80% interval, and its energy to the target when it has one.
struct EpochForecast {
  std::string method;  ///< "curve-ensemble", "study prior", "linear", "too few epochs" (a bound), "stopped" (exact); ", by backtest of N runs" when a study's backtest chose it (predict/study.h)
  double stop_epoch_low = 0.0, stop_epoch = 0.0, stop_epoch_high = 0.0;
  double energy_low_j = 0.0, energy_j = 0.0, energy_high_j = 0.0;  ///< to convergence (the rule's stop)
  std::optional<double> target_energy_j;  ///< median energy to the target, over futures that reach it
  double p_reach_target = 0.0;            ///< share of futures that reach the target (NaN: unknown)
};

/// One finished epoch.
struct EpochRecord {
  int epoch = 0;  ///< 1-based
  double duration_s = 0.0;
  double train_duration_s = 0.0;
  double eval_duration_s = 0.0;
  double energy_j = 0.0;        ///< whole epoch, the run's own (energy/attribution.h)
  /// What the meters read over the epoch, other processes' share included
  /// (the machine's figure beside energy_j; equal to it where nothing was
  /// attributed, as before schema 8).
  double machine_energy_j = 0.0;
  double train_energy_j = 0.0;
  double eval_energy_j = 0.0;
  std::string method;           ///< e.g. "counter+estimated"
  std::vector<energy::ChannelEnergy> channels;  ///< whole-epoch energy per channel
  double samples_per_s = 0.0;   ///< training samples per second
  double train_loss = 0.0;
  double val_loss = 0.0;
  double val_metric = 0.0;      ///< accuracy (single label) or mean accuracy over tasks
  std::vector<double> val_task_metrics;  ///< multi label: validation accuracy per task (else empty)
  /// CPU time of the machine beside the run's processes over the epoch (unset
  /// when it could not be read): others' share is charged to the run.
  std::optional<energy::WindowCpu> cpu;
  /// Where the run was heading after this epoch (unset: not predicted).
  std::optional<EpochForecast> forecast;
};

/// stopped: ended on purpose before its rule said so, a result (a search's
/// setup whose predicted energy to the target was too high: Zeus's rule).
enum class RunStatus { running, converged, max_epochs, diverged, interrupted, failed, stopped };
std::string_view to_string(RunStatus s);
RunStatus run_status_from_string(std::string_view s);

/// End of a run.
struct RunSummary {
  RunStatus status = RunStatus::running;
  int epochs = 0;
  int best_epoch = 0;
  double duration_s = 0.0;
  double energy_j = 0.0;          ///< the run's own
  double machine_energy_j = 0.0;  ///< what the meters read (the machine's figure)
  std::optional<double> energy_to_target_j;
  std::optional<double> time_to_target_s;
  double best_val_metric = 0.0;
  double test_metric = 0.0;     ///< of the best model; NaN when there is no test split (or none was evaluated)
  std::vector<double> test_task_metrics;  ///< multi label: test accuracy per task (else empty)
  std::string method;
  std::string message;  ///< why it diverged or failed
  /// CPU time of the machine beside the run's over its epochs (unset when an
  /// epoch's could not be read).
  std::optional<energy::WindowCpu> cpu;
  /// Seconds the run waited for a quiet machine before it began (unset: it did
  /// not wait; see energy::wait_for_quiet).
  std::optional<double> quiet_wait_s;
};

/// Where a run ran.
struct Environment {
  std::string host;
  std::string os;
  std::string cpu_model;
  int cpu_count = 0;
  std::string gpu;          ///< empty when none
  std::string torch_version;
  std::string commit;
  int threads = 0;
  std::string sampling;     ///< e.g. "interval 100 ms"
  /// Where a scheduler placed the run, and what that means for node-wide
  /// energy, e.g. "Slurm job 41_0 on gpu03, a node shared with other jobs";
  /// empty outside a scheduler.
  std::string placement;
  /// How the run's own energy was told apart from the machine's: where its CPU
  /// time came from, the CPUs reserved for it, which GPUs were its, and any
  /// fallback (e.g. "CPU time from the process tree (no cgroup: ...); 1 of 2
  /// CPUs reserved (threads)"). Empty: not attributed.
  std::string attribution;
};

/// Keys RunConfig::data_options accepts (the built-in trainer's data layer
/// reads them: train::dataset_options), in documentation order.
const std::vector<std::string>& data_option_keys();

/// Where a run's encoder goes beside its model checkpoint: "<dir>/run.encoder.pt"
/// for "<dir>/run.pt" (any other name: name + ".encoder.pt").
std::filesystem::path encoder_checkpoint_path(const std::filesystem::path& checkpoint);

}  // namespace powertrain::run
