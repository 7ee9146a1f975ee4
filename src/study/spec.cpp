// TOML study specifications: parsing with key- and line-precise errors.
#include "powertrain/study/spec.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "powertrain/error.h"
#include "powertrain/external/command.h"
#include "powertrain/run/environment.h"
#include "powertrain/run/records.h"
#include "powertrain/run/settings.h"

namespace powertrain::study {
namespace {

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "nothing";
  }
}

std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

class Parser {
 public:
  explicit Parser(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const toml::node* at, const std::string& what) const {
    const auto line = at ? at->source().begin.line : 0u;
    if (line > 0) throw ConfigError(fmt::format("{}:{}: {}", source_, line, what));
    throw ConfigError(fmt::format("{}: {}", source_, what));
  }

  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

/// Reads one TOML table: values by key, with typed checks, then unknown keys.
class Table {
 public:
  Table(const Parser& p, const toml::table& t, std::string prefix) : p_(p), t_(t), prefix_(std::move(prefix)) {}

  std::string path(std::string_view key) const { return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key); }

  const toml::node* take(std::string_view key) {
    taken_.insert(std::string(key));
    return t_.get(key);
  }
  bool has(std::string_view key) const { return t_.contains(key); }

  [[noreturn]] void wrong_type(const toml::node* n, std::string_view key, std::string_view expected) const {
    p_.fail(n, fmt::format("'{}' must be {}, got {}", path(key), expected, type_name(*n)));
  }

  std::optional<std::string> string(std::string_view key) {
    const auto* n = take(key);
    if (!n) return std::nullopt;
    if (!n->is_string()) wrong_type(n, key, "a string");
    return n->as_string()->get();
  }
  std::optional<std::int64_t> integer(std::string_view key) {
    const auto* n = take(key);
    if (!n) return std::nullopt;
    if (!n->is_integer()) wrong_type(n, key, "an integer");
    return n->as_integer()->get();
  }
  std::optional<double> number(std::string_view key) {
    const auto* n = take(key);
    if (!n) return std::nullopt;
    if (n->is_integer()) return static_cast<double>(n->as_integer()->get());
    if (!n->is_floating_point()) wrong_type(n, key, "a number");
    return n->as_floating_point()->get();
  }
  std::optional<bool> boolean(std::string_view key) {
    const auto* n = take(key);
    if (!n) return std::nullopt;
    if (!n->is_boolean()) wrong_type(n, key, "true or false");
    return n->as_boolean()->get();
  }
  const toml::table* table(std::string_view key) {
    const auto* n = take(key);
    if (!n) return nullptr;
    if (!n->is_table()) wrong_type(n, key, "a table");
    return n->as_table();
  }
  const toml::array* array(std::string_view key) {
    const auto* n = take(key);
    if (!n) return nullptr;
    if (!n->is_array()) wrong_type(n, key, "an array");
    return n->as_array();
  }
  std::optional<std::vector<std::int64_t>> integers(std::string_view key) {
    const auto* a = array(key);
    if (!a) return std::nullopt;
    std::vector<std::int64_t> out;
    for (const auto& e : *a) {
      if (!e.is_integer()) p_.fail(&e, fmt::format("'{}' must be an array of integers, got an element of type {}", path(key), type_name(e)));
      out.push_back(e.as_integer()->get());
    }
    return out;
  }
  std::optional<std::vector<double>> numbers(std::string_view key) {
    const auto* a = array(key);
    if (!a) return std::nullopt;
    std::vector<double> out;
    for (const auto& e : *a) {
      if (e.is_integer()) out.push_back(static_cast<double>(e.as_integer()->get()));
      else if (e.is_floating_point()) out.push_back(e.as_floating_point()->get());
      else p_.fail(&e, fmt::format("'{}' must be an array of numbers, got an element of type {}", path(key), type_name(e)));
    }
    return out;
  }
  /// An array of strings; integers are accepted and kept as their text when
  /// `allow_integers` (class indices).
  std::optional<std::vector<std::string>> strings(std::string_view key, bool allow_integers = false) {
    const auto* n = t_.get(key);
    if (n && n->is_string()) {  // "a,b,c" is accepted too
      taken_.insert(std::string(key));
      std::vector<std::string> out;
      std::stringstream ss(n->as_string()->get());
      for (std::string item; std::getline(ss, item, ',');) {
        const auto b = item.find_first_not_of(' ');
        const auto e = item.find_last_not_of(' ');
        if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
      }
      return out;
    }
    const auto* a = array(key);
    if (!a) return std::nullopt;
    std::vector<std::string> out;
    for (const auto& e : *a) {
      if (e.is_string()) out.push_back(e.as_string()->get());
      else if (allow_integers && e.is_integer()) out.push_back(std::to_string(e.as_integer()->get()));
      else
        p_.fail(&e, fmt::format("'{}' must be an array of strings{}, got an element of type {}", path(key),
                                allow_integers ? " or integers" : "", type_name(e)));
    }
    return out;
  }

