#pragma once
// A model = one encoder + task heads; the factory by name; saving and loading.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "powertrain/models/modules.h"

namespace powertrain::models {

/// What a model needs to know about its data.
struct InputSpec {
  /// Shape of one sample: {C, H, W} for images, {channels, length} for sensors.
  std::vector<std::int64_t> sample_shape;
  /// false: one softmax head over `outputs` classes; true: `outputs` binary
  /// tasks, one sigmoid head each.
  bool multi_label = false;
  std::int64_t outputs = 2;  ///< classes (single label) or tasks (multi label)
};

/// Architecture knobs shared by every model. The defaults reach >= 90 % test
/// accuracy on Fashion-MNIST in a few epochs (32-64-128 channels, 3 blocks).
struct ModelOptions {
  std::int64_t width = 32;      ///< channels of the first conv block; doubled per block
  std::int64_t max_width = 256;
  int depth = 3;                ///< conv blocks
  std::int64_t kernel_size = 0; ///< 0: the model's default (3 image-cnn, 5 sensor-cnn)
  double dropout = 0.25;        ///< on the features, before the heads
  std::int64_t head_hidden = 0; ///< hidden units per head; 0: linear heads
  bool global_pool = false;     ///< image-cnn: average the last map instead of flattening
};

/// Encoder + heads; forward returns logits [N, classes] (single label) or
/// [N, tasks] (multi label).
class ModelImpl : public torch::nn::Module {
 public:
  ModelImpl(std::string name, InputSpec spec, ModelOptions options,
            std::shared_ptr<EncoderImpl> encoder, TaskHeads heads);

  torch::Tensor forward(const torch::Tensor& x);

  /// Freezes (or thaws) the encoder: its parameters stop requiring gradients
  /// and it stays in eval mode (batch-norm statistics fixed) even when the
  /// model is put in training mode.
  void freeze_encoder(bool frozen = true);
  bool encoder_frozen() const { return encoder_frozen_; }
  /// Parameters that require gradients (all of them unless the encoder is frozen).
  std::vector<torch::Tensor> trainable_parameters() const;

  void train(bool on = true) override;

  const std::string& name() const { return name_; }
  const InputSpec& spec() const { return spec_; }
  const ModelOptions& options() const { return options_; }

  std::shared_ptr<EncoderImpl> encoder;
  TaskHeads heads{nullptr};

 private:
  std::string name_;
  InputSpec spec_;
  ModelOptions options_;
  bool encoder_frozen_ = false;
};
TORCH_MODULE(Model);

/// Names make_model accepts: "image-cnn", "sensor-cnn".
const std::vector<std::string>& model_names();

/// Builds a model by name for data of shape `spec`. Parameters are initialized
/// from torch's global generator (seed it first for reproducible runs). Throws
/// ConfigError for an unknown name, a sample shape of the wrong rank for the
/// model, or options out of range.
Model make_model(const std::string& name, const InputSpec& spec, const ModelOptions& options = {});

/// Writes a module's parameters and buffers (torch::save format: torch::load
/// reads it back). Creates missing parent directories. Throws IoError.
void save_module(const torch::nn::Module& module, const std::filesystem::path& path);
/// Reads what save_module (or torch::save) wrote into a module of the same
/// architecture, onto the device of the module's parameters. Throws IoError for
/// an unreadable file, ConfigError when the architecture does not match.
void load_module(torch::nn::Module& module, const std::filesystem::path& path);

inline void save_model(const ModelImpl& model, const std::filesystem::path& path) { save_module(model, path); }
inline void load_model(ModelImpl& model, const std::filesystem::path& path) { load_module(model, path); }
inline void save_encoder(const ModelImpl& model, const std::filesystem::path& path) {
  save_module(*model.encoder, path);
}
inline void load_encoder(ModelImpl& model, const std::filesystem::path& path) { load_module(*model.encoder, path); }

/// Number of scalar parameters (trainable or not).
std::int64_t parameter_count(const torch::nn::Module& module);

}  // namespace powertrain::models
