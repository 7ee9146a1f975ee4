#pragma once
// Reading a study specification's TOML tables with typed checks and
// line-precise errors; shared by spec.cpp and the study kinds' own tables
// (the *_kind.cpp files, and kinds registered elsewhere: powertrain/study/kind.h).
#include <algorithm>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "powertrain/error.h"
#include "powertrain/run/records.h"
#include "powertrain/search/search.h"
#include "powertrain/study/spec.h"

namespace powertrain::study::detail {


inline std::string type_name(const toml::node& n) {
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

inline std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
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

inline std::string number_text(double v) { return fmt::format("{}", v); }

/// [workload.data] or a task source's `data`: data options as text, checked against the data layer's keys.
inline std::vector<std::pair<std::string, std::string>> read_data_options(const Parser& p, const toml::table& t,
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

inline TaskSource read_task_source(const Parser& p, const toml::node& n, const std::string& prefix) {
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


/// The space of a search from its [search] table: lists, or ranges.
void read_search_space(const Parser& p, Table& t, search::Space& space);

}  // namespace powertrain::study::detail

namespace powertrain::study {
struct KindParse;
namespace detail {
/// The [search] table (search_kind.cpp): a search's space and budget (`own`),
/// or the budget of `powertrain search` over a grid spec's own lists.
void read_search_table(KindParse& kp, bool own);
}  // namespace detail
}  // namespace powertrain::study
