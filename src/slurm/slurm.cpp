// Studies on a Slurm cluster: the shared folder, job files, sbatch's
// arguments, squeue and sacct, and taking the tasks' result files in.
#include "powertrain/slurm/slurm.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/external/process.h"
#include "powertrain/io/output.h"
#include "powertrain/io/text.h"
#include "powertrain/study/spec.h"

namespace powertrain::slurm {
namespace fs = std::filesystem;

fs::path study_folder(const study::StudySpec& spec, const fs::path& db) {
  const std::string name = io::safe_file_name(spec.name);
  // A relative folder is the database's neighbour, wherever the command runs.
  if (!spec.execution.slurm.dir.empty())
    return (fs::absolute(db).parent_path() / spec.execution.slurm.dir).lexically_normal() / name;
  auto base = db;
  base += ".slurm";
  return base / name;
}

fs::path study_folder(const store::Study& s, const fs::path& db) {
  study::StudySpec spec;
  try {
    spec = study::parse_spec(s.spec, fmt::format("<stored spec of study '{}'>", s.name), s.kind);
  } catch (const ConfigError&) {
  }
  spec.name = s.name;
  return study_folder(spec, db);
}

// --- job files -----------------------------------------------------------------

namespace {

// A number, or null for what JSON cannot hold (NaN: not known; infinities).
nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
double number_or_nan(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::numeric_limits<double>::quiet_NaN();
  return j.at(key).get<double>();
}

}  // namespace

// What a continued run needs of its earlier epochs: the convergence rule's
// inputs (metric, losses) and the forecaster's (energy, durations).
nlohmann::json segment_to_json(const SegmentJob& s) {
  nlohmann::json earlier = nlohmann::json::object();
  for (const auto& [key, epochs] : s.earlier_epochs) {
    auto list = nlohmann::json::array();
    for (const auto& e : epochs)
      list.push_back({{"epoch", e.epoch},
                      {"duration_s", finite_or_null(e.duration_s)},
                      {"train_duration_s", finite_or_null(e.train_duration_s)},
                      {"eval_duration_s", finite_or_null(e.eval_duration_s)},
                      {"energy_j", finite_or_null(e.energy_j)},
                      {"machine_energy_j", finite_or_null(e.machine_energy_j)},
                      {"train_energy_j", finite_or_null(e.train_energy_j)},
                      {"eval_energy_j", finite_or_null(e.eval_energy_j)},
                      {"method", e.method},
                      {"samples_per_s", finite_or_null(e.samples_per_s)},
                      {"train_loss", finite_or_null(e.train_loss)},
                      {"val_loss", finite_or_null(e.val_loss)},
                      {"val_metric", finite_or_null(e.val_metric)}});
    earlier[key] = std::move(list);
  }
  const auto& g = s.segment;
  return {{"batch_size", g.setup.batch_size},
          {"learning_rate", g.setup.learning_rate},
          {"threads", g.setup.threads},
          {"rung", g.rung},
          {"from_epoch", g.from_epoch},
          {"to_epoch", g.to_epoch},
          {"best_j", s.best_j ? finite_or_null(*s.best_j) : nlohmann::json(nullptr)},
          {"earlier_epochs", std::move(earlier)}};
}

SegmentJob segment_from_json(const nlohmann::json& j) {
  SegmentJob s;
  s.segment.setup.batch_size = j.at("batch_size").get<std::int64_t>();
  s.segment.setup.learning_rate = j.at("learning_rate").get<double>();
  s.segment.setup.threads = j.at("threads").get<int>();
  s.segment.rung = j.at("rung").get<int>();
  s.segment.from_epoch = j.at("from_epoch").get<int>();
  s.segment.to_epoch = j.at("to_epoch").get<int>();
  if (!j.at("best_j").is_null()) s.best_j = j.at("best_j").get<double>();
  for (const auto& [key, list] : j.at("earlier_epochs").items()) {
    auto& epochs = s.earlier_epochs[key];
    for (const auto& x : list) {
      run::EpochRecord e;
      e.epoch = x.at("epoch").get<int>();
      e.duration_s = number_or_nan(x, "duration_s");
      e.train_duration_s = number_or_nan(x, "train_duration_s");
      e.eval_duration_s = number_or_nan(x, "eval_duration_s");
      e.energy_j = number_or_nan(x, "energy_j");
      e.machine_energy_j = number_or_nan(x, "machine_energy_j");
      e.train_energy_j = number_or_nan(x, "train_energy_j");
      e.eval_energy_j = number_or_nan(x, "eval_energy_j");
      e.method = x.value("method", "");
      e.samples_per_s = number_or_nan(x, "samples_per_s");
      e.train_loss = number_or_nan(x, "train_loss");
      e.val_loss = number_or_nan(x, "val_loss");
      e.val_metric = number_or_nan(x, "val_metric");
      epochs.push_back(std::move(e));
    }
  }
  return s;
}

nlohmann::json to_json(const JobFile& j) {
  nlohmann::json tasks = nlohmann::json::array();
  for (const auto& t : j.tasks) {
    nlohmann::json trials = nlohmann::json::array();
    for (const auto& x : t) {
      trials.push_back({{"trial_id", x.trial_id}, {"key", x.key}, {"label", x.label}, {"phase", x.phase}});
      if (x.segment) trials.back()["segment"] = segment_to_json(*x.segment);
    }
    tasks.push_back(std::move(trials));
  }
  return {{"powertrain_job", 1},
          {"study", j.study},
          {"kind", j.kind},
          {"spec_text", j.spec_text},
          {"spec_source", j.spec_source},
          {"db", j.db},
          {"folder", j.folder},
          {"disabled_sources", j.disabled_sources},
          {"exclusive", j.exclusive},
          {"trial_nodes", j.trial_nodes},
          {"tasks", std::move(tasks)}};
}

JobFile job_from_json(const nlohmann::json& d) {
  try {
    if (!d.is_object() || d.value("powertrain_job", 0) != 1) throw ConfigError("not a powertrain job file");
    JobFile j;
    j.study = d.at("study").get<std::string>();
    j.kind = d.at("kind").get<std::string>();
    j.spec_text = d.at("spec_text").get<std::string>();
    j.spec_source = d.at("spec_source").get<std::string>();
    j.db = d.at("db").get<std::string>();
    j.folder = d.at("folder").get<std::string>();
    j.disabled_sources = d.at("disabled_sources").get<std::vector<std::string>>();
    j.exclusive = d.value("exclusive", false);
    j.trial_nodes = d.value("trial_nodes", 1);
    if (j.trial_nodes < 1 || j.trial_nodes > 4096)
      throw ConfigError(fmt::format("malformed job file: trial_nodes {} is not 1 to 4096", j.trial_nodes));
    for (const auto& t : d.at("tasks")) {
      std::vector<TaskTrial> trials;
      for (const auto& x : t) {
        TaskTrial trial;
        trial.trial_id = x.at("trial_id").get<std::int64_t>();
        trial.key = x.at("key").get<std::string>();
        trial.label = x.value("label", "");
        trial.phase = x.value("phase", "");
        if (x.contains("segment")) trial.segment = segment_from_json(x.at("segment"));
        trials.push_back(std::move(trial));
      }
      j.tasks.push_back(std::move(trials));
    }
    return j;
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(fmt::format("malformed job file: {}", e.what()));
  }
}

void write_job_file(const fs::path& path, const JobFile& j) {
  io::write_output(path, to_json(j).dump(2) + "\n", io::OutputRule{"powertrain job file", {}, 0, true});
}

JobFile read_job_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw IoError(fmt::format("{}: cannot read the job file", path.string()));
  try {
    return job_from_json(nlohmann::json::parse(in));
  } catch (const nlohmann::json::parse_error& e) {
    throw ConfigError(fmt::format("{}: not JSON: {}", path.string(), e.what()));
  } catch (const ConfigError& e) {
    throw ConfigError(fmt::format("{}: {}", path.string(), e.what()));
  }
}

