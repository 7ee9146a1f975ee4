#include "powertrain/store/json.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "powertrain/error.h"

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

}  // namespace

json config_json(const run::RunConfig& c) {
  json j = {
      {"dataset", c.dataset},
      {"data_dir", c.data_dir},
      {"model", c.model},
      {"optimizer", c.optimizer},
      {"learning_rate", c.learning_rate},
      {"momentum", c.momentum},
      {"weight_decay", c.weight_decay},
      {"batch_size", c.batch_size},
      {"max_epochs", c.max_epochs},
      {"patience", c.patience},
      {"min_delta", c.min_delta},
      {"target_metric", nullptr},
      {"seed", c.seed},
      {"threads", c.threads},
      {"device", c.device},
      {"subset", c.subset},
      {"checkpoint", c.checkpoint},
      {"init_encoder", c.init_encoder},
      {"freeze_encoder", c.freeze_encoder},
      {"tasks", c.tasks},
      {"data_options", c.data_options},  // [[name, value], ...] in the config's order
  };
  if (c.target_metric) j["target_metric"] = *c.target_metric;
  if (c.stop_at_target) j["stop_at_target"] = true;  // only when set: other documents keep their form
  // Only when set: documents of runs that are not segments keep their form.
  if (!c.resume_from.empty()) j["resume_from"] = c.resume_from;
  if (!c.save_state.empty()) j["save_state"] = c.save_state;
  if (!c.command.empty()) {  // only then: documents of built-in runs keep their form
    j["command"] = c.command.argv;
    j["workdir"] = c.command.workdir;
    j["env"] = c.command.env;
    if (c.command.distributed()) {  // only then: other documents keep their form
      j["nproc_per_node"] = c.command.nproc_per_node;
      j["nnodes"] = c.command.nnodes;
      j["launcher"] = c.command.launcher;
    }
  }
  return j;
}

run::RunConfig config_from_json(const json& j) {
  require_object(j, "a run configuration");
  run::RunConfig c;
  read(j, "dataset", c.dataset);
  read(j, "data_dir", c.data_dir);
  read(j, "model", c.model);
  read(j, "optimizer", c.optimizer);
  read(j, "learning_rate", c.learning_rate);
  read(j, "momentum", c.momentum);
  read(j, "weight_decay", c.weight_decay);
  read(j, "batch_size", c.batch_size);
  read(j, "max_epochs", c.max_epochs);
  read(j, "patience", c.patience);
  read(j, "min_delta", c.min_delta);
  double target = 0.0;
  if (j.contains("target_metric") && !j["target_metric"].is_null()) {
    read(j, "target_metric", target);
    c.target_metric = target;
  }
  if (j.contains("stop_at_target")) read(j, "stop_at_target", c.stop_at_target);
  read(j, "seed", c.seed);
  read(j, "threads", c.threads);
  read(j, "device", c.device);
  read(j, "subset", c.subset);
  read(j, "checkpoint", c.checkpoint);
  read(j, "init_encoder", c.init_encoder);
  read(j, "freeze_encoder", c.freeze_encoder);
  read(j, "tasks", c.tasks);
  read(j, "resume_from", c.resume_from);
  read(j, "save_state", c.save_state);
  read(j, "data_options", c.data_options);
  if (j.contains("command")) {
    read(j, "command", c.command.argv);
    read(j, "workdir", c.command.workdir);
    read(j, "env", c.command.env);
    if (j.contains("nproc_per_node")) {
      read(j, "nproc_per_node", c.command.nproc_per_node);
      read(j, "nnodes", c.command.nnodes);
      read(j, "launcher", c.command.launcher);
    }
  }
  return c;
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
  json j = config_json(sorted);
  j.erase("data_dir");
  j.erase("checkpoint");
  // Segments of one setup are one trial: where their state lives is not part of it.
  j.erase("resume_from");
  j.erase("save_state");
  return j.dump();  // nlohmann::json objects keep their keys sorted
}

}  // namespace powertrain::store
