// The device layer: what runs of the CUDA path without a GPU runs here (parsing,
// the errors a machine without a GPU gets, that LibTorch's CUDA library is
// really loaded when the build has it, the warm-up load on the CPU); the parts
// that need a GPU run only where one is visible.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "powertrain/error.h"
#include "powertrain/train/device.h"

namespace pt = powertrain::train;
using powertrain::ConfigError;

namespace {

std::string error_of(const std::string& device) {
  try {
    pt::parse_device(device);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Device, ParsesCpuAndRejectsOtherStrings) {
  EXPECT_TRUE(pt::parse_device("cpu").is_cpu());
  for (const char* bad : {"tpu", "cudax", "cuda:", "cuda:-1", "CPU", ""})
    EXPECT_NE(error_of(bad).find("invalid device"), std::string::npos) << bad;
}

TEST(Device, TheBuildsCudaLibraryIsLoadedWhenItHasOne) {
  const auto cuda = pt::cuda_support();
  EXPECT_EQ(cuda.compiled, static_cast<bool>(POWERTRAIN_TORCH_CUDA))
      << "CMake found a LibTorch with" << (POWERTRAIN_TORCH_CUDA ? "" : "out")
      << " CUDA, but the process sees otherwise: " << pt::describe(cuda);
  if (cuda.compiled) {
    EXPECT_GE(cuda.runtime_version, 11000) << "a CUDA runtime version like 13020";
  } else {
    EXPECT_EQ(cuda.visible_devices, 0);
  }
}

TEST(Device, DescribesTheBuildInOneLine) {
  EXPECT_EQ(pt::describe({false, 0, 0}), "CPU-only LibTorch (no CUDA compiled in)");
  EXPECT_EQ(pt::describe({true, 13020, 0}), "CUDA 13.2 compiled in, 0 GPUs visible");
  EXPECT_EQ(pt::describe({true, 12080, 1}), "CUDA 12.8 compiled in, 1 GPU visible");
}

TEST(Device, CudaWithoutAGpuIsOneLineThatSaysWhy) {
  const auto cuda = pt::cuda_support();
  if (cuda.visible_devices > 0) GTEST_SKIP() << "a GPU is visible here: " << pt::describe(cuda);
  for (const char* device : {"cuda", "cuda:0", "cuda:3"}) {
    const auto message = error_of(device);
    ASSERT_FALSE(message.empty()) << device;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(message.find(std::string("device '") + device + "'"), 0u) << message;
    if (cuda.compiled) {
      EXPECT_NE(message.find("no CUDA GPU is visible"), std::string::npos) << message;
      EXPECT_NE(message.find("use cpu"), std::string::npos) << message;
    } else {
      EXPECT_NE(message.find("CPU-only LibTorch"), std::string::npos) << message;
    }
  }
}

TEST(Device, CudaOnAVisibleGpu) {
  const auto cuda = pt::cuda_support();
  if (cuda.visible_devices == 0) GTEST_SKIP() << "no CUDA GPU here: " << pt::describe(cuda);
  EXPECT_TRUE(pt::parse_device("cuda").is_cuda());
  EXPECT_EQ(pt::parse_device("cuda:0").index(), 0);
  EXPECT_NE(error_of("cuda:" + std::to_string(cuda.visible_devices)).find("only"), std::string::npos);
  const auto device = pt::parse_device("cuda");
  pt::load_device(device, 0.2, [] { return false; });
  pt::synchronize(device);
}

TEST(Device, SynchronizingTheCpuIsANoOp) { EXPECT_NO_THROW(pt::synchronize(pt::parse_device("cpu"))); }

TEST(Device, LoadRunsForItsSecondsAndStopsWhenAsked) {
  using Clock = std::chrono::steady_clock;
  const auto cpu = pt::parse_device("cpu");
  int checks = 0;
  const auto start = Clock::now();
  pt::load_device(cpu, 0.3, [&] { return ++checks < 0; }, 64);
  EXPECT_GE(std::chrono::duration<double>(Clock::now() - start).count(), 0.3);
  EXPECT_GT(checks, 1);

  checks = 0;
  pt::load_device(cpu, 60.0, [&] { return ++checks >= 3; }, 64);
  EXPECT_EQ(checks, 3) << "stops at the first check that says stop";

  checks = 0;
  pt::load_device(cpu, 0.0, [&] { return ++checks < 0; }, 64);
  EXPECT_EQ(checks, 0) << "no seconds, no load";
}

}  // namespace
