#include "io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>

#include "powertrain/error.h"

namespace powertrain::data::detail {

namespace fs = std::filesystem;

std::string read_text_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw DataError("missing file " + path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot read " + path.string());
  std::string s;
  in.seekg(0, std::ios::end);
  s.resize(static_cast<std::size_t>(in.tellg()));
  in.seekg(0);
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  if (!in) throw IoError("cannot read " + path.string());
  return s;
}

void require_file(const fs::path& path, const std::string& hint) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw DataError("missing file " + path.string() + (hint.empty() ? "" : " (" + hint + ")"));
}

std::shared_ptr<MappedFile> MappedFile::open(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError("cannot open " + path.string() + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    throw IoError("cannot map empty or unreadable file " + path.string());
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);
  if (addr == MAP_FAILED) throw IoError("cannot map " + path.string() + ": " + std::strerror(err));
  return std::shared_ptr<MappedFile>(new MappedFile(addr, size, path));
}

std::shared_ptr<MappedFile> MappedFile::create(const fs::path& path, std::size_t bytes) {
  // A fresh file, never one reached through a link planted at this name.
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw IoError("cannot create " + path.string() + ": " + std::strerror(errno));
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError("cannot create " + path.string() + ": " + std::strerror(errno));
  // posix_fallocate reserves the blocks, so a full disk fails here and not as
  // SIGBUS while writing through the mapping.
  int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (rc == EINVAL || rc == EOPNOTSUPP) rc = ::ftruncate(fd, static_cast<off_t>(bytes)) == 0 ? 0 : errno;
  if (rc != 0) {
    ::close(fd);
    throw IoError("cannot size " + path.string() + ": " + std::strerror(rc));
  }
  void* addr = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  ::close(fd);
  if (addr == MAP_FAILED) throw IoError("cannot map " + path.string() + ": " + std::strerror(err));
  return std::shared_ptr<MappedFile>(new MappedFile(addr, bytes, path));
}

MappedFile::~MappedFile() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
}

void MappedFile::sync() {
  if (::msync(addr_, size_, MS_SYNC) != 0) throw IoError("cannot write " + path_.string() + ": " + std::strerror(errno));
}

void split_tokens(std::string_view line, std::vector<std::string_view>& out) {
  out.clear();
  std::size_t i = 0;
  const std::size_t n = line.size();
  while (i < n) {
    while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    if (i >= n) break;
    std::size_t j = i;
    while (j < n && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    out.push_back(line.substr(i, j - i));
    i = j;
  }
}

bool parse_double(std::string_view token, double& out) {
  if (token.empty()) return false;
  const char* b = token.data();
  const char* e = b + token.size();
  if (*b == '+') ++b;  // from_chars rejects a leading '+'
  auto [ptr, ec] = std::from_chars(b, e, out);
  return ec == std::errc() && ptr == e;
}

bool parse_int(std::string_view token, std::int64_t& out) {
  if (token.empty()) return false;
  const char* b = token.data();
  const char* e = b + token.size();
  if (*b == '+') ++b;
  auto [ptr, ec] = std::from_chars(b, e, out);
  return ec == std::errc() && ptr == e;
}

std::string normalize_name(std::string_view name) {
  std::string out;
  for (char c : name) {
    char d = (c == '_' || c == '-') ? ' ' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (d == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(d);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::uint64_t fnv1a(const void* data, std::size_t size, std::uint64_t hash) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < size; ++i) {
    hash ^= p[i];
    hash *= 1099511628211ull;
  }
  return hash;
}

std::uint64_t SplitMix64::next() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t SplitMix64::below(std::uint64_t n) {
  // Rejection sampling keeps the choice exactly uniform.
  const std::uint64_t limit = n == 0 ? 0 : (~std::uint64_t{0}) - ((~std::uint64_t{0}) % n);
  std::uint64_t r;
  do r = next();
  while (r >= limit);
  return r % n;
}

std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed, std::uint64_t salt) {
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  SplitMix64 rng(seed * 0x9e3779b97f4a7c15ull ^ salt);
  for (std::int64_t i = n - 1; i > 0; --i) {
    auto j = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i + 1)));
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(j)]);
  }
  return p;
}

std::vector<std::int64_t> choose_rows(std::int64_t n, double fraction, std::int64_t max_count,
                                      std::uint64_t seed, std::uint64_t salt) {
  std::int64_t k = n;
  if (fraction < 1.0) k = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::llround(fraction * static_cast<double>(n))));
  if (max_count > 0) k = std::min(k, max_count);
  k = std::min(k, n);
  if (k == n) {
    std::vector<std::int64_t> all(static_cast<std::size_t>(n));
    std::iota(all.begin(), all.end(), 0);
    return all;
  }
  auto p = permutation(n, seed, salt);
  p.resize(static_cast<std::size_t>(k));
  std::sort(p.begin(), p.end());
  return p;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

}  // namespace powertrain::data::detail
