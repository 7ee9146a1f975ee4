#include "powertrain/energy/tracker.h"

#include <algorithm>
#include <set>
#include <cmath>
#include <deque>
#include <unordered_set>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::energy {
namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// "counter+estimated": the distinct methods of a set of channels in a fixed order.

constexpr std::size_t kMaxPidsPerGpu = 4096;
// Readings kept per counter channel for its power span (a span of 1 s at the
// shortest interval, 10 ms, needs 100).
constexpr std::size_t kMaxPowerHistory = 4096;

}  // namespace

struct Tracker::Open {
  std::string name;
  std::int64_t start_ns = 0;
  std::vector<double> start_energy_j;
  std::vector<std::int64_t> start_uncovered_ns;
  std::vector<double> peak_power_w;
  double peak_total_w = 0.0;
  std::optional<std::pair<double, double>> cpu_start;  // machine, measured CPU-seconds
  std::vector<double> util_run, util_all;              // per GPU channel, at the start
};

bool material_interference(double others_cpu_s, double machine_cpu_s) {
  return others_cpu_s >= kMaterialOthersCpuS && machine_cpu_s > 0 &&
         others_cpu_s / machine_cpu_s >= kMaterialOthersShare;
}

double WindowCpu::others_s() const { return std::max(0.0, machine_s - measured_s); }
double WindowCpu::others_share() const { return machine_s > 0 ? others_s() / machine_s : 0.0; }

std::string method_label(const ChannelEnergy& c) {
  return std::string(to_string(c.method)) + (c.partial ? ", partial" : "");
}

double WindowResult::energy_j_of(Component c) const {
  for (const auto& comp : components)
    if (comp.component == c) return comp.energy_j;
  return 0.0;
}

void validate(const TrackerOptions& options) {
  using namespace std::chrono_literals;
  if (options.interval < 10ms || options.interval > 60s)
    throw ConfigError(fmt::format("sampling interval {} ms is out of range (10 ms to 60000 ms)",
                                  options.interval.count()));
  if (options.max_timeline_samples < 16)
    throw ConfigError("timeline capacity must be at least 16 samples");
}

Tracker::Tracker(std::vector<std::unique_ptr<Meter>> meters, TrackerOptions options)
    : meters_(std::move(meters)), options_(options) {
  validate(options_);
  for (const auto& m : meters_)
    for (const auto& c : m->channels()) channels_.push_back(c);
  const std::size_t n = channels_.size();
  acc_energy_j_.assign(n, 0.0);
  last_energy_j_.assign(n, kNaN);
  read_t_ns_.assign(n, -1);
  cur_power_w_.assign(n, kNaN);
  held_power_w_.assign(n, kNaN);
  smooth_.assign(n, false);
  report_j_.assign(n, 0.0);
  report_t_ns_.assign(n, 0);
  report_w_.assign(n, 0.0);
  scratch_.assign(n, ChannelSample{});
  failed_since_ns_.assign(n, -1);
  lost_ns_.assign(n, 0);
  error_.assign(n, std::string());
  history_.assign(n, {});
  for (const auto& m : meters_) boundary_read_.push_back(m->read_at_boundaries());
  gpu_log_.assign(n, {});
  gpu_use_.assign(n, {});
  {
    std::size_t base = 0;
    for (const auto& m : meters_) {
      const std::size_t k = m->channels().size();
      if (m->lists_processes())
        for (std::size_t i = base; i < base + k; ++i) gpu_log_[i].supported = channels_[i].component == Component::gpu;
      base += k;
    }
  }
  timeline_.reserve(std::min<std::size_t>(options_.max_timeline_samples, 4096));
}

Tracker::~Tracker() { stop(); }

void Tracker::set_sync_hook(std::function<void()> hook) {
  std::lock_guard lock(mu_);
  sync_hook_ = std::move(hook);
}

void Tracker::start() {
  std::lock_guard lock(mu_);
  if (running_) return;
  smooth_.assign(channels_.size(), false);
  reading_locked(now_ns(), false);
  running_ = true;
  stop_requested_ = false;
  thread_ = std::thread([this] { run(); });
}

void Tracker::stop() {
  {
    std::lock_guard lock(mu_);
    if (!running_) return;
    stop_requested_ = true;
  }
  cv_.notify_all();
  thread_.join();
  std::lock_guard lock(mu_);
  running_ = false;
  reading_locked(now_ns(), false);
}

