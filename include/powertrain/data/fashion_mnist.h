#pragma once
// Fashion-MNIST read from its gzip'd IDX files.
#include <filesystem>
#include <string>
#include <vector>

#include "powertrain/data/dataset.h"
#include "powertrain/data/load.h"

namespace powertrain::data {

/// The ten class names, index = label.
const std::vector<std::string>& fashion_mnist_classes();

/// Loads train-{images,labels} and t10k-{images,labels} (*-idx?-ubyte.gz) from
/// options.data_dir (default /usr/share/datasets/fashion-mnist, Debian package
/// dataset-fashion-mnist). Images float32 [N,1,28,28] in [0,1] (normalized when
/// options.normalize), labels int64 [N]. val = a seeded options.val_fraction of
/// the training set; test = t10k. options.tasks derives multi-label tasks
/// (multitask.h). Throws DataError naming the file for a missing or malformed file.
Dataset load_fashion_mnist(const DatasetOptions& options);

/// An IDX file's content: dims from the header, bytes in row-major order.
struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> data;
};

/// Reads an unsigned-byte IDX file (magic 0x0000080N), gzip'd or plain, through
/// zlib. Checks the magic, that it has `expected_rank` dims, and that the payload
/// is exactly the size the dims give. Throws DataError naming the file.
IdxArray read_idx_ubyte(const std::filesystem::path& path, int expected_rank);

}  // namespace powertrain::data
