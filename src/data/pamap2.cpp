#include "powertrain/data/pamap2.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <future>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "common.h"
#include "io.h"
#include "powertrain/data/multitask.h"
#include "powertrain/error.h"

namespace powertrain::data {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kColumns = 54;
constexpr int kFirstSubject = 101, kLastSubject = 109;
/// Consecutive rows further apart than this (s) are a gap; the nominal step is 0.01 s.
constexpr double kMaxStepS = 0.05;
constexpr const char* kHint =
    "PAMAP2: download it from https://archive.ics.uci.edu/dataset/231 and unzip it so that "
    "<data_dir>/Protocol/subject101.dat exists";

const char* const kImus[] = {"hand", "chest", "ankle"};
constexpr int kImuFirstColumn[] = {3, 20, 37};
/// Sensor columns within an IMU block of 17 (the last four, orientation, are invalid).
const std::vector<std::pair<std::string, int>>& imu_columns() {
  static const std::vector<std::pair<std::string, int>> cols{
      {"temp", 0},     {"acc16_x", 1}, {"acc16_y", 2}, {"acc16_z", 3}, {"acc6_x", 4},
      {"acc6_y", 5},   {"acc6_z", 6},  {"gyro_x", 7},  {"gyro_y", 8},  {"gyro_z", 9},
      {"mag_x", 10},   {"mag_y", 11},  {"mag_z", 12}};
  return cols;
}

/// Column in the .dat file of every channel in pamap2_channel_names() order.
const std::map<std::string, int>& channel_columns() {
  static const std::map<std::string, int> m = [] {
    std::map<std::string, int> out{{"heart_rate", 2}};
    for (int i = 0; i < 3; ++i)
      for (const auto& [name, off] : imu_columns()) out[std::string(kImus[i]) + "_" + name] = kImuFirstColumn[i] + off;
    return out;
  }();
  return m;
}

bool known_activity_id(std::int64_t id) {
  // Protocol and optional activities of the published dataset, and 0 (transient).
  static const std::set<std::int64_t> ids{0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 24};
  return ids.count(id) > 0;
}

bool looks_numeric(std::string_view t) {
  if (t == "NaN" || t == "nan") return true;
  bool digit = false;
  for (char ch : t) {
    if (ch >= '0' && ch <= '9') digit = true;
    else if (ch != '.' && ch != '-' && ch != '+' && ch != 'e' && ch != 'E') return false;
  }
  return digit;
}

/// One subject's rows: selected channels only, row-major [rows, channels].
struct Recording {
  std::vector<double> t;
  std::vector<int> activity;
  std::vector<float> values;
};

Recording parse_subject(const fs::path& path, const std::vector<int>& columns) {
  const std::string text = detail::read_text_file(path);
  Recording r;
  const std::size_t c = columns.size();
  r.t.reserve(text.size() / 400);
  r.activity.reserve(text.size() / 400);
  r.values.reserve(text.size() / 400 * c);
  std::vector<std::string_view> tok;
  tok.reserve(kColumns + 4);
  detail::for_each_line(text, [&](std::int64_t line_no, std::string_view line) {
    detail::split_tokens(line, tok);
    if (tok.empty()) return;  // blank line
    auto where = [&] { return fmt::format("{}:{}", path.string(), line_no); };
    if (tok.size() != kColumns)
      throw DataError(fmt::format("{}: expected {} whitespace-separated columns, found {}", where(), kColumns, tok.size()));
    double t = 0, act = 0;
    if (!detail::parse_double(tok[0], t) || !std::isfinite(t))
      throw DataError(fmt::format("{}: timestamp '{}' is not a number", where(), tok[0]));
    std::int64_t id = -1;
    if (!detail::parse_double(tok[1], act) || act != std::floor(act) || !known_activity_id(id = static_cast<std::int64_t>(act)))
      throw DataError(fmt::format("{}: '{}' is not a PAMAP2 activityID", where(), tok[1]));
    // Columns not selected are only checked to look like numbers (cheaper than parsing).
    for (std::size_t col = 2; col < kColumns; ++col)
      if (!looks_numeric(tok[col]))
        throw DataError(fmt::format("{}: column {} ('{}') is not a number", where(), col + 1, tok[col]));
    r.t.push_back(t);
    r.activity.push_back(static_cast<int>(id));
    for (int col : columns) {
      double v = 0;
      if (!detail::parse_double(tok[static_cast<std::size_t>(col)], v) || std::isinf(v))
        throw DataError(fmt::format("{}: column {} ('{}') is not a number", where(), col + 1, tok[static_cast<std::size_t>(col)]));
      // Training is in float32: a value beyond its range would become infinite
      // there and end the run as "diverged", a result, instead of a data error.
      if (std::isinf(static_cast<float>(v)))
        throw DataError(fmt::format("{}: column {} ('{}') is out of float32's range", where(), col + 1,
                                    tok[static_cast<std::size_t>(col)]));
      r.values.push_back(static_cast<float>(v));
    }
  });
  if (r.t.empty()) throw DataError(path.string() + ": no data rows");
  return r;
}

struct Windows {
  std::vector<float> x;  ///< [n, channels, window]
  std::vector<std::int64_t> y;
  std::int64_t filled = 0;     ///< NaN values interpolated
  std::int64_t cut_rows = 0;   ///< rows dropped for NaN runs longer than max_fill
  std::int64_t count() const { return static_cast<std::int64_t>(y.size()); }
};

/// Cuts one recording into windows. `class_of[id]` maps activityID to class (-1: dropped).
Windows cut_windows(Recording& r, const std::vector<int>& class_of, const DatasetOptions& o) {
  Windows w;
  const std::size_t c = r.values.size() / std::max<std::size_t>(1, r.t.size());
  const std::size_t n = r.t.size();
  auto label = [&](std::size_t i) { return class_of[static_cast<std::size_t>(r.activity[i])]; };
  auto value = [&](std::size_t i, std::size_t ch) -> float& { return r.values[i * c + ch]; };
  std::vector<char> bad(n, 0);
  std::size_t a = 0;
  while (a < n) {
    if (label(a) < 0) {
      ++a;
      continue;
    }
    // Segment [a, b): one activity, no time gap.
    std::size_t b = a + 1;
    while (b < n && label(b) == label(a) && r.t[b] - r.t[b - 1] > 0 && r.t[b] - r.t[b - 1] <= kMaxStepS) ++b;
    // Fill short NaN runs per channel; mark long ones.
    for (std::size_t ch = 0; ch < c; ++ch) {
      std::size_t i = a;
      while (i < b) {
        if (!std::isnan(value(i, ch))) {
          ++i;
          continue;
        }
        std::size_t j = i;
        while (j < b && std::isnan(value(j, ch))) ++j;
        const auto run = static_cast<std::int64_t>(j - i);
        const bool has_left = i > a, has_right = j < b;
        if (run > o.max_fill || (!has_left && !has_right)) {
          std::fill(bad.begin() + static_cast<std::ptrdiff_t>(i), bad.begin() + static_cast<std::ptrdiff_t>(j), 1);
        } else {
          const float left = has_left ? value(i - 1, ch) : value(j, ch);
          const float right = has_right ? value(j, ch) : value(i - 1, ch);
          for (std::size_t k = i; k < j; ++k) {
            const float f = static_cast<float>(k - i + 1) / static_cast<float>(run + 1);
            value(k, ch) = left + (right - left) * f;
          }
          w.filled += run;
        }
        i = j;
      }
    }
    // Windows inside every stretch of good rows, after downsampling.
    std::size_t p = a;
    while (p < b) {
      if (bad[p]) {
        ++w.cut_rows;
        ++p;
        continue;
      }
      std::size_t q = p;
      while (q < b && !bad[q]) ++q;
      const auto step = static_cast<std::size_t>(o.downsample);
      const auto len = static_cast<std::int64_t>((q - p + step - 1) / step);
      for (std::int64_t s = 0; s + o.window <= len; s += o.stride) {
        const std::size_t base = w.x.size();
        w.x.resize(base + c * static_cast<std::size_t>(o.window));
        for (std::int64_t l = 0; l < o.window; ++l) {
          const std::size_t row = p + static_cast<std::size_t>(s + l) * step;
          for (std::size_t ch = 0; ch < c; ++ch)
            w.x[base + ch * static_cast<std::size_t>(o.window) + static_cast<std::size_t>(l)] = value(row, ch);
        }
        w.y.push_back(label(a));
      }
      p = q;
    }
    a = b;
  }
  return w;
}

std::string subjects_text(const std::vector<int>& s) {
  std::vector<std::string> parts;
  for (int id : s) parts.push_back(std::to_string(id));
  return parts.empty() ? "none" : detail::join(parts, ",");
}

}  // namespace