void Tracker::run() {
  std::unique_lock lock(mu_);
  auto next = std::chrono::steady_clock::now() + options_.interval;
  while (!stop_requested_) {
    if (cv_.wait_until(lock, next, [this] { return stop_requested_; })) break;
    // Schedule from the planned time, not from "now", so the rate does not drift;
    // skip ticks that were missed entirely instead of bursting to catch up.
    next += options_.interval;
    const auto now = std::chrono::steady_clock::now();
    if (next < now) next = now + options_.interval;

    reading_locked(now_ns(), false);
    ++tick_;
    if (tick_ % keep_every_ == 0) {
      if (timeline_.size() >= options_.max_timeline_samples) {
        // Halve the resolution: keep every other sample, then record half as often.
        std::size_t w = 0;
        for (std::size_t r = 0; r < timeline_.size(); r += 2) timeline_[w++] = std::move(timeline_[r]);
        timeline_.resize(w);
        keep_every_ *= 2;
      }
      TimelineSample s;
      s.t_ns = last_t_ns_;
      s.power_w = cur_power_w_;
      s.gpu.reserve(channels_.size());
      for (const auto& cs : scratch_) s.gpu.push_back(cs.gpu);
      timeline_.push_back(std::move(s));
    }
    // Process lists are comparatively slow to read: sampler ticks only. The
    // run's processes are read once per tick, only when some GPU lists them.
    std::set<int> run_pids;
    std::vector<Meter::ProcessUtilization> util;
    if (attribute_ && std::any_of(meters_.begin(), meters_.end(), [](const auto& m) { return m->lists_processes(); })) {
      std::lock_guard cpu_lock(cpu_mu_);
      if (cpu_measured_) {
        try {
          (void)cpu_measured_->cpu_busy_seconds();  // refreshes the tree
          for (int pid : cpu_measured_->pids()) run_pids.insert(pid);
        } catch (const std::exception&) {
          // The run's processes unknown this tick: nothing is marked.
        }
      }
    }
    std::size_t base = 0;
    for (auto& m : meters_) {
      const std::size_t k = m->channels().size();
      if (m->lists_processes()) {
        for (std::size_t i = 0; i < k; ++i) {
          GpuProcessLog& log = gpu_log_[base + i];
          try {
            auto& seen = log.pids;
            auto& use = gpu_use_[base + i];
            for (auto pid : m->processes(i)) {
              if (seen.size() < kMaxPidsPerGpu && std::find(seen.begin(), seen.end(), pid) == seen.end())
                seen.push_back(pid);
              if (!attribute_) continue;
              if (run_pids.count(static_cast<int>(pid)))
                use.run_seen = true;
              else if (use.foreign.size() < kMaxPidsPerGpu &&
                       std::find(use.foreign.begin(), use.foreign.end(), pid) == use.foreign.end())
                use.foreign.push_back(pid);
            }
            if (attribute_ && m->process_utilization(i, util)) {
              for (const auto& u : util) {
                use.util_all += u.sm_pct;
                if (run_pids.count(static_cast<int>(u.pid))) use.util_run += u.sm_pct;
              }
              use.util_samples += util.size();
            }
            ++log.lists;
          } catch (const Error& e) {
            // A failed process list only loses attribution, never energy: the
            // GPU's use becomes unknown, not "unused".
            ++log.failures;
            if (log.error.empty()) log.error = e.what();
          }
        }
      }
      base += k;
    }
  }
}

