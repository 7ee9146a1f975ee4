// Studies on a Slurm cluster, the parts that train (powertrain-train only):
// `sweep|study ... --slurm [--wait]` plans a study (checking its data and
// commands as a local run would) and submits its pending trials as a job
// array; `slurm-task` is what each array task runs. See docs/cluster.md.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "commands.h"
#include "dispatch.h"
#include "slurm_search.h"
#include "slurm_trial_nodes.h"
#include "powertrain/error.h"
#include "powertrain/io/output.h"
#include "powertrain/io/text.h"
#include "powertrain/runner/runner.h"
#include "powertrain/session/signals.h"
#include "powertrain/slurm/slurm.h"
#include "powertrain/store/store.h"
#include "powertrain/study/analysis.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/spec.h"

namespace powertrain::cli {
namespace fs = std::filesystem;
namespace {

// A shell word: single quotes, with a quote inside written as '\''.
std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

Submitted submit_array(store::Store& store, const study::StudySpec& spec, const fs::path& db, const fs::path& folder,
                       const std::vector<slurm::TaskTrial>& trials, const SlurmSubmit& o,
                       const std::optional<std::string>& after_ok, const std::string& tag) {
  slurm::JobFile job;
  job.study = spec.name;
  job.kind = spec.kind;
  job.spec_text = spec.text;
  job.spec_source =
      spec.source.empty() || spec.source.front() == '<' ? spec.source : fs::absolute(spec.source).string();
  job.db = db.string();
  job.folder = folder.string();
  job.disabled_sources = o.disable;
  job.exclusive = spec.execution.slurm.exclusive;
  for (const auto* list : {&spec.execution.slurm.options, &o.options})
    for (const auto& opt : *list) job.exclusive = job.exclusive || opt == "--exclusive";  // =user, =mcs share nodes
  job.tasks = slurm::group_tasks(trials, spec.execution.slurm.trials_per_task);
  const auto stamp = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const auto base = folder / "jobs" / fmt::format("submit-{}-{}-{}", stamp, ::getpid(), tag);
  const auto job_file = fs::path(base.string() + ".json");
  const auto script = fs::path(base.string() + ".sh");
  // A trial whose program srun starts on several nodes gets a meter on each
  // (docs/cluster.md, "Trials over several nodes"): node 0's slurm-task runs
  // it, the other nodes' meter theirs.
  if (const auto& c = spec.base.command; c.distributed() && c.launcher == "srun" && c.nnodes > 1)
    job.trial_nodes = c.nnodes;
  slurm::write_job_file(job_file, job);
  const auto self = sh_quote(user_executable());
  const std::string meters =
      job.trial_nodes > 1
          ? fmt::format("srun --relative=1 --nodes={0} --ntasks={0} --ntasks-per-node=1 --overlap --kill-on-bad-exit=0 "
                        "{1} slurm-task --node-meter {2} &\n",
                        job.trial_nodes - 1, self, sh_quote(job_file.string()))
          : "";
  io::write_output(script,
                   fmt::format("#!/bin/sh\n# powertrain study '{}': one array task per group of trials\n{}"
                               "exec {} slurm-task {}\n",
                               io::printable(spec.name), meters, self, sh_quote(job_file.string())),
                   io::OutputRule{"job script", {}, 0, true});
  fs::permissions(script, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);

  std::vector<std::string> argv{"sbatch"};
  // A trial whose command srun starts on several nodes or tasks needs them in
  // its allocation (the batch script itself still runs once).
  auto options = o.options;
  if (const auto& c = spec.base.command; c.distributed() && c.launcher == "srun")
    options.insert(options.begin(), {fmt::format("--nodes={}", c.nnodes),
                                     fmt::format("--ntasks-per-node={}", c.nproc_per_node)});
  const auto args = slurm::sbatch_args(spec.execution.slurm, options, static_cast<int>(job.tasks.size()),
                                       "powertrain-" + io::safe_file_name(spec.name), folder / "logs", after_ok,
                                       script);
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = slurm::run_tool(argv);
  if (!r.started) throw ConfigError("sbatch is not installed here: --slurm needs a Slurm client (see docs/cluster.md)");
  if (r.exit_code != 0) {
    const auto line = r.err.substr(0, r.err.find('\n'));
    throw ConfigError(fmt::format("sbatch refused the job: {}", line.empty() ? "no reason given" : line));
  }
  Submitted s;
  s.job_id = slurm::parse_job_id(r.out);
  for (std::size_t i = 0; i < job.tasks.size(); ++i)
    for (const auto& t : job.tasks[i]) store.add_slurm_task(t.trial_id, s.job_id, static_cast<int>(i));
  s.trials = static_cast<int>(trials.size());
  return s;
}

namespace {

struct Counts {
  int total = 0, done = 0;
};
Counts count_done(const store::Store& store, std::int64_t study_id) {
  Counts c;
  for (const auto& t : store.trials_of(study_id)) {
    ++c.total;
    if (store::is_done(t.status)) ++c.done;
  }
  return c;
}

}  // namespace

int submit_study(const study::StudySpec& spec, const std::string& db_arg, const SlurmSubmit& o) {
  const fs::path db = fs::absolute(db_arg);
  auto store = store::Store::open(db);
  session::StopOnSignals signals;

  // 1. The study and its trials, checked as for a local run.
  runner::RunOptions ro;
  ro.db = db;
  ro.plan_only = true;
  ro.log = o.quiet ? nullptr : stderr;
  ro.disabled_sources = o.disable;
  const auto planned = runner::run_study(spec, store, ro);
  const auto study = store.study(planned.study_id);
  const auto folder = slurm::study_folder(spec, db);
  for (const char* sub : {"jobs", "results", "logs"}) fs::create_directories(folder / sub);

  // 2. What earlier tasks left, then what is still to run.
  print_collect(slurm::collect(store, study, folder), o.quiet);
  auto live = live_state(store, study.id);
  std::map<std::string, std::int64_t> id_of;
  for (const auto& t : store.trials_of(study.id)) id_of[t.key] = t.id;
  std::vector<slurm::TaskTrial> first, second;  // pretraining, then what needs its encoder
  int held = 0;
  const auto plan = study::plan_trials(spec);
  for (const auto& p : plan) {
    const auto id = id_of.at(p.spec.key);
    const auto status = store.trial(id).status;
    if (store::is_done(status)) continue;
    // Queued or running in Slurm, or held by a live local process (plan_only
    // reset those whose process died): not sent twice.
    if (live.by_trial.count(id) || status == store::TrialStatus::running) {
      ++held;
      continue;
    }
    if (p.encoder_from >= 0) {
      // As in a local run: a pretraining that diverged or failed leaves no usable encoder.
      const auto& pre = plan[static_cast<std::size_t>(p.encoder_from)];
      const auto pre_status = store.trial(id_of.at(pre.spec.key)).status;
      if (pre_status == store::TrialStatus::diverged || pre_status == store::TrialStatus::failed) {
        store.mark_trial_failed(id, fmt::format("its pretraining ({}) has no usable encoder: {}", pre.label,
                                                store::to_string(pre_status)));
        continue;
      }
    }
    (p.spec.phase == study::kPhasePretrain ? first : second).push_back({id, p.spec.key, p.label, p.spec.phase, {}});
  }

  // 3. One array per group; downstream trials wait for their encoders.
  std::vector<std::string> submitted_jobs;
  if (first.empty() && second.empty()) {
    if (!o.quiet)
      fmt::print(stderr, "study '{}': nothing to submit ({} trials done, {} queued or running in Slurm)\n",
                 io::printable(spec.name), count_done(store, study.id).done, held);
  } else {
    // Downstream trials wait for every pretraining job that may still write
    // an encoder: the one submitted now and those still queued or running.
    std::set<std::string> pretraining_jobs;
    for (const auto& [trial, task] : live.by_trial) {
      if (store.trial(trial).phase != study::kPhasePretrain) continue;
      const auto& jt = live.job_of_trial[trial];
      pretraining_jobs.insert(jt.substr(0, jt.find('_')));
    }
    if (!first.empty()) {
      const auto s = submit_array(store, spec, db, folder, first, o, std::nullopt, "pretrain");
      submitted_jobs.push_back(s.job_id);
      pretraining_jobs.insert(s.job_id);
      if (!o.quiet)
        fmt::print(stderr, "submitted job {}: {} pretraining trial{}\n", s.job_id, s.trials, s.trials == 1 ? "" : "s");
    }
    std::optional<std::string> after;
    if (!pretraining_jobs.empty()) after = fmt::format("{}", fmt::join(pretraining_jobs, ":"));
    if (!second.empty()) {
      const auto s = submit_array(store, spec, db, folder, second, o, after, "trials");
      submitted_jobs.push_back(s.job_id);
      if (!o.quiet)
        fmt::print(stderr, "submitted job {}: {} trial{}{}\n", s.job_id, s.trials, s.trials == 1 ? "" : "s",
                   after ? fmt::format(", after job {} succeeds", *after) : "");
    }
    if (!o.quiet) fmt::print(stderr, "results and logs go to {}\n", folder.string());
  }
  if (!o.wait) {
    if (!submitted_jobs.empty()) fmt::print("{}\n", fmt::join(submitted_jobs, " "));
    return 0;
  }

  // 4. --wait: take results in as they come, until Slurm holds none of the study's trials.
  const bool terminal = !o.quiet && ::isatty(STDERR_FILENO) != 0;
  int last_done = -1;
  for (;;) {
    const auto c = slurm::collect(store, study, folder);
    try {
      live = live_state(store, study.id);
    } catch (const IoError&) {
      if (!signals.flag()->load()) throw;  // Ctrl-C also stops a squeue in flight: that is not its failure
    }
    const auto n = count_done(store, study.id);
    int running = 0;
    for (const auto& [id, t] : live.by_trial) running += t.state == "RUNNING" || t.state == "COMPLETING";
    const int queued = static_cast<int>(live.by_trial.size()) - running;
    if (!o.quiet && (terminal || n.done != last_done)) {
      fmt::print(stderr, "{}study '{}': {}/{} trials done, {} running, {} queued{}", terminal ? "\r\033[K" : "",
                 io::printable(spec.name), n.done, n.total, running, queued, terminal ? "" : "\n");
      std::fflush(stderr);
    }
    last_done = n.done;
    if (c.running == 0 && live.by_trial.empty()) break;
    if (signals.flag()->load()) {
      // Said even when quiet: the jobs keep the cluster busy after this exits.
      std::set<std::string> jobs(submitted_jobs.begin(), submitted_jobs.end());
      for (const auto& [trial, job_task] : live.job_of_trial)
        if (live.by_trial.count(trial)) jobs.insert(job_task.substr(0, job_task.find('_')));
      const auto ids = fmt::format("{}", fmt::join(jobs, " "));
      fmt::print(stderr,
                 "{}stopped waiting; the study's Slurm jobs go on{}: `powertrain collect {}` takes their results in{}\n",
                 terminal ? "\n" : "", ids.empty() ? "" : " (" + ids + ")", db_arg,
                 ids.empty() ? "" : fmt::format(", `scancel {}` stops them", ids));
      return 130;
    }
    for (int i = 0; i < 20 && !signals.flag()->load(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (terminal) fmt::print(stderr, "\n");
  const auto last = slurm::collect(store, study, folder);
  print_collect(last, o.quiet);
  if (!o.quiet && !last.sacct_note.empty())
    fmt::print(stderr, "the cluster's own energy figures: none ({})\n", last.sacct_note);
  const auto n = count_done(store, study.id);
  print_study(stdout, store, store.study(study.id), false);
  return n.done == n.total ? 0 : 1;
}

namespace {

// A search's segment in an array task: its trial planned from the job file,
// continuing the earlier segments' epochs (which this task's result file
// lacks) and the state the last of them saved beside the study's database,
// with Zeus's rule against the best measured when it went out.
void configure_segment(runner::RunOptions& ro, const study::StudySpec& spec, const slurm::TaskTrial& trial) {
  if (spec.kind != "search") throw ConfigError("a segment of a study that is not a search");
  const auto& job = *trial.segment;
  auto planned = study::segment_trial(spec, job.segment);
  if (planned.spec.key != trial.key)
    throw ConfigError(fmt::format("the job file's segment of {} does not match its trial", trial.label));
  std::vector<predict::CurvePoint> prior;
  for (const auto& key : planned.continues) {
    const auto it = job.earlier_epochs.find(key);
    if (it == job.earlier_epochs.end()) continue;
    for (const auto& e : it->second)
      if (e.epoch == static_cast<int>(prior.size()) + 1) prior.push_back({e.epoch, e.val_metric, e.energy_j});
  }
  ro.plan = std::vector<study::PlannedTrial>{std::move(planned)};
  ro.earlier_epochs = job.earlier_epochs;
  ro.stop_rule = runner::segment_stop_rule(spec, std::move(prior),
                                           job.best_j ? *job.best_j : std::numeric_limits<double>::infinity());
}

// One array task: its trials, each into a result file of its own.
int run_slurm_task(const std::string& job_path, int index_arg, bool node_meter) {
  const auto job = slurm::read_job_file(job_path);
  const int index = index_arg >= 0 ? index_arg : std::atoi(env_or("SLURM_ARRAY_TASK_ID", "-1").c_str());
  if (index < 0 || index >= static_cast<int>(job.tasks.size()))
    throw ConfigError(fmt::format("array task {} is not in the job file ({} tasks)", index, job.tasks.size()));
  const std::string job_task =
      fmt::format("{}_{}", env_or("SLURM_ARRAY_JOB_ID", env_or("SLURM_JOB_ID", "local")), index);
  const int restart = std::atoi(env_or("SLURM_RESTART_COUNT", "0").c_str());
  // Over several nodes the program runs in a step of its own on each node:
  // the run's share of a node is its job's, every step (a Slurm cgroup).
  if (job.trial_nodes > 1) ::setenv("POWERTRAIN_SLURM_CGROUP", "job", 1);
  if (node_meter) {  // another node of the trials' allocation: node 0 is the step's node before ours
    session::StopOnSignals signals;
    return run_node_meter_task(job, index, job_task, restart, 1 + std::atoi(env_or("SLURM_NODEID", "0").c_str()),
                               signals.flag());
  }
  auto spec = study::parse_spec(job.spec_text, job.spec_source, job.kind);
  spec.name = job.study;
  const fs::path results = fs::path(job.folder) / "results";
  fs::create_directories(results);

  // Node-wide sources (RAPL, the CPU estimate) count every job on the node:
  // the run says whether it had the node to itself.
  const std::string placement = fmt::format(
      "Slurm job {} on {}{}", job_task, env_or("SLURMD_NODENAME", "an unnamed node"),
      job.exclusive ? ", a whole node" : ", a node shared with other jobs (node-wide energy includes their work)");

  session::StopOnSignals signals;
  int unfinished = 0;
  for (const auto& trial : job.tasks[static_cast<std::size_t>(index)]) {
    if (signals.flag()->load()) break;
    // A requeued or repeated task: a finished result of this trial is there already.
    bool done_before = false;
    const std::string prefix = fmt::format("trial-{}-", trial.trial_id);
    for (const auto& e : fs::directory_iterator(results)) {
      const auto name = e.path().filename().string();
      if (name.rfind(prefix, 0) != 0 || name.find(".partial.") != std::string::npos ||
          e.path().extension() != ".db")
        continue;
      try {
        // Through a private copy: a planted link or FIFO is never followed or opened.
        const slurm::ResultCopy copy(e.path());
        auto prev = store::Store::open_readonly(copy.path());
        if (const auto s = prev.find_study(job.study))
          if (const auto t = prev.find_trial(s->id, trial.key)) done_before = done_before || store::is_done(t->status);
      } catch (const Error&) {
      }
    }
    const auto stem = slurm::result_stem(trial.trial_id, job_task, restart);
    if (done_before) {
      fmt::print(stderr, "{}: done already by an earlier task; not run again\n", trial.label);
      if (job.trial_nodes > 1) skip_trial_nodes(trial_nodes_dir(job, stem));
      continue;
    }
    const auto partial = results / (stem + slurm::kPartialSuffix);
    const auto final_path = results / (stem + ".db");
    store::TrialStatus status = store::TrialStatus::pending;
    bool stopped = false;
    {
      auto store = store::Store::open(partial, {.wal = false});
      std::optional<PrimaryNodes> nodes;  // a trial over several nodes: a meter on each
      if (job.trial_nodes > 1)
        nodes.emplace(trial_nodes_dir(job, stem), job.trial_nodes, trial_nodes_wait_s(), signals.flag());
      runner::RunOptions ro;
      ro.db = job.db;
      ro.only_keys = {trial.key};
      ro.encoder_from_file = true;
      ro.stop = signals.flag();
      ro.log = stderr;
      ro.disabled_sources = job.disabled_sources;
      ro.placement = placement;
      if (trial.segment) configure_segment(ro, spec, trial);
      std::int64_t run_id = 0;
      if (nodes)
        ro.on_trial_start = [&](const study::PlannedTrial&, std::int64_t started) {
          run_id = started;
          nodes->on_run_start(store, run_id);
        };
      const auto r = runner::run_study(spec, store, ro);
      stopped = r.stopped;
      if (nodes && run_id > 0) print_node_merge(run_id, nodes->finish(store, run_id), false);
      if (const auto t = store.find_trial(r.study_id, trial.key)) status = t->status;
    }
    // Whole or not at all: the finished file appears under its final name in one step.
    fs::rename(partial, final_path);
    // A pretraining without a usable encoder must not satisfy afterok.
    if (!store::is_done(status) || (status == store::TrialStatus::diverged && trial.phase == study::kPhasePretrain))
      ++unfinished;
    if (stopped) break;
  }
  if (signals.flag()->load()) return 130;
  return unfinished > 0 ? 3 : 0;
}

}  // namespace

void add_slurm_task_command(CLI::App& app, Context& ctx) {
  auto job = std::make_shared<std::string>();
  auto index = std::make_shared<int>(-1);
  auto* cmd = app.add_subcommand("slurm-task", training_help("slurm-task"));
  cmd->group("");  // not for users
  cmd->add_option("JOBFILE", *job, "The submission's job file")->required();
  auto meter = std::make_shared<bool>(false);
  cmd->add_option("--index", *index, "Array index (default: $SLURM_ARRAY_TASK_ID)");
  cmd->add_flag("--node-meter", *meter, "Meter this node of a trial over several nodes (node 0 runs the trial)");
  cmd->callback([&ctx, job, index, meter] { ctx.exit_code = run_slurm_task(*job, *index, *meter); });
}

}  // namespace powertrain::cli
