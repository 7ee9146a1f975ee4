#pragma once
// A scripted Meter for window and sampler tests: the test sets what the next
// read returns.
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "powertrain/energy/meter.h"
#include "powertrain/error.h"

namespace powertrain::testing {

class FakeMeter final : public energy::Meter {
 public:
  explicit FakeMeter(std::vector<energy::ChannelInfo> channels, bool read_at_boundaries = true)
      : channels_(std::move(channels)), read_at_boundaries_(read_at_boundaries) {
    values_.assign(channels_.size(), energy::ChannelSample{});
  }
  std::string source() const override { return "fake"; }
  const std::vector<energy::ChannelInfo>& channels() const override { return channels_; }
  bool read_at_boundaries() const override { return read_at_boundaries_; }
  void read(std::vector<energy::ChannelSample>& out) override {
    std::lock_guard lock(*mu_);
    ++*reads_;
    if (*fail_) throw SourceError("scripted failure");
    out = values_;
  }
  // Handles stay valid after the meter moves into a Tracker.
  struct Control {
    std::shared_ptr<std::mutex> mu;
    std::vector<energy::ChannelSample>* values;
    std::shared_ptr<int> reads;
    std::shared_ptr<bool> fail;
    void set_energy(std::size_t i, double j) {
      std::lock_guard lock(*mu);
      (*values)[i].energy_j = j;
    }
    void set_power(std::size_t i, double w) {
      std::lock_guard lock(*mu);
      (*values)[i].power_w = w;
    }
    void set_fail(bool f) {
      std::lock_guard lock(*mu);
      *fail = f;
    }
    int reads_so_far() {
      std::lock_guard lock(*mu);
      return *reads;
    }
  };
  Control control() { return {mu_, &values_, reads_, fail_}; }

 private:
  std::vector<energy::ChannelInfo> channels_;
  bool read_at_boundaries_;
  std::vector<energy::ChannelSample> values_;
  std::shared_ptr<std::mutex> mu_ = std::make_shared<std::mutex>();
  std::shared_ptr<int> reads_ = std::make_shared<int>(0);
  std::shared_ptr<bool> fail_ = std::make_shared<bool>(false);
};

/// A meter driven by the steady clock, as real hardware is: each channel's
/// reading is a function of the seconds since the meter was made. A function
/// that returns NaN fails that channel alone, with `error` as its reason, as
/// one GPU falling off the bus does.
class ClockedMeter final : public energy::Meter {
 public:
  using Reading = std::function<energy::ChannelSample(double t_s)>;
  ClockedMeter(std::vector<energy::ChannelInfo> channels, std::vector<Reading> readings, bool read_at_boundaries = true)
      : channels_(std::move(channels)), readings_(std::move(readings)), read_at_boundaries_(read_at_boundaries) {}
  std::string source() const override { return "clocked"; }
  const std::vector<energy::ChannelInfo>& channels() const override { return channels_; }
  bool read_at_boundaries() const override { return read_at_boundaries_; }
  void read(std::vector<energy::ChannelSample>& out) override {
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    out.resize(channels_.size());
    errors_.assign(channels_.size(), std::string());
    for (std::size_t i = 0; i < channels_.size(); ++i) {
      out[i] = readings_[i](t);
      if (std::isnan(out[i].energy_j) && std::isnan(out[i].power_w)) errors_[i] = "GPU is lost (scripted)";
    }
  }
  std::string channel_error(std::size_t i) const override { return i < errors_.size() ? errors_[i] : std::string(); }

 private:
  std::vector<energy::ChannelInfo> channels_;
  std::vector<Reading> readings_;
  bool read_at_boundaries_;
  std::vector<std::string> errors_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

/// An energy counter at a steady `watts` that moves once per `refresh_s`, as
/// NVIDIA's does (about every 100 ms), and stops answering from `lost_s` on.
inline ClockedMeter::Reading stepped_counter(double watts, double refresh_s, double lost_s = -1.0) {
  return [=](double t) {
    energy::ChannelSample s;
    if (lost_s >= 0 && t >= lost_s) return s;  // NaN: the device is gone
    s.energy_j = watts * refresh_s * std::floor(t / refresh_s);
    return s;
  };
}

/// A steady power reading that stops answering from `lost_s` on.
inline ClockedMeter::Reading steady_power(double watts, double lost_s = -1.0) {
  return [=](double t) {
    energy::ChannelSample s;
    if (lost_s >= 0 && t >= lost_s) return s;
    s.power_w = watts;
    return s;
  };
}

inline energy::ChannelInfo counter_channel(std::string id, energy::Component c, bool in_total = true,
                                           double update_period_s = 0.0) {
  energy::ChannelInfo ch;
  ch.id = std::move(id);
  ch.source = "fake";
  ch.device = ch.id;
  ch.component = c;
  ch.method = energy::Method::counter;
  ch.cumulative = true;
  ch.in_total = in_total;
  ch.update_period_s = update_period_s;
  return ch;
}

inline energy::ChannelInfo power_channel(std::string id, energy::Component c, energy::Method m) {
  energy::ChannelInfo ch;
  ch.id = std::move(id);
  ch.source = "fake";
  ch.device = ch.id;
  ch.component = c;
  ch.method = m;
  ch.cumulative = false;
  return ch;
}

}  // namespace powertrain::testing
