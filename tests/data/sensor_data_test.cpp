// PAMAP2 on fixtures in the published .dat format, and the synthetic sensor generator.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "fixtures.h"
#include "powertrain/data/load.h"
#include "powertrain/data/pamap2.h"
#include "powertrain/data/synthetic.h"
#include "powertrain/error.h"
#include "temp_dir.h"

namespace powertrain::data {
namespace {

namespace fs = std::filesystem;
using powertrain::testing::DatSegment;
using powertrain::testing::TempDir;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kHandAccX = 4, kHandAccY = 5, kChestGyroX = 27;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// hand_acc16_x = activity id; hand_acc16_y = offset + row / 100 (linear in time);
/// heart rate every 10th row only; the rest smooth filler.
testing::DatValue values(double offset, int nan_from = -1, int nan_rows = 0, int nan_col = -1) {
  return [=](int row, int act, int col) -> double {
    if (col == nan_col && row >= nan_from && row < nan_from + nan_rows) return kNaN;
    if (col == 2) return row % 10 == 0 ? 80.0 + act : kNaN;
    if (col == kHandAccX) return act;
    if (col == kHandAccY) return offset + row / 100.0;
    return col * 0.1 + 0.01 * ((row * 7 + col) % 13);
  };
}

/// Four subjects: 101 and 104 train, 102 val, 103 test (windows of 100, stride 50).
struct Pamap2Fixture {
  TempDir dir;
  Pamap2Fixture() {
    using testing::write_pamap2_subject;
    // 101: lying 300 -> 5 windows, walking 250 -> 4, running 230 right after walking -> 3.
    write_pamap2_subject(dir.path(), 101, {{0, 50}, {1, 300}, {0, 20}, {4, 250}, {5, 230}, {0, 30}}, values(0));
    // 102: lying 200 -> 3, rope jumping 160 -> 2.
    write_pamap2_subject(dir.path(), 102, {{1, 200}, {0, 10}, {24, 160}}, values(0));
    // 103: walking 200 -> 3, with hand_acc16_y shifted by 100.
    write_pamap2_subject(dir.path(), 103, {{0, 5}, {4, 200}}, values(100));
    // 104: standing 150 + 2 s gap + 150 -> 2 + 2; cycling 300 with a 3-row NaN run
    // (filled) in hand_acc16_y and an 80-row run in chest_gyro_x at 150..229 (cut) -> 2.
    auto v = values(0, 150, 80, kChestGyroX);
    write_pamap2_subject(dir.path(), 104, {{3, 150}, {3, 150, 2.0}, {0, 10}, {6, 300}},
                         [v](int row, int act, int col) {
                           if (act == 6 && col == kHandAccY && row >= 100 && row < 103) return kNaN;
                           return act == 6 ? v(row, act, col) : values(0)(row, act, col);
                         });
  }
  DatasetOptions options() const {
    DatasetOptions o;
    o.name = "pamap2";
    o.data_dir = dir.path();
    o.window = 100;
    o.stride = 50;
    o.train_subjects = {101, 104};
    o.val_subjects = {102};
    o.test_subjects = {103};
    o.threads = 2;
    return o;
  }
};

std::int64_t channel_index(const Dataset& ds, const std::string& name) {
  auto it = std::find(ds.channels.begin(), ds.channels.end(), name);
  EXPECT_NE(it, ds.channels.end()) << name;
  return it - ds.channels.begin();
}

/// x of channel `c` back in raw units.
torch::Tensor raw(const Dataset& ds, const Split& s, std::int64_t c) {
  return s.x.select(1, c) * ds.norm_std[static_cast<std::size_t>(c)] + ds.norm_mean[static_cast<std::size_t>(c)];
}

TEST(Pamap2, WindowsSplitsAndLabels) {
  Pamap2Fixture fx;
  const Dataset ds = load_pamap2(fx.options());
  EXPECT_EQ(ds.name, "pamap2");
  EXPECT_EQ(ds.modality, Dataset::Modality::sensor);
  ASSERT_EQ(ds.labels.size(), 12u);
  EXPECT_EQ(ds.labels[6], "Nordic walking");
  EXPECT_EQ(ds.labels[11], "rope jumping");
  ASSERT_EQ(ds.channels.size(), 18u);
  EXPECT_EQ(ds.channels[0], "hand_acc16_x");
  EXPECT_EQ(ds.train.size(), 5 + 4 + 3 + 4 + 2);
  EXPECT_EQ(ds.val.size(), 5);
  EXPECT_EQ(ds.test.size(), 3);
  EXPECT_EQ(ds.train.x.sizes(), (std::vector<std::int64_t>{18, 18, 100}));
  EXPECT_EQ(ds.train.y.dtype(), torch::kLong);
  EXPECT_FALSE(torch::isnan(ds.train.x).any().item<bool>());
  // Class indices: lying 0, standing 2, walking 3, running 4, cycling 5, rope jumping 11.
  auto hist = torch::bincount(ds.train.y, {}, 12);
  EXPECT_EQ(hist[0].item<std::int64_t>(), 5);
  EXPECT_EQ(hist[2].item<std::int64_t>(), 4);
  EXPECT_EQ(hist[3].item<std::int64_t>(), 4);
  EXPECT_EQ(hist[4].item<std::int64_t>(), 3);
  EXPECT_EQ(hist[5].item<std::int64_t>(), 2);
  EXPECT_EQ(torch::bincount(ds.val.y, {}, 12)[11].item<std::int64_t>(), 2);
  EXPECT_TRUE(contains(ds.provenance, "train 101,104")) << ds.provenance;
}

TEST(Pamap2, WindowsNeverSpanTwoActivities) {
  Pamap2Fixture fx;
  const Dataset ds = load_pamap2(fx.options());
  const int ids[] = {1, 2, 3, 4, 5, 6, 7, 12, 13, 16, 17, 24};
  const auto c = channel_index(ds, "hand_acc16_x");
  for (const Split* s : {&ds.train, &ds.val, &ds.test}) {
    auto act = raw(ds, *s, c);  // [N, L]: the activity id of every sample
    for (std::int64_t i = 0; i < s->size(); ++i) {
      const auto expected = ids[s->y[i].item<std::int64_t>()];
      EXPECT_NEAR(act[i].min().item<double>(), expected, 1e-3) << "window " << i;
      EXPECT_NEAR(act[i].max().item<double>(), expected, 1e-3) << "window " << i;
    }
  }
}

TEST(Pamap2, NormalizationIsFittedOnTrainOnly) {
  Pamap2Fixture fx;
  const Dataset ds = load_pamap2(fx.options());
  ASSERT_EQ(ds.norm_mean.size(), 18u);
  // The training windows' mean activity id: (5*1 + 4*4 + 3*5 + 4*3 + 2*6) / 18.
  EXPECT_NEAR(ds.norm_mean[static_cast<std::size_t>(channel_index(ds, "hand_acc16_x"))], 60.0 / 18.0, 1e-4);
  auto mean = ds.train.x.mean(std::vector<std::int64_t>{0, 2});
  auto var = ds.train.x.var(std::vector<std::int64_t>{0, 2}, false);
  for (std::int64_t k = 0; k < 18; ++k) {
    EXPECT_NEAR(mean[k].item<double>(), 0.0, 1e-3);
    EXPECT_NEAR(var[k].item<double>(), 1.0, 1e-2);
  }
  // The test subject's shifted channel stays shifted: statistics are not refitted on it.
  const auto y = channel_index(ds, "hand_acc16_y");
  EXPECT_GT(ds.test.x.select(1, y).mean().item<double>(), 20.0);
  EXPECT_NEAR(raw(ds, ds.test, y).min().item<double>(), 100.0, 1e-3);
}

TEST(Pamap2, GapsAndLongNanRunsCutShortRunsAreInterpolated) {
  Pamap2Fixture fx;
  auto o = fx.options();
  o.train_subjects = {104};
  o.val_subjects = {};
  o.test_subjects = {};
  const Dataset ds = load_pamap2(o);
  // Standing: 2 + 2 (the 2 s gap splits 300 rows); cycling: 2 (rows 150..229 cut).
  ASSERT_EQ(ds.train.size(), 6);
  EXPECT_EQ(ds.val.size(), 0);
  EXPECT_EQ(ds.val.x.sizes(), (std::vector<std::int64_t>{0, 18, 100}));
  // The cycling window at rows 50..149 spans the filled rows 100..102: linear in time.
  const auto y = channel_index(ds, "hand_acc16_y");
  auto w = raw(ds, ds.train, y)[5];
  auto expected = torch::arange(50, 150, torch::kDouble).div(100.0).to(torch::kFloat);
  EXPECT_TRUE(torch::allclose(w, expected, 1e-4, 1e-4));
  EXPECT_TRUE(contains(ds.provenance, "3 NaN values interpolated")) << ds.provenance;
  EXPECT_TRUE(contains(ds.provenance, "80 rows cut")) << ds.provenance;
}

TEST(Pamap2, HeartRateActivitiesChannelsAndDownsampling) {
  Pamap2Fixture fx;
  auto o = fx.options();
  o.channels = {"heart_rate", "hand_acc16_x"};
  const Dataset hr = load_pamap2(o);
  ASSERT_EQ(hr.channels, (std::vector<std::string>{"heart_rate", "hand_acc16_x"}));
  EXPECT_FALSE(torch::isnan(hr.train.x).any().item<bool>());
  // Heart rate is 80 + activity id, sampled every 10th row, interpolated in between.
  auto bpm = raw(hr, hr.train, 0) - raw(hr, hr.train, 1);
  EXPECT_NEAR(bpm.min().item<double>(), 80.0, 1e-3);
  EXPECT_NEAR(bpm.max().item<double>(), 80.0, 1e-3);

  o.channels = {};
  o.activities = {"walking", "24"};
  const Dataset two = load_pamap2(o);
  EXPECT_EQ(two.labels, (std::vector<std::string>{"walking", "rope jumping"}));
  EXPECT_EQ(two.train.size(), 4);
  EXPECT_EQ(two.val.size(), 2);
  EXPECT_EQ(two.test.size(), 3);
  EXPECT_EQ(two.train.y.max().item<std::int64_t>(), 0);
  EXPECT_EQ(two.val.y.min().item<std::int64_t>(), 1);

  o.activities = {"Nordic_Walking", "lying"};
  o.val_subjects = {};
  o.test_subjects = {};
  EXPECT_EQ(load_pamap2(o).labels, (std::vector<std::string>{"lying", "Nordic walking"}));

  // Keep every 2nd sample: lying 300 rows -> 150 samples -> windows of 50 every 25: 5.
  o = fx.options();
  o.activities = {"lying"};
  o.test_subjects = {};
  o.train_subjects = {101};
  o.downsample = 2;
  o.window = 50;
  o.stride = 25;
  EXPECT_EQ(load_pamap2(o).train.size(), 5);
}

TEST(Pamap2, ChannelSpecs) {
  EXPECT_EQ(resolve_pamap2_channels({}).size(), 18u);
  EXPECT_EQ(resolve_pamap2_channels({"hand"}).size(), 13u);
  const auto g = resolve_pamap2_channels({"gyro", "heart_rate"});
  ASSERT_EQ(g.size(), 10u);
  EXPECT_EQ(g[0], "heart_rate");
  EXPECT_EQ(resolve_pamap2_channels({"ankle_mag"}),
            (std::vector<std::string>{"ankle_mag_x", "ankle_mag_y", "ankle_mag_z"}));
  EXPECT_EQ(resolve_pamap2_channels({"temp"}).size(), 3u);
  EXPECT_EQ(resolve_pamap2_channels({"all"}).size(), 40u);
  EXPECT_EQ(resolve_pamap2_channels({"chest_acc6_z", "chest_acc6"}).size(), 3u);
  EXPECT_THROW(resolve_pamap2_channels({"elbow"}), ConfigError);
  EXPECT_THROW(resolve_pamap2_channels({"hand_orientation_w"}), ConfigError);
}

TEST(Pamap2, BadOptionsAndFilesAreClearErrors) {
  Pamap2Fixture fx;
  auto o = fx.options();
  o.activities = {"juggling"};
  EXPECT_THROW(load_pamap2(o), ConfigError);
  o = fx.options();
  o.val_subjects = {101};
  EXPECT_THROW(load_pamap2(o), ConfigError);
  o = fx.options();
  o.test_subjects = {110};
  EXPECT_THROW(load_pamap2(o), ConfigError);

  // A selected activity absent from the test subject: no silently empty split.
  o = fx.options();
  o.activities = {"lying"};
  try {
    load_pamap2(o);
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "test subjects 103")) << e.what();
  }

