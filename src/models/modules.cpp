// Encoders and task heads. Forward passes call the ATen ops directly on the
// registered parameters: no Sequential/AnyModule dispatch per layer, and no
// num_batches_tracked increment per batch-norm call (only used when momentum
// is unset, which it never is here).
#include "powertrain/models/modules.h"

#include <cmath>
#include <string>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::models {
namespace {

constexpr double kBnMomentum = 0.1;  // torch's default, as in Python
constexpr double kBnEps = 1e-5;

void validate(const ConvEncoderOptions& o, std::size_t rank, const char* what) {
  if (o.in_channels < 1) throw ConfigError(fmt::format("{}: input channels must be >= 1", what));
  if (o.extent.size() != rank)
    throw ConfigError(fmt::format("{}: expected a sample extent of rank {}, got {}", what, rank, o.extent.size()));
  for (auto e : o.extent)
    if (e < 1) throw ConfigError(fmt::format("{}: sample extent must be positive", what));
  if (o.width < 1 || o.max_width < 1) throw ConfigError(fmt::format("{}: width must be >= 1", what));
  if (o.depth < 1 || o.depth > 16) throw ConfigError(fmt::format("{}: depth must be in 1..16", what));
  if (o.kernel_size < 1 || o.kernel_size % 2 == 0)
    throw ConfigError(fmt::format("{}: kernel size must be odd and >= 1", what));
}

std::int64_t block_width(const ConvEncoderOptions& o, int block) {
  std::int64_t w = o.width;
  for (int i = 0; i < block && w < o.max_width; ++i) w *= 2;
  return std::min(w, std::max(o.max_width, o.width));
}

bool cudnn_enabled() { return at::globalContext().userEnabledCuDNN(); }

}  // namespace

ImageEncoderImpl::ImageEncoderImpl(const ConvEncoderOptions& options) : options_(options) {
  validate(options_, 2, "image-cnn");
  std::int64_t c = options_.in_channels, h = options_.extent[0], w = options_.extent[1];
  const std::int64_t k = options_.kernel_size;
  for (int i = 0; i < options_.depth; ++i) {
    const std::int64_t out = block_width(options_, i);
    convs_.push_back(register_module(
        fmt::format("conv{}", i),
        torch::nn::Conv2d(torch::nn::Conv2dOptions(c, out, k).padding(k / 2).bias(false))));
    norms_.push_back(register_module(fmt::format("norm{}", i), torch::nn::BatchNorm2d(out)));
    const bool pool = h >= 2 && w >= 2;
    pool_.push_back(pool);
    if (pool) h /= 2, w /= 2;
    c = out;
  }
  out_features_ = options_.global_pool ? c : c * h * w;
}

void ImageEncoderImpl::set_channels_last(bool on) {
  torch::NoGradGuard no_grad;
  const auto format = on ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  for (auto& conv : convs_) {
    auto& w = conv->weight;
    // A kernel over one input channel is already "contiguous" in either format,
    // so contiguous() keeps its strides and convolution reads it as NCHW: the
    // first block, the largest, then runs in NCHW. Copying into a tensor laid
    // out in the format fixes the strides that pick the layout.
    if (w.suggest_memory_format() != format) w.set_data(at::empty_like(w, format).copy_(w));
  }
  channels_last_ = on;
}

torch::Tensor ImageEncoderImpl::forward(const torch::Tensor& x) {
  const std::int64_t pad = options_.kernel_size / 2;
  const bool training = is_training();
  torch::Tensor h = channels_last_ ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
  for (std::size_t i = 0; i < convs_.size(); ++i) {
    h = torch::conv2d(h, convs_[i]->weight, {}, 1, {pad, pad});
    const auto& bn = norms_[i];
    h = torch::batch_norm(h, bn->weight, bn->bias, bn->running_mean, bn->running_var, training,
                          kBnMomentum, kBnEps, cudnn_enabled());
    if (pool_[i]) h = torch::max_pool2d(h, 2);
    h.relu_();  // batch norm and max pool keep their inputs for backward, not outputs
  }
  return options_.global_pool ? h.mean({2, 3}) : h.flatten(1);
}

SensorEncoderImpl::SensorEncoderImpl(const ConvEncoderOptions& options) : options_(options) {
  validate(options_, 1, "sensor-cnn");
  std::int64_t c = options_.in_channels, len = options_.extent[0];
  const std::int64_t k = options_.kernel_size;
  for (int i = 0; i < options_.depth; ++i) {
    const std::int64_t out = block_width(options_, i);
    convs_.push_back(register_module(
        fmt::format("conv{}", i),
        torch::nn::Conv1d(torch::nn::Conv1dOptions(c, out, k).padding(k / 2).bias(false))));
    norms_.push_back(register_module(fmt::format("norm{}", i), torch::nn::BatchNorm1d(out)));
    const bool pool = len >= 2;
    pool_.push_back(pool);
    if (pool) len /= 2;
    c = out;
  }
  out_features_ = c;
}

