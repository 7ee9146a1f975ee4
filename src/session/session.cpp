#include "powertrain/session/session.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <unistd.h>

#include <fmt/format.h>

#include "powertrain/energy/quiet.h"
#include "powertrain/energy/scope.h"
#include "powertrain/predict/predict.h"
#include "powertrain/predict/study.h"
#include "powertrain/energy/registry.h"
#include "powertrain/error.h"
#include "powertrain/run/environment.h"
#include "powertrain/run/progress.h"

namespace powertrain::session {

void save_timeline(store::Runs& runs, std::int64_t run_id, const energy::Tracker& tracker, std::int64_t start_ns,
                   std::int64_t end_ns) {
  std::vector<energy::TimelineSample> part;
  for (auto& s : tracker.timeline())
    if (s.t_ns >= start_ns && s.t_ns <= end_ns) part.push_back(std::move(s));
  if (!part.empty()) runs.add_timeline(run_id, tracker.channels(), part, start_ns);
}

RunSession::RunSession(store::Store& store, SessionOptions options) : store_(store), options_(std::move(options)) {
  energy::TrackerOptions t;
  t.interval = options_.interval;
  energy::validate(t);
}

RunOutcome RunSession::run(const run::RunConfig& config, run::Workload& workload) {
  return measure(
      config, workload, [&](const run::Environment& env) { return store_.begin_run(config, env); },
      [&](RunOutcome& o) { store_.finish_run(o.run_id, o.summary); }, 0);
}

RunOutcome RunSession::run_trial(std::int64_t trial_id, const run::RunConfig& config, run::Workload& workload) {
  const auto owner = options_.owner.empty() ? store::Store::this_process_owner() : options_.owner;
  return measure(
      config, workload,
      [&](const run::Environment& env) -> std::int64_t {
        const auto c = store_.claim_trial(trial_id, config, env, owner, options_.lease_s);
        return c.outcome == store::Store::ClaimOutcome::claimed ? c.run_id : 0;
      },
      [&](RunOutcome& o) { o.kept_trial = store_.complete_claimed_trial(trial_id, o.run_id, o.summary); }, trial_id);
}

namespace {

// The other runs of the trial's study, for its forecasts (predict/study.h):
// every run with epochs 1..m in order; finished ones (converged, max epochs,
// diverged) also go to the backtest when they have a result to compare
// (converged, max epochs). Search studies are left out: their segments are
// stopped by the search, not by the rule the forecast follows.
struct StudyRuns {
  std::vector<predict::PeerRun> peers;
  std::vector<predict::BacktestRun> finished;
};
StudyRuns study_runs(const store::Store& store, std::int64_t trial_id) {
  StudyRuns out;
  if (trial_id <= 0) return out;
  const auto self = store.trial(trial_id);
  if (store.study(self.study_id).kind == "search") return out;
  for (const auto& tr : store.results_of(self.study_id)) {
    if (tr.trial.id == trial_id || !tr.run) continue;
    const auto status = tr.trial.status;
    const bool result = status == store::TrialStatus::converged || status == store::TrialStatus::max_epochs;
    const bool finished = result || status == store::TrialStatus::diverged;
    if (!finished && status != store::TrialStatus::running) continue;
    predict::PeerRun p;
    p.traits = {tr.run->config.batch_size, tr.trial.phase + "/" + tr.trial.task};
    p.finished = finished;
    bool in_order = true;
    double energy = 0.0;
    for (const auto& e : store.epochs_of(tr.run->id)) {
      in_order = in_order && e.epoch == static_cast<int>(p.epochs.size()) + 1;
      p.epochs.push_back({e.epoch, e.val_metric, e.energy_j});
      energy += e.energy_j;
    }
    if (!in_order || p.epochs.empty()) continue;
    if (result && p.epochs.size() >= 2) out.finished.push_back({p.epochs, predict::rule_settings(tr.run->config), p.traits, energy});
    out.peers.push_back(std::move(p));
  }
  return out;
}

// The CUDA ordinal a device names ("cuda" is 0), or -1 for the CPU.
int cuda_ordinal(const std::string& device) {
  if (!device.starts_with("cuda")) return -1;
  if (device.size() > 5 && device[4] == ':') return std::atoi(device.c_str() + 5);
  return 0;
}

// While a trial runs: renews its claim on a connection of its own; lost()
// turns true when another process has taken the trial over.
class ClaimKeeper {
 public:
  // wal: the journal the session's own connection uses (a Slurm task's result
  // file keeps its rollback journal).
  ClaimKeeper(const std::filesystem::path& db, std::int64_t trial_id, std::int64_t run_id, double lease_s, bool wal) {
    if (trial_id <= 0) return;  // a run outside any study holds no claim
    thread_ = std::thread([=, this] {
      std::optional<store::Store> store;
      auto next_renewal = std::chrono::steady_clock::now();
      const auto every = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(std::max(0.05, lease_s / 3.0)));
      std::unique_lock lock(mu_);
      while (!done_) {
        if (std::chrono::steady_clock::now() >= next_renewal) {
          next_renewal += every;
          try {
            if (!store) store.emplace(store::Store::open(db, {.wal = wal}));
            if (!store->renew_claim(trial_id, run_id, lease_s)) lost_ = true;
          } catch (const std::exception&) {
            // A busy or failing database: try again at the next renewal; the
            // lease is three renewals long.
          }
        }
        cv_.wait_until(lock, next_renewal);
      }
    });
  }
  ~ClaimKeeper() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  const std::atomic<bool>* lost_flag() const { return &lost_; }
  bool lost() const { return lost_; }