void Tracker::reading_locked(std::int64_t t_ns, bool boundary) {
  // At a boundary, while the sampler runs, only meters that must be read there
  // (counters) are read, and only their energy; the rest are left to
  // energy_at_locked() once a sampler reading has given every channel of the
  // meter a power (smooth_). Until then (the first interval after start())
  // they are read at boundaries too, as without a sampler.
  const bool partial = boundary && running_;
  const std::int64_t interval_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.interval).count();
  const std::int64_t cap_ns = hold_cap_ns();
  auto settled = [&](std::size_t first, std::size_t count) {
    for (std::size_t i = first; i < first + count; ++i)
      if (std::isnan(held_power_w_[i])) return false;
    return true;
  };
  auto smooth = [&](std::size_t first, std::size_t count) {
    for (std::size_t i = first; i < first + count; ++i)
      if (!smooth_[i]) return false;
    return count > 0;
  };
  std::size_t base = 0;
  double total_power_w = 0.0;
  for (std::size_t m = 0; m < meters_.size(); ++m) {
    Meter& meter = *meters_[m];
    const std::size_t k = meter.channels().size();
    if (partial && !boundary_read_[m] && smooth(base, k)) {
      for (std::size_t i = base; i < base + k; ++i)
        if (channels_[i].in_total && !std::isnan(cur_power_w_[i])) total_power_w += cur_power_w_[i];
      base += k;
      continue;
    }
    bool ok = true;
    std::string meter_error;
    try {
      if (partial)
        meter.read_energy(part_);
      else
        meter.read(part_);
    } catch (const Error& e) {
      ok = false;
      meter_error = meter.source() + ": " + e.what();
      if (sampling_error_.empty()) sampling_error_ = meter_error;
    }
    for (std::size_t j = 0; j < k; ++j) {
      const std::size_t i = base + j;
      const ChannelSample s = ok && j < part_.size() ? part_[j] : ChannelSample{};
      if (!partial) scratch_[i] = s;
      const bool cumulative = channels_[i].cumulative;
      if (cumulative ? std::isnan(s.energy_j) : std::isnan(s.power_w)) {
        // This channel failed (alone, or with its whole source). A counter is
        // not extrapolated past its last reading; sampled power is held for at
        // most the cap. The gap is bridged when the channel answers again.
        cur_power_w_[i] = kNaN;
        if (failed_since_ns_[i] < 0) failed_since_ns_[i] = t_ns;
        std::string why = ok ? meter.channel_error(j) : meter_error;
        if (why.empty()) why = channels_[i].id + " returned no reading";
        error_[i] = std::move(why);
        continue;
      }
      const std::int64_t gap_ns = read_t_ns_[i] < 0 ? 0 : t_ns - read_t_ns_[i];
      const bool after_failure = failed_since_ns_[i] >= 0;
      failed_since_ns_[i] = -1;
      if (cumulative) {
        if (!std::isnan(last_energy_j_[i])) acc_energy_j_[i] += std::max(0.0, s.energy_j - last_energy_j_[i]);
        last_energy_j_[i] = s.energy_j;
        if (!partial) held_power_w_[i] = counter_power_locked(i, t_ns, s.power_w, interval_ns);
      } else {
        if (!std::isnan(held_power_w_[i]) && gap_ns > 0) {
          if (after_failure && gap_ns > cap_ns) {
            // Windows saw the last power held for the cap and no longer: that
            // much is kept, the rest of the gap was not measured.
            acc_energy_j_[i] += held_power_w_[i] * static_cast<double>(cap_ns) * 1e-9;
            lost_ns_[i] += gap_ns - cap_ns;
          } else {
            acc_energy_j_[i] += 0.5 * (held_power_w_[i] + s.power_w) * static_cast<double>(gap_ns) * 1e-9;  // trapezoid
          }
        }
        held_power_w_[i] = s.power_w;
      }
      cur_power_w_[i] = held_power_w_[i];
      read_t_ns_[i] = t_ns;
      if (channels_[i].in_total && !std::isnan(cur_power_w_[i])) total_power_w += cur_power_w_[i];
    }
    // A sampler reading of a meter that boundaries skip: restart the reported
    // energy's slope so that it catches up with what the sample says.
    if (!boundary && running_ && !boundary_read_[m]) {
      const bool all_have_power = settled(base, k);
      for (std::size_t i = base; i < base + k; ++i) {
        const double truth_j = sampled_energy_locked(i, t_ns);
        if (!smooth_[i]) {
          if (!all_have_power) continue;
          smooth_[i] = true;  // from here on boundaries skip the meter
          report_j_[i] = truth_j;
        } else {
          report_j_[i] = energy_at_locked(i, t_ns);
        }
        report_t_ns_[i] = t_ns;
        const double interval_s = static_cast<double>(interval_ns) * 1e-9;
        report_w_[i] = std::max(0.0, slope_power_locked(i, t_ns) + (truth_j - report_j_[i]) / interval_s);
      }
    }
    base += k;
  }
  last_t_ns_ = t_ns;
  ++readings_;

  for (auto& w : open_) {
    if (t_ns <= w->start_ns) continue;
    for (std::size_t i = 0; i < channels_.size(); ++i)
      if (!std::isnan(cur_power_w_[i])) w->peak_power_w[i] = std::max(w->peak_power_w[i], cur_power_w_[i]);
    w->peak_total_w = std::max(w->peak_total_w, total_power_w);
  }
}

