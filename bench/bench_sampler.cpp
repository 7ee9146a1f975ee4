// Overhead of the sampler: CPU time of the sampling thread, and the throughput of a
// CPU-bound workload with the sampler on and off, side by side in one run.
//   build/bench/bench_sampler [repeats=7] [seconds_per_trial=2]
// Trials alternate off/on so drift on a shared machine hits both; medians are reported.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "powertrain/energy/registry.h"
#include "powertrain/energy/tracker.h"
#include "powertrain/energy/workload.h"

namespace {

using namespace powertrain::energy;
using Clock = std::chrono::steady_clock;

double process_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Blocks of cpu_work per second on one thread (the workload is single-threaded so
// the sampler competes with it for nothing but a share of its core).
double throughput(double seconds) {
  const auto t0 = Clock::now();
  std::uint64_t blocks = 0;
  volatile double sink = 0;
  while (std::chrono::duration<double>(Clock::now() - t0).count() < seconds) {
    sink = sink + cpu_work(20);
    ++blocks;
  }
  return blocks / std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 7;
  const double seconds = argc > 2 ? std::atof(argv[2]) : 2.0;

  // 1. Sampler CPU use while the main thread sleeps.
  std::vector<double> cpu_pct;
  for (int r = 0; r < repeats; ++r) {
    Tracker tracker(probe_sources({}).meters);
    const double c0 = process_cpu_s();
    const auto t0 = Clock::now();
    tracker.start();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    tracker.stop();
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    cpu_pct.push_back(100.0 * (process_cpu_s() - c0) / wall);
  }
  std::printf("sampler at 100 ms: median %.3f%% of one core (%d trials of %.1f s)\n", median(cpu_pct), repeats, seconds);

  // 2. Workload throughput, sampler off vs on, alternating.
  std::vector<double> off, on, ratio;
  throughput(0.5);  // warm-up
  for (int r = 0; r < repeats; ++r) {
    const double a = throughput(seconds);
    Tracker tracker(probe_sources({}).meters);
    tracker.start();
    const double b = throughput(seconds);
    tracker.stop();
    off.push_back(a);
    on.push_back(b);
    ratio.push_back(b / a);
  }
  std::printf("workload: median %.1f blocks/s off, %.1f blocks/s on; median on/off ratio %.4f\n", median(off),
              median(on), median(ratio));
  return 0;
}
