#pragma once
// An energy counter that grows with wall time at a fixed power, as a real
// counter does while a device draws steady power.
#include <chrono>
#include <memory>
#include <vector>

#include "powertrain/energy/meter.h"
#include "powertrain/energy/tracker.h"

namespace powertrain::testing {

class ClockMeter final : public energy::Meter {
 public:
  explicit ClockMeter(double watts) : watts_(watts), t0_(std::chrono::steady_clock::now()) {
    energy::ChannelInfo ch;
    ch.id = "clock:cpu";
    ch.source = "clock";
    ch.device = "cpu0";
    ch.component = energy::Component::cpu;
    ch.method = energy::Method::counter;
    ch.cumulative = true;
    channels_.push_back(ch);
  }
  std::string source() const override { return "clock"; }
  const std::vector<energy::ChannelInfo>& channels() const override { return channels_; }
  void read(std::vector<energy::ChannelSample>& out) override {
    out.assign(1, energy::ChannelSample{});
    out[0].energy_j = watts_ * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  double watts_;
  std::chrono::steady_clock::time_point t0_;
  std::vector<energy::ChannelInfo> channels_;
};

inline std::unique_ptr<energy::Tracker> clock_tracker(double watts = 50.0) {
  std::vector<std::unique_ptr<energy::Meter>> meters;
  meters.push_back(std::make_unique<ClockMeter>(watts));
  auto t = std::make_unique<energy::Tracker>(std::move(meters), energy::TrackerOptions{std::chrono::milliseconds(10)});
  t->start();
  return t;
}

}  // namespace powertrain::testing
