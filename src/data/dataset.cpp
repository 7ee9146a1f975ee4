// The factory, helpers every loader shares, and multitask derivation.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include <fmt/format.h>

#include "common.h"
#include "io.h"
#include "powertrain/data/celeba.h"
#include "powertrain/data/fashion_mnist.h"
#include "powertrain/data/load.h"
#include "powertrain/data/multitask.h"
#include "powertrain/data/pamap2.h"
#include "powertrain/data/synthetic.h"
#include "powertrain/error.h"

namespace powertrain::data {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Factory

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names{"fashion-mnist", "celeba", "pamap2", "synthetic-images",
                                              "synthetic-sensors"};
  return names;
}

Dataset load_dataset(const DatasetOptions& options) {
  if (options.name == "fashion-mnist") return load_fashion_mnist(options);
  if (options.name == "celeba") return load_celeba(options);
  if (options.name == "pamap2") return load_pamap2(options);
  if (options.name == "synthetic-images") return make_synthetic_images(options);
  if (options.name == "synthetic-sensors") return make_synthetic_sensors(options);
  throw ConfigError("unknown dataset '" + options.name + "'; valid: " + detail::join(dataset_names()));
}

fs::path default_data_dir(const std::string& name) {
  if (const char* root = std::getenv("POWERTRAIN_DATA_DIR"); root != nullptr && *root != '\0') {
    std::error_code ec;
    fs::path p = fs::path(root) / name;
    if (fs::exists(p, ec)) return p;
  }
  return fs::path("/usr/share/datasets") / name;
}

fs::path default_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg == '/') return fs::path(xdg) / "powertrain";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return fs::path(home) / ".cache" / "powertrain";
  return fs::path("/tmp/powertrain-cache");
}

// ---------------------------------------------------------------------------
// Shared helpers

