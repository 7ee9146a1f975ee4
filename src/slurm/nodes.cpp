// The files of a run over several nodes: claimed once, finished in one step,
// read through private copies, merged by the primary or a later collect.
#include "powertrain/slurm/nodes.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/slurm/slurm.h"

namespace powertrain::slurm {
namespace fs = std::filesystem;

namespace {

// A real folder (created when missing), never a link to one.
void make_folder(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0)
    throw ConfigError(fmt::format("{}: cannot make the nodes' folder: {}", dir.string(),
                                  ec ? ec.message() : std::strerror(errno)));
  if (S_ISLNK(st.st_mode)) throw ConfigError(fmt::format("{}: is a symbolic link, not the nodes' folder", dir.string()));
  if (!S_ISDIR(st.st_mode)) throw ConfigError(fmt::format("{}: is not a folder", dir.string()));
}

// Creates `file` exclusively (no link followed); false when it exists.
bool create_exclusive(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    throw IoError(fmt::format("cannot create {}: {}", file.string(), std::strerror(errno)));
  }
  ::close(fd);
  return true;
}

bool exists_no_follow(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

}  // namespace

fs::path default_nodes_dir(const fs::path& db, const std::function<std::optional<std::string>(const std::string&)>& env) {
  const auto job = env("SLURM_JOB_ID").value_or("local");
  const auto step = env("SLURM_STEP_ID").value_or("0");
  return fs::path(fs::absolute(db).string() + ".nodes") / fmt::format("job{}.step{}", job, step);
}

fs::path node_file(const fs::path& dir, int rank, const std::string& ext) {
  return dir / fmt::format("node-{}{}", rank, ext);
}
fs::path node_partial(const fs::path& dir, int rank, const std::string& ext) {
  return dir / fmt::format("node-{}.partial{}", rank, ext);
}
bool node_file_exists(const fs::path& file) { return exists_no_follow(file); }

std::string read_node_text(const fs::path& file, std::uintmax_t max_bytes) {
  const std::string what = file.filename().string();
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0) throw ConfigError(fmt::format("{}: {}", what, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw ConfigError(fmt::format("{} is not a regular file: not read", what));
  const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw ConfigError(fmt::format("{}: {}", what, std::strerror(errno)));
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      throw ConfigError(fmt::format("{} is larger than {} bytes: not read", what, max_bytes));
    }
  }
  ::close(fd);
  return out;
}

void claim_primary(const fs::path& dir) {
  make_folder(dir);
  if (!create_exclusive(dir / "primary"))
    throw ConfigError(fmt::format(
        "{}: another run's primary node used this folder; give each run over several nodes a folder of its own "
        "(--nodes-dir)",
        dir.string()));
}

fs::path claim_node_file(const fs::path& dir, int rank, const std::string& ext) {
  if (rank < 1) throw ConfigError(fmt::format("node {} is not a secondary (ranks 1 and up are)", rank));
  make_folder(dir);
  const auto partial = node_partial(dir, rank, ext);
  if (exists_no_follow(node_file(dir, rank, ext)) || !create_exclusive(partial))
    throw ConfigError(fmt::format(
        "{}: node {} of another run (or another powertrain with --node-rank {}) wrote here; give each run over "
        "several nodes a folder of its own (--nodes-dir)",
        dir.string(), rank, rank));
  return partial;
}

void finish_node_file(const fs::path& dir, int rank, const std::string& ext) {
  std::error_code ec;
  fs::rename(node_partial(dir, rank, ext), node_file(dir, rank, ext), ec);
  if (ec) throw IoError(fmt::format("cannot finish {}: {}", node_file(dir, rank, ext).string(), ec.message()));
}

run::NodeRun read_node_file(const fs::path& file, int rank, bool complete) {
  const ResultCopy copy(file);
  auto src = store::Store::open_readonly(copy.path());
  const auto runs = src.list_runs();
  if (runs.size() != 1)
    throw ConfigError(fmt::format("{} holds {} runs, not one node's", file.filename().string(), runs.size()));
  check_result_run(src, runs[0].id);
  run::NodeRun n;
  n.node = rank;
  n.host = runs[0].environment.host;
  n.source = file.filename().string();
  n.complete = complete && runs[0].summary.status != run::RunStatus::running;
  n.summary = runs[0].summary;
  n.epochs = src.epochs_of(runs[0].id);
  return n;
}

namespace {

// Takes in the nodes of `ranks` whose files are there: finished files, and
// with `unfinished` also files their node never finished.
NodeMergeResult take_in(store::Runs& runs, std::int64_t run_id, const fs::path& dir, const std::vector<int>& ranks,
                        bool unfinished) {
  NodeMergeResult r;
  std::vector<run::NodeRun> found;
  for (const int k : ranks) {
    const auto done = node_file(dir, k);
    const auto partial = node_partial(dir, k);
    try {
      if (exists_no_follow(done)) {
        found.push_back(read_node_file(done, k, true));
        r.merged.push_back(k);
      } else if (unfinished && exists_no_follow(partial)) {
        found.push_back(read_node_file(partial, k, false));
        r.unfinished.push_back(k);
      } else {
        r.missing.push_back(k);
      }
    } catch (const Error& e) {
      r.unreadable.push_back(e.what());
      r.missing.push_back(k);
    }
  }
  if (!found.empty() || unfinished) r.run = runs.record_nodes(run_id, found);
  return r;
}

}  // namespace

NodeMergeResult merge_nodes(store::Runs& runs, std::int64_t run_id, double wait_s, const std::atomic<bool>* stop) {
  const auto nodes = runs.run_nodes(run_id);
  if (nodes.nodes < 2) return {};
  const fs::path dir = nodes.dir;
  std::vector<int> ranks;
  for (int k = 1; k < nodes.nodes; ++k) ranks.push_back(k);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                               std::chrono::duration<double>(std::max(0.0, wait_s)));
  for (;;) {
    const bool all = std::all_of(ranks.begin(), ranks.end(), [&](int k) { return exists_no_follow(node_file(dir, k)); });
    if (all || std::chrono::steady_clock::now() >= deadline || (stop && stop->load())) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return take_in(runs, run_id, dir, ranks, true);
}

std::vector<std::pair<std::int64_t, NodeMergeResult>> collect_nodes(store::Runs& runs) {
  std::vector<std::pair<std::int64_t, NodeMergeResult>> out;
  for (const auto run_id : runs.runs_awaiting_nodes()) {
    const auto nodes = runs.run_nodes(run_id);
    std::vector<int> ranks;
    for (int k = 1; k < nodes.nodes; ++k)
      if (std::find(nodes.complete.begin(), nodes.complete.end(), k) == nodes.complete.end() &&
          exists_no_follow(node_file(nodes.dir, k)))
        ranks.push_back(k);
    if (ranks.empty()) continue;
    out.emplace_back(run_id, take_in(runs, run_id, nodes.dir, ranks, false));
  }
  return out;
}

std::vector<std::pair<std::int64_t, NodeMergeResult>> collect_nodes_of(const fs::path& db) {
  {
    auto ro = store::Store::open_readonly(db);
    if (ro.runs_awaiting_nodes().empty()) return {};
  }
  auto store = store::Store::open(db);
  return collect_nodes(store);
}

}  // namespace powertrain::slurm