std::vector<std::vector<TaskTrial>> group_tasks(const std::vector<TaskTrial>& trials, int per_task) {
  if (per_task < 1) throw ConfigError("trials per task must be at least 1");
  std::vector<std::vector<TaskTrial>> out;
  for (std::size_t i = 0; i < trials.size(); ++i) {
    if (i % static_cast<std::size_t>(per_task) == 0) out.emplace_back();
    out.back().push_back(trials[i]);
  }
  return out;
}

// --- sbatch, squeue, sacct ------------------------------------------------------

std::vector<std::string> sbatch_args(const study::SlurmSettings& s, const std::vector<std::string>& extra, int tasks,
                                     const std::string& job_name, const fs::path& logs,
                                     const std::optional<std::string>& after_ok, const fs::path& script) {
  if (tasks < 1) throw ConfigError("a job array needs at least one task");
  std::vector<std::string> a{"--parsable", fmt::format("--array=0-{}", tasks - 1), "--job-name=" + job_name,
                             "--output=" + (logs / "%A_%a.out").string()};
  if (s.gpus_per_trial > 0) a.push_back(fmt::format("--gres=gpu:{}", s.gpus_per_trial));
  if (s.cpus_per_trial > 0) a.push_back(fmt::format("--cpus-per-task={}", s.cpus_per_trial));
  if (!s.memory.empty()) a.push_back("--mem=" + s.memory);
  if (!s.time_limit.empty()) a.push_back("--time=" + s.time_limit);
  if (s.exclusive) a.push_back("--exclusive");
  if (after_ok) {
    a.push_back("--dependency=afterok:" + *after_ok);
    a.push_back("--kill-on-invalid-dep=yes");
  }
  for (const auto& o : s.options) a.push_back(o);
  for (const auto& o : extra) a.push_back(o);
  a.push_back(script.string());
  return a;
}

