// The training loop. Hot-path rules: tensors live on the device before the
// first epoch; a batch is two index_select_out calls into reused buffers; the
// gradients are zeroed by one fill and stepped by a flat optimizer (a few
// kernels per step whatever the parameter count); the loss is summed on the
// device and read once every progress_every batches and once per epoch.
#include "powertrain/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/train/device.h"
#include "powertrain/run/environment.h"
#include "powertrain/train/memory.h"

namespace powertrain::train {
namespace {

// Installs a GPU synchronization as the tracker's sync hook for the run's
// duration, so queued kernels land in the window that issued them.
class SyncHookScope {
 public:
  SyncHookScope(energy::Tracker& tracker, const torch::Device& device) : tracker_(tracker) {
    if (!device.is_cuda()) return;
    tracker_.set_sync_hook([device] { synchronize(device); });
    installed_ = true;
  }
  ~SyncHookScope() {
    if (installed_) tracker_.set_sync_hook({});
  }
  SyncHookScope(const SyncHookScope&) = delete;
  SyncHookScope& operator=(const SyncHookScope&) = delete;

 private:
  energy::Tracker& tracker_;
  bool installed_ = false;
};

void check_split(const data::Split& s, const char* name, data::LabelKind kind) {
  if (s.size() == 0) return;
  if (!s.y.defined() || s.y.size(0) != s.x.size(0))
    throw DataError(fmt::format("{} split: x has {} samples but y does not match", name, s.x.size(0)));
  if (kind == data::LabelKind::single_label && (s.y.dim() != 1 || s.y.scalar_type() != torch::kLong))
    throw DataError(fmt::format("{} split: single-label y must be int64 [N]", name));
  if (kind == data::LabelKind::multi_label && s.y.dim() != 2)
    throw DataError(fmt::format("{} split: multi-label y must be [N, K]", name));
}

}  // namespace

models::InputSpec input_spec(const data::Dataset& ds) {
  if (!ds.train.x.defined() || ds.train.x.dim() < 2) throw DataError(fmt::format("{}: no training samples", ds.name));
  models::InputSpec spec;
  spec.sample_shape.assign(ds.train.x.sizes().begin() + 1, ds.train.x.sizes().end());
  spec.multi_label = ds.label_kind == data::LabelKind::multi_label;
  if (spec.multi_label) {
    if (ds.train.y.dim() != 2) throw DataError(fmt::format("{}: multi-label y must be [N, K]", ds.name));
    spec.outputs = ds.train.y.size(1);
  } else if (!ds.labels.empty()) {
    spec.outputs = static_cast<std::int64_t>(ds.labels.size());
  } else {
    std::int64_t top = 0;
    for (const auto* s : {&ds.train, &ds.val, &ds.test})
      if (s->size() > 0) top = std::max(top, s->y.max().item<std::int64_t>());
    spec.outputs = top + 1;
  }
  return spec;
}

int configure_threads(int threads) {
  if (threads < 0) throw ConfigError(fmt::format("threads must be >= 0, got {}", threads));
  const int n = threads > 0 ? threads : run::available_cpus();
  torch::set_num_threads(n);
  // Inter-op threads can be set only once per process, before first use.
  static std::once_flag once;
  std::call_once(once, [n] {
    try {
      torch::set_num_interop_threads(n);
    } catch (const c10::Error&) {  // already started by someone else: keep theirs
    }
  });
  return torch::get_num_threads();
}

struct Trainer::State {
  bool multi_label = false;
  std::int64_t tasks = 1;
  torch::Tensor train_x, train_y, val_x, val_y, test_x, test_y;  // on the device
  std::unique_ptr<FlatOptimizer> optimizer;
  at::Generator generator;       // CPU: epoch permutations
  torch::Tensor x_buf, y_buf;    // one batch, reused every step
  torch::Tensor loss_sum;        // float32 scalar on the device
  std::vector<torch::Tensor> best;  // parameters and buffers of the best epoch
  std::optional<double> first_loss;
};

Trainer::Trainer(run::RunConfig config, const data::Dataset& dataset, TrainOptions options)
    : config_(std::move(config)), options_(std::move(options)), state_(std::make_unique<State>()) {
  const auto& c = config_;
  run::validate(c);
  (void)run::ConvergenceRule(c, options_.loss_limits);  // checks the loss limits of TrainOptions
  if (options_.progress_every < 1) throw ConfigError("progress_every must be >= 1");
  if (options_.eval_batch_size < 0) throw ConfigError("eval batch size must be >= 0");
  device_ = parse_device(c.device);
  threads_ = configure_threads(c.threads);
  keep_freed_memory();

  auto& st = *state_;
  st.multi_label = dataset.label_kind == data::LabelKind::multi_label;
  if (dataset.train.size() == 0) throw DataError(fmt::format("{}: the training split is empty", dataset.name));
  if (dataset.val.size() == 0)
    throw DataError(fmt::format("{}: no validation split (early stopping needs one)", dataset.name));
  check_split(dataset.train, "training", dataset.label_kind);
  check_split(dataset.val, "validation", dataset.label_kind);
  check_split(dataset.test, "test", dataset.label_kind);
  const auto spec = input_spec(dataset);
  st.tasks = st.multi_label ? spec.outputs : 1;

  torch::manual_seed(c.seed);
  model_ = models::make_model(c.model, spec, options_.model);
  if (!c.init_encoder.empty()) models::load_encoder(*model_, c.init_encoder);
  if (c.freeze_encoder) model_->freeze_encoder();
  model_->to(device_);
  // Before the optimizer re-points the parameters: it keeps their layout.
  if (device_.is_cpu() && options_.channels_last_on_cpu) model_->encoder->set_channels_last(true);

  // Once, before training: the splits on the device, labels in the loss's dtype.
  const auto y_type = st.multi_label ? torch::kFloat : torch::kLong;
  auto put = [&](const data::Split& s, torch::Tensor& x, torch::Tensor& y) {
    if (s.size() == 0) return;
    x = s.x.to(device_, torch::kFloat).contiguous();
    y = s.y.to(device_, y_type).contiguous();
  };
  put(dataset.train, st.train_x, st.train_y);
  put(dataset.val, st.val_x, st.val_y);
  put(dataset.test, st.test_x, st.test_y);

  st.optimizer = make_optimizer(c.optimizer, model_->trainable_parameters(), c.learning_rate, c.momentum,
                                c.weight_decay);
  st.generator = at::detail::createCPUGenerator(c.seed);
  const std::int64_t b = std::min(c.batch_size, st.train_x.size(0));
  auto shape = st.train_x.sizes().vec();
  shape[0] = b;
  st.x_buf = torch::empty(shape, st.train_x.options());
  shape = st.train_y.sizes().vec();
  shape[0] = b;
  st.y_buf = torch::empty(shape, st.train_y.options());
  st.loss_sum = torch::zeros({}, st.train_x.options());
}

Trainer::~Trainer() = default;

// Returns nullopt when stopped by the flag.
static std::optional<Trainer::Evaluation> evaluate_tensors(models::ModelImpl& model, const torch::Tensor& x,
                                                           const torch::Tensor& y, bool multi_label,
                                                           std::int64_t batch, const run::RunControl* control) {
  model.eval();
  c10::InferenceMode inference;
  const std::int64_t n = x.size(0);
  const std::int64_t tasks = multi_label ? y.size(1) : 1;
  auto loss_sum = torch::zeros({}, x.options());
  auto correct = torch::zeros({tasks}, x.options().dtype(torch::kLong));
  for (std::int64_t start = 0; start < n; start += batch) {
    if (control && control->stop_requested()) return std::nullopt;
    const std::int64_t m = std::min(batch, n - start);
    const auto xb = x.narrow(0, start, m);  // a view: evaluation needs no shuffling
    const auto yb = y.narrow(0, start, m);
    const auto logits = model.forward(xb);
    if (multi_label) {
      loss_sum.add_(torch::binary_cross_entropy_with_logits(logits, yb, {}, {}, at::Reduction::Sum));
      correct.add_(logits.gt(0).eq(yb.gt(0.5)).sum(0));
    } else {
      loss_sum.add_(torch::cross_entropy_loss(logits, yb, {}, at::Reduction::Sum));
      correct.add_(logits.argmax(1).eq(yb).sum());
    }
  }
  Trainer::Evaluation e;
  e.loss = loss_sum.item<double>() / static_cast<double>(n * tasks);
  const auto counts = correct.cpu();
  const auto* c = counts.data_ptr<std::int64_t>();
  double sum = 0.0;
  for (std::int64_t k = 0; k < tasks; ++k) {
    const double acc = static_cast<double>(c[k]) / static_cast<double>(n);
    sum += acc;
    if (multi_label) e.task_metrics.push_back(acc);
  }
  e.metric = sum / static_cast<double>(tasks);
  return e;
}

Trainer::Evaluation Trainer::evaluate(const data::Split& split) {
  if (split.size() == 0) throw DataError("cannot evaluate an empty split");
  const auto y_type = state_->multi_label ? torch::kFloat : torch::kLong;
  const std::int64_t batch = options_.eval_batch_size > 0 ? options_.eval_batch_size
                                                           : std::max<std::int64_t>(config_.batch_size, 1024);
  return *evaluate_tensors(*model_, split.x.to(device_, torch::kFloat), split.y.to(device_, y_type),
                           state_->multi_label, batch, nullptr);
}

std::string Trainer::framework() const { return torch_version(); }

run::RunSummary Trainer::run(energy::Tracker& tracker, run::RunObserver& observer, const std::atomic<bool>* stop) {
  run::RunControl control(config_, tracker, observer, stop, options_.loss_limits, options_.window_prefix);
  control.start(run::collect_environment(config_.device, threads_, &tracker, framework()));
  run(control);
  return control.finish();
}

void Trainer::run(run::RunControl& control) {
  auto& st = *state_;
  const auto& c = config_;
  auto& opt = *st.optimizer;
  const std::int64_t n_train = st.train_x.size(0);
  const std::int64_t batch = c.batch_size;
  const std::int64_t steps = (n_train + batch - 1) / batch;
  const std::int64_t eval_batch =
      options_.eval_batch_size > 0 ? options_.eval_batch_size : std::max<std::int64_t>(batch, 1024);
  const bool multi = st.multi_label;
  SyncHookScope hook(control.tracker(), device_);

  try {
    for (int epoch = 1; control.status() == run::RunStatus::running; ++epoch) {
      if (control.stop_requested()) {
        control.interrupt(fmt::format("interrupted before epoch {}", epoch));
        break;
      }
      control.begin_epoch(epoch);

      // ---- training ------------------------------------------------------
      model_->train();
      const auto order = torch::randperm(n_train, st.generator, torch::kLong).to(device_);
      st.loss_sum.zero_();
      std::int64_t done = 0;
      bool cut_short = false;
      for (std::int64_t step = 0; step < steps; ++step) {
        if (control.stop_requested()) {
          control.interrupt(fmt::format("interrupted in epoch {} after {} of {} batches", epoch, step, steps));
          cut_short = true;
          break;
        }
        const std::int64_t m = std::min(batch, n_train - step * batch);
        const auto index = order.narrow(0, step * batch, m);
        auto xb = m == st.x_buf.size(0) ? st.x_buf : st.x_buf.narrow(0, 0, m);
        auto yb = m == st.y_buf.size(0) ? st.y_buf : st.y_buf.narrow(0, 0, m);
        torch::index_select_out(xb, st.train_x, 0, index);
        torch::index_select_out(yb, st.train_y, 0, index);

        opt.zero_grad();
        const auto logits = model_->forward(xb);
        const auto loss = multi ? torch::binary_cross_entropy_with_logits(logits, yb)
                                : torch::cross_entropy_loss(logits, yb);
        loss.backward();
        opt.step();
        {
          torch::NoGradGuard no_grad;
          st.loss_sum.add_(loss, static_cast<double>(m));
        }
        done += m;

        if ((step + 1) % options_.progress_every == 0 && step + 1 < steps) {
          const double running = st.loss_sum.item<double>() / static_cast<double>(done);
          if (auto why = control.batch({epoch, step + 1, steps, done, running})) {
            control.diverge(fmt::format("diverged in epoch {} after {} batches: {}", epoch, step + 1, *why));
            cut_short = true;
            break;
          }
        }
      }
      if (cut_short) break;
      const double train_loss = st.loss_sum.item<double>() / static_cast<double>(n_train);
      if (auto why = control.check_loss(train_loss)) {
        control.diverge(fmt::format("diverged in epoch {} after {} batches: {}", epoch, steps, *why));
        break;
      }

      // ---- validation ----------------------------------------------------
      control.begin_eval();
      const auto val = evaluate_tensors(*model_, st.val_x, st.val_y, multi, eval_batch, &control);
      if (!val) {
        control.interrupt(fmt::format("interrupted in epoch {} during validation", epoch));
        break;
      }
      run::EpochMetrics metrics;
      metrics.val_metric = val->metric;
      metrics.val_loss = val->loss;
      metrics.train_loss = train_loss;
      metrics.samples = n_train;
      metrics.val_task_metrics = val->task_metrics;
      const auto verdict = control.end_epoch(metrics);

      if (verdict.best) {
        torch::NoGradGuard no_grad;
        std::size_t i = 0;
        auto keep = [&](const torch::Tensor& t) {
          if (i == st.best.size())
            st.best.push_back(t.detach().clone());
          else
            st.best[i].copy_(t);
          ++i;
        };
        for (const auto& p : model_->parameters()) keep(p);
        for (const auto& b : model_->buffers()) keep(b);
      }
      if (verdict.stop) break;
    }

    // ---- the best model: restore, test, checkpoint ------------------------
    const auto status = control.status();
    const bool ended = status == run::RunStatus::converged || status == run::RunStatus::max_epochs ||
                       status == run::RunStatus::diverged;
    if (ended && control.summary().best_epoch > 0) {
      {
        torch::NoGradGuard no_grad;
        std::size_t i = 0;
        for (auto& p : model_->parameters()) p.copy_(st.best[i++]);
        for (auto& b : model_->buffers()) b.copy_(st.best[i++]);
      }
      if (st.test_x.defined()) {
        const auto test = evaluate_tensors(*model_, st.test_x, st.test_y, multi, eval_batch, nullptr);
        control.set_test(test->metric, test->task_metrics);
      }
      if (!c.checkpoint.empty()) {
        try {
          models::save_model(*model_, c.checkpoint);
          models::save_encoder(*model_, run::encoder_checkpoint_path(c.checkpoint));
        } catch (const IoError& e) {
          control.fail(e.what());
        }
      }
    }
  } catch (const c10::Error& e) {
    control.fail(fmt::format("torch error: {}", e.what_without_backtrace()));
  }
}

run::RunSummary train_run(const run::RunConfig& config, const data::Dataset& dataset, energy::Tracker& tracker,
                     run::RunObserver& observer, const std::atomic<bool>* stop, const TrainOptions& options) {
  Trainer trainer(config, dataset, options);
  return trainer.run(tracker, observer, stop);
}

}  // namespace powertrain::train