double Tracker::counter_power_locked(std::size_t i, std::int64_t t_ns, double reading_w, std::int64_t interval_ns) {
  // An instantaneous power reading (NVML's instant field) is the best peak there is.
  if (channels_[i].instant_power && !std::isnan(reading_w)) return reading_w;
  // Otherwise the counter's change, over at least one sampler interval and ten
  // of the counter's update periods: a counter that moves every 100 ms read
  // every 10 ms changes by nothing or by ten ticks' worth, and its power over
  // one tick would swing between 0 and ten times the truth. Over ten periods
  // the refresh phase moves the result by at most a tenth.
  const auto period_ns = static_cast<std::int64_t>(channels_[i].update_period_s * 1e9);
  const std::int64_t need_ns = std::max(interval_ns, 10 * period_ns);
  const std::int64_t slack_ns = interval_ns / 2;  // sampler ticks land a little early or late
  auto& h = history_[i];
  h.emplace_back(t_ns, acc_energy_j_[i]);
  while (h.size() > 2 && h[1].first <= t_ns - need_ns + slack_ns) h.pop_front();
  if (h.size() > kMaxPowerHistory) h.pop_front();  // boundaries without a sampler, thousands a second
  const auto& [t0, e0] = h.front();
  if (t_ns > t0 && t0 <= t_ns - need_ns + slack_ns)
    return (acc_energy_j_[i] - e0) / (static_cast<double>(t_ns - t0) * 1e-9);
  // Not enough history yet: the source's own power reading if it has one;
  // without a sampler, the change since the previous boundary.
  if (!std::isnan(reading_w)) return reading_w;
  if (!running_ && h.size() >= 2 && t_ns > t0) return (acc_energy_j_[i] - e0) / (static_cast<double>(t_ns - t0) * 1e-9);
  return kNaN;
}

std::int64_t Tracker::hold_cap_ns() const {
  const std::int64_t interval_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.interval).count();
  return std::max<std::int64_t>(10 * interval_ns, 2'000'000'000);
}

double Tracker::slope_power_locked(std::size_t i, std::int64_t t_ns) const {
  if (failed_since_ns_[i] < 0) return held_power_w_[i];
  // A failed channel: a counter adds nothing until it answers again; sampled
  // power is held until the cap.
  if (channels_[i].cumulative || read_t_ns_[i] < 0 || t_ns - read_t_ns_[i] >= hold_cap_ns()) return 0.0;
  return held_power_w_[i];
}

std::int64_t Tracker::uncovered_ns_locked(std::size_t i, std::int64_t t_ns) const {
  std::int64_t u = lost_ns_[i];
  if (failed_since_ns_[i] < 0) return u;
  // What a window may take of a failing channel: sampled power held up to the
  // cap; a counter read at boundaries nothing past its last reading; a model
  // the sampler feeds lags by about an interval anyway.
  const std::int64_t interval_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.interval).count();
  const std::int64_t allowed_ns = !channels_[i].cumulative         ? hold_cap_ns()
                                  : running_ && smooth_[i]         ? 2 * interval_ns
                                                                   : 0;
  const std::int64_t since = read_t_ns_[i] >= 0 ? read_t_ns_[i] : failed_since_ns_[i];
  return u + std::max<std::int64_t>(0, t_ns - since - allowed_ns);
}

double Tracker::energy_at_locked(std::size_t i, std::int64_t t_ns) const {
  if (!running_ || !smooth_[i]) return sampled_energy_locked(i, t_ns);
  // A channel that boundaries do not read: its reported energy grows at its
  // latest power plus what the previous interval's slope missed, spread over one
  // interval, so it never jumps and never runs backwards, and it follows the
  // sampled energy with a lag of about one interval. A stalled sampler stops it
  // after ten intervals (at least 2 s) instead of extrapolating without end.
  const std::int64_t dt_ns = std::clamp<std::int64_t>(t_ns - report_t_ns_[i], 0, hold_cap_ns());
  return report_j_[i] + report_w_[i] * static_cast<double>(dt_ns) * 1e-9;
}