void SensorEncoderImpl::set_channels_last(bool on) {
  torch::NoGradGuard no_grad;
  // [O, C, k] stored as [O, k, C]: unsqueezed to [O, C, 1, k] it is a
  // channels-last 2-D kernel, without a copy per step.
  for (auto& conv : convs_) {
    auto& w = conv->weight;
    w.set_data(on ? w.permute({0, 2, 1}).contiguous().permute({0, 2, 1}) : w.contiguous());
  }
  channels_last_ = on;
}

torch::Tensor SensorEncoderImpl::forward(const torch::Tensor& x) {
  const std::int64_t pad = options_.kernel_size / 2;
  const bool training = is_training();
  if (channels_last_) {
    // The 1-D blocks as 2-D ones over [N, C, 1, L] in channels-last order.
    torch::Tensor h = x.unsqueeze(2).contiguous(at::MemoryFormat::ChannelsLast);
    for (std::size_t i = 0; i < convs_.size(); ++i) {
      h = torch::conv2d(h, convs_[i]->weight.unsqueeze(2), {}, 1, torch::IntArrayRef{0, pad});
      const auto& bn = norms_[i];
      h = torch::batch_norm(h, bn->weight, bn->bias, bn->running_mean, bn->running_var, training,
                            kBnMomentum, kBnEps, cudnn_enabled());
      if (pool_[i]) h = torch::max_pool2d(h, {1, 2});
      h.relu_();
    }
    return h.mean({2, 3});
  }
  torch::Tensor h = x;
  for (std::size_t i = 0; i < convs_.size(); ++i) {
    h = torch::conv1d(h, convs_[i]->weight, {}, 1, pad);
    const auto& bn = norms_[i];
    h = torch::batch_norm(h, bn->weight, bn->bias, bn->running_mean, bn->running_var, training,
                          kBnMomentum, kBnEps, cudnn_enabled());
    if (pool_[i]) h = torch::max_pool1d(h, 2);
    h.relu_();
  }
  return h.mean(2);
}

TaskHeadsImpl::TaskHeadsImpl(const TaskHeadsOptions& options) : options_(options) {
  const auto& o = options_;
  if (o.in_features < 1 || o.tasks < 1 || o.outputs < 1 || o.hidden < 0)
    throw ConfigError("task heads: in_features, tasks and outputs must be >= 1, hidden >= 0");
  if (o.dropout < 0.0 || o.dropout >= 1.0) throw ConfigError("task heads: dropout must be in [0, 1)");
  // torch.nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
  auto uniform = [](std::vector<std::int64_t> shape, std::int64_t fan_in) {
    const double b = 1.0 / std::sqrt(static_cast<double>(fan_in));
    return torch::empty(shape).uniform_(-b, b);
  };
  if (o.hidden == 0) {
    weight = register_parameter("weight", uniform({o.tasks * o.outputs, o.in_features}, o.in_features));
    bias = register_parameter("bias", uniform({o.tasks * o.outputs}, o.in_features));
  } else {
    hidden_weight = register_parameter("hidden_weight", uniform({o.tasks * o.hidden, o.in_features}, o.in_features));
    hidden_bias = register_parameter("hidden_bias", uniform({o.tasks * o.hidden}, o.in_features));
    weight = register_parameter("weight", uniform({o.tasks, o.outputs, o.hidden}, o.hidden));
    bias = register_parameter("bias", uniform({o.tasks * o.outputs}, o.hidden));
  }
}

torch::Tensor TaskHeadsImpl::forward(const torch::Tensor& features) {
  const auto& o = options_;
  torch::Tensor f = features;
  if (o.dropout > 0.0 && is_training()) f = torch::dropout(f, o.dropout, true);
  if (o.hidden == 0) return torch::linear(f, weight, bias);
  const std::int64_t n = f.size(0);
  torch::Tensor h = torch::linear(f, hidden_weight, hidden_bias).relu_();  // [N, T*H]
  // [T, N, H] x [T, H, O] -> [T, N, O]: every head's output layer in one batched matmul.
  torch::Tensor out = torch::bmm(h.view({n, o.tasks, o.hidden}).transpose(0, 1), weight.transpose(1, 2));
  return out.transpose(0, 1).reshape({n, o.tasks * o.outputs}) + bias;
}

}  // namespace powertrain::models
