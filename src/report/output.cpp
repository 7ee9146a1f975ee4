#include "powertrain/report/output.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::report {
namespace fs = std::filesystem;

namespace {

fs::path make_temp_dir(const fs::path& parent, const std::string& stem, const fs::path& target) {
  std::string tmpl = (parent / (stem + "XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw IoError(fmt::format("{}: cannot write there: {}", target.string(), std::strerror(errno)));
  }
  return fs::path(tmpl);
}

}  // namespace

StagedDir::StagedDir(const fs::path& target, std::function<io::OutputRule(const fs::path& rel)> rule_of)
    : target_(target), rule_of_(std::move(rule_of)) {
  if (target.empty()) throw IoError("output directory: the path is empty");
  struct stat lst {};
  if (::lstat(target.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode) && lst.st_uid != ::geteuid() && lst.st_uid != 0)
    throw IoError(fmt::format("{}: is a symbolic link owned by another user; not following it", target.string()));
  std::error_code ec;
  const auto st = fs::status(target, ec);
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) throw IoError(fmt::format("{}: exists and is not a directory", target.string()));
    into_existing_ = true;
    staging_ = make_temp_dir(target, ".powertrain-report.tmp-", target);
    return;
  }
  fs::path parent = target.parent_path();
  if (parent.empty()) parent = ".";
  const auto pst = fs::status(parent, ec);
  if (!fs::exists(pst)) {
    throw IoError(fmt::format("{}: cannot create it: parent directory {} does not exist", target.string(), parent.string()));
  }
  if (!fs::is_directory(pst)) {
    throw IoError(fmt::format("{}: cannot create it: {} is not a directory", target.string(), parent.string()));
  }
  const std::string name = target.filename().empty() ? "report" : target.filename().string();
  staging_ = make_temp_dir(parent, "." + name + ".tmp-", target);
}

StagedDir::~StagedDir() {
  if (committed_ || staging_.empty()) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

std::vector<fs::path> StagedDir::commit(const fs::path& last) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(staging_, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const fs::path rel = fs::relative(it->path(), staging_);
    if (rel != last) files.push_back(rel);
  }
  if (ec) throw IoError(fmt::format("{}: cannot list the staged report: {}", staging_.string(), ec.message()));
  files.push_back(last);
  if (!fs::exists(staging_ / last)) throw IoError(fmt::format("{}: {} was not written", target_.string(), last.string()));

  std::vector<fs::path> out;
  if (!into_existing_) {
    // Readable like any directory mkdir would make (mkdtemp makes it 0700).
    fs::permissions(staging_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec, ec);
    fs::rename(staging_, target_, ec);
    if (ec) throw IoError(fmt::format("{}: cannot move the report into place: {}", target_.string(), ec.message()));
    committed_ = true;
    for (const auto& rel : files) out.push_back(target_ / rel);
    return out;
  }
  for (const auto& rel : files) io::check_replaceable(target_ / rel, rule_of_ ? rule_of_(rel) : io::OutputRule{});
  for (const auto& rel : files) {
    const fs::path to = target_ / rel;
    if (rel.has_parent_path()) {
      fs::create_directories(to.parent_path(), ec);
      if (ec) throw IoError(fmt::format("{}: cannot create {}: {}", target_.string(), to.parent_path().string(), ec.message()));
    }
    fs::rename(staging_ / rel, to, ec);
    if (ec) throw IoError(fmt::format("{}: cannot move {} into place: {}", target_.string(), rel.string(), ec.message()));
    out.push_back(to);
  }
  committed_ = true;
  fs::remove_all(staging_, ec);
  return out;
}

}  // namespace powertrain::report
