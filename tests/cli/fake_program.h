#pragma once
// The scripted training program of tests/external/programs (no torch) as the
// CLI suites run it, and the TOML they write for its command.
#include <string>
#include <vector>

#include "run_cli.h"

namespace powertrain::testing {

/// The Python the build found (POWERTRAIN_TEST_PYTHON), else python3.
inline std::string test_python() {
  const std::string p = POWERTRAIN_TEST_PYTHON;
  return p.empty() ? "python3" : p;
}

/// tests/external/programs/fake_trainer.py in the source tree.
inline std::string fake_trainer() {
  return std::string(POWERTRAIN_TEST_SOURCE_DIR) + "/tests/external/programs/fake_trainer.py";
}

/// A TOML array of strings.
inline std::string toml_list(const std::vector<std::string>& v) {
  std::string s = "[";
  for (const auto& x : v) s += (s.size() > 1 ? ", \"" : "\"") + x + "\"";
  return s + "]";
}

/// Writes 300 training and 100 test images of 28x28 bytes (labels 0..9) as
/// gzip'd IDX files into `dir`: a Fashion-MNIST the example scripts read,
/// learnable in an epoch or two (each class a brighter band at its own rows).
/// Returns the generator's result (exit code 0 on success).
inline CliResult write_tiny_fashion_mnist(const std::string& dir) {
  return run_program(test_python(), {"-c", R"(
import gzip, random, struct, sys
d = sys.argv[1]
rng = random.Random(0)
for name, n in (("train", 300), ("t10k", 100)):
    labels = bytes(rng.randrange(10) for _ in range(n))
    images = bytearray()
    for y in labels:
        for r in range(28):
            for c in range(28):
                images.append(min(255, (200 if 2 * y <= r < 2 * y + 6 else 0) + rng.randrange(40)))
    with gzip.open(f"{d}/{name}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(images))
    with gzip.open(f"{d}/{name}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels)
)", dir});
}

}  // namespace powertrain::testing
