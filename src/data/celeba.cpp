#include "powertrain/data/celeba.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

#include "cache.h"
#include "common.h"
#include "io.h"
#include "jpeg.h"
#include "powertrain/error.h"

namespace powertrain::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kAttrFile = "list_attr_celeba.txt";
constexpr const char* kPartitionFile = "list_eval_partition.txt";
constexpr const char* kImageDir = "img_align_celeba";
constexpr const char* kHint =
    "CelebA: download the aligned images (img_align_celeba.zip), list_attr_celeba.txt and list_eval_partition.txt "
    "from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and unpack them into data_dir";

/// list_attr_celeba.txt: names, and per file a row of -1/1 values.
struct Attributes {
  std::vector<std::string> names;
  std::vector<std::string> files;
  std::vector<std::int8_t> values;  ///< [files, names], 0 or 1
  std::unordered_map<std::string, std::size_t> row_of;
};

/// The folder holding the lists: data_dir itself or its celeba/ subfolder (torchvision's layout).
fs::path resolve_root(const DatasetOptions& o) {
  const fs::path root = o.data_dir.empty() ? default_data_dir("celeba") : o.data_dir;
  detail::require_dir(root, "CelebA", kHint);
  std::error_code ec;
  if (!fs::exists(root / kAttrFile, ec) && fs::exists(root / "celeba" / kAttrFile, ec)) return root / "celeba";
  return root;
}

Attributes parse_attributes(const fs::path& path, bool names_only) {
  std::string text = detail::read_text_file(path);
  if (names_only) {  // the first two lines are enough
    auto second = text.find('\n');
    if (second != std::string::npos) second = text.find('\n', second + 1);
    if (second != std::string::npos) text.resize(second + 1);
  }
  Attributes a;
  std::int64_t declared = -1;
  std::vector<std::string_view> tok;
  std::int64_t data_lines = 0;
  detail::for_each_line(text, [&](std::int64_t line_no, std::string_view line) {
    detail::split_tokens(line, tok);
    auto where = [&] { return fmt::format("{}:{}", path.string(), line_no); };
    if (line_no == 1) {
      if (tok.size() != 1 || !detail::parse_int(tok[0], declared) || declared < 0)
        throw DataError(where() + ": expected the number of images on the first line");
      return;
    }
    if (line_no == 2) {
      if (tok.empty()) throw DataError(where() + ": expected the attribute names on the second line");
      for (auto t : tok) a.names.emplace_back(t);
      a.files.reserve(static_cast<std::size_t>(declared));
      a.values.reserve(static_cast<std::size_t>(declared) * a.names.size());
      return;
    }
    if (tok.empty()) return;  // blank line
    if (tok.size() != a.names.size() + 1)
      throw DataError(fmt::format("{}: expected a file name and {} values, found {} columns", where(), a.names.size(),
                                  tok.size()));
    for (std::size_t k = 1; k < tok.size(); ++k) {
      if (tok[k] == "1") a.values.push_back(1);
      else if (tok[k] == "-1") a.values.push_back(0);
      else
        throw DataError(fmt::format("{}: value '{}' of {} is not -1 or 1", where(), tok[k], a.names[k - 1]));
    }
    if (!a.row_of.emplace(std::string(tok[0]), a.files.size()).second)
      throw DataError(fmt::format("{}: {} is listed twice", where(), tok[0]));
    a.files.emplace_back(tok[0]);
    ++data_lines;
  });
  if (declared < 0) throw DataError(path.string() + ": empty file");
  if (a.names.empty()) throw DataError(path.string() + ":2: missing the attribute names");
  if (!names_only && data_lines != declared)
    throw DataError(fmt::format("{}: the first line declares {} images but {} are listed", path.string(), declared,
                                data_lines));
  return a;
}

