#include "powertrain/data/synthetic.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

#include <fmt/format.h>

#include "common.h"
#include "io.h"
#include "powertrain/data/multitask.h"
#include "powertrain/error.h"

namespace powertrain::data {

namespace {

constexpr double kPi = 3.14159265358979323846;

at::Generator generator(std::uint64_t seed, std::uint64_t salt) {
  detail::SplitMix64 mix(seed * 0x9e3779b97f4a7c15ull ^ (salt * 0xd1b54a32d192ed03ull));
  return at::make_generator<at::CPUGeneratorImpl>(mix.next());
}

torch::Tensor uniform(const std::vector<std::int64_t>& shape, double lo, double hi, at::Generator& g) {
  return torch::rand(shape, g, torch::kFloat) * (hi - lo) + lo;
}

/// Balanced labels in random order: n / k of each class (the first n % k get one more).
torch::Tensor balanced_labels(std::int64_t n, std::int64_t k, at::Generator& g) {
  auto y = torch::arange(n, torch::kLong).remainder(k);
  return y.index_select(0, torch::randperm(n, g, torch::kLong));
}

/// Blob centres [k, blobs, 2] in [0.15, 0.85] * side. Templates are drawn until
/// any two classes share at most one blob position (within 0.18 * side) and a
/// class's own blobs are apart, so one distractor blob cannot turn a class into
/// another; with many classes the best of 2000 draws is kept.
torch::Tensor blob_templates(std::int64_t k, std::int64_t blobs, double side, std::uint64_t seed) {
  detail::SplitMix64 rng(seed * 0x9e3779b97f4a7c15ull ^ (detail::kSaltTemplates * 0xd1b54a32d192ed03ull) ^ 0x5bd1e995ull);
  auto unif = [&] { return 0.15 * side + 0.7 * side * static_cast<double>(rng.next() >> 11) * 0x1.0p-53; };
  const double r2 = (0.18 * side) * (0.18 * side);
  std::vector<double> c(static_cast<std::size_t>(k * blobs * 2));
  auto at = [&](std::int64_t cls, std::int64_t b, int d) -> double& {
    return c[static_cast<std::size_t>((cls * blobs + b) * 2 + d)];
  };
  auto near = [&](double y0, double x0, double y1, double x1) { return (y0 - y1) * (y0 - y1) + (x0 - x1) * (x0 - x1) < r2; };
  std::vector<double> cand(static_cast<std::size_t>(blobs * 2)), best;
  for (std::int64_t cls = 0; cls < k; ++cls) {
    std::int64_t best_cost = -1;
    for (int attempt = 0; attempt < 2000 && best_cost != 0; ++attempt) {
      for (auto& v : cand) v = unif();
      std::int64_t cost = 0;
      for (std::int64_t a = 0; a < blobs; ++a)
        for (std::int64_t b = a + 1; b < blobs; ++b)
          if (near(cand[2 * a], cand[2 * a + 1], cand[2 * b], cand[2 * b + 1])) cost += 10;
      for (std::int64_t other = 0; other < cls; ++other) {
        std::int64_t shared = 0;
        for (std::int64_t a = 0; a < blobs; ++a)
          for (std::int64_t b = 0; b < blobs; ++b)
            if (near(cand[2 * a], cand[2 * a + 1], at(other, b, 0), at(other, b, 1))) {
              ++shared;
              break;
            }
        cost += std::max<std::int64_t>(0, shared - 1);
      }
      if (best_cost < 0 || cost < best_cost) {
        best_cost = cost;
        best = cand;
      }
    }
    for (std::int64_t b = 0; b < blobs; ++b)
      for (int d = 0; d < 2; ++d) at(cls, b, d) = best[static_cast<std::size_t>(2 * b + d)];
  }
  return torch::tensor(c, torch::kDouble).to(torch::kFloat).view({k, blobs, 2});
}

void check_positive(std::int64_t v, std::int64_t min, const char* what) {
  if (v < min) throw ConfigError(fmt::format("{} must be >= {}, got {}", what, min, v));
}

void common_checks(const DatasetOptions& o, std::int64_t classes) {
  detail::validate_common(o);
  check_positive(classes, 2, "num_classes");
  check_positive(o.train_samples, classes, "train_samples");
  check_positive(o.eval_samples, 1, "eval_samples");
  if (!(o.noise >= 0.0)) throw ConfigError(fmt::format("noise must be >= 0, got {}", o.noise));
}

Dataset finish(Dataset ds, const DatasetOptions& o, const std::string& what) {
  const std::string subset_note = detail::apply_subset(ds, o);
  if (o.normalize) detail::normalize_from_train(ds);
  ds.synthetic = true;
  ds.provenance = fmt::format("generated (seed {}): {}; train {} / val {} / test {}{}{}", o.seed, what, ds.train.size(),
                              ds.val.size(), ds.test.size(), subset_note.empty() ? "" : "; " + subset_note,
                              o.normalize ? "; normalized with train mean/std" : "");
  if (!o.tasks.empty()) return to_multitask(ds, o.tasks);
  return ds;
}

}  // namespace

Dataset make_synthetic_images(const DatasetOptions& o) {
  const std::int64_t k = o.num_classes > 0 ? o.num_classes : 10;
  const std::int64_t c = o.input_channels > 0 ? o.input_channels : 1;
  const std::int64_t s = o.image_size > 0 ? o.image_size : 28;
  common_checks(o, k);
  check_positive(s, 8, "image_size");
  constexpr std::int64_t kBlobs = 3;
  const double side = static_cast<double>(s);

  torch::NoGradGuard no_grad;
  // Class templates: three blob centres, widths and colours per class.
  auto tg = generator(o.seed, detail::kSaltTemplates);
  auto centres = blob_templates(k, kBlobs, side, o.seed);
  auto widths = uniform({k, kBlobs}, 0.07 * side, 0.11 * side, tg);
  auto colours = c == 1 ? torch::ones({k, kBlobs, 1}) : uniform({k, kBlobs, c}, 0.1, 1.0, tg);

  auto coords = torch::arange(s, torch::kFloat) + 0.5f;
  auto gy = coords.view({1, 1, s, 1});
  auto gx = coords.view({1, 1, 1, s});
  auto render = [&](std::int64_t n, std::uint64_t salt) {
    auto g = generator(o.seed, salt);
    auto y = balanced_labels(n, k, g);
    auto x = torch::empty({n, c, s, s});
    constexpr std::int64_t kChunk = 1024;
    for (std::int64_t i = 0; i < n; i += kChunk) {
      const auto m = std::min(kChunk, n - i);
      auto yc = y.narrow(0, i, m);
      // Class blobs with jittered positions and brightness, plus one distractor.
      auto cen = centres.index_select(0, yc) + torch::randn({m, kBlobs, 2}, g) * (0.05 * side);
      auto wid = widths.index_select(0, yc);
      auto amp = uniform({m, kBlobs}, 0.5, 1.0, g);
      auto col = colours.index_select(0, yc);
      auto dcen = uniform({m, 1, 2}, 0.1 * side, 0.9 * side, g);
      auto dwid = uniform({m, 1}, 0.07 * side, 0.11 * side, g);
      auto damp = uniform({m, 1}, 0.2, 0.6, g);
      auto dcol = c == 1 ? torch::ones({m, 1, 1}) : uniform({m, 1, c}, 0.1, 1.0, g);
      cen = torch::cat({cen, dcen}, 1);
      wid = torch::cat({wid, dwid}, 1);
      amp = torch::cat({amp, damp}, 1);
      col = torch::cat({col, dcol}, 1);
      auto cy = cen.select(2, 0).unsqueeze(-1).unsqueeze(-1);
      auto cx = cen.select(2, 1).unsqueeze(-1).unsqueeze(-1);
      auto w2 = (2 * wid * wid).unsqueeze(-1).unsqueeze(-1);
      auto blobs = torch::exp(-((gy - cy).pow(2) + (gx - cx).pow(2)) / w2) * amp.unsqueeze(-1).unsqueeze(-1);
      auto img = torch::einsum("nbc,nbhw->nchw", {col, blobs});
      img += torch::randn({m, c, s, s}, g) * (0.35 * o.noise);
      x.narrow(0, i, m).copy_(img);
    }
    return Split{x, y};
  };

  Dataset ds;
  ds.name = "synthetic-images";
  ds.modality = Dataset::Modality::image;
  for (std::int64_t i = 0; i < k; ++i) ds.labels.push_back(fmt::format("pattern {}", i));
  if (c == 1) ds.channels = {"gray"};
  else if (c == 3) ds.channels = {"red", "green", "blue"};
  else
    for (std::int64_t i = 0; i < c; ++i) ds.channels.push_back(fmt::format("channel {}", i));
  ds.train = render(o.train_samples, detail::kSaltTrain);
  ds.val = render(o.eval_samples, detail::kSaltVal);
  ds.test = render(o.eval_samples, detail::kSaltTest);
  return finish(std::move(ds), o,
                fmt::format("{} classes of three-blob patterns with a distractor blob, {}x{}x{}, noise {:g}", k, c, s,
                            s, o.noise));
}

Dataset make_synthetic_sensors(const DatasetOptions& o) {
  const std::int64_t k = o.num_classes > 0 ? o.num_classes : 6;
  const std::int64_t c = o.input_channels > 0 ? o.input_channels : 6;
  const std::int64_t len = o.length;
  common_checks(o, k);
  check_positive(len, 8, "length");

  torch::NoGradGuard no_grad;
  // Class templates: per channel a frequency (cycles per sequence), amplitude and phase.
  auto tg = generator(o.seed, detail::kSaltTemplates);
  const double max_cycles = std::max(2.0, std::min(12.0, static_cast<double>(len) / 8.0));
  auto freq = uniform({k, c}, 1.0, max_cycles, tg);
  auto ampl = uniform({k, c}, 0.3, 1.5, tg);
  auto phase = uniform({k, c}, 0.0, 2 * kPi, tg);

  auto t = torch::arange(len, torch::kFloat).view({1, 1, len});
  auto render = [&](std::int64_t n, std::uint64_t salt) {
    auto g = generator(o.seed, salt);
    auto y = balanced_labels(n, k, g);
    auto f = freq.index_select(0, y) * (1 + 0.03 * torch::randn({n, 1}, g));  // tempo jitter, shared by channels
    auto a = ampl.index_select(0, y) * uniform({n, c}, 0.8, 1.2, g);
    auto p = phase.index_select(0, y);
    auto shift = uniform({n, 1, 1}, 0.0, static_cast<double>(len), g);  // random start in time
    auto arg = 2 * kPi * f.unsqueeze(-1) * (t + shift) / static_cast<double>(len) + p.unsqueeze(-1);
    auto x = a.unsqueeze(-1) * torch::sin(arg);
    x += torch::randn({n, c, 1}, g) * 0.3;                 // offset per channel
    x += torch::randn({n, c, len}, g) * (0.6 * o.noise);  // sensor noise
    return Split{x.contiguous(), y};
  };

  Dataset ds;
  ds.name = "synthetic-sensors";
  ds.modality = Dataset::Modality::sensor;
  for (std::int64_t i = 0; i < k; ++i) ds.labels.push_back(fmt::format("signal {}", i));
  for (std::int64_t i = 0; i < c; ++i) ds.channels.push_back(fmt::format("channel {}", i));
  ds.train = render(o.train_samples, detail::kSaltTrain);
  ds.val = render(o.eval_samples, detail::kSaltVal);
  ds.test = render(o.eval_samples, detail::kSaltTest);
  return finish(std::move(ds), o,
                fmt::format("{} classes of per-channel sine patterns (frequency, amplitude, phase), {} channels x {} "
                            "samples, noise {:g}",
                            k, c, len, o.noise));
}

}  // namespace powertrain::data
