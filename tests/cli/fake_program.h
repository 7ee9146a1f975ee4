#pragma once
// The scripted training program of tests/external/programs (no torch) as the
// CLI suites run it, and the TOML they write for its command.
#include <string>
#include <vector>

namespace powertrain::testing {

/// The Python the build found (POWERTRAIN_TEST_PYTHON), else python3.
inline std::string test_python() {
  const std::string p = POWERTRAIN_TEST_PYTHON;
  return p.empty() ? "python3" : p;
}

/// tests/external/programs/fake_trainer.py in the source tree.
inline std::string fake_trainer() {
  return std::string(POWERTRAIN_TEST_SOURCE_DIR) + "/tests/external/programs/fake_trainer.py";
}

/// A TOML array of strings.
inline std::string toml_list(const std::vector<std::string>& v) {
  std::string s = "[";
  for (const auto& x : v) s += (s.size() > 1 ? ", \"" : "\"") + x + "\"";
  return s + "]";
}

}  // namespace powertrain::testing
