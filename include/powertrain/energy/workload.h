#pragma once
// A deterministic CPU-bound workload: the built-in load of `powertrain burn`,
// used by the README's first command and by the overhead benchmark.
#include <cstdint>

namespace powertrain::energy {

/// Runs `iterations` blocks of dense float arithmetic (a 64x64 matrix product
/// each) on one thread; returns a checksum so the work cannot be optimized away.
double cpu_work(std::uint64_t iterations);

/// Runs cpu_work in blocks on `threads` threads until `seconds` have passed;
/// returns the number of blocks done.
std::uint64_t burn(double seconds, int threads);

}  // namespace powertrain::energy
