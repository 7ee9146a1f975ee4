// Cost of one measurement window (begin + end) without device synchronization.
//   build/bench/bench_window --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "powertrain/energy/estimate.h"
#include "powertrain/energy/registry.h"
#include "powertrain/energy/tracker.h"

namespace {

using namespace powertrain::energy;

// A meter that costs nothing to read: isolates the tracker's own bookkeeping.
class NullMeter final : public Meter {
 public:
  explicit NullMeter(int channels) {
    for (int i = 0; i < channels; ++i) {
      ChannelInfo c;
      c.id = "null:" + std::to_string(i);
      c.cumulative = true;
      c.method = Method::counter;
      channels_.push_back(c);
    }
  }
  std::string source() const override { return "null"; }
  const std::vector<ChannelInfo>& channels() const override { return channels_; }
  void read(std::vector<ChannelSample>& out) override {
    out.resize(channels_.size());
    for (auto& s : out) s.energy_j = (e_ += 1.0);
  }

 private:
  std::vector<ChannelInfo> channels_;
  double e_ = 0;
};

// `cpu_accounting`: also read the CPU time of the machine and of this process
// tree at both boundaries (Tracker::account_cpu, as every run session does).
void run_windows(benchmark::State& state, std::vector<std::unique_ptr<Meter>> meters, bool cpu_accounting = false) {
  Tracker tracker(std::move(meters));
  if (cpu_accounting) tracker.account_cpu(system_usage("/proc", "/sys"), process_usage("/proc", ::getpid()));
  tracker.start();
  for (auto _ : state) {
    tracker.begin("w");
    auto r = tracker.end("w");
    benchmark::DoNotOptimize(r.energy_j);
  }
  tracker.stop();
}

void BM_WindowNullMeter(benchmark::State& state) {
  std::vector<std::unique_ptr<Meter>> m;
  m.push_back(std::make_unique<NullMeter>(static_cast<int>(state.range(0))));
  run_windows(state, std::move(m));
}
BENCHMARK(BM_WindowNullMeter)->Arg(2)->Arg(8)->Unit(benchmark::kMicrosecond);

// The meters this machine really has (on a build machine: the utilization estimate).
void BM_WindowProbedMeters(benchmark::State& state) {
  auto probe = probe_sources({});
  run_windows(state, std::move(probe.meters));
}
BENCHMARK(BM_WindowProbedMeters)->Unit(benchmark::kMicrosecond);

// A RAPL powercap tree of two packages with a DRAM zone each, in a temporary
// folder: four energy_uj files read at each boundary. Real RAPL files cost a
// little more (the kernel reads an MSR), but the path through the tracker is this.
void BM_WindowRaplCounters(benchmark::State& state) {
  namespace fs = std::filesystem;
  std::string pattern = (fs::temp_directory_path() / "powertrain-bench-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    state.SkipWithError("cannot create a temporary folder");
    return;
  }
  const fs::path root = pattern;
  auto write = [&](const fs::path& rel, const std::string& text) {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel) << text << '\n';
  };
  for (int p = 0; p < 2; ++p) {
    const fs::path pkg = fs::path("class/powercap") / ("intel-rapl:" + std::to_string(p));
    write(pkg / "name", "package-" + std::to_string(p));
    write(pkg / "energy_uj", "123456789");
    write(pkg / "max_energy_range_uj", "262143328850");
    const fs::path dram = pkg / ("intel-rapl:" + std::to_string(p) + ":0");
    write(dram / "name", "dram");
    write(dram / "energy_uj", "2345678");
    write(dram / "max_energy_range_uj", "65712999613");
  }
  ProbeOptions options;
  options.sysfs_root = root;
  options.disabled = {"nvml", "perf", "rails"};
  options.estimate_missing = false;
  auto probe = probe_sources(options);
  if (probe.meters.empty()) {
    state.SkipWithError("the fake RAPL tree did not open");
  } else {
    run_windows(state, std::move(probe.meters));
  }
  fs::remove_all(root);
}
BENCHMARK(BM_WindowRaplCounters)->Unit(benchmark::kMicrosecond);

// The same window with issue 13's interference accounting: /proc/stat (or the
// cgroup's cpu.stat) and this process tree's /proc/PID/stat files, found
// through /proc/PID/task/*/children, at both boundaries.
void BM_WindowNullMeterWithCpuAccounting(benchmark::State& state) {
  std::vector<std::unique_ptr<Meter>> m;
  m.push_back(std::make_unique<NullMeter>(2));
  run_windows(state, std::move(m), /*cpu_accounting=*/true);
}
BENCHMARK(BM_WindowNullMeterWithCpuAccounting)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
