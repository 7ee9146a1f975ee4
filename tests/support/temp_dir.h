#pragma once
// Test helpers: a temporary directory removed at scope exit, and small file writers.
#include <filesystem>
#include <string>

namespace powertrain::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

 private:
  std::filesystem::path path_;
};

/// Writes `content` to `path`, creating parent directories.
void write_file(const std::filesystem::path& path, const std::string& content);
/// Reads a whole file.
std::string read_file(const std::filesystem::path& path);

}  // namespace powertrain::testing
