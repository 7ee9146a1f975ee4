#include "powertrain/io/output.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::io {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSqliteMagic{"SQLite format 3\0", 16};

std::string err_text(int e) { return std::strerror(e); }

// Closes a descriptor at scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

enum class Kind { descriptor, stream, file };

struct Target {
  Kind kind = Kind::file;
  int fd = -1;          // descriptor: the one to write to
  fs::path path;        // stream, file: where to write (links resolved)
  bool exists = false;  // file: there is a regular file to replace
  struct stat st {};    // file, exists: its status
};

// "-", /dev/stdout, /dev/stderr, /dev/fd/N and /proc/self/fd/N name a
// descriptor of this process: written through it, with its offset and flags.
int named_descriptor(const std::string& s) {
  if (s == "-" || s == "/dev/stdout") return 1;
  if (s == "/dev/stderr") return 2;
  for (std::string_view prefix : {"/dev/fd/", "/proc/self/fd/"}) {
    if (s.rfind(prefix, 0) != 0) continue;
    const std::string n = s.substr(prefix.size());
    if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string::npos) return -1;
    const int fd = std::atoi(n.c_str());
    if (::fcntl(fd, F_GETFD) < 0) throw IoError(fmt::format("{}: descriptor {} is not open", s, fd));
    return fd;
  }
  return -1;
}

void check_folder(const fs::path& file, const fs::path& shown) {
  fs::path dir = file.parent_path();
  if (dir.empty()) dir = ".";
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    throw IoError(fmt::format("{}: folder {} does not exist", shown.string(), dir.string()));
  if (!S_ISDIR(st.st_mode)) throw IoError(fmt::format("{}: {} is not a folder", shown.string(), dir.string()));
  if (::access(dir.c_str(), W_OK) != 0)
    throw IoError(fmt::format("{}: folder {} is not writable: {}", shown.string(), dir.string(), err_text(errno)));
}

// Where `path` leads, and whether it may be written at all (not whether an
// existing regular file may be replaced: the caller checks its content).
Target resolve(const fs::path& path) {
  if (path.empty()) throw IoError("output file: the path is empty");
  Target t;
  if (const int fd = named_descriptor(path.string()); fd >= 0) {
    t.kind = Kind::descriptor;
    t.fd = fd;
    return t;
  }
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) != 0) {
    if (errno != ENOENT) throw IoError(fmt::format("{}: {}", path.string(), err_text(errno)));
    check_folder(path, path);
    t.path = path;
    return t;
  }
  fs::path real = path;
  if (S_ISLNK(lst.st_mode)) {
    // A link someone else planted (say in /tmp) is never followed.
    if (lst.st_uid != ::geteuid() && lst.st_uid != 0)
      throw IoError(fmt::format("{}: is a symbolic link owned by another user; not following it", path.string()));
    std::error_code ec;
    real = fs::weakly_canonical(path, ec);
    if (ec) throw IoError(fmt::format("{}: cannot resolve the link: {}", path.string(), ec.message()));
    if (::lstat(real.c_str(), &lst) != 0) {
      if (errno != ENOENT) throw IoError(fmt::format("{}: {}", path.string(), err_text(errno)));
      check_folder(real, path);
      t.path = real;
      return t;
    }
  }
  if (S_ISDIR(lst.st_mode)) throw IoError(fmt::format("{}: is a directory", path.string()));
  if (S_ISCHR(lst.st_mode) || S_ISFIFO(lst.st_mode)) {
    t.kind = Kind::stream;
    t.path = real;
    return t;
  }
  if (!S_ISREG(lst.st_mode))
    throw IoError(fmt::format("{}: is not a regular file, a character device or a pipe; not replacing it", path.string()));
  check_folder(real, path);
  t.path = real;
  t.exists = true;
  t.st = lst;
  return t;
}

// Up to `max` bytes from the start of the open file.
std::string read_head(int fd, std::size_t max) {
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size >= 0) max = std::min(max, static_cast<std::size_t>(st.st_size));
  std::string head(max, '\0');
  std::size_t got = 0;
  while (got < max) {
    const ssize_t n = ::pread(fd, head.data() + got, max - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  head.resize(got);
  return head;
}

void write_all(int fd, std::string_view text, const fs::path& shown) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw IoError(fmt::format("{}: write failed: {}", shown.string(), err_text(n < 0 ? errno : ENOSPC)));
    done += static_cast<std::size_t>(n);
  }
}

