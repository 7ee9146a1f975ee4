#pragma once
// One options struct for every dataset, and the factory that dispatches by name.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "powertrain/data/dataset.h"

namespace powertrain::data {

/// Everything that selects and shapes a dataset. Fields a dataset does not use
/// are ignored by it; docs/data.md lists which dataset reads which field.
struct DatasetOptions {
  /// fashion-mnist, celeba, pamap2, synthetic-images, synthetic-sensors.
  std::string name = "fashion-mnist";
  /// Dataset root. Empty: default_data_dir(name).
  std::filesystem::path data_dir;
  /// Seed of every random choice the data layer makes: the training subset, the
  /// validation split carved from Fashion-MNIST's training set, the synthetic
  /// generators. Keep it fixed across runs that must see the same split.
  std::uint64_t seed = 0;
  /// Fraction of the training split kept, chosen at random by `seed` (quick runs).
  /// Validation and test splits are never subsampled by this.
  double subset = 1.0;
  /// Cap on the size of every split (train, val and test); 0: no cap. Applied
  /// after `subset`, chosen at random by `seed`.
  std::int64_t max_samples = 0;
  /// Fraction of the training set held out as the validation split where the
  /// dataset has no official one (fashion-mnist). In (0, 1), or 0 for no val split.
  double val_fraction = 0.1;
  /// Per-channel mean/std fitted on the training split and applied to every
  /// split. PAMAP2 is always normalized; synthetic data is generated at unit scale.
  bool normalize = false;
  /// Multi-label tasks. CelebA: attribute names (empty: all 40). Single-label
  /// datasets: derived binary tasks, see multitask.h (empty: single-label).
  std::vector<std::string> tasks;

  // --- images ---------------------------------------------------------------
  /// Side of the square images in pixels. 0: the dataset's own size (CelebA 64,
  /// Fashion-MNIST 28, synthetic 28). Fashion-MNIST is resized when set.
  std::int64_t image_size = 0;

  // --- CelebA ---------------------------------------------------------------
  /// Where decoded images are cached. Empty: default_cache_dir().
  std::filesystem::path cache_dir;
  /// Decode once and memory-map the cache afterwards. False: decode every time.
  bool use_cache = true;
  /// Crop the 178x218 aligned faces to a centered square before resizing.
  /// False: resize the whole image (faces get squeezed).
  bool center_crop = true;
  /// Decoding threads; 0: one per hardware thread.
  int threads = 0;

  // --- PAMAP2 ---------------------------------------------------------------
  /// Channels by name ("hand_acc16_x"), IMU ("hand"), IMU and sensor
  /// ("ankle_gyro") or sensor group ("acc16", "gyro", "heart_rate").
  /// Empty: the ±16g accelerometers and gyroscopes of all three IMUs (18 channels).
  std::vector<std::string> channels;
  /// Window length and stride in samples (after downsampling).
  std::int64_t window = 256;
  std::int64_t stride = 128;
  /// Keep every k-th sample (100 Hz / k).
  std::int64_t downsample = 1;
  /// NaN runs up to this many samples are interpolated; longer runs cut the
  /// recording like a gap (no window spans them).
  std::int64_t max_fill = 50;
  /// Subjects (101..109) of each split. Empty train: every subject not in val/test.
  std::vector<int> train_subjects;
  std::vector<int> val_subjects{105};
  std::vector<int> test_subjects{106};
  /// Activities that count, by id ("4") or name ("walking", "nordic_walking");
  /// class indices follow the protocol order. Empty: all 12 protocol activities.
  std::vector<std::string> activities;

  // --- synthetic --------------------------------------------------------------
  std::int64_t num_classes = 0;       ///< 0: 10 (images), 6 (sensors)
  std::int64_t train_samples = 6000;  ///< training samples generated
  std::int64_t eval_samples = 1000;   ///< validation and test samples generated, each
  std::int64_t input_channels = 0;    ///< 0: 1 (images), 6 (sensors)
  std::int64_t length = 128;          ///< sensor sequence length in samples
  double noise = 1.0;                 ///< noise scale; 1 is the calibrated default
};

/// Names load_dataset accepts.
const std::vector<std::string>& dataset_names();

/// Loads (or generates) the dataset named by options.name. Throws ConfigError for
/// an unknown name or invalid options, DataError for missing or malformed files,
/// IoError when a file cannot be read.
Dataset load_dataset(const DatasetOptions& options);

/// Where a dataset lives by default: $POWERTRAIN_DATA_DIR/<name> when that
/// exists, else /usr/share/datasets/<name>.
std::filesystem::path default_data_dir(const std::string& name);

/// $XDG_CACHE_HOME/powertrain, else ~/.cache/powertrain, else /tmp/powertrain-cache.
std::filesystem::path default_cache_dir();

}  // namespace powertrain::data
