#pragma once
// Runs the powertrain binary (path from $POWERTRAIN_BINARY, set by ctest) and
// captures its output, for end-to-end tests of the command line.
#include <cstdlib>
#include <string>
#include <vector>

namespace powertrain::testing {

struct CliResult {
  int exit_code = -1;
  std::string out;  ///< standard output
  std::string err;  ///< standard error
};

/// Runs `binary` with `args` in `cwd` (empty: current directory), stdin from /dev/null.
CliResult run_program(const std::string& binary, const std::vector<std::string>& args, const std::string& cwd = "");

/// The binary under test: $POWERTRAIN_BINARY if set, else the one the build
/// names for end-to-end suites (POWERTRAIN_TEST_BINARY); empty if neither.
inline std::string powertrain_binary() {
  if (const char* p = std::getenv("POWERTRAIN_BINARY")) return p;
#ifdef POWERTRAIN_TEST_BINARY
  return POWERTRAIN_TEST_BINARY;
#else
  return "";
#endif
}

/// Runs powertrain with `args` in `cwd` (empty: current directory).
inline CliResult run_powertrain(const std::vector<std::string>& args, const std::string& cwd = "") {
  return run_program(powertrain_binary(), args, cwd);
}
/// Starts `binary` with `args` in the background, stdin from /dev/null,
/// stdout and stderr appended to `log`; returns its pid (for tests that signal
/// or kill it; the caller reaps it).
int spawn_program(const std::string& binary, const std::vector<std::string>& args, const std::string& log);

/// spawn_program() of the powertrain binary.
inline int spawn_powertrain(const std::vector<std::string>& args, const std::string& log) {
  return spawn_program(powertrain_binary(), args, log);
}
/// Number of lines in `s` (a trailing newline does not start a line).
int count_lines(const std::string& s);

}  // namespace powertrain::testing