// The process's umask, without changing it (umask() would, for every thread).
mode_t current_umask() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::strtoul(line.c_str() + 6, nullptr, 8));
  return 022;
}

void check_head(const fs::path& shown, std::string_view head, const OutputRule& rule) {
  if (head.substr(0, kSqliteMagic.size()) == kSqliteMagic)
    throw IoError(fmt::format("{}: is a SQLite database; not replacing it", shown.string()));
  if (rule.force || !rule.is_previous || rule.is_previous(head)) return;
  throw IoError(fmt::format("{}: exists and is not a {}; not replacing it (--force replaces it)", shown.string(),
                            rule.kind.empty() ? "previous output" : rule.kind));
}

void check_replaceable_at(const fs::path& real, const fs::path& shown, const OutputRule& rule) {
  Fd f(::open(real.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (f.fd < 0) {
    if (rule.force || !rule.is_previous) return;  // nothing to compare with; a database is unreadable too
    throw IoError(fmt::format("{}: cannot read it to see what it is: {}", shown.string(), err_text(errno)));
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode))
    throw IoError(fmt::format("{}: is not a regular file; not replacing it", shown.string()));
  if (st.st_size == 0) return;
  check_head(shown, read_head(f.fd, std::max<std::size_t>(rule.head_bytes, kSqliteMagic.size())), rule);
}

void write_descriptor(int fd, std::string_view text, const fs::path& shown) {
  write_all(fd, text, shown);
}

void write_stream(const fs::path& path, std::string_view text, const fs::path& shown) {
  Fd f(::open(path.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC));
  if (f.fd < 0) throw IoError(fmt::format("{}: {}", shown.string(), err_text(errno)));
  write_all(f.fd, text, shown);
}

void write_replacing(const Target& t, std::string_view text, const fs::path& shown) {
  const fs::path dir = t.path.parent_path().empty() ? fs::path(".") : t.path.parent_path();
  std::string stem = t.path.filename().string();
  if (stem.size() > 200) stem.resize(200);
  std::string tmpl = (dir / ("." + stem + ".tmp-XXXXXX")).string();
  const int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) throw IoError(fmt::format("{}: cannot create a file in {}: {}", shown.string(), dir.string(), err_text(errno)));
  Fd f(fd);
  auto fail = [&](const std::string& why) {
    ::unlink(tmpl.c_str());
    throw IoError(fmt::format("{}: {}", shown.string(), why));
  };
  try {
    write_all(fd, text, shown);
  } catch (const IoError&) {
    ::unlink(tmpl.c_str());
    throw;
  }
  // The mode (and, for root, the owner) of the file replaced; else what open() would give.
  if (t.exists) {
    (void)::fchmod(fd, t.st.st_mode & 07777);
    if (::geteuid() == 0) (void)::fchown(fd, t.st.st_uid, t.st.st_gid);
  } else {
    (void)::fchmod(fd, 0666 & ~current_umask());
  }
  if (::fsync(fd) != 0) fail("write failed: " + err_text(errno));
  if (::close(fd) != 0) {
    f.fd = -1;
    fail("write failed: " + err_text(errno));
  }
  f.fd = -1;
  if (::rename(tmpl.c_str(), t.path.c_str()) != 0) fail("cannot move the file into place: " + err_text(errno));
}

