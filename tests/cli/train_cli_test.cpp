// End-to-end: `powertrain train` on the CUDA path where no GPU is visible, and
// `--version` naming the LibTorch the binary runs on.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <string>

#include <fmt/format.h>

#include "powertrain/run/settings.h"
#include "run_cli.h"
#include "temp_dir.h"

namespace {

using powertrain::testing::count_lines;
using powertrain::testing::powertrain_binary;
using powertrain::testing::run_program;
using powertrain::testing::TempDir;

TEST(TrainCli, CudaWithNoVisibleGpuIsOneLineAndNothingIsRecorded) {
  TempDir dir;
  const auto db = (dir / "runs.db").string();
  // CUDA_VISIBLE_DEVICES='' hides every GPU, so this holds on a GPU machine too.
  const auto r = run_program("/usr/bin/env", {"CUDA_VISIBLE_DEVICES=", powertrain_binary(), "train", "--dataset",
                                              "synthetic-images", "--data", "train_samples=64", "--max-epochs", "1",
                                              "--device", "cuda", "--db", db, "--quiet"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("powertrain: device 'cuda': ", 0), 0u) << r.err;
  const bool cpu_only = r.err.find("CPU-only LibTorch") != std::string::npos;
  EXPECT_TRUE(cpu_only || r.err.find("no CUDA GPU is visible (CUDA_VISIBLE_DEVICES='')") != std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(db)) << "a run that cannot start records nothing";
}

TEST(TrainCli, VersionNamesTheLibTorchAndItsCuda) {
  const auto r = run_program(powertrain_binary(), {"--version"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("powertrain ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\nLibTorch "), std::string::npos) << r.out;
  EXPECT_TRUE(r.out.find("compiled in") != std::string::npos) << r.out;
}

}  // namespace

namespace {

// Out of memory is the user's news, in one line, not an internal error: the
// process is given 2 GB of data segment and a data set of 19.7 GB.
TEST(TrainCli, OutOfMemoryIsOneLine) {
  if (::access("/usr/bin/prlimit", X_OK) != 0) GTEST_SKIP() << "no prlimit (util-linux)";
  TempDir dir;
  const auto db = (dir / "runs.db").string();
  const auto r = run_program("/usr/bin/prlimit",
                             {"--data=2000000000", powertrain_binary(), "train", "--dataset", "synthetic-images", "--data",
                              "train_samples=100000", "--data", "image_size=128", "--data", "input_channels=3",
                              "--max-epochs", "1", "--db", db, "--quiet"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("powertrain: out of memory: you tried to allocate", 0), 0u) << r.err;
}

// The flags of `powertrain train` are the table's (run/settings.h): each row's
// flags are there, and each is bound to its setting, whose one range check
// refuses a value past it in one line before anything runs.
TEST(TrainCli, EveryRunSettingHasItsFlagBoundToItsField) {
  const auto help = run_program(powertrain_binary(), {"train", "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.err;
  int refused = 0;
  for (const auto& s : powertrain::run::settings()) {
    if (s.flags.empty()) continue;
    SCOPED_TRACE(std::string(s.name));
    const std::string flag(s.flags.substr(0, s.flags.find(',')));
    EXPECT_NE(help.out.find(flag), std::string::npos) << help.out;
    std::string bad;
    if (s.type == powertrain::run::SettingType::integer && s.range.low > 0) {
      bad = std::to_string(static_cast<long long>(s.range.low) - 1);
    } else if (s.type == powertrain::run::SettingType::number && std::isfinite(s.range.low)) {
      bad = fmt::format("{}", s.range.low_open ? s.range.low : s.range.low - 1);
    } else if (!s.choices.empty()) {
      bad = "nonsense";
    } else {
      continue;
    }
    const auto r = run_program(powertrain_binary(), {"train", flag + "=" + bad, "--quiet"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(fmt::format("{} must be", s.name)), std::string::npos) << r.err;
    ++refused;
  }
  EXPECT_GE(refused, 8);
}

}  // namespace
