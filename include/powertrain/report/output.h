#pragma once
// All-or-nothing output: a report is written into a temporary directory on
// the same file system as its destination and moved into place at the end, so
// an error leaves no half-written report behind.
#include <filesystem>
#include <functional>
#include <vector>

#include "powertrain/io/output.h"

namespace powertrain::report {

class StagedDir {
 public:
  /// Prepares to write `target`. When it does not exist, the staging directory
  /// is made beside it (its parent must exist) and commit() renames it to
  /// `target` in one step. When it is a directory, staging happens in a hidden
  /// directory inside it and commit() moves each file over, replacing files of
  /// the same name. Throws IoError with one line when `target` is not a
  /// directory, its parent is missing, or it cannot be written, or is a link
  /// another user owns. `rule_of` says, for a file relative to the target,
  /// what it may replace there (io::check_replaceable); default: any regular
  /// file but a database, never a link, a directory or a special file.
  explicit StagedDir(const std::filesystem::path& target,
                     std::function<io::OutputRule(const std::filesystem::path& rel)> rule_of = {});
  /// Removes the staging directory unless commit() succeeded.
  ~StagedDir();
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  /// Where to write.
  const std::filesystem::path& path() const { return staging_; }
  const std::filesystem::path& target() const { return target_; }

  /// Moves the staged files into the target, the file `last` (relative to the
  /// staging directory, e.g. "report.html") last, so that it appears only
  /// once everything it refers to is there. Returns the final paths of every
  /// file, `last` at the end. Every file it would replace is checked before
  /// the first one moves. Throws IoError.
  std::vector<std::filesystem::path> commit(const std::filesystem::path& last);

 private:
  std::filesystem::path target_;
  std::filesystem::path staging_;
  std::function<io::OutputRule(const std::filesystem::path& rel)> rule_of_;
  bool into_existing_ = false;
  bool committed_ = false;
};

}  // namespace powertrain::report
