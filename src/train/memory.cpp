#include "powertrain/train/memory.h"

#include <climits>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace powertrain::train {

bool keep_freed_memory() {
  static std::once_flag once;
  static bool taken = false;
  std::call_once(once, [] {
#if defined(__GLIBC__)
    // M_MMAP_THRESHOLD cannot do it: glibc caps it at 32 MiB on 64-bit, and a
    // batch of 512 Fashion-MNIST images has 51 MB activations. With no mmaps,
    // a block that a thread's arena cannot hold comes from the main heap.
    taken = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
#endif
  });
  return taken;
}

}  // namespace powertrain::train
