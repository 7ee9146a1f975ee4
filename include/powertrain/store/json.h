#pragma once
// JSON forms of the training records, as the store keeps them in its json
// columns (runs.config, runs.environment, studies.environment, trials.config).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "powertrain/run/records.h"

namespace powertrain::store {

/// Every run setting of `c` (run/settings.h: each row present in `c`, under
/// its name; target_metric null when unset), data_options as an array of
/// [name, value] pairs, and a command's argv ("command") and "env".
nlohmann::json config_json(const run::RunConfig& c);
/// Inverse of config_json. Missing keys keep their defaults, so older and newer
/// documents both read; a key of the wrong type throws StoreError.
run::RunConfig config_from_json(const nlohmann::json& j);

nlohmann::json environment_json(const run::Environment& e);
/// Inverse of environment_json; missing keys keep their defaults. Throws StoreError.
run::Environment environment_from_json(const nlohmann::json& j);

/// A list of metrics (e.g. accuracy per task) as a JSON array; NaN as null.
nlohmann::json metrics_json(const std::vector<double>& values);
/// Inverse of metrics_json (null reads as NaN). Throws StoreError.
std::vector<double> metrics_from_json(const nlohmann::json& j);

/// config_json without the settings that do not define the experiment (a
/// row's trial_key false: where files live, a segment's state).
nlohmann::json experiment_json(const run::RunConfig& c);

/// A canonical trial key: the compact JSON of every field of `c` that defines
/// the experiment, keys sorted, seed included. Leaves out where files live
/// (data_dir, checkpoint), so moving the data keeps the keys of a study;
/// data_options are sorted.
std::string trial_key(const run::RunConfig& c);

}  // namespace powertrain::store