const std::vector<Pamap2Activity>& pamap2_activities() {
  static const std::vector<Pamap2Activity> a{
      {1, "lying"},           {2, "sitting"},           {3, "standing"},          {4, "walking"},
      {5, "running"},         {6, "cycling"},           {7, "Nordic walking"},    {12, "ascending stairs"},
      {13, "descending stairs"}, {16, "vacuum cleaning"}, {17, "ironing"},        {24, "rope jumping"}};
  return a;
}

const std::vector<std::string>& pamap2_channel_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out{"heart_rate"};
    for (const char* imu : kImus)
      for (const auto& [name, off] : imu_columns()) out.push_back(std::string(imu) + "_" + name);
    return out;
  }();
  return names;
}

std::vector<std::string> resolve_pamap2_channels(const std::vector<std::string>& specs_in) {
  const std::vector<std::string> defaults{"acc16", "gyro"};
  const auto& specs = specs_in.empty() ? defaults : specs_in;
  const auto& all = pamap2_channel_names();
  std::set<std::string> chosen;
  for (const auto& spec : specs) {
    std::size_t before = chosen.size();
    bool matched = false;
    for (const auto& name : all) {
      // name = "<imu>_<sensor>_<axis>", "<imu>_temp" or "heart_rate".
      const auto first = name.find('_');
      const std::string imu = name.substr(0, first);
      const std::string rest = first == std::string::npos ? "" : name.substr(first + 1);
      const std::string sensor = rest.substr(0, rest.find('_'));
      if (spec == "all" || spec == name || spec == imu || spec == sensor || spec == imu + "_" + sensor) {
        if (spec != "all" && name == "heart_rate" && spec != "heart_rate") continue;
        chosen.insert(name);
        matched = true;
      }
    }
    if (!matched && chosen.size() == before)
      throw ConfigError(fmt::format(
          "unknown PAMAP2 channel '{}'; valid: all, heart_rate, an IMU (hand, chest, ankle), a sensor group (temp, "
          "acc16, acc6, gyro, mag), IMU_sensor (hand_gyro) or a channel name (hand_acc16_x, ...)",
          spec));
  }
  std::vector<std::string> out;
  for (const auto& name : all)
    if (chosen.count(name)) out.push_back(name);
  return out;
}