 private:
  std::atomic<bool> lost_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

double wait_for_quiet_machine(const energy::QuietRule& rule, std::FILE* log, const std::atomic<bool>* stop_flag) {
  std::unique_ptr<energy::UsageSource> machine, self;
  try {
    machine = energy::system_usage("/proc", "/sys");
    self = energy::process_usage("/proc", ::getpid());
  } catch (const std::exception& e) {
    if (log) fmt::print(log, "cannot tell whether the machine is quiet ({}); not waiting\n", e.what());
    return 0.0;
  }
  bool said = false;
  const auto sleep = [](double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); };
  const auto stop = [stop_flag] { return stop_flag && stop_flag->load(); };
  const auto busy = [&](const energy::QuietResult& r) {
    if (said || !log) return;
    said = true;
    fmt::print(log,
               "waiting for a quiet machine: other processes use {:.2f} CPUs (at most {:.2f} wanted); waiting up to "
               "{:.0f} s\n",
               r.others_busy_cpus, rule.max_busy_cpus, rule.max_wait_s);
    std::fflush(log);
  };
  const auto r = energy::wait_for_quiet(*machine, *self, rule, sleep, stop, busy);
  if (!r.quiet && !r.stopped && log)
    fmt::print(log,
               "the machine did not get quiet in {:.0f} s (other processes use {:.2f} CPUs); the run starts anyway "
               "and its CPU share is recorded\n",
               r.waited_s, r.others_busy_cpus);
  // A machine quiet at the first check was not waited for: nothing to record.
  return r.checks > 1 || !r.quiet ? r.waited_s : 0.0;
}

RunOutcome RunSession::measure(const run::RunConfig& config, run::Workload& workload,
                               const std::function<std::int64_t(const run::Environment&)>& begin,
                               const std::function<void(RunOutcome&)>& end, std::int64_t trial_id) {
  energy::ProbeOptions probe_options;
  probe_options.disabled = options_.disabled_sources;
  auto probe = energy::probe_sources(probe_options);
  energy::TrackerOptions topts;
  topts.interval = options_.interval;
  energy::Tracker tracker(std::move(probe.meters), topts);
  // The run's own energy: the machine's CPU time beside that of powertrain and
  // everything it starts (the built-in trainer runs in this process, a user's
  // program under it), the CPUs reserved for it, and its GPUs.
  std::string attribution;
  try {
    attribution = energy::attribute_run(tracker, ::getpid(), workload.threads(), cuda_ordinal(config.device));
  } catch (const std::exception& e) {
    // Unreadable /proc or cgroup: runs carry no CPU share, shown as unknown.
    attribution = fmt::format("not attributed ({}): the run is charged what the meters read", e.what());
  }

  auto env = run::collect_environment(config.device, workload.threads(), &tracker, workload.framework());
  env.placement = options_.placement;
  env.attribution = attribution;
  RunOutcome out;
  out.run_id = begin(env);
  if (out.run_id == 0) return out;  // a trial that is done, or held by another live process
  out.ran = true;
  if (options_.on_run_start) options_.on_run_start(out.run_id);

  StoreObserver to_store(store_, out.run_id);
  std::optional<run::ProgressPrinter> progress;
  std::vector<run::RunObserver*> observers{&to_store};
  if (options_.log) {
    const auto label = options_.label.empty() ? fmt::format("run {}", out.run_id) : options_.label;
    progress.emplace(options_.log, options_.terminal, label + (workload.synthetic_data() ? " (synthetic data)" : ""));
    observers.push_back(&*progress);
  }
  for (auto* o : options_.observers) observers.push_back(o);
  run::FanoutObserver fanout(observers);

  tracker.start();
  tracker.begin("run");
  bool lost = false;
  {
    ClaimKeeper keeper(store_.path(), trial_id, out.run_id, options_.lease_s, store_.wal());
    run::RunControl control(config, tracker, fanout, options_.stop, workload.loss_limits());
    control.also_stop_on(keeper.lost_flag());
    // Where the run is heading, after every epoch: shown, stored, reported.
    // Inside a study, from what its other runs know (predict/study.h).
    auto others = study_runs(store_, trial_id);
    std::optional<predict::Forecaster> alone;
    std::optional<predict::StudyForecaster> in_study;
    if (others.peers.empty()) {
      alone.emplace(config);
      for (const auto& e : options_.prior_epochs) alone->add(e);
    } else {
      const auto self = store_.trial(trial_id);
      in_study.emplace(config, predict::RunTraits{config.batch_size, self.phase + "/" + self.task},
                       std::move(others.peers), others.finished);
      for (const auto& e : options_.prior_epochs) in_study->add(e);
    }
    control.annotate_epochs([&](run::EpochRecord& r) { r.forecast = alone ? alone->after(r) : in_study->after(r); });
    control.set_run_id(out.run_id);
    if (options_.stop_rule) control.stop_when(options_.stop_rule);
    if (options_.follow_primary) control.follow_primary();
    try {
      control.start(env);
      if (!options_.prior_epochs.empty()) control.resume(options_.prior_epochs);
      workload.run(control);
    } catch (const StoreError&) {
      // Nothing more can be recorded; the run stays "running" in the store
      // and the next study start resets it to interrupted.
      throw;
    } catch (const std::exception& e) {
      control.fail(e.what());
    }
    lost = keeper.lost();
    if (lost) control.interrupt("");
    out.summary = control.finish();
    out.summary.quiet_wait_s = options_.quiet_wait_s;
    if (!options_.note.empty())
      out.summary.message = options_.note + (out.summary.message.empty() ? "" : "; " + out.summary.message);
  }
  if (lost && out.summary.status == run::RunStatus::interrupted)
    out.summary.message = "another process took the trial over (this one had not renewed its claim in time)";
  const auto window = tracker.end("run");
  tracker.stop();
  end(out);
  save_timeline(store_, out.run_id, tracker, window.start_ns, window.end_ns);
  return out;
}

}  // namespace powertrain::session