namespace detail {

void validate_common(const DatasetOptions& o) {
  if (!(o.subset > 0.0 && o.subset <= 1.0))
    throw ConfigError(fmt::format("subset must be in (0, 1], got {}", o.subset));
  if (o.max_samples < 0) throw ConfigError(fmt::format("max_samples must be >= 0, got {}", o.max_samples));
  if (!(o.val_fraction >= 0.0 && o.val_fraction < 1.0))
    throw ConfigError(fmt::format("val_fraction must be in [0, 1), got {}", o.val_fraction));
  if (o.image_size < 0 || o.image_size > 4096)
    throw ConfigError(fmt::format("image_size must be in [1, 4096] (or 0 for the default), got {}", o.image_size));
}

torch::Tensor index_tensor(const std::vector<std::int64_t>& rows) {
  return torch::tensor(rows, torch::kLong);
}

Split take_rows(const Split& split, const std::vector<std::int64_t>& rows) {
  if (!split.x.defined()) return split;
  const auto n = split.size();
  bool identity = static_cast<std::int64_t>(rows.size()) == n;
  for (std::size_t i = 0; identity && i < rows.size(); ++i) identity = rows[i] == static_cast<std::int64_t>(i);
  if (identity) return split;
  auto idx = index_tensor(rows).to(split.x.device());
  return Split{split.x.index_select(0, idx), split.y.index_select(0, idx)};
}

std::string apply_subset(Dataset& ds, const DatasetOptions& o) {
  std::string note;
  struct Part {
    Split* split;
    const char* name;
    double fraction;
    std::uint64_t salt;
  };
  for (const Part& p : {Part{&ds.train, "train", o.subset, kSaltTrain}, Part{&ds.val, "val", 1.0, kSaltVal},
                        Part{&ds.test, "test", 1.0, kSaltTest}}) {
    const auto n = p.split->size();
    if (n == 0) continue;
    auto rows = choose_rows(n, p.fraction, o.max_samples, o.seed, p.salt);
    if (static_cast<std::int64_t>(rows.size()) == n) continue;
    *p.split = take_rows(*p.split, rows);
    note += fmt::format("{}{} {} of {}", note.empty() ? "" : ", ", p.name, rows.size(), n);
  }
  return note.empty() ? note : fmt::format("subset (seed {}): {}", o.seed, note);
}

void channel_stats(const torch::Tensor& x, std::vector<double>& mean, std::vector<double>& std) {
  const auto c = x.size(1);
  auto sum = torch::zeros({c}, torch::kDouble);
  auto sq = torch::zeros({c}, torch::kDouble);
  const std::int64_t n = x.size(0);
  std::int64_t per_row = 1;
  for (int d = 2; d < x.dim(); ++d) per_row *= x.size(d);
  const std::int64_t chunk = std::max<std::int64_t>(1, (std::int64_t{1} << 24) / std::max<std::int64_t>(1, c * per_row));
  torch::NoGradGuard no_grad;
  for (std::int64_t i = 0; i < n; i += chunk) {
    auto part = x.narrow(0, i, std::min(chunk, n - i)).transpose(0, 1).reshape({c, -1}).to(torch::kCPU, torch::kDouble);
    sum += part.sum(1);
    sq += (part * part).sum(1);
  }
  const double count = static_cast<double>(n * per_row);
  mean.resize(static_cast<std::size_t>(c));
  std.resize(static_cast<std::size_t>(c));
  for (std::int64_t k = 0; k < c; ++k) {
    const double m = count > 0 ? sum[k].item<double>() / count : 0.0;
    const double var = count > 0 ? std::max(0.0, sq[k].item<double>() / count - m * m) : 0.0;
    mean[static_cast<std::size_t>(k)] = m;
    const double s = std::sqrt(var);
    std[static_cast<std::size_t>(k)] = s < 1e-12 ? 1.0 : s;
  }
}

void normalize_from_train(Dataset& ds) {
  if (ds.train.size() == 0) throw DataError(ds.name + ": cannot fit normalization on an empty training split");
  channel_stats(ds.train.x, ds.norm_mean, ds.norm_std);
  std::vector<std::int64_t> shape(static_cast<std::size_t>(ds.train.x.dim()), 1);
  shape[1] = static_cast<std::int64_t>(ds.norm_mean.size());
  auto mean = torch::tensor(ds.norm_mean, torch::kDouble).to(torch::kFloat).reshape(shape);
  auto std = torch::tensor(ds.norm_std, torch::kDouble).to(torch::kFloat).reshape(shape);
  torch::NoGradGuard no_grad;
  for (Split* s : {&ds.train, &ds.val, &ds.test})
    if (s->x.defined()) s->x = (s->x - mean.to(s->x.device())) / std.to(s->x.device());
}

void require_dir(const fs::path& dir, const std::string& what, const std::string& hint) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw DataError(what + " not found in " + dir.string() + ": " + hint);
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Multitask

namespace {

struct Group {
  const char* name;
  std::vector<const char*> classes;
};

const std::vector<Group>& groups_for(const std::string& dataset) {
  static const std::vector<Group> fashion{
      {"top", {"T-shirt/top", "Pullover", "Coat", "Shirt"}},
      {"footwear", {"Sandal", "Sneaker", "Ankle boot"}},
      {"legwear", {"Trouser"}},
      {"dress", {"Dress"}},
      {"bag", {"Bag"}},
      {"long_sleeves", {"Pullover", "Coat"}},
  };
  static const std::vector<Group> pamap2{
      {"static", {"lying", "sitting", "standing"}},
      {"locomotion", {"walking", "running", "Nordic walking", "ascending stairs", "descending stairs"}},
      {"household", {"vacuum cleaning", "ironing"}},
      {"sport", {"running", "cycling", "rope jumping"}},
  };
  static const std::vector<Group> none;
  if (dataset == "fashion-mnist") return fashion;
  if (dataset == "pamap2") return pamap2;
  return none;
}

std::int64_t find_class(const Dataset& ds, std::string_view name) {
  const auto want = detail::normalize_name(name);
  for (std::size_t i = 0; i < ds.labels.size(); ++i)
    if (detail::normalize_name(ds.labels[i]) == want) return static_cast<std::int64_t>(i);
  return -1;
}

std::int64_t class_ref(const Dataset& ds, std::string_view ref, const std::string& spec) {
  std::int64_t k = -1;
  if (detail::parse_int(ref, k)) {
    if (k < 0 || k >= ds.num_outputs())
      throw ConfigError(fmt::format("task '{}': class index {} out of range 0..{}", spec, k, ds.num_outputs() - 1));
    return k;
  }
  k = find_class(ds, ref);
  if (k < 0)
    throw ConfigError(fmt::format("task '{}': {} has no class '{}'; classes: {}", spec, ds.name, ref,
                                  detail::join(ds.labels)));
  return k;
}

}  // namespace

std::vector<TaskSpec> builtin_task_groups(const Dataset& ds) {
  std::vector<TaskSpec> out;
  for (const auto& g : groups_for(ds.name)) {
    TaskSpec t{g.name, {}};
    for (const char* c : g.classes)
      if (auto k = find_class(ds, c); k >= 0) t.classes.push_back(k);
    if (!t.classes.empty()) out.push_back(std::move(t));
  }
  return out;
}

std::vector<TaskSpec> resolve_tasks(const Dataset& ds, const std::vector<std::string>& specs) {
  if (ds.label_kind != LabelKind::single_label)
    throw ConfigError(ds.name + ": tasks can only be derived from single-label data");
  const auto groups = builtin_task_groups(ds);
  std::vector<TaskSpec> out;
  for (const auto& spec : specs) {
    if (spec == "one_vs_rest") {
      for (std::int64_t k = 0; k < ds.num_outputs(); ++k) out.push_back({fmt::format("class_{}", k), {k}});
    } else if (const auto eq_it = std::find(spec.begin(), spec.end(), '='); eq_it != spec.end()) {
      const auto eq = static_cast<std::size_t>(eq_it - spec.begin());
      TaskSpec t{spec.substr(0, eq), {}};
      if (t.name.empty()) throw ConfigError("task '" + spec + "' has no name before '='");
      std::string_view rest = std::string_view(spec).substr(eq + 1);
      while (true) {
        auto plus = rest.find('+');
        auto ref = rest.substr(0, plus);
        if (ref.empty()) throw ConfigError("task '" + spec + "' has an empty class between '+'");
        t.classes.push_back(class_ref(ds, ref, spec));
        if (plus == std::string_view::npos) break;
        rest.remove_prefix(plus + 1);
      }
      out.push_back(std::move(t));
    } else if (spec.rfind("class_", 0) == 0 && spec.size() > 6) {
      out.push_back({spec, {class_ref(ds, std::string_view(spec).substr(6), spec)}});
    } else {
      auto it = std::find_if(groups.begin(), groups.end(), [&](const TaskSpec& g) { return g.name == spec; });
      if (it == groups.end()) {
        std::vector<std::string> valid;
        for (const auto& g : groups) valid.push_back(g.name);
        valid.push_back(fmt::format("class_0..class_{}", ds.num_outputs() - 1));
        valid.push_back("class_<name>");
        valid.push_back("one_vs_rest");
        valid.push_back("NAME=A+B");
        throw ConfigError(fmt::format("unknown task '{}' for {}; valid: {}", spec, ds.name, detail::join(valid)));
      }
      out.push_back(*it);
    }
  }
  std::set<std::string> seen;
  for (const auto& t : out)
    if (!seen.insert(t.name).second) throw ConfigError("task '" + t.name + "' is listed twice");
  if (out.empty()) throw ConfigError(ds.name + ": no tasks given");
  return out;
}

Dataset to_multitask(const Dataset& ds, const std::vector<TaskSpec>& tasks) {
  if (ds.label_kind != LabelKind::single_label)
    throw ConfigError(ds.name + ": tasks can only be derived from single-label data");
  if (tasks.empty()) throw ConfigError(ds.name + ": no tasks given");
  const auto n_classes = ds.num_outputs();
  const auto k = static_cast<std::int64_t>(tasks.size());
  // table[c][t] = 1 when class c is in task t; y_multi = table[y] (one gather).
  auto table = torch::zeros({n_classes, k}, torch::kFloat);
  auto acc = table.accessor<float, 2>();
  for (std::int64_t t = 0; t < k; ++t)
    for (auto c : tasks[static_cast<std::size_t>(t)].classes) {
      if (c < 0 || c >= n_classes)
        throw ConfigError(fmt::format("task '{}': class index {} out of range 0..{}", tasks[static_cast<std::size_t>(t)].name,
                                      c, n_classes - 1));
      acc[c][t] = 1.0f;
    }
  Dataset out = ds;
  out.label_kind = LabelKind::multi_label;
  out.labels.clear();
  std::string desc;
  for (const auto& t : tasks) {
    out.labels.push_back(t.name);
    std::vector<std::string> members;
    for (auto c : t.classes) members.push_back(ds.labels[static_cast<std::size_t>(c)]);
    desc += fmt::format("{}{}={{{}}}", desc.empty() ? "" : ", ", t.name, detail::join(members, "+"));
  }
  for (Split* s : {&out.train, &out.val, &out.test})
    if (s->y.defined()) s->y = table.to(s->y.device()).index_select(0, s->y);
  out.provenance += "; binary tasks derived from the classes: " + desc;
  return out;
}

Dataset to_multitask(const Dataset& ds, const std::vector<std::string>& specs) {
  return to_multitask(ds, resolve_tasks(ds, specs));
}

}  // namespace powertrain::data
