#pragma once
// A command over several nodes, one measure per node: node 0 gathers the
// others' reports (their JSON) from the nodes' folder.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "powertrain/energy/carbon.h"
#include "powertrain/energy/measurement.h"
#include "powertrain/run/nodes.h"

namespace powertrain::measure {

/// Programs that start the measured work as ranks or on other nodes
/// (torchrun, srun, mpirun...): their report gets a row per node.
bool is_launcher(const std::string& program);

/// A node's own report (a secondary's JSON) as its row; throws ConfigError
/// when it is not one (`what` names it in the message).
energy::NodeEnergy node_from_report(const std::string& text, int rank, const std::string& what);

/// Node 0: this node's row, every other node's from its report in `dir`
/// (waited for up to wait_s, or until `stopped()`), and the total. Reports not
/// taken in and nodes missing are said in `notes`.
energy::NodesEnergy nodes_of(const energy::Measurement& m, const run::NodeRole& role, const std::filesystem::path& dir,
                             double wait_s, const energy::CarbonOptions& carbon, const std::function<bool()>& stopped,
                             std::vector<std::string>& notes);

}  // namespace powertrain::measure
