#include "powertrain/train/optimizer.h"

#include <cmath>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::train {

FlatOptimizer::FlatOptimizer(const std::vector<torch::Tensor>& params) {
  if (params.empty()) throw ConfigError("the optimizer got no trainable parameters");
  const auto options = params.front().options().requires_grad(false);
  std::int64_t total = 0;
  for (const auto& p : params) {
    if (p.dtype() != options.dtype() || p.device() != options.device())
      throw ConfigError("the optimizer's parameters must share one dtype and device");
    if (!p.is_leaf() || !p.requires_grad()) throw ConfigError("the optimizer's parameters must be leaves that require grad");
    total += p.numel();
  }
  params_ = torch::empty({total}, options);
  grads_ = torch::zeros({total}, options);
  torch::NoGradGuard no_grad;
  std::int64_t offset = 0;
  for (auto p : params) {  // handles share the parameter's TensorImpl
    const std::int64_t n = p.numel();
    // A slice with the parameter's own strides: a channels-last weight stays
    // channels-last (dense strides cover exactly n elements).
    auto slice = [&](const torch::Tensor& flat) {  // flat starts at offset 0 of its storage
      return p.is_non_overlapping_and_dense() ? flat.as_strided(p.sizes(), p.strides(), offset)
                                              : flat.narrow(0, offset, n).view(p.sizes());
    };
    auto data = slice(params_);
    data.copy_(p);
    p.set_data(data);
    // Autograd accumulates into an existing .grad in place, so the gradients
    // land in grads_ without a copy.
    p.mutable_grad() = slice(grads_);
    offset += n;
  }
}

void FlatOptimizer::zero_grad() { grads_.zero_(); }

namespace {

// Marks a saved state with the optimizer's kind and size: a state of another
// setup is refused instead of stepping from moments of other parameters.
void write_kind(torch::serialize::OutputArchive& a, const char* kind, std::int64_t numel) {
  a.write("optimizer.kind", c10::IValue(std::string(kind)));
  a.write("optimizer.numel", c10::IValue(numel));
}

void check_kind(torch::serialize::InputArchive& a, const char* kind, std::int64_t numel) {
  c10::IValue saved_kind, saved_numel;
  if (!a.try_read("optimizer.kind", saved_kind) || !a.try_read("optimizer.numel", saved_numel) ||
      !saved_kind.isString() || !saved_numel.isInt())
    throw ConfigError("the saved state holds no optimizer state");
  if (saved_kind.toStringRef() != kind)
    throw ConfigError(fmt::format("the saved state is of optimizer '{}', not '{}'", saved_kind.toStringRef(), kind));
  if (saved_numel.toInt() != numel)
    throw ConfigError(fmt::format("the saved optimizer state is for {} parameters, this model has {}",
                                  saved_numel.toInt(), numel));
}

// A saved buffer onto `like`'s device and dtype, checked for its size.
torch::Tensor fit(const torch::Tensor& saved, const std::string& key, const torch::Tensor& like) {
  if (saved.numel() != like.numel()) throw ConfigError(fmt::format("the saved '{}' has the wrong size", key));
  return saved.detach().to(like.options()).reshape(like.sizes()).contiguous();
}

torch::Tensor read_buffer(torch::serialize::InputArchive& a, const std::string& key, const torch::Tensor& like) {
  torch::Tensor t;
  if (!a.try_read(key, t)) throw ConfigError(fmt::format("the saved optimizer state lacks '{}'", key));
  return fit(t, key, like);
}

}  // namespace

FlatSgd::FlatSgd(const std::vector<torch::Tensor>& params, SgdOptions options)
    : FlatOptimizer(params), options_(options) {
  lr_ = options_.lr;
}

void FlatSgd::step() {
  torch::NoGradGuard no_grad;
  // The gradient buffer is scratch until the next zero_grad: update it in place.
  if (options_.weight_decay != 0.0) grads_.add_(params_, options_.weight_decay);
  if (options_.momentum == 0.0) {
    params_.add_(grads_, -lr_);
    return;
  }
  if (!momentum_.defined()) {
    momentum_ = grads_.clone();
  } else {
    momentum_.mul_(options_.momentum).add_(grads_);
  }
  if (options_.nesterov)
    params_.add_(grads_.add_(momentum_, options_.momentum), -lr_);
  else
    params_.add_(momentum_, -lr_);
}