/// list_eval_partition.txt: row index into Attributes per split, in file order.
std::array<std::vector<std::size_t>, 3> parse_partition(const fs::path& path, const Attributes& attrs,
                                                        const fs::path& attr_path) {
  const std::string text = detail::read_text_file(path);
  std::array<std::vector<std::size_t>, 3> parts;
  std::vector<char> seen(attrs.files.size(), 0);
  std::vector<std::string_view> tok;
  std::size_t listed = 0;
  detail::for_each_line(text, [&](std::int64_t line_no, std::string_view line) {
    detail::split_tokens(line, tok);
    if (tok.empty()) return;
    auto where = [&] { return fmt::format("{}:{}", path.string(), line_no); };
    std::int64_t part = -1;
    if (tok.size() != 2 || !detail::parse_int(tok[1], part) || part < 0 || part > 2)
      throw DataError(where() + ": expected '<file name> <0|1|2>'");
    auto it = attrs.row_of.find(std::string(tok[0]));
    if (it == attrs.row_of.end())
      throw DataError(fmt::format("{}: {} is not in {}", where(), tok[0], attr_path.string()));
    if (seen[it->second]++) throw DataError(fmt::format("{}: {} is listed twice", where(), tok[0]));
    parts[static_cast<std::size_t>(part)].push_back(it->second);
    ++listed;
  });
  if (listed != attrs.files.size())
    throw DataError(fmt::format("{} lists {} images but {} lists {}", attr_path.string(), attrs.files.size(),
                                path.string(), listed));
  return parts;
}

constexpr const char* kSplitNames[] = {"train", "val", "test"};

/// Normalizes x in place per channel with train statistics. x[s] is [rows[s], 3, S, S].
void normalize_in_place(const std::array<torch::Tensor, 3>& x, detail::CacheNorm& norm) {
  detail::channel_stats(x[0], norm.mean, norm.std);
  auto mean = torch::tensor(norm.mean, torch::kDouble).to(torch::kFloat).view({1, -1, 1, 1});
  auto std = torch::tensor(norm.std, torch::kDouble).to(torch::kFloat).view({1, -1, 1, 1});
  torch::NoGradGuard no_grad;
  constexpr std::int64_t kChunk = 4096;
  for (const auto& t : x)
    for (std::int64_t i = 0; i < t.size(0); i += kChunk) t.narrow(0, i, std::min(kChunk, t.size(0) - i)).sub_(mean).div_(std);
}

}  // namespace

std::string_view to_string(CacheOutcome outcome) {
  switch (outcome) {
    case CacheOutcome::disabled: return "disabled";
    case CacheOutcome::hit: return "hit";
    case CacheOutcome::built: return "built";
    case CacheOutcome::rebuilt: return "rebuilt";
    case CacheOutcome::unwritable: return "unwritable";
  }
  return "unknown";
}

std::vector<std::string> read_celeba_attribute_names(const fs::path& data_dir) {
  DatasetOptions o;
  o.data_dir = data_dir;
  return parse_attributes(resolve_root(o) / kAttrFile, true).names;
}

namespace {

// The attribute columns `tasks` names (every attribute when empty) and their
// names as the file spells them; ConfigError for an unknown or repeated one.
void select_tasks(const Attributes& attrs, const std::vector<std::string>& tasks, std::vector<std::size_t>& cols,
                  std::vector<std::string>& names) {
  if (tasks.empty()) {
    for (std::size_t k = 0; k < attrs.names.size(); ++k) cols.push_back(k);
    names = attrs.names;
    return;
  }
  for (const auto& t : tasks) {
    std::size_t k = 0;
    while (k < attrs.names.size() && detail::normalize_name(attrs.names[k]) != detail::normalize_name(t)) ++k;
    if (k == attrs.names.size())
      throw ConfigError(fmt::format("CelebA has no attribute '{}'; valid: {}", t, detail::join(attrs.names)));
    if (std::find(cols.begin(), cols.end(), k) != cols.end())
      throw ConfigError("CelebA attribute '" + t + "' is listed twice");
    cols.push_back(k);
    names.push_back(attrs.names[k]);
  }
}

// Where the images came from, for the dataset's provenance.
std::string describe_cache(const CacheReport& rep) {
  switch (rep.outcome) {
    case CacheOutcome::hit: return "memory-mapped cache " + rep.path.string();
    case CacheOutcome::built: return "decoded once into cache " + rep.path.string();
    case CacheOutcome::rebuilt: return "cache rebuilt (" + rep.reason + ") at " + rep.path.string();
    case CacheOutcome::unwritable: return "decoded into memory; cache not written: " + rep.reason;
    case CacheOutcome::disabled: return "decoded into memory (cache disabled)";
  }
  return {};
}

}  // namespace

