#pragma once
// Each subcommand registers itself on the app; its callback stores the exit code.
#include <algorithm>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "powertrain/error.h"

namespace powertrain::cli {

/// The energy sources --disable may name (energy::probe_sources()).
inline const std::vector<std::string>& source_names() {
  static const std::vector<std::string> names{"nvml", "rapl", "perf", "rails", "estimate"};
  return names;
}

/// Throws ConfigError for a --disable value that names no source (a typo would
/// otherwise disable nothing, silently).
inline void check_source_names(const std::vector<std::string>& disabled) {
  const auto& known = source_names();
  for (const auto& d : disabled)
    if (std::find(known.begin(), known.end(), d) == known.end())
      throw ConfigError("--disable: no energy source named '" + d + "' (nvml, rapl, perf, rails or estimate)");
}

struct Context {
  int exit_code = 0;
};

void add_devices_command(CLI::App& app, Context& ctx);
void add_measure_command(CLI::App& app, Context& ctx);
void add_burn_command(CLI::App& app, Context& ctx);
void add_train_command(CLI::App& app, Context& ctx);
void add_study_commands(CLI::App& app, Context& ctx);
void add_report_command(CLI::App& app, Context& ctx);

}  // namespace powertrain::cli
