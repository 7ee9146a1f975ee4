#include "powertrain/energy/host.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace powertrain::energy {

HostInfo host_info() {
  HostInfo h;
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) == 0) h.hostname = name;
  utsname u{};
  if (uname(&u) == 0) h.os = std::string(u.sysname) + "-" + u.release + "-" + u.machine;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) h.cpu_model = line.substr(line.find_first_not_of(' ', colon + 1));
      break;
    }
  }
  h.cpu_count = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kb = 0;
  if (meminfo >> key >> kb && key == "MemTotal:") h.ram_total_gb = kb / (1024.0 * 1024.0);
  return h;
}

}  // namespace powertrain::energy
