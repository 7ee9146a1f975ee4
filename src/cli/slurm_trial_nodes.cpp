// A Slurm study's trial over several nodes: node 0's side and the other
// nodes' meters (slurm_trial_nodes.h, docs/cluster.md).
#include "slurm_trial_nodes.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "commands.h"
#include "powertrain/error.h"
#include "powertrain/external/node_meter.h"
#include "powertrain/io/output.h"
#include "powertrain/io/text.h"
#include "powertrain/session/session.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/spec.h"

namespace powertrain::cli {
namespace fs = std::filesystem;
namespace {

constexpr const char* kEnded = "ended";
constexpr const char* kPrimary = "primary";
constexpr const char* kSocketsVariable = "POWERTRAIN_NODE_SOCKETS";

bool there(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

fs::path socket_entry(const fs::path& dir, const std::string& node) {
  return dir / ("socket-" + io::safe_file_name(node));
}

// Writes `text` to `file` whole (a private temporary renamed over it).
void write_whole(const fs::path& file, const std::string& text) {
  const auto tmp = fs::path(file.string() + fmt::format(".{}.tmp", ::getpid()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(fmt::format("cannot write {}: {}", tmp.string(), std::strerror(errno)));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  std::error_code ec;
  if (ok) fs::rename(tmp, file, ec);
  if (!ok || ec) {
    fs::remove(tmp, ec);
    throw IoError(fmt::format("cannot write {}", file.string()));
  }
}

void mark_ended(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!there(dir / kEnded)) write_whole(dir / kEnded, "");
}

int socket_entries(const fs::path& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.rfind("socket-", 0) == 0 && name.find(".tmp") == std::string::npos) ++n;
  }
  return n;
}

void sleep_a_little() { std::this_thread::sleep_for(std::chrono::milliseconds(100)); }

// The trial's settings as planned from the job file (the meter records them
// with its node's run; it starts nothing).
run::RunConfig planned_config(const study::StudySpec& spec, const slurm::TaskTrial& trial) {
  if (trial.segment) return study::segment_trial(spec, trial.segment->segment).spec.config;
  for (const auto& p : study::plan_trials(spec))
    if (p.spec.key == trial.key) return p.spec.config;
  throw ConfigError(fmt::format("{}: not a trial of the job file's study", trial.label));
}

}  // namespace

std::string this_node_name() {
  if (const char* n = std::getenv("SLURMD_NODENAME"); n && *n) return n;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) return "localhost";
  return host;
}

fs::path trial_nodes_dir(const slurm::JobFile& job, const std::string& stem) {
  return fs::path(job.folder) / "nodes" / stem;
}

double trial_nodes_wait_s() {
  const char* v = std::getenv("POWERTRAIN_NODES_WAIT_S");
  if (v == nullptr || *v == '\0') return 120.0;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(s >= 0.0 && s <= 86400.0))
    throw ConfigError(fmt::format("POWERTRAIN_NODES_WAIT_S must be seconds from 0 to 86400, got '{}'", v));
  return s;
}

PrimaryNodes::PrimaryNodes(fs::path dir, int nodes, double wait_s, const std::atomic<bool>* stop)
    : dir_(std::move(dir)), nodes_(nodes), wait_s_(wait_s), stop_(stop) {
  slurm::claim_primary(dir_);
  write_whole(socket_entry(dir_, this_node_name()), "");  // node 0's ranks: POWERTRAIN_SOCKET
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(wait_s_));
  while (socket_entries(dir_) < nodes_ && std::chrono::steady_clock::now() < deadline && !(stop_ && stop_->load()))
    sleep_a_little();
  if (const int n = socket_entries(dir_); n < nodes_)
    fmt::print(stderr,
               "node 0: {} of the trial's {} nodes have a meter after {:.0f} s; the program starts, and the windows "
               "of the nodes without one are partial\n",
               n, nodes_, wait_s_);
  ::setenv(kSocketsVariable, dir_.c_str(), 1);
}

PrimaryNodes::~PrimaryNodes() {
  try {
    end();
  } catch (const std::exception&) {
    // The other meters end with the job.
  }
}

void PrimaryNodes::end() {
  if (ended_) return;
  ended_ = true;
  ::unsetenv(kSocketsVariable);
  mark_ended(dir_);
}

void PrimaryNodes::on_run_start(store::Store& store, std::int64_t run_id) const {
  store.set_run_nodes(run_id, nodes_, dir_.string());
}

slurm::NodeMergeResult PrimaryNodes::finish(store::Store& store, std::int64_t run_id) {
  end();
  return slurm::merge_nodes(store, run_id, wait_s_, stop_);
}

void skip_trial_nodes(const fs::path& dir) { mark_ended(dir); }

int run_node_meter_task(const slurm::JobFile& job, int index, const std::string& job_task, int restart, int rank,
                        const std::atomic<bool>* stop) {
  if (rank < 1 || rank >= job.trial_nodes)
    throw ConfigError(fmt::format("node meter {} is outside the trial's nodes 1 to {}", rank, job.trial_nodes - 1));
  auto spec = study::parse_spec(job.spec_text, job.spec_source, job.kind);
  spec.name = job.study;
  const std::string node = this_node_name();
  for (const auto& trial : job.tasks[static_cast<std::size_t>(index)]) {
    const auto dir = trial_nodes_dir(job, slurm::result_stem(trial.trial_id, job_task, restart));
    // Node 0 starts the trial (claims the folder) or skips it.
    while (!there(dir / kPrimary) && !there(dir / kEnded)) {
      if (stop && stop->load()) return 130;
      sleep_a_little();
    }
    if (!there(dir / kPrimary)) continue;  // skipped: done by an earlier task
    const auto config = planned_config(spec, trial);
    const auto partial = slurm::claim_node_file(dir, rank);
    run::RunSummary s;
    {
      auto store = store::Store::open(partial, {.wal = false});  // a shared folder: no WAL
      session::SessionOptions so;
      so.stop = stop;
      so.follow_primary = true;
      so.log = stderr;
      so.label = fmt::format("{} node {}", trial.label, rank);
      so.disabled_sources = job.disabled_sources;
      so.placement = fmt::format("Slurm job {}, node {} ({}) of a trial over {} nodes", job_task, rank,
                                 io::printable(node), job.trial_nodes);
      external::NodeMeterOptions mo;
      mo.publish = [&](const std::string& path) { write_whole(socket_entry(dir, node), path); };
      mo.run_ended = [&] { return there(dir / kEnded); };
      external::NodeMeterWorkload meter(config, mo);
      session::RunSession session(store, so);
      s = session.run(config, meter).summary;
    }
    // Whole or not at all: node 0 takes in only a finished file's name.
    slurm::finish_node_file(dir, rank);
    fmt::print(stderr, "{}: node {} of {} recorded {} epochs, {:.1f} J ({}) in {}\n", trial.label, rank,
               job.trial_nodes, s.epochs, s.energy_j, s.method, slurm::node_file(dir, rank).string());
    if (stop && stop->load()) return 130;
  }
  return 0;
}

}  // namespace powertrain::cli
