#include "powertrain/data/batch.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <fmt/format.h>

#include "io.h"
#include "powertrain/error.h"

namespace powertrain::data {

BatchIterator::BatchIterator(const Split& split, std::int64_t batch_size, BatchOptions options)
    : split_(split), batch_size_(batch_size), options_(options) {
  if (batch_size < 1) throw ConfigError(fmt::format("batch size must be >= 1, got {}", batch_size));
  if (!split.x.defined() || !split.y.defined()) throw ConfigError("cannot iterate over an empty split");
  if (split.x.size(0) != split.y.size(0))
    throw ConfigError(fmt::format("split has {} inputs but {} labels", split.x.size(0), split.y.size(0)));
  n_ = split.x.size(0);
}

void BatchIterator::start_epoch(std::int64_t epoch) {
  const auto device = split_.x.device();
  if (options_.shuffle) {
    // The permutation of an epoch depends only on (seed, epoch), so a resumed run
    // sees the same order as an uninterrupted one.
    detail::SplitMix64 mix(options_.seed ^ (static_cast<std::uint64_t>(epoch) * 0xd1b54a32d192ed03ull));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(mix.next());
    order_ = torch::randperm(n_, gen, torch::TensorOptions().dtype(torch::kLong));
    if (!device.is_cpu()) order_ = order_.to(device);
  } else {
    order_ = torch::arange(n_, torch::TensorOptions().dtype(torch::kLong).device(device));
  }
  cursor_ = 0;
  batch_index_ = 0;
  started_ = true;
}

bool BatchIterator::next(Batch& batch) {
  if (!started_) start_epoch(0);
  const std::int64_t left = n_ - cursor_;
  if (left <= 0 || (options_.drop_last && left < batch_size_)) {
    cursor_ = n_;
    return false;
  }
  const std::int64_t size = std::min(batch_size_, left);
  if (options_.shuffle) {
    auto idx = order_.narrow(0, cursor_, size);
    batch.x = split_.x.index_select(0, idx);
    batch.y = split_.y.index_select(0, idx);
  } else {
    batch.x = split_.x.narrow(0, cursor_, size);
    batch.y = split_.y.narrow(0, cursor_, size);
  }
  batch.index = batch_index_++;
  cursor_ += size;
  return true;
}

std::int64_t BatchIterator::batches_per_epoch() const {
  return options_.drop_last ? n_ / batch_size_ : (n_ + batch_size_ - 1) / batch_size_;
}

Split to_device(const Split& split, const torch::Device& device) {
  Split out;
  if (split.x.defined()) out.x = split.x.to(device);
  if (split.y.defined()) out.y = split.y.to(device);
  return out;
}

Dataset to_device(const Dataset& dataset, const torch::Device& device) {
  Dataset out = dataset;
  out.train = to_device(dataset.train, device);
  out.val = to_device(dataset.val, device);
  out.test = to_device(dataset.test, device);
  return out;
}

}  // namespace powertrain::data
