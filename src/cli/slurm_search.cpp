// `powertrain search SPEC --slurm [--wait]`: asynchronous successive halving
// (search::decide_asynchronous) whose segments go out as Slurm array tasks as
// slots free up. Every pass takes the tasks' result files in, decides again
// from the store, and submits what may start now. The search keeps nothing
// in memory that the store does not hold, so a pass without --wait, a later
// pass, or --wait all drive the same search. See docs/search.md.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "slurm_search.h"
#include "powertrain/error.h"
#include "powertrain/io/text.h"
#include "powertrain/runner/runner.h"
#include "powertrain/search/asynchronous.h"
#include "powertrain/search/search.h"
#include "powertrain/session/signals.h"
#include "powertrain/slurm/slurm.h"
#include "powertrain/store/store.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/spec.h"
#include "powertrain/study/tables.h"

namespace powertrain::cli {
namespace fs = std::filesystem;
namespace {

// A segment sent this many times in one call that came back unfinished each
// time (cancelled, its node lost) is not sent again in that call.
constexpr int kMaxSendsPerCall = 3;
using Clock = std::chrono::steady_clock;
// How long a task just submitted counts as held although squeue does not list it yet.
constexpr auto kListedWithin = std::chrono::seconds(10);

// One line per pass: where each rung stands.
std::string rungs_line(const search::Settings& s, const std::vector<search::Observed>& observed) {
  std::string out;
  for (const auto& r : search::rung_summary(s, observed)) {
    if (r.setups == 0) continue;
    out += fmt::format("{}rung {} (epoch {}): {}/{} done{}{}", out.empty() ? "" : "; ", r.rung + 1, r.end_epoch,
                       r.finished, r.setups, r.running ? fmt::format(", {} in Slurm", r.running) : "",
                       r.promoted ? fmt::format(", {} promoted", r.promoted) : "");
  }
  return out.empty() ? "no segment yet" : out;
}

// What a task needs that its own result file lacks: the earlier segments'
// epochs, and the best measured energy to the target now.
slurm::SegmentJob segment_job(const store::Store& store, std::int64_t study_id, const study::PlannedTrial& planned,
                              const search::Segment& seg, double best_j) {
  slurm::SegmentJob job;
  job.segment = seg;
  if (std::isfinite(best_j)) job.best_j = best_j;
  for (const auto& key : planned.continues) {
    const auto t = store.find_trial(study_id, key);
    if (!t || !t->run_id || !store::is_done(t->status))
      throw ConfigError(fmt::format("{}: its earlier segment has not ended", planned.label));
    job.earlier_epochs[key] = store.epochs_of(*t->run_id);
  }
  return job;
}

}  // namespace

int submit_search(const study::StudySpec& spec, const std::string& db_arg, const SlurmSubmit& o, int slots) {
  if (slots < 1) throw ConfigError("--slots must be at least 1");
  const fs::path db = fs::absolute(db_arg);
  auto store = store::Store::open(db);
  session::StopOnSignals signals;

  // 1. The study, checked as for a local search; its segments are planned as they go out.
  runner::RunOptions ro;
  ro.db = db;
  ro.plan_only = true;
  ro.plan = std::vector<study::PlannedTrial>{};
  ro.log = o.quiet ? nullptr : stderr;
  ro.disabled_sources = o.disable;
  const auto planned = runner::run_study(spec, store, ro);
  const auto study = store.study(planned.study_id);
  const auto folder = slurm::study_folder(spec, db);
  for (const char* sub : {"jobs", "results", "logs"}) fs::create_directories(folder / sub);
  const auto setups = study::search_setups(spec);
  auto one_per_task = spec;  // a segment per array task: slots count segments
  one_per_task.execution.slurm.trials_per_task = 1;

  std::map<std::string, int> sends;  // segment key -> times sent in this call
  std::map<std::int64_t, Clock::time_point> sent_at;  // trial -> when it was last sent
  std::set<std::string> given_up;    // failed, or unfinished too often, in this call
  std::vector<std::string> submitted_jobs;
  int segments_sent = 0;
  std::string last_line;
  const bool terminal = !o.quiet && ::isatty(STDERR_FILENO) != 0;
  search::Decision d;
  for (;;) {
    print_collect(slurm::collect(store, study, folder), o.quiet || terminal);
    LiveState live;
    try {
      live = live_state(store, study.id);
    } catch (const IoError&) {
      if (!signals.flag()->load()) throw;  // Ctrl-C also stops a squeue in flight
    }
    // Just submitted and not yet listed by squeue: held all the same, never sent twice.
    for (const auto& [id, when] : sent_at)
      if (!live.by_trial.count(id) && Clock::now() - when < kListedWithin && !store::is_done(store.trial(id).status))
        live.by_trial[id] = slurm::LiveTask{"SUBMITTED", "", ""};
    // Segments sent in this call that came back unfinished: failed ones are
    // not sent again here (as a local search does), cancelled ones a few times.
    for (const auto& [key, n] : sends) {
      const auto t = store.find_trial(study.id, key);
      if (!t || live.by_trial.count(t->id) || store::is_done(t->status)) continue;
      if (t->status == store::TrialStatus::failed || n >= kMaxSendsPerCall) given_up.insert(key);
    }
    auto observed = observe_with_slurm(store, study.id, spec, &live, given_up);
    d = search::decide_asynchronous(spec.search, setups, observed, store.energy_of_study(study.id));

    // 2. As many of the segments that may start now as there are free slots.
    int free = slots - static_cast<int>(live.by_trial.size());
    std::vector<study::PlannedTrial> plan;
    std::vector<search::Segment> segs;
    for (const auto& seg : d.next) {
      if (free <= 0) break;
      auto t = study::segment_trial(spec, seg);
      if (given_up.count(t.spec.key)) continue;
      plan.push_back(std::move(t));
      segs.push_back(seg);
      --free;
    }
    if (!plan.empty()) {
      auto call = ro;
      call.plan = plan;
      call.log = nullptr;
      (void)runner::run_study(spec, store, call);  // the segments' trials, planned
      const double best_j = search::best_measured_j(spec.search, observed);
      std::vector<slurm::TaskTrial> trials;
      for (std::size_t i = 0; i < plan.size(); ++i) {
        slurm::TaskTrial t;
        t.trial_id = store.find_trial(study.id, plan[i].spec.key)->id;
        t.key = plan[i].spec.key;
        t.label = plan[i].label;
        t.phase = plan[i].spec.phase;
        t.segment = segment_job(store, study.id, plan[i], segs[i], best_j);
        sent_at[t.trial_id] = Clock::now();
        trials.push_back(std::move(t));
        ++sends[plan[i].spec.key];
      }
      const auto s = submit_array(store, one_per_task, db, folder, trials, o, std::nullopt, "segments");
      submitted_jobs.push_back(s.job_id);
      segments_sent += s.trials;
      if (!o.quiet) {
        std::vector<std::string> labels;
        for (const auto& p : plan) labels.push_back(p.label);
        fmt::print(stderr, "{}submitted job {}: {} segment{} ({})\n", terminal ? "\r\033[K" : "", s.job_id, s.trials,
                   s.trials == 1 ? "" : "s", io::printable(fmt::format("{}", fmt::join(labels, ", "))));
      }
      continue;  // decide again with these in Slurm's queue
    }
    const auto line = rungs_line(spec.search, observed);
    if (!o.quiet && (terminal || line != last_line)) {
      fmt::print(stderr, "{}search '{}': {}{}", terminal ? "\r\033[K" : "", io::printable(spec.name), line,
                 terminal ? "" : "\n");
      std::fflush(stderr);
    }
    last_line = line;
    if (d.finished || !o.wait) break;
    if (signals.flag()->load()) {
      std::set<std::string> jobs;
      for (const auto& [trial, job_task] : live.job_of_trial)
        if (live.by_trial.count(trial)) jobs.insert(job_task.substr(0, job_task.find('_')));
      const auto ids = fmt::format("{}", fmt::join(jobs, " "));
      fmt::print(stderr,
                 "{}stopped driving the search; its Slurm jobs go on{}: `powertrain search {} --db {} --slurm` takes "
                 "their results in and goes on{}\n",
                 terminal ? "\n" : "", ids.empty() ? "" : " (" + ids + ")", spec.source, db_arg,
                 ids.empty() ? "" : fmt::format(", `scancel {}` stops them", ids));
      return 130;
    }
    for (int i = 0; i < 10 && !signals.flag()->load(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (terminal) fmt::print(stderr, "\n");
  if (!o.quiet) {
    fmt::print(stderr, "search '{}' in {}: {} segment{} sent to Slurm now{}{}\n", io::printable(spec.name), db_arg,
               segments_sent, segments_sent == 1 ? "" : "s",
               given_up.empty() ? "" : fmt::format(", {} failed (they go out again when the same command runs again)",
                                                   given_up.size()),
               d.finished ? "" : "; not finished: run the same command again (or add --wait) to go on");
    if (!d.finished && !submitted_jobs.empty()) fmt::print(stderr, "results and logs go to {}\n", folder.string());
  }
  if (!d.finished) {
    if (!submitted_jobs.empty()) fmt::print("{}\n", fmt::join(submitted_jobs, " "));
    return 0;
  }
  print_study(stdout, store, store.study(study.id), false);
  return given_up.empty() ? 0 : 1;
}

}  // namespace powertrain::cli