std::string parse_job_id(const std::string& out) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    const auto id = line.substr(0, line.find(';'));
    if (!id.empty() && std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) return id;
  }
  const auto first = out.substr(0, std::min<std::size_t>(out.find('\n'), 200));
  throw ConfigError(fmt::format("sbatch gave no job id (it said: {})", io::printable(first)));
}

ToolResult run_tool(const std::vector<std::string>& argv) {
  if (argv.empty()) throw ConfigError("no program to run");
  external::ChildSpec spec;
  spec.argv = argv;
  // sbatch exports its environment to the jobs it submits: no token in it,
  // or ending the tool would take the jobs for its own processes.
  spec.token = false;
  ToolResult r;
  external::Finished f;
  try {
    f = external::run_to_end(spec);
  } catch (const WorkloadError&) {
    r.started = false;  // not installed here
    r.exit_code = 127;
    return r;
  }
  r.out = std::move(f.out);
  r.err = std::move(f.err);
  r.exit_code = WIFEXITED(f.wait_status) ? WEXITSTATUS(f.wait_status) : 128 + WTERMSIG(f.wait_status);
  return r;
}

std::map<std::string, LiveTask> parse_squeue(const std::string& out) {
  std::map<std::string, LiveTask> m;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::string cur;
    for (char c : line) {
      if (c == '|') {
        f.push_back(cur);
        cur.clear();
      } else if (c != '\r') {
        cur += c;
      }
    }
    f.push_back(cur);
    if (f.size() < 3 || f[0].empty()) continue;
    LiveTask t;
    t.state = f[1];
    t.node = f[2] == "(null)" ? "" : f[2];
    if (f.size() > 3 && f[3] != "None") t.reason = f[3];
    m[f[0]] = t;
  }
  return m;
}

std::optional<std::map<std::string, LiveTask>> live_tasks(const std::vector<std::string>& job_ids) {
  if (job_ids.empty()) return std::map<std::string, LiveTask>{};
  std::string ids;
  for (const auto& j : job_ids) ids += (ids.empty() ? "" : ",") + j;
  const auto r = run_tool({"squeue", "-h", "-r", "-j", ids, "-o", "%i|%T|%N|%r"});
  if (!r.started) return std::map<std::string, LiveTask>{};  // no Slurm client here: nothing it could show
  if (r.exit_code == 0) return parse_squeue(r.out);
  // Jobs Slurm has forgotten are not an error here: nothing of them is live.
  if (r.err.find("Invalid job id") != std::string::npos) return std::map<std::string, LiveTask>{};
  return std::nullopt;
}

