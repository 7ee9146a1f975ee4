#pragma once
// Safe output files: the one way the project writes a file the user named.
//
//   io::OutputRule rule{"measure report", looks_like_report, force};
//   io::check_output(path, rule);          // before the work: one-line IoError
//   ...
//   io::write_output(path, text, rule);    // unique temporary file, then rename
//
// A regular file is written through a temporary file created exclusively
// (mkstemp: a unique name, O_EXCL, never through a link) in the target's own
// folder and renamed over the target, so a reader sees the old or the new
// file, never half of one, and a link planted at a predictable name is never
// followed. "-" is standard output; /dev/stdout, /dev/stderr and /dev/fd/N are
// those descriptors; character devices and named pipes are written directly.
// What is never replaced: directories, block devices, sockets, a SQLite
// database, a link another user owns, and (unless `force`) a regular file that
// is not a previous output of the same kind. Throws IoError with one line.
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace powertrain::io {

struct OutputRule {
  /// What is written, for messages: "measure report", "timeline".
  std::string kind;
  /// Whether an existing file's first bytes (at most head_bytes) show it is a
  /// previous output of this kind. Empty: any regular file may be replaced.
  std::function<bool(std::string_view head)> is_previous;
  std::size_t head_bytes = 64 * 1024;
  /// Replace a regular file even when it is not a previous output.
  bool force = false;
};

/// Checks that `path` may be written under `rule` (before any work is done).
void check_output(const std::filesystem::path& path, const OutputRule& rule);

/// Writes `text` to `path` under `rule` (checked again at the time of writing).
void write_output(const std::filesystem::path& path, std::string_view text, const OutputRule& rule);

/// Checks that `file` is missing, or a regular file (not a link) that may be
/// replaced under `rule`: not a SQLite database, and empty, a previous output
/// or forced. For writers that stage files elsewhere and rename them into place.
void check_replaceable(const std::filesystem::path& file, const OutputRule& rule);

/// Appends `rows` (complete lines) to the CSV file `path` whose first line is
/// `header` (without its newline). A missing or empty file gets the header
/// first; an existing one must start with exactly that header, hold text only
/// and end with a newline, else it is refused. Streams ("-", devices, pipes)
/// get the header and the rows. Concurrent appenders are serialised with a
/// lock; a failed write leaves the file as it was.
void append_csv(const std::filesystem::path& path, std::string_view header, std::string_view rows);

/// Checks what append_csv() would check, without writing.
void check_csv_append(const std::filesystem::path& path, std::string_view header);

/// A file name for `name` (a study name, from a spec or a database): `name`
/// itself when it is a harmless single path component, else a name with
/// '/', control characters and a leading '.' replaced, cut to a sane length
/// and suffixed with a hash of the original, so different names stay apart.
/// Never empty, ".", ".." or containing '/'.
std::string safe_file_name(std::string_view name);

}  // namespace powertrain::io
