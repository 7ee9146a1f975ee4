#pragma once
// Private torch helpers shared by the loaders (implemented in dataset.cpp).
#include <cstdint>
#include <string>
#include <vector>

#include "powertrain/data/dataset.h"
#include "powertrain/data/load.h"

namespace powertrain::data::detail {

/// Salts that keep the seeded choices of different splits independent.
inline constexpr std::uint64_t kSaltTrain = 1, kSaltVal = 2, kSaltTest = 3, kSaltHoldout = 4, kSaltTemplates = 5;

/// Checks the options every dataset reads (subset, max_samples, val_fraction).
/// Throws ConfigError.
void validate_common(const DatasetOptions& options);

torch::Tensor index_tensor(const std::vector<std::int64_t>& rows);

/// The given rows of a split (one index_select per tensor; the split itself when
/// rows are all of it, in order).
Split take_rows(const Split& split, const std::vector<std::int64_t>& rows);

/// Applies options.subset to train and options.max_samples to every split.
/// Returns a provenance note ("" when nothing was cut).
std::string apply_subset(Dataset& dataset, const DatasetOptions& options);

/// Per-channel (dim 1) mean and population std over the rows of `x`, in double
/// precision, in chunks so large tensors need no double copy. A std below 1e-12
/// is reported as 1.
void channel_stats(const torch::Tensor& x, std::vector<double>& mean, std::vector<double>& std);

/// Fits mean/std on dataset.train.x and applies them to every split (new
/// tensors; inputs untouched). Records them in norm_mean/norm_std.
void normalize_from_train(Dataset& dataset);

/// Throws DataError("<what> not found in <dir>: <hint>") unless dir exists.
void require_dir(const std::filesystem::path& dir, const std::string& what, const std::string& hint);

}  // namespace powertrain::data::detail
