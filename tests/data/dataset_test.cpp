// The factory, the batch iterator and multitask derivation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fixtures.h"
#include "powertrain/data/batch.h"
#include "powertrain/data/load.h"
#include "powertrain/data/multitask.h"
#include "powertrain/error.h"
#include "temp_dir.h"

namespace powertrain::data {
namespace {

using powertrain::testing::TempDir;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

Split counting_split(std::int64_t n) {
  // x[i] holds i, so a batch says which rows it took.
  auto x = torch::arange(n, torch::kFloat).view({n, 1, 1}).expand({n, 2, 3}).contiguous();
  return Split{x, torch::arange(n, torch::kLong)};
}

// --- factory ------------------------------------------------------------------

TEST(LoadDataset, DispatchesByNameAndRejectsUnknownNames) {
  DatasetOptions o;
  o.name = "synthetic-images";
  o.train_samples = 40;
  o.eval_samples = 10;
  EXPECT_EQ(load_dataset(o).name, "synthetic-images");
  o.name = "synthetic-sensors";
  EXPECT_EQ(load_dataset(o).train.x.dim(), 3);

  TempDir dir;
  testing::write_fashion_fixture(dir.path(), 30, 10);
  o.name = "fashion-mnist";
  o.data_dir = dir.path();
  EXPECT_EQ(load_dataset(o).test.size(), 10);

  o.name = "mnist";
  try {
    load_dataset(o);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    for (const auto& name : dataset_names()) EXPECT_TRUE(contains(e.what(), name)) << e.what();
  }
  o.name = "synthetic-images";
  o.subset = 0.0;
  EXPECT_THROW(load_dataset(o), ConfigError);
  o.subset = 1.0;
  o.val_fraction = 1.0;
  EXPECT_THROW(load_dataset(o), ConfigError);
}

TEST(LoadDataset, DefaultLocations) {
  EXPECT_EQ(default_data_dir("celeba").filename(), "celeba");
  EXPECT_EQ(default_cache_dir().filename(), "powertrain");
  TempDir dir;
  std::filesystem::create_directories(dir / "pamap2");
  setenv("POWERTRAIN_DATA_DIR", dir.path().c_str(), 1);
  EXPECT_EQ(default_data_dir("pamap2"), dir / "pamap2");
  EXPECT_EQ(default_data_dir("celeba"), std::filesystem::path("/usr/share/datasets/celeba"));
  unsetenv("POWERTRAIN_DATA_DIR");
  const char* old = std::getenv("XDG_CACHE_HOME");
  const std::string saved = old ? old : "";
  setenv("XDG_CACHE_HOME", "/var/tmp/xdg", 1);
  EXPECT_EQ(default_cache_dir(), std::filesystem::path("/var/tmp/xdg/powertrain"));
  if (old) setenv("XDG_CACHE_HOME", saved.c_str(), 1);
  else unsetenv("XDG_CACHE_HOME");
}

// --- batches ------------------------------------------------------------------

TEST(BatchIterator, CoversEveryIndexOncePerEpoch) {
  const auto split = counting_split(103);
  BatchIterator it(split, 10, {.seed = 5});
  EXPECT_EQ(it.batches_per_epoch(), 11);
  torch::Tensor first_order;
  for (int epoch = 0; epoch < 3; ++epoch) {
    it.start_epoch(epoch);
    std::vector<int> seen(103, 0);
    std::int64_t batches = 0;
    for (Batch b; it.next(b);) {
      EXPECT_EQ(b.index, batches);
      EXPECT_EQ(b.x.sizes(), (std::vector<std::int64_t>{b.size(), 2, 3}));
      EXPECT_TRUE(torch::equal(b.x.select(1, 0).select(1, 0).to(torch::kLong), b.y));  // rows stay paired
      for (std::int64_t i = 0; i < b.size(); ++i) ++seen[static_cast<std::size_t>(b.y[i].item<std::int64_t>())];
      ++batches;
    }
    EXPECT_EQ(batches, 11);
    for (int c : seen) EXPECT_EQ(c, 1);
    if (epoch == 0) first_order = it.order().clone();
    else EXPECT_FALSE(torch::equal(first_order, it.order()));  // reshuffled
  }
  // An epoch's order depends only on (seed, epoch).
  BatchIterator again(split, 10, {.seed = 5});
  again.start_epoch(0);
  EXPECT_TRUE(torch::equal(again.order(), first_order));
  BatchIterator other(split, 10, {.seed = 6});
  other.start_epoch(0);
  EXPECT_FALSE(torch::equal(other.order(), first_order));
}

TEST(BatchIterator, InOrderSlicesAndDropLast) {
  const auto split = counting_split(25);
  BatchIterator it(split, 10, {.shuffle = false, .drop_last = true});
  EXPECT_EQ(it.batches_per_epoch(), 2);
  std::vector<std::int64_t> firsts;
  for (Batch b; it.next(b);) {
    EXPECT_EQ(b.size(), 10);
    EXPECT_EQ(b.x.data_ptr<float>(), split.x.data_ptr<float>() + b.y[0].item<std::int64_t>() * 6);  // a view
    firsts.push_back(b.y[0].item<std::int64_t>());
  }
  EXPECT_EQ(firsts, (std::vector<std::int64_t>{0, 10}));
  Batch b;
  EXPECT_FALSE(it.next(b));
  it.start_epoch(1);
  EXPECT_TRUE(it.next(b));
  EXPECT_THROW(BatchIterator(split, 0), ConfigError);
  EXPECT_THROW(BatchIterator(Split{split.x, split.y.narrow(0, 0, 3)}, 4), ConfigError);
}

TEST(BatchIterator, WorksOnTheDeviceOfTheSplit) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto split = to_device(counting_split(50), torch::Device(torch::kCUDA));
  BatchIterator it(split, 16);
  std::int64_t total = 0;
  for (Batch b; it.next(b);) {
    EXPECT_TRUE(b.x.is_cuda());
    total += b.y.sum().item<std::int64_t>();
  }
  EXPECT_EQ(total, 49 * 50 / 2);
}

// --- multitask ------------------------------------------------------------------

Dataset tiny_fashion() {
  Dataset ds;
  ds.name = "fashion-mnist";
  ds.labels = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  auto y = torch::arange(20, torch::kLong).remainder(10);
  ds.train = {torch::zeros({20, 1, 2, 2}), y};
  ds.val = {torch::zeros({10, 1, 2, 2}), y.narrow(0, 0, 10)};
  ds.test = {torch::zeros({0, 1, 2, 2}), torch::zeros({0}, torch::kLong)};
  return ds;
}

TEST(Multitask, GroupsAndOneVsRest) {
  const Dataset ds = tiny_fashion();
  const Dataset mt = to_multitask(ds, std::vector<std::string>{"top", "footwear", "class_1", "class_sneaker", "warm=Pullover+coat+9"});
  EXPECT_EQ(mt.label_kind, LabelKind::multi_label);
  EXPECT_EQ(mt.labels, (std::vector<std::string>{"top", "footwear", "class_1", "class_sneaker", "warm"}));
  ASSERT_EQ(mt.train.y.sizes(), (std::vector<std::int64_t>{20, 5}));
  EXPECT_EQ(mt.train.y.dtype(), torch::kFloat);
  EXPECT_TRUE(mt.train.x.is_same(ds.train.x));  // inputs shared, not copied
  const float expected[10][5] = {{1, 0, 0, 0, 0}, {0, 0, 1, 0, 0}, {1, 0, 0, 0, 1}, {0, 0, 0, 0, 0}, {1, 0, 0, 0, 1},
                                 {0, 1, 0, 0, 0}, {1, 0, 0, 0, 0}, {0, 1, 0, 1, 0}, {0, 0, 0, 0, 0}, {0, 1, 0, 0, 1}};
  for (int n = 0; n < 20; ++n)
    for (int k = 0; k < 5; ++k) EXPECT_EQ(mt.train.y[n][k].item<float>(), expected[n % 10][k]) << n << "," << k;
  EXPECT_EQ(mt.test.y.sizes(), (std::vector<std::int64_t>{0, 5}));
  EXPECT_TRUE(contains(mt.provenance, "footwear={Sandal+Sneaker+Ankle boot}")) << mt.provenance;

  const auto all = resolve_tasks(ds, {"one_vs_rest"});
  ASSERT_EQ(all.size(), 10u);
  EXPECT_EQ(all[9].name, "class_9");
  EXPECT_EQ(builtin_task_groups(ds).size(), 6u);
}

TEST(Multitask, BadSpecsAreConfigErrors) {
  const Dataset ds = tiny_fashion();
  EXPECT_THROW(resolve_tasks(ds, {"hats"}), ConfigError);
  EXPECT_THROW(resolve_tasks(ds, {"class_10"}), ConfigError);
  EXPECT_THROW(resolve_tasks(ds, {"x=Pullover+Cape"}), ConfigError);
  EXPECT_THROW(resolve_tasks(ds, {"=Pullover"}), ConfigError);
  EXPECT_THROW(resolve_tasks(ds, {"top", "top"}), ConfigError);
  EXPECT_THROW(resolve_tasks(ds, {}), ConfigError);
  const Dataset mt = to_multitask(ds, std::vector<std::string>{"top"});
  EXPECT_THROW(to_multitask(mt, std::vector<std::string>{"top"}), ConfigError);
  try {
    resolve_tasks(ds, {"hats"});
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "footwear") && contains(e.what(), "one_vs_rest")) << e.what();
  }
}

TEST(Multitask, ThroughTheFactory) {
  TempDir dir;
  testing::write_fashion_fixture(dir.path(), 40, 20);
  DatasetOptions o;
  o.data_dir = dir.path();
  o.tasks = {"top", "footwear", "bag"};
  const Dataset ds = load_dataset(o);
  EXPECT_EQ(ds.label_kind, LabelKind::multi_label);
  EXPECT_EQ(ds.test.y.sizes(), (std::vector<std::int64_t>{20, 3}));
  // Test item i has class i % 10: 3 of every 10 are footwear, 4 are tops.
  EXPECT_EQ(ds.test.y.select(1, 1).sum().item<float>(), 6.0f);
  EXPECT_EQ(ds.test.y.select(1, 0).sum().item<float>(), 8.0f);
}

}  // namespace
}  // namespace powertrain::data
