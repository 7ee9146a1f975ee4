// Machine and build description. No torch headers here beyond version.h.
#include "powertrain/train/environment.h"

#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <torch/version.h>

namespace powertrain::train {
namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

int cuda_index(const std::string& device) {
  if (device.rfind("cuda", 0) != 0) return -1;
  const auto colon = device.find(':');
  if (colon == std::string::npos) return 0;
  try {
    return std::stoi(device.substr(colon + 1));
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  // x86 says "model name"; some ARM kernels only say "Hardware" or "CPU part".
  std::string fallback;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon));
    if (key == "model name") return trim(line.substr(colon + 1));
    if (fallback.empty() && (key == "Hardware" || key == "Model")) fallback = trim(line.substr(colon + 1));
  }
  return fallback;
}

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

Environment collect_environment(const std::string& device, int threads, const energy::Tracker* tracker) {
  Environment env;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0) env.host = host;
  struct utsname u {};
  if (uname(&u) == 0) env.os = fmt::format("{} {} {}", u.sysname, u.release, u.machine);
  env.cpu_model = cpu_model_name();
  env.cpu_count = available_cpus();
  env.torch_version = fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH);
#ifdef POWERTRAIN_GIT_COMMIT
  env.commit = POWERTRAIN_GIT_COMMIT;
#else
  env.commit = "unknown";
#endif
  env.threads = threads;
  if (tracker) {
    const int gpu = cuda_index(device);
    if (gpu >= 0)
      for (const auto& ch : tracker->channels())
        if (ch.component == energy::Component::gpu && ch.gpu_index == gpu) {
          env.gpu = ch.device;
          break;
        }
    env.sampling = fmt::format("interval {} ms", tracker->timeline_interval().count());
  }
  return env;
}

}  // namespace powertrain::train
