// The training loop. Hot-path rules: tensors live on the device before the
// first epoch; a batch is two index_select_out calls into reused buffers; the
// gradients are zeroed by one fill and stepped by a flat optimizer (a few
// kernels per step whatever the parameter count); the loss is summed on the
// device and read once every progress_every batches and once per epoch.
#include "powertrain/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>
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
  int resumed_epochs = 0;            // epochs the resume_from state holds
  // Of the resume_from state: set when the run starts, so that nothing drawn
  // between construction and run() shifts them.
  torch::Tensor cpu_rng_state, device_rng_state;
};

namespace {

// Marks a state file, so that a checkpoint or another archive given as
// resume_from is refused with a clear message.
constexpr const char* kStateFormat = "powertrain-run-state-1";

// The generators of unseeded draws (dropout): the default CPU generator, which
// torch::manual_seed seeds at construction, and on a GPU that device's.
at::Generator cpu_generator() { return at::detail::getDefaultCPUGenerator(); }
at::Generator device_generator(const torch::Device& device) { return at::globalContext().defaultGenerator(device); }

torch::Tensor generator_state(at::Generator g) {
  std::lock_guard lock(g.mutex());
  return g.get_state();
}

void set_generator_state(at::Generator g, const torch::Tensor& state) {
  std::lock_guard lock(g.mutex());
  g.set_state(state);
}

// The model's tensors in a fixed order: parameters, then buffers (the order
// State::best keeps them in).
std::vector<torch::Tensor> model_tensors(models::ModelImpl& model) {
  auto out = model.parameters();
  for (const auto& b : model.buffers()) out.push_back(b);
  return out;
}

// Copies the model's tensors into `best` (allocated on first use): the weights
// of the best epoch so far.
void keep_weights(models::ModelImpl& model, std::vector<torch::Tensor>& best) {
  torch::NoGradGuard no_grad;
  const auto tensors = model_tensors(model);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (i == best.size())
      best.push_back(tensors[i].detach().clone());
    else
      best[i].copy_(tensors[i]);
  }
}

// Puts the weights keep_weights() kept back into the model.
void restore_weights(models::ModelImpl& model, const std::vector<torch::Tensor>& best) {
  torch::NoGradGuard no_grad;
  auto tensors = model_tensors(model);
  for (std::size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(best[i]);
}

}  // namespace

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
                                c.weight_decay, c.nesterov);
  st.generator = at::detail::createCPUGenerator(c.seed);
  const std::int64_t b = std::min(c.batch_size, st.train_x.size(0));
  auto shape = st.train_x.sizes().vec();
  shape[0] = b;
  st.x_buf = torch::empty(shape, st.train_x.options());
  shape = st.train_y.sizes().vec();
  shape[0] = b;
  st.y_buf = torch::empty(shape, st.train_y.options());
  st.loss_sum = torch::zeros({}, st.train_x.options());
  if (!c.resume_from.empty()) load_state(c.resume_from);
}

Trainer::~Trainer() = default;

void Trainer::save_state(const std::filesystem::path& path, int epochs) {
  auto& st = *state_;
  const auto tensors = model_tensors(*model_);
  try {
    torch::serialize::OutputArchive a;
    a.write("format", c10::IValue(std::string(kStateFormat)));
    a.write("epochs", c10::IValue(static_cast<std::int64_t>(epochs)));
    a.write("model.count", c10::IValue(static_cast<std::int64_t>(tensors.size())));
    // Copies of their own: a parameter is a view into the optimizer's flat
    // buffer, which the state should not depend on.
    for (std::size_t i = 0; i < tensors.size(); ++i) a.write(fmt::format("model.{}", i), tensors[i].detach().clone());
    a.write("best.count", c10::IValue(static_cast<std::int64_t>(st.best.size())));
    for (std::size_t i = 0; i < st.best.size(); ++i) a.write(fmt::format("best.{}", i), st.best[i]);
    st.optimizer->save_state(a);
    a.write("rng.epochs", generator_state(st.generator));
    a.write("rng.cpu", generator_state(cpu_generator()));
    if (!device_.is_cpu()) a.write("rng.device", generator_state(device_generator(device_)));
    if (st.first_loss) a.write("first_loss", c10::IValue(*st.first_loss));

    // Serialized in memory first: LibTorch's file writer throws from its
    // destructor when a write fails (a full disk), which ends the process.
    std::ostringstream bytes;
    a.save_to(bytes);
    const std::string data = std::move(bytes).str();

    std::error_code ec;
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
    // Whole or not at all: a run killed while writing leaves the .tmp file,
    // never a state that a later segment would read half of.
    auto tmp = path;
    tmp += ".tmp";
    const auto fail = [&](int err) {
      std::error_code rm;
      std::filesystem::remove(tmp, rm);
      return IoError(fmt::format("cannot write run state {}: {}", path.string(), std::strerror(err)));
    };
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw fail(errno);
    for (std::size_t off = 0; off < data.size();) {
      const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = n < 0 ? errno : ENOSPC;
        ::close(fd);
        throw fail(err);
      }
      off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
      const int err = errno;
      ::close(fd);
      throw fail(err);
    }
    if (::close(fd) != 0) throw fail(errno);
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
      std::filesystem::remove(tmp, ec);
      throw IoError(fmt::format("cannot write run state {}: {}", path.string(), ec.message()));
    }
  } catch (const c10::Error& e) {
    throw IoError(fmt::format("cannot write run state {}: {}", path.string(), e.what_without_backtrace()));
  }
}

