#pragma once
// The meter of one node of a run whose program another powertrain started on
// every node at once (a Slurm study's trial over several nodes: node 0's
// powertrain starts it through srun; docs/cluster.md, "Trials over several
// nodes"). This workload starts nothing: it opens the protocol's socket, says
// where it is (so that the program's ranks on this node find it), and records
// the windows the node's local rank 0 reports, following the primary node's
// decisions (run with session::SessionOptions::follow_primary).
//
//   NodeMeterWorkload w(config, {.publish = write_entry, .run_ended = primary_done});
//   session.run(config, w);
#include <functional>
#include <string>

#include "powertrain/run/workload.h"

namespace powertrain::external {

struct NodeMeterOptions {
  /// Called once the socket listens, with its path.
  std::function<void(const std::string& socket_path)> publish;
  /// Whether the primary node's run has ended (asked about twice a second).
  std::function<bool()> run_ended;
  /// After the primary's run ended, seconds a connection still open is given
  /// to close before this node's run ends anyway.
  double linger_s = 30.0;
};

class NodeMeterWorkload final : public run::Workload {
 public:
  NodeMeterWorkload(run::RunConfig config, NodeMeterOptions options);

  /// Serves the protocol until the node's rank closes its connection, the
  /// primary's run ends without one, or the stop flag. Throws WorkloadError
  /// when the rank's connection ended inside an epoch (the node's record then
  /// ends with that epoch cut short) or no rank of this node reported an epoch.
  void run(run::RunControl& control) override;
  int threads() const override;
  std::string framework() const override;

 private:
  run::RunConfig config_;
  NodeMeterOptions options_;
};

}  // namespace powertrain::external
