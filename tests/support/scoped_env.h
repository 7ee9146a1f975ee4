#pragma once
// Test helper: an environment variable set or unset for a scope, then restored.
#include <cstdlib>
#include <optional>
#include <string>

namespace powertrain::testing {

class ScopedEnv {
 public:
  /// Remembers the variable; leaves it as it is until set() or unset().
  explicit ScopedEnv(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v;
  }
  /// Sets it to `value`, or unsets it when `value` is nullptr.
  ScopedEnv(const char* name, const char* value) : ScopedEnv(name) {
    if (value) set(value);
    else unset();
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  void set(const std::string& value) { setenv(name_, value.c_str(), 1); }
  void unset() { unsetenv(name_); }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace powertrain::testing