std::optional<double> parse_consumed_energy(const std::string& out) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    line.erase(std::remove_if(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\r' || c == '|'; }),
               line.end());
    if (line.empty()) continue;
    try {
      std::size_t used = 0;
      const double v = std::stod(line, &used);
      if (used != line.size() || !(v >= 0)) return std::nullopt;
      return v;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string result_stem(std::int64_t trial_id, const std::string& job_task, int restart) {
  return fmt::format("trial-{}-{}-r{}", trial_id, job_task, restart);
}

// --- taking result files in ---------------------------------------------------------

namespace {

// A descriptor that closes itself.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// What a directory entry is, from lstat (a link is not followed).
std::string kind_of(mode_t m) {
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

// Opens a regular file for reading without following a link or blocking (a
// FIFO); the descriptor is the same file lstat saw. -1 when it does not exist
// and may be missing.
int open_regular(const fs::path& p, const std::string& what, bool may_be_missing) {
  struct stat before {};
  if (::lstat(p.c_str(), &before) != 0) {
    if (errno == ENOENT && may_be_missing) return -1;
    throw IoError(fmt::format("cannot read {}: {}", what, std::strerror(errno)));
  }
  if (!S_ISREG(before.st_mode))
    throw ConfigError(fmt::format("{} is {}, not a result file: not read", what, kind_of(before.st_mode)));
  const int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT && may_be_missing) return -1;
    if (errno == ELOOP) throw ConfigError(fmt::format("{} is a symbolic link, not a result file: not read", what));
    throw IoError(fmt::format("cannot read {}: {}", what, std::strerror(errno)));
  }
  struct stat now {};
  if (::fstat(fd, &now) != 0 || !S_ISREG(now.st_mode) || now.st_ino != before.st_ino || now.st_dev != before.st_dev) {
    ::close(fd);
    throw ConfigError(fmt::format("{} changed while it was opened: not read", what));
  }
  return fd;
}

// Copies from `in` to a new file `to` (mode 0600); at most kMaxResultBytes.
void copy_fd(int in, const fs::path& to, const std::string& what) {
  Fd out{::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (out.fd < 0) throw IoError(fmt::format("cannot copy {}: {}", what, std::strerror(errno)));
  std::vector<char> buf(1 << 20);
  std::uintmax_t total = 0;
  for (;;) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw IoError(fmt::format("cannot read {}: {}", what, std::strerror(errno)));
    if (n == 0) break;
    total += static_cast<std::uintmax_t>(n);
    if (total > kMaxResultBytes)
      throw ConfigError(fmt::format("{} is larger than {} GiB, more than a result file holds: not read", what,
                                    kMaxResultBytes >> 30));
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = ::write(out.fd, buf.data() + off, static_cast<std::size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) throw IoError(fmt::format("cannot copy {}: {}", what, std::strerror(errno)));
      off += w;
    }
  }
}

}  // namespace

ResultCopy::ResultCopy(const fs::path& file) {
  const std::string what = file.filename().string();
  Fd in{open_regular(file, what, false)};
  struct stat st {};
  if (::fstat(in.fd, &st) != 0) throw IoError(fmt::format("cannot read {}: {}", what, std::strerror(errno)));
  if (st.st_size == 0) throw ConfigError(fmt::format("{} is empty: not a powertrain database", what));
  if (static_cast<std::uintmax_t>(st.st_size) > kMaxResultBytes)
    throw ConfigError(fmt::format("{} is larger than {} GiB, more than a result file holds: not read", what,
                                  kMaxResultBytes >> 30));
  // Not an SQLite file (zeros, a sparse file): said before anything is copied.
  char magic[16] = {};
  ssize_t n;
  do n = ::pread(in.fd, magic, sizeof magic, 0);
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof magic) || std::memcmp(magic, "SQLite format 3", sizeof magic) != 0)
    throw ConfigError(fmt::format("{} is not a powertrain database (not an SQLite file)", what));

  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/powertrain-result-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw IoError(fmt::format("cannot make a folder to read {}: {}", what, std::strerror(errno)));
  dir_ = tmpl;
  copy_ = dir_ / "result.db";
  try {
    copy_fd(in.fd, copy_, what);
    // A journal beside it goes with it: the copy is read as the file would be.
    for (const char* suffix : {"-journal", "-wal"}) {
      const auto side = fs::path(file.string() + suffix);
      Fd j{open_regular(side, what + suffix, true)};
      if (j.fd >= 0) copy_fd(j.fd, fs::path(copy_.string() + suffix), what + suffix);
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    throw;
  }
}

