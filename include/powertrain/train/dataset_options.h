#pragma once
// From a run's configuration to the data layer's options.
#include <string>
#include <vector>

#include "powertrain/data/load.h"
#include "powertrain/run/records.h"

namespace powertrain::train {

/// Keys RunConfig::data_options accepts, in documentation order.
const std::vector<std::string>& data_option_keys();

/// The DatasetOptions of a run: dataset, data_dir, subset, seed and tasks from
/// the config's fields, the rest from config.data_options. Throws ConfigError
/// naming an unknown key or a value that does not parse.
data::DatasetOptions dataset_options(const run::RunConfig& config);

}  // namespace powertrain::train
