// `powertrain train`: one training run, measured epoch by epoch, recorded in the store.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include <fmt/format.h>

#include "commands.h"
#include "powertrain/data/load.h"
#include "powertrain/energy/registry.h"
#include "powertrain/error.h"
#include "powertrain/store/store.h"
#include "powertrain/train/dataset_options.h"
#include "powertrain/train/environment.h"
#include "powertrain/train/run_observers.h"
#include "powertrain/train/trainer.h"

namespace powertrain::cli {
namespace {

std::atomic<bool> g_stop{false};
void request_stop(int) { g_stop = true; }

struct TrainArgs {
  train::RunConfig config;
  std::string db = "powertrain.db";
  int interval_ms = 100;
  std::vector<std::string> data_options;  // key=value
  bool quiet = false;
  std::optional<double> target;
};

int run_train(TrainArgs& a) {
  auto& c = a.config;
  c.target_metric = a.target;
  for (const auto& kv : a.data_options) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw ConfigError("--data expects KEY=VALUE, got '" + kv + "'");
    c.data_options.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  energy::TrackerOptions topts;
  topts.interval = std::chrono::milliseconds(a.interval_ms);
  energy::validate(topts);

  // Validate and load before anything is written: bad input leaves the store untouched.
  const auto dataset = data::load_dataset(train::dataset_options(c));
  train::Trainer trainer(c, dataset);
  auto store = store::Store::open(a.db);

  auto probe = energy::probe_sources({});
  energy::Tracker tracker(std::move(probe.meters), topts);

  struct sigaction sa {};
  sa.sa_handler = request_stop;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  const auto env = train::collect_environment(c.device, trainer.threads(), &tracker);
  const auto run_id = store.begin_run(c, env);
  train::StoreObserver to_store(store, run_id);
  const std::string label = fmt::format("run {}{}", run_id, dataset.synthetic ? " (synthetic data)" : "");
  train::ProgressPrinter progress(stderr, ::isatty(STDERR_FILENO) != 0, label);
  train::FanoutObserver fanout({&to_store, &progress});

  tracker.start();
  tracker.begin("run");
  train::RunSummary summary;
  try {
    summary = trainer.run(tracker, a.quiet ? static_cast<train::RunObserver&>(to_store) : fanout, &g_stop);
  } catch (...) {
    tracker.end("run");
    train::RunSummary failed;
    failed.status = train::RunStatus::failed;
    failed.message = "the run stopped on an error";
    store.finish_run(run_id, failed);
    throw;
  }
  const auto window = tracker.end("run");
  tracker.stop();
  store.finish_run(run_id, summary);
  train::save_timeline(store, run_id, tracker, window.start_ns, window.end_ns);
  fmt::print("run {} recorded in {}: {} after {} epochs, {:.1f} J ({}), test metric {:.4f}\n", run_id, a.db,
             train::to_string(summary.status), summary.epochs, summary.energy_j, summary.method, summary.test_metric);
  if (summary.status == train::RunStatus::interrupted) return 130;
  if (summary.status == train::RunStatus::failed) return 1;
  return 0;
}

}  // namespace

void add_train_command(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train one model, measured epoch by epoch, and record it in the store");
  cmd->set_config("--config", "", "TOML file with any of these options as keys (e.g. batch_size = 64)");
  cmd->allow_config_extras(CLI::config_extras_mode::error);
  auto& c = a->config;
  cmd->add_option("--dataset", c.dataset, "fashion-mnist, celeba, pamap2, synthetic-images, synthetic-sensors")
      ->capture_default_str();
  cmd->add_option("--data-dir", c.data_dir, "Dataset root (default: the dataset's standard location)");
  cmd->add_option("--data", a->data_options, "Further dataset option KEY=VALUE, e.g. max_samples=2000 (repeatable)");
  cmd->add_option("--model", c.model, "image-cnn or sensor-cnn")->capture_default_str();
  cmd->add_option("--optimizer", c.optimizer, "sgd (with momentum) or adam")->capture_default_str();
  cmd->add_option("--lr,--learning-rate", c.learning_rate, "Learning rate")->capture_default_str();
  cmd->add_option("--momentum", c.momentum, "SGD momentum")->capture_default_str();
  cmd->add_option("--weight-decay", c.weight_decay, "Weight decay")->capture_default_str();
  cmd->add_option("--batch-size", c.batch_size, "Batch size")->capture_default_str();
  cmd->add_option("--max-epochs", c.max_epochs, "Epoch limit")->capture_default_str();
  cmd->add_option("--patience", c.patience, "Epochs without improvement before stopping")->capture_default_str();
  cmd->add_option("--min-delta", c.min_delta, "Smallest validation-metric gain that counts")->capture_default_str();
  cmd->add_option("--target", a->target, "Validation metric whose first reaching is reported (time and energy to target)");
  cmd->add_option("--seed", c.seed, "Seed of initialization, shuffling and data subsets")->capture_default_str();
  cmd->add_option("--threads", c.threads, "LibTorch threads (0: all cores)")->capture_default_str();
  cmd->add_option("--device", c.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--subset", c.subset, "Fraction of the training split used")->capture_default_str();
  cmd->add_option("--tasks", c.tasks, "Label subset for multi-label data, comma-separated");
  cmd->add_option("--checkpoint", c.checkpoint, "Save the best model here (and its encoder beside it)");
  cmd->add_option("--init-encoder", c.init_encoder, "Start from this encoder checkpoint");
  cmd->add_flag("--freeze-encoder", c.freeze_encoder, "Keep the initial encoder fixed");
  cmd->add_option("--db", a->db, "Results database (SQLite)")->capture_default_str();
  cmd->add_option("--interval", a->interval_ms, "Sampling interval in ms")->capture_default_str();
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  cmd->callback([&ctx, a] { ctx.exit_code = run_train(*a); });
}

}  // namespace powertrain::cli
