#include "powertrain/run/control.h"

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::run {

RunControl::RunControl(RunConfig config, energy::Tracker& tracker, RunObserver& observer,
                       const std::atomic<bool>* stop, LossLimits limits, std::string window_prefix)
    : config_(std::move(config)),
      tracker_(tracker),
      observer_(observer),
      stop_(stop),
      rule_(config_, limits),
      prefix_(std::move(window_prefix)) {
  summary_.status = RunStatus::running;
  summary_.test_metric = std::nan("");
}

RunControl::~RunControl() {
  try {
    end_open_epoch();
  } catch (...) {  // closing is best effort on an error path
  }
}

void RunControl::start(const Environment& environment) { observer_.on_start(config_, environment); }

void RunControl::resume(const std::vector<EpochRecord>& prior) {
  if (finished_ || open_epoch_ || epoch_ > 0 || summary_.epochs > 0)
    throw WorkloadError("a run can be continued only before its first epoch");
  for (std::size_t i = 0; i < prior.size(); ++i)
    if (prior[i].epoch != static_cast<int>(i) + 1)
      throw WorkloadError(fmt::format("the epochs to continue from must be numbered 1 to {} in order; epoch {} "
                                      "stands at position {}",
                                      prior.size(), prior[i].epoch, i + 1));
  // The same verdicts end_epoch gave them, without measuring or recording
  // anything: those epochs are already in the store, under earlier segments.
  for (const auto& e : prior) {
    auto v = rule_.observe(e.epoch, e.val_metric, e.val_loss);
    if (v.best) {
      summary_.best_epoch = e.epoch;
      summary_.best_val_metric = e.val_metric;
    }
    // reached_target: the rule remembers it, so no later epoch claims the
    // target; its energy is that of the segment that reached it.
    if (!v.stop && std::isfinite(e.train_loss)) {
      if (auto why = rule_.check_loss(e.train_loss)) {
        v.stop = true;
        v.status = RunStatus::diverged;
        v.reason = fmt::format("diverged in epoch {}: {}", e.epoch, *why);
      }
    }
    if (v.stop) {
      end_with(v.status, v.reason);
      break;
    }
  }
  const int k = static_cast<int>(prior.size());
  summary_.epochs = k;
  epoch_ = k;
  first_epoch_ = k + 1;
}

void RunControl::count(const energy::WindowResult& w) {
  summary_.duration_s += w.duration_s;
  summary_.energy_j += w.energy_j;
  summary_.machine_energy_j += w.machine_energy_j;
  if (!w.method.empty()) summary_.method = w.method;
  // CPU time adds up only while every epoch's is known.
  if (w.cpu && (counted_ == 0 || summary_.cpu)) {
    if (!summary_.cpu) summary_.cpu = energy::WindowCpu{};
    summary_.cpu->machine_s += w.cpu->machine_s;
    summary_.cpu->measured_s += w.cpu->measured_s;
  } else {
    summary_.cpu.reset();
  }
  ++counted_;
}

void RunControl::begin_epoch(int epoch) {
  if (finished_ || summary_.status != RunStatus::running)
    throw WorkloadError(fmt::format("epoch {} began after the run ended", epoch));
  if (open_epoch_) throw WorkloadError(fmt::format("epoch {} began while epoch {} was open", epoch, epoch_));
  if (epoch != summary_.epochs + 1)
    throw WorkloadError(fmt::format("epoch {} began after epoch {} (epochs count from 1, one by one)", epoch,
                                    summary_.epochs));
  epoch_ = epoch;
  tracker_.begin(fmt::format("{}epoch-{}", prefix_, epoch));
  open_epoch_ = true;  // from here on, the epoch window is ours to close
  tracker_.begin(fmt::format("{}train-{}", prefix_, epoch));
  in_eval_ = false;
  train_result_.reset();
}

void RunControl::begin_eval() {
  if (!open_epoch_) throw WorkloadError("an evaluation phase began outside an epoch");
  if (in_eval_) return;
  train_result_ = tracker_.end(fmt::format("{}train-{}", prefix_, epoch_));
  tracker_.begin(fmt::format("{}eval-{}", prefix_, epoch_));
  in_eval_ = true;
}

std::optional<std::string> RunControl::batch(const BatchProgress& progress) {
  auto why = rule_.check_loss(progress.running_loss);
  if (follower_) why.reset();  // the primary node judges the run
  if (!why) observer_.on_batch(progress);
  return why;
}

EpochVerdict RunControl::end_epoch(const EpochMetrics& m) {
  if (!open_epoch_) throw WorkloadError("an epoch ended that had not begun");
  std::optional<energy::WindowResult> eval;
  if (in_eval_) eval = tracker_.end(fmt::format("{}eval-{}", prefix_, epoch_));
  else train_result_ = tracker_.end(fmt::format("{}train-{}", prefix_, epoch_));
  const auto epoch_r = tracker_.end(fmt::format("{}epoch-{}", prefix_, epoch_));
  open_epoch_ = false;
  in_eval_ = false;
  count(epoch_r);

  EpochRecord r;
  r.epoch = epoch_;
  r.duration_s = epoch_r.duration_s;
  r.train_duration_s = train_result_->duration_s;
  r.train_energy_j = train_result_->energy_j;
  if (eval) {
    r.eval_duration_s = eval->duration_s;
    r.eval_energy_j = eval->energy_j;
  }
  r.energy_j = epoch_r.energy_j;
  r.machine_energy_j = epoch_r.machine_energy_j;
  r.method = epoch_r.method;
  r.channels = epoch_r.channels;
  r.cpu = epoch_r.cpu;
  if (m.samples && r.train_duration_s > 0)
    r.samples_per_s = static_cast<double>(*m.samples) / r.train_duration_s;
  r.train_loss = m.train_loss;
  r.val_loss = m.val_loss;
  r.val_metric = m.val_metric;
  r.val_task_metrics = m.val_task_metrics;
  summary_.epochs = epoch_;
  if (annotate_) annotate_(r);
  observer_.on_epoch(r);

  auto v = rule_.observe(epoch_, m.val_metric, m.val_loss);
  if (v.best) {
    summary_.best_epoch = epoch_;
    summary_.best_val_metric = m.val_metric;
  }
  if (v.reached_target) {
    summary_.energy_to_target_j = summary_.energy_j;
    summary_.time_to_target_s = summary_.duration_s;
  }
  if (!v.stop && !std::isnan(m.train_loss)) {
    if (auto why = rule_.check_loss(m.train_loss)) {
      v.stop = true;
      v.status = RunStatus::diverged;
      v.reason = fmt::format("diverged in epoch {}: {}", epoch_, *why);
    }
  }
  if (!v.stop && stop_rule_) {
    if (auto why = stop_rule_(r)) {
      v.stop = true;
      v.status = RunStatus::stopped;
      v.reason = *why;
    }
  }
  if (follower_) {  // the primary node decides; this node records
    v.stop = false;
    v.status = RunStatus::running;
    v.reason.clear();
  }
  if (v.stop) end_with(v.status, v.reason);
  return v;
}

void RunControl::end_open_epoch() {
  if (!open_epoch_) return;
  open_epoch_ = false;
  if (in_eval_) (void)tracker_.end(fmt::format("{}eval-{}", prefix_, epoch_));
  else (void)tracker_.end(fmt::format("{}train-{}", prefix_, epoch_));
  in_eval_ = false;
  count(tracker_.end(fmt::format("{}epoch-{}", prefix_, epoch_)));
}

void RunControl::end_with(RunStatus status, std::string message) {
  if (summary_.status != RunStatus::running) return;  // the first end wins
  summary_.status = status;
  summary_.message = std::move(message);
}

void RunControl::interrupt(std::string message) {
  end_open_epoch();
  end_with(RunStatus::interrupted, std::move(message));
}

void RunControl::diverge(std::string message) {
  end_open_epoch();
  end_with(RunStatus::diverged, std::move(message));
}

void RunControl::end_early(std::string message) {
  end_open_epoch();
  end_with(RunStatus::stopped, std::move(message));
}

void RunControl::fail(std::string message) {
  end_open_epoch();
  // A failure overrides a verdict: e.g. the checkpoint of a converged run could not be written.
  summary_.status = RunStatus::failed;
  summary_.message = std::move(message);
}

void RunControl::lose(std::string message) {
  end_open_epoch();
  summary_.status = RunStatus::interrupted;
  summary_.message = std::move(message);
}

void RunControl::set_test(double metric, std::vector<double> task_metrics) {
  summary_.test_metric = metric;
  summary_.test_task_metrics = std::move(task_metrics);
}

RunSummary RunControl::finish() {
  if (finished_) return summary_;
  end_open_epoch();
  if (summary_.status == RunStatus::running) {
    // Every epoch the workload chose to run ended without a verdict.
    summary_.status = RunStatus::max_epochs;
  }
  finished_ = true;
  observer_.on_end(summary_);
  return summary_;
}

}  // namespace powertrain::run
