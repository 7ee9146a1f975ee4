#pragma once
// Mini-batches cut from a split's resident tensors by index: one gather per batch,
// never a tensor per sample.
#include <cstdint>

#include "powertrain/data/dataset.h"

namespace powertrain::data {

struct BatchOptions {
  bool shuffle = true;     ///< a fresh permutation each epoch; false: in order
  bool drop_last = false;  ///< drop the last, smaller batch
  std::uint64_t seed = 0;  ///< permutation of epoch e is a function of (seed, e)
};

/// One batch: rows of the split's x and y, on the split's device.
struct Batch {
  torch::Tensor x, y;
  std::int64_t index = 0;  ///< batch number within the epoch, from 0
  std::int64_t size() const { return x.defined() ? x.size(0) : 0; }
};

/// Walks a split in batches. Shuffled batches are one index_select per tensor
/// with a permutation drawn per epoch from a seeded torch::Generator; unshuffled
/// batches are slices (views, no copy). The split's tensors are shared, not
/// copied; they may live on any device (the permutation is moved there once
/// per epoch).
///
///   BatchIterator it(ds.train, 128, {.seed = 1});
///   for (int e = 0; e < epochs; ++e) {
///     it.start_epoch(e);
///     for (Batch b; it.next(b);) train_step(b.x, b.y);
///   }
class BatchIterator {
 public:
  /// Throws ConfigError when batch_size < 1 or the split's x and y disagree in length.
  BatchIterator(const Split& split, std::int64_t batch_size, BatchOptions options = {});

  /// Starts epoch `epoch` (any order, repeatable): draws its permutation.
  void start_epoch(std::int64_t epoch);
  /// Cuts the next batch into `batch`; false when the epoch is done. Before the
  /// first start_epoch it walks epoch 0.
  bool next(Batch& batch);

  std::int64_t batches_per_epoch() const;
  std::int64_t samples() const { return n_; }
  std::int64_t batch_size() const { return batch_size_; }
  /// The current epoch's sample order (int64 [N], on the split's device).
  const torch::Tensor& order() const { return order_; }

 private:
  Split split_;
  std::int64_t batch_size_;
  BatchOptions options_;
  std::int64_t n_ = 0;
  std::int64_t cursor_ = 0;
  std::int64_t batch_index_ = 0;
  bool started_ = false;
  torch::Tensor order_;
};

/// Copies of the split's tensors on `device` (done once, so batches are cut there).
Split to_device(const Split& split, const torch::Device& device);
/// Every split of `dataset` moved to `device`.
Dataset to_device(const Dataset& dataset, const torch::Device& device);

}  // namespace powertrain::data
