#include "powertrain/energy/workload.h"

#include <array>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace powertrain::energy {

double cpu_work(std::uint64_t iterations) {
  constexpr int n = 64;
  std::vector<float> a(n * n), b(n * n), c(n * n);
  for (int i = 0; i < n * n; ++i) {
    a[i] = static_cast<float>((i * 7) % 13) * 0.01f;
    b[i] = static_cast<float>((i * 5) % 11) * 0.01f;
  }
  double checksum = 0;
  for (std::uint64_t it = 0; it < iterations; ++it) {
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) c[i * n + j] = 0.0f;
    for (int i = 0; i < n; ++i)
      for (int k = 0; k < n; ++k) {
        const float aik = a[i * n + k];
        for (int j = 0; j < n; ++j) c[i * n + j] += aik * b[k * n + j];
      }
    checksum += c[(it * 31) % (n * n)];
    a[it % (n * n)] = static_cast<float>(checksum * 1e-9);
  }
  return checksum;
}

std::uint64_t burn(double seconds, int threads) {
  if (threads < 1) threads = 1;
  std::atomic<std::uint64_t> blocks{0};
  std::atomic<bool> stop{false};
  std::atomic<double> sink{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      double local = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        local += cpu_work(50);
        blocks.fetch_add(1, std::memory_order_relaxed);
      }
      sink.store(local);
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : pool) th.join();
  return blocks.load();
}

}  // namespace powertrain::energy