  // Missing subject file.
  o = fx.options();
  o.val_subjects = {105};
  try {
    load_pamap2(o);
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "subject105.dat")) << e.what();
  }

  // Wrong column count and a non-number, each named by file and line.
  const fs::path f = fx.dir / "Protocol" / "subject102.dat";
  std::string text = testing::read_file(f);
  std::vector<std::string> lines;
  for (std::size_t pos = 0; pos < text.size();) {
    auto end = text.find('\n', pos);
    lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  auto write_with = [&](std::size_t index, const std::string& line) {
    std::string out;
    for (std::size_t i = 0; i < lines.size(); ++i) out += (i == index ? line : lines[i]) + "\n";
    testing::write_file(f, out);
  };
  o = fx.options();
  write_with(6, lines[6].substr(0, lines[6].rfind(' ')));
  try {
    load_pamap2(o);
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "subject102.dat:7") && contains(e.what(), "found 53")) << e.what();
  }
  // A non-number in a used column (hand_acc16_x, column 5) and in an unused one.
  auto with_token = [&](const std::string& line, int col, const std::string& token) {
    std::vector<std::string> tok;
    for (std::size_t pos = 0; pos < line.size();) {
      auto end = line.find(' ', pos);
      if (end == std::string::npos) end = line.size();
      tok.push_back(line.substr(pos, end - pos));
      pos = end + 1;
    }
    tok[static_cast<std::size_t>(col)] = token;
    std::string out;
    for (const auto& t : tok) out += (out.empty() ? "" : " ") + t;
    return out;
  };
  // A value past float32's range (training would see inf and call it divergence).
  write_with(8, with_token(lines[8], kHandAccX, "1e39"));
  try {
    load_pamap2(o);
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "subject102.dat:9") && contains(e.what(), "float32")) << e.what();
  }
  write_with(8, with_token(lines[8], kHandAccX, "1.2.x"));
  try {
    load_pamap2(o);
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "subject102.dat:9") && contains(e.what(), "1.2.x")) << e.what();
  }
  write_with(8, with_token(lines[8], 50, "abc"));
  EXPECT_THROW(
      {
        try {
          load_pamap2(o);
        } catch (const DataError& e) {
          EXPECT_TRUE(contains(e.what(), "subject102.dat:9")) << e.what();
          throw;
        }
      },
      DataError);
  std::string act = lines[3];
  act.replace(act.find(' ') + 1, 1, "8");
  write_with(3, act);
  EXPECT_THROW(load_pamap2(o), DataError);

  o.data_dir = fx.dir / "absent";
  try {
    load_pamap2(o);
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "archive.ics.uci.edu")) << e.what();
  }
}

