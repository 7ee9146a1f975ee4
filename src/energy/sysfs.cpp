#include "sysfs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>
#include <utility>

namespace powertrain::energy::sysfs {

namespace fs = std::filesystem;

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Attributes are a page at most; the cap only guards against pointing at a big file.
constexpr std::size_t kMaxFileBytes = 64 * 1024;

}  // namespace

ReadResult read_text(const fs::path& path) {
  ReadResult result;
  // open/read rather than ifstream so the caller gets the errno: EACCES on a
  // root-only energy_uj must be told apart from a missing file.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    result.error = errno;
    return result;
  }
  std::string data;
  char buf[4096];
  while (data.size() < kMaxFileBytes) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      result.error = errno;
      ::close(fd);
      return result;
    }
    if (n == 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  result.text = std::string(trim(data));
  return result;
}

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  text = trim(text);
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
    base = 16;
  }
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::int64_t> parse_i64(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> parse_double(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  double value = 0.0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::uint64_t> read_u64(const fs::path& path, int* error) {
  ReadResult r = read_text(path);
  std::optional<std::uint64_t> value;
  if (r.ok()) value = parse_u64(r.text);
  if (error != nullptr) *error = !r.ok() ? r.error : (value ? 0 : EINVAL);
  return value;
}

std::optional<std::int64_t> read_i64(const fs::path& path, int* error) {
  ReadResult r = read_text(path);
  std::optional<std::int64_t> value;
  if (r.ok()) value = parse_i64(r.text);
  if (error != nullptr) *error = !r.ok() ? r.error : (value ? 0 : EINVAL);
  return value;
}

OpenFile::OpenFile(const fs::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) error_ = errno;
}

OpenFile::~OpenFile() {
  if (fd_ >= 0) ::close(fd_);
}

OpenFile::OpenFile(OpenFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)), error_(other.error_) {}

OpenFile& OpenFile::operator=(OpenFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    error_ = other.error_;
  }
  return *this;
}