  /// Every key of the table not taken is unknown: a ConfigError naming it and its line.
  void finish(const std::vector<std::string>& valid, std::string_view note = {}) const {
    for (const auto& [k, v] : t_) {
      const std::string key(k.str());
      if (taken_.count(key)) continue;
      const bool known_elsewhere = std::find(valid.begin(), valid.end(), key) != valid.end();
      if (known_elsewhere)
        p_.fail(&v, fmt::format("key '{}' is not used here{}", path(key), note.empty() ? "" : fmt::format(" ({})", note)));
      std::vector<std::string> mine;
      for (const auto& t : taken_) mine.push_back(t);
      std::sort(mine.begin(), mine.end());
      p_.fail(&v, fmt::format("unknown key '{}' (valid here: {})", path(key), join(mine)));
    }
  }

  const Parser& parser() const { return p_; }
  const toml::table& raw() const { return t_; }

 private:
  const Parser& p_;
  const toml::table& t_;
  std::string prefix_;
  std::set<std::string> taken_;
};

std::string number_text(double v) { return fmt::format("{}", v); }

/// [workload.data] or a task source's `data`: data options as text, checked against the data layer's keys.
std::vector<std::pair<std::string, std::string>> read_data_options(const Parser& p, const toml::table& t,
                                                                   const std::string& prefix) {
  const auto& keys = run::data_option_keys();
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    const std::string path = prefix + "." + key;
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      p.fail(&v, fmt::format("unknown data option '{}' (valid: {})", path, join(keys)));
    std::string text;
    auto scalar = [&](const toml::node& n) -> std::string {
      if (n.is_string()) return n.as_string()->get();
      if (n.is_integer()) return std::to_string(n.as_integer()->get());
      if (n.is_floating_point()) return number_text(n.as_floating_point()->get());
      if (n.is_boolean()) return n.as_boolean()->get() ? "true" : "false";
      p.fail(&n, fmt::format("'{}' must be a string, number, boolean or an array of them, got {}", path, type_name(n)));
    };
    if (v.is_array()) {
      for (const auto& e : *v.as_array()) text += (text.empty() ? "" : ",") + scalar(e);
    } else {
      text = scalar(v);
    }
    out.emplace_back(key, text);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TaskSource read_task_source(const Parser& p, const toml::node& n, const std::string& prefix) {
  if (!n.is_table()) p.fail(&n, fmt::format("'{}' must be a table, got {}", prefix, type_name(n)));
  Table t(p, *n.as_table(), prefix);
  TaskSource s;
  s.name = t.string("name").value_or("");
  s.classes = t.strings("classes", true).value_or(std::vector<std::string>{});
  if (auto tasks = t.strings("tasks")) s.tasks = join(*tasks, ",");
  if (const auto* d = t.table("data")) s.data = read_data_options(p, *d, prefix + ".data");
  t.finish({});
  if (!s.classes.empty() && !s.tasks.empty())
    p.fail(&n, fmt::format("'{}' sets both classes and tasks; choose one", prefix));
  if (s.name.empty()) {
    if (!s.classes.empty()) s.name = "classes " + join(s.classes, ",");
    else if (!s.tasks.empty()) s.name = "tasks " + s.tasks;
  }
  return s;
}

template <typename T>
void require_unique(const Parser& p, const toml::node* at, const std::string& key, const std::vector<T>& v) {
  auto sorted = v;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    p.fail(at, fmt::format("'{}' lists a value twice", key));
}

}  // namespace

/// The space of a search from its [search] table: lists, or ranges.
void read_search_space(const Parser& p, Table& t, search::Space& space) {
  if (t.has("batch_sizes") && t.has("batch_size_range"))
    p.fail(t.take("batch_size_range"), "give either 'search.batch_sizes' or 'search.batch_size_range', not both");
  if (t.has("learning_rates") && t.has("learning_rate_range"))
    p.fail(t.take("learning_rate_range"), "give either 'search.learning_rates' or 'search.learning_rate_range', not both");
  if (auto v = t.integers("batch_sizes")) {
    const auto* n = t.take("batch_sizes");
    if (v->empty()) p.fail(n, "'search.batch_sizes' must not be empty");
    for (auto b : *v)
      if (b < 1 || b > run::kMaxBatchSize) p.fail(n, fmt::format("'search.batch_sizes' must be between 1 and {}", run::kMaxBatchSize));
    require_unique(p, n, "search.batch_sizes", *v);
    space.batch_sizes = *v;
  }
  if (auto v = t.integers("batch_size_range")) {  // [low, high]: the powers of two between
    const auto* n = t.take("batch_size_range");
    if (v->size() != 2 || (*v)[0] < 1 || (*v)[1] < (*v)[0] || (*v)[1] > run::kMaxBatchSize)
      p.fail(n, fmt::format("'search.batch_size_range' must be [low, high] with 1 <= low <= high <= {}", run::kMaxBatchSize));
    space.batch_sizes.clear();
    for (std::int64_t b = 1; b <= (*v)[1]; b *= 2)
      if (b >= (*v)[0]) space.batch_sizes.push_back(b);
    if (space.batch_sizes.empty()) p.fail(n, "'search.batch_size_range' holds no power of two");
  }
  if (auto v = t.numbers("learning_rates")) {
    const auto* n = t.take("learning_rates");
    if (v->empty()) p.fail(n, "'search.learning_rates' must not be empty");
    for (auto lr : *v)
      if (!(lr > 0.0 && lr <= run::kMaxLearningRate))
        p.fail(n, fmt::format("'search.learning_rates' must be positive and at most {}", run::kMaxLearningRate));
    require_unique(p, n, "search.learning_rates", *v);
    space.learning_rates = *v;
  }
  if (auto v = t.numbers("learning_rate_range")) {  // [low, high], log-uniform
    const auto* n = t.take("learning_rate_range");
    if (v->size() != 2 || !((*v)[0] > 0.0) || !((*v)[1] > (*v)[0]) || (*v)[1] > run::kMaxLearningRate)
      p.fail(n, fmt::format("'search.learning_rate_range' must be [low, high] with 0 < low < high <= {}", run::kMaxLearningRate));
    space.learning_rates.clear();
    space.lr_min = (*v)[0];
    space.lr_max = (*v)[1];
  }
  if (auto v = t.integers("threads")) {
    const auto* n = t.take("threads");
    if (v->empty()) p.fail(n, "'search.threads' must not be empty");
    for (auto x : *v)
      if (x < 1 || x > run::max_threads())
        p.fail(n, fmt::format("'search.threads' must be between 1 and {} ({} per available CPU)", run::max_threads(), run::kThreadsPerCpu));
    require_unique(p, n, "search.threads", *v);
    space.threads.assign(v->begin(), v->end());
  }
}

