#include "powertrain/train/device.h"

#include <ATen/detail/CUDAHooksInterface.h>

#include <chrono>
#include <cstdlib>
#include <optional>

#include <fmt/format.h>
#include <torch/version.h>

#include "powertrain/error.h"

namespace powertrain::train {

std::string torch_version() {
  return fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH);
}


CudaSupport cuda_support() {
  CudaSupport s;
  try {
    // The CUDA hooks are registered only when libtorch_cuda is loaded; a
    // CPU-only LibTorch answers with the default hooks, which report nothing.
    const auto& hooks = at::detail::getCUDAHooks();
    s.compiled = hooks.hasCUDART();
    if (s.compiled) s.runtime_version = static_cast<int>(hooks.versionCUDART());
    s.visible_devices = s.compiled ? static_cast<int>(torch::cuda::device_count()) : 0;
  } catch (const c10::Error&) {  // a broken driver install: report what is known
  }
  return s;
}

namespace {

std::string cuda_version(int runtime_version) {
  return fmt::format("CUDA {}.{}", runtime_version / 1000, (runtime_version % 1000) / 10);
}

}  // namespace

std::string describe(const CudaSupport& cuda) {
  if (!cuda.compiled) return "CPU-only LibTorch (no CUDA compiled in)";
  return fmt::format("{} compiled in, {} GPU{} visible", cuda_version(cuda.runtime_version), cuda.visible_devices,
                     cuda.visible_devices == 1 ? "" : "s");
}

torch::Device parse_device(const std::string& device) {
  if (device == "cpu") return torch::Device(torch::kCPU);
  const auto invalid = [&] { return ConfigError(fmt::format("invalid device '{}' (expected cpu, cuda or cuda:N)", device)); };
  if (device.rfind("cuda", 0) != 0) throw invalid();
  std::optional<torch::Device> d;
  try {
    d = torch::Device(device);
  } catch (const c10::Error&) {
    throw invalid();
  }
  const auto cuda = cuda_support();
  if (!cuda.compiled)
    throw ConfigError(fmt::format(
        "device '{}': this powertrain was built against a CPU-only LibTorch; rebuild it against a torch with "
        "CUDA (POWERTRAIN_PYTHON=/path/to/python scripts/build) or use cpu",
        device));
  if (cuda.visible_devices == 0) {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    throw ConfigError(fmt::format(
        "device '{}': no CUDA GPU is visible ({}); this build has {} and runs cuda on a machine with an NVIDIA "
        "GPU and driver; use cpu here",
        device,
        visible != nullptr ? fmt::format("CUDA_VISIBLE_DEVICES='{}'", visible) : "no NVIDIA driver or GPU found",
        cuda_version(cuda.runtime_version)));
  }
  const std::int64_t index = d->has_index() ? d->index() : 0;
  if (index >= cuda.visible_devices)
    throw ConfigError(fmt::format("device '{}': only {} CUDA device(s) visible", device, cuda.visible_devices));
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : 0);
}

void load_device(const torch::Device& device, double seconds, const std::function<bool()>& stop, std::int64_t size) {
  if (!(seconds > 0.0) || stop()) return;
  torch::NoGradGuard no_grad;
  const auto a = torch::randn({size, size}, torch::TensorOptions().device(device));
  auto b = a.clone();
  using Clock = std::chrono::steady_clock;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end && !stop()) {
    for (int i = 0; i < 8; ++i) b = torch::matmul(a, b).div_(static_cast<double>(size));
    synchronize(device);
  }
}

}  // namespace powertrain::train