std::optional<std::uint64_t> OpenFile::read_u64(int* error) const {
  auto fail = [&](int e) -> std::optional<std::uint64_t> {
    if (error != nullptr) *error = e;
    return std::nullopt;
  };
  if (fd_ < 0) return fail(error_ != 0 ? error_ : EBADF);
  char buf[64];  // a counter is at most 20 digits; more is not a counter
  ssize_t n;
  do {
    n = ::pread(fd_, buf, sizeof buf, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail(errno);
  if (static_cast<std::size_t>(n) == sizeof buf) return fail(EINVAL);  // longer than any counter
  auto value = parse_u64(std::string_view(buf, static_cast<std::size_t>(n)));
  if (!value) return fail(EINVAL);
  if (error != nullptr) *error = 0;
  return value;
}

bool natural_less(std::string_view a, std::string_view b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    bool da = std::isdigit(static_cast<unsigned char>(a[i])) != 0;
    bool db = std::isdigit(static_cast<unsigned char>(b[j])) != 0;
    if (da && db) {
      std::size_t ei = i, ej = j;
      while (ei < a.size() && std::isdigit(static_cast<unsigned char>(a[ei]))) ++ei;
      while (ej < b.size() && std::isdigit(static_cast<unsigned char>(b[ej]))) ++ej;
      // Compare by value without overflow: strip leading zeros, then length, then digits.
      std::string_view na = a.substr(i, ei - i), nb = b.substr(j, ej - j);
      while (na.size() > 1 && na.front() == '0') na.remove_prefix(1);
      while (nb.size() > 1 && nb.front() == '0') nb.remove_prefix(1);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ei;
      j = ej;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i;
    ++j;
  }
  return (a.size() - i) < (b.size() - j);
}

std::vector<std::string> list_dirs(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return names;
  for (const fs::directory_entry& entry : it) {
    std::error_code entry_ec;
    // is_directory follows symlinks, which is what sysfs class/bus folders need.
    if (entry.is_directory(entry_ec)) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end(),
            [](const std::string& a, const std::string& b) { return natural_less(a, b); });
  return names;
}

std::string errno_text(int error) {
  const char* name = ::strerrorname_np(error);
  std::string text = name != nullptr ? name : "errno " + std::to_string(error);
  return text + " (" + std::strerror(error) + ")";
}

std::optional<std::vector<int>> parse_cpu_list(std::string_view text) {
  text = trim(text);
  std::vector<int> cpus;
  if (text.empty()) return cpus;
  while (!text.empty()) {
    std::size_t comma = text.find(',');
    std::string_view part = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    std::size_t dash = part.find('-');
    auto first = parse_u64(part.substr(0, dash));
    auto last = dash == std::string_view::npos ? first : parse_u64(part.substr(dash + 1));
    if (!first || !last || *last < *first || *last > 1'000'000) return std::nullopt;
    for (std::uint64_t c = *first; c <= *last; ++c) cpus.push_back(static_cast<int>(c));
  }
  return cpus;
}

// ---------------------------------------------------------------- RAPL

Diagnosis diagnose_rapl_read_error(const fs::path& energy_uj, int error,
                                   const fs::path& powercap_dir) {
  Diagnosis d;
  if (error == EACCES || error == EPERM) {
    d.reason =
        "RAPL energy_uj is readable by root only (since the PLATYPUS fix, CVE-2020-8694): "
        "cannot read " +
        energy_uj.string() + ": " + errno_text(error);
    const std::string dir = powercap_dir.string();
    d.fix = "run once as root: sudo chmod o+r " + dir + "/intel-rapl:*/energy_uj " + dir +
            "/intel-rapl:*/*/energy_uj (lasts until reboot); to keep it, add a udev rule such "
            "as /etc/udev/rules.d/99-powercap.rules: ACTION==\"add\", SUBSYSTEM==\"powercap\", "
            "RUN+=\"/bin/chmod o+r /sys%p/energy_uj\" (or with sysfsutils, one line per zone "
            "in /etc/sysfs.conf: mode class/powercap/intel-rapl:0/energy_uj = 0444); "
            "or run powertrain as root";
    return d;
  }
  d.reason = "cannot read RAPL counter " + energy_uj.string() + ": " + errno_text(error);
  return d;
}

std::uint64_t rapl_delta_uj(std::uint64_t prev_uj, std::uint64_t cur_uj,
                            std::uint64_t max_range_uj) {
  if (cur_uj >= prev_uj) return cur_uj - prev_uj;
  // The counter runs from 0 to max_energy_range_uj, both included, and starts
  // over: the step from max_energy_range_uj to 0 is one microjoule too.
  if (max_range_uj > 0 && prev_uj <= max_range_uj) return (max_range_uj - prev_uj) + 1 + cur_uj;
  // Without a usable range the counter can only be assumed to have restarted
  // from zero: cur_uj is then a lower bound of the energy added.
  return cur_uj;
}

// ---------------------------------------------------------------- perf power PMU

std::optional<std::uint64_t> parse_perf_event_config(std::string_view text) {
  text = trim(text);
  std::optional<std::uint64_t> config;
  while (!text.empty()) {
    std::size_t comma = text.find(',');
    std::string_view term = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    std::size_t eq = term.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    if (trim(term.substr(0, eq)) != "event") return std::nullopt;
    config = parse_u64(term.substr(eq + 1));
    if (!config) return std::nullopt;
  }
  return config;
}

std::vector<PerfEvent> read_perf_events(const fs::path& pmu_dir) {
  std::vector<PerfEvent> events;
  const fs::path dir = pmu_dir / "events";
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return events;
  for (const fs::directory_entry& entry : it) {
    std::string name = entry.path().filename().string();
    // energy-pkg has companions energy-pkg.scale and energy-pkg.unit.
    if (name.rfind("energy-", 0) != 0 || name.find('.') != std::string::npos) continue;
    ReadResult event = read_text(entry.path());
    if (!event.ok()) continue;
    auto config = parse_perf_event_config(event.text);
    if (!config) continue;
    // Without its scale a raw count is meaningless, so such an event is skipped
    // rather than reported in the wrong unit.
    double scale_j = 0.0;
    ReadResult scale = read_text(dir / (name + ".scale"));
    if (scale.ok()) scale_j = parse_double(scale.text).value_or(0.0);
    ReadResult unit = read_text(dir / (name + ".unit"));
    if (!(scale_j > 0.0) || !unit.ok() || unit.text != "Joules") continue;
    events.push_back(PerfEvent{name, *config, scale_j, unit.text});
  }
  std::sort(events.begin(), events.end(),
            [](const PerfEvent& a, const PerfEvent& b) { return a.name < b.name; });
  return events;
}

Diagnosis diagnose_perf_open_error(const std::string& event, int cpu, int error,
                                   std::optional<int> paranoid) {
  Diagnosis d;
  const std::string what = "perf_event_open(power/" + event + ", cpu " + std::to_string(cpu) +
                           ") failed: " + errno_text(error);
  switch (error) {
    case EACCES:
    case EPERM:
      if (paranoid && *paranoid <= 0) {
        d.reason = what + "; kernel.perf_event_paranoid is " + std::to_string(*paranoid) +
                   ", so a seccomp profile (containers block perf_event_open by default) or a "
                   "security module refuses it";
        d.fix =
            "run the container with --cap-add PERFMON (or a seccomp profile that allows "
            "perf_event_open), or run as root";
      } else {
        d.reason = what + "; system-wide energy events need kernel.perf_event_paranoid <= 0 " +
                   (paranoid ? "(it is " + std::to_string(*paranoid) + ")"
                             : std::string("(its value could not be read)")) +
                   " or CAP_PERFMON";
        d.fix =
            "sudo sysctl kernel.perf_event_paranoid=0 (persist it with "
            "kernel.perf_event_paranoid = 0 in /etc/sysctl.d/99-perf.conf), or give the "
            "binary CAP_PERFMON: sudo setcap cap_perfmon+ep $(command -v powertrain)";
      }
      break;
    case ENOENT:
    case EINVAL:
    case EOPNOTSUPP:
      d.reason = what +
                 "; the kernel does not accept this event of the power PMU "
                 "(unsupported event, or a PMU type that does not match the running kernel)";
      break;
    case ENODEV: d.reason = what + "; that CPU is offline or has no power PMU"; break;
    case ENOSYS: d.reason = what + "; the kernel was built without perf events"; break;
    case EMFILE:
    case ENFILE:
      d.reason = what + "; out of file descriptors";
      d.fix = "raise the open-file limit (ulimit -n)";
      break;
    default: d.reason = what; break;
  }
  return d;
}

// ---------------------------------------------------------------- INA3221 rails

bool is_known_total_rail(std::string_view label) {
  const std::string u = upper(trim(label));
  return u == "VDD_IN" || u == "POM_5V_IN";
}

std::optional<std::size_t> pick_total_rail(const std::vector<std::string>& labels) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (is_known_total_rail(labels[i])) return i;
  }
  std::optional<std::size_t> found;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::string u = upper(labels[i]);
    bool has_in_word = false;
    std::size_t start = 0;
    while (start <= u.size()) {
      std::size_t end = u.find('_', start);
      if (end == std::string::npos) end = u.size();
      if (u.compare(start, end - start, "IN") == 0) has_in_word = true;
      start = end + 1;
    }
    if (!has_in_word) continue;
    // Two candidates: guessing would risk counting a sub-rail as the board total.
    if (found) return std::nullopt;
    found = i;
  }
  return found;
}

}  // namespace powertrain::energy::sysfs