ResultCopy::~ResultCopy() {
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

void check_result_run(const store::Store& src, std::int64_t run_id) {
  const auto bad = [&](const std::string& what, double v) {
    return ConfigError(fmt::format("run {} says its {} is {}: not a measurement; not taken in", run_id, what, v));
  };
  // NaN: not known. Anything else is a non-negative finite amount below `max`.
  const auto amount = [&](const std::string& what, double v, double max) {
    if (!std::isnan(v) && !(v >= 0.0 && v <= max)) throw bad(what, v);
  };
  const auto metric = [&](const std::string& what, double v) {
    if (std::isinf(v)) throw bad(what, v);
  };
  constexpr double kMaxJ = 1e15;   // a 30 MW machine for a year
  constexpr double kMaxS = 1e9;    // thirty years
  constexpr double kMaxW = 1e8;
  const auto run = src.run(run_id);
  const auto& s = run.summary;
  if (s.epochs < 0 || s.epochs > run::kMaxEpochs) throw bad("epoch count", s.epochs);
  if (s.best_epoch < 0 || s.best_epoch > run::kMaxEpochs) throw bad("best epoch", s.best_epoch);
  amount("energy (J)", s.energy_j, kMaxJ);
  amount("machine energy (J)", s.machine_energy_j, kMaxJ);
  amount("duration (s)", s.duration_s, kMaxS);
  if (s.energy_to_target_j) amount("energy to the target (J)", *s.energy_to_target_j, kMaxJ);
  if (s.time_to_target_s) amount("time to the target (s)", *s.time_to_target_s, kMaxS);
  if (s.quiet_wait_s) amount("wait for a quiet machine (s)", *s.quiet_wait_s, kMaxS);
  if (s.cpu) {
    amount("machine CPU time (s)", s.cpu->machine_s, kMaxS);
    amount("measured CPU time (s)", s.cpu->measured_s, kMaxS);
  }
  metric("best validation metric", s.best_val_metric);
  metric("test metric", s.test_metric);
  for (double v : s.test_task_metrics) metric("test metric of a task", v);
  std::set<int> seen;
  for (const auto& e : src.epochs_of(run_id)) {
    const auto at = [&](const char* what) { return fmt::format("epoch {}'s {}", e.epoch, what); };
    if (e.epoch < 1 || e.epoch > run::kMaxEpochs || !seen.insert(e.epoch).second) throw bad("epoch number", e.epoch);
    amount(at("energy (J)"), e.energy_j, kMaxJ);
    amount(at("machine energy (J)"), e.machine_energy_j, kMaxJ);
    amount(at("training energy (J)"), e.train_energy_j, kMaxJ);
    amount(at("evaluation energy (J)"), e.eval_energy_j, kMaxJ);
    amount(at("duration (s)"), e.duration_s, kMaxS);
    amount(at("training time (s)"), e.train_duration_s, kMaxS);
    amount(at("evaluation time (s)"), e.eval_duration_s, kMaxS);
    amount(at("samples per second"), e.samples_per_s, 1e12);
    if (e.cpu) {
      amount(at("machine CPU time (s)"), e.cpu->machine_s, kMaxS);
      amount(at("measured CPU time (s)"), e.cpu->measured_s, kMaxS);
    }
    metric(at("validation metric"), e.val_metric);
    metric(at("validation loss"), e.val_loss);
    metric(at("training loss"), e.train_loss);
    for (double v : e.val_task_metrics) metric(at("validation metric of a task"), v);
    for (const auto& c : e.channels) {
      amount(at(("energy of " + c.channel_id + " (J)").c_str()), c.energy_j, kMaxJ);
      amount(at(("machine energy of " + c.channel_id + " (J)").c_str()), c.machine_energy_j, kMaxJ);
      amount(at(("average power of " + c.channel_id + " (W)").c_str()), c.avg_power_w, kMaxW);
      amount(at(("peak power of " + c.channel_id + " (W)").c_str()), c.peak_power_w, kMaxW);
    }
  }
  for (const auto& series : src.timeline_of(run_id))
    for (double w : series.power_w) amount("sampled power of " + series.channel_id + " (W)", w, kMaxW);
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "trial-12-345_6-r0" -> "345_6"
std::string job_task_of(const std::string& stem) {
  const auto a = stem.find('-', 6);
  const auto b = stem.rfind("-r");
  if (a == std::string::npos || b == std::string::npos || b <= a) return {};
  return stem.substr(a + 1, b - a - 1);
}

double age_s(const fs::path& p) {
  std::error_code ec;
  const auto t = fs::last_write_time(p, ec);
  if (ec) return 0.0;
  return std::chrono::duration<double>(fs::file_time_type::clock::now() - t).count();
}

constexpr const char* kDiedMessage =
    "its Slurm task stopped without finishing (cancelled, timed out, or its node failed); submit the study again "
    "to run the trial again";

}  // namespace

CollectResult collect(store::Store& store, const store::Study& study, const fs::path& folder, double stale_s,
                      bool ask_sacct, const LiveQuery& live_query) {
  CollectResult r;
  const auto dir = folder / "results";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return r;
  std::map<std::string, std::int64_t> by_key;
  for (const auto& t : store.trials_of(study.id)) by_key[t.key] = t.id;

  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    // Result files only as regular files: a link or a FIFO with a result
    // file's name (planted: the folder is shared) is named, never opened.
    if (ends_with(name, ".db")) {
      std::error_code lec;
      const auto st = fs::symlink_status(e.path(), lec);
      if (!lec && st.type() != fs::file_type::regular && !store.imported(name)) {
        ++r.unreadable;
        if (r.unreadable_note.empty())
          r.unreadable_note =
              fmt::format("{}: {}, not a result file: not read", name,
                          st.type() == fs::file_type::symlink     ? "a symbolic link"
                          : st.type() == fs::file_type::fifo      ? "a FIFO"
                          : st.type() == fs::file_type::directory ? "a directory"
                                                                  : "not a regular file");
        continue;
      }
    }
    files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  // Result files per array task: the cluster's energy is per task, so it is
  // recorded only for a task that ran one trial.
  std::map<std::string, int> files_of_task;
  for (const auto& file : files) {
    const auto name = file.filename().string();
    if (ends_with(name, ".db")) ++files_of_task[job_task_of(name.substr(0, name.find('.')))];
  }
  // Partial files nobody wrote for a while: their tasks are dead unless Slurm
  // still runs them (a suspended job, a clock or NFS time that lags).
  std::vector<std::string> stale_jobs;
  for (const auto& file : files) {
    const auto name = file.filename().string();
    if (ends_with(name, kPartialSuffix) && age_s(file) >= stale_s) {
      const auto jt = job_task_of(name.substr(0, name.size() - std::string_view(kPartialSuffix).size()));
      stale_jobs.push_back(jt.substr(0, jt.find('_')));
    }
  }
  std::optional<std::map<std::string, LiveTask>> live = std::map<std::string, LiveTask>{};
  if (!stale_jobs.empty()) {
    std::sort(stale_jobs.begin(), stale_jobs.end());
    stale_jobs.erase(std::unique(stale_jobs.begin(), stale_jobs.end()), stale_jobs.end());
    live = live_query ? live_query(stale_jobs) : live_tasks(stale_jobs);
  }

  std::vector<std::pair<std::int64_t, std::string>> taken;  // trial, job task (for sacct)
  for (const auto& file : files) {
    const std::string name = file.filename().string();
    const bool partial = ends_with(name, kPartialSuffix);
    if (!partial && !ends_with(name, ".db")) continue;
    // The file's own name is the key: a task's finished file comes in even
    // when its partial file was taken in as interrupted before.
    if (store.imported(name)) continue;
    const std::string stem = name.substr(0, name.size() - (partial ? std::string_view(kPartialSuffix).size() : 3));
    try {
      if (partial) {
        // A task that is alive writes its file at least every few seconds
        // (epochs, the renewal of its claim).
        if (fs::exists(dir / (stem + ".db"))) continue;  // renamed while we listed
        // Unknown (squeue failed): not declared dead.
        const bool held = !live || live->count(job_task_of(stem)) > 0;
        if (age_s(file) < stale_s || held) {
          ++r.running;
          continue;
        }
      }
      // Read through a private copy: the file is never followed, blocked on or
      // written (a dead task's hot journal is rolled back in the copy).
      const ResultCopy copy(file);
      auto src = store::Store::open_readonly(copy.path());
      const auto src_study = src.find_study(study.name);
      if (!src_study) continue;
      for (const auto& t : src.trials_of(src_study->id)) {
        if (!t.run_id) continue;
        const auto main = by_key.find(t.key);
        if (main == by_key.end()) continue;  // not a trial of this study's plan
        const auto run = src.run(*t.run_id);
        if (!partial && run.summary.status == run::RunStatus::running) break;  // not whole: left for later
        check_result_run(src, *t.run_id);
        store::ImportRequest q;
        q.source_db = copy.path();
        q.source = name;
        q.source_run_id = *t.run_id;
        q.trial_id = main->second;
        q.interrupted_message = partial ? kDiedMessage : "";
        q.slurm_job = job_task_of(stem);
        q.node = run.environment.host;
        switch (store.import_run(q)) {
          case store::ImportOutcome::imported:
            ++r.imported;
            if (partial && run.summary.status == run::RunStatus::running) ++r.interrupted;
            if (files_of_task[q.slurm_job] == 1 && !partial) taken.emplace_back(main->second, q.slurm_job);
            break;
          case store::ImportOutcome::duplicate: ++r.duplicates; break;
          case store::ImportOutcome::already: break;
        }
        break;  // one run per result file
      }
    } catch (const Error& e) {
      // One unreadable file does not stop the others; it is named.
      ++r.unreadable;
      if (r.unreadable_note.empty()) r.unreadable_note = fmt::format("{}: {}", name, e.what());
    }
  }

  // The cluster's own energy accounting, where it has one.
  if (!ask_sacct) return r;
  for (const auto& [trial_id, job_task] : taken) {
    if (job_task.empty()) continue;
    const auto tr = run_tool({"sacct", "-n", "-P", "-X", "-j", job_task, "-o", "ConsumedEnergyRaw,State"});
    if (!tr.started) {
      r.sacct_note = "sacct is not installed here";
      break;
    }
    if (tr.exit_code != 0) {
      const auto line = tr.err.substr(0, tr.err.find('\n'));
      r.sacct_note = fmt::format("sacct failed: {}", line.empty() ? "no reason given" : line);
      break;
    }
    // Only a task that has ended has its whole energy.
    const auto state = tr.out.substr(tr.out.find('|') == std::string::npos ? tr.out.size() : tr.out.find('|') + 1);
    if (state.rfind("RUNNING", 0) == 0 || state.rfind("PENDING", 0) == 0 || state.rfind("COMPLETING", 0) == 0) continue;
    const auto e = parse_consumed_energy(tr.out.substr(0, tr.out.find('|')));
    if (!e || *e <= 0) {
      r.sacct_note = "the cluster accounts no energy (no acct_gather_energy plugin: ConsumedEnergy is empty or 0)";
      continue;
    }
    const auto trial = store.trial(trial_id);
    if (trial.run_id) {
      store.set_cluster_energy(*trial.run_id, *e);
      ++r.cluster_energy;
    }
  }
  return r;
}

std::vector<CollectResult> collect_all(const fs::path& db) {
  std::vector<CollectResult> out;
  std::vector<std::pair<store::Study, fs::path>> todo;
  {
    auto ro = store::Store::open_readonly(db);
    for (const auto& s : ro.list_studies()) {
      const auto folder = study_folder(s.study, fs::absolute(db));
      std::error_code ec;
      if (fs::is_directory(folder / "results", ec)) todo.emplace_back(s.study, folder);
    }
  }
  if (todo.empty()) return out;
  auto store = store::Store::open(db);
  for (const auto& [s, folder] : todo) out.push_back(collect(store, s, folder));
  return out;
}

}  // namespace powertrain::slurm
