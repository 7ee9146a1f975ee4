#pragma once
// Writers of miniature datasets in exactly the published on-disk formats.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace powertrain::testing {

// --- IDX / gzip ---------------------------------------------------------------

/// An IDX file: magic 00 00 <type> <rank>, big-endian dims, then `data`.
std::string idx_bytes(const std::vector<std::uint32_t>& dims, const std::vector<std::uint8_t>& data,
                      std::uint8_t type = 0x08);
/// Writes `bytes` gzip-compressed through zlib (gzopen/gzwrite).
void write_gz(const std::filesystem::path& path, const std::string& bytes);
/// Fashion-MNIST fixture: label of item i is i % 10; every pixel of item i is
/// label * 20 except pixel (0, 0), which is i % 256.
void write_fashion_fixture(const std::filesystem::path& dir, std::uint32_t n_train, std::uint32_t n_test);

// --- JPEG / CelebA ---------------------------------------------------------------

/// JPEG bytes of an RGB image (row-major, 3 bytes per pixel), via tjCompress2.
std::string jpeg_bytes(int width, int height, const std::vector<std::uint8_t>& rgb, int quality = 95);

/// The 40 CelebA attribute names in published order.
const std::vector<std::string>& celeba_attribute_names();

struct CelebAFixture {
  std::vector<std::string> files;      ///< 000001.jpg, ...
  std::vector<int> partition;          ///< 0, 1, 2 per file
  std::vector<std::vector<int>> attrs; ///< -1/1 per file and attribute
};

/// Writes img_align_celeba/*.jpg (178x218: left half red, right half blue),
/// list_attr_celeba.txt and list_eval_partition.txt. Attribute k of image i is
/// 1 when (i + k) % 3 == 0. Partition: i % 4 == 2 -> val, i % 4 == 3 -> test.
CelebAFixture write_celeba_fixture(const std::filesystem::path& dir, int n_images);

// --- PAMAP2 -----------------------------------------------------------------------

struct DatSegment {
  int activity;
  int rows;
  double gap_before_s = 0.0;  ///< extra time before this segment's first row
};

/// Value of column `col` (0-based, 2..53) at `row` of activity `activity`;
/// NaN is written as "NaN".
using DatValue = std::function<double(int row, int activity, int col)>;

/// Writes <dir>/Protocol/subject<id>.dat: 54 columns per row at 100 Hz.
void write_pamap2_subject(const std::filesystem::path& dir, int id, const std::vector<DatSegment>& segments,
                          const DatValue& value);

}  // namespace powertrain::testing
