#include "nodes.h"

#include <chrono>
#include <cmath>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "powertrain/error.h"
#include "powertrain/slurm/nodes.h"

namespace powertrain::measure {
namespace fs = std::filesystem;

bool is_launcher(const std::string& program) {
  const auto name = fs::path(program).filename().string();
  for (const char* l : {"torchrun", "srun", "mpirun", "mpiexec", "deepspeed", "accelerate"})
    if (name == l) return true;
  return false;
}

namespace {

energy::NodeEnergy node_of(const energy::Measurement& m, int rank) {
  energy::NodeEnergy n;
  n.node = rank;
  n.host = m.host.hostname;
  n.exit_code = m.exit_code;
  n.duration_s = m.window.duration_s;
  n.energy_j = m.energy_j;
  n.machine_energy_j = m.machine_energy_j;
  n.method = m.method;
  return n;
}

}  // namespace

energy::NodeEnergy node_from_report(const std::string& text, int rank, const std::string& what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("{} is not a measure report: {}", what, e.what()));
  }
  energy::NodeEnergy n;
  n.node = rank;
  try {
    if (j.at("schema").get<std::string>() != "powertrain.measure/1") throw ConfigError("another schema");
    n.host = j.at("host").at("hostname").get<std::string>();
    n.exit_code = j.at("exit_code").get<int>();
    n.duration_s = j.at("duration_s").get<double>();
    n.energy_j = j.at("energy_j").get<double>();
    n.machine_energy_j = j.at("machine_energy_j").get<double>();
    n.method = j.at("method").get<std::string>();
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("{} is not a measure report of powertrain's: {}", what, e.what()));
  }
  for (const double v : {n.duration_s, n.energy_j, n.machine_energy_j})
    if (!(std::isfinite(v) && v >= 0.0 && v <= 1e15))
      throw ConfigError(fmt::format("{} says {}: not a measurement; not taken in", what, v));
  return n;
}

energy::NodesEnergy nodes_of(const energy::Measurement& m, const run::NodeRole& role, const fs::path& dir,
                             double wait_s, const energy::CarbonOptions& carbon, const std::function<bool()>& stopped,
                             std::vector<std::string>& notes) {
  energy::NodesEnergy out;
  out.nodes = role.nodes;
  out.per_node.push_back(node_of(m, 0));
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(wait_s));
  auto all_there = [&] {
    for (int k = 1; k < role.nodes; ++k)
      if (!slurm::node_file_exists(slurm::node_file(dir, k, ".json"))) return false;
    return true;
  };
  while (role.nodes > 1 && !all_there() && std::chrono::steady_clock::now() < deadline && !stopped())
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (int k = 1; k < role.nodes; ++k) {
    const auto file = slurm::node_file(dir, k, ".json");
    energy::NodeEnergy n;
    n.node = k;
    n.reported = false;
    if (slurm::node_file_exists(file)) {
      try {
        n = node_from_report(slurm::read_node_text(file), k, file.filename().string());
      } catch (const Error& e) {
        notes.push_back(fmt::format("node {}'s report not taken in: {}", k, e.what()));
      }
    }
    out.per_node.push_back(n);
  }
  std::vector<run::NodeWindow> windows;
  for (const auto& n : out.per_node) {
    if (!n.reported) continue;
    run::NodeWindow w;
    w.node = n.node;
    w.host = n.host;
    w.duration_s = n.duration_s;
    w.energy_j = n.energy_j;
    w.machine_energy_j = n.machine_energy_j;
    w.method = n.method;
    windows.push_back(std::move(w));
  }
  const auto merged = run::merge_node_windows(std::move(windows), role.nodes);
  out.duration_s = merged.duration_s;
  out.energy_j = merged.energy_j;
  out.machine_energy_j = merged.machine_energy_j;
  out.method = merged.method;
  out.partial = merged.partial;
  out.emissions_kg = energy::carbon_of(out.energy_j, carbon).emissions_kg;
  if (!merged.missing.empty()) {
    std::string ranks;
    for (const int k : merged.missing) ranks += (ranks.empty() ? "" : ", ") + std::to_string(k);
    notes.push_back(fmt::format("no report from node {} in {} within {:.0f} s: the total of all nodes is partial",
                                ranks, dir.string(), wait_s));
  }
  return out;
}

}  // namespace powertrain::measure
