// Merging the per-node records of a run over several nodes (powertrain/run/nodes.h).
#include "powertrain/run/nodes.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <string_view>

#include <fmt/format.h>

#include "powertrain/energy/types.h"
#include "powertrain/error.h"

namespace powertrain::run {
namespace {

// Seconds of a run's totals beyond its epochs that count as a cut-short epoch
// (below this it is rounding of the sums).
constexpr double kCutShortMinS = 1e-3;

int parse_int(const std::string& text, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || end == nullptr || *end != '\0' || v < 0 || v > 1000000)
    throw ConfigError(fmt::format("{} must be a whole number >= 0, got '{}'", what, text));
  return static_cast<int>(v);
}

// "A", "A and B", "A, B and C": the tracker's way of listing attributions.
std::string join_list(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += i + 1 == parts.size() ? " and " : ", ";
    out += parts[i];
  }
  return out;
}

// The attributions the tracker names, in its order (energy/attribution.cpp).
constexpr const char* kAttributions[] = {"CPU-time share", "memory share", "GPU processes"};

}  // namespace

MethodSet parse_methods(const std::string& label) {
  MethodSet m;
  constexpr std::string_view kBy = "attributed by ";
  constexpr std::string_view kGpu = "GPU not measured";
  const auto by = label.find(kBy);
  const std::string head = label.substr(0, by);
  std::string word;
  auto take = [&] {
    if (word == "counter") m.counter = true;
    else if (word == "sampled") m.sampled = true;
    else if (word == "estimated") m.estimated = true;
    else if (word == "partial") m.partial = true;
    word.clear();
  };
  for (char c : head) {
    if (c == '+' || c == ',' || c == ' ') take();
    else word += c;
  }
  take();
  m.gpu_not_measured = label.find(kGpu) != std::string::npos;
  if (by != std::string::npos) {
    // "attributed by A, B and C", up to a following clause (", GPU not measured").
    std::string list = label.substr(by + kBy.size());
    if (const auto g = list.find(", " + std::string(kGpu)); g != std::string::npos) list.resize(g);
    std::vector<std::string> parts;
    std::size_t from = 0;
    while (from <= list.size()) {
      const auto comma = list.find(", ", from);
      const auto and_ = list.find(" and ", from);
      const auto end = std::min(comma, and_);
      parts.push_back(list.substr(from, end == std::string::npos ? std::string::npos : end - from));
      if (end == std::string::npos) break;
      from = end + (end == comma ? 2 : 5);
    }
    for (auto& p : parts)
      if (!p.empty() && std::find(m.attributed_by.begin(), m.attributed_by.end(), p) == m.attributed_by.end())
        m.attributed_by.push_back(p);
  }
  return m;
}

void add_methods(MethodSet& all, const MethodSet& o) {
  all.counter |= o.counter;
  all.sampled |= o.sampled;
  all.estimated |= o.estimated;
  all.gpu_not_measured |= o.gpu_not_measured;
  for (const auto& a : o.attributed_by)
    if (std::find(all.attributed_by.begin(), all.attributed_by.end(), a) == all.attributed_by.end())
      all.attributed_by.push_back(a);
}

std::string method_label(const MethodSet& m) {
  std::string out = energy::join_methods(m.counter, m.sampled, m.estimated);
  if (m.partial) out += ", partial";
  if (!m.attributed_by.empty()) {
    // The tracker's order first, then any other wording as it came.
    std::vector<std::string> by;
    for (const char* known : kAttributions)
      if (std::find(m.attributed_by.begin(), m.attributed_by.end(), known) != m.attributed_by.end()) by.push_back(known);
    for (const auto& a : m.attributed_by)
      if (std::find(by.begin(), by.end(), a) == by.end()) by.push_back(a);
    out += ", attributed by " + join_list(by);
  }
  if (m.gpu_not_measured) out += ", GPU not measured";
  return out;
}

MergedWindow merge_node_windows(std::vector<NodeWindow> windows, int nodes) {
  if (nodes < 1) throw ConfigError(fmt::format("a run spans at least 1 node, got {}", nodes));
  std::sort(windows.begin(), windows.end(), [](const auto& a, const auto& b) { return a.node < b.node; });
  MergedWindow m;
  m.nodes = nodes;
  MethodSet all;
  std::set<int> seen;
  double least_covered = -1.0;
  for (const auto& w : windows) {
    if (w.node < 0 || w.node >= nodes)
      throw ConfigError(fmt::format("node rank {} is outside 0 to {} (a run over {} nodes)", w.node, nodes - 1, nodes));
    if (!seen.insert(w.node).second) throw ConfigError(fmt::format("node {} has two records of one window", w.node));
    m.duration_s = std::max(m.duration_s, w.duration_s);
    m.energy_j += w.energy_j;
    m.machine_energy_j += w.machine_energy_j;
    m.train_energy_j += w.train_energy_j;
    m.eval_energy_j += w.eval_energy_j;
    const auto ms = parse_methods(w.method);
    add_methods(all, ms);
    if (ms.partial || w.partial) m.partial = true;
    const double covered = w.seconds_covered();
    least_covered = least_covered < 0 ? covered : std::min(least_covered, covered);
  }
  for (int n = 0; n < nodes; ++n)
    if (!seen.count(n)) m.missing.push_back(n);
  if (!m.missing.empty()) {
    m.partial = true;
    least_covered = 0.0;
  }
  m.covered_s = m.partial ? std::max(0.0, least_covered) : m.duration_s;
  all.partial = m.partial;
  m.method = windows.empty() ? (m.partial ? "none, partial" : "none") : method_label(all);
  m.per_node = std::move(windows);
  return m;
}

