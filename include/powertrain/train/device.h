#pragma once
// The compute device a run trains on: parsing "cpu" / "cuda[:N]", what the
// LibTorch powertrain was built against offers, synchronization, and the
// warm-up load. Everything here runs on a machine without a GPU; only the
// CUDA branches need one.
#include <cstdint>
#include <functional>
#include <string>

#include <torch/torch.h>

namespace powertrain::train {

/// What the LibTorch this process runs on offers for CUDA.
struct CudaSupport {
  bool compiled = false;        ///< LibTorch's CUDA library is linked and loaded
  int runtime_version = 0;      ///< CUDA runtime LibTorch was built with, e.g. 13020; 0 if not compiled
  int visible_devices = 0;      ///< CUDA GPUs this process sees (after CUDA_VISIBLE_DEVICES)
};

/// Asks LibTorch; never throws.
CudaSupport cuda_support();

/// One line for people: "CUDA 13.2 compiled in, 0 GPUs visible" or
/// "CPU-only LibTorch (no CUDA compiled in)".
std::string describe(const CudaSupport& cuda);

/// The LibTorch version compiled against, "2.15.0".
std::string torch_version();

/// torch::Device for "cpu", "cuda" or "cuda:N". Throws ConfigError for another
/// string, and for cuda when this LibTorch has no CUDA or no such GPU is
/// visible; the message says which and what to do.
torch::Device parse_device(const std::string& device);

/// Waits until every kernel queued on `device` has finished; a no-op on the CPU.
void synchronize(const torch::Device& device);

/// Keeps `device` busy for `seconds` with products of `size` x `size` float
/// matrices, synchronized every 8 products, returning early once `stop()` is
/// true. The warm-up load of a study on a GPU; it runs on any device.
void load_device(const torch::Device& device, double seconds, const std::function<bool()>& stop,
                 std::int64_t size = 2048);

}  // namespace powertrain::train
