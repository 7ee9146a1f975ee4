// keep_freed_memory: a block of tens of MB freed and allocated again is served
// from memory the process kept, without a page fault per page.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <cstdlib>

#include "powertrain/train/memory.h"

namespace {

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Allocates `bytes`, writes one byte per page, frees it; the minor page faults it took.
long faults_of_a_block(std::size_t bytes) {
  const long before = minor_faults();
  auto* p = static_cast<volatile char*>(std::malloc(bytes));
  if (p == nullptr) return -1;
  for (std::size_t i = 0; i < bytes; i += 4096) p[i] = 1;
  std::free(const_cast<char*>(p));
  return minor_faults() - before;
}

TEST(Memory, FreedActivationsAreReusedWithoutPageFaults) {
#if !defined(__GLIBC__)
  GTEST_SKIP() << "not glibc: the allocator's settings are left alone";
#endif
  ASSERT_TRUE(powertrain::train::keep_freed_memory());
  EXPECT_TRUE(powertrain::train::keep_freed_memory()) << "a second call keeps the first's answer";
  const std::size_t bytes = std::size_t{48} << 20;  // above glibc's largest mmap threshold
  const long pages = static_cast<long>(bytes / 4096);
  faults_of_a_block(bytes);  // the heap grows to hold it once
  const long again = faults_of_a_block(bytes);
  ASSERT_GE(again, 0);
  EXPECT_LT(again, pages / 10) << "the second 48 MB block faulted " << again << " of " << pages << " pages in again";
}

}  // namespace

namespace {

// The names glibc reads at start-up (MALLOC_*_ with a trailing underscore) and
// the values keep_freed_memory sets, so a child runs with the same allocator.
TEST(Memory, ChildEnvironmentNamesGlibcsVariables) {
  EXPECT_STREQ(powertrain::train::kept_memory_environment(), "MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647");
}

}  // namespace
