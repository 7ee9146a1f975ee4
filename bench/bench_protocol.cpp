// How late powertrain takes the window boundaries a program reports over the
// protocol of docs/external.md, and what an epoch's report costs the program.
//
//   build/bench/bench_protocol [--epochs 300] [--repeats 3]
//
// A Python program (bench/protocol_client.py) runs epochs with no work in
// them, reporting each with raw socket writes and then through the powertrain
// package. The boundary delay is the time from the program's clock reading
// (mono_ns, CLOCK_MONOTONIC) to powertrain's window boundary for the same
// event; the round trip is epoch_end sent to the reply read, in the program.
// The energy sources are this machine's (probe_sources), as in a real run.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "powertrain/energy/registry.h"
#include "powertrain/external/workload.h"

namespace {

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

double median(std::vector<double> v) { return quantile(std::move(v), 0.5); }

}  // namespace

int main(int argc, char** argv) {
  int epochs = 300, repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--epochs") epochs = std::stoi(argv[i + 1]);
    else if (a == "--repeats") repeats = std::stoi(argv[i + 1]);
  }
  const std::string python = POWERTRAIN_BENCH_PYTHON[0] ? POWERTRAIN_BENCH_PYTHON : "python3";
  const std::string client = std::string(POWERTRAIN_BENCH_DIR) + "/protocol_client.py";
  const std::string out_file = "/tmp/powertrain-bench-protocol.txt";

  fmt::print("{:<8} {:>6} {:>14} {:>14} {:>14} {:>16} {:>16}\n", "client", "repeat", "boundary p50", "boundary p90",
             "boundary p99", "round trip p50", "round trip p90");
  for (const std::string kind : {"raw", "package"}) {
    std::vector<double> b50, b90, b99, r50, r90;
    for (int rep = 1; rep <= repeats; ++rep) {
      powertrain::run::RunConfig c;
      c.command.argv = {python, client, kind, std::to_string(epochs)};
      c.command.env = {{"BENCH_OUT", out_file}};
      c.max_epochs = epochs;
      c.patience = 0;
      auto probe = powertrain::energy::probe_sources({});
      powertrain::energy::Tracker tracker(std::move(probe.meters));
      tracker.start();
      powertrain::run::RecordingObserver obs;
      powertrain::run::RunControl control(c, tracker, obs);
      powertrain::external::CommandWorkload w(c);
      w.run(control);
      (void)control.finish();
      tracker.stop();
      std::vector<double> trips;
      std::ifstream in(out_file);
      for (double x; in >> x;) trips.push_back(x);
      const auto& lat = w.latency().us;
      b50.push_back(quantile(lat, 0.5));
      b90.push_back(quantile(lat, 0.9));
      b99.push_back(quantile(lat, 0.99));
      r50.push_back(quantile(trips, 0.5));
      r90.push_back(quantile(trips, 0.9));
      fmt::print("{:<8} {:>6} {:>11.0f} us {:>11.0f} us {:>11.0f} us {:>13.0f} us {:>13.0f} us\n", kind, rep,
                 b50.back(), b90.back(), b99.back(), r50.back(), r90.back());
    }
    fmt::print("{:<8} {:>6} {:>11.0f} us {:>11.0f} us {:>11.0f} us {:>13.0f} us {:>13.0f} us\n", kind, "median",
               median(b50), median(b90), median(b99), median(r50), median(r90));
  }
  return 0;
}
