#include "powertrain/energy/host.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace powertrain::energy {
namespace {
std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}
}  // namespace

HostInfo host_info() {
  HostInfo h;
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) == 0) h.hostname = name;
  utsname u{};
  if (uname(&u) == 0) h.os = std::string(u.sysname) + "-" + u.release + "-" + u.machine;
  // x86 says "model name"; some ARM kernels only say "Hardware" or "Model".
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string fallback;
  for (std::string line; std::getline(cpuinfo, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon));
    if (key == "model name") {
      h.cpu_model = trim(line.substr(colon + 1));
      break;
    }
    if (fallback.empty() && (key == "Hardware" || key == "Model")) fallback = trim(line.substr(colon + 1));
  }
  if (h.cpu_model.empty()) h.cpu_model = fallback;
  h.cpu_count = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kb = 0;
  if (meminfo >> key >> kb && key == "MemTotal:") h.ram_total_gb = kb / (1024.0 * 1024.0);
  return h;
}

}  // namespace powertrain::energy
