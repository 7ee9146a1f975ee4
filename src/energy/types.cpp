#include "powertrain/energy/types.h"

#include <string>

#include "powertrain/error.h"

namespace powertrain::energy {

std::string_view to_string(Method m) {
  switch (m) {
    case Method::counter: return "counter";
    case Method::sampled: return "sampled";
    case Method::estimated: return "estimated";
  }
  return "unknown";
}

Method method_from_string(std::string_view s) {
  if (s == "counter") return Method::counter;
  if (s == "sampled") return Method::sampled;
  if (s == "estimated") return Method::estimated;
  throw ConfigError("unknown measurement method '" + std::string(s) +
                    "' (expected counter, sampled or estimated)");
}

std::string_view to_string(Component c) {
  switch (c) {
    case Component::gpu: return "gpu";
    case Component::cpu: return "cpu";
    case Component::dram: return "dram";
    case Component::psys: return "psys";
    case Component::board: return "board";
  }
  return "unknown";
}

std::string join_methods(bool counter, bool sampled, bool estimated) {
  std::string out;
  auto add = [&](bool on, std::string_view name) {
    if (!on) return;
    if (!out.empty()) out += '+';
    out += name;
  };
  add(counter, "counter");
  add(sampled, "sampled");
  add(estimated, "estimated");
  return out.empty() ? "none" : out;
}

}  // namespace powertrain::energy
