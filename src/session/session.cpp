#include "powertrain/session/session.h"

#include <memory>
#include <optional>

#include <fmt/format.h>

#include "powertrain/energy/registry.h"
#include "powertrain/error.h"
#include "powertrain/run/environment.h"
#include "powertrain/run/progress.h"

namespace powertrain::session {

void save_timeline(store::Store& store, std::int64_t run_id, const energy::Tracker& tracker, std::int64_t start_ns,
                   std::int64_t end_ns) {
  std::vector<energy::TimelineSample> part;
  for (auto& s : tracker.timeline())
    if (s.t_ns >= start_ns && s.t_ns <= end_ns) part.push_back(std::move(s));
  if (!part.empty()) store.add_timeline(run_id, tracker.channels(), part, start_ns);
}

RunSession::RunSession(store::Store& store, SessionOptions options) : store_(store), options_(std::move(options)) {
  energy::TrackerOptions t;
  t.interval = options_.interval;
  energy::validate(t);
}

RunOutcome RunSession::run(const run::RunConfig& config, run::Workload& workload) {
  return measure(
      config, workload, [&](const run::Environment& env) { return store_.begin_run(config, env); },
      [&](std::int64_t run_id, const run::RunSummary& s) { store_.finish_run(run_id, s); });
}

RunOutcome RunSession::run_trial(std::int64_t trial_id, const run::RunConfig& config, run::Workload& workload) {
  return measure(
      config, workload, [&](const run::Environment& env) { return store_.start_trial(trial_id, config, env); },
      [&](std::int64_t, const run::RunSummary& s) { store_.complete_trial(trial_id, s); });
}

RunOutcome RunSession::measure(const run::RunConfig& config, run::Workload& workload,
                               const std::function<std::int64_t(const run::Environment&)>& begin,
                               const std::function<void(std::int64_t, const run::RunSummary&)>& end) {
  energy::ProbeOptions probe_options;
  probe_options.disabled = options_.disabled_sources;
  auto probe = energy::probe_sources(probe_options);
  energy::TrackerOptions topts;
  topts.interval = options_.interval;
  energy::Tracker tracker(std::move(probe.meters), topts);

  const auto env = run::collect_environment(config.device, workload.threads(), &tracker, workload.framework());
  RunOutcome out;
  out.run_id = begin(env);
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
  {
    run::RunControl control(config, tracker, fanout, options_.stop, workload.loss_limits());
    control.set_run_id(out.run_id);
    try {
      control.start(env);
      workload.run(control);
    } catch (const StoreError&) {
      // Nothing more can be recorded; the run stays "running" in the store
      // and the next study start resets it to interrupted.
      throw;
    } catch (const std::exception& e) {
      control.fail(e.what());
    }
    out.summary = control.finish();
  }
  const auto window = tracker.end("run");
  tracker.stop();
  end(out.run_id, out.summary);
  save_timeline(store_, out.run_id, tracker, window.start_ns, window.end_ns);
  return out;
}

}  // namespace powertrain::session
