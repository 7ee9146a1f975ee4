#pragma once
namespace powertrain::cli {
/// Runs the powertrain command line; returns the process exit code.
int run_cli(int argc, char** argv);
}  // namespace powertrain::cli
