#pragma once
// Facts about the machine a measurement ran on.
#include <cstdint>
#include <string>

namespace powertrain::energy {

struct HostInfo {
  std::string hostname;
  std::string os;         ///< "Linux-6.1.0-amd64-x86_64"
  std::string cpu_model;  ///< "model name" of /proc/cpuinfo
  int cpu_count = 0;      ///< logical CPUs online
  double ram_total_gb = 0.0;
};

/// Reads uname, /proc/cpuinfo and /proc/meminfo. Missing facts stay empty.
HostInfo host_info();

}  // namespace powertrain::energy
