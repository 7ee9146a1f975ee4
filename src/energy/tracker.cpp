#include "powertrain/energy/tracker.h"

#include <algorithm>
#include <cmath>
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
std::string join_methods(bool counter, bool sampled, bool estimated) {
  std::string out;
  auto add = [&](bool on, std::string_view name) {
    if (!on) return;
    if (!out.empty()) out += '+';
    out += name;
  };
  add(counter, "counter");
  add(sampled, "sampled");
  add(estimated, "estimated");
  return out.empty() ? "none" : out;
}

constexpr std::size_t kMaxPidsPerGpu = 4096;

}  // namespace

struct Tracker::Open {
  std::string name;
  std::int64_t start_ns = 0;
  std::vector<double> start_energy_j;
  std::vector<double> peak_power_w;
  double peak_total_w = 0.0;
};

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
  ref_energy_j_.assign(n, 0.0);
  ref_t_ns_.assign(n, -1);
  smooth_.assign(n, false);
  report_j_.assign(n, 0.0);
  report_t_ns_.assign(n, 0);
  report_w_.assign(n, 0.0);
  scratch_.assign(n, ChannelSample{});
  for (const auto& m : meters_) boundary_read_.push_back(m->read_at_boundaries());
  gpu_pids_.assign(n, {});
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
    // Process lists are comparatively slow to read: sampler ticks only.
    std::size_t base = 0;
    for (auto& m : meters_) {
      const std::size_t k = m->channels().size();
      if (m->lists_processes()) {
        for (std::size_t i = 0; i < k; ++i) {
          try {
            auto& seen = gpu_pids_[base + i];
            for (auto pid : m->processes(i))
              if (seen.size() < kMaxPidsPerGpu && std::find(seen.begin(), seen.end(), pid) == seen.end())
                seen.push_back(pid);
          } catch (const Error&) {
            // A failed process list only loses attribution, never energy.
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
    try {
      if (partial)
        meter.read_energy(part_);
      else
        meter.read(part_);
    } catch (const Error& e) {
      ok = false;
      if (sampling_error_.empty()) sampling_error_ = meter.source() + ": " + e.what();
    }
    for (std::size_t j = 0; j < k; ++j) {
      const std::size_t i = base + j;
      const ChannelSample s = ok && j < part_.size() ? part_[j] : ChannelSample{};
      if (!partial) scratch_[i] = s;
      const double dt_s = read_t_ns_[i] < 0 ? 0.0 : static_cast<double>(t_ns - read_t_ns_[i]) * 1e-9;
      if (channels_[i].cumulative) {
        if (std::isnan(s.energy_j)) {
          cur_power_w_[i] = kNaN;
          continue;
        }
        if (!std::isnan(last_energy_j_[i])) acc_energy_j_[i] += std::max(0.0, s.energy_j - last_energy_j_[i]);
        last_energy_j_[i] = s.energy_j;
        // Power of a cumulative channel: over the sampler's interval, not over
        // the microseconds between two window boundaries (without a sampler:
        // between boundaries).
        if (!partial) {
          if (ref_t_ns_[i] >= 0 && t_ns > ref_t_ns_[i])
            held_power_w_[i] = (acc_energy_j_[i] - ref_energy_j_[i]) / (static_cast<double>(t_ns - ref_t_ns_[i]) * 1e-9);
          ref_energy_j_[i] = acc_energy_j_[i];
          ref_t_ns_[i] = t_ns;
        }
      } else {
        if (std::isnan(s.power_w)) {
          cur_power_w_[i] = kNaN;  // a failed read: the gap is bridged at the next one
          continue;
        }
        if (!std::isnan(held_power_w_[i]) && dt_s > 0.0)
          acc_energy_j_[i] += 0.5 * (held_power_w_[i] + s.power_w) * dt_s;  // trapezoid
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
        const double interval_s = std::chrono::duration<double>(options_.interval).count();
        report_w_[i] = std::max(0.0, held_power_w_[i] + (truth_j - report_j_[i]) / interval_s);
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

double Tracker::energy_at_locked(std::size_t i, std::int64_t t_ns) const {
  if (!running_ || !smooth_[i]) return sampled_energy_locked(i, t_ns);
  // A channel that boundaries do not read: its reported energy grows at its
  // latest power plus what the previous interval's slope missed, spread over one
  // interval, so it never jumps and never runs backwards, and it follows the
  // sampled energy with a lag of about one interval. A stalled sampler stops it
  // after ten intervals (at least 2 s) instead of extrapolating without end.
  const std::int64_t interval_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.interval).count();
  const std::int64_t cap_ns = std::max<std::int64_t>(10 * interval_ns, 2'000'000'000);
  const std::int64_t dt_ns = std::clamp<std::int64_t>(t_ns - report_t_ns_[i], 0, cap_ns);
  return report_j_[i] + report_w_[i] * static_cast<double>(dt_ns) * 1e-9;
}

double Tracker::sampled_energy_locked(std::size_t i, std::int64_t t_ns) const {
  // Energy up to the channel's last reading, plus its last power held since then.
  double e = acc_energy_j_[i];
  if (read_t_ns_[i] >= 0 && t_ns > read_t_ns_[i] && !std::isnan(held_power_w_[i]))
    e += held_power_w_[i] * static_cast<double>(t_ns - read_t_ns_[i]) * 1e-9;
  return e;
}

void Tracker::begin(std::string name) {
  std::function<void()> hook;
  {
    std::lock_guard lock(mu_);
    hook = sync_hook_;
  }
  if (hook) hook();
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
  for (std::size_t i = 0; i < channels_.size(); ++i) w->start_energy_j[i] = energy_at_locked(i, t);
  w->peak_power_w.assign(channels_.size(), 0.0);
  open_.push_back(std::move(w));
}

WindowResult Tracker::end(std::string_view name) {
  std::function<void()> hook;
  {
    std::lock_guard lock(mu_);
    hook = sync_hook_;
  }
  if (hook) hook();
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
  bool any[3] = {false, false, false};
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
    r.channels.push_back(ce);
    if (c.update_period_s > 0 && r.duration_s < c.update_period_s)
      r.notes.push_back(fmt::format(
          "window '{}' lasted {:.3f} s, shorter than the {:.3f} s update period of {}: its energy is uncertain",
          r.name, r.duration_s, c.update_period_s, c.id));
    if (!c.in_total) continue;
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
    for (const auto& c : channels_)
      if (c.in_total && c.component == comp.component) m[static_cast<int>(c.method)] = true;
    comp.method = join_methods(m[0], m[1], m[2]);
    comp.avg_power_w = r.duration_s > 0 ? comp.energy_j / r.duration_s : 0.0;
  }
  r.method = join_methods(any[0], any[1], any[2]);
  r.avg_power_w = r.duration_s > 0 ? r.energy_j / r.duration_s : 0.0;
  if (!sampling_error_.empty()) r.notes.push_back("a source failed while sampling: " + sampling_error_);
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
  return gpu_pids_;
}

std::string Tracker::sampling_error() const {
  std::lock_guard lock(mu_);
  return sampling_error_;
}

}  // namespace powertrain::energy