// --- synthetic sensors -------------------------------------------------------------

TEST(SyntheticSensors, DeterministicBySeedAndShaped) {
  DatasetOptions o;
  o.name = "synthetic-sensors";
  o.train_samples = 300;
  o.eval_samples = 60;
  const Dataset a = make_synthetic_sensors(o), b = make_synthetic_sensors(o);
  EXPECT_TRUE(a.synthetic);
  EXPECT_EQ(a.name, "synthetic-sensors");
  EXPECT_EQ(a.modality, Dataset::Modality::sensor);
  EXPECT_EQ(a.train.x.sizes(), (std::vector<std::int64_t>{300, 6, 128}));
  EXPECT_EQ(a.labels.size(), 6u);
  EXPECT_TRUE(torch::equal(a.train.x, b.train.x));
  EXPECT_TRUE(torch::equal(a.val.y, b.val.y));
  o.seed = 3;
  EXPECT_FALSE(torch::equal(make_synthetic_sensors(o).train.x, a.train.x));
  o.input_channels = 3;
  o.length = 64;
  o.num_classes = 4;
  const Dataset c = make_synthetic_sensors(o);
  EXPECT_EQ(c.test.x.sizes(), (std::vector<std::int64_t>{60, 3, 64}));
  EXPECT_EQ(c.labels.size(), 4u);
  o.num_classes = 1;
  EXPECT_THROW(make_synthetic_sensors(o), ConfigError);
}

TEST(SyntheticSensors, ClassStructureIsInTheSpectrum) {
  DatasetOptions o;
  o.train_samples = 1200;
  o.eval_samples = 300;
  const Dataset ds = make_synthetic_sensors(o);
  // Nearest class mean of per-channel amplitude spectra: far above chance (1/6).
  auto spec = [](const torch::Tensor& x) { return torch::fft::rfft(x, {}, -1).abs().flatten(1); };
  auto train = spec(ds.train.x);
  auto means = torch::zeros({6, train.size(1)});
  means.index_add_(0, ds.train.y, train);
  means /= torch::bincount(ds.train.y, {}, 6).to(torch::kFloat).unsqueeze(1);
  auto pred = torch::cdist(spec(ds.test.x), means).argmin(1);
  EXPECT_GT(pred.eq(ds.test.y).to(torch::kFloat).mean().item<double>(), 0.6);
}

}  // namespace
}  // namespace powertrain::data