Dataset load_celeba(const DatasetOptions& o, CacheReport* report) {
  detail::validate_common(o);
  CacheReport local;
  CacheReport& rep = report ? *report : local;
  rep = CacheReport{};
  const int size = static_cast<int>(o.image_size > 0 ? o.image_size : 64);

  const fs::path root = resolve_root(o);
  const fs::path attr_path = root / kAttrFile, part_path = root / kPartitionFile;
  detail::require_file(attr_path, kHint);
  detail::require_file(part_path, kHint);
  const Attributes attrs = parse_attributes(attr_path, false);
  const auto parts = parse_partition(part_path, attrs, attr_path);

  // Attribute subset -> task columns.
  std::vector<std::size_t> cols;
  std::vector<std::string> task_names;
  select_tasks(attrs, o.tasks, cols, task_names);
  const auto n_tasks = static_cast<std::int64_t>(cols.size());

  // Rows of each split after subset / cap; labels; the cache key.
  std::array<std::vector<std::size_t>, 3> rows;
  std::array<std::vector<float>, 3> labels;
  std::string key_text = fmt::format("celeba v{} size={} crop={} norm={} tasks={}", detail::kCacheVersion, size,
                                     o.center_crop ? 1 : 0, o.normalize ? 1 : 0, detail::join(task_names, ","));
  std::uint64_t key = detail::fnv1a_text(key_text);
  std::string subset_note;
  for (int s = 0; s < 3; ++s) {
    const auto& all = parts[static_cast<std::size_t>(s)];
    if (s == 0 && all.empty()) throw DataError(part_path.string() + ": no training images (partition 0)");
    const std::uint64_t salt = s == 0 ? detail::kSaltTrain : s == 1 ? detail::kSaltVal : detail::kSaltTest;
    auto chosen = detail::choose_rows(static_cast<std::int64_t>(all.size()), s == 0 ? o.subset : 1.0, o.max_samples,
                                      o.seed, salt);
    if (chosen.size() != all.size())
      subset_note += fmt::format("{}{} {} of {}", subset_note.empty() ? "" : ", ", kSplitNames[s], chosen.size(), all.size());
    for (auto i : chosen) rows[static_cast<std::size_t>(s)].push_back(all[static_cast<std::size_t>(i)]);
    auto& lab = labels[static_cast<std::size_t>(s)];
    for (auto r : rows[static_cast<std::size_t>(s)]) {
      for (auto k : cols) lab.push_back(attrs.values[r * attrs.names.size() + k]);
      key = detail::fnv1a_text(attrs.files[r], key);
      key = detail::fnv1a_text("\n", key);
    }
    key = detail::fnv1a(lab.data(), lab.size() * sizeof(float), key);
    key = detail::fnv1a_text("|", key);
  }
  if (!subset_note.empty()) subset_note = fmt::format("subset (seed {}): {}", o.seed, subset_note);

  const fs::path image_dir = root / kImageDir;
  auto files_of = [&](int s) {
    std::vector<fs::path> files;
    for (auto r : rows[static_cast<std::size_t>(s)]) files.push_back(image_dir / attrs.files[r]);
    return files;
  };
  const detail::ImageFit fit{size, o.center_crop};
  const std::array<std::uint64_t, 3> counts{rows[0].size(), rows[1].size(), rows[2].size()};
  const auto layout = detail::CacheLayout::plan(3, static_cast<std::uint32_t>(size), static_cast<std::uint32_t>(size),
                                                static_cast<std::uint32_t>(n_tasks), counts);

  Dataset ds;
  ds.name = "celeba";
  ds.modality = Dataset::Modality::image;
  ds.label_kind = LabelKind::multi_label;
  ds.labels = task_names;
  ds.channels = {"red", "green", "blue"};
  auto x_shape = [&](int s) { return std::vector<std::int64_t>{static_cast<std::int64_t>(counts[static_cast<std::size_t>(s)]), 3, size, size}; };
  auto y_shape = [&](int s) { return std::vector<std::int64_t>{static_cast<std::int64_t>(counts[static_cast<std::size_t>(s)]), n_tasks}; };

  // Tensors over a validated cache mapping; the mapping lives as long as any of them.
  auto from_cache = [&](const std::shared_ptr<detail::MappedFile>& map, const detail::CacheNorm& norm) {
    for (int s = 0; s < 3; ++s) {
      Split& sp = s == 0 ? ds.train : s == 1 ? ds.val : ds.test;
      sp.x = torch::from_blob(map->data() + layout.x_offset[s], x_shape(s), [map](void*) {}, torch::kFloat);
      sp.y = torch::from_blob(map->data() + layout.y_offset[s], y_shape(s), [map](void*) {}, torch::kFloat);
    }
    ds.norm_mean = norm.mean;
    ds.norm_std = norm.std;
  };
  auto decode_split = [&](int s, float* dst) {
    const auto files = files_of(s);
    if (!files.empty()) {
      std::error_code ec;
      if (!fs::is_directory(image_dir, ec)) throw DataError("missing folder " + image_dir.string() + " (" + kHint + ")");
    }
    detail::decode_jpeg_files(files, fit, o.threads, dst);
    rep.decoded += static_cast<std::int64_t>(files.size());
  };

  bool loaded = false;
  if (o.use_cache) {
    const fs::path dir = o.cache_dir.empty() ? default_cache_dir() : o.cache_dir;
    rep.path = dir / fmt::format("celeba-{}px-{:016x}.cache", size, key);
    detail::CacheNorm norm;
    if (auto map = detail::open_cache(rep.path, key, layout, norm, rep.reason)) {
      from_cache(map, norm);
      rep.outcome = CacheOutcome::hit;
      loaded = true;
    } else {
      rep.outcome = rep.reason.empty() ? CacheOutcome::built : CacheOutcome::rebuilt;
      std::unique_ptr<detail::CacheWriter> writer;
      try {
        writer = std::make_unique<detail::CacheWriter>(rep.path, layout);
      } catch (const IoError& e) {
        rep.outcome = CacheOutcome::unwritable;
        rep.reason = e.what();
      }
      if (writer) {
        std::array<torch::Tensor, 3> xs;
        for (int s = 0; s < 3; ++s) {
          decode_split(s, writer->x(s));
          auto& lab = labels[static_cast<std::size_t>(s)];
          if (!lab.empty()) std::memcpy(writer->y(s), lab.data(), lab.size() * sizeof(float));
          xs[static_cast<std::size_t>(s)] = torch::from_blob(writer->x(s), x_shape(s), torch::kFloat);
        }
        detail::CacheNorm built_norm;
        if (o.normalize) normalize_in_place(xs, built_norm);
        xs = {};
        writer->commit(key, key_text, built_norm);
        writer.reset();
        std::string reason;
        auto map = detail::open_cache(rep.path, key, layout, norm, reason);
        if (!map) throw IoError("cache " + rep.path.string() + " does not read back: " + reason);
        from_cache(map, norm);
        loaded = true;
      }
    }
  }
  if (!loaded) {
    for (int s = 0; s < 3; ++s) {
      Split& sp = s == 0 ? ds.train : s == 1 ? ds.val : ds.test;
      sp.x = torch::empty(x_shape(s), torch::kFloat);
      decode_split(s, sp.x.data_ptr<float>());
      sp.y = torch::tensor(labels[static_cast<std::size_t>(s)], torch::kFloat).reshape(y_shape(s));
    }
    if (o.normalize) detail::normalize_from_train(ds);
  }

  const std::string cache_note = describe_cache(rep);
  ds.provenance = fmt::format(
      "CelebA aligned faces from {}: {} attributes, {}x{} RGB ({}), official partition train {} / val {} / test {}{}{}; {}",
      root.string(), n_tasks, size, size, o.center_crop ? "centre square crop" : "whole image squeezed",
      ds.train.size(), ds.val.size(), ds.test.size(), subset_note.empty() ? "" : "; " + subset_note,
      o.normalize ? "; normalized with train mean/std" : "", cache_note);
  return ds;
}

}  // namespace powertrain::data
