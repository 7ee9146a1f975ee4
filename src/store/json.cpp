#include "powertrain/store/json.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/run/settings.h"

namespace powertrain::store {
namespace {

using nlohmann::json;

// Reads j[key] into `out` when present and not null; a wrong type is a StoreError.
template <typename T>
void read(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const json::exception& e) {
    throw StoreError(fmt::format("stored JSON: field '{}': {}", key, e.what()));
  }
}

void require_object(const json& j, std::string_view what) {
  if (!j.is_object()) throw StoreError(fmt::format("stored JSON: {} is not an object", what));
}

// A setting's value as JSON, of its field's own type (an unset optional: null).
json setting_json(const run::Setting& s, const run::RunConfig& c) {
  return std::visit(
      [](auto* field) -> json {
        using F = std::remove_pointer_t<decltype(field)>;
        if constexpr (std::is_same_v<F, std::optional<double>>) return *field ? json(**field) : json(nullptr);
        else return json(*field);
      },
      s.field(const_cast<run::RunConfig&>(c)));  // read only
}

}  // namespace

json config_json(const run::RunConfig& c) {
  json j = json::object();
  for (const auto& s : run::settings())
    if (run::present(s, c)) j[std::string(s.name)] = setting_json(s, c);
  j["data_options"] = c.data_options;  // [[name, value], ...] in the config's order
  if (!c.command.empty()) {  // only then: documents of built-in runs keep their form
    j["command"] = c.command.argv;
    j["env"] = c.command.env;
  }
  return j;
}

run::RunConfig config_from_json(const json& j) {
  require_object(j, "a run configuration");
  run::RunConfig c;
  for (const auto& s : run::settings()) {
    const char* key = s.name.data();  // the table's names are literals
    std::visit(
        [&](auto* field) {
          using F = std::remove_pointer_t<decltype(field)>;
          if constexpr (std::is_same_v<F, std::optional<double>>) {
            double v = 0.0;
            if (j.contains(key) && !j[key].is_null()) {
              read(j, key, v);
              *field = v;
            }
          } else {
            read(j, key, *field);
          }
        },
        s.field(c));
  }
  read(j, "data_options", c.data_options);
  if (j.contains("command")) {
    read(j, "command", c.command.argv);
    read(j, "env", c.command.env);
  }
  return c;
}

json experiment_json(const run::RunConfig& c) {
  json j = config_json(c);
  for (const auto& s : run::settings())
    if (!s.trial_key) j.erase(std::string(s.name));
  return j;
}

json environment_json(const run::Environment& e) {
  return {
      {"host", e.host},
      {"os", e.os},
      {"cpu_model", e.cpu_model},
      {"cpu_count", e.cpu_count},
      {"gpu", e.gpu},
      {"torch_version", e.torch_version},
      {"commit", e.commit},
      {"threads", e.threads},
      {"sampling", e.sampling},
      {"placement", e.placement},
      {"attribution", e.attribution},
  };
}

run::Environment environment_from_json(const json& j) {
  require_object(j, "an environment");
  run::Environment e;
  read(j, "host", e.host);
  read(j, "os", e.os);
  read(j, "cpu_model", e.cpu_model);
  read(j, "cpu_count", e.cpu_count);
  read(j, "gpu", e.gpu);
  read(j, "torch_version", e.torch_version);
  read(j, "commit", e.commit);
  read(j, "threads", e.threads);
  read(j, "sampling", e.sampling);
  read(j, "placement", e.placement);
  read(j, "attribution", e.attribution);
  return e;
}

json metrics_json(const std::vector<double>& values) {
  json j = json::array();
  for (double v : values) j.push_back(std::isnan(v) ? json(nullptr) : json(v));
  return j;
}

std::vector<double> metrics_from_json(const json& j) {
  if (!j.is_array()) throw StoreError("stored JSON: a list of metrics is not an array");
  std::vector<double> out;
  out.reserve(j.size());
  for (const auto& v : j) {
    if (v.is_null()) {
      out.push_back(std::nan(""));
    } else if (v.is_number()) {
      out.push_back(v.get<double>());
    } else {
      throw StoreError("stored JSON: a metric is not a number");
    }
  }
  return out;
}

std::string trial_key(const run::RunConfig& c) {
  auto sorted = c;
  std::sort(sorted.data_options.begin(), sorted.data_options.end());
  return experiment_json(sorted).dump();  // nlohmann::json objects keep their keys sorted
}

}  // namespace powertrain::store
