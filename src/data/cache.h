#pragma once
// The decoded-image cache file: a 4 KiB header, then per split x float32
// [rows, C, H, W] and y float32 [rows, K], each at a page-aligned offset.
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "io.h"

namespace powertrain::data::detail {

// 2: a checksum of the pixels too (a corrupt pixel byte gave NaN losses).
inline constexpr std::uint32_t kCacheVersion = 2;
inline constexpr std::size_t kCacheHeaderBytes = 4096;

struct CacheLayout {
  std::uint32_t channels = 0, height = 0, width = 0, tasks = 0;
  std::array<std::uint64_t, 3> rows{};      ///< train, val, test
  std::array<std::uint64_t, 3> x_offset{};  ///< bytes from the file start
  std::array<std::uint64_t, 3> y_offset{};
  std::uint64_t file_bytes = 0;

  /// Offsets and size for the given dims.
  static CacheLayout plan(std::uint32_t channels, std::uint32_t height, std::uint32_t width, std::uint32_t tasks,
                          const std::array<std::uint64_t, 3>& rows);
  bool operator==(const CacheLayout&) const = default;
};

/// Per-channel normalization baked into the cached x (empty: none).
struct CacheNorm {
  std::vector<double> mean, std;
};

/// Maps the cache at `path` if it is complete and matches `key_hash` and
/// `expected`. Returns nullptr and sets `reason` (empty when the file does not
/// exist) otherwise.
std::shared_ptr<MappedFile> open_cache(const std::filesystem::path& path, std::uint64_t key_hash,
                                       const CacheLayout& expected, CacheNorm& norm, std::string& reason);

/// Writes a cache next to its final path and renames it into place on commit,
/// so a reader never sees a half-written file under the final name.
class CacheWriter {
 public:
  /// Throws IoError when the file cannot be created.
  CacheWriter(std::filesystem::path path, const CacheLayout& layout);
  ~CacheWriter();
  CacheWriter(const CacheWriter&) = delete;
  CacheWriter& operator=(const CacheWriter&) = delete;

  float* x(int split) const;
  float* y(int split) const;
  /// Writes the header (with checksums), flushes and renames. Throws IoError.
  void commit(std::uint64_t key_hash, const std::string& key_text, const CacheNorm& norm);

 private:
  std::filesystem::path path_, tmp_;
  CacheLayout layout_;
  std::shared_ptr<MappedFile> map_;
  bool committed_ = false;
};

}  // namespace powertrain::data::detail
