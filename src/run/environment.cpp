// Machine and build description.
#include "powertrain/run/environment.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "powertrain/energy/host.h"

namespace powertrain::run {
namespace {

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

std::string cpu_model_name() { return energy::host_info().cpu_model; }

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

Environment collect_environment(const std::string& device, int threads, const energy::Tracker* tracker,
                                std::string framework) {
  Environment env;
  const auto host = energy::host_info();
  env.host = host.hostname;
  env.os = host.os;
  env.cpu_model = host.cpu_model;
  env.cpu_count = available_cpus();
  env.torch_version = std::move(framework);
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

}  // namespace powertrain::run