std::map<int, NodeWindow> node_epoch_windows(const NodeRun& run) {
  std::map<int, NodeWindow> out;
  double duration = 0.0, energy = 0.0, machine = 0.0;
  int last = 0;
  for (const auto& e : run.epochs) {
    NodeWindow w;
    w.node = run.node;
    w.host = run.host;
    w.duration_s = e.duration_s;
    w.energy_j = e.energy_j;
    w.machine_energy_j = e.machine_energy_j;
    w.train_energy_j = e.train_energy_j;
    w.eval_energy_j = e.eval_energy_j;
    w.method = e.method;
    out[e.epoch] = w;
    duration += e.duration_s;
    energy += e.energy_j;
    machine += e.machine_energy_j;
    last = std::max(last, e.epoch);
  }
  // An epoch the node began but did not finish: its totals hold more than its
  // epochs (RunControl counts a cut-short epoch in the run, not as an epoch).
  const double rest_s = run.summary.duration_s - duration;
  if (rest_s > kCutShortMinS && !out.count(last + 1)) {
    NodeWindow w;
    w.node = run.node;
    w.host = run.host;
    w.partial = true;
    w.duration_s = rest_s;
    w.covered_s = rest_s;
    w.energy_j = std::max(0.0, run.summary.energy_j - energy);
    w.machine_energy_j = std::max(0.0, run.summary.machine_energy_j - machine);
    w.train_energy_j = w.energy_j;  // which phase it stopped in is not kept
    w.method = run.summary.method;
    out[last + 1] = w;
  }
  return out;
}

MergedRun merge_node_runs(const std::vector<NodeRun>& runs, int nodes) {
  const NodeRun* primary = nullptr;
  for (const auto& r : runs)
    if (r.node == 0) primary = &r;
  if (primary == nullptr) throw ConfigError("a run over several nodes needs node 0's record (the primary's)");
  MergedRun out;
  out.nodes = nodes;
  std::vector<std::map<int, NodeWindow>> windows;
  windows.reserve(runs.size());
  for (const auto& r : runs) windows.push_back(node_epoch_windows(r));

  std::vector<NodeWindow> totals;
  for (const auto& r : runs) {
    NodeWindow t;
    t.node = r.node;
    t.host = r.host;
    t.duration_s = r.summary.duration_s;
    t.energy_j = r.summary.energy_j;
    t.machine_energy_j = r.summary.machine_energy_j;
    t.method = r.summary.method;
    t.partial = !r.complete;
    t.covered_s = r.summary.duration_s;
    totals.push_back(std::move(t));
  }
  out.run = merge_node_windows(std::move(totals), nodes);

  for (const auto& e : primary->epochs) {
    std::vector<NodeWindow> of_epoch;
    for (const auto& w : windows) {
      const auto it = w.find(e.epoch);
      if (it != w.end()) of_epoch.push_back(it->second);
    }
    auto m = merge_node_windows(std::move(of_epoch), nodes);
    m.epoch = e.epoch;
    out.epochs.push_back(std::move(m));
  }
  // The run's label holds every method of its windows (a node's totals carry
  // only its last window's), and is partial when one of them is.
  MethodSet all = parse_methods(out.run.method);
  bool partial = out.run.partial;
  for (const auto& m : out.epochs) {
    add_methods(all, parse_methods(m.method));
    partial = partial || m.partial;
  }
  out.run.partial = partial;
  all.partial = partial;
  out.run.method = method_label(all);
  return out;
}

NodeRole node_role(int rank_flag, int nodes_flag,
                   const std::function<std::optional<std::string>(const std::string&)>& env) {
  NodeRole role;
  if (rank_flag >= 0 || nodes_flag >= 0) {
    if (rank_flag < 0 || nodes_flag < 0)
      throw ConfigError("--node-rank and --nodes go together (this node's rank and the number of nodes)");
    if (nodes_flag < 1) throw ConfigError(fmt::format("--nodes must be at least 1, got {}", nodes_flag));
    if (rank_flag >= nodes_flag)
      throw ConfigError(fmt::format("--node-rank must be between 0 and {} for {} nodes, got {}", nodes_flag - 1,
                                    nodes_flag, rank_flag));
    role.rank = rank_flag;
    role.nodes = nodes_flag;
    return role;
  }
  // Inside an srun step (not merely inside an allocation, where a batch
  // script runs once on its first node).
  if (!env("SLURM_STEP_ID")) return role;
  const auto id = env("SLURM_NODEID");
  const auto n = env("SLURM_STEP_NUM_NODES") ? env("SLURM_STEP_NUM_NODES") : env("SLURM_NNODES");
  if (!id || !n) return role;
  role.nodes = parse_int(*n, "SLURM_STEP_NUM_NODES");
  role.rank = parse_int(*id, "SLURM_NODEID");
  // Several tasks on a node would measure it once per task.
  const auto tasks = env("SLURM_STEP_NUM_TASKS");
  if (tasks && parse_int(*tasks, "SLURM_STEP_NUM_TASKS") != role.nodes)
    throw ConfigError(fmt::format(
        "this srun step runs {} tasks on {} node{}: powertrain measures a node once, so start one per node "
        "(srun --ntasks-per-node 1) and let torchrun start the ranks",
        *tasks, role.nodes, role.nodes == 1 ? "" : "s"));
  if (role.nodes <= 1) return NodeRole{};
  if (role.rank >= role.nodes)
    throw ConfigError(fmt::format("SLURM_NODEID {} is outside the step's {} nodes", role.rank, role.nodes));
  role.from_slurm = true;
  return role;
}

}  // namespace powertrain::run