double Tracker::sampled_energy_locked(std::size_t i, std::int64_t t_ns) const {
  // Energy up to the channel's last reading, plus, for sampled power, its last
  // power held since then, for at most the cap. A counter is never extrapolated:
  // past its last reading (a failed one) nothing is known.
  double e = acc_energy_j_[i];
  if (!channels_[i].cumulative && read_t_ns_[i] >= 0 && t_ns > read_t_ns_[i] && !std::isnan(held_power_w_[i]))
    e += held_power_w_[i] * static_cast<double>(std::min(t_ns - read_t_ns_[i], hold_cap_ns())) * 1e-9;
  return e;
}

void Tracker::account_cpu(std::unique_ptr<UsageSource> machine, std::unique_ptr<UsageSource> measured) {
  std::lock_guard lock(cpu_mu_);
  cpu_machine_ = std::move(machine);
  cpu_measured_ = std::move(measured);
}

std::optional<std::pair<double, double>> Tracker::cpu_now() {
  std::lock_guard lock(cpu_mu_);
  if (!cpu_machine_ || !cpu_measured_) return std::nullopt;
  try {
    // The measured tree first: a scan of /proc takes a few ms, and the
    // machine's time read last then holds the tree's (measured <= machine).
    const double measured = cpu_measured_->cpu_busy_seconds();
    const double machine = cpu_machine_->cpu_busy_seconds();
    return std::make_pair(machine, measured);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void Tracker::begin(std::string name) {
  std::function<void()> hook;
  {
    std::lock_guard lock(mu_);
    hook = sync_hook_;
  }
  if (hook) hook();
  // Outside mu_: reading /proc must not hold up the sampler.
  const auto cpu = cpu_now();
  std::lock_guard lock(mu_);
  // Taken under the lock: readings stay in time order with the sampler's.
  const std::int64_t t = now_ns();
  for (const auto& w : open_)
    if (w->name == name) throw ConfigError("measurement window '" + name + "' is already open");
  reading_locked(t, true);
  auto w = std::make_unique<Open>();
  w->name = std::move(name);
  w->start_ns = t;
  w->start_energy_j.resize(channels_.size());
  w->start_uncovered_ns.resize(channels_.size());
  for (std::size_t i = 0; i < channels_.size(); ++i) {
    w->start_energy_j[i] = energy_at_locked(i, t);
    w->start_uncovered_ns[i] = uncovered_ns_locked(i, t);
  }
  w->peak_power_w.assign(channels_.size(), 0.0);
  w->cpu_start = cpu;
  for (const auto& u : gpu_use_) {
    w->util_run.push_back(u.util_run);
    w->util_all.push_back(u.util_all);
  }
  open_.push_back(std::move(w));
}

WindowResult Tracker::end(std::string_view name) {
  std::function<void()> hook;
  {
    std::lock_guard lock(mu_);
    hook = sync_hook_;
  }
  if (hook) hook();
  const auto cpu = cpu_now();
  const auto memory_share = attribution_memory_share();
  std::lock_guard lock(mu_);
  const std::int64_t t = now_ns();  // under the lock, as in begin()
  auto it = std::find_if(open_.begin(), open_.end(), [&](const auto& w) { return w->name == name; });
  if (it == open_.end())
    throw ConfigError("measurement window '" + std::string(name) + "' is not open");
  reading_locked(t, true);
  const Open& w = **it;

  WindowResult r;
  r.name = w.name;
  r.start_ns = w.start_ns;
  r.end_ns = t;
  r.duration_s = static_cast<double>(t - w.start_ns) * 1e-9;
  r.peak_power_w = w.peak_total_w;
  if (w.cpu_start && cpu) {
    WindowCpu c;
    c.machine_s = std::max(0.0, cpu->first - w.cpu_start->first);
    c.measured_s = std::max(0.0, cpu->second - w.cpu_start->second);
    r.cpu = c;
  }
  bool any[3] = {false, false, false};
  bool any_partial = false;
  const std::int64_t duration_ns = t - w.start_ns;
  for (std::size_t i = 0; i < channels_.size(); ++i) {
    const auto& c = channels_[i];
    ChannelEnergy ce;
    ce.channel_id = c.id;
    ce.device = c.device;
    ce.component = c.component;
    ce.method = c.method;
    ce.in_total = c.in_total;
    // Never negative by construction: counters only grow, reported energy never
    // runs backwards. The clamp guards a counter the meter failed to keep monotonic.
    ce.energy_j = std::max(0.0, energy_at_locked(i, t) - w.start_energy_j[i]);
    ce.avg_power_w = r.duration_s > 0 ? ce.energy_j / r.duration_s : 0.0;
    ce.peak_power_w = w.peak_power_w[i];
    const std::int64_t uncovered_ns =
        std::clamp<std::int64_t>(uncovered_ns_locked(i, t) - w.start_uncovered_ns[i], 0, duration_ns);
    ce.partial = uncovered_ns > 0;
    ce.covered_s = static_cast<double>(duration_ns - uncovered_ns) * 1e-9;
    if (ce.partial) {
      ce.error = error_[i];
      r.notes.push_back(fmt::format(
          "{} ({}) covers {:.3f} s of the {:.3f} s of window '{}': {}; {}", c.id, method_label(ce), ce.covered_s,
          r.duration_s, r.name, ce.error.empty() ? "its source stopped answering" : ce.error,
          c.cumulative ? "its energy stops at its last reading"
                       : fmt::format("its last power was held for at most {:.1f} s", static_cast<double>(hold_cap_ns()) * 1e-9)));
    }
    r.channels.push_back(ce);
    if (c.update_period_s > 0 && r.duration_s < c.update_period_s)
      r.notes.push_back(fmt::format(
          "window '{}' lasted {:.3f} s, shorter than the {:.3f} s update period of {}: its energy is uncertain",
          r.name, r.duration_s, c.update_period_s, c.id));
    if (!c.note.empty() && std::find(r.notes.begin(), r.notes.end(), c.note) == r.notes.end())
      r.notes.push_back(c.note);
    if (!c.in_total) continue;
    any_partial = any_partial || ce.partial;
    r.energy_j += ce.energy_j;
    any[static_cast<int>(c.method)] = true;
    auto comp = std::find_if(r.components.begin(), r.components.end(),
                             [&](const ComponentEnergy& x) { return x.component == c.component; });
    if (comp == r.components.end()) {
      r.components.push_back({c.component, "", 0.0, 0.0});
      comp = std::prev(r.components.end());
    }
    comp->energy_j += ce.energy_j;
  }
  for (auto& comp : r.components) {
    bool m[3] = {false, false, false};
    bool part = false;
    for (const auto& c : r.channels) {
      if (!c.in_total || c.component != comp.component) continue;
      m[static_cast<int>(c.method)] = true;
      part = part || c.partial;
    }
    comp.method = join_methods(m[0], m[1], m[2]) + (part ? ", partial" : "");
    comp.avg_power_w = r.duration_s > 0 ? comp.energy_j / r.duration_s : 0.0;
  }
  r.method = join_methods(any[0], any[1], any[2]) + (any_partial ? ", partial" : "");
  r.avg_power_w = r.duration_s > 0 ? r.energy_j / r.duration_s : 0.0;
  if (!sampling_error_.empty()) r.notes.push_back("a source failed while sampling: " + sampling_error_);
  r.machine_energy_j = r.energy_j;
  for (auto& ce : r.channels) ce.machine_energy_j = ce.energy_j;
  if (attribute_) {
    RunShare share;
    share.machine_cpus = machine_cpus_;
    share.reserved_cpus = reserved_.cpus;
    share.reserved_basis = reserved_.basis;
    share.cpu_basis = run_basis_;
    if (r.cpu) {
      share.machine_cpu_s = r.cpu->machine_s;
      share.run_cpu_s = r.cpu->measured_s;
    }
    share.memory_share = memory_share;
    if (attribute_gpus_) share.gpus = claims_locked(&w.util_run, &w.util_all);
    share.unmeasured_gpu = unmeasured_gpu_;
    attribute_window(r, channels_, share);
  }
  open_.erase(it);
  return r;
}

std::vector<TimelineSample> Tracker::timeline() const {
  std::lock_guard lock(mu_);
  return timeline_;
}

std::chrono::milliseconds Tracker::timeline_interval() const {
  std::lock_guard lock(mu_);
  return options_.interval * static_cast<long>(keep_every_);
}

std::uint64_t Tracker::readings() const {
  std::lock_guard lock(mu_);
  return readings_;
}

std::vector<std::vector<std::uint32_t>> Tracker::gpu_processes() const {
  std::lock_guard lock(mu_);
  std::vector<std::vector<std::uint32_t>> out;
  for (const auto& log : gpu_log_) out.push_back(log.pids);
  return out;
}

std::vector<GpuProcessLog> Tracker::gpu_process_log() const {
  std::lock_guard lock(mu_);
  return gpu_log_;
}

std::string Tracker::sampling_error() const {
  std::lock_guard lock(mu_);
  return sampling_error_;
}

}  // namespace powertrain::energy

namespace powertrain::energy {

void Tracker::attribute_to(RunScope scope) {
  int cpus = 1;
  if (scope.machine) cpus = scope.machine->logical_cpus();
  std::string basis = "process tree";
  if (scope.run && !scope.run->covers().empty()) basis = scope.run->covers();
  account_cpu(std::move(scope.machine), std::move(scope.run));
  std::lock_guard lock(mu_);
  attribute_ = true;
  machine_cpus_ = std::max(1, cpus);
  reserved_ = scope.reserved;
  named_gpus_ = scope.gpus;
  named_cuda_ = scope.cuda_devices;
  host_pids_ = scope.host_pids;
  launches_elsewhere_ = scope.launches_elsewhere;
  attribute_gpus_ = scope.attribute_gpus;
  unmeasured_gpu_ = scope.unmeasured_gpu;
  memory_share_ = scope.memory;
  run_basis_ = std::move(basis);
}

std::optional<double> Tracker::attribution_memory_share() {
  {
    std::lock_guard lock(mu_);
    if (!attribute_ || !memory_share_) return std::nullopt;
  }
  std::lock_guard lock(cpu_mu_);
  if (!cpu_machine_ || !cpu_measured_) return std::nullopt;
  try {
    const double run = cpu_measured_->memory_used_bytes();
    const double machine = cpu_machine_->memory_used_bytes();
    if (!(machine > 0) || !(run >= 0)) return std::nullopt;
    return std::min(1.0, run / machine);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::vector<GpuAttribution> Tracker::gpu_claims() const {
  std::lock_guard lock(mu_);
  return claims_locked(nullptr, nullptr);
}

std::vector<GpuAttribution> Tracker::claims_locked(const std::vector<double>* util_run0,
                                                   const std::vector<double>* util_all0) const {
  std::vector<GpuAttribution> out(channels_.size());
  int gpu_ordinal = 0;
  for (std::size_t i = 0; i < channels_.size(); ++i) {
    const auto& c = channels_[i];
    if (c.component != Component::gpu) continue;
    const int ordinal = gpu_ordinal++;
    auto& a = out[i];
    const auto& log = gpu_log_[i];
    const auto& use = gpu_use_[i];
    const bool named =
        std::find(named_gpus_.begin(), named_gpus_.end(), c.gpu_index) != named_gpus_.end() ||
        std::find(named_cuda_.begin(), named_cuda_.end(), ordinal) != named_cuda_.end();
    if (named || use.run_seen) {
      a.claim = GpuClaim::run;
      if (!use.foreign.empty()) {
        const double run0 = util_run0 && i < util_run0->size() ? (*util_run0)[i] : 0.0;
        const double all0 = util_all0 && i < util_all0->size() ? (*util_all0)[i] : 0.0;
        const double run = use.util_run - run0, all = use.util_all - all0;
        if (all > 0) {
          a.share = run / all;
          a.basis = "per-process utilization";
        } else {
          a.note = fmt::format(
              "{} is shared with {} process(es) outside the run and the driver gave no per-process utilization for "
              "the window: it is charged whole",
              c.id, use.foreign.size());
        }
      }
      if (std::isfinite(c.mig_share)) {
        a.share *= c.mig_share;
        a.basis = a.basis.empty() ? "MIG slices" : a.basis + " x MIG slices";
        a.note = fmt::format("{} is a MIG instance: it is charged {:.0f}% of its whole GPU's energy, by its slices",
                             c.id, c.mig_share * 100.0);
      }
    } else if (log.supported && log.lists > 0 && log.failures == 0 && host_pids_ && !launches_elsewhere_) {
      a.claim = GpuClaim::other;
    } else {
      a.claim = GpuClaim::unknown;
      const std::string why = launches_elsewhere_ && log.supported && log.lists > 0
                                  ? "the command starts its work outside its process tree (a container, srun), so "
                                    "the GPU's processes cannot be matched to it; name its GPUs with --gpus"
                              : !log.supported  ? "its source does not list processes"
                              : log.failures > 0 ? "its process list could not be read (" + log.error + ")"
                              : !host_pids_      ? "NVML's process ids are the host's and this process is in another PID namespace"
                                                 : "no process list was read yet";
      a.note = fmt::format("{}: whether the run used it is unknown ({}); it is charged whole", c.id, why);
    }
  }
  return out;
}

}  // namespace powertrain::energy
