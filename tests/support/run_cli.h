#pragma once
// Runs the powertrain binary (path from $POWERTRAIN_BINARY, set by ctest) and
// captures its output, for end-to-end tests of the command line.
#include <string>
#include <vector>

namespace powertrain::testing {

struct CliResult {
  int exit_code = -1;
  std::string out;  ///< standard output
  std::string err;  ///< standard error
};

/// The binary under test; empty if $POWERTRAIN_BINARY is unset.
std::string powertrain_binary();
/// Runs powertrain with `args` in `cwd` (empty: current directory).
CliResult run_powertrain(const std::vector<std::string>& args, const std::string& cwd = "");
/// Number of lines in `s` (a trailing newline does not start a line).
int count_lines(const std::string& s);

}  // namespace powertrain::testing
