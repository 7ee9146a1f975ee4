#pragma once
// SGD and Adam over flat parameter storage.
//
// torch::optim runs several kernels per parameter tensor per step (weight decay,
// momentum, update), and zero_grad one more; at small batch sizes those launches
// cost as much as the model's own compute. These optimizers move all parameters
// they are given into one contiguous buffer, and their gradients into another,
// by re-pointing each parameter (and its .grad) at a slice: the module keeps
// working unchanged, autograd accumulates into the slices in place, and a step
// is a handful of kernels over the whole buffer. The update rules are those of
// torch.optim.SGD (dampening 0) and torch.optim.Adam (L2 weight decay, no amsgrad).
//
// One difference from torch.optim: every parameter in the buffer is updated each
// step, also one that got no gradient (its gradient counts as zero; torch.optim
// with set_to_none skips it). The trainer's models use every parameter in every step.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace powertrain::train {

class FlatOptimizer {
 public:
  /// Re-points `params` (leaf tensors that require grad, all of one dtype and
  /// device) into flat storage. Do not move the module to another device or
  /// replace its parameters afterwards. Throws ConfigError when params is empty
  /// or mixes dtypes or devices.
  explicit FlatOptimizer(const std::vector<torch::Tensor>& params);
  virtual ~FlatOptimizer() = default;
  FlatOptimizer(const FlatOptimizer&) = delete;
  FlatOptimizer& operator=(const FlatOptimizer&) = delete;

  /// Zeroes every gradient: one fill over the flat gradient buffer.
  void zero_grad();
  /// One update from the current gradients.
  virtual void step() = 0;

  /// Writes what the next steps depend on beside the parameters (SGD's
  /// momentum buffer, Adam's moments and step count) under "optimizer.*", so
  /// that a paused run continues as if it had not stopped (train::Trainer,
  /// RunConfig::save_state).
  virtual void save_state(torch::serialize::OutputArchive& archive) const = 0;
  /// Reads what save_state wrote, onto this optimizer's device. Throws
  /// ConfigError when it was written by another kind of optimizer or for
  /// another number of parameters.
  virtual void load_state(torch::serialize::InputArchive& archive) = 0;

  double learning_rate() const { return lr_; }
  void set_learning_rate(double lr) { lr_ = lr; }
  std::int64_t numel() const { return params_.numel(); }
  const torch::Tensor& flat_params() const { return params_; }
  const torch::Tensor& flat_grads() const { return grads_; }

 protected:
  torch::Tensor params_;  // 1-D, every parameter's data
  torch::Tensor grads_;   // 1-D, every parameter's gradient
  double lr_ = 0.0;
};

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class FlatSgd final : public FlatOptimizer {
 public:
  FlatSgd(const std::vector<torch::Tensor>& params, SgdOptions options);
  void step() override;
  void save_state(torch::serialize::OutputArchive& archive) const override;
  void load_state(torch::serialize::InputArchive& archive) override;

 private:
  SgdOptions options_;
  torch::Tensor momentum_;  // undefined until the first step (torch.optim's lazy buffer)
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

class FlatAdam final : public FlatOptimizer {
 public:
  FlatAdam(const std::vector<torch::Tensor>& params, AdamOptions options);
  void step() override;
  void save_state(torch::serialize::OutputArchive& archive) const override;
  void load_state(torch::serialize::InputArchive& archive) override;

 private:
  AdamOptions options_;
  torch::Tensor exp_avg_, exp_avg_sq_, denom_;
  std::int64_t steps_ = 0;
};

/// "sgd" (momentum as given, Nesterov's when `nesterov`) or "adam" (momentum
/// and nesterov ignored). Throws ConfigError for another name or values out of
/// range (lr <= 0, momentum outside [0, 1), weight_decay < 0).
std::unique_ptr<FlatOptimizer> make_optimizer(const std::string& name, const std::vector<torch::Tensor>& params,
                                              double lr, double momentum, double weight_decay, bool nesterov = false);

}  // namespace powertrain::train
