#pragma once
// Building blocks of the models: encoders (data -> feature vector) and task heads
// (feature vector -> logits). Every model is one encoder plus one TaskHeads, so an
// encoder can be pretrained, saved, frozen and shared between tasks.
#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace powertrain::models {

/// Maps a batch of samples to a batch of feature vectors [N, out_features()].
/// Subclasses register their parameters so that torch::save/torch::load and
/// freezing see them.
class EncoderImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  /// Length of the feature vector forward() returns.
  std::int64_t out_features() const { return out_features_; }

  /// Runs the conv blocks in channels-last memory order (NHWC; sensor
  /// sequences as [N, C, 1, L]) and lays the conv weights out the same way:
  /// the order oneDNN's CPU kernels, max pooling and batch norm are fastest in.
  /// The function computed is the same. Call it before an optimizer takes the
  /// parameters: it replaces their storage, so a flat optimizer created before
  /// would no longer update the weights. Shapes, names and checkpoints do not
  /// change.
  virtual void set_channels_last(bool on) = 0;
  bool channels_last() const { return channels_last_; }

 protected:
  std::int64_t out_features_ = 0;
  bool channels_last_ = false;
};

/// Architecture of a conv encoder.
struct ConvEncoderOptions {
  std::int64_t in_channels = 1;
  /// Spatial extent of one sample: {H, W} for images, {L} for sensor sequences.
  std::vector<std::int64_t> extent;
  std::int64_t width = 32;       ///< channels of the first block
  std::int64_t max_width = 256;  ///< channels double per block up to this
  int depth = 3;                 ///< number of blocks
  std::int64_t kernel_size = 3;  ///< odd; "same" padding
  /// Average the last feature map over its spatial extent instead of flattening it.
  bool global_pool = false;
};

/// Image encoder: `depth` blocks conv(k x k, no bias) -> batch norm -> 2x2 max
/// pool -> ReLU, then the last map flattened (or averaged with global_pool).
/// Pooling stops once a side is below 2. Pool before ReLU is the same function
/// as ReLU before pool (both are monotone) at a quarter of the ReLU work.
/// Input float32 [N, C, H, W].
class ImageEncoderImpl final : public EncoderImpl {
 public:
  explicit ImageEncoderImpl(const ConvEncoderOptions& options);
  torch::Tensor forward(const torch::Tensor& x) override;
  void set_channels_last(bool on) override;
  const ConvEncoderOptions& options() const { return options_; }

 private:
  ConvEncoderOptions options_;
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::BatchNorm2d> norms_;
  std::vector<bool> pool_;
};

/// Sensor encoder: `depth` blocks conv1d(k, no bias) -> batch norm -> max pool
/// (2) -> ReLU, then the mean over time (global average pooling), so any
/// sequence length gives out_features() = channels of the last block.
/// Input float32 [N, channels, length].
class SensorEncoderImpl final : public EncoderImpl {
 public:
  explicit SensorEncoderImpl(const ConvEncoderOptions& options);
  torch::Tensor forward(const torch::Tensor& x) override;
  void set_channels_last(bool on) override;
  const ConvEncoderOptions& options() const { return options_; }

 private:
  ConvEncoderOptions options_;
  std::vector<torch::nn::Conv1d> convs_;
  std::vector<torch::nn::BatchNorm1d> norms_;
  std::vector<bool> pool_;
};

struct TaskHeadsOptions {
  std::int64_t in_features = 0;
  /// Independent heads. Single-label data: 1 head with `outputs` classes.
  /// Multi-label data: K heads with 1 output (a sigmoid logit) each.
  std::int64_t tasks = 1;
  std::int64_t outputs = 1;  ///< logits per head
  /// Hidden units of each head (Linear -> ReLU -> Linear); 0: one Linear per head.
  std::int64_t hidden = 0;
  double dropout = 0.0;  ///< on the features, before the heads (training only)
};

/// K independent heads on one feature vector, computed together: the heads'
/// weights are stacked so that all K run as one matmul (plus one batched matmul
/// when hidden > 0) instead of K small ones; head k's parameters are slice k and
/// no parameter is shared between heads. forward returns [N, tasks * outputs]:
/// [N, classes] for one single-label head, [N, K] for K binary heads.
class TaskHeadsImpl final : public torch::nn::Module {
 public:
  explicit TaskHeadsImpl(const TaskHeadsOptions& options);
  torch::Tensor forward(const torch::Tensor& features);
  const TaskHeadsOptions& options() const { return options_; }

  /// hidden == 0: [tasks * outputs, in_features]; else the output layer
  /// [tasks, outputs, hidden].
  torch::Tensor weight;
  torch::Tensor bias;  ///< [tasks * outputs]
  /// hidden > 0 only: [tasks * hidden, in_features] and [tasks * hidden].
  torch::Tensor hidden_weight, hidden_bias;

 private:
  TaskHeadsOptions options_;
};
TORCH_MODULE(TaskHeads);

}  // namespace powertrain::models
