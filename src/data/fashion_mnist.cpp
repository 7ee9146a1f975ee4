#include "powertrain/data/fashion_mnist.h"

#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "common.h"
#include "io.h"
#include "powertrain/data/multitask.h"
#include "powertrain/error.h"

namespace powertrain::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPackageHint =
    "install the Debian package dataset-fashion-mnist (apt install dataset-fashion-mnist) or set data_dir to a folder "
    "with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz";
constexpr std::int64_t kSide = 28;

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

/// Reads exactly `size` bytes unless the stream ends or fails; returns the count.
std::size_t gz_read_all(gzFile f, std::uint8_t* dst, std::size_t size, const fs::path& path) {
  std::size_t got = 0;
  while (got < size) {
    const auto want = static_cast<unsigned>(std::min<std::size_t>(size - got, 1u << 30));
    const int n = gzread(f, dst + got, want);
    if (n < 0) {
      int errnum = 0;
      const char* msg = gzerror(f, &errnum);
      throw DataError(fmt::format("{}: corrupt gzip data ({})", path.string(), msg ? msg : "unknown zlib error"));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

/// `stem`.gz, else the uncompressed `stem`.
fs::path find_idx(const fs::path& dir, const std::string& stem) {
  std::error_code ec;
  fs::path gz = dir / (stem + ".gz");
  if (fs::exists(gz, ec)) return gz;
  fs::path plain = dir / stem;
  if (fs::exists(plain, ec)) return plain;
  throw DataError("missing file " + gz.string() + " (Fashion-MNIST: " + kPackageHint + ")");
}

}  // namespace

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

IdxArray read_idx_ubyte(const fs::path& path, int expected_rank) {
  detail::require_file(path);
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) throw IoError("cannot open " + path.string());
  gzbuffer(f.get(), 1u << 20);
  std::uint8_t magic[4];
  if (gz_read_all(f.get(), magic, 4, path) != 4) throw DataError(path.string() + ": truncated IDX header");
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] != expected_rank)
    throw DataError(fmt::format("{}: bad IDX magic {:02x}{:02x}{:02x}{:02x}, expected 000008{:02x} (unsigned bytes, {} dims)",
                                path.string(), magic[0], magic[1], magic[2], magic[3], expected_rank, expected_rank));
  IdxArray out;
  std::size_t total = 1;
  for (int d = 0; d < expected_rank; ++d) {
    std::uint8_t b[4];
    if (gz_read_all(f.get(), b, 4, path) != 4) throw DataError(path.string() + ": truncated IDX header");
    const std::uint32_t v = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
    out.dims.push_back(v);
    total *= v;
    if (total > (std::size_t{1} << 36)) throw DataError(path.string() + ": IDX dims are implausibly large");
  }
  out.data.resize(total);
  const std::size_t got = gz_read_all(f.get(), out.data.data(), total, path);
  if (got != total)
    throw DataError(fmt::format("{}: truncated: {} of {} data bytes the header promises", path.string(), got, total));
  std::uint8_t extra;
  if (gz_read_all(f.get(), &extra, 1, path) != 0)
    throw DataError(path.string() + ": more data than the IDX header promises");
  return out;
}

Dataset load_fashion_mnist(const DatasetOptions& options) {
  detail::validate_common(options);
  const bool default_dir = options.data_dir.empty();
  const fs::path dir = default_dir ? default_data_dir("fashion-mnist") : options.data_dir;
  detail::require_dir(dir, "Fashion-MNIST", kPackageHint);

  struct Raw {
    torch::Tensor x, y;
  };
  auto read_pair = [&](const std::string& prefix) {
    const fs::path images_path = find_idx(dir, prefix + "-images-idx3-ubyte");
    const fs::path labels_path = find_idx(dir, prefix + "-labels-idx1-ubyte");
    IdxArray images = read_idx_ubyte(images_path, 3);
    IdxArray labels = read_idx_ubyte(labels_path, 1);
    if (images.dims[1] != kSide || images.dims[2] != kSide)
      throw DataError(fmt::format("{}: images are {}x{}, expected 28x28", images_path.string(), images.dims[1],
                                  images.dims[2]));
    if (images.dims[0] != labels.dims[0])
      throw DataError(fmt::format("{} has {} images but {} has {} labels", images_path.string(), images.dims[0],
                                  labels_path.string(), labels.dims[0]));
    if (images.dims[0] == 0) throw DataError(images_path.string() + ": no images");
    for (std::size_t i = 0; i < labels.data.size(); ++i)
      if (labels.data[i] >= 10)
        throw DataError(fmt::format("{}: label {} of item {} is not a class 0..9", labels_path.string(),
                                    labels.data[i], i));
    const auto n = images.dims[0];
    Raw r;
    r.x = torch::from_blob(images.data.data(), {n, 1, kSide, kSide}, torch::kUInt8).to(torch::kFloat).div_(255.0f);
    r.y = torch::from_blob(labels.data.data(), {n}, torch::kUInt8).to(torch::kLong);
    return r;
  };
  Raw train = read_pair("train");
  Raw test = read_pair("t10k");

  Dataset ds;
  ds.name = "fashion-mnist";
  ds.modality = Dataset::Modality::image;
  ds.labels = fashion_mnist_classes();
  ds.channels = {"gray"};
  const auto n_train = train.x.size(0);
  const auto n_val = static_cast<std::int64_t>(std::llround(options.val_fraction * static_cast<double>(n_train)));
  if (n_val > 0) {
    // A seeded holdout: the same seed gives the same validation images.
    auto perm = detail::permutation(n_train, options.seed, detail::kSaltHoldout);
    std::vector<std::int64_t> val_rows(perm.begin(), perm.begin() + n_val), train_rows(perm.begin() + n_val, perm.end());
    std::sort(val_rows.begin(), val_rows.end());
    std::sort(train_rows.begin(), train_rows.end());
    ds.val = detail::take_rows({train.x, train.y}, val_rows);
    ds.train = detail::take_rows({train.x, train.y}, train_rows);
  } else {
    ds.train = {train.x, train.y};
    ds.val = {torch::empty({0, 1, kSide, kSide}), torch::empty({0}, torch::kLong)};
  }
  ds.test = {test.x, test.y};
  const std::string subset_note = detail::apply_subset(ds, options);

  std::string resize_note;
  if (options.image_size > 0 && options.image_size != kSide) {
    namespace F = torch::nn::functional;
    const auto s = options.image_size;
    auto opts = F::InterpolateFuncOptions().size(std::vector<std::int64_t>{s, s});
    if (s < kSide) opts.mode(torch::kArea);
    else opts.mode(torch::kBilinear).align_corners(false);
    torch::NoGradGuard no_grad;
    for (Split* sp : {&ds.train, &ds.val, &ds.test})
      sp->x = sp->size() > 0 ? F::interpolate(sp->x, opts) : torch::empty({0, 1, s, s});
    resize_note = fmt::format("; resized to {}x{}", s, s);
  }
  if (options.normalize) detail::normalize_from_train(ds);

  ds.provenance = fmt::format(
      "Fashion-MNIST (Zalando) from {}: train {} / val {} (seeded {:g}% holdout of train-*, seed {}) / test {} (t10k-*){}{}{}",
      dir.string(), ds.train.size(), ds.val.size(), options.val_fraction * 100, options.seed, ds.test.size(),
      subset_note.empty() ? "" : "; " + subset_note, resize_note,
      options.normalize ? "; normalized with train mean/std" : "");
  if (!options.tasks.empty()) return to_multitask(ds, options.tasks);
  return ds;
}

}  // namespace powertrain::data
