#pragma once
// Private helpers of the data layer that need no torch: files, mappings, text
// tokens, hashing, seeded index choices.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace powertrain::data::detail {

/// Whole file as bytes. Throws DataError "missing file P" / IoError.
std::string read_text_file(const std::filesystem::path& path);

/// Throws DataError("missing file P" + hint) unless `path` exists.
void require_file(const std::filesystem::path& path, const std::string& hint = {});

/// A file mapped into memory; unmapped when the last owner lets go.
class MappedFile {
 public:
  /// Maps an existing file copy-on-write (PROT_READ|PROT_WRITE, MAP_PRIVATE):
  /// tensors over it may be written in place without touching the file.
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  /// Creates (truncating) a file of `bytes` and maps it shared for writing.
  static std::shared_ptr<MappedFile> create(const std::filesystem::path& path, std::size_t bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::uint8_t* data() const { return static_cast<std::uint8_t*>(addr_); }
  std::size_t size() const { return size_; }
  /// Flushes a shared mapping to the file. Throws IoError.
  void sync();

 private:
  MappedFile(void* addr, std::size_t size, std::filesystem::path path)
      : addr_(addr), size_(size), path_(std::move(path)) {}
  void* addr_ = nullptr;
  std::size_t size_ = 0;
  std::filesystem::path path_;
};

/// Whitespace-separated tokens of one line (views into `line`).
void split_tokens(std::string_view line, std::vector<std::string_view>& out);

/// Calls fn(line_no, line) for every line of `text` (1-based, '\r' stripped).
template <class Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  std::size_t pos = 0;
  std::int64_t line_no = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(++line_no, line);
    pos = end + 1;
  }
}

/// Parses a whole token as a number; false when it is not one. Accepts "NaN".
bool parse_double(std::string_view token, double& out);
bool parse_int(std::string_view token, std::int64_t& out);

/// Lower case; '_' and '-' read as spaces; runs of spaces collapsed.
std::string normalize_name(std::string_view name);

/// 64-bit FNV-1a, chainable.
constexpr std::uint64_t kFnvOffset = 1469598103934665603ull;
std::uint64_t fnv1a(const void* data, std::size_t size, std::uint64_t hash = kFnvOffset);
inline std::uint64_t fnv1a_text(std::string_view s, std::uint64_t hash = kFnvOffset) {
  return fnv1a(s.data(), s.size(), hash);
}

/// splitmix64: a small, fully specified generator (same numbers everywhere).
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next();
  /// Uniform in [0, n).
  std::uint64_t below(std::uint64_t n);

 private:
  std::uint64_t state_;
};

/// A seeded random choice of rows of [0, n): `fraction` of them, then at most
/// `max_count` (0: no cap), returned in increasing order. All rows (in order)
/// when nothing is cut. `salt` separates the choices of different splits.
std::vector<std::int64_t> choose_rows(std::int64_t n, double fraction, std::int64_t max_count,
                                      std::uint64_t seed, std::uint64_t salt);

/// A seeded permutation of [0, n).
std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed, std::uint64_t salt);

/// "a, b, c".
std::string join(const std::vector<std::string>& items, std::string_view sep = ", ");

}  // namespace powertrain::data::detail