void Trainer::load_state(const std::filesystem::path& path) {
  auto& st = *state_;
  if (!std::filesystem::is_regular_file(path)) throw IoError(fmt::format("no run state file {}", path.string()));
  const auto unreadable = [&](const std::string& why) {
    return IoError(fmt::format("cannot read run state {}: {}", path.string(), why));
  };
  torch::serialize::InputArchive a;
  try {
    a.load_from(path.string(), torch::Device(torch::kCPU));
  } catch (const c10::Error& e) {
    throw unreadable(e.what_without_backtrace());
  }
  try {
    c10::IValue format, epochs, count, best_count, first_loss;
    if (!a.try_read("format", format) || !format.isString() || format.toStringRef() != kStateFormat)
      throw unreadable("not a state written by powertrain's trainer (save_state)");
    if (!a.try_read("epochs", epochs) || !epochs.isInt() || epochs.toInt() < 1 || !a.try_read("model.count", count) ||
        !count.isInt() || !a.try_read("best.count", best_count) || !best_count.isInt())
      throw unreadable("its epoch count or its model is missing");

    const auto tensors = model_tensors(*model_);
    // Every state was written after an epoch, which is the best one when it is
    // the first: the best weights are always there.
    if (count.toInt() != static_cast<std::int64_t>(tensors.size()) || best_count.toInt() != count.toInt())
      throw ConfigError(fmt::format("run state {}: it holds {} model tensors, this model has {} (another setup?)",
                                    path.string(), count.toInt(), tensors.size()));
    const auto saved_tensor = [&](const std::string& key, const torch::Tensor& like) {
      torch::Tensor t;
      if (!a.try_read(key, t)) throw unreadable(fmt::format("'{}' is missing", key));
      if (t.sizes() != like.sizes())
        throw ConfigError(fmt::format("run state {}: '{}' has shape {}, this model's is {} (another setup?)",
                                      path.string(), key, c10::str(t.sizes()), c10::str(like.sizes())));
      return t.detach();
    };
    torch::NoGradGuard no_grad;
    st.best.clear();
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      auto p = tensors[i];  // shares the model's tensor: copy_ writes into the model
      p.copy_(saved_tensor(fmt::format("model.{}", i), p));
      st.best.push_back(saved_tensor(fmt::format("best.{}", i), p).to(p.options()).clone());
    }
    try {
      st.optimizer->load_state(a);
    } catch (const ConfigError& e) {
      throw ConfigError(fmt::format("run state {}: {}", path.string(), e.what()));
    }
    torch::Tensor rng_epochs;
    if (!a.try_read("rng.epochs", rng_epochs) || !a.try_read("rng.cpu", st.cpu_rng_state))
      throw unreadable("its random generators are missing");
    if (!device_.is_cpu()) (void)a.try_read("rng.device", st.device_rng_state);
    set_generator_state(st.generator, rng_epochs);
    st.first_loss.reset();
    if (a.try_read("first_loss", first_loss) && first_loss.isDouble()) st.first_loss = first_loss.toDouble();
    st.resumed_epochs = static_cast<int>(epochs.toInt());
  } catch (const c10::Error& e) {
    throw unreadable(e.what_without_backtrace());
  }
}

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
  // A continued run goes on after the epochs of its state, and only there.
  const int first = control.first_epoch();
  if (first - 1 != st.resumed_epochs) {
    if (c.resume_from.empty())
      throw WorkloadError(fmt::format("the run continues after epoch {} but has no state to continue from "
                                      "(resume_from)",
                                      first - 1));
    throw WorkloadError(fmt::format("the run state {} holds {} epochs, but the run continues after epoch {}",
                                    c.resume_from, st.resumed_epochs, first - 1));
  }
  SyncHookScope hook(control.tracker(), device_);

  try {
    if (st.cpu_rng_state.defined()) {
      set_generator_state(cpu_generator(), st.cpu_rng_state);
      st.cpu_rng_state = torch::Tensor();
    }
    if (st.device_rng_state.defined()) {
      set_generator_state(device_generator(device_), st.device_rng_state);
      st.device_rng_state = torch::Tensor();
    }
    for (int epoch = first; control.status() == run::RunStatus::running; ++epoch) {
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

      if (verdict.best) keep_weights(*model_, st.best);
      if (verdict.stop) break;
    }

    // ---- a segment's end: its state, before the best weights replace the last
    if (control.status() == run::RunStatus::max_epochs && !c.save_state.empty()) {
      try {
        save_state(c.save_state, control.epochs_done());
      } catch (const IoError& e) {
        // Not the setup's fault (a full disk): the segment is to be run again.
        control.lose(e.what());
      }
    }

    // ---- the best model: restore, test, checkpoint ------------------------
    const auto status = control.status();
    const bool ended = status == run::RunStatus::converged || status == run::RunStatus::max_epochs ||
                       status == run::RunStatus::diverged || status == run::RunStatus::stopped;
    if (ended && control.summary().best_epoch > 0) {
      restore_weights(*model_, st.best);
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