namespace {

// Reads the key of run setting `s` (run/settings.h) from its table `t` into
// `c`: a value of the wrong type or out of the setting's range fails at its line.
void read_setting(const Parser& p, Table& t, const run::Setting& s, run::RunConfig& c) {
  const auto key = s.toml_key.substr(s.toml_key.find('.') + 1);
  run::SettingValue v;
  switch (s.type) {
    case run::SettingType::integer:
      if (auto x = t.integer(key)) v = *x;
      else return;
      break;
    case run::SettingType::number:
    case run::SettingType::optional_number:
      if (auto x = t.number(key)) v = *x;
      else return;
      break;
    case run::SettingType::boolean:
      if (auto x = t.boolean(key)) v = *x;
      else return;
      break;
    case run::SettingType::text:
      if (auto x = t.string(key)) v = *x;
      else return;
      break;
    case run::SettingType::text_list:
      if (auto x = t.strings(key)) v = join(*x, ",");
      else return;
      break;
  }
  if (auto why = run::range_error(s, v)) p.fail(t.take(key), fmt::format("'{}' {}", s.toml_key, *why));
  run::set(s, c, v);
}

/// Every run setting of [section] but the swept ones when `skip_swept`; returns the keys skipped.
std::vector<std::string> read_settings(const Parser& p, Table& t, std::string_view section, run::RunConfig& c,
                                       bool skip_swept = false) {
  std::vector<std::string> skipped;
  for (const auto& s : run::settings()) {
    if (s.toml_key.empty() || s.toml_key.substr(0, s.toml_key.find('.')) != section) continue;
    if (skip_swept && s.swept) skipped.emplace_back(s.toml_key.substr(section.size() + 1));
    else read_setting(p, t, s, c);
  }
  return skipped;
}

}  // namespace

/// [workload] and [training]: the run settings of every trial (the rows of
/// run/settings.h), the data options and the user's own program.
void read_run_settings(const Parser& p, Table& top, StudySpec& spec) {
  auto& c = spec.base;
  if (const auto* w = top.table("workload")) {
    Table t(p, *w, "workload");
    read_settings(p, t, "workload", c);
    if (!c.command.distributed() && (w->contains("nnodes") || w->contains("launcher")))
      p.fail(w, "'workload.nnodes' and 'workload.launcher' go with 'workload.nproc_per_node'");
    if (const auto* d = t.table("data")) c.data_options = read_data_options(p, *d, "workload.data");
    // The user's own program instead of the built-in trainer (docs/external.md).
    if (auto argv = t.strings("command")) {
      const auto* n = t.take("command");
      if (argv->empty() || argv->front().empty()) p.fail(n, "'workload.command' needs at least the program to run");
      std::vector<std::string> builtin{"data"};
      for (const auto& s : run::settings())
        if (s.builtin_only && s.toml_key.rfind("workload.", 0) == 0) builtin.emplace_back(s.toml_key.substr(9));
      for (const auto& key : builtin)
        if (w->contains(key))
          p.fail(w->get(key), fmt::format("'workload.{}' is for the built-in trainer; a command loads its own data "
                                          "(pass settings as arguments)", key));
      c.dataset.clear();
      c.model.clear();
      c.command.argv = *argv;
      try {
        external::validate(c.command);
      } catch (const ConfigError& e) {
        p.fail(n, e.what());
      }
    }
    if (const auto* env = t.table("env")) {
      for (const auto& [k, v] : *env) {
        if (!v.is_string()) p.fail(&v, fmt::format("'workload.env.{}' must be a string, got {}", k.str(), type_name(v)));
        c.command.env.emplace_back(std::string(k.str()), v.as_string()->get());
      }
      std::sort(c.command.env.begin(), c.command.env.end());
      try {
        external::validate(c.command);
      } catch (const ConfigError& e) {
        p.fail(env, e.what());
      }
    }
    // torchrun over several nodes needs its ranks on the other nodes started
    // too, one powertrain per node (docs/cluster.md): not what a study's trial does.
    if (c.command.nnodes > 1 && c.command.launcher != "srun")
      p.fail(w, "'workload.nnodes' above 1 in a study needs launcher = \"srun\" (Slurm starts the ranks on every "
                "node); torchrun over several nodes is run by hand, a powertrain per node (docs/cluster.md)");
    if (c.command.empty() && c.command.distributed())
      p.fail(w, "'workload.nproc_per_node' goes with 'workload.command' (the built-in trainer is one process)");
    if (c.command.empty() && (!c.command.workdir.empty() || !c.command.env.empty()))
      p.fail(w, "'workload.workdir' and 'workload.env' go with 'workload.command'");
    t.finish({});
  }
  if (c.dataset.empty() && c.command.empty()) p.fail(nullptr, "'workload.dataset' must not be empty");

  if (const auto* tr = top.table("training")) {
    Table t(p, *tr, "training");
    // A grid sweeps the swept settings and a search chooses them: their keys are not used there.
    const bool grid = spec.kind == store::StudyKind::grid || spec.kind == store::StudyKind::search;
    const auto swept = read_settings(p, t, "training", c, grid);
    t.finish(swept, spec.kind == store::StudyKind::search
                        ? "a search chooses them: set search.learning_rates and search.batch_sizes"
                        : "a grid study sweeps them: set grid.learning_rates and grid.batch_sizes");
  }
}

