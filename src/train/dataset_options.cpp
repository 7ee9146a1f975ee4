#include "powertrain/train/dataset_options.h"

#include <charconv>
#include <functional>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::train {
namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    const auto b = item.find_first_not_of(' ');
    const auto e = item.find_last_not_of(' ');
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

template <typename T>
T parse_number(const std::string& key, const std::string& v) {
  T out{};
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size())
    throw ConfigError(fmt::format("data option '{}': '{}' is not a number", key, v));
  return out;
}

bool parse_bool(const std::string& key, const std::string& v) {
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  throw ConfigError(fmt::format("data option '{}': '{}' is not true or false", key, v));
}

std::vector<int> parse_ints(const std::string& key, const std::string& v) {
  std::vector<int> out;
  for (const auto& item : split_list(v)) out.push_back(parse_number<int>(key, item));
  return out;
}

using Setter = std::function<void(data::DatasetOptions&, const std::string& key, const std::string& value)>;

const std::vector<std::pair<std::string, Setter>>& setters() {
  static const std::vector<std::pair<std::string, Setter>> table = {
      {"max_samples", [](auto& o, auto& k, auto& v) { o.max_samples = parse_number<std::int64_t>(k, v); }},
      {"val_fraction", [](auto& o, auto& k, auto& v) { o.val_fraction = parse_number<double>(k, v); }},
      {"normalize", [](auto& o, auto& k, auto& v) { o.normalize = parse_bool(k, v); }},
      {"image_size", [](auto& o, auto& k, auto& v) { o.image_size = parse_number<std::int64_t>(k, v); }},
      {"cache_dir", [](auto& o, auto&, auto& v) { o.cache_dir = v; }},
      {"use_cache", [](auto& o, auto& k, auto& v) { o.use_cache = parse_bool(k, v); }},
      {"center_crop", [](auto& o, auto& k, auto& v) { o.center_crop = parse_bool(k, v); }},
      {"channels", [](auto& o, auto&, auto& v) { o.channels = split_list(v); }},
      {"window", [](auto& o, auto& k, auto& v) { o.window = parse_number<std::int64_t>(k, v); }},
      {"stride", [](auto& o, auto& k, auto& v) { o.stride = parse_number<std::int64_t>(k, v); }},
      {"downsample", [](auto& o, auto& k, auto& v) { o.downsample = parse_number<std::int64_t>(k, v); }},
      {"max_fill", [](auto& o, auto& k, auto& v) { o.max_fill = parse_number<std::int64_t>(k, v); }},
      {"train_subjects", [](auto& o, auto& k, auto& v) { o.train_subjects = parse_ints(k, v); }},
      {"val_subjects", [](auto& o, auto& k, auto& v) { o.val_subjects = parse_ints(k, v); }},
      {"test_subjects", [](auto& o, auto& k, auto& v) { o.test_subjects = parse_ints(k, v); }},
      {"activities", [](auto& o, auto&, auto& v) { o.activities = split_list(v); }},
      {"num_classes", [](auto& o, auto& k, auto& v) { o.num_classes = parse_number<std::int64_t>(k, v); }},
      {"train_samples", [](auto& o, auto& k, auto& v) { o.train_samples = parse_number<std::int64_t>(k, v); }},
      {"eval_samples", [](auto& o, auto& k, auto& v) { o.eval_samples = parse_number<std::int64_t>(k, v); }},
      {"input_channels", [](auto& o, auto& k, auto& v) { o.input_channels = parse_number<std::int64_t>(k, v); }},
      {"length", [](auto& o, auto& k, auto& v) { o.length = parse_number<std::int64_t>(k, v); }},
      {"noise", [](auto& o, auto& k, auto& v) { o.noise = parse_number<double>(k, v); }},
  };
  return table;
}

}  // namespace

const std::vector<std::string>& data_option_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (const auto& [name, _] : setters()) k.push_back(name);
    return k;
  }();
  return keys;
}

data::DatasetOptions dataset_options(const run::RunConfig& config) {
  data::DatasetOptions o;
  o.name = config.dataset;
  o.data_dir = config.data_dir;
  o.subset = config.subset;
  o.seed = config.seed;
  o.tasks = split_list(config.tasks);
  for (const auto& [key, value] : config.data_options) {
    bool found = false;
    for (const auto& [name, set] : setters()) {
      if (name != key) continue;
      set(o, key, value);
      found = true;
      break;
    }
    if (!found) {
      std::string valid;
      for (const auto& k : data_option_keys()) valid += (valid.empty() ? "" : ", ") + k;
      throw ConfigError(fmt::format("unknown data option '{}' (valid: {})", key, valid));
    }
  }
  return o;
}

}  // namespace powertrain::train