// The first line of `head` without its line ending.
std::string_view first_line(std::string_view head) {
  auto line = head.substr(0, head.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// Whether the open CSV file of `size` bytes may take more rows under `header`.
void check_csv_file(int fd, off_t size, std::string_view header, const fs::path& shown) {
  if (size == 0) return;
  const std::string head = read_head(fd, 1 << 20);
  if (std::string_view(head).substr(0, kSqliteMagic.size()) == kSqliteMagic)
    throw IoError(fmt::format("{}: is a SQLite database, not a CSV file; not appending to it", shown.string()));
  if (head.find('\0') != std::string::npos)
    throw IoError(fmt::format("{}: holds binary data, not CSV; not appending to it", shown.string()));
  if (head.find('\n') == std::string::npos || first_line(head) != header)
    throw IoError(fmt::format("{}: its first line is not the header of these rows (another kind of CSV?); not appending to it",
                              shown.string()));
  char last = 0;
  if (::pread(fd, &last, 1, size - 1) != 1 || last != '\n')
    throw IoError(fmt::format("{}: its last line does not end with a newline; not appending to it", shown.string()));
}

}  // namespace

void check_output(const fs::path& path, const OutputRule& rule) {
  const Target t = resolve(path);
  if (t.kind == Kind::file && t.exists) check_replaceable_at(t.path, path, rule);
}

void write_output(const fs::path& path, std::string_view text, const OutputRule& rule) {
  const Target t = resolve(path);
  switch (t.kind) {
    case Kind::descriptor: write_descriptor(t.fd, text, path); return;
    case Kind::stream: write_stream(t.path, text, path); return;
    case Kind::file:
      if (t.exists) check_replaceable_at(t.path, path, rule);
      write_replacing(t, text, path);
      return;
  }
}

void check_replaceable(const fs::path& file, const OutputRule& rule) {
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw IoError(fmt::format("{}: {}", file.string(), err_text(errno)));
  }
  if (!S_ISREG(st.st_mode)) throw IoError(fmt::format("{}: is not a regular file; not replacing it", file.string()));
  check_replaceable_at(file, file, rule);
}

void check_csv_append(const fs::path& path, std::string_view header) {
  const Target t = resolve(path);
  if (t.kind != Kind::file || !t.exists) return;
  Fd f(::open(t.path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (f.fd < 0) throw IoError(fmt::format("{}: {}", path.string(), err_text(errno)));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode))
    throw IoError(fmt::format("{}: is not a regular file; not appending to it", path.string()));
  check_csv_file(f.fd, st.st_size, header, path);
  if (::access(t.path.c_str(), W_OK) != 0) throw IoError(fmt::format("{}: not writable: {}", path.string(), err_text(errno)));
}

void append_csv(const fs::path& path, std::string_view header, std::string_view rows) {
  const std::string with_header = std::string(header) + "\n" + std::string(rows);
  for (int attempt = 0;; ++attempt) {
    const Target t = resolve(path);
    if (t.kind == Kind::descriptor) return write_descriptor(t.fd, with_header, path);
    if (t.kind == Kind::stream) return write_stream(t.path, with_header, path);
    bool created = false;
    int fd = -1;
    if (!t.exists) {
      fd = ::open(t.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
      if (fd < 0 && errno == EEXIST && attempt == 0) continue;  // made meanwhile: append to it
      created = fd >= 0;
    } else {
      fd = ::open(t.path.c_str(), O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    }
    if (fd < 0) throw IoError(fmt::format("{}: {}", path.string(), err_text(errno)));
    Fd f(fd);
    // One appender at a time: the header is written once and rows never interleave.
    while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
      throw IoError(fmt::format("{}: is not a regular file; not appending to it", path.string()));
    check_csv_file(fd, st.st_size, header, path);
    try {
      write_all(fd, st.st_size == 0 ? std::string_view(with_header) : rows, path);
    } catch (const IoError&) {
      // A full disk: no half row, and no empty file that was not there before.
      if (created) ::unlink(t.path.c_str());
      else (void)::ftruncate(fd, st.st_size);
      throw;
    }
    return;
  }
}

std::string safe_file_name(std::string_view name) {
  constexpr std::size_t kKeep = 100;
  auto bad = [](char c) { return c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f; };
  bool harmless = !name.empty() && name.size() <= kKeep && name.front() != '.';
  for (char c : name) harmless = harmless && !bad(c);
  if (harmless) return std::string(name);
  std::string out;
  for (char c : name) out += bad(c) ? '_' : c;
  if (out.size() > kKeep) {
    std::size_t cut = kKeep;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
    out.resize(cut);
  }
  if (!out.empty() && out.front() == '.') out.front() = '_';
  std::uint32_t h = 2166136261u;  // FNV-1a of the original name
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return fmt::format("{}{}{:08x}", out, out.empty() ? "" : "-", h);
}

}  // namespace powertrain::io
