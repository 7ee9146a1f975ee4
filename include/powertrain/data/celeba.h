#pragma once
// CelebA: aligned JPEG faces, 40 binary attributes, the official partition;
// decoded once into a memory-mapped cache.
#include <filesystem>
#include <string>
#include <vector>

#include "powertrain/data/dataset.h"
#include "powertrain/data/load.h"

namespace powertrain::data {

/// What happened to the decoded-image cache during one load.
enum class CacheOutcome {
  disabled,    ///< options.use_cache was false: decoded into memory
  hit,         ///< a valid cache was memory-mapped; nothing decoded
  built,       ///< no cache existed: decoded and written
  rebuilt,     ///< the cache was corrupt, truncated or stale: decoded and rewritten
  unwritable,  ///< decoded into memory because the cache could not be written
};
std::string_view to_string(CacheOutcome outcome);

struct CacheReport {
  CacheOutcome outcome = CacheOutcome::disabled;
  std::filesystem::path path;  ///< the cache file (empty when disabled)
  std::string reason;          ///< why it was rebuilt or unwritable
  std::int64_t decoded = 0;    ///< images decoded by this load
};

/// The 40 attribute names in file order, as read from list_attr_celeba.txt
/// (first data line). Throws DataError naming the file and line.
std::vector<std::string> read_celeba_attribute_names(const std::filesystem::path& data_dir);

/// Loads CelebA from options.data_dir (img_align_celeba/*.jpg,
/// list_attr_celeba.txt, list_eval_partition.txt). x float32 [N,3,S,S] in [0,1]
/// (S = options.image_size, default 64; normalized when options.normalize),
/// y float32 [N,K] in {0,1} for the attributes in options.tasks (all 40 when
/// empty). Official train/val/test partition. Images are decoded with
/// libjpeg-turbo once and cached under options.cache_dir; `report`, when given,
/// says what the cache did. Throws DataError naming the file (and line).
Dataset load_celeba(const DatasetOptions& options, CacheReport* report = nullptr);

}  // namespace powertrain::data
