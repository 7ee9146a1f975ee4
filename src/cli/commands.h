#pragma once
// Each subcommand registers itself on the app; its callback stores the exit code.
#include <CLI/CLI.hpp>

namespace powertrain::cli {

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