StudySpec parse_spec(std::string_view text, std::string_view source, std::optional<store::StudyKind> expected) {
  Parser p{std::string(source)};
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& s = e.source();
    throw ConfigError(fmt::format("{}:{}:{}: {}", source, s.begin.line, s.begin.column, e.description()));
  }

  StudySpec spec;
  bool searched_grid = false;
  spec.source = std::string(source);
  spec.text = std::string(text);
  Table top(p, root, "");

  if (auto name = top.string("name")) {
    if (name->empty()) p.fail(top.take("name"), "'name' must not be empty");
    spec.name = *name;
  } else {
    spec.name = std::filesystem::path(std::string(source)).stem().string();
  }
  if (auto kind = top.string("kind")) {
    const auto* n = top.take("kind");
    if (*kind != "grid" && *kind != "pretrain" && *kind != "multitask" && *kind != "search")
      p.fail(n, fmt::format("'kind' must be grid, pretrain, multitask or search, got '{}'", *kind));
    spec.kind = store::study_kind_from_string(*kind);
    // A grid spec searched (powertrain search): its lists are the space.
    searched_grid = spec.kind == store::StudyKind::grid && expected == store::StudyKind::search;
    if (expected && *expected != spec.kind && !searched_grid)
      p.fail(n, fmt::format("this is a {} study; this command runs {} studies", *kind, store::to_string(*expected)));
  } else if (expected) {
    spec.kind = *expected;
  } else {
    p.fail(nullptr, "'kind' is missing (grid, pretrain, multitask or search)");
  }
  spec.description = top.string("description").value_or("");

  // Seeds: a list, or a number of repeats (seeds 0 .. repeats-1).
  if (top.has("seeds") && top.has("repeats"))
    p.fail(top.take("repeats"), "give either 'seeds' or 'repeats', not both");
  if (auto seeds = top.integers("seeds")) {
    const auto* n = top.take("seeds");
    if (seeds->empty()) p.fail(n, "'seeds' must not be empty");
    spec.seeds.clear();
    for (auto s : *seeds) {
      if (s < 0) p.fail(n, "'seeds' must not be negative");
      spec.seeds.push_back(static_cast<std::uint64_t>(s));
    }
    require_unique(p, n, "seeds", spec.seeds);
  }
  if (auto repeats = top.integer("repeats")) {
    if (*repeats < 1 || *repeats > 1000) p.fail(top.take("repeats"), "'repeats' must be between 1 and 1000");
    spec.seeds.clear();
    for (std::int64_t s = 0; s < *repeats; ++s) spec.seeds.push_back(static_cast<std::uint64_t>(s));
  }
  if (auto ds = top.integer("data_seed")) {
    if (*ds < 0) p.fail(top.take("data_seed"), "'data_seed' must not be negative");
    spec.data_seed = static_cast<std::uint64_t>(*ds);
  }

  auto& c = spec.base;
  c.seed = 0;
  read_run_settings(p, top, spec);

  // The kind's own table; the other kinds' tables are refused.
  std::vector<std::string> kind_tables{"grid", "pretrain", "multitask", "search"};
  if (spec.kind == store::StudyKind::grid) {
    if (const auto* g = top.table("grid")) {
      Table t(p, *g, "grid");
      if (auto v = t.integers("batch_sizes")) {
        const auto* n = t.take("batch_sizes");
        if (v->empty()) p.fail(n, "'grid.batch_sizes' must not be empty");
        for (auto b : *v)
          if (b < 1 || b > run::kMaxBatchSize)
            p.fail(n, fmt::format("'grid.batch_sizes' must be between 1 and {}", run::kMaxBatchSize));
        require_unique(p, n, "grid.batch_sizes", *v);
        spec.batch_sizes = *v;
      }
      if (auto v = t.numbers("learning_rates")) {
        const auto* n = t.take("learning_rates");
        if (v->empty()) p.fail(n, "'grid.learning_rates' must not be empty");
        for (auto lr : *v)
          if (!(lr > 0.0 && lr <= run::kMaxLearningRate))
            p.fail(n, fmt::format("'grid.learning_rates' must be positive and at most {}", run::kMaxLearningRate));
        require_unique(p, n, "grid.learning_rates", *v);
        spec.learning_rates = *v;
      }
      if (auto v = t.number("metric_tolerance")) {
        if (!(*v >= 0.0) || *v > 1e9)
          p.fail(t.take("metric_tolerance"), "'grid.metric_tolerance' must be 0 or more");
        spec.metric_tolerance = *v;
      }
      t.finish({});
    }
  } else if (spec.kind == store::StudyKind::pretrain) {
    const auto* pt = top.table("pretrain");
    if (!pt) p.fail(nullptr, "a pretrain study needs a [pretrain] table with 'source' and 'steps'");
    Table t(p, *pt, "pretrain");
    if (const auto* s = t.take("source")) spec.pretrain_source = read_task_source(p, *s, "pretrain.source");
    if (spec.pretrain_source.name.empty()) spec.pretrain_source.name = "source";
    const auto* steps = t.array("steps");
    if (!steps || steps->empty()) p.fail(steps ? static_cast<const toml::node*>(steps) : pt, "'pretrain.steps' needs at least one downstream task");
    int i = 0;
    for (const auto& s : *steps) {
      ++i;
      auto src = read_task_source(p, s, fmt::format("pretrain.steps[{}]", i - 1));
      if (src.name.empty()) src.name = fmt::format("step {}", i);
      spec.downstream.push_back(std::move(src));
    }
    if (auto v = t.strings("variants")) {
      const auto* n = t.take("variants");
      if (v->empty()) p.fail(n, "'pretrain.variants' must not be empty");
      for (const auto& x : *v)
        if (x != "scratch" && x != "finetune" && x != "frozen")
          p.fail(n, fmt::format("'pretrain.variants': unknown variant '{}' (scratch, finetune, frozen)", x));
      require_unique(p, n, "pretrain.variants", *v);
      spec.variants.clear();
      for (const char* x : {"scratch", "finetune", "frozen"})  // canonical order
        if (std::find(v->begin(), v->end(), x) != v->end()) spec.variants.push_back(x);
    }
    t.finish({});
  } else if (spec.kind == store::StudyKind::multitask) {
    const auto* mt = top.table("multitask");
    if (!mt) p.fail(nullptr, "a multitask study needs a [multitask] table with 'tasks'");
    Table t(p, *mt, "multitask");
    auto tasks = t.strings("tasks");
    const auto* n = t.take("tasks");
    if (!tasks || tasks->size() < 2) p.fail(n ? n : mt, "'multitask.tasks' needs at least two tasks");
    require_unique(p, n, "multitask.tasks", *tasks);
    for (const auto& task : *tasks)
      if (task.empty() || task.find(',') != std::string::npos) p.fail(n, fmt::format("'multitask.tasks': bad task '{}'", task));
    spec.tasks = *tasks;
    t.finish({});
    if (!c.tasks.empty()) p.fail(nullptr, "a multitask study sets its tasks in multitask.tasks, not workload.tasks");
  }

  // A command gets its trial's labels as {tasks}; class filters and data
  // overrides are applied by the built-in trainer's data layer only.
  if (!c.command.empty()) {
    std::vector<const TaskSource*> sources{&spec.pretrain_source};
    for (const auto& d : spec.downstream) sources.push_back(&d);
    for (const auto* src : sources)
      if (!src->classes.empty() || !src->data.empty())
        p.fail(nullptr, fmt::format("task '{}': a command gets its task as {{tasks}}; use tasks = [...] (classes "
                                    "and data overrides are for the built-in trainer)", src->name));
  }

  // [execution]
  if (const auto* ex = top.table("execution")) {
    Table t(p, *ex, "execution");
    auto& e = spec.execution;
    if (auto v = t.number("cooldown_s")) {
      if (!(*v >= 0.0) || *v > 86400) p.fail(t.take("cooldown_s"), "'execution.cooldown_s' must be between 0 and 86400");
      e.cooldown_s = *v;
    }
    if (auto v = t.number("warmup_s")) {
      if (!(*v >= 0.0) || *v > 86400) p.fail(t.take("warmup_s"), "'execution.warmup_s' must be between 0 and 86400");
      e.warmup_s = *v;
    }
    if (auto v = t.string("warmup_load")) {
      if (*v != "auto" && *v != "cpu" && *v != "device")
        p.fail(t.take("warmup_load"), fmt::format("'execution.warmup_load' must be auto, cpu or device, got '{}'", *v));
      e.warmup_load = *v;
    }
    if (auto v = t.integer("interval_ms")) {
      if (*v < 10 || *v > 60000) p.fail(t.take("interval_ms"), "'execution.interval_ms' must be between 10 and 60000");
      e.interval_ms = static_cast<int>(*v);
    }
    e.artifacts_dir = t.string("artifacts_dir").value_or("");
    if (auto v = t.integer("max_trials")) {
      if (*v < 1 || *v > 10000000) p.fail(t.take("max_trials"), "'execution.max_trials' must be between 1 and 10000000");
      e.max_trials = *v;
    }
    for (auto [key, field] : {std::pair{"timeout_s", &e.timeout_s}, std::pair{"idle_timeout_s", &e.idle_timeout_s},
                              std::pair{"grace_s", &e.grace_s}}) {
      if (auto v = t.number(key)) {
        if (!(*v >= 0.0) || *v > 30 * 86400.0)
          p.fail(t.take(key), fmt::format("'execution.{}' must be between 0 and 2592000", key));
        *field = *v;
      }
    }
    if (auto v = t.number("quiet_wait_s")) {
      if (!(*v >= 0.0) || *v > 7 * 86400.0)
        p.fail(t.take("quiet_wait_s"), "'execution.quiet_wait_s' must be between 0 and 604800");
      e.quiet_wait_s = *v;
    }
    if (auto v = t.number("quiet_cpus")) {
      if (!(*v >= 0.0) || *v > 1e6) p.fail(t.take("quiet_cpus"), "'execution.quiet_cpus' must be between 0 and 1000000");
      e.quiet_cpus = *v;
    }
    if (const auto* sl = t.table("slurm")) {
      Table st(p, *sl, "execution.slurm");
      auto& q = e.slurm;
      auto count = [&](const char* key, int& field, int lo, int hi) {
        if (auto v = st.integer(key)) {
          if (*v < lo || *v > hi)
            p.fail(st.take(key), fmt::format("'execution.slurm.{}' must be between {} and {}", key, lo, hi));
          field = static_cast<int>(*v);
        }
      };
      count("gpus_per_trial", q.gpus_per_trial, 0, 64);
      count("cpus_per_trial", q.cpus_per_trial, 0, 4096);
      count("trials_per_task", q.trials_per_task, 1, 10000);
      // Values go to sbatch as one argument each: no spaces or control characters.
      auto word = [&](const char* key, std::string& field) {
        if (auto v = st.string(key)) {
          if (v->empty() || std::any_of(v->begin(), v->end(), [](char c) { return c <= ' ' || c == 127; }))
            p.fail(st.take(key), fmt::format("'execution.slurm.{}' must be one word, e.g. \"16G\" or \"02:00:00\"", key));
          field = *v;
        }
      };
      word("memory", q.memory);
      word("time_limit", q.time_limit);
      if (auto v = st.boolean("exclusive")) q.exclusive = *v;
      if (auto v = st.strings("options")) {
        for (const auto& o : *v)
          if (o.rfind("-", 0) != 0 || std::any_of(o.begin(), o.end(), [](char c) { return c < ' ' || c == 127; }))
            p.fail(st.take("options"), fmt::format("'execution.slurm.options': '{}' is not an sbatch option (they start with -)", o));
        q.options = *v;
      }
      q.dir = st.string("dir").value_or("");
      st.finish({});
    }
    t.finish({});
  }

  if (const auto n = planned_trial_count(spec); n > spec.execution.max_trials)
    p.fail(nullptr, fmt::format("the spec plans {} trials, more than execution.max_trials = {}; check its lists, "
                                "or raise execution.max_trials if you mean it",
                                n, spec.execution.max_trials));

  // [search]: a search's space and budget; a grid spec may carry the budget
  // of `powertrain search` over its own lists.
  if (spec.kind == store::StudyKind::grid || spec.kind == store::StudyKind::search) {
    const bool own = spec.kind == store::StudyKind::search;
    if (!own) {
      spec.search_space.batch_sizes = spec.batch_sizes;
      spec.search_space.learning_rates = spec.learning_rates;
    }
    auto& s = spec.search;
    if (const auto* st = top.table("search")) {
      Table t(p, *st, "search");
      if (!own)
        for (const char* k : {"batch_sizes", "batch_size_range", "learning_rates", "learning_rate_range", "threads"})
          if (t.has(k))
            p.fail(t.take(k), fmt::format("'search.{}': a grid spec's search space is its [grid] lists; "
                                          "give kind = \"search\" to search another space", k));
      read_search_space(p, t, spec.search_space);
      if (auto v = t.string("strategy")) {
        if (*v != "halving" && *v != "random")
          p.fail(t.take("strategy"), fmt::format("'search.strategy' must be halving or random, got '{}'", *v));
        s.strategy = *v;
      }
      if (auto v = t.integer("setups")) {
        if (*v < 1 || *v > 100000) p.fail(t.take("setups"), "'search.setups' must be between 1 and 100000");
        s.setups = static_cast<int>(*v);
      }
      if (auto v = t.number("budget_j")) {
        if (!(*v > 0.0) || !std::isfinite(*v)) p.fail(t.take("budget_j"), "'search.budget_j' must be a positive number of joules");
        s.budget_j = *v;
      }
      if (auto v = t.integer("min_epochs")) {
        if (*v < 1 || *v > c.max_epochs)
          p.fail(t.take("min_epochs"), fmt::format("'search.min_epochs' must be between 1 and training.max_epochs ({})", c.max_epochs));
        s.min_epochs = static_cast<int>(*v);
      }
      if (auto v = t.number("eta")) {
        if (!(*v > 1.0) || *v > 1000) p.fail(t.take("eta"), "'search.eta' must be more than 1 (each rung keeps 1/eta of the setups)");
        s.eta = *v;
      }
      if (auto v = t.number("beta")) {
        if (!(*v >= 1.0) || !std::isfinite(*v)) p.fail(t.take("beta"), "'search.beta' must be at least 1");
        s.beta = *v;
      }
      if (auto v = t.integer("seed")) {
        if (*v < 0) p.fail(t.take("seed"), "'search.seed' must not be negative");
        s.seed = static_cast<std::uint64_t>(*v);
      }
      if (auto v = t.number("metric_tolerance")) {
        if (!(*v >= 0.0) || *v > 1e9) p.fail(t.take("metric_tolerance"), "'search.metric_tolerance' must be 0 or more");
        spec.metric_tolerance = *v;
      }
      t.finish({});
    } else if (own) {
      p.fail(nullptr, "a search needs a [search] table with its space (batch_sizes, learning_rates or learning_rate_range)");
    }
    if (own && spec.search_space.batch_sizes.empty())
      p.fail(nullptr, "'search.batch_sizes' (or batch_size_range) is missing");
    if (own && !spec.search_space.finite() && !(spec.search_space.lr_max > 0.0))
      p.fail(nullptr, "'search.learning_rates' (or learning_rate_range) is missing");
    if (own && spec.seeds.size() > 1)
      p.fail(top.take("seeds"), "a search trains each setup once: give one seed");
    // Segments stop at the target (study::segment_trial): the rule the search predicts with does too.
    s.rule = {c.max_epochs, c.patience, c.min_delta, c.target_metric, c.target_metric.has_value()};
    s.metric_tolerance = spec.metric_tolerance;
    if (spec.search_space.finite()) s.setups = static_cast<int>(std::min<std::int64_t>(s.setups, spec.search_space.size()));
  }

  std::vector<std::string> other_tables;
  for (const auto& k : kind_tables)
    if (k != store::to_string(spec.kind) && !(k == "search" && spec.kind == store::StudyKind::grid))
      other_tables.push_back(k);
  top.finish(other_tables, fmt::format("a {} study", store::to_string(spec.kind)));
  if (searched_grid) {
    spec.kind = store::StudyKind::search;
    spec.name += "-search";  // beside the grid study in one database
    if (spec.seeds.size() > 1) p.fail(nullptr, "a search trains each setup once: the grid's seeds list must hold one seed");
  }
  return spec;
}