Dataset load_pamap2(const DatasetOptions& o) {
  detail::validate_common(o);
  if (o.window < 1 || o.stride < 1 || o.downsample < 1 || o.max_fill < 0)
    throw ConfigError(fmt::format("PAMAP2 needs window >= 1, stride >= 1, downsample >= 1, max_fill >= 0 (got {}, {}, {}, {})",
                                  o.window, o.stride, o.downsample, o.max_fill));
  const auto channels = resolve_pamap2_channels(o.channels);
  std::vector<int> columns;
  for (const auto& ch : channels) columns.push_back(channel_columns().at(ch));

  // Activities -> classes, in protocol order.
  const auto& acts = pamap2_activities();
  std::vector<bool> selected(acts.size(), o.activities.empty());
  for (const auto& spec : o.activities) {
    std::int64_t id = -1;
    const bool numeric = detail::parse_int(spec, id);
    bool found = false;
    for (std::size_t i = 0; i < acts.size(); ++i)
      if ((numeric && acts[i].id == id) || (!numeric && detail::normalize_name(acts[i].name) == detail::normalize_name(spec))) {
        selected[i] = true;
        found = true;
      }
    if (!found) {
      std::vector<std::string> valid;
      for (const auto& a : acts) valid.push_back(fmt::format("{} ({})", a.id, a.name));
      throw ConfigError(fmt::format("unknown PAMAP2 activity '{}'; valid: {}", spec, detail::join(valid)));
    }
  }
  std::vector<int> class_of(25, -1);
  Dataset ds;
  ds.name = "pamap2";
  ds.modality = Dataset::Modality::sensor;
  ds.channels = channels;
  for (std::size_t i = 0; i < acts.size(); ++i)
    if (selected[i]) {
      class_of[static_cast<std::size_t>(acts[i].id)] = static_cast<int>(ds.labels.size());
      ds.labels.push_back(acts[i].name);
    }

  // Subjects per split.
  auto check_ids = [](const std::vector<int>& ids, const char* split) {
    for (int id : ids)
      if (id < kFirstSubject || id > kLastSubject)
        throw ConfigError(fmt::format("PAMAP2 {} subject {} is not one of {}..{}", split, id, kFirstSubject, kLastSubject));
  };
  check_ids(o.train_subjects, "train");
  check_ids(o.val_subjects, "val");
  check_ids(o.test_subjects, "test");
  std::vector<int> train = o.train_subjects;
  if (train.empty())
    for (int id = kFirstSubject; id <= kLastSubject; ++id)
      if (std::count(o.val_subjects.begin(), o.val_subjects.end(), id) == 0 &&
          std::count(o.test_subjects.begin(), o.test_subjects.end(), id) == 0)
        train.push_back(id);
  std::map<int, std::string> owner;
  using Named = std::pair<const std::vector<int>*, const char*>;
  for (const auto& [ids, split] : {Named{&train, "train"}, Named{&o.val_subjects, "val"}, Named{&o.test_subjects, "test"}})
    for (int id : *ids)
      if (auto [it, fresh] = owner.emplace(id, split); !fresh)
        throw ConfigError(fmt::format("PAMAP2 subject {} is in both the {} and the {} split", id, it->second, split));
  if (train.empty()) throw ConfigError("PAMAP2: no training subjects left");

  // Locate Protocol/ (also inside the unzipped PAMAP2_Dataset/ folder).
  const fs::path root = o.data_dir.empty() ? default_data_dir("pamap2") : o.data_dir;
  detail::require_dir(root, "PAMAP2", kHint);
  fs::path protocol = root / "Protocol";
  std::error_code ec;
  if (!fs::is_directory(protocol, ec) && fs::is_directory(root / "PAMAP2_Dataset" / "Protocol", ec))
    protocol = root / "PAMAP2_Dataset" / "Protocol";
  std::vector<fs::path> files;
  for (const auto& [id, split] : owner) {
    files.push_back(protocol / fmt::format("subject{}.dat", id));
    detail::require_file(files.back(), kHint);
  }

  // Parse and cut every subject in parallel.
  std::vector<std::future<Windows>> jobs;
  const unsigned threads = o.threads > 0 ? static_cast<unsigned>(o.threads) : std::max(1u, std::thread::hardware_concurrency());
  std::map<int, Windows> per_subject;
  {
    std::vector<int> ids;
    for (const auto& [id, split] : owner) ids.push_back(id);
    for (std::size_t start = 0; start < ids.size(); start += threads) {
      jobs.clear();
      const std::size_t end = std::min(ids.size(), start + threads);
      for (std::size_t i = start; i < end; ++i)
        jobs.push_back(std::async(std::launch::async, [&, i] {
          Recording r = parse_subject(files[i], columns);
          return cut_windows(r, class_of, o);
        }));
      for (std::size_t i = start; i < end; ++i) per_subject[ids[i]] = jobs[i - start].get();
    }
  }

  const auto c = static_cast<std::int64_t>(channels.size());
  std::int64_t filled = 0, cut = 0;
  auto assemble = [&](const std::vector<int>& ids, const char* split) {
    std::int64_t n = 0;
    for (int id : ids) n += per_subject[id].count();
    if (n == 0 && !ids.empty())
      throw DataError(fmt::format("PAMAP2 {} subjects {} give no windows of {} samples for the selected activities",
                                  split, subjects_text(ids), o.window));
    auto x = torch::empty({n, c, o.window});
    auto y = torch::empty({n}, torch::kLong);
    std::int64_t at = 0;
    for (int id : ids) {
      auto& w = per_subject[id];
      const auto m = w.count();
      if (m == 0) continue;
      std::copy(w.x.begin(), w.x.end(), x.data_ptr<float>() + at * c * o.window);
      std::copy(w.y.begin(), w.y.end(), y.data_ptr<std::int64_t>() + at);
      filled += w.filled;
      cut += w.cut_rows;
      at += m;
      w = Windows{};  // release as we go
    }
    return Split{x, y};
  };
  ds.train = assemble(train, "train");
  ds.val = assemble(o.val_subjects, "val");
  ds.test = assemble(o.test_subjects, "test");
  const std::string subset_note = detail::apply_subset(ds, o);
  detail::normalize_from_train(ds);

  ds.provenance = fmt::format(
      "PAMAP2 Protocol from {}: {} channels, {} activities, windows of {} samples every {} at {:g} Hz; subjects train {} "
      "({}) / val {} ({}) / test {} ({}); {} NaN values interpolated (runs <= {} samples), {} rows cut; normalized with "
      "train mean/std{}",
      protocol.string(), c, ds.labels.size(), o.window, o.stride, 100.0 / static_cast<double>(o.downsample),
      subjects_text(train), ds.train.size(), subjects_text(o.val_subjects), ds.val.size(), subjects_text(o.test_subjects),
      ds.test.size(), filled, o.max_fill, cut, subset_note.empty() ? "" : "; " + subset_note);
  if (!o.tasks.empty()) return to_multitask(ds, o.tasks);
  return ds;
}

}  // namespace powertrain::data
