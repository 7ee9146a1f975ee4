#pragma once
// A dataset held in memory as tensors; batches are cut from it by index.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace powertrain::data {

/// Labels are either one class per sample (int64 [N]) or several binary tasks
/// per sample (float32 [N, K], 0 or 1: CelebA attributes, multitask studies).
enum class LabelKind { single_label, multi_label };

struct Split {
  torch::Tensor x;  ///< float32, [N, C, H, W] for images, [N, channels, length] for sensors
  torch::Tensor y;  ///< int64 [N] (single_label) or float32 [N, K] (multi_label)
  std::int64_t size() const { return x.defined() ? x.size(0) : 0; }
};

struct Dataset {
  std::string name;        ///< "fashion-mnist", "celeba", "pamap2", "synthetic-images", ...
  bool synthetic = false;  ///< generated data; shown as such wherever it appears
  enum class Modality { image, sensor } modality = Modality::image;
  LabelKind label_kind = LabelKind::single_label;
  /// Class names (single_label) or task names (multi_label).
  std::vector<std::string> labels;
  Split train, val, test;
  /// One-line description of where the data came from and how it was split.
  std::string provenance;
  /// Input channel names, one per channel of x (sensor data: "hand_acc16_x", ...;
  /// images: "gray" or "red", "green", "blue").
  std::vector<std::string> channels;
  /// Per-channel normalization fitted on the training split and applied to every
  /// split: x = (raw - mean) / std. Empty when the inputs are not normalized.
  std::vector<double> norm_mean, norm_std;

  /// Number of model outputs: classes (single_label) or tasks (multi_label).
  std::int64_t num_outputs() const { return static_cast<std::int64_t>(labels.size()); }
};

}  // namespace powertrain::data