StudySpec load_spec(const std::filesystem::path& path, std::optional<store::StudyKind> expected) {
  // A directory opens as an empty stream: it would read as an empty spec, the default study.
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st)) throw IoError(fmt::format("{}: no such study specification", path.string()));
  if (std::filesystem::is_directory(st))
    throw IoError(fmt::format("{}: is a directory, not a study specification (a TOML file)", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: cannot read the study specification", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError(fmt::format("{}: cannot read the study specification", path.string()));
  return parse_spec(ss.str(), path.string(), expected);
}

std::int64_t planned_trial_count(const StudySpec& s) {
  const auto seeds = static_cast<std::int64_t>(s.seeds.size());
  switch (s.kind) {
    case store::StudyKind::grid:
      return seeds * static_cast<std::int64_t>(s.batch_sizes.size()) * static_cast<std::int64_t>(s.learning_rates.size());
    case store::StudyKind::pretrain:
      return seeds * (1 + static_cast<std::int64_t>(s.downstream.size()) * static_cast<std::int64_t>(s.variants.size()));
    case store::StudyKind::multitask: return seeds * (static_cast<std::int64_t>(s.tasks.size()) + 1);
    case store::StudyKind::search:  // at most one segment per setup and rung
      return static_cast<std::int64_t>(s.search.setups) * static_cast<std::int64_t>(search::rungs(s.search).size());
    default: return 0;
  }
}

const std::vector<SpecKey>& spec_keys() {
  static const std::vector<SpecKey> keys = [] {
    std::vector<SpecKey> out = {
        {"name", "string", "the file's stem", "Study name, unique in the database; a study runs again under its name"},
        {"kind", "string", "the command's kind", "grid, pretrain, multitask or search"},
        {"description", "string", "\"\"", "Free text"},
        {"seeds", "array of integers", "[0]", "Training seeds: every configuration is trained once per seed"},
        {"repeats", "integer", "1", "Instead of seeds: seeds 0 .. repeats-1"},
        {"data_seed", "integer", "0", "Seed of the data layer (subsets, validation split, synthetic data), one for every trial"},
        {"workload.data.KEY", "string/number/boolean/array", "the data layer's", "Data options (run::data_option_keys), e.g. max_samples = 3000"},
        {"workload.command", "array of strings", "none", "Your own training program instead of the built-in trainer, with {placeholders} (docs/external.md)"},
        {"workload.env", "table of strings", "{}", "Environment variables added for the command ({placeholders} allowed)"},
        {"grid.batch_sizes", "array of integers", "[16, 64, 256, 512]", "Batch sizes swept"},
        {"grid.learning_rates", "array of floats", "[0.0001, 0.001, 0.01, 0.1]", "Learning rates swept"},
        {"pretrain.source", "table", "every class", "Pretraining task: {classes = [...]} or {tasks = [...]}, optional data = {...}, name"},
        {"pretrain.steps", "array of tables", "required", "Downstream tasks, one per recycling step, as pretrain.source"},
        {"pretrain.variants", "array of strings", "[\"scratch\", \"finetune\", \"frozen\"]", "How each step is trained"},
        {"multitask.tasks", "array of strings", "required (2 or more)", "Tasks: CelebA attributes, or derived tasks of single-label data (data/multitask.h)"},
        {"execution.cooldown_s", "float", "0", "Idle seconds before each trial after the first"},
        {"execution.warmup_s", "float", "0", "Seconds of load before each trial"},
        {"execution.warmup_load", "string", "\"auto\"", "auto (the trial's device), cpu or device"},
        {"execution.interval_ms", "integer", "100", "Energy sampling interval"},
        {"execution.artifacts_dir", "string", "\"<db>.artifacts/<name>\"", "Where pretrained encoders are written"},
        {"execution.max_trials", "integer", "10000", "Largest plan accepted; a spec planning more is refused before anything is written"},
        {"execution.timeout_s", "float", "0 (none)", "A command's longest run; past it the trial fails"},
        {"execution.idle_timeout_s", "float", "0 (none)", "A command's longest silence between events; past it the trial fails"},
        {"execution.quiet_wait_s", "float", "0 (none)", "Before every trial, wait up to this long for other processes to leave the CPUs"},
        {"grid.metric_tolerance", "float", "0.01", "Without training.target_metric: setups within this of the top metric qualify; the cheapest is chosen"},
        {"search.batch_sizes", "array of integers", "(search) required, or batch_size_range", "Batch sizes a search chooses from (a grid spec: grid.batch_sizes)"},
        {"search.batch_size_range", "array of 2 integers", "-", "[low, high]: the powers of two between"},
        {"search.learning_rates", "array of floats", "(search) required, or learning_rate_range", "Learning rates a search chooses from (a grid spec: grid.learning_rates)"},
        {"search.learning_rate_range", "array of 2 floats", "-", "[low, high]: learning rates drawn log-uniform, three significant digits"},
        {"search.threads", "array of integers", "training.threads", "CPU threads a search chooses from"},
        {"search.strategy", "string", "halving", "halving (successive halving over rungs of epochs) or random (whole runs in random order)"},
        {"search.setups", "integer", "16 (at most the space's size)", "Setups sampled: the budget in trials"},
        {"search.budget_j", "float", "none", "Energy budget in joules: no segment starts once the search spent it"},
        {"search.min_epochs", "integer", "1", "Epochs of the first rung"},
        {"search.eta", "float", "4", "Each rung keeps the best 1/eta of its setups; rungs grow eta-fold in epochs"},
        {"search.beta", "float", "2", "Stop a setup predicted to need more than beta x the best energy to the target (Zeus)"},
        {"search.seed", "integer", "0", "Which setups are sampled, in what order"},
        {"search.metric_tolerance", "float", "grid.metric_tolerance", "Without a target: setups within this of the best metric qualify"},
        {"execution.slurm.gpus_per_trial", "integer", "0", "GPUs per array task (--gres=gpu:N)"},
        {"execution.slurm.cpus_per_trial", "integer", "0 (Slurm's default)", "CPUs per array task (--cpus-per-task)"},
        {"execution.slurm.memory", "string", "Slurm's default", "Memory per array task (--mem)"},
        {"execution.slurm.time_limit", "string", "the partition's", "Time limit per array task (--time)"},
        {"execution.slurm.exclusive", "boolean", "false", "Whole nodes per task (--exclusive), so node-wide energy is the trial's alone"},
        {"execution.slurm.trials_per_task", "integer", "1", "Trials one array task runs in turn"},
        {"execution.slurm.options", "array of strings", "[]", "Further sbatch options, e.g. [\"--partition=gpu\"]"},
        {"execution.slurm.dir", "string", "<db>.slurm/<name>", "Shared folder for job files, result files and logs"},
        {"execution.quiet_cpus", "float", "0.5", "Other processes' CPU use (in CPUs) at or below which the machine counts as quiet"},
        {"execution.grace_s", "float", "60", "Seconds a command has after the stop reply to send its test metric and exit"},
    };
    // The run settings' keys (run/settings.h), after the workload's own.
    auto at = std::find_if(out.begin(), out.end(), [](const SpecKey& k) { return k.key == "workload.env"; }) + 1;
    for (const auto& s : run::settings()) {
      if (s.toml_key.empty()) continue;
      std::string meaning(s.help);
      if (s.swept) meaning += " (pretrain and multitask studies: a grid sweeps it, a search chooses it)";
      if (const auto range = run::range_text(s); !range.empty()) meaning += "; " + range;
      at = out.insert(at, {std::string(s.toml_key), std::string(run::type_name(s.type)), run::default_text(s), meaning}) + 1;
    }
    return out;
  }();
  return keys;
}

}  // namespace powertrain::study
