#include "powertrain/cli/cli.h"

#include <cstdio>

namespace powertrain::cli {
int run_cli(int, char**) {
  std::fputs("powertrain: no commands yet\n", stderr);
  return 2;
}
}  // namespace powertrain::cli
