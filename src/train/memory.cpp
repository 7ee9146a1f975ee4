#include "powertrain/train/memory.h"

#include <climits>
#include <mutex>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace powertrain::train {
namespace {

constexpr int kMmapMax = 0;             // no block gets an mmap of its own
constexpr int kTrimThreshold = INT_MAX;  // bytes free at the heap's top before any go back

}  // namespace

const char* kept_memory_environment() {
  static const std::string env = "MALLOC_MMAP_MAX_=" + std::to_string(kMmapMax) +
                                 " MALLOC_TRIM_THRESHOLD_=" + std::to_string(kTrimThreshold);
  return env.c_str();
}

bool keep_freed_memory() {
  static std::once_flag once;
  static bool taken = false;
  std::call_once(once, [] {
#if defined(__GLIBC__)
    // M_MMAP_THRESHOLD cannot do it: glibc caps it at 32 MiB on 64-bit, and a
    // batch of 512 Fashion-MNIST images has 51 MB activations. With no mmaps,
    // a block that a thread's arena cannot hold comes from the main heap.
    taken = mallopt(M_MMAP_MAX, kMmapMax) == 1 && mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
#endif
  });
  return taken;
}

}  // namespace powertrain::train
