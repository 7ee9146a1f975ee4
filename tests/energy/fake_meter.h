#pragma once
// A scripted Meter for window and sampler tests: the test sets what the next
// read returns.
#include <mutex>
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