void FlatSgd::save_state(torch::serialize::OutputArchive& a) const {
  write_kind(a, "sgd", numel());
  // Undefined before the first step (and without momentum): nothing to keep.
  if (momentum_.defined()) a.write("optimizer.momentum", momentum_);
}

void FlatSgd::load_state(torch::serialize::InputArchive& a) {
  check_kind(a, "sgd", numel());
  torch::Tensor saved;
  if (a.try_read("optimizer.momentum", saved))
    momentum_ = fit(saved, "optimizer.momentum", params_);
  else
    momentum_ = torch::Tensor();
}

FlatAdam::FlatAdam(const std::vector<torch::Tensor>& params, AdamOptions options)
    : FlatOptimizer(params), options_(options) {
  lr_ = options_.lr;
  exp_avg_ = torch::zeros_like(params_);
  exp_avg_sq_ = torch::zeros_like(params_);
  denom_ = torch::empty_like(params_);
}

void FlatAdam::step() {
  torch::NoGradGuard no_grad;
  ++steps_;
  const auto& o = options_;
  if (o.weight_decay != 0.0) grads_.add_(params_, o.weight_decay);
  exp_avg_.mul_(o.beta1).add_(grads_, 1.0 - o.beta1);
  exp_avg_sq_.mul_(o.beta2).addcmul_(grads_, grads_, 1.0 - o.beta2);
  const double bias_correction1 = 1.0 - std::pow(o.beta1, static_cast<double>(steps_));
  const double bias_correction2 = 1.0 - std::pow(o.beta2, static_cast<double>(steps_));
  const double step_size = lr_ / bias_correction1;
  torch::sqrt_out(denom_, exp_avg_sq_);
  denom_.div_(std::sqrt(bias_correction2)).add_(o.eps);
  params_.addcdiv_(exp_avg_, denom_, -step_size);
}

void FlatAdam::save_state(torch::serialize::OutputArchive& a) const {
  write_kind(a, "adam", numel());
  a.write("optimizer.exp_avg", exp_avg_);
  a.write("optimizer.exp_avg_sq", exp_avg_sq_);
  a.write("optimizer.steps", c10::IValue(steps_));
}

void FlatAdam::load_state(torch::serialize::InputArchive& a) {
  check_kind(a, "adam", numel());
  c10::IValue steps;
  if (!a.try_read("optimizer.steps", steps) || !steps.isInt() || steps.toInt() < 0)
    throw ConfigError("the saved optimizer state lacks Adam's step count");
  // Into the existing buffers: the step's kernels keep writing where they did.
  torch::NoGradGuard no_grad;
  exp_avg_.copy_(read_buffer(a, "optimizer.exp_avg", exp_avg_));
  exp_avg_sq_.copy_(read_buffer(a, "optimizer.exp_avg_sq", exp_avg_sq_));
  steps_ = steps.toInt();
}

std::unique_ptr<FlatOptimizer> make_optimizer(const std::string& name, const std::vector<torch::Tensor>& params,
                                              double lr, double momentum, double weight_decay, bool nesterov) {
  if (!(lr > 0.0) || !std::isfinite(lr)) throw ConfigError(fmt::format("learning rate must be > 0, got {}", lr));
  if (!(weight_decay >= 0.0)) throw ConfigError(fmt::format("weight decay must be >= 0, got {}", weight_decay));
  if (name == "sgd") {
    if (!(momentum >= 0.0 && momentum < 1.0))
      throw ConfigError(fmt::format("momentum must be in [0, 1), got {}", momentum));
    return std::make_unique<FlatSgd>(params, SgdOptions{lr, momentum, weight_decay, nesterov});
  }
  if (name == "adam") return std::make_unique<FlatAdam>(params, AdamOptions{lr, 0.9, 0.999, 1e-8, weight_decay});
  throw ConfigError(fmt::format("unknown optimizer '{}' (known: sgd, adam)", name));
}

}  // namespace powertrain::train
