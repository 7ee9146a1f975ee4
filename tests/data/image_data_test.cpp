// Fashion-MNIST, CelebA and synthetic images, on fixtures written in the published formats.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "fixtures.h"
#include "powertrain/data/celeba.h"
#include "powertrain/data/fashion_mnist.h"
#include "powertrain/data/load.h"
#include "powertrain/data/synthetic.h"
#include "powertrain/error.h"
#include "temp_dir.h"

namespace powertrain::data {
namespace {

namespace fs = std::filesystem;
using powertrain::testing::TempDir;

/// Runs `fn` and returns the DataError's message; fails when it does not throw one.
template <class Fn>
std::string data_error(Fn&& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected DataError";
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// --- Fashion-MNIST -------------------------------------------------------------

TEST(FashionMnist, LoadsShapesLabelsAndSeededValSplit) {
  TempDir dir;
  testing::write_fashion_fixture(dir.path(), 200, 50);
  DatasetOptions o;
  o.data_dir = dir.path();
  o.val_fraction = 0.1;
  const Dataset ds = load_fashion_mnist(o);
  EXPECT_EQ(ds.name, "fashion-mnist");
  EXPECT_FALSE(ds.synthetic);
  EXPECT_EQ(ds.label_kind, LabelKind::single_label);
  ASSERT_EQ(ds.labels.size(), 10u);
  EXPECT_EQ(ds.labels[0], "T-shirt/top");
  EXPECT_EQ(ds.labels[9], "Ankle boot");
  EXPECT_EQ(ds.train.size(), 180);
  EXPECT_EQ(ds.val.size(), 20);
  EXPECT_EQ(ds.test.size(), 50);
  EXPECT_EQ(ds.train.x.sizes(), (std::vector<std::int64_t>{180, 1, 28, 28}));
  EXPECT_EQ(ds.train.x.dtype(), torch::kFloat);
  EXPECT_EQ(ds.train.y.dtype(), torch::kLong);
  EXPECT_GE(ds.train.x.min().item<float>(), 0.0f);
  EXPECT_LE(ds.train.x.max().item<float>(), 1.0f);
  // Pixel (5, 5) is label * 20 / 255: images and labels stay paired through the split.
  for (const Split* s : {&ds.train, &ds.val, &ds.test}) {
    auto expect = s->y.to(torch::kFloat) * 20.0f / 255.0f;
    EXPECT_TRUE(torch::allclose(s->x.select(2, 5).select(2, 5).squeeze(1), expect, 1e-6, 1e-6));
  }
  // Train and val are disjoint and together cover the training file: pixel (0,0) is the item id.
  auto ids = torch::cat({ds.train.x, ds.val.x}).select(2, 0).select(2, 0).squeeze(1).mul(255).round().to(torch::kLong);
  EXPECT_EQ(std::get<0>(torch::_unique(ids)).numel(), 200);
  // Same seed, same split; another seed, another split.
  EXPECT_TRUE(torch::equal(load_fashion_mnist(o).val.x, ds.val.x));
  o.seed = 7;
  EXPECT_FALSE(torch::equal(load_fashion_mnist(o).val.x, ds.val.x));
}

TEST(FashionMnist, SubsetMaxSamplesNormalizeResize) {
  TempDir dir;
  testing::write_fashion_fixture(dir.path(), 100, 40);
  DatasetOptions o;
  o.data_dir = dir.path();
  o.val_fraction = 0.0;
  o.subset = 0.5;
  o.max_samples = 30;
  o.normalize = true;
  o.image_size = 14;
  const Dataset ds = load_fashion_mnist(o);
  EXPECT_EQ(ds.train.size(), 30);
  EXPECT_EQ(ds.val.size(), 0);
  EXPECT_EQ(ds.test.size(), 30);
  EXPECT_EQ(ds.train.x.sizes(), (std::vector<std::int64_t>{30, 1, 14, 14}));
  ASSERT_EQ(ds.norm_mean.size(), 1u);
  EXPECT_NEAR(ds.train.x.mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(ds.train.x.std(false).item<double>(), 1.0, 1e-3);
  EXPECT_TRUE(contains(ds.provenance, "subset")) << ds.provenance;
}

TEST(FashionMnist, MalformedFilesNameTheFile) {
  TempDir dir;
  testing::write_fashion_fixture(dir.path(), 20, 10);
  DatasetOptions o;
  o.data_dir = dir.path();
  const fs::path images = dir / "train-images-idx3-ubyte.gz", labels = dir / "train-labels-idx1-ubyte.gz";
  std::vector<std::uint8_t> pixels(20 * 784, 1), lab(20, 3);

  // Wrong magic (labels' magic on the image file).
  testing::write_gz(images, testing::idx_bytes({20, 28 * 28}, pixels));
  auto msg = data_error([&] { load_fashion_mnist(o); });
  EXPECT_TRUE(contains(msg, images.string()) && contains(msg, "magic")) << msg;

  // Truncated payload.
  auto bytes = testing::idx_bytes({20, 28, 28}, pixels);
  testing::write_gz(images, bytes.substr(0, bytes.size() - 100));
  msg = data_error([&] { load_fashion_mnist(o); });
  EXPECT_TRUE(contains(msg, images.string()) && contains(msg, "truncated")) << msg;

  // Truncated gzip stream.
  testing::write_gz(images, bytes);
  auto gz = testing::read_file(images);
  testing::write_file(images, gz.substr(0, gz.size() / 2));
  msg = data_error([&] { load_fashion_mnist(o); });
  EXPECT_TRUE(contains(msg, images.string())) << msg;

  // Count mismatch between images and labels.
  testing::write_gz(images, bytes);
  testing::write_gz(labels, testing::idx_bytes({19}, std::vector<std::uint8_t>(19, 3)));
  msg = data_error([&] { load_fashion_mnist(o); });
  EXPECT_TRUE(contains(msg, "20 images") && contains(msg, "19 labels")) << msg;

  // Wrong image dims, label out of range.
  testing::write_gz(labels, testing::idx_bytes({20}, lab));
  testing::write_gz(images, testing::idx_bytes({20, 28, 27}, std::vector<std::uint8_t>(20 * 28 * 27)));
  msg = data_error([&] { load_fashion_mnist(o); });
  EXPECT_TRUE(contains(msg, "28x27")) << msg;
  testing::write_gz(images, bytes);
  lab[4] = 10;
  testing::write_gz(labels, testing::idx_bytes({20}, lab));
  msg = data_error([&] { load_fashion_mnist(o); });
  EXPECT_TRUE(contains(msg, labels.string()) && contains(msg, "label 10")) << msg;

  // Trailing bytes after the promised payload.
  lab[4] = 3;
  testing::write_gz(labels, testing::idx_bytes({20}, lab) + "xx");
  msg = data_error([&] { load_fashion_mnist(o); });
  EXPECT_TRUE(contains(msg, labels.string()) && contains(msg, "more data")) << msg;

  // Missing file.
  fs::remove(dir / "t10k-labels-idx1-ubyte.gz");
  testing::write_gz(labels, testing::idx_bytes({20}, lab));
  msg = data_error([&] { load_fashion_mnist(o); });
  EXPECT_TRUE(contains(msg, "t10k-labels-idx1-ubyte.gz") && contains(msg, "dataset-fashion-mnist")) << msg;

  // Missing folder names the Debian package.
  o.data_dir = dir / "nowhere";
  msg = data_error([&] { load_fashion_mnist(o); });
  EXPECT_TRUE(contains(msg, "dataset-fashion-mnist")) << msg;
}

TEST(FashionMnist, RealDataWhenInstalled) {
  const fs::path dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir / "train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << dir << " is absent (Debian package dataset-fashion-mnist not installed)";
  DatasetOptions o;
  o.data_dir = dir;
  o.val_fraction = 0.0;
  const Dataset ds = load_fashion_mnist(o);
  ASSERT_EQ(ds.train.x.sizes(), (std::vector<std::int64_t>{60000, 1, 28, 28}));
  ASSERT_EQ(ds.test.x.sizes(), (std::vector<std::int64_t>{10000, 1, 28, 28}));
  auto train_hist = torch::bincount(ds.train.y, {}, 10);
  auto test_hist = torch::bincount(ds.test.y, {}, 10);
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(train_hist[k].item<std::int64_t>(), 6000);
    EXPECT_EQ(test_hist[k].item<std::int64_t>(), 1000);
  }
  EXPECT_GT(ds.train.x.mean().item<double>(), 0.2);
  EXPECT_LT(ds.train.x.mean().item<double>(), 0.4);
}

// --- CelebA --------------------------------------------------------------------

DatasetOptions celeba_options(const TempDir& dir) {
  DatasetOptions o;
  o.name = "celeba";
  o.data_dir = dir / "celeba";
  o.cache_dir = dir / "cache";
  o.image_size = 16;
  o.threads = 2;
  return o;
}

TEST(CelebA, LoadsPartitionAttributesAndPixels) {
  TempDir dir;
  const auto fx = testing::write_celeba_fixture(dir / "celeba", 12);
  auto o = celeba_options(dir);
  o.tasks = {"Smiling", "male", "5_o_Clock_Shadow"};
  CacheReport rep;
  const Dataset ds = load_celeba(o, &rep);
  EXPECT_EQ(ds.label_kind, LabelKind::multi_label);
  EXPECT_EQ(ds.labels, (std::vector<std::string>{"Smiling", "Male", "5_o_Clock_Shadow"}));
  EXPECT_EQ(ds.train.size(), 6);
  EXPECT_EQ(ds.val.size(), 3);
  EXPECT_EQ(ds.test.size(), 3);
  EXPECT_EQ(ds.train.x.sizes(), (std::vector<std::int64_t>{6, 3, 16, 16}));
  EXPECT_EQ(ds.train.y.sizes(), (std::vector<std::int64_t>{6, 3}));
  EXPECT_EQ(ds.train.y.dtype(), torch::kFloat);
  // Labels: attribute k of image i is 1 when (i + k) % 3 == 0. Val images are i % 4 == 2.
  const int smiling = 31, male = 20;
  for (int r = 0; r < 3; ++r) {
    const int i = 4 * r + 2;
    EXPECT_EQ(ds.val.y[r][0].item<float>(), (i + smiling) % 3 == 0 ? 1.0f : 0.0f);
    EXPECT_EQ(ds.val.y[r][1].item<float>(), (i + male) % 3 == 0 ? 1.0f : 0.0f);
    EXPECT_EQ(ds.val.y[r][2].item<float>(), i % 3 == 0 ? 1.0f : 0.0f);
  }
  // Left half red, right half blue, after crop and resize.
  auto img = ds.test.x[0];
  EXPECT_GT(img[0][8][1].item<float>(), 0.75f);
  EXPECT_LT(img[2][8][1].item<float>(), 0.2f);
  EXPECT_GT(img[2][8][14].item<float>(), 0.75f);
  EXPECT_LT(img[0][8][14].item<float>(), 0.2f);
  EXPECT_EQ(rep.outcome, CacheOutcome::built);
  EXPECT_EQ(rep.decoded, 12);
  (void)fx;
}

TEST(CelebA, CacheIsBuiltThenMappedThenRebuiltWhenCorrupt) {
  TempDir dir;
  testing::write_celeba_fixture(dir / "celeba", 8);
  auto o = celeba_options(dir);
  o.normalize = true;
  CacheReport rep;
  const Dataset first = load_celeba(o, &rep);
  ASSERT_EQ(rep.outcome, CacheOutcome::built) << rep.reason;
  ASSERT_TRUE(fs::exists(rep.path));
  const fs::path cache = rep.path;
  ASSERT_EQ(first.norm_mean.size(), 3u);
  EXPECT_NEAR(first.train.x.select(1, 0).mean().item<double>(), 0.0, 1e-4);

  // Second load maps the cache: the images are not needed any more.
  fs::rename(dir / "celeba" / "img_align_celeba", dir / "images-away");
  Dataset second = load_celeba(o, &rep);
  EXPECT_EQ(rep.outcome, CacheOutcome::hit) << rep.reason;
  EXPECT_EQ(rep.decoded, 0);
  EXPECT_TRUE(torch::equal(first.train.x, second.train.x));
  EXPECT_TRUE(torch::equal(first.test.y, second.test.y));
  EXPECT_EQ(second.norm_mean, first.norm_mean);
  EXPECT_TRUE(contains(second.provenance, "memory-mapped")) << second.provenance;
  // The mapping outlives the Dataset through the tensors; writes stay private.
  auto keep = second.val.x;
  second = Dataset{};
  keep.add_(1.0f);
  EXPECT_TRUE(torch::allclose(keep, first.val.x + 1.0f));
  EXPECT_EQ(load_celeba(o, &rep).val.x.sum().item<float>(), first.val.x.sum().item<float>());

  // Truncated cache: rebuilt.
  fs::rename(dir / "images-away", dir / "celeba" / "img_align_celeba");
  fs::resize_file(cache, fs::file_size(cache) - 100);
  Dataset third = load_celeba(o, &rep);
  EXPECT_EQ(rep.outcome, CacheOutcome::rebuilt);
  EXPECT_TRUE(contains(rep.reason, "truncated")) << rep.reason;
  EXPECT_TRUE(torch::equal(first.train.x, third.train.x));
  load_celeba(o, &rep);
  EXPECT_EQ(rep.outcome, CacheOutcome::hit);

  // Corrupt header byte: rebuilt.
  {
    std::fstream f(cache, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x7f');
  }
  load_celeba(o, &rep);
  EXPECT_EQ(rep.outcome, CacheOutcome::rebuilt);
  EXPECT_TRUE(contains(rep.reason, "corrupt")) << rep.reason;

  // A corrupt pixel (a NaN's bytes in the first image): found by the checksum, rebuilt.
  {
    std::fstream f(cache, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 + 8);
    const char nan_bytes[4] = {'\x00', '\x00', '\xc0', '\x7f'};
    f.write(nan_bytes, 4);
  }
  const Dataset fourth = load_celeba(o, &rep);
  EXPECT_EQ(rep.outcome, CacheOutcome::rebuilt);
  EXPECT_TRUE(contains(rep.reason, "pixels are corrupt")) << rep.reason;
  EXPECT_TRUE(torch::isfinite(fourth.train.x).all().item<bool>());
  EXPECT_TRUE(torch::equal(first.train.x, fourth.train.x));

  // Garbage file: rebuilt.
  testing::write_file(cache, std::string(5000, 'x'));
  load_celeba(o, &rep);
  EXPECT_EQ(rep.outcome, CacheOutcome::rebuilt);

  // Other options, other cache file.
  o.image_size = 8;
  load_celeba(o, &rep);
  EXPECT_EQ(rep.outcome, CacheOutcome::built);
  EXPECT_NE(rep.path, cache);

  // Without cache: decoded into memory, same pixels.
  o.image_size = 16;
  o.use_cache = false;
  const Dataset mem = load_celeba(o, &rep);
  EXPECT_EQ(rep.outcome, CacheOutcome::disabled);
  EXPECT_TRUE(torch::allclose(mem.train.x, first.train.x, 1e-5, 1e-5));
}

TEST(CelebA, SubsetAndMaxSamplesChangeTheCacheKey) {
  TempDir dir;
  testing::write_celeba_fixture(dir / "celeba", 16);
  auto o = celeba_options(dir);
  o.max_samples = 2;
  CacheReport rep;
  const Dataset ds = load_celeba(o, &rep);
  EXPECT_EQ(ds.train.size(), 2);
  EXPECT_EQ(ds.val.size(), 2);
  EXPECT_EQ(ds.test.size(), 2);
  EXPECT_EQ(rep.decoded, 6);
  EXPECT_EQ(ds.labels.size(), 40u);
  const auto small = rep.path;
  o.max_samples = 0;
  o.subset = 0.5;
  load_celeba(o, &rep);
  EXPECT_NE(rep.path, small);
  EXPECT_EQ(rep.decoded, 4 + 4 + 4);
}

TEST(CelebA, MalformedListsNameFileAndLine) {
  TempDir dir;
  testing::write_celeba_fixture(dir / "celeba", 6);
  auto o = celeba_options(dir);
  o.use_cache = false;
  const fs::path attr = dir / "celeba" / "list_attr_celeba.txt", part = dir / "celeba" / "list_eval_partition.txt";
  const std::string good_attr = testing::read_file(attr), good_part = testing::read_file(part);

  auto replace_line = [](const std::string& text, int line_no, const std::string& with) {
    std::string out;
    std::size_t pos = 0;
    for (int l = 1; pos < text.size(); ++l) {
      auto end = text.find('\n', pos);
      out += (l == line_no ? with : text.substr(pos, end - pos)) + "\n";
      pos = end + 1;
    }
    return out;
  };
  // A value that is not -1/1 on line 4.
  std::string bad_row = "000002.jpg";
  for (int k = 0; k < 39; ++k) bad_row += " -1";
  testing::write_file(attr, replace_line(good_attr, 4, bad_row + "  2"));
  auto msg = data_error([&] { load_celeba(o); });
  EXPECT_TRUE(contains(msg, "list_attr_celeba.txt:4") && contains(msg, "Young")) << msg;
  // A short row on line 5.
  testing::write_file(attr, replace_line(good_attr, 5, "000003.jpg  1 -1"));
  msg = data_error([&] { load_celeba(o); });
  EXPECT_TRUE(contains(msg, "list_attr_celeba.txt:5") && contains(msg, "columns")) << msg;
  // Count on line 1 disagrees with the rows.
  testing::write_file(attr, replace_line(good_attr, 1, "7"));
  msg = data_error([&] { load_celeba(o); });
  EXPECT_TRUE(contains(msg, "list_attr_celeba.txt") && contains(msg, "declares 7")) << msg;
  testing::write_file(attr, good_attr);
  // Bad partition on line 3; unknown file on line 2.
  testing::write_file(part, replace_line(good_part, 3, "000003.jpg 5"));
  msg = data_error([&] { load_celeba(o); });
  EXPECT_TRUE(contains(msg, "list_eval_partition.txt:3")) << msg;
  testing::write_file(part, replace_line(good_part, 2, "999999.jpg 0"));
  msg = data_error([&] { load_celeba(o); });
  EXPECT_TRUE(contains(msg, "list_eval_partition.txt:2") && contains(msg, "999999.jpg")) << msg;
  testing::write_file(part, good_part);
  // Missing and undecodable images name the file.
  fs::remove(dir / "celeba" / "img_align_celeba" / "000005.jpg");
  msg = data_error([&] { load_celeba(o); });
  EXPECT_TRUE(contains(msg, "000005.jpg")) << msg;
  testing::write_file(dir / "celeba" / "img_align_celeba" / "000005.jpg", "not a jpeg");
  msg = data_error([&] { load_celeba(o); });
  EXPECT_TRUE(contains(msg, "000005.jpg") && contains(msg, "JPEG")) << msg;
  // Missing list file.
  fs::remove(part);
  msg = data_error([&] { load_celeba(o); });
  EXPECT_TRUE(contains(msg, "list_eval_partition.txt")) << msg;
  // Unknown attribute: a ConfigError listing the valid ones.
  testing::write_file(part, good_part);
  o.tasks = {"Smiling", "Grumpy"};
  try {
    load_celeba(o);
    ADD_FAILURE() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "Grumpy") && contains(e.what(), "Wearing_Hat")) << e.what();
  }
  EXPECT_EQ(read_celeba_attribute_names(dir / "celeba").size(), 40u);
}

// --- synthetic images ------------------------------------------------------------

TEST(SyntheticImages, DeterministicBySeedAndShaped) {
  DatasetOptions o;
  o.name = "synthetic-images";
  o.train_samples = 200;
  o.eval_samples = 50;
  o.input_channels = 3;
  o.image_size = 16;
  const Dataset a = make_synthetic_images(o), b = make_synthetic_images(o);
  EXPECT_TRUE(a.synthetic);
  EXPECT_EQ(a.name.rfind("synthetic-", 0), 0u);
  EXPECT_EQ(a.train.x.sizes(), (std::vector<std::int64_t>{200, 3, 16, 16}));
  EXPECT_EQ(a.val.size(), 50);
  EXPECT_EQ(a.labels.size(), 10u);
  EXPECT_TRUE(torch::equal(a.train.x, b.train.x));
  EXPECT_TRUE(torch::equal(a.test.y, b.test.y));
  EXPECT_FALSE(torch::equal(a.train.x.narrow(0, 0, 50), a.val.x));
  // Balanced classes.
  auto hist = torch::bincount(a.train.y, {}, 10);
  EXPECT_EQ(hist.min().item<std::int64_t>(), 20);
  o.seed = 1;
  EXPECT_FALSE(torch::equal(make_synthetic_images(o).train.x, a.train.x));
}

TEST(SyntheticImages, ClassStructureIsThereButNotTrivial) {
  // Nearest class mean (a linear rule) on clean-ish data: far above chance but
  // below perfect, so a model has something to learn.
  DatasetOptions o;
  o.train_samples = 2000;
  o.eval_samples = 500;
  const Dataset ds = make_synthetic_images(o);
  auto flat = ds.train.x.flatten(1);
  auto means = torch::zeros({10, flat.size(1)});
  means.index_add_(0, ds.train.y, flat);
  means /= torch::bincount(ds.train.y, {}, 10).to(torch::kFloat).unsqueeze(1);
  auto pred = torch::cdist(ds.test.x.flatten(1), means).argmin(1);
  const double acc = pred.eq(ds.test.y).to(torch::kFloat).mean().item<double>();
  EXPECT_GT(acc, 0.5);
  EXPECT_LT(acc, 0.999);
}

}  // namespace
}  // namespace powertrain::data
